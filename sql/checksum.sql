-- ---------------------------------------------------------------------------
-- Checksums and compare (C in extension/checksum*.c).  Every value becomes a
-- word in the canonical form doc/checksum.md specifies, every row an XXH3-128
-- hash of its words; a chunk is a row count plus two 64-bit sums of its rows'
-- hashes.  All of these only read, as the calling role, in the calling
-- statement's snapshot.
-- ---------------------------------------------------------------------------

CREATE FUNCTION @extschema@.table_checksum(
  rel      pg_catalog.regclass,
  columns  pg_catalog.text[] DEFAULT NULL,
  key      pg_catalog.text[] DEFAULT NULL,
  OUT rows pg_catalog.int8,
  OUT checksum pg_catalog.text)
RETURNS record
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'shift_table_checksum';
COMMENT ON FUNCTION @extschema@.table_checksum(pg_catalog.regclass, pg_catalog.text[], pg_catalog.text[]) IS
  'Row count and 128-bit order-independent checksum of a table (or of the given columns/expressions) in one scan; with key, each row bound to its key as chunk_checksums hashes it';

CREATE FUNCTION @extschema@.chunk_checksums(
  rel        pg_catalog.regclass,
  columns    pg_catalog.text[] DEFAULT NULL,
  key        pg_catalog.text[] DEFAULT NULL,
  buckets    pg_catalog.int4 DEFAULT NULL,
  chunk_rows pg_catalog.int8 DEFAULT NULL,
  target_ms  pg_catalog.int4 DEFAULT NULL,
  lower      pg_catalog.text[] DEFAULT NULL,
  upper      pg_catalog.text[] DEFAULT NULL,
  only_buckets pg_catalog.int4[] DEFAULT NULL,
  pages      pg_catalog.int8range DEFAULT NULL)
RETURNS TABLE (chunk pg_catalog.int8, lower pg_catalog.text[], upper pg_catalog.text[],
               rows pg_catalog.int8, checksum pg_catalog.text)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'shift_chunk_checksums';
COMMENT ON FUNCTION @extschema@.chunk_checksums(pg_catalog.regclass, pg_catalog.text[], pg_catalog.text[], pg_catalog.int4, pg_catalog.int8, pg_catalog.int4, pg_catalog.text[], pg_catalog.text[], pg_catalog.int4[], pg_catalog.int8range) IS
  'Checksums per key range (chunk_rows, target_ms, lower, upper) or per key-hash bucket (buckets, only_buckets, pages)';

CREATE FUNCTION @extschema@.row_hashes(
  rel      pg_catalog.regclass,
  columns  pg_catalog.text[] DEFAULT NULL,
  key      pg_catalog.text[] DEFAULT NULL,
  buckets  pg_catalog.int4 DEFAULT 1,
  only_buckets pg_catalog.int4[] DEFAULT NULL)
RETURNS TABLE (bucket pg_catalog.int4, key pg_catalog.text[], key_hash pg_catalog.text,
               row_hash pg_catalog.text)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'shift_row_hashes';
COMMENT ON FUNCTION @extschema@.row_hashes(pg_catalog.regclass, pg_catalog.text[], pg_catalog.text[], pg_catalog.int4, pg_catalog.int4[]) IS
  'Key and row hash of each row in the given key-hash buckets: the drill-down under chunk_checksums';

CREATE FUNCTION @extschema@.key_rows(
  rel      pg_catalog.regclass,
  keys     pg_catalog.text[],
  columns  pg_catalog.text[] DEFAULT NULL,
  key      pg_catalog.text[] DEFAULT NULL)
RETURNS TABLE (key pg_catalog.text[], key_hash pg_catalog.text, row_hash pg_catalog.text)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'shift_key_rows';
COMMENT ON FUNCTION @extschema@.key_rows(pg_catalog.regclass, pg_catalog.text[], pg_catalog.text[], pg_catalog.text[]) IS
  'Key and row hash of the rows with the given keys (each as row_hashes prints it): what pgshift compare reads again for rows that differed';

CREATE FUNCTION @extschema@.compare(
  source         pg_catalog.regclass,
  target         pg_catalog.regclass,
  columns        pg_catalog.text[] DEFAULT NULL,
  target_columns pg_catalog.text[] DEFAULT NULL,
  key            pg_catalog.text[] DEFAULT NULL,
  target_key     pg_catalog.text[] DEFAULT NULL,
  buckets        pg_catalog.int4 DEFAULT NULL)
