/*-------------------------------------------------------------------------
 *
 * control.c
 *	  Who pg_shift acts as: the boundary between the role that calls it, the
 *	  role that owns its control tables, and the role that stored a job.
 *
 * Three rules, each enforced here and nowhere else:
 *
 *	 - The control tables (shift.migration, phase, event, backfill,
 *	   backfill_batch, sync) are written by no role but their owner, the role
 *	   that ran CREATE EXTENSION.  The SQL functions that change them have
 *	   shift_owner_call as their body (the install script makes each from
 *	   its implementation: shift_internal._owner_call): it calls the function of
 *	   the same name and argument types in schema shift_internal (NAME_as_owner
 *	   for a function shift_internal.NAME; nobody else holds EXECUTE on
 *	   either) as that owner, in a security-restricted
 *	   operation, and remembers who called, so that the implementation can
 *	   check that the caller owns the row it changes (shift_internal.caller()).
 *	   Those implementations run fixed SQL on the control tables and the
 *	   catalogs under search_path pg_catalog, pg_temp; the one that runs SQL
 *	   a role stored, shift_internal.capture_apply, runs it as that role
 *	   (shift_internal._capture_exec), and a pg_shift function that SQL
 *	   calls works for that role, not for capture_apply's caller.  This is
 *	   how pg_cron writes cron.job for its callers; no function is SECURITY
 *	   DEFINER.
 *	 - C code that reads or writes the control tables does it through
 *	   shift_ctl_execute: as their owner, search_path pinned.
 *	 - SQL a role stored (a backfill job's set, where, select and throttle
 *	   query, a sync's expressions) runs as that role, under the search_path
 *	   recorded when it was stored (shift_as_begin), never as whoever happens
 *	   to run the job.  A sync's triggers are the exception PostgreSQL makes
 *	   for every trigger: they run as the role writing the table.
 *
 * And one more: the control tables are used only when the SQL objects are
 * this library's version (shift_extension_owner).  Between a new library's
 * installation and ALTER EXTENSION pg_shift UPDATE, every function that
 * reads them refuses, and only the sync triggers run (on the old version's
 * definitions, see sync_load_config in sync_config.c), so that writers
 * never fail.
 *
 * Switching roles uses SetUserIdAndSecContext with
 * SECURITY_LOCAL_USERID_CHANGE (and SECURITY_RESTRICTED_OPERATION when the
 * role changes, so that the stored SQL cannot leave temporary objects or
 * session state behind in the caller's session).  An error unwinds both the
 * role and the search_path through the (sub)transaction abort, as
 * fmgr_security_definer relies on.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_proc.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "parser/parse_func.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/regproc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/varlena.h"

#include "pg_shift.h"

PG_FUNCTION_INFO_V1(shift_owner_call);
PG_FUNCTION_INFO_V1(shift_caller_sql);
PG_FUNCTION_INFO_V1(shift_pin_search_path);

/* The schema of the implementations shift_owner_call calls. */
#define INTERNAL_SCHEMA "shift_internal"

/*
 * The role the running shift_owner_call works for: the one that called the
 * outermost one, or the role whose stored SQL called a nested one.
 */
static Oid	owner_call_caller = InvalidOid;
static int	owner_call_depth = 0;

/* ---------------------------------------------------------------- roles */

/*
 * pg_extension's row of pg_shift: returns its owner (extowner) and sets
 * *version to the version of its SQL objects in this database (extversion).
 * Looked up on every call (a scan of a tiny catalog by its index): the
 * extension may have been dropped and created again by another role, or
 * updated, in this session.
 */
static Oid
extension_row(char **version)
{
	Oid			extoid = get_extension_oid("pg_shift", false);
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	Oid			owner = InvalidOid;

	*version = NULL;
	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(extoid));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, Anum_pg_extension_extversion,
									 RelationGetDescr(rel), &isnull);

		owner = ((Form_pg_extension) GETSTRUCT(tup))->extowner;
		if (!isnull)
			*version = TextDatumGetCString(d);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	if (!OidIsValid(owner) || *version == NULL)
		elog(ERROR, "could not find the owner and version of extension pg_shift");
	return owner;
}

/*
 * The version of pg_shift's SQL objects in this database.  It differs from
 * the library's (PG_SHIFT_VERSION) between the installation of a new library
 * and ALTER EXTENSION pg_shift UPDATE: then only the sync triggers run, on
 * the old objects (see sync_load_config in sync_config.c).
 */
char *
shift_sql_version(void)
{
	char	   *version;

	(void) extension_row(&version);
	return version;
}

