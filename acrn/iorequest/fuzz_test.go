package iorequest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"testing"

	"ember/acrn"
	"ember/internal/fuzzseed"
)

// ioreqSeeds are well-formed requests of each type, the starting points the
// fuzzer mutates.
func ioreqSeeds() [][]byte {
	var seeds [][]byte
	var r IORequest
	r.SetPIO(PIORequest{Direction: DirWrite, Address: 0x3f8, Size: 1, Value: 'x'})
	r.Processed = StatePending
	seeds = append(seeds, acrn.Marshal(&r))
	r.SetMMIO(MMIORequest{Direction: DirRead, Address: 0xfebff000, Size: 4})
	r.Processed = StateProcessing
	seeds = append(seeds, acrn.Marshal(&r))
	r.SetMMIO(MMIORequest{Direction: DirWrite, Address: 0x100000, Size: 8, Value: 1})
	r.Type = ReqWP
	r.Processed = StateComplete
	seeds = append(seeds, acrn.Marshal(&r))
	r.SetPCI(PCIRequest{Direction: DirRead, Size: 4, Bus: 0, Dev: 2, Func: 0, Reg: 0x10})
	r.Processed = StateFree
	seeds = append(seeds, acrn.Marshal(&r))
	return seeds
}

// FuzzDecodeIORequest feeds arbitrary bytes, as a hostile Service VM could
// leave them in a request slot, to Decode and Validate: they must never
// panic, a short slot must be refused, and whatever decodes must survive an
// encode/decode round trip unchanged.
func FuzzDecodeIORequest(f *testing.F) {
	for _, s := range ioreqSeeds() {
		f.Add(s)
	}
	f.Add([]byte{})
	f.Add(make([]byte, IORequestSize-1))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r IORequest
		err := r.Decode(b)
		if len(b) < IORequestSize {
			if !errors.Is(err, acrn.ErrShortBuffer) {
				t.Fatalf("Decode(%d bytes) = %v, want ErrShortBuffer", len(b), err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Decode(%d bytes): %v", len(b), err)
		}
		if verr := r.Validate(); verr != nil && !errors.Is(verr, acrn.ErrInvalid) {
			t.Fatalf("Validate() = %v, want nil or ErrInvalid", verr)
		}
		_ = r.PIO()
		_ = r.MMIO()
		_ = r.PCI()
		out := acrn.Marshal(&r)
		if !bytes.Equal(out[:StateOffset+4], b[:StateOffset+4]) {
			t.Fatalf("round trip changed the request:\n in %x\nout %x", b[:StateOffset+4], out[:StateOffset+4])
		}
		var again IORequest
		if err := again.Decode(out); err != nil || again != r {
			t.Fatalf("second decode: %v, %+v != %+v", err, again, r)
		}
	})
}

// TestWriteFuzzCorpus regenerates the committed seed corpus under
// testdata/fuzz from the seeds above when ACRN_WRITE_CORPUS=1, so the
// corpus stays reproducible from code rather than an opaque blob.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("ACRN_WRITE_CORPUS") != "1" {
		t.Skip("set ACRN_WRITE_CORPUS=1 to rewrite testdata/fuzz seeds")
	}
	for i, s := range ioreqSeeds() {
		fuzzseed.Write(t, "FuzzDecodeIORequest", fmt.Sprintf("seed-%s", []string{"pio", "mmio", "wp", "pci"}[i]), fmt.Sprintf("[]byte(%q)", s))
	}
	fuzzseed.Write(t, "FuzzDecodeIORequest", "seed-short", fmt.Sprintf("[]byte(%q)", make([]byte, IORequestSize-1)))
}
