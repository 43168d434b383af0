-- ---------------------------------------------------------------------------
-- Version schemas: what each application version sees.  A version is a
-- schema (its name is the version's) holding one view per table the version
-- sees differently: the table's columns under that version's names, and
-- expressions it only reads.  An application picks its version with its
-- search_path (SET search_path = app_v12, public) or the setting
-- pg_shift.version.  The views are simple, so PostgreSQL writes through
-- them (INSERT, UPDATE, DELETE, ON CONFLICT, RETURNING, the table's
-- defaults), and security_invoker, so every write and read is checked
-- against the writer's own privileges and the table's row-level security.
-- A view refers to its table's columns by number, not by name: renaming a
-- column or a table under it changes nothing for the version that reads it
-- through the view, which is how a rename moves no data.
--
-- What pg_shift made is recorded (shift.version_schema, one row per version;
-- shift.version_relation, one row per view), so that shift.version_drop
-- removes exactly that and nothing a user added.  Like every control table,
-- they change only through the *_as_owner functions below (see
-- sql/control.sql); the DDL itself runs as the caller.
-- ---------------------------------------------------------------------------

CREATE TABLE @extschema@.version_schema (
  name            pg_catalog.text PRIMARY KEY       -- the version, and its schema's name
                  CHECK (pg_catalog.octet_length(name) BETWEEN 1 AND 63),
  schema_created  pg_catalog.bool NOT NULL,         -- pg_shift made the schema (version_drop drops it once empty)
  owner           pg_catalog.name NOT NULL,         -- made it: only it may change or drop it
  migration       pg_catalog.text,                  -- the migration phase that made it (db:create_version)
  phase           pg_catalog.text,
  created_at      pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE @extschema@.version_schema IS
  'version schemas pg_shift made or adopted: who made them, when, in which migration';

CREATE TABLE @extschema@.version_relation (
  version         pg_catalog.text NOT NULL REFERENCES @extschema@.version_schema (name) ON DELETE CASCADE,
  view_name       pg_catalog.text NOT NULL CHECK (pg_catalog.octet_length(view_name) BETWEEN 1 AND 63),
  view            pg_catalog.regclass NOT NULL,      -- the view pg_shift made (dropped only if it is still that one)
  relation        pg_catalog.regclass NOT NULL,      -- the table it shows
  columns         pg_catalog.text NOT NULL,          -- the select list it was made from, as given
  expressions     pg_catalog.text[] NOT NULL,        -- over the table, one per view column, as checked
  names           pg_catalog.text[] NOT NULL,        -- the view's columns
  owner           pg_catalog.name NOT NULL,
  migration       pg_catalog.text,
  phase           pg_catalog.text,
  created_at      pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now(),
  PRIMARY KEY (version, view_name),
  CHECK (pg_catalog.cardinality(expressions) OPERATOR(pg_catalog.=) pg_catalog.cardinality(names))
);
COMMENT ON TABLE @extschema@.version_relation IS
  'the views of each version schema pg_shift made: which table each shows, and how';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.version_schema', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.version_relation', '');

-- Each role sees its own versions; nobody but the owner of pg_shift writes them.
ALTER TABLE @extschema@.version_schema ENABLE ROW LEVEL SECURITY;
CREATE POLICY visible_to_owner ON @extschema@.version_schema FOR SELECT
  USING (shift_internal.may_act(owner));
CREATE POLICY visible_to_monitor ON @extschema@.version_schema FOR SELECT TO shift_monitor USING (true);
ALTER TABLE @extschema@.version_relation ENABLE ROW LEVEL SECURITY;
CREATE POLICY visible_to_owner ON @extschema@.version_relation FOR SELECT
  USING (shift_internal.may_act(owner));
CREATE POLICY visible_to_monitor ON @extschema@.version_relation FOR SELECT TO shift_monitor USING (true);

-- 'id, rating AS score, price * 100 cents' -> the expressions and the names
-- they are given (NULL where none), each expression checked to stand alone (C).
CREATE FUNCTION shift_internal._select_items("select" pg_catalog.text,
  OUT expressions pg_catalog.text[], OUT names pg_catalog.text[])
AS 'MODULE_PATHNAME', 'shift_select_items'
LANGUAGE C STRICT IMMUTABLE;

-- 'CHECK ((date > ''2000-01-01''::date))', 'date', 'date__new' ->
-- 'CHECK ((date__new > ''2000-01-01''::date))': the column renamed where
-- the server's parser reads a reference to it (an expression, a CHECK
-- constraint or a CREATE INDEX statement), every other byte kept; for
-- online.alter_column's copies of a column's rules (C, sqlfrag.c).
CREATE FUNCTION @extschema@.rename_column_refs(expr pg_catalog.text, old pg_catalog.text,
  new pg_catalog.text)
