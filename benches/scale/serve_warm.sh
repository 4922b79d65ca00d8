#!/usr/bin/env bash
# `serve`'s dashboard warm-up on a planned SQLite book (issue 12, "memory flat"): starts `arrears
# serve` on a copy of the file, waits for its first "dashboard: warmed", and prints the warm-up's
# seconds, the memory the process holds after it (VmRSS) and its peak (max RSS). The schedule's
# plan is set in 2099, so the instance does not plan; its other jobs run as they would.
#
#   target/release/examples/benchmark_book /tmp/book 1000000
#   A=target/release/arrears; U="sqlite:///tmp/book/book.db?mode=rwc"
#   $A --database-url $U import accounts /tmp/book/accounts.csv
#   $A --database-url $U --strategies /tmp/book/strategies --templates /tmp/book/templates plan --as-of 2026-11-22T01:00:00Z
#   benches/scale/serve_warm.sh /tmp/book/book.db /tmp/book
#
# ARREARS names the binary (default target/release/arrears); ARREARS_BIND the port.
set -euo pipefail
usage="usage: serve_warm.sh DB_FILE BOOK_DIR"
db=${1:?$usage}
book=${2:?$usage}
arrears=${ARREARS:-target/release/arrears}
work=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && { pkill -TERM -P "$pid" 2> /dev/null || true; wait "$pid" 2> /dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT
cp "$db" "$work/book.db"
cat > "$work/arrears.toml" <<TOML
timezone = "UTC"
[schedule]
plan = "0 0 6 1 1 * 2099"
TOML
ARREARS_BIND=${ARREARS_BIND:-127.0.0.1:18190} ARREARS_LOG=info /usr/bin/time -f "%M" -o "$work/rss" \
  "$arrears" --database-url "sqlite://$work/book.db" --config "$work/arrears.toml" \
  --strategies "$book/strategies" --templates "$book/templates" serve > "$work/log" 2>&1 &
pid=$!
until grep -q "dashboard: warmed" "$work/log"; do
  kill -0 "$pid" 2> /dev/null || { cat "$work/log"; exit 1; }
  sleep 0.2
done
serve=$(pgrep -P "$pid")
held=$(awk '/^VmRSS/ { print $2 }' "/proc/$serve/status")
seconds=$(sed -E 's/\x1b\[[0-9;]*m//g' "$work/log" | grep "dashboard: warmed" | head -1 | sed -E 's/.*seconds=([0-9.]+).*/\1/')
pkill -TERM -P "$pid"
wait "$pid" || true
pid=
printf 'warm-up %.1f s; held after it %d MiB; peak %d MiB\n' "$seconds" $((held / 1024)) $(($(cat "$work/rss") / 1024))
