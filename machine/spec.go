package machine

import (
	"fmt"
	"strconv"
	"strings"
)

// options walks the comma-separated KEY[=VALUE] options of a flag's value,
// calling set for each; set says whether it knows the key, and an unknown
// key or set's error is reported with the flag's kind and the whole value.
func options(kind, spec string, parts []string, help string, set func(k, v string) (bool, error)) error {
	for _, p := range parts {
		k, v, _ := strings.Cut(p, "=")
		known, err := set(k, v)
		if err != nil {
			return fmt.Errorf("%s %q: %v", kind, spec, err)
		}
		if !known {
			return fmt.Errorf("%s %q: unknown option %q (%s)", kind, spec, p, help)
		}
	}
	return nil
}

// ParseDisk parses `ember run --disk`'s value:
// PATH[,readonly][,serial=ID][,queues=N][,cache=none|writeback][,format=raw|qcow2], or
// backend=SOCKET for a disk a back-end process serves. The options are
// checked with the rest of the Config, in Prepare.
func ParseDisk(spec string) (Disk, error) {
	parts := strings.Split(spec, ",")
	var d Disk
	if !strings.HasPrefix(parts[0], "backend=") {
		d.Path, parts = parts[0], parts[1:]
	}
	err := options("disk", spec, parts, "readonly, serial=ID, queues=N, cache=none, format=raw|qcow2, backend=SOCKET", func(k, v string) (bool, error) {
		switch k {
		case "backend":
			d.Backend = v
		case "readonly", "ro":
			d.ReadOnly = true
		case "serial":
			d.Serial = v
		case "cache":
			d.Cache = v
		case "format":
			d.Format = v
		case "queues":
			n, err := strconv.Atoi(v)
			if err != nil {
				return true, fmt.Errorf("queues must be 1 to 16")
			}
			d.Queues = n
		default:
			return false, nil
		}
		return true, nil
	})
	return d, err
}

// ParseNet parses `ember run --net`'s value:
// tap=NAME[,mac=MAC][,vhost=on|off][,queues=N][,threads=N].
func ParseNet(spec string) (Net, error) {
	var n Net
	err := options("net", spec, strings.Split(spec, ","), "tap=NAME, mac=MAC, vhost=on|off, queues=N, threads=N", func(k, v string) (bool, error) {
		switch k {
		case "tap":
			n.TAP = v
		case "mac":
			n.MAC = v
		case "queues":
			q, err := strconv.Atoi(v)
			if err != nil {
				return true, fmt.Errorf("queues must be a number of queue pairs, not %q", v)
			}
			n.Queues = q
		case "threads":
			k, err := strconv.Atoi(v)
			if err != nil {
				return true, fmt.Errorf("threads must be a number of threads, not %q", v)
			}
			n.Threads = k
		case "vhost":
			switch v {
			case "on", "":
				n.Vhost = true
			case "off":
				n.Vhost = false
			default:
				return true, fmt.Errorf("vhost must be on or off, not %q", v)
			}
		default:
			return false, nil
		}
		return true, nil
	})
	return n, err
}

// ParseVsock parses `ember run --vsock`'s value: cid=N,socket=PATH.
func ParseVsock(spec string) (Vsock, error) {
	var vs Vsock
	err := options("vsock", spec, strings.Split(spec, ","), "cid=N, socket=PATH", func(k, v string) (bool, error) {
		switch k {
		case "cid":
			n, err := strconv.ParseUint(v, 0, 64)
			if err != nil {
				return true, fmt.Errorf("cid must be a number from 3 to 4294967294")
			}
			vs.CID = n
		case "socket":
			vs.Socket = v
		default:
			return false, nil
		}
		return true, nil
	})
	return vs, err
}

// ParseModule parses `ember run --module`'s value: PATH[,CMDLINE] (the
// command line is everything after the first comma).
func ParseModule(spec string) (Module, error) {
	path, cmdline, _ := strings.Cut(spec, ",")
	if path == "" {
		return Module{}, fmt.Errorf("module %q: no path", spec)
	}
	return Module{Path: path, Cmdline: cmdline}, nil
}

// ParseBalloon parses `ember run --balloon`'s value:
// [target=SIZE][,deflate-on-oom][,stats=INTERVAL].
func ParseBalloon(spec string) (Balloon, error) {
	var b Balloon
	err := options("balloon", spec, strings.Split(spec, ","), "target=SIZE, deflate-on-oom, stats=INTERVAL", func(k, v string) (bool, error) {
		switch k {
		case "":
		case "target":
			b.Target = v
		case "deflate-on-oom":
			b.DeflateOnOOM = true
		case "stats":
			b.StatsInterval = v
		default:
			return false, nil
		}
		return true, nil
	})
	return b, err
}

// ParseSize reads a memory size such as "512M", "2G", "64MiB" or "1048576"
// (bytes). Suffixes are binary: K = 1024.
func ParseSize(s string) (uint64, error) {
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
