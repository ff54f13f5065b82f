#!/usr/bin/env bash
# lobbyd — one entry point that sets up everything it needs on a fresh Debian machine (as root).
#
#   ./run.sh demo     the main job: a simulated lobby through the real daemon
#   ./run.sh test     ruff, mypy --strict, then the whole test suite on parallel workers (what CI runs)
#   ./run.sh bench    the benchmarks (not part of the tests)
#   ./run.sh setup    only install (Debian packages, Python venv in .venv)
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=(python3 python3-venv python3-pip mosquitto mosquitto-clients influxdb victoria-metrics socat openssl
              systemd adduser)
# binaries that must exist for the tests, demo and benchmarks (package that provides each)
declare -A NEEDS=([mosquitto]=mosquitto [mosquitto_passwd]=mosquitto [influxd]=influxdb
                  [victoria-metrics]=victoria-metrics [socat]=socat [openssl]=openssl
                  [systemd-analyze]=systemd [adduser]=adduser)

setup_system() {
  local missing=()
  for bin in "${!NEEDS[@]}"; do
    command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || missing+=("${NEEDS[$bin]}")
  done
  command -v python3 >/dev/null 2>&1 || missing+=(python3)
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "run.sh: installing Debian packages: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # policy-rc.d keeps the packages' own services from starting: lobbyd's tests start private copies.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null
    rm -f /usr/sbin/policy-rc.d
  fi
}

setup_python() {
  local stamp=.venv/.installed
  local want
  want=$(sha256sum pyproject.toml | cut -c1-16)
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "run.sh: installing lobbyd and its Python dependencies into .venv" >&2
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -e '.[dev]'
    echo "$want" > "$stamp"
  fi
}

setup() { setup_system; setup_python; }

cmd=${1:-help}
shift || true
case "$cmd" in
  setup) setup ;;
  test)  setup
         # The house stays readable: lint, format and strict typing fail the run before any test does.
         .venv/bin/ruff check .
         .venv/bin/ruff format --check .
         .venv/bin/mypy
         .venv/bin/mypy tests bench
         # Six pytest-xdist workers: four e2e tests wait about 2 min each in real time, and the other tests run
         # beside them. loadgroup hands out one test at a time in tests/conftest.py's order (`waits` first,
         # `alone` last). Arguments go to pytest and override these: `./run.sh test -n 0` runs in one process.
         exec .venv/bin/python -m pytest -n 6 --dist loadgroup "$@" ;;
  demo)  setup; exec .venv/bin/python -m simulators.demo "$@" ;;
  bench) setup; exec .venv/bin/python -m bench "$@" ;;
  *) sed -n '2,9p' "$0"; exit 2 ;;
esac
