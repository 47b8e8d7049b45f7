#!/usr/bin/env bash
# Installs, when missing, the real clients that std-adapter/tests/resp_clients.rs
# drives against the RESP server example: redis-cli (Debian's redis-tools)
# and redis-py, in a virtualenv at cargo's target/tmp/redis-py where that
# test looks first. Run it before `cargo test`; then, for a quick check of
# just these tests: `bash .ci/resp-clients.sh test`.
#
# REDIS_PY_VERSION (default 8.1.0) picks the redis-py release; it must be 5
# or newer (RESP3).
set -euo pipefail
cd "$(dirname "$0")/.."

redis_py_version="${REDIS_PY_VERSION:-8.1.0}"
sudo=""
[ "$(id -u)" != 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then
    timeout 300 $sudo apt-get update
    apt_updated=1
  fi
  timeout 600 $sudo apt-get install -y "$@"
}

if ! command -v redis-cli >/dev/null 2>&1; then
  apt_install redis-tools
fi
echo "resp-clients: $(redis-cli --version)"

if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  apt_install python3 python3-venv
fi
target_dir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
venv="$target_dir/tmp/redis-py"
if ! "$venv/bin/python" -c "import redis, sys; sys.exit(redis.__version__ != '$redis_py_version')" 2>/dev/null; then
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
  timeout 600 "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "redis==$redis_py_version"
fi
echo "resp-clients: redis-py $("$venv/bin/python" -c 'import redis; print(redis.__version__)') in $venv"

if [ "${1:-}" = test ]; then
  CI=1 cargo test -p tidings --test resp_clients
fi
