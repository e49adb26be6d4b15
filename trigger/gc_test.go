package trigger

import (
	"runtime/debug"
	"testing"
)

func TestTuneGCLeavesTheEnvironmentsSettings(t *testing.T) {
	gcPercent := debug.SetGCPercent(100)
	memLimit := debug.SetMemoryLimit(-1)
	defer func() { debug.SetGCPercent(gcPercent); debug.SetMemoryLimit(memLimit) }()

	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	TuneGC()
	if got := debug.SetGCPercent(100); got != GCPercent {
		t.Errorf("GOGC unset: the collector runs at %d, want %d", got, GCPercent)
	}
	if got := debug.SetMemoryLimit(-1); got != GCMemoryLimit {
		t.Errorf("GOMEMLIMIT unset: the limit is %d, want %d", got, GCMemoryLimit)
	}

	// An operator's GOGC and GOMEMLIMIT win (the runtime read them at start).
	debug.SetGCPercent(150)
	debug.SetMemoryLimit(2 << 30)
	t.Setenv("GOGC", "150")
	t.Setenv("GOMEMLIMIT", "2GiB")
	TuneGC()
	if got := debug.SetGCPercent(100); got != 150 {
		t.Errorf("GOGC=150: the collector runs at %d", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 2<<30 {
		t.Errorf("GOMEMLIMIT=2GiB: the limit is %d", got)
	}
}
