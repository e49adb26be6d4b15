package trigger

import (
	"os"
	"runtime/debug"
)

// The trigger service's collector settings, unless GOGC or GOMEMLIMIT are
// set in its environment. Its live heap is small (the dedup index, the
// messages in flight) while the AMQP client allocates a few kilobytes per
// message, so at Go's default GOGC of 100 the collector ran every few
// megabytes and cost the relay about a sixth of its CPU. At 400 the relay
// kept 70-72 % of the broker's ceiling where it kept 66-67 %
// (BenchmarkRelayAMQP, interleaved runs). The memory limit keeps a large
// dedup index from growing the heap fivefold: near it, the collector runs
// as often as it must.
const (
	GCPercent     = 400
	GCMemoryLimit = 1 << 30
)

// TuneGC applies GCPercent and GCMemoryLimit to this process, each unless
// the environment sets its own. The trigger command calls it; a process
// running other roles beside the trigger keeps Go's defaults.
func TuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(GCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(GCMemoryLimit)
	}
}