RETURNS pg_catalog.text
AS 'MODULE_PATHNAME', 'shift_rename_column_refs'
LANGUAGE C STRICT IMMUTABLE;

-- The caller's version of that name; an error if there is none.
CREATE FUNCTION shift_internal.version_row(p_version pg_catalog.text)
RETURNS @extschema@.version_schema
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v @extschema@.version_schema;
BEGIN
  SELECT * INTO v FROM @extschema@.version_schema x WHERE x.name OPERATOR(pg_catalog.=) p_version;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'version "%" does not exist', p_version
      USING ERRCODE = 'undefined_object',
            HINT = 'SELECT version FROM shift.versions lists the versions; shift.version_create makes one.';
  END IF;
  RETURN v;
END
$$;

/*
 * shift_internal._version_record(version, schema_created, migration, phase)
 *
 * Records version p_version as the caller's.  An existing record is an
 * error unless it is the caller's (then it is kept: false).
 */
CREATE FUNCTION shift_internal._version_record_as_owner(p_version pg_catalog.text,
  p_schema_created pg_catalog.bool, p_migration pg_catalog.text, p_phase pg_catalog.text)
RETURNS pg_catalog.bool
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  old @extschema@.version_schema;
BEGIN
  SELECT * INTO old FROM @extschema@.version_schema x
   WHERE x.name OPERATOR(pg_catalog.=) p_version FOR UPDATE;
  IF FOUND THEN
    PERFORM shift_internal.check_owner(format('version "%s"', p_version), old.owner);
    RETURN false;
  END IF;
  INSERT INTO @extschema@.version_schema (name, schema_created, owner, migration, phase)
  VALUES (p_version, p_schema_created, pg_get_userbyid(shift_internal.caller()), p_migration, p_phase);
  RETURN true;
END
$$;

/*
 * shift_internal._version_view_record(row): records a view version_view
 * has just made in a version of the caller's (row.owner is set here).
 */
CREATE FUNCTION shift_internal._version_view_record_as_owner(new_row @extschema@.version_relation)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v @extschema@.version_schema;
BEGIN
  SELECT * INTO v FROM @extschema@.version_schema x
   WHERE x.name OPERATOR(pg_catalog.=) new_row.version FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'version "%" does not exist', new_row.version USING ERRCODE = 'undefined_object';
  END IF;
  PERFORM shift_internal.check_owner(format('version "%s"', new_row.version), v.owner);
  -- the view must be what its record says: a view in the version's schema, of that name
  IF NOT EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
                  WHERE c.oid OPERATOR(pg_catalog.=) new_row.view AND c.relkind OPERATOR(pg_catalog.=) 'v'
                    AND n.nspname OPERATOR(pg_catalog.=) new_row.version
                    AND c.relname OPERATOR(pg_catalog.=) new_row.view_name) THEN
    RAISE EXCEPTION 'relation % is not view %.%', new_row.view, quote_ident(new_row.version),
                    quote_ident(new_row.view_name)
      USING ERRCODE = 'wrong_object_type';
  END IF;
  new_row.owner := pg_get_userbyid(shift_internal.caller());
  new_row.created_at := now();
  INSERT INTO @extschema@.version_relation SELECT new_row.*;
