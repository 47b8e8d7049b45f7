#!/usr/bin/env bash
# Installs, when missing, what the tests start by themselves (Debian
# packages): redis-server and redis-tools for the Redis bridge and cache
# invalidation tests (they launch throwaway servers and a 3-node cluster on
# free loopback ports), chromium and chromium-driver for the ws_chat
# browser test (it launches chromedriver). Nothing is started here.
set -euo pipefail

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
if [ "${#need[@]}" -gt 0 ]; then
  echo "deps: installing ${need[*]}"
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update
  $sudo apt-get install -y --no-install-recommends "${need[@]}"
fi
redis-server --version
redis-cli --version
# Debian's /usr/bin/chromium wrapper may complain on stderr; the version is on stdout.
chromium --version 2>/dev/null
chromedriver --version
