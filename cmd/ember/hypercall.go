package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"ember/acrn"
	"ember/hv"
	"ember/hypercall"
)

// newHypercallCmd is `ember hypercall`: make ACRN hypercalls as the host
// control plane (the Service VM), for scripting. VMs live as long as the
// process, so a sequence of calls goes in one invocation: on the command line
// separated by ";" arguments, or one per line from --file (- for stdin).
//
// A call is NAME [PARAM1 [PARAM2]]; NAME is the header's (HC_CREATE_VM) or a
// number. A parameter is a number, or @ADDR:HEX to write bytes into service
// memory at ADDR first and pass ADDR.
func newHypercallCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "hypercall NAME [PARAM1 [PARAM2]] [\\; NAME ...]",
		Short: "Make ACRN hypercalls as the Service VM (scripting)",
		Long: `Make ACRN hypercalls as the host control plane, which acts as the Service VM.

Each call is NAME [PARAM1 [PARAM2]]: NAME is a hypercall name such as
HC_GET_API_VERSION or its number; a parameter is a number, or @ADDR:HEX,
which writes the hex bytes into the service memory at ADDR and passes ADDR.
Separate calls with ";" arguments, or give them one per line with --file.
For each call ember prints the result and the 64 bytes at any @ADDR.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			var calls [][]string
			if file != "" {
				var r io.Reader = os.Stdin
				if file != "-" {
					f, err := os.Open(file)
					if err != nil {
						return err
					}
					defer f.Close()
					r = f
				}
				sc := bufio.NewScanner(r)
				for sc.Scan() {
					if f := strings.Fields(sc.Text()); len(f) > 0 && !strings.HasPrefix(f[0], "#") {
						calls = append(calls, f)
					}
				}
			}
			var cur []string
			for _, a := range append(args, ";") {
				if a == ";" {
					if len(cur) > 0 {
						calls = append(calls, cur)
					}
					cur = nil
					continue
				}
				cur = append(cur, a)
			}
			if len(calls) == 0 {
				return fmt.Errorf("no hypercall given")
			}
			h, err := hv.Open()
			if err != nil {
				return explainKVM(err)
			}
			defer h.Close()
			hc := hypercall.New(h)
			defer hc.Close()
			failed := false
			for _, c := range calls {
				ok, err := runHypercall(cmd.OutOrStdout(), hc, c)
				if err != nil {
					return err
				}
				failed = failed || !ok
			}
			if failed {
				return exitError{1}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "read calls, one per line, from this file (- for stdin)")
	return cmd
}

// runHypercall makes one call and prints its result; ok is false for an
// error result.
func runHypercall(w io.Writer, h *hypercall.Service, c []string) (ok bool, err error) {
	if len(c) > 3 {
		return false, fmt.Errorf("%s: at most two parameters", c[0])
	}
	id, found := acrn.LookupID(strings.ToUpper(c[0]))
	if !found {
		n, err := strconv.ParseUint(c[0], 0, 64)
		if err != nil {
			return false, fmt.Errorf("unknown hypercall %q", c[0])
		}
		id = acrn.ID(n)
	}
	mem, err := h.ServiceMemory()
	if err != nil {
		return false, err
	}
	var params [2]uint64
	var dumps []uint64
	for i, a := range c[1:] {
		if addr, hexs, isPtr := strings.Cut(strings.TrimPrefix(a, "@"), ":"); strings.HasPrefix(a, "@") && isPtr {
			gpa, err := strconv.ParseUint(addr, 0, 64)
			if err != nil {
				return false, fmt.Errorf("%s: bad address %q", c[0], addr)
			}
			b, err := parseHex(hexs)
			if err != nil {
				return false, fmt.Errorf("%s: %w", c[0], err)
			}
			if _, err := mem.WriteAt(b, int64(gpa)); err != nil {
				return false, fmt.Errorf("%s: %w", c[0], err)
			}
			params[i] = gpa
			dumps = append(dumps, gpa)
			continue
		}
		if params[i], err = strconv.ParseUint(a, 0, 64); err != nil {
			return false, fmt.Errorf("%s: bad parameter %q", c[0], a)
		}
	}
	r := h.Hypercall(id, params[0], params[1])
	if e := acrn.ResultError(r); e != nil {
		fmt.Fprintf(w, "%v(%#x, %#x) = %d (%v)\n", id, params[0], params[1], int64(r), e)
	} else {
		fmt.Fprintf(w, "%v(%#x, %#x) = %d\n", id, params[0], params[1], int64(r))
	}
	for _, gpa := range dumps {
		if b, err := mem.Slice(gpa, 64); err == nil {
			fmt.Fprintf(w, "  @%#x: % x\n", gpa, b)
		}
	}
	return acrn.ResultError(r) == nil, nil
}

func parseHex(s string) ([]byte, error) {
	s = strings.ReplaceAll(s, "_", "")
	if len(s)%2 != 0 {
		return nil, fmt.Errorf("odd number of hex digits in %q", s)
	}
	b := make([]byte, len(s)/2)
	for i := range b {
		v, err := strconv.ParseUint(s[2*i:2*i+2], 16, 8)
		if err != nil {
			return nil, fmt.Errorf("bad hex %q", s)
		}
		b[i] = byte(v)
	}
	return b, nil
}