/*
 * The role that owns pg_shift's objects: pg_extension.extowner.  Everything
 * that reads or writes the control tables asks for it first, so this is
 * where a library newer than the SQL objects refuses to work on them: it
 * would read columns that are not there yet, or miss what their checks
 * guard.
 */
Oid
shift_extension_owner(void)
{
	char	   *version;
	Oid			owner = extension_row(&version);

	if (strcmp(version, PG_SHIFT_VERSION) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_shift's SQL objects are version %s but its library is %s",
						version, PG_SHIFT_VERSION),
				 errdetail("The library was replaced without updating the extension in this database; "
						   "until it is, the library runs the triggers of existing syncs and nothing "
						   "else that reads pg_shift's tables."),
				 errhint("Run ALTER EXTENSION pg_shift UPDATE in this database.")));
	return owner;
}

/*
 * The role on whose behalf pg_shift works: the caller of the outermost
 * shift_owner_call running, else the current user.
 */
Oid
shift_caller(void)
{
	return owner_call_depth > 0 ? owner_call_caller : GetUserId();
}

/*
 * May the caller act for owner (a job's, a sync's or a migration's)?  Yes
 * for the owner itself, a role that has its privileges (a member that
 * inherits them), and superusers.  A role that no longer exists is nobody's.
 */
bool
shift_may_act_for(const char *owner)
{
	Oid			ownerid = get_role_oid(owner, true);

	return OidIsValid(ownerid) && has_privs_of_role(shift_caller(), ownerid);
}

/* ---------------------------------------------------------------- acting as a role */

/*
 * Makes role the current user and search_path the search path, until
 * shift_as_end.  An error in between is unwound by the (sub)transaction
 * abort, which restores both.
 */
void
shift_as_begin(ShiftAs *as, Oid role, const char *search_path)
{
	int			sec;

	GetUserIdAndSecContext(&as->saved_user, &as->saved_sec);
	sec = as->saved_sec | SECURITY_LOCAL_USERID_CHANGE;
	if (role != as->saved_user)
		sec |= SECURITY_RESTRICTED_OPERATION;
	SetUserIdAndSecContext(role, sec);
	as->guc_level = NewGUCNestLevel();
	(void) set_config_option("search_path", search_path, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
}

void
shift_as_end(ShiftAs *as)
{
	AtEOXact_GUC(true, as->guc_level);
	SetUserIdAndSecContext(as->saved_user, as->saved_sec);
}

/*
 * Runs a fixed statement on the control tables as their owner, with
 * search_path pinned to pg_catalog (SPI must be connected).  Like
 * SPI_execute_with_args; raises on an SPI failure.
 */
int
shift_ctl_execute(const char *sql, int nargs, Oid *argtypes, Datum *values,
				  const char *nulls, bool read_only, long count)
{
	ShiftAs		as;
	int			rc;

	shift_as_begin(&as, shift_extension_owner(), "pg_catalog, pg_temp");
	rc = SPI_execute_with_args(sql, nargs, argtypes, values, nulls, read_only, count);
	shift_as_end(&as);
	if (rc < 0)
		elog(ERROR, "SPI failed on a control table (%s): %s", SPI_result_code_string(rc), sql);
	return rc;
}

/* ---------------------------------------------------------------- shift_owner_call */

typedef struct OwnerCall
{
	FmgrInfo	impl;			/* shift_internal.<same name>(<same types>) */
	Oid			owner;			/* its owner, the extension's */
} OwnerCall;

static OwnerCall *
owner_call_setup(FunctionCallInfo fcinfo)
{
	Oid			fn = fcinfo->flinfo->fn_oid;
	HeapTuple	tup;
	Form_pg_proc proc;
	char	   *impl_name;
	Oid			impl;
	Oid			owner;
	OwnerCall  *oc;

	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for function %u", fn);
	proc = (Form_pg_proc) GETSTRUCT(tup);
	impl_name = pstrdup(NameStr(proc->proname));
	/* an internal function's implementation beside it is NAME_as_owner */
	if (proc->pronamespace == get_namespace_oid(INTERNAL_SCHEMA, false))
		impl_name = psprintf("%s_as_owner", impl_name);
	impl = LookupFuncName(list_make2(makeString(INTERNAL_SCHEMA), makeString(impl_name)),
						  proc->pronargs, proc->proargtypes.values, true);
	ReleaseSysCache(tup);
	if (!OidIsValid(impl) || impl == fn)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function %s has no implementation in schema %s",
						format_procedure(fn), INTERNAL_SCHEMA),
				 errhint("The pg_shift installation is incomplete: ALTER EXTENSION pg_shift UPDATE, or create it again.")));
	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(impl));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for function %u", impl);
	owner = ((Form_pg_proc) GETSTRUCT(tup))->proowner;
	ReleaseSysCache(tup);

	/* only the extension's own implementation is ever run as its owner */
	if (owner != shift_extension_owner())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("function %s is not owned by the owner of pg_shift", format_procedure(impl))));

	oc = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(OwnerCall));
	fmgr_info_cxt(impl, &oc->impl, fcinfo->flinfo->fn_mcxt);
	oc->owner = owner;
	fcinfo->flinfo->fn_extra = oc;
	return oc;
}

