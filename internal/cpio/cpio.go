// Package cpio writes the "newc" cpio archives that Linux unpacks as an
// initramfs (Documentation/driver-api/early-userspace/buffer-format.rst).
// The lab uses it for the initramfs that boots its QEMU machine, and the
// Linux boot tests for the initramfs they hand the guest kernel. Archives are
// uncompressed: a kernel under software emulation unpacks them faster than it
// would gunzip them.
package cpio

import (
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
)

// Mode bits of a newc entry (the st_mode of stat(2)).
const (
	modeDir     = 0o040000
	modeRegular = 0o100000
	modeSymlink = 0o120000
)

// Writer appends entries to a newc archive. Directories named by an entry's
// path are created first, as the kernel needs them before the entry. Call
// Close to write the trailer.
type Writer struct {
	w    io.Writer
	ino  uint32
	dirs map[string]bool
	err  error
}

// NewWriter returns a Writer that writes the archive to w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: w, ino: 1, dirs: map[string]bool{"": true, ".": true, "/": true}}
}

// Dir adds a directory (and its parents) with permissions perm.
func (w *Writer) Dir(name string, perm fs.FileMode) error {
	name = clean(name)
	if w.dirs[name] {
		return w.err
	}
	if err := w.parents(name); err != nil {
		return err
	}
	w.dirs[name] = true
	return w.entry(name, modeDir|uint32(perm.Perm()), nil)
}

// File adds a regular file with contents data and permissions perm.
func (w *Writer) File(name string, data []byte, perm fs.FileMode) error {
	name = clean(name)
	if err := w.parents(name); err != nil {
		return err
	}
	return w.entry(name, modeRegular|uint32(perm.Perm()), data)
}

// Symlink adds a symbolic link name pointing at target.
func (w *Writer) Symlink(name, target string) error {
	name = clean(name)
	if err := w.parents(name); err != nil {
		return err
	}
	return w.entry(name, modeSymlink|0o777, []byte(target))
}

// Close writes the trailer entry that ends the archive. It does not close the
// underlying writer.
func (w *Writer) Close() error {
	return w.entry("TRAILER!!!", 0, nil)
}

func (w *Writer) parents(name string) error {
	if dir := path.Dir(name); !w.dirs[dir] {
		return w.Dir(dir, 0o755)
	}
	return w.err
}

func (w *Writer) entry(name string, mode uint32, data []byte) error {
	if w.err != nil {
		return w.err
	}
	nlink := 1
	if mode&modeDir != 0 {
		nlink = 2
	}
	fields := []uint32{w.ino, mode, 0, 0, uint32(nlink), 0, uint32(len(data)), 0, 0, 0, 0, uint32(len(name) + 1), 0}
	w.ino++
	var hdr strings.Builder
	hdr.WriteString("070701")
	for _, f := range fields {
		fmt.Fprintf(&hdr, "%08x", f)
	}
	hdr.WriteString(name)
	hdr.WriteByte(0)
	for (hdr.Len())%4 != 0 {
		hdr.WriteByte(0)
	}
	if _, err := io.WriteString(w.w, hdr.String()); err != nil {
		w.err = fmt.Errorf("cpio: writing %s: %w", name, err)
		return w.err
	}
	if _, err := w.w.Write(data); err != nil {
		w.err = fmt.Errorf("cpio: writing %s: %w", name, err)
		return w.err
	}
	if pad := (4 - len(data)%4) % 4; pad > 0 {
		if _, err := w.w.Write(make([]byte, pad)); err != nil {
			w.err = fmt.Errorf("cpio: writing %s: %w", name, err)
		}
	}
	return w.err
}

// clean turns a path into the relative form the kernel expects ("bin/sh").
func clean(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}
