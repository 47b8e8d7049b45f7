#!/usr/bin/env bash
# The tidings RESP server against a real redis-server, both started the
# same way on this machine and driven by the same clients.
#
# Throughput rows: the requests/s of
#
#   redis-benchmark -p PORT -n N -P 16 -q PUBLISH bench x
#
# (50 connections, 16 pipelined requests each) while other clients hold:
#   - nothing;
#   - one `redis-cli SUBSCRIBE bench`, so every PUBLISH delivers a message;
#   - 50 connections subscribed to `bench`, all read by one small Python
#     process (selectors, 1 MiB recv) that discards what it reads: every
#     PUBLISH delivers 50 messages;
#   - 10,000 PSUBSCRIBE patterns p0:* … p9999:* on one connection. Redis
#     checks every pattern on every PUBLISH; tidings' pattern index does not.
# Each row runs RUNS times against each server, interleaved so that a
# change in the machine's load affects both columns alike; the table shows
# medians.
#
# Memory row: the peak resident memory (VmHWM) of a freshly started server
# of each kind while 5 connections subscribed to one channel never read,
# and 48 PUBLISHes of 1 MiB arrive (one redis-cli -x each). With Redis's
# default client-output-buffer-limit pubsub (32mb 8mb 60) both servers
# close the subscribers once 32 MiB are pending for each.
#
# Usage: scripts/bench-resp.sh
# Needs redis-server, redis-cli, redis-benchmark (Debian: apt-get install
# redis-server redis-tools) and python3. Not run in CI: it is a
# measurement, and takes about five minutes. redis-benchmark is
# single-threaded and shares the machine with the server it measures: on a
# small or busy machine the numbers move with the load, so compare medians
# of a quiet run.
#
# Environment:
#   RUNS=5                 runs per cell, interleaved; the table shows medians
#   REQUESTS=1000000       requests per run
#   SLOW_REQUESTS=50000    requests per run for redis-server with patterns
#                          (it manages a few thousand per second there)
#   FANOUT=50              subscribers in the fan-out row
#   PATTERNS=10000         pattern subscriptions in the patterns row
#   TIDINGS_PORT=7380 REDIS_PORT=7381 (the memory row uses the next two)
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${RUNS:-5}"
requests="${REQUESTS:-1000000}"
slow_requests="${SLOW_REQUESTS:-50000}"
fanout="${FANOUT:-50}"
patterns="${PATTERNS:-10000}"
tidings_port="${TIDINGS_PORT:-7380}"
redis_port="${REDIS_PORT:-7381}"

for tool in redis-server redis-cli redis-benchmark python3; do
  command -v "$tool" >/dev/null || { echo "bench-resp: $tool is not installed" >&2; exit 1; }
done

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
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
tidings_bin="$target_dir/release/examples/resp_server"

# Starts both servers on a pair of ports; sets tidings_pid and redis_pid.
start_servers() { # tidings-port redis-port
  "$tidings_bin" --bind "127.0.0.1:$1" 2>/dev/null &
  tidings_pid=$!
  redis-server --port "$2" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
  redis_pid=$!
  pids+=("$tidings_pid" "$redis_pid")
  wait_for "$1"
  wait_for "$2"
}
start_servers "$tidings_port" "$redis_port"

# The requests/s of one redis-benchmark run against a port.
one_run() { # port requests
  redis-benchmark -p "$1" -n "$2" -P 16 -q PUBLISH bench x 2>&1 \
    | tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -n 1 | cut -d' ' -f1
}

median() { sort -g | sed -n "$(((runs + 1) / 2))p"; }

row() { # label redis tidings
  awk -v label="$1" -v r="$2" -v t="$3" \
    'BEGIN { printf "| %-20s | %16.0f | %14.0f | %8.2fx |\n", label, r, t, t / r }'
}

# One table row: $runs runs against each server, interleaved; medians.
compare() { # label requests-for-redis
  local redis=() tidings=()
  for _ in $(seq 1 "$runs"); do
    redis+=("$(one_run "$redis_port" "$2")")
    tidings+=("$(one_run "$tidings_port" "$requests")")
  done
  for result in "${redis[@]}" "${tidings[@]}"; do
    [ -n "$result" ] || { echo "bench-resp: a redis-benchmark run failed" >&2; exit 1; }
  done
  echo "bench-resp: $1: redis ${redis[*]}; tidings ${tidings[*]}" >&2
  row "$1" "$(printf '%s\n' "${redis[@]}" | median)" "$(printf '%s\n' "${tidings[@]}" | median)"
}

# Waits until `bench` has $2 subscribers on port $1.
wait_numsub() { # port count
  for _ in $(seq 1 200); do
    [ "$(redis-cli -p "$1" PUBSUB NUMSUB bench | tail -n 1)" = "$2" ] && return 0
    sleep 0.1
  done
  echo "bench-resp: bench has $(redis-cli -p "$1" PUBSUB NUMSUB bench | tail -n 1) subscribers on port $1, not $2" >&2
  exit 1
}

