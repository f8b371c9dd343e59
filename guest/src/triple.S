/* triple.S: long mode, loads an empty IDT and executes UD2: #UD cannot be
 * delivered, nor can the #GP and #DF that follow, so the CPU triple-faults and
 * KVM reports a shutdown. */
#include "abi.h"
	.code64
	.globl _start
_start:
	lidt idtr
	ud2
	.balign 8
idtr:
	.word 0
	.quad 0
