-- ---------------------------------------------------------------------------
-- Moving tables to another cluster with PostgreSQL's logical replication
-- (online.move_tables in scripts/prelude/move.lua; design in doc/move.md).
-- The runner creates the publication, the subscription and its slot; this
-- file holds what both sides need from the database: the record of what a
-- move made (so that cleanup finds it after a crash), the prerequisite
-- check with its advice, the target tables' definitions read from the
-- source's catalogs, and the view of a move's slot and lag.
-- ---------------------------------------------------------------------------

-- shift_internal.move_name_ok(move) -> true, or the error that says what a
-- move name is: the one check of a move's name (the tables' CHECK
-- constraints and the functions that record a move call it).
CREATE FUNCTION shift_internal.move_name_ok(move pg_catalog.text)
RETURNS pg_catalog.bool
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF move IS NULL OR move OPERATOR(pg_catalog.!~) '^[a-z0-9_]{1,48}$' THEN
    RAISE EXCEPTION 'invalid move name %', coalesce(quote_literal(move), 'NULL')
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'A move name is 1 to 48 lower-case letters, digits or underscores (it names a replication slot).';
  END IF;
  RETURN true;
END
$$;

-- What a move made on this server.  A row is written before its object is
-- made and removed once it is dropped: a row without its object is what a
-- run stopped between the two left, which the next drop skips.  (A table
-- or sequence is recorded once made, in the transaction that makes it: its
-- record names one of its owner's.)
CREATE TABLE @extschema@.move_object (
  move        pg_catalog.text NOT NULL CHECK (shift_internal.move_name_ok(move)),
  kind        pg_catalog.text NOT NULL
              CHECK (kind IN ('publication', 'slot', 'subscription', 'table', 'sequence')),
  object      pg_catalog.text NOT NULL,       -- its name (schema-qualified and quoted for tables and sequences)
  side        pg_catalog.text NOT NULL CHECK (side IN ('source', 'target')),
  owner       pg_catalog.name NOT NULL,       -- made it: only it may forget it
  relid       pg_catalog.oid,                 -- a table's or sequence's, when made (its name may be reused)
  relowner    pg_catalog.name,                -- and its owner then: the move drops or empties only that
  migration   pg_catalog.text,
  phase       pg_catalog.text,
  created_at  pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now(),
  PRIMARY KEY (kind, object),
  CHECK ((kind IN ('table', 'sequence')) OPERATOR(pg_catalog.=) (relid IS NOT NULL AND relowner IS NOT NULL))
);
COMMENT ON TABLE @extschema@.move_object IS
  'what a move to another cluster made on this server (publication, slot, subscription, tables): cleanup finds it here';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.move_object', '');
ALTER TABLE @extschema@.move_object ENABLE ROW LEVEL SECURITY;
CREATE POLICY visible_to_owner ON @extschema@.move_object FOR SELECT
  USING (shift_internal.may_act(owner));
CREATE POLICY visible_to_monitor ON @extschema@.move_object FOR SELECT TO shift_monitor USING (true);

-- Each fence of a move's cut-over (direction 'forward': the source fenced,
-- the target made live; 'back': the way back), how long writes were
-- unavailable (fence_ms, on the source's clock) and the WAL position the
-- fence closed at.  The privileges it moves are rows of move_fence_grant.
-- A row whose fence_ms is NULL is a fence that began and did not end: the
-- phase's down finds the privileges to give back in its rows.
CREATE TABLE @extschema@.move_fence (
  id          pg_catalog.int8 GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  move        pg_catalog.text NOT NULL CHECK (shift_internal.move_name_ok(move)),
  direction   pg_catalog.text NOT NULL CHECK (direction IN ('forward', 'back')),
  fence_ms    pg_catalog.float8,
  lsn         pg_catalog.pg_lsn,
  owner       pg_catalog.name NOT NULL,
  started_at  pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now(),
  finished_at pg_catalog.timestamptz
);
COMMENT ON TABLE @extschema@.move_fence IS
  'each fence of a move''s cut-over or way back: how long writes were unavailable, the WAL position it closed at';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.move_fence', '');
ALTER TABLE @extschema@.move_fence ENABLE ROW LEVEL SECURITY;
CREATE POLICY visible_to_owner ON @extschema@.move_fence FOR SELECT
  USING (shift_internal.may_act(owner));
CREATE POLICY visible_to_monitor ON @extschema@.move_fence FOR SELECT TO shift_monitor USING (true);

-- The privileges a fence moves, one row each: what an application role
-- (grantee; 'public', which no role may be named, for PUBLIC) held on a
-- moved table or a sequence it owns (relation, on the source; the target's
-- has the same name), with its name and owner when the fence began: a
-- statement is made only while the relation with that OID still has both.
-- The fence revokes the write privileges on the live
-- side; the lift grants them (or all of them) on the side made live.  The
-- statements are built from these typed rows (move_fence_statements),
-- never from text.
CREATE TABLE @extschema@.move_fence_grant (
  fence       pg_catalog.int8 NOT NULL REFERENCES @extschema@.move_fence (id) ON DELETE CASCADE,
  relation    pg_catalog.regclass NOT NULL,
  relname     pg_catalog.text NOT NULL,       -- its quoted qualified name then (its OID may be reused)
  relowner    pg_catalog.name NOT NULL,       -- and its owner then
  grantee     pg_catalog.name NOT NULL,
  privilege   pg_catalog.text NOT NULL
              CHECK (privilege IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER',
                                   'USAGE')),
  owner       pg_catalog.name NOT NULL,       -- the fence's
  PRIMARY KEY (fence, relation, grantee, privilege)
);
COMMENT ON TABLE @extschema@.move_fence_grant IS
  'the privileges each fence of a move moves: relation, role, privilege';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.move_fence_grant', '');
ALTER TABLE @extschema@.move_fence_grant ENABLE ROW LEVEL SECURITY;
CREATE POLICY visible_to_owner ON @extschema@.move_fence_grant FOR SELECT
  USING (shift_internal.may_act(owner));
CREATE POLICY visible_to_monitor ON @extschema@.move_fence_grant FOR SELECT TO shift_monitor USING (true);

