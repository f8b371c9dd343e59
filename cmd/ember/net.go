package main

import (
	"fmt"
	stdnet "net"
	"strings"

	virtionet "ember/virtio/net"
)

// netSpec is a parsed --net value.
type netSpec struct {
	tap string
	mac stdnet.HardwareAddr
}

// parseNet parses a --net value: tap=NAME[,mac=MAC].
func parseNet(spec string) (netSpec, error) {
	var n netSpec
	for _, p := range strings.Split(spec, ",") {
		k, v, _ := strings.Cut(p, "=")
		switch k {
		case "tap":
			n.tap = v
		case "mac":
			mac, err := stdnet.ParseMAC(v)
			if err != nil || len(mac) != 6 || mac[0]&1 != 0 {
				return n, fmt.Errorf("--net %q: mac must be a unicast 6-byte address, as 52:54:00:12:34:56", spec)
			}
			n.mac = mac
		default:
			return n, fmt.Errorf("--net %q: unknown option %q (tap=NAME, mac=MAC)", spec, p)
		}
	}
	if n.tap == "" {
		return n, fmt.Errorf("--net %q: tap=NAME is required", spec)
	}
	return n, nil
}

// config is the device's configuration for a boot.
func (n netSpec) config() virtionet.Config { return virtionet.Config{TAP: n.tap, MAC: n.mac} }
