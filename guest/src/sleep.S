/* sleep.S: real mode. Suspends the machine to RAM through ACPI S3 and
 * reports what it finds when the platform wakes it at its waking vector.
 *
 * Before the sleep it marks RAM, puts its waking vector (wake, below) into
 * the FACS and, unless SI is non-zero, arms the RTC alarm for every second
 * with AIE and RTC_EN set in PM1_EN, so that the alarm wakes it; with SI set
 * the host must wake it. Then it writes SLP_TYP=1 (the DSDT's \_S3) with
 * SLP_EN to PM1_CNT, and anything after that write marks RAM as having run.
 *
 * At wake it reports: the FACS address it used, CS (0x1010: the vector's
 * segment), CR0, the mark (0x5ee9c0de: RAM kept), the after-sleep flag (0:
 * nothing ran past the sleep request), PM1_STS, PM1_EN and RTC register B;
 * then it exits with status 3. */
#include "abi.h"
#define FACS       0xe0080  /* package pc's FACS (acpiFACSAddr) */
#define FACS_WAKE  12       /* Firmware_Waking_Vector */
#define PM1_STS    0x600
#define PM1_EN     0x602
#define PM1_CNT    0x604
#define RTC_EN     0x400
#define SLEEP_S3   0x2400   /* SLP_EN | SLP_TYP 1 */
#define MARK       0x500    /* RAM set before the sleep */
#define AFTER      0x504    /* set by code past the sleep request only */
#define WAKE       (LOAD_ADDR + 0x100)

	.code16
	.globl _start
_start:
	xor %ax, %ax
	mov %ax, %ds
	movl $0x5ee9c0de, MARK
	movl $0, AFTER
	mov $(FACS >> 4), %ax
	mov %ax, %es
	movl $WAKE, %es:(FACS & 0xf) + FACS_WAKE
	test %si, %si
	jnz sleep
	mov $0x0c, %al          /* read register C: no flag left pending */
	out %al, $0x70
	in $0x71, %al
	mov $0x01, %bl          /* the three alarm registers: don't care */
1:	mov %bl, %al
	out %al, $0x70
	mov $0xc0, %al
	out %al, $0x71
	add $2, %bl
	cmp $0x07, %bl
	jne 1b
	mov $0x0b, %al          /* register B |= AIE */
	out %al, $0x70
	in $0x71, %al
	or $0x20, %al
	mov %al, %ah
	mov $0x0b, %al
	out %al, $0x70
	mov %ah, %al
	out %al, $0x71
	mov $RTC_EN, %ax
	mov $PM1_EN, %dx
	out %ax, %dx
sleep:
	mov $SLEEP_S3, %ax
	mov $PM1_CNT, %dx
	out %ax, %dx
2:	movl $1, AFTER
	jmp 2b

	.org 0x100
wake:                           /* entered at CS = WAKE >> 4, IP = 0 */
	mov $FACS, %eax
	out %eax, $PORT_REPORT
	xor %eax, %eax
	mov %cs, %ax
	out %eax, $PORT_REPORT
	mov %cr0, %eax
	out %eax, $PORT_REPORT
	xor %ax, %ax
	mov %ax, %ds
	mov MARK, %eax
	out %eax, $PORT_REPORT
	mov AFTER, %eax
	out %eax, $PORT_REPORT
	xor %eax, %eax
	mov $PM1_STS, %dx
	in %dx, %ax
	out %eax, $PORT_REPORT
	mov $PM1_EN, %dx
	in %dx, %ax
	out %eax, $PORT_REPORT
	xor %eax, %eax
	mov $0x0b, %al
	out %al, $0x70
	in $0x71, %al
	out %eax, $PORT_REPORT
	mov $3, %al
	out %al, $PORT_EXIT
3:	hlt
	jmp 3b
