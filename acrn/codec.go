package acrn

import "ember/acrn/internal/cabi"

// ErrShortBuffer is wrapped by every Decode or Encode given fewer bytes than
// the structure's C size. Guest-supplied lengths are hostile, so a short
// buffer is an error, never a panic. (Package acrn/iorequest's wrap it too.)
var ErrShortBuffer = cabi.ErrShortBuffer

// ErrInvalid is wrapped by validation errors: a field holds a value the ABI
// does not define (an unknown I/O request type or state, an access size the
// hardware cannot produce, and so on). (Package acrn/iorequest's wrap it too.)
var ErrInvalid = cabi.ErrInvalid

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
