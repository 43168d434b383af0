-- ---------------------------------------------------------------------------
-- Dual-write sync and cut-over (triggers in C in extension/sync.c).  A sync
-- keeps old and new in step while both are in use: a column-level sync sets
-- new columns from old ones (and back, given reverse_set); a table-level
-- sync mirrors every write of one table into another through a column
-- mapping, and after the cut-over mirrors the new table back into the old
-- one, so a rollback after the cut-over loses nothing.
-- ---------------------------------------------------------------------------

CREATE TABLE @extschema@.sync (
  name                pg_catalog.text PRIMARY KEY
                      CHECK (name OPERATOR(pg_catalog.~) '^[A-Za-z0-9_.:-]{1,48}$'),
  kind                pg_catalog.text NOT NULL CHECK (kind IN ('column', 'table')),
  relation            pg_catalog.regclass NOT NULL,   -- the table being replaced (or changed)
  -- column level
  set_clause          pg_catalog.text,                -- 'new = expr(old), ...'
  reverse_set         pg_catalog.text,                -- 'old = expr(new), ...'
  -- table level: relation -> target (forward) and target -> relation (reverse)
  target              pg_catalog.regclass,
  target_columns      pg_catalog.text[],
  expressions         pg_catalog.text[],              -- over relation, one per target column
  target_key          pg_catalog.text[],
  reverse_columns     pg_catalog.text[],              -- NULL: no reverse mapping
  reverse_expressions pg_catalog.text[],              -- over target, one per relation column
  relation_key        pg_catalog.text[],
  relation_alias      pg_catalog.text,                -- the tables' names when the sync was made:
  target_alias        pg_catalog.text,                --   what qualifies columns in the expressions
  key_follows_source  pg_catalog.bool NOT NULL DEFAULT false,  -- target key = source key columns (cast)
  direction           pg_catalog.text NOT NULL DEFAULT 'forward'
                      CHECK (direction IN ('forward', 'reverse')),
  search_path         pg_catalog.text NOT NULL,       -- recorded when it was made; its SQL is parsed and run under it
  owner               pg_catalog.name NOT NULL,       -- made it: only it may change, drop or cut it over
  checked             pg_catalog.jsonb,               -- what _sync_check compiled (shift_internal.sync_definition)
  digest              pg_catalog.text,                -- sha256 of checked: what the triggers are made for
  migration           pg_catalog.text,
  phase               pg_catalog.text,
  created_at          pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now(),
  -- the cut-over: names before it (cutover_revert restores them) and when
  relation_name       pg_catalog.text,
  target_name         pg_catalog.text,
  archive_name        pg_catalog.text,
  cutover_at          pg_catalog.timestamptz,
  repointed_fks       pg_catalog.text[],              -- valid foreign keys the cut-over re-pointed NOT VALID
  to_validate         pg_catalog.oid[],               -- those constraints (pg_constraint) the last swap left NOT VALID
  -- column level: the application versions whose writes it tells apart
  -- (the writer's pg_shift.version, or the first schema of its search_path)
  new_version         pg_catalog.text,                -- its writes keep the new columns and get reverse_set
  old_version         pg_catalog.text,                -- recorded for the reader; every other writer is old
  CHECK ((kind = 'column') = (set_clause IS NOT NULL)),
  CHECK (kind = 'column' OR (new_version IS NULL AND old_version IS NULL)),
  CHECK (old_version IS NULL OR new_version IS NOT NULL),
  CHECK (new_version <> old_version),
  CHECK ((kind = 'table') = (target IS NOT NULL)),
  CHECK (kind = 'table' OR direction = 'forward'),
  CHECK (cardinality(target_columns) = cardinality(expressions)),
  CHECK (cardinality(reverse_columns) = cardinality(reverse_expressions))
);
COMMENT ON TABLE @extschema@.sync IS
  'dual-write syncs: what their triggers compute, in which direction they run, and the cut-over';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.sync', '');

-- Each role sees its own syncs; nobody but the owner of pg_shift writes them.
-- The triggers do not read this table as the writer: they read it as its
-- owner (see load_config in sync.c), so application roles need no access.
ALTER TABLE @extschema@.sync ENABLE ROW LEVEL SECURITY;
CREATE POLICY visible_to_owner ON @extschema@.sync FOR SELECT
  USING (shift_internal.may_act(owner));

-- The trigger function (C): arguments are the sync's name and its direction.
CREATE FUNCTION shift_internal._sync_trigger()
RETURNS trigger
AS 'MODULE_PATHNAME', 'shift_sync_trigger'
LANGUAGE C;

-- Compiles everything a sync's triggers will run (C), so mistakes surface now.
CREATE FUNCTION shift_internal._sync_check(name pg_catalog.text)
RETURNS void
AS 'MODULE_PATHNAME', 'shift_sync_check'
LANGUAGE C STRICT;

-- 'a::bigint, lower(b)' -> {a::bigint,lower(b)}, each checked to stand alone (C).
CREATE FUNCTION shift_internal._select_list("select" pg_catalog.text)
RETURNS pg_catalog.text[]
AS 'MODULE_PATHNAME', 'shift_select_list'
LANGUAGE C STRICT IMMUTABLE;

-- The names of a sync's triggers (the first one is the column-level trigger).
CREATE FUNCTION shift_internal._sync_trigger_names(name pg_catalog.text)
RETURNS pg_catalog.text[]
LANGUAGE sql IMMUTABLE
AS $$
  SELECT ARRAY['shift_sync_' || name, 'shift_sync_' || name || '_ins', 'shift_sync_' || name || '_upd',
               'shift_sync_' || name || '_del', 'shift_sync_' || name || '_row',
               'shift_sync_' || name || '_trn']
$$;

-- Everything of a sync that its triggers execute, or that decides what they
-- execute: what its digest covers.
CREATE FUNCTION shift_internal.sync_definition(s @extschema@.sync)
RETURNS pg_catalog.jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT jsonb_build_object(
    'name', s.name, 'kind', s.kind, 'relation', s.relation::pg_catalog.oid,
    'set', s.set_clause, 'reverse_set', s.reverse_set, 'target', s.target::pg_catalog.oid,
    'columns', s.target_columns, 'select', s.expressions, 'key', s.target_key,
    'reverse_columns', s.reverse_columns, 'reverse_select', s.reverse_expressions,
    'reverse_key', s.relation_key, 'relation_alias', s.relation_alias,
    'target_alias', s.target_alias, 'direction', s.direction, 'search_path', s.search_path,
    'owner', s.owner)
  -- only when given: a sync without versions keeps the digest it had
  || jsonb_strip_nulls(jsonb_build_object('new_version', s.new_version, 'old_version', s.old_version))
$$;

-- The row of sync p_name; an error if there is none.
CREATE FUNCTION shift_internal.sync_row(p_name pg_catalog.text)
RETURNS @extschema@.sync
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  s @extschema@.sync;
BEGIN
  SELECT * INTO s FROM @extschema@.sync x WHERE x.name = p_name;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'sync "%" does not exist', p_name
      USING ERRCODE = 'undefined_object', HINT = 'SELECT name FROM shift.sync_status lists the syncs.';
  END IF;
  RETURN s;
END
$$;

/*
 * The sync's digest, once its row is what was checked: an error names the
 * fields changed since.  What its triggers carry and check (see sync.c).
 */
CREATE FUNCTION shift_internal.sync_verify(p_name pg_catalog.text)
RETURNS pg_catalog.text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  s @extschema@.sync := shift_internal.sync_row(p_name);
BEGIN
  PERFORM shift_internal.verify_checked(format('sync "%s"', p_name), s.checked, s.digest,
    shift_internal.sync_definition(s),
    'A sync''s triggers run only what shift.sync_create checked; these fields differ from it.',
    'Drop the sync with shift.sync_drop and create it again.');
  RETURN s.digest;
END
$$;

-- The digest the sync's triggers were made for (their third argument), or
-- NULL if they disagree among themselves or there are none.
CREATE FUNCTION shift_internal.sync_installed_digest(p_name pg_catalog.text)
RETURNS pg_catalog.text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE WHEN count(DISTINCT d) = 1 THEN min(d) END
    FROM (SELECT (string_to_array(encode(tg.tgargs, 'escape'), '\000'))[3] AS d
            FROM pg_trigger tg
           WHERE tg.tgfoid = 'shift_internal._sync_trigger'::pg_catalog.regproc AND tg.tgparentid = 0
             AND tg.tgname = ANY (shift_internal._sync_trigger_names(p_name))
             AND substr(tg.tgargs, 1, octet_length(p_name) + 1)
                 = convert_to(p_name, current_setting('server_encoding')) || decode('00', 'hex')) t
$$;

/*
 * Whether sync new_row, as sync_create works it out, defines what sync old
 * does: an existing sync if_exists => 'reuse' keeps.  new_row's search_path
 * may be pinned already or not (pinning a pinned path changes nothing).
 */
CREATE FUNCTION shift_internal._sync_same(old @extschema@.sync, new_row @extschema@.sync)
RETURNS pg_catalog.bool
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT old.kind = new_row.kind AND old.relation = new_row.relation
     AND old.set_clause IS NOT DISTINCT FROM new_row.set_clause
     AND old.reverse_set IS NOT DISTINCT FROM new_row.reverse_set
     AND old.target IS NOT DISTINCT FROM new_row.target
     AND old.target_columns IS NOT DISTINCT FROM new_row.target_columns
     AND old.expressions IS NOT DISTINCT FROM new_row.expressions
     AND old.target_key IS NOT DISTINCT FROM new_row.target_key
     AND old.reverse_columns IS NOT DISTINCT FROM new_row.reverse_columns
     AND old.reverse_expressions IS NOT DISTINCT FROM new_row.reverse_expressions
     AND old.relation_key IS NOT DISTINCT FROM new_row.relation_key
     AND old.search_path IS NOT DISTINCT FROM shift_internal.pin_search_path(new_row.search_path)
     AND old.migration IS NOT DISTINCT FROM new_row.migration
     AND old.phase IS NOT DISTINCT FROM new_row.phase
     AND old.new_version IS NOT DISTINCT FROM new_row.new_version
     AND old.old_version IS NOT DISTINCT FROM new_row.old_version
$$;

/*
 * shift_internal._sync_record(row, if_exists) -> created
 *
 * Records a sync sync_create has worked out (its owner the caller, its
 * search_path pinned), compiles everything its triggers will run as that
 * owner (shift_internal._sync_check) and seals what was checked.  An identical sync
 * of the caller's with if_exists => 'reuse' is kept (false); any other
 * existing sync of that name is an error.
 */
CREATE FUNCTION shift_internal._sync_record_as_owner(new_row @extschema@.sync, if_exists pg_catalog.text)
RETURNS pg_catalog.bool
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  old @extschema@.sync;
BEGIN
  new_row.owner := pg_get_userbyid(shift_internal.caller());
  new_row.search_path := shift_internal.pin_search_path(new_row.search_path);
  -- what sync_create checked as the caller, again: this function can be called alone
  IF NOT has_table_privilege(shift_internal.caller(), new_row.relation, 'TRIGGER')
     OR (new_row.target IS NOT NULL
         AND NOT has_table_privilege(shift_internal.caller(), new_row.target, 'TRIGGER')) THEN
    RAISE EXCEPTION 'role "%" may not create triggers on %', new_row.owner,
                    CASE WHEN NOT has_table_privilege(shift_internal.caller(), new_row.relation, 'TRIGGER')
                         THEN new_row.relation ELSE new_row.target END
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'Create the sync as the tables'' owner, or GRANT TRIGGER.';
  END IF;
  new_row.created_at := now();
  new_row.checked := NULL;
  new_row.digest := NULL;
  new_row.direction := 'forward';
  new_row.cutover_at := NULL;
  new_row.to_validate := NULL;
  new_row.repointed_fks := NULL;
  SELECT * INTO old FROM @extschema@.sync s WHERE s.name = new_row.name FOR UPDATE;
  IF FOUND THEN
    PERFORM shift_internal.check_owner(format('sync "%s"', new_row.name), old.owner);
    IF if_exists = 'reuse' AND shift_internal._sync_same(old, new_row) THEN
      PERFORM shift_internal.sync_verify(old.name);
      RETURN false;
    END IF;
    RAISE EXCEPTION 'sync "%" already exists%', new_row.name,
      CASE WHEN if_exists = 'reuse' THEN ' with a different definition' ELSE '' END
      USING ERRCODE = 'duplicate_object',
            HINT = 'Drop it with shift.sync_drop(''' || new_row.name || ''') or choose another name.';
  END IF;
  INSERT INTO @extschema@.sync SELECT new_row.*;
  PERFORM shift_internal._sync_check(new_row.name);
  PERFORM shift_internal._sync_seal(new_row.name);
  RETURN true;
END
$$;

-- Records what the sync is now as what was checked (after _sync_check passed).
CREATE FUNCTION shift_internal._sync_seal(p_name pg_catalog.text)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  UPDATE @extschema@.sync s
     SET checked = shift_internal.sync_definition(s),
         digest = shift_internal.definition_digest(shift_internal.sync_definition(s))
   WHERE s.name = p_name
$$;

/*
 * shift_internal._sync_forget(name): forgets a sync whose triggers sync_drop removed.
 */
CREATE FUNCTION shift_internal._sync_forget_as_owner(p_name pg_catalog.text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  s @extschema@.sync;
BEGIN
  SELECT * INTO s FROM @extschema@.sync x WHERE x.name = p_name FOR UPDATE;
  IF FOUND THEN
    PERFORM shift_internal.check_owner(format('sync "%s"', p_name), s.owner);
    DELETE FROM @extschema@.sync x WHERE x.name = p_name;
  END IF;
END
$$;

/*
 * shift_internal._sync_turn(...): records a cut-over (reverse false) or its revert
 * (reverse true) that _cutover_swap has just made, once it has checked the
 * sync is still in the direction the swap started from; re-compiles the
 * turned-around triggers' SQL as the owner and seals it.
 */
CREATE FUNCTION shift_internal._sync_turn_as_owner(p_name pg_catalog.text, reverse pg_catalog.bool,
  p_archive_name pg_catalog.text, p_relation_name pg_catalog.text, p_target_name pg_catalog.text,
  p_repointed pg_catalog.text[], p_to_validate pg_catalog.oid[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  s @extschema@.sync;
BEGIN
  SELECT * INTO s FROM @extschema@.sync x WHERE x.name = p_name FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'sync "%" does not exist', p_name USING ERRCODE = 'undefined_object';
  END IF;
  PERFORM shift_internal.check_owner(format('sync "%s"', p_name), s.owner);
  PERFORM shift_internal.sync_verify(p_name);
  IF s.direction <> (CASE WHEN reverse THEN 'reverse' ELSE 'forward' END) THEN
    RAISE EXCEPTION 'sync "%" was turned around by another session meanwhile (it is now %)', p_name, s.direction
      USING ERRCODE = 'serialization_failure';
  END IF;
  IF reverse THEN
    UPDATE @extschema@.sync x SET direction = 'forward', cutover_at = NULL, archive_name = NULL,
                                  to_validate = p_to_validate
     WHERE x.name = p_name;
  ELSE
    UPDATE @extschema@.sync x
       SET direction = 'reverse', cutover_at = now(), archive_name = p_archive_name,
           relation_name = p_relation_name, target_name = p_target_name,
           repointed_fks = p_repointed, to_validate = p_to_validate
     WHERE x.name = p_name;
  END IF;
  PERFORM shift_internal._sync_check(p_name);
  PERFORM shift_internal._sync_seal(p_name);
END
$$;

-- What the caller-level functions below call to change shift.sync (control.c).
SELECT shift_internal._owner_call('shift_internal._sync_record');
SELECT shift_internal._owner_call('shift_internal._sync_forget');
SELECT shift_internal._owner_call('shift_internal._sync_turn');

-- Creates the triggers of a sync in its current direction.
CREATE FUNCTION shift_internal._sync_install(p_name pg_catalog.text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  s @extschema@.sync;
  src pg_catalog.regclass;
  part pg_catalog.regclass;
  kind pg_catalog."char";
  owned boolean;
  base pg_catalog.text := 'shift_sync_' || p_name;
  fn pg_catalog.text := 'shift_internal._sync_trigger';
  args pg_catalog.text;
BEGIN
  -- only a definition that is what was checked is ever installed
  args := shift_internal.sync_verify(p_name);
  SELECT * INTO STRICT s FROM @extschema@.sync WHERE name = p_name;
  args := format('%L, %L, %L', p_name, s.direction, args);
  IF s.kind = 'column' THEN
    EXECUTE format('CREATE TRIGGER %I BEFORE INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION %s(%s)',
                   base, s.relation, fn, args);
    RETURN;
  END IF;
  src := CASE WHEN s.direction = 'forward' THEN s.relation ELSE s.target END;
  IF (SELECT c.relkind FROM pg_class c WHERE c.oid = src) = 'p' THEN
    -- statement triggers do not fire for writes made to a partition directly
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION %s(%s)',
                   base || '_row', src, fn, args);
    -- Nor for TRUNCATE of one partition, and PostgreSQL clones no statement
    -- trigger to partitions: each partition that holds rows now gets its own,
    -- which deletes that partition's keys from the other table first.  The
    -- partitioned table's fires BEFORE too, so that truncating all of it
    -- empties the other table before any partition's trigger looks (each
    -- then finds nothing to delete).
    FOR part, kind, owned IN
        SELECT t.relid, c.relkind, pg_has_role(c.relowner, 'USAGE') FROM pg_partition_tree(src) t
          JOIN pg_class c ON c.oid = t.relid
         WHERE t.isleaf ORDER BY t.relid::pg_catalog.regclass::pg_catalog.text
    LOOP
      IF kind = 'f' THEN
        RAISE WARNING 'TRUNCATE of foreign partition % will not be mirrored by sync "%"', part, p_name
          USING HINT = 'Foreign tables take no TRUNCATE triggers: empty it with DELETE.';
      ELSIF NOT owned THEN
        -- only its owner could drop the trigger again (sync_drop, the cut-over)
        RAISE WARNING 'TRUNCATE of partition % will not be mirrored by sync "%"', part, p_name
          USING DETAIL = format('Role %s does not own it, and only its owner could drop the trigger again.', current_user),
                HINT = 'Create the sync as a role that owns every partition, or empty that partition with DELETE.';
      ELSE
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION %s(%s)',
                       base || '_trn', part, fn, args);
      END IF;
    END LOOP;
    EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION %s(%s)',
                   base || '_trn', src, fn, args);
    RETURN;
  ELSE
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS pgs_new'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION %s(%s)',
                   base || '_ins', src, fn, args);
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %s REFERENCING OLD TABLE AS pgs_old NEW TABLE AS pgs_new'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION %s(%s)',
                   base || '_upd', src, fn, args);
    EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %s REFERENCING OLD TABLE AS pgs_old'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION %s(%s)',
                   base || '_del', src, fn, args);
  END IF;
  EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION %s(%s)',
                 base || '_trn', src, fn, args);
END
$$;

-- Drops whatever triggers of the sync exist, on either table or any partition.
CREATE FUNCTION shift_internal._sync_uninstall(p_name pg_catalog.text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  t record;
BEGIN
  FOR t IN SELECT tg.tgname, tg.tgrelid::pg_catalog.regclass AS rel
             FROM pg_trigger tg
            WHERE tg.tgfoid = 'shift_internal._sync_trigger'::pg_catalog.regproc AND tg.tgparentid = 0
              AND tg.tgname = ANY (shift_internal._sync_trigger_names(p_name))
              -- its first argument names the sync: also a partition detached since
              AND pg_catalog.substr(tg.tgargs, 1, pg_catalog.octet_length(p_name) + 1)
                  = pg_catalog.convert_to(p_name, pg_catalog.current_setting('server_encoding'))
                    || pg_catalog.decode('00', 'hex')
  LOOP
    EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, t.rel);
  END LOOP;
END
$$;

-- Column names of rel that are not dropped or generated, in order.
CREATE FUNCTION shift_internal._writable_columns(rel pg_catalog.regclass)
RETURNS pg_catalog.text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce(array_agg(a.attname::text ORDER BY a.attnum), '{}')
    FROM pg_attribute a
   WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
$$;

-- The primary key's column names, or NULL.
CREATE FUNCTION shift_internal._primary_key(rel pg_catalog.regclass)
RETURNS pg_catalog.text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT array_agg(a.attname::text ORDER BY k.ord)
    FROM pg_index i
   CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
   WHERE i.indrelid = rel AND i.indisprimary
$$;

/*
 * One direction of a table-level mapping, with its defaults filled in:
 * columns of dst (default: those src has too, by name), one expression over
 * src per column (default: the same names), and dst's key (default: its
 * primary key, which must be among the columns).
 */
CREATE FUNCTION shift_internal._sync_mapping(sync_name pg_catalog.text, what pg_catalog.text,
  src pg_catalog.regclass, dst pg_catalog.regclass, columns pg_catalog.text[],
  "select" pg_catalog.text, key pg_catalog.text[],
  OUT out_columns pg_catalog.text[], OUT out_expressions pg_catalog.text[], OUT out_key pg_catalog.text[])
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  c pg_catalog.text;
  src_cols pg_catalog.text[] := shift_internal._writable_columns(src);
  dst_cols pg_catalog.text[] := shift_internal._writable_columns(dst);
BEGIN
  IF columns IS NULL THEN
    SELECT coalesce(array_agg(x ORDER BY o), '{}') INTO out_columns
      FROM unnest(dst_cols) WITH ORDINALITY AS d(x, o)
     WHERE x = ANY (src_cols) OR EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = src
                                           AND a.attname = x AND a.attnum > 0 AND NOT a.attisdropped);
    IF cardinality(out_columns) = 0 THEN
      RAISE EXCEPTION '% and % have no column name in common (the % mapping of sync "%")', src, dst, what, sync_name
        USING ERRCODE = 'invalid_parameter_value',
              HINT = 'Give the columns and the select list.';
    END IF;
  ELSE
    out_columns := columns;
    FOREACH c IN ARRAY columns LOOP
      IF NOT c = ANY (dst_cols) THEN
        RAISE EXCEPTION 'column "%" of % does not exist or cannot be written (the % mapping of sync "%")',
                        c, dst, what, sync_name
          USING ERRCODE = 'undefined_column';
      END IF;
    END LOOP;
  END IF;
  IF "select" IS NULL THEN
    SELECT array_agg(quote_ident(x) ORDER BY o) INTO out_expressions
      FROM unnest(out_columns) WITH ORDINALITY AS d(x, o);
  ELSE
    out_expressions := shift_internal._select_list("select");
  END IF;
  IF cardinality(out_expressions) <> cardinality(out_columns) THEN
    RAISE EXCEPTION 'the % mapping of sync "%" has % columns but % expressions', what, sync_name,
                    cardinality(out_columns), cardinality(out_expressions)
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Give one expression per column, in the same order.';
  END IF;
  out_key := coalesce(key, shift_internal._primary_key(dst));
  IF out_key IS NULL THEN
    RAISE EXCEPTION '% has no primary key to match rows by (the % mapping of sync "%")', dst, what, sync_name
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Add one, or name a unique key.';
  END IF;
  FOREACH c IN ARRAY out_key LOOP
    IF NOT c = ANY (out_columns) THEN
      RAISE EXCEPTION 'key column "%" of % is not among the columns the % mapping of sync "%" writes',
                      c, dst, what, sync_name
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
  END LOOP;
  -- the trigger's upsert names the key in ON CONFLICT: only the executor would refuse it
  IF NOT EXISTS (SELECT 1 FROM pg_index i
                  WHERE i.indrelid = dst AND i.indisunique AND i.indimmediate AND i.indisvalid
                    AND i.indpred IS NULL AND i.indexprs IS NULL
                    AND (SELECT array_agg(a.attname::text ORDER BY a.attname::text)
                           FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                           JOIN pg_attribute a ON a.attrelid = dst AND a.attnum = k.attnum
                          WHERE k.ord <= i.indnkeyatts)
                        = (SELECT array_agg(k ORDER BY k) FROM unnest(out_key) AS k)) THEN
    RAISE EXCEPTION 'key (%) of % is not the key of a unique index that can arbitrate ON CONFLICT (the % mapping of sync "%")',
                    array_to_string(out_key, ', '), dst, what, sync_name
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = 'The sync writes with INSERT ... ON CONFLICT (key) DO UPDATE.',
            HINT = 'Create a unique index on exactly these columns, not deferrable and not partial, or name another key.';
  END IF;
END
$$;

-- The column an expression is, if it is nothing but a column (maybe cast):
-- 'id', '"Id"::bigint'; NULL otherwise (sqlfrag.c: the server's parser reads it).
CREATE FUNCTION shift_internal._plain_column(expr pg_catalog.text)
RETURNS pg_catalog.text
AS 'MODULE_PATHNAME', 'shift_plain_column'
LANGUAGE C IMMUTABLE STRICT;

/*
 * The arguments of shift.sync_create checked (see there), as the caller:
 * which of them go together, what the tables are, whether the caller may
 * create triggers on them.
 */
CREATE FUNCTION shift_internal._sync_create_args(v_name pg_catalog.text, relation pg_catalog.regclass,
  set pg_catalog.text, reverse_set pg_catalog.text, "into" pg_catalog.regclass,
  columns pg_catalog.text[], "select" pg_catalog.text, key pg_catalog.text[],
  reverse_columns pg_catalog.text[], reverse_select pg_catalog.text, reverse_key pg_catalog.text[],
  if_exists pg_catalog.text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM shift_internal._check_create('sync', v_name, 48, if_exists);
  IF (set IS NULL) = ("into" IS NULL) THEN
    RAISE EXCEPTION 'sync "%" needs exactly one of set => (columns of one table) and into => (another table)', v_name
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF set IS NOT NULL AND (columns IS NOT NULL OR "select" IS NOT NULL OR key IS NOT NULL
                          OR reverse_columns IS NOT NULL OR reverse_select IS NOT NULL
                          OR reverse_key IS NOT NULL) THEN
    RAISE EXCEPTION 'columns, select, key and their reverse_ forms apply only to a table-level sync (into =>)'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF "into" IS NOT NULL AND reverse_set IS NOT NULL THEN
    RAISE EXCEPTION 'reverse_set applies only to a column-level sync (set =>)'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF "into" = relation THEN
    RAISE EXCEPTION 'sync "%" would mirror % into itself', v_name, relation
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF (SELECT c.relkind FROM pg_class c WHERE c.oid = relation) NOT IN ('r', 'p')
     OR ("into" IS NOT NULL AND (SELECT c.relkind FROM pg_class c WHERE c.oid = "into") NOT IN ('r', 'p')) THEN
    RAISE EXCEPTION 'a sync works between tables (ordinary or partitioned)'
      USING ERRCODE = 'wrong_object_type';
  END IF;
  -- writes the triggers would not see, rows the writer would not see
  IF (SELECT c.relispartition FROM pg_class c WHERE c.oid = relation) THEN
    RAISE EXCEPTION '% is a partition: writes routed through its parent would not be mirrored', relation
      USING ERRCODE = 'wrong_object_type',
            HINT = 'Sync the partitioned table instead.';
  END IF;
  IF EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhparent
              WHERE i.inhparent = relation AND c.relkind = 'r') THEN
    RAISE EXCEPTION '% has inheritance children: writes made to them would not be mirrored', relation
      USING ERRCODE = 'wrong_object_type';
  END IF;
  IF EXISTS (SELECT 1 FROM pg_class c WHERE c.oid IN (relation, "into")
                AND (c.relrowsecurity OR c.relforcerowsecurity)) THEN
    RAISE EXCEPTION 'row-level security is enabled on %',
                    (SELECT string_agg(c.oid::pg_catalog.regclass::pg_catalog.text, ' and ')
                       FROM pg_class c WHERE c.oid IN (relation, "into")
                        AND (c.relrowsecurity OR c.relforcerowsecurity))
      USING ERRCODE = 'feature_not_supported',
            DETAIL = 'The sync writes as the writing role, so policies would hide rows from its deletes and updates, and its copy would not carry them.',
            HINT = 'Apply the policies to both tables by hand and mirror without pg_shift, or disable row-level security for the migration.';
  END IF;
  -- CREATE TRIGGER would refuse; say who may
  IF NOT has_table_privilege(relation, 'TRIGGER')
     OR ("into" IS NOT NULL AND NOT has_table_privilege("into", 'TRIGGER')) THEN
    RAISE EXCEPTION 'role "%" may not create triggers on %', current_user,
                    CASE WHEN NOT has_table_privilege(relation, 'TRIGGER') THEN relation ELSE "into" END
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'Create the sync as the tables'' owner, or GRANT TRIGGER.';
  END IF;
END
$$;

/*
 * What shift.sync_create says of the new table of table-level sync v_name,
 * as the caller: an error if it already holds rows, a warning naming the
 * roles that write relation but could not write it.
 */
CREATE FUNCTION shift_internal._sync_new_table(v_name pg_catalog.text, relation pg_catalog.regclass,
                                            "into" pg_catalog.regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  old_rows pg_catalog.bool;
  writers pg_catalog.text;
BEGIN
  -- a new table-level sync starts from an empty copy: rows already there were
  -- written without it, and those changed or deleted since would stay stale
  -- (a backfill that skips the keys it finds neither overwrites nor deletes)
  EXECUTE format('SELECT EXISTS (SELECT FROM %s)', "into"::pg_catalog.text) INTO STRICT old_rows;
  IF old_rows THEN
    RAISE EXCEPTION 'cannot sync % into %: it already holds rows', relation, "into"
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = format('A table-level sync mirrors the writes made once it exists; rows of %s written before, '
                            'by an earlier sync or copy, are stale wherever %s changed or deleted them since.',
                            "into", relation),
            HINT = format('Empty it first (TRUNCATE %s): the backfill after the sync copies every row.  '
                          'A phase that drops the sync in its down should empty the copy there too.', "into");
  END IF;
  -- roles that write the old table must be able to write the new one too
  SELECT string_agg(quote_ident(r.rolname), ', ' ORDER BY r.rolname) INTO writers
    FROM pg_roles r
   WHERE NOT r.rolsuper AND r.rolname !~ '^pg_'
     AND (has_table_privilege(r.oid, relation, 'INSERT') OR has_table_privilege(r.oid, relation, 'UPDATE')
          OR has_table_privilege(r.oid, relation, 'DELETE'))
     AND NOT (has_table_privilege(r.oid, "into", 'SELECT') AND has_table_privilege(r.oid, "into", 'INSERT')
              AND has_table_privilege(r.oid, "into", 'UPDATE') AND has_table_privilege(r.oid, "into", 'DELETE'));
  IF writers IS NOT NULL THEN
    RAISE WARNING 'roles % write % but could not write % through sync "%"', writers, relation, "into", v_name
      USING DETAIL = 'The sync runs as the role writing the table: it needs SELECT, INSERT, UPDATE and DELETE on the new table.',
            HINT = format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO %s;', "into", writers);
  END IF;
END
$$;

/*
 * shift.sync_create(name, relation, set => | into =>, ...) -> name
 *
 * Column level: set => 'new_col = expr(old cols), ...' keeps new columns
 * computed on every INSERT and UPDATE; reverse_set => 'old_col = expr(new
 * cols)' computes the old ones instead when a writer changed only new
 * columns (to values that disagree with set's).  new_version => 'app_v2'
 * names the new application's version instead of guessing: a writer whose
 * version (pg_shift.version, else the first schema of its search_path; see
 * shift.writer_version()) is new_version keeps the new columns it wrote and
 * gets reverse_set, if any; every other writer gets set.  old_version =>
 * names the old one, for the record.  A backfill is never the new version.
 * Table level: into => 'new_table' mirrors every INSERT, UPDATE, DELETE and
 * TRUNCATE of relation into it: columns => the new table's columns (default:
 * those relation has by name), select => one expression over relation per
 * column (default: the same names), key => the new table's key (default: its
 * primary key).  The reverse mapping (reverse_columns, reverse_select,
 * reverse_key, same defaults the other way) is what runs after the
 * cut-over; reverse => false makes a sync that cannot be cut over with a
 * way back.  Everything is compiled before any trigger exists.
 */
CREATE FUNCTION @extschema@.sync_create(
  name pg_catalog.text, relation pg_catalog.regclass,
  set pg_catalog.text DEFAULT NULL, reverse_set pg_catalog.text DEFAULT NULL,
  "into" pg_catalog.regclass DEFAULT NULL, columns pg_catalog.text[] DEFAULT NULL,
  "select" pg_catalog.text DEFAULT NULL, key pg_catalog.text[] DEFAULT NULL,
  reverse pg_catalog.bool DEFAULT true, reverse_columns pg_catalog.text[] DEFAULT NULL,
  reverse_select pg_catalog.text DEFAULT NULL, reverse_key pg_catalog.text[] DEFAULT NULL,
  if_exists pg_catalog.text DEFAULT 'error',
  migration pg_catalog.text DEFAULT NULL, phase pg_catalog.text DEFAULT NULL,
  search_path pg_catalog.text DEFAULT pg_catalog.current_setting('search_path'),
  new_version pg_catalog.text DEFAULT NULL, old_version pg_catalog.text DEFAULT NULL)
RETURNS pg_catalog.text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_name CONSTANT pg_catalog.text := sync_create.name;
  old @extschema@.sync;
  new_row @extschema@.sync;
  fwd record;
  rev record;
  missing pg_catalog.text;
BEGIN
  PERFORM shift_internal._sync_create_args(v_name, relation, set, reverse_set, "into", columns, "select",
                                        key, reverse_columns, reverse_select, reverse_key, if_exists);
  IF (new_version IS NOT NULL OR old_version IS NOT NULL) AND set IS NULL THEN
    RAISE EXCEPTION 'new_version and old_version apply only to a column-level sync (set =>)'
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'A table-level sync mirrors every write, whichever version made it.';
  END IF;
  IF old_version IS NOT NULL AND new_version IS NULL THEN
    RAISE EXCEPTION 'sync "%" has old_version but no new_version', v_name
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Name the new version: its writes are the ones told apart.';
  END IF;
  IF new_version = '' OR old_version = '' OR octet_length(new_version) >= 64
     OR octet_length(old_version) >= 64 THEN
    RAISE EXCEPTION 'a version of sync "%" must be a schema name of 1 to 63 bytes', v_name
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = 'A writer''s version is its pg_shift.version or the first schema of its search_path.';
  END IF;
  IF new_version = old_version THEN
    RAISE EXCEPTION 'sync "%" has the same new_version and old_version "%"', v_name, new_version
      USING ERRCODE = 'invalid_parameter_value';
  END IF;

  -- the whole definition, defaults filled in
  new_row.name := v_name;
  new_row.relation := relation;
  new_row.relation_alias := (SELECT c.relname FROM pg_class c WHERE c.oid = relation);
  new_row.search_path := sync_create.search_path;
  new_row.migration := sync_create.migration;
  new_row.phase := sync_create.phase;
  new_row.direction := 'forward';
  new_row.key_follows_source := false;
  IF set IS NOT NULL THEN
    new_row.kind := 'column';
    new_row.set_clause := set;
    new_row.reverse_set := reverse_set;
    new_row.new_version := new_version;
    new_row.old_version := old_version;
  ELSE
    new_row.kind := 'table';
    new_row.target := "into";
    new_row.target_alias := (SELECT c.relname FROM pg_class c WHERE c.oid = "into");
    SELECT * INTO fwd FROM shift_internal._sync_mapping(v_name, 'forward', relation, "into", columns,
                                                     "select", key);
    new_row.target_columns := fwd.out_columns;
    new_row.expressions := fwd.out_expressions;
    new_row.target_key := fwd.out_key;
    IF reverse THEN
      SELECT * INTO rev FROM shift_internal._sync_mapping(v_name, 'reverse', "into", relation,
                                                       reverse_columns, reverse_select, reverse_key);
      new_row.reverse_columns := rev.out_columns;
      new_row.reverse_expressions := rev.out_expressions;
      new_row.relation_key := rev.out_key;
    ELSIF reverse_columns IS NOT NULL OR reverse_select IS NOT NULL OR reverse_key IS NOT NULL THEN
      RAISE EXCEPTION 'reverse => false takes no reverse mapping'
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- is the new table's key the old table's primary key, column for column?
    -- Then a copy backfill need only lock the rows it reads against key
    -- changes (FOR KEY SHARE); otherwise against every change (FOR SHARE).
    new_row.key_follows_source := coalesce((
      SELECT bool_and(shift_internal._plain_column(m.e) = ANY (shift_internal._primary_key(relation)))
             AND count(DISTINCT shift_internal._plain_column(m.e)) = cardinality(shift_internal._primary_key(relation))
        FROM unnest(fwd.out_columns, fwd.out_expressions) AS m(c, e)
       WHERE m.c = ANY (fwd.out_key)), false);
  END IF;

  -- the caller's own sync of that name, reused as it is (checked again under
  -- its lock by _sync_record); one of another role's is refused there
  SELECT * INTO old FROM @extschema@.sync s WHERE s.name = v_name;
  IF FOUND THEN
    IF if_exists = 'reuse' AND shift_internal._sync_same(old, new_row)
       AND NOT shift_internal._sync_record(new_row, if_exists) THEN
      RETURN v_name;
    END IF;
    RAISE EXCEPTION 'sync "%" already exists%', v_name,
      CASE WHEN if_exists = 'reuse' THEN ' with a different definition' ELSE '' END
      USING ERRCODE = 'duplicate_object',
            HINT = 'Drop it with shift.sync_drop(''' || v_name || ''') or choose another name.';
  END IF;

  IF new_row.kind = 'table' AND reverse THEN
    -- columns of the old table the reverse sync never writes keep their defaults there
    SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO missing
      FROM pg_attribute a
     WHERE a.attrelid = relation AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
       AND NOT a.attname::text = ANY (new_row.reverse_columns);
    IF missing IS NOT NULL THEN
      RAISE WARNING 'the reverse mapping of sync "%" does not write % of %', v_name, missing, relation
        USING DETAIL = 'After the cut-over, rows written to the new table reach the old one without these columns (their defaults).',
              HINT = 'Give reverse_columns and reverse_select to compute them, if a rollback must restore them.';
    END IF;
  END IF;
  -- recorded as the caller's, compiled as the caller and sealed (control.c)
  PERFORM shift_internal._sync_record(new_row, if_exists);
  IF new_row.kind = 'table' THEN
    PERFORM shift_internal._sync_new_table(v_name, relation, "into");
  END IF;
  PERFORM shift_internal._sync_install(v_name);
  RETURN v_name;
END
$$;

/*
 * shift.sync_drop(name, if_exists => false): removes the sync's triggers and
 * forgets it.  After a cut-over this is the contract step that stops keeping
 * the old table current.
 */
CREATE FUNCTION @extschema@.sync_drop(name pg_catalog.text, if_exists pg_catalog.bool DEFAULT false)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  rec @extschema@.sync;
BEGIN
  SELECT * INTO rec FROM @extschema@.sync s WHERE s.name = sync_drop.name;
  IF NOT FOUND THEN
    IF if_exists THEN
      RETURN;
    END IF;
    RAISE EXCEPTION 'sync "%" does not exist', name
      USING ERRCODE = 'undefined_object',
            HINT = 'SELECT name FROM shift.sync_status lists the syncs.';
  END IF;
  PERFORM shift_internal.check_owner(format('sync "%s"', name), rec.owner);
  -- DROP TRIGGER takes an ACCESS EXCLUSIVE lock on each table (and on every
  -- partition of a partitioned one).  Writers lock the table they write, then
  -- through the sync the other one: taking both locks first, in that order,
  -- cannot deadlock with them (dropping the triggers one table at a time, the
  -- destination's or a partition's first, could).
  IF rec.kind = 'table' THEN
    IF rec.direction = 'reverse' THEN
      EXECUTE format('LOCK TABLE %s, %s IN ACCESS EXCLUSIVE MODE', rec.target, rec.relation);
    ELSE
      EXECUTE format('LOCK TABLE %s, %s IN ACCESS EXCLUSIVE MODE', rec.relation, rec.target);
    END IF;
  ELSE
    EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', rec.relation);
  END IF;
  PERFORM shift_internal._sync_uninstall(name);
  PERFORM shift_internal._sync_forget(name);
END
$$;

CREATE VIEW @extschema@.sync_status WITH (security_invoker = true) AS
SELECT s.name,
       s.kind,
       s.direction,
       CASE WHEN s.direction = 'forward' THEN s.relation ELSE s.target END AS source,
       CASE WHEN s.kind = 'table'
            THEN CASE WHEN s.direction = 'forward' THEN s.target ELSE s.relation END END AS destination,
       t.triggers,
       coalesce(t.enabled, false) AS enabled,
       s.set_clause,
       s.reverse_set,
       s.target_columns,
       s.expressions,
       s.target_key,
       s.reverse_columns,
       s.reverse_expressions,
       s.relation_key,
       s.migration,
       s.phase,
       s.owner,
       s.created_at,
       s.cutover_at,
       s.archive_name,
       -- the row is what was checked, and its triggers were made for that
       (s.digest IS NOT DISTINCT FROM shift_internal.sync_installed_digest(s.name)
        AND s.digest IS NOT DISTINCT FROM encode(sha256(convert_to(s.checked::text, 'UTF8')), 'hex')
        AND s.checked IS NOT DISTINCT FROM shift_internal.sync_definition(s)) AS definition_ok,
       s.new_version,
       s.old_version
  FROM @extschema@.sync s
  LEFT JOIN LATERAL (
    SELECT array_agg(DISTINCT tg.tgname::pg_catalog.text ORDER BY tg.tgname::pg_catalog.text) AS triggers,
           bool_and(tg.tgenabled <> 'D') AS enabled
      FROM pg_catalog.pg_trigger tg
     WHERE tg.tgfoid = 'shift_internal._sync_trigger'::pg_catalog.regproc AND tg.tgparentid = 0
       AND tg.tgrelid IN (SELECT s.relation UNION SELECT s.target
                          UNION SELECT t.relid FROM pg_catalog.pg_partition_tree(s.relation) t
                          UNION SELECT t.relid FROM pg_catalog.pg_partition_tree(s.target) t)
       AND tg.tgname = ANY (shift_internal._sync_trigger_names(s.name))) t ON true;
COMMENT ON VIEW @extschema@.sync_status IS
  'every sync: kind, direction, which table fires into which, its triggers and whether they are enabled, its SQL';


-- The version the session writes as, as a column-level sync with
-- new_version sees it (C, sync.c): pg_shift.version, else the first schema
-- of the effective search_path (current_schemas(false)); NULL if neither.
CREATE FUNCTION @extschema@.writer_version()
RETURNS pg_catalog.text
AS 'MODULE_PATHNAME', 'shift_writer_version'
LANGUAGE C STABLE;
