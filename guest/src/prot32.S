/* prot32.S: starts in 32-bit protected mode; reports CR0 and CS, then exits 0. */
#include "abi.h"
	.code32
	.globl _start
_start:
	mov %cr0, %eax
	out %eax, $PORT_REPORT      /* CR0: PE set, PG clear */
	mov %cs, %eax
	out %eax, $PORT_REPORT      /* SEL_CODE */
	xor %al, %al
	out %al, $PORT_EXIT
