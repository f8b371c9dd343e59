/* hv_post.S: a Hyper-V guest's first steps (hv.Config.HyperV): it identifies
 * itself (GUEST_OS_ID), enables the hypercall page KVM fills in, turns its
 * SynIC on with a message page, then posts one message with HvPostMessage
 * and reports the hypercall's status (RAX), then exits 0. */
#include "abi.h"

#define MSR_GUEST_OS_ID  0x40000000
#define MSR_HYPERCALL    0x40000001
#define MSR_SCONTROL     0x40000080
#define MSR_SIMP         0x40000083

#define HYPERCALL_PAGE   0x20000   /* KVM writes VMCALL/VMMCALL; RET there */
#define INPUT_PAGE       0x21000   /* HV_INPUT_POST_MESSAGE */
#define MESSAGE_PAGE     0x23000   /* the SynIC's message page (SIMP) */

#define CALL_POST_MESSAGE 0x5c
#define CONNECTION_ID     7
#define MESSAGE_TYPE      0x55
#define PAYLOAD           0xfeedbeef

	.code64
	.globl _start
_start:
	mov $MSR_GUEST_OS_ID, %ecx
	mov $0x8100, %eax           /* any non-zero id enables the hypercall page */
	xor %edx, %edx
	wrmsr
	mov $MSR_HYPERCALL, %ecx
	mov $(HYPERCALL_PAGE | 1), %eax
	wrmsr
	mov $MSR_SCONTROL, %ecx
	mov $1, %eax
	wrmsr
	mov $MSR_SIMP, %ecx
	mov $(MESSAGE_PAGE | 1), %eax
	wrmsr

	mov $INPUT_PAGE, %rdi
	movl $CONNECTION_ID, 0(%rdi)
	movl $0, 4(%rdi)
	movl $MESSAGE_TYPE, 8(%rdi)
	movl $4, 12(%rdi)
	movl $PAYLOAD, 16(%rdi)

	mov $CALL_POST_MESSAGE, %rcx
	mov $INPUT_PAGE, %rdx
	xor %r8, %r8
	mov $HYPERCALL_PAGE, %rax
	call *%rax
	out %eax, $PORT_REPORT      /* the status in the low 16 bits */
	xor %al, %al
	out %al, $PORT_EXIT
