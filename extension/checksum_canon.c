/*-------------------------------------------------------------------------
 *
 * checksum_canon.c
 *	  The canonical word of a value, defined per type from the value itself:
 *	  never from a wire format, a session setting or the storage layout.
 *	  doc/checksum.md is the specification (with test vectors); this file
 *	  implements it.
 *
 * Values of up to 8 bytes are their own canonical bits; longer ones are the
 * XXH3-64 hash of canonical bytes.  Equal values (by their type's
 * equality) give equal words: numeric 1.0 and 1.00, float -0 and 0, every
 * NaN, intervals of equal span, jsonb whatever its numeric scales, arrays
 * whatever their NULL bitmap.  Text-like values are their characters in
 * UTF-8, converted from the database encoding (never through the client
 * encoding), so a checksum does not depend on the session.  Arrays,
 * ranges, multiranges and composites are built from the words of their
 * elements, bounds and fields, with nothing per-database (no type OID).
 * Types without a rule here hash their output function's text, computed
 * with the display settings fixed by canon_pin_settings.  Which rule a
 * type follows is settled once per column by colhash_init
 * (checksum_type.c).
 *
 * Nothing here takes locks or writes; memory goes to the caller's current
 * (per-row) context, nested ColHash parts to the ColHash's own context.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/socket.h>

#include "access/htup_details.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_enum.h"
#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/fmgroids.h"
#include "utils/formatting.h"
#include "utils/geo_decls.h"
#include "utils/guc.h"
#include "utils/inet.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/multirangetypes.h"
#include "utils/rangetypes.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
#include "utils/varbit.h"

#include "checksum.h"

/* Text must be converted to UTF-8 (the database is neither UTF8 nor SQL_ASCII). */
bool		canon_convert_text = false;

#define ZERO_WORD		UINT64CONST(0x7a65726f)	/* numeric zero */

/* ---------------------------------------------------------------- buffers */

void
buf_init(Buf *b)
{
	b->cap = 1024;
	b->len = 0;
	b->data = palloc(b->cap);
}

