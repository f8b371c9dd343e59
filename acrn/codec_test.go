package acrn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"

	"ember/acrn/iorequest"
)

// allCodecs returns a fresh zero value of every ABI structure.
func allCodecs() []Codec {
	var out []Codec
	for _, lc := range append(append([]layoutCase(nil), hsmCases...), hvCases...) {
		out = append(out, reflect.New(reflect.TypeOf(lc.v).Elem()).Interface().(Codec))
	}
	return out
}

func typeName(v Codec) string { return reflect.TypeOf(v).Elem().Name() }

// exactBytes marks the bytes of v's encoding that a decode/encode round trip
// must preserve: every named field except bools (which encode as 0 or 1) and
// compiler padding (which encodes as 0).
func exactBytes(v Codec) []bool {
	mask := make([]bool, v.SizeOf())
	var walk func(t reflect.Type, off int)
	walk = func(t reflect.Type, off int) {
		for i := range t.NumField() {
			f := t.Field(i)
			size := binary.Size(reflect.Zero(f.Type).Interface())
			if f.Name != "_" {
				switch {
				case f.Type.Kind() == reflect.Struct:
					walk(f.Type, off)
				case f.Type.Kind() == reflect.Array && f.Type.Elem().Kind() == reflect.Struct:
					es := size / f.Type.Len()
					for j := range f.Type.Len() {
						walk(f.Type.Elem(), off+j*es)
					}
				case f.Type.Kind() == reflect.Bool:
				default:
					for j := range size {
						mask[off+j] = true
					}
				}
			}
			off += size
		}
	}
	walk(reflect.TypeOf(v).Elem(), 0)
	return mask
}

// TestCodecRoundTrip decodes random bytes into every structure, encodes it
// again, and checks that each named field's bytes survive, padding comes back
// zero, and a second decode gives the same value.
func TestCodecRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, v := range allCodecs() {
		t.Run(typeName(v), func(t *testing.T) {
			for range 20 {
				in := make([]byte, v.SizeOf())
				for i := range in {
					in[i] = byte(rng.Uint32())
				}
				if err := v.Decode(in); err != nil {
					t.Fatalf("Decode: %v", err)
				}
				out := Marshal(v)
				mask := exactBytes(v)
				for i := range in {
					if mask[i] && in[i] != out[i] {
						t.Fatalf("byte %d: decoded %#x, re-encoded %#x", i, in[i], out[i])
					}
				}
				again := reflect.New(reflect.TypeOf(v).Elem()).Interface().(Codec)
				if err := again.Decode(out); err != nil {
					t.Fatalf("second Decode: %v", err)
				}
				if !reflect.DeepEqual(v, again) {
					t.Fatalf("round trip changed the value:\n%+v\n%+v", v, again)
				}
				if out2 := Marshal(again); !bytes.Equal(out, out2) {
					t.Fatalf("encoding is not a fixed point")
				}
			}
		})
	}
}

// TestCodecShortBuffer checks that every structure refuses, with
// ErrShortBuffer and without panicking, to decode from or encode to a buffer
// shorter than its C size, and that a longer buffer is used only up to it.
func TestCodecShortBuffer(t *testing.T) {
	for _, v := range allCodecs() {
		t.Run(typeName(v), func(t *testing.T) {
			size := v.SizeOf()
			for _, n := range []int{0, 1, size / 2, size - 1} {
				if err := v.Decode(make([]byte, n)); !errors.Is(err, ErrShortBuffer) {
					t.Errorf("Decode(%d bytes) = %v, want ErrShortBuffer", n, err)
				}
				if err := v.Encode(make([]byte, n)); !errors.Is(err, ErrShortBuffer) {
					t.Errorf("Encode(%d bytes) = %v, want ErrShortBuffer", n, err)
				}
			}
			if err := v.Decode(nil); !errors.Is(err, ErrShortBuffer) {
				t.Errorf("Decode(nil) = %v, want ErrShortBuffer", err)
			}
			long := bytes.Repeat([]byte{0xA5}, size+16)
			if err := v.Decode(long); err != nil {
				t.Fatalf("Decode(%d bytes): %v", len(long), err)
			}
			if err := v.Encode(long); err != nil {
				t.Fatalf("Encode(%d bytes): %v", len(long), err)
			}
			for i := size; i < len(long); i++ {
				if long[i] != 0xA5 {
					t.Fatalf("Encode wrote byte %d, beyond the structure's %d bytes", i, size)
				}
			}
		})
	}
}

// TestHandCodecsMatchBinary checks the hand-written codecs of the I/O
// request types against encoding/binary's encoding of the same Go struct,
// whose layout the layout tests tie to the C header.
func TestHandCodecsMatchBinary(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	fill := func(v any) {
		rv := reflect.ValueOf(v).Elem()
		var set func(f reflect.Value)
		set = func(f reflect.Value) {
			switch f.Kind() {
			case reflect.Struct:
				for i := range f.NumField() {
					if f.Type().Field(i).Name != "_" {
						set(f.Field(i))
					}
				}
			case reflect.Array:
				for i := range f.Len() {
					set(f.Index(i))
				}
			case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
				f.SetUint(rng.Uint64())
			}
		}
		set(rv)
	}
	for _, v := range []Codec{&iorequest.IORequest{}, &iorequest.PIORequest{}, &iorequest.MMIORequest{}, &iorequest.PCIRequest{}, &iorequest.IORequestBuffer{}} {
		t.Run(typeName(v), func(t *testing.T) {
			for range 20 {
				fill(v)
				want := make([]byte, v.SizeOf())
				if _, err := binary.Encode(want, binary.LittleEndian, v); err != nil {
					t.Fatal(err)
				}
				got := bytes.Repeat([]byte{0xFF}, v.SizeOf())
				if err := v.Encode(got); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("hand encoding differs from encoding/binary:\n got %x\nwant %x", got, want)
				}
				back := reflect.New(reflect.TypeOf(v).Elem()).Interface()
				if _, err := binary.Decode(want, binary.LittleEndian, back); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(back, v) {
					t.Fatalf("encoding/binary decodes to %+v, want %+v", back, v)
				}
			}
		})
	}
}

func TestMarshalSize(t *testing.T) {
	for _, v := range allCodecs() {
		if got := len(Marshal(v)); got != v.SizeOf() {
			t.Errorf("%s: Marshal gives %d bytes, SizeOf %d", typeName(v), got, v.SizeOf())
		}
	}
}
