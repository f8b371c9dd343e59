package virtio

// Helpers for a chain's buffers as devices see them: lists of guest-memory
// slices, read and written as one stream.

// Len returns the bytes in bufs.
func Len(bufs [][]byte) uint64 { return totalLen(bufs) }

// Skip returns bufs without their first n bytes, leaving bufs as they are.
func Skip(bufs [][]byte, n int) [][]byte { return AppendSkip(nil, bufs, n) }

// AppendSkip appends bufs without their first n bytes to dst and returns
// the extended list, leaving bufs as they are: Skip into a list the caller
// keeps, so a device that sends one chain at a time allocates none.
func AppendSkip(dst, bufs [][]byte, n int) [][]byte {
	for len(bufs) > 0 && n >= len(bufs[0]) {
		n -= len(bufs[0])
		bufs = bufs[1:]
	}
	if len(bufs) == 0 {
		return dst
	}
	start := len(dst)
	dst = append(dst, bufs...)
	dst[start] = dst[start][n:]
	return dst
}

// Gather copies bufs, in order, into dst, as much as fits, and returns the
// bytes copied.
func Gather(dst []byte, bufs [][]byte) int {
	n := 0
	for _, b := range bufs {
		n += copy(dst[n:], b)
	}
	return n
}

// Scatter copies src into bufs, in order, as much as fits, and returns the
// bytes copied.
func Scatter(bufs [][]byte, src []byte) int {
	n := 0
	for _, b := range bufs {
		if n == len(src) {
			break
		}
		n += copy(b, src[n:])
	}
	return n
}
