#!/usr/bin/env bash
# Installs the Debian packages the benchmark needs besides cmicro's own build
# dependencies (scripts/bootstrap.sh): the peers it measures against and the
# profilers. Safe to run again; needs root (or sudo) only to install. The
# peers' servers are started by bench/run.sh on free loopback ports, so the
# packages' own system services are not needed.
set -euo pipefail
cd "$(dirname "$0")/.."

exec bash scripts/bootstrap.sh \
  golang-go \
  mosquitto libmosquitto-dev \
  nats-server libnats-dev \
  nginx wrk \
  openssl procps linux-perf valgrind strace
