package blk

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"ember/virtio/blk/qcow2"
)

// Image formats.
//
// The disk serves a raw image, whose sectors are the file's bytes, or a
// qcow2 image, through its tables (virtio/blk/qcow2). An image in another
// format (a VMDK, a VHDX) served as raw would give the guest the format's
// own headers and tables as its disk, a disk no guest can use, and a
// guest that writes to it corrupts the image for every other program. So
// Open looks at the image's first bytes for the signatures of the formats
// other VMMs take, as QEMU does when no format is given: a qcow2 image is
// served as one, any other is refused with a FormatError that says how to
// convert it. A raw disk whose own guest wrote one of those signatures at
// its start (a guest may write anything to its disk) is opened with
// Format "raw", which looks at nothing.

// Config.Format's values: an image served as it is, unprobed; a qcow2
// image (virtio/blk/qcow2).
const (
	FormatRaw   = "raw"
	FormatQcow2 = "qcow2"
)

// probeLen is how much of the image the probe reads: enough for every
// signature below.
const probeLen = 512

// signatures are the image formats Open recognises — qcow2, which it
// serves, and the others, which it refuses: the format's name and its
// signature at an offset in the file (each format's
// own specification: qcow2 and QED in QEMU's docs/interop, VMDK's
// "hosted sparse extent" header, VHDX's file type identifier, VDI's
// pre-header, VHD's footer; `qemu-img create` makes each so, which
// TestOpenRefusesQEMUImages checks).
var signatures = []struct {
	format string
	off    int
	magic  []byte
}{
	{"qcow2", 0, []byte{'Q', 'F', 'I', 0xfb}}, // qcow (version 1) has the same; both are QEMU's
	{"qed", 0, []byte{'Q', 'E', 'D', 0}},
	{"vmdk", 0, []byte("KDMV")},
	{"vhdx", 0, []byte("vhdxfile")},
	{"vdi", 0x40, []byte{0x7f, 0x10, 0xda, 0xbe}}, // 0xbeda107f, little-endian
	{"vpc", 0, []byte("conectix")},                // a dynamic VHD's copy of its footer (a fixed VHD's data is raw)
}

// FormatError is Open's error for an image in a format ember does not
// serve (not raw, not qcow2), unless Format said raw.
type FormatError struct {
	Path   string
	Format string // the format found, e.g. "vmdk"
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("virtio-blk: %s is a %s image, and ember serves raw and qcow2 images: convert it "+
		"(qemu-img convert -O raw %s %s.raw), or, if it is a raw disk whose guest wrote a %s signature at its start, "+
		"give format=raw", e.Path, e.Format, e.Path, e.Path, e.Format)
}

// probeFormat returns the name of the format whose signature the image at
// path begins with, or "" for none (a raw image).
func probeFormat(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, probeLen)
	n, err := f.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("reading %s's first sector: %w", path, err)
	}
	return formatOf(head[:n]), nil
}

// formatOf returns the format whose signature head, an image's first
// bytes, has, or "".
func formatOf(head []byte) string {
	for _, s := range signatures {
		if len(head) >= s.off+len(s.magic) && bytes.Equal(head[s.off:s.off+len(s.magic)], s.magic) {
			return s.format
		}
	}
	return ""
}

// CheckFormat is Open's check of cfg.Format against the image at
// cfg.Path: nil for a raw or a qcow2 image, or for any image with
// FormatRaw; a FormatError for an image in another format. A program that
// wants to refuse such an image before it builds a VM (as `ember run`
// does) calls it first.
func CheckFormat(cfg Config) error {
	format, err := formatOfImage(cfg)
	if err == nil && format == FormatQcow2 {
		err = checkQcow2(cfg)
	}
	return err
}

// formatOfImage returns the format to serve the image at cfg.Path as,
// FormatRaw or FormatQcow2, from cfg.Format and the image's signature; a
// qcow2 image's header is Open's to check (or CheckFormat's).
func formatOfImage(cfg Config) (string, error) {
	switch cfg.Format {
	case FormatRaw:
		return FormatRaw, nil
	case "", FormatQcow2:
	default:
		return "", fmt.Errorf("virtio-blk: format %q: ember serves raw and qcow2 images", cfg.Format)
	}
	format, err := probeFormat(cfg.Path)
	if err != nil {
		return "", fmt.Errorf("virtio-blk: %w", err)
	}
	switch {
	case format == FormatQcow2 && cfg.Direct:
		return "", fmt.Errorf("virtio-blk: %s is a qcow2 image: cache=none serves raw images only", cfg.Path)
	case format == FormatQcow2:
		return FormatQcow2, nil
	case cfg.Format == FormatQcow2:
		return "", fmt.Errorf("virtio-blk: format=qcow2, but %s is not a qcow2 image", cfg.Path)
	case format != "":
		return "", &FormatError{Path: cfg.Path, Format: format}
	}
	return FormatRaw, nil
}

// checkQcow2 opens the qcow2 image at cfg.Path read-only and checks that
// it can be served as cfg asks, changing nothing.
func checkQcow2(cfg Config) error {
	f, err := os.Open(cfg.Path)
	if err != nil {
		return fmt.Errorf("virtio-blk: %w", err)
	}
	defer f.Close()
	if err := qcow2.Check(f, cfg.ReadOnly); err != nil {
		return fmt.Errorf("virtio-blk: %s: %w", cfg.Path, err)
	}
	return nil
}
