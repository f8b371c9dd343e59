/* echo.S: an interactive console on COM1, for driving a VM's console from
 * the host (ember vm console, the daemon's tests). Real mode. Prints
 * "echo> ", then echoes every byte it receives (taken on the receive
 * interrupt, IRQ 4 through the PIC, so the guest halts between keys); a
 * 'q' ends the VM with status 0 after "bye". */
#include "abi.h"
#include "pic.inc"
#include "idle.inc"
#define COM1 0x3f8
	.code16
	.globl _start
_start:
	REAL_MODE_SETUP
	mov $(prompt - _start), %si
	call puts
	mov $COM1+4, %dx
	mov $0x08, %al              /* MCR: OUT2 (the PC's interrupt gate) */
	out %al, %dx
	PIC_INIT 0xef               /* IRQ 4 only */
	SET_IVT IRQ_BASE+4, com1_irq
	movb $0, (quit - _start)
	mov $COM1+1, %dx
	mov $0x01, %al              /* IER: received data available */
	out %al, %dx
idle:                           /* a 'q' taken between a check and HLT is not missed */
	cli
	cmpb $0, (quit - _start)
	jne 1f
	sti
halt:
	hlt                         /* STI's shadow: no byte slips in before HLT */
	jmp idle
1:
	mov $(bye - _start), %si
	call puts
	xor %al, %al
	out %al, $PORT_EXIT

/* com1_irq: echo every byte waiting in the receive FIFO. */
com1_irq:
	PAST_HLT16 halt             /* idle.inc: the lab may deliver on the HLT */
	push %ax
	push %dx
1:	mov $COM1+5, %dx
	in %dx, %al                 /* LSR */
	test $0x01, %al             /* data ready? */
	jz 2f
	mov $COM1, %dx
	in %dx, %al                 /* RBR */
	cmp $'q', %al
	jne 3f
	movb $1, (quit - _start)
3:	call putc
	jmp 1b
2:	PIC_ACK
	pop %dx
	pop %ax
	iret

/* putc: send AL once THR is empty. */
putc:
	push %ax
	mov $COM1+5, %dx
1:	in %dx, %al
	test $0x20, %al             /* THR empty? */
	jz 1b
	pop %ax
	mov $COM1, %dx
	out %al, %dx
	ret

/* puts: send the NUL-terminated string at DS:SI. */
puts:
	lodsb
	test %al, %al
	jz 1f
	call putc
	jmp puts
1:	ret

prompt:	.asciz "echo> "
bye:	.asciz "\r\nbye\r\n"
quit:	.byte 0
