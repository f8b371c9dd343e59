package backend

import (
	"fmt"

	"golang.org/x/sys/unix"

	"ember/devicemodel"
	"ember/memory"
)

// guestRAM is the guest's RAM as a back-end maps it: each segment's memfd
// mapped shared, and a memory.Guest over the mappings, so the device's
// accesses go through the same checked accessor as in ember.
type guestRAM struct {
	guest *memory.Guest
	maps  [][]byte
}

// mapGuestRAM maps segs (FD: the memfd, still the caller's). Each segment
// must be page-aligned and lie inside its memfd; segments must not overlap.
func mapGuestRAM(segs []devicemodel.Segment) (*guestRAM, error) {
	g := &guestRAM{guest: &memory.Guest{}}
	for _, sg := range segs {
		if err := g.add(sg); err != nil {
			g.close()
			return nil, err
		}
	}
	return g, nil
}

// add maps one segment.
func (g *guestRAM) add(sg devicemodel.Segment) error {
	if sg.GPA%memory.PageSize != 0 || sg.Len%memory.PageSize != 0 || sg.Offset%memory.PageSize != 0 || sg.Len > 1<<48 {
		return fmt.Errorf("%w: segment %#x+%#x at offset %#x is not page-aligned", unix.EINVAL, sg.GPA, sg.Len, sg.Offset)
	}
	var st unix.Stat_t
	if err := unix.Fstat(sg.FD, &st); err != nil {
		return fmt.Errorf("%w: segment %#x: %w", unix.EBADF, sg.GPA, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || uint64(st.Size) < sg.Offset || uint64(st.Size)-sg.Offset < sg.Len {
		return fmt.Errorf("%w: segment %#x+%#x at offset %#x: not inside its memfd of %d bytes", unix.EINVAL, sg.GPA, sg.Len, sg.Offset, st.Size)
	}
	host, err := unix.Mmap(sg.FD, int64(sg.Offset), int(sg.Len), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_NORESERVE)
	if err != nil {
		return fmt.Errorf("virtio-backend: mapping segment %#x: %w", sg.GPA, err)
	}
	if err := g.guest.Map(sg.GPA, host); err != nil {
		unix.Munmap(host)
		return fmt.Errorf("%w: %w", unix.EINVAL, err)
	}
	g.maps = append(g.maps, host)
	return nil
}

// close forgets the guest's RAM and unmaps it.
func (g *guestRAM) close() {
	g.guest.Close()
	for _, m := range g.maps {
		unix.Munmap(m)
	}
	g.maps = nil
}
