// Package labs lets labs anywhere run tasks (Fuego's ftc requests,
// KernelCI's labs): requests by label wait in a queue on the central server,
// and lab agents pull them over HTTP(S) with one token each.
//
// The central server's side (Hub, over a Store in its database, SQLite or
// PostgreSQL, tables lab_*) keeps the requests, the boards the labs offer,
// the leases and the labs' tokens (only their SHA-256 hashes). A long poll
// gives a lab the oldest of the highest-priority queued requests whose
// where: labels its board offers, leased atomically; a lease not renewed
// by heartbeat expires, and the request goes back to the queue with its
// attempt counted, or ends CRASHED after runner.max_attempts. Only the
// holder of a live lease may stream its log, upload its artifacts and send
// its run; the central server then delivers the results itself (reporter,
// idempotent per execution uuid), so a lab holds no secret but its token,
// and records every state change as the request's execution (execdb).
//
// The lab's side (Agent) makes outbound connections only: it fetches the
// task's tree from the central server's mirror, runs it with the same
// runner and sandbox as every worker, ships the log with execdb's Shipper
// and sends the artifacts and the execution back.
//
// Router (router.go) is the trigger's way in: jobs whose rule said where:
// become requests, the others go to the workers' queue unchanged.
//
// It imports contract, config, bus, checkout, runner, results, directives,
// reporter, execdb, httpclient and sqldb.
package labs
