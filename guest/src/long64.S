/* long64.S: starts in 64-bit long mode; reports CR0, CS, EFER and the high half
 * of a 64-bit register, then exits 0. */
#include "abi.h"
	.code64
	.globl _start
_start:
	mov %cr0, %rax
	out %eax, $PORT_REPORT      /* CR0: PE and PG set */
	mov %cs, %eax
	out %eax, $PORT_REPORT      /* SEL_CODE */
	mov $MSR_EFER, %ecx
	rdmsr
	out %eax, $PORT_REPORT      /* EFER: LME and LMA set */
	movabs $0xabcdef0012345678, %rax
	shr $32, %rax
	out %eax, $PORT_REPORT      /* 0xabcdef00: only a 64-bit register holds it */
	xor %al, %al
	out %al, $PORT_EXIT
