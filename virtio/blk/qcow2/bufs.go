package qcow2

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
