/* hc_upcall.S: a Service VM guest that serves a User VM's port I/O through
 * its request buffer and the upcall (docs/abi.md, Service VM upcalls).
 * Starts in long mode at ring 0 with RSI = 0 (upcalls use 0xF3) or a vector
 * it first sets with HC_SET_CALLBACK_VECTOR, and RDX = the mode (below). It
 * installs an interrupt gate for the vector, enables its LAPIC, creates a
 * 1-vCPU User VM, maps a page of this image at the User VM's GPA 0, points
 * its BSP at real-mode code there, makes IOREQ_BUF its request buffer and
 * starts it, reporting each hypercall's result. Then it waits (STI; HLT) for
 * upcalls. The handler takes every PENDING slot: it reports direction, port,
 * size and value (a read is answered 0xC0DE0000 | port), sets the slot
 * COMPLETE, calls HC_NOTIFY_REQUEST_FINISH and reports its result; then EOI,
 * IRETQ. After the User VM's second write it exits 0. The User VM reads a
 * dword from port 0x5a0, waits until `user_go` is set, reads a word from
 * 0x5a2, writes the word to 0x5a8 and the dword to 0x5ac, and exits with the
 * dword as its status.
 *
 * Modes (RDX):
 *   0  as above.
 *   1  completion polling: the User VM is created with
 *      GUEST_FLAG_IO_COMPLETION_POLLING, and the handler, as Linux's HSM,
 *      makes no HC_NOTIFY_REQUEST_FINISH: it reports the slot's
 *      completion_polling where mode 0 reports the call's result.
 *   2  pause and destroy: at the first request the handler, instead of
 *      answering, makes HC_PAUSE_VM and reports its result, reports the
 *      slot's state and port (the request still waits: PENDING, 0x5a0),
 *      makes HC_DESTROY_VM, reports its result and exits 0.
 *   3  late completion: the handler claims the first request (PROCESSING)
 *      and leaves it; the main loop waits until ember takes the slot back
 *      (FREE, after its time-out; the User VM meanwhile waits for user_go),
 *      then completes it anyway and reports HC_NOTIFY_REQUEST_FINISH's
 *      result, and sets user_go; the rest is mode 0. */
#include "abi.h"
#include "hypercall.h"
#include "uservm.inc"
#include "idle.inc"
#define IOREQ_BUF   0x100000
#define IDT         0x1000
#define LAPIC_EOI   0xfee000b0
#define LAPIC_SVR   0xfee000f0
#define STATE       136         /* acrn_io_request.processed */
#define PENDING     0
#define COMPLETE    1
#define PROCESSING  2
#define FREE        3
	.code64
	.globl _start
_start:
	mov %edx, mode
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
	cmpl $1, mode
	jne 2f
	movq $4, creation+24        /* vm_flag: GUEST_FLAG_IO_COMPLETION_POLLING */
2:	cmpl $3, mode
	jne 3f
	movl $0, user_go            /* the User VM waits after its first read */
3:	mov $HC_CREATE_VM, %r8d
	mov $creation, %edi
	call hc
	movzwl creation, %ebx       /* the User VM's ID */
	mov %bx, regions
	START_USER_VM IOREQ_BUF
wait:
	cmpl $1, late
	je complete_late
	cli
	cmpl $2, writes
	jae done
	sti
halt:
	hlt                         /* STI's shadow: no upcall slips in before HLT */
	jmp wait
complete_late:                  /* mode 3: ember takes the slot back, then we answer */
	cmpl $FREE, IOREQ_BUF+STATE
	jne complete_late
	movl $0xdead, IOREQ_BUF+88
	movl $COMPLETE, IOREQ_BUF+STATE
	mov $HC_NOTIFY_REQUEST_FINISH, %r8d
	movzwl creation, %edi
	xor %esi, %esi
	call hc
	movl $2, late
	movl $1, user_go
	jmp wait
done:
	xor %eax, %eax
	out %eax, $PORT_EXIT
hc:	out %al, $PORT_HYPERCALL
	out %eax, $PORT_REPORT
	ret

upcall:                         /* rbx: slot, ebp: vCPU; main code keeps nothing in registers */
	PAST_HLT64 halt             /* idle.inc: the lab may deliver on the HLT */
	mov $IOREQ_BUF, %ebx
	xor %ebp, %ebp
2:	cmpl $PENDING, STATE(%rbx)
	jne 4f
	mov 64(%rbx), %eax          /* reqs.pio_request.direction */
	out %eax, $PORT_REPORT
	mov 72(%rbx), %edx          /* address */
	mov %edx, %eax
	out %eax, $PORT_REPORT
	mov 80(%rbx), %eax          /* size */
	out %eax, $PORT_REPORT
	cmpl $2, mode
	je pause_destroy
	cmpl $3, mode
	jne 6f
	cmpl $0, late
	jne 6f
	movl $1, late               /* mode 3: claim the first request and leave it */
	movl $PROCESSING, STATE(%rbx)
	jmp 4f
6:	cmpl $1, 64(%rbx)           /* a write? */
	jne 3f
	incl writes
	jmp 5f
3:	or $0xc0de0000, %edx
	mov %edx, 88(%rbx)          /* a read's value */
5:	mov 88(%rbx), %eax
	out %eax, $PORT_REPORT
	mov 4(%rbx), %ecx           /* completion_polling, before the slot is given back */
	movl $COMPLETE, STATE(%rbx) /* the last store */
	cmpl $1, mode
	jne 7f
	mov %ecx, %eax              /* mode 1: no notify; report completion_polling */
	out %eax, $PORT_REPORT
	jmp 4f
7:	mov $HC_NOTIFY_REQUEST_FINISH, %r8d
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

pause_destroy:                  /* mode 2, from the handler on vCPU0 */
	mov $HC_PAUSE_VM, %r8d
	movzwl creation, %edi
	call hc
	mov STATE(%rbx), %eax
	out %eax, $PORT_REPORT
	mov 72(%rbx), %eax
	out %eax, $PORT_REPORT
	mov $HC_DESTROY_VM, %r8d
	movzwl creation, %edi
	call hc
	xor %eax, %eax
	out %eax, $PORT_EXIT

	.balign 8
idtr:	.word 256*16 - 1
	.quad IDT
writes:	.long 0
mode:	.long 0
late:	.long 0                 /* mode 3: 1 while the first request is left, 2 after */
	USER_VM_STRUCTS user_page, user_entry

	.balign 4096
user_page:                      /* the User VM's GPA 0 */
user_entry:
	.code16
	mov $0x5a0, %dx
	in %dx, %eax
	mov %eax, %ebx
1:	cmpl $0, user_go - user_page
	je 1b
	mov $0x5a2, %dx
	in %dx, %ax
	mov $0x5a8, %dx
	out %ax, %dx
	mov %ebx, %eax
	mov $0x5ac, %dx
	out %eax, %dx
	out %eax, $PORT_EXIT
	.balign 4
user_go:
	.long 1
	.code64
