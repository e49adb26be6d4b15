package notify

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wneessen/go-mail"
)

// Mail is one digest ready to send.
type Mail struct {
	To      string
	Subject string
	Body    string
	// ID is the Message-ID: the same on every attempt at one digest, so
	// that a digest sent again after a crash is recognisably one message.
	ID string
	// Unsubscribe, when set, is the List-Unsubscribe link (RFC 2369); an
	// https one is also offered for one-click unsubscribing (RFC 8058).
	Unsubscribe string
	// Bulk marks a digest (Precedence: bulk), which autoresponders leave
	// alone; a confirmation request is not bulk.
	Bulk bool
}

// SMTPOptions say how mail leaves.
type SMTPOptions struct {
	Addr     string // host:port
	User     string
	Password string
	// TLS is opportunistic, starttls, tls or none.
	TLS     string
	From    string
	Timeout time.Duration
}

// smtpSender sends mail with go-mail.
type smtpSender struct {
	o    SMTPOptions
	host string
	port int
}

func newSMTP(o SMTPOptions) (*smtpSender, error) {
	host, p, err := net.SplitHostPort(o.Addr)
	if err != nil {
		return nil, fmt.Errorf("notify.smtp_addr %q: want host:port", o.Addr)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port <= 0 || port > 65535 {
		return nil, fmt.Errorf("notify.smtp_addr %q: bad port", o.Addr)
	}
	switch o.TLS {
	case "", "opportunistic", "starttls", "tls", "none":
	default:
		return nil, fmt.Errorf("notify.smtp_tls %q: want opportunistic, starttls, tls or none", o.TLS)
	}
	if _, err := mailAddress(o.From); err != nil {
		return nil, fmt.Errorf("notify.from %q: not an address", o.From)
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	return &smtpSender{o: o, host: host, port: port}, nil
}

func mailAddress(s string) (string, error) {
	m := mail.NewMsg()
	if err := m.From(s); err != nil {
		return "", err
	}
	return s, nil
}

// message is m as go-mail writes it.
func message(from string, m Mail) (*mail.Msg, error) {
	msg := mail.NewMsg()
	if err := msg.From(from); err != nil {
		return nil, fmt.Errorf("from %q: %w", from, err)
	}
	if err := msg.To(m.To); err != nil {
		return nil, fmt.Errorf("to %q: %w", m.To, err)
	}
	msg.Subject(m.Subject)
	msg.SetMessageIDWithValue(m.ID)
	msg.SetDate()
	if m.Bulk {
		msg.SetBulk()
	}
	if m.Unsubscribe != "" {
		// One-click (RFC 8058) wants https; over http the link is
		// offered for a person to follow.
		if msg.SetListUnsubscribeOneClick(m.Unsubscribe) != nil {
			msg.SetListUnsubscribe(m.Unsubscribe)
		}
	}
	msg.SetBodyString(mail.TypeTextPlain, m.Body)
	return msg, nil
}

// Send hands one message to the mail server.
func (s *smtpSender) Send(ctx context.Context, m Mail) error {
	msg, err := message(s.o.From, m)
	if err != nil {
		return err
	}
	// The TLS policy first: go-mail's policy options pick a port, and
	// the configured one must win.
	var opts []mail.Option
	switch s.o.TLS {
	case "", "opportunistic":
		opts = append(opts, mail.WithTLSPolicy(mail.TLSOpportunistic))
	case "starttls":
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	case "tls":
		opts = append(opts, mail.WithSSL())
	case "none":
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	}
	opts = append(opts, mail.WithPort(s.port), mail.WithTimeout(s.o.Timeout))
	if s.o.User != "" {
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover), mail.WithUsername(s.o.User), mail.WithPassword(s.o.Password))
	}
	c, err := mail.NewClient(s.host, opts...)
	if err != nil {
		return fmt.Errorf("mail server %s: %w", s.o.Addr, err)
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		return fmt.Errorf("mail server %s: %w", s.o.Addr, err)
	}
	return nil
}