-- shift_internal._move_claim(move): move is a valid name that no role but
-- the caller has recorded anything under: a move's name, with its records
-- and fences, is one role's exactly.  Not "a role the caller may act for":
-- a superuser may act for everyone, and would otherwise adopt what another
-- role recorded under the name (a fence of that role's tables, say).
-- Waits for another transaction claiming the same name.
CREATE FUNCTION shift_internal._move_claim(move pg_catalog.text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  me pg_catalog.name := pg_catalog.pg_get_userbyid(shift_internal.caller());
  other pg_catalog.name;
BEGIN
  PERFORM shift_internal.move_name_ok(move);
  PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('pg_shift move'), pg_catalog.hashtext(move));
  SELECT x.owner INTO other
    FROM (SELECT o.owner FROM @extschema@.move_object o WHERE o.move OPERATOR(pg_catalog.=) _move_claim.move
          UNION
          SELECT f.owner FROM @extschema@.move_fence f WHERE f.move OPERATOR(pg_catalog.=) _move_claim.move) x
   WHERE x.owner OPERATOR(pg_catalog.<>) me
   ORDER BY x.owner LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'move % belongs to role "%"', move, other
      USING ERRCODE = 'insufficient_privilege',
            DETAIL = format('A move''s name is one role''s: role "%s" recorded objects or fences under it; role "%s" may not add to them, superuser or not.',
                            other, me),
            HINT = format('Give this move another name, or act as "%s" (SET ROLE, or connect as it).', other);
  END IF;
END
$$;

-- shift.move_record(move, kind, object, side, migration, phase): records an
-- object a move is about to make (again: the same row is kept); a table or
-- sequence once made, one of the caller's.
CREATE FUNCTION shift_internal.move_record(move pg_catalog.text, kind pg_catalog.text,
  object pg_catalog.text, side pg_catalog.text, migration pg_catalog.text DEFAULT NULL,
  phase pg_catalog.text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  o @extschema@.move_object;
  c pg_catalog.pg_class;
BEGIN
  PERFORM shift_internal._move_claim(move);
  IF kind IN ('table', 'sequence') THEN
    SELECT * INTO c FROM pg_catalog.pg_class k WHERE k.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(object);
    IF NOT FOUND THEN
      RAISE EXCEPTION '% % does not exist', kind, object
        USING ERRCODE = 'undefined_table',
              HINT = 'A move records a table or sequence once it has made it, in the same transaction.';
    END IF;
    IF (kind OPERATOR(pg_catalog.=) 'table') OPERATOR(pg_catalog.<>) (c.relkind OPERATOR(pg_catalog.=) 'r')
       OR (kind OPERATOR(pg_catalog.=) 'sequence') OPERATOR(pg_catalog.<>) (c.relkind OPERATOR(pg_catalog.=) 'S') THEN
      RAISE EXCEPTION '% is not a %', object, kind
        USING ERRCODE = 'wrong_object_type';
    END IF;
    -- the caller's own, not one of a role it may act for: the move drops it
    IF c.relowner OPERATOR(pg_catalog.<>) shift_internal.caller() THEN
      RAISE EXCEPTION '% % belongs to role "%"', kind, object, pg_catalog.pg_get_userbyid(c.relowner)
        USING ERRCODE = 'insufficient_privilege',
              DETAIL = format('A move records only a table or sequence of its own role ("%s"), which made it.',
                              shift_internal.caller());
    END IF;
  END IF;
  SELECT * INTO o FROM @extschema@.move_object x
   WHERE x.kind OPERATOR(pg_catalog.=) move_record.kind
     AND x.object OPERATOR(pg_catalog.=) move_record.object FOR UPDATE;
  IF FOUND THEN
    PERFORM shift_internal.check_owner(format('%s %s', o.kind, o.object), o.owner);
    IF o.move OPERATOR(pg_catalog.<>) move_record.move THEN
      RAISE EXCEPTION '% % is recorded for move "%", not "%"', o.kind, o.object, o.move, move_record.move
        USING ERRCODE = 'duplicate_object',
              HINT = 'Roll that move back first, or give this move another name.';
    END IF;
    -- a table or sequence made again: the record names the new one
    UPDATE @extschema@.move_object x SET relid = c.oid, relowner = pg_catalog.pg_get_userbyid(c.relowner)
     WHERE x.kind OPERATOR(pg_catalog.=) move_record.kind
       AND x.object OPERATOR(pg_catalog.=) move_record.object AND c.oid IS NOT NULL;
    RETURN;
  END IF;
  INSERT INTO @extschema@.move_object (move, kind, object, side, owner, relid, relowner, migration, phase)
  VALUES (move_record.move, move_record.kind, move_record.object, move_record.side,
          pg_catalog.pg_get_userbyid(shift_internal.caller()), c.oid, pg_catalog.pg_get_userbyid(c.relowner),
          move_record.migration, move_record.phase);
END
$$;
SELECT shift_internal._owner_call('move_record');

-- shift.move_forget(kind, object): the object was dropped (or never made).
CREATE FUNCTION shift_internal.move_forget(kind pg_catalog.text, object pg_catalog.text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  o @extschema@.move_object;
BEGIN
  SELECT * INTO o FROM @extschema@.move_object x
   WHERE x.kind OPERATOR(pg_catalog.=) move_forget.kind
     AND x.object OPERATOR(pg_catalog.=) move_forget.object FOR UPDATE;
  IF FOUND THEN
    PERFORM shift_internal.check_owner(format('%s %s', o.kind, o.object), o.owner);
    DELETE FROM @extschema@.move_object x
     WHERE x.kind OPERATOR(pg_catalog.=) move_forget.kind
       AND x.object OPERATOR(pg_catalog.=) move_forget.object;
  END IF;
END
$$;
SELECT shift_internal._owner_call('move_forget');

/*
 * shift.move_target_table(t) -> what a move to this server, the target, may
 * do with what is at a moved table's name t (schema-qualified): decision
 * 'absent' (the schema phase makes the table), 'keep' (the schema phase
 * keeps it as it is: an ordinary empty table of the caller's own, role
 * and not a role it is a member of, with nothing that runs code) or
 * 'refuse', with what is there (current) and what to do (advice).  The one
 * decision of the check (shift.move_check) and the schema phase.  A table
 * kept is written by the subscription's apply worker, which runs as the
 * subscription's owner (a superuser on PostgreSQL 15), and the cut-over
 * grants the application's privileges on it: so no triggers, rules or
 * row-level security policies, and no index, constraint or default whose
 * expression calls a function or operator outside pg_catalog.  Nothing of a
 * table refused is read.
 */
CREATE FUNCTION @extschema@.move_target_table(t pg_catalog.text)
RETURNS TABLE (decision pg_catalog.text, current pg_catalog.text, advice pg_catalog.text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  me pg_catalog.oid := shift_internal.caller();
  rel pg_catalog.oid := pg_catalog.to_regclass(t);
  c pg_catalog.pg_class;
  what pg_catalog.text;
  has_rows pg_catalog.bool;
BEGIN
  IF rel IS NULL THEN
    RETURN QUERY SELECT 'absent', NULL::pg_catalog.text, NULL::pg_catalog.text;
    RETURN;
  END IF;
  SELECT * INTO c FROM pg_catalog.pg_class x WHERE x.oid OPERATOR(pg_catalog.=) rel;
  IF c.relkind OPERATOR(pg_catalog.<>) 'r' OR c.relowner OPERATOR(pg_catalog.<>) me THEN
    RETURN QUERY SELECT 'refuse',
      format('exists on the target as relkind %s of role %s', c.relkind, pg_catalog.pg_get_userbyid(c.relowner)),
      format('the move makes a table there, or keeps an empty one of the role running it (%s): drop or rename %s on the target',
             pg_catalog.pg_get_userbyid(me), rel::pg_catalog.regclass);
    RETURN;
  END IF;
  SELECT pg_catalog.string_agg(w, ', ' ORDER BY w) INTO what FROM (
    SELECT DISTINCT format('trigger %I', g.tgname) AS w FROM pg_catalog.pg_trigger g
     WHERE g.tgrelid OPERATOR(pg_catalog.=) rel AND NOT g.tgisinternal
    UNION
    SELECT format('rule %I', r.rulename) FROM pg_catalog.pg_rewrite r
     WHERE r.ev_class OPERATOR(pg_catalog.=) rel
    UNION
    SELECT format('policy %I', p.polname) FROM pg_catalog.pg_policy p
     WHERE p.polrelid OPERATOR(pg_catalog.=) rel
    UNION
    SELECT 'row level security' WHERE c.relrowsecurity
    UNION
    -- what the expressions of its indexes, constraints and defaults call
    SELECT format('%s calls %s', pg_catalog.pg_describe_object(d.classid, d.objid, 0),
                  pg_catalog.pg_describe_object(d.refclassid, d.refobjid, 0))
      FROM pg_catalog.pg_depend d
      LEFT JOIN pg_catalog.pg_proc f ON d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
                                    AND f.oid OPERATOR(pg_catalog.=) d.refobjid
      LEFT JOIN pg_catalog.pg_operator o ON d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_operator'::pg_catalog.regclass
                                        AND o.oid OPERATOR(pg_catalog.=) d.refobjid
     WHERE ((d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
             AND d.objid IN (SELECT i.indexrelid FROM pg_catalog.pg_index i WHERE i.indrelid OPERATOR(pg_catalog.=) rel))
         OR (d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_constraint'::pg_catalog.regclass
             AND d.objid IN (SELECT k.oid FROM pg_catalog.pg_constraint k WHERE k.conrelid OPERATOR(pg_catalog.=) rel))
         OR (d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_attrdef'::pg_catalog.regclass
             AND d.objid IN (SELECT a.oid FROM pg_catalog.pg_attrdef a WHERE a.adrelid OPERATOR(pg_catalog.=) rel)))
       AND coalesce(f.pronamespace, o.oprnamespace) OPERATOR(pg_catalog.<>) 'pg_catalog'::pg_catalog.regnamespace) x;
  IF what IS NOT NULL THEN
    RETURN QUERY SELECT 'refuse', format('exists on the target with %s', what),
      format('the subscription''s apply worker would run them as its owner: drop the table on the target and let the move make it, or drop %s',
             what);
    RETURN;
  END IF;
  EXECUTE format('SELECT EXISTS (SELECT FROM %s)', rel::pg_catalog.regclass) INTO has_rows;
  IF has_rows THEN
    RETURN QUERY SELECT 'refuse', 'exists on the target and has rows',
      format('the initial copy would add to them: empty it (TRUNCATE %s) or drop it, on the target', rel::pg_catalog.regclass);
    RETURN;
  END IF;
  RETURN QUERY SELECT 'keep', 'exists on the target, empty', 'kept as it is';
END
$$;

/*
 * shift.move_check(side, tables) -> one row per problem that stops a move
 * of tables (names as the source resolves them, schema-qualified) from
 * this server, the source, or to it, the target: what, its current value,
 * and what to change.  No row: nothing stops it.  "need" is one
 * replication slot, WAL sender or worker for the subscription plus one per
 * table copied at once (max_sync_workers_per_subscription of this server).
 */
CREATE FUNCTION @extschema@.move_check(side pg_catalog.text, tables pg_catalog.text[])
RETURNS TABLE (item pg_catalog.text, current pg_catalog.text, advice pg_catalog.text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  need pg_catalog.int4 := 1 OPERATOR(pg_catalog.+) least(coalesce(cardinality(tables), 0),
                            current_setting('max_sync_workers_per_subscription')::pg_catalog.int4);
  me pg_catalog.pg_roles;
  setting pg_catalog.int4;
  used pg_catalog.int4;
  t pg_catalog.text;
  rel pg_catalog.oid;
  c pg_catalog.pg_class;
  part pg_catalog.text[];
  fk pg_catalog.record;
BEGIN
  IF side IS NULL OR side NOT IN ('source', 'target') THEN
    RAISE EXCEPTION 'side must be ''source'' or ''target'', not %', coalesce(quote_literal(side), 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF coalesce(cardinality(tables), 0) OPERATOR(pg_catalog.=) 0 THEN
    RAISE EXCEPTION 'no tables to move' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT * INTO me FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) current_user;

  IF side OPERATOR(pg_catalog.=) 'source' THEN
    IF current_setting('wal_level') OPERATOR(pg_catalog.<>) 'logical' THEN
      RETURN QUERY SELECT 'wal_level', current_setting('wal_level'),
        format('set wal_level = logical in postgresql.conf (or ALTER SYSTEM SET wal_level = logical) and restart the server');
    END IF;
    setting := current_setting('max_replication_slots')::pg_catalog.int4;
    SELECT count(*) INTO used FROM pg_catalog.pg_replication_slots;
    IF setting OPERATOR(pg_catalog.-) used OPERATOR(pg_catalog.<) need THEN
      RETURN QUERY SELECT 'max_replication_slots', format('%s (%s in use)', setting, used),
        format('the move needs %s free (one for the subscription, one per table copied at once): set max_replication_slots = %s in postgresql.conf and restart the server',
               need, used OPERATOR(pg_catalog.+) need);
    END IF;
    setting := current_setting('max_wal_senders')::pg_catalog.int4;
    SELECT count(*) INTO used FROM pg_catalog.pg_stat_activity a
     WHERE a.backend_type OPERATOR(pg_catalog.=) 'walsender';
    IF setting OPERATOR(pg_catalog.-) used OPERATOR(pg_catalog.<) need THEN
      RETURN QUERY SELECT 'max_wal_senders', format('%s (%s in use)', setting, used),
        format('the move needs %s free (one for the subscription, one per table copied at once): set max_wal_senders = %s in postgresql.conf and restart the server',
               need, used OPERATOR(pg_catalog.+) need);
    END IF;
    IF NOT (me.rolsuper OR me.rolreplication) THEN
      RETURN QUERY SELECT 'replication privilege', format('role %I has neither REPLICATION nor SUPERUSER', current_user),
        format('ALTER ROLE %I REPLICATION; (the role the subscription connects as needs it: this one unless source_conninfo names another)',
               current_user);
    END IF;
    IF NOT me.rolsuper AND NOT has_database_privilege(current_database(), 'CREATE') THEN
      RETURN QUERY SELECT 'create publication', format('role %I may not create in database %I', current_user, current_database()),
        format('GRANT CREATE ON DATABASE %I TO %I;', current_database(), current_user);
    END IF;
    FOREACH t IN ARRAY tables LOOP
      rel := to_regclass(t);
      IF rel IS NULL THEN
        RETURN QUERY SELECT format('table %s', t), 'does not exist', 'check the name (schema-qualified) of the table to move';
        CONTINUE;
      END IF;
      SELECT * INTO c FROM pg_catalog.pg_class k WHERE k.oid OPERATOR(pg_catalog.=) rel;
      IF c.relkind OPERATOR(pg_catalog.<>) 'r' OR c.relpersistence OPERATOR(pg_catalog.<>) 'p' THEN
        RETURN QUERY SELECT format('table %s', t),
          format('relkind %s, persistence %s', c.relkind, c.relpersistence),
          'only ordinary logged tables can be moved (a partitioned table: move its partitions; an unlogged one: ALTER TABLE ... SET LOGGED)';
        CONTINUE;
      END IF;
      IF NOT pg_has_role(c.relowner, 'USAGE') THEN
        RETURN QUERY SELECT format('table %s', t), format('owned by %I', pg_get_userbyid(c.relowner)),
          format('CREATE PUBLICATION ... FOR TABLE needs its owner: run the move as %I (or a member of it) or a superuser',
                 pg_get_userbyid(c.relowner));
      END IF;
      IF c.relreplident OPERATOR(pg_catalog.=) 'n'
         OR (c.relreplident OPERATOR(pg_catalog.=) 'd' AND NOT EXISTS (
               SELECT FROM pg_catalog.pg_index i WHERE i.indrelid OPERATOR(pg_catalog.=) rel AND i.indisprimary)) THEN
        RETURN QUERY SELECT format('table %s', t),
          CASE WHEN c.relreplident OPERATOR(pg_catalog.=) 'n' THEN 'REPLICA IDENTITY NOTHING'
               ELSE 'no primary key and no REPLICA IDENTITY' END,
          format('once published, its UPDATEs and DELETEs fail: add a primary key, or ALTER TABLE %s REPLICA IDENTITY USING INDEX <a unique index on NOT NULL columns> (or REPLICA IDENTITY FULL: every update scans the table on the target)',
                 rel::pg_catalog.regclass);
      END IF;
      FOR fk IN SELECT k.conname, k.confrelid::pg_catalog.regclass AS referenced
                  FROM pg_catalog.pg_constraint k
                 WHERE k.conrelid OPERATOR(pg_catalog.=) rel AND k.contype OPERATOR(pg_catalog.=) 'f'
                   AND k.confrelid OPERATOR(pg_catalog.<>) ALL (
                         SELECT to_regclass(x) FROM pg_catalog.unnest(tables) x WHERE to_regclass(x) IS NOT NULL)
      LOOP
        RETURN QUERY SELECT format('table %s', t), format('foreign key %I references %s', fk.conname, fk.referenced),
          format('move %s too (add it to the tables), or drop the foreign key first: the target would have nothing to reference', fk.referenced);
      END LOOP;
    END LOOP;
    RETURN;
  END IF;

  -- the target
  IF current_setting('server_version_num')::pg_catalog.int4 OPERATOR(pg_catalog.<) 160000 AND NOT me.rolsuper THEN
    RETURN QUERY SELECT 'superuser', format('role %I is not a superuser', current_user),
      'CREATE SUBSCRIPTION needs a superuser on PostgreSQL 15: connect to the target as one';
  END IF;
  setting := current_setting('max_logical_replication_workers')::pg_catalog.int4;
  SELECT count(*) INTO used FROM pg_catalog.pg_stat_subscription s WHERE s.pid IS NOT NULL;
  IF setting OPERATOR(pg_catalog.-) used OPERATOR(pg_catalog.<) need THEN
    RETURN QUERY SELECT 'max_logical_replication_workers', format('%s (%s in use)', setting, used),
      format('the move needs %s free (one apply worker, one per table copied at once): set max_logical_replication_workers = %s in postgresql.conf and restart the server',
             need, used OPERATOR(pg_catalog.+) need);
  END IF;
  -- background workers of every kind come out of max_worker_processes
  SELECT count(*) INTO used FROM pg_catalog.pg_stat_activity a
   WHERE a.backend_type NOT IN ('client backend', 'autovacuum launcher', 'autovacuum worker', 'background writer',
                                'checkpointer', 'walwriter', 'archiver', 'startup', 'walreceiver', 'walsender',
                                'logger', 'standalone backend');
  setting := current_setting('max_worker_processes')::pg_catalog.int4;
  IF setting OPERATOR(pg_catalog.-) used OPERATOR(pg_catalog.<) need THEN
    RETURN QUERY SELECT 'max_worker_processes', format('%s (%s background workers running)', setting, used),
      format('the move needs %s more background workers: set max_worker_processes = %s in postgresql.conf and restart the server',
             need, used OPERATOR(pg_catalog.+) need);
  END IF;
  -- a subscription and each table copy take a replication origin, limited by max_replication_slots
  setting := current_setting('max_replication_slots')::pg_catalog.int4;
  SELECT count(*) INTO used FROM pg_catalog.pg_replication_origin;
  IF setting OPERATOR(pg_catalog.-) used OPERATOR(pg_catalog.<) need THEN
    RETURN QUERY SELECT 'max_replication_slots', format('%s (%s replication origins in use)', setting, used),
      format('on the subscriber it limits replication origins; the move needs %s free: set max_replication_slots = %s in postgresql.conf and restart the server',
             need, used OPERATOR(pg_catalog.+) need);
  END IF;
  FOREACH t IN ARRAY tables LOOP
    rel := to_regclass(t);
    IF rel IS NULL THEN
      part := parse_ident(t);
      IF cardinality(part) OPERATOR(pg_catalog.>) 1 AND to_regnamespace(quote_ident(part[1])) IS NULL THEN
        RETURN QUERY SELECT format('schema %I', part[1]), 'does not exist',
          format('CREATE SCHEMA %I; on the target (the table keeps its schema)', part[1]);
      END IF;
      CONTINUE;                   -- absent: the schema phase makes it
    END IF;
    -- kept only if it is an empty plain table of the caller's own with
    -- nothing that runs code (a view, a foreign table or another role's
    -- table is not read: that would run its author's code here)
    RETURN QUERY SELECT format('table %s', t), k.current, k.advice
      FROM @extschema@.move_target_table(t) k WHERE k.decision OPERATOR(pg_catalog.=) 'refuse';
  END LOOP;
END
$$;

/*
 * shift.move_schema(tables) -> the statements that make the tables
 * (schema-qualified names) on another server as they are here, in order:
 * the sequences their columns use, the tables (columns, types, collations,
 * defaults, identity, NOT NULL, generated columns), their primary key,
 * unique, check and exclusion constraints, their other indexes, the
 * foreign keys between them, their replica identity, and which column owns
 * each sequence.  kind and object name what a statement makes (object is
 * the quoted qualified name of a table or sequence).  Nothing is made
 * here; triggers, rules, policies and grants are not carried.
 */
CREATE FUNCTION @extschema@.move_schema(tables pg_catalog.text[])
RETURNS TABLE (ordinal pg_catalog.int4, kind pg_catalog.text, object pg_catalog.text, statement pg_catalog.text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
-- constants in defaults and checks print as the other server reads them back
SET DateStyle = 'ISO, YMD'
SET IntervalStyle = 'postgres'
SET extra_float_digits = 3
AS $$
DECLARE
  rels pg_catalog.oid[];
  t pg_catalog.text;
BEGIN
  FOREACH t IN ARRAY tables LOOP
    IF to_regclass(t) IS NULL THEN
      RAISE EXCEPTION 'table % does not exist', t USING ERRCODE = 'undefined_table';
    END IF;
    rels := rels OPERATOR(pg_catalog.||) to_regclass(t)::pg_catalog.oid;
  END LOOP;
  RETURN QUERY
  WITH moved AS (
    SELECT k.oid, format('%I.%I', n.nspname, k.relname) AS name, k.relreplident, x.ord
      FROM pg_catalog.unnest(rels) WITH ORDINALITY x(oid, ord)
      JOIN pg_catalog.pg_class k ON k.oid OPERATOR(pg_catalog.=) x.oid
      JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) k.relnamespace),
  -- sequences owned by a moved column (not identity ones) or used by a default
  seqs AS (
    SELECT d.objid AS seq FROM pg_catalog.pg_depend d JOIN moved m ON d.refobjid OPERATOR(pg_catalog.=) m.oid
     WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
       AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
       AND d.deptype OPERATOR(pg_catalog.=) 'a'
       AND (SELECT relkind FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) d.objid) OPERATOR(pg_catalog.=) 'S'
    UNION
    SELECT d.refobjid FROM pg_catalog.pg_attrdef ad JOIN moved m ON ad.adrelid OPERATOR(pg_catalog.=) m.oid
      JOIN pg_catalog.pg_depend d ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_attrdef'::pg_catalog.regclass
                                 AND d.objid OPERATOR(pg_catalog.=) ad.oid
                                 AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
     WHERE (SELECT relkind FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) d.refobjid) OPERATOR(pg_catalog.=) 'S'),
  stmts AS (
    -- 1: sequences
    SELECT 1 AS step, 0::pg_catalog.int8 AS ord, format('%I.%I', n.nspname, k.relname) AS name, 'sequence' AS what,
           format('CREATE SEQUENCE %I.%I AS %s INCREMENT BY %s MINVALUE %s MAXVALUE %s START WITH %s CACHE %s %s',
                  n.nspname, k.relname, format_type(s.seqtypid, NULL), s.seqincrement, s.seqmin, s.seqmax,
                  s.seqstart, s.seqcache, CASE WHEN s.seqcycle THEN 'CYCLE' ELSE 'NO CYCLE' END) AS sql
      FROM seqs JOIN pg_catalog.pg_sequence s ON s.seqrelid OPERATOR(pg_catalog.=) seqs.seq
      JOIN pg_catalog.pg_class k ON k.oid OPERATOR(pg_catalog.=) seqs.seq
      JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) k.relnamespace
    UNION ALL
    -- 2: tables
    SELECT 2, m.ord, m.name, 'table',
           format('CREATE TABLE %s (%s)', m.name, (
             SELECT string_agg(format('%I %s', a.attname, format_type(a.atttypid, a.atttypmod))
                    OPERATOR(pg_catalog.||) CASE WHEN a.attcollation OPERATOR(pg_catalog.<>) ty.typcollation
                         THEN format(' COLLATE %I.%I', cn.nspname, co.collname) ELSE '' END
                    OPERATOR(pg_catalog.||) CASE
                         WHEN a.attgenerated OPERATOR(pg_catalog.=) 's'
                           THEN format(' GENERATED ALWAYS AS (%s) STORED', pg_get_expr(ad.adbin, ad.adrelid))
                         WHEN ad.adbin IS NOT NULL THEN format(' DEFAULT %s', pg_get_expr(ad.adbin, ad.adrelid))
                         ELSE '' END
                    OPERATOR(pg_catalog.||) CASE a.attidentity WHEN 'a' THEN ' GENERATED ALWAYS AS IDENTITY'
                         WHEN 'd' THEN ' GENERATED BY DEFAULT AS IDENTITY' ELSE '' END
                    OPERATOR(pg_catalog.||) CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END,
                    ', ' ORDER BY a.attnum)
               FROM pg_catalog.pg_attribute a
               JOIN pg_catalog.pg_type ty ON ty.oid OPERATOR(pg_catalog.=) a.atttypid
               LEFT JOIN pg_catalog.pg_collation co ON co.oid OPERATOR(pg_catalog.=) a.attcollation
               LEFT JOIN pg_catalog.pg_namespace cn ON cn.oid OPERATOR(pg_catalog.=) co.collnamespace
               LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid OPERATOR(pg_catalog.=) a.attrelid
                                                 AND ad.adnum OPERATOR(pg_catalog.=) a.attnum
              WHERE a.attrelid OPERATOR(pg_catalog.=) m.oid AND a.attnum OPERATOR(pg_catalog.>) 0
                AND NOT a.attisdropped))
      FROM moved m
    UNION ALL
    -- 3: constraints but foreign keys
    SELECT 3, m.ord, m.name, 'constraint',
           format('ALTER TABLE %s ADD CONSTRAINT %I %s', m.name, k.conname, pg_get_constraintdef(k.oid))
      FROM moved m JOIN pg_catalog.pg_constraint k ON k.conrelid OPERATOR(pg_catalog.=) m.oid
     WHERE k.contype IN ('p', 'u', 'c', 'x')
    UNION ALL
    -- 4: the other indexes
    SELECT 4, m.ord, m.name, 'index', pg_get_indexdef(i.indexrelid)
      FROM moved m JOIN pg_catalog.pg_index i ON i.indrelid OPERATOR(pg_catalog.=) m.oid
     WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_constraint k WHERE k.conindid OPERATOR(pg_catalog.=) i.indexrelid
                          AND k.conrelid OPERATOR(pg_catalog.=) m.oid)
    UNION ALL
    -- 5: foreign keys between moved tables
    SELECT 5, m.ord, m.name, 'foreign key',
           format('ALTER TABLE %s ADD CONSTRAINT %I %s', m.name, k.conname, pg_get_constraintdef(k.oid))
      FROM moved m JOIN pg_catalog.pg_constraint k ON k.conrelid OPERATOR(pg_catalog.=) m.oid
     WHERE k.contype OPERATOR(pg_catalog.=) 'f' AND k.confrelid OPERATOR(pg_catalog.=) ANY (rels)
    UNION ALL
    -- 6: replica identity other than the primary key
    SELECT 6, m.ord, m.name, 'replica identity',
           format('ALTER TABLE %s REPLICA IDENTITY %s', m.name,
                  CASE m.relreplident WHEN 'f' THEN 'FULL' WHEN 'n' THEN 'NOTHING'
                       ELSE (SELECT format('USING INDEX %I', ic.relname) FROM pg_catalog.pg_index i
                               JOIN pg_catalog.pg_class ic ON ic.oid OPERATOR(pg_catalog.=) i.indexrelid
                              WHERE i.indrelid OPERATOR(pg_catalog.=) m.oid AND i.indisreplident) END)
      FROM moved m WHERE m.relreplident IN ('f', 'n', 'i')
    UNION ALL
    -- 7: which column owns each sequence
    SELECT 7, m.ord, format('%I.%I', n.nspname, k.relname), 'owned by',
           format('ALTER SEQUENCE %I.%I OWNED BY %s.%I', n.nspname, k.relname, m.name, a.attname)
      FROM moved m JOIN pg_catalog.pg_depend d ON d.refobjid OPERATOR(pg_catalog.=) m.oid
      JOIN pg_catalog.pg_class k ON k.oid OPERATOR(pg_catalog.=) d.objid
      JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) k.relnamespace
      JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) m.oid
                                    AND a.attnum OPERATOR(pg_catalog.=) d.refobjsubid
     WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
       AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
       AND d.deptype OPERATOR(pg_catalog.=) 'a' AND k.relkind OPERATOR(pg_catalog.=) 'S')
  SELECT (row_number() OVER (ORDER BY s.step, s.ord, s.sql))::pg_catalog.int4, s.what, s.name, s.sql
    FROM stmts s
   ORDER BY 1;
