/*
 * bench_mmio.S: the exit round-trip guest for MMIO. A 64 KiB reset-vector
 * image laid out like bench_pio.S (count at offset 0xfff8, patched by the
 * harness). It enters 32-bit protected mode (a flat GDT in the image, found
 * through CS so the image runs wherever it is loaded), writes the count
 * times (16 per loop turn) to MMIO_BENCH, an address no device claims in
 * ember or QEMU's microvm and no RAM backs, then writes 0 to PORT_EXIT.
 */
#include "abi.h"
#define MMIO_BENCH 0xd0000000
#define SCRATCH    0x6000	/* 6 bytes of RAM for the GDT pointer */

	.code16
	.globl _start
_start:
	cli
	xorw %ax, %ax
	movw %ax, %ds
	movw %ax, %ss
	movw $0x7000, %sp
	movl %cs:(count - _start), %ecx
	shrl $4, %ecx
	xorl %ebx, %ebx
	movw %cs, %bx
	shll $4, %ebx			/* EBX: linear address of the image */
	leal (gdt - _start)(%ebx), %eax
	movw $(gdt_end - gdt - 1), SCRATCH
	movl %eax, SCRATCH + 2
	lgdtl SCRATCH
	movl %cr0, %eax
	orl $1, %eax
	movl %eax, %cr0
	leal (pm32 - _start)(%ebx), %eax
	pushl $0x08
	pushl %eax
	lretl				/* to 0x08:pm32, 32-bit code */

	.code32
pm32:
	movw $0x10, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	testl %ecx, %ecx
	jz 2f
	xorl %eax, %eax
1:
	.rept 16
	movl %eax, MMIO_BENCH
	.endr
	decl %ecx
	jnz 1b
2:
	xorb %al, %al
	outb %al, $PORT_EXIT
3:
	hlt
	jmp 3b

	.balign 8
gdt:	/* null, flat 32-bit code, flat data; accessed bits preset (the image may be ROM) */
	.quad 0
	.quad 0x00cf9b000000ffff
	.quad 0x00cf93000000ffff
gdt_end:

	.code16
	.org 0xfff0
reset:	/* F000:FFF0: a near jump to _start at offset 0, wrapping the segment */
	.byte 0xe9
	.word (_start - (reset + 3)) & 0xffff
	.org 0xfff8
count:	.long 16000
magic:	.ascii "EMBB"
