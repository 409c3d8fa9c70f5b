#!/usr/bin/env bash
# Checks packaging/hookd.service with `systemd-analyze verify`, with ExecStart pointed at
# the given hookd binary (verify wants the executable to exist). Usage:
# packaging/verify.sh path/to/hookd
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
hookd=$(realpath "${1:-$here/../target/debug/hookd}")
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
sed "s|^ExecStart=/usr/local/bin/hookd|ExecStart=$hookd|" "$here/hookd.service" >"$dir/hookd.service"
out=$(systemd-analyze verify --man=no "$dir/hookd.service" 2>&1) || { echo "$out"; exit 1; }
# verify prints warnings without failing; any line about the unit fails the check.
if printf '%s\n' "$out" | grep -F "hookd.service" ; then
  exit 1
fi
echo "packaging/hookd.service: verified"
