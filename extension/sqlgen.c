/*-------------------------------------------------------------------------
 *
 * sqlgen.c
 *	  Pieces of the SQL pg_shift generates, spelled so that no search_path
 *	  can change what they mean: operators as OPERATOR(schema.name) of the
 *	  very operator a btree operator family holds, types and collations
 *	  schema-qualified.
 *
 * An unqualified operator in generated SQL is resolved among every operator
 * of that name the search_path shows, and an exact match in a schema
 * another role can create in (public.>(varchar, varchar)) beats pg_catalog's
 * text > text that needs a cast: that role's function would run as whoever
 * runs the statement.  Qualifying with pg_catalog alone is not right either:
 * a key of type citext has its ordering operators in citext's schema, and
 * pg_catalog's text operators (reached through citext's implicit cast to
 * text) order it differently from its index.  So each operator is the
 * member of the key index's operator family (or of the type's default btree
 * family), named in its own schema; its operands have exactly the types it
 * is declared for, so resolution within that schema finds it and nothing
 * else.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/stratnum.h"
#include "catalog/pg_am.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_opclass.h"
#include "catalog/pg_operator.h"
#include "commands/defrem.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "pg_shift.h"

/* "OPERATOR(schema.name)" of operator opno. */
char *
shift_qualified_operator(Oid opno)
{
	HeapTuple	tup = SearchSysCache1(OPEROID, ObjectIdGetDatum(opno));
	Form_pg_operator op;
	char	   *out;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for operator %u", opno);
	op = (Form_pg_operator) GETSTRUCT(tup);
	out = psprintf("OPERATOR(%s.%s)", quote_identifier(get_namespace_name(op->oprnamespace)),
				   NameStr(op->oprname));
	ReleaseSysCache(tup);
	return out;
}

/* The schema of operator opno. */
static Oid
operator_namespace(Oid opno)
{
	HeapTuple	tup = SearchSysCache1(OPEROID, ObjectIdGetDatum(opno));
	Oid			nsp;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for operator %u", opno);
	nsp = ((Form_pg_operator) GETSTRUCT(tup))->oprnamespace;
	ReleaseSysCache(tup);
	return nsp;
}

/* A type's name, schema-qualified, with its modifier: "pg_catalog.int8". */
char *
shift_qualified_type(Oid type, int32 typmod)
{
	return format_type_extended(type, typmod, FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY);
}

/* " COLLATE schema.name", or "" for no collation. */
char *
shift_collate_clause(Oid collation)
{
	HeapTuple	tup;
	Form_pg_collation c;
	char	   *out;

	if (!OidIsValid(collation))
		return "";
	tup = SearchSysCache1(COLLOID, ObjectIdGetDatum(collation));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for collation %u", collation);
	c = (Form_pg_collation) GETSTRUCT(tup);
	out = psprintf(" COLLATE %s", quote_qualified_identifier(get_namespace_name(c->collnamespace),
															 NameStr(c->collname)));
	ReleaseSysCache(tup);
	return out;
}

static Oid
family_member(Oid opfamily, Oid type, int16 strategy)
{
	Oid			op = get_opfamily_member(opfamily, type, type, strategy);

	if (!OidIsValid(op))
		elog(ERROR, "operator family %u has no strategy %d operator for type %u",
			 opfamily, strategy, type);
	return op;
}

/* Fills ops from a btree operator family and the type it orders. */
static void
fill_ops(ShiftKeyOps *ops, Oid opfamily, Oid opcintype, Oid collation)
{
	ops->opfamily = opfamily;
	ops->opcintype = opcintype;
	ops->collation = collation;
	ops->lt = family_member(opfamily, opcintype, BTLessStrategyNumber);
	ops->le = family_member(opfamily, opcintype, BTLessEqualStrategyNumber);
	ops->eq = family_member(opfamily, opcintype, BTEqualStrategyNumber);
	ops->ge = family_member(opfamily, opcintype, BTGreaterEqualStrategyNumber);
	ops->gt = family_member(opfamily, opcintype, BTGreaterStrategyNumber);
	ops->nsp = operator_namespace(ops->lt);
	ops->same_nsp = operator_namespace(ops->le) == ops->nsp &&
		operator_namespace(ops->eq) == ops->nsp &&
		operator_namespace(ops->ge) == ops->nsp &&
		operator_namespace(ops->gt) == ops->nsp;
}

/*
 * The ordering of column i (0-based) of a btree index: its operator family's
 * operators and the index's collation for it.
 */
void
shift_index_key_ops(Relation index, int i, ShiftKeyOps *ops)
{
	if (index->rd_rel->relam != BTREE_AM_OID)
		elog(ERROR, "index \"%s\" is not a btree index", RelationGetRelationName(index));
	fill_ops(ops, index->rd_opfamily[i], index->rd_opcintype[i], index->rd_indcollation[i]);
}

/*
 * The ordering a type's equality means when no index says otherwise: its
 * default btree operator class.  Raises if it has none.
 */
void
shift_type_key_ops(Oid type, Oid collation, ShiftKeyOps *ops)
{
	Oid			opclass = GetDefaultOpClass(type, BTREE_AM_OID);

	if (!OidIsValid(opclass))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("type %s has no default btree operator class", format_type_be(type)),
				 errdetail("pg_shift matches rows by key with the operators of that class.")));
	fill_ops(ops, get_opclass_family(opclass), get_opclass_input_type(opclass), collation);
}

/*
 * "expr OPERATOR(s.op) other": expr compared with other by operator opno.
 * Both sides must already have the types the operator is declared for (or
 * types binary-coercible to them, like varchar for text).
 */
void
shift_append_compare(StringInfo s, const char *left, Oid opno, const char *right)
{
	appendStringInfo(s, "%s %s %s", left, shift_qualified_operator(opno), right);
}
