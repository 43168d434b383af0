-- checksum: row hashing that follows each type's equality, order-independent
-- chunk sums, key ranges and hash buckets, and compare.  Each case here is one
-- that a naive checksum gets wrong; where SQL can show the naive answer, the
-- test shows it next to ours.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_shift;
\set SHOW_CONTEXT never

-- (hi, lo) 64-bit lanes of a checksum, added mod 2^64, to check chunk sums
CREATE FUNCTION lane(c text, i int) RETURNS numeric LANGUAGE sql IMMUTABLE AS $$
  SELECT (('x' || substr(c, 1 + 16 * i, 16))::bit(64)::bigint::numeric + 18446744073709551616) % 18446744073709551616
$$;
CREATE FUNCTION sum_checksums(cs text[]) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT lpad(to_hex(((sum(lane(c, 0)) % 18446744073709551616) - CASE WHEN sum(lane(c, 0)) % 18446744073709551616 >= 9223372036854775808 THEN 18446744073709551616 ELSE 0 END)::bigint), 16, '0')
      || lpad(to_hex(((sum(lane(c, 1)) % 18446744073709551616) - CASE WHEN sum(lane(c, 1)) % 18446744073709551616 >= 9223372036854775808 THEN 18446744073709551616 ELSE 0 END)::bigint), 16, '0')
    FROM unnest(cs) c
$$;
CREATE FUNCTION same(a regclass, b regclass) RETURNS boolean LANGUAGE sql AS $$
  SELECT (SELECT row(rows, checksum) FROM shift.table_checksum(a)) =
         (SELECT row(rows, checksum) FROM shift.table_checksum(b))
$$;

-- ---- golden values: the hash is defined byte for byte, on any server and CPU
CREATE TABLE golden (id int PRIMARY KEY, t text, n numeric, f float8, b boolean, ts timestamptz, j jsonb);
INSERT INTO golden VALUES
  (1, 'one', 1.5, 0.25, true, '2020-01-01 00:00:00+00', '{"a": [1, "x", null, true]}'),
  (2, NULL, NULL, NULL, NULL, NULL, NULL),
  (3, '', -12345.678, '-Infinity', false, 'infinity', '"s"');
SELECT * FROM shift.table_checksum('golden');
SELECT * FROM shift.table_checksum('golden', columns => '{id}');
CREATE TABLE empty_a (id int PRIMARY KEY, t text);
CREATE TABLE empty_b (id int PRIMARY KEY, t text);
SELECT * FROM shift.table_checksum('empty_a');
SELECT * FROM shift.chunk_checksums('empty_a', chunk_rows => 10);
SELECT count(*) FROM shift.chunk_checksums('empty_a', buckets => 8);
SELECT * FROM shift.compare('empty_a', 'empty_b');
INSERT INTO empty_b VALUES (1, 'x');
SELECT * FROM shift.compare('empty_a', 'empty_b');

-- ---- duplicate rows: bit_xor of a row hash cancels them, our sums do not
CREATE TABLE dup_a (t text, n int);
CREATE TABLE dup_b (t text, n int);
INSERT INTO dup_a VALUES ('x', 1);
INSERT INTO dup_b VALUES ('x', 1), ('y', 2), ('y', 2);
SELECT (SELECT bit_xor(hashtext(d::text)) FROM dup_a d) =
       (SELECT bit_xor(hashtext(d::text)) FROM dup_b d) AS naive_xor_equal;
SELECT same('dup_a', 'dup_b');
SELECT * FROM shift.compare('dup_a', 'dup_b') ORDER BY kind, key;
-- a keyless table compared as a multiset: one extra copy is one row missing
INSERT INTO dup_a VALUES ('y', 2), ('y', 2), ('y', 2);
SELECT * FROM shift.compare('dup_a', 'dup_b') ORDER BY kind, key;
SELECT * FROM shift.chunk_checksums('dup_a', chunk_rows => 10);

-- ---- values swapped between two rows: per-column sums cannot see it
CREATE TABLE swap_a (id int PRIMARY KEY, name text, city text);
CREATE TABLE swap_b (id int PRIMARY KEY, name text, city text);
INSERT INTO swap_a VALUES (1, 'ann', 'oslo'), (2, 'bob', 'rome');
INSERT INTO swap_b VALUES (1, 'ann', 'rome'), (2, 'bob', 'oslo');
SELECT (SELECT sum(hashtext(name)) + sum(hashtext(city)) FROM swap_a) =
       (SELECT sum(hashtext(name)) + sum(hashtext(city)) FROM swap_b) AS naive_columns_equal;
SELECT same('swap_a', 'swap_b');
SELECT * FROM shift.compare('swap_a', 'swap_b') ORDER BY key;

-- ---- the same change applied to two rows: cancels under XOR of a linear hash
CREATE TABLE pair_a (id int PRIMARY KEY, v int);
CREATE TABLE pair_b (id int PRIMARY KEY, v int);
INSERT INTO pair_a SELECT g, g FROM generate_series(1, 100) g;
INSERT INTO pair_b SELECT g, CASE WHEN g IN (10, 20) THEN g # 4 ELSE g END FROM generate_series(1, 100) g;
SELECT (SELECT bit_xor(v) FROM pair_a) = (SELECT bit_xor(v) FROM pair_b) AS naive_xor_equal;
SELECT same('pair_a', 'pair_b');
SELECT * FROM shift.compare('pair_a', 'pair_b') ORDER BY key;

-- ---- NULL, '' and 'NULL' are three different values
CREATE TABLE nul_a (id int PRIMARY KEY, t text, u text);
CREATE TABLE nul_b (id int PRIMARY KEY, t text, u text);
CREATE TABLE nul_c (id int PRIMARY KEY, t text, u text);
INSERT INTO nul_a VALUES (1, NULL, 'x');
INSERT INTO nul_b VALUES (1, '', 'x');
INSERT INTO nul_c VALUES (1, 'NULL', 'x');
SELECT (SELECT md5(concat(id, t, u)) FROM nul_a) = (SELECT md5(concat(id, t, u)) FROM nul_b) AS naive_concat_equal;
SELECT same('nul_a', 'nul_b') AS null_is_empty, same('nul_a', 'nul_c') AS null_is_word,
       same('nul_b', 'nul_c') AS empty_is_word;
-- a value moved to the next column is not the same row either
INSERT INTO nul_a VALUES (2, 'ab', NULL);
INSERT INTO nul_b VALUES (2, 'a', 'b');
SELECT * FROM shift.compare('nul_a', 'nul_b', columns => '{id,t,u}') ORDER BY key;

