package blk

import (
	"fmt"
	"sync"

	"ember/virtio"

	"golang.org/x/sys/unix"
)

// bounceSize is the aligned buffer a cache=none disk moves data through, a
// chunk at a time.
const bounceSize = 1 << 20

// bouncePool hands out page-aligned buffers for O_DIRECT, which wants the
// memory, offset and length of every transfer aligned to the disk's logical
// block; guest buffers are anywhere. The pool keeps one per worker at most.
var bouncePool = sync.Pool{New: func() any {
	b, err := unix.Mmap(-1, 0, bounceSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil
	}
	return &b
}}

// directIO moves n bytes between bufs and the image at off through an
// aligned bounce buffer: read fills bufs, write drains them. Offsets and
// lengths are whole sectors (span checked that).
func directIO(fd int, bufs [][]byte, off int64, write bool) (int, error) {
	p, _ := bouncePool.Get().(*[]byte)
	if p == nil {
		return 0, fmt.Errorf("virtio-blk: no memory for an O_DIRECT bounce buffer")
	}
	defer bouncePool.Put(p)
	bounce := *p
	done := 0
	for len(bufs) > 0 {
		chunk := bounce[:min(uint64(bounceSize), virtio.Len(bufs))]
		var n int
		var err error
		if write {
			virtio.Gather(chunk, bufs)
			n, err = unix.Pwrite(fd, chunk, off)
		} else {
			n, err = unix.Pread(fd, chunk, off)
			virtio.Scatter(bufs, chunk[:max(n, 0)])
		}
		if err != nil {
			return done, err
		}
		if n != len(chunk) {
			return done + n, fmt.Errorf("virtio-blk: short O_DIRECT transfer: %d of %d bytes", n, len(chunk))
		}
		done += n
		off += int64(n)
		bufs = virtio.Skip(bufs, n)
	}
	return done, nil
}