RETURNS TABLE (kind pg_catalog.text, key pg_catalog.text[], columns pg_catalog.text[])
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'shift_compare';
COMMENT ON FUNCTION @extschema@.compare(pg_catalog.regclass, pg_catalog.regclass, pg_catalog.text[], pg_catalog.text[], pg_catalog.text[], pg_catalog.text[], pg_catalog.int4) IS
  'Rows missing in the target, missing in the source, or different (with the differing columns); no rows when equal';

CREATE FUNCTION @extschema@.checksum_columns(
  rel      pg_catalog.regclass,
  columns  pg_catalog.text[] DEFAULT NULL,
  key      pg_catalog.text[] DEFAULT NULL)
RETURNS TABLE (ord pg_catalog.int4, label pg_catalog.text, is_key pg_catalog.bool,
               type pg_catalog.text, class pg_catalog.text)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'shift_checksum_columns';
COMMENT ON FUNCTION @extschema@.checksum_columns(pg_catalog.regclass, pg_catalog.text[], pg_catalog.text[]) IS
  'The columns and key a checksum of the table hashes, with their types and hash classes (columns of different classes never match)';


CREATE FUNCTION @extschema@.value_word(value anyelement)
RETURNS pg_catalog.text
LANGUAGE c STABLE STRICT
AS 'MODULE_PATHNAME', 'shift_value_word';
COMMENT ON FUNCTION @extschema@.value_word(anyelement) IS
  'The canonical 64-bit word of one value (doc/checksum.md), as 16 hexadecimal digits';

-- Refuses anything but one query (C, sqlfrag.c): shift.compare_queries' check.
CREATE FUNCTION shift_internal._check_query(what pg_catalog.text, sql pg_catalog.text)
RETURNS void
AS 'MODULE_PATHNAME', 'shift_check_query'
LANGUAGE C STRICT IMMUTABLE;

/*
 * shift.compare_queries(source_sql, target_sql, key => NULL, target_key =>
 * NULL, buckets => NULL, search_path => the caller's)
 *   RETURNS TABLE (kind, key, columns)
 *
 * Shadow reads: the rows two queries return, compared as shift.compare
 * compares two tables (by key when one is given, else as multisets of
 * rows; the target's columns matched to the source's by name, each of a
 * hash class its counterpart shares).  Each query is read as a temporary
 * view (pgshift_source_query, pgshift_target_query) made under search_path,
 * in the caller's snapshot and as the caller; the views are dropped before
 * it returns.  Each text must be one query (42601 otherwise).  Needs a
 * session that may create temporary objects (not a standby).
 */
-- a row of shift.compare's answer, as a type (compare_queries takes an
-- argument named key, which a plpgsql function cannot also return)
CREATE TYPE @extschema@.compare_row AS (kind pg_catalog.text, key pg_catalog.text[], columns pg_catalog.text[]);
COMMENT ON TYPE @extschema@.compare_row IS
  'a row of a compare: missing_in_target, missing_in_source or different, the key, the differing columns';

CREATE FUNCTION @extschema@.compare_queries(source_sql pg_catalog.text, target_sql pg_catalog.text,
  key pg_catalog.text[] DEFAULT NULL, target_key pg_catalog.text[] DEFAULT NULL,
  buckets pg_catalog.int4 DEFAULT NULL,
  search_path pg_catalog.text DEFAULT pg_catalog.current_setting('search_path'))
RETURNS SETOF @extschema@.compare_row
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  pinned CONSTANT pg_catalog.text := pg_catalog.current_setting('search_path');
  src pg_catalog.regclass;
  tgt pg_catalog.regclass;
BEGIN
  IF source_sql IS NULL OR target_sql IS NULL THEN
    RAISE EXCEPTION 'compare_queries needs two queries' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  PERFORM shift_internal._check_query('compare_queries (source)', source_sql);
  PERFORM shift_internal._check_query('compare_queries (target)', target_sql);
  PERFORM pg_catalog.set_config('search_path', compare_queries.search_path, true);
  EXECUTE pg_catalog.format('CREATE TEMPORARY VIEW pgshift_source_query AS %s', source_sql);
  EXECUTE pg_catalog.format('CREATE TEMPORARY VIEW pgshift_target_query AS %s', target_sql);
  PERFORM pg_catalog.set_config('search_path', pinned, true);
  src := 'pg_temp.pgshift_source_query'::pg_catalog.regclass;
  tgt := 'pg_temp.pgshift_target_query'::pg_catalog.regclass;
  RETURN QUERY SELECT * FROM @extschema@.compare(src, tgt, key => compare_queries.key,
                                                 target_key => compare_queries.target_key,
                                                 buckets => compare_queries.buckets);
  EXECUTE pg_catalog.format('DROP VIEW %s, %s', src, tgt);
END
$$;
