#!/usr/bin/env bash
# Brings up what the test suite needs on a Debian machine: RabbitMQ and
# PostgreSQL running, and the Debian tools the tasks call. Installs what is
# missing (needs root), starts what is stopped, and fails loudly otherwise.
set -euo pipefail

log() { printf 'test-env: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

apt_updated=0
need_pkg() { # need_pkg COMMAND PACKAGE...
	command -v "$1" >/dev/null 2>&1 && return 0
	shift
	if [ "$(id -u)" != 0 ]; then die "missing $* and not root to install it"; fi
	if [ $apt_updated = 0 ]; then
		log "apt-get update"
		DEBIAN_FRONTEND=noninteractive apt-get update -qq || die "apt-get update failed"
		apt_updated=1
	fi
	log "installing $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null ||
		die "apt-get install $* failed"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # wait_port PORT NAME SECONDS
	local i
	for ((i = 0; i < $3 * 2; i++)); do
		port_open "$1" && return 0
		sleep 0.5
	done
	die "$2 is not listening on 127.0.0.1:$1 after $3 s"
}

# RabbitMQ
if ! port_open 5672; then
	need_pkg rabbitmq-server rabbitmq-server
	log "starting RabbitMQ"
	rabbitmq-server -detached || true
	wait_port 5672 RabbitMQ 120
fi

# PostgreSQL
if ! port_open 5432; then
	need_pkg pg_ctlcluster postgresql
	log "starting PostgreSQL"
	pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start || true
	wait_port 5432 PostgreSQL 60
fi
need_pkg psql postgresql-client
if ! psql -h 127.0.0.1 -U postgres -d test -Atc 'select 1' >/dev/null 2>&1; then
	psql -h 127.0.0.1 -U postgres -d postgres -c 'create database test' >/dev/null 2>&1 ||
		die "PostgreSQL: cannot reach database test as user postgres on 127.0.0.1:5432 (trust auth expected)"
fi

# Tools the tasks and their tests run for real.
need_pkg git git
need_pkg prove perl
need_pkg rpm rpm
need_pkg rpmbuild rpm
need_pkg rpmlint rpmlint
need_pkg createrepo_c createrepo-c
need_pkg chromium chromium
need_pkg systemd-analyze systemd
log "ready: RabbitMQ :5672, PostgreSQL :5432, $(rpm --version), rpmlint, createrepo_c, chromium"
