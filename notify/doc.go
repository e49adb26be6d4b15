// Package notify is the notifier role (Service): a client of ResultsDB's
// result events, not logic inside the store. It consumes the
// resultsdb.result.new messages ResultsDB's outbox publishes, from a
// durable queue of its own, matches each result against people's
// subscriptions (item and testcase globs, outcomes, origin, regressions
// only), records the notifications it owes in its own store (SQLite
// embedded, PostgreSQL in production) before acking the message, and
// delivers them: email digests over SMTP (a burst of results is one
// message) and webhooks signed with HMAC-SHA256. Delivery is at least once
// with one dedup key per notification (subscription id and result id); a
// failing webhook or mail server backs off on its own, shown on the
// role's page, and holds back no one else. The page also takes
// subscriptions for an address, double opt-in (a mailed link confirms
// them), and every digest carries links that stop its subscriptions.
//
// event.go reads the messages, match.go the subscriptions, store.go keeps
// both, consume.go takes messages from the broker, deliver.go, email.go and
// webhook.go send, regression.go asks ResultsDB about regressions, page.go
// and service.go are the role. It imports config, status, redact,
// httpclient and sqldb; whether a result is a regression it asks ResultsDB.
package notify
