/* demo.S: the guest `ember run` boots when given nothing else.
 * It starts in 64-bit long mode at ring 0, greets the console, drops to ring 3
 * where it counts primes by trial division (ring-3 code runs at native speed
 * even where KVM emulates ring 0), prints the count through system calls
 * (trap.inc), and exits with status 0. */
#include "abi.h"
#include "trap.inc"
#define LIMIT 20000
	.code64
	.globl _start
_start:
	lea hello(%rip), %rsi
	mov $hello_len, %ecx
	mov $PORT_CONSOLE, %dx
	rep outsb                   /* one exit for the whole banner */
	SETUP_IDT
	ENTER_RING3 user, 0x7000

user:	/* ring 3: rbx counts primes in [2, LIMIT) */
	xor %ebx, %ebx
	mov $2, %esi                /* candidate */
next:
	mov $2, %edi                /* divisor */
try:
	mov %edi, %eax
	imul %edi, %eax
	cmp %esi, %eax
	ja prime                    /* divisor^2 > candidate */
	mov %esi, %eax
	xor %edx, %edx
	div %edi
	test %edx, %edx
	jz composite
	inc %edi
	jmp try
prime:
	inc %ebx
composite:
	inc %esi
	cmp $LIMIT, %esi
	jb next

	/* decimal digits of rbx, written backwards before numend */
	lea numend(%rip), %rdi
	mov %rbx, %rax
	mov $10, %ecx
digit:
	xor %edx, %edx
	div %rcx
	add $'0', %dl
	dec %rdi
	mov %dl, (%rdi)
	test %rax, %rax
	jnz digit
	push %rdi
	lea msg1(%rip), %rsi
	mov $msg1_len, %edx
	mov $SYS_WRITE, %eax
	ud2
	pop %rsi
	lea numend(%rip), %rdx
	sub %rsi, %rdx
	mov $SYS_WRITE, %eax
	ud2
	lea msg2(%rip), %rsi
	mov $msg2_len, %edx
	mov $SYS_WRITE, %eax
	ud2
	xor %edi, %edi
	mov $SYS_EXIT, %eax
	ud2

	TRAP_HANDLERS

hello:	.ascii "Hello from ember's demo guest: 64-bit long mode, ring 0.\n"
	.set hello_len, . - hello
msg1:	.ascii "Dropped to ring 3 and counted "
	.set msg1_len, . - msg1
msg2:	.ascii " primes below 20000.\nGoodbye.\n"
	.set msg2_len, . - msg2
numbuf:	.space 20
numend:
