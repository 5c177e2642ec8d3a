#!/usr/bin/env bash
# The browser tests drive Debian's Chromium through Playwright (never `playwright install`,
# which downloads a browser build). Install it when it is missing: apt-get, as root.
# Without root, say what to run; the tests then skip, except with CI=true, where they fail.
set -euo pipefail
CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "install-browser: $CHROMIUM is missing; run as root: apt-get install -y --no-install-recommends chromium chromium-driver" >&2
  exit 0
fi
echo "install-browser: installing Debian's chromium for the browser tests" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
