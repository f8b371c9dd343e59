/* fwcfg.S: 32-bit protected mode, on a PC machine given a kernel command
 * line through fw_cfg (pc.Config.FWCfgKernel). Reads QEMU's fw_cfg through
 * the port interface and the DMA interface and reports what it read:
 *   1. the signature through the data register (rep insb): 0x554d4551, "QEMU";
 *   2. the ID through the data register: 3 (the ports and DMA);
 *   3. the DMA address register, high and low half: "QEMU", " CFG"
 *      (0x554d4551, 0x47464320);
 *   4. the command line's size through the data register (its NUL
 *      included), then the control word after reading the command line by
 *      DMA (0), which it writes to the console, NUL left out;
 *   5. the signature's last two bytes by DMA, a select with a skip of 2
 *      and then a read of 2: "MU" (0x554d);
 *   6. the control word after a DMA write to the signature: 1, refused;
 *   7. the control word after a DMA read into a buffer that is not RAM: 1;
 *   8. the file directory's count, read by DMA (big endian);
 * and exits 0. */
#include "abi.h"
#define FW_CFG_SEL       0x510
#define FW_CFG_DATA      0x511
#define FW_CFG_DMA_HI    0x514
#define FW_CFG_DMA_LO    0x518
#define KEY_SIGNATURE    0x00
#define KEY_ID           0x01
#define KEY_CMDLINE_SIZE 0x14
#define KEY_CMDLINE_DATA 0x15
#define KEY_FILE_DIR     0x19
#define DMA_READ         0x02
#define DMA_SKIP         0x04
#define DMA_SELECT       0x08
#define DMA_WRITE        0x10
#define ACCESS           0x30000    /* the FWCfgDmaAccess structure */
#define BUF              0x31000    /* where data is read to */
#define NOT_RAM          0x7ffff000
#define MAX_CMDLINE      256
	.code32
	.globl _start
_start:
	mov $KEY_SIGNATURE, %eax    /* 1 */
	mov $4, %ecx
	call port_read
	out %eax, $PORT_REPORT
	mov $KEY_ID, %eax           /* 2 */
	mov $4, %ecx
	call port_read
	out %eax, $PORT_REPORT

	mov $FW_CFG_DMA_HI, %dx     /* 3 */
	in %dx, %eax
	out %eax, $PORT_REPORT
	mov $FW_CFG_DMA_LO, %dx
	in %dx, %eax
	out %eax, $PORT_REPORT

	mov $KEY_CMDLINE_SIZE, %eax /* 4 */
	mov $4, %ecx
	call port_read
	out %eax, $PORT_REPORT
	mov %eax, %ecx
	jecxz 1f                    /* no command line: nothing to print */
	cmp $MAX_CMDLINE, %ecx
	ja 1f
	push %ecx
	mov $(KEY_CMDLINE_DATA << 16 | DMA_SELECT | DMA_READ), %eax
	mov $BUF, %edi
	call dma
	out %eax, $PORT_REPORT
	pop %ecx
	dec %ecx
	mov $BUF, %esi
	mov $PORT_CONSOLE, %dx
	rep outsb
1:
	mov $(KEY_SIGNATURE << 16 | DMA_SELECT | DMA_SKIP), %eax   /* 5 */
	mov $2, %ecx
	mov $BUF, %edi
	call dma
	mov $DMA_READ, %eax
	mov $2, %ecx
	mov $BUF, %edi
	call dma
	movzwl BUF, %eax
	out %eax, $PORT_REPORT

	mov $(KEY_SIGNATURE << 16 | DMA_SELECT | DMA_WRITE), %eax  /* 6 */
	mov $4, %ecx
	mov $BUF, %edi
	call dma
	out %eax, $PORT_REPORT

	mov $(KEY_SIGNATURE << 16 | DMA_SELECT | DMA_READ), %eax   /* 7 */
	mov $4, %ecx
	mov $NOT_RAM, %edi
	call dma
	out %eax, $PORT_REPORT

	mov $(KEY_FILE_DIR << 16 | DMA_SELECT | DMA_READ), %eax    /* 8 */
	mov $4, %ecx
	mov $BUF, %edi
	call dma
	mov BUF, %eax
	bswap %eax
	out %eax, $PORT_REPORT

	xor %al, %al
	out %al, $PORT_EXIT

/* port_read: selects key AX and reads ECX (at most 4) bytes of it through
 * the data register into BUF; returns those four bytes in EAX. */
port_read:
	mov $FW_CFG_SEL, %dx
	out %ax, %dx
	movl $0, BUF
	mov $BUF, %edi
	mov $FW_CFG_DATA, %dx
	rep insb
	mov BUF, %eax
	ret

/* dma: runs the DMA access of control EAX, length ECX and (32-bit) address
 * EDI, all native byte order, and returns the control word the device left
 * in EAX, native byte order again. The structure's own address is below
 * 4 GiB: the register's high half is 0. */
dma:
	bswap %eax
	mov %eax, ACCESS
	bswap %ecx
	mov %ecx, ACCESS + 4
	movl $0, ACCESS + 8
	bswap %edi
	mov %edi, ACCESS + 12
	xor %eax, %eax
	mov $FW_CFG_DMA_HI, %dx
	out %eax, %dx
	mov $ACCESS, %eax
	bswap %eax
	mov $FW_CFG_DMA_LO, %dx
	out %eax, %dx               /* the low half starts the transfer */
	mov ACCESS, %eax
	bswap %eax
	ret
