// Package cabi is what every package of ACRN's ABI structures shares: the
// errors a short buffer or an undefined value gives, and encoding a
// fixed-size Go struct in its C layout (little-endian, encoding/binary).
// Package acrn and package acrn/iorequest both build on it; acrn re-exports
// the errors, so a caller tests for either package's with acrn's.
package cabi

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

// LE is the byte order of every ACRN structure.
var LE = binary.LittleEndian

// ShortError builds the error for a buffer of have bytes where the C
// structure name needs want.
func ShortError(op, name string, want, have int) error {
	return fmt.Errorf("%w: %s %s needs %d bytes, have %d", ErrShortBuffer, op, name, want, have)
}

// EncodeStruct writes v (a pointer to a fixed-size struct whose
// encoding/binary size equals size) into b.
func EncodeStruct(b []byte, v any, size int, name string) error {
	if len(b) < size {
		return ShortError("encode", name, size, len(b))
	}
	if _, err := binary.Encode(b[:size], LE, v); err != nil {
		return fmt.Errorf("acrn: encode %s: %w", name, err)
	}
	return nil
}

// DecodeStruct reads v (a pointer to a fixed-size struct whose
// encoding/binary size equals size) from b.
func DecodeStruct(b []byte, v any, size int, name string) error {
	if len(b) < size {
		return ShortError("decode", name, size, len(b))
	}
	if _, err := binary.Decode(b[:size], LE, v); err != nil {
		return fmt.Errorf("acrn: decode %s: %w", name, err)
	}
	return nil
}
