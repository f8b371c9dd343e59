/* devicemodel.S: 32-bit protected mode. The guest side of hv's test of an
 * out-of-process device model (examples/devicemodel, claiming ports
 * 0x500-0x50f and MMIO 0xd0000000-0xd0000fff, and stalling reads of 0x50c).
 * Reports, in order: port 0x504 as the model serves it; port 0x508 read back
 * after writing 0xfeedbeef there; MMIO 0xd0000010 read back after writing
 * 0xcafef00d there; MMIO 0xd0000040, never written. Then it reads port 0x50c,
 * on which the model stalls (and the test kills it), and reports the value
 * (all ones once the model is gone); reports 0x600d, an access to an
 * in-process device; reads port 0x504 again (unclaimed now: all ones),
 * reports it and exits 0. */
#include "abi.h"
#define DM_PORT  0x500
#define DM_MMIO  0xd0000000
	.code32
	.globl _start
_start:
	mov $DM_PORT+4, %dx
	in %dx, %eax
	out %eax, $PORT_REPORT
	mov $DM_PORT+8, %dx
	mov $0xfeedbeef, %eax
	out %eax, %dx
	in %dx, %eax
	out %eax, $PORT_REPORT

	movl $0xcafef00d, DM_MMIO+0x10
	mov DM_MMIO+0x10, %eax
	out %eax, $PORT_REPORT
	mov DM_MMIO+0x40, %eax
	out %eax, $PORT_REPORT

	mov $DM_PORT+0xc, %dx
	in %dx, %eax
	out %eax, $PORT_REPORT
	mov $0x600d, %eax
	out %eax, $PORT_REPORT
	mov $DM_PORT+4, %dx
	in %dx, %eax
	out %eax, $PORT_REPORT
	xor %al, %al
	out %al, $PORT_EXIT