END
$$;

/*
 * shift_internal._version_forget(version, view_name): forgets one view of a
 * version of the caller's (view_name given), or the version itself (NULL).
 */
CREATE FUNCTION shift_internal._version_forget_as_owner(p_version pg_catalog.text, p_view_name pg_catalog.text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v @extschema@.version_schema;
BEGIN
  SELECT * INTO v FROM @extschema@.version_schema x
   WHERE x.name OPERATOR(pg_catalog.=) p_version FOR UPDATE;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  PERFORM shift_internal.check_owner(format('version "%s"', p_version), v.owner);
  IF p_view_name IS NULL THEN
    DELETE FROM @extschema@.version_schema x WHERE x.name OPERATOR(pg_catalog.=) p_version;
  ELSE
    DELETE FROM @extschema@.version_relation r
     WHERE r.version OPERATOR(pg_catalog.=) p_version AND r.view_name OPERATOR(pg_catalog.=) p_view_name;
  END IF;
END
$$;

-- What the caller-level functions below call to change the records (control.c).
SELECT shift_internal._owner_call('shift_internal._version_record');
SELECT shift_internal._owner_call('shift_internal._version_view_record');
SELECT shift_internal._owner_call('shift_internal._version_forget');

/*
 * shift.version_create(version, if_exists => 'error', migration, phase) -> created
 *
 * Makes schema `version` (as the caller, who needs CREATE on the database)
 * and records it as a version of the caller's.  An existing schema is
 * adopted only if it is empty (then version_drop leaves it in place); one
 * that holds anything is refused: its objects would shadow or be mistaken
 * for the version's.  With if_exists => 'reuse', the caller's own version
 * of that name is kept (false); the default refuses it.
 */
CREATE FUNCTION @extschema@.version_create(version pg_catalog.text,
  if_exists pg_catalog.text DEFAULT 'error',
  migration pg_catalog.text DEFAULT NULL, phase pg_catalog.text DEFAULT NULL)
RETURNS pg_catalog.bool
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_version CONSTANT pg_catalog.text := version_create.version;
  old @extschema@.version_schema;
  nsp pg_catalog.oid;
  held pg_catalog.text;
BEGIN
  IF v_version IS NULL OR octet_length(v_version) NOT BETWEEN 1 AND 63 THEN
    RAISE EXCEPTION 'invalid version name "%"', v_version
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = 'A version is the name of its schema: 1 to 63 bytes.';
  END IF;
  IF if_exists NOT IN ('error', 'reuse') THEN
    RAISE EXCEPTION 'if_exists must be error or reuse, not "%"', if_exists
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF v_version IN ('shift', 'shift_internal', 'public', 'information_schema') OR v_version ~ '^pg_' THEN
    RAISE EXCEPTION 'schema "%" cannot be a version', v_version
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Name the version after the application''s release, e.g. app_v12.';
  END IF;
  SELECT * INTO old FROM @extschema@.version_schema x WHERE x.name OPERATOR(pg_catalog.=) v_version;
  IF FOUND THEN
    PERFORM shift_internal.check_owner(format('version "%s"', v_version), old.owner);
    IF if_exists = 'reuse' AND to_regnamespace(quote_ident(v_version)) IS NOT NULL THEN
      RETURN false;
    END IF;
    RAISE EXCEPTION 'version "%" already exists', v_version
      USING ERRCODE = 'duplicate_object',
            HINT = format('Drop it with shift.version_drop(%L) or choose another name.', v_version);
  END IF;
  nsp := to_regnamespace(quote_ident(v_version));
  IF nsp IS NULL THEN
    EXECUTE format('CREATE SCHEMA %I', v_version);
    PERFORM shift_internal._version_record(v_version, true, migration, phase);
    RETURN true;
  END IF;
  -- an existing schema: adopted if empty, never if it holds anything
  SELECT string_agg(pg_describe_object(d.classid, d.objid, d.objsubid), ', ' ORDER BY 1) INTO held
    FROM (SELECT d.classid, d.objid, d.objsubid FROM pg_depend d
           WHERE d.refclassid = 'pg_namespace'::pg_catalog.regclass AND d.refobjid = nsp
             AND d.deptype = 'n'
           LIMIT 10) d;
  IF held IS NOT NULL THEN
    RAISE EXCEPTION 'schema "%" exists and is not empty', v_version
      USING ERRCODE = 'duplicate_schema',
            DETAIL = format('It holds %s.  Its objects would be found before the tables by the sessions of version %s.',
                            held, v_version),
            HINT = 'Choose another version name, or empty or drop that schema first.';
  END IF;
  -- its owner could replace the views or add look-alikes that the version's
  -- sessions would find first: only a schema of the caller's is adopted
  IF NOT pg_has_role((SELECT n.nspowner FROM pg_namespace n WHERE n.oid = nsp), 'USAGE') THEN
    RAISE EXCEPTION 'schema "%" belongs to role "%"', v_version,
                    (SELECT pg_get_userbyid(n.nspowner) FROM pg_namespace n WHERE n.oid = nsp)
      USING ERRCODE = 'insufficient_privilege',
            DETAIL = 'Its owner could change what the sessions of the version find there.',
            HINT = 'Create the version as the schema''s owner (or a member of that role), or drop the schema.';
  END IF;
  PERFORM shift_internal._version_record(v_version, false, migration, phase);
  RETURN true;
END
$$;

/*
 * What a version's view shows of relation, worked out from columns (as
 * version_view takes it): the expressions over relation and the names of
 * the view's columns.  '*' is every column of relation (not dropped), in
 * order.  An item that is a column, maybe cast, is named after it unless
 * it names itself; any other item must name itself.
 */
CREATE FUNCTION shift_internal._version_columns(relation pg_catalog.regclass, columns pg_catalog.text,
  OUT expressions pg_catalog.text[], OUT names pg_catalog.text[])
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  i pg_catalog.int4;
  plain pg_catalog.text;
BEGIN
  IF btrim(columns, E' \t\r\n') = '*' THEN
    SELECT array_agg(quote_ident(a.attname) ORDER BY a.attnum), array_agg(a.attname::pg_catalog.text ORDER BY a.attnum)
      INTO expressions, names
      FROM pg_attribute a
     WHERE a.attrelid = relation AND a.attnum > 0 AND NOT a.attisdropped;
    RETURN;
  END IF;
  SELECT s.expressions, s.names INTO expressions, names FROM shift_internal._select_items(columns) s;
  FOR i IN 1 .. cardinality(expressions) LOOP
    IF names[i] IS NULL THEN
      plain := shift_internal._plain_column(expressions[i]);
      IF plain IS NULL THEN
        RAISE EXCEPTION 'column % of the view of % is an expression without a name: %', i, relation, expressions[i]
          USING ERRCODE = 'invalid_column_reference',
                HINT = 'Name it: expr AS name.';
      END IF;
      names[i] := plain;
    END IF;
  END LOOP;
  IF (SELECT count(DISTINCT n) FROM unnest(names) n) <> cardinality(names) THEN
    RAISE EXCEPTION 'the view of % would have two columns of one name: %', relation,
                    (SELECT string_agg(DISTINCT quote_ident(n), ', ') FROM unnest(names) n
                      GROUP BY n HAVING count(*) > 1)
      USING ERRCODE = 'duplicate_column';
  END IF;
END
$$;

-- The view of r, as it is recorded, is still the view pg_shift made.
CREATE FUNCTION shift_internal._version_view_live(r @extschema@.version_relation)
RETURNS pg_catalog.bool
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE c.oid = r.view AND c.relkind = 'v'
                    AND n.nspname = r.version AND c.relname = r.view_name)
