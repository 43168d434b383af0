/*-------------------------------------------------------------------------
 *
 * capture.c
 *	  Change capture from a foreign table's changelog (sql/capture.sql): the
 *	  one step the SQL cannot take itself, running a capture's statements as
 *	  the role that defined it, under the search_path it recorded.
 *
 * The apply (shift_internal.capture_apply, plpgsql) runs as pg_shift's
 * owner through shift_owner_call, so that it may write the control tables
 * (the checkpoint, the gaps, the counters) in the same transaction as the
 * rows.  The statements it builds from a capture's definition (the
 * changelog's batch, the upsert with the capture's select =>, the delete of
 * keys gone from the source) must run as the capture's owner instead: they
 * read its foreign tables through its user mappings and write its table,
 * and its select => is SQL that role stored.  shift_capture_exec is that
 * switch, usable only by pg_shift's owner inside a call for a role that may
 * act for the capture's owner.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"

#include "pg_shift.h"

PG_FUNCTION_INFO_V1(shift_capture_exec);

/*
 * shift_internal._capture_exec(owner name, search_path text, sql text,
 *                              want_value bool) returns text
 *
 * Runs sql as role owner under search_path and returns the first column of
 * its first row as text (want_value; NULL without a row), or the number of
 * rows it processed.  Only pg_shift's owner may call it (the capture
 * implementations run as that role), and only on behalf of a caller that
 * may act for owner.
 */
Datum
shift_capture_exec(PG_FUNCTION_ARGS)
{
	char	   *owner;
	char	   *path;
	char	   *sql;
	bool		want_value;
	Oid			ownerid;
	ShiftAs		as;
	int			rc;
	char	   *value = NULL;
	uint64		processed;
	MemoryContext outer = CurrentMemoryContext;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("_capture_exec takes no NULL argument")));
	owner = NameStr(*PG_GETARG_NAME(0));
	path = text_to_cstring(PG_GETARG_TEXT_PP(1));
	sql = text_to_cstring(PG_GETARG_TEXT_PP(2));
	want_value = PG_GETARG_BOOL(3);

	if (GetUserId() != shift_extension_owner())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("_capture_exec runs only inside pg_shift's capture functions")));
	if (!shift_may_act_for(owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("capture belongs to role \"%s\"", owner),
				 errdetail("Role \"%s\" is neither that role, nor a member of it with its privileges, nor a superuser.",
						   GetUserNameFromId(shift_caller(), false))));
	ownerid = get_role_oid(owner, false);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	shift_as_begin(&as, ownerid, path);
	rc = SPI_execute(sql, false, 0);
	shift_as_end(&as);
	if (rc < 0)
		elog(ERROR, "SPI failed on a capture's statement (%s): %s", SPI_result_code_string(rc), sql);
	processed = SPI_processed;
	if (want_value && SPI_tuptable != NULL && processed > 0)
	{
		char	   *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		if (v != NULL)
			value = MemoryContextStrdup(outer, v);
	}
	SPI_finish();
	if (!want_value)
		value = psprintf("%llu", (unsigned long long) processed);
	if (value == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(value));
}

PG_FUNCTION_INFO_V1(shift_capture_check_select);

/*
 * shift_internal._capture_check_select(name text, sql text) returns void
 *
 * Refuses (SQLSTATE 54000) a capture's select => that is longer than a
 * fragment may be, or that PostgreSQL's scanner would take too long on, as
 * a backfill's: it is parsed again in every batch.
 */
Datum
shift_capture_check_select(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	text	   *sql = PG_GETARG_TEXT_PP(1);
	char	   *what = psprintf("select of capture \"%s\"", name);

	shift_check_size(what, VARSIZE_ANY_EXHDR(sql), SHIFT_MAX_FRAGMENT, SHIFT_FRAGMENT_HINT);
	shift_check_scannable(what, VARDATA_ANY(sql), VARSIZE_ANY_EXHDR(sql),
						  SHIFT_MAX_FRAGMENT_SCAN_COST);
	PG_RETURN_VOID();
}
