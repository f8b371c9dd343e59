package fwtables

import (
	"encoding/binary"
	"strings"
)

// A few ACPI Machine Language encoders (ACPI 6.x §20.2): enough for the
// DSDT ember writes — named integers, packages, buffers, scopes and devices.
// Each returns the encoded bytes of one term.

// AML opcodes.
const (
	amlZeroOp      = 0x00
	amlOneOp       = 0x01
	amlNameOp      = 0x08
	amlBytePrefix  = 0x0a
	amlWordPrefix  = 0x0b
	amlDWordPrefix = 0x0c
	amlQWordPrefix = 0x0e
	amlScopeOp     = 0x10
	amlBufferOp    = 0x11
	amlPackageOp   = 0x12
	amlExtOpPrefix = 0x5b
	amlDeviceOp    = 0x82 // after amlExtOpPrefix
	amlRootChar    = '\\'
)

// amlPkgLength encodes the PkgLength of a term whose body is n bytes long;
// the length counts its own bytes (§20.2.4).
func amlPkgLength(n int) []byte {
	if n+1 <= 0x3f {
		return []byte{byte(n + 1)}
	}
	for k := 2; k <= 4; k++ {
		total := n + k
		if total < 1<<(4+8*(k-1)) {
			b := []byte{byte(k-1)<<6 | byte(total&0xf)}
			for i := 1; i < k; i++ {
				b = append(b, byte(total>>(4+8*(i-1))))
			}
			return b
		}
	}
	panic("fwtables: AML package longer than 256 MiB")
}

// amlNameString encodes a name path such as "\_SB_.PCI0" or "_S5": segments
// are padded with '_' to four characters.
func amlNameString(path string) []byte {
	var b []byte
	if strings.HasPrefix(path, `\`) {
		b = append(b, amlRootChar)
		path = path[1:]
	}
	segs := strings.Split(path, ".")
	switch len(segs) {
	case 1:
	case 2:
		b = append(b, 0x2e) // DualNamePrefix
	default:
		b = append(b, 0x2f, byte(len(segs))) // MultiNamePrefix
	}
	for _, s := range segs {
		b = append(b, (s + "___")[:4]...)
	}
	return b
}

// amlInteger encodes v in the shortest integer form.
func amlInteger(v uint64) []byte {
	switch {
	case v == 0:
		return []byte{amlZeroOp}
	case v == 1:
		return []byte{amlOneOp}
	case v <= 0xff:
		return []byte{amlBytePrefix, byte(v)}
	case v <= 0xffff:
		return binary.LittleEndian.AppendUint16([]byte{amlWordPrefix}, uint16(v))
	case v <= 0xffffffff:
		return binary.LittleEndian.AppendUint32([]byte{amlDWordPrefix}, uint32(v))
	}
	return binary.LittleEndian.AppendUint64([]byte{amlQWordPrefix}, v)
}

// amlEISAID encodes a compressed EISA ID such as "PNP0A03" (§19.6.35).
func amlEISAID(id string) []byte {
	vendor := uint16(id[0]-0x40)<<10 | uint16(id[1]-0x40)<<5 | uint16(id[2]-0x40)
	var product uint16
	for _, c := range id[3:7] {
		product <<= 4
		switch {
		case c >= '0' && c <= '9':
			product |= uint16(c - '0')
		default:
			product |= uint16(c-'A') + 10
		}
	}
	return []byte{amlDWordPrefix, byte(vendor >> 8), byte(vendor), byte(product >> 8), byte(product)}
}

// amlName is Name(path, value).
func amlName(path string, value []byte) []byte {
	b := append([]byte{amlNameOp}, amlNameString(path)...)
	return append(b, value...)
}

// amlPackage is Package(){elems...}.
func amlPackage(elems ...[]byte) []byte {
	body := []byte{byte(len(elems))}
	for _, e := range elems {
		body = append(body, e...)
	}
	return amlWithLength([]byte{amlPackageOp}, body)
}

// amlBuffer is Buffer(){data}.
func amlBuffer(data []byte) []byte {
	body := append(amlInteger(uint64(len(data))), data...)
	return amlWithLength([]byte{amlBufferOp}, body)
}

// amlScope is Scope(path){terms...}.
func amlScope(path string, terms ...[]byte) []byte {
	return amlWithLength([]byte{amlScopeOp}, amlNamed(path, terms))
}

// amlDevice is Device(name){terms...}.
func amlDevice(name string, terms ...[]byte) []byte {
	return amlWithLength([]byte{amlExtOpPrefix, amlDeviceOp}, amlNamed(name, terms))
}

func amlNamed(path string, terms [][]byte) []byte {
	body := amlNameString(path)
	for _, t := range terms {
		body = append(body, t...)
	}
	return body
}

func amlWithLength(op, body []byte) []byte {
	b := append(op, amlPkgLength(len(body))...)
	return append(b, body...)
}

// Resource descriptors (§6.4) for a _CRS buffer.

// resWordAddress is a Word Address Space Descriptor a bridge produces:
// kind 1 is I/O, 2 is bus numbers.
func resWordAddress(kind, typeFlags byte, min, max uint16) []byte {
	b := []byte{0x88, 13, 0, kind, resMinMaxFixed, typeFlags}
	for _, v := range []uint16{0, min, max, 0, max - min + 1} { // granularity, min, max, translation, length
		b = binary.LittleEndian.AppendUint16(b, v)
	}
	return b
}

// resDWordMemory is a DWord Address Space Descriptor for a read-write,
// non-cacheable memory window a bridge produces.
func resDWordMemory(min, max uint32) []byte {
	b := []byte{0x87, 23, 0, 0, resMinMaxFixed, 0x01}
	for _, v := range []uint32{0, min, max, 0, max - min + 1} {
		b = binary.LittleEndian.AppendUint32(b, v)
	}
	return b
}

// resIO is an I/O Port Descriptor with 16-bit decode.
func resIO(min, max uint16, align, length byte) []byte {
	b := []byte{0x47, 0x01}
	b = binary.LittleEndian.AppendUint16(b, min)
	b = binary.LittleEndian.AppendUint16(b, max)
	return append(b, align, length)
}

// resEnd is the End Tag that closes a resource template (checksum 0: none).
func resEnd() []byte { return []byte{0x79, 0} }

// resMinMaxFixed is the general flags of a window a bridge produces: fixed
// minimum and maximum, positive decode, producer.
const resMinMaxFixed = 0x0c
