package threadstat

import (
	"testing"
	"time"
)

// TestParseGuestTime reads field 43 of /proc/PID/task/TID/stat, with a
// command name that holds spaces and parentheses, and gives 0 for a line
// that is cut short.
func TestParseGuestTime(t *testing.T) {
	line := func(comm string) string {
		s := "1234 (" + comm + ") S"
		for i := 4; i <= 52; i++ {
			v := "0"
			if i == 43 {
				v = "250"
			}
			s += " " + v
		}
		return s
	}
	tests := []struct {
		name string
		in   string
		want time.Duration
	}{
		{"plain", line("ember"), 2500 * time.Millisecond},
		{"spaces and parens", line("a (b) c"), 2500 * time.Millisecond},
		{"short", "1234 (ember) S 1 2 3", 0},
		{"garbage", "no parenthesis here", 0},
	}
	for _, tt := range tests {
		if got := parseGuestTime([]byte(tt.in)); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}
