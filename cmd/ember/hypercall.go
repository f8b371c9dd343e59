package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"ember/api"
	"ember/api/client"
	"ember/daemon"
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
	var file, socket string
	cmd := &cobra.Command{
		Use:   "hypercall NAME [PARAM1 [PARAM2]] [\\; NAME ...]",
		Short: "Make ACRN hypercalls as the Service VM (scripting)",
		Long: `Make ACRN hypercalls as the host control plane, which acts as the Service VM.

Each call is NAME [PARAM1 [PARAM2]]: NAME is a hypercall name such as
HC_GET_API_VERSION or its number; a parameter is a number, or @ADDR:HEX,
which writes the hex bytes into the service memory at ADDR and passes ADDR.
Separate calls with ";" arguments, or give them one per line with --file.
For each call ember prints the result and the 64 bytes at any @ADDR.

Without --api-socket the calls are made on a hypervisor of this process's
own, whose VMs end with it; with it, on a daemon's VM table, where the VMs
they create stay (and show in 'ember vm ls').`,
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
			call, done, err := hypercaller(cmd.Context(), socket)
			if err != nil {
				return err
			}
			defer done()
			failed := false
			for _, c := range calls {
				req, err := parseCall(c)
				if err != nil {
					return err
				}
				resp, err := call(req)
				if err != nil {
					return err
				}
				printCall(cmd.OutOrStdout(), req, resp)
				failed = failed || resp.Result < 0
			}
			if failed {
				return exitError{1}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "read calls, one per line, from this file (- for stdin)")
	cmd.Flags().StringVar(&socket, "api-socket", "", "make the calls on a running daemon's VM table (ember daemon) instead of a hypervisor of this process's own")
	return cmd
}

// hypercaller returns how to make calls: on the daemon at socket, or on a
// hypervisor of this process's own (through the daemon package's handler,
// so both print the same); done releases it.
func hypercaller(ctx context.Context, socket string) (func(api.HypercallRequest) (api.HypercallResponse, error), func(), error) {
	ctx = ctxOrBackground(ctx)
	if socket != "" {
		c := client.New(socket)
		return func(r api.HypercallRequest) (api.HypercallResponse, error) { return c.Hypercall(ctx, r) }, c.Close, nil
	}
	hc, closeService, err := openService()
	if err != nil {
		return nil, nil, err
	}
	d := daemon.New(daemon.Config{Service: hc})
	return d.Hypercall, closeService, nil
}

// dumpSize is how much memory is printed at each @ADDR parameter.
const dumpSize = 64

// parseCall reads NAME [PARAM1 [PARAM2]]: a parameter @ADDR:HEX writes the
// bytes at ADDR, passes ADDR, and reads 64 bytes there after the call.
func parseCall(c []string) (api.HypercallRequest, error) {
	req := api.HypercallRequest{Hypercall: c[0]}
	if len(c) > 3 {
		return req, fmt.Errorf("%s: at most two parameters", c[0])
	}
	params := []*uint64{&req.Param1, &req.Param2}
	for i, a := range c[1:] {
		if addr, hexs, isPtr := strings.Cut(strings.TrimPrefix(a, "@"), ":"); strings.HasPrefix(a, "@") && isPtr {
			gpa, err := strconv.ParseUint(addr, 0, 64)
			if err != nil {
				return req, fmt.Errorf("%s: bad address %q", c[0], addr)
			}
			b, err := parseHex(hexs)
			if err != nil {
				return req, fmt.Errorf("%s: %w", c[0], err)
			}
			*params[i] = gpa
			req.Write = append(req.Write, api.MemoryBytes{GPA: gpa, Data: hex.EncodeToString(b)})
			req.Read = append(req.Read, api.MemoryRange{GPA: gpa, Size: dumpSize})
			continue
		}
		n, err := strconv.ParseUint(a, 0, 64)
		if err != nil {
			return req, fmt.Errorf("%s: bad parameter %q", c[0], a)
		}
		*params[i] = n
	}
	return req, nil
}

// printCall prints a call's result and the memory read back.
func printCall(w io.Writer, req api.HypercallRequest, r api.HypercallResponse) {
	if r.Errno != "" {
		fmt.Fprintf(w, "%s(%#x, %#x) = %d (acrn: %s)\n", r.Hypercall, req.Param1, req.Param2, r.Result, r.Errno)
	} else {
		fmt.Fprintf(w, "%s(%#x, %#x) = %d\n", r.Hypercall, req.Param1, req.Param2, r.Result)
	}
	for _, m := range r.Read {
		b, _ := hex.DecodeString(m.Data)
		fmt.Fprintf(w, "  @%#x: % x\n", m.GPA, b)
	}
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
