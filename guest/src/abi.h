/*
 * ember's guest ABI as the tiny guests see it (docs/abi.md describes it in full).
 * The selectors must match package x86; guest_test.go checks that they do.
 */
#define PORT_CONSOLE  0xe9   /* bytes written here are console output */
#define PORT_REPORT   0xf0   /* values written here are collected by tests */
#define PORT_EXIT     0xf4   /* a write ends the VM with the value as its status */

#define SEL_CODE      0x10   /* flat code segment of the entry mode, ring 0 */
#define SEL_DATA      0x18   /* flat data segment, ring 0 */
#define SEL_USER_DATA 0x2b   /* flat data segment, ring 3 */
#define SEL_USER_CODE64 0x33 /* 64-bit code segment, ring 3 */

#define MSR_EFER      0xc0000080
#define LOAD_ADDR     0x10000 /* every tiny guest is linked and loaded here */
#define PORT_HYPERCALL 0xf8  /* OUT here makes the ACRN hypercall R8(RDI, RSI); result in RAX */
