-- ---------------------------------------------------------------------------
-- Switching a table between engines (MySQL/MariaDB and PostgreSQL) with a
-- way back: the pieces the cut-over of doc/foreign.md is made of.
--
--   * capture_log_create: a changelog on the PostgreSQL side, filled by
--     triggers on the PostgreSQL table, so that a capture (sql/capture.sql)
--     can carry PostgreSQL's writes back to the foreign table.  The changes
--     are replayed from the changelog in batches, not mirrored in the
--     application's transaction: an FDW such as mysql_fdw commits each
--     remote write at once, so a mirrored write of a transaction that then
--     rolled back would stay on the other side, and a MySQL outage would
--     stop PostgreSQL's writes.
--   * fence_writes / unfence_writes: refuse writes to a table from every
--     role but the one that fenced it (mysql_fence_sql does the same on the
--     MySQL side), so that a drain reads a changelog no one adds to.
--   * capture_forget_gaps: after the source is fenced and drained, the gaps
--     still open are transactions that rolled back.
--   * capture_compare: the capture's source, through its select =>, against
--     its table, with shift.compare.
-- ---------------------------------------------------------------------------

/*
 * The statement-level trigger of a changelog made by capture_log_create.
 * Arguments: the changelog's OID, the kind (I, U, D), the key columns.
 * Runs as the role writing the table (which capture_log_create granted
 * INSERT on the changelog); one INSERT per statement, from its transition
 * tables: an UPDATE logs each distinct key before and after (a key changed
 * by it is read again, and deleted, by the apply).
 */
CREATE FUNCTION shift_internal._capture_log()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  cols pg_catalog.text := (SELECT string_agg(quote_ident(k), ', ' ORDER BY o)
                             FROM unnest(TG_ARGV[2:TG_NARGS - 1]) WITH ORDINALITY u(k, o));
  rows pg_catalog.text;
BEGIN
  rows := CASE TG_ARGV[1]
            WHEN 'I' THEN format('SELECT %s FROM pgshift_new', cols)
            WHEN 'D' THEN format('SELECT %s FROM pgshift_old', cols)
            ELSE format('SELECT %s FROM pgshift_new UNION SELECT %s FROM pgshift_old', cols, cols)
          END;
  EXECUTE format('INSERT INTO %s (%s, kind) SELECT %s, %L FROM (%s) k',
                 TG_ARGV[0]::pg_catalog.oid::pg_catalog.regclass, cols, cols, TG_ARGV[1], rows);
  RETURN NULL;
END
$$;

/*
 * Refuses rel for pg_shift's statement triggers (a changelog, a fence) when
 * it is partitioned, a partition, or in an inheritance tree: a statement
 * trigger fires only for the table a statement names, so a write sent to a
 * partition, a parent or a child would pass it by.
 */
CREATE FUNCTION shift_internal._check_statement_triggers(rel pg_catalog.regclass, what pg_catalog.text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid = rel AND (c.relkind = 'p' OR c.relispartition))
     OR EXISTS (SELECT FROM pg_catalog.pg_inherits i WHERE rel IN (i.inhrelid, i.inhparent)) THEN
    RAISE EXCEPTION '% is partitioned, a partition, or in an inheritance tree: %', rel, what
      USING ERRCODE = 'feature_not_supported',
            DETAIL = 'pg_shift''s statement triggers see only the statements that name their table: a write sent to a partition, a parent or a child would pass them by.',
            HINT = 'Move an ordinary table.';
  END IF;
END
$$;

/*
 * The BEFORE TRUNCATE statement trigger of a changelog's table: a TRUNCATE
 * names no key, so the changelog could not carry it and the other side
 * would keep every row.  Refused (argument 0: the changelog).
 */
CREATE FUNCTION shift_internal._capture_log_truncate()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RAISE EXCEPTION 'TRUNCATE of %.% cannot be logged in its changelog %', quote_ident(TG_TABLE_SCHEMA),
                  quote_ident(TG_TABLE_NAME), TG_ARGV[0]::pg_catalog.oid::pg_catalog.regclass
    USING ERRCODE = 'feature_not_supported',
          DETAIL = 'The changelog records the key of each row a statement changes, and a TRUNCATE names none: the table it keeps current on the other engine would keep every row.',
          HINT = 'DELETE the rows (each key is logged), or drop the changelog first (shift.capture_log_drop).';
END
$$;

