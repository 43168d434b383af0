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
  CHECK ((kind = 'column') = (set_clause IS NOT NULL)),
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
CREATE FUNCTION @extschema@._sync_trigger()
RETURNS trigger
AS 'MODULE_PATHNAME', 'shift_sync_trigger'
LANGUAGE C;

-- Compiles everything a sync's triggers will run (C), so mistakes surface now.
CREATE FUNCTION @extschema@._sync_check(name pg_catalog.text)
RETURNS void
AS 'MODULE_PATHNAME', 'shift_sync_check'
LANGUAGE C STRICT;

-- 'a::bigint, lower(b)' -> {a::bigint,lower(b)}, each checked to stand alone (C).
CREATE FUNCTION @extschema@._select_list("select" pg_catalog.text)
RETURNS pg_catalog.text[]
AS 'MODULE_PATHNAME', 'shift_select_list'
LANGUAGE C STRICT IMMUTABLE;

-- The names of a sync's triggers (the first one is the column-level trigger).
CREATE FUNCTION @extschema@._sync_trigger_names(name pg_catalog.text)
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
  s @extschema@.sync;
  now_def pg_catalog.jsonb;
  changed pg_catalog.text;
BEGIN
  SELECT * INTO s FROM @extschema@.sync x WHERE x.name = p_name;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'sync "%" does not exist', p_name
      USING ERRCODE = 'undefined_object', HINT = 'SELECT name FROM shift.sync_status lists the syncs.';
  END IF;
  IF s.checked IS NULL OR s.digest IS DISTINCT FROM
       encode(sha256(convert_to(s.checked::text, 'UTF8')), 'hex') THEN
    RAISE EXCEPTION 'sync "%" has no valid record of what was checked', p_name
      USING ERRCODE = 'data_corrupted',
            DETAIL = 'Its checked definition or digest was changed outside pg_shift''s functions.',
            HINT = 'Drop the sync with shift.sync_drop and create it again.';
  END IF;
  now_def := shift_internal.sync_definition(s);
  SELECT string_agg(k, ', ' ORDER BY k) INTO changed
    FROM jsonb_object_keys(now_def || s.checked) k
   WHERE now_def -> k IS DISTINCT FROM s.checked -> k;
  IF changed IS NOT NULL THEN
    RAISE EXCEPTION 'sync "%" was changed since it was checked: %', p_name, changed
      USING ERRCODE = 'data_corrupted',
            DETAIL = 'A sync''s triggers run only what shift.sync_create checked; these fields differ from it.',
            HINT = 'Drop the sync with shift.sync_drop and create it again.';
  END IF;
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
           WHERE tg.tgfoid = '@extschema@._sync_trigger'::pg_catalog.regproc AND tg.tgparentid = 0
             AND tg.tgname = ANY (@extschema@._sync_trigger_names(p_name))
             AND substr(tg.tgargs, 1, octet_length(p_name) + 1)
                 = convert_to(p_name, current_setting('server_encoding')) || decode('00', 'hex')) t
$$;

/*
 * shift._sync_record(row, if_exists) -> created
 *
 * Records a sync sync_create has worked out (its owner the caller, its
 * search_path pinned), compiles everything its triggers will run as that
 * owner (shift._sync_check) and seals what was checked.  An identical sync
 * of the caller's with if_exists => 'reuse' is kept (false); any other
 * existing sync of that name is an error.
 */
