package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"ember/internal/cpio"
	"ember/internal/gobuild"
)

// buildInitramfs writes the lab machine's initramfs into dir: the lab's init
// (built here, static) and the kernel modules it loads, numbered in load
// order. It returns the archive's path.
func buildInitramfs(ctx context.Context, dir string, kf kernelFiles) (string, error) {
	initBin, err := gobuild.BuildStatic(ctx, dir, "ember/lab/labinit")
	if err != nil {
		return "", err
	}
	initData, err := os.ReadFile(initBin)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	w := cpio.NewWriter(&buf)
	for _, d := range []string{"dev", "proc", "sys", "lower", "upper", "newroot", "modules"} {
		if err := w.Dir(d, 0o755); err != nil {
			return "", err
		}
	}
	if err := w.File("init", initData, 0o755); err != nil {
		return "", err
	}
	for i, m := range kf.Modules {
		data, err := os.ReadFile(m)
		if err != nil {
			return "", fmt.Errorf("lab initramfs: %w", err)
		}
		name := fmt.Sprintf("modules/%02d-%s", i, strings.TrimSuffix(filepath.Base(m), ".ko")+".ko")
		if err := w.File(name, data, 0o644); err != nil {
			return "", err
		}
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "initramfs.cpio")
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return "", fmt.Errorf("lab initramfs: %w", err)
	}
	return out, nil
}