/*
 * shift.capture_log_create(rel, key_columns, changelog => NULL) -> regclass
 *
 * Makes changelog (default: rel's name with _pgshift_log, in rel's schema):
 * (seq identity, the key columns with rel's types, kind, at), and three
 * AFTER ... FOR EACH STATEMENT triggers on rel that write one row per key a
 * statement inserts, updates or deletes, and a fourth that refuses TRUNCATE
 * (it names no key to log).  Grants INSERT on its key columns
 * and kind (not seq, not at) to rel's owner and to every role that may
 * write rel, so their writes go on.  Runs
 * as the caller, who needs the TRIGGER privilege on rel and CREATE on its
 * schema.  An existing changelog of that name with these triggers is kept.
 */
CREATE FUNCTION @extschema@.capture_log_create(rel pg_catalog.regclass, key_columns pg_catalog.text[],
                                               changelog pg_catalog.text DEFAULT NULL)
RETURNS pg_catalog.regclass
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  nsp CONSTANT pg_catalog.name := (SELECT c.relnamespace::pg_catalog.regnamespace::pg_catalog.name
                                     FROM pg_catalog.pg_class c WHERE c.oid = rel);
  logname CONSTANT pg_catalog.text := coalesce(changelog,
                                        (SELECT c.relname FROM pg_catalog.pg_class c WHERE c.oid = rel) || '_pgshift_log');
  log pg_catalog.regclass;
  missing pg_catalog.text;
  ev pg_catalog.text;
  grantee pg_catalog.text;
BEGIN
  PERFORM shift_internal._check_key_columns(format('changelog of %s', rel), key_columns);
  IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = rel) NOT IN ('r', 'p') THEN
    RAISE EXCEPTION '% is not a table', rel
      USING ERRCODE = 'wrong_object_type',
            DETAIL = 'A changelog''s triggers go on an ordinary table.';
  END IF;
  PERFORM shift_internal._check_statement_triggers(rel, 'its changelog would miss writes');
  SELECT string_agg(quote_ident(k), ', ') INTO missing
    FROM unnest(key_columns) k
   WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a
                      WHERE a.attrelid = rel AND a.attname = k AND a.attnum > 0 AND NOT a.attisdropped);
  IF missing IS NOT NULL THEN
    RAISE EXCEPTION '% has no column %', rel, missing USING ERRCODE = 'undefined_column';
  END IF;
  log := pg_catalog.to_regclass(format('%I.%I', nsp, logname));
  IF log IS NULL THEN
    EXECUTE format('CREATE TABLE %I.%I (seq pg_catalog.int8 GENERATED ALWAYS AS IDENTITY PRIMARY KEY, %s, '
                   'kind pg_catalog.text NOT NULL, at pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp())',
                   nsp, logname,
                   (SELECT string_agg(format('%I %s%s NOT NULL', a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),
                                             CASE WHEN a.attcollation <> 0 THEN
                                               (SELECT format(' COLLATE %I.%I', n.nspname, co.collname)
                                                  FROM pg_catalog.pg_collation co
                                                  JOIN pg_catalog.pg_namespace n ON n.oid = co.collnamespace
                                                 WHERE co.oid = a.attcollation) ELSE '' END),
                                      ', ' ORDER BY o)
                      FROM unnest(key_columns) WITH ORDINALITY u(k, o)
                      JOIN pg_catalog.pg_attribute a ON a.attrelid = rel AND a.attname = u.k));
    log := format('%I.%I', nsp, logname)::pg_catalog.regclass;
  ELSIF (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = log) <> shift_internal.caller()
        OR (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = log) <> 'r' THEN
    RAISE EXCEPTION 'changelog % exists and is not a table of role "%"', log, current_user
      USING ERRCODE = 'duplicate_table',
            HINT = 'Name another changelog, or drop that table.';
  END IF;
  FOREACH ev IN ARRAY ARRAY['INSERT', 'UPDATE', 'DELETE'] LOOP
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_trigger t
                    WHERE t.tgrelid = rel AND t.tgname = 'pgshift_log_' || lower(left(ev, 3))) THEN
      EXECUTE format('CREATE TRIGGER %I AFTER %s ON %s REFERENCING %s FOR EACH STATEMENT '
                     'EXECUTE FUNCTION shift_internal._capture_log(%L, %L, %s)',
                     'pgshift_log_' || lower(left(ev, 3)), ev, rel,
                     CASE ev WHEN 'INSERT' THEN 'NEW TABLE AS pgshift_new'
                             WHEN 'DELETE' THEN 'OLD TABLE AS pgshift_old'
                             ELSE 'OLD TABLE AS pgshift_old NEW TABLE AS pgshift_new' END,
                     log::pg_catalog.oid, left(ev, 1),
                     (SELECT string_agg(quote_literal(k), ', ' ORDER BY o) FROM unnest(key_columns) WITH ORDINALITY u(k, o)));
    END IF;
  END LOOP;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_trigger t WHERE t.tgrelid = rel AND t.tgname = 'pgshift_log_tru') THEN
    EXECUTE format('CREATE TRIGGER pgshift_log_tru BEFORE TRUNCATE ON %s FOR EACH STATEMENT '
                   'EXECUTE FUNCTION shift_internal._capture_log_truncate(%L)', rel, log::pg_catalog.oid);
  END IF;
  -- whoever may write rel must be able to log: its owner and its grantees
  FOR grantee IN
    SELECT DISTINCT CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_catalog.pg_get_userbyid(x.grantee)) END
      FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) x
     WHERE c.oid = rel AND x.privilege_type IN ('INSERT', 'UPDATE', 'DELETE')
    UNION
    SELECT quote_ident(pg_catalog.pg_get_userbyid(c.relowner)) FROM pg_catalog.pg_class c WHERE c.oid = rel
  LOOP
    -- the key columns and kind only: seq and at are the changelog's (an INSERT
    -- naming seq, OVERRIDING SYSTEM VALUE, would move the checkpoint past later changes)
    EXECUTE format('GRANT INSERT (%s, kind) ON %s TO %s',
                   (SELECT string_agg(quote_ident(k), ', ' ORDER BY o) FROM unnest(key_columns) WITH ORDINALITY u(k, o)),
                   log, grantee);
  END LOOP;
  RETURN log;
