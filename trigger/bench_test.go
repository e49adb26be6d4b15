package trigger

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/taskotron-go/taskotron/bus"
	"github.com/taskotron-go/taskotron/contract"
)

// One job per message, so that the relay does the same broker work per
// message as the pass-through ceiling: consume, publish persistent with a
// confirm, ack.
const benchRules = "- when: {message_type: KojiBuildPackageCompleted}\n  do: [{tasks: [rpmlint]}]\n"

const (
	benchMessages = 3000
	benchRounds   = 5
	benchPrefetch = 200
	steadyRate    = 500 // messages per second
	steadyFor     = 6 * time.Second
)

// BenchmarkRelayAMQP measures the relay against the real RabbitMQ: its
// throughput (message in → job confirmed → ack, dedup on SQLite), the
// broker's own ceiling for the same pattern measured in the same run (a
// bare amqp091 loop: consume, publish persistent with confirm, ack), and
// the relay's latency at a steady 500 messages/s. The goal is at least 70%
// of the ceiling.
func BenchmarkRelayAMQP(b *testing.B) {
	// The collector as `taskotron trigger` sets it (gc.go); the bare loop
	// runs in this process too, so the ceiling is measured with it.
	gcPercent := debug.SetGCPercent(100)
	debug.SetGCPercent(gcPercent)
	memLimit := debug.SetMemoryLimit(-1)
	TuneGC()
	defer func() { debug.SetGCPercent(gcPercent); debug.SetMemoryLimit(memLimit) }()
	for b.Loop() {
		// The machine is shared: the load changes while the benchmark runs,
		// so ceiling and relay are measured in turns and the medians compared.
		var ceilings, relays, noState []float64
		for range benchRounds {
			ceilings = append(ceilings, benchCeiling(b))
			relays = append(relays, benchRelayThroughput(b, true))
			noState = append(noState, benchRelayThroughput(b, false))
		}
		ceiling, relayRate := median(ceilings), median(relays)
		// Each round's relay run follows its ceiling run within seconds, so
		// their ratio sees nearly the same load on the shared machine.
		var paired []float64
		for i := range ceilings {
			paired = append(paired, 100*relays[i]/ceilings[i])
		}
		sent, rate, p50, p99 := benchRelaySteady(b)
		pct := 100 * relayRate / ceiling
		fmt.Fprintf(os.Stdout, "\n%-58s %12s\n", "relay benchmark (RabbitMQ on this machine)", "value")
		fmt.Fprintf(os.Stdout, "%-58s %9.0f/s  (rounds: %s)\n", "broker ceiling: consume → publish+confirm → ack (bare)", ceiling, rates(ceilings))
		fmt.Fprintf(os.Stdout, "%-58s %9.0f/s  (rounds: %s)\n", "relay throughput: message → job confirmed → ack", relayRate, rates(relays))
		fmt.Fprintf(os.Stdout, "%-58s %9.0f%%   (goal 70%%)\n", "relay / ceiling (medians)", pct)
		fmt.Fprintf(os.Stdout, "%-58s %9.0f%%   (rounds: %s)\n", "relay / ceiling (median of each round's ratio)", median(paired), rates(paired))
		fmt.Fprintf(os.Stdout, "%-58s %9.0f/s  (%.0f%% of ceiling; rounds: %s)\n", "  the same relay without dedup state (for comparison)", median(noState), 100*median(noState)/ceiling, rates(noState))
		fmt.Fprintf(os.Stdout, "%-58s %9s  (bare loop %s)\n", "CPU of this process per message, relay", relayCPU[len(relayCPU)-1].Round(time.Microsecond), ceilingCPU[len(ceilingCPU)-1].Round(time.Microsecond))
		fmt.Fprintf(os.Stdout, "%-58s %9s  (bare loop %s)\n", "CPU of the broker per message, relay", relayBrokerCPU[len(relayBrokerCPU)-1].Round(time.Microsecond), ceilingBrokerCPU[len(ceilingBrokerCPU)-1].Round(time.Microsecond))
		fmt.Fprintf(os.Stdout, "%-58s %9.0f/s  (sent at %.0f/s)\n", fmt.Sprintf("relay at a steady %d/s for %s: relayed", steadyRate, steadyFor), rate, sent)
		fmt.Fprintf(os.Stdout, "%-58s %9.2fms\n", "  latency p50 (publish of the message → its ack)", ms(p50))
		fmt.Fprintf(os.Stdout, "%-58s %9.2fms\n", "  latency p99", ms(p99))
		fmt.Fprintf(os.Stdout, "%-58s\n", "  (the ack's frame leaves within about 1 ms, with others)")
		fmt.Fprintf(os.Stdout, "%-58s %12s\n\n", "collector (both loops, as the trigger service runs)", gcSetting())
		b.ReportMetric(ceiling, "ceiling-msg/s")
		b.ReportMetric(relayRate, "relay-msg/s")
		b.ReportMetric(pct, "%-of-ceiling")
		b.ReportMetric(median(paired), "%-of-ceiling-paired")
		b.ReportMetric(ms(p50), "p50-ms@500/s")
		b.ReportMetric(ms(p99), "p99-ms@500/s")
	}
}