-- ---- values equal to their type, different in bytes or text
CREATE TABLE eq_a (id int PRIMARY KEY, n numeric, f float8, g float4, j jsonb, iv interval, c char(5), u uuid);
CREATE TABLE eq_b (id bigint PRIMARY KEY, n numeric(20,6), f float8, g float8, j jsonb, iv interval, c char(8), u uuid);
INSERT INTO eq_a VALUES
  (1, 1.0, 0.0, 0.5, '{"a": 1.0, "b": [2.50]}', '1 day', 'ab', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'),
  (2, 'NaN', 'NaN', 'NaN', '{"b": 1, "a": 2}', '1 mon', 'x', NULL),
  (3, -0.000, '-0', '-0', '[]', '-1 day 23:00', '', NULL);
INSERT INTO eq_b VALUES
  (1, 1.00, -0.0, 0.5, '{"b": [2.5], "a": 1.000}', '24:00:00', 'ab ', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'),
  (2, 'NaN', 'NaN', 'NaN', '{"a": 2, "b": 1}', '30 days', 'x', NULL),
  (3, 0, 0, 0, '[]', '-01:00:00', ' ', NULL);
SELECT (SELECT string_agg(e::text, '|' ORDER BY id) FROM eq_a e) =
       (SELECT string_agg(e::text, '|' ORDER BY id) FROM eq_b e) AS naive_text_equal;
SELECT same('eq_a', 'eq_b');
SELECT * FROM shift.compare('eq_a', 'eq_b');
-- and a real change in each is seen
UPDATE eq_b SET n = 1.000001, j = '{"a": 1.0, "b": [2.51]}' WHERE id = 1;
UPDATE eq_b SET iv = '1 mon 1 second' WHERE id = 2;
SELECT * FROM shift.compare('eq_a', 'eq_b') ORDER BY key;

-- ---- timestamptz never goes through TimeZone
CREATE TABLE tz_a (id int PRIMARY KEY, at timestamptz);
CREATE TABLE tz_b (id int PRIMARY KEY, at timestamptz);
SET TimeZone = 'UTC';
INSERT INTO tz_a VALUES (1, '2024-03-31 01:30:00'), (2, '2024-10-27 00:30:00');
SET TimeZone = 'Europe/Berlin';
INSERT INTO tz_b VALUES (1, '2024-03-31 03:30:00'), (2, '2024-10-27 02:30:00+02');
SELECT (SELECT string_agg(at::text, ',' ORDER BY id) FROM tz_a) =
       (SELECT string_agg(at::text, ',' ORDER BY id) FROM tz_b) AS naive_text_equal;
SELECT checksum AS berlin FROM shift.table_checksum('tz_a') \gset
SET TimeZone = 'Pacific/Auckland';
SELECT checksum = :'berlin' AS same_in_auckland, same('tz_a', 'tz_b') FROM shift.table_checksum('tz_a');
RESET TimeZone;

-- ---- TOASTed values: compressed, out of line, or inline, the same value hashes the same
CREATE TABLE toast_a (id int PRIMARY KEY, doc text);
CREATE TABLE toast_b (id int PRIMARY KEY, doc text);
ALTER TABLE toast_a ALTER doc SET STORAGE EXTERNAL;
ALTER TABLE toast_b ALTER doc SET STORAGE MAIN;
INSERT INTO toast_a SELECT g, repeat('abc', 4000) || (SELECT string_agg(md5(g::text || i), '') FROM generate_series(1, 100) i)
  FROM generate_series(1, 20) g;
INSERT INTO toast_b SELECT * FROM toast_a;
SELECT pg_column_size(a.doc) <> pg_column_size(b.doc) AS stored_differently
  FROM toast_a a JOIN toast_b b USING (id) WHERE id = 1;
SELECT same('toast_a', 'toast_b');
UPDATE toast_b SET doc = doc || '.' WHERE id = 7;
SELECT * FROM shift.compare('toast_a', 'toast_b');

-- ---- a row deleted and another inserted: same count, not the same table
CREATE TABLE di_a (id int PRIMARY KEY, v text);
CREATE TABLE di_b (id int PRIMARY KEY, v text);
INSERT INTO di_a SELECT g, 'v' || g FROM generate_series(1, 1000) g;
INSERT INTO di_b SELECT * FROM di_a;
DELETE FROM di_b WHERE id = 500;
INSERT INTO di_b VALUES (1001, 'v1001');
SELECT (SELECT count(*) FROM di_a) = (SELECT count(*) FROM di_b) AS naive_count_equal;
SELECT same('di_a', 'di_b');
SELECT * FROM shift.compare('di_a', 'di_b') ORDER BY kind;

-- ---- an int key against its bigint copy, a renamed column, a cast
CREATE TABLE mig_a (id int PRIMARY KEY, full_name text, score int);
CREATE TABLE mig_b (id bigint PRIMARY KEY, name text, score text);
INSERT INTO mig_a SELECT g, 'n' || g, g FROM generate_series(1, 300) g;
INSERT INTO mig_b SELECT id, full_name, score::text FROM mig_a;
SELECT * FROM shift.compare('mig_a', 'mig_b');
SELECT * FROM shift.compare('mig_a', 'mig_b', columns => '{id,full_name,score}',
                            target_columns => '{id,name,score::int}');
SELECT * FROM shift.compare('mig_a', 'mig_b', columns => '{id,full_name,score::text}',
                            target_columns => '{id,name,score}');
UPDATE mig_b SET name = 'renamed' WHERE id = 42;
SELECT * FROM shift.compare('mig_a', 'mig_b', columns => '{id,full_name,score}',
                            target_columns => '{id,name,score::int}');

-- ---- chunks: key ranges and hash buckets add up to the table with the same key
-- (a keyed row binds its values to its key, so the keyless checksum differs)
CREATE TABLE ch (id int PRIMARY KEY, v text);
INSERT INTO ch SELECT g, md5(g::text) FROM generate_series(1, 10000) g;
SELECT checksum AS whole FROM shift.table_checksum('ch', key => '{id}') \gset
SELECT checksum <> :'whole' AS keyless_differs FROM shift.table_checksum('ch');
SELECT sum_checksums(array_agg(checksum)) = (SELECT checksum FROM shift.table_checksum('ch'))
       AS keyless_buckets_sum_to_keyless
  FROM shift.chunk_checksums('ch', key => '{}', buckets => 8);
SELECT count(*) AS chunks, sum(rows) AS rows, sum_checksums(array_agg(checksum)) = :'whole' AS sums_to_table
  FROM shift.chunk_checksums('ch', chunk_rows => 3000);
SELECT chunk, lower, upper, rows FROM shift.chunk_checksums('ch', chunk_rows => 3000);
SELECT count(*) AS chunks, sum(rows) AS rows, sum_checksums(array_agg(checksum)) = :'whole' AS sums_to_table
  FROM shift.chunk_checksums('ch', buckets => 64);
SELECT checksum = :'whole' AS one_bucket_is_table FROM shift.chunk_checksums('ch', buckets => 1);
-- bucket b of n holds exactly buckets 2b and 2b+1 of 2n
SELECT count(*) AS parents_matching FROM shift.chunk_checksums('ch', buckets => 16) p
  JOIN (SELECT chunk / 2 AS parent, sum(rows) AS rows, sum_checksums(array_agg(checksum)) AS checksum
          FROM shift.chunk_checksums('ch', buckets => 32) GROUP BY 1) c
    ON c.parent = p.chunk AND c.rows = p.rows AND c.checksum = p.checksum;
SELECT sum(rows) FROM shift.chunk_checksums('ch', buckets => 32, only_buckets => '{3,4}');
SELECT count(*) = (SELECT sum(rows) FROM shift.chunk_checksums('ch', buckets => 32, only_buckets => '{3,4}'))
  FROM shift.row_hashes('ch', buckets => 32, only_buckets => '{3,4}');
-- pages split one scan into parts that add up
SELECT sum(rows) AS rows, sum_checksums(array_agg(checksum)) = :'whole' AS sums_to_table
  FROM (SELECT * FROM shift.chunk_checksums('ch', buckets => 1, pages => '[0,40)')
        UNION ALL SELECT * FROM shift.chunk_checksums('ch', buckets => 1, pages => '[40,)')) s;
-- a bounded range, and chunks sized by time
SELECT chunk, lower, upper, rows FROM shift.chunk_checksums('ch', lower => '{100}', upper => '{2600}', chunk_rows => 1000);
SELECT sum(rows) FROM shift.chunk_checksums('ch', target_ms => 50);
-- a composite and a text key
CREATE TABLE ck (a int, b text, v int, PRIMARY KEY (a, b));
INSERT INTO ck SELECT g % 7, 'k' || g, g FROM generate_series(1, 500) g;
SELECT count(*), sum(rows) FROM shift.chunk_checksums('ck', chunk_rows => 100);
SELECT chunk, lower, upper, rows FROM shift.chunk_checksums('ck', chunk_rows => 200);

-- ---- hostile names are quoted; expressions are checked by the parser
CREATE TABLE "we""ird table" ("Mixed Case" int PRIMARY KEY, "sp ace" text);
INSERT INTO "we""ird table" VALUES (1, 'a'), (2, 'b');
SELECT rows FROM shift.table_checksum('"we""ird table"', columns => '{Mixed Case,sp ace}');
SELECT chunk, lower, upper, rows FROM shift.chunk_checksums('"we""ird table"', chunk_rows => 1);
SELECT * FROM shift.table_checksum('ch', columns => '{"id FROM pg_authid"}');
SELECT * FROM shift.table_checksum('ch', columns => '{"1); DROP TABLE ch; --"}');
SELECT * FROM shift.table_checksum('ch', columns => '{no_such_column}');
SELECT * FROM shift.table_checksum('ch', columns => '{}');
SELECT * FROM shift.table_checksum('no_such_table');

-- ---- usage errors
SELECT * FROM shift.chunk_checksums('ch', buckets => 3);
SELECT * FROM shift.chunk_checksums('ch', buckets => 4, chunk_rows => 10);
SELECT * FROM shift.chunk_checksums('ch', pages => '[0,1)');
SELECT * FROM shift.chunk_checksums('ch', buckets => 4, only_buckets => '{4}');
SELECT * FROM shift.chunk_checksums('dup_a');
SELECT * FROM shift.chunk_checksums('ch', lower => '{1,2}');
SELECT * FROM shift.chunk_checksums('ch', chunk_rows => 0);
SELECT * FROM shift.compare('mig_a', 'mig_b', columns => '{id,full_name}', target_columns => '{id}');
SELECT * FROM shift.compare('mig_a', 'mig_b', columns => '{id,full_name,score}', target_columns => '{id,name,score}');
CREATE TABLE nk (k int, v int);
INSERT INTO nk VALUES (1, 1), (NULL, 2);
SELECT * FROM shift.chunk_checksums('nk', key => '{k}', chunk_rows => 1);
SELECT sum(rows) FROM shift.chunk_checksums('nk', key => '{k}', buckets => 2);

-- ---- a role without SELECT on the table is refused by the executor
CREATE ROLE shift_cs_nobody;
GRANT shift_operator TO shift_cs_nobody;
SET ROLE shift_cs_nobody;
SELECT * FROM shift.table_checksum('ch');
SELECT * FROM shift.compare('di_a', 'di_b');
RESET ROLE;
GRANT SELECT ON ch TO shift_cs_nobody;
SET ROLE shift_cs_nobody;
SELECT rows FROM shift.table_checksum('ch');
RESET ROLE;
-- and a role without shift_operator cannot call the functions at all
CREATE ROLE shift_cs_public;
SET ROLE shift_cs_public;
SELECT rows FROM shift.table_checksum('ch');
RESET ROLE;
DROP OWNED BY shift_cs_nobody, shift_cs_public;
DROP ROLE shift_cs_nobody, shift_cs_public;

-- ---- what a checksum hashes, and which columns can match (the runner checks both servers)
SELECT * FROM shift.checksum_columns('eq_a');
SELECT * FROM shift.checksum_columns('mig_b', columns => '{id,name,score::int}');
SELECT * FROM shift.checksum_columns('dup_a');

-- ---- found in review: each was wrong before its fix
-- a jsonb stored out of line (a TOAST pointer, not a short header)
CREATE TABLE jt_a (id int PRIMARY KEY, doc jsonb);
CREATE TABLE jt_b (id int PRIMARY KEY, doc jsonb);
ALTER TABLE jt_a ALTER doc SET STORAGE EXTERNAL;
INSERT INTO jt_a SELECT g, (SELECT jsonb_object_agg('k' || i, md5(g::text || i)) FROM generate_series(1, 200) i)
  FROM generate_series(1, 5) g;
INSERT INTO jt_b SELECT * FROM jt_a;
SELECT same('jt_a', 'jt_b'), (SELECT rows FROM shift.table_checksum('jt_a'));
-- key ranges when the key is not the first column, and a key expression
CREATE TABLE kl (v text, id int PRIMARY KEY);
INSERT INTO kl SELECT 'v' || g, g FROM generate_series(1, 250) g;
SELECT chunk, lower, upper, rows FROM shift.chunk_checksums('kl', chunk_rows => 100);
SELECT chunk, lower, upper, rows FROM shift.chunk_checksums('kl', key => '{id::bigint}', chunk_rows => 100);
SELECT count(*), sum(rows) FROM shift.chunk_checksums('ck', key => '{b,a}', chunk_rows => 100);
-- a key that is not unique cannot be cut into ranges
SELECT * FROM shift.chunk_checksums('kl', key => '{length(v)}', chunk_rows => 100);
-- values swapped between keys are seen even when the key is not among the columns
CREATE TABLE sw_a (id int PRIMARY KEY, email text);
CREATE TABLE sw_b (id int PRIMARY KEY, email text);
INSERT INTO sw_a VALUES (1, 'a@x'), (2, 'b@x');
INSERT INTO sw_b VALUES (1, 'b@x'), (2, 'a@x');
SELECT * FROM shift.compare('sw_a', 'sw_b', columns => '{email}', buckets => 1) ORDER BY key;
SELECT count(*) FROM shift.chunk_checksums('sw_a', columns => '{email}', buckets => 1) a
  JOIN shift.chunk_checksums('sw_b', columns => '{email}', buckets => 1) b USING (chunk, rows, checksum);
-- row-level security would hide rows: refused rather than a partial checksum
CREATE ROLE shift_cs_rls;
GRANT shift_operator TO shift_cs_rls;
CREATE TABLE rls_t (id int PRIMARY KEY, owner text);
INSERT INTO rls_t VALUES (1, 'a'), (2, 'b');
ALTER TABLE rls_t ENABLE ROW LEVEL SECURITY;
CREATE POLICY only_a ON rls_t USING (owner = 'a');
GRANT SELECT ON rls_t TO shift_cs_rls;
SET ROLE shift_cs_rls;
SELECT * FROM shift.table_checksum('rls_t');
RESET ROLE;
DROP OWNED BY shift_cs_rls;
DROP ROLE shift_cs_rls;
-- bytea never matches text; pages below zero select nothing
SELECT class FROM shift.checksum_columns('toast_a', columns => '{doc::bytea,doc}');
SELECT * FROM shift.chunk_checksums('ch', buckets => 1, pages => '(,-5)');
-- ---- the plain heap scan and the executor path hash alike
-- (columns given as expressions go through the executor; plain columns are read from the pages)
SELECT (SELECT checksum FROM shift.table_checksum('eq_a')) =
       (SELECT checksum FROM shift.table_checksum('eq_a', columns => '{(id),(n),(f),(g),(j),(iv),(c),(u)}'))
       AS heap_equals_executor;
SELECT (SELECT array_agg(checksum ORDER BY chunk) FROM shift.chunk_checksums('ch', buckets => 4, pages => '[0,2)')) =
       (SELECT array_agg(checksum ORDER BY chunk) FROM shift.chunk_checksums('ch', columns => '{(id),(v)}', key => '{(id)}', buckets => 4, pages => '[0,2)'))
       AS pages_heap_equals_executor;
-- the page reader: a dropped column, columns out of table order or asked for twice, NULLs, jsonb with scales
CREATE TABLE phys_a (a int, gone text, b text, c numeric, d jsonb);
INSERT INTO phys_a SELECT g, 'x', CASE WHEN g % 3 = 0 THEN NULL ELSE 't' || g END, g / 7.0,
       CASE WHEN g % 2 = 0 THEN jsonb_build_object('n', g % 5 * 1.50) ELSE jsonb_build_object('n', g) END
  FROM generate_series(1, 200) g;
ALTER TABLE phys_a DROP COLUMN gone;
SELECT (SELECT checksum FROM shift.table_checksum('phys_a', columns => '{d,b,a}')) =
       (SELECT checksum FROM shift.table_checksum('phys_a', columns => '{(d),(b),(a)}')) AS reordered_heap_equals_executor,
       (SELECT checksum FROM shift.table_checksum('phys_a', columns => '{a,a,c}')) =
       (SELECT checksum FROM shift.table_checksum('phys_a', columns => '{(a),(a),(c)}')) AS repeated_heap_equals_executor,
       (SELECT array_agg(checksum ORDER BY chunk) FROM shift.chunk_checksums('phys_a', buckets => 8)) =
       (SELECT array_agg(checksum ORDER BY chunk) FROM shift.chunk_checksums('phys_a', columns => '{(a),(b),(c),(d)}', buckets => 8))
       AS buckets_heap_equals_executor;
-- the page reader sees what the statement's snapshot sees: this transaction's updates and deletes
BEGIN;
UPDATE phys_a SET b = 'u' || a WHERE a % 4 = 0;
DELETE FROM phys_a WHERE a % 5 = 0;
SELECT (SELECT (rows, checksum) FROM shift.table_checksum('phys_a')) =
       (SELECT (rows, checksum) FROM shift.table_checksum('phys_a', columns => '{(a),(b),(c),(d)}'))
       AS own_changes_heap_equals_executor,
       (SELECT rows FROM shift.table_checksum('phys_a')) AS rows_seen;
ROLLBACK;
-- a column added with a default is not stored in old rows: it hashes like a stored value
CREATE TABLE miss_a (id int PRIMARY KEY, v text);
INSERT INTO miss_a SELECT g, 'v' || g FROM generate_series(1, 50) g;
ALTER TABLE miss_a ADD COLUMN d int DEFAULT 7, ADD COLUMN e text DEFAULT 'x';
CREATE TABLE miss_b (id int PRIMARY KEY, v text, d int, e text);
INSERT INTO miss_b SELECT id, v, 7, 'x' FROM miss_a;
SELECT same('miss_a', 'miss_b');
-- a column list that stops early reads only up to its last column
SELECT (SELECT checksum FROM shift.table_checksum('miss_a', columns => '{id,v}')) =
       (SELECT checksum FROM shift.table_checksum('miss_b', columns => '{id,v}')) AS prefix_equal;
-- numerics of many digits, and in jsonb: the long form chosen for a large scale, huge and tiny values
CREATE TABLE num_a (id int PRIMARY KEY, n numeric, j jsonb);
CREATE TABLE num_b (id int PRIMARY KEY, n numeric, j jsonb);
INSERT INTO num_a VALUES
  (1, 123456789012345.678, '{"x": 1.5, "y": {"z": [1.50, 2]}}'),
  (2, 1e300, '[1e300, 1e-300]'),
  (3, 0.0001, ('{"big": 1.' || repeat('0', 80) || '}')::jsonb),
  (4, -7, '-7.00');
INSERT INTO num_b VALUES
  (1, 123456789012345.67800, '{"y": {"z": [1.5, 2.0]}, "x": 1.50}'),
  (2, 1e300::numeric(1000, 10), '[1.0e300, 1.000e-300]'),
  (3, 0.000100, '{"big": 1}'),
  (4, -7.000, '-7');
SELECT pg_column_size(a.j) > pg_column_size(b.j) AS long_form_stored
  FROM num_a a JOIN num_b b USING (id) WHERE id = 3;
SELECT same('num_a', 'num_b');
UPDATE num_b SET j = '{"big": 1.000001}' WHERE id = 3;
UPDATE num_b SET n = 123456789012345.679 WHERE id = 1;
SELECT * FROM shift.compare('num_a', 'num_b') ORDER BY key;
-- a role that may read every column (but not the table) gets the same answer
CREATE ROLE shift_cs_cols;
GRANT shift_operator TO shift_cs_cols;
GRANT SELECT (id, v, d, e) ON miss_a TO shift_cs_cols;
SELECT checksum AS miss_b_checksum FROM shift.table_checksum('miss_b') \gset
SET ROLE shift_cs_cols;
SELECT checksum = :'miss_b_checksum' AS column_grants_suffice FROM shift.table_checksum('miss_a');
-- and a table it may not read is refused by the executor, not read from the pages
SELECT * FROM shift.table_checksum('miss_b');
RESET ROLE;
DROP OWNED BY shift_cs_cols;
DROP ROLE shift_cs_cols;

-- ==== equal values give equal words through any path (each case failed before 0.2.0)
-- ---- 1. a key spelled differently in the two column lists is the same key
CREATE TABLE kk_a (id int PRIMARY KEY, name text);
CREATE TABLE kk_b (id bigint PRIMARY KEY, name text);
INSERT INTO kk_a SELECT g, 'n' || g FROM generate_series(1, 100) g;
INSERT INTO kk_b SELECT * FROM kk_a;
SELECT count(*) AS differences FROM shift.compare('kk_a', 'kk_b', columns => '{id::bigint,name}', target_columns => '{id,name}');
SELECT count(*) AS differences FROM shift.compare('kk_a', 'kk_b', columns => '{(id),name}', target_columns => '{id,name}');
SELECT count(*) AS differences FROM shift.compare('kk_a', 'kk_b', columns => '{ID,name}', target_columns => '{id,name}');
SELECT count(*) AS differences FROM shift.compare('kk_a', 'kk_b', key => '{(id)}', target_key => '{id}');
SELECT count(*) AS differences FROM shift.compare('kk_a', 'kk_b', columns => '{name}', key => '{id::bigint}', target_key => '{id}');
-- the sides' chunk checksums agree however the key is spelled
SELECT (SELECT array_agg(checksum ORDER BY chunk) FROM shift.chunk_checksums('kk_a', columns => '{id::bigint,name}', buckets => 4)) =
       (SELECT array_agg(checksum ORDER BY chunk) FROM shift.chunk_checksums('kk_b', columns => '{id,name}', buckets => 4))
       AS buckets_equal,
       (SELECT array_agg(checksum ORDER BY chunk) FROM shift.chunk_checksums('kk_a', columns => '{(id),name}', chunk_rows => 30)) =
       (SELECT array_agg(checksum ORDER BY chunk) FROM shift.chunk_checksums('kk_b', columns => '{ID,name}', chunk_rows => 30))
       AS ranges_equal;
-- and a real change is still found, with its column named
UPDATE kk_b SET name = 'x' WHERE id = 7;
SELECT * FROM shift.compare('kk_a', 'kk_b', columns => '{id::bigint,name}', target_columns => '{id,name}');
-- values swapped between keys are still seen when the key is not a hashed column
UPDATE kk_b SET name = 'n7' WHERE id = 7;
UPDATE kk_b SET name = CASE id WHEN 1 THEN 'n2' ELSE 'n1' END WHERE id IN (1, 2);
SELECT * FROM shift.compare('kk_a', 'kk_b', columns => '{name}', buckets => 1) ORDER BY key;
-- what a resolved column is: checksum_columns labels stay as given
SELECT * FROM shift.checksum_columns('kk_a', columns => '{(id),ID,name}', key => '{id::bigint}');

-- ---- 2. an inheritance parent is read with its children, by the page reader as by SELECT
CREATE TABLE inh_flat (id int PRIMARY KEY, v text);
CREATE TABLE inh_parent (id int PRIMARY KEY, v text);
CREATE TABLE inh_child () INHERITS (inh_parent);
INSERT INTO inh_flat VALUES (1, 'a');
INSERT INTO inh_parent VALUES (1, 'a');
INSERT INTO inh_child VALUES (2, 'b');
SELECT count(*) FROM inh_parent;
SELECT * FROM shift.compare('inh_flat', 'inh_parent');
SELECT rows FROM shift.table_checksum('inh_parent');
-- a child made apart, its columns in another order, one more column, one dropped
CREATE TABLE inh_child2 (extra int, gone int, v text, id int NOT NULL);
ALTER TABLE inh_child2 DROP COLUMN gone;
ALTER TABLE inh_child2 INHERIT inh_parent;
INSERT INTO inh_child2 VALUES (99, 'c', 3);
INSERT INTO inh_flat VALUES (2, 'b'), (3, 'c');
SELECT count(*) AS differences FROM shift.compare('inh_flat', 'inh_parent');
SELECT (SELECT (rows, checksum) FROM shift.table_checksum('inh_parent')) =
       (SELECT (rows, checksum) FROM shift.table_checksum('inh_parent', columns => '{(id),(v)}'))
       AS pages_equal_executor,
       (SELECT (rows, checksum) FROM shift.table_checksum('inh_parent')) =
       (SELECT (rows, checksum) FROM shift.table_checksum('inh_flat'))
       AS parent_equals_flat;
-- a partitioned table is read partition by partition, the same way
CREATE TABLE part_p (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
CREATE TABLE part_1 PARTITION OF part_p FOR VALUES FROM (0) TO (100);
CREATE TABLE part_2 (v text, id int NOT NULL);
ALTER TABLE part_p ATTACH PARTITION part_2 FOR VALUES FROM (100) TO (1000);
INSERT INTO part_p SELECT g, 'p' || g FROM generate_series(1, 300) g;
CREATE TABLE part_flat AS SELECT * FROM part_p;
SELECT (SELECT (rows, checksum) FROM shift.table_checksum('part_p')) =
       (SELECT (rows, checksum) FROM shift.table_checksum('part_p', columns => '{(id),(v)}'))
       AS pages_equal_executor,
       (SELECT (rows, checksum) FROM shift.table_checksum('part_p')) =
       (SELECT (rows, checksum) FROM shift.table_checksum('part_flat'))
       AS partitioned_equals_flat,
       (SELECT sum(rows) FROM shift.chunk_checksums('part_p', buckets => 1, pages => '[0,1)')) AS first_page_of_each;

-- ---- 3. no per-database OIDs: arrays and composites of enums, domains and user types
CREATE TYPE mood_a AS ENUM ('sad', 'happy');
CREATE TYPE mood_b AS ENUM ('happy', 'sad');
CREATE DOMAIN posint_a AS int CHECK (VALUE > 0);
CREATE DOMAIN posint_b AS bigint CHECK (VALUE > 0);
CREATE TYPE item_a AS (m mood_a, n posint_a, s text);
CREATE TYPE item_b AS (m mood_b, n posint_b, s text);
CREATE TABLE oid_a (id int PRIMARY KEY, m mood_a, ms mood_a[], ds posint_a[], it item_a, its item_a[]);
CREATE TABLE oid_b (id int PRIMARY KEY, m mood_b, ms mood_b[], ds posint_b[], it item_b, its item_b[]);
INSERT INTO oid_a VALUES
  (1, 'sad', '{sad,happy}', '{1,2}', ('happy', 3, 'x'), ARRAY[('sad', 1, 'y')::item_a, NULL]),
  (2, NULL, '{}', '{NULL}', (NULL, NULL, NULL), '{}');
INSERT INTO oid_b SELECT id, m::text::mood_b, ms::text::mood_b[], ds::text::posint_b[], it::text::item_b, its::text::item_b[]
  FROM oid_a;
SELECT same('oid_a', 'oid_b');
SELECT count(*) AS differences FROM shift.compare('oid_a', 'oid_b');
SELECT label, type, class FROM shift.checksum_columns('oid_a');
UPDATE oid_b SET its = ARRAY[('sad', 2, 'y')::item_b, NULL] WHERE id = 1;
SELECT * FROM shift.compare('oid_a', 'oid_b');

-- ---- 4. no session dependence: client_encoding, TimeZone, DateStyle, extra_float_digits, lc_monetary
CREATE EXTENSION IF NOT EXISTS citext;
CREATE EXTENSION IF NOT EXISTS hstore;
CREATE TYPE feel AS ENUM ('café', 'naïve', 'złoty €');
CREATE TYPE txtpair AS (a text, b int);
CREATE TABLE enc (id int PRIMARY KEY, ta text[], va varchar[], ci citext, hs hstore, cp txtpair, f feel, fa feel[],
                  t text, at timestamptz, d date, m money, fl float8);
INSERT INTO enc VALUES
  (1, '{café,€uro}', '{naïve,"a,b"}', 'Crème Brûlée', 'clé=>"€", k=>v', ('été', 1), 'café', '{naïve,"złoty €"}',
   'ł', '2024-03-31 01:30:00+00', '2024-02-29', 12.34, 0.1),
  (2, '{plain}', '{ascii}', 'x', 'a=>b', ('b', 2), 'naïve', '{café}', 'plain', 'infinity', '-infinity', -1, 1e300);
SELECT checksum AS utf8 FROM shift.table_checksum('enc') \gset
SELECT checksum AS exprs FROM shift.table_checksum('enc', columns => '{at::text,d::text,m::text,fl::text,at::date}') \gset
SET client_encoding = 'LATIN1';
SET TimeZone = 'Pacific/Auckland';
SET DateStyle = 'SQL, DMY';
SET extra_float_digits = -3;
SET lc_monetary = 'C.UTF-8';
SELECT checksum = :'utf8' AS same_in_another_session FROM shift.table_checksum('enc');
SELECT checksum = :'exprs' AS expressions_too FROM shift.table_checksum('enc', columns => '{at::text,d::text,m::text,fl::text,at::date}');
SELECT count(*) AS differences FROM shift.compare('enc', 'enc');
RESET client_encoding;
RESET TimeZone;
RESET DateStyle;
RESET extra_float_digits;
RESET lc_monetary;
-- citext equality is case-insensitive, so its words are; it is its own class
CREATE TABLE ci_a (id int PRIMARY KEY, c citext);
CREATE TABLE ci_b (id int PRIMARY KEY, c citext);
INSERT INTO ci_a VALUES (1, 'Hello'), (2, 'ÉTÉ');
INSERT INTO ci_b VALUES (1, 'hELLO'), (2, 'ÉTÉ');
SELECT (SELECT c FROM ci_a WHERE id = 1) = (SELECT c FROM ci_b WHERE id = 1) AS citext_equal, same('ci_a', 'ci_b');
UPDATE ci_b SET c = 'Hullo' WHERE id = 1;
SELECT * FROM shift.compare('ci_a', 'ci_b');
SELECT class FROM shift.checksum_columns('ci_a', columns => '{c,c::text}');

-- ---- 5. numeric of any display scale: the long form a scale of 64 or more forces is the same value
CREATE TABLE nsc_a (id int PRIMARY KEY, n numeric);
CREATE TABLE nsc_b (id int PRIMARY KEY, n numeric(100,70));
INSERT INTO nsc_a VALUES (1, 1.5), (2, 0), (3, -123456.789), (4, 1e-60), (5, 99999999.99999999);
INSERT INTO nsc_b SELECT * FROM nsc_a;
SELECT pg_column_size(a.n) < pg_column_size(b.n) AS stored_longer FROM nsc_a a JOIN nsc_b b USING (id) WHERE id = 1;
SELECT same('nsc_a', 'nsc_b');
UPDATE nsc_b SET n = 1.5 + 1e-70 WHERE id = 1;
SELECT * FROM shift.compare('nsc_a', 'nsc_b');

-- ---- 6. an array's words come from its elements, not from its NULL bitmap
CREATE TABLE bm_a (id int PRIMARY KEY, a int[], t text[]);
CREATE TABLE bm_b (id int PRIMARY KEY, a int[], t text[]);
INSERT INTO bm_a VALUES (1, ARRAY[1], ARRAY['x', 'y']), (2, ARRAY[1, NULL], ARRAY[NULL]::text[]);
INSERT INTO bm_b VALUES (1, (ARRAY[1, NULL])[1:1], (ARRAY['x', 'y', NULL])[1:2]), (2, ARRAY[1, NULL], ARRAY[NULL]::text[]);
SELECT (SELECT a FROM bm_a WHERE id = 1) = (SELECT a FROM bm_b WHERE id = 1) AS sql_equal, same('bm_a', 'bm_b');
-- what does change an array: a lower bound, a dimension, a NULL for a value
UPDATE bm_b SET a = '[0:0]={1}' WHERE id = 1;
UPDATE bm_b SET t = '{{x},{y}}' WHERE id = 2;
SELECT * FROM shift.compare('bm_a', 'bm_b') ORDER BY key;
UPDATE bm_b SET a = '{1}', t = ARRAY[NULL]::text[];
UPDATE bm_b SET a = ARRAY[1, 0] WHERE id = 2;
SELECT * FROM shift.compare('bm_a', 'bm_b') ORDER BY key;

-- ---- 7. what can be read is checksummed, what cannot is an error
-- a view, also in pages (an error: it has none)
CREATE VIEW ch_view AS SELECT id, v FROM ch;
SELECT (SELECT (rows, checksum) FROM shift.table_checksum('ch_view')) =
       (SELECT (rows, checksum) FROM shift.table_checksum('ch')) AS view_equals_table;
SELECT sum(rows) FROM shift.chunk_checksums('ch_view', key => '{id}', chunk_rows => 4000);
SELECT * FROM shift.chunk_checksums('ch_view', buckets => 2, pages => '[0,10)');
-- an unpopulated materialized view is not an empty table
CREATE MATERIALIZED VIEW mv_empty AS SELECT id FROM ch WITH NO DATA;
SELECT * FROM shift.table_checksum('mv_empty');
REFRESH MATERIALIZED VIEW mv_empty;
SELECT rows FROM shift.table_checksum('mv_empty');
-- a table of 1 000 columns
DO $$ BEGIN
  EXECUTE 'CREATE TABLE wide_a (id int PRIMARY KEY, ' ||
          (SELECT string_agg('c' || g || ' int DEFAULT ' || g, ', ') FROM generate_series(1, 999) g) || ')';
END $$;
INSERT INTO wide_a (id) SELECT g FROM generate_series(1, 10) g;
CREATE TABLE wide_b AS SELECT * FROM wide_a;
UPDATE wide_b SET c500 = 0 WHERE id = 3;
SELECT * FROM shift.compare('wide_a', 'wide_b', key => '{id}', target_key => '{id}');
SELECT rows FROM shift.table_checksum('wide_a');
-- types without a binary send function: their output text
CREATE EXTENSION IF NOT EXISTS seg;
CREATE TABLE ns_a (id int PRIMARY KEY, s seg, acl aclitem);
INSERT INTO ns_a VALUES (1, '1.5 .. 2.5', 'postgres=r/postgres'), (2, '<3', NULL);
CREATE TABLE ns_b AS SELECT * FROM ns_a;
SELECT same('ns_a', 'ns_b');
UPDATE ns_b SET s = '1.5 .. 2.6' WHERE id = 1;
SELECT * FROM shift.compare('ns_a', 'ns_b', key => '{id}', target_key => '{id}');
SELECT class FROM shift.checksum_columns('ns_a', columns => '{s,acl}');
-- a NULL against the bigint whose bits are the NULL word: different, and the column is named
CREATE TABLE nw_a (id int PRIMARY KEY, v bigint);
CREATE TABLE nw_b (id int PRIMARY KEY, v bigint);
INSERT INTO nw_a VALUES (1, NULL);
INSERT INTO nw_b VALUES (1, x'6e756c6c2d2d6e75'::bigint);
SELECT * FROM shift.compare('nw_a', 'nw_b');
-- every kind of relation SELECT reads: the page reader and the executor agree
-- with each other and with a plain table of the same rows, through every
-- entry point; a relation that holds no rows to read is an error
CREATE TABLE rk_flat (id int PRIMARY KEY, v text);
INSERT INTO rk_flat SELECT g, 'v' || g FROM generate_series(1, 300) g;
CREATE MATERIALIZED VIEW rk_mv AS SELECT * FROM rk_flat;
CREATE VIEW rk_view AS SELECT * FROM rk_flat;
CREATE EXTENSION IF NOT EXISTS file_fdw;
CREATE SERVER rk_files FOREIGN DATA WRAPPER file_fdw;
CREATE FOREIGN TABLE rk_foreign (id int, v text) SERVER rk_files
  OPTIONS (program 'i=201; while [ $i -le 300 ]; do printf "%s\tv%s\n" $i $i; i=$((i+1)); done');
CREATE TABLE rk_part (id int, v text) PARTITION BY RANGE (id);
CREATE TABLE rk_part_1 PARTITION OF rk_part FOR VALUES FROM (1) TO (201);
ALTER TABLE rk_part ATTACH PARTITION rk_foreign FOR VALUES FROM (201) TO (301);
INSERT INTO rk_part_1 SELECT * FROM rk_flat WHERE id <= 200;
SELECT r::text AS relation,
       (SELECT (rows, checksum) FROM shift.table_checksum(r, key => '{id}')) =
       (SELECT (rows, checksum) FROM shift.table_checksum(r, columns => '{(id),(v)}', key => '{(id)}')) AS pages_equal_executor,
       (SELECT (rows, checksum) FROM shift.table_checksum(r, key => '{id}')) =
       (SELECT (rows, checksum) FROM shift.table_checksum('rk_flat', key => '{id}')) AS equals_flat,
       (SELECT array_agg(checksum ORDER BY chunk) FROM shift.chunk_checksums(r, key => '{id}', buckets => 4)) =
       (SELECT array_agg(checksum ORDER BY chunk) FROM shift.chunk_checksums('rk_flat', buckets => 4)) AS buckets_equal,
       (SELECT array_agg(row_hash ORDER BY key_hash) FROM shift.row_hashes(r, key => '{id}', buckets => 2, only_buckets => '{1}')) =
       (SELECT array_agg(row_hash ORDER BY key_hash) FROM shift.row_hashes('rk_flat', buckets => 2, only_buckets => '{1}')) AS row_hashes_equal,
       (SELECT array_agg(row_hash ORDER BY key_hash) FROM shift.key_rows(r, key => '{id}', keys => '{"{7}","{250}"}')) =
       (SELECT array_agg(row_hash ORDER BY key_hash) FROM shift.key_rows('rk_flat', keys => '{"{7}","{250}"}')) AS key_rows_equal,
       (SELECT count(*) FROM shift.compare(r, 'rk_flat', key => '{id}', target_key => '{id}')) AS differences
  FROM unnest(ARRAY['rk_mv', 'rk_view', 'rk_part']::regclass[]) r;
-- the foreign table alone (the executor reads it; it has no pages)
CREATE VIEW rk_hi AS SELECT * FROM rk_flat WHERE id > 200;
SELECT rows, checksum = (SELECT checksum FROM shift.table_checksum('rk_hi')) AS foreign_equals_view
  FROM shift.table_checksum('rk_foreign');
SELECT count(*) AS foreign_differences FROM shift.compare('rk_foreign', 'rk_hi', key => '{id}', target_key => '{id}');
SELECT * FROM shift.chunk_checksums('rk_foreign', key => '{id}', buckets => 2, pages => '[0,1)');
CREATE SEQUENCE rk_seq;
CREATE TYPE rk_type AS (a int);
SELECT * FROM shift.table_checksum('rk_seq');
SELECT * FROM shift.table_checksum('rk_flat_pkey');
SELECT * FROM shift.table_checksum('rk_type');

-- ---- every type family: a value rewritten to an equal one keeps its word; a changed one does not
CREATE TABLE fam_a (id int PRIMARY KEY,
  i2 int2, i8 int8, f4 float4, f8 float8, n numeric, b bool, c "char", d date, t time, tz timetz,
  ts timestamp, tstz timestamptz, iv interval, m money, tx text, vc varchar(10), bp char(4), nm name,
  by bytea, u uuid, js json, jb jsonb, x xml, ip inet, cd cidr, mac macaddr, mac8 macaddr8, bt bit(4),
  vb varbit, pt point, ls lseg, bx box, ln line, ci circle, pa path, pg polygon, tv tsvector, tq tsquery,
  jp jsonpath, lsn pg_lsn, r int4range, nr numrange, mr int4multirange, o oid, tid tid, hs hstore);
CREATE TABLE fam_b (LIKE fam_a);
ALTER TABLE fam_b ADD PRIMARY KEY (id);
INSERT INTO fam_a VALUES (1,
  7, 8, 1.5, -0.0, 1.10, true, 'x', '2024-01-31', '12:00', '12:00+02', '2024-01-01 00:00', '2024-01-01 00:00+00',
  '1 day', 5.25, 'text', 'vc', 'ab', 'nm',
  '\xdeadbeef', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": 1}', '{"n": [1.50, {"k": "é"}]}', '<a>x</a>',
  '10.0.0.1/8', '10.0.0.0/8', '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05', B'1010',
  B'101', '(1,2)', '[(0,0),(1,1)]', '(1,1),(0,0)', '{1,-1,0}', '<(0,0),1>', '((0,0),(1,1))', '((0,0),(1,1),(1,0))',
  'a fat cat', 'fat & cat', '$.a[*] ? (@ > 1)', '0/16B3748', '[1,5)', '[1.0,2.0)', '{[1,3),[5,7)}', 42, '(1,2)',
  'a=>1, b=>NULL');
-- equal rewrites: scale, -0, bpchar padding, interval span, jsonb scale and order, discrete range bounds
INSERT INTO fam_b SELECT id, i2, i8, f4, 0.0, 1.1000, b, c, d, t, tz, ts, tstz, '24 hours', m, tx, vc, 'ab  ', nm,
  by, upper(u::text)::uuid, js, '{"n": [1.5, {"k": "é"}]}', x, ip, cd, mac, mac8, bt,
  vb, pt, ls, '(0,0),(1,1)', ln, ci, pa, pg, 'cat fat a', tq,
  jp, lsn, '[1,4]', '[1.00,2.000)', '{[5,7),[1,2),[2,3)}', o, tid, 'b=>NULL, a=>1'
  FROM fam_a;
SELECT (SELECT row(a.*)::text FROM fam_a a) = (SELECT row(b.*)::text FROM fam_b b) AS same_text, same('fam_a', 'fam_b');
SELECT label, class FROM shift.checksum_columns('fam_a') WHERE class NOT IN ('integer', 'text') ORDER BY ord;
-- each column changed alone is found, and named
DO $$
DECLARE
  col text;
  changes text[] := ARRAY[
    'i2 = 6', 'i8 = -8', 'f4 = 1.25', 'f8 = 1e-300', 'n = 1.101', 'b = false', 'c = ''y''', 'd = d + 1',
    't = ''12:00:00.000001''', 'tz = ''12:00+03''', 'ts = ts + ''1 us''::interval', 'tstz = tstz - ''1 us''::interval', 'iv = ''1 day 1 us''',
    'm = 5.26', 'tx = ''Text''', 'vc = ''vc ''', 'bp = ''ab_''', 'nm = ''nM''', 'by = ''\xdeadbeee''',
    'u = ''a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12''', 'js = ''{"a":1}''', 'jb = ''{"n": [1.5, {"k": "e"}]}''',
    'x = ''<a>y</a>''', 'ip = ''10.0.0.1/9''', 'cd = ''10.0.0.0/7''', 'mac = ''08:00:2b:01:02:04''',
    'mac8 = ''08:00:2b:01:02:03:04:06''', 'bt = B''1011''', 'vb = B''1010''', 'pt = ''(1,3)''', 'ls = ''[(0,0),(1,2)]''',
    'bx = ''(2,1),(0,0)''', 'ln = ''{1,-1,1}''', 'ci = ''<(0,0),2>''', 'pa = ''[(0,0),(1,1)]''',
    'pg = ''((0,0),(1,1),(2,0))''', 'tv = ''a fat cat:1''', 'tq = ''fat | cat''', 'jp = ''$.a[*] ? (@ > 2)''',
    'lsn = ''0/16B3749''', 'r = ''[1,6)''', 'nr = ''(1.0,2.0)''', 'mr = ''{[1,3),[5,8)}''', 'o = 43', 'tid = ''(1,3)''',
    'hs = ''a=>1, b=>""''', 'jb = ''{"n": [1.5, {"k": "é"}, null]}''', 'r = ''empty''', 'mr = ''{}'''];
  found text;
BEGIN
  FOREACH col IN ARRAY changes LOOP
    EXECUTE 'UPDATE fam_b SET ' || col;
    SELECT string_agg(kind || ':' || columns::text, ' ') INTO found FROM shift.compare('fam_a', 'fam_b');
    IF found IS DISTINCT FROM 'different:{' || split_part(col, ' ', 1) || '}' THEN
      RAISE WARNING 'change % gave %', col, coalesce(found, 'no difference');
    END IF;
    DELETE FROM fam_b;
    INSERT INTO fam_b SELECT * FROM fam_a;
  END LOOP;
END $$;

-- ---- security: generated SQL never runs an operator another role put on search_path
CREATE ROLE shift_cs_evil;
GRANT CREATE ON SCHEMA public TO shift_cs_evil;
CREATE TABLE sec_k (k varchar PRIMARY KEY, v int);
CREATE TABLE sec_k2 (k varchar PRIMARY KEY, v int);
CREATE TABLE sec_nk (k varchar, v int);
INSERT INTO sec_k SELECT 'k' || g, g FROM generate_series(1, 50) g;
INSERT INTO sec_k2 SELECT * FROM sec_k WHERE v <> 7;
INSERT INTO sec_nk SELECT * FROM sec_k;
SET ROLE shift_cs_evil;
CREATE TABLE public.evil_calls (op text);
GRANT INSERT ON public.evil_calls TO PUBLIC;
CREATE FUNCTION public.evil_cmp(a varchar, b varchar, op text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.evil_calls VALUES (op);
  RETURN CASE op WHEN '>' THEN a::text > b::text WHEN '<' THEN a::text < b::text WHEN '<=' THEN a::text <= b::text
                 WHEN '>=' THEN a::text >= b::text ELSE a::text = b::text END;
END $$;
CREATE FUNCTION public.evil_gt(varchar, varchar) RETURNS boolean LANGUAGE sql AS $$ SELECT public.evil_cmp($1, $2, '>') $$;
CREATE FUNCTION public.evil_lt(varchar, varchar) RETURNS boolean LANGUAGE sql AS $$ SELECT public.evil_cmp($1, $2, '<') $$;
CREATE FUNCTION public.evil_le(varchar, varchar) RETURNS boolean LANGUAGE sql AS $$ SELECT public.evil_cmp($1, $2, '<=') $$;
CREATE FUNCTION public.evil_eq(varchar, varchar) RETURNS boolean LANGUAGE sql AS $$ SELECT public.evil_cmp($1, $2, '=') $$;
CREATE FUNCTION public.evil_tid_ge(tid, tid) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN INSERT INTO public.evil_calls VALUES ('tid >='); RETURN pg_catalog.tidge($1, $2); END $$;
CREATE FUNCTION public.evil_count_gt(bigint, int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN INSERT INTO public.evil_calls VALUES ('count >'); RETURN $1 > $2::bigint; END $$;
CREATE OPERATOR public.> (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = public.evil_gt);
CREATE OPERATOR public.< (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = public.evil_lt);
CREATE OPERATOR public.<= (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = public.evil_le);
CREATE OPERATOR public.= (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = public.evil_eq);
CREATE OPERATOR public.>= (LEFTARG = tid, RIGHTARG = tid, FUNCTION = public.evil_tid_ge);
CREATE OPERATOR public.> (LEFTARG = bigint, RIGHTARG = int, FUNCTION = public.evil_count_gt);
RESET ROLE;
-- the threat is real: a superuser's plain comparisons run them (with public
-- first on search_path, even those pg_catalog has exactly)
SET search_path = public, pg_catalog;
SELECT count(*) FROM sec_k WHERE k > 'k5';
SELECT count(*) FROM sec_k WHERE ctid >= '(0,1)';
SELECT string_agg(DISTINCT op, ' ' ORDER BY op) AS evil_ran FROM evil_calls;
TRUNCATE evil_calls;
-- none of ours does, with plain columns or with expressions (run under this search_path)
SELECT count(*), sum(rows) FROM shift.chunk_checksums('sec_k', chunk_rows => 7);
SELECT count(*), sum(rows) FROM shift.chunk_checksums('sec_k', columns => '{k,v + 0}', chunk_rows => 7);
SELECT count(*), sum(rows) FROM shift.chunk_checksums('sec_k', chunk_rows => 7, lower => '{k2}', upper => '{k40}');
SELECT count(*), sum(rows) FROM shift.chunk_checksums('sec_nk', key => '{k}', columns => '{k,v + 0}', chunk_rows => 7);
SELECT count(*), sum(rows) FROM shift.chunk_checksums('sec_k', columns => '{k,v + 0}', buckets => 4, pages => '[0,1)');
SELECT * FROM shift.compare('sec_k', 'sec_k2');
SELECT count(*) FROM shift.row_hashes('sec_k', buckets => 4);
SELECT key FROM shift.key_rows('sec_k', keys => '{"{k3}","{k7}","{nope}"}') ORDER BY key;
SELECT key FROM shift.key_rows('sec_nk', keys => '{"{k3,3}"}');
SELECT key FROM shift.key_rows('sec_k', keys => '{"{k3}"}', columns => '{k,v + 0}');
SELECT count(*) AS evil_calls FROM evil_calls;
-- a citext key is cut in citext's order (through its own operators, not text's)
CREATE TABLE ci_k (k citext PRIMARY KEY, v int);
INSERT INTO ci_k VALUES ('a', 1), ('B', 2), ('c', 3), ('D', 4);
SELECT chunk, lower, upper, rows FROM shift.chunk_checksums('ci_k', chunk_rows => 1);
SELECT key FROM shift.key_rows('ci_k', keys => '{"{b}","{C}"}') ORDER BY key;
SELECT count(*) AS evil_calls FROM evil_calls;
RESET search_path;
DROP OWNED BY shift_cs_evil;
REVOKE CREATE ON SCHEMA public FROM shift_cs_evil;
DROP ROLE shift_cs_evil;

-- ---- key_rows: the rows of some keys, as row_hashes gives them (pgshift compare's recheck)
SELECT (SELECT array_agg((key, key_hash, row_hash)::text ORDER BY key_hash) FROM shift.key_rows('ch', keys => '{"{5}","{77}"}')) =
       (SELECT array_agg((key, key_hash, row_hash)::text ORDER BY key_hash) FROM shift.row_hashes('ch', buckets => 1) WHERE key IN ('{5}', '{77}'))
       AS same_as_row_hashes;
SELECT key FROM shift.key_rows('dup_a', keys => '{"{y,2}"}');
SELECT key FROM shift.key_rows('nk', key => '{k}', keys => '{"{NULL}"}');

-- ---- test vectors of doc/checksum.md (the document quotes this output)
CREATE TYPE vec_mood AS ENUM ('sad', 'happy');
SELECT * FROM (VALUES
  ('1::int4', shift.value_word(1::int4)),
  ('1::int8', shift.value_word(1::int8)),
  ('-1::int2', shift.value_word(-1::int2)),
  ('true', shift.value_word(true)),
  ('''2000-01-02''::date', shift.value_word('2000-01-02'::date)),
  ('''1999-12-31''::date', shift.value_word('1999-12-31'::date)),
  ('''2000-01-01 00:00:01+00''::timestamptz', shift.value_word('2000-01-01 00:00:01+00'::timestamptz)),
  ('1.5::float8', shift.value_word(1.5::float8)),
  ('1.5::float4', shift.value_word(1.5::float4)),
  ('''-0''::float8', shift.value_word('-0'::float8)),
  ('''NaN''::float8', shift.value_word('NaN'::float8)),
  ('1.5::numeric', shift.value_word(1.5::numeric)),
  ('1.50000::numeric(100,70)', shift.value_word(1.50000::numeric(100,70))),
  ('-12345.678::numeric', shift.value_word(-12345.678::numeric)),
  ('0.000::numeric', shift.value_word(0.000::numeric)),
  ('123456789012345.678::numeric', shift.value_word(123456789012345.678::numeric)),
  ('''NaN''::numeric', shift.value_word('NaN'::numeric)),
  ('''''::text', shift.value_word(''::text)),
  ('''a''::text', shift.value_word('a'::text)),
  ('''abc''::text', shift.value_word('abc'::text)),
  ('''abc  ''::char(5)', shift.value_word('abc  '::char(5))),
  ('''café''::text', shift.value_word('café'::text)),
  ('''sad''::vec_mood', shift.value_word('sad'::vec_mood)),
  ('''SAD''::citext', shift.value_word('SAD'::citext)),
  ('''\xdeadbeef''::bytea', shift.value_word('\xdeadbeef'::bytea)),
  ('''1 day''::interval', shift.value_word('1 day'::interval)),
  ('''24 hours''::interval', shift.value_word('24 hours'::interval)),
  ('''12:00+02''::timetz', shift.value_word('12:00+02'::timetz)),
  ('''a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11''::uuid', shift.value_word('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid)),
  ('''{"b": [true, null, "x"], "a": 1.50}''::jsonb', shift.value_word('{"b": [true, null, "x"], "a": 1.50}'::jsonb)),
  ('''"s"''::jsonb', shift.value_word('"s"'::jsonb)),
  ('''10.1.2.3/8''::inet', shift.value_word('10.1.2.3/8'::inet)),
  ('''08:00:2b:01:02:03''::macaddr', shift.value_word('08:00:2b:01:02:03'::macaddr)),
  ('B''101''::varbit', shift.value_word(B'101'::varbit)),
  ('''(1,2)''::point', shift.value_word('(1,2)'::point)),
  ('ARRAY[1, NULL, 3]', shift.value_word(ARRAY[1, NULL, 3])),
  ('''{}''::int[]', shift.value_word('{}'::int[])),
  ('''[0:1]={1,2}''::int[]', shift.value_word('[0:1]={1,2}'::int[])),
  ('ROW(1, ''a'')', shift.value_word(ROW(1, 'a'))),
  ('int4range(1, 5)', shift.value_word(int4range(1, 5))),
  ('''empty''::int4range', shift.value_word('empty'::int4range)),
  ('''{[1,3),[5,7)}''::int4multirange', shift.value_word('{[1,3),[5,7)}'::int4multirange)),
  ('''a fat cat''::tsvector', shift.value_word('a fat cat'::tsvector))
) v(value, word);
-- equal values, one word: what the rows above pair up
SELECT shift.value_word(1::int4) = shift.value_word(1::int8) AS int4_int8,
       shift.value_word(1.5::numeric) = shift.value_word(1.50000::numeric(100,70)) AS numeric_scale,
       shift.value_word('1 day'::interval) = shift.value_word('24 hours'::interval) AS interval_span,
       shift.value_word('abc  '::char(5)) = shift.value_word('abc'::text) AS bpchar_text,
       shift.value_word('sad'::vec_mood) = shift.value_word('sad'::text) AS enum_label,
       shift.value_word('SAD'::citext) = shift.value_word('sad'::citext) AS citext_case,
       shift.value_word(ARRAY[1]) = shift.value_word((ARRAY[1, NULL])[1:1]) AS array_bitmap,
       shift.value_word(1.5::float4) = shift.value_word(1.5::float8) AS float4_float8,
       shift.value_word('-0'::float8) = shift.value_word(0::float8) AS minus_zero,
       -- a type without a rule (its output text) follows its equality when its equal values print alike
       (shift.value_word('1.0'::seg) = shift.value_word('1.00'::seg)) = ('1.0'::seg = '1.00'::seg) AS seg_as_its_equality;
-- a second implementation of doc/checksum.md, in SQL, for the containers:
-- their canonical bytes built by the document's rules from their parts'
-- words, then hashed as a bytea (whose word is H64 of its bytes, as 'a' and
-- '\x61' show).  jsonb objects of more than 32 members store every 32nd
-- entry's offset instead of its length, which the reader must follow.
SELECT shift.value_word('a'::text) = shift.value_word('\x61'::bytea) AS text_is_h64_of_utf8;
CREATE FUNCTION vec_le(word text, nbytes int DEFAULT 8) RETURNS bytea LANGUAGE sql AS $$
  SELECT decode(string_agg(substr(lpad(word, 16, '0'), 15 - 2 * i, 2), '' ORDER BY i), 'hex')
    FROM generate_series(0, nbytes - 1) i
$$;
CREATE FUNCTION vec_le32(n bigint) RETURNS bytea LANGUAGE sql AS $$
  SELECT vec_le(to_hex(n & 4294967295), 4)
$$;
CREATE FUNCTION vec_j(j jsonb) RETURNS bytea LANGUAGE plpgsql AS $$
BEGIN
  RETURN CASE jsonb_typeof(j)
    WHEN 'null' THEN 'n'::bytea
    WHEN 'boolean' THEN CASE WHEN j::boolean THEN 't'::bytea ELSE 'f'::bytea END
    WHEN 'string' THEN 's'::bytea || vec_le32(octet_length(convert_to(j #>> '{}', 'UTF8')))
                       || convert_to(j #>> '{}', 'UTF8')
    WHEN 'number' THEN 'd'::bytea || vec_le(shift.value_word(j::numeric))
    WHEN 'array' THEN '['::bytea || vec_le32(jsonb_array_length(j))
                      || coalesce((SELECT string_agg(vec_j(e), ''::bytea ORDER BY o)
                                     FROM jsonb_array_elements(j) WITH ORDINALITY x(e, o)), '')
    ELSE '{'::bytea || vec_le32((SELECT count(*) FROM jsonb_object_keys(j)))
         || coalesce((SELECT string_agg(vec_j(to_jsonb(k)) || vec_j(v), ''::bytea
                                        ORDER BY octet_length(convert_to(k, 'UTF8')), convert_to(k, 'UTF8'))
                        FROM jsonb_each(j) x(k, v)), '')
  END;
END $$;
CREATE FUNCTION vec_arr(a anyarray) RETURNS bytea LANGUAGE plpgsql AS $$
DECLARE
  out bytea := vec_le32(coalesce(array_ndims(a), 0));
BEGIN
  FOR d IN 1..coalesce(array_ndims(a), 0) LOOP
    out := out || vec_le32(array_length(a, d)) || vec_le32(array_lower(a, d));
  END LOOP;
  RETURN out
    || coalesce((SELECT string_agg(CASE WHEN num_nulls(e) = 1 THEN vec_le('6e756c6c2d2d6e75')
                                        ELSE vec_le(shift.value_word(e)) END, ''::bytea ORDER BY o)
                   FROM unnest(a) WITH ORDINALITY x(e, o)), '')
    || coalesce((SELECT decode(string_agg(lpad(to_hex(bits), 2, '0'), '' ORDER BY byte), 'hex')
                   FROM (SELECT (o - 1) / 8 AS byte, sum(CASE WHEN num_nulls(e) = 1 THEN 1 << ((o - 1) % 8)::int ELSE 0 END) AS bits
                           FROM unnest(a) WITH ORDINALITY x(e, o) GROUP BY 1) b), '');
END $$;
CREATE TABLE vec_json (what text, j jsonb);
INSERT INTO vec_json VALUES
  ('document vector', '{"b": [true, null, "x"], "a": 1.50}'),
  ('scalars', 'null'), ('scalars', 'true'), ('scalars', '"ü"'), ('scalars', '-0.000'), ('scalars', '""'),
  ('empty containers', '[]'), ('empty containers', '{}'), ('empty containers', '[{}, [], {"": []}]'),
  ('keys of every length, UTF-8', '{"zz": 1, "é": 2, "a": 3, "ab": 4, "😀": 5, "b": {"y": null, "x": [1e-40, 1e40]}}'),
  ('100 members', (SELECT jsonb_object_agg('k' || i, CASE i % 4 WHEN 0 THEN to_jsonb(i * 1.50) WHEN 1 THEN to_jsonb(repeat('v', i))
                                                             WHEN 2 THEN jsonb_build_array(i, 'x') ELSE jsonb_build_object('n', i) END)
                   FROM generate_series(1, 100) i)),
  ('40 objects of 40 members', (SELECT jsonb_agg((SELECT jsonb_object_agg(repeat('k', j % 7 + 1) || j, repeat('w', (i * j) % 5))
                                                  FROM generate_series(1, 40) j)) FROM generate_series(1, 40) i)),
  ('70 elements', (SELECT jsonb_agg(CASE WHEN i % 3 = 0 THEN NULL ELSE i END) FROM generate_series(1, 70) i));
SELECT what, count(*) AS values, bool_and(shift.value_word(j) = shift.value_word(vec_j(j))) AS as_specified
  FROM vec_json GROUP BY what ORDER BY what;
CREATE TABLE vec_arrays (what text, i int8[], t text[]);
INSERT INTO vec_arrays VALUES
  ('document vector', ARRAY[1, NULL, 3], '{x,NULL,"y z"}'),
  ('empty', '{}', '{}'),
  ('two dimensions, lower bounds', '[-2:-1][3:4]={{1,2},{3,NULL}}', '[0:2]={a,NULL,"é"}'),
  ('NULLs past the first bitmap byte', (SELECT array_agg(CASE WHEN g IN (9, 17, 20) THEN NULL ELSE g END) FROM generate_series(1, 20) g),
   (SELECT array_agg(CASE WHEN g % 9 = 0 THEN NULL ELSE repeat('x', g) END) FROM generate_series(1, 30) g)),
  ('a NULL bitmap without a NULL', (ARRAY[1, NULL]::int8[])[1:1], (ARRAY['a', NULL])[1:1]);
SELECT what, shift.value_word(i) = shift.value_word(vec_arr(i)) AS int8_as_specified,
       shift.value_word(t) = shift.value_word(vec_arr(t)) AS text_as_specified
  FROM vec_arrays ORDER BY what;
-- a composite: LE32(fields), their words, their NULL bitmap
SELECT shift.value_word(ROW(1, NULL::text, 'x'::text)) =
       shift.value_word(vec_le32(3) || vec_le(shift.value_word(1)) || vec_le('6e756c6c2d2d6e75')
                        || vec_le(shift.value_word('x'::text)) || '\x02'::bytea) AS composite_as_specified;
-- rows and chunks
CREATE TABLE vec (id int PRIMARY KEY, t text, n numeric);
INSERT INTO vec VALUES (1, 'a', 1.5), (2, NULL, 0);
SELECT * FROM shift.table_checksum('vec');
SELECT * FROM shift.table_checksum('vec', key => '{id}');
SELECT bucket, key, key_hash, row_hash FROM shift.row_hashes('vec', buckets => 4) ORDER BY key;
SELECT * FROM shift.chunk_checksums('vec', buckets => 2);
