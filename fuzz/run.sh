#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer's coverage instrumentation on the machine's
# stable toolchain (the flags `cargo fuzz` passes, with no sanitizer, which would need
# nightly) and runs each for SECONDS (default 30) from its seed corpus, corpus/TARGET.
# Targets run side by side, one per core. A crash, a panic or a failed assertion fails
# the run; its input is left in artifacts/TARGET/ (replay it:
# target/HOST/release/TARGET artifacts/TARGET/crash-...).
#   fuzz/run.sh [SECONDS] [TARGET...]
#   fuzz/run.sh --build          (only builds; CI builds while other checks run)
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-30}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(verify source_options filter merge_patch settings sealed config ingest)
fi
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
export CARGO_TARGET_DIR=${HOOKD_FUZZ_TARGET_DIR:-target}
# An explicit --target keeps the flags off build scripts and proc macros.
host=$(rustc -vV | sed -n 's/^host: //p')
cargo build --release --locked --bins --target "$host"
if [ "$seconds" = "--build" ]; then
  exit 0
fi
bin="$CARGO_TARGET_DIR/$host/release"
# libFuzzer runs one target on one core, so targets run side by side, one per core
# (HOOKD_FUZZ_JOBS overrides), each as long as it would alone; their output is printed
# target by target once all have finished.
jobs=${HOOKD_FUZZ_JOBS:-$(nproc)}
logs=$(mktemp -d)
fuzz_one() {
  local t=$1 work status=0
  work=$(mktemp -d)
  mkdir -p "artifacts/$t"
  "$bin/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="artifacts/$t/" -print_final_stats=1 "$work" "corpus/$t" \
    >"$logs/$t.log" 2>&1 || status=$?
  rm -rf "$work"
  echo "$status" >"$logs/$t.status"
}
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
    wait -n || true
  done
  fuzz_one "$t" &
done
wait
failed=0
for t in "${targets[@]}"; do
  echo "=== fuzz $t for ${seconds}s"
  if [ "$(cat "$logs/$t.status")" = 0 ]; then
    grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "$logs/$t.log" ||
      tail -n 3 "$logs/$t.log"
  else
    tail -n 60 "$logs/$t.log"
    echo "fuzz target $t failed; the input is in fuzz/artifacts/$t/" >&2
    failed=1
  fi
done
rm -rf "$logs"
exit "$failed"
