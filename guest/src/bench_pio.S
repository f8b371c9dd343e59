/*
 * bench_pio.S: the exit round-trip guest for port I/O. A 64 KiB reset-vector
 * image: QEMU maps it as -bios (CPU at F000:FFF0); ember and the C baseline
 * load it at 0xF0000 and start it there in real mode. It also runs loaded at
 * LOAD_ADDR with CS:IP = 1000:0000, since all of its code addresses are
 * CS-relative.
 *
 * It writes the 32-bit word at offset 0xfff8 (the count, a multiple of 16;
 * the harness patches it) times to PORT_BENCH, a port no device claims in
 * ember or QEMU's microvm, 16 writes per loop turn so the loop itself costs
 * little next to the exits; then it writes 0 to PORT_EXIT.
 */
#include "abi.h"
#define PORT_BENCH 0x4f0

	.code16
	.globl _start
_start:
	cli
	movl %cs:(count - _start), %ecx
	shrl $4, %ecx
	jz 2f
	xorl %eax, %eax
	movw $PORT_BENCH, %dx
1:
	.rept 16
	outb %al, %dx
	.endr
	decl %ecx
	jnz 1b
2:
	xorb %al, %al
	outb %al, $PORT_EXIT
3:
	hlt
	jmp 3b

	.org 0xfff0
reset:	/* F000:FFF0: a near jump to _start at offset 0, wrapping the segment */
	.byte 0xe9
	.word (_start - (reset + 3)) & 0xffff
	.org 0xfff8
count:	.long 16000
magic:	.ascii "EMBB"
