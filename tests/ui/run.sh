#!/usr/bin/env bash
# The web UI in a real browser (tests/ui/browser.py): starts a hookd binary on a fresh
# SQLite database (or a fresh PostgreSQL schema when HOOKD_TEST_DATABASE_URL is set)
# and drives Debian's Chromium with Playwright for Python. Screenshots go to
# $UI_SCREENSHOTS (default: a temporary directory that is kept) and their paths
# are printed. Usage: tests/ui/run.sh [path/to/hookd]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
hookd=$(realpath "${1:-$here/../../target/debug/hookd}")
export UI_SCREENSHOTS=${UI_SCREENSHOTS:-$(mktemp -d /tmp/hookd-ui-screens.XXXXXX)}
# Deliveries go to a receiver on loopback.
export HOOKD_DELIVERY_ALLOW_NETWORKS=127.0.0.0/8 HOOKD_RETRY_SCHEDULE=1s,1s
org=ui
. "$here/../lib/serve.sh"
export UI_HOOKD_BIN=$hookd UI_ORG=ui
python3 "$here/browser.py" || { echo "--- hookd log"; tail -n 50 "$work/serve.log"; exit 1; }