CREATE FUNCTION shift_internal._sync_record(new_row @extschema@.sync, if_exists pg_catalog.text)
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
    IF if_exists = 'reuse' AND old.kind = new_row.kind AND old.relation = new_row.relation
       AND old.set_clause IS NOT DISTINCT FROM new_row.set_clause
       AND old.reverse_set IS NOT DISTINCT FROM new_row.reverse_set
       AND old.target IS NOT DISTINCT FROM new_row.target
       AND old.target_columns IS NOT DISTINCT FROM new_row.target_columns
       AND old.expressions IS NOT DISTINCT FROM new_row.expressions
       AND old.target_key IS NOT DISTINCT FROM new_row.target_key
       AND old.reverse_columns IS NOT DISTINCT FROM new_row.reverse_columns
       AND old.reverse_expressions IS NOT DISTINCT FROM new_row.reverse_expressions
       AND old.relation_key IS NOT DISTINCT FROM new_row.relation_key
       AND old.search_path IS NOT DISTINCT FROM new_row.search_path
       AND old.migration IS NOT DISTINCT FROM new_row.migration
       AND old.phase IS NOT DISTINCT FROM new_row.phase THEN
      PERFORM shift_internal.sync_verify(old.name);
      RETURN false;
    END IF;
    RAISE EXCEPTION 'sync "%" already exists%', new_row.name,
      CASE WHEN if_exists = 'reuse' THEN ' with a different definition' ELSE '' END
      USING ERRCODE = 'duplicate_object',
            HINT = 'Drop it with shift.sync_drop(''' || new_row.name || ''') or choose another name.';
  END IF;
  INSERT INTO @extschema@.sync SELECT new_row.*;
  PERFORM @extschema@._sync_check(new_row.name);
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
         digest = encode(sha256(convert_to(shift_internal.sync_definition(s)::text, 'UTF8')), 'hex')
   WHERE s.name = p_name
$$;

/*
 * shift._sync_forget(name): forgets a sync whose triggers sync_drop removed.
 */
CREATE FUNCTION shift_internal._sync_forget(p_name pg_catalog.text)
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
 * shift._sync_turn(...): records a cut-over (reverse false) or its revert
 * (reverse true) that _cutover_swap has just made, once it has checked the
 * sync is still in the direction the swap started from; re-compiles the
 * turned-around triggers' SQL as the owner and seals it.
 */
CREATE FUNCTION shift_internal._sync_turn(p_name pg_catalog.text, reverse pg_catalog.bool,
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
  PERFORM @extschema@._sync_check(p_name);
  PERFORM shift_internal._sync_seal(p_name);
END
$$;

-- What the caller-level functions below call to change shift.sync (control.c).
CREATE FUNCTION @extschema@._sync_record(new_row @extschema@.sync, if_exists pg_catalog.text)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'shift_owner_call'
LANGUAGE C;
CREATE FUNCTION @extschema@._sync_forget(p_name pg_catalog.text)
RETURNS void
AS 'MODULE_PATHNAME', 'shift_owner_call'
LANGUAGE C;
CREATE FUNCTION @extschema@._sync_turn(p_name pg_catalog.text, reverse pg_catalog.bool,
  p_archive_name pg_catalog.text, p_relation_name pg_catalog.text, p_target_name pg_catalog.text,
  p_repointed pg_catalog.text[], p_to_validate pg_catalog.oid[])
RETURNS void
AS 'MODULE_PATHNAME', 'shift_owner_call'
LANGUAGE C;

-- Creates the triggers of a sync in its current direction.
CREATE FUNCTION @extschema@._sync_install(p_name pg_catalog.text)
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
  fn pg_catalog.text := '@extschema@._sync_trigger';
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
CREATE FUNCTION @extschema@._sync_uninstall(p_name pg_catalog.text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  t record;
BEGIN
  FOR t IN SELECT tg.tgname, tg.tgrelid::pg_catalog.regclass AS rel
             FROM pg_trigger tg
            WHERE tg.tgfoid = '@extschema@._sync_trigger'::pg_catalog.regproc AND tg.tgparentid = 0
              AND tg.tgname = ANY (@extschema@._sync_trigger_names(p_name))
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
CREATE FUNCTION @extschema@._writable_columns(rel pg_catalog.regclass)
RETURNS pg_catalog.text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce(array_agg(a.attname::text ORDER BY a.attnum), '{}')
    FROM pg_attribute a
   WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
$$;

-- The primary key's column names, or NULL.
CREATE FUNCTION @extschema@._primary_key(rel pg_catalog.regclass)
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
CREATE FUNCTION @extschema@._sync_mapping(sync_name pg_catalog.text, what pg_catalog.text,
  src pg_catalog.regclass, dst pg_catalog.regclass, columns pg_catalog.text[],
  "select" pg_catalog.text, key pg_catalog.text[],
  OUT out_columns pg_catalog.text[], OUT out_expressions pg_catalog.text[], OUT out_key pg_catalog.text[])
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  c pg_catalog.text;
  src_cols pg_catalog.text[] := @extschema@._writable_columns(src);
  dst_cols pg_catalog.text[] := @extschema@._writable_columns(dst);
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
    out_expressions := @extschema@._select_list("select");
  END IF;
  IF cardinality(out_expressions) <> cardinality(out_columns) THEN
    RAISE EXCEPTION 'the % mapping of sync "%" has % columns but % expressions', what, sync_name,
                    cardinality(out_columns), cardinality(out_expressions)
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Give one expression per column, in the same order.';
  END IF;
  out_key := coalesce(key, @extschema@._primary_key(dst));
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

-- The column an expression is, if it is nothing but a column (maybe cast): 'id', '"Id"::bigint'.
CREATE FUNCTION @extschema@._plain_column(expr pg_catalog.text)
RETURNS pg_catalog.text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE WHEN m[1] IS NOT NULL THEN lower(m[1]) ELSE replace(m[2], '""', '"') END
    FROM regexp_match(expr, '^\s*(?:([A-Za-z_][A-Za-z0-9_$]*)|"((?:[^"]|"")+)")'
                            '\s*(?:::\s*[A-Za-z_][A-Za-z0-9_ ]*(?:\s*\([0-9, ]*\))?(?:\[\])?\s*)?$') AS m
$$;

/*
 * shift.sync_create(name, relation, set => | into =>, ...) -> name
 *
 * Column level: set => 'new_col = expr(old cols), ...' keeps new columns
 * computed on every INSERT and UPDATE; reverse_set => 'old_col = expr(new
 * cols)' computes the old ones instead when a writer changed only new
 * columns (to values that disagree with set's).
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
  search_path pg_catalog.text DEFAULT pg_catalog.current_setting('search_path'))
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
  writers pg_catalog.text;
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
  ELSE
    new_row.kind := 'table';
    new_row.target := "into";
    new_row.target_alias := (SELECT c.relname FROM pg_class c WHERE c.oid = "into");
    SELECT * INTO fwd FROM @extschema@._sync_mapping(v_name, 'forward', relation, "into", columns,
                                                     "select", key);
    new_row.target_columns := fwd.out_columns;
    new_row.expressions := fwd.out_expressions;
    new_row.target_key := fwd.out_key;
    IF reverse THEN
      SELECT * INTO rev FROM @extschema@._sync_mapping(v_name, 'reverse', "into", relation,
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
      SELECT bool_and(@extschema@._plain_column(m.e) = ANY (@extschema@._primary_key(relation)))
             AND count(DISTINCT @extschema@._plain_column(m.e)) = cardinality(@extschema@._primary_key(relation))
        FROM unnest(fwd.out_columns, fwd.out_expressions) AS m(c, e)
       WHERE m.c = ANY (fwd.out_key)), false);
  END IF;

  -- the caller's own sync of that name, reused as it is (checked again under
  -- its lock by _sync_record); one of another role's is refused there
  SELECT * INTO old FROM @extschema@.sync s WHERE s.name = v_name;
  IF FOUND THEN
    IF if_exists = 'reuse' AND old.kind = new_row.kind AND old.relation = new_row.relation
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
       AND NOT @extschema@._sync_record(new_row, if_exists) THEN
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
  PERFORM @extschema@._sync_record(new_row, if_exists);
  IF new_row.kind = 'table' THEN
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
  END IF;
  PERFORM @extschema@._sync_install(v_name);
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
  PERFORM @extschema@._sync_uninstall(name);
  PERFORM @extschema@._sync_forget(name);
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
        AND s.checked IS NOT DISTINCT FROM shift_internal.sync_definition(s)) AS definition_ok
  FROM @extschema@.sync s
  LEFT JOIN LATERAL (
    SELECT array_agg(DISTINCT tg.tgname::pg_catalog.text ORDER BY tg.tgname::pg_catalog.text) AS triggers,
           bool_and(tg.tgenabled <> 'D') AS enabled
      FROM pg_catalog.pg_trigger tg
     WHERE tg.tgfoid = '@extschema@._sync_trigger'::pg_catalog.regproc AND tg.tgparentid = 0
       AND tg.tgrelid IN (SELECT s.relation UNION SELECT s.target
                          UNION SELECT t.relid FROM pg_catalog.pg_partition_tree(s.relation) t
                          UNION SELECT t.relid FROM pg_catalog.pg_partition_tree(s.target) t)
       AND tg.tgname = ANY (@extschema@._sync_trigger_names(s.name))) t ON true;
COMMENT ON VIEW @extschema@.sync_status IS
  'every sync: kind, direction, which table fires into which, its triggers and whether they are enabled, its SQL';

-- ---------------------------------------------------------------------------
-- Cut-over
-- ---------------------------------------------------------------------------

-- Sessions holding a lock on either table, as text for a message.
CREATE FUNCTION @extschema@._lock_holders(rel1 pg_catalog.regclass, rel2 pg_catalog.regclass,
                                          older_than pg_catalog.interval DEFAULT NULL)
RETURNS pg_catalog.text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT string_agg(DISTINCT format('pid %s (%s, transaction open %s%s)', x.pid, coalesce(x.state, '?'),
                                    coalesce(date_trunc('second', now() - x.xact_start)::text, '?'),
                                    CASE WHEN x.query IS NOT NULL AND x.query <> ''
                                         THEN ': ' || left(regexp_replace(x.query, '\s+', ' ', 'g'), 80)
                                         ELSE '' END), '; ')
    FROM (SELECT DISTINCT a.pid, a.state, a.xact_start, a.query
            FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
           WHERE l.locktype = 'relation' AND l.relation IN (rel1::oid, rel2::oid) AND l.granted
             AND l.pid <> pg_backend_pid()
             AND (older_than IS NULL OR a.xact_start < now() - older_than)) x
$$;

/*
 * shift._cutover_blockers(rel1, rel2) -> text: the backfill jobs, of any
 * role, that still write or read either table (not done, not cancelled),
 * with the pg_cron schedule each was last run by; NULL if none.  A cut-over
 * (or its revert) renames the tables: such a job would follow its table's
 * OID to the archive and write there, where the live table never sees it.
 * Read as the extension's owner (it sees every role's jobs).
 */
CREATE FUNCTION shift_internal._cutover_blockers(rel1 pg_catalog.regclass, rel2 pg_catalog.regclass)
RETURNS pg_catalog.text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT string_agg(format('backfill job "%s" of role %s (%s%s)', b.name, b.owner, b.state,
                           CASE WHEN b.schedule IS NOT NULL
                                THEN format(', run by pg_cron job "%s"', b.schedule) ELSE '' END),
                    '; ' ORDER BY b.name)
    FROM @extschema@.backfill b
   WHERE b.state NOT IN ('done', 'cancelled')
     AND (b.relation IN (rel1, rel2) OR b.into_relation IN (rel1, rel2))
$$;
CREATE FUNCTION @extschema@._cutover_blockers(rel1 pg_catalog.regclass, rel2 pg_catalog.regclass)
RETURNS pg_catalog.text
AS 'MODULE_PATHNAME', 'shift_owner_call'
LANGUAGE C;

/*
 * shift_internal.cutover_check(sync, reverse, check_mode, check_rows) (C,
 * sync.c): compares the two sides under the cut-over's locks, running the
 * sync's expressions as the sync's owner.
 */
CREATE FUNCTION shift_internal.cutover_check(sync pg_catalog.text, reverse pg_catalog.bool,
                                             check_mode pg_catalog.text, check_rows pg_catalog.int4)
RETURNS void
AS 'MODULE_PATHNAME', 'shift_cutover_check'
LANGUAGE C STRICT;

-- Before rel moves to schema nsp: its indexes and sequences move with it, so those whose
-- names nsp already has (orders_pkey of the old table) get free ones.  Returns how many.
CREATE FUNCTION @extschema@._free_names(rel pg_catalog.regclass, nsp pg_catalog.name)
RETURNS pg_catalog.int4
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  o record;
  candidate pg_catalog.name;
  n pg_catalog.int4 := 0;
  k pg_catalog.int4;
BEGIN
  FOR o IN SELECT c.oid::pg_catalog.regclass AS obj, c.relname, c.relkind
             FROM pg_class c
            WHERE (c.oid IN (SELECT i.indexrelid FROM pg_index i WHERE i.indrelid = rel)
                   OR c.oid IN (SELECT d.objid FROM pg_depend d
                                 WHERE d.classid = 'pg_class'::pg_catalog.regclass AND d.refobjid = rel
                                   AND d.refclassid = 'pg_class'::pg_catalog.regclass AND d.deptype IN ('a', 'i')))
              AND c.relkind IN ('i', 'I', 'S')
              AND EXISTS (SELECT 1 FROM pg_class x JOIN pg_namespace xn ON xn.oid = x.relnamespace
                           WHERE xn.nspname = nsp AND x.relname = c.relname)
  LOOP
    k := 1;
    LOOP
      candidate := left(o.relname, 55) || '_' || k;
      EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_class x JOIN pg_namespace xn ON xn.oid = x.relnamespace
                             WHERE x.relname = candidate
                               AND xn.nspname IN (nsp, (SELECT cn.nspname FROM pg_class c2
                                                          JOIN pg_namespace cn ON cn.oid = c2.relnamespace
                                                         WHERE c2.oid = rel)));
      k := k + 1;
    END LOOP;
    EXECUTE format('ALTER %s %s RENAME TO %I', CASE WHEN o.relkind = 'S' THEN 'SEQUENCE' ELSE 'INDEX' END,
                   o.obj, candidate);
    n := n + 1;
  END LOOP;
  RETURN n;
END
$$;

/*
 * The swap itself, under the locks: make "to" what "from" was.  Views on
 * "from" are redefined on "to", foreign keys into "from" re-pointed at "to"
 * (NOT VALID: validate them after), sequences brought past both tables'
 * values and given to "to", "from"'s grants and owner copied, names
 * swapped, and the sync's triggers turned around.  Returns what it did.
 */
CREATE FUNCTION @extschema@._cutover_swap(s @extschema@.sync, reverse pg_catalog.bool,
                                          archive pg_catalog.text,
                                          OUT views pg_catalog.text[], OUT foreign_keys pg_catalog.text[],
                                          OUT to_validate pg_catalog.text[], OUT sequences pg_catalog.text[])
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  from_rel pg_catalog.regclass := CASE WHEN reverse THEN s.target ELSE s.relation END;
  to_rel pg_catalog.regclass := CASE WHEN reverse THEN s.relation ELSE s.target END;
  from_nsp pg_catalog.name;
  from_name pg_catalog.name;
  to_nsp pg_catalog.name;
  to_name pg_catalog.name;
  from_owner pg_catalog.name;
  to_owner pg_catalog.name;
  v record;
  fk record;
  g record;
  sq record;
  view_names pg_catalog.regclass[] := '{}';
  view_defs pg_catalog.text[] := '{}';
  view_opts pg_catalog.text[] := '{}';
  view_texts pg_catalog.text[] := '{}';
  view_owners pg_catalog.name[] := '{}';
  view_acls pg_catalog.text[] := '{}';
  view_comments pg_catalog.text[] := '{}';
  fk_children pg_catalog.regclass[] := '{}';
  fk_names pg_catalog.name[] := '{}';
  fk_defs pg_catalog.text[] := '{}';
  target_id pg_catalog.text[] := CASE WHEN s.target_name IS NOT NULL THEN parse_ident(s.target_name) END;
  repointed pg_catalog.text[] := '{}';
  pending pg_catalog.oid[] := '{}';
  left_behind pg_catalog.text;
  new_val pg_catalog.int8;
  col_max pg_catalog.int8;
  owned_seqs pg_catalog.regclass[] := '{}';
  owned_cols pg_catalog.name[] := '{}';
BEGIN
  views := '{}';
  foreign_keys := '{}';
  to_validate := '{}';
  sequences := '{}';
  SELECT n.nspname, c.relname, pg_get_userbyid(c.relowner) INTO from_nsp, from_name, from_owner
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = from_rel;
  SELECT n.nspname, c.relname, pg_get_userbyid(c.relowner) INTO to_nsp, to_name, to_owner
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_rel;

  -- what depends on "from", captured before the names change
  FOR v IN SELECT DISTINCT r.ev_class::pg_catalog.regclass AS vname, pg_get_viewdef(r.ev_class) AS def,
                  c.reloptions, pg_get_userbyid(c.relowner) AS owner, c.relacl::pg_catalog.text AS acl,
                  obj_description(r.ev_class, 'pg_class') AS comment
             FROM pg_depend d
             JOIN pg_rewrite r ON r.oid = d.objid
             JOIN pg_class c ON c.oid = r.ev_class
            WHERE d.classid = 'pg_rewrite'::pg_catalog.regclass AND d.refclassid = 'pg_class'::pg_catalog.regclass
              AND d.refobjid = from_rel AND c.relkind = 'v' AND r.ev_class <> from_rel
  LOOP
    view_names := view_names || v.vname;
    view_defs := view_defs || v.def;
    view_opts := view_opts || CASE WHEN v.reloptions IS NOT NULL
                                   THEN ' WITH (' || array_to_string(v.reloptions, ', ') || ')' ELSE '' END;
    view_texts := view_texts || v.vname::pg_catalog.text;
    view_owners := view_owners || v.owner;
    view_acls := view_acls || v.acl;
    view_comments := view_comments || v.comment;
  END LOOP;
  FOR fk IN SELECT con.conname, con.conrelid::pg_catalog.regclass AS child, pg_get_constraintdef(con.oid) AS def
              FROM pg_constraint con
             WHERE con.contype = 'f' AND con.confrelid = from_rel AND con.conparentid = 0
               AND con.conrelid NOT IN (from_rel, to_rel)
  LOOP
    fk_children := fk_children || fk.child;
    fk_names := fk_names || fk.conname;
    fk_defs := fk_defs || fk.def;
  END LOOP;

  -- "from"'s grants and owner (the owner first: a sequence can only be OWNED BY a
  -- table of its own owner, and the one "from" owned is given to "to" below)
  PERFORM @extschema@.copy_grants(from_rel, to_rel);
  IF to_owner <> from_owner THEN
    EXECUTE format('ALTER TABLE %s OWNER TO %I', to_rel, from_owner);
  END IF;

  -- sequences of "to": past every value either table holds or handed out
  FOR sq IN
    SELECT a.attname, a.attnum, format_type(a.atttypid, a.atttypmod) AS coltype, a.atttypid,
           dep.refobjid::pg_catalog.regclass AS seq
      FROM pg_attribute a
      JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
      JOIN pg_depend dep ON dep.classid = 'pg_attrdef'::pg_catalog.regclass AND dep.objid = ad.oid
                        AND dep.refclassid = 'pg_class'::pg_catalog.regclass
      JOIN pg_class sc ON sc.oid = dep.refobjid AND sc.relkind = 'S'
     WHERE a.attrelid = to_rel AND a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT a.attname, a.attnum, format_type(a.atttypid, a.atttypmod), a.atttypid,
           dep.objid::pg_catalog.regclass
      FROM pg_attribute a
      JOIN pg_depend dep ON dep.refclassid = 'pg_class'::pg_catalog.regclass AND dep.refobjid = a.attrelid
                        AND dep.refobjsubid = a.attnum AND dep.classid = 'pg_class'::pg_catalog.regclass
                        AND dep.deptype = 'i'
     WHERE a.attrelid = to_rel AND a.attidentity <> ''
  LOOP
    SELECT greatest(coalesce(ps.last_value, ps.start_value - 1), ps.start_value - 1) INTO new_val
      FROM pg_sequences ps
     WHERE ps.schemaname = (SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                             WHERE c.oid = sq.seq)
       AND ps.sequencename = (SELECT c.relname FROM pg_class c WHERE c.oid = sq.seq);
    IF sq.atttypid IN ('int2'::pg_catalog.regtype, 'int4'::pg_catalog.regtype, 'int8'::pg_catalog.regtype) THEN
      EXECUTE format('SELECT max(%I)::int8 FROM %s', sq.attname, to_rel) INTO col_max;
      new_val := greatest(new_val, col_max);
      -- and past what the same column of "from" handed out
      SELECT greatest(new_val, max(coalesce(ps.last_value, 0))) INTO new_val
        FROM pg_attribute fa
        JOIN pg_attrdef fad ON fad.adrelid = fa.attrelid AND fad.adnum = fa.attnum
        JOIN pg_depend fd ON fd.classid = 'pg_attrdef'::pg_catalog.regclass AND fd.objid = fad.oid
                         AND fd.refclassid = 'pg_class'::pg_catalog.regclass
        JOIN pg_class fsc ON fsc.oid = fd.refobjid AND fsc.relkind = 'S'
        JOIN pg_namespace fsn ON fsn.oid = fsc.relnamespace
        JOIN pg_sequences ps ON ps.schemaname = fsn.nspname AND ps.sequencename = fsc.relname
       WHERE fa.attrelid = from_rel AND fa.attname = sq.attname;
    END IF;
    -- a sequence declared narrower than its new column (serial int -> bigint)
    IF EXISTS (SELECT 1 FROM pg_sequence ps WHERE ps.seqrelid = sq.seq
                  AND ps.seqtypid IN ('int2'::pg_catalog.regtype, 'int4'::pg_catalog.regtype)
                  AND sq.atttypid = 'int8'::pg_catalog.regtype) THEN
      EXECUTE format('ALTER SEQUENCE %s AS bigint', sq.seq);
    END IF;
    IF new_val IS NOT NULL AND new_val >= (SELECT ps.seqmin FROM pg_sequence ps WHERE ps.seqrelid = sq.seq) THEN
      PERFORM setval(sq.seq, new_val, true);
    END IF;
    -- owned by a column of "from": it would go when the archive is dropped.  Given to "to"
    -- below, once "to" is in "from"'s schema (OWNED BY wants the table in the sequence's).
    IF EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::pg_catalog.regclass AND d.objid = sq.seq
                  AND d.refobjid = from_rel AND d.deptype = 'a') THEN
      owned_seqs := owned_seqs || sq.seq;
      owned_cols := owned_cols || sq.attname;
    END IF;
    sequences := sequences || format('%s (%s.%s, next %s)', sq.seq, from_name, sq.attname, coalesce(new_val + 1, 1));
    -- the reverse sync writes these values into the old table's narrower column
    IF NOT reverse THEN
      SELECT CASE fa.atttypid WHEN 'int2'::pg_catalog.regtype THEN 32767
                              WHEN 'int4'::pg_catalog.regtype THEN 2147483647 END - coalesce(new_val, 0)
        INTO col_max
        FROM pg_attribute fa WHERE fa.attrelid = from_rel AND fa.attname = sq.attname AND NOT fa.attisdropped;
      IF col_max IS NOT NULL AND col_max < 214748364 THEN   -- within a tenth of integer's range
        RAISE WARNING '% values are left before %.% outgrows the old table''s % column', col_max, from_name,
                      sq.attname, (SELECT format_type(fa.atttypid, NULL) FROM pg_attribute fa
                                    WHERE fa.attrelid = from_rel AND fa.attname = sq.attname)
          USING DETAIL = 'The reverse sync writes every new row into the archive; past that value those writes, and so the application''s, fail.',
                HINT = 'Contract (drop the reverse sync) before then.';
      END IF;
    END IF;
  END LOOP;

  -- the names: "from" steps aside, "to" takes its place
  IF reverse THEN
    EXECUTE format('ALTER TABLE %s RENAME TO %I', from_rel, left(target_id[2], 50) || '_shift_swap');
    EXECUTE format('ALTER TABLE %s RENAME TO %I', to_rel, from_name);
    IF to_nsp <> from_nsp THEN
      PERFORM @extschema@._free_names(to_rel, from_nsp);
      EXECUTE format('ALTER TABLE %s SET SCHEMA %I', to_rel, from_nsp);
    END IF;
    -- "to" is in the sequences' schema now, and "from" has not taken them along yet
    FOR i IN 1 .. coalesce(array_length(owned_seqs, 1), 0) LOOP
      EXECUTE format('ALTER SEQUENCE %s OWNED BY %s.%I', owned_seqs[i], to_rel, owned_cols[i]);
    END LOOP;
    IF target_id[1] <> from_nsp THEN
      PERFORM @extschema@._free_names(from_rel, target_id[1]);
      EXECUTE format('ALTER TABLE %s SET SCHEMA %I', from_rel, target_id[1]);
    END IF;
    EXECUTE format('ALTER TABLE %s RENAME TO %I', from_rel, target_id[2]);
  ELSE
    EXECUTE format('ALTER TABLE %s RENAME TO %I', from_rel, archive);
    IF to_nsp <> from_nsp THEN
      PERFORM @extschema@._free_names(to_rel, from_nsp);
      EXECUTE format('ALTER TABLE %s SET SCHEMA %I', to_rel, from_nsp);
    END IF;
    FOR i IN 1 .. coalesce(array_length(owned_seqs, 1), 0) LOOP
      EXECUTE format('ALTER SEQUENCE %s OWNED BY %s.%I', owned_seqs[i], to_rel, owned_cols[i]);
    END LOOP;
    IF to_name <> from_name THEN   -- v2.orders -> orders: renaming to its own name fails
      EXECUTE format('ALTER TABLE %s RENAME TO %I', to_rel, from_name);
    END IF;
  END IF;
  -- views: their text names the table, which is now "to"
  FOR i IN 1 .. coalesce(array_length(view_names, 1), 0) LOOP
    BEGIN
      EXECUTE format('CREATE OR REPLACE VIEW %s%s AS %s', view_names[i], view_opts[i],
                     rtrim(view_defs[i], '; '));
    EXCEPTION WHEN invalid_table_definition OR feature_not_supported OR datatype_mismatch THEN
      -- a column changes type: a view nothing depends on is dropped and made again, as it was
      IF EXISTS (SELECT 1 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
                  WHERE d.classid = 'pg_rewrite'::pg_catalog.regclass AND d.refobjid = view_names[i]
                    AND r.ev_class <> view_names[i]) THEN
        RAISE EXCEPTION 'view % cannot follow % to its new table: %', view_names[i], from_name, SQLERRM
          USING ERRCODE = 'object_not_in_prerequisite_state',
                DETAIL = 'Other views depend on it, so it cannot be dropped and made again here.',
                HINT = 'Drop and recreate these views in the cut-over phase, then cut over.';
      END IF;
      EXECUTE format('DROP VIEW %s', view_texts[i]);
      EXECUTE format('CREATE VIEW %s%s AS %s', view_texts[i], view_opts[i],
                     rtrim(view_defs[i], '; '));
      EXECUTE format('ALTER VIEW %s OWNER TO %I', view_texts[i], view_owners[i]);
      FOR g IN SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END AS grantee,
                      a.privilege_type, a.is_grantable
                 FROM aclexplode(nullif(view_acls[i], '{}')::pg_catalog.aclitem[]) a   -- NULL, empty: none
                WHERE pg_get_userbyid(a.grantee) IS DISTINCT FROM view_owners[i]
      LOOP
        EXECUTE format('GRANT %s ON %s TO %s%s', g.privilege_type, view_texts[i], g.grantee,
                       CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
      END LOOP;
      IF view_comments[i] IS NOT NULL THEN
        EXECUTE format('COMMENT ON VIEW %s IS %L', view_texts[i], view_comments[i]);
      END IF;
    END;
    views := views || view_texts[i];
  END LOOP;
  -- foreign keys into the table: re-pointed, NOT VALID (validation takes no strong lock, later)
  FOR i IN 1 .. coalesce(array_length(fk_names, 1), 0) LOOP
    EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I, ADD CONSTRAINT %I %s%s', fk_children[i], fk_names[i],
                   fk_names[i], fk_defs[i], CASE WHEN fk_defs[i] LIKE '% NOT VALID' THEN '' ELSE ' NOT VALID' END);
    foreign_keys := foreign_keys || format('%s.%I', fk_children[i], fk_names[i]);
    -- valid before pg_shift touched it (now, or at the first cut-over): validate it after
    IF fk_defs[i] NOT LIKE '% NOT VALID'
       OR format('%s.%I', fk_children[i], fk_names[i]) = ANY (coalesce(s.repointed_fks, '{}')) THEN
      to_validate := to_validate || format('ALTER TABLE %s VALIDATE CONSTRAINT %I', fk_children[i], fk_names[i]);
      repointed := repointed || format('%s.%I', fk_children[i], fk_names[i]);
      pending := pending || (SELECT con.oid FROM pg_constraint con
                              WHERE con.conrelid = fk_children[i] AND con.conname = fk_names[i]);
    END IF;
  END LOOP;

  -- what stays with the old table: say so
  SELECT string_agg(format('trigger %I', t.tgname), ', ') INTO left_behind
    FROM pg_trigger t
   WHERE t.tgrelid = from_rel AND NOT t.tgisinternal
     AND t.tgfoid <> '@extschema@._sync_trigger'::pg_catalog.regproc
     AND NOT EXISTS (SELECT 1 FROM pg_trigger t2 WHERE t2.tgrelid = to_rel AND t2.tgname = t.tgname);
  SELECT concat_ws(', ', left_behind, string_agg(DISTINCT format('materialized view %s', r.ev_class::pg_catalog.regclass), ', '))
    INTO left_behind
    FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class c ON c.oid = r.ev_class
   WHERE d.classid = 'pg_rewrite'::pg_catalog.regclass AND d.refobjid = from_rel AND c.relkind = 'm';
  SELECT concat_ws(', ', nullif(left_behind, ''),
                   string_agg(DISTINCT format('column privileges on %I', a.attname), ', '))
    INTO left_behind
    FROM pg_attribute a WHERE a.attrelid = from_rel AND a.attacl IS NOT NULL AND NOT a.attisdropped;
  IF nullif(left_behind, '') IS NOT NULL THEN
    RAISE WARNING 'these stay with % and do not follow it to %: %', from_name, to_name, left_behind
      USING HINT = 'Recreate them on the new table before or right after the cut-over.';
  END IF;

  -- the sync turns around: recorded, its SQL compiled against the renamed
  -- tables as its owner and sealed (_sync_turn), then its triggers made again
  PERFORM @extschema@._sync_uninstall(s.name);
  PERFORM @extschema@._sync_turn(s.name, reverse,
    quote_ident(from_nsp) || '.' || quote_ident(archive),
    quote_ident(from_nsp) || '.' || quote_ident(from_name),
    quote_ident(to_nsp) || '.' || quote_ident(to_name),
    repointed, pending);
  PERFORM @extschema@._sync_install(s.name);
END
$$;

-- Shared by cutover and cutover_revert: the locks, the retries, the check, the swap.
CREATE FUNCTION @extschema@._cutover(p_sync pg_catalog.text, reverse pg_catalog.bool, archive pg_catalog.text,
  check_mode pg_catalog.text, check_rows pg_catalog.int4, lock_timeout pg_catalog.text,
  retries pg_catalog.int4, backoff pg_catalog.float8, max_backoff pg_catalog.float8,
  max_xact_age pg_catalog.interval)
RETURNS TABLE (attempts pg_catalog.int4, lock_wait_ms pg_catalog.float8, locked_ms pg_catalog.float8,
               live pg_catalog.text, archived pg_catalog.text, views pg_catalog.text[],
               foreign_keys pg_catalog.text[], to_validate pg_catalog.text[], sequences pg_catalog.text[])
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  s @extschema@.sync;
  first_rel pg_catalog.regclass;
  second_rel pg_catalog.regclass;
  old_timeout pg_catalog.text := current_setting('lock_timeout');
  blockers pg_catalog.text;
  t0 pg_catalog.timestamptz;
  t1 pg_catalog.timestamptz;
  r record;
  attempt pg_catalog.int4 := 0;
  what pg_catalog.text := CASE WHEN reverse THEN 'revert the cut-over of' ELSE 'cut over' END;
BEGIN
  SELECT * INTO s FROM @extschema@.sync x WHERE x.name = p_sync;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'sync "%" does not exist', p_sync
      USING ERRCODE = 'undefined_object', HINT = 'SELECT name FROM shift.sync_status lists the syncs.';
  END IF;
  PERFORM shift_internal.check_owner(format('sync "%s"', p_sync), s.owner);
  -- what its triggers run is what was checked, and what the row says now
  IF shift_internal.sync_verify(p_sync) IS DISTINCT FROM shift_internal.sync_installed_digest(p_sync) THEN
    RAISE EXCEPTION 'cannot % sync "%": its triggers were not made for its recorded definition', what, p_sync
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = 'The triggers on the tables are missing, disagree, or carry another digest than shift.sync records.',
            HINT = 'SELECT * FROM shift.sync_status shows the triggers; drop the sync with shift.sync_drop and create it again.';
  END IF;
  IF s.kind <> 'table' THEN
    RAISE EXCEPTION 'sync "%" is column-level: there is no table to cut over to', p_sync
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'A column-level sync serves both columns at once; drop it once the application has moved.';
  END IF;
  IF NOT reverse AND s.direction <> 'forward' THEN
    RAISE EXCEPTION 'sync "%" is already cut over (at %)', p_sync, s.cutover_at
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'shift.cutover_revert goes back; shift.sync_drop ends the reverse sync.';
  END IF;
  IF reverse AND s.direction <> 'reverse' THEN
    RAISE EXCEPTION 'sync "%" has not been cut over', p_sync
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  IF NOT reverse AND s.reverse_columns IS NULL THEN
    RAISE EXCEPTION 'sync "%" has no reverse mapping: after this cut-over nothing would keep % current', p_sync, s.relation
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Create the sync with a reverse mapping (the default) so that a rollback after the cut-over loses nothing.';
  END IF;
  IF check_rows < 1 OR retries < 0 OR backoff < 0 OR max_backoff < backoff THEN
    RAISE EXCEPTION 'check_rows must be positive, retries and backoff not negative, max_backoff at least backoff'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF NOT reverse THEN
    archive := coalesce(archive, (SELECT c.relname || '_archive' FROM pg_class c WHERE c.oid = s.relation));
    -- a longer name would be cut to 63 bytes, perhaps to the table's own name: say so before any lock
    IF octet_length(archive) >= 64 THEN
      RAISE EXCEPTION 'archive name "%" is longer than 63 bytes', archive
        USING ERRCODE = 'name_too_long',
              DETAIL = 'PostgreSQL would cut it short, and the rename could then collide.',
              HINT = 'Pass archive => a shorter name.';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_class c WHERE c.relname = archive
                  AND c.relnamespace = (SELECT c2.relnamespace FROM pg_class c2 WHERE c2.oid = s.relation)) THEN
      RAISE EXCEPTION 'cannot rename % to "%": that name is taken', s.relation, archive
        USING ERRCODE = 'duplicate_table', HINT = 'Pass archive => another name.';
    END IF;
  END IF;
  -- what the swap could not do, said before taking any lock
  IF EXISTS (SELECT 1 FROM pg_class c WHERE c.oid IN (s.relation, s.target)
                AND (c.relrowsecurity OR c.relforcerowsecurity)) THEN
    RAISE EXCEPTION 'cannot % sync "%": row-level security is enabled on % or %', what, p_sync, s.relation, s.target
      USING ERRCODE = 'feature_not_supported',
            DETAIL = 'Policies do not follow the table to its new name.';
  END IF;
  blockers := (SELECT string_agg(format('%s.%I', con.conrelid::pg_catalog.regclass, con.conname), ', ')
                 FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
                WHERE con.contype = 'f' AND con.conparentid = 0 AND c.relkind = 'p'
                  AND con.confrelid = CASE WHEN reverse THEN s.target ELSE s.relation END);
  IF blockers IS NOT NULL THEN
    RAISE EXCEPTION 'cannot % sync "%": partitioned tables reference it (%)', what, p_sync, blockers
      USING ERRCODE = 'feature_not_supported',
            DETAIL = 'PostgreSQL 15 cannot add a NOT VALID foreign key to a partitioned table, and a validated one would scan it under the cut-over''s locks.',
            HINT = 'Drop those foreign keys before the cut-over and add them to the new table afterwards (db:add_foreign_key).';
  END IF;
  -- a backfill still at work on either table would follow it to the archive
  blockers := @extschema@._cutover_blockers(s.relation, s.target);
  IF blockers IS NOT NULL THEN
    RAISE EXCEPTION 'cannot % sync "%": a backfill is not finished on % or %', what, p_sync, s.relation, s.target
      USING ERRCODE = 'object_in_use',
            DETAIL = 'Unfinished: ' || blockers || '.  The cut-over renames the tables, and such a job would go on writing the archive.',
            HINT = 'Let it finish (CALL shift.backfill_run) or cancel it (SELECT shift.backfill_cancel(name)), and remove the pg_cron schedule that runs it; then cut over.';
  END IF;
  -- a long transaction holding either table would make every attempt time out
  blockers := @extschema@._lock_holders(s.relation, s.target, max_xact_age);
  IF blockers IS NOT NULL THEN
    RAISE EXCEPTION 'cannot % sync "%": long-running transactions hold % or %', what, p_sync, s.relation, s.target
      USING ERRCODE = 'object_in_use',
            DETAIL = 'Holding a lock for longer than ' || max_xact_age || ': ' || blockers || '.',
            HINT = 'Wait for them to finish, or end them with SELECT pg_terminate_backend(pid).';
  END IF;
  -- writers take the table they write first, then (through the sync) the
  -- other one: locking in that order cannot deadlock with them
  IF reverse THEN
    first_rel := s.target; second_rel := s.relation;
  ELSE
    first_rel := s.relation; second_rel := s.target;
  END IF;

  LOOP
    attempt := attempt + 1;
    BEGIN
      PERFORM set_config('lock_timeout', _cutover.lock_timeout, true);
      t0 := clock_timestamp();
      EXECUTE format('LOCK TABLE %s, %s IN ACCESS EXCLUSIVE MODE', first_rel, second_rel);
      t1 := clock_timestamp();
      PERFORM shift_internal.cutover_check(p_sync, reverse, check_mode, check_rows);
      r := @extschema@._cutover_swap(s, reverse, archive);
      PERFORM set_config('lock_timeout', old_timeout, true);
      attempts := attempt;
      lock_wait_ms := 1000 * extract(epoch FROM t1 - t0);
      locked_ms := 1000 * extract(epoch FROM clock_timestamp() - t1);
      views := r.views;
      foreign_keys := r.foreign_keys;
      to_validate := r.to_validate;
      sequences := r.sequences;
      SELECT x.relation::pg_catalog.text, x.target::pg_catalog.text INTO archived, live
        FROM @extschema@.sync x WHERE x.name = p_sync;
      IF reverse THEN
        SELECT x.target::pg_catalog.text, x.relation::pg_catalog.text INTO archived, live
          FROM @extschema@.sync x WHERE x.name = p_sync;
      END IF;
      RETURN NEXT;
      RETURN;
    EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
      blockers := @extschema@._lock_holders(s.relation, s.target);
      IF attempt > retries THEN
        RAISE EXCEPTION 'could not % sync "%": % and % stayed locked through % attempts (lock_timeout %)',
                        what, p_sync, s.relation, s.target, attempt, _cutover.lock_timeout
          USING ERRCODE = 'lock_not_available',
                DETAIL = 'Last seen holding them: ' || coalesce(blockers, 'nobody (the locks were released meanwhile)') || '.',
                HINT = 'Run it again at a quieter time, raise retries, or end the blocking sessions.';
      END IF;
      RAISE NOTICE 'cut-over of sync "%": attempt % timed out waiting for locks (held by %); retrying',
                   p_sync, attempt, coalesce(blockers, 'nobody now');
      PERFORM pg_sleep(least(max_backoff, backoff * 2 ^ (attempt - 1)) * (0.5 + random() / 2));
    END;
  END LOOP;
END
$$;

/*
 * shift.cutover(sync, archive => '<relation>_archive', check => 'recent',
 *   check_rows => 1000, lock_timeout => '1s', retries => 10, backoff => 0.2,
 *   max_backoff => 5, max_xact_age => '1 minute')
 *
 * In one short transaction with a small lock_timeout, retried with backoff:
 * locks both tables, checks they agree, renames the old table to archive
 * and the new one to the old name, carries over views, foreign keys,
 * sequences, grants and owner, and turns the sync around so that the
 * archive stays current.  Refuses at once if a long transaction holds
 * either table, naming it.
 */
CREATE FUNCTION @extschema@.cutover(sync pg_catalog.text, archive pg_catalog.text DEFAULT NULL,
  "check" pg_catalog.text DEFAULT 'recent', check_rows pg_catalog.int4 DEFAULT 1000,
  lock_timeout pg_catalog.text DEFAULT '1s', retries pg_catalog.int4 DEFAULT 10,
  backoff pg_catalog.float8 DEFAULT 0.2, max_backoff pg_catalog.float8 DEFAULT 5,
  max_xact_age pg_catalog.interval DEFAULT '1 minute')
RETURNS TABLE (attempts pg_catalog.int4, lock_wait_ms pg_catalog.float8, locked_ms pg_catalog.float8,
               live pg_catalog.text, archived pg_catalog.text, views pg_catalog.text[],
               foreign_keys pg_catalog.text[], to_validate pg_catalog.text[], sequences pg_catalog.text[])
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT * FROM @extschema@._cutover(sync, false, archive, "check", check_rows, lock_timeout, retries,
                                     backoff, max_backoff, max_xact_age)
$$;

/*
 * shift.cutover_revert(sync, ...): the way back after a cut-over, in the same
 * kind of transaction: the archive (kept current by the reverse sync) takes
 * its name back, the new table its old name, and the sync runs forward again.
 */
CREATE FUNCTION @extschema@.cutover_revert(sync pg_catalog.text,
  "check" pg_catalog.text DEFAULT 'recent', check_rows pg_catalog.int4 DEFAULT 1000,
  lock_timeout pg_catalog.text DEFAULT '1s', retries pg_catalog.int4 DEFAULT 10,
  backoff pg_catalog.float8 DEFAULT 0.2, max_backoff pg_catalog.float8 DEFAULT 5,
  max_xact_age pg_catalog.interval DEFAULT '1 minute')
RETURNS TABLE (attempts pg_catalog.int4, lock_wait_ms pg_catalog.float8, locked_ms pg_catalog.float8,
               live pg_catalog.text, archived pg_catalog.text, views pg_catalog.text[],
               foreign_keys pg_catalog.text[], to_validate pg_catalog.text[], sequences pg_catalog.text[])
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT * FROM @extschema@._cutover(sync, true, NULL, "check", check_rows, lock_timeout, retries,
                                     backoff, max_backoff, max_xact_age)
$$;

/*
 * shift.cutover_pending(sync) -> SETOF text
 *
 * The VALIDATE CONSTRAINT statements the last cut-over (or revert) of a sync
 * left to run: the foreign keys it re-pointed NOT VALID that are still not
 * valid, built from the catalog, never from stored text.  Validating takes
 * no lock that blocks writes; db:cutover runs them right after the swap (and
 * on the next run, if the runner died in between).
 */
CREATE FUNCTION @extschema@.cutover_pending(sync pg_catalog.text)
RETURNS SETOF pg_catalog.text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT format('ALTER TABLE %s VALIDATE CONSTRAINT %I', con.conrelid::pg_catalog.regclass, con.conname)
    FROM @extschema@.sync s
   CROSS JOIN LATERAL unnest(s.to_validate) WITH ORDINALITY AS v(conoid, ord)
    JOIN pg_constraint con ON con.oid = v.conoid
   WHERE s.name = cutover_pending.sync AND NOT con.convalidated AND con.contype = 'f'
     AND con.confrelid IN (s.relation, s.target)
   ORDER BY v.ord
$$;

/*
 * shift.copy_grants(from_table, to_table): grants on to_table what every
 * role has been granted on from_table (table privileges, not column ones).
 * Before a table-level sync, the roles that write the old table need the
 * same on the new one: its trigger writes as them.
 */
CREATE FUNCTION @extschema@.copy_grants(from_table pg_catalog.regclass, to_table pg_catalog.regclass)
RETURNS pg_catalog.int4
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  g record;
  n pg_catalog.int4 := 0;
BEGIN
  FOR g IN SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END AS grantee,
                  a.privilege_type, a.is_grantable
             FROM pg_class c, aclexplode(nullif(c.relacl, '{}')) a   -- NULL, empty: none
            WHERE c.oid = from_table AND a.grantee <> c.relowner
  LOOP
    EXECUTE format('GRANT %s ON %s TO %s%s', g.privilege_type, to_table, g.grantee,
                   CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    n := n + 1;
  END LOOP;
  RETURN n;
END
$$;