// compose writes one digest: every result of the burst, once each, worst
// outcomes first.
// Each subscription of the digest is listed with its unsubscribe link
// (below base, the page's public address); the List-Unsubscribe link
// stops every subscription of the digest, up to maxUnsubscribe of them.
func compose(to string, subs map[int64]Subscription, ns []Notification, digest, base string) Mail {
	type line struct {
		n    Notification
		subs []int64
	}
	var lines []*line
	byResult := map[int64]*line{}
	for _, n := range ns {
		if l, ok := byResult[n.Result.ID]; ok {
			l.subs = append(l.subs, n.Sub)
			if l.n.Previous == nil {
				l.n.Previous = n.Previous
			}
			continue
		}
		l := &line{n: n, subs: []int64{n.Sub}}
		byResult[n.Result.ID] = l
		lines = append(lines, l)
	}
	slices.SortStableFunc(lines, func(a, b *line) int { return severity(b.n.Result.Outcome) - severity(a.n.Result.Outcome) })

	counts := map[string]int{}
	var order []string
	items := map[string]bool{}
	var itemOrder []string
	for _, l := range lines {
		o := l.n.Result.Outcome
		if counts[o] == 0 {
			order = append(order, o)
		}
		counts[o]++
		if !items[l.n.Result.Item] {
			items[l.n.Result.Item] = true
			itemOrder = append(itemOrder, l.n.Result.Item)
		}
	}
	var tally []string
	for _, o := range order {
		tally = append(tally, fmt.Sprintf("%d %s", counts[o], o))
	}
	what := itemOrder[0]
	if len(itemOrder) > 1 {
		what += fmt.Sprintf(" and %d more", len(itemOrder)-1)
	}
	noun := "results"
	if len(lines) == 1 {
		noun = "result"
	}
	subject := fmt.Sprintf("[taskotron] %s: %s", what, strings.Join(tally, ", "))

	var b strings.Builder
	fmt.Fprintf(&b, "%d new %s matched your subscriptions:\n\n", len(lines), noun)
	for _, l := range lines {
		r := l.n.Result
		fmt.Fprintf(&b, "%s  %s  %s", r.Outcome, r.Item, r.Testcase)
		if r.Arch != "" {
			fmt.Fprintf(&b, "  %s", r.Arch)
		}
		if r.Origin != DefaultOrigin {
			fmt.Fprintf(&b, "  (from %s)", r.Origin)
		}
		b.WriteString("\n")
		if p := l.n.Previous; p != nil {
			fmt.Fprintf(&b, "    regression: %s on %s before\n", p.Outcome, p.Item)
		}
		if r.Note != "" {
			fmt.Fprintf(&b, "    note: %s\n", strings.Join(strings.Fields(r.Note), " "))
		}
		if r.Page != "" {
			fmt.Fprintf(&b, "    %s\n", r.Page)
		}
		if r.RefURL != "" {
			fmt.Fprintf(&b, "    log: %s\n", r.RefURL)
		}
		b.WriteString("\n")
	}
	b.WriteString("-- \nYour subscriptions:\n")
	seen := map[int64]bool{}
	var tokens []string
	for _, l := range lines {
		for _, id := range l.subs {
			if seen[id] {
				continue
			}
			seen[id] = true
			sub := subs[id]
			fmt.Fprintf(&b, "  #%d %s\n", id, sub.Filter())
			if sub.unsub != "" {
				fmt.Fprintf(&b, "    stop it: %s\n", UnsubscribeURL(base, sub.unsub))
				tokens = append(tokens, sub.unsub)
			}
		}
	}
	return Mail{To: to, Subject: subject, Body: b.String(), ID: digest + "@taskotron.notify", Bulk: true,
		Unsubscribe: UnsubscribeURL(base, tokens[:min(len(tokens), maxUnsubscribe)]...)}
}

// maxUnsubscribe keeps the List-Unsubscribe header within a mail line
// (998 characters): a token is 22.
const maxUnsubscribe = 30

// UnsubscribeURL is the link that removes the subscriptions of the
// tokens; "" without any.
func UnsubscribeURL(base string, tokens ...string) string {
	if len(tokens) == 0 {
		return ""
	}
	q := url.Values{"t": tokens}
	return strings.TrimSuffix(base, "/") + "/unsubscribe?" + q.Encode()
}

// ConfirmURL is the link that confirms a subscription made on the page.
func ConfirmURL(base, token string) string {
	return strings.TrimSuffix(base, "/") + "/confirm?" + url.Values{"token": {token}}.Encode()
}

// severity orders outcomes for reading: what needs the reader first.
func severity(outcome string) int {
	switch outcome {
	case "FAILED":
		return 5
	case "CRASHED":
		return 4
	case "NEEDS_INSPECTION":
		return 3
	case "ABORTED":
		return 2
	case "INFO":
		return 1
	}
	return 0
}
