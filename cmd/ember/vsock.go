package main

import (
	"fmt"
	"strconv"
	"strings"

	"ember/virtio/vsock"
)

// parseVsock parses a --vsock value: cid=N,socket=PATH.
func parseVsock(spec string) (vsock.Config, error) {
	var c vsock.Config
	for _, p := range strings.Split(spec, ",") {
		k, v, _ := strings.Cut(p, "=")
		switch k {
		case "cid":
			n, err := strconv.ParseUint(v, 0, 32)
			if err != nil || n < 3 || n == 0xffffffff {
				return c, fmt.Errorf("--vsock %q: cid must be a number from 3 to 4294967294", spec)
			}
			c.CID = n
		case "socket":
			c.Path = v
		default:
			return c, fmt.Errorf("--vsock %q: unknown option %q (cid=N, socket=PATH)", spec, p)
		}
	}
	if c.CID == 0 || c.Path == "" {
		return c, fmt.Errorf("--vsock %q: both cid=N and socket=PATH are needed", spec)
	}
	return c, nil
}
