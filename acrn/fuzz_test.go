package acrn

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"testing"

	"ember/internal/fuzzseed"
)

// FuzzDecodeABI decodes arbitrary bytes, as a guest could place them behind a
// hypercall's GPA parameter, into the structure the first byte selects.
func FuzzDecodeABI(f *testing.F) {
	codecs := allCodecs()
	for i, v := range codecs {
		f.Add(append([]byte{byte(i)}, Marshal(v)...))
		f.Add([]byte{byte(i), 0xff})
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		proto := codecs[int(b[0])%len(codecs)]
		v := reflect.New(reflect.TypeOf(proto).Elem()).Interface().(Codec)
		b = b[1:]
		err := v.Decode(b)
		if len(b) < v.SizeOf() {
			if !errors.Is(err, ErrShortBuffer) {
				t.Fatalf("%s: Decode(%d bytes) = %v, want ErrShortBuffer", typeName(v), len(b), err)
			}
			return
		}
		if err != nil {
			t.Fatalf("%s: Decode: %v", typeName(v), err)
		}
		again := reflect.New(reflect.TypeOf(proto).Elem()).Interface().(Codec)
		if err := again.Decode(Marshal(v)); err != nil || !reflect.DeepEqual(v, again) {
			t.Fatalf("%s: round trip: %v\n%+v\n%+v", typeName(v), err, v, again)
		}
	})
}

// FuzzResultError checks that any RAX value maps to nil or an Errno whose
// Result gives the value back (for sign-extended 32-bit results).
func FuzzResultError(f *testing.F) {
	f.Add(uint64(0))
	f.Add(EINVAL.Result())
	f.Add(uint64(0x80000000))
	f.Fuzz(func(t *testing.T, rax uint64) {
		err := ResultError(rax)
		if int32(rax) >= 0 {
			if err != nil {
				t.Fatalf("ResultError(%#x) = %v, want nil", rax, err)
			}
			return
		}
		var e Errno
		if !errors.As(err, &e) {
			t.Fatalf("ResultError(%#x) = %v, want an Errno", rax, err)
		}
		if int32(e.Result()) != int32(rax) {
			t.Fatalf("ResultError(%#x) = %d, whose Result is %#x", rax, e, e.Result())
		}
	})
}

// TestWriteFuzzCorpus regenerates the committed seed corpus under
// testdata/fuzz from the seeds above when ACRN_WRITE_CORPUS=1, so the
// corpus stays reproducible from code rather than an opaque blob. The
// I/O request's corpus is package acrn/iorequest's.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("ACRN_WRITE_CORPUS") != "1" {
		t.Skip("set ACRN_WRITE_CORPUS=1 to rewrite testdata/fuzz seeds")
	}
	for i, v := range allCodecs() {
		fuzzseed.Write(t, "FuzzDecodeABI", "seed-"+typeName(v), fmt.Sprintf("[]byte(%q)", append([]byte{byte(i)}, Marshal(v)...)))
	}
	fuzzseed.Write(t, "FuzzResultError", "seed-einval", fmt.Sprintf("uint64(%d)", EINVAL.Result()))
}
