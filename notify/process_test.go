package notify_test

// The notifier on the production path: `taskotron notify` as a process of
// its own, fed by our ResultsDB's real outbox publisher through RabbitMQ,
// mailing through a real SMTP server on loopback (Debian's aiosmtpd,
// writing a Maildir) and posting to real HTTP receivers.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/taskotron-go/taskotron/notify"
	"github.com/taskotron-go/taskotron/resultsdb"
)

func amqpURL() string {
	if u := os.Getenv("RESULTSDB_TEST_AMQP"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672/"
}

var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
	out  []byte
}

func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// binary builds taskotron once for the tests that run it.
func binary(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "notify-bin-")
		if build.err != nil {
			return
		}
		build.bin = filepath.Join(build.dir, "taskotron")
		build.out, build.err = exec.Command("go", "build", "-race", "-o", build.bin, "../cmd/taskotron").CombinedOutput()
	})
	if build.err != nil {
		t.Fatalf("go build: %v\n%s", build.err, build.out)
	}
	return build.bin
}

func randomName(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// eventually waits for cond, failing with what after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type rigOptions struct {
	postgres bool
	window   string
	// public is notify.public_url, when set.
	public string
}

// rig is one notifier with everything around it.
type rig struct {
	t        *testing.T
	dir      string
	bin      string
	cfg      string
	exchange string
	queue    string
	smtpPort int
	maildir  string
	page     string
	results  string // ResultsDB's root URL
	tokens   resultsdb.TokenStore
	db       string // the notifier's store
	smtp     *exec.Cmd
	proc     *exec.Cmd
	procDone chan struct{}
	starts   int
}