END
$$;

-- What moves made on this server, and whether each is there now (a record
-- without its object: a run stopped between the two; the next drop skips
-- it).  relation: a table or sequence's quoted name if what is at its name
-- is still the one the move made (the same OID, owned by the same role),
-- else NULL (dropped, or dropped and made again outside the move: not the
-- move's to drop or empty).  What the runner reads (it reads no control
-- table).
CREATE VIEW @extschema@.move_objects WITH (security_invoker = true) AS
SELECT o.move, o.kind, o.object, o.side, o.owner, o.migration, o.phase, o.created_at,
       (SELECT pg_catalog.format('%I.%I', n.nspname, k.relname)
          FROM pg_catalog.pg_class k JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) k.relnamespace
         WHERE k.oid OPERATOR(pg_catalog.=) o.relid
           AND k.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(o.object)
           AND pg_catalog.pg_get_userbyid(k.relowner) OPERATOR(pg_catalog.=) o.relowner) AS relation,
       CASE o.kind
         WHEN 'publication' THEN EXISTS (SELECT FROM pg_catalog.pg_publication p
                                          WHERE p.pubname OPERATOR(pg_catalog.=) o.object)
         WHEN 'slot' THEN EXISTS (SELECT FROM pg_catalog.pg_replication_slots s
                                   WHERE s.slot_name OPERATOR(pg_catalog.=) o.object)
         WHEN 'subscription' THEN EXISTS (SELECT FROM pg_catalog.pg_subscription s
                                           JOIN pg_catalog.pg_database d ON d.oid OPERATOR(pg_catalog.=) s.subdbid
                                          WHERE s.subname OPERATOR(pg_catalog.=) o.object
                                            AND d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())
         ELSE pg_catalog.to_regclass(o.object) IS NOT NULL
       END AS present
  FROM @extschema@.move_object o;
