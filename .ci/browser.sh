#!/usr/bin/env bash
# Installs Debian's Chromium and ChromeDriver, when missing, for the ws_chat
# browser test (std-adapter/tests/ws_chat_browser.rs), which finds them on
# PATH as `chromium` and `chromedriver`. Run it before `cargo test`.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  echo "browser: found $(command -v chromium) and $(command -v chromedriver)"
else
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update
  $sudo apt-get install -y chromium chromium-driver
fi
# Debian's /usr/bin/chromium wrapper may complain on stderr; the version is on stdout.
chromium --version 2>/dev/null
chromedriver --version
