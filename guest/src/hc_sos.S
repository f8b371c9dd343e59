/* hc_sos.S: a Service VM guest that creates, sets up and starts a second VM
 * by hypercalls. It reports the result of HC_CREATE_VM, of HC_START_VM before
 * the I/O request buffer is set (refused), of HC_VM_SET_MEMORY_REGIONS,
 * HC_SET_VCPU_REGS, HC_SET_IOREQ_BUFFER and HC_START_VM, then waits for the
 * second VM — real-mode code in a page of this image that is mapped into it
 * at GPA 0 — to store 0x42 in that shared page, reports the byte and the new
 * VM ID, and exits 0. */
#include "abi.h"
#define HC_CREATE_VM            0x80000010
#define HC_START_VM             0x80000012
#define HC_SET_VCPU_REGS        0x80000016
#define HC_SET_IOREQ_BUFFER     0x80000030
#define HC_VM_SET_MEMORY_REGIONS 0x80000042
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
	mov $HC_VM_SET_MEMORY_REGIONS, %r8d
	mov $regions, %edi
	call hc
	mov $HC_SET_VCPU_REGS, %r8d
	mov %rbx, %rdi
	mov $vcpuregs, %esi
	call hc
	mov $HC_SET_IOREQ_BUFFER, %r8d
	mov %rbx, %rdi
	mov $IOREQ_BUF, %esi
	call hc
	mov $HC_START_VM, %r8d
	mov %rbx, %rdi
	call hc
	mov $2000000, %ecx
1:	cmpb $0, guest2_page
	jne 2f
	loop 1b
2:	movzbl guest2_page, %eax
	out %eax, $PORT_REPORT
	mov %ebx, %eax
	out %eax, $PORT_REPORT
	xor %eax, %eax
	out %eax, $PORT_EXIT
hc:	out %al, $PORT_HYPERCALL
	out %eax, $PORT_REPORT
	ret

	.balign 8
creation:                       /* struct acrn_vm_creation */
	.word 0, 0, 1, 0            /* vmid (out), reserved, vcpu_num, reserved */
	.fill 16, 1, 0              /* uuid */
	.quad 0, 0, 0               /* vm_flag, ioreq_buf, cpu_affinity */
regions:                        /* struct set_regions */
	.word 0, 0                  /* vmid (filled in), reserved */
	.long 0, 1, 0               /* reserved, mr_num, pad */
	.quad region0
region0:                        /* struct vm_memory_region: MR_ADD, RWX|WB */
	.long 0, 0x47
	.quad 0, guest2_page, 0x1000
vcpuregs:                       /* struct acrn_vcpu_regs: real mode at 0:entry */
	.word 0, 0, 0, 0            /* vcpu_id 0 (the BSP) */
	.fill 128, 1, 0             /* general registers */
	.word 0xffff; .quad 0; .word 0, 0, 0   /* gdt */
	.word 0xffff; .quad 0; .word 0, 0, 0   /* idt */
	.quad guest2_entry - guest2_page       /* rip */
	.quad 0                     /* cs_base */
	.quad 0x60000010            /* cr0 */
	.quad 0, 0, 0               /* cr4, cr3, efer */
	.quad 2                     /* rflags */
	.fill 32, 1, 0
	.long 0x9b, 0xffff          /* cs_ar, cs_limit */
	.fill 12, 1, 0
	.word 0, 0, 0, 0, 0, 0, 0, 0 /* cs, ss, ds, es, fs, gs, ldt, tr */
	.long 0

	.balign 4096
guest2_page:                    /* the second VM's GPA 0 */
	.byte 0
guest2_entry:
	.code16
	movb $0x42, 0
	mov $0x42, %al
	out %al, $PORT_EXIT
	.code64
