/* ring3.S: starts in long mode at ring 0, installs an IDT, drops to ring 3 with
 * IRETQ, and from there makes two system calls (trap.inc): a report of the
 * value 0x3 and of the caller's CS, then an exit with status 3. */
#include "abi.h"
#include "trap.inc"
	.code64
	.globl _start
_start:
	SETUP_IDT
	ENTER_RING3 user, 0x7000
user:
	mov $3, %edi
	mov $SYS_REPORT, %eax
	ud2                         /* reports 3, then SEL_USER_CODE64: CPL 3 */
	mov $3, %edi
	mov $SYS_EXIT, %eax
	ud2
	TRAP_HANDLERS
