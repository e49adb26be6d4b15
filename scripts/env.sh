#!/usr/bin/env bash
# Brings a Debian machine to what taskotron needs, installing what is missing
# from Debian's packages (as root; otherwise it names the packages to install
# and fails). One script for every set-up, by profile:
#
#   env.sh tools   the tools the demo tasks in tasks/ run (`make run`)
#   env.sh image   the tools, and CA certificates (the Containerfile)
#   env.sh test    the tools, plus what the test suite runs for real: RabbitMQ
#                  and PostgreSQL (started when stopped), git, prove, rpmbuild,
#                  createrepo_c, chromium, systemd-analyze, aiosmtpd (`make test`)
#
# TOOLS is what a task's environment.rpm names on Fedora, as the Debian
# command and package that provide it (runner/environment.go holds the same
# map; a test checks that the two agree, through `env.sh --list`).
set -euo pipefail

log() { printf 'env: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# command:package, one per tool the demo tasks run.
TOOLS=(
	python3:python3   # runner.python, for the python directive
	rpm:rpm           # rpm -qp, rpm --eval (python-versions, upgradepath)
	rpm2cpio:rpm2cpio # python-versions unpacks RPMs
	cpio:cpio
	rpmlint:rpmlint # the rpmlint task
)
# command:package: the sandbox every task process runs in (runner.sandbox).
SANDBOX_TOOLS=(
	bwrap:bubblewrap
)
# command:package, for the container image only: the CA certificates that
# HTTPS to Koji, Bodhi and dist-git needs.
IMAGE_TOOLS=(
	update-ca-certificates:ca-certificates
)
# command:package, for the test suite only.
TEST_TOOLS=(
	git:git
	prove:perl
	rpmbuild:rpm
	createrepo_c:createrepo-c
	chromium:chromium
	systemd-analyze:systemd
	psql:postgresql-client
	aiosmtpd:python3-aiosmtpd # the SMTP server the notifier's tests mail through
)

apt_updated=0
apt_install() { # apt_install PACKAGE...
	[ $# -gt 0 ] || return 0
	if [ "$(id -u)" != 0 ]; then
		die "missing Debian packages: $* (run as root, or: sudo apt-get install $*)"
	fi
	if [ $apt_updated = 0 ]; then
		log "apt-get update"
		DEBIAN_FRONTEND=noninteractive apt-get update -qq || die "apt-get update failed"
		apt_updated=1
	fi
	log "installing $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null ||
		die "apt-get install $* failed"
}

# need COMMAND:PACKAGE...: installs, in one go, the packages of the commands
# not found.
need() {
	local missing=() entry
	for entry in "$@"; do
		command -v "${entry%%:*}" >/dev/null 2>&1 && continue
		case " ${missing[*]-} " in *" ${entry#*:} "*) ;; *) missing+=("${entry#*:}") ;; esac
	done
	apt_install "${missing[@]}"
	for entry in "$@"; do
		command -v "${entry%%:*}" >/dev/null 2>&1 || die "${entry%%:*} still missing after installing ${entry#*:}"
	done
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

services() {
	# RabbitMQ
	if ! port_open 5672; then
		need rabbitmq-server:rabbitmq-server
		log "starting RabbitMQ"
		rabbitmq-server -detached || true
		wait_port 5672 RabbitMQ 120
	fi
	# PostgreSQL
	if ! port_open 5432; then
		need pg_ctlcluster:postgresql
		log "starting PostgreSQL"
		pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start || true
		wait_port 5432 PostgreSQL 60
	fi
	need psql:postgresql-client
	if ! psql -h 127.0.0.1 -U postgres -d test -Atc 'select 1' >/dev/null 2>&1; then
		psql -h 127.0.0.1 -U postgres -d postgres -c 'create database test' >/dev/null 2>&1 ||
			die "PostgreSQL: cannot reach database test as user postgres on 127.0.0.1:5432 (trust auth expected)"
	fi
}

# sandbox_works fails loudly where bwrap cannot make the sandbox tasks run
# in (user or PID namespaces denied): the roles would refuse to start.
sandbox_works() {
	bwrap --unshare-user --disable-userns --unshare-pid --die-with-parent --ro-bind / / --proc /proc -- true ||
		die "bwrap cannot make a sandbox on this machine (user namespaces denied?); runner.sandbox: off runs tasks unsandboxed"
}

# --list PROFILE prints what a profile installs, "command package" a line,
# and changes nothing (the tests compare it with what the tasks need).
if [ "${1-}" = --list ]; then
	case "${2-}" in
	tools) entries=("${TOOLS[@]}" "${SANDBOX_TOOLS[@]}") ;;
	image) entries=("${TOOLS[@]}" "${SANDBOX_TOOLS[@]}" "${IMAGE_TOOLS[@]}") ;;
	test) entries=(rabbitmq-server:rabbitmq-server pg_ctlcluster:postgresql "${TOOLS[@]}" "${SANDBOX_TOOLS[@]}" "${TEST_TOOLS[@]}") ;;
	*) die "usage: env.sh --list tools|image|test" ;;
	esac
	for entry in "${entries[@]}"; do printf '%s %s\n' "${entry%%:*}" "${entry#*:}"; done
	exit 0
fi

case "${1-}" in
tools)
	need "${TOOLS[@]}" "${SANDBOX_TOOLS[@]}"
	sandbox_works
	log "ready: the demo tasks' tools ($(rpm --version), rpmlint, cpio, python3)"
	;;
image)
	need "${TOOLS[@]}" "${SANDBOX_TOOLS[@]}" "${IMAGE_TOOLS[@]}"
	log "ready: the demo tasks' tools ($(rpm --version), rpmlint, cpio, python3), CA certificates"
	;;
test)
	services
	need "${TOOLS[@]}" "${SANDBOX_TOOLS[@]}" "${TEST_TOOLS[@]}"
	sandbox_works
	log "ready: RabbitMQ :5672, PostgreSQL :5432, $(rpm --version), rpmlint, createrepo_c, chromium, aiosmtpd, $(bwrap --version)"
	;;
*)
	die "usage: env.sh tools|image|test"
	;;
esac
