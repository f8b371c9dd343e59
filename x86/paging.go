package x86

import (
	"encoding/binary"

	"ember/layout"
)

// Page-table entry bits.
const (
	ptePresent  = 1 << 0
	pteWrite    = 1 << 1
	pteUser     = 1 << 2
	ptePageSize = 1 << 7
)

// pageTables returns the PML4, PDPT and four page directories that map the low
// 4 GiB 1:1 with 2 MiB pages, as one byte slice to be written at layout.PML4.
func pageTables() []byte {
	const page = 4096
	b := make([]byte, (layout.PD-layout.PML4)+4*page)
	flags := uint64(ptePresent | pteWrite | pteUser)
	put := func(addr, v uint64) { binary.LittleEndian.PutUint64(b[addr-layout.PML4:], v) }
	put(layout.PML4, layout.PDPT|flags)
	for i := uint64(0); i < 4; i++ {
		pd := layout.PD + i*page
		put(layout.PDPT+8*i, pd|flags)
		for j := uint64(0); j < 512; j++ {
			put(pd+8*j, (i<<30+j<<21)|flags|ptePageSize)
		}
	}
	return b
}
