/* bench_hc.S: the hypercall round-trip guest. Long mode, ring 0, in a VM
 * created as ACRN's Service VM. Makes RCX hypercalls HC_GET_API_VERSION
 * (R8 = the ID, RDI = where the hc_api_version goes; port PORT_HYPERCALL
 * traps each one), 16 per loop turn, then writes 0 to PORT_EXIT. RCX is set
 * by the harness and must be a multiple of 16. */
#include "abi.h"
#include "hypercall.h"
#define RESULT 0x20000
	.code64
	.globl _start
_start:
	shr $4, %rcx
	jz 2f
	mov $HC_GET_API_VERSION, %r8d
	mov $RESULT, %edi
1:
	.rept 16
	out %al, $PORT_HYPERCALL
	.endr
	dec %rcx
	jnz 1b
2:
	xor %al, %al
	out %al, $PORT_EXIT
