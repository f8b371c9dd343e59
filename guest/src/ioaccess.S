/* ioaccess.S: 32-bit protected mode. Makes one access of every kind the I/O
 * request path carries, so a test can check each reaches its client intact:
 * port writes of 1, 2 and 4 bytes and a 4-byte port read; MMIO writes of 4, 2
 * and 1 bytes and a 4-byte MMIO read; a PCI configuration read and write of
 * 00:03.1 register 0x10 through 0xCF8/0xCFC. Reports the three values read,
 * then exits 0. */
#include "abi.h"
#define PIO_BASE  0x500
#define MMIO_BASE 0xd0000000
	.code32
	.globl _start
_start:
	mov $PIO_BASE, %dx
	mov $0x5a, %al
	out %al, %dx
	add $2, %dx
	mov $0x1234, %ax
	out %ax, %dx
	add $2, %dx
	mov $0xdeadbeef, %eax
	out %eax, %dx
	add $4, %dx
	in %dx, %eax
	out %eax, $PORT_REPORT

	movl $0xcafef00d, MMIO_BASE
	movw $0xbeef, MMIO_BASE+0x10
	movb $0x7f, MMIO_BASE+0x20
	mov MMIO_BASE+8, %eax
	out %eax, $PORT_REPORT

	mov $0xcf8, %dx
	mov $(0x80000000 | (3 << 11) | (1 << 8) | 0x10), %eax
	out %eax, %dx
	mov $0xcfc, %dx
	in %dx, %eax
	out %eax, $PORT_REPORT
	mov $0x12345678, %eax
	out %eax, %dx
	xor %al, %al
	out %al, $PORT_EXIT
