#!/usr/bin/env bash
# Issue 12's SQLite trial, "a third of today's time", measured in one window: the release
# binary of the code the issue was filed against (ARREARS_BEFORE, built from f503568) and the
# current one (ARREARS) each import the benchmark book's accounts into a file of their own,
# then plan it in turns, each run from a fresh copy of its own imported file. It prints each
# run's wall time and peak memory, the ratio of the two per round, and the physical limit in
# the same window (`raw_task_insert` on the current binary's planned file).
#
#   target/release/examples/benchmark_book /tmp/book 1000000
#   git worktree add /tmp/before f503568
#   (cd /tmp/before && CARGO_TARGET_DIR=/tmp/before-target cargo build --release --bin arrears)
#   ARREARS_BEFORE=/tmp/before-target/release/arrears benches/scale/plan_sqlite.sh /tmp/book 3
#
# ARREARS names the current binary (default target/release/arrears), RAW the limit's program
# (default target/release/examples/raw_task_insert). Needs python3 (to fold each import's WAL
# into its file). The scratch files are removed at the end.
set -euo pipefail
usage="usage: ARREARS_BEFORE=<binary> plan_sqlite.sh BOOK_DIR [ROUNDS]"
book=${1:?$usage}
rounds=${2:-3}
before=${ARREARS_BEFORE:?$usage}
after=${ARREARS:-target/release/arrears}
raw=${RAW:-target/release/examples/raw_task_insert}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for side in before after; do
  binary=${!side}
  "$binary" --database-url "sqlite://$work/$side-imported.db?mode=rwc" import accounts "$book/accounts.csv" \
    > "$work/import.log" 2>&1 || { cat "$work/import.log"; exit 1; }
  # The imported file alone, its WAL folded in, is the start of every run.
  python3 -c "import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute('PRAGMA wal_checkpoint(TRUNCATE)')" \
    "$work/$side-imported.db"
done

# One run: prints "wall_seconds max_rss_kib".
plan() {
  local side=$1 binary=${!1}
  rm -f "$work/run.db" "$work/run.db-wal" "$work/run.db-shm"
  cp "$work/$side-imported.db" "$work/run.db"
  /usr/bin/time -f "%e %M" -o "$work/time" "$binary" --database-url "sqlite://$work/run.db" \
    --strategies "$book/strategies" --templates "$book/templates" plan --as-of 2026-11-22T01:00:00Z > /dev/null
  cat "$work/time"
}

for round in $(seq 1 "$rounds"); do
  read -r old_s old_kib < <(plan before)
  read -r new_s new_kib < <(plan after)
  awk -v r="$round" -v os="$old_s" -v ok="$old_kib" -v ns="$new_s" -v nk="$new_kib" 'BEGIN {
    printf "round %d: before %.2f s, %d MiB; after %.2f s, %d MiB; before / after %.2fx\n", r, os, ok / 1024, ns, nk / 1024, os / ns }'
done
echo "== the limit, same window: the after plan's rows inserted raw"
"$raw" "$work/run.db" "$work/raw"
