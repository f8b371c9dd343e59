/* hc_service_vm.S: a Service VM guest that creates, sets up and starts a second VM
 * by hypercalls. It reports the result of HC_CREATE_VM, of HC_START_VM before
 * the I/O request buffer is set (refused), of HC_VM_SET_MEMORY_REGIONS,
 * HC_SET_VCPU_REGS, HC_SET_IOREQ_BUFFER and HC_START_VM, then waits for the
 * second VM — real-mode code in a page of this image that is mapped into it
 * at GPA 0 — to store 0x42 in that shared page, reports the byte and the new
 * VM ID, and exits 0. The wait has no bound of its own: how long the second
 * VM takes to start depends on the host (nested KVM under emulation is slow),
 * so the caller's time-out is the bound. */
#include "abi.h"
#include "hypercall.h"
#include "uservm.inc"
#define IOREQ_BUF               0x100000
	.code64
	.globl _start
_start:
	mov $HC_CREATE_VM, %r8d
	mov $creation, %edi
	call hc
	movzwl creation, %ebx       /* the new VM ID */
	mov %bx, regions
	mov $HC_START_VM, %r8d
	mov %rbx, %rdi
	call hc
	START_USER_VM IOREQ_BUF
1:	pause
	cmpb $0, guest2_page
	je 1b
	movzbl guest2_page, %eax
	out %eax, $PORT_REPORT
	mov %ebx, %eax
	out %eax, $PORT_REPORT
	xor %eax, %eax
	out %eax, $PORT_EXIT
hc:	out %al, $PORT_HYPERCALL
	out %eax, $PORT_REPORT
	ret

	USER_VM_STRUCTS guest2_page, guest2_entry

	.balign 4096
guest2_page:                    /* the second VM's GPA 0 */
	.byte 0
guest2_entry:
	.code16
	movb $0x42, 0
	mov $0x42, %al
	out %al, $PORT_EXIT
	.code64
