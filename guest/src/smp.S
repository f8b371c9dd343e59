/* smp.S: 32-bit protected mode on the BSP of a 2-vCPU VM. Enables its local
 * APIC and starts the AP (APIC id 1) with INIT and a startup IPI whose vector
 * points at ap_start (0x11000). The AP, in real mode, reads its APIC id from
 * CPUID and stores 0x100 | id at AP_FLAG; the BSP waits for it, reports it
 * and exits with status 1 (one AP came up). */
#include "abi.h"
#define LAPIC     0xfee00000
#define AP_FLAG   0x3000
#define AP_START  0x11000
	.code32
	.globl _start
_start:
	movl $0x1ff, LAPIC + 0xf0       /* SVR: APIC enabled, spurious vector 0xff */
	movl $(1 << 24), LAPIC + 0x310  /* ICR high: destination APIC id 1 */
	movl $0x4500, LAPIC + 0x300     /* ICR low: INIT, assert */
	movl $(1 << 24), LAPIC + 0x310
	movl $(0x4600 | (AP_START >> 12)), LAPIC + 0x300  /* startup IPI */
1:	mov AP_FLAG, %eax
	test %eax, %eax
	jz 1b
	out %eax, $PORT_REPORT
	mov $1, %al
	out %al, $PORT_EXIT

	.org AP_START - LOAD_ADDR
	.code16
ap_start:
	mov $1, %eax
	cpuid
	shr $24, %ebx                   /* initial APIC id */
	or $0x100, %ebx
	xor %ax, %ax
	mov %ax, %ds
	mov %ebx, AP_FLAG
2:	cli
	hlt
	jmp 2b
