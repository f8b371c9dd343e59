// Package fwcfg models QEMU's firmware configuration device (fw_cfg) on its
// x86 I/O ports, so firmware and test kernels written for QEMU find the
// machine's configuration where they look for it.
//
// # The traditional interface
//
// A 16-bit selector register at port 0x510 and an 8-bit data register at
// 0x511 (offsets 0 and 1 here). A 2-byte write of a key to the selector
// starts that item from its first byte; each read of the data register
// returns the next bytes, and zeros past the end or for a key nothing is
// stored under. As in QEMU, a 1-byte read anywhere in the two ports reads
// data, a 1-byte write is a data write, and data writes are ignored (QEMU
// dropped them in 2.4). Bit 14 of a key (QEMU's write channel) selects the
// same item as the key without it; bit 15 (arch-local) is part of the key.
//
// # The DMA interface
//
// With guest memory (Config.Memory), KeyID has bit 1 set and the 64-bit
// big-endian DMA address register answers at ports 0x514-0x51b (offsets
// 4-11 here): a 4-byte write to its high half (0x514) sets the top 32 bits
// of the address, and a 4-byte write to its low half (0x518) adds the low
// 32 bits and starts a transfer (as does an 8-byte write to 0x514, which
// only MMIO can make); the register is zero again after every transfer.
// Reading it returns "QEMU CFG", the DMA signature. The address is that of
// a FWCfgDmaAccess structure in guest RAM (DMAAccess): control, length and
// address, big endian. Control bit 3 (DMASelect) selects the item in its
// top 16 bits first; then bit 1 (DMARead) copies length bytes of the item,
// from the current offset, to address (zeros past its end), bit 4
// (DMAWrite) copies length bytes from address into a writable item, bit 2
// (DMASkip) moves the offset on by length, in that order of precedence.
// When the transfer is done the control word in guest RAM is 0, or
// DMAError (bit 0) if it failed. The offset the DMA interface moves is the
// data register's too.
//
// Every address and length the guest gives goes through memory.Guest's
// checked accessor. A transfer whose buffer is not wholly inside guest RAM
// fails with DMAError and copies nothing (QEMU copies the part that is
// RAM); an access structure that is not in RAM cannot even be answered,
// and is only logged. A control word with undefined bits (5-15) set fails
// with DMAError before anything is done (QEMU ignores them): no firmware
// sets them, and a guest that does is probing.
//
// Writes: items are read-only, as nearly all of QEMU's are, and a DMA write
// to one fails with DMAError. AddWritableFile makes a file the guest may
// overwrite in place through DMA; a write that would start or end past the
// file's end fails with DMAError and changes nothing (QEMU drops a
// truncated write entirely too).
//
// Items are stored under their key (KeySignature, KeyID, KeyRAMSize, ...)
// and named files under keys from 0x20 up, listed in KeyFileDir as QEMU
// lists them: a big-endian count, then one 64-byte entry per file (size,
// key, name), in name order.
//
// Concurrency: safe for concurrent use. A DMA transfer runs on the vCPU
// that starts it, with the device's mutex held: another vCPU's access waits
// for it, as QEMU serialises them.
package fwcfg

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"ember/devices"
	"ember/memory"
)

// Ports and layout.
const (
	Port       = 0x510 // the selector; the data register is Port+1
	PortLen    = 2
	DMAPort    = 0x514 // the DMA address register, high half first
	DMAPortLen = 8
	// DMAOffset is the DMA address register's offset in Read and Write:
	// a bus that claims DMAPort passes its offsets shifted by it.
	DMAOffset = DMAPort - Port
	fileDirN  = 56 // bytes of a file name in a directory entry, NUL included
)

