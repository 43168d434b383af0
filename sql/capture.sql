-- ---------------------------------------------------------------------------
-- Change capture: keeps a PostgreSQL table current with a source another
-- engine still writes (MySQL/MariaDB through mysql_fdw, or any foreign
-- table), from a changelog that triggers on the source side fill: one row
-- per change, (seq, the key's columns, kind, at), seq increasing.
-- shift.capture_mysql_sql prints those triggers and the changelog table for
-- MySQL; doc/sql.md says how they are installed and in which order.
--
-- A batch reads the changelog rows past the checkpoint (seq > last_seq,
-- ordered, limited: pushed to the remote side), reads the current source
-- rows of their distinct keys, upserts those into the table (the capture's
-- select => on the way, as a backfill's) and deletes the keys the source no
-- longer has; the checkpoint commits in the same transaction as the rows,
-- so a killed apply repeats nothing and loses nothing.  Re-reading the
-- source makes the latest state win, whatever order changes came in: a key
-- changed many times is applied once, as it is now.
--
-- seq is an AUTO_INCREMENT: a transaction takes its value when it writes
-- and may commit after one that took a larger value.  A batch that skips
-- values (seq 7, 9: 8 is missing) records the missing range as a gap, and
-- every later batch looks for rows in the open gaps again: a change that
-- commits late is applied then, never lost.  A gap left by a transaction
-- that rolled back never fills; it is forgotten after gap_timeout.
-- C in extension/capture.c (running a capture's statements as its owner).
-- ---------------------------------------------------------------------------

CREATE TABLE @extschema@.capture (
  name              pg_catalog.text PRIMARY KEY
                    CHECK (name OPERATOR(pg_catalog.~) '^[A-Za-z0-9_.:-]{1,250}$'),
  changelog         pg_catalog.regclass NOT NULL,   -- (seq, key columns, kind, at)
  source            pg_catalog.regclass NOT NULL,   -- the table the changes are made to
  into_relation     pg_catalog.regclass NOT NULL,   -- the PostgreSQL table kept current
  key_columns       pg_catalog.text[] NOT NULL,     -- source's and into's unique key
  into_columns      pg_catalog.text[] NOT NULL,
  select_list       pg_catalog.text NOT NULL,       -- over source, one per into_columns
  backfill          pg_catalog.text,                -- a backfill job that must be done first
  batch_size        pg_catalog.int4 NOT NULL DEFAULT 1000 CHECK (batch_size BETWEEN 1 AND 100000),
  gap_timeout       pg_catalog.interval NOT NULL DEFAULT '1 hour',
  owner             pg_catalog.name NOT NULL,       -- made it; its SQL runs as this role
  search_path       pg_catalog.text NOT NULL,       -- recorded when it was made; its SQL runs under it
  migration         pg_catalog.text,
  phase             pg_catalog.text,
  -- state: the checkpoint and what was applied
  last_seq          pg_catalog.int8 NOT NULL DEFAULT 0,
  last_change_at    pg_catalog.text,                -- the changelog's "at" of last_seq, as the source wrote it
  changes           pg_catalog.int8 NOT NULL DEFAULT 0,   -- changelog rows applied
  keys              pg_catalog.int8 NOT NULL DEFAULT 0,   -- distinct keys re-read, summed over batches
  upserted          pg_catalog.int8 NOT NULL DEFAULT 0,
  deleted           pg_catalog.int8 NOT NULL DEFAULT 0,
  late              pg_catalog.int8 NOT NULL DEFAULT 0,   -- changes found in a gap
  gaps_forgotten    pg_catalog.int8 NOT NULL DEFAULT 0,
  batches           pg_catalog.int8 NOT NULL DEFAULT 0,
  paused            pg_catalog.bool NOT NULL DEFAULT false,  -- capture_pause: not applied
  created_at        pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now(),
  updated_at        pg_catalog.timestamptz
);
COMMENT ON TABLE @extschema@.capture IS
  'change captures: a changelog applied to a table in batches, its checkpoint and counters';

-- Ranges of seq a batch skipped: looked for again until they fill or time out.
CREATE TABLE @extschema@.capture_gap (
  capture           pg_catalog.text NOT NULL
                    REFERENCES @extschema@.capture (name) ON DELETE CASCADE,
  lo                pg_catalog.int8 NOT NULL,
  hi                pg_catalog.int8 NOT NULL CHECK (hi >= lo),
  noted_at          pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now(),
  PRIMARY KEY (capture, lo)
);
COMMENT ON TABLE @extschema@.capture_gap IS
  'ranges of changelog seq not seen yet (a transaction that had not committed, or rolled back)';

SELECT pg_catalog.pg_extension_config_dump('@extschema@.capture', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.capture_gap', '');

ALTER TABLE @extschema@.capture ENABLE ROW LEVEL SECURITY;
CREATE POLICY visible_to_owner ON @extschema@.capture FOR SELECT
  USING (shift_internal.may_act(owner));
ALTER TABLE @extschema@.capture_gap ENABLE ROW LEVEL SECURITY;
CREATE POLICY visible_to_owner ON @extschema@.capture_gap FOR SELECT
  USING (EXISTS (SELECT 1 FROM @extschema@.capture c
                  WHERE c.name OPERATOR(pg_catalog.=) capture_gap.capture));

-- Runs one statement of a capture as its owner: the first column of its
-- first row (C, extension/capture.c).
CREATE FUNCTION shift_internal._capture_exec(name pg_catalog.text, owner pg_catalog.name,
                                             search_path pg_catalog.text, sql pg_catalog.text)
RETURNS pg_catalog.text
AS 'MODULE_PATHNAME', 'shift_capture_exec'
LANGUAGE C;

-- Prepares one statement of a capture as its owner, without running it; an
-- error in its select => (at byte select_at) is the select's (C).
CREATE FUNCTION shift_internal._capture_plan(name pg_catalog.text, owner pg_catalog.name,
                                             search_path pg_catalog.text, sql pg_catalog.text,
                                             "select" pg_catalog.text, select_at pg_catalog.int4)
RETURNS void
AS 'MODULE_PATHNAME', 'shift_capture_plan'
LANGUAGE C;

-- Refuses a select => that is more than a list of expressions, as a
-- backfill's, or too long or too costly to scan (C).
CREATE FUNCTION shift_internal._capture_check_select(name pg_catalog.text, sql pg_catalog.text)
RETURNS void
AS 'MODULE_PATHNAME', 'shift_capture_check_select'
LANGUAGE C STRICT;

-- The unique index of rel on key_columns, as a backfill's key_columns =>
-- finds it (btree, the columns in their order, NOT NULL); NULL if none (C).
CREATE FUNCTION shift_internal._capture_key_index(name pg_catalog.text, rel pg_catalog.regclass,
                                                  key_columns pg_catalog.text[])
RETURNS pg_catalog.regclass
AS 'MODULE_PATHNAME', 'shift_capture_key_index'
LANGUAGE C STRICT;

-- Each key column's equality in rel, 'OPERATOR(schema.op)': its type's
-- default btree operator class's, as a backfill compares keys (C).
CREATE FUNCTION shift_internal._capture_key_equality(name pg_catalog.text, rel pg_catalog.regclass,
                                                     key_columns pg_catalog.text[])
RETURNS pg_catalog.text[]
AS 'MODULE_PATHNAME', 'shift_capture_key_equality'
LANGUAGE C STABLE STRICT;

-- The columns of "into" that source has too, generated ones left out, as a
-- backfill's copy takes them by default (C).
CREATE FUNCTION shift_internal._capture_copy_columns("into" pg_catalog.regclass, source pg_catalog.regclass)
RETURNS pg_catalog.text[]
AS 'MODULE_PATHNAME', 'shift_capture_copy_columns'
LANGUAGE C STABLE STRICT;

-- The columns of relation rel (not dropped, not system), in order.
CREATE FUNCTION shift_internal._capture_columns(rel pg_catalog.regclass)
RETURNS pg_catalog.text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce(array_agg(a.attname::text ORDER BY a.attnum), '{}')
    FROM pg_catalog.pg_attribute a
   WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
$$;

-- The key's predicate over alias al for the keys (a JSON array of arrays of
-- texts, one per key column), each column compared by its equality in eq
-- (_capture_key_equality): col = ANY ('{...}') for one column, else an OR
-- of ANDs in parentheses (the statement ANDs more to it).  Values are literals: a foreign table's FDW sends them as they
-- are.
CREATE FUNCTION shift_internal._capture_key_pred(al pg_catalog.text, key_columns pg_catalog.text[],
                                                 eq pg_catalog.text[], keys pg_catalog.jsonb)
RETURNS pg_catalog.text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE
    WHEN cardinality(key_columns) = 1 THEN
      format('%I.%I %s ANY (%L)', al, key_columns[1], eq[1],
             (SELECT array_agg(k->>0) FROM jsonb_array_elements(keys) k)::text)
    ELSE
      '(' || (SELECT string_agg('(' || (SELECT string_agg(format('%I.%I %s %L', al, c, eq[o], k->>(o - 1)::int),
                                                          ' AND ' ORDER BY o)
                                          FROM unnest(key_columns) WITH ORDINALITY u(c, o)) || ')', ' OR ')
                FROM jsonb_array_elements(keys) k) || ')'
  END
$$;

/*
 * The statement that upserts the keys' source rows into the table and
 * deletes the keys the source no longer has, as one statement (one read of
 * the source): returns "upserted deleted".  select_at: the byte at which
 * the capture's select => starts in it.  Keys are compared by each
 * column's own equality (_capture_key_equality), in the source and in the
 * table.
 *
 * A foreign table (the way back: PostgreSQL's changes applied to the MySQL
 * table) takes no ON CONFLICT, and an FDW need not return rows from a
 * write: delete_sql deletes the keys from it, then sql inserts the keys'
 * source rows, two statements that each return the rows they processed.
 * For a local table delete_sql is NULL.
 */
CREATE FUNCTION shift_internal._capture_apply_sql(c @extschema@.capture, keys pg_catalog.jsonb,
                                                  OUT sql pg_catalog.text, OUT select_at pg_catalog.int4,
                                                  OUT delete_sql pg_catalog.text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  src_eq CONSTANT pg_catalog.text[] := shift_internal._capture_key_equality(c.name, c.source, c.key_columns);
  into_eq CONSTANT pg_catalog.text[] := shift_internal._capture_key_equality(c.name, c.into_relation, c.key_columns);
  into_pred CONSTANT pg_catalog.text := shift_internal._capture_key_pred('t', c.key_columns, into_eq, keys);
  head pg_catalog.text;
  from_source pg_catalog.text;
BEGIN
  head := format('%sINSERT INTO %s AS t (%s) SELECT ',
                 CASE WHEN shift_internal._capture_foreign(c.into_relation) THEN '' ELSE 'WITH up AS (' END,
                 c.into_relation,
                 (SELECT string_agg(quote_ident(x), ', ' ORDER BY o) FROM unnest(c.into_columns) WITH ORDINALITY u(x, o)));
  select_at := octet_length(head);
  -- the select => ends with a line break, as a backfill's: a -- comment ends there
  from_source := head || c.select_list || format(E'\n FROM %s AS s WHERE %s', c.source,
                   shift_internal._capture_key_pred('s', c.key_columns, src_eq, keys));
  IF shift_internal._capture_foreign(c.into_relation) THEN
    delete_sql := format('DELETE FROM %s AS t WHERE %s', c.into_relation, into_pred);
    sql := from_source;
    RETURN;
  END IF;
  sql := from_source || format(
    ' ON CONFLICT (%s) DO UPDATE SET %s RETURNING %s), '
    'gone AS (DELETE FROM %s AS t WHERE %s AND NOT EXISTS (SELECT FROM up WHERE %s) RETURNING 1) '
    'SELECT pg_catalog.format(''%%s %%s'', (SELECT pg_catalog.count(*) FROM up), (SELECT pg_catalog.count(*) FROM gone))',
    (SELECT string_agg(quote_ident(x), ', ' ORDER BY o) FROM unnest(c.key_columns) WITH ORDINALITY u(x, o)),
    (SELECT string_agg(format('%I = EXCLUDED.%I', x, x), ', ' ORDER BY o)
       FROM unnest(c.into_columns) WITH ORDINALITY u(x, o)),
    (SELECT string_agg(format('t.%I', x), ', ' ORDER BY o) FROM unnest(c.key_columns) WITH ORDINALITY u(x, o)),
    c.into_relation, into_pred,
    (SELECT string_agg(format('up.%I %s t.%I', x, into_eq[o], x), ' AND ' ORDER BY o)
       FROM unnest(c.key_columns) WITH ORDINALITY u(x, o)));
END
$$;

-- Is rel a foreign table (a capture's table on another engine)?
CREATE FUNCTION shift_internal._capture_foreign(rel pg_catalog.regclass)
RETURNS pg_catalog.bool
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT relkind = 'f' FROM pg_catalog.pg_class WHERE oid = rel $$;

/*
 * The query that reads changelog rows (where => a condition on seq) as one
 * JSON object: n rows, their seqs, the largest, the "at" of the largest,
 * and the distinct keys (arrays of texts).
 */
CREATE FUNCTION shift_internal._capture_read_sql(c @extschema@.capture, cond pg_catalog.text,
                                                 lim pg_catalog.int4)
RETURNS pg_catalog.text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT format(
    'SELECT pg_catalog.jsonb_build_object(''n'', pg_catalog.count(*), ''max'', pg_catalog.max(b.seq), '
    '''seqs'', pg_catalog.jsonb_agg(b.seq ORDER BY b.seq), '
    '''at'', (pg_catalog.array_agg(b.at::pg_catalog.text ORDER BY b.seq DESC))[1], '
    '''keys'', pg_catalog.jsonb_agg(DISTINCT pg_catalog.jsonb_build_array(%s))) '
    'FROM (SELECT l.seq, l.at, %s FROM %s AS l WHERE %s ORDER BY l.seq%s) b',
    (SELECT string_agg(format('b.%I::pg_catalog.text', x), ', ' ORDER BY o)
       FROM unnest(c.key_columns) WITH ORDINALITY u(x, o)),
    (SELECT string_agg(format('l.%I', x), ', ' ORDER BY o) FROM unnest(c.key_columns) WITH ORDINALITY u(x, o)),
    c.changelog, cond, CASE WHEN lim IS NOT NULL THEN ' LIMIT ' || lim ELSE '' END)
$$;

/*
 * The backfill job capture c waits for (all NULL: there is none of that
 * name), which must be a job of the capture's owner: job names are global,
 * and another role's job of that name says nothing of the rows the
 * capture's own copy has written (nor is its state the capture owner's to
 * see).
 */
CREATE FUNCTION shift_internal._capture_backfill(c @extschema@.capture)
RETURNS @extschema@.backfill
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  b @extschema@.backfill;
BEGIN
  SELECT * INTO b FROM @extschema@.backfill x WHERE x.name = c.backfill;
  IF FOUND AND b.owner <> c.owner THEN
    RAISE EXCEPTION 'backfill job "%" of capture "%" belongs to another role', c.backfill, c.name
      USING ERRCODE = 'insufficient_privilege',
            DETAIL = format('A capture waits only for a backfill job of its own owner, "%s".', c.owner),
            HINT = 'Drop the capture and create it again with a job name no other role has taken.';
  END IF;
  RETURN b;
END
$$;

/*
 * shift.capture_create(name, changelog, source, "into", key_columns,
 *                      columns => NULL, "select" => NULL, backfill => NULL,
 *                      batch_size => 1000, gap_timeout => '1 hour',
 *                      if_exists => 'error', migration, phase, search_path)
 *
 * Defines a capture.  changelog has columns seq (an integer), at, and the
 * key_columns; source has the key_columns, unique and NOT NULL; "into" has
 * a unique index on exactly those columns.  columns and select => are the
 * backfill's: the table's columns and the matching expressions over the
 * source (default: the table's columns the source has too).  backfill =>
 * names the backfill job that copies the rows first (made after the
 * capture, or not started yet: its bound must come after the triggers):
 * the capture applies nothing before that job is done (the job's copy
 * could otherwise write a row older than one the capture applied); that
 * job must be the capture's owner's.  The key is "into"'s as a backfill's
 * key_columns => is a table's: a unique btree index on those columns, in
 * that order, NOT NULL.  The select => is a list of expressions only, as a
 * backfill's.  The statements are prepared here as the caller, so that a
 * mistake surfaces now.
 */
CREATE FUNCTION shift_internal.capture_create(
  name pg_catalog.text, changelog pg_catalog.regclass, source pg_catalog.regclass,
  "into" pg_catalog.regclass, key_columns pg_catalog.text[],
  columns pg_catalog.text[] DEFAULT NULL, "select" pg_catalog.text DEFAULT NULL,
  backfill pg_catalog.text DEFAULT NULL, batch_size pg_catalog.int4 DEFAULT 1000,
  gap_timeout pg_catalog.interval DEFAULT '1 hour', if_exists pg_catalog.text DEFAULT 'error',
  migration pg_catalog.text DEFAULT NULL, phase pg_catalog.text DEFAULT NULL,
  search_path pg_catalog.text DEFAULT pg_catalog.current_setting('search_path'))
RETURNS pg_catalog.text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_name CONSTANT pg_catalog.text := capture_create.name;
  who CONSTANT pg_catalog.oid := shift_internal.caller();
  path CONSTANT pg_catalog.text := shift_internal.pin_search_path(capture_create.search_path);
  old @extschema@.capture;
  c @extschema@.capture;
  missing pg_catalog.text;
  apply_sql pg_catalog.text;
  delete_sql pg_catalog.text;
  select_at pg_catalog.int4;
BEGIN
  PERFORM shift_internal._check_create('capture', v_name, 250, if_exists);
  PERFORM shift_internal._check_key_columns(format('capture "%s"', v_name), key_columns);
  IF batch_size IS NULL OR batch_size NOT BETWEEN 1 AND 100000 THEN
    RAISE EXCEPTION 'batch_size must be between 1 and 100000 (got %)', batch_size
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF gap_timeout IS NULL OR gap_timeout < interval '0' THEN
    RAISE EXCEPTION 'gap_timeout must be an interval of 0 or more (got %)', gap_timeout
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF "select" IS NOT NULL THEN
    PERFORM shift_internal._capture_check_select(v_name, "select");
  END IF;
  IF NOT (has_table_privilege(who, changelog, 'SELECT') AND has_table_privilege(who, source, 'SELECT')
          AND has_table_privilege(who, "into", 'SELECT') AND has_table_privilege(who, "into", 'INSERT')
          AND has_table_privilege(who, "into", 'UPDATE') AND has_table_privilege(who, "into", 'DELETE')) THEN
    RAISE EXCEPTION 'role "%" may not apply % to %', pg_get_userbyid(who), changelog, "into"
      USING ERRCODE = 'insufficient_privilege',
            DETAIL = 'A capture needs SELECT on its changelog and source, and SELECT, INSERT, UPDATE and DELETE on its table.';
  END IF;
  -- the columns each relation must have
  SELECT string_agg(quote_ident(x), ', ') INTO missing
    FROM unnest(ARRAY['seq', 'at'] || key_columns) x
   WHERE x <> ALL (shift_internal._capture_columns(changelog));
  IF missing IS NOT NULL THEN
    RAISE EXCEPTION 'changelog % of capture "%" has no column %', changelog, v_name, missing
      USING ERRCODE = 'undefined_column',
            DETAIL = 'A changelog has columns seq (increasing), at, and the key columns.',
            HINT = 'shift.capture_mysql_sql prints a changelog table and its triggers for MySQL.';
  END IF;
  IF (SELECT a.atttypid FROM pg_catalog.pg_attribute a
       WHERE a.attrelid = changelog AND a.attname = 'seq') NOT IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype) THEN
    RAISE EXCEPTION 'column seq of changelog % must be an integer', changelog
      USING ERRCODE = 'datatype_mismatch';
  END IF;
  SELECT string_agg(quote_ident(x), ', ') INTO missing
    FROM unnest(key_columns) x WHERE x <> ALL (shift_internal._capture_columns(source));
  IF missing IS NOT NULL THEN
    RAISE EXCEPTION 'source % of capture "%" has no column %', source, v_name, missing
      USING ERRCODE = 'undefined_column';
  END IF;
  -- a foreign table has no index to check: the key must be unique on its own
  -- server, and one column, its first (mysql_fdw deletes and updates by the
  -- first column alone: a composite key's other rows would go too)
  IF shift_internal._capture_foreign("into") AND (cardinality(key_columns) <> 1 OR
     (SELECT a.attnum FROM pg_catalog.pg_attribute a WHERE a.attrelid = "into" AND a.attname = key_columns[1]
         AND NOT a.attisdropped) IS DISTINCT FROM 1::pg_catalog.int2) THEN
    RAISE EXCEPTION 'foreign table % of capture "%" must have its key as its first column, alone', "into", v_name
      USING ERRCODE = 'invalid_object_definition',
            DETAIL = 'An FDW such as mysql_fdw writes a foreign table''s rows by its first column: the capture deletes and inserts by that key.',
            HINT = 'Declare the foreign table with the remote table''s single-column unique key first.';
  END IF;
  IF NOT shift_internal._capture_foreign("into")
     AND shift_internal._capture_key_index(v_name, "into", key_columns) IS NULL THEN
    RAISE EXCEPTION '% has no unique index on (%)', "into",
                    (SELECT string_agg(quote_ident(x), ', ' ORDER BY o) FROM unnest(key_columns) WITH ORDINALITY u(x, o))
      USING ERRCODE = 'invalid_object_definition',
            DETAIL = format('Capture "%s" finds the rows it applies by that key in both tables: a valid unique btree index whose columns are the key columns, in their order.', v_name),
            HINT = 'Name the primary key''s columns in key_columns, in its order.';
  END IF;

  c.name := v_name;
  c.changelog := changelog;
  c.source := source;
  c.into_relation := "into";
  c.key_columns := key_columns;
  c.into_columns := coalesce(columns, shift_internal._capture_copy_columns("into", source));
  c.select_list := coalesce("select", (SELECT string_agg(quote_ident(x), ', ' ORDER BY o)
                                        FROM unnest(c.into_columns) WITH ORDINALITY u(x, o)));
  c.backfill := backfill;
  c.batch_size := batch_size;
  c.gap_timeout := gap_timeout;
  c.owner := pg_get_userbyid(who);
  c.search_path := path;
  c.migration := migration;
  c.phase := phase;
  SELECT string_agg(quote_ident(x), ', ') INTO missing
    FROM unnest(key_columns) x WHERE x <> ALL (c.into_columns);
  IF missing IS NOT NULL THEN
    RAISE EXCEPTION 'the columns of capture "%" leave out key column %', v_name, missing
      USING ERRCODE = 'invalid_parameter_value';
  END IF;

  SELECT * INTO old FROM @extschema@.capture x WHERE x.name = v_name FOR UPDATE;
  IF FOUND THEN
    PERFORM shift_internal.check_owner(format('capture "%s"', v_name), old.owner);
    IF if_exists = 'reuse' AND old.changelog = c.changelog AND old.source = c.source
       AND old.into_relation = c.into_relation AND old.key_columns = c.key_columns
       AND old.into_columns = c.into_columns AND old.select_list = c.select_list
       AND old.backfill IS NOT DISTINCT FROM c.backfill AND old.owner = c.owner
       AND old.search_path = c.search_path THEN
      RETURN v_name;
    END IF;
    RAISE EXCEPTION 'capture "%" already exists%', v_name,
                    CASE WHEN if_exists = 'reuse' THEN ' with a different definition' ELSE '' END
      USING ERRCODE = 'duplicate_object',
            HINT = format('Drop it with shift.capture_drop(%L) or choose another name.', v_name);
  END IF;

  -- the triggers must be writing the changelog before the backfill fixes its
  -- bound: a row written between the bound and the triggers would be in neither
  IF backfill IS NOT NULL AND (shift_internal._capture_backfill(c)).upper_key IS NOT NULL THEN
    RAISE EXCEPTION 'backfill job "%" has started: capture "%" must be made before it', backfill, v_name
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = 'A row the source writes after the backfill fixed its bound and before the changelog''s triggers existed would be copied by neither.',
            HINT = 'Install the changelog''s triggers and create the capture first, then start the backfill; or drop the job and start it again.';
  END IF;
  -- the changelog is read once, as the caller: one the remote side lacks fails here
  PERFORM shift_internal._capture_exec(c.name, c.owner, c.search_path,
    format('SELECT 1 FROM %s LIMIT 1', c.changelog));
  -- prepare both statements as the caller: a wrong column, type or select => fails here
  -- (planned for a NULL key, which every key type reads)
  PERFORM shift_internal._capture_plan(c.name, c.owner, c.search_path,
    shift_internal._capture_read_sql(c, 'l.seq OPERATOR(pg_catalog.>) 0', 1), NULL, NULL);
  SELECT a.sql, a.select_at, a.delete_sql INTO apply_sql, select_at, delete_sql
    FROM shift_internal._capture_apply_sql(c, (SELECT jsonb_build_array(jsonb_agg('null'::jsonb))
                                                 FROM unnest(key_columns) x)) a;
  PERFORM shift_internal._capture_plan(c.name, c.owner, c.search_path, apply_sql, c.select_list, select_at);
  IF delete_sql IS NOT NULL THEN
    PERFORM shift_internal._capture_plan(c.name, c.owner, c.search_path, delete_sql, NULL, NULL);
  END IF;
  INSERT INTO @extschema@.capture (name, changelog, source, into_relation, key_columns, into_columns,
                                   select_list, backfill, batch_size, gap_timeout, owner, search_path,
                                   migration, phase)
  VALUES (c.name, c.changelog, c.source, c.into_relation, c.key_columns, c.into_columns,
          c.select_list, c.backfill, c.batch_size, c.gap_timeout, c.owner, c.search_path,
          c.migration, c.phase);
  RETURN v_name;
END
$$;
SELECT shift_internal._owner_call('capture_create');

/*
 * shift.capture_apply(name, max_batches => 1)
 *   -> (changes, keys, upserted, deleted, late, open_gaps, caught_up)
 *
 * Applies up to max_batches batches in the caller's transaction, each with
 * its checkpoint: the rows and the checkpoint commit together, or neither.
 * changes: the changelog rows applied (late: those of them found in gaps);
 * keys: the distinct keys re-read, summed over the batches; caught_up: the
 * last batch read fewer changes than batch_size.
 */
CREATE FUNCTION shift_internal.capture_apply(name pg_catalog.text, max_batches pg_catalog.int4 DEFAULT 1,
  OUT changes pg_catalog.int8, OUT keys pg_catalog.int8, OUT upserted pg_catalog.int8,
  OUT deleted pg_catalog.int8, OUT late pg_catalog.int8, OUT open_gaps pg_catalog.int8,
  OUT caught_up pg_catalog.bool)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  c @extschema@.capture;
  job @extschema@.backfill;
  gapcond pg_catalog.text;
  got pg_catalog.jsonb;
  batch pg_catalog.jsonb;
  allkeys pg_catalog.jsonb;
  res pg_catalog.text[];
  stmt record;
  i pg_catalog.int4 := 0;
  forgotten pg_catalog.int8;
  s pg_catalog.int8;
  n pg_catalog.int8;
BEGIN
  changes := 0; keys := 0; upserted := 0; deleted := 0; late := 0; caught_up := false;
  SELECT * INTO c FROM @extschema@.capture x WHERE x.name = capture_apply.name FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'capture "%" does not exist', capture_apply.name
      USING ERRCODE = 'undefined_object',
            HINT = 'SELECT name FROM shift.capture_progress lists the captures.';
  END IF;
  PERFORM shift_internal.check_owner(format('capture "%s"', c.name), c.owner);
  IF c.paused THEN
    RAISE EXCEPTION 'capture "%" is paused', c.name
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = 'A cut-over paused it: its table takes the application''s writes now, and its source is not the live side.',
            HINT = format('The cut-back resumes it; shift.capture_pause(%L, false) does by hand.', c.name);
  END IF;
  IF c.backfill IS NOT NULL THEN
    job := shift_internal._capture_backfill(c);
    IF job.state IS DISTINCT FROM 'done' THEN
      RAISE EXCEPTION 'capture "%" waits for backfill job "%" (%)', c.name, c.backfill, coalesce(job.state, 'dropped')
        USING ERRCODE = 'object_not_in_prerequisite_state',
              DETAIL = 'Changes are applied once the backfill has copied every row up to its bound.';
    END IF;
  END IF;
  IF max_batches IS NULL OR max_batches < 1 THEN
    RAISE EXCEPTION 'max_batches must be 1 or more (got %)', max_batches
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- what runs is what capture_create checked: a list of expressions only
  PERFORM shift_internal._capture_check_select(c.name, c.select_list);

  WHILE i < max_batches AND NOT caught_up LOOP
    i := i + 1;
    -- gaps that timed out are forgotten; the open ones are looked for again
    WITH f AS (DELETE FROM @extschema@.capture_gap g
                WHERE g.capture = c.name AND g.noted_at < now() - c.gap_timeout RETURNING 1)
    SELECT count(*) INTO forgotten FROM f;
    -- one-value gaps (the common kind: a rollback) as one IN list
    SELECT concat_ws(' OR ',
             'l.seq OPERATOR(pg_catalog.=) ANY (' || quote_literal(array_agg(g.lo ORDER BY g.lo)
                                                     FILTER (WHERE g.lo = g.hi)::pg_catalog.text) || ')',
             string_agg(format('(l.seq OPERATOR(pg_catalog.>=) %s AND l.seq OPERATOR(pg_catalog.<=) %s)', g.lo, g.hi),
                        ' OR ' ORDER BY g.lo) FILTER (WHERE g.lo < g.hi))
      INTO gapcond FROM @extschema@.capture_gap g WHERE g.capture = c.name;
    gapcond := nullif(gapcond, '');
    allkeys := '[]';
    IF gapcond IS NOT NULL THEN
      got := shift_internal._capture_exec(c.name, c.owner, c.search_path,
               shift_internal._capture_read_sql(c, gapcond, NULL))::jsonb;
      IF (got->>'n')::int8 > 0 THEN
        late := late + (got->>'n')::int8;
        allkeys := got->'keys';
        -- each seq found splits its gap
        FOR s IN SELECT x::pg_catalog.int8 FROM jsonb_array_elements_text(got->'seqs') x LOOP
          WITH old AS (DELETE FROM @extschema@.capture_gap g
                        WHERE g.capture = c.name AND s BETWEEN g.lo AND g.hi RETURNING g.*)
          INSERT INTO @extschema@.capture_gap (capture, lo, hi, noted_at)
          SELECT o.capture, r.lo, r.hi, o.noted_at
            FROM old o CROSS JOIN LATERAL (VALUES (o.lo, s - 1), (s + 1, o.hi)) r(lo, hi)
           WHERE r.lo <= r.hi;
        END LOOP;
      END IF;
    END IF;
    -- the batch past the checkpoint
    batch := shift_internal._capture_exec(c.name, c.owner, c.search_path,
               shift_internal._capture_read_sql(c, format('l.seq OPERATOR(pg_catalog.>) %s', c.last_seq),
                                                c.batch_size))::jsonb;
    IF (batch->>'n')::int8 > 0 THEN
      -- the values it skipped: gaps
      INSERT INTO @extschema@.capture_gap (capture, lo, hi)
      SELECT c.name, p + 1, q - 1
        FROM (SELECT x::pg_catalog.int8 AS q,
                     coalesce(lag(x::pg_catalog.int8) OVER (ORDER BY x::pg_catalog.int8), c.last_seq) AS p
                FROM jsonb_array_elements_text(batch->'seqs') x) d
       WHERE q > p + 1;
      allkeys := (SELECT jsonb_agg(DISTINCT k) FROM (SELECT jsonb_array_elements(allkeys) k
                                                      UNION ALL SELECT jsonb_array_elements(batch->'keys')) z);
    END IF;
    caught_up := (batch->>'n')::int8 < c.batch_size;
    IF jsonb_array_length(allkeys) > 0 THEN
      stmt := shift_internal._capture_apply_sql(c, allkeys);
      IF stmt.delete_sql IS NULL THEN
        res := string_to_array(shift_internal._capture_exec(c.name, c.owner, c.search_path, stmt.sql), ' ');
      ELSE
        -- a foreign table: delete the keys, then write the source's rows of them
        res[2] := shift_internal._capture_exec(c.name, c.owner, c.search_path, stmt.delete_sql);
        res[1] := shift_internal._capture_exec(c.name, c.owner, c.search_path, stmt.sql);
      END IF;
      upserted := upserted + res[1]::pg_catalog.int8;
      deleted := deleted + res[2]::pg_catalog.int8;
      keys := keys + jsonb_array_length(allkeys);
    END IF;
    n := (batch->>'n')::pg_catalog.int8 + coalesce((got->>'n')::pg_catalog.int8, 0);
    changes := changes + n;
    UPDATE @extschema@.capture x
       SET last_seq = coalesce((batch->>'max')::pg_catalog.int8, x.last_seq),
           last_change_at = coalesce(batch->>'at', x.last_change_at),
           changes = x.changes + n,
           keys = x.keys + jsonb_array_length(allkeys),
           upserted = x.upserted + coalesce(res[1]::pg_catalog.int8, 0),
           deleted = x.deleted + coalesce(res[2]::pg_catalog.int8, 0),
           late = x.late + coalesce((got->>'n')::pg_catalog.int8, 0),
           gaps_forgotten = x.gaps_forgotten + forgotten,
           batches = x.batches + 1,
           updated_at = clock_timestamp()
     WHERE x.name = c.name
    RETURNING * INTO c;
    got := NULL; res := NULL;
  END LOOP;
  SELECT count(*) INTO open_gaps FROM @extschema@.capture_gap g WHERE g.capture = c.name;
END
$$;
SELECT shift_internal._owner_call('capture_apply');

/*
 * CALL shift.capture_run(name, max_runtime => NULL, max_batches => NULL)
 *
 * Applies batches, committing after each, until the changelog is caught up
 * (or max_runtime or max_batches is reached): for pg_cron, and for the
 * runner's drain.  Must be called with CALL outside an explicit transaction.
 */
CREATE PROCEDURE @extschema@.capture_run(name pg_catalog.text,
                                         max_runtime pg_catalog.interval DEFAULT NULL,
                                         max_batches pg_catalog.int8 DEFAULT NULL)
LANGUAGE plpgsql
AS $$
DECLARE
  t0 CONSTANT pg_catalog.timestamptz := pg_catalog.clock_timestamp();
  n pg_catalog.int8 := 0;
  done pg_catalog.bool := false;
BEGIN
  WHILE NOT done
        AND (max_batches IS NULL OR n OPERATOR(pg_catalog.<) max_batches)
        AND (max_runtime IS NULL
             OR pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) t0 OPERATOR(pg_catalog.<) max_runtime) LOOP
    SELECT a.caught_up INTO done FROM @extschema@.capture_apply(name, 1) a;
    n := n OPERATOR(pg_catalog.+) 1;
    COMMIT;
  END LOOP;
END
$$;

/*
 * shift.capture_lag(name) -> (pending, remote_max_seq, oldest_pending_at)
 *
 * Asks the changelog, now, how far the capture is behind: the changes past
 * the checkpoint, the largest seq, and the "at" of the oldest change not
 * applied (as the source wrote it, in its time zone).
 */
CREATE FUNCTION shift_internal.capture_lag(name pg_catalog.text,
  OUT pending pg_catalog.int8, OUT remote_max_seq pg_catalog.int8, OUT oldest_pending_at pg_catalog.text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  c @extschema@.capture;
  r pg_catalog.jsonb;
BEGIN
  SELECT * INTO c FROM @extschema@.capture x WHERE x.name = capture_lag.name;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'capture "%" does not exist', capture_lag.name USING ERRCODE = 'undefined_object';
  END IF;
  PERFORM shift_internal.check_owner(format('capture "%s"', c.name), c.owner);
  r := shift_internal._capture_exec(c.name, c.owner, c.search_path, format(
         'SELECT pg_catalog.jsonb_build_object(''n'', pg_catalog.count(*), ''max'', pg_catalog.max(l.seq), '
         '''at'', pg_catalog.min(l.at)::pg_catalog.text) FROM %s AS l WHERE l.seq OPERATOR(pg_catalog.>) %s',
         c.changelog, c.last_seq))::jsonb;
  pending := (r->>'n')::pg_catalog.int8;
  remote_max_seq := coalesce((r->>'max')::pg_catalog.int8, c.last_seq);
  oldest_pending_at := r->>'at';
END
$$;
SELECT shift_internal._owner_call('capture_lag');

-- shift.capture_drop(name): forgets a capture (its triggers on the source
-- side are the recipe's to remove: shift.capture_mysql_sql(name, 'remove')).
CREATE FUNCTION shift_internal.capture_drop(name pg_catalog.text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  o pg_catalog.name;
BEGIN
  SELECT c.owner INTO o FROM @extschema@.capture c WHERE c.name = capture_drop.name FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'capture "%" does not exist', capture_drop.name USING ERRCODE = 'undefined_object';
  END IF;
  PERFORM shift_internal.check_owner(format('capture "%s"', capture_drop.name), o);
  DELETE FROM @extschema@.capture c WHERE c.name = capture_drop.name;
END
$$;
SELECT shift_internal._owner_call('capture_drop');

-- A MySQL identifier in backticks (a backtick doubled).
CREATE FUNCTION shift_internal.mysql_ident(x pg_catalog.text)
RETURNS pg_catalog.text
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$ SELECT '`' || replace(x, '`', '``') || '`' $$;

-- A name pg_shift derives for MySQL (a trigger's): MySQL refuses one of
-- more than 64 characters, so a longer one keeps its first 55 and a hash of
-- the whole (names made from one long table name stay apart).
CREATE FUNCTION shift_internal.mysql_name(x pg_catalog.text)
RETURNS pg_catalog.text
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE WHEN pg_catalog.char_length(x) OPERATOR(pg_catalog.<=) 64 THEN x
              ELSE pg_catalog.left(x, 55) || '_' || pg_catalog.left(pg_catalog.md5(x), 8) END
$$;

/*
 * shift.capture_mysql_sql(source_table, key_columns, changelog_table,
 *                         action => 'install', database => NULL)
 *
 * The MySQL/MariaDB script that makes (install) or drops (remove) a
 * changelog table and the three AFTER triggers on source_table that fill
 * it; key_types gives each key column's MySQL type (as the source table
 * declares it).  The install fails on triggers that exist already.  Run it
 * with the mariadb or mysql command-line client (it uses DELIMITER), as a
 * user with the TRIGGER and CREATE privileges.
 */
CREATE FUNCTION @extschema@.capture_mysql_sql(source_table pg_catalog.text, key_columns pg_catalog.text[],
                                              key_types pg_catalog.text[], changelog_table pg_catalog.text,
                                              action pg_catalog.text DEFAULT 'install',
                                              database pg_catalog.text DEFAULT NULL)
RETURNS pg_catalog.text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  db pg_catalog.text := CASE WHEN database IS NOT NULL THEN shift_internal.mysql_ident(database) || '.' ELSE '' END;
  src pg_catalog.text := db || shift_internal.mysql_ident(source_table);
  log pg_catalog.text := db || shift_internal.mysql_ident(changelog_table);
  trig pg_catalog.text;
  kcols pg_catalog.text;
  out pg_catalog.text := '';
  ev pg_catalog.text;
BEGIN
  IF key_columns IS NULL OR cardinality(key_columns) = 0 OR key_types IS NULL
     OR cardinality(key_types) <> cardinality(key_columns) THEN
    RAISE EXCEPTION 'capture_mysql_sql needs one MySQL type per key column'
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('key_columns %L, key_types %L.', key_columns, key_types);
  END IF;
  IF EXISTS (SELECT FROM unnest(key_types) t WHERE t !~ '^[A-Za-z][A-Za-z0-9_ ]*(\([0-9, ]+\))?( [A-Za-z ]+)?$') THEN
    RAISE EXCEPTION 'key_types must be MySQL type names, such as INT UNSIGNED or VARCHAR(64)'
      USING ERRCODE = 'invalid_parameter_value', DETAIL = format('They were %L.', key_types);
  END IF;
  IF action NOT IN ('install', 'remove') THEN
    RAISE EXCEPTION 'action must be install or remove, not "%"', action USING ERRCODE = 'invalid_parameter_value';
  END IF;
  kcols := (SELECT string_agg(shift_internal.mysql_ident(k), ', ' ORDER BY o) FROM unnest(key_columns) WITH ORDINALITY u(k, o));
  IF action = 'remove' THEN
    FOREACH ev IN ARRAY ARRAY['ins', 'upd', 'del'] LOOP
      out := out || format('DROP TRIGGER IF EXISTS %s;' || chr(10),
                           db || shift_internal.mysql_ident(shift_internal.mysql_name(changelog_table || '_' || ev)));
    END LOOP;
    RETURN out || format('DROP TABLE IF EXISTS %s;' || chr(10), log);
  END IF;
  out := format('CREATE TABLE IF NOT EXISTS %s (' || chr(10)
                || '  seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,' || chr(10) || '%s,' || chr(10)
                || '  kind CHAR(1) NOT NULL,' || chr(10)
                || '  at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)' || chr(10)
                || ') ENGINE=InnoDB;' || chr(10),
                log, (SELECT string_agg('  ' || shift_internal.mysql_ident(k) || ' ' || t || ' NOT NULL', ',' || chr(10) ORDER BY o)
                        FROM unnest(key_columns, key_types) WITH ORDINALITY u(k, t, o)));
  -- an UPDATE that changes the key logs the old key too.  Each INSERT is a
  -- simple one (VALUES, its row count known): InnoDB then takes exactly the
  -- seq values it uses, where INSERT ... SELECT would reserve more and leave
  -- gaps behind.  The UPDATE trigger's IF needs a compound statement, hence
  -- the client's DELIMITER.
  out := out || 'DELIMITER //' || chr(10);
  FOREACH ev IN ARRAY ARRAY['INSERT', 'UPDATE', 'DELETE'] LOOP
    trig := db || shift_internal.mysql_ident(shift_internal.mysql_name(changelog_table || '_' || lower(left(ev, 3))));
    out := out || format('CREATE TRIGGER %s AFTER %s ON %s FOR EACH ROW ', trig, ev, src);
    IF ev = 'INSERT' THEN
      out := out || format('INSERT INTO %s (%s, kind) VALUES (%s, ''I'')', log, kcols,
               (SELECT string_agg('NEW.' || shift_internal.mysql_ident(k), ', ' ORDER BY o) FROM unnest(key_columns) WITH ORDINALITY u(k, o)));
    ELSIF ev = 'DELETE' THEN
      out := out || format('INSERT INTO %s (%s, kind) VALUES (%s, ''D'')', log, kcols,
               (SELECT string_agg('OLD.' || shift_internal.mysql_ident(k), ', ' ORDER BY o) FROM unnest(key_columns) WITH ORDINALITY u(k, o)));
    ELSE
      out := out || format('BEGIN INSERT INTO %s (%s, kind) VALUES (%s, ''U''); '
                           'IF NOT (%s) THEN INSERT INTO %s (%s, kind) VALUES (%s, ''D''); END IF; END',
               log, kcols,
               (SELECT string_agg('NEW.' || shift_internal.mysql_ident(k), ', ' ORDER BY o) FROM unnest(key_columns) WITH ORDINALITY u(k, o)),
               (SELECT string_agg(format('OLD.%s <=> NEW.%s', shift_internal.mysql_ident(k), shift_internal.mysql_ident(k)), ' AND ' ORDER BY o)
                  FROM unnest(key_columns) WITH ORDINALITY u(k, o)),
               log, kcols,
               (SELECT string_agg('OLD.' || shift_internal.mysql_ident(k), ', ' ORDER BY o) FROM unnest(key_columns) WITH ORDINALITY u(k, o)));
    END IF;
    out := out || '//' || chr(10);
  END LOOP;
  out := out || 'DELIMITER ;' || chr(10);
  RETURN out;
END
$$;

CREATE VIEW @extschema@.capture_progress WITH (security_invoker = true) AS
SELECT c.name, c.changelog, c.source, c.into_relation, c.key_columns, c.backfill,
       c.last_seq, c.last_change_at, c.changes, c.keys, c.upserted, c.deleted, c.late,
       (SELECT pg_catalog.count(*) FROM @extschema@.capture_gap g
         WHERE g.capture OPERATOR(pg_catalog.=) c.name) AS open_gaps,
       c.gaps_forgotten, c.batches, c.batch_size, c.gap_timeout, c.paused, c.owner, c.migration, c.phase,
       c.created_at, c.updated_at
  FROM @extschema@.capture c;
COMMENT ON VIEW @extschema@.capture_progress IS
  'every change capture: its checkpoint (last_seq and the time the source wrote it), what was applied, open gaps; shift.capture_lag asks the source how far behind it is';
