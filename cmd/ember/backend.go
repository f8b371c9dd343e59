package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"ember/internal/unixsock"
	"ember/machine"
	"ember/virtio/backend"
	"ember/virtio/blk"
)

// backendOptions are `ember backend blk`'s flags.
type backendOptions struct {
	socket string
	disk   string
	once   bool
	level  string
}

func newBackendCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backend",
		Short: "Serve a virtio device from a process of its own",
		Long: `Serve a virtio device to an 'ember run' in another process, over ember's
device-model protocol (docs/ioreq-protocol.md, "Virtio back-ends"): ember keeps
the device's PCI function, this process serves its queues on the guest's RAM.
If this process dies, the guest's device fails (DEVICE_NEEDS_RESET), not the VM.`,
	}
	cmd.AddCommand(newBackendBlkCmd())
	return cmd
}

func newBackendBlkCmd() *cobra.Command {
	o := backendOptions{}
	cmd := &cobra.Command{
		Use:   "blk",
		Short: "Serve a raw or qcow2 disk image as a virtio-blk device",
		Long: `Listen on --socket (a unix SOCK_SEQPACKET socket, created here and removed on
exit) and serve the --disk image as a virtio-blk device to each 'ember run
--disk backend=SOCKET' that connects, one at a time. When a VM hangs up, its
writes are flushed (fdatasync) before the next one is served. SIGINT or
SIGTERM stops the back-end.`,
		Example: `  ember backend blk --socket /tmp/disk.sock --disk disk.img &
  ember run --kernel bzImage --disk backend=/tmp/disk.sock --cmdline 'console=ttyS0 root=/dev/vda'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBackendBlk(cmd.Context(), o, cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.socket, "socket", "", "the unix socket to listen on (required)")
	f.StringVar(&o.disk, "disk", "", "the image: PATH[,readonly][,serial=ID][,queues=N][,cache=none][,format=raw|qcow2] (required)")
	f.BoolVar(&o.once, "once", false, "exit after the first VM hangs up")
	f.StringVar(&o.level, "log-level", "info", "least level logged: debug, info, warn or error")
	return cmd
}

// runBackendBlk opens the disk, listens and serves until a signal (or,
// with --once, the first VM's end).
func runBackendBlk(ctx context.Context, o backendOptions, stderr io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if o.socket == "" || o.disk == "" {
		return errors.New("backend blk: --socket and --disk are required")
	}
	log, err := newLogger(stderr, "text", o.level)
	if err != nil {
		return err
	}
	spec, err := machine.ParseDisk(o.disk)
	if err != nil {
		return err
	}
	cfg, err := spec.BlkConfig()
	if err != nil {
		return err
	}
	cfg.Logger = log
	disk, err := blk.Open(cfg)
	if err != nil {
		return err
	}
	defer disk.Close()
	ln, err := unixsock.Listen("unixpacket", o.socket, nil)
	if err != nil {
		return fmt.Errorf("backend blk: %w", err)
	}
	defer ln.Close()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, unix.SIGTERM)
	defer stop()
	log.Info("virtio-blk back-end listening", "socket", o.socket, "disk", cfg.Path)
	return serveBackend(ctx, ln, disk, o.once, log)
}

// serveBackend serves disk to one connection of ln at a time until ctx
// ends (or after the first, with once), flushing it after each.
func serveBackend(ctx context.Context, ln *unixsock.Listener, disk *blk.Disk, once bool, log *slog.Logger) error {
	var mu sync.Mutex
	var conn *net.UnixConn
	stopped := context.AfterFunc(ctx, func() {
		ln.Close()
		mu.Lock()
		if conn != nil {
			conn.Close()
		}
		mu.Unlock()
	})
	defer stopped()
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("backend blk: %w", err)
		}
		mu.Lock()
		conn = c
		mu.Unlock()
		log.Info("VM connected")
		err = backend.Serve(c, disk, log)
		c.Close()
		if ferr := disk.Flush(); ferr != nil {
			err = errors.Join(err, fmt.Errorf("backend blk: flush: %w", ferr))
		}
		if err != nil && ctx.Err() == nil {
			log.Error("VM connection ended", "err", err)
		} else {
			log.Info("VM hung up")
		}
		if once || ctx.Err() != nil {
			return nil
		}
	}
}
