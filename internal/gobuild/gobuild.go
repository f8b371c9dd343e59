// Package gobuild builds a package of the ember module into a binary with the
// go tool, for the harness and tests that run an example (such as
// examples/devicemodel) as a separate process.
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
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	bin := filepath.Join(dir, filepath.Base(pkg))
	out, err := exec.CommandContext(ctx, goTool, "build", "-o", bin, pkg).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build %s (run from the repository): %v: %s", pkg, err, strings.TrimSpace(string(out)))
	}
	return bin, nil
}
