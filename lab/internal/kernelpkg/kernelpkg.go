// Package kernelpkg unpacks a Debian kernel package (.deb) for a machine
// that boots it without installing it: the kernel image and the modules
// asked for, with every module they depend on (read from each module's
// .modinfo), written in an order in which each loads after its
// dependencies. The lab's init loads them in that order.
package kernelpkg

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// HasModules reports whether a cached modules.order holds every module
// asked for (none asked for: any cache will do), so that adding one to
// the lab's list unpacks the package again.
func HasModules(order string, modules []string) bool {
	have := map[string]bool{}
	for _, m := range strings.Fields(order) {
		have[strings.ReplaceAll(filepath.Base(m), "-", "_")] = true
	}
	for _, m := range modules {
		if !have[strings.ReplaceAll(m, "-", "_")] {
			return false
		}
	}
	return true
}

// module is one kernel module found in the package.
type module struct {
	path    string
	depends []string
	data    []byte
}

// Unpack extracts vmlinuz and the closure of modules under their
// dependencies from a kernel .deb into dir, and writes dir/modules.order.
func Unpack(deb, dir string, roots []string) error {
	cmd := exec.Command("dpkg-deb", "--fsys-tarfile", deb)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("dpkg-deb: %w", err)
	}
	mods, vmlinuz, err := readKernelTar(stdout)
	io.Copy(io.Discard, stdout)
	if werr := cmd.Wait(); err == nil && werr != nil {
		err = fmt.Errorf("dpkg-deb --fsys-tarfile: %w", werr)
	}
	if err != nil {
		return err
	}
	if vmlinuz == nil {
		return errors.New("no boot/vmlinuz-* in the package")
	}
	order, err := loadOrder(mods, roots)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "modules"), 0o755); err != nil {
		return err
	}
	for _, name := range order {
		if err := os.WriteFile(filepath.Join(dir, "modules", name+".ko"), mods[name].data, 0o644); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "vmlinuz"), vmlinuz, 0o644); err != nil {
		return err
	}
	// Written last: its presence says the unpacking finished.
	return os.WriteFile(filepath.Join(dir, "modules.order"), []byte(strings.Join(order, "\n")+"\n"), 0o644)
}

// readKernelTar reads the package's file tree: the kernel image and every
// module's name and dependencies (and its bytes).
func readKernelTar(r io.Reader) (map[string]*module, []byte, error) {
	mods := map[string]*module{}
	var vmlinuz []byte
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return mods, vmlinuz, nil
		}
		if err != nil {
			return nil, nil, err
		}
		name := path.Clean(h.Name)
		switch {
		case strings.HasPrefix(name, "boot/vmlinuz-"):
			if vmlinuz, err = io.ReadAll(tr); err != nil {
				return nil, nil, err
			}
		case strings.HasSuffix(name, ".ko"):
			data, err := io.ReadAll(tr)
			if err != nil {
				return nil, nil, err
			}
			m, modName, err := parseModule(name, data)
			if err != nil {
				return nil, nil, err
			}
			mods[modName] = m
		}
	}
}

// parseModule reads a module's name and dependencies from its .modinfo section.
func parseModule(name string, data []byte) (*module, string, error) {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", name, err)
	}
	modName := strings.ReplaceAll(strings.TrimSuffix(path.Base(name), ".ko"), "-", "_")
	m := &module{path: name, data: data}
	if s := f.Section(".modinfo"); s != nil {
		info, err := s.Data()
		if err != nil {
			return nil, "", fmt.Errorf("%s: .modinfo: %w", name, err)
		}
		for _, kv := range bytes.Split(info, []byte{0}) {
			k, v, _ := strings.Cut(string(kv), "=")
			switch k {
			case "name":
				modName = v
			case "depends":
				if v != "" {
					m.depends = strings.Split(v, ",")
				}
			}
		}
	}
	return m, modName, nil
}

// loadOrder lists roots and everything they depend on, each module after
// its dependencies; a dependency cycle (which no kernel build makes, but
// the package is read from outside) is an error, not endless recursion.
func loadOrder(mods map[string]*module, roots []string) ([]string, error) {
	var order []string
	done := map[string]bool{}
	var visit func(name string, chain []string) error
	visit = func(name string, chain []string) error {
		if done[name] {
			return nil
		}
		if slices.Contains(chain, name) {
			return fmt.Errorf("module %s depends on itself (%s)", name, strings.Join(chain, " <- "))
		}
		m, ok := mods[name]
		if !ok {
			return fmt.Errorf("module %s (needed by %s) is not in the package", name, strings.Join(chain, " <- "))
		}
		for _, d := range m.depends {
			if err := visit(d, append([]string{name}, chain...)); err != nil {
				return err
			}
		}
		done[name] = true
		order = append(order, name)
		return nil
	}
	for _, r := range roots {
		if err := visit(r, []string{"the caller"}); err != nil {
			return nil, err
		}
	}
	return order, nil
}
