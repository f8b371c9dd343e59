/* testdev.S: 32-bit protected mode, on a PC machine with QEMU's test
 * devices (pc.Config.TestDevices). Uses pc-testdev as kvm-unit-tests does
 * and reports:
 *   1. after a 4-byte write of 0x12345678 to the register at 0xe0, its
 *      second byte read through the byte-wise ports at 0xe9: 0x56;
 *   2. the register after a 2-byte write of 0xabcd at 0xea: 0xabcd5678;
 *   3. a word written to the iomem window at 0xff000010 and read back:
 *      0xcafef00d;
 *   4. the in-kernel PIC's IRR bit 3 after raising ISA line 3 through port
 *      0x2003: 8 (the line is lowered again after);
 *   5. a word written to and read from a page just flushed through port
 *      0xe4: 0x5a5a5a5a;
 * then writes 0x14 to isa-debug-exit at 0xf4: the run ends with status
 * (0x14 << 1) | 1 = 0x29. */
#include "abi.h"
#define TESTDEV_DATA  0xe0
#define TESTDEV_FLUSH 0xe4
#define TESTDEV_BYTES 0xe8
#define TESTDEV_IRQ   0x2000
#define TESTDEV_IOMEM 0xff000000
#define DEBUG_EXIT    0xf4
#define PIC_MASTER    0x20
#define PAGE          0x30000
	.code32
	.globl _start
_start:
	mov $0x12345678, %eax       /* 1 */
	out %eax, $TESTDEV_DATA
	in $TESTDEV_BYTES + 1, %al
	movzbl %al, %eax
	out %eax, $PORT_REPORT
	mov $0xabcd, %ax            /* 2 */
	out %ax, $TESTDEV_BYTES + 2
	in $TESTDEV_DATA, %eax
	out %eax, $PORT_REPORT

	movl $0xcafef00d, TESTDEV_IOMEM + 0x10   /* 3 */
	mov TESTDEV_IOMEM + 0x10, %eax
	out %eax, $PORT_REPORT

	mov $TESTDEV_IRQ + 3, %dx   /* 4 */
	mov $1, %al
	out %al, %dx
	mov $0x0a, %al              /* OCW3: read the IRR */
	out %al, $PIC_MASTER
	in $PIC_MASTER, %al
	and $0x08, %eax
	out %eax, $PORT_REPORT
	mov $TESTDEV_IRQ + 3, %dx
	xor %al, %al
	out %al, %dx

	mov $PAGE + 0x123, %eax     /* 5 */
	out %eax, $TESTDEV_FLUSH
	movl $0x5a5a5a5a, PAGE
	mov PAGE, %eax
	out %eax, $PORT_REPORT

	mov $0x14, %eax
	out %eax, $DEBUG_EXIT
	hlt
