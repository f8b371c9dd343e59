package acrn

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrShortBuffer is wrapped by every Decode or Encode given fewer bytes than
// the structure's C size. Guest-supplied lengths are hostile, so a short
// buffer is an error, never a panic.
var ErrShortBuffer = errors.New("acrn: buffer too short")

// ErrInvalid is wrapped by validation errors: a field holds a value the ABI
// does not define (an unknown I/O request type or state, an access size the
// hardware cannot produce, and so on).
var ErrInvalid = errors.New("acrn: invalid value")

// Codec is implemented by every ABI structure in this package. SizeOf is the
// C sizeof; Encode writes exactly SizeOf bytes to the front of b; Decode
// reads exactly SizeOf bytes from the front of b. Bytes beyond that are not
// touched.
// Padding the C compiler inserts (as opposed to fields the header names
// "reserved") is written as zero and ignored when read.
type Codec interface {
	SizeOf() int
	Encode(b []byte) error
	Decode(b []byte) error
}

// Marshal returns a new SizeOf()-byte slice holding v in C layout.
func Marshal(v Codec) []byte {
	b := make([]byte, v.SizeOf())
	if err := v.Encode(b); err != nil {
		// Unreachable: b has exactly the size v asked for.
		panic(err)
	}
	return b
}

// shortError builds the error for a buffer of have bytes where the C
// structure name needs want.
func shortError(op, name string, want, have int) error {
	return fmt.Errorf("%w: %s %s needs %d bytes, have %d", ErrShortBuffer, op, name, want, have)
}

// encodeStruct writes v (a pointer to a fixed-size struct whose encoding/binary
// size equals size) into b.
func encodeStruct(b []byte, v any, size int, name string) error {
	if len(b) < size {
		return shortError("encode", name, size, len(b))
	}
	if _, err := binary.Encode(b[:size], binary.LittleEndian, v); err != nil {
		return fmt.Errorf("acrn: encode %s: %w", name, err)
	}
	return nil
}

// decodeStruct reads v (a pointer to a fixed-size struct whose encoding/binary
// size equals size) from b.
func decodeStruct(b []byte, v any, size int, name string) error {
	if len(b) < size {
		return shortError("decode", name, size, len(b))
	}
	if _, err := binary.Decode(b[:size], binary.LittleEndian, v); err != nil {
		return fmt.Errorf("acrn: decode %s: %w", name, err)
	}
	return nil
}

var le = binary.LittleEndian