$$;

/*
 * Would a view made of select list items over nspname.relname be view
 * existing?  Compared as PostgreSQL reads both (pg_get_viewdef), through a
 * probe view made beside it (in the version's schema, where the caller
 * makes views) and undone with a subtransaction; the items are read under
 * search_path (pinned).
 */
CREATE FUNCTION shift_internal._version_view_same(existing pg_catalog.regclass, items pg_catalog.text,
                                                  nspname pg_catalog.name, relname pg_catalog.name,
                                                  search_path pg_catalog.text)
RETURNS pg_catalog.bool
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  version pg_catalog.name := (SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                               WHERE c.oid = existing);
  probe pg_catalog.text := 'pg_shift_probe_' || pg_catalog.txid_current();
  same pg_catalog.bool;
BEGIN
  PERFORM set_config('search_path', shift_internal.pin_search_path(_version_view_same.search_path), true);
  BEGIN
    EXECUTE pg_catalog.format('CREATE VIEW %I.%I AS SELECT %s FROM %I.%I', version, probe, items, nspname, relname);
    same := pg_catalog.pg_get_viewdef(pg_catalog.format('%I.%I', version, probe)::pg_catalog.regclass)
            OPERATOR(pg_catalog.=) pg_catalog.pg_get_viewdef(existing);
    -- the probe is undone with the subtransaction
    RAISE EXCEPTION USING ERRCODE = 'assert_failure';
  EXCEPTION WHEN assert_failure THEN
    RETURN same;
  END;
