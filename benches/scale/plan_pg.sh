#!/usr/bin/env bash
# Issue 12's "several instances, one plan", measured on PostgreSQL. MODE `serve`: N `arrears
# serve` processes share the day's plan of a benchmark book (`[plan] shared = true`), as of the
# instant their first tick plans. MODE `workers`: one `arrears plan --workers N` process plans it
# as of 2026-11-22T01:00:00Z. Then, in the same run, one `arrears plan` process of one planner
# plans the same book as of the same instant, and a binary `COPY` writes the same task rows into
# a table with only its primary key (the physical limit). It prints each figure, and checks
# that the sharded run decided exactly what one planner does (tasks and stage changes).
#
#   target/release/examples/benchmark_book /tmp/book 1000000
#   createdb -h 127.0.0.1 -U postgres book_base
#   A=target/release/arrears; U=postgres://postgres@127.0.0.1:5432/book_base
#   $A --database-url $U migrate && $A --database-url $U import accounts /tmp/book/accounts.csv
#   createdb -h 127.0.0.1 -U postgres -T book_base book10_base
#   psql -h 127.0.0.1 -U postgres -d book10_base -f benches/scale/replicate_book.sql
#   benches/scale/plan_pg.sh serve book10_base /tmp/book 2
#   benches/scale/plan_pg.sh workers book10_base /tmp/book 2
#
# Needs the release binary (ARREARS, default target/release/arrears), psql and createdb on
# 127.0.0.1:5432 as `postgres`. The scratch databases it creates are dropped at the end.
set -euo pipefail
usage="usage: plan_pg.sh serve|workers TEMPLATE_DB BOOK_DIR [N]"
mode=${1:?$usage}
template=${2:?$usage}
book=${3:?$usage}
instances=${4:-2}
arrears=${ARREARS:-target/release/arrears}
pg=(-h 127.0.0.1 -U postgres)
shared=shared_plan_$$
single=single_plan_$$
work=$(mktemp -d)
cleanup() {
  dropdb "${pg[@]}" --if-exists "$shared" || true
  dropdb "${pg[@]}" --if-exists "$single" || true
  rm -rf "$work"
}
trap cleanup EXIT
sql() { psql "${pg[@]}" -d "$1" -qtAX -c "$2"; }

# What a plan decided, independent of order, run ids and instants of saving: the tasks' count
# and a sum of 60-bit hashes of their decided columns, the same of the stage changes.
decisions() {
  sql "$1" "SELECT count(*), sum(('x' || substr(md5(concat_ws('|', account_id, borrower_id, local_date, dpd, stage,
      strategy, rule, arm, channel, queue, template, attempt, calls_allowed, not_before, not_after, priority)), 1, 15))::bit(60)::bigint)
    FROM tasks"
  sql "$1" "SELECT count(*), sum(('x' || substr(md5(concat_ws('|', account_id, from_stage, to_stage, at)), 1, 15))::bit(60)::bigint)
    FROM stage_history"
}

createdb "${pg[@]}" -T "$template" "$shared"
createdb "${pg[@]}" -T "$template" "$single"
cat > "$work/arrears.toml" <<TOML
timezone = "UTC"
[plan]
shared = true
[schedule]
plan = "0 0 0 * * *"   # midnight UTC: already past, so each instance's first tick plans
TOML

echo "== PostgreSQL: $(sql "$shared" "SELECT 'shared_buffers ' || current_setting('shared_buffers') || ', max_wal_size ' || current_setting('max_wal_size')")"
if [ "$mode" = serve ]; then
  echo "== $instances serve instances share the plan ($shared)"
  started=$(date +%s.%N)
  pids=()
  for i in $(seq 1 "$instances"); do
    ARREARS_BIND=127.0.0.1:$((18180 + i)) ARREARS_LOG=info /usr/bin/time -f "instance $i: max RSS %M KiB" -o "$work/time.$i" \
      "$arrears" --database-url "postgres://postgres@127.0.0.1:5432/$shared" --config "$work/arrears.toml" \
      --strategies "$book/strategies" --templates "$book/templates" serve > "$work/serve.$i.log" 2>&1 &
    pids+=($!)
  done
  until [ "$(sql "$shared" "SELECT count(*) FROM plan_runs WHERE finished_at IS NOT NULL")" = 1 ]; do
    for pid in "${pids[@]}"; do kill -0 "$pid" 2> /dev/null || { cat "$work"/serve.*.log; exit 1; }; done
    sleep 0.2
  done
  finished=$(date +%s.%N)
  for pid in "${pids[@]}"; do pkill -TERM -P "$pid" || true; done
  wait
  awk "BEGIN { printf \"from the first start to the finished run (wall): %.1f s\\n\", $finished - $started }"
  cat "$work"/time.*
else
  echo "== one process, $instances planners ($shared)"
  /usr/bin/time -f "plan --workers $instances: %e s wall, max RSS %M KiB" "$arrears" \
    --database-url "postgres://postgres@127.0.0.1:5432/$shared" --strategies "$book/strategies" \
    --templates "$book/templates" plan --as-of 2026-11-22T01:00:00Z --workers "$instances" > /dev/null
fi
sql "$shared" "SELECT 'run ' || id || ': as_of ' || as_of || ', ' || accounts || ' accounts, ' || tasks || ' tasks, '
  || shards || ' shards, started to finished ' || round(extract(epoch FROM finished_at - started_at)::numeric, 1) || ' s'
  FROM plan_runs"
sql "$shared" "SELECT 'shards planned by ' || process || ': ' || count(*)
  FROM (SELECT regexp_replace(holder, ' planner [0-9]+$', '') AS process FROM plan_run_shards) shards GROUP BY process"
as_of=$(sql "$shared" "SELECT to_char(as_of AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM plan_runs")
shared_decisions=$(decisions "$shared")

echo "== one process plans the same book as of $as_of ($single)"
/usr/bin/time -f "single process: %e s wall, max RSS %M KiB" "$arrears" --database-url "postgres://postgres@127.0.0.1:5432/$single" \
  --strategies "$book/strategies" --templates "$book/templates" plan --as-of "$as_of" > /dev/null
single_decisions=$(decisions "$single")
if [ "$shared_decisions" = "$single_decisions" ]; then
  echo "decisions: identical (tasks, stage changes: $(echo $shared_decisions | tr '\n' ' '))"
else
  echo "decisions DIFFER: shared $shared_decisions, single $single_decisions"
  exit 1
fi

echo "== the physical limit: binary COPY of the same task rows, primary key only"
columns="plan_run_id, created_at, account_id, borrower_id, local_date, dpd, stage, strategy, rule, arm, channel, queue,
  template, attempt, calls_allowed, not_before, not_after, priority"
sql "$single" "COPY (SELECT $columns FROM tasks ORDER BY id) TO '$work/tasks.bin' WITH (FORMAT binary)" 2> /dev/null ||
  { chmod 777 "$work"; sql "$single" "COPY (SELECT $columns FROM tasks ORDER BY id) TO '$work/tasks.bin' WITH (FORMAT binary)"; }
sql "$single" "CREATE TABLE copy_pk (LIKE tasks INCLUDING DEFAULTS INCLUDING IDENTITY); ALTER TABLE copy_pk ADD PRIMARY KEY (id); CHECKPOINT"
copy_started=$(date +%s.%N)
sql "$single" "COPY copy_pk ($columns) FROM '$work/tasks.bin' WITH (FORMAT binary)"
awk "BEGIN { printf \"binary COPY, primary key only: %.2f s\\n\", $(date +%s.%N) - $copy_started }"
