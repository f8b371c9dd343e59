/*
 * bench_hello.S: the start-latency and memory guest. A 64 KiB reset-vector
 * image laid out like bench_pio.S. It prints a line to PORT_CONSOLE; then, if
 * the word at offset 0xfff8 is 0, it writes 0 to PORT_EXIT, otherwise it
 * halts with interrupts off for ever, so the harness can read the VMM's
 * memory use while the VM is alive.
 */
#include "abi.h"

	.code16
	.globl _start
_start:
	cli
	movw $(msg - _start), %si
1:
	movb %cs:(%si), %al
	testb %al, %al
	jz 2f
	outb %al, $PORT_CONSOLE
	incw %si
	jmp 1b
2:
	cmpl $0, %cs:(count - _start)
	jne 3f
	xorb %al, %al
	outb %al, $PORT_EXIT
3:
	hlt
	jmp 3b

msg:	.asciz "ember bench: hello\n"

	.org 0xfff0
reset:	/* F000:FFF0: a near jump to _start at offset 0, wrapping the segment */
	.byte 0xe9
	.word (_start - (reset + 3)) & 0xffff
	.org 0xfff8
count:	.long 0
magic:	.ascii "EMBB"
