-- ---------------------------------------------------------------------------
-- The cut-over (shift.cutover, shift.cutover_revert) of a table-level sync:
-- in one short transaction with a small lock_timeout, retried as a whole,
-- the two tables are locked, compared (shift_internal.cutover_check, C), and
-- swapped: the old table becomes the archive and the new one takes its
-- name, with its views, foreign keys, sequences, grants and owner, and the
-- sync turns around so that the archive stays current.  Each step is its
-- own function: _cutover_refusal (what it would refuse, said before any
-- lock), _cutover_capture (what depends on the old table),
-- _cutover_sequences, _cutover_rename, _cutover_carry (views, foreign keys,
-- what stays behind), then _sync_turn and _sync_install.
-- ---------------------------------------------------------------------------

-- Sessions holding a lock on either table, as text for a message.
CREATE FUNCTION shift_internal._lock_holders(rel1 pg_catalog.regclass, rel2 pg_catalog.regclass,
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
 * shift_internal._pg_cron_here() -> bool: is pg_cron installed in this
 * database?  True when cron.job and cron.unschedule(bigint) are members of
 * extension pg_cron (not what another role made in a schema named cron).
 * The one test of it, for the cut-over's guard and a job's end
 * (backfill_cron.c).
 */
CREATE FUNCTION shift_internal._pg_cron_here()
RETURNS pg_catalog.bool
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT pg_catalog.count(*) OPERATOR(pg_catalog.=) 2
    FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_extension e ON e.oid OPERATOR(pg_catalog.=) d.refobjid
   WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
     AND d.deptype OPERATOR(pg_catalog.=) 'e' AND e.extname OPERATOR(pg_catalog.=) 'pg_cron'
     AND ((d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
           AND d.objid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure('cron.unschedule(bigint)')::pg_catalog.oid)
          OR (d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
              AND d.objid OPERATOR(pg_catalog.=) pg_catalog.to_regclass('cron.job')::pg_catalog.oid))
$$;

/*
 * shift_internal._cutover_jobs(rel1, rel2) -> (name, owner, state,
 * schedule): the backfill jobs, of any role, that still write or read
 * either table (not done, not cancelled).  A cut-over (or its revert)
 * renames the tables: such a job would follow its table's OID to the
 * archive and write there, where the live table never sees it.  Read as
 * the extension's owner, since the cut-over must wait for every role's
 * jobs; only for a caller who owns both tables (the cut-over renames them), and a
 * job the caller may not act for is shown by its owner and state alone.
 */
CREATE FUNCTION shift_internal._cutover_jobs_as_owner(rel1 pg_catalog.regclass, rel2 pg_catalog.regclass)
RETURNS TABLE (name pg_catalog.text, owner pg_catalog.name, state pg_catalog.text, schedule pg_catalog.text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF EXISTS (SELECT FROM pg_class c WHERE c.oid IN (rel1, rel2)
                AND NOT pg_has_role(shift_internal.caller()::oid, c.relowner, 'USAGE')) THEN
    RAISE EXCEPTION 'must be owner of tables % and %', rel1, rel2 USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN QUERY
    SELECT CASE WHEN shift_internal.may_act(x.owner) THEN x.name END, x.owner, x.state,
           CASE WHEN shift_internal.may_act(x.owner) THEN x.schedule END
      FROM @extschema@.backfill x
     WHERE x.state NOT IN ('done', 'cancelled')
       AND (x.relation IN (rel1, rel2) OR x.into_relation IN (rel1, rel2))
     ORDER BY x.owner, x.name;
END
$$;
SELECT shift_internal._owner_call('shift_internal._cutover_jobs');

/*
 * shift_internal._cutover_blockers(rel1, rel2) -> (jobs, unschedule): the
 * unfinished backfill jobs on either table (_cutover_jobs), each with the
 * pg_cron schedules that run it; NULL if none.  A job's schedule is the
 * one backfill_run's schedule => recorded and, where pg_cron lives in this
 * database, every row of cron.job for this database, of the job's owner,
 * named so or whose command calls backfill_run with the job's name as a
 * literal; unschedule says how to remove them.  cron.job is read as the
 * caller, so pg_cron's own policy shows a role only its own schedules; and
 * only the job owner's rows count, so a superuser is not offered another
 * role's schedule of the same name.
 */
CREATE FUNCTION shift_internal._cutover_blockers(rel1 pg_catalog.regclass, rel2 pg_catalog.regclass,
                                                 OUT jobs pg_catalog.text, OUT unschedule pg_catalog.text)
RETURNS record
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  here pg_catalog.bool := shift_internal._pg_cron_here();
  cron_db pg_catalog.text;
  b record;
  crons pg_catalog.text;
  stmts pg_catalog.text;
BEGIN
  IF NOT here THEN
    BEGIN
      cron_db := coalesce(current_setting('cron.database_name', true), 'postgres');
    EXCEPTION WHEN insufficient_privilege THEN
      cron_db := NULL;          -- a superuser-only setting: named in words instead
    END;
  END IF;
  FOR b IN SELECT * FROM shift_internal._cutover_jobs(rel1, rel2) LOOP
    crons := NULL;
    stmts := NULL;
    IF b.name IS NULL THEN
      jobs := concat_ws('; ', jobs, format('a backfill job of role %s (%s)', b.owner, b.state));
      CONTINUE;
    END IF;
    IF here THEN
      -- pg_cron's table, read only when it exists
      EXECUTE $q$
        SELECT string_agg(format('pg_cron job %s "%s" of role %s', j.jobid, j.jobname, j.username), ', ' ORDER BY j.jobid),
               string_agg(format('SELECT cron.unschedule(%s);', j.jobid), ' ' ORDER BY j.jobid)
          FROM cron.job j
         WHERE j.database OPERATOR(pg_catalog.=) pg_catalog.current_database()
           AND j.username OPERATOR(pg_catalog.=) $3
           AND (j.jobname OPERATOR(pg_catalog.=) $1::pg_catalog.name
                OR (pg_catalog.strpos(j.command, 'backfill_run') OPERATOR(pg_catalog.>) 0
                    AND pg_catalog.strpos(j.command, pg_catalog.quote_literal($2)) OPERATOR(pg_catalog.>) 0))$q$
        INTO crons, stmts USING b.schedule, b.name, b.owner::pg_catalog.text;
    ELSIF b.schedule IS NOT NULL THEN
      -- recorded; pg_cron's table is in its own database
      crons := format('pg_cron job "%s" in %s', b.schedule,
                      coalesce(format('database "%s"', cron_db), 'pg_cron''s database'));
      stmts := format('in %s, as role %s: SELECT cron.unschedule(%L);',
                      coalesce(format('database "%s"', cron_db), 'pg_cron''s database (cron.database_name)'),
                      b.owner, b.schedule);
    END IF;
    jobs := concat_ws('; ', jobs, format('backfill job "%s" of role %s (%s%s)', b.name, b.owner, b.state,
                                         CASE WHEN crons IS NOT NULL THEN ', run by ' || crons ELSE '' END));
    unschedule := concat_ws(' ', unschedule, stmts);
  END LOOP;
  unschedule := nullif(unschedule, '');
END
$$;

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
CREATE FUNCTION shift_internal._free_names(rel pg_catalog.regclass, nsp pg_catalog.name)
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
 * What depends on "from", captured before the names change: the views on it
 * (name, definition, options, owner, grants, comment) and the foreign keys
 * other tables hold into it (child, name, definition).
 */
CREATE FUNCTION shift_internal._cutover_capture(from_rel pg_catalog.regclass, to_rel pg_catalog.regclass)
RETURNS pg_catalog.jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT jsonb_build_object(
    'views', coalesce((
      SELECT jsonb_agg(jsonb_build_object(
               'name', v.oid::pg_catalog.regclass::text, 'def', pg_get_viewdef(v.oid),
               'opts', CASE WHEN v.reloptions IS NOT NULL
                            THEN ' WITH (' || array_to_string(v.reloptions, ', ') || ')' ELSE '' END,
               'owner', pg_get_userbyid(v.relowner), 'acl', v.relacl::text,
               'comment', obj_description(v.oid, 'pg_class')) ORDER BY v.oid)
        FROM pg_class v
       WHERE v.relkind = 'v' AND v.oid <> from_rel
         AND v.oid IN (SELECT r.ev_class FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
                        WHERE d.classid = 'pg_rewrite'::pg_catalog.regclass
                          AND d.refclassid = 'pg_class'::pg_catalog.regclass AND d.refobjid = from_rel)),
      '[]'),
    'fks', coalesce((
      SELECT jsonb_agg(jsonb_build_object('child', con.conrelid::pg_catalog.regclass::text,
                                          'name', con.conname, 'def', pg_get_constraintdef(con.oid))
                       ORDER BY con.oid)
        FROM pg_constraint con
       WHERE con.contype = 'f' AND con.confrelid = from_rel AND con.conparentid = 0
         AND con.conrelid NOT IN (from_rel, to_rel)),
      '[]'))
$$;

/*
 * The sequences that feed "to"'s columns (defaults and identities): each is
 * moved past every value either table holds or handed out, widened to
 * bigint if it feeds a bigint column, and, if "from" owns it, listed for
 * _cutover_rename to give to "to" (the archive's drop would drop it).
 * Returns {sequences: [what was done, as text], owned: [{seq, col}]}.
 */
CREATE FUNCTION shift_internal._cutover_sequences(from_rel pg_catalog.regclass, to_rel pg_catalog.regclass,
                                               reverse pg_catalog.bool)
RETURNS pg_catalog.jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  sq record;
  new_val pg_catalog.int8;
  col_max pg_catalog.int8;
  from_name pg_catalog.name := (SELECT c.relname FROM pg_class c WHERE c.oid = from_rel);
  done pg_catalog.jsonb := '[]';
  owned pg_catalog.jsonb := '[]';
BEGIN
  FOR sq IN
    SELECT a.attname, a.atttypid, dep.refobjid::pg_catalog.regclass AS seq
      FROM pg_attribute a
      JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
      JOIN pg_depend dep ON dep.classid = 'pg_attrdef'::pg_catalog.regclass AND dep.objid = ad.oid
                        AND dep.refclassid = 'pg_class'::pg_catalog.regclass
      JOIN pg_class sc ON sc.oid = dep.refobjid AND sc.relkind = 'S'
     WHERE a.attrelid = to_rel AND a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT a.attname, a.atttypid, dep.objid::pg_catalog.regclass
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
    -- owned by a column of "from": it would go when the archive is dropped
    IF EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::pg_catalog.regclass AND d.objid = sq.seq
                  AND d.refobjid = from_rel AND d.deptype = 'a') THEN
      owned := owned || jsonb_build_object('seq', sq.seq::text, 'col', sq.attname);
    END IF;
    done := done || to_jsonb(format('%s (%s.%s, next %s)', sq.seq, from_name, sq.attname, coalesce(new_val + 1, 1)));
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
  RETURN jsonb_build_object('sequences', done, 'owned', owned);
END
$$;

/*
 * The names: "from" steps aside (to archive, or on a revert to the name
 * and schema the new table had, target_name), "to" takes "from"'s name and
 * schema, and the sequences "from" owned (owned: [{seq, col}]) are given to
 * "to" once it is in their schema (OWNED BY wants the table there).
 */
CREATE FUNCTION shift_internal._cutover_rename(from_rel pg_catalog.regclass, to_rel pg_catalog.regclass,
                                            reverse pg_catalog.bool, archive pg_catalog.text,
                                            target_name pg_catalog.text, owned pg_catalog.jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  from_nsp pg_catalog.name;
  from_name pg_catalog.name;
  to_nsp pg_catalog.name;
  to_name pg_catalog.name;
  target_id pg_catalog.text[] := CASE WHEN target_name IS NOT NULL THEN parse_ident(target_name) END;
  o pg_catalog.jsonb;
BEGIN
  SELECT n.nspname, c.relname INTO from_nsp, from_name
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = from_rel;
  SELECT n.nspname, c.relname INTO to_nsp, to_name
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_rel;
  IF reverse THEN
    EXECUTE format('ALTER TABLE %s RENAME TO %I', from_rel, left(target_id[2], 50) || '_shift_swap');
  ELSE
    EXECUTE format('ALTER TABLE %s RENAME TO %I', from_rel, archive);
  END IF;
  IF reverse THEN
    EXECUTE format('ALTER TABLE %s RENAME TO %I', to_rel, from_name);
  END IF;
  IF to_nsp <> from_nsp THEN
    PERFORM shift_internal._free_names(to_rel, from_nsp);
    EXECUTE format('ALTER TABLE %s SET SCHEMA %I', to_rel, from_nsp);
  END IF;
  FOR o IN SELECT * FROM jsonb_array_elements(owned) LOOP
    EXECUTE format('ALTER SEQUENCE %s OWNED BY %s.%I', o ->> 'seq', to_rel, o ->> 'col');
  END LOOP;
  IF reverse THEN
    IF target_id[1] <> from_nsp THEN
      PERFORM shift_internal._free_names(from_rel, target_id[1]);
      EXECUTE format('ALTER TABLE %s SET SCHEMA %I', from_rel, target_id[1]);
    END IF;
    EXECUTE format('ALTER TABLE %s RENAME TO %I', from_rel, target_id[2]);
  ELSIF to_name <> from_name THEN   -- v2.orders -> orders: renaming to its own name fails
    EXECUTE format('ALTER TABLE %s RENAME TO %I', to_rel, from_name);
  END IF;
END
$$;

/*
 * What depended on "from" follows "to", now under "from"'s old name: the
 * captured views are redefined (their text names the table, which is "to"
 * now; a view whose column changes type and that nothing depends on is
 * dropped and made again with its owner, grants and comment), and the
 * foreign keys are re-pointed NOT VALID (validating takes no strong lock:
 * later).  Returns {views, foreign_keys, to_validate, repointed, pending}:
 * pending, the OIDs of the re-pointed constraints to validate, those valid
 * before pg_shift touched them (now, or at the first cut-over: repointed_before).
 */
CREATE FUNCTION shift_internal._cutover_carry(captured pg_catalog.jsonb, from_name pg_catalog.text,
                                           repointed_before pg_catalog.text[])
RETURNS pg_catalog.jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v pg_catalog.jsonb;
  fk pg_catalog.jsonb;
  g record;
  qname pg_catalog.text;
  views pg_catalog.jsonb := '[]';
  foreign_keys pg_catalog.jsonb := '[]';
  to_validate pg_catalog.jsonb := '[]';
  repointed pg_catalog.text[] := '{}';
  pending pg_catalog.oid[] := '{}';
BEGIN
  FOR v IN SELECT * FROM jsonb_array_elements(captured -> 'views') LOOP
    BEGIN
      EXECUTE format('CREATE OR REPLACE VIEW %s%s AS %s', v ->> 'name', v ->> 'opts', rtrim(v ->> 'def', '; '));
    EXCEPTION WHEN invalid_table_definition OR feature_not_supported OR datatype_mismatch THEN
      IF EXISTS (SELECT 1 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
                  WHERE d.classid = 'pg_rewrite'::pg_catalog.regclass
                    AND d.refobjid = (v ->> 'name')::pg_catalog.regclass
                    AND r.ev_class <> (v ->> 'name')::pg_catalog.regclass) THEN
        RAISE EXCEPTION 'view % cannot follow % to its new table: %', v ->> 'name', from_name, SQLERRM
          USING ERRCODE = 'object_not_in_prerequisite_state',
                DETAIL = 'Other views depend on it, so it cannot be dropped and made again here.',
                HINT = 'Drop and recreate these views in the cut-over phase, then cut over.';
      END IF;
      EXECUTE format('DROP VIEW %s', v ->> 'name');
      EXECUTE format('CREATE VIEW %s%s AS %s', v ->> 'name', v ->> 'opts', rtrim(v ->> 'def', '; '));
      EXECUTE format('ALTER VIEW %s OWNER TO %I', v ->> 'name', v ->> 'owner');
      FOR g IN SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END AS grantee,
                      a.privilege_type, a.is_grantable
                 FROM aclexplode(nullif(v ->> 'acl', '{}')::pg_catalog.aclitem[]) a   -- NULL, empty: none
                WHERE pg_get_userbyid(a.grantee) IS DISTINCT FROM v ->> 'owner'
      LOOP
        EXECUTE format('GRANT %s ON %s TO %s%s', g.privilege_type, v ->> 'name', g.grantee,
                       CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
      END LOOP;
      IF v ->> 'comment' IS NOT NULL THEN
        EXECUTE format('COMMENT ON VIEW %s IS %L', v ->> 'name', v ->> 'comment');
      END IF;
    END;
    views := views || to_jsonb(v ->> 'name');
  END LOOP;
  FOR fk IN SELECT * FROM jsonb_array_elements(captured -> 'fks') LOOP
    EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I, ADD CONSTRAINT %I %s%s', fk ->> 'child', fk ->> 'name',
                   fk ->> 'name', fk ->> 'def', CASE WHEN fk ->> 'def' LIKE '% NOT VALID' THEN '' ELSE ' NOT VALID' END);
    qname := format('%s.%I', fk ->> 'child', fk ->> 'name');
    foreign_keys := foreign_keys || to_jsonb(qname);
    IF fk ->> 'def' NOT LIKE '% NOT VALID' OR qname = ANY (coalesce(repointed_before, '{}')) THEN
      to_validate := to_validate || to_jsonb(format('ALTER TABLE %s VALIDATE CONSTRAINT %I',
                                                    fk ->> 'child', fk ->> 'name'));
      repointed := repointed || qname;
      pending := pending || (SELECT con.oid FROM pg_constraint con
                              WHERE con.conrelid = (fk ->> 'child')::pg_catalog.regclass
                                AND con.conname = fk ->> 'name');
    END IF;
  END LOOP;
  RETURN jsonb_build_object('views', views, 'foreign_keys', foreign_keys, 'to_validate', to_validate,
                            'repointed', to_jsonb(repointed), 'pending', to_jsonb(pending));
END
$$;

-- What stays with the old table, said in a warning: its own triggers,
-- materialized views over it, column-level grants.
CREATE FUNCTION shift_internal._cutover_left_behind(from_rel pg_catalog.regclass, to_rel pg_catalog.regclass,
                                                 from_name pg_catalog.text, to_name pg_catalog.text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  left_behind pg_catalog.text;
BEGIN
  SELECT concat_ws(', ',
           (SELECT string_agg(format('trigger %I', t.tgname), ', ')
              FROM pg_trigger t
             WHERE t.tgrelid = from_rel AND NOT t.tgisinternal
               AND t.tgfoid <> 'shift_internal._sync_trigger'::pg_catalog.regproc
               AND NOT EXISTS (SELECT 1 FROM pg_trigger t2 WHERE t2.tgrelid = to_rel AND t2.tgname = t.tgname)),
           (SELECT string_agg(DISTINCT format('materialized view %s', r.ev_class::pg_catalog.regclass), ', ')
              FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class c ON c.oid = r.ev_class
             WHERE d.classid = 'pg_rewrite'::pg_catalog.regclass AND d.refobjid = from_rel AND c.relkind = 'm'),
           (SELECT string_agg(DISTINCT format('column privileges on %I', a.attname), ', ')
              FROM pg_attribute a WHERE a.attrelid = from_rel AND a.attacl IS NOT NULL AND NOT a.attisdropped))
    INTO left_behind;
  IF nullif(left_behind, '') IS NOT NULL THEN
    RAISE WARNING 'these stay with % and do not follow it to %: %', from_name, to_name, left_behind
      USING HINT = 'Recreate them on the new table before or right after the cut-over.';
  END IF;
END
$$;

/*
 * The swap itself, under the locks: make "to" what "from" was, step by step
 * (see the functions above), then turn the sync around: recorded, its SQL
 * compiled against the renamed tables as its owner and sealed (_sync_turn),
 * and its triggers made again.  Returns what it did.
 */
CREATE FUNCTION shift_internal._cutover_swap(s @extschema@.sync, reverse pg_catalog.bool,
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
  from_owner pg_catalog.name;
  to_nsp pg_catalog.name;
  to_name pg_catalog.name;
  captured pg_catalog.jsonb;
  seqs pg_catalog.jsonb;
  carried pg_catalog.jsonb;
BEGIN
  SELECT n.nspname, c.relname, pg_get_userbyid(c.relowner) INTO from_nsp, from_name, from_owner
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = from_rel;
  SELECT n.nspname, c.relname INTO to_nsp, to_name
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_rel;
  captured := shift_internal._cutover_capture(from_rel, to_rel);
  -- "from"'s grants and owner (the owner first: a sequence can only be OWNED
  -- BY a table of its own owner, and the one "from" owned is given to "to")
  PERFORM @extschema@.copy_grants(from_rel, to_rel);
  IF (SELECT pg_get_userbyid(c.relowner) FROM pg_class c WHERE c.oid = to_rel) <> from_owner THEN
    EXECUTE format('ALTER TABLE %s OWNER TO %I', to_rel, from_owner);
  END IF;
  seqs := shift_internal._cutover_sequences(from_rel, to_rel, reverse);
  PERFORM shift_internal._cutover_rename(from_rel, to_rel, reverse, archive, s.target_name, seqs -> 'owned');
  carried := shift_internal._cutover_carry(captured, from_name, s.repointed_fks);
  PERFORM shift_internal._cutover_left_behind(from_rel, to_rel, from_name, to_name);

  PERFORM shift_internal._sync_uninstall(s.name);
  PERFORM shift_internal._sync_turn(s.name, reverse,
    quote_ident(from_nsp) || '.' || quote_ident(archive),
    quote_ident(from_nsp) || '.' || quote_ident(from_name),
    quote_ident(to_nsp) || '.' || quote_ident(to_name),
    ARRAY(SELECT jsonb_array_elements_text(carried -> 'repointed')),
    ARRAY(SELECT jsonb_array_elements_text(carried -> 'pending'))::pg_catalog.oid[]);
  PERFORM shift_internal._sync_install(s.name);
  views := ARRAY(SELECT jsonb_array_elements_text(carried -> 'views'));
  foreign_keys := ARRAY(SELECT jsonb_array_elements_text(carried -> 'foreign_keys'));
  to_validate := ARRAY(SELECT jsonb_array_elements_text(carried -> 'to_validate'));
  sequences := ARRAY(SELECT jsonb_array_elements_text(seqs -> 'sequences'));
END
$$;

-- What shift.cutover and shift.cutover_revert return.
CREATE TYPE @extschema@.cutover_result AS (
  attempts      pg_catalog.int4,     -- tries it took (lock timeouts and deadlocks are retried)
  lock_wait_ms  pg_catalog.float8,   -- waiting for the locks, last attempt
  locked_ms     pg_catalog.float8,   -- holding them: the check and the swap (writers wait this long)
  live          pg_catalog.text,     -- the table that has the name now
  archived      pg_catalog.text,     -- the one the sync keeps current
  views         pg_catalog.text[],   -- views that followed
  foreign_keys  pg_catalog.text[],   -- foreign keys re-pointed NOT VALID
  to_validate   pg_catalog.text[],   -- the VALIDATE statements to run (db:cutover does)
  sequences     pg_catalog.text[]    -- sequences moved past both tables' values
);

/*
 * What shift.cutover (reverse false) or shift.cutover_revert would refuse
 * to do with sync s, said before any lock is taken; what names the act in
 * the errors.  Returns the name the old table is to take (archive, or its
 * default).
 */
CREATE FUNCTION shift_internal._cutover_refusal(s @extschema@.sync, reverse pg_catalog.bool,
  what pg_catalog.text, archive pg_catalog.text, check_rows pg_catalog.int4,
  retries pg_catalog.int4, backoff pg_catalog.float8, max_backoff pg_catalog.float8,
  max_xact_age pg_catalog.interval)
RETURNS pg_catalog.text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  blockers pg_catalog.text;
  jobs record;
BEGIN
  PERFORM shift_internal.check_owner(format('sync "%s"', s.name), s.owner);
  -- what its triggers run is what was checked, and what the row says now
  IF shift_internal.sync_verify(s.name) IS DISTINCT FROM shift_internal.sync_installed_digest(s.name) THEN
    RAISE EXCEPTION 'cannot % sync "%": its triggers were not made for its recorded definition', what, s.name
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = 'The triggers on the tables are missing, disagree, or carry another digest than shift.sync records.',
            HINT = 'SELECT * FROM shift.sync_status shows the triggers; drop the sync with shift.sync_drop and create it again.';
  END IF;
  IF s.kind <> 'table' THEN
    RAISE EXCEPTION 'sync "%" is column-level: there is no table to cut over to', s.name
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'A column-level sync serves both columns at once; drop it once the application has moved.';
  END IF;
  IF NOT reverse AND s.direction <> 'forward' THEN
    RAISE EXCEPTION 'sync "%" is already cut over (at %)', s.name, s.cutover_at
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'shift.cutover_revert goes back; shift.sync_drop ends the reverse sync.';
  END IF;
  IF reverse AND s.direction <> 'reverse' THEN
    RAISE EXCEPTION 'sync "%" has not been cut over', s.name
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  IF NOT reverse AND s.reverse_columns IS NULL THEN
    RAISE EXCEPTION 'sync "%" has no reverse mapping: after this cut-over nothing would keep % current', s.name, s.relation
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
    RAISE EXCEPTION 'cannot % sync "%": row-level security is enabled on % or %', what, s.name, s.relation, s.target
      USING ERRCODE = 'feature_not_supported',
            DETAIL = 'Policies do not follow the table to its new name.';
  END IF;
  blockers := (SELECT string_agg(format('%s.%I', con.conrelid::pg_catalog.regclass, con.conname), ', ')
                 FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
                WHERE con.contype = 'f' AND con.conparentid = 0 AND c.relkind = 'p'
                  AND con.confrelid = CASE WHEN reverse THEN s.target ELSE s.relation END);
  IF blockers IS NOT NULL THEN
    RAISE EXCEPTION 'cannot % sync "%": partitioned tables reference it (%)', what, s.name, blockers
      USING ERRCODE = 'feature_not_supported',
            DETAIL = 'PostgreSQL 15 cannot add a NOT VALID foreign key to a partitioned table, and a validated one would scan it under the cut-over''s locks.',
            HINT = 'Drop those foreign keys before the cut-over and add them to the new table afterwards (db:add_foreign_key).';
  END IF;
  -- a backfill still at work on either table, or the pg_cron schedule that
  -- runs it, would follow it to the archive
  SELECT * INTO jobs FROM shift_internal._cutover_blockers(s.relation, s.target);
  IF jobs.jobs IS NOT NULL THEN
    RAISE EXCEPTION 'cannot % sync "%": a backfill is not finished on % or %', what, s.name, s.relation, s.target
      USING ERRCODE = 'object_in_use',
            DETAIL = 'Unfinished: ' || jobs.jobs || '.  The cut-over renames the tables, and such a job would go on writing the archive.',
            HINT = 'Wait for it to finish (CALL shift.backfill_run), or cancel it (SELECT shift.backfill_cancel(name)) '
                   'or drop it (SELECT shift.backfill_drop(name)); then try again.'
                   || CASE WHEN jobs.unschedule IS NOT NULL
                           THEN '  To remove the pg_cron schedules that run it: ' || jobs.unschedule ELSE '' END;
  END IF;
  -- a long transaction holding either table would make every attempt time out
  blockers := shift_internal._lock_holders(s.relation, s.target, max_xact_age);
  IF blockers IS NOT NULL THEN
    RAISE EXCEPTION 'cannot % sync "%": long-running transactions hold % or %', what, s.name, s.relation, s.target
      USING ERRCODE = 'object_in_use',
            DETAIL = 'Holding a lock for longer than ' || max_xact_age || ': ' || blockers || '.',
            HINT = 'Wait for them to finish, or end them with SELECT pg_terminate_backend(pid).';
  END IF;
  RETURN archive;
END
$$;

-- Shared by cutover and cutover_revert: the locks, the retries, the check, the swap.
CREATE FUNCTION shift_internal._cutover(p_sync pg_catalog.text, reverse pg_catalog.bool, archive pg_catalog.text,
  check_mode pg_catalog.text, check_rows pg_catalog.int4, lock_timeout pg_catalog.text,
  retries pg_catalog.int4, backoff pg_catalog.float8, max_backoff pg_catalog.float8,
  max_xact_age pg_catalog.interval)
RETURNS SETOF @extschema@.cutover_result
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
  res @extschema@.cutover_result;
  attempt pg_catalog.int4 := 0;
  what pg_catalog.text := CASE WHEN reverse THEN 'revert the cut-over of' ELSE 'cut over' END;
BEGIN
  s := shift_internal.sync_row(p_sync);
  archive := shift_internal._cutover_refusal(s, reverse, what, archive, check_rows, retries, backoff,
                                          max_backoff, max_xact_age);
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
      r := shift_internal._cutover_swap(s, reverse, archive);
      PERFORM set_config('lock_timeout', old_timeout, true);
      res.attempts := attempt;
      res.lock_wait_ms := 1000 * extract(epoch FROM t1 - t0);
      res.locked_ms := 1000 * extract(epoch FROM clock_timestamp() - t1);
      res.views := r.views;
      res.foreign_keys := r.foreign_keys;
      res.to_validate := r.to_validate;
      res.sequences := r.sequences;
      SELECT x.relation::pg_catalog.text, x.target::pg_catalog.text INTO res.archived, res.live
        FROM @extschema@.sync x WHERE x.name = p_sync;
      IF reverse THEN
        SELECT x.target::pg_catalog.text, x.relation::pg_catalog.text INTO res.archived, res.live
          FROM @extschema@.sync x WHERE x.name = p_sync;
      END IF;
      RETURN NEXT res;
      RETURN;
    EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
      blockers := shift_internal._lock_holders(s.relation, s.target);
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
RETURNS SETOF @extschema@.cutover_result
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT * FROM shift_internal._cutover(sync, false, archive, "check", check_rows, lock_timeout, retries,
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
RETURNS SETOF @extschema@.cutover_result
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT * FROM shift_internal._cutover(sync, true, NULL, "check", check_rows, lock_timeout, retries,
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