/*
 * The body of every SQL function that changes a control table: calls
 * shift_internal.<the same name>(<the same argument types>), or
 * shift_internal.<name>_as_owner for shift_internal.<name>, with the same
 * arguments (and the same result set, for a set-returning function) as the
 * owner of pg_shift, remembering the caller for shift_internal.caller().
 */
Datum
shift_owner_call(PG_FUNCTION_ARGS)
{
	OwnerCall  *oc = fcinfo->flinfo->fn_extra;
	LOCAL_FCINFO(inner, FUNC_MAX_ARGS);
	Oid			saved_user;
	int			saved_sec;
	Oid			saved_caller = owner_call_caller;
	int			saved_depth = owner_call_depth;
	volatile Datum result = (Datum) 0;
	int			i;

	if (oc == NULL)
		oc = owner_call_setup(fcinfo);
	InitFunctionCallInfoData(*inner, &oc->impl, PG_NARGS(), PG_GET_COLLATION(),
							 fcinfo->context, fcinfo->resultinfo);
	for (i = 0; i < PG_NARGS(); i++)
		inner->args[i] = fcinfo->args[i];

	GetUserIdAndSecContext(&saved_user, &saved_sec);

	/*
	 * The caller is whoever runs this call, unless it is an implementation
	 * (running as the owner of pg_shift) calling another one.  SQL a role
	 * stored, run by an implementation as that role (a capture's select),
	 * calls as that role, never as the implementation's caller: else a
	 * capture's owner could make pg_shift record and run her SQL as whoever
	 * applies her capture.
	 */
	if (owner_call_depth == 0 || saved_user != oc->owner)
		owner_call_caller = saved_user;
	owner_call_depth++;
	SetUserIdAndSecContext(oc->owner, saved_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	PG_TRY();
	{
		result = FunctionCallInvoke(inner);
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(saved_user, saved_sec);
		owner_call_caller = saved_caller;
		owner_call_depth = saved_depth;
	}
	PG_END_TRY();
	fcinfo->isnull = inner->isnull;
	return result;
}

/*
 * shift_internal.caller() returns regrole
 *
 * The role an implementation works for (see shift_caller).
 */
Datum
shift_caller_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_OID(shift_caller());
}

/* Frees each plan of plans[0 .. n - 1] that is not NULL (SPI_freeplan). */
void
shift_free_plans(SPIPlanPtr *plans, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		if (plans[i])
			SPI_freeplan(plans[i]);
}

/* ---------------------------------------------------------------- search_path */

/*
 * The search_path a job or sync records when it is made, from the one in
 * force (or given): "$user" becomes the creating role's name, each schema is
 * quoted, and pg_temp comes last unless it is named, so that what is
 * checked at creation is exactly what runs later, in any session, as any
 * role.  pg_catalog is searched first unless it is named, as always.
 */
char *
shift_pinned_search_path(const char *path)
{
	char	   *raw = pstrdup(path);
	List	   *names;
	ListCell   *lc;
	StringInfoData out;
	bool		has_temp = false;

	if (!SplitIdentifierString(raw, ',', &names))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid search_path: %s", path),
				 errhint("Give a list of schema names separated by commas, as SET search_path takes.")));
	initStringInfo(&out);
	foreach(lc, names)
	{
		const char *name = lfirst(lc);

		if (strcmp(name, "$user") == 0)
			name = GetUserNameFromId(shift_caller(), false);
		if (strcmp(name, "pg_temp") == 0)
			has_temp = true;
		appendStringInfo(&out, "%s%s", out.len ? ", " : "", quote_identifier(name));
	}
	if (!has_temp)
		appendStringInfo(&out, "%spg_temp", out.len ? ", " : "");
	return out.data;
}

/*
 * shift_internal.pin_search_path(path text) returns text
 */
Datum
shift_pin_search_path(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(shift_pinned_search_path(text_to_cstring(PG_GETARG_TEXT_PP(0)))));
}
