package notify

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// mailer hands one message to a mail server.
type mailer interface {
	Send(ctx context.Context, m Mail) error
}

// deliverer sends what the outbox holds: each due target (an address's
// digest, a webhook's queue) in a goroutine of its own, so that a slow or
// failing one holds back no other; a failing target backs off, doubling
// from retryMin to retryMax.
type deliverer struct {
	store    *Store
	log      *slog.Logger
	mail     mailer
	http     *http.Client
	regress  Regressions
	window   time.Duration
	retryMin time.Duration
	retryMax time.Duration
	poll     time.Duration
	// public is the page's address in links (unsubscribe).
	public string

	wake      chan struct{}
	checkWake chan struct{}
	sem       chan struct{}
	mu        sync.Mutex
	busy      map[string]bool
	wg        sync.WaitGroup

	mails, webhooks, failures, checks atomic.Int64
}

func (d *deliverer) poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// backoff is the wait after the given number of failures in a row.
func (d *deliverer) backoff(failures int) time.Duration {
	w := d.retryMin
	for i := 1; i < failures && w < d.retryMax; i++ {
		w *= 2
	}
	return min(w, d.retryMax)
}

func (d *deliverer) run(ctx context.Context) {
	defer d.wg.Wait()
	t := time.NewTicker(d.poll)
	defer t.Stop()
	for {
		d.round(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.wake:
		}
	}
}

func (d *deliverer) round(ctx context.Context) {
	now := time.Now()
	if _, err := d.store.FormDigests(ctx, d.window, now); err != nil && ctx.Err() == nil {
		d.log.Error("notify: forming digests", "err", err)
		return
	}
	due, err := d.store.Due(ctx, now)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Error("notify: reading the outbox", "err", err)
		}
		return
	}
	for _, t := range due {
		k := "mail " + t.Email
		if t.Webhook != 0 {
			k = "webhook " + strconv.FormatInt(t.Webhook, 10)
		}
		d.mu.Lock()
		if d.busy[k] {
			d.mu.Unlock()
			continue
		}
		d.busy[k] = true
		d.mu.Unlock()
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			defer func() {
				d.mu.Lock()
				delete(d.busy, k)
				d.mu.Unlock()
			}()
			select {
			case d.sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-d.sem }()
			if t.Webhook != 0 {
				d.deliverWebhook(ctx, t)
			} else {
				d.deliverDigest(ctx, t)
			}
		}()
	}
}

func (d *deliverer) deliverDigest(ctx context.Context, t Due) {
	ns, err := d.store.Digest(ctx, t.Digest)
	if err != nil || len(ns) == 0 {
		return
	}
	subIDs, err := d.store.SubsOf(ctx, t.Email)
	if err != nil {
		return
	}
	subs := map[int64]Subscription{}
	for _, id := range subIDs {
		if s, err := d.store.Get(ctx, id); err == nil {
			subs[id] = s
		}
	}
	m := compose(t.Email, subs, ns, t.Digest, d.public)
	if err := d.mail.Send(ctx, m); err != nil {
		if ctx.Err() != nil {
			return
		}
		d.failed(ctx, subIDs, t.Failures+1, err, "to", t.Email)
		return
	}
	ids := make([]int64, len(ns))
	for i, n := range ns {
		ids[i] = n.ID
	}
	// Recorded even when the role is stopping: a digest the server took
	// and not marked would be sent again.
	bctx, cancel := bookkeeping(ctx)
	defer cancel()
	if err := d.store.Delivered(bctx, ids, subIDs); err != nil {
		// Sent but not marked: the next attempt sends it again, with the
		// same Message-ID.
		d.log.Error("notify: digest sent but not recorded as sent", "to", t.Email, "err", err)
		return
	}
	d.mails.Add(1)
	d.log.Info("notify: digest sent", "to", t.Email, "results", len(ns), "message_id", m.ID)
}

func (d *deliverer) deliverWebhook(ctx context.Context, t Due) {
	sub, err := d.store.Get(ctx, t.Webhook)
	if err != nil {
		return
	}
	for ctx.Err() == nil {
		ns, err := d.store.Pending(ctx, sub.ID, 50)
		if err != nil || len(ns) == 0 {
			return
		}
		for _, n := range ns {
			if err := post(ctx, d.http, sub, n, time.Now()); err != nil {
				if ctx.Err() != nil {
					return
				}
				if errors.Is(err, errGone) {
					bctx, cancel := bookkeeping(ctx)
					if e := d.store.Remove(bctx, sub.ID); e != nil {
						d.log.Error("notify: removing a gone webhook's subscription", "subscription", sub.ID, "err", e)
					} else {
						d.log.Warn("notify: subscription removed", "subscription", sub.ID, "err", err)
					}
					cancel()
					return
				}
				d.failed(ctx, []int64{sub.ID}, t.Failures+1, err, "subscription", sub.ID)
				return
			}
			bctx, cancel := bookkeeping(ctx)
			err := d.store.Delivered(bctx, []int64{n.ID}, []int64{sub.ID})
			cancel()
			if err != nil {
				d.log.Error("notify: webhook delivered but not recorded as sent", "subscription", sub.ID, "delivery", n.Key(), "err", err)
				return
			}
			t.Failures = 0
			d.webhooks.Add(1)
		}
	}
}

// bookkeeping is the context of a write that must follow what was sent,
// even once the role is told to stop.
func bookkeeping(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
}

func (d *deliverer) failed(ctx context.Context, subs []int64, failures int, err error, attrs ...any) {
	d.failures.Add(1)
	wait := d.backoff(failures)
	next := time.Now().Add(wait)
	if e := d.store.Failed(ctx, subs, failures, next, err.Error()); e != nil {
		d.log.Error("notify: recording a failed delivery", "err", e)
	}
	d.log.Warn("notify: delivery failed; retrying later", append(attrs, "failures", failures, "retry_in", wait, "err", err)...)
}

// checkLoop asks ResultsDB about the results regressions-only
// subscriptions wait on; while it cannot be asked, it backs off.
func (d *deliverer) checkLoop(ctx context.Context) {
	wait := d.poll
	for {
		err := d.checkRound(ctx)
		if err != nil && ctx.Err() == nil {
			wait = min(max(wait*2, d.retryMin), d.retryMax)
			d.log.Warn("notify: cannot ask ResultsDB about regressions; retrying later", "err", err, "in", wait)
		} else {
			wait = d.poll
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		case <-d.checkWake:
		}
	}
}

func (d *deliverer) checkRound(ctx context.Context) error {
	for {
		ns, err := d.store.Checks(ctx, 50)
		if err != nil || len(ns) == 0 {
			return err
		}
		found := false
		for _, n := range ns {
			prev, worse, err := d.regress.Previous(ctx, n.Result)
			if err != nil {
				return err
			}
			if !worse {
				prev = nil
			}
			if err := d.store.Judge(ctx, n.ID, prev); err != nil {
				return err
			}
			d.checks.Add(1)
			found = found || worse
		}
		if found {
			d.poke(d.wake)
		}
	}
}
