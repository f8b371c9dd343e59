/*
 * ACRN hypercall IDs the tiny guests use (acrn_hv_defs.h, BASE_HC_ID(0x80, n)).
 * guest_test.go checks each against package acrn.
 */
#define HC_GET_API_VERSION       0x80000000
#define HC_SET_CALLBACK_VECTOR   0x80000002
#define HC_CREATE_VM             0x80000010
#define HC_DESTROY_VM            0x80000011
#define HC_START_VM              0x80000012
#define HC_PAUSE_VM              0x80000013
#define HC_SET_VCPU_REGS         0x80000016
#define HC_SET_IOREQ_BUFFER      0x80000030
#define HC_NOTIFY_REQUEST_FINISH 0x80000031
#define HC_VM_SET_MEMORY_REGIONS 0x80000042
