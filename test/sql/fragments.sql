-- fragments: the checks of the SQL fragments users hand to pg_shift
-- (extension/sqlfrag.c).  shift_internal._select_list is linear in the list, and
-- every fragment is bounded before it is parsed (SQLSTATE 54000, naming it,
-- its size and the limit), runs of operator characters included.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_shift;
\set SHOW_CONTEXT never
CREATE SCHEMA frag_test;
SET search_path = frag_test;
CREATE TABLE items (id int PRIMARY KEY, n int, m int, t text);
CREATE TABLE items_copy (id int PRIMARY KEY, n int);
CREATE FUNCTION refusal(call text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE call;
  RETURN 'accepted';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- ---- shift_internal._select_list of 20 000 items: one parse and one scan of the
-- list, then each item alone.  Rescanning the list for each item took 79 s
-- and 4.7 GB for 40 kB; this timeout is there for such an implementation.
-- Every 1 000th item has a comment holding commas.
SET statement_timeout = '20s';
SELECT array_length(l, 1) AS items, l[1] AS first, l[1000] AS with_comment,
       l[1001] AS after_it, l[20000] AS last, octet_length(s) AS bytes
  FROM (SELECT s, shift_internal._select_list(s) AS l
          FROM (SELECT string_agg(CASE WHEN i % 1000 = 0 THEN format('f(c%s, 2) /* a, b */', i % 10)
                                       ELSE 'c' || i % 10 END, ', ') AS s
                  FROM generate_series(1, 20000) i) x) y;
RESET statement_timeout;

-- ---- the limit: 128 kB per fragment
SELECT refusal($$SELECT shift_internal._select_list(repeat('a,', 65535) || 'aa')$$) AS at_the_limit,
       array_length(shift_internal._select_list(repeat('a,', 65535) || 'aa'), 1) AS items;
SELECT shift_internal._select_list(repeat('a,', 65536) || 'a');
SELECT refusal($$SELECT shift.backfill_create('big', 'items', set => 'n = 1' || repeat(' ', 131072))$$) AS set,
       refusal($$SELECT shift.backfill_create('big', 'items', set => 'n = 1', "where" => 'true' || repeat(' ', 131072))$$) AS "where";
SELECT refusal($$SELECT shift.backfill_create('big', 'items', "into" => 'items_copy', columns => ARRAY['id', 'n'],
                                              "select" => 'id, n' || repeat(' ', 131072))$$) AS "select",
       refusal($$SELECT shift.backfill_create('big', 'items', set => 'n = 1',
                                              throttle_query => 'SELECT true' || repeat(' ', 131072))$$) AS throttle_query;
SELECT refusal($$SELECT shift.sync_create('big', 'items', set => 'm = n' || repeat(' ', 131072))$$) AS sync_set,
       refusal($$SELECT shift.sync_create('big', 'items', "into" => 'items_copy', columns => ARRAY['id', 'n'],
                                          "select" => 'id, n' || repeat(' ', 131072))$$) AS sync_select;
-- nothing was created
SELECT (SELECT count(*) FROM shift.backfill_progress) AS jobs, (SELECT count(*) FROM shift.sync_status) AS syncs;

-- ---- runs of operator characters, on which PostgreSQL's scanner is
-- quadratic, count against a fragment too (a tenth of lint's budget: a
-- fragment is parsed again in each statement made from it)
SELECT shift_internal._select_list('n ' || repeat('+', 3200) || ' 1');
SELECT refusal($$SELECT shift.backfill_create('ops', 'items', set => 'n = 1 ' || repeat('-+', 1600) || ' 1')$$) AS set,
       refusal($$SELECT shift_internal._select_list('n ' || repeat('+', 3000) || ' 1, n')$$) AS short_enough;

-- ---- found by the fuzzer: a fragment that parses as a statement the
-- expression walker does not know (a throttle_query of BEGIN, VACUUM, ...)
-- was an internal error (XX000 unrecognized node type) instead of a refusal
SELECT refusal($$SELECT shift.backfill_create('tq', 'items', set => 'n = 1', throttle_query => 'BEGIN')$$) AS "begin",
       refusal($$SELECT shift.backfill_create('tq', 'items', set => 'n = 1', throttle_query => 'VACUUM items')$$) AS vacuum;
SELECT refusal($$SELECT shift.backfill_create('tq', 'items', set => 'n = 1', throttle_query => 'PREPARE p AS SELECT $1')$$) AS parameter,
       refusal($$SELECT shift.backfill_create('tq', 'items', set => 'n = 1', throttle_query => 'SELECT ''$1'', $x$ $2 $x$')$$) AS quoted_dollar;

-- ---- an error in a fragment is the fragment's: named, with the text given and
-- the character in it, not the statement pg_shift built around it (sync
-- errors showed "UPDATE frag_test.items SET ..." or the mirror's INSERT)
\set VERBOSITY default
SELECT shift.sync_create('s1', 'items', set => 'm = n +* 2');
SELECT shift.sync_create('s2', 'items', set => 'm = nosuch + 1');
SELECT shift.sync_create('s3', 'items', set => 'm = n', reverse_set => 'n = m ++');
SELECT shift.sync_create('s4', 'items', "into" => 'items_copy', "select" => 'id, nosuch');
SELECT shift.sync_create('s5', 'items', "into" => 'items_copy', "select" => 'id, n +* 1');
SELECT shift.sync_create('s6', 'items', "into" => 'items_copy', "select" => 'id, n',
                         reverse_select => 'id, n, nosuch');
SELECT shift.backfill_create('b1', 'items', set => 'm = nosuch + 1');
SELECT shift.backfill_create('b2', 'items', set => 'm = 1', "where" => 'n <> ''x''::int');
SELECT count(*) AS nothing_recorded FROM shift.sync_status WHERE name LIKE 's_';

-- ---- shift_internal._plain_column reads an expression with the server's parser (the
-- same reading as the sync's trigger): a column, maybe cast or in
-- parentheses, is that column; anything else, or what does not parse, NULL
SELECT e, shift_internal._plain_column(e)
  FROM unnest(ARRAY['id', ' ID ', '"Id"', '"a""b"::bigint', 'id::numeric(12, 2)[]', '(id)::int8',
                    'id::"my type"', 't.id', 'id + 1', 'lower(email)', 'id AS x', 'id, n',
                    'id FROM t', '"unclosed', '1', '']) AS e;
SELECT refusal($$SELECT shift_internal._plain_column(repeat('+', 3200))$$) AS scan_budget;

-- ---- shift.rename_column_refs renames a column where the parser
-- reads a reference to it, and only there: not a type, a function, a
-- schema, an operator class, a collation, an access method, a string or a
-- comment spelled like it; the rest of the text byte for byte
SELECT e, shift.rename_column_refs(e, 'date', 'date__new')
  FROM unnest(ARRAY[
    'CHECK ((date > ''2000-01-01''::date)) NOT VALID',
    'CHECK (date.ok(date))',
    'date > date ''2000-01-01'' AND t.date < "date" /* date */ AND (date).x IS NULL',
    'CREATE INDEX ix ON date.t USING btree (date date_ops, lower(date::text) COLLATE "date") INCLUDE (x, date) WHERE date IS NOT NULL',
    'CREATE UNIQUE INDEX ix ON ONLY public.t USING date (id, (date)) WITH (fillfactor = 50)',
    'CREATE INDEX date ON t (x)',
    'U&"d\0061te" > 1',
    'x > 1']) AS e;
-- the new name quoted as needed; a name with capitals matches only as written
SELECT shift.rename_column_refs('lower(lower) || Lower', 'lower', 'New Name') AS quoted,
       shift.rename_column_refs('"Mixed" + mixed', 'Mixed', 'b') AS exact;
-- what it cannot rename is refused, saying what
SELECT shift.rename_column_refs('FOREIGN KEY (a) REFERENCES t (a)', 'a', 'b');
SELECT shift.rename_column_refs('a b', 'a', 'b');
SELECT shift.rename_column_refs('a; DROP TABLE t', 'a', 'b');
SELECT shift.rename_column_refs('U&"!0061" UESCAPE ''!'' > 1', 'a', 'b');
SELECT refusal($$SELECT shift.rename_column_refs(repeat('+', 3200), 'a', 'b')$$) AS scan_budget;

RESET search_path;
DROP SCHEMA frag_test CASCADE;
