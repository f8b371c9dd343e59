package uart_test

import (
	"fmt"
	"os"

	"ember/devices"
	"ember/devices/uart"
)

// A UART as the VM wires it: COM1's interrupt goes to IRQ 4 and its output
// to the console. Here a guest's port writes are played by hand.
func Example() {
	irq4 := devices.IRQFunc(func(high bool) { fmt.Println("IRQ 4 high:", high) })
	com1 := uart.New(uart.Config{IRQ: irq4, Output: os.Stdout})

	var port devices.Device = com1 // the bus sees only this
	out := func(addr uint16, v byte) { port.Write(uint64(addr-uart.COM1Base), []byte{v}) }

	out(0x3fc, uart.MCROut2)     // MCR: enable the interrupt onto the bus
	out(0x3f9, uart.IERTHREmpty) // IER: interrupt when THR is empty
	for _, c := range []byte("ok\n") {
		out(0x3f8, c)
	}
	// Output:
	// IRQ 4 high: true
	// ok
}
