#!/usr/bin/env bash
# Starts a hookd binary on a free port with a fresh SQLite database (or, when
# HOOKD_TEST_DATABASE_URL is set, a fresh schema of that PostgreSQL database), creates a token
# with its CLI, and runs the README walkthrough with the official Python and npm svix
# SDKs against it, then the ingest check with the providers' own signing libraries. Usage: tests/sdk/run.sh [path/to/hookd]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
hookd=${1:-$here/../../target/debug/hookd}
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export HOOKD_LISTEN=127.0.0.1:$port HOOKD_DATABASE_URL=sqlite://$work/hookd.db HOOKD_LOG=warn
schema=""
if [ -n "${HOOKD_TEST_DATABASE_URL:-}" ]; then
  schema=hookd_sdk_$$_$RANDOM
  psql -q "$HOOKD_TEST_DATABASE_URL" -c "CREATE SCHEMA $schema"
  sep='?'; case "$HOOKD_TEST_DATABASE_URL" in *\?*) sep='&';; esac
  HOOKD_DATABASE_URL="$HOOKD_TEST_DATABASE_URL${sep}options=-csearch_path%3D$schema"
  echo "official SDKs against PostgreSQL (schema $schema)"
fi
# The ingest check forwards to a receiver on loopback.
export HOOKD_DELIVERY_ALLOW_NETWORKS=127.0.0.0/8 HOOKD_RETRY_SCHEDULE=1s,1s

"$hookd" serve >"$work/serve.log" 2>&1 &
pid=$!
cleanup() {
  kill $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
  rm -rf "$work"
  if [ -n "$schema" ]; then psql -q "$HOOKD_TEST_DATABASE_URL" -c "SET client_min_messages = warning; DROP SCHEMA $schema CASCADE"; fi
}
trap cleanup EXIT
for _ in $(seq 100); do
  curl -fs "http://$HOOKD_LISTEN/api/v1/health/" >/dev/null && break
  sleep 0.1
done
curl -fs "http://$HOOKD_LISTEN/api/v1/health/" >/dev/null || { cat "$work/serve.log"; exit 1; }

export HOOKD_URL=http://$HOOKD_LISTEN
HOOKD_TOKEN=$("$hookd" token create --org sdk --name walkthrough 2>/dev/null | tail -n 1)
export HOOKD_TOKEN
python3 "$here/walkthrough.py"
node "$here/walkthrough.mjs"
python3 "$here/ingest.py"
node "$here/sources.mjs"
