#!/usr/bin/env bash
# Checks hookd's own OpenAPI document from outside, against a live hookd (fresh
# SQLite, or a fresh PostgreSQL schema when HOOKD_TEST_DATABASE_URL is set):
#   1. the served /api/v1/openapi.json is valid OpenAPI 3.1 (openapi-spec-validator);
#   2. a client generated from it (openapi-python-client) imports and performs calls
#      (tests/openapi/client_call.py);
#   3. schemathesis fuzzes every operation from it with the checks below and must
#      find nothing. HOOKD_FUZZ_EXAMPLES (default 20) bounds the run; docs/api.md says
#      how to run it longer. One worker: two make CPython 3.11's ast module, which
#      hypothesis uses to describe its strategies, fail now and then ("AST constructor
#      recursion depth mismatch") — a tool error, not a finding.
# Usage: tests/openapi/check.sh [path/to/hookd]   (run by .ci/run)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
hookd=${1:-$here/../../target/debug/hookd}
examples=${HOOKD_FUZZ_EXAMPLES:-20}
org=openapi
. "$here/../lib/serve.sh"

curl -fs "$HOOKD_URL/api/v1/openapi.json" -o "$work/openapi.json"
python3 -m openapi_spec_validator "$work/openapi.json"

(cd "$work" && openapi-python-client generate --path "$work/openapi.json" --meta none \
  --output-path "$work/gen/hookd_client" >"$work/generate.log" 2>&1) || { cat "$work/generate.log"; exit 1; }
if grep -q "Warning" "$work/generate.log"; then cat "$work/generate.log"; exit 1; fi
python3 -m compileall -q "$work/gen" >/dev/null
python3 "$here/client_call.py" "$work/gen"

# From the work directory: schemathesis keeps a cache (.schemathesis/) where it runs.
(cd "$work" && schemathesis run "$HOOKD_URL/api/v1/openapi.json" -H "Authorization: Bearer $HOOKD_TOKEN" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection,use_after_free \
  --max-examples "$examples" --workers 1 --seed "${HOOKD_FUZZ_SEED:-1}" \
  --report junit --report-dir "$work/report" >"$work/schemathesis.log" 2>&1) \
  || { cat "$work/schemathesis.log"; echo "schemathesis found failures (log above)" >&2; exit 1; }
tail -n 8 "$work/schemathesis.log"
