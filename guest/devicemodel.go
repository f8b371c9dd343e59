package guest

import "ember/x86"

// DeviceModel is the guest of hv's out-of-process device-model test: its
// port and MMIO accesses at 0x500 and 0xd0000000 are served by
// examples/devicemodel in another process, which the test kills while the
// guest waits on a read of port 0x50c (src/devicemodel.S lists the reports).
var DeviceModel = load("devicemodel", x86.ProtectedMode)

func init() { All = append(All, DeviceModel) }
