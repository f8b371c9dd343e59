package qcow2

// total is the length of bufs together.
func total(bufs [][]byte) uint64 {
	var n uint64
	for _, b := range bufs {
		n += uint64(len(b))
	}
	return n
}

// sub returns the n bytes of bufs from byte off, as slices of bufs.
func sub(bufs [][]byte, off, n uint64) [][]byte {
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

// scatter copies src into bufs, in order.
func scatter(bufs [][]byte, src []byte) {
	for _, b := range bufs {
		src = src[copy(b, src):]
	}
}

// gather copies bufs, in order, into dst.
func gather(dst []byte, bufs [][]byte) {
	for _, b := range bufs {
		dst = dst[copy(dst, b):]
	}
}
