package testlog

import (
	"context"
	"log/slog"
	"time"
)

// Records is a slog.Handler that sends each record to the channel it is, so
// a test can wait for what a device logs. A full channel drops the record:
// a test that stopped listening must not block the device.
type Records chan slog.Record

// NewRecords returns a logger feeding a Records of capacity n, and the
// Records.
func NewRecords(n int) (*slog.Logger, Records) {
	r := make(Records, n)
	return slog.New(r), r
}

// Enabled is true for every level.
func (r Records) Enabled(context.Context, slog.Level) bool { return true }

// Handle sends a copy of rec, or drops it if the channel is full.
func (r Records) Handle(_ context.Context, rec slog.Record) error {
	select {
	case r <- rec.Clone():
	default:
	}
	return nil
}

// WithAttrs returns r: attributes are not kept.
func (r Records) WithAttrs([]slog.Attr) slog.Handler { return r }

// WithGroup returns r: groups are not kept.
func (r Records) WithGroup(string) slog.Handler { return r }

// Next waits up to d for a record at level or above, skipping lower ones.
func (r Records) Next(level slog.Level, d time.Duration) (slog.Record, bool) {
	deadline := time.After(d)
	for {
		select {
		case rec := <-r:
			if rec.Level >= level {
				return rec, true
			}
		case <-deadline:
			return slog.Record{}, false
		}
	}
}
