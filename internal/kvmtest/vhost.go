package kvmtest

import (
	"os"
	"testing"
)

// VhostNetPath is the kernel's vhost-net device, which the vhost tests
// need: vhost.NetPath, which this package cannot import (virtio/vhost's
// own tests import it).
const VhostNetPath = "/dev/vhost-net"

// RequireVhostNet skips a test where the host has no /dev/vhost-net; in
// the lab, whose kernel loads vhost_net (lab/kernel.go), it fails instead,
// so CI's lab runs never pass the vhost tests over.
func RequireVhostNet(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(VhostNetPath); err != nil {
		if InLab() {
			t.Fatalf("the lab loads vhost_net, yet: %v", err)
		}
		t.Skipf("skipping: %v (load vhost_net); the lab has it: go run ./lab test PACKAGE -run Vhost", err)
	}
}
