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

// TestOpenRefusesImagesInOtherFormats: a VMDK (or a VHDX, VDI, QED)
// given as a disk is refused with a FormatError naming the format and the
// way out, instead of the guest getting the format's tables as its disk;
// format=raw serves it as it is.
func TestOpenRefusesImagesInOtherFormats(t *testing.T) {
	for _, tt := range []struct {
		name   string
		off    int
		head   []byte
		format string // "" for a raw image Open serves
	}{
		{"raw, zeros", 0, nil, ""},
		{"raw, an MBR", 0x1fe, []byte{0x55, 0xaa}, ""},
		{"raw, QFI without the 0xfb", 0, []byte("QFI "), ""},
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
// probed without error (a qcow2 signature and nothing after it is a
// qcow2 image that says no version), and a format named that ember does
// not serve is refused before anything is opened.
func TestOpenShortImages(t *testing.T) {
	dir := t.TempDir()
	for _, b := range [][]byte{nil, {'Q', 'F'}, {'Q', 'F', 'I', 0xfb}} {
		path := filepath.Join(dir, "short.img")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		d, err := Open(Config{Path: path})
		if len(b) == 4 {
			if err == nil || !strings.Contains(err.Error(), "qcow2: not supported: version 0") {
				t.Fatalf("a 4-byte qcow2 signature: Open = %v, want qcow2's refusal", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("a %d-byte image: %v", len(b), err)
		}
		d.Close()
	}
	if _, err := Open(Config{Path: filepath.Join(dir, "short.img"), Format: "vmdk"}); err == nil || !strings.Contains(err.Error(), "raw and qcow2 images") {
		t.Fatalf("format vmdk: Open = %v, want a refusal", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "raw.img"), make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Config{Path: filepath.Join(dir, "raw.img"), Format: FormatQcow2}); err == nil || !strings.Contains(err.Error(), "not a qcow2 image") {
		t.Fatalf("format qcow2 on a raw image: Open = %v, want a refusal", err)
	}
}

// TestOpenRefusesQEMUImages: images qemu-img makes in each format it
// writes are refused as that format, and its raw and qcow2 images are
// served, each as the 16 MiB disk it was made.
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
		served := format == "raw" || format == "qcow2"
		switch {
		case served && err != nil:
			t.Fatalf("qemu-img's %s image refused: %v", format, err)
		case served:
			if d.sectors != 16<<20/SectorSize {
				t.Errorf("qemu-img's %s image served as %d sectors, want %d", format, d.sectors, 16<<20/SectorSize)
			}
			d.Close()
		case !errors.As(err, &fe) || fe.Format != format:
			t.Errorf("qemu-img's %s image: Open = %v, want a FormatError for %s", format, err, format)
		}
	}
}
