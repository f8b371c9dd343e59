package blk

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// imageWith returns a 64 KiB image file whose first bytes are head (at off).
func imageWith(t *testing.T, off int, head []byte) string {
	t.Helper()
	b := make([]byte, 64<<10)
	copy(b[off:], head)
	path := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestOpenRefusesImagesInOtherFormats: a qcow2 image (or a VMDK, VHDX,
// VDI, QED) given as a disk is refused with a FormatError naming the
// format and the way out, instead of the guest getting the format's
// tables as its disk; format=raw serves it as it is.
func TestOpenRefusesImagesInOtherFormats(t *testing.T) {
	qcow2v3 := []byte{'Q', 'F', 'I', 0xfb, 0, 0, 0, 3}
	for _, tt := range []struct {
		name   string
		off    int
		head   []byte
		format string // "" for a raw image Open serves
	}{
		{"raw, zeros", 0, nil, ""},
		{"raw, an MBR", 0x1fe, []byte{0x55, 0xaa}, ""},
		{"raw, QFI without the 0xfb", 0, []byte("QFI "), ""},
		{"qcow2", 0, qcow2v3, "qcow2"},
		{"qed", 0, []byte{'Q', 'E', 'D', 0}, "qed"},
		{"vmdk", 0, []byte("KDMV\x01\x00\x00\x00"), "vmdk"},
		{"vhdx", 0, []byte("vhdxfile"), "vhdx"},
		{"vdi", 0x40, []byte{0x7f, 0x10, 0xda, 0xbe}, "vdi"},
		{"vdi's signature elsewhere", 0x44, []byte{0x7f, 0x10, 0xda, 0xbe}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := imageWith(t, tt.off, tt.head)
			d, err := Open(Config{Path: path})
			var fe *FormatError
			switch {
			case tt.format == "" && err != nil:
				t.Fatalf("a raw image refused: %v", err)
			case tt.format == "":
				d.Close()
			case !errors.As(err, &fe) || fe.Format != tt.format || fe.Path != path:
				t.Fatalf("Open = %v, want a FormatError for %s", err, tt.format)
			case !strings.Contains(err.Error(), "qemu-img convert -O raw") || !strings.Contains(err.Error(), "format=raw"):
				t.Fatalf("the error does not say what to do: %v", err)
			}
			d, err = Open(Config{Path: path, Format: FormatRaw})
			if err != nil {
				t.Fatalf("format=raw refused: %v", err)
			}
			defer d.Close()
			if got := d.sectors; got != 64<<10/SectorSize {
				t.Fatalf("format=raw serves %d sectors, want the file's %d", got, 64<<10/SectorSize)
			}
		})
	}
}

// TestOpenShortImages: an image shorter than a sector (even empty) is
// probed without error, and a format named that ember does not serve is
// refused before anything is opened.
func TestOpenShortImages(t *testing.T) {
	dir := t.TempDir()
	for _, b := range [][]byte{nil, {'Q', 'F'}, {'Q', 'F', 'I', 0xfb}} {
		path := filepath.Join(dir, "short.img")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		d, err := Open(Config{Path: path})
		if len(b) == 4 {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("a 4-byte qcow2 signature: Open = %v, want a FormatError", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("a %d-byte image: %v", len(b), err)
		}
		d.Close()
	}
	if _, err := Open(Config{Path: filepath.Join(dir, "short.img"), Format: "qcow2"}); err == nil || !strings.Contains(err.Error(), "raw images") {
		t.Fatalf("format qcow2: Open = %v, want a refusal", err)
	}
}

// TestOpenRefusesQEMUImages: images qemu-img makes in each format it
// writes are refused as that format, and its raw image is served.
func TestOpenRefusesQEMUImages(t *testing.T) {
	qemuImg, err := exec.LookPath("qemu-img")
	if err != nil {
		t.Skip("qemu-img not installed (apt-get install qemu-utils; .ci/run installs it)")
	}
	dir := t.TempDir()
	for _, format := range []string{"qcow2", "qed", "vmdk", "vhdx", "vdi", "vpc", "raw"} {
		path := filepath.Join(dir, "disk."+format)
		if out, err := exec.Command(qemuImg, "create", "-q", "-f", format, path, "16M").CombinedOutput(); err != nil {
			t.Fatalf("qemu-img create -f %s: %v: %s", format, err, out)
		}
		d, err := Open(Config{Path: path})
		var fe *FormatError
		switch {
		case format == "raw" && err != nil:
			t.Fatalf("qemu-img's raw image refused: %v", err)
		case format == "raw":
			d.Close()
		case !errors.As(err, &fe) || fe.Format != format:
			t.Errorf("qemu-img's %s image: Open = %v, want a FormatError for %s", format, err, format)
		}
	}
}
