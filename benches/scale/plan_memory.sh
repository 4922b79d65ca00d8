#!/usr/bin/env bash
# Issue 12's memory measure on SQLite: the peak memory of `arrears plan` (saved, and the dry
# run) at 1,000,000 and at 10,000,000 accounts, in turns, each run from a fresh copy of its
# imported file, and the ratio of the two peaks per round (target: 10,000,000 within ±10 % of
# 1,000,000). The 10,000,000-account file is the 1,000,000-account one replicated nine more
# times by `replicate_book_sqlite.sql` (an `import` of the generator's 10,000,000-row CSV holds
# every row to check them all first; see docs/PERFORMANCE.md, step 5).
#
#   target/release/examples/benchmark_book /tmp/book 1000000
#   target/release/arrears --database-url "sqlite:///tmp/imp.db?mode=rwc" import accounts /tmp/book/accounts.csv
#   benches/scale/plan_memory.sh /tmp/book /tmp/imp.db 2
#
# ARREARS names the binary (default target/release/arrears). Needs python3 (to fold the WAL
# into the imported file and to replicate it) and ~30 GB of free space in TMPDIR (the
# 10,000,000-account file is 5.1 GB, planned 10.3 GB). The scratch files are removed at the end.
set -euo pipefail
usage="usage: plan_memory.sh BOOK_DIR IMPORTED_1M.db [ROUNDS]"
book=${1:?$usage}
imported=${2:?$usage}
rounds=${3:-2}
binary=${ARREARS:-target/release/arrears}
here=$(dirname "$0")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fold='import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.isolation_level = None; c.execute("PRAGMA wal_checkpoint(TRUNCATE)")'
cp "$imported" "$work/1.db"
python3 -c "$fold" "$work/1.db"
cp "$work/1.db" "$work/10.db"
python3 -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.isolation_level = None; c.executescript(open(sys.argv[2]).read())' \
  "$work/10.db" "$here/replicate_book_sqlite.sql"

# One run: prints "wall_seconds max_rss_kib".
run() {
  local size=$1
  shift
  rm -f "$work/run.db" "$work/run.db-wal" "$work/run.db-shm"
  cp "$work/$size.db" "$work/run.db"
  /usr/bin/time -f "%e %M" -o "$work/time" "$binary" --database-url "sqlite://$work/run.db" \
    --strategies "$book/strategies" --templates "$book/templates" plan --as-of 2026-11-22T01:00:00Z "$@" > /dev/null
  cat "$work/time"
}

for round in $(seq 1 "$rounds"); do
  for mode in saved dry-run; do
    args=()
    [ "$mode" = dry-run ] && args=(--dry-run --format jsonl)
    read -r one_s one_kib < <(run 1 "${args[@]}")
    read -r ten_s ten_kib < <(run 10 "${args[@]}")
    awk -v r="$round" -v m="$mode" -v os="$one_s" -v ok="$one_kib" -v ts="$ten_s" -v tk="$ten_kib" 'BEGIN {
      printf "round %d, %s: 1M %.1f s, %d MiB; 10M %.1f s, %d MiB; peak 10M / 1M %+.0f %%\n",
        r, m, os, ok / 1024, ts, tk / 1024, (tk / ok - 1) * 100 }'
  done
done
