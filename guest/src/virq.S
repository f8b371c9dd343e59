/* virq.S: takes interrupts from an IOAPIC pin and acknowledges each one.
 * Starts in long mode at ring 0 with RSI = pin | count << 8 (vmm.Guest.Start's
 * params). It enables its LAPIC with LINT0 masked (KVM connects the 8259 PIC
 * there as ExtINT, and pins below 16 also reach the PIC), routes the pin
 * through the IOAPIC to VECTOR, level-triggered, to APIC id 0, reports 0
 * ("ready"), and waits with STI; HLT. Each interrupt reports how many it has
 * taken so far and EOIs the LAPIC, which is what makes KVM signal the irqfd's
 * resample eventfd. After count interrupts it exits with status 0x56. Any
 * exception exits with 0xff (trap.inc). */
#include "abi.h"
#include "trap.inc"
#include "idle.inc"
#define VECTOR    0x40
#define IOAPIC    0xfec00000   /* IOREGSEL at +0, IOWIN at +0x10 */
#define LAPIC_EOI 0xfee000b0
#define LAPIC_SVR 0xfee000f0
#define LAPIC_LVT0 0xfee00350
	.code64
	.globl _start
_start:
	SETUP_IDT
	mov $IDT_ADDR + VECTOR*16, %edi
	mov $irq, %eax
	call set_gate
	mov %esi, %ecx
	shr $8, %ecx                /* ecx: interrupts to take */
	movzbl %sil, %esi
	lea 0x10(%rsi,%rsi), %esi   /* redirection entry 0x10 + 2*pin, low half */
	mov $LAPIC_SVR, %ebx
	movl $0x1ff, (%rbx)         /* APIC software enable, spurious vector 0xff */
	movl $1 << 16, LAPIC_LVT0 - LAPIC_SVR(%rbx)  /* mask LINT0: KVM wires the PIC there */
	mov $IOAPIC, %ebx
	lea 1(%rsi), %eax
	mov %eax, (%rbx)
	movl $0, 0x10(%rbx)         /* high half: destination APIC id 0 */
	mov %esi, (%rbx)
	movl $VECTOR | 1 << 15, 0x10(%rbx)  /* fixed, physical, active high, level, unmasked */
	xor %eax, %eax
	out %eax, $PORT_REPORT      /* 0: ready */
	xor %ebp, %ebp              /* interrupts taken */
wait:
	cli
	cmp %ecx, %ebp
	jae done
	sti
halt:
	hlt                         /* STI's shadow: no interrupt slips in before HLT */
	jmp wait
done:
	mov $0x56, %eax
	out %eax, $PORT_EXIT
irq:
	PAST_HLT64 halt             /* idle.inc: the lab may deliver on the HLT */
	inc %ebp
	mov %ebp, %eax
	out %eax, $PORT_REPORT
	mov $LAPIC_EOI, %eax
	movl $0, (%rax)
	iretq
	TRAP_HANDLERS
