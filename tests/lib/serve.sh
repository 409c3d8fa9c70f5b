# Sourced by the out-of-process checks (tests/sdk, tests/openapi, tests/ui): starts the
# hookd binary "$hookd" on a free port with a fresh SQLite database, or, when
# HOOKD_TEST_DATABASE_URL is set, a fresh schema of that PostgreSQL database; waits
# until it is healthy; exports HOOKD_URL and HOOKD_TOKEN (a token of organisation
# "$org", made with the CLI); removes everything on exit. Set any other HOOKD_*
# variable before sourcing. Leaves $work (a temporary directory) and $pid.
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export HOOKD_LISTEN=127.0.0.1:$port HOOKD_DATABASE_URL=sqlite://$work/hookd.db HOOKD_LOG=${HOOKD_LOG:-warn}
schema=""
if [ -n "${HOOKD_TEST_DATABASE_URL:-}" ]; then
  schema=hookd_${org:-test}_$$_$RANDOM
  schema=${schema//-/_}
  psql -q "$HOOKD_TEST_DATABASE_URL" -c "CREATE SCHEMA $schema"
  sep='?'; case "$HOOKD_TEST_DATABASE_URL" in *\?*) sep='&';; esac
  HOOKD_DATABASE_URL="$HOOKD_TEST_DATABASE_URL${sep}options=-csearch_path%3D$schema"
  # PostgreSQL needs the key that seals secrets from the configuration.
  HOOKD_SECRET_KEY=$(python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')
  export HOOKD_SECRET_KEY
  echo "against PostgreSQL (schema $schema)"
fi
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
  curl -fs "http://$HOOKD_LISTEN/api/v1/health" >/dev/null && break
  sleep 0.1
done
curl -fs "http://$HOOKD_LISTEN/api/v1/health" >/dev/null || { cat "$work/serve.log"; exit 1; }
export HOOKD_URL=http://$HOOKD_LISTEN
HOOKD_TOKEN=$("$hookd" token create --org "${org:-test}" --name "${0##*/}" 2>/dev/null | tail -n 1)
export HOOKD_TOKEN
