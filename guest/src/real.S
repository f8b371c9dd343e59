/* real.S: starts in 16-bit real mode; reports CR0 and a 16-bit sum, then exits 0. */
#include "abi.h"
	.code16
	.globl _start
_start:
	mov %cr0, %eax
	out %eax, $PORT_REPORT      /* CR0: PE clear in real mode */
	mov $0x1234, %ax
	add $0x1111, %ax
	out %ax, $PORT_REPORT       /* 0x2345, a 16-bit write */
	xor %al, %al
	out %al, $PORT_EXIT
