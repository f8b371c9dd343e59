package enumname

import "testing"

// TestOf: a named value prints as its name, any other as the prefix and
// its number.
func TestOf(t *testing.T) {
	type exit uint32
	names := map[exit]string{2: "KVM_EXIT_IO"}
	tests := []struct {
		v    exit
		want string
	}{
		{2, "KVM_EXIT_IO"},
		{99, "KVM_EXIT_99"},
	}
	for _, tt := range tests {
		if got := Of(names, tt.v, "KVM_EXIT_"); got != tt.want {
			t.Errorf("Of(%d) = %q, want %q", tt.v, got, tt.want)
		}
	}
}