END
$$;

/*
 * shift.version_view(version, relation, columns => '*', view_name =>,
 *                    if_exists => 'error', migration, phase, search_path) -> the view
 *
 * Makes view version.view_name (default: the table's name) over relation,
 * a table the caller owns (or has the privileges of its owner).  columns is
 * a select list over the table: each item a column ('id'), a column under
 * another name ('rating AS score': the rename) or an expression with a
 * name ('price * 100 AS cents': read-only); '*' is every column.  The view
 * is simple, so writes go through to the table (its defaults, ON CONFLICT
 * and RETURNING as on the table), and security_invoker, so they are
 * checked against the writer's privileges and the table's policies.  The
 * table's grants are copied onto it (SELECT, INSERT, UPDATE, DELETE, also
 * column by column), and its grantees get USAGE on the version's schema.
 * The expressions are read under search_path (default: the caller's).
 * With if_exists => 'reuse', a view the caller made of that name over the
 * same table from the same columns is kept.
 */
CREATE FUNCTION @extschema@.version_view(version pg_catalog.text, relation pg_catalog.regclass,
  columns pg_catalog.text DEFAULT '*', view_name pg_catalog.text DEFAULT NULL,
  if_exists pg_catalog.text DEFAULT 'error',
  migration pg_catalog.text DEFAULT NULL, phase pg_catalog.text DEFAULT NULL,
  search_path pg_catalog.text DEFAULT pg_catalog.current_setting('search_path'))
RETURNS pg_catalog.regclass
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_version CONSTANT pg_catalog.text := version_view.version;
  v @extschema@.version_schema := shift_internal.version_row(v_version);
  old @extschema@.version_relation;
  new_row @extschema@.version_relation;
  cols record;
  rel record;
  items pg_catalog.text;
  g record;
  grantees pg_catalog.text;
  path CONSTANT pg_catalog.text := current_setting('search_path');
