// Package gobuild builds a package of the ember module into a binary with the
// go tool, for the harness, the lab and tests that run a program of this
// module (such as examples/devicemodel) as a separate process.
package gobuild

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Build compiles pkg (an import path such as "ember/examples/devicemodel")
// into dir and returns the binary's path. It needs the module's source, so it
// works from inside the repository. go test may run with a PATH that lacks
// go; the toolchain in GOROOT is then used.
func Build(ctx context.Context, dir, pkg string) (string, error) {
	return build(ctx, dir, pkg, nil)
}

// BuildStatic is Build with cgo off, for a binary that must run where no C
// library is (the lab's init, a guest's /init).
func BuildStatic(ctx context.Context, dir, pkg string) (string, error) {
	return build(ctx, dir, pkg, []string{"CGO_ENABLED=0"})
}

// Tool returns the go command: the one on PATH, else GOROOT's.
func Tool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(os.Getenv("GOROOT"), "bin", "go")
}

func build(ctx context.Context, dir, pkg string, env []string) (string, error) {
	bin := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.CommandContext(ctx, Tool(), "build", "-o", bin, pkg)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build %s (run from the repository): %v: %s", pkg, err, strings.TrimSpace(string(out)))
	}
	return bin, nil
}
