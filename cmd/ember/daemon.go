package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"ember/daemon"
	"ember/kvm"
)

// defaultAPISocket is where `ember daemon` listens and the client commands
// connect when neither --api-socket nor $EMBER_API_SOCKET says otherwise.
const defaultAPISocket = "/run/ember/api.sock"

// apiSocketEnv names the environment variable that gives the API socket.
const apiSocketEnv = "EMBER_API_SOCKET"

// apiSocketDefault is --api-socket's default: $EMBER_API_SOCKET, else
// defaultAPISocket.
func apiSocketDefault() string {
	if s := os.Getenv(apiSocketEnv); s != "" {
		return s
	}
	return defaultAPISocket
}

type daemonOptions struct {
	socket          string
	group           string
	logFormat       string
	logLevel        string
	maxVMs          int
	shutdownTimeout time.Duration
}

func newDaemonCmd() *cobra.Command {
	o := daemonOptions{}
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Serve the REST API that runs many VMs (and the ACRN hypercall service) from one process",
		Long: `Run ember as a daemon: one process that holds the hypervisor and the ACRN VM
table (the daemon acts as the Service VM, VM ID 0) and serves a REST API over
HTTP on a unix socket (api/openapi.json; 'ember vm' is its client).

The socket is created mode 0600 (0660 with --group), and each client's
credentials are checked: the daemon's user, root and the group's members may
use it. SIGTERM or SIGINT stops every VM, waiting at most --shutdown-timeout,
and removes the socket.`,
		Example: `  ember daemon --api-socket /tmp/ember.sock &
  ember vm --api-socket /tmp/ember.sock create --guest demo --start
  curl --unix-socket /tmp/ember.sock http://localhost/v1/vms`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDaemon(cmd.Context(), o, cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.socket, "api-socket", apiSocketDefault(), "the unix socket to serve the API on (default $"+apiSocketEnv+", else "+defaultAPISocket+")")
	f.StringVar(&o.group, "group", "", "a group (name or ID) whose members may also use the API: the socket becomes 0660 and theirs")
	f.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&o.logLevel, "log-level", "info", "least level logged: debug, info, warn or error")
	f.IntVar(&o.maxVMs, "max-vms", daemon.DefaultMaxVMs, "most VMs the daemon holds at once")
	f.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long a shutdown waits for VMs to stop")
	return cmd
}

// newLogger makes the daemon's logger.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level must be debug, info, warn or error, not %q", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, not %q", format)
}

func runDaemon(ctx context.Context, o daemonOptions, stderr io.Writer) error {
	log, err := newLogger(stderr, o.logFormat, o.logLevel)
	if err != nil {
		return err
	}
	if o.maxVMs < 1 {
		return fmt.Errorf("--max-vms must be at least 1, not %d", o.maxVMs)
	}
	hc, closeService, err := openService()
	if err != nil {
		return err
	}
	defer closeService()
	os.MkdirAll(filepath.Dir(o.socket), 0o755)
	l, gid, err := daemon.Listen(o.socket, o.group)
	if err != nil {
		return err
	}
	peers := daemon.Peers{UID: os.Getuid(), GID: gid}
	d := daemon.New(daemon.Config{Service: hc, Logger: log, MaxVMs: o.maxVMs, Version: version, KVMBackend: kvm.Backend()})
	srv := d.Server(peers, log)
	ctx, stop := signal.NotifyContext(ctxOrBackground(ctx), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	log.Info("serving the API", "socket", o.socket, "pid", os.Getpid(), "kvm", kvm.Backend(), "max_vms", o.maxVMs)
	select {
	case <-ctx.Done():
	case err := <-served:
		return fmt.Errorf("daemon: %w", err)
	}
	log.Info("shutting down: stopping every VM", "timeout", o.shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	errVMs := d.Shutdown(sctx) // ends event and console streams too
	srv.Shutdown(sctx)
	srv.Close()
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("serving ended", "err", err)
	}
	if errVMs != nil {
		return errVMs
	}
	log.Info("stopped")
	return nil
}

// ctxOrBackground is ctx, or the background context if ctx is nil.
func ctxOrBackground(ctx context.Context) context.Context {
	if ctx == nil {
		return context.Background()
	}
	return ctx
}
