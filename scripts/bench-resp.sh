#!/usr/bin/env bash
# PUBLISH throughput of the tidings RESP server against a real redis-server,
# both started the same way on this machine and driven by the same
# redis-benchmark command:
#
#   redis-benchmark -p PORT -n N -P 16 -q PUBLISH bench x
#
# once with no subscriptions, once while one redis-cli subscribes to the
# channel (every PUBLISH then delivers a message), and once while one
# connected client (redis-cli) holds 10,000 PSUBSCRIBE patterns p0:* …
# p9999:*. Redis checks every pattern on every PUBLISH; tidings' pattern
# index does not.
#
# Usage: scripts/bench-resp.sh
# Needs redis-server, redis-cli and redis-benchmark on PATH (Debian:
# apt-get install redis-server redis-tools). Not run in CI: it is a
# measurement, and takes about two minutes. redis-benchmark is single-
# threaded and shares the machine with the server it measures: on a small
# or busy machine the numbers move with the load, so compare medians of a
# quiet run.
#
# Environment:
#   RUNS=5                 runs per cell, interleaved; the table shows medians
#   REQUESTS=1000000       requests per run
#   SLOW_REQUESTS=50000    requests per run for redis-server with patterns
#                          (it manages a few thousand per second there)
#   PATTERNS=10000         pattern subscriptions in the second row
#   TIDINGS_PORT=7380 REDIS_PORT=7381
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${RUNS:-5}"
requests="${REQUESTS:-1000000}"
slow_requests="${SLOW_REQUESTS:-50000}"
patterns="${PATTERNS:-10000}"
tidings_port="${TIDINGS_PORT:-7380}"
redis_port="${REDIS_PORT:-7381}"

for tool in redis-server redis-cli redis-benchmark; do
  command -v "$tool" >/dev/null || { echo "bench-resp: $tool is not installed" >&2; exit 1; }
done

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

wait_for() { # port
  for _ in $(seq 1 100); do
    redis-cli -p "$1" PING >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "bench-resp: nothing answers on port $1" >&2
  exit 1
}

cargo build --release --quiet -p tidings --example resp_server
target_dir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
"$target_dir/release/examples/resp_server" --bind "127.0.0.1:$tidings_port" 2>/dev/null &
pids+=($!)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
pids+=($!)
wait_for "$tidings_port"
wait_for "$redis_port"

# The requests/s of one redis-benchmark run against a port.
one_run() { # port requests
  redis-benchmark -p "$1" -n "$2" -P 16 -q PUBLISH bench x 2>&1 \
    | tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -n 1 | cut -d' ' -f1
}

median() { sort -g | sed -n "$(((runs + 1) / 2))p"; }

row() { # label redis tidings
  awk -v label="$1" -v r="$2" -v t="$3" \
    'BEGIN { printf "| %-18s | %16.0f | %14.0f | %8.1fx |\n", label, r, t, t / r }'
}

# One table row: $runs runs against each server, interleaved so that a
# change in the machine's load affects both columns alike; medians.
compare() { # label requests-for-redis
  local redis=() tidings=()
  for _ in $(seq 1 "$runs"); do
    redis+=("$(one_run "$redis_port" "$2")")
    tidings+=("$(one_run "$tidings_port" "$requests")")
  done
  for result in "${redis[@]}" "${tidings[@]}"; do
    [ -n "$result" ] || { echo "bench-resp: a redis-benchmark run failed" >&2; exit 1; }
  done
  row "$1" "$(printf '%s\n' "${redis[@]}" | median)" "$(printf '%s\n' "${tidings[@]}" | median)"
}

# One client subscribed to the benchmark's channel on a port; prints its pid.
hold_subscriber() { # port
  redis-cli -p "$1" SUBSCRIBE bench >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do
    [ "$(redis-cli -p "$1" PUBSUB NUMSUB bench | tail -n 1)" = 1 ] && { echo "$pid"; return 0; }
    sleep 0.1
  done
  echo "bench-resp: the subscriber on port $1 did not subscribe" >&2
  exit 1
}

# One client holding `$patterns` patterns on a port, until the script ends.
hold_patterns() { # port
  # shellcheck disable=SC2046
  redis-cli -p "$1" PSUBSCRIBE $(seq -f 'p%g:*' 0 $((patterns - 1))) >/dev/null 2>&1 &
  pids+=($!)
  for _ in $(seq 1 200); do
    [ "$(redis-cli -p "$1" PUBSUB NUMPAT)" = "$patterns" ] && return 0
    sleep 0.1
  done
  echo "bench-resp: the pattern subscriber on port $1 did not get $patterns patterns" >&2
  exit 1
}

echo "redis-benchmark -n N -P 16 -q PUBLISH bench x ($(nproc) CPUs, redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'))"
echo
echo "| held               | redis-server r/s |    tidings r/s |    ratio  |"
echo "|--------------------|------------------|----------------|-----------|"

# Without patterns first: a Redis that once held many patterns stays slower
# after they are gone (its pattern table does not shrink).
compare "0" "$requests"
# Every PUBLISH delivered to one subscriber, which reads as fast as it can.
subscribers=("$(hold_subscriber "$redis_port")" "$(hold_subscriber "$tidings_port")")
pids+=("${subscribers[@]}")
compare "0, 1 subscriber" "$requests"
kill "${subscribers[@]}"
hold_patterns "$redis_port"
hold_patterns "$tidings_port"
compare "$patterns (p{i}:*)" "$slow_requests"
