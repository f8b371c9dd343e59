/* reset.S: real mode. Pulls the CPU reset line through the i8042 (command
 * 0xFE to port 0x64), as Linux's keyboard reboot does, then spins. */
#include "abi.h"
	.code16
	.globl _start
_start:
	mov $0xfe, %al
	out %al, $0x64
1:	jmp 1b
