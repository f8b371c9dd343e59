/* pit.S: real mode. Programs PIT channel 0 for a 10 ms periodic interrupt
 * (mode 2, count 11932 at 1.193182 MHz), takes five IRQ 0 ticks through the
 * PIC, reports the count and exits 0. */
#include "abi.h"
#include "pic.inc"
#define TICKS 5
	.code16
	.globl _start
_start:
	REAL_MODE_SETUP
	PIC_INIT 0xfe               /* IRQ 0 only */
	SET_IVT IRQ_BASE+0, tick
	xor %bx, %bx                /* ticks so far, counted by the handler */
	mov $0x34, %al              /* channel 0, low then high byte, mode 2 */
	out %al, $0x43
	mov $(11932 & 0xff), %al
	out %al, $0x40
	mov $(11932 >> 8), %al
	out %al, $0x40
	sti
wait:
	hlt
	cmp $TICKS, %bx
	jb wait
	cli
	mov %bx, %ax
	out %ax, $PORT_REPORT
	xor %al, %al
	out %al, $PORT_EXIT
tick:
	inc %bx
	push %ax
	PIC_ACK
	pop %ax
	iret