COMMENT ON VIEW @extschema@.move_objects IS
  'what moves to another cluster made on this server, and whether each is there now';

-- Each move with a publication or slot recorded on this server (the
-- source; the target too once a cut-over made the way back): the
-- publication, the slot, whether they exist, the slot's activity, the WAL
-- it holds back, and the subscriber's lag in bytes and (while it streams)
-- seconds.
CREATE VIEW @extschema@.move_status WITH (security_invoker = true) AS
SELECT m.move,
       m.owner,
       m.migration,
       pb.object AS publication,
       EXISTS (SELECT FROM pg_catalog.pg_publication p WHERE p.pubname OPERATOR(pg_catalog.=) pb.object) AS publication_exists,
       sl.object AS slot,
       rs.slot_name IS NOT NULL AS slot_exists,
       rs.active AS slot_active,
       pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), rs.restart_lsn)::pg_catalog.int8 AS wal_held_bytes,
       pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), rs.confirmed_flush_lsn)::pg_catalog.int8 AS lag_bytes,
       pg_catalog.date_part('epoch', r.replay_lag) AS lag_seconds,
       (rs.slot_name IS NOT NULL AND NOT rs.active
        AND pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), rs.restart_lsn) OPERATOR(pg_catalog.>) 0)
         AS inactive_holding_wal
  FROM (SELECT o.move, pg_catalog.min(o.owner) AS owner, pg_catalog.min(o.migration) AS migration
          FROM @extschema@.move_object o
         WHERE o.kind IN ('publication', 'slot') GROUP BY o.move) m
  LEFT JOIN @extschema@.move_object pb ON pb.move OPERATOR(pg_catalog.=) m.move AND pb.kind OPERATOR(pg_catalog.=) 'publication'
  LEFT JOIN @extschema@.move_object sl ON sl.move OPERATOR(pg_catalog.=) m.move AND sl.kind OPERATOR(pg_catalog.=) 'slot'
  LEFT JOIN pg_catalog.pg_replication_slots rs ON rs.slot_name OPERATOR(pg_catalog.=) sl.object
                                               AND rs.database OPERATOR(pg_catalog.=) pg_catalog.current_database()
  LEFT JOIN pg_catalog.pg_stat_replication r ON r.pid OPERATOR(pg_catalog.=) rs.active_pid;