// Keys of the items a PC machine has (QEMU's FW_CFG_*), the key bits, and
// KeyID's feature bits. Integers are little endian.
const (
	KeySignature    = 0x0000 // "QEMU"
	KeyID           = 0x0001 // u32 feature bits: IDTraditional, IDDMA
	KeyUUID         = 0x0002 // 16 bytes, the machine's UUID
	KeyRAMSize      = 0x0003 // u64 bytes of RAM
	KeyNoGraphic    = 0x0004 // u16 1: no display
	KeyNBCPUs       = 0x0005 // u16 vCPUs at boot
	KeyKernelAddr   = 0x0007 // u32 where the kernel's protected-mode part goes
	KeyKernelSize   = 0x0008 // u32 bytes of KeyKernelData
	KeyInitrdAddr   = 0x000a // u32 where the initrd goes
	KeyInitrdSize   = 0x000b // u32 bytes of KeyInitrdData
	KeyBootDevice   = 0x000c // u16
	KeyBootMenu     = 0x000e // u16 1: firmware offers a boot menu
	KeyMaxCPUs      = 0x000f // u16
	KeyKernelEntry  = 0x0010 // u32 a kernel's entry point, where one is given
	KeyKernelData   = 0x0011 // the kernel's protected-mode part
	KeyInitrdData   = 0x0012 // the initrd
	KeyCmdlineAddr  = 0x0013 // u32 where the command line goes
	KeyCmdlineSize  = 0x0014 // u32 bytes of KeyCmdlineData, the NUL included
	KeyCmdlineData  = 0x0015 // the command line, NUL-terminated
	KeySetupAddr    = 0x0016 // u32 where the kernel's real-mode setup goes
	KeySetupSize    = 0x0017 // u32 bytes of KeySetupData
	KeySetupData    = 0x0018 // the real-mode setup, its header filled in
	KeyFileDir      = 0x0019
	KeyFileFirst    = 0x0020 // the first file's key
	KeyWriteChannel = 0x4000 // the key bit QEMU's write channel sets; ignored
	KeyArchLocal    = 0x8000 // the key bit of architecture-specific items
	IDTraditional   = 1 << 0 // KeyID: the selector and data registers
	IDDMA           = 1 << 1 // KeyID: the DMA interface
)

const (
	dmaSignature   = "QEMU CFG"
	maxFiles       = KeyWriteChannel - KeyFileFirst // keys a file can have below the write channel bit
	dmaDefinedBits = DMAError | DMARead | DMASkip | DMASelect | DMAWrite
)

// Config configures a device.
type Config struct {
	// Memory is guest RAM, which the DMA interface reads and writes; nil
	// leaves the DMA interface out (KeyID says so and the DMA register
	// reads as all ones).
	Memory *memory.Guest
	// Logger receives what the guest does that the device cannot honour;
	// nil means slog.Default().
	Logger *slog.Logger
}

// item is one configuration item.
type item struct {
	data     []byte
	writable bool         // a DMA write may overwrite it in place
	written  func([]byte) // called with a copy after each guest write
}

// FWCfg is one fw_cfg device.
type FWCfg struct {
	mem *memory.Guest

	mu        sync.Mutex
	items     map[uint16]*item
	files     map[string]uint16
	key       uint16
	offset    uint64 // in the selected item; never past its end
	dmaAddr   uint64 // the DMA address register
	anomalies *devices.Anomalies
}

// New returns a device with the signature, the ID and an empty file
// directory.
func New(cfg Config) *FWCfg {
	f := &FWCfg{
		mem:       cfg.Memory,
		items:     map[uint16]*item{},
		files:     map[string]uint16{},
		anomalies: devices.NewAnomalies(cfg.Logger, "fw_cfg"),
	}
	id := uint32(IDTraditional)
	if f.mem != nil {
		id |= IDDMA
	}
	f.Set(KeySignature, []byte("QEMU"))
	f.SetU32(KeyID, id)
	f.mu.Lock()
	f.rebuildDirLocked()
	f.mu.Unlock()
	return f
}

// Set stores data under key, replacing what was there. The device keeps
// data as it is (an initrd may be large): the caller must not change it
// afterwards.
func (f *FWCfg) Set(key uint16, data []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.items[itemKey(key)] = &item{data: data}
}

// SetU16 stores a little-endian u16 under key.
func (f *FWCfg) SetU16(key uint16, v uint16) { f.Set(key, binary.LittleEndian.AppendUint16(nil, v)) }

// SetU32 stores a little-endian u32 under key.
func (f *FWCfg) SetU32(key uint16, v uint32) { f.Set(key, binary.LittleEndian.AppendUint32(nil, v)) }

// SetU64 stores a little-endian u64 under key.
func (f *FWCfg) SetU64(key uint16, v uint64) { f.Set(key, binary.LittleEndian.AppendUint64(nil, v)) }

// AddFile stores a read-only named file ("etc/e820") under the next free
// key and lists it in the directory. A name must fit the directory's 55
// bytes and be new; data may be empty. The device keeps data as it is: the
// caller must not change it afterwards.
func (f *FWCfg) AddFile(name string, data []byte) error {
	return f.addFile(name, &item{data: data})
}

// AddWritableFile stores a named file the guest may overwrite in place
// through the DMA interface, as QEMU's writable files ("etc/vmgenid_addr",
// "etc/smi/requested-features") are: a write may not grow it. The device
// works on a copy of data. written, if not nil, is called with a copy of the
// whole file after each guest write, on the vCPU that wrote it and with no
// lock of the device held.
func (f *FWCfg) AddWritableFile(name string, data []byte, written func([]byte)) error {
	return f.addFile(name, &item{data: append([]byte(nil), data...), writable: true, written: written})
}

