#!/usr/bin/env bash
# Starts a hookd binary on a free port with a fresh SQLite database (or, when
# HOOKD_TEST_DATABASE_URL is set, a fresh schema of that PostgreSQL database), creates a token
# with its CLI, and runs the README walkthrough with the official Python and npm svix
# SDKs against it, then the ingest check with the providers' own signing libraries, and `hookd listen`
# with them. Usage: tests/sdk/run.sh [path/to/hookd]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
hookd=${1:-$here/../../target/debug/hookd}
# The ingest check forwards to a receiver on loopback.
export HOOKD_DELIVERY_ALLOW_NETWORKS=127.0.0.0/8 HOOKD_RETRY_SCHEDULE=1s,1s
org=sdk
. "$here/../lib/serve.sh"
python3 "$here/walkthrough.py"
node "$here/walkthrough.mjs"
python3 "$here/ingest.py"
node "$here/sources.mjs"
# hookd listen, the real CLI, checked with the stripe and standardwebhooks libraries.
SDK_HOOKD_BIN=$hookd python3 "$here/listen.py"
