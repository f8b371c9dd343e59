package qcow2

import "ember/virtio"

// sub returns the n bytes of bufs from byte off, as slices of bufs: bufs
// itself when that is all of it (a request within one extent, the usual
// case, takes no new list).
func sub(bufs [][]byte, off, n uint64) [][]byte {
	if off == 0 && n == virtio.Len(bufs) {
		return bufs
	}
	var out [][]byte
	for _, b := range bufs {
		if n == 0 {
			break
		}
		if off >= uint64(len(b)) {
			off -= uint64(len(b))
			continue
		}
		b = b[off:]
		off = 0
		k := min(n, uint64(len(b)))
		out = append(out, b[:k])
		n -= k
	}
	return out
}