# Clients that hold subscriptions during one row (their pids). Started
# without a subshell, which would run the EXIT trap.
holders=()
release_holders() {
  kill "${holders[@]}"
  holders=()
  wait_numsub "$redis_port" 0
  wait_numsub "$tidings_port" 0
}

# One redis-cli subscribed to `bench` on a port.
hold_subscriber() { # port
  redis-cli -p "$1" SUBSCRIBE bench >/dev/null 2>&1 &
  holders+=($!)
  pids+=($!)
  wait_numsub "$1" 1
}

# The fan-out row's readers: $2 connections subscribed to `bench` on port
# $1, read by one process that discards everything.
cat >"$work/readers.py" <<'PY'
import selectors, socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
confirmation = b"*3\r\n$9\r\nsubscribe\r\n$5\r\nbench\r\n:1\r\n"
sel = selectors.DefaultSelector()
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"*2\r\n$9\r\nSUBSCRIBE\r\n$5\r\nbench\r\n")
    got = b""
    while len(got) < len(confirmation):
        got += s.recv(len(confirmation) - len(got))
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
buf = bytearray(1 << 20)
while True:
    for key, _ in sel.select():
        try:
            if key.fileobj.recv_into(buf) == 0:
                sys.exit(0)
        except BlockingIOError:
            pass
PY
hold_readers() { # port count
  python3 "$work/readers.py" "$1" "$2" &
  holders+=($!)
  pids+=($!)
  wait_numsub "$1" "$2"
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

echo "redis-benchmark -n N -P 16 -q PUBLISH bench x ($(nproc) CPUs, redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), $runs interleaved runs, medians)"
echo
echo "| held                 | redis-server r/s |    tidings r/s |    ratio  |"
echo "|----------------------|------------------|----------------|-----------|"

# Without patterns first: a Redis that once held many patterns stays slower
# after they are gone (its pattern table does not shrink).
compare "nothing" "$requests"

hold_subscriber "$redis_port"
hold_subscriber "$tidings_port"
compare "1 subscriber" "$requests"
release_holders

hold_readers "$redis_port" "$fanout"
hold_readers "$tidings_port" "$fanout"
compare "$fanout subscribers" "$requests"
# A reader that fell behind past the output limit would have been dropped.
wait_numsub "$redis_port" "$fanout"
wait_numsub "$tidings_port" "$fanout"
release_holders

hold_patterns "$redis_port"
hold_patterns "$tidings_port"
compare "$patterns patterns" "$slow_requests"

# Peak memory: fresh servers, 5 subscribers that never read, 1 MiB publishes.
echo
head -c $((1 << 20)) /dev/zero | tr '\0' x >"$work/payload"
memory_row() {
  start_servers $((tidings_port + 2)) $((redis_port + 2))
  local port pid
  for port in $((redis_port + 2)) $((tidings_port + 2)); do
    for _ in 1 2 3 4 5; do
      # A subscriber that never reads: bash holds the socket open.
      bash -c "exec 3<>/dev/tcp/127.0.0.1/$port; printf '*2\r\n\$9\r\nSUBSCRIBE\r\n\$3\r\nbig\r\n' >&3; exec sleep 600" &
      pids+=($!)
    done
  done
  for port in $((redis_port + 2)) $((tidings_port + 2)); do
    for _ in $(seq 1 100); do
      [ "$(redis-cli -p "$port" PUBSUB NUMSUB big | tail -n 1)" = 5 ] && break
      sleep 0.1
    done
  done
  local counted_redis=0 counted_tidings=0
  for _ in $(seq 1 48); do
    counted_redis=$((counted_redis + $(redis-cli -p $((redis_port + 2)) -x PUBLISH big <"$work/payload")))
    counted_tidings=$((counted_tidings + $(redis-cli -p $((tidings_port + 2)) -x PUBLISH big <"$work/payload")))
  done
  sleep 1
  local redis_peak tidings_peak
  redis_peak=$(awk '/VmHWM/ { print $2 }' "/proc/$redis_pid/status")
  tidings_peak=$(awk '/VmHWM/ { print $2 }' "/proc/$tidings_pid/status")
  echo "Peak RSS, 5 subscribers that never read, 48 PUBLISHes of 1 MiB (deliveries counted: redis $counted_redis, tidings $counted_tidings):"
  echo
  echo "| server  | peak RSS (VmHWM) |"
  echo "|---------|------------------|"
  awk -v r="$redis_peak" -v t="$tidings_peak" 'BEGIN {
    printf "| redis   | %10.1f MiB   |\n| tidings | %10.1f MiB   |\n", r / 1024, t / 1024 }'
}
memory_row