pg_noinline void
buf_grow(Buf *b, int n)
{
	Size		want = (Size) b->len + n;
	Size		cap = b->cap;

	while (cap < want)
		cap *= 2;
	if (cap > MaxAllocSize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a value is too large to hash")));
	b->data = repalloc(b->data, cap);
	b->cap = (int) cap;
}

void
canon_init(Canon *cn)
{
	int			enc = GetDatabaseEncoding();

	canon_convert_text = (enc != PG_UTF8 && enc != PG_SQL_ASCII);
	cn->bufs = NULL;
	cn->nbufs = 0;
	cn->depth = 0;
	cn->cxt = CurrentMemoryContext;
}

/* The buffer of the next nesting level, emptied; canon_leave gives it back. */
static inline Buf *
canon_enter(Canon *cn)
{
	Buf		   *b;

	/* a value's own level needs no check: its nested ones do */
	if (cn->depth > 0)
		check_stack_depth();
	if (unlikely(cn->depth == cn->nbufs))
	{
		MemoryContext old = MemoryContextSwitchTo(cn->cxt);
		int			n = cn->nbufs ? cn->nbufs * 2 : 4;

		cn->bufs = cn->bufs ? repalloc(cn->bufs, sizeof(Buf *) * n) : palloc(sizeof(Buf *) * n);
		while (cn->nbufs < n)
		{
			cn->bufs[cn->nbufs] = palloc(sizeof(Buf));
			buf_init(cn->bufs[cn->nbufs]);
			cn->nbufs++;
		}
		MemoryContextSwitchTo(old);
	}
	b = cn->bufs[cn->depth++];
	b->len = 0;
	return b;
}

static inline uint64
canon_leave(Canon *cn, Buf *b)
{
	cn->depth--;
	return XXH3_64bits(b->data, b->len);
}

/* A NULL bitmap of n values, bit i set when value i is NULL, LSB first. */
static void
put_null_bitmap(Buf *b, const bool *isnull, int n)
{
	int			nbytes = (n + 7) / 8;
	int			i;

	buf_reserve(b, nbytes);
	memset(b->data + b->len, 0, nbytes);
	for (i = 0; i < n; i++)
		if (isnull[i])
			b->data[b->len + (i >> 3)] |= (char) (1 << (i & 7));
	b->len += nbytes;
}

/* ---------------------------------------------------------------- text */

/* The word of characters in the database encoding: XXH3-64 of their UTF-8. */
uint64
text_word_bytes(const char *p, int len)
{
	if (canon_convert_text && len > 0)
	{
		char	   *u = pg_server_to_any(p, len, PG_UTF8);

		if (u != p)
		{
			uint64		w = XXH3_64bits(u, strlen(u));

			pfree(u);
			return w;
		}
	}
	return XXH3_64bits(p, len);
}

/*
 * memcpy for the short strings of jsonb keys and values: overlapping
 * fixed-size copies instead of a call into the C library.
 */
static inline void
copy_short(char *dst, const char *src, int len)
{
	if (len >= 8 && len <= 16)
	{
		memcpy(dst, src, 8);
		memcpy(dst + len - 8, src + len - 8, 8);
	}
	else if (len >= 4 && len < 8)
	{
		memcpy(dst, src, 4);
		memcpy(dst + len - 4, src + len - 4, 4);
	}
	else if (len > 0 && len < 4)
	{
		dst[0] = src[0];
		dst[len / 2] = src[len / 2];
		dst[len - 1] = src[len - 1];
	}
	else if (len > 16)
		memcpy(dst, src, len);
}

/* Appends characters as a jsonb string: 's', UTF-8 length, UTF-8 bytes. */
static pg_attribute_always_inline void
put_string(Buf *b, const char *p, int len)
{
	char	   *u = NULL;

	if (likely(!canon_convert_text))
	{
		uint32		le = LE32((uint32) len);

		buf_reserve(b, 5 + len);
		b->data[b->len] = 's';
		memcpy(b->data + b->len + 1, &le, 4);
		copy_short(b->data + b->len + 5, p, len);
		b->len += 5 + len;
		return;
	}
	if (len > 0)
	{
		u = pg_server_to_any(p, len, PG_UTF8);
		if (u != p)
		{
			p = u;
			len = strlen(u);
		}
		else
			u = NULL;
	}
	put_u8(b, 's');
	put_u32(b, (uint32) len);
	put_bytes(b, p, len);
	if (u)
		pfree(u);
}

/* ---------------------------------------------------------------- numeric */

/*
 * A numeric's word from its data (after the varlena header, at any
 * alignment): sign, weight and base-10000 digits without leading or
 * trailing zero digits, whatever the display scale or the stored form
 * (short, or long as a scale of 64 or more forces).  Up to three digits
 * with a weight in -128..127 are packed into the word; others hash their
 * canonical bytes.  The layout read here is fixed by pg_upgrade
 * compatibility (numeric.c: a uint16 header, short or long form, then int16
 * digits).
 */
pg_noinline uint64
numeric_word_slow(const char *p, int len)
{
	uint16		hdr;
	bool		negative;
	int			weight;
	const char *digits;
	int			ndigits;
	int			first;
	int			last;
	int			n;
	int			i;

	memcpy(&hdr, p, sizeof(hdr));
	if ((hdr & 0xC000) == 0xC000)
	{
		/* NaN 0xC000, +Infinity 0xD000, -Infinity 0xF000 */
		char		tag = (hdr & 0xF000) == 0xC000 ? 'N' : (hdr & 0xF000) == 0xD000 ? 'I' : 'J';

		return XXH3_64bits(&tag, 1);
	}
	if (hdr & 0x8000)
	{
		/* short form: sign 0x2000, dscale 0x1F80, weight sign 0x0040 and 0x003F */
		negative = (hdr & 0x2000) != 0;
		weight = (hdr & 0x0040) ? (int) (~0x003F | (hdr & 0x003F)) : (int) (hdr & 0x003F);
		digits = p + 2;
		ndigits = (len - 2) / 2;
	}
	else
	{
		/* long form: sign 0x4000 (0x0000 positive), dscale 0x3FFF, then an int16 weight */
		int16		w;

		negative = (hdr & 0xC000) == 0x4000;
		memcpy(&w, p + 2, sizeof(w));
		weight = w;
		digits = p + 4;
		ndigits = (len - 4) / 2;
	}
	first = 0;
	while (first < ndigits && digit_at(digits, first) == 0)
	{
		first++;
		weight--;
	}
	last = ndigits;
	while (last > first && digit_at(digits, last - 1) == 0)
		last--;
	n = last - first;
	if (n == 0)
		return ZERO_WORD;
	if (n <= 3 && weight >= -128 && weight <= 127)
	{
		/* bit 63: packed; 62: negative; 61-60: digits; 59-52: weight; digits 14 bits each */
		uint64		w = (UINT64CONST(1) << 63) | ((uint64) negative << 62) |
			((uint64) n << 60) | ((uint64) (uint8) (int8) weight << 52);

		for (i = 0; i < n; i++)
			w |= (uint64) (uint16) digit_at(digits, first + i) << (14 * i);
		return w;
	}
	else
	{
		/* '+' or '-', weight (int16), digits (int16 each), little-endian */
		char		stack[256];
		Size		size = 3 + 2 * (Size) n;
		char	   *out = size <= sizeof(stack) ? stack : palloc(size);
		uint16		le;
		uint64		w;

		out[0] = negative ? '-' : '+';
		le = LE16((uint16) (int16) weight);
		memcpy(out + 1, &le, 2);
		for (i = 0; i < n; i++)
		{
			le = LE16((uint16) digit_at(digits, first + i));
			memcpy(out + 3 + 2 * i, &le, 2);
		}
		w = XXH3_64bits(out, size);
		if (out != stack)
			pfree(out);
		return w;
	}
}

/* The word of a numeric varlena at num (any alignment, any header). */
static uint64
numeric_word_at(const char *num)
{
	if (VARATT_IS_1B(num))
		return numeric_word_data(num + VARHDRSZ_SHORT, VARSIZE_1B(num) - VARHDRSZ_SHORT);
	else
	{
		uint32		vh;

		memcpy(&vh, num, sizeof(vh));
		return numeric_word_data(num + VARHDRSZ, VARSIZE_4B(&vh) - VARHDRSZ);
	}
}

/* ---------------------------------------------------------------- jsonb */

static void jsonb_container(Buf *b, const char *c);

/*
 * Appends entry e of a container, whose data runs from off to end (offsets
 * from base, where the container's data starts): strings as 's', length,
 * UTF-8; numbers as 'd' and their numeric word; 't', 'f', 'n'; containers
 * recursively.  Numbers and containers start at the next 4-byte boundary of
 * their offset.
 */
static inline void
jsonb_entry(Buf *b, JEntry e, const char *base, uint32 off, uint32 end)
{
	switch (e & JENTRY_TYPEMASK)
	{
		case JENTRY_ISSTRING:
			put_string(b, base + off, (int) (end - off));
			break;
		case JENTRY_ISNUMERIC:
			{
				uint64		le = LE64(numeric_word_at(base + INTALIGN(off)));

				buf_reserve(b, 9);
				b->data[b->len] = 'd';
				memcpy(b->data + b->len + 1, &le, 8);
				b->len += 9;
				break;
			}
		case JENTRY_ISBOOL_FALSE:
			put_u8(b, 'f');
			break;
		case JENTRY_ISBOOL_TRUE:
			put_u8(b, 't');
			break;
		case JENTRY_ISNULL:
			put_u8(b, 'n');
			break;
		case JENTRY_ISCONTAINER:
			check_stack_depth();
			jsonb_container(b, base + INTALIGN(off));
			break;
		default:
			elog(ERROR, "unexpected jsonb entry type %u", e & JENTRY_TYPEMASK);
	}
}

typedef struct JsonbKey
{
	const char *p;
	int			len;
	int			index;
	char	   *conv;
} JsonbKey;

/* Object keys in jsonb's order: shorter first, then bytewise. */
static int
cmp_jsonb_key(const void *pa, const void *pb)
{
	const JsonbKey *a = pa;
	const JsonbKey *b = pb;

	if (a->len != b->len)
		return a->len < b->len ? -1 : 1;
	return memcmp(a->p, b->p, a->len);
}

/*
 * An object of a database whose encoding is not UTF-8: its keys converted,
 * then sorted again by their UTF-8 length and bytes; each key followed by
 * its value.
 */
static void
jsonb_object_converted(Buf *b, const char *entries, const char *base, int count)
{
	uint32	   *start = palloc(sizeof(uint32) * (2 * count + 1));
	JsonbKey   *keys = palloc(sizeof(JsonbKey) * Max(count, 1));
	uint32		off = 0;
	int			i;

	for (i = 0; i < 2 * count; i++)
	{
		JEntry		e;

		memcpy(&e, entries + sizeof(JEntry) * i, sizeof(e));
		start[i] = off;
		off = JBE_HAS_OFF(e) ? JBE_OFFLENFLD(e) : off + JBE_OFFLENFLD(e);
	}
	start[2 * count] = off;
	for (i = 0; i < count; i++)
	{
		const char *p = base + start[i];
		int			len = (int) (start[i + 1] - start[i]);
		char	   *u = len > 0 ? pg_server_to_any(p, len, PG_UTF8) : (char *) p;

		keys[i].conv = u != p ? u : NULL;
		keys[i].p = u;
		keys[i].len = u != p ? (int) strlen(u) : len;
		keys[i].index = i;
	}
	qsort(keys, count, sizeof(JsonbKey), cmp_jsonb_key);
	for (i = 0; i < count; i++)
	{
		int			v = count + keys[i].index;
		JEntry		e;

		put_u8(b, 's');
		put_u32(b, (uint32) keys[i].len);
		put_bytes(b, keys[i].p, keys[i].len);
		memcpy(&e, entries + sizeof(JEntry) * v, sizeof(e));
		jsonb_entry(b, e, base, start[v], start[v + 1]);
		if (keys[i].conv)
			pfree(keys[i].conv);
	}
	pfree(keys);
	pfree(start);
}

/*
 * Where entry i of a container's entries starts, relative to its data: the
 * lengths of the entries before it, summed back to the nearest one that
 * stores its end offset (one in JB_OFFSET_STRIDE does), as getJsonbOffset
 * does, but unaligned-safe.
 */
static inline uint32
jsonb_offset(const char *entries, int i)
{
	uint32		off = 0;

	while (--i >= 0)
	{
		JEntry		e;

		memcpy(&e, entries + sizeof(JEntry) * i, sizeof(e));
		off += JBE_OFFLENFLD(e);
		if (JBE_HAS_OFF(e))
			break;
	}
	return off;
}

/*
 * Appends a container: an array as '[', its count and its elements; an
 * object as '{', its count and its members, key then value, ordered by the
 * key's UTF-8 length, then its bytes (which is how jsonb stores them when
 * the database is UTF-8; otherwise the converted keys are sorted here); a
 * scalar alone.  Entries are read once, in one pass: an object's keys and
 * values (stored all keys first) with a cursor each.  Reads are
 * unaligned-safe.
 */
static void
jsonb_container(Buf *b, const char *c)
{
	uint32		header;
	uint32		count;
	bool		object;
	const char *entries = c + sizeof(uint32);
	const char *base;
	int			i;

	memcpy(&header, c, sizeof(header));
	count = header & JB_CMASK;
	object = (header & JB_FOBJECT) != 0;
	base = entries + sizeof(JEntry) * (Size) (object ? 2 * count : count);
	if (object && canon_convert_text && count > 0)
	{
		put_u8(b, '{');
		put_u32(b, count);
		jsonb_object_converted(b, entries, base, count);
		return;
	}
	if (!(header & JB_FSCALAR))
	{
		uint32		le = LE32(count);

		buf_reserve(b, 5);
		b->data[b->len] = object ? '{' : '[';
		memcpy(b->data + b->len + 1, &le, 4);
		b->len += 5;
	}
	if (!object)
	{
		uint32		off = 0;

		for (i = 0; i < (int) count; i++)
		{
			JEntry		e;
			uint32		end;

			memcpy(&e, entries + sizeof(JEntry) * i, sizeof(e));
			/* an entry stores either its end offset or its length */
			end = JBE_HAS_OFF(e) ? JBE_OFFLENFLD(e) : off + JBE_OFFLENFLD(e);
			jsonb_entry(b, e, base, off, end);
			off = end;
		}
	}
	else
	{
		const char *ventries = entries + sizeof(JEntry) * (Size) count;
		uint32		koff = 0;
		uint32		voff = jsonb_offset(entries, (int) count);

		for (i = 0; i < (int) count; i++)
		{
			JEntry		k;
			JEntry		v;
			uint32		kend;
			uint32		vend;

			memcpy(&k, entries + sizeof(JEntry) * i, sizeof(k));
			memcpy(&v, ventries + sizeof(JEntry) * i, sizeof(v));
			kend = JBE_HAS_OFF(k) ? JBE_OFFLENFLD(k) : koff + JBE_OFFLENFLD(k);
			vend = JBE_HAS_OFF(v) ? JBE_OFFLENFLD(v) : voff + JBE_OFFLENFLD(v);
			/* a key is a string */
			put_string(b, base + koff, (int) (kend - koff));
			jsonb_entry(b, v, base, voff, vend);
			koff = kend;
			voff = vend;
		}
	}
}

static uint64
jsonb_word(Canon *cn, Datum d)
{
	struct varlena *v = (struct varlena *) DatumGetPointer(d);
	Buf		   *b;

	if (VARATT_IS_EXTERNAL(v) || VARATT_IS_COMPRESSED(v))
		v = pg_detoast_datum_packed(v);
	b = canon_enter(cn);
	jsonb_container(b, VARDATA_ANY(v));
	return canon_leave(cn, b);
}

/* ---------------------------------------------------------------- containers */

static uint64
array_word(Canon *cn, ColHash *c, Datum d)
{
	ArrayType  *a = DatumGetArrayTypeP(d);
	int			ndim = ARR_NDIM(a);
	int			n = ArrayGetNItems(ndim, ARR_DIMS(a));
	ColHash    *elem = c->elem;
	char	   *p = ARR_DATA_PTR(a);
	bits8	   *bitmap = ARR_NULLBITMAP(a);
	int			bitmask = 1;
	bool		stack[64];
	bool	   *isnull = n <= (int) lengthof(stack) ? stack : palloc(sizeof(bool) * n);
	Buf		   *b = canon_enter(cn);
	int			i;

	/* dimensions and lower bounds, then the elements' words, then their NULLs */
	put_u32(b, (uint32) ndim);
	for (i = 0; i < ndim; i++)
	{
		put_u32(b, (uint32) ARR_DIMS(a)[i]);
		put_u32(b, (uint32) ARR_LBOUND(a)[i]);
	}
	for (i = 0; i < n; i++)
	{
		isnull[i] = bitmap != NULL && (*bitmap & bitmask) == 0;
		if (isnull[i])
			put_u64(b, NULL_WORD);
		else
		{
			Datum		e = fetch_att(p, elem->typbyval, elem->typlen);

			put_u64(b, value_word(cn, elem, e));
			p = att_addlength_pointer(p, elem->typlen, p);
			p = (char *) att_align_nominal(p, elem->typalign);
		}
		if (bitmap)
		{
			bitmask <<= 1;
			if (bitmask == 0x100)
			{
				bitmap++;
				bitmask = 1;
			}
		}
	}
	put_null_bitmap(b, isnull, n);
	if (isnull != stack)
		pfree(isnull);
	return canon_leave(cn, b);
}

static uint64
record_word(Canon *cn, ColHash *c, Datum d)
{
	HeapTupleHeader td = DatumGetHeapTupleHeader(d);
	Oid			typid = HeapTupleHeaderGetTypeId(td);
	int32		typmod = HeapTupleHeaderGetTypMod(td);
	HeapTupleData tuple;
	Datum	   *values;
	bool	   *nulls;
	bool	   *isnull;
	int			nfields = 0;
	Buf		   *b;
	int			i;

	if (c->desc == NULL || c->rectype != typid || c->rectypmod != typmod)
		record_setup(c, typid, typmod);
	tuple.t_len = HeapTupleHeaderGetDatumLength(td);
	ItemPointerSetInvalid(&tuple.t_self);
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = td;
	values = palloc(sizeof(Datum) * Max(c->desc->natts, 1));
	nulls = palloc(sizeof(bool) * Max(c->desc->natts, 1));
	isnull = palloc(sizeof(bool) * Max(c->desc->natts, 1));
	heap_deform_tuple(&tuple, c->desc, values, nulls);

	/* the number of fields, their words, their NULLs; dropped fields are not there */
	b = canon_enter(cn);
	for (i = 0; i < c->desc->natts; i++)
		if (!TupleDescAttr(c->desc, i)->attisdropped)
			nfields++;
	put_u32(b, (uint32) nfields);
	nfields = 0;
	for (i = 0; i < c->desc->natts; i++)
	{
		if (TupleDescAttr(c->desc, i)->attisdropped)
			continue;
		isnull[nfields++] = nulls[i];
		put_u64(b, nulls[i] ? NULL_WORD : value_word(cn, &c->fields[i], values[i]));
	}
	put_null_bitmap(b, isnull, nfields);
	return canon_leave(cn, b);
}

/* A range's word: flags, then the words of its finite bounds. */
static uint64
range_word_of(Canon *cn, ColHash *c, RangeType *r)
{
	RangeBound	lower;
	RangeBound	upper;
	bool		empty;
	Buf		   *b;

	range_deserialize(c->tc, r, &lower, &upper, &empty);
	b = canon_enter(cn);
	if (empty)
		put_u8(b, 0x01);
	else
	{
		put_u8(b, (lower.infinite ? 0x08 : lower.inclusive ? 0x02 : 0) |
			   (upper.infinite ? 0x10 : upper.inclusive ? 0x04 : 0));
		if (!lower.infinite)
			put_u64(b, value_word(cn, c->elem, lower.val));
		if (!upper.infinite)
			put_u64(b, value_word(cn, c->elem, upper.val));
	}
	return canon_leave(cn, b);
}

static uint64
multirange_word(Canon *cn, ColHash *c, Datum d)
{
	MultirangeType *mr = DatumGetMultirangeTypeP(d);
	int32		count;
	RangeType **ranges;
	uint64	   *words;
	Buf		   *b;
	int			i;

	multirange_deserialize(c->tc, mr, &count, &ranges);
	words = palloc(sizeof(uint64) * Max(count, 1));
	for (i = 0; i < count; i++)
		words[i] = range_word_of(cn, c, ranges[i]);
	b = canon_enter(cn);
	put_u32(b, (uint32) count);
	for (i = 0; i < count; i++)
		put_u64(b, words[i]);
	return canon_leave(cn, b);
}

/* ---------------------------------------------------------------- the rest */

static uint64
doubles_word(Canon *cn, const char *p, int n, const char *prefix, int prefixlen)
{
	Buf		   *b = canon_enter(cn);
	int			i;

	if (prefixlen > 0)
		put_bytes(b, prefix, prefixlen);
	for (i = 0; i < n; i++)
	{
		double		v;

		memcpy(&v, p + sizeof(double) * i, sizeof(double));
		put_u64(b, double_word(v));
	}
	return canon_leave(cn, b);
}

static uint64
enum_word(Datum d)
{
	HeapTuple	tup = SearchSysCache1(ENUMOID, d);
	const char *label;
	uint64		w;

	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid internal value for enum: %u", DatumGetObjectId(d))));
	label = NameStr(((Form_pg_enum) GETSTRUCT(tup))->enumlabel);
	w = text_word_bytes(label, strlen(label));
	ReleaseSysCache(tup);
	return w;
}

/* The bpchar word: characters without their trailing blanks, as bpchar compares. */
static uint64
bpchar_word(Datum d)
{
	struct varlena *v = (struct varlena *) DatumGetPointer(d);
	const char *p;
	int			n;

	if (VARATT_IS_EXTERNAL(v) || VARATT_IS_COMPRESSED(v))
		v = pg_detoast_datum_packed(v);
	p = VARDATA_ANY(v);
	n = VARSIZE_ANY_EXHDR(v);
	while (n > 0 && p[n - 1] == ' ')
		n--;
	return text_word_bytes(p, n);
}

/*
 * The citext word: as citext compares, lower-cased in the database's default
 * collation.
 */
static uint64
citext_word(Datum d)
{
	struct varlena *v = (struct varlena *) DatumGetPointer(d);
	char	   *lower;

	if (VARATT_IS_EXTERNAL(v) || VARATT_IS_COMPRESSED(v))
		v = pg_detoast_datum_packed(v);
	lower = str_tolower(VARDATA_ANY(v), VARSIZE_ANY_EXHDR(v), DEFAULT_COLLATION_OID);
	return text_word_bytes(lower, strlen(lower));
}

/*
 * The interval word: equal spans are equal intervals (1 day = 24 hours,
 * 1 month = 30 days).
 */
static uint64
interval_word(Datum d)
{
	Interval   *iv = DatumGetIntervalP(d);
	int64		days = (int64) iv->month * DAYS_PER_MONTH + iv->day;
	int64		t = iv->time;
	int64		q = t / USECS_PER_DAY;
	uint64		le[2];

	if (t % USECS_PER_DAY < 0)
		q--;
	le[0] = LE64((uint64) (days + q));
	le[1] = LE64((uint64) (t - q * USECS_PER_DAY));
	return XXH3_64bits(le, sizeof(le));
}

/* The timetz word: equal only when both the time and the zone are equal. */
static uint64
timetz_word(Datum d)
{
	TimeTzADT  *t = DatumGetTimeTzADTP(d);
	char		out[12];
	uint64		time = LE64((uint64) t->time);
	uint32		zone = LE32((uint32) t->zone);

	memcpy(out, &time, 8);
	memcpy(out + 8, &zone, 4);
	return XXH3_64bits(out, sizeof(out));
}

/* The inet word: family, prefix length, address bytes. */
static uint64
inet_word(Datum d)
{
	inet	   *ip = DatumGetInetPP(d);
	char		out[18];
	int			size = ip_addrsize(ip);

	out[0] = ip_family(ip) == PGSQL_AF_INET ? 4 : 6;
	out[1] = (char) ip_bits(ip);
	memcpy(out + 2, ip_addr(ip), size);
	return XXH3_64bits(out, 2 + size);
}

/* The macaddr word: the six bytes, first byte highest. */
static uint64
macaddr_word(Datum d)
{
	macaddr    *m = DatumGetMacaddrP(d);

	return ((uint64) m->a << 40) | ((uint64) m->b << 32) | ((uint64) m->c << 24) |
		((uint64) m->d << 16) | ((uint64) m->e << 8) | (uint64) m->f;
}

/* The macaddr8 word: the eight bytes, first byte highest. */
static uint64
macaddr8_word(Datum d)
{
	macaddr8   *m = DatumGetMacaddr8P(d);

	return ((uint64) m->a << 56) | ((uint64) m->b << 48) | ((uint64) m->c << 40) |
		((uint64) m->d << 32) | ((uint64) m->e << 24) | ((uint64) m->f << 16) |
		((uint64) m->g << 8) | (uint64) m->h;
}

/* The bit word: the length in bits, then the bits. */
static uint64
bit_word(Canon *cn, Datum d)
{
	VarBit	   *vb = DatumGetVarBitP(d);
	Buf		   *b = canon_enter(cn);

	put_u32(b, (uint32) VARBITLEN(vb));
	put_bytes(b, VARBITS(vb), VARBITBYTES(vb));
	return canon_leave(cn, b);
}

/* The tid word: block number and offset. */
static uint64
tid_word(Datum d)
{
	ItemPointer ip = (ItemPointer) DatumGetPointer(d);

	return ((uint64) ItemPointerGetBlockNumberNoCheck(ip) << 16) |
		(uint64) ItemPointerGetOffsetNumberNoCheck(ip);
}

/* The path word: closed or open, the number of points, the points. */
static uint64
path_word(Canon *cn, Datum d)
{
	PATH	   *path = DatumGetPathP(d);
	char		prefix[5];
	uint32		npts = LE32((uint32) path->npts);

	prefix[0] = path->closed ? 1 : 0;
	memcpy(prefix + 1, &npts, 4);
	return doubles_word(cn, (const char *) path->p, 2 * path->npts, prefix, 5);
}

/* The polygon word: the number of points, the points. */
static uint64
polygon_word(Canon *cn, Datum d)
{
	POLYGON    *poly = DatumGetPolygonP(d);
	uint32		npts = LE32((uint32) poly->npts);

	return doubles_word(cn, (const char *) poly->p, 2 * poly->npts,
						(const char *) &npts, 4);
}

/* The word of a value of the kinds value_word leaves out. */
uint64
other_word(Canon *cn, ColHash *c, Datum d)
{
	switch (c->kind)
	{
		case HK_NUMERIC:
			return numeric_word(d);
		case HK_BPCHAR:
			return bpchar_word(d);
		case HK_NAME:
			{
				const char *p = NameStr(*DatumGetName(d));

				return text_word_bytes(p, strlen(p));
			}
		case HK_ENUM:
			return enum_word(d);
		case HK_CITEXT:
			return citext_word(d);
		case HK_UUID:
			return XXH3_64bits(DatumGetUUIDP(d)->data, UUID_LEN);
		case HK_INTERVAL:
			return interval_word(d);
		case HK_TIMETZ:
			return timetz_word(d);
		case HK_JSONB:
			return jsonb_word(cn, d);
		case HK_INET:
			return inet_word(d);
		case HK_MACADDR:
			return macaddr_word(d);
		case HK_MACADDR8:
			return macaddr8_word(d);
		case HK_BIT:
			return bit_word(cn, d);
		case HK_TID:
			return tid_word(d);
		case HK_POINT:
			return doubles_word(cn, DatumGetPointer(d), 2, NULL, 0);
		case HK_LSEG:
			return doubles_word(cn, DatumGetPointer(d), 4, NULL, 0);
		case HK_BOX:
			return doubles_word(cn, DatumGetPointer(d), 4, NULL, 0);
		case HK_LINE:
			return doubles_word(cn, DatumGetPointer(d), 3, NULL, 0);
		case HK_CIRCLE:
			return doubles_word(cn, DatumGetPointer(d), 3, NULL, 0);
		case HK_PATH:
			return path_word(cn, d);
		case HK_POLYGON:
			return polygon_word(cn, d);
		case HK_ARRAY:
			return array_word(cn, c, d);
		case HK_RECORD:
			return record_word(cn, c, d);
		case HK_RANGE:
			return range_word_of(cn, c, DatumGetRangeTypeP(d));
		case HK_MULTIRANGE:
			return multirange_word(cn, c, d);
		case HK_OUTPUT:
			{
				char	   *s = OutputFunctionCall(&c->out, d);

				return text_word_bytes(s, strlen(s));
			}
		case HK_INT:
		case HK_FIXED:
		case HK_FLOAT4:
		case HK_FLOAT8:
		case HK_TEXT:
		case HK_BYTEA:
			break;
	}
	elog(ERROR, "unexpected hash kind %d", (int) c->kind);
	return 0;					/* not reached */
}

/* ---------------------------------------------------------------- settings */

/*
 * The display settings every checksum runs under, whatever the session's:
 * the output functions of types without a rule, key values printed or
 * read, and the caller's column expressions ('created::text') all give the
 * same text in every session and on every server.
 */
static const char *const pinned_settings[][2] = {
	{"DateStyle", "ISO, MDY"},
	{"IntervalStyle", "postgres"},
	{"TimeZone", "UTC"},
	{"extra_float_digits", "1"},
	{"lc_monetary", "C"},
	{"lc_numeric", "C"},
	{"lc_time", "C"},
	{"bytea_output", "hex"},
	{"xmlbinary", "base64"},
	{"xmloption", "content"},
};

/*
 * Pins the settings above until AtEOXact_GUC(true, level) with the level
 * returned, or the end of the transaction.
 */
int
canon_pin_settings(void)
{
	int			level = NewGUCNestLevel();
	int			i;

	for (i = 0; i < (int) lengthof(pinned_settings); i++)
		(void) set_config_option(pinned_settings[i][0], pinned_settings[i][1], PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	return level;
}

/*
 * Pins search_path to pg_catalog, pg_temp as well (at the same level), for
 * a checksum whose SQL is all generated: nothing the caller wrote runs.
 */
void
canon_pin_search_path(void)
{
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
}
