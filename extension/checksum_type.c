/*-------------------------------------------------------------------------
 *
 * checksum_type.c
 *	  Which canonical rule a type's values follow (doc/checksum.md,
 *	  "Values"): colhash_init sets up a ColHash per column type, domains as
 *	  their base type and arrays, ranges, multiranges and composites with
 *	  the ColHash of their parts; colhash_class names the values a column's
 *	  words can equal, so that compare refuses two columns that never could.
 *
 * The words themselves are computed in checksum_canon.c.  Nothing here
 * takes locks or writes; it reads the type catalogs and the type cache.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/dependency.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "checksum.h"

/* Looks up the fields of composite type (typid, typmod) for c. */
void
record_setup(ColHash *c, Oid typid, int32 typmod)
{
	MemoryContext old = MemoryContextSwitchTo(c->cxt);
	TupleDesc	desc = lookup_rowtype_tupdesc_copy(typid, typmod);
	int			i;

	c->rectype = typid;
	c->rectypmod = typmod;
	c->desc = desc;
	c->fields = palloc0(sizeof(ColHash) * Max(desc->natts, 1));
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped)
			colhash_init(&c->fields[i], att->atttypid, att->atttypmod, c->cxt);
	}
	MemoryContextSwitchTo(old);
}

/* The type is citext of the citext extension. */
static bool
is_citext(Oid typid, Form_pg_type t)
{
	Oid			ext;
	char	   *name;

	if (strcmp(NameStr(t->typname), "citext") != 0)
		return false;
	ext = getExtensionOfObject(TypeRelationId, typid);
	if (!OidIsValid(ext))
		return false;
	name = get_extension_name(ext);
	return name != NULL && strcmp(name, "citext") == 0;
}

/*
 * The built-in types with a rule of their own, by OID: what their canonical
 * form is and how value_word computes it.  Any other type is looked up in
 * pg_type by colhash_init.
 */
typedef struct BuiltinRule
{
	Oid			typid;
	HashKind	kind;
	WordOp		op;
} BuiltinRule;

static const BuiltinRule builtin_rules[] = {
	{INT2OID, HK_INT, W_INT2},
	{INT4OID, HK_INT, W_INT4},
	{INT8OID, HK_INT, W_INT8},
	{BOOLOID, HK_FIXED, W_U8},
	{CHAROID, HK_FIXED, W_U8},
	{DATEOID, HK_FIXED, W_U32},
	{OIDOID, HK_FIXED, W_U32},
	{XIDOID, HK_FIXED, W_U32},
	{CIDOID, HK_FIXED, W_U32},
	{REGPROCOID, HK_FIXED, W_U32},
	{REGPROCEDUREOID, HK_FIXED, W_U32},
	{REGOPEROID, HK_FIXED, W_U32},
	{REGOPERATOROID, HK_FIXED, W_U32},
	{REGCLASSOID, HK_FIXED, W_U32},
	{REGTYPEOID, HK_FIXED, W_U32},
	{REGCONFIGOID, HK_FIXED, W_U32},
	{REGDICTIONARYOID, HK_FIXED, W_U32},
	{REGROLEOID, HK_FIXED, W_U32},
	{REGNAMESPACEOID, HK_FIXED, W_U32},
	{REGCOLLATIONOID, HK_FIXED, W_U32},
	{TIMEOID, HK_FIXED, W_INT8},
	{TIMESTAMPOID, HK_FIXED, W_INT8},
	{TIMESTAMPTZOID, HK_FIXED, W_INT8},
	{CASHOID, HK_FIXED, W_INT8},
	{PG_LSNOID, HK_FIXED, W_INT8},
	{XID8OID, HK_FIXED, W_INT8},
	{FLOAT4OID, HK_FLOAT4, W_FLOAT4},
	{FLOAT8OID, HK_FLOAT8, W_FLOAT8},
	{NUMERICOID, HK_NUMERIC, W_NUMERIC},
	{TEXTOID, HK_TEXT, W_TEXT},
	{VARCHAROID, HK_TEXT, W_TEXT},
	{JSONOID, HK_TEXT, W_TEXT},
	{XMLOID, HK_TEXT, W_TEXT},
	{BPCHAROID, HK_BPCHAR, W_OTHER},
	{NAMEOID, HK_NAME, W_OTHER},
	{BYTEAOID, HK_BYTEA, W_BYTES},
	{UUIDOID, HK_UUID, W_OTHER},
	{INTERVALOID, HK_INTERVAL, W_OTHER},
	{TIMETZOID, HK_TIMETZ, W_OTHER},
	{JSONBOID, HK_JSONB, W_OTHER},
	{INETOID, HK_INET, W_OTHER},
	{CIDROID, HK_INET, W_OTHER},
	{MACADDROID, HK_MACADDR, W_OTHER},
	{MACADDR8OID, HK_MACADDR8, W_OTHER},
	{BITOID, HK_BIT, W_OTHER},
	{VARBITOID, HK_BIT, W_OTHER},
	{TIDOID, HK_TID, W_OTHER},
	{POINTOID, HK_POINT, W_OTHER},
	{LSEGOID, HK_LSEG, W_OTHER},
	{BOXOID, HK_BOX, W_OTHER},
	{LINEOID, HK_LINE, W_OTHER},
	{CIRCLEOID, HK_CIRCLE, W_OTHER},
	{PATHOID, HK_PATH, W_OTHER},
	{POLYGONOID, HK_POLYGON, W_OTHER},
};

/*
 * Sets up c for values of typid (typmod matters only for anonymous
 * records): domains are their base type; arrays, ranges, multiranges and
 * composites set up their parts, in cxt.
 */