func (f *FWCfg) addFile(name string, it *item) error {
	if name == "" || len(name) >= fileDirN {
		return fmt.Errorf("fwcfg: file name %q: 1 to %d bytes", name, fileDirN-1)
	}
	if uint64(len(it.data)) > 1<<32-1 {
		return fmt.Errorf("fwcfg: file %q: %d bytes, more than the directory's 32-bit size", name, len(it.data))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.files[name]; ok {
		return fmt.Errorf("fwcfg: file %q exists", name)
	}
	if len(f.files) >= maxFiles {
		return fmt.Errorf("fwcfg: file %q: no free key (%d files)", name, len(f.files))
	}
	key := uint16(KeyFileFirst + len(f.files))
	f.files[name] = key
	f.items[key] = it
	f.rebuildDirLocked()
	return nil
}

// File returns a copy of the named file's current contents, which the guest
// may have written (AddWritableFile).
func (f *FWCfg) File(name string) ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key, ok := f.files[name]
	if !ok {
		return nil, false
	}
	return append([]byte(nil), f.items[key].data...), true
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
		dir = binary.BigEndian.AppendUint32(dir, uint32(len(f.items[key].data)))
		dir = binary.BigEndian.AppendUint16(dir, key)
		dir = append(dir, 0, 0) // reserved
		var name [fileDirN]byte
		copy(name[:], n)
		dir = append(dir, name[:]...)
	}
	f.items[KeyFileDir] = &item{data: dir}
}

// itemKey is the key an item is stored under: the write channel bit names
// the same item.
func itemKey(key uint16) uint16 { return key &^ KeyWriteChannel }

// selectLocked selects key, from its first byte.
func (f *FWCfg) selectLocked(key uint16) { f.key, f.offset = itemKey(key), 0 }

// currentLocked returns the selected item, nil if there is none.
func (f *FWCfg) currentLocked() *item { return f.items[f.key] }

// restLocked returns the selected item's bytes from the current offset on.
func (f *FWCfg) restLocked() []byte {
	it := f.currentLocked()
	if it == nil || f.offset >= uint64(len(it.data)) {
		return nil
	}
	return it.data[f.offset:]
}

// Read reads a register: at offsets 0 and 1 the next bytes of the selected
// item (QEMU reads data for a 1-byte read of either port; wider reads take
// the next bytes in order), at DMAOffset to DMAOffset+7 the bytes of the
// DMA signature "QEMU CFG". Anything else reads as all ones.
func (f *FWCfg) Read(off uint64, data []byte) {
	switch {
	case off <= 1:
		f.mu.Lock()
		defer f.mu.Unlock()
		f.readDataLocked(data)
	case f.mem != nil && off >= DMAOffset && off < DMAOffset+DMAPortLen:
		clear(data)
		copy(data, dmaSignature[off-DMAOffset:])
	default:
		devices.FillOnes(data)
	}
}

// readDataLocked reads the selected item's next len(data) bytes.
func (f *FWCfg) readDataLocked(data []byte) {
	n := copy(data, f.restLocked())
	clear(data[n:])
	f.offset += uint64(n)
}

// Write writes a register: a 2-byte write at offset 0 is the selector, a
// 1-byte write at offset 0 or 1 is a data write (ignored), and 4-byte
// writes at DMAOffset and DMAOffset+4 are the DMA address register's high
// and low halves (the low half starts a transfer), as is an 8-byte write at
// DMAOffset.
func (f *FWCfg) Write(off uint64, data []byte) {
	var written func()
	f.mu.Lock()
	switch {
	case off == 0 && len(data) == 2:
		f.selectLocked(uint16(devices.Uint(data)))
	case off <= 1 && len(data) == 1:
		// A data write: ignored since QEMU 2.4.
	case f.mem != nil && off == DMAOffset && len(data) == 4:
		f.dmaAddr = uint64(binary.BigEndian.Uint32(data)) << 32
	case f.mem != nil && off == DMAOffset+4 && len(data) == 4:
		addr := f.dmaAddr | uint64(binary.BigEndian.Uint32(data))
		f.dmaAddr = 0
		written = f.dmaLocked(addr)
	case f.mem != nil && off == DMAOffset && len(data) == 8:
		f.dmaAddr = 0
		written = f.dmaLocked(binary.BigEndian.Uint64(data))
	default:
		f.anomalies.Report("unsupported register access", "offset", off, "size", len(data))
	}
	f.mu.Unlock()
	if written != nil {
		written()
	}
}
