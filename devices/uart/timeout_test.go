package uart

import (
	"testing"
	"time"
)

func TestCharacterTimeoutIsFourCharacterTimes(t *testing.T) {
	tests := []struct {
		name     string
		dlm, dll byte
		lcr      byte
		want     time.Duration
	}{
		{"115200 baud 8N1: 4 x 10 bits", 0, 1, 0x03, 4 * 10 * time.Second / 115200},
		{"9600 baud 8N1", 0, 12, 0x03, 4 * 10 * 12 * time.Second / 115200},
		{"9600 baud 7E2: 1+7+1+2 bits", 0, 12, 0x02 | LCRParity | LCRStop, 4 * 11 * 12 * time.Second / 115200},
		{"divisor 0 counts as 65536", 0, 0, 0x03, 4 * 10 * 65536 * time.Second / 115200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := New(Config{})
			u.dlm, u.dll, u.lcr = tt.dlm, tt.dll, tt.lcr
			if got := u.charTimeout(); got != tt.want {
				t.Errorf("timeout = %v, want %v", got, tt.want)
			}
		})
	}
}
