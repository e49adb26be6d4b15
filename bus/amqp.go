package bus

import (
	"context"
	"encoding/json"
	"errors"
	"expvar"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/redact"
)

// Metrics of the AMQP transports, published with expvar (/debug/vars).
// source_acked counts messages acked, source_ack_frames the basic.ack
// frames that carried them (one multiple ack covers many).
var amqpMetrics = expvar.NewMap("taskotron_amqp")

// ReasonHeader carries why a message was set aside in the dead-letter queue.
const ReasonHeader = "x-taskotron-reason"

// Bounds on what goes into AMQP headers. A content header frame must fit in
// one frame (frame_max: 128 KiB on RabbitMQ), or the broker closes the
// connection; and what is in a header ends up in logs and management pages.
const (
	// MaxHeaderValue bounds a header copied from a job or message field (the
	// job's body keeps the whole value).
	MaxHeaderValue = 256
	// MaxReason bounds the reason a message is set aside with.
	MaxReason = 1024
)

// Truncate shortens s to at most max bytes, cut on a UTF-8 boundary and
// ending with a marker saying how long s was, so that a value from outside
// can go into a header or a log line.
func Truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	marker := fmt.Sprintf("…[%d bytes]", len(s))
	cut := max - len(marker)
	if cut < 0 {
		cut = 0
	}
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + marker
}

// closeWatch keeps why a channel was closed, for every caller that asks:
// NotifyClose hands its one value to one reader only.
type closeWatch struct {
	done chan struct{}
	err  *amqp.Error // nil when closed by us or without a reason
}

func watchClose(ch *amqp.Channel) *closeWatch {
	w := &closeWatch{done: make(chan struct{})}
	notify := ch.NotifyClose(make(chan *amqp.Error, 1))
	go func() {
		w.err = <-notify
		close(w.done)
	}()
	return w
}

// reason waits up to d for the channel to close and returns the broker's
// reason, nil when it stays open or closed without one. The broker's close
// can come a moment after a write failed.
func (w *closeWatch) reason(d time.Duration) *amqp.Error {
	select {
	case <-w.done:
		return w.err
	case <-time.After(d):
		return nil
	}
}

// refusesContent tells a broker refusing what was published (too big a
// message, a header frame over frame_max, a malformed header) from an
// outage or a shutdown, which only delay.
func refusesContent(e *amqp.Error) bool {
	if e == nil || !e.Server {
		return false
	}
	switch e.Code {
	case amqp.PreconditionFailed, amqp.SyntaxError:
		// On a publishing channel: "message size … is larger than configured
		// max size", a user_id that is not the connection's, a bad header.
		return true
	case amqp.FrameError:
		return strings.Contains(e.Reason, "frame_too_large")
	}
	return false
}

// headersSize estimates the encoded size of an AMQP field table, erring
// on the large side.
func headersSize(t amqp.Table) int {
	n := 4
	for k, v := range t {
		n += 1 + len(k) + valueSize(v)
	}
	return n
}

func valueSize(v any) int {
	switch x := v.(type) {
	case nil:
		return 1
	case bool, int8, uint8:
		return 2
	case int16, uint16:
		return 3
	case int32, uint32, float32:
		return 5
	case int, int64, uint64, float64, time.Time:
		return 9
	case amqp.Decimal:
		return 6
	case string:
		return 5 + len(x)
	case []byte:
		return 5 + len(x)
	case amqp.Table:
		return 1 + headersSize(x)
	case []any:
		n := 5
		for _, e := range x {
			n += valueSize(e)
		}
		return n
	}
	return 5 + len(fmt.Sprint(v))
}

// fitHeaders drops the largest headers of t until the rest fits in budget
// bytes, and says which it dropped.
func fitHeaders(t amqp.Table, budget int) (amqp.Table, []string) {
	out := amqp.Table{}
	for k, v := range t {
		out[k] = v
	}
	var dropped []string
	for len(out) > 0 && headersSize(out) > budget {
		big, size := "", -1
		for k, v := range out {
			if s := valueSize(v) + len(k); s > size || (s == size && k < big) {
				big, size = k, s
			}
		}
		delete(out, big)
		dropped = append(dropped, Truncate(big, 64))
	}
	return out, dropped
}

