package console

// serveTransmit writes the guest's output at every kick until Reset.
func (w *worker) serveTransmit() {
	defer close(w.done)
	for {
		w.transmit()
		select {
		case <-w.kick:
		case <-w.stop:
			return
		}
	}
}

// transmit writes every chain the driver posted to Output, in order, and
// returns each with nothing written. A chain with a device-writable buffer
// is not one a transmitq may hold ("the driver MUST NOT put a
// device-writable buffer in a transmitq", §5.3.6.1): none of it is output.
func (w *worker) transmit() {
	defer w.notifyDriver()
	for c := w.next(); c != nil; c = w.next() {
		if len(c.Writable) > 0 {
			w.reject(c.Head, "transmit chain with a device-writable buffer",
				"readable", c.ReadableLen(), "writable", c.WritableLen())
			continue
		}
		if !w.output(c.Readable) {
			return // Reset came: the chain goes with the queue
		}
		w.push(c.Head, 0)
	}
}

// output writes bufs to Output, maxWrite bytes at a time, and returns false
// if a Reset stopped it first. An Output that fails loses the guest's
// bytes, as a console with nobody at it does; the first failure of an
// activation is logged.
func (w *worker) output(bufs [][]byte) bool {
	for _, b := range bufs {
		for len(b) > 0 {
			if w.stopped() {
				return false
			}
			n := min(len(b), maxWrite)
			if err := w.d.write(b[:n]); err != nil && !w.outErr {
				w.outErr = true
				w.d.log.Warn("virtio-console: writing the guest's output failed; it is dropped", "err", err)
			}
			b = b[n:]
		}
	}
	return true
}
