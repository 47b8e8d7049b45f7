#!/usr/bin/env bash
# Throwaway Redis servers for the bridge tests (feature `redis`).
#
#   eval "$(bash .ci/redis.sh start)"   # installs if missing, starts, prints exports
#   ...cargo test...
#   bash .ci/redis.sh stop              # stops exactly what `start` started
#
# `start` installs Debian's redis-server and redis-tools when missing
# (apt-get update first), starts on loopback, with no persistence
# (--save '' --appendonly no):
#   - one standalone server, on a TCP port and a Unix socket, and
#   - a 3-master Redis Cluster (--cluster-enabled yes, config files in a
#     temporary directory, joined with `redis-cli --cluster create`),
# waits until the cluster reports cluster_state:ok on every node, and prints
# on stdout only the lines to eval:
#   export TIDINGS_REDIS_URL=redis://127.0.0.1:PORT
#   export TIDINGS_REDIS_UNIX=unix:///tmp/tidings-redis-ci/redis.sock (the same server)
#   export TIDINGS_REDIS_CLUSTER=127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3
# Progress goes to stderr. Ports start at TIDINGS_REDIS_PORT (default 6391)
# and TIDINGS_REDIS_CLUSTER_PORT (default 7391); busy ones are skipped (a
# cluster node also needs PORT+10000 for its bus). State (pid files, logs,
# cluster configs) lives in TIDINGS_REDIS_STATE (default
# /tmp/tidings-redis-ci); `stop` reads it, shuts those servers down and
# removes it. `start` stops a previous run's servers first.
set -euo pipefail

state="${TIDINGS_REDIS_STATE:-/tmp/tidings-redis-ci}"
say() { printf 'redis.sh: %s\n' "$*" >&2; }

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The first port >= $1 that is free (and whose bus port +10000 is free when
# $2 is "bus"), not already taken by this run.
taken=" "
pick_port() {
  local p=$1
  while port_busy "$p" || { [ "${2:-}" = bus ] && port_busy $((p + 10000)); } \
    || [[ "$taken" == *" $p "* ]]; do
    p=$((p + 1))
  done
  taken="$taken$p "
  echo "$p"
}

install() {
  if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
    return
  fi
  say "installing redis-server and redis-tools"
  local sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update >&2
  $sudo apt-get install -y --no-install-recommends redis-server redis-tools >&2
}

start_server() { # port dir [extra args...]
  local port=$1 dir=$2
  shift 2
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize yes --dir "$dir" --pidfile "$state/redis-$port.pid" \
    --logfile "$state/redis-$port.log" "$@" >&2
}

wait_ping() { # port
  local i
  for i in $(seq 1 100); do
    if [ "$(redis-cli -p "$1" ping 2>/dev/null)" = PONG ]; then return 0; fi
    sleep 0.1
  done
  say "redis on port $1 did not start; its log:"
  cat "$state/redis-$1.log" >&2 || true
  return 1
}

stop() {
  [ -d "$state" ] || return 0
  local pidfile pid
  for pidfile in "$state"/redis-*.pid; do
    [ -e "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$state"
  say "stopped"
}

start() {
  install
  stop
  mkdir -p "$state/cluster"
  local port p nodes=() list=""
  port=$(pick_port "${TIDINGS_REDIS_PORT:-6391}")
  # The standalone server also listens on a Unix socket, for the bridge's
  # Unix-socket test.
  start_server "$port" "$state" --unixsocket "$state/redis.sock" --unixsocketperm 700
  wait_ping "$port"

  p="${TIDINGS_REDIS_CLUSTER_PORT:-7391}"
  for _ in 1 2 3; do
    p=$(pick_port "$p" bus)
    start_server "$p" "$state/cluster" --cluster-enabled yes \
      --cluster-config-file "nodes-$p.conf" --cluster-node-timeout 5000
    nodes+=("127.0.0.1:$p")
    p=$((p + 1))
  done
  for node in "${nodes[@]}"; do wait_ping "${node##*:}"; done
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >&2

  local ok i node
  for i in $(seq 1 300); do
    ok=1
    for node in "${nodes[@]}"; do
      redis-cli -p "${node##*:}" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || ok=0
    done
    [ "$ok" = 1 ] && break
    sleep 0.1
  done
  if [ "$ok" != 1 ]; then
    say "the cluster did not reach cluster_state:ok"
    redis-cli -p "${nodes[0]##*:}" cluster info >&2 || true
    return 1
  fi
  list=$(IFS=,; echo "${nodes[*]}")
  say "standalone on 127.0.0.1:$port, cluster on $list"
  echo "export TIDINGS_REDIS_URL=redis://127.0.0.1:$port"
  echo "export TIDINGS_REDIS_UNIX=unix://$state/redis.sock"
  echo "export TIDINGS_REDIS_CLUSTER=$list"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
