package linuxguest

import (
	"fmt"
	"os/exec"
	"strings"
)

// AddTAP creates the persistent TAP interface name on the host with addr
// (HostIP/24, say) and brings it up, with iproute2's ip at ipPath; a
// multi-queue one if multiQueue, for a guest with several queue pairs.
// A TAP it made before a later step failed is deleted again. The guest's
// end is then ember's --net tap=NAME (or QEMU's -netdev tap), and the
// host reaches the guest at GuestIP. It needs root and /dev/net/tun.
func AddTAP(ipPath, name, addr string, multiQueue bool) error {
	add := []string{"tuntap", "add", "dev", name, "mode", "tap"}
	if multiQueue {
		add = append(add, "multi_queue")
	}
	for _, args := range [][]string{
		add,
		{"addr", "add", addr, "dev", name},
		{"link", "set", name, "up"},
	} {
		if out, err := exec.Command(ipPath, args...).CombinedOutput(); err != nil {
			if args[0] != "tuntap" {
				exec.Command(ipPath, "link", "del", name).Run()
			}
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}
