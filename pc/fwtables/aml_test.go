package fwtables

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestAMLEncoding checks the encoders against byte sequences from the ACPI
// specification's examples and the rules of §20.2.
func TestAMLEncoding(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want []byte
	}{
		{"one-byte PkgLength", amlPkgLength(10), []byte{11}},
		{"two-byte PkgLength", amlPkgLength(100), []byte{0x40 | (102 & 0xf), 102 >> 4}},
		{"three-byte PkgLength", amlPkgLength(5000), []byte{0x80 | (5003 & 0xf), 5003 >> 4 & 0xff, 5003 >> 12}},
		{"root name", amlNameString(`\_S5`), []byte{'\\', '_', 'S', '5', '_'}},
		{"dual name", amlNameString(`\_SB.PCI0`), []byte{'\\', 0x2e, '_', 'S', 'B', '_', 'P', 'C', 'I', '0'}},
		{"zero", amlInteger(0), []byte{0}},
		{"word", amlInteger(0x1234), []byte{0x0b, 0x34, 0x12}},
		{"PNP0A03", amlEISAID("PNP0A03"), []byte{0x0c, 0x41, 0xd0, 0x0a, 0x03}},
		{"package", amlPackage(amlInteger(5), amlInteger(0)), []byte{0x12, 5, 2, 0x0a, 5, 0}},
	}
	for _, tt := range tests {
		if !bytes.Equal(tt.got, tt.want) {
			t.Errorf("%s: % x, want % x", tt.name, tt.got, tt.want)
		}
	}
}

// TestDSDTDisassembles has ACPICA's own disassembler (iasl, from Debian's
// acpica-tools, which .ci/run installs) read the DSDT back, so the AML is
// checked by the same interpreter family Linux runs.
func TestDSDTDisassembles(t *testing.T) {
	iasl, err := exec.LookPath("iasl")
	if err != nil {
		t.Skip("iasl not installed (apt-get install acpica-tools; .ci/run installs it)")
	}
	dir := t.TempDir()
	aml := filepath.Join(dir, "dsdt.aml")
	if err := os.WriteFile(aml, acpiDSDT(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(iasl, "-d", aml).CombinedOutput()
	if err != nil {
		t.Fatalf("iasl -d: %v\n%s", err, out)
	}
	dsl, err := os.ReadFile(filepath.Join(dir, "dsdt.dsl"))
	if err != nil {
		t.Fatalf("iasl wrote no dsdt.dsl: %v\n%s", err, out)
	}
	// Compare without iasl's comments and layout.
	text := regexp.MustCompile(`(?s)/\*.*?\*/|//[^\n]*`).ReplaceAllString(string(dsl), "")
	text = strings.ReplaceAll(strings.Join(strings.Fields(text), " "), " )", ")")
	for _, want := range []string{
		`Device (PCI0) { Name (_HID, EisaId ("PNP0A03")) Name (_UID, Zero) Name (_BBN, Zero)`,
		`WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode, 0x0000, 0x0000, 0x00FF, 0x0000, 0x0100,`,
		`IO (Decode16, 0x0CF8, 0x0CF8, 0x01, 0x08,)`,
		`WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, 0x0000, 0x0000, 0x0CF7, 0x0000, 0x0CF8,`,
		`WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, 0x0000, 0x0D00, 0xFFFF, 0x0000, 0xF300,`,
		`DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite, 0x00000000, 0xC0000000, 0xFEBFFFFF, 0x00000000, 0x3EC00000,`,
		`Name (\_S3, Package (0x04) { One, One, Zero, Zero })`,
		`Name (\_S5, Package (0x04) { 0x05, 0x05, Zero, Zero })`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("disassembled DSDT lacks %q:\n%s", want, dsl)
		}
	}
}
