#!/usr/bin/env bash
# Real Redis clients against the RESP server example: redis-cli SUBSCRIBE
# receives what redis-cli PUBLISH sends, redis-cli PUBSUB NUMSUB counts it,
# and redis-benchmark pipelines 100,000 PUBLISH without an error.
#
# Usage: .ci/resp-smoke.sh   (installs Debian's redis-tools if missing)
# Every step is bounded in time; any failure exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."

port="${RESP_SMOKE_PORT:-16380}"
work="$(mktemp -d)"
server_pid=""
subscriber_pid=""

fail() {
  echo "resp-smoke: FAIL: $*" >&2
  for log in "$work"/*.log; do
    [ -s "$log" ] && { echo "--- $log" >&2; tail -n 20 "$log" >&2; }
  done
  exit 1
}

cleanup() {
  [ -n "$subscriber_pid" ] && kill "$subscriber_pid" 2>/dev/null
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# Polls a shell condition for up to $1 seconds.
wait_until() {
  local seconds="$1"
  shift
  for _ in $(seq 1 $((seconds * 10))); do
    if eval "$@"; then return 0; fi
    sleep 0.1
  done
  return 1
}

cli() { timeout 10 redis-cli -p "$port" "$@"; }

if ! command -v redis-cli >/dev/null || ! command -v redis-benchmark >/dev/null; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  timeout 300 $sudo apt-get update
  timeout 300 $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y redis-tools
fi
redis-cli --version

if cli PING >/dev/null 2>&1; then
  fail "something already answers on port $port (set RESP_SMOKE_PORT)"
fi

echo "resp-smoke: building and starting the server on 127.0.0.1:$port"
timeout 900 cargo build --release -p tidings --example resp_server
# `cargo run` execs the example, so this pid is the server's.
cargo run --release -q -p tidings --example resp_server -- --bind "127.0.0.1:$port" \
  >"$work/server.log" 2>&1 &
server_pid=$!
wait_until 60 'cli PING 2>/dev/null | grep -qx PONG' || fail "the server did not answer PING"

echo "resp-smoke: redis-cli SUBSCRIBE receives redis-cli PUBLISH"
timeout 60 redis-cli -p "$port" SUBSCRIBE smoke >"$work/subscriber.log" 2>&1 &
subscriber_pid=$!
wait_until 10 '[ "$(cli PUBSUB NUMSUB smoke | tail -n 1)" = 1 ]' \
  || fail "the subscriber never showed up in PUBSUB NUMSUB"
[ "$(cli PUBLISH smoke 'hello world')" = 1 ] || fail "PUBLISH did not report 1 receiver"
wait_until 10 'grep -qx "hello world" "$work/subscriber.log"' \
  || fail "the subscriber did not receive the message"
expected=$'subscribe\nsmoke\n1\nmessage\nsmoke\nhello world'
[ "$(cat "$work/subscriber.log")" = "$expected" ] \
  || fail "the subscriber printed $(cat "$work/subscriber.log" | tr '\n' '|')"

echo "resp-smoke: redis-cli PUBSUB NUMSUB"
numsub="$(cli PUBSUB NUMSUB smoke nobody | tr '\n' ' ')"
[ "$numsub" = "smoke 1 nobody 0 " ] || fail "PUBSUB NUMSUB printed: $numsub"

echo "resp-smoke: a disconnected subscriber is removed"
kill "$subscriber_pid"
wait "$subscriber_pid" 2>/dev/null || true
subscriber_pid=""
wait_until 10 '[ "$(cli PUBSUB NUMSUB smoke | tail -n 1)" = 0 ]' \
  || fail "the subscription outlived its client"

echo "resp-smoke: redis-benchmark -n 100000 -P 16 PUBLISH bench x"
timeout 120 redis-benchmark -p "$port" -n 100000 -P 16 PUBLISH bench x \
  >"$work/benchmark.log" 2>&1 || fail "redis-benchmark exited with $?"
tr '\r' '\n' <"$work/benchmark.log" | grep -q "100000 requests completed" \
  || fail "redis-benchmark did not complete its requests"
if tr '\r' '\n' <"$work/benchmark.log" | grep -qiE "error|warning"; then
  fail "redis-benchmark reported an error"
fi
tr '\r' '\n' <"$work/benchmark.log" | grep -A1 "throughput summary" || true

cli PING >/dev/null || fail "the server stopped answering"
kill "$server_pid"
wait "$server_pid" 2>/dev/null || true
server_pid=""
echo "resp-smoke: all checks passed"