// AMQPSourceConfig configures an AMQPSource.
type AMQPSourceConfig struct {
	URL string
	// Exchange is the topic exchange bus messages are published to
	// (Fedora Messaging: amq.topic).
	Exchange string
	// Queue is our durable queue; it is bound to Exchange for each of Topics.
	Queue  string
	Topics []string
	// Prefetch is how many unacked messages the broker hands us at once.
	Prefetch int
	// DeadLetterQueue receives rejected messages; empty means Queue + ".deadletter".
	DeadLetterQueue string
	// Watchdog is how often the liveness check runs: when nothing was handed
	// to the consumer during a whole period while the queue holds ready
	// messages, it logs and counts a stall. Zero means one minute.
	Watchdog time.Duration
	// MaxBackoff caps the wait between reconnection attempts (default 30s).
	MaxBackoff time.Duration
	Log        *slog.Logger
}

// AMQPSource consumes bus messages from RabbitMQ with manual acks. It
// reconnects with backoff after a broker restart or a lost connection and
// declares its topology again; messages not acked before the loss come again.
type AMQPSource struct {
	cfg AMQPSourceConfig
	log *slog.Logger
	out chan sourced

	mu        sync.Mutex
	cur       *sourceConn
	closed    chan struct{}
	done      chan struct{}
	stalls    atomic.Int64
	lastOut   atomic.Int64 // unix nanos of the last message handed out
	conns     atomic.Int64 // successful connections, for tests and logs
	ackFrames atomic.Int64 // basic.ack frames sent, for tests
}

// sourceConn is one connection generation. Delivery tags belong to its
// consuming channel, so a delivery keeps its generation: it is acked and
// dead-lettered through it, or not at all once it is gone.
type sourceConn struct {
	conn  *amqp.Connection
	pubMu sync.Mutex
	pub   *amqp.Channel // confirm mode, for the dead-letter queue; opened again when closed
	acks  *sourceAcker
	msgs  <-chan amqp.Delivery
	lost  chan *amqp.Error // gets the error when the connection goes away
}

// sourced is a delivery with the generation it came from.
type sourced struct {
	d   amqp.Delivery
	gen *sourceConn
}

