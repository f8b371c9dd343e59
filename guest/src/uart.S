/* uart.S: real mode, COM1. First a loopback round trip (MCR LOOP: a byte
 * written to THR comes back in RBR; reports LSR and the byte). Then an
 * interrupt-driven transmit: with OUT2 set and IER.ETBEI enabled, each THR-empty
 * interrupt (IRQ 4 through the PIC) sends the next byte of msg, until none is
 * left; reports how many bytes the handler sent, and exits 0. */
#include "abi.h"
#include "pic.inc"
#define COM1 0x3f8
	.code16
	.globl _start
_start:
	REAL_MODE_SETUP
	mov $COM1+4, %dx
	mov $0x10, %al              /* MCR: loopback */
	out %al, %dx
	mov $COM1, %dx
	mov $'L', %al
	out %al, %dx                /* THR */
	mov $COM1+5, %dx
	in %dx, %al                 /* LSR: data ready, THR empty */
	out %al, $PORT_REPORT
	mov $COM1, %dx
	in %dx, %al                 /* RBR: 'L' came back */
	out %al, $PORT_REPORT

	mov $COM1+4, %dx
	mov $0x08, %al              /* MCR: OUT2 (the PC's interrupt gate), no loopback */
	out %al, %dx
	PIC_INIT 0xef               /* IRQ 4 only */
	SET_IVT IRQ_BASE+4, com1_irq
	xor %si, %si                /* bytes sent */
	mov $COM1+1, %dx
	mov $0x02, %al              /* IER: THR empty interrupt */
	out %al, %dx
	sti
wait:
	hlt
	cmp $msg_len, %si
	jb wait
	cli
	mov %si, %ax
	out %ax, $PORT_REPORT
	xor %al, %al
	out %al, $PORT_EXIT

com1_irq:
	mov $COM1+2, %dx
	in %dx, %al                 /* IIR: acknowledges the THR-empty interrupt */
	cmp $msg_len, %si
	jae 1f
	mov (msg - _start)(%si), %al
	mov $COM1, %dx
	out %al, %dx                /* THR: the next byte */
	inc %si
	jmp 2f
1:	mov $COM1+1, %dx
	xor %al, %al                /* all sent: IER off */
	out %al, %dx
2:	PIC_ACK
	iret
msg:	.ascii "sent by interrupts\n"
	.set msg_len, . - msg
