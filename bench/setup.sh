#!/usr/bin/env bash
# Installs the Debian packages the benchmark needs besides cmicro's own build
# dependencies (scripts/bootstrap.sh): the peers it measures against and the
# profilers. Safe to run again; needs root (or sudo) only to install.
set -euo pipefail

packages=(
  golang-go
  mosquitto libmosquitto-dev
  nats-server libnats-dev
  nginx wrk
  openssl procps linux-perf valgrind
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "bench/setup: all benchmark packages are installed"
  exit 0
fi

echo "bench/setup: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
  else
    echo "bench/setup: error: missing packages (${missing[*]}) and not root;" \
      "install them or run as root" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# The peers' servers are started by bench/run.sh on free loopback ports; the
# packages' own system services are not needed.
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