// OpenAMQPSource connects, declares the topology and starts consuming. The
// first connection must succeed, so a wrong URL is reported at once; later
// losses are retried forever.
func OpenAMQPSource(ctx context.Context, cfg AMQPSourceConfig) (*AMQPSource, error) {
	if cfg.Exchange == "" {
		cfg.Exchange = "amq.topic"
	}
	if cfg.Queue == "" {
		return nil, errors.New("amqp source: no queue name")
	}
	if cfg.DeadLetterQueue == "" {
		cfg.DeadLetterQueue = cfg.Queue + ".deadletter"
	}
	if cfg.Prefetch <= 0 {
		cfg.Prefetch = 50
	}
	if cfg.Watchdog <= 0 {
		cfg.Watchdog = time.Minute
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s := &AMQPSource{cfg: cfg, log: cfg.Log, out: make(chan sourced), closed: make(chan struct{}), done: make(chan struct{})}
	gen, err := s.connect()
	if err != nil {
		return nil, err
	}
	s.lastOut.Store(time.Now().UnixNano())
	go s.run(gen)
	go s.watchdog()
	return s, nil
}

// connect dials, declares and consumes, and makes the result the current
// generation.
func (s *AMQPSource) connect() (*sourceConn, error) {
	conn, err := amqp.Dial(s.cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("amqp %s: %w", RedactURL(s.cfg.URL), redact.URLError(err, s.cfg.URL))
	}
	fail := func(what string, err error) (*sourceConn, error) {
		conn.Close()
		return nil, fmt.Errorf("amqp %s: %s: %w", RedactURL(s.cfg.URL), what, redact.URLError(err, s.cfg.URL))
	}
	ch, err := conn.Channel()
	if err != nil {
		return fail("channel", err)
	}
	if err := declareSource(ch, s.cfg); err != nil {
		return fail("declaring topology", err)
	}
	if err := ch.Qos(s.cfg.Prefetch, 0, false); err != nil {
		return fail("prefetch", err)
	}
	msgs, err := ch.Consume(s.cfg.Queue, "", false, false, false, false, nil)
	if err != nil {
		return fail("consume "+s.cfg.Queue, err)
	}
	pub, err := conn.Channel()
	if err != nil {
		return fail("channel", err)
	}
	if err := pub.Confirm(false); err != nil {
		return fail("confirm mode", err)
	}
	gen := &sourceConn{conn: conn, pub: pub, msgs: msgs, lost: conn.NotifyClose(make(chan *amqp.Error, 1)),
		acks: startSourceAcker(ch, s.cfg.Prefetch, s.log, &s.ackFrames)}
	s.mu.Lock()
	s.cur = gen
	s.mu.Unlock()
	s.conns.Add(1)
	return gen, nil
}

func declareSource(ch *amqp.Channel, cfg AMQPSourceConfig) error {
	if !strings.HasPrefix(cfg.Exchange, "amq.") {
		if err := ch.ExchangeDeclare(cfg.Exchange, "topic", true, false, false, false, nil); err != nil {
			return err
		}
	}
	if _, err := ch.QueueDeclare(cfg.Queue, true, false, false, false, nil); err != nil {
		return err
	}
	for _, t := range cfg.Topics {
		if err := ch.QueueBind(cfg.Queue, t, cfg.Exchange, false, nil); err != nil {
			return fmt.Errorf("bind %s: %w", t, err)
		}
	}
	_, err := ch.QueueDeclare(cfg.DeadLetterQueue, true, false, false, false, nil)
	return err
}

// run forwards deliveries and reconnects after a loss.
func (s *AMQPSource) run(gen *sourceConn) {
	defer close(s.done)
	for {
	forward:
		for {
			select {
			case d, ok := <-gen.msgs:
				if !ok {
					break forward
				}
				// Recorded here, in the broker's order, so that a multiple
				// ack never covers a delivery not handed out yet.
				gen.acks.deliver(d.DeliveryTag)
				select {
				case s.out <- sourced{d, gen}:
				case <-s.closed:
					return
				}
			case <-s.closed:
				return
			}
		}
		select {
		case err := <-gen.lost:
			s.log.Warn("amqp connection lost, reconnecting", "err", err)
		case <-s.closed:
			return
		default:
			s.log.Warn("amqp consumer stopped, reconnecting")
		}
		// Finished deliveries not acked yet come again, like unfinished
		// ones. The connection goes first: acks being written fail at once.
		gen.conn.Close()
		gen.acks.close(false)
		amqpMetrics.Add("source_reconnects", 1)
		var err error
		gen, err = s.reconnect()
		if err != nil {
			return // closed while reconnecting
		}
		s.log.Info("amqp reconnected; topology declared again", "queue", s.cfg.Queue)
	}
}

func (s *AMQPSource) reconnect() (*sourceConn, error) {
	delay := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		gen, err := s.connect()
		if err == nil {
			return gen, nil
		}
		s.log.Warn("amqp reconnect failed", "attempt", attempt, "retry_in", delay, "err", err)
		select {
		case <-time.After(delay + rand.N(delay/2+1)):
		case <-s.closed:
			return nil, errors.New("closed")
		}
		if delay *= 2; delay > s.cfg.MaxBackoff {
			delay = s.cfg.MaxBackoff
		}
	}
}

// watchdog reports when nothing reached the consumer during a whole period
// while the queue has a backlog: a stuck consumer or a dead channel that
// was not noticed.
func (s *AMQPSource) watchdog() {
	t := time.NewTicker(s.cfg.Watchdog)
	defer t.Stop()
	for {
		select {
		case <-s.closed:
			return
		case <-t.C:
		}
		idle := time.Since(time.Unix(0, s.lastOut.Load()))
		if idle < s.cfg.Watchdog {
			continue
		}
		ready, err := s.backlog()
		if err != nil {
			s.log.Warn("amqp watchdog: cannot read the queue depth", "queue", s.cfg.Queue, "err", err)
			continue
		}
		if ready > 0 {
			s.stalls.Add(1)
			amqpMetrics.Add("source_stalls", 1)
			s.log.Warn("amqp watchdog: nothing delivered while the queue has a backlog",
				"queue", s.cfg.Queue, "ready", ready, "idle", idle.Round(time.Second))
		}
	}
}

