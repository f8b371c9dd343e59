/*
 * multiboot.S: a multiboot (v1) kernel, not a flat image. It is linked at
 * 1 MiB (the Makefile's rule for it), carries the header's address fields (the
 * "a.out kludge") and is loaded by package multiboot, which enters it in 32-bit
 * protected mode with EAX = 0x2BADB002 and EBX = the multiboot information.
 *
 * It prints what that information holds on the console port, one line each:
 *
 *	magic=<EAX> flags=<flags>
 *	mem_lower=<KiB> mem_upper=<KiB>
 *	cmdline=<the command line>
 *	loader=<boot_loader_name>
 *	mods=<count>
 *	mod=<start>-<end> first=<its first 4 bytes, little-endian> string=<its string>   (per module)
 *	mmap=<base>+<length> type=<type>                                              (per entry)
 *	bss=<the first 4 bytes of its bss, which the loader must have zeroed>
 *
 * numbers as hex, skipping the lines whose information flag is clear, and
 * exits 0, or 1 if EAX did not hold the boot magic.
 */
#include "abi.h"

#define MB_HEADER_MAGIC 0x1BADB002
#define MB_BOOT_MAGIC   0x2BADB002
/* Page-aligned modules (bit 0), memory information (1), address fields (16). */
#define MB_FLAGS        0x00010003
#define STACK_SIZE      0x1000

/* Flags of the multiboot information, and its fields' offsets. */
#define MBI_MEM         (1 << 0)
#define MBI_CMDLINE     (1 << 2)
#define MBI_MODS        (1 << 3)
#define MBI_MMAP        (1 << 6)
#define MBI_LOADER      (1 << 9)

	.code32
	.text
	.globl _start
_start:
header:
	.long MB_HEADER_MAGIC
	.long MB_FLAGS
	.long -(MB_HEADER_MAGIC + MB_FLAGS)
	.long header            /* header_addr */
	.long _start            /* load_addr */
	.long load_end          /* load_end_addr */
	.long bss_end           /* bss_end_addr */
	.long entry             /* entry_addr */

/* SAY prints the string at label. */
.macro SAY label
	mov $\label, %ecx
	call puts
.endm

entry:
	mov $bss_end, %esp      /* the stack is the top of the bss */
	mov %eax, %ebp          /* the boot magic, checked at the end */
	mov %ebx, %edi          /* the multiboot information */

	SAY s_magic
	mov %ebp, %eax
	call puthex
	SAY s_flags
	mov (%edi), %eax
	call puthex
	call newline

	testl $MBI_MEM, (%edi)
	jz 1f
	SAY s_mem_lower
	mov 4(%edi), %eax
	call puthex
	SAY s_mem_upper
	mov 8(%edi), %eax
	call puthex
	call newline
1:
	testl $MBI_CMDLINE, (%edi)
	jz 1f
	SAY s_cmdline
	mov 16(%edi), %ecx
	call puts
	call newline
1:
	testl $MBI_LOADER, (%edi)
	jz 1f
	SAY s_loader
	mov 64(%edi), %ecx
	call puts
	call newline
1:
	testl $MBI_MODS, (%edi)
	jz mmap
	SAY s_mods
	mov 20(%edi), %eax
	call puthex
	call newline
	mov 24(%edi), %esi      /* the module list: start, end, string, reserved */
	mov 20(%edi), %ebx      /* modules left */
2:	test %ebx, %ebx
	jz mmap
	SAY s_mod
	mov (%esi), %eax
	call puthex
	mov $'-', %al
	out %al, $PORT_CONSOLE
	mov 4(%esi), %eax
	call puthex
	SAY s_first
	mov (%esi), %eax
	mov (%eax), %eax
	call puthex
	SAY s_string
	mov 8(%esi), %ecx
	call puts
	call newline
	add $16, %esi
	dec %ebx
	jmp 2b

mmap:
	testl $MBI_MMAP, (%edi)
	jz bss
	mov 48(%edi), %esi      /* mmap_addr: size, base (8), length (8), type */
	mov 44(%edi), %ebx      /* mmap_length */
	add %esi, %ebx          /* the end of the map */
3:	cmp %ebx, %esi
	jae bss
	SAY s_mmap
	mov 8(%esi), %eax
	call puthex
	mov 4(%esi), %eax
	call puthex
	mov $'+', %al
	out %al, $PORT_CONSOLE
	mov 16(%esi), %eax
	call puthex
	mov 12(%esi), %eax
	call puthex
	SAY s_type
	mov 20(%esi), %eax
	call puthex
	call newline
	add (%esi), %esi        /* size does not count itself */
	add $4, %esi
	jmp 3b

bss:
	SAY s_bss
	mov bss_start, %eax
	call puthex
	call newline
	xor %eax, %eax
	cmp $MB_BOOT_MAGIC, %ebp
	setne %al
	out %al, $PORT_EXIT
	hlt

/* puts prints the NUL-terminated string at ECX. Clobbers EAX, ECX. */
puts:
	movb (%ecx), %al
	test %al, %al
	jz 1f
	out %al, $PORT_CONSOLE
	inc %ecx
	jmp puts
1:	ret

/* puthex prints EAX as eight hex digits. Clobbers EAX, ECX, EDX. */
puthex:
	mov %eax, %edx
	mov $8, %ecx
1:	rol $4, %edx
	mov %edx, %eax
	and $0xf, %eax
	movb hexdigits(%eax), %al
	out %al, $PORT_CONSOLE
	loop 1b
	ret

/* newline prints a line feed. Clobbers EAX. */
newline:
	mov $'\n', %al
	out %al, $PORT_CONSOLE
	ret

hexdigits:	.ascii "0123456789abcdef"
s_magic:	.asciz "magic="
s_flags:	.asciz " flags="
s_mem_lower:	.asciz "mem_lower="
s_mem_upper:	.asciz " mem_upper="
s_cmdline:	.asciz "cmdline="
s_loader:	.asciz "loader="
s_mods:		.asciz "mods="
s_mod:		.asciz "mod="
s_first:	.asciz " first="
s_string:	.asciz " string="
s_mmap:		.asciz "mmap="
s_type:		.asciz " type="
s_bss:		.asciz "bss="

	.balign 4
load_end:                       /* the file ends here; the bss follows */
	.set bss_start, load_end
	.set bss_end, load_end + STACK_SIZE