COMMENT ON VIEW @extschema@.move_status IS
  'moves to another cluster with a publication or slot on this server: publication, slot, WAL held, lag';


-- shift.move_fence_begin(move, direction, tables, app_roles) -> the fence's
-- id.  A fence begins: its row, and a row of move_fence_grant for each
-- privilege it moves, read from the catalog, never given as text:
--   'forward': what the application roles hold on the tables (the caller's,
--     on this server, the source) and on the sequences they own.  The roles:
--     app_roles ('public' for PUBLIC), or every role (and PUBLIC) but the
--     owner with a write privilege on one of the tables.  None: an error
--     (nothing to fence).
--   'back': what the move's last forward fence moved.
-- A fence of that move and direction begun and not ended is begun again:
-- its rows are kept (the privileges it revoked are not in the catalog any
-- more).
CREATE FUNCTION shift_internal.move_fence_begin(move pg_catalog.text, direction pg_catalog.text,
  tables pg_catalog.text[], app_roles pg_catalog.text[] DEFAULT NULL)
RETURNS pg_catalog.int8
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  o @extschema@.move_fence;
  me pg_catalog.name := pg_catalog.pg_get_userbyid(shift_internal.caller());
  rels pg_catalog.oid[] := '{}';
  t pg_catalog.text;
  c pg_catalog.pg_class;
  forward pg_catalog.int8;
  id pg_catalog.int8;
  n pg_catalog.int8;
