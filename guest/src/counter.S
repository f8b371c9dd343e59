/* counter.S: counts forever at ring 3, where code runs at native speed.
 * Starts in long mode at ring 0, drops to ring 3 and increments the 64-bit
 * counter at COUNTER_ADDR (0x20000) in a tight loop, with no I/O: the host
 * reads the counter from guest memory to see whether the guest runs. */
#include "abi.h"
#include "trap.inc"
#define COUNTER_ADDR 0x20000
	.code64
	.globl _start
_start:
	SETUP_IDT
	ENTER_RING3 user, 0x7000
user:
	incq COUNTER_ADDR
	jmp user
	TRAP_HANDLERS
