package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestRunBootSaysWhenOutOfTime: a boot that runs past its time-out is
// reported as out of time, not by the exit status its kill left (for ember,
// Go's 2 after reportStuck's SIGQUIT, which reads as a crash); one that
// fails on its own keeps its own error.
func TestRunBootSaysWhenOutOfTime(t *testing.T) {
	tests := []struct {
		name    string
		argv    []string
		want    string
		wantNot string
	}{
		{"out of time", []string{"sleep", "30"}, "out of time after 200ms", ""},
		{"failed by itself", []string{"sh", "-c", "exit 3"}, "exit status 3", "out of time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runBoot(context.Background(), tt.argv, 200*time.Millisecond)
			if err == nil || !strings.Contains(err.Error(), tt.want) || (tt.wantNot != "" && strings.Contains(err.Error(), tt.wantNot)) {
				t.Errorf("runBoot(%q) error %v; want one saying %q", tt.argv, err, tt.want)
			}
		})
	}
}
