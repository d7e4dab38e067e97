#!/usr/bin/env bash
# Measures the build and test loop as a newcomer meets it (docs/benchmarks.md,
# "Build and test loop times"), in a clean clone of this checkout's HEAD so
# that nothing here is touched:
#   1. cold: `bash scripts/test.sh` with an empty target folder, and the
#      size of that folder afterwards (skip it with --warm-only: it takes
#      the better part of a quarter of an hour);
#   2. warm, one file of the domain crate changed, then its unit tests;
#   3. warm, one HTTP handler changed, then the system-test binary built.
# Prints one line per figure. The services must be reachable as for the
# test command (scripts/services.sh starts them).
set -euo pipefail
cd "$(dirname "$0")/.."

warm_only=0
[ "${1:-}" = "--warm-only" ] && warm_only=1

work="$(mktemp -d /tmp/sportello-loop-XXXXXX)"
trap 'rm -rf "$work"' EXIT
git clone --quiet . "$work/clone"
cd "$work/clone"

seconds() { # the wall time of a command, in seconds
  local start end
  start=$(date +%s.%N)
  "$@" >"$work/last.log" 2>&1 || { cat "$work/last.log"; return 1; }
  end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }'
}

if [ "$warm_only" = 0 ]; then
  export CARGO_TARGET_DIR="$work/target"
  cold=$(seconds bash scripts/test.sh)
  size=$(du -sh "$CARGO_TARGET_DIR" | cut -f1)
  whole=${cold%.*}
  printf 'cold bash scripts/test.sh: %d min %02d s\n' "$((whole / 60))" "$((whole % 60))"
  echo "target folder after it: $size"
else
  # Warm: the shared target folder the test command uses.
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sportello-target}"
  cargo build --workspace --tests --locked >"$work/last.log" 2>&1 || { cat "$work/last.log"; exit 1; }
fi

# Each loop is measured the second time round, as a developer meets it:
# `-p` builds resolve features for that package alone, so the first run of a
# command may build dependencies the workspace's test build did not.
cargo test --locked -p sportello-domain --lib >"$work/last.log" 2>&1 || { cat "$work/last.log"; exit 1; }
cargo test --locked -p sportello --test system --no-run >"$work/last.log" 2>&1 || { cat "$work/last.log"; exit 1; }

# One rule of the domain changed: a real edit (a new function), so that
# incremental compilation cannot skip it as it would a comment.
echo "pub fn loop_times_change() -> u32 { 1 }" >>workers/domain/src/ticket.rs
domain=$(seconds cargo test --locked -p sportello-domain --lib)
git checkout --quiet workers/domain/src/ticket.rs
printf 'warm, one domain file changed, its unit tests: %.1f s\n' "$domain"

# One HTTP handler changed, then the system-test binary built.
echo "pub fn loop_times_change() -> u32 { 1 }" >>workers/service/src/http/tickets.rs
handler=$(seconds cargo test --locked -p sportello --test system --no-run)
git checkout --quiet workers/service/src/http/tickets.rs
printf 'warm, one HTTP handler changed, the system-test binary built: %.1f s\n' "$handler"
