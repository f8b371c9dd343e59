// Package fwcfg models QEMU's firmware configuration device (fw_cfg) on its
// x86 I/O ports, so firmware and test kernels written for QEMU find the
// machine's configuration where they look for it: a 16-bit selector register
// at port 0x510 and an 8-bit data register at 0x511 (offsets 0 and 1 here).
// A write of a key to the selector starts that item from its first byte;
// each read of the data register returns the next byte, and zeros past the
// end or for a key nothing is stored under. Writes to the data register are
// ignored, as in QEMU since 2.4.
//
// Items are stored under their key (KeySignature, KeyID, KeyRAMSize, ...)
// and named files under keys from 0x20 up, listed in KeyFileDir as QEMU
// lists them: a big-endian count, then one 64-byte entry per file (size,
// key, name), in name order. The DMA interface is not offered: KeyID says
// so (bit 1 clear), and callers fall back to the data register.
//
// Concurrency: safe for concurrent use.
package fwcfg

import (
	"encoding/binary"
	"fmt"
	"sort"
	"sync"

	"ember/devices"
)

// Ports and layout.
const (
	Port     = 0x510 // the selector; the data register is Port+1
	PortLen  = 2
	fileDirN = 56 // bytes of a file name in a directory entry, NUL included
)

// Keys of the items every machine has (QEMU's FW_CFG_*).
const (
	KeySignature  = 0x0000 // "QEMU"
	KeyID         = 0x0001 // u32 LE feature bits: 1 = the traditional interface
	KeyRAMSize    = 0x0003 // u64 LE bytes of RAM
	KeyNoGraphic  = 0x0004 // u16 LE 1: no display
	KeyNBCPUs     = 0x0005 // u16 LE vCPUs at boot
	KeyKernelSize = 0x0008 // u32 LE
	KeyInitrdSize = 0x000b // u32 LE
	KeyBootDevice = 0x000c // u16 LE
	KeyMaxCPUs    = 0x000f // u16 LE
	KeyKernelData = 0x0011
	KeyInitrdData = 0x0012
	KeyCmdlineLen = 0x0014 // u32 LE, the NUL included
	KeyCmdline    = 0x0015
	KeyFileDir    = 0x0019
	KeyFileFirst  = 0x0020 // the first file's key
)

// FWCfg is one fw_cfg device.
type FWCfg struct {
	mu     sync.Mutex
	items  map[uint16][]byte
	files  map[string]uint16
	key    uint16
	offset int
}

// New returns a device with the signature, the ID and an empty file
// directory.
func New() *FWCfg {
	f := &FWCfg{items: map[uint16][]byte{}, files: map[string]uint16{}}
	f.items[KeySignature] = []byte("QEMU")
	f.SetU32(KeyID, 1)
	f.rebuildDir()
	return f
}

// Set stores data under key (replacing what was there).
func (f *FWCfg) Set(key uint16, data []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.items[key] = append([]byte(nil), data...)
}

// SetU16, SetU32 and SetU64 store a little-endian integer under key.
func (f *FWCfg) SetU16(key uint16, v uint16) { f.Set(key, binary.LittleEndian.AppendUint16(nil, v)) }

// SetU32 stores a little-endian u32 under key.
func (f *FWCfg) SetU32(key uint16, v uint32) { f.Set(key, binary.LittleEndian.AppendUint32(nil, v)) }

// SetU64 stores a little-endian u64 under key.
func (f *FWCfg) SetU64(key uint16, v uint64) { f.Set(key, binary.LittleEndian.AppendUint64(nil, v)) }

// AddFile stores a named file ("etc/e820") under the next free key and lists
// it in the directory. A name must fit the directory's 55 bytes and be new.
func (f *FWCfg) AddFile(name string, data []byte) error {
	if name == "" || len(name) >= fileDirN {
		return fmt.Errorf("fwcfg: file name %q: 1 to %d bytes", name, fileDirN-1)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.files[name]; ok {
		return fmt.Errorf("fwcfg: file %q exists", name)
	}
	key := uint16(KeyFileFirst + len(f.files))
	f.files[name] = key
	f.items[key] = append([]byte(nil), data...)
	f.rebuildDirLocked()
	return nil
}

func (f *FWCfg) rebuildDir() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rebuildDirLocked()
}

// rebuildDirLocked writes KeyFileDir: count, then entries in name order.
func (f *FWCfg) rebuildDirLocked() {
	names := make([]string, 0, len(f.files))
	for n := range f.files {
		names = append(names, n)
	}
	sort.Strings(names)
	dir := binary.BigEndian.AppendUint32(nil, uint32(len(names)))
	for _, n := range names {
		key := f.files[n]
		dir = binary.BigEndian.AppendUint32(dir, uint32(len(f.items[key])))
		dir = binary.BigEndian.AppendUint16(dir, key)
		dir = append(dir, 0, 0) // reserved
		var name [fileDirN]byte
		copy(name[:], n)
		dir = append(dir, name[:]...)
	}
	f.items[KeyFileDir] = dir
}

// Read reads the data register (offset 1): the next bytes of the selected
// item. The selector (offset 0) reads as zeros.
func (f *FWCfg) Read(off uint64, data []byte) {
	if off != 1 {
		clear(data)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	item := f.items[f.key]
	for i := range data {
		data[i] = 0
		if f.offset < len(item) {
			data[i] = item[f.offset]
		}
		f.offset++
	}
}

// Write writes the selector (offset 0): the item to read, from its start.
func (f *FWCfg) Write(off uint64, data []byte) {
	if off != 0 || len(data) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.key, f.offset = uint16(devices.Uint(data)), 0
}