BEGIN
  PERFORM shift_internal._move_claim(move);
  IF direction IS NULL OR direction NOT IN ('forward', 'back') THEN
    RAISE EXCEPTION 'direction must be ''forward'' or ''back'', not %', coalesce(quote_literal(direction), 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT * INTO o FROM @extschema@.move_fence x
   WHERE x.move OPERATOR(pg_catalog.=) move_fence_begin.move
     AND x.direction OPERATOR(pg_catalog.=) move_fence_begin.direction
     AND x.fence_ms IS NULL
     AND x.owner OPERATOR(pg_catalog.=) me
   ORDER BY x.id DESC LIMIT 1 FOR UPDATE;
  IF FOUND THEN
    UPDATE @extschema@.move_fence x SET started_at = pg_catalog.now() WHERE x.id OPERATOR(pg_catalog.=) o.id;
    RETURN o.id;
  END IF;

  IF direction OPERATOR(pg_catalog.=) 'back' THEN
    SELECT x.id INTO forward FROM @extschema@.move_fence x
     WHERE x.move OPERATOR(pg_catalog.=) move_fence_begin.move
       AND x.direction OPERATOR(pg_catalog.=) 'forward'
       AND x.owner OPERATOR(pg_catalog.=) me
     ORDER BY x.id DESC LIMIT 1;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'move % has no forward fence to go back from', move
        USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    INSERT INTO @extschema@.move_fence (move, direction, owner) VALUES (move, direction, me)
    RETURNING move_fence.id INTO id;
    INSERT INTO @extschema@.move_fence_grant (fence, relation, relname, relowner, grantee, privilege, owner)
    SELECT id, g.relation, g.relname, g.relowner, g.grantee, g.privilege, me
      FROM @extschema@.move_fence_grant g WHERE g.fence OPERATOR(pg_catalog.=) forward;
    RETURN id;
  END IF;

  IF coalesce(cardinality(tables), 0) OPERATOR(pg_catalog.=) 0 THEN
    RAISE EXCEPTION 'no tables to fence' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOREACH t IN ARRAY tables LOOP
    SELECT * INTO c FROM pg_catalog.pg_class k WHERE k.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(t);
    IF NOT FOUND OR c.relkind OPERATOR(pg_catalog.<>) 'r' THEN
      RAISE EXCEPTION 'table % does not exist', t USING ERRCODE = 'undefined_table';
    END IF;
    PERFORM shift_internal.check_owner(format('table %s', t), pg_catalog.pg_get_userbyid(c.relowner));
    rels := rels OPERATOR(pg_catalog.||) c.oid;
  END LOOP;
  INSERT INTO @extschema@.move_fence (move, direction, owner) VALUES (move, direction, me)
  RETURNING move_fence.id INTO id;
  WITH rel AS (
    SELECT k.oid, k.relkind, k.relowner, k.relacl,
           pg_catalog.format('%I.%I', (SELECT n.nspname FROM pg_catalog.pg_namespace n
                                        WHERE n.oid OPERATOR(pg_catalog.=) k.relnamespace), k.relname) AS relname
      FROM pg_catalog.pg_class k
     WHERE k.oid OPERATOR(pg_catalog.=) ANY (rels)
        OR k.oid IN (SELECT d.objid FROM pg_catalog.pg_depend d
                      WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                        AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                        AND d.deptype IN ('a', 'i')
                        AND d.refobjid OPERATOR(pg_catalog.=) ANY (rels))),
  acl AS (
    SELECT r.oid, r.relkind, r.relname, pg_catalog.pg_get_userbyid(r.relowner) AS relowner, a.privilege_type,
           CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN 'public'
                ELSE pg_catalog.pg_get_userbyid(a.grantee) END AS grantee
      FROM rel r, LATERAL pg_catalog.aclexplode(r.relacl) a
     WHERE a.grantee OPERATOR(pg_catalog.<>) r.relowner),
  app AS (
    SELECT DISTINCT a.grantee FROM acl a
     WHERE CASE WHEN app_roles IS NULL
                THEN a.relkind OPERATOR(pg_catalog.=) 'r'
                     AND a.privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')
                ELSE a.grantee::pg_catalog.text OPERATOR(pg_catalog.=) ANY (app_roles) END)
  INSERT INTO @extschema@.move_fence_grant (fence, relation, relname, relowner, grantee, privilege, owner)
  SELECT DISTINCT id, a.oid, a.relname, a.relowner, a.grantee, a.privilege_type, me
    FROM acl a WHERE a.grantee IN (SELECT app.grantee FROM app)
     AND a.privilege_type IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER', 'USAGE');
  SELECT count(*) INTO n FROM @extschema@.move_fence_grant g
    JOIN pg_catalog.pg_class k ON k.oid OPERATOR(pg_catalog.=) g.relation
   WHERE g.fence OPERATOR(pg_catalog.=) id AND k.relkind OPERATOR(pg_catalog.=) 'r'
     AND g.privilege IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE');
  IF n OPERATOR(pg_catalog.=) 0 THEN
    RAISE EXCEPTION 'no application role may write the moved tables'
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = 'Their owner and superusers are never fenced: there is nothing to fence.',
            HINT = 'Grant the application its privileges, or name its roles in app_roles.';
  END IF;
  RETURN id;
END
$$;
SELECT shift_internal._owner_call('move_fence_begin');

-- shift.move_fence_end(move, direction, fence_ms, lsn): the open fence of
-- that move and direction ended: how long it held writes, where it closed.
CREATE FUNCTION shift_internal.move_fence_end(move pg_catalog.text, direction pg_catalog.text,
  fence_ms pg_catalog.float8, lsn pg_catalog.pg_lsn DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  o @extschema@.move_fence;
BEGIN
  PERFORM shift_internal._move_claim(move);
  SELECT * INTO o FROM @extschema@.move_fence x
   WHERE x.move OPERATOR(pg_catalog.=) move_fence_end.move
     AND x.direction OPERATOR(pg_catalog.=) move_fence_end.direction
     AND x.fence_ms IS NULL
     AND x.owner OPERATOR(pg_catalog.=) pg_catalog.pg_get_userbyid(shift_internal.caller())
   ORDER BY x.id DESC LIMIT 1 FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'move % has no % fence begun', move, direction
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  UPDATE @extschema@.move_fence x
     SET fence_ms = coalesce(move_fence_end.fence_ms, 0), lsn = move_fence_end.lsn, finished_at = pg_catalog.now()
   WHERE x.id OPERATOR(pg_catalog.=) o.id;
END
$$;
SELECT shift_internal._owner_call('move_fence_end');

-- The fences of moves recorded on this server (the source), what the
-- runner reads (it reads no control table).
CREATE VIEW @extschema@.move_fences WITH (security_invoker = true) AS
SELECT f.id, f.move, f.direction, f.fence_ms, f.lsn, f.owner, f.started_at, f.finished_at
  FROM @extschema@.move_fence f;
COMMENT ON VIEW @extschema@.move_fences IS
  'each fence of a move''s cut-over or way back recorded on this server: duration, WAL position';

-- The privileges each fence moves, with the relation's kind and quoted
-- name (as this server has it now; NULL once dropped) and whether the
-- privilege is one the fence takes away (a write on a table).
CREATE VIEW @extschema@.move_fence_grants WITH (security_invoker = true) AS
SELECT g.fence, f.move, f.direction, g.relation,
       CASE k.relkind WHEN 'S' THEN 'sequence' ELSE 'table' END AS kind,
       pg_catalog.format('%I.%I', n.nspname, k.relname) AS name,
       g.grantee, g.privilege,
       (k.relkind OPERATOR(pg_catalog.=) 'r' AND g.privilege IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')) AS write,
       g.owner
  FROM @extschema@.move_fence_grant g
  JOIN @extschema@.move_fence f ON f.id OPERATOR(pg_catalog.=) g.fence
  LEFT JOIN pg_catalog.pg_class k ON k.oid OPERATOR(pg_catalog.=) g.relation
  LEFT JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) k.relnamespace;
COMMENT ON VIEW @extschema@.move_fence_grants IS
  'the privileges each fence of a move moves: relation, role, privilege';

-- shift.move_fence_statements(fence, action) -> the GRANT or REVOKE
-- statements of a fence of the caller's own (one per relation and role;
-- nothing for another role's fence, a superuser's call included), built
-- from its rows with every name quoted: 'revoke writes' (the fence), 'grant
-- writes' (its lift on the side it fenced), 'grant all' (the lift on the
-- side made live).  They name the relations as this server (the source)
-- does; the other server has the same names.  A relation whose OID no
-- longer has the name and owner the fence recorded (dropped, the OID
-- reused) is skipped with a warning.
CREATE FUNCTION @extschema@.move_fence_statements(fence pg_catalog.int8, action pg_catalog.text)
RETURNS SETOF pg_catalog.text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  gone pg_catalog.record;
BEGIN
  IF action IS NULL OR action NOT IN ('revoke writes', 'grant writes', 'grant all') THEN
    RAISE EXCEPTION 'action must be ''revoke writes'', ''grant writes'' or ''grant all'', not %',
      coalesce(quote_literal(action), 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOR gone IN
    SELECT DISTINCT f.move, f.direction, g.relname, g.relowner FROM @extschema@.move_fence_grant g
      JOIN @extschema@.move_fence f ON f.id OPERATOR(pg_catalog.=) g.fence
     WHERE g.fence OPERATOR(pg_catalog.=) move_fence_statements.fence
       AND f.owner OPERATOR(pg_catalog.=) pg_catalog.pg_get_userbyid(shift_internal.caller())
       AND NOT EXISTS (SELECT FROM pg_catalog.pg_class k
                         JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) k.relnamespace
                        WHERE k.oid OPERATOR(pg_catalog.=) g.relation
                          AND pg_catalog.format('%I.%I', n.nspname, k.relname) OPERATOR(pg_catalog.=) g.relname
                          AND pg_catalog.pg_get_userbyid(k.relowner) OPERATOR(pg_catalog.=) g.relowner)
     ORDER BY g.relname
  LOOP
    RAISE WARNING 'relation % of the % fence of move % is no longer the one the fence recorded: skipped',
      gone.relname, gone.direction, gone.move
      USING ERRCODE = '01000',
            DETAIL = format('The fence recorded %s of role "%s"; what has its OID now has another name or owner, or nothing does.',
                            gone.relname, gone.relowner);
  END LOOP;
  RETURN QUERY
  SELECT pg_catalog.format('%s %s ON %s %I.%I %s %s',
           CASE WHEN action OPERATOR(pg_catalog.=) 'revoke writes' THEN 'REVOKE' ELSE 'GRANT' END,
           pg_catalog.string_agg(g.privilege, ', ' ORDER BY g.privilege),
           CASE k.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, n.nspname, k.relname,
           CASE WHEN action OPERATOR(pg_catalog.=) 'revoke writes' THEN 'FROM' ELSE 'TO' END,
           CASE WHEN g.grantee OPERATOR(pg_catalog.=) 'public' THEN 'PUBLIC'
                ELSE pg_catalog.quote_ident(g.grantee) END)
    FROM @extschema@.move_fence_grant g
    JOIN @extschema@.move_fence f ON f.id OPERATOR(pg_catalog.=) g.fence
    JOIN pg_catalog.pg_class k ON k.oid OPERATOR(pg_catalog.=) g.relation
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) k.relnamespace
   WHERE g.fence OPERATOR(pg_catalog.=) move_fence_statements.fence
     AND f.owner OPERATOR(pg_catalog.=) g.owner
     AND f.owner OPERATOR(pg_catalog.=) pg_catalog.pg_get_userbyid(shift_internal.caller())
     AND pg_catalog.format('%I.%I', n.nspname, k.relname) OPERATOR(pg_catalog.=) g.relname
     AND pg_catalog.pg_get_userbyid(k.relowner) OPERATOR(pg_catalog.=) g.relowner
     AND (action OPERATOR(pg_catalog.=) 'grant all'
          OR (k.relkind OPERATOR(pg_catalog.=) 'r' AND g.privilege IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')))
   GROUP BY k.relkind, n.nspname, k.relname, g.grantee
   ORDER BY k.relkind DESC, n.nspname, k.relname, g.grantee;
END
$$;
