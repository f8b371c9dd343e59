/* hc_upcall.S: a Service VM guest that serves a User VM's port I/O through
 * its request buffer and the upcall (docs/abi.md, Service VM upcalls).
 * Starts in long mode at ring 0 with RSI = 0 (upcalls use 0xF3) or a vector
 * it first sets with HC_SET_CALLBACK_VECTOR. It installs an interrupt gate
 * for the vector, enables its LAPIC, creates a 1-vCPU User VM, maps a page
 * of this image at the User VM's GPA 0, points its BSP at real-mode code
 * there, makes IOREQ_BUF its request buffer and starts it, reporting each
 * hypercall's result. Then it waits (STI; HLT) for upcalls. The handler
 * takes every PENDING slot: it reports direction, port, size and value
 * (a read is answered 0xC0DE0000 | port), sets the slot COMPLETE, calls
 * HC_NOTIFY_REQUEST_FINISH and reports its result; then EOI, IRETQ. After
 * the User VM's second write it exits 0. The User VM reads a dword from
 * port 0x5a0 and a word from 0x5a2, writes the word to 0x5a8 and the dword
 * to 0x5ac, and exits with the dword as its status. */
#include "abi.h"
#include "hypercall.h"
#include "uservm.inc"
#define IOREQ_BUF   0x100000
#define IDT         0x1000
#define LAPIC_EOI   0xfee000b0
#define LAPIC_SVR   0xfee000f0
	.code64
	.globl _start
_start:
	mov $0xf3, %eax
	test %esi, %esi
	jz 1f
	mov $HC_SET_CALLBACK_VECTOR, %r8d
	mov %esi, %edi
	call hc
	mov %esi, %eax
1:	shl $4, %eax                /* the vector's gate */
	lea IDT(%rax), %rdi
	mov $upcall, %ecx
	mov %cx, (%rdi)             /* offset 15:0 */
	movw $SEL_CODE, 2(%rdi)
	movw $0x8e00, 4(%rdi)       /* present, DPL 0, 64-bit interrupt gate */
	shr $16, %ecx
	mov %cx, 6(%rdi)            /* offset 31:16; 63:32 stay 0 */
	lidt idtr
	mov $LAPIC_SVR, %eax
	movl $0x1ff, (%rax)         /* APIC software enable, spurious vector 0xff */
	mov $HC_CREATE_VM, %r8d
	mov $creation, %edi
	call hc
	movzwl creation, %ebx       /* the User VM's ID */
	mov %bx, regions
	START_USER_VM IOREQ_BUF
wait:
	cli
	cmpl $2, writes
	jae done
	sti
	hlt                         /* STI's shadow: no upcall slips in before HLT */
	jmp wait
done:
	xor %eax, %eax
	out %eax, $PORT_EXIT
hc:	out %al, $PORT_HYPERCALL
	out %eax, $PORT_REPORT
	ret

upcall:                         /* rbx: slot, ebp: vCPU; main code keeps nothing in registers */
	mov $IOREQ_BUF, %ebx
	xor %ebp, %ebp
2:	cmpl $0, 136(%rbx)          /* PENDING? */
	jne 4f
	mov 64(%rbx), %eax          /* reqs.pio_request.direction */
	out %eax, $PORT_REPORT
	mov 72(%rbx), %edx          /* address */
	mov %edx, %eax
	out %eax, $PORT_REPORT
	mov 80(%rbx), %eax          /* size */
	out %eax, $PORT_REPORT
	cmpl $1, 64(%rbx)           /* a write? */
	jne 3f
	incl writes
	jmp 5f
3:	or $0xc0de0000, %edx
	mov %edx, 88(%rbx)          /* a read's value */
5:	mov 88(%rbx), %eax
	out %eax, $PORT_REPORT
	movl $1, 136(%rbx)          /* COMPLETE: the last store */
	mov $HC_NOTIFY_REQUEST_FINISH, %r8d
	movzwl creation, %edi
	mov %ebp, %esi
	call hc
4:	add $256, %ebx
	inc %ebp
	cmp $16, %ebp
	jb 2b
	mov $LAPIC_EOI, %eax
	movl $0, (%rax)
	iretq

	.balign 8
idtr:	.word 256*16 - 1
	.quad IDT
writes:	.long 0
	USER_VM_STRUCTS user_page, user_entry

	.balign 4096
user_page:                      /* the User VM's GPA 0 */
user_entry:
	.code16
	mov $0x5a0, %dx
	in %dx, %eax
	mov %eax, %ebx
	mov $0x5a2, %dx
	in %dx, %ax
	mov $0x5a8, %dx
	out %ax, %dx
	mov %ebx, %eax
	mov $0x5ac, %dx
	out %eax, %dx
	out %eax, $PORT_EXIT
	.code64
