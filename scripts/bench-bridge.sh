#!/usr/bin/env bash
# Cross-node latency (p50, p99, p99.9) and throughput through Redis on
# loopback: the tidings Redis bridge (node A's Bridge::publish → Redis →
# node B's bridge → a Subscriber of node B) against a bare redis-crate
# publisher and PubSub subscriber doing the same work. See
# std-adapter/examples/bridge_bench.rs for the method.
#
# Usage: scripts/bench-bridge.sh
# Starts a throwaway redis-server (no persistence) on a free loopback port
# and stops it at the end; with TIDINGS_REDIS_URL set, uses that server
# instead. Needs redis-server and redis-cli (Debian: apt-get install
# redis-server redis-tools). Not run in CI: it is a measurement, and takes
# about a minute.
#
# Environment (passed to the example):
#   MESSAGES=20000   messages per phase and run
#   PAYLOAD=64       payload bytes
#   RUNS=5           runs per mode; the table shows the median run
#   PORT=7481        first port to try for the throwaway server
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p tidings --features redis --example bridge_bench

pid=""
cleanup() { if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi; }
trap cleanup EXIT

url="${TIDINGS_REDIS_URL:-}"
if [ -z "$url" ]; then
  for tool in redis-server redis-cli; do
    command -v "$tool" >/dev/null || { echo "bench-bridge: $tool is not installed" >&2; exit 1; }
  done
  port="${PORT:-7481}"
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir /tmp --logfile /dev/null &
  pid=$!
  for _ in $(seq 1 100); do
    [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && break
    sleep 0.05
  done
  url="redis://127.0.0.1:$port"
fi

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(redis-server --version | cut -d' ' -f3)"
"$CARGO_TARGET_DIR/release/examples/bridge_bench" "$url"
