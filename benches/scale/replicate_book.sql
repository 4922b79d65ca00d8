-- The 10,000,000-account book on PostgreSQL in a few minutes: the 1,000,000-account benchmark
-- book's borrowers, contact points and accounts nine more times under new ids (A01000001 ...
-- A10000000, B... likewise), without history, as `benchmark_book DIR 10000000` numbers them.
-- (`import accounts` of the generated 10,000,000-row CSV took over 35 minutes and 14 GiB here:
-- the import holds every row to check them all before writing, and its per-chunk reads of a
-- table it is filling in one transaction go without statistics.)
--
--   createdb -h 127.0.0.1 -U postgres -T book_base book10_base
--   psql -h 127.0.0.1 -U postgres -d book10_base -f benches/scale/replicate_book.sql
DELETE FROM attempts;
DELETE FROM promises;
INSERT INTO borrowers (id, name, timezones, consent_robot, updated_at)
  SELECT 'B' || lpad((substr(id, 2)::bigint + k * 1000000)::text, 8, '0'), name, timezones, consent_robot, updated_at
  FROM borrowers CROSS JOIN generate_series(1, 9) k;
INSERT INTO contact_points (borrower_id, kind, address, opted_out, wrong_number, retired_at)
  SELECT 'B' || lpad((substr(borrower_id, 2)::bigint + k * 1000000)::text, 8, '0'), kind, address, opted_out,
    wrong_number, retired_at
  FROM contact_points CROSS JOIN generate_series(1, 9) k ORDER BY 1, id;
INSERT INTO accounts (id, borrower_id, product, currency, amount_due, balance, due_date, tags, flags, scores, attrs,
    broken_promises, updated_at, engine_flags, funders, hold_until, engine_tags)
  SELECT 'A' || lpad((substr(id, 2)::bigint + k * 1000000)::text, 8, '0'),
    'B' || lpad((substr(borrower_id, 2)::bigint + k * 1000000)::text, 8, '0'),
    product, currency, amount_due, balance, due_date, tags, flags, scores, attrs, broken_promises, updated_at,
    engine_flags, funders, hold_until, engine_tags
  FROM accounts CROSS JOIN generate_series(1, 9) k;
VACUUM ANALYZE;
SELECT (SELECT count(*) FROM accounts) AS accounts, (SELECT count(*) FROM borrowers) AS borrowers,
  (SELECT count(*) FROM contact_points) AS contact_points;