// backlog reads how many messages wait in the queue (not yet delivered).
func (s *AMQPSource) backlog() (int, error) {
	s.mu.Lock()
	conn := s.cur.conn
	s.mu.Unlock()
	if conn.IsClosed() {
		return 0, errors.New("not connected")
	}
	ch, err := conn.Channel()
	if err != nil {
		return 0, err
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(s.cfg.Queue, true, false, false, false, nil)
	if err != nil {
		return 0, err
	}
	return q.Messages, nil
}

// Stalls counts the watchdog's reports.
func (s *AMQPSource) Stalls() int64 { return s.stalls.Load() }

// Connections counts successful connections (1 + reconnections).
func (s *AMQPSource) Connections() int64 { return s.conns.Load() }

// AckFrames counts the basic.ack frames sent; one frame may ack many messages.
func (s *AMQPSource) AckFrames() int64 { return s.ackFrames.Load() }

// Next returns the next message. A body that is not a JSON object comes
// back as a delivery with Err set, to be rejected.
func (s *AMQPSource) Next(ctx context.Context) (Delivery, error) {
	select {
	case <-ctx.Done():
		return Delivery{}, ctx.Err()
	case <-s.closed:
		return Delivery{}, errors.New("amqp source closed")
	case sd := <-s.out:
		s.lastOut.Store(time.Now().UnixNano())
		amqpMetrics.Add("source_delivered", 1)
		return s.delivery(sd), nil
	}
}

// delivery wraps a message. Ack records the finish and returns at once: the
// generation's acker sends the frame, with others where it can.
func (s *AMQPSource) delivery(sd sourced) Delivery {
	d, gen := sd.d, sd.gen
	origin := fmt.Sprintf("amqp:%s#%d", s.cfg.Queue, d.DeliveryTag)
	msg, err := decodeAMQP(d)
	ack := func() error { return gen.acks.finish(d.DeliveryTag) }
	reject := func(reason string) error { return s.deadLetter(gen, d, reason) }
	del := NewDelivery(msg, d.Body, origin, ack, reject)
	if err != nil {
		del.Err = fmt.Errorf("%s (topic %s, message-id %s): %w", origin, d.RoutingKey, d.MessageId, err)
	}
	return del
}

// decodeAMQP reads the Fedora Messaging wire format: routing key = topic,
// message-id = id, headers, JSON body.
func decodeAMQP(d amqp.Delivery) (contract.Message, error) {
	msg := contract.Message{ID: d.MessageId, Topic: d.RoutingKey, Headers: plainTable(d.Headers)}
	var body any
	if err := json.Unmarshal(d.Body, &body); err != nil {
		return msg, fmt.Errorf("body is not JSON: %s", strings.Join(strings.Fields(err.Error()), " "))
	}
	m, ok := body.(map[string]any)
	if !ok {
		return msg, errors.New("body is not a JSON object")
	}
	msg.Body = m
	if msg.ID == "" {
		msg.ID = derivedID(msg)
	}
	return msg, nil
}

// plainTable converts AMQP header values to JSON-friendly ones.
func plainTable(t amqp.Table) map[string]any {
	if len(t) == 0 {
		return nil
	}
	out := make(map[string]any, len(t))
	for k, v := range t {
		out[k] = plainValue(v)
	}
	return out
}

func plainValue(v any) any {
	switch x := v.(type) {
	case amqp.Table:
		return plainTable(x)
	case []any:
		out := make([]any, len(x))
		for i, item := range x {
			out[i] = plainValue(item)
		}
		return out
	case time.Time:
		return x.UTC().Format(time.RFC3339)
	case amqp.Decimal:
		return fmt.Sprint(x.Value)
	case []byte:
		return string(x)
	}
	return v
}

// deadLetter publishes the message as received to the dead-letter queue
// with the reason in a header, waits for the broker's confirm, then acks it.
// A delivery whose connection is gone comes again, so it is not published:
// that would leave a second copy in the dead-letter queue. The headers are
// kept within the frame size: the reason is cut at MaxReason, and, should
// the message's own headers leave no room, its largest ones are dropped
// (named in x-taskotron-dropped-headers).
func (s *AMQPSource) deadLetter(gen *sourceConn, d amqp.Delivery, reason string) error {
	if !gen.acks.usable() {
		return errAckGone
	}
	pub, err := gen.publisher()
	if err != nil {
		return fmt.Errorf("dead-letter queue %s: %w", s.cfg.DeadLetterQueue, err)
	}
	ours := amqp.Table{
		ReasonHeader:              Truncate(reason, MaxReason),
		"x-taskotron-topic":       Truncate(d.RoutingKey, MaxHeaderValue),
		"x-taskotron-rejected-at": time.Now().UTC().Format(time.RFC3339),
	}
	frame := int(gen.conn.Config.FrameSize)
	if frame <= 0 {
		frame = 128 << 10
	}
	// Room for our headers, the other properties (each at most 255 bytes)
	// and the frame's own fields.
	headers, dropped := fitHeaders(d.Headers, frame-headersSize(ours)-4096)
	for k, v := range ours {
		headers[k] = v
	}
	if len(dropped) > 0 {
		headers["x-taskotron-dropped-headers"] = Truncate(strings.Join(dropped, ","), MaxHeaderValue)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dc, err := pub.PublishWithDeferredConfirmWithContext(ctx, "", s.cfg.DeadLetterQueue, false, false, amqp.Publishing{
		Headers: headers, ContentType: d.ContentType, DeliveryMode: amqp.Persistent,
		MessageId: d.MessageId, Timestamp: d.Timestamp, Body: d.Body,
	})
	if err != nil {
		return fmt.Errorf("dead-letter queue %s: %w", s.cfg.DeadLetterQueue, err)
	}
	ok, err := dc.WaitContext(ctx)
	if err != nil || !ok {
		return fmt.Errorf("dead-letter queue %s: not confirmed (%v)", s.cfg.DeadLetterQueue, err)
	}
	amqpMetrics.Add("source_dead_lettered", 1)
	return gen.acks.finish(d.DeliveryTag)
}

// publisher is the generation's confirm channel, opened again if the
// broker closed it (a refused publish closes the channel, not the
// connection): else every later message would fail to be set aside.
func (g *sourceConn) publisher() (*amqp.Channel, error) {
	g.pubMu.Lock()
	defer g.pubMu.Unlock()
	if g.pub != nil && !g.pub.IsClosed() {
		return g.pub, nil
	}
	pub, err := g.conn.Channel()
	if err == nil {
		if err = pub.Confirm(false); err != nil {
			pub.Close()
		}
	}
	if err != nil {
		return nil, err
	}
	g.pub = pub
	return pub, nil
}

// Close stops consuming, sends the acks of every finished message, and
// closes the connection: unfinished messages go back to the queue, and
// Ack after Close reports that they will.
func (s *AMQPSource) Close() error {
	select {
	case <-s.closed:
		return nil
	default:
	}
	close(s.closed)
	<-s.done // no more deliveries, no new generation
	s.mu.Lock()
	gen := s.cur
	s.mu.Unlock()
	gen.acks.close(true)
	err := gen.conn.Close()
	if errors.Is(err, amqp.ErrClosed) {
		err = nil
	}
	return err
}

// RedactURL hides the password of an amqp URL in messages.
func RedactURL(u string) string {
	uri, err := amqp.ParseURI(u)
	if err != nil {
		return redact.URL(u)
	}
	if uri.Password == "" {
		return uri.String()
	}
	// A marker without characters that need escaping, turned into *** after
	// the URI is built (String would print %2A%2A%2A).
	uri.Password = "REDACTED"
	return strings.Replace(uri.String(), ":REDACTED@", ":***@", 1)
}