BEGIN
  PERFORM shift_internal.check_owner(format('version "%s"', v_version), v.owner);
  IF if_exists NOT IN ('error', 'reuse') THEN
    RAISE EXCEPTION 'if_exists must be error or reuse, not "%"', if_exists
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT c.relname, c.relkind, n.nspname, c.relowner INTO STRICT rel
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = relation;
  IF rel.relkind NOT IN ('r', 'p') THEN
    RAISE EXCEPTION '% is not a table', relation
      USING ERRCODE = 'wrong_object_type',
            HINT = 'A version shows tables (ordinary or partitioned).';
  END IF;
  IF rel.nspname = v_version THEN
    RAISE EXCEPTION '% is in the version''s own schema', relation
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- the view hands the table's grants on: only who may grant them makes it
  IF NOT pg_has_role(rel.relowner, 'USAGE') THEN
    RAISE EXCEPTION 'role "%" does not own %', current_user, relation
      USING ERRCODE = 'insufficient_privilege',
            DETAIL = 'A version''s view is granted to whom the table is: only the table''s owner decides that.',
            HINT = 'Make the version''s views as the table''s owner.';
  END IF;
  new_row.version := v_version;
  new_row.view_name := coalesce(version_view.view_name, rel.relname);
  new_row.relation := relation;
  new_row.columns := columns;
  new_row.migration := version_view.migration;
  new_row.phase := version_view.phase;
  IF octet_length(new_row.view_name) NOT BETWEEN 1 AND 63 THEN
    RAISE EXCEPTION 'invalid view name "%"', new_row.view_name
      USING ERRCODE = 'invalid_parameter_value', DETAIL = 'A view''s name is 1 to 63 bytes.';
  END IF;
  SELECT * INTO cols FROM shift_internal._version_columns(relation, columns);
  new_row.expressions := cols.expressions;
  new_row.names := cols.names;

  SELECT string_agg(format('%s AS %I', e, n), ', ' ORDER BY o) INTO items
    FROM unnest(cols.expressions, cols.names) WITH ORDINALITY AS x(e, n, o);
  SELECT * INTO old FROM @extschema@.version_relation r
   WHERE r.version = v_version AND r.view_name = new_row.view_name;
  IF FOUND THEN
    -- the same view: over the same table, and PostgreSQL reads the two
    -- definitions alike (the columns given may name a column renamed since
    -- by its new name: the view follows it by number)
    IF if_exists = 'reuse' AND old.relation = relation AND shift_internal._version_view_live(old) THEN
      IF shift_internal._version_view_same(old.view, items, rel.nspname, rel.relname, version_view.search_path) THEN
        RETURN old.view;
      END IF;
    END IF;
    RAISE EXCEPTION 'version "%" has a view "%" already%', v_version, new_row.view_name,
      CASE WHEN if_exists = 'reuse' THEN ' with a different definition' ELSE '' END
      USING ERRCODE = 'duplicate_object',
            HINT = format('Drop the version with shift.version_drop(%L), or give another view_name.', v_version);
  END IF;

  -- the expressions resolve their names as the caller wrote them
  PERFORM set_config('search_path', shift_internal.pin_search_path(version_view.search_path), true);
  EXECUTE format('CREATE VIEW %I.%I WITH (security_invoker = true) AS SELECT %s FROM %I.%I',
                 v_version, new_row.view_name, items, rel.nspname, rel.relname);
  PERFORM set_config('search_path', path, true);
  new_row.view := format('%I.%I', v_version, new_row.view_name)::pg_catalog.regclass;
  -- simple, or the application could not write through it (INSERT, UPDATE, DELETE: 4 | 8 | 16)
  IF pg_relation_is_updatable(new_row.view, false) & 28 <> 28 THEN
    RAISE EXCEPTION 'the view of % for version "%" would not be simple: writes could not go through it',
                    relation, v_version
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('Its columns are: %s.', items),
            HINT = 'A version''s view shows columns and expressions of one row: no aggregate, window or set-returning function.';
  END IF;

  -- the table's grants, on the view; USAGE on the schema to their grantees
  FOR g IN
    SELECT a.grantee, a.privilege_type, a.is_grantable, NULL::pg_catalog.text AS col
      FROM aclexplode((SELECT c.relacl FROM pg_class c WHERE c.oid = relation)) a
     WHERE a.privilege_type IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE')
    UNION ALL
    SELECT a.grantee, a.privilege_type, a.is_grantable, x.n
      FROM pg_attribute att
      JOIN unnest(cols.expressions, cols.names) AS x(e, n)
        ON shift_internal._plain_column(x.e) = att.attname::pg_catalog.text
     CROSS JOIN LATERAL aclexplode(att.attacl) a
     WHERE att.attrelid = relation AND att.attnum > 0 AND NOT att.attisdropped
       AND a.privilege_type IN ('SELECT', 'INSERT', 'UPDATE')
  LOOP
    CONTINUE WHEN g.grantee = (SELECT c.relowner FROM pg_class c WHERE c.oid = new_row.view);
    EXECUTE format('GRANT %s%s ON %I.%I TO %s%s', g.privilege_type,
                   CASE WHEN g.col IS NOT NULL THEN format(' (%I)', g.col) ELSE '' END,
                   v_version, new_row.view_name,
                   CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(g.grantee)) END,
                   CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
  END LOOP;
  SELECT string_agg(DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END, ', ')
    INTO grantees
    FROM (SELECT (aclexplode(c.relacl)).grantee FROM pg_class c WHERE c.oid = new_row.view
          UNION SELECT (aclexplode(att.attacl)).grantee FROM pg_attribute att
                 WHERE att.attrelid = new_row.view AND att.attacl IS NOT NULL) a
   WHERE a.grantee <> (SELECT c.relowner FROM pg_class c WHERE c.oid = new_row.view);
  IF grantees IS NOT NULL THEN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %s', v_version, grantees);
  END IF;
  PERFORM shift_internal._version_view_record(new_row);
  RETURN new_row.view;
