/* second.S: a second, different image for restart tests. Starts in long mode
 * at ring 0, reports 0x5ec0d and then RSI (the params vmm.Guest.Start passes),
 * and exits with status 2. */
#include "abi.h"
	.code64
	.globl _start
_start:
	mov $0x5ec0d, %eax
	out %eax, $PORT_REPORT
	mov %esi, %eax
	out %eax, $PORT_REPORT
	mov $2, %eax
	out %eax, $PORT_EXIT
