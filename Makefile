# The two set-up commands are `make run` and `make test`; see README.md.
GO      ?= go
BIN     := bin/taskotron
DATA    ?= .taskotron
RUN_ARGS ?=
# A count, not a duration: Go 1.26's fuzz coordinator can fail a run with a
# spurious "context deadline exceeded" when a duration ends (go.dev/issue/75804).
FUZZTIME ?= 5000x

.PHONY: run run-env test test-env build bench lint fuzz mirror rpms image clean chaos

# -buildvcs=auto stamps the commit in (taskotron version) even where GOFLAGS
# turns it off; outside a git checkout it is simply left out.
build:
	$(GO) build -buildvcs=auto -o $(BIN) ./cmd/taskotron
	$(GO) build -buildvcs=auto -o bin/runtask ./cmd/runtask

# The main job on the embedded defaults: fixture messages -> trigger -> jobs
# -> tasks from a local git mirror of tasks/ -> results in the embedded
# ResultsDB, browsable at the printed URL until Ctrl-C (RUN_ARGS=--once to exit).
# The tools the tasks run (rpm, rpmlint, cpio, python3) are installed first
# when missing; DATA is the data_dir.
run: run-env build
	$(BIN) mirror --tasks tasks --mirror $(DATA)/mirror
	TASKOTRON_DATA_DIR=$(DATA) $(BIN) up $(RUN_ARGS)

run-env:
	bash scripts/env.sh tools

# The whole test suite against real RabbitMQ and PostgreSQL (started, or
# installed from Debian's packages, when missing), with the race detector,
# then a short run of every fuzz target.
test: test-env
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 30m -skip 'BrokerRestart' ./...
	@# Tests that restart RabbitMQ run alone (one package at a time), so they cannot break the others' connections.
	$(GO) test -race -count=1 -p 1 -timeout 15m -run 'BrokerRestart' ./...
	$(MAKE) fuzz

test-env:
	bash scripts/env.sh test

fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for fz in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz' || true); do \
			echo "fuzz $$pkg $$fz ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$fz$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

# One package at a time (-p 1): throughput benchmarks share this machine's
# cores with nothing but the services they measure against.
bench: test-env
	$(GO) test -p 1 -run '^$$' -bench . -benchmem -count=1 -timeout 60m ./...

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

# The chaos soak (README "Chaos soak"): trigger, workers and resultsdb serve
# as processes on RabbitMQ and PostgreSQL under a stream of real-shaped and
# malformed messages, with workers and the trigger SIGKILLed, the broker
# restarted and ResultsDB stopped; prints a table and fails on any loss or
# duplicate. It restarts RabbitMQ: CHAOS_BROKER_RESTARTS=0 while others use it.
CHAOS_MESSAGES ?= 1200
CHAOS_DURATION ?= 90s
CHAOS_WORKERS ?= 3
CHAOS_BROKER_RESTARTS ?= 2
CHAOS_ARGS ?=
chaos: test-env
	$(GO) run ./chaos -messages $(CHAOS_MESSAGES) -duration $(CHAOS_DURATION) -workers $(CHAOS_WORKERS) \
		-broker-restarts $(CHAOS_BROKER_RESTARTS) $(CHAOS_ARGS)

mirror: build
	$(BIN) mirror --tasks tasks --mirror $(DATA)/mirror

# Rebuilds the small fixture RPMs from their spec files (needs rpmbuild); the
# built RPMs are committed, so tests never need this.
rpms:
	bash fixtures/rpms/build.sh

# The container image: the binary and the tasks' tools on Debian (Containerfile).
CONTAINER ?= $(shell command -v podman || command -v docker)
image:
	$(CONTAINER) build -t taskotron -f Containerfile .

clean:
	rm -rf bin $(DATA)
