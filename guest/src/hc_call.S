/* hc_call.S: makes one ACRN hypercall (docs/abi.md, Hypercalls) and reports
 * what happened. In: R8 = hypercall ID, R9 = param1, R10 = param2, R12 = 0 to
 * call from ring 0, 1 from ring 3. A result reports RAX (low, high half) and
 * exits 0; #UD reports 6 and the frame's CS and exits 6; #GP reports 13 and
 * the error code and exits 13. */
#include "abi.h"
#include "trap.inc"
	.code64
	.globl _start
_start:
	SETUP_IDT
	mov $IDT_ADDR + 6*16, %edi
	mov $on_ud, %eax
	call set_gate
	mov $IDT_ADDR + 13*16, %edi
	mov $on_gp, %eax
	call set_gate
	test %r12, %r12
	jnz 1f
	call hypercall
	mov %rax, %rdx
	out %eax, $PORT_REPORT
	mov %rdx, %rax
	shr $32, %rax
	out %eax, $PORT_REPORT
	xor %eax, %eax
	out %eax, $PORT_EXIT
1:	ENTER_RING3 user, 0x7000
user:
	call hypercall
	ud2                         /* no #GP: report as #UD from ring 3 */
hypercall:
	mov %r9, %rdi
	mov %r10, %rsi
	out %al, $PORT_HYPERCALL
	ret
on_ud:
	mov $6, %eax
	out %eax, $PORT_REPORT
	mov 8(%rsp), %rax
	out %eax, $PORT_REPORT
	mov $6, %eax
	out %eax, $PORT_EXIT
on_gp:
	mov $13, %eax
	out %eax, $PORT_REPORT
	mov (%rsp), %rax
	out %eax, $PORT_REPORT
	mov $13, %eax
	out %eax, $PORT_EXIT
	TRAP_HANDLERS