void
colhash_init(ColHash *c, Oid typid, int32 typmod, MemoryContext cxt)
{
	int32		basemod = typmod;
	Oid			base = getBaseTypeAndTypmod(typid, &basemod);
	HeapTuple	tup;
	Form_pg_type t;
	MemoryContext old;
	int			i;

	check_stack_depth();
	memset(c, 0, sizeof(*c));
	c->cxt = cxt;
	c->typid = base;
	c->typmod = basemod;
	c->op = W_OTHER;
	get_typlenbyvalalign(base, &c->typlen, &c->typbyval, &c->typalign);
	for (i = 0; i < (int) lengthof(builtin_rules); i++)
		if (builtin_rules[i].typid == base)
		{
			c->kind = builtin_rules[i].kind;
			c->op = builtin_rules[i].op;
			return;
		}
	if (base == RECORDOID)
	{
		/* an anonymous record: its fields come with its first value */
		c->kind = HK_RECORD;
		if (basemod >= 0)
			record_setup(c, RECORDOID, basemod);
		return;
	}

	tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(base));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for type %u", base);
	t = (Form_pg_type) GETSTRUCT(tup);
	old = MemoryContextSwitchTo(cxt);
	if (t->typtype == TYPTYPE_ENUM)
		c->kind = HK_ENUM;
	else if (t->typtype == TYPTYPE_COMPOSITE)
	{
		c->kind = HK_RECORD;
		record_setup(c, base, -1);
	}
	else if (t->typtype == TYPTYPE_RANGE)
	{
		c->kind = HK_RANGE;
		c->tc = lookup_type_cache(base, TYPECACHE_RANGE_INFO);
		c->elem = palloc(sizeof(ColHash));
		colhash_init(c->elem, c->tc->rngelemtype->type_id, -1, cxt);
	}
	else if (t->typtype == TYPTYPE_MULTIRANGE)
	{
		c->kind = HK_MULTIRANGE;
		c->tc = lookup_type_cache(base, TYPECACHE_MULTIRANGE_INFO)->rngtype;
		c->elem = palloc(sizeof(ColHash));
		colhash_init(c->elem, c->tc->rngelemtype->type_id, -1, cxt);
	}
	else if (IsTrueArrayType(t))
	{
		c->kind = HK_ARRAY;
		c->elem = palloc(sizeof(ColHash));
		colhash_init(c->elem, t->typelem, basemod, cxt);
	}
	else if (is_citext(base, t))
		c->kind = HK_CITEXT;
	else
	{
		Oid			outfn;
		bool		isvarlena;

		c->kind = HK_OUTPUT;
		getTypeOutputInfo(base, &outfn, &isvarlena);
		fmgr_info_cxt(outfn, &c->out, cxt);
	}
	MemoryContextSwitchTo(old);
	ReleaseSysCache(tup);
}

/* A type's name without its schema, which may differ between servers. */
static char *
type_name(Oid typid)
{
	HeapTuple	tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(typid));
	char	   *name;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for type %u", typid);
	name = pstrdup(NameStr(((Form_pg_type) GETSTRUCT(tup))->typname));
	ReleaseSysCache(tup);
	return name;
}

/*
 * Which values a column's can equal: two columns whose classes differ never
 * hash equal (int against text), so compare refuses them up front.  The
 * class names no OID or schema, so two servers give the same class.
 */
char *
colhash_class(ColHash *c)
{
	switch (c->kind)
	{
		case HK_INT:
			return pstrdup("integer");
		case HK_FLOAT4:
		case HK_FLOAT8:
			return pstrdup("float");
		case HK_NUMERIC:
			return pstrdup("numeric");
		case HK_TEXT:
		case HK_BPCHAR:
		case HK_NAME:
		case HK_ENUM:
			return pstrdup("text");
		case HK_CITEXT:
			return pstrdup("citext");
		case HK_BYTEA:
			return pstrdup("bytea");
		case HK_UUID:
			return pstrdup("uuid");
		case HK_INTERVAL:
			return pstrdup("interval");
		case HK_TIMETZ:
			return pstrdup("time with time zone");
		case HK_JSONB:
			return pstrdup("jsonb");
		case HK_INET:
			return pstrdup("inet");
		case HK_MACADDR:
		case HK_MACADDR8:
		case HK_TID:
		case HK_POINT:
		case HK_LSEG:
		case HK_BOX:
		case HK_LINE:
		case HK_CIRCLE:
		case HK_PATH:
		case HK_POLYGON:
			return format_type_be(c->typid);
		case HK_BIT:
			return pstrdup("bit");
		case HK_FIXED:
			/* the OID alias types (regclass, ...) hold OIDs */
			return psprintf("fixed %s", c->op == W_U32 && c->typid != DATEOID &&
							c->typid != XIDOID && c->typid != CIDOID ?
							"oid" : format_type_be(c->typid));
		case HK_ARRAY:
			return psprintf("%s[]", colhash_class(c->elem));
		case HK_RANGE:
			return psprintf("range(%s)", colhash_class(c->elem));
		case HK_MULTIRANGE:
			return psprintf("multirange(%s)", colhash_class(c->elem));
		case HK_RECORD:
			{
				StringInfoData s;
				int			i;
				int			n = 0;

				if (c->desc == NULL)
					return pstrdup("record");
				initStringInfo(&s);
				appendStringInfoChar(&s, '(');
				for (i = 0; i < c->desc->natts; i++)
					if (!TupleDescAttr(c->desc, i)->attisdropped)
						appendStringInfo(&s, "%s%s", n++ ? "," : "",
										 colhash_class(&c->fields[i]));
				appendStringInfoChar(&s, ')');
				return s.data;
			}
		case HK_OUTPUT:
			return psprintf("output %s", type_name(c->typid));
	}
	return pstrdup("?");
}
