package main

import (
	"fmt"
	"strconv"
	"strings"
)

// parseSize reads a memory size such as "512M", "2G", "64MiB" or "1048576"
// (bytes). Suffixes are binary: K = 1024.
func parseSize(s string) (uint64, error) {
	t := strings.TrimSpace(strings.ToUpper(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	shift := 0
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			shift = 10
		case 'M':
			shift = 20
		case 'G':
			shift = 30
		case 'T':
			shift = 40
		}
		if shift != 0 {
			t = t[:n-1]
		}
	}
	v, err := strconv.ParseUint(t, 10, 64)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("bad memory size %q: want a positive number with an optional K, M, G or T suffix", s)
	}
	if v > (^uint64(0))>>shift {
		return 0, fmt.Errorf("memory size %q is too large", s)
	}
	return v << shift, nil
}