END
$$;

/*
 * shift.capture_log_drop(rel, changelog => NULL): drops the triggers
 * capture_log_create made on rel and the changelog (if it is the caller's).
 */
CREATE FUNCTION @extschema@.capture_log_drop(rel pg_catalog.regclass, changelog pg_catalog.text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  log pg_catalog.regclass := pg_catalog.to_regclass(format('%I.%I',
    (SELECT c.relnamespace::pg_catalog.regnamespace::pg_catalog.name FROM pg_catalog.pg_class c WHERE c.oid = rel),
    coalesce(changelog, (SELECT c.relname FROM pg_catalog.pg_class c WHERE c.oid = rel) || '_pgshift_log')));
  ev pg_catalog.text;
BEGIN
  FOREACH ev IN ARRAY ARRAY['ins', 'upd', 'del', 'tru'] LOOP
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', 'pgshift_log_' || ev, rel);
  END LOOP;
  IF log IS NOT NULL AND (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = log) = shift_internal.caller() THEN
    EXECUTE format('DROP TABLE %s', log);
  END IF;
END
$$;

/*
 * The statement-level trigger of fence_writes: refuses the statement unless
 * the role running it is the one that fenced the table (argument 0) and it
 * is a statement of its own, not one a trigger runs: a foreign key's cascade
 * runs as the table's owner (often the fencer) on behalf of whoever wrote
 * the other table.
 */
CREATE FUNCTION shift_internal._fence_writes()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF current_user OPERATOR(pg_catalog.<>) TG_ARGV[0] OR pg_catalog.pg_trigger_depth() OPERATOR(pg_catalog.>) 1 THEN
    RAISE EXCEPTION '%', TG_ARGV[1]
      USING ERRCODE = 'read_only_sql_transaction',
            DETAIL = format('Table %s.%s is fenced by pg_shift: only role "%s" writes it now, with statements of its own (not a trigger''s, not a foreign key''s cascade).',
                            quote_ident(TG_TABLE_SCHEMA), quote_ident(TG_TABLE_NAME), TG_ARGV[0]),
            HINT = 'The application writes the other side of the migration; shift.unfence_writes lifts the fence.';
  END IF;
  RETURN NULL;
END
$$;

/*
 * shift.fence_writes(rel, message => NULL): a BEFORE INSERT, UPDATE,
 * DELETE or TRUNCATE statement trigger on rel refusing every role but the
 * caller (SQLSTATE 25006, with message).  CREATE TRIGGER waits for the
 * transactions writing rel to end: once it returns, no write of another
 * role is in flight.  Keeps a fence already there.
 */
CREATE FUNCTION @extschema@.fence_writes(rel pg_catalog.regclass, message pg_catalog.text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF EXISTS (SELECT FROM pg_catalog.pg_trigger t WHERE t.tgrelid = rel AND t.tgname = 'pgshift_fence') THEN
    RETURN;
  END IF;
  PERFORM shift_internal._check_statement_triggers(rel, 'a fence would let writes through');
  EXECUTE format('CREATE TRIGGER pgshift_fence BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s '
                 'FOR EACH STATEMENT EXECUTE FUNCTION shift_internal._fence_writes(%L, %L)',
                 rel, current_user,
                 coalesce(message, format('writes to %s are fenced by pg_shift', rel)));
END
$$;

CREATE FUNCTION @extschema@.unfence_writes(rel pg_catalog.regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  EXECUTE format('DROP TRIGGER IF EXISTS pgshift_fence ON %s', rel);
END
$$;

/*
 * shift.mysql_fence_sql(table_name, action => 'fence', exempt_user, database)
 *
 * The MySQL/MariaDB script that fences a table (BEFORE INSERT, UPDATE and
 * DELETE triggers that refuse every account but exempt_user, SQLSTATE
 * 45000) or lifts the fence (unfence).  exempt_user is the account the FDW
 * connects as, which carries PostgreSQL's changes back.  CREATE TRIGGER
 * waits for the transactions that touched the table (its metadata lock),
 * at most lock_wait_timeout seconds: once it returns, every write of
 * another account is committed or rolled back.  CREATE TRIGGER IF NOT
 * EXISTS needs MariaDB 10.1.4 or MySQL 8.0.29.
 */
CREATE FUNCTION @extschema@.mysql_fence_sql(table_name pg_catalog.text, action pg_catalog.text DEFAULT 'fence',
                                            exempt_user pg_catalog.text DEFAULT NULL,
                                            database pg_catalog.text DEFAULT NULL,
                                            lock_wait_timeout pg_catalog.int4 DEFAULT 10)
RETURNS pg_catalog.text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  db CONSTANT pg_catalog.text := CASE WHEN database IS NOT NULL THEN shift_internal.mysql_ident(database) || '.' ELSE '' END;
  msg CONSTANT pg_catalog.text := left(format('pg_shift: writes to %s are fenced; PostgreSQL serves it', table_name), 128);
  out pg_catalog.text := '';
  ev pg_catalog.text;
BEGIN
  IF action NOT IN ('fence', 'unfence') THEN
    RAISE EXCEPTION 'action must be fence or unfence, not "%"', action USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF action = 'fence' AND (exempt_user IS NULL OR exempt_user = '') THEN
    RAISE EXCEPTION 'mysql_fence_sql needs exempt_user: the account the foreign tables connect as'
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = 'The way back writes PostgreSQL''s changes to the fenced table as that account.';
  END IF;
  IF lock_wait_timeout IS NULL OR lock_wait_timeout < 1 THEN
    RAISE EXCEPTION 'lock_wait_timeout must be 1 second or more' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF action = 'unfence' THEN
    FOREACH ev IN ARRAY ARRAY['ins', 'upd', 'del'] LOOP
      out := out || format('DROP TRIGGER IF EXISTS %s;' || chr(10),
                           db || shift_internal.mysql_ident(shift_internal.mysql_name(table_name || '_pgshift_fence_' || ev)));
    END LOOP;
    RETURN out;
  END IF;
  -- the trigger's IF is a compound statement: the client's DELIMITER
  out := format('SET SESSION lock_wait_timeout = %s;' || chr(10) || 'DELIMITER //' || chr(10), lock_wait_timeout);
  FOREACH ev IN ARRAY ARRAY['INSERT', 'UPDATE', 'DELETE'] LOOP
    out := out || format('CREATE TRIGGER IF NOT EXISTS %s BEFORE %s ON %s FOR EACH ROW '
                         'IF SUBSTRING_INDEX(USER(), ''@'', 1) <> %s THEN '
                         'SIGNAL SQLSTATE ''45000'' SET MESSAGE_TEXT = %s; END IF//' || chr(10),
                         db || shift_internal.mysql_ident(shift_internal.mysql_name(table_name || '_pgshift_fence_' || lower(left(ev, 3)))),
                         ev, db || shift_internal.mysql_ident(table_name),
                         shift_internal.mysql_literal(exempt_user), shift_internal.mysql_literal(msg));
  END LOOP;
  RETURN out || 'DELIMITER ;' || chr(10);
END
$$;

/*
 * shift.mysql_next_id_sql(table_name, database => NULL): the MySQL/MariaDB
 * script whose output holds table_name's next AUTO_INCREMENT value, after
 * " ENGINE=... AUTO_INCREMENT=": SHOW CREATE TABLE asks the table itself
 * (MySQL 8 answers information_schema.TABLES from statistics cached for up
 * to a day), under an sql_mode without NO_TABLE_OPTIONS (which would leave
 * the clause out).  MySQL omits the clause while the counter is 1.
 */
CREATE FUNCTION @extschema@.mysql_next_id_sql(table_name pg_catalog.text, database pg_catalog.text DEFAULT NULL)
RETURNS pg_catalog.text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT 'SET SESSION sql_mode = '''';' || chr(10) || 'SHOW CREATE TABLE '
         || coalesce(shift_internal.mysql_ident(database) || '.', '') || shift_internal.mysql_ident(table_name)
         || ';' || chr(10)
$$;

CREATE FUNCTION shift_internal.mysql_literal(x pg_catalog.text)
RETURNS pg_catalog.text
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$ SELECT '''' || replace(replace(x, '\', '\\'), '''', '''''') || '''' $$;

/*
 * The capture of that name as the caller sees it (its own, through the
 * policy), locked if lock; an error if there is none.
 */
CREATE FUNCTION shift_internal._capture_row(name pg_catalog.text, lock pg_catalog.bool DEFAULT false)
RETURNS @extschema@.capture
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  c @extschema@.capture;
BEGIN
  IF lock THEN
    SELECT * INTO c FROM @extschema@.capture x WHERE x.name = _capture_row.name FOR UPDATE;
  ELSE
    SELECT * INTO c FROM @extschema@.capture x WHERE x.name = _capture_row.name;
  END IF;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'capture "%" does not exist', _capture_row.name
      USING ERRCODE = 'undefined_object',
            HINT = 'SELECT name FROM shift.capture_progress lists the captures.';
  END IF;
  RETURN c;
END
$$;

/*
 * shift.capture_forget_gaps(name) -> the gaps forgotten.  Once the source
 * is fenced (no write of its transactions in flight) and a batch has read
 * the gaps after that, the gaps still open are values no transaction will
 * fill (rolled back): the cut-over forgets them rather than wait for
 * gap_timeout.
 */
CREATE FUNCTION shift_internal.capture_forget_gaps(name pg_catalog.text)
RETURNS pg_catalog.int8
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  c @extschema@.capture;
  n pg_catalog.int8;
BEGIN
  c := shift_internal._capture_row(capture_forget_gaps.name, lock => true);
  PERFORM shift_internal.check_owner(format('capture "%s"', c.name), c.owner);
  WITH f AS (DELETE FROM @extschema@.capture_gap g WHERE g.capture = c.name RETURNING 1)
  SELECT count(*) INTO n FROM f;
  UPDATE @extschema@.capture x SET gaps_forgotten = x.gaps_forgotten + n, updated_at = clock_timestamp()
   WHERE x.name = c.name;
  RETURN n;
END
$$;
SELECT shift_internal._owner_call('capture_forget_gaps');

/*
 * shift.capture_compare(name, buckets => NULL) -> shift.compare's rows:
 * the capture's source read through its select => (each item cast to its
 * column's type) against its table, keyed by key_columns; no rows when
 * equal.  Runs as the caller, who must be the capture's owner (the select
 * is its SQL), under the capture's search_path.
 */
CREATE FUNCTION @extschema@.capture_compare(name pg_catalog.text, buckets pg_catalog.int4 DEFAULT NULL)
RETURNS TABLE (kind pg_catalog.text, key pg_catalog.text[], columns pg_catalog.text[])
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  c @extschema@.capture;
  items pg_catalog.text[];
BEGIN
  c := shift_internal._capture_row(capture_compare.name);
  -- the select is the owner's SQL: it runs here as the caller, so only as that role
  IF c.owner OPERATOR(pg_catalog.<>) current_user THEN
    RAISE EXCEPTION 'capture "%" belongs to role "%": only that role compares through its select', c.name, c.owner
      USING ERRCODE = 'insufficient_privilege',
            DETAIL = 'capture_compare runs the capture''s select as the role calling it: run as another role, that role would run SQL it did not write.',
            HINT = format('SET ROLE %I, then compare.', c.owner);
  END IF;
  items := (shift_internal._select_items(c.select_list)).expressions;
  IF cardinality(items) <> cardinality(c.into_columns) THEN
    RAISE EXCEPTION 'the select of capture "%" has % items for % columns', c.name,
                    cardinality(items), cardinality(c.into_columns)
      USING ERRCODE = 'datatype_mismatch';
  END IF;
  -- the types named while the path is pg_catalog's: qualified where they need it
  items := (SELECT array_agg(format('(%s)::%s', i, pg_catalog.format_type(a.atttypid, a.atttypmod)) ORDER BY o)
              FROM unnest(items, c.into_columns) WITH ORDINALITY u(i, col, o)
              JOIN pg_catalog.pg_attribute a ON a.attrelid = c.into_relation AND a.attname = u.col);
  PERFORM pg_catalog.set_config('search_path', c.search_path, true);
  RETURN QUERY
  SELECT * FROM @extschema@.compare(c.source, c.into_relation, columns => items,
    target_columns => c.into_columns, key => c.key_columns, target_key => c.key_columns,
    buckets => buckets);
END
$$;

/*
 * shift.capture_sequences(name, floor => NULL) -> (sequence, value): sets
 * each sequence that a column of the capture's table owns (serial or
 * identity) past the largest value in that column and never back; a key
 * column's also past floor (MySQL's next AUTO_INCREMENT less one: ids it
 * handed out and then lost to a rollback or a delete are not handed out
 * again).  For the
 * cut-over, once the source is fenced and drained.  Runs as the caller, who
 * needs UPDATE on the sequences.
 */
CREATE FUNCTION @extschema@.capture_sequences(name pg_catalog.text, floor pg_catalog.int8 DEFAULT NULL)
RETURNS TABLE (sequence pg_catalog.regclass, value pg_catalog.int8)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  c @extschema@.capture;
  s record;
  top pg_catalog.int8;
BEGIN
  c := shift_internal._capture_row(capture_sequences.name);
  FOR s IN
    SELECT d.objid::pg_catalog.regclass AS seq, a.attname, q.last_value, q.increment_by
      FROM pg_catalog.pg_depend d
      JOIN pg_catalog.pg_class k ON k.oid = d.objid AND k.relkind = 'S'
      JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
      JOIN pg_catalog.pg_sequences q ON q.schemaname = k.relnamespace::pg_catalog.regnamespace::pg_catalog.name
                                    AND q.sequencename = k.relname
     WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
       AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
       AND d.deptype IN ('a', 'i') AND d.refobjid = c.into_relation
     ORDER BY 1
  LOOP
    IF s.increment_by < 0 THEN
      RAISE EXCEPTION 'sequence % counts down: capture_sequences sets only ascending ones', s.seq
        USING ERRCODE = 'feature_not_supported';
    END IF;
    EXECUTE format('SELECT pg_catalog.max(%I)::pg_catalog.int8 FROM %s', s.attname, c.into_relation) INTO top;
    top := greatest(top, CASE WHEN s.attname = ANY (c.key_columns) THEN floor END, s.last_value);
    IF top IS NOT NULL THEN
      PERFORM pg_catalog.setval(s.seq, top);
    END IF;
    sequence := s.seq;
    value := top;
    RETURN NEXT;
  END LOOP;
END
$$;

/*
 * shift.capture_pause(name, paused => true): a paused capture is not
 * applied (capture_apply refuses, 55000).  The cut-over pauses the forward
 * capture once PostgreSQL takes the writes: MySQL's changelog then logs the
 * way back's own writes, and applying them would write MySQL's older rows
 * over PostgreSQL's newer ones.  The cut-back resumes it.
 */
CREATE FUNCTION shift_internal.capture_pause(name pg_catalog.text, paused pg_catalog.bool DEFAULT true)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  c @extschema@.capture := shift_internal._capture_row(capture_pause.name, lock => true);
BEGIN
  PERFORM shift_internal.check_owner(format('capture "%s"', c.name), c.owner);
  UPDATE @extschema@.capture x SET paused = capture_pause.paused, updated_at = clock_timestamp()
   WHERE x.name = c.name;
END
$$;
SELECT shift_internal._owner_call('capture_pause');
