package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"ember/internal/gobuild"
)

// BuildDeviceModel builds examples/devicemodel, the out-of-process client of
// the "ember external" rows, into dir with the go tool. It needs the ember
// module's source: run from inside the repository.
func BuildDeviceModel(ctx context.Context, dir string) (string, error) {
	return gobuild.Build(ctx, dir, "ember/examples/devicemodel")
}

// externalModel is examples/devicemodel serving one exit guest's address
// from its own process, connected to the VM's device-model socket.
type externalModel struct {
	cmd *exec.Cmd
}

// startExternalModel runs bin on socket claiming g's address, with its stdout
// (its "ready" line) in a file in dir, and waits until it has attached.
func startExternalModel(ctx context.Context, bin, socket, dir string, g ExitGuest) (*externalModel, error) {
	pio, mmio := "", ""
	if g.PIO {
		pio = fmt.Sprintf("%#x-%#x", g.Addr, g.Addr+uint64(g.Len)-1)
	} else {
		mmio = fmt.Sprintf("%#x-%#x", g.Addr, g.Addr+0xfff)
	}
	out, err := os.Create(filepath.Join(dir, "devicemodel.out"))
	if err != nil {
		return nil, err
	}
	defer out.Close()
	// -quiet: no log line per write, so the row measures the hand-off, as
	// the in-process row measures a device that does nothing.
	cmd := exec.CommandContext(ctx, bin, "-socket", socket, "-name", "bench", "-pio", pio, "-mmio", mmio, "-quiet")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: device model: %w", err)
	}
	m := &externalModel{cmd: cmd}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		b, _ := os.ReadFile(out.Name())
		if strings.HasPrefix(string(b), "ready") {
			return m, nil
		}
		if time.Now().After(deadline) || cmd.ProcessState != nil {
			m.stop()
			return nil, fmt.Errorf("bench: device model not ready in 10s: %q", b)
		}
	}
}

func (m *externalModel) stop() {
	m.cmd.Process.Kill()
	m.cmd.Wait()
}