func newRig(t *testing.T, o rigOptions) *rig {
	t.Helper()
	if o.window == "" {
		o.window = "1s"
	}
	r := &rig{t: t, dir: t.TempDir(), bin: binary(t), exchange: randomName("notifytest-"), queue: randomName("notifytest-"), smtpPort: freePort(t)}
	r.maildir = filepath.Join(r.dir, "maildir")
	r.page = "http://127.0.0.1:" + strconv.Itoa(freePort(t))

	conn, err := amqp.Dial(amqpURL())
	if err != nil {
		t.Fatalf("RabbitMQ is needed for this test and is not reachable at %s: %v", amqpURL(), err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(r.exchange, "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ch.QueueDelete(r.queue, false, false, false)
		ch.ExchangeDelete(r.exchange, false, false)
		conn.Close()
	})

	// Our ResultsDB with its outbox publisher, as `resultsdb serve` with
	// resultsdb.publish runs them.
	store, err := resultsdb.Open(t.Context(), "sqlite:"+filepath.Join(r.dir, "resultsdb.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	// With origins, as the central server runs it: each result and event
	// names the system that submitted it.
	srv := httptest.NewServer(resultsdb.NewServer(store, resultsdb.Options{Events: true, Origins: true, AdditionalOutcomes: []string{"ABORTED", "CRASHED"}}))
	r.results, r.tokens = srv.URL, store.(resultsdb.TokenStore)
	ctx, cancel := context.WithCancel(context.Background())
	pub := resultsdb.NewPublisher(store, resultsdb.PublisherOptions{URL: amqpURL(), Exchange: r.exchange, BaseURL: srv.URL, Poll: 200 * time.Millisecond})
	pubDone := make(chan struct{})
	go func() { defer close(pubDone); pub.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-pubDone
		srv.Close()
		store.Close()
	})

	db := "sqlite:" + filepath.Join(r.dir, "notify.sqlite")
	if o.postgres {
		db = notify.FreshSchema(t)
	}
	r.db = db
	r.cfg = filepath.Join(r.dir, "taskotron.yaml")
	conf := fmt.Sprintf(`data_dir: %s
amqp:
  url: %s
  exchange: %s
notify:
  db: %s
  listen: %s
  queue: %s
  digest_window: %s
  smtp_addr: 127.0.0.1:%d
  from: taskotron@example.org
  results_url: %s/api/v2.0
  retry_min: 300ms
  retry_max: 2s
`, filepath.Join(r.dir, "data"), amqpURL(), r.exchange, db, strings.TrimPrefix(r.page, "http://"), r.queue, o.window, r.smtpPort, srv.URL)
	if o.public != "" {
		conf += "  public_url: " + o.public + "\n"
	}
	if err := os.WriteFile(r.cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.kill()
		r.stopSMTP()
		if t.Failed() {
			for i := 1; i <= r.starts; i++ {
				if raw, err := os.ReadFile(filepath.Join(r.dir, fmt.Sprintf("notify-%d.log", i))); err == nil {
					t.Logf("notifier log %d:\n%s", i, raw)
				}
			}
		}
	})
	return r
}

// cli runs `taskotron notify ARGS` and returns its output.
func (r *rig) cli(args ...string) string {
	r.t.Helper()
	cmd := exec.Command(r.bin, append([]string{"--config", r.cfg, "notify"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("taskotron notify %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// start runs the notifier and waits until it serves its page.
func (r *rig) start() {
	r.t.Helper()
	r.starts++
	logf, err := os.Create(filepath.Join(r.dir, fmt.Sprintf("notify-%d.log", r.starts)))
	if err != nil {
		r.t.Fatal(err)
	}
	r.proc = exec.Command(r.bin, "--config", r.cfg, "--log-level", "debug", "notify")
	r.proc.Stdout, r.proc.Stderr = logf, logf
	if err := r.proc.Start(); err != nil {
		r.t.Fatal(err)
	}
	done := make(chan struct{})
	r.procDone = done
	go func(c *exec.Cmd) { c.Wait(); logf.Close(); close(done) }(r.proc)
	// Connected means its queue is declared and bound: what ResultsDB
	// publishes from then on reaches it (healthz would say ok sooner,
	// within its grace).
	eventually(r.t, 30*time.Second, "the notifier serves its page and consumes from its queue", func() bool {
		resp, err := http.Get(r.page + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(raw), "\ntaskotron_notify_amqp_connected 1\n")
	})
}

// kill ends the notifier with SIGKILL, as a crash would.
func (r *rig) kill() {
	if r.proc == nil {
		return
	}
	r.proc.Process.Signal(syscall.SIGKILL)
	<-r.procDone
	r.proc = nil
}

func (r *rig) startSMTP() {
	r.t.Helper()
	aiosmtpd, err := exec.LookPath("aiosmtpd")
	if err != nil {
		r.t.Fatalf("aiosmtpd is needed for this test (Debian package python3-aiosmtpd; scripts/env.sh test installs it): %v", err)
	}
	logf, err := os.Create(filepath.Join(r.dir, "smtp.log"))
	if err != nil {
		r.t.Fatal(err)
	}
	r.smtp = exec.Command(aiosmtpd, "-n", "-l", "127.0.0.1:"+strconv.Itoa(r.smtpPort), "-c", "aiosmtpd.handlers.Mailbox", r.maildir)
	r.smtp.Stdout, r.smtp.Stderr = logf, logf
	if err := r.smtp.Start(); err != nil {
		r.t.Fatal(err)
	}
	eventually(r.t, 30*time.Second, "aiosmtpd listens", func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(r.smtpPort))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

func (r *rig) stopSMTP() {
	if r.smtp == nil {
		return
	}
	r.smtp.Process.Signal(syscall.SIGKILL)
	r.smtp.Wait()
	r.smtp = nil
}

// post submits one result to ResultsDB and returns its id.
func (r *rig) post(outcome, testcase, item, arch, note string) int64 {
	r.t.Helper()
	return r.postAs("", outcome, testcase, item, arch, note)
}

// postAs posts a result with an origin's token (none: the default origin).
func (r *rig) postAs(token, outcome, testcase, item, arch, note string) int64 {
	r.t.Helper()
	body, _ := json.Marshal(map[string]any{"outcome": outcome, "testcase": map[string]any{"name": testcase}, "note": note,
		"data": map[string]any{"item": item, "type": "koji_build", "arch": arch}})
	req, _ := http.NewRequest(http.MethodPost, r.results+"/api/v2.0/results", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out struct {
		ID int64 `json:"id"`
	}
	if resp.StatusCode != 201 || json.Unmarshal(raw, &out) != nil {
		r.t.Fatalf("post result: %s %s", resp.Status, raw)
	}
	return out.ID
}

// message is one mail as it landed in the Maildir.
type message struct {
	To, Subject, ID, Body string
	Header                mail.Header
}

func (r *rig) mails() []message {
	r.t.Helper()
	var out []message
	for _, sub := range []string{"new", "cur"} {
		files, _ := filepath.Glob(filepath.Join(r.maildir, sub, "*"))
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				r.t.Fatal(err)
			}
			m, err := mail.ReadMessage(bytes.NewReader(raw))
			if err != nil {
				r.t.Fatalf("%s: %v", f, err)
			}
			var body io.Reader = m.Body
			if strings.EqualFold(m.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
				body = quotedprintable.NewReader(m.Body)
			}
			text, err := io.ReadAll(body)
			if err != nil {
				r.t.Fatalf("%s: %v", f, err)
			}
			subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
			if err != nil {
				r.t.Fatalf("%s: subject: %v", f, err)
			}
			out = append(out, message{To: m.Header.Get("To"), Subject: subject, ID: m.Header.Get("Message-Id"), Body: string(text), Header: m.Header})
		}
	}
	return out
}

type subState struct {
	ID            int64      `json:"id"`
	Target        string     `json:"target"`
	Failures      int        `json:"failures"`
	NextRetry     *time.Time `json:"next_retry"`
	LastError     string     `json:"last_error"`
	LastDelivered *time.Time `json:"last_delivered"`
	Pending       int        `json:"pending"`
	State         string     `json:"state"`
}

func (r *rig) subs() []subState {
	r.t.Helper()
	resp, err := http.Get(r.page + "/subscriptions.json")
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Subscriptions []subState `json:"subscriptions"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		r.t.Fatal(err)
	}
	return doc.Subscriptions
}

func (r *rig) pageHTML() string {
	r.t.Helper()
	resp, err := http.Get(r.page + "/")
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return string(raw)
}

func resultLink(r *rig, id int64) string { return r.results + "/results/" + strconv.FormatInt(id, 10) }

// publish sends a body to the exchange under ResultsDB's topic.
func publish(t *testing.T, exchange string, body []byte) {
	t.Helper()
	conn, err := amqp.Dial(amqpURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	c, err := ch.PublishWithDeferredConfirmWithContext(t.Context(), exchange, resultsdb.DefaultTopic, false, false,
		amqp.Publishing{ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: body})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := c.WaitContext(t.Context()); err != nil || !ok {
		t.Fatalf("broker confirm: %v %v", ok, err)
	}
}

// stallRecording takes a lock on the notifier's outbox in PostgreSQL, so
// that the notifier takes messages from the broker and cannot record
// them; release lets it.
func stallRecording(t *testing.T, dsn string) (release func()) {
	t.Helper()
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// EXCLUSIVE: reads (the page) go on, inserts wait.
	if _, err := tx.Exec(ctx, "LOCK TABLE notify_outbox IN EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	return func() {
		tx.Rollback(context.Background())
		conn.Close(context.Background())
	}
}

// recordingStalled reports whether a session waits on that lock to
// insert into the outbox: the notifier holds a message it has not acked.
func recordingStalled(t *testing.T, dsn string) bool {
	return waitsOnLock(t, dsn, "INSERT INTO notify_outbox%")
}

// waitsOnLock reports whether a session waits on a lock to run a
// statement starting like pattern.
func waitsOnLock(t *testing.T, dsn, pattern string) bool {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	err = conn.QueryRow(t.Context(), `SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1`, pattern).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n > 0
}