END
$$;

/*
 * The sessions that visibly use version p_version's views, as best
 * PostgreSQL shows them (it shows no other session's search_path or
 * settings): those holding or awaiting a lock on one of the views (in a
 * transaction that used it), those whose application_name (which every
 * role sees, unlike the rest of another role's session) names the
 * version (the whole name, or one of its words split at blanks and
 * : / @ , ; =), and the calling session itself when its search_path starts
 * with the version's schema or its pg_shift.version names it.
 */
CREATE FUNCTION shift_internal.version_sessions(p_version pg_catalog.text)
RETURNS pg_catalog.int4[]
LANGUAGE sql STABLE
-- no SET search_path: it reads the calling session's own (current_schemas);
-- every name and operator is qualified instead
AS $$
  SELECT pg_catalog.array_agg(DISTINCT s.pid ORDER BY s.pid)
    FROM (SELECT l.pid
            FROM pg_catalog.pg_locks l
            JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) l.relation
            JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
           WHERE l.locktype OPERATOR(pg_catalog.=) 'relation'
             AND l.database OPERATOR(pg_catalog.=) (SELECT d.oid FROM pg_catalog.pg_database d
                                                     WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())
             AND n.nspname OPERATOR(pg_catalog.=) p_version AND c.relkind OPERATOR(pg_catalog.=) 'v'
             AND l.pid IS NOT NULL
          UNION
          SELECT a.pid FROM pg_catalog.pg_stat_activity a
           WHERE a.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()
             AND (a.application_name OPERATOR(pg_catalog.=) p_version
                  OR p_version OPERATOR(pg_catalog.=) ANY (pg_catalog.regexp_split_to_array(a.application_name, '[\s:/@,;=]+')))
          UNION
          SELECT pg_catalog.pg_backend_pid()
           WHERE (pg_catalog.current_schemas(false))[1] OPERATOR(pg_catalog.=) p_version
              OR pg_catalog.current_setting('pg_shift.version', true) OPERATOR(pg_catalog.=) p_version) s
$$;

/*
 * shift.version_drop(version, force => false, if_exists => false, migration => NULL)
 *
 * Drops the views pg_shift made in the version (those migration made, if
 * given), the schema too if pg_shift created it and nothing is left in it,
 * and forgets them.  Objects a user added to the schema stay (the schema
 * with them).  Refused while sessions visibly use the version (see
 * shift.versions; the calling session is not counted) unless force =>
 * true: their next statement would fail, or find the tables' own names
 * through the rest of their search_path.
 */
