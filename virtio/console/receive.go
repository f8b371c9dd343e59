package console

// serveReceive hands input to the guest until Reset. Holding no input, it
// waits for some; holding some, it waits for the driver to post receive
// buffers (a kick) and takes no more input meanwhile, so nothing is dropped
// and nothing piles up.
func (w *worker) serveReceive() {
	defer close(w.done)
	var data <-chan []byte
	if w.d.in != nil {
		data = w.d.in.data
	}
	for {
		w.receive()
		var input <-chan []byte
		if len(w.d.pending) == 0 && !w.broken {
			input = data
		}
		select {
		case b, ok := <-input:
			if !ok {
				data = nil // Input ended
				continue
			}
			w.d.pending = b
		case <-w.kick:
		case <-w.stop:
			return
		}
	}
}

// receive copies the input held into the buffers the driver posted, in
// order, returning each chain with the bytes it got, until the input or the
// buffers run out. Buffers stay in the ring while there is no input: the
// device uses them when input comes. A chain with a device-readable buffer
// is not one a receiveq may hold ("the driver MUST NOT put a device-readable
// in a receiveq", §5.3.6.1): it gets nothing.
func (w *worker) receive() {
	defer w.notifyDriver()
	for len(w.d.pending) > 0 {
		c := w.next()
		if c == nil {
			return
		}
		if len(c.Readable) > 0 {
			w.reject(c.Head, "receive chain with a device-readable buffer",
				"readable", c.ReadableLen(), "writable", c.WritableLen())
			continue
		}
		cw := c.Writer()
		n, _ := cw.Write(w.d.pending) // io.ErrShortWrite: the rest waits for the next buffer
		w.d.pending = w.d.pending[n:]
		w.push(c.Head, cw.Written())
	}
}
