// Package resultsdb is a ResultsDB API v2.0 compatible server (reference
// §6): the HTTP API under /api/v2.0, server-rendered pages for QA under /,
// its stores on SQLite and PostgreSQL, and an outbox that publishes
// resultsdb.result.new messages to AMQP.
//
// Use:
//
//	store, err := resultsdb.Open(ctx, "sqlite:/var/lib/taskotron/resultsdb.sqlite") // or "postgres://…"
//	defer store.Close()
//	http.ListenAndServe(addr, resultsdb.NewServer(store, resultsdb.Options{BaseURL: "http://" + addr}))
//
// Open creates and migrates the database (versioned steps in migrate.go).
// With Options.Events, every new result also gets an outbox entry in its
// transaction; a Publisher (NewPublisher(store, …).Run(ctx)) sends them
// and removes each once the broker confirms it.
//
// With Options.Origins the server tells submitting systems apart
// (origins.go): each origin writes with tokens of its own (TokenStore,
// hashed, revocable), every result records its origin, and
// /api/v2.0/submissions takes KCIDB I/O documents (submissions.go), which
// the kcidb package checks and upgrades.
//
// The pages mirror the API: /results?item=…&type=… shows what
// /api/v2.0/results?item=…&type=… returns, and the item page is
// /results/latest?item=…&type=…&_distinct_on=arch. Beyond ResultsDB:
// /api/v2.0/regressions and its page /regressions (package regression
// says what a regression is), the package page /packages/NAME and /search.
//
// Results posted at once are written in batches (batch.go): one
// transaction for them all, with one statement per table on SQLite and one
// statement in all on PostgreSQL (writepg.go), a 201 still meaning
// committed.
//
// It imports kcidb, regression, rpmver and redact of this module.
//
// BenchmarkResultsDB measures the queries of issue 6 on both stores with
// a million results each (RESULTSDB_BENCH_ROWS=50000 for a quick look);
// BenchmarkResultsWrite the posts per second beside a storage-less server.
package resultsdb
