package guest

import "ember/x86"

// IOAccess makes one access of every kind the I/O request path carries (port
// I/O of 1, 2 and 4 bytes at 0x500, MMIO at 0xd0000000, PCI configuration of
// 00:03.1 through 0xCF8/0xCFC), reports the three values it read, exits 0.
var IOAccess = load("ioaccess", x86.ProtectedMode)

func init() { All = append(All, IOAccess) }
