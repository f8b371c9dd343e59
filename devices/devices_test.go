package devices_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"ember/devices"
)

func TestAnomaliesLogFirstAtWarnThenCount(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a := devices.NewAnomalies(logger, "test")
	for range 3 {
		a.Report("bad size", "size", 3)
	}
	a.Report("bad offset")
	if n := strings.Count(buf.String(), "level=WARN"); n != 2 {
		t.Errorf("%d warnings logged, want one per kind:\n%s", n, buf.String())
	}
	if !strings.Contains(buf.String(), "device=test") {
		t.Errorf("log lacks the device name:\n%s", buf.String())
	}
	got := a.Counts()
	if got["bad size"] != 3 || got["bad offset"] != 1 {
		t.Errorf("counts = %v", got)
	}
}

func TestFillOnes(t *testing.T) {
	data := []byte{1, 2, 3, 4}
	devices.FillOnes(data)
	if !bytes.Equal(data, []byte{0xff, 0xff, 0xff, 0xff}) {
		t.Errorf("FillOnes = % x", data)
	}
}

func TestIRQFunc(t *testing.T) {
	var levels []bool
	var line devices.IRQLine = devices.IRQFunc(func(high bool) { levels = append(levels, high) })
	line.SetLevel(true)
	line.SetLevel(false)
	if len(levels) != 2 || !levels[0] || levels[1] {
		t.Errorf("levels = %v", levels)
	}
}