// gcSetting says how the collector runs in this process now.
func gcSetting() string {
	pct := debug.SetGCPercent(100)
	debug.SetGCPercent(pct)
	return fmt.Sprintf("GOGC %d, limit %d MiB", pct, debug.SetMemoryLimit(-1)>>20)
}

// cpuTime is this process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func rates(v []float64) string {
	var parts []string
	for _, x := range v {
		parts = append(parts, fmt.Sprintf("%.0f", x))
	}
	return strings.Join(parts, " ")
}

// CPU time per message spent in this process and in the broker, per round.
var ceilingCPU, relayCPU, ceilingBrokerCPU, relayBrokerCPU []time.Duration

// brokerCPU is the RabbitMQ server's user+system CPU time so far, or 0
// when its process cannot be read (another machine, another user).
func brokerCPU() time.Duration {
	out, err := exec.Command("pgrep", "-o", "beam.smp").Output()
	if err != nil {
		return 0
	}
	stat, err := os.ReadFile("/proc/" + strings.TrimSpace(string(out)) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name: utime and stime are the 12th and 13th.
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

type benchBroker struct {
	conn *amqp.Connection
	ch   *amqp.Channel
}

func openBenchBroker(b *testing.B) *benchBroker {
	conn, err := amqp.Dial(amqpURL())
	if err != nil {
		b.Fatalf("RabbitMQ at %s is needed: %v", amqpURL(), err)
	}
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	return &benchBroker{conn: conn, ch: ch}
}

func (bb *benchBroker) close(queues ...string) {
	for _, q := range queues {
		bb.ch.QueueDelete(q, false, false, false)
	}
	bb.conn.Close()
}

// preload puts n build messages on amq.topic (persistent, confirmed).
func preload(b *testing.B, f faultSetup, n int) {
	pub, err := bus.OpenAMQPPublisher(amqpURL(), "")
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	for i := 0; i < n; i += 200 {
		batch := make([]contract.Message, 0, 200)
		for j := i; j < min(i+200, n); j++ {
			batch = append(batch, f.message(j))
		}
		if err := pub.Publish(context.Background(), batch...); err != nil {
			b.Fatal(err)
		}
	}
}

func benchCeiling(b *testing.B) float64 {
	f := faultSetup{Prefix: fmt.Sprintf("bench-ceiling-%d", time.Now().UnixNano())}
	in, out := f.sourceQueue(), f.jobQueuePrefix()+".x86_64"
	bb := openBenchBroker(b)
	defer bb.close(in, out)
	if _, err := bb.ch.QueueDeclare(in, true, false, false, false, nil); err != nil {
		b.Fatal(err)
	}
	if err := bb.ch.QueueBind(in, f.Prefix+".#", "amq.topic", false, nil); err != nil {
		b.Fatal(err)
	}
	if _, err := bb.ch.QueueDeclare(out, true, false, false, false, amqp.Table{"x-max-priority": int32(9)}); err != nil {
		b.Fatal(err)
	}
	preload(b, f, benchMessages)

	cons, _ := bb.conn.Channel()
	cons.Qos(benchPrefetch, 0, false)
	pub, _ := bb.conn.Channel()
	pub.Confirm(false)
	msgs, err := cons.Consume(in, "", false, false, false, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	type pending struct {
		d  amqp.Delivery
		dc *amqp.DeferredConfirmation
	}
	queue := make(chan pending, benchPrefetch)
	done := make(chan struct{})
	go func() {
		n := 0
		for p := range queue {
			if ok, _ := p.dc.WaitContext(context.Background()); !ok {
				b.Error("ceiling: publish not confirmed")
			}
			p.d.Ack(false)
			if n++; n == benchMessages {
				close(done)
			}
		}
	}()
	bcpu0, cpu0 := brokerCPU(), cpuTime() // the broker's first: it runs pgrep
	start := time.Now()
	for n := 0; n < benchMessages; n++ {
		d := <-msgs
		dc, err := pub.PublishWithDeferredConfirmWithContext(context.Background(), "", out, false, false, amqp.Publishing{
			DeliveryMode: amqp.Persistent, ContentType: "application/json", Body: d.Body})
		if err != nil {
			b.Fatal(err)
		}
		queue <- pending{d, dc}
	}
	<-done
	elapsed := time.Since(start)
	ceilingCPU = append(ceilingCPU, (cpuTime()-cpu0)/benchMessages)
	ceilingBrokerCPU = append(ceilingBrokerCPU, (brokerCPU()-bcpu0)/benchMessages)
	close(queue)
	return benchMessages / elapsed.Seconds()
}

// relayRig runs the real relay between AMQP queues with SQLite dedup.
type relayRig struct {
	f      faultSetup
	cancel context.CancelFunc
	done   chan struct{}
	acked  atomic.Int64
	// noDedup runs the relay without dedup state, to show what it costs.
	noDedup bool
	// started is when the relay began, its connections open, its state
	// loaded and its consumer started: the ceiling's clock starts there too.
	started chan relayStart
	mu      sync.Mutex
	ackAt   map[string]time.Time
}

// relayStart is the clock and the process's CPU time when a relay began.
type relayStart struct {
	at        time.Time
	cpu       time.Duration
	brokerCPU time.Duration
}

func startRelay(b *testing.B, prefix string) *relayRig {
	r := &relayRig{f: faultSetup{Prefix: prefix, StateDB: filepath.Join(b.TempDir(), "state.sqlite")}, done: make(chan struct{}), ackAt: map[string]time.Time{}, started: make(chan relayStart, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	src, err := r.f.openSource(ctx, nil)
	if err != nil {
		b.Fatalf("RabbitMQ at %s is needed: %v", amqpURL(), err)
	}
	src.Close() // declared; the run opens it again
	return r
}

func (r *relayRig) run(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	src, err := bus.OpenAMQPSource(ctx, bus.AMQPSourceConfig{URL: amqpURL(), Queue: r.f.sourceQueue(), Topics: []string{r.f.Prefix + ".#"}, Prefetch: benchPrefetch})
	if err != nil {
		b.Fatal(err)
	}
	jobs, err := r.f.openJobs(ctx, false)
	if err != nil {
		b.Fatal(err)
	}
	store, err := OpenDedup(ctx, "sqlite:"+r.f.StateDB)
	if err != nil {
		b.Fatal(err)
	}
	rules, err := ParseRules("bench rules", []byte(benchRules), nil)
	if err != nil {
		b.Fatal(err)
	}
	jobLog, err := os.Create(filepath.Join(b.TempDir(), "jobs.jsonl"))
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		defer close(r.done)
		defer src.Close()
		defer jobs.Close()
		defer store.Close()
		defer jobLog.Close()
		opts := Options{Rules: rules, Dedup: store}
		if r.noDedup {
			opts.Dedup = nil
		}
		bcpu, cpu := brokerCPU(), cpuTime()
		r.started <- relayStart{at: time.Now(), cpu: cpu, brokerCPU: bcpu}
		RelayWith(ctx, src, New(opts), jobs, RelayOptions{
			Workers: benchPrefetch, JobLog: jobLog,
			OnOutcome: func(o MessageOutcome) {
				now := time.Now()
				if o.Outcome != OutcomeJobs {
					b.Errorf("message %s: %s %s", o.MsgID, o.Outcome, o.Reason)
				}
				r.mu.Lock()
				r.ackAt[o.MsgID] = now
				r.mu.Unlock()
				r.acked.Add(1)
			},
		})
	}()
}

func (r *relayRig) stop() {
	r.cancel()
	<-r.done
	bb, err := amqp.Dial(amqpURL())
	if err == nil {
		ch, _ := bb.Channel()
		for _, q := range []string{r.f.sourceQueue(), r.f.sourceQueue() + ".deadletter", r.f.jobQueuePrefix() + ".x86_64", r.f.jobQueuePrefix() + ".x86_64.host"} {
			ch.QueueDelete(q, false, false, false)
		}
		ch.ExchangeDelete(r.f.jobExchange(), false, false)
		bb.Close()
	}
}

func waitCount(b *testing.B, c *atomic.Int64, n int64, within time.Duration) {
	deadline := time.Now().Add(within)
	for c.Load() < n {
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d messages relayed in %s", c.Load(), n, within)
		}
		time.Sleep(time.Millisecond)
	}
}

func benchRelayThroughput(b *testing.B, dedup bool) float64 {
	r := startRelay(b, fmt.Sprintf("bench-relay-%d", time.Now().UnixNano()))
	r.noDedup = !dedup
	preload(b, r.f, benchMessages)
	// Labelled so that a CPU profile of the benchmark can be narrowed to
	// the relay: go tool pprof -tagfocus phase=relay.
	pprof.Do(context.Background(), pprof.Labels("phase", "relay"), func(context.Context) { r.run(b) })
	start := <-r.started
	waitCount(b, &r.acked, benchMessages, 5*time.Minute)
	elapsed := time.Since(start.at)
	if dedup {
		relayCPU = append(relayCPU, (cpuTime()-start.cpu)/benchMessages)
		relayBrokerCPU = append(relayBrokerCPU, (brokerCPU()-start.brokerCPU)/benchMessages)
	}
	r.stop()
	return benchMessages / elapsed.Seconds()
}

func benchRelaySteady(b *testing.B) (sent, relayed float64, p50, p99 time.Duration) {
	r := startRelay(b, fmt.Sprintf("bench-steady-%d", time.Now().UnixNano()))
	r.run(b)
	defer r.stop()
	pub, err := bus.OpenAMQPPublisher(amqpURL(), "")
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	n := int(steadyFor.Seconds() * steadyRate)
	sentAt := make([]time.Time, n)
	tick := time.NewTicker(time.Second / steadyRate)
	defer tick.Stop()
	start := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		<-tick.C
		sentAt[i] = time.Now()
		wg.Add(1)
		// Publish without waiting in line: the sender keeps its pace.
		go func() {
			defer wg.Done()
			if err := pub.Publish(context.Background(), r.f.message(i)); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	waitCount(b, &r.acked, int64(n), time.Minute)
	lat := make([]time.Duration, 0, n)
	var lastAck time.Time
	r.mu.Lock()
	for i := range n {
		at := r.ackAt[r.f.message(i).ID]
		lat = append(lat, at.Sub(sentAt[i]))
		if at.After(lastAck) {
			lastAck = at
		}
	}
	r.mu.Unlock()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	sent = float64(n) / sentAt[n-1].Sub(start).Seconds()
	return sent, float64(n) / lastAck.Sub(start).Seconds(), lat[n/2], lat[n*99/100]
}