CREATE FUNCTION @extschema@.version_drop(version pg_catalog.text, force pg_catalog.bool DEFAULT false,
  if_exists pg_catalog.bool DEFAULT false, migration pg_catalog.text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_version CONSTANT pg_catalog.text := version_drop.version;
  v @extschema@.version_schema;
  r @extschema@.version_relation;
  users pg_catalog.int4[];
  nsp pg_catalog.oid;
BEGIN
  SELECT * INTO v FROM @extschema@.version_schema x WHERE x.name = v_version;
  IF NOT FOUND THEN
    IF if_exists THEN
      RETURN;
    END IF;
    RAISE EXCEPTION 'version "%" does not exist', v_version
      USING ERRCODE = 'undefined_object',
            HINT = 'SELECT version FROM shift.versions lists the versions.';
  END IF;
  PERFORM shift_internal.check_owner(format('version "%s"', v_version), v.owner);
  -- the dropping session itself is not in the way (it may well use it)
  users := array_remove(shift_internal.version_sessions(v_version), pg_backend_pid());
  IF cardinality(users) > 0 AND NOT force THEN
    RAISE EXCEPTION 'version "%" is in use by % session(s)', v_version, cardinality(users)
      USING ERRCODE = 'object_in_use',
            DETAIL = format('Sessions %s hold a lock on one of its views or name it in their application_name.',
                            array_to_string(users, ', ')),
            HINT = 'Move those applications to another version first, or drop it anyway with force => true.';
  END IF;
  FOR r IN SELECT * FROM @extschema@.version_relation x
            WHERE x.version = v_version
              AND (version_drop.migration IS NULL OR x.migration IS NOT DISTINCT FROM version_drop.migration)
            ORDER BY x.view_name
  LOOP
    IF shift_internal._version_view_live(r) THEN
      EXECUTE format('DROP VIEW %I.%I', r.version, r.view_name);
    ELSE
      RAISE NOTICE 'view %.% of version "%" is gone or replaced: left as it is',
                   quote_ident(r.version), quote_ident(r.view_name), v_version;
    END IF;
    PERFORM shift_internal._version_forget(v_version, r.view_name);
  END LOOP;
  -- the version itself goes with the last of its views (or, for one
  -- migration's drop, if that migration made it)
  IF EXISTS (SELECT FROM @extschema@.version_relation x WHERE x.version = v_version)
     OR (version_drop.migration IS NOT NULL AND v.migration IS DISTINCT FROM version_drop.migration) THEN
    RETURN;
  END IF;
  nsp := to_regnamespace(quote_ident(v_version));
  IF v.schema_created AND nsp IS NOT NULL THEN
    IF EXISTS (SELECT FROM pg_depend d WHERE d.refclassid = 'pg_namespace'::pg_catalog.regclass
                                       AND d.refobjid = nsp AND d.deptype = 'n') THEN
      RAISE NOTICE 'schema "%" holds objects pg_shift did not make: left in place', v_version;
    ELSE
      EXECUTE format('DROP SCHEMA %I', v_version);
    END IF;
  END IF;
  PERFORM shift_internal._version_forget(v_version, NULL);
END
$$;

CREATE VIEW @extschema@.versions WITH (security_invoker = true) AS
SELECT v.name AS version,
       v.owner,
       v.created_at,
       v.migration,
       v.phase,
       v.schema_created,
       to_regnamespace(quote_ident(v.name)) IS NOT NULL AS schema_exists,
       coalesce(r.views, '{}') AS views,
       coalesce(r.tables, '{}') AS tables,
       coalesce(cardinality(s.pids), 0) AS sessions,
       coalesce(s.pids, '{}') AS session_pids
  FROM @extschema@.version_schema v
  LEFT JOIN LATERAL (
    SELECT array_agg(format('%I.%I', x.version, x.view_name) ORDER BY x.view_name) AS views,
           array_agg(x.relation::pg_catalog.text ORDER BY x.view_name) AS tables
      FROM @extschema@.version_relation x WHERE x.version = v.name) r ON true
  CROSS JOIN LATERAL (SELECT shift_internal.version_sessions(v.name) AS pids) s;
COMMENT ON VIEW @extschema@.versions IS
  'every version schema: its views and the tables they show, who made it and when, and the sessions visibly using it (locks on its views, application_name, the reading session''s own search_path)';
