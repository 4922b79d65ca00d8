-- The 10,000,000-account book on SQLite in a few minutes: the same replication as
-- `replicate_book.sql` (PostgreSQL), the 1,000,000-account benchmark book's borrowers, contact
-- points and accounts nine more times under new ids (A01000001 ... A10000000, B... likewise),
-- without history, as `benchmark_book DIR 10000000` numbers them.
--
-- `plan_memory.sh` runs it on a copy of the imported file whose WAL is folded in, through
-- Python's `sqlite3` with `isolation_level = None` so that the script's own BEGIN and COMMIT
-- hold the three inserts:
--
--   cp /tmp/imp.db /tmp/imp10.db
--   python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.isolation_level=None; c.executescript(open(sys.argv[2]).read())" \
--     /tmp/imp10.db benches/scale/replicate_book_sqlite.sql
DELETE FROM attempts;
DELETE FROM promises;
BEGIN;
INSERT INTO borrowers (id, name, timezones, consent_robot, updated_at)
  WITH k(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM k WHERE n < 9)
  SELECT 'B' || printf('%08d', CAST(substr(id, 2) AS INTEGER) + n * 1000000), name, timezones, consent_robot, updated_at
  FROM borrowers CROSS JOIN k ORDER BY 1;
INSERT INTO contact_points (borrower_id, kind, address, opted_out, wrong_number, retired_at)
  WITH k(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM k WHERE n < 9)
  SELECT 'B' || printf('%08d', CAST(substr(borrower_id, 2) AS INTEGER) + n * 1000000), kind, address, opted_out,
    wrong_number, retired_at
  FROM contact_points CROSS JOIN k ORDER BY 1, id;
INSERT INTO accounts (id, borrower_id, product, currency, amount_due, balance, due_date, tags, flags, scores, attrs,
    broken_promises, updated_at, engine_flags, funders, hold_until, engine_tags)
  WITH k(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM k WHERE n < 9)
  SELECT 'A' || printf('%08d', CAST(substr(id, 2) AS INTEGER) + n * 1000000),
    'B' || printf('%08d', CAST(substr(borrower_id, 2) AS INTEGER) + n * 1000000),
    product, currency, amount_due, balance, due_date, tags, flags, scores, attrs, broken_promises, updated_at,
    engine_flags, funders, hold_until, engine_tags
  FROM accounts CROSS JOIN k ORDER BY 1;
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
