// Package enumname names the values of a kernel ABI's numbered constants
// (KVM's capabilities and exit reasons) for messages: the name a table
// gives, or the prefix and the number for a value the table does not know
// — a newer kernel's — so an unknown value still prints as something a
// reader can look up.
package enumname

import "fmt"

// Of returns v's name from names, or prefix followed by v's decimal number.
func Of[T ~uint8 | ~uint16 | ~uint32 | ~uint64](names map[T]string, v T, prefix string) string {
	if n, ok := names[v]; ok {
		return n
	}
	return fmt.Sprintf("%s%d", prefix, uint64(v))
}
