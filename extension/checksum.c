/*-------------------------------------------------------------------------
 *
 * checksum.c
 *	  Row hashes, chunk checksums and table compare:
 *	  shift.table_checksum, shift.chunk_checksums, shift.row_hashes,
 *	  shift.compare.
 *
 * Each value becomes a 64-bit word: values of up to 8 bytes are their own
 * canonical bits, longer ones the XXH3-64 hash of their canonical bytes.
 * The row hash is XXH3-128 of the words in column order and a NULL bitmap;
 * XXH3 is defined independently of the CPU's byte order.  The canonical
 * form follows each type's equality, not its storage: numeric 1.0 and 1.00
 * give the same word, float -0 is 0, every NaN alike, int2/int4/int8 the
 * same word (so an int column matches its bigint copy), timestamptz its UTC
 * microseconds (never through TimeZone), intervals their span, jsonb its
 * binary tree with numeric scales cleared, TOASTed values detoasted.  Types
 * without a rule here go through their binary send function.
 *
 * A chunk's checksum is the row count and two 64-bit sums (mod 2^64) of the
 * rows' 128-bit hashes: it does not depend on row order, a duplicated row
 * adds rather than cancels, and the chunks of a table sum to its checksum.
 *
 * Chunks are key ranges (the primary key in order, chunk_rows rows each or
 * sized to target_ms) or key-hash buckets (the top bits of a hash of the
 * key, so a table needs one sequential scan, no index and no collation).
 * A bucket b of 2^n buckets holds exactly buckets 2b and 2b+1 of 2^(n+1):
 * comparing sides can refine only the buckets that differ.
 *
 * Plain columns of a heap table are read with a heap scan in the active
 * snapshot (after the same privilege check the executor makes); anything
 * else goes through the executor (SPI with a DestReceiver that hashes each
 * slot as it comes), run read-only in the caller's snapshot.  Either way all
 * the scans of one call see the same data and need only SELECT privilege
 * of the calling role.  Nothing is written and no lock beyond
 * AccessShareLock is taken.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "access/genam.h"
#include "access/heapam.h"
#include "access/tableam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_am.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "pgstat.h"
#include "port/pg_bswap.h"
#include "parser/parser.h"
#include "portability/instr_time.h"
#include "tcop/dest.h"
#include "storage/bufmgr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/rangetypes.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"
#include "utils/uuid.h"

PG_FUNCTION_INFO_V1(shift_table_checksum);
PG_FUNCTION_INFO_V1(shift_chunk_checksums);
PG_FUNCTION_INFO_V1(shift_row_hashes);
PG_FUNCTION_INFO_V1(shift_compare);
PG_FUNCTION_INFO_V1(shift_checksum_columns);

/* Seeds the key hash, so a keyless table's key hash differs from its row hash. */
#define KEY_SEED		UINT64CONST(0x7067736869667421)

#define MAX_BUCKET_BITS	24

/* ---------------------------------------------------------------- canonical values */

typedef enum HashKind
{
	HK_INT,						/* int2, int4, int8: as int64 */
	HK_FIXED,					/* by-value types whose bits are their value */
	HK_FLOAT4,
	HK_FLOAT8,
	HK_NUMERIC,
	HK_BYTES,					/* text, varchar, bytea, json, xml: the bytes */
	HK_BPCHAR,					/* without trailing blanks */
	HK_NAME,
	HK_UUID,
	HK_INTERVAL,
	HK_JSONB,
	HK_SEND						/* anything else: the binary send function */
} HashKind;

/* The word of a value, by how it is computed (see value_word). */
typedef enum WordOp
{
	W_INT2,
	W_INT4,
	W_INT8,						/* and 8-byte by-value fixed types */
	W_U8,
	W_U32,
	W_FLOAT4,
	W_FLOAT8,
	W_BYTES,
	W_OTHER						/* everything else: other_word */
} WordOp;

/* How one output column is written; class says which columns can match. */
typedef struct ColHash
{
	HashKind	kind;
	WordOp		op;
	int16		typlen;
	Oid			typid;
	FmgrInfo	send;
} ColHash;

static void colhash_kind(ColHash *c, Oid typid);

static void
colhash_init(ColHash *c, Oid typid)
{
	colhash_kind(c, typid);
	switch (c->kind)
	{
		case HK_INT:
			c->op = c->typlen == 8 ? W_INT8 : c->typlen == 4 ? W_INT4 : W_INT2;
			break;
		case HK_FIXED:
			c->op = c->typlen == 1 ? W_U8 : c->typlen == 4 ? W_U32 : W_INT8;
			break;
		case HK_FLOAT4:
			c->op = W_FLOAT4;
			break;
		case HK_FLOAT8:
			c->op = W_FLOAT8;
			break;
		case HK_BYTES:
			c->op = W_BYTES;
			break;
		default:
			c->op = W_OTHER;
			break;
	}
}

static void
colhash_kind(ColHash *c, Oid typid)
{
	Oid			base = getBaseType(typid);
	bool		isvarlena;
	Oid			sendfn;

	c->typid = base;
	c->typlen = get_typlen(base);
	switch (base)
	{
		case INT2OID:
		case INT4OID:
		case INT8OID:
			c->kind = HK_INT;
			return;
		case BOOLOID:
		case CHAROID:
		case DATEOID:
		case TIMEOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
		case CASHOID:
		case OIDOID:
			c->kind = HK_FIXED;
			return;
		case FLOAT4OID:
			c->kind = HK_FLOAT4;
			return;
		case FLOAT8OID:
			c->kind = HK_FLOAT8;
			return;
		case NUMERICOID:
			c->kind = HK_NUMERIC;
			return;
		case TEXTOID:
		case VARCHAROID:
		case BYTEAOID:
		case JSONOID:
		case XMLOID:
			c->kind = HK_BYTES;
			return;
		case BPCHAROID:
			c->kind = HK_BPCHAR;
			return;
		case NAMEOID:
			c->kind = HK_NAME;
			return;
		case UUIDOID:
			c->kind = HK_UUID;
			return;
		case INTERVALOID:
			c->kind = HK_INTERVAL;
			return;
		case JSONBOID:
			c->kind = HK_JSONB;
			return;
		default:
			break;
	}
	getTypeBinaryOutputInfo(base, &sendfn, &isvarlena);
	c->kind = HK_SEND;
	fmgr_info(sendfn, &c->send);
}

/*
 * Which values a column's can equal: two columns whose classes differ never
 * hash equal (int against text), so compare refuses them up front.
 */
static char *
colhash_class(const ColHash *c)
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
		case HK_BPCHAR:
		case HK_BYTES:
		case HK_NAME:
			return pstrdup(c->typid == BYTEAOID ? "bytea" : "text");
		case HK_UUID:
			return pstrdup("uuid");
		case HK_INTERVAL:
			return pstrdup("interval");
		case HK_JSONB:
			return pstrdup("jsonb");
		case HK_FIXED:
		case HK_SEND:
			break;
	}
	return psprintf("%s %s", c->kind == HK_FIXED ? "fixed" : "binary", format_type_be(c->typid));
}

/*
 * The canonical bytes go into a Buf written directly (a StringInfo append
 * is a function call per field, which was a quarter of the time).
 */
typedef struct Buf
{
	char	   *data;
	int			len;
	int			cap;
} Buf;

static void
buf_init(Buf *b)
{
	b->cap = 1024;
	b->len = 0;
	b->data = palloc(b->cap);
}

static pg_noinline void
buf_grow(Buf *b, int n)
{
	Size		want = (Size) b->len + n;
	Size		cap = b->cap;

	while (cap < want)
		cap *= 2;
	if (cap > MaxAllocSize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a row is too large to hash")));
	b->data = repalloc(b->data, cap);
	b->cap = (int) cap;
}

static inline void
buf_reserve(Buf *b, int n)
{
	if (unlikely(b->len + n > b->cap))
		buf_grow(b, n);
}

static inline void
put_u8(Buf *b, uint8 v)
{
	buf_reserve(b, 1);
	b->data[b->len++] = (char) v;
}

/* Little-endian stores, whatever the host's byte order. */
#ifdef WORDS_BIGENDIAN
#define LE16(v) pg_bswap16(v)
#define LE32(v) pg_bswap32(v)
#define LE64(v) pg_bswap64(v)
#else
#define LE16(v) (v)
#define LE32(v) (v)
#define LE64(v) (v)
#endif

static inline void
put_u16(Buf *b, uint16 v)
{
	uint16		le = LE16(v);

	buf_reserve(b, 2);
	memcpy(b->data + b->len, &le, 2);
	b->len += 2;
}

static inline void
put_u32_at(Buf *b, int at, uint32 v)
{
	uint32		le = LE32(v);

	memcpy(b->data + at, &le, 4);
}

static inline void
put_u32(Buf *b, uint32 v)
{
	buf_reserve(b, 4);
	put_u32_at(b, b->len, v);
	b->len += 4;
}

static inline void
put_bytes(Buf *b, const char *p, int n)
{
	buf_reserve(b, n);
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

static inline int16
digit_at(const char *digits, int i)
{
	int16		d;

	memcpy(&d, digits + 2 * i, sizeof(d));
	return d;
}

/*
 * A numeric as sign, weight and base-10000 digits without leading or
 * trailing zero digits: the display scale, which makes 1.0 and 1.00 differ
 * in bytes but not in value, is left out.  p is the numeric's data after
 * its varlena header, at any alignment.  The on-disk layout read here is
 * fixed by pg_upgrade compatibility (see numeric.c: a uint16 header, short
 * or long form, then int16 digits).
 */
static void
put_numeric_data(Buf *b, const char *p, int len)
{
	uint16		hdr;
	bool		negative;
	int			weight;
	const char *digits;
	int			ndigits;
	int			first;
	int			last;
	int			i;
	char	   *out;

	memcpy(&hdr, p, sizeof(hdr));
	if ((hdr & 0xC000) == 0xC000)
	{
		/* NaN 0xC000, +Infinity 0xD000, -Infinity 0xF000 */
		put_u8(b, (hdr & 0xF000) == 0xC000 ? 'N' : (hdr & 0xF000) == 0xD000 ? 'I' : 'J');
		return;
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
	if (first == last)
	{
		put_u8(b, '0');
		return;
	}
	buf_reserve(b, 3 + 2 * (last - first));
	out = b->data + b->len;
	*out++ = negative ? '-' : '+';
	{
		uint16		w = LE16((uint16) (int16) weight);

		memcpy(out, &w, 2);
		out += 2;
	}
#ifdef WORDS_BIGENDIAN
	for (i = first; i < last; i++)
	{
		uint16		d = LE16((uint16) digit_at(digits, i));

		memcpy(out, &d, 2);
		out += 2;
	}
#else
	i = first;
	memcpy(out, digits + 2 * i, 2 * (last - first));
	out += 2 * (last - first);
#endif
	b->len = out - b->data;
}

/*
 * jsonb's binary form is canonical (keys sorted and unique, the same
 * layout for the same tree) except for numerics, whose display scale is
 * stored.  A jsonb's word is therefore the hash of its container bytes with
 * each numeric's scale bits cleared.  Clearing them in place works when the
 * numeric is in the form every equal value has: the short form, or the long
 * form of a value too large or small for the short one; jsonb_mask returns
 * -1 for anything else (a long form chosen only for its scale, an
 * unstripped digit, a short varlena header), which is then rebuilt first.
 * Otherwise it returns how many numerics carry scale bits, and clears them
 * when write is set (c must then point into a writable copy; without it c
 * is only read).  Reads are unaligned-safe.
 */
static int
jsonb_mask(char *c, bool write)
{
	uint32		header;
	int			n;
	char	   *entries = c + sizeof(uint32);
	char	   *base;
	uint32		off = 0;
	int			changed = 0;
	int			i;

	memcpy(&header, c, sizeof(header));
	n = (header & JB_FOBJECT) ? 2 * (header & JB_CMASK) : (header & JB_CMASK);
	base = entries + sizeof(JEntry) * n;
	for (i = 0; i < n; i++)
	{
		JEntry		e;
		uint32		end;

		memcpy(&e, entries + sizeof(JEntry) * i, sizeof(e));
		/* an entry stores either its end offset or its length */
		end = JBE_HAS_OFF(e) ? JBE_OFFLENFLD(e) : off + JBE_OFFLENFLD(e);
		if (JBE_ISNUMERIC(e))
		{
			char	   *num = base + INTALIGN(off);
			char	   *p = num + VARHDRSZ;
			uint32		vh;
			uint16		h;
			uint16		masked;
			int			len;
			int			weight;
			const char *digits;
			int			ndigits;

			if (VARATT_IS_1B(num))
				return -1;
			memcpy(&vh, num, sizeof(vh));
			len = VARSIZE_4B(&vh) - VARHDRSZ;
			memcpy(&h, p, sizeof(h));
			if ((h & 0xC000) != 0xC000)		/* NaN and infinities have no scale */
			{
				if (h & 0x8000)
				{
					digits = p + 2;
					ndigits = (len - 2) / 2;
					masked = h & ~0x1F80;	/* short form: the scale */
				}
				else
				{
					int16		w;

					memcpy(&w, p + 2, sizeof(w));
					weight = w;
					if (weight >= -64 && weight <= 63)
						return -1;	/* long only for its scale */
					digits = p + 4;
					ndigits = (len - 4) / 2;
					masked = h & ~0x3FFF;	/* long form: the scale */
				}
				if (ndigits > 0 &&
					(digit_at(digits, 0) == 0 || digit_at(digits, ndigits - 1) == 0))
					return -1;
				if (masked != h)
				{
					changed++;
					if (write)
						memcpy(p, &masked, sizeof(masked));
				}
			}
		}
		else if (JBE_ISCONTAINER(e))
		{
			int			sub;

			check_stack_depth();
			sub = jsonb_mask(base + INTALIGN(off), write);
			if (sub < 0)
				return -1;
			changed += sub;
		}
		off = end;
	}
	return changed;
}

/*
 * The numeric num with its display scale dropped and its digits stripped,
 * in the short form when its weight allows: the form jsonb_mask accepts.
 */
static Numeric
numeric_canonical(Numeric num)
{
	const char *p = VARDATA_ANY(num);
	int			len = VARSIZE_ANY_EXHDR(num);
	uint16		h;
	bool		negative;
	int			weight;
	const char *digits;
	int			ndigits;
	int			first = 0;
	int			last;
	Numeric		out;
	char	   *q;

	memcpy(&h, p, sizeof(h));
	if ((h & 0xC000) == 0xC000)
		return num;
	if (h & 0x8000)
	{
		negative = (h & 0x2000) != 0;
		weight = (h & 0x0040) ? (int) (~0x003F | (h & 0x003F)) : (int) (h & 0x003F);
		digits = p + 2;
		ndigits = (len - 2) / 2;
	}
	else
	{
		int16		w;

		negative = (h & 0xC000) == 0x4000;
		memcpy(&w, p + 2, sizeof(w));
		weight = w;
		digits = p + 4;
		ndigits = (len - 4) / 2;
	}
	while (first < ndigits && digit_at(digits, first) == 0)
	{
		first++;
		weight--;
	}
	last = ndigits;
	while (last > first && digit_at(digits, last - 1) == 0)
		last--;
	if (first == last)
	{
		negative = false;
		weight = 0;
	}
	if (weight >= -64 && weight <= 63)
	{
		out = palloc(VARHDRSZ + 2 + 2 * (last - first));
		SET_VARSIZE(out, VARHDRSZ + 2 + 2 * (last - first));
		h = 0x8000 | (negative ? 0x2000 : 0) | (weight < 0 ? 0x0040 : 0) | (weight & 0x003F);
		q = VARDATA(out);
		memcpy(q, &h, 2);
		q += 2;
	}
	else
	{
		int16		w = (int16) weight;

		out = palloc(VARHDRSZ + 4 + 2 * (last - first));
		SET_VARSIZE(out, VARHDRSZ + 4 + 2 * (last - first));
		h = negative ? 0x4000 : 0;
		q = VARDATA(out);
		memcpy(q, &h, 2);
		memcpy(q + 2, &w, 2);
		q += 4;
	}
	memcpy(q, digits + 2 * first, 2 * (last - first));
	return out;
}

/* jsonb rebuilt with every numeric canonical (for jsonb_mask's refusals). */
static Jsonb *
jsonb_canonical(const char *container, int len)
{
	Jsonb	   *jb = palloc(VARHDRSZ + len);
	JsonbIterator *it;
	JsonbParseState *state = NULL;
	JsonbValue	v;
	JsonbValue *res = NULL;
	JsonbIteratorToken tok;

	SET_VARSIZE(jb, VARHDRSZ + len);
	memcpy(VARDATA(jb), container, len);
	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		if ((tok == WJB_VALUE || tok == WJB_ELEM) && v.type == jbvNumeric)
			v.val.numeric = numeric_canonical(v.val.numeric);
		res = pushJsonbValue(&state, tok,
							 (tok < WJB_BEGIN_ARRAY || (tok == WJB_BEGIN_ARRAY && v.val.array.rawScalar)) ?
							 &v : NULL);
	}
	return JsonbValueToJsonb(res);
}

/*
 * A jsonb's word: the hash of its container with numeric scales cleared.
 * Most containers have none to clear (integers have scale 0), so the first
 * pass only reads, and the bytes are hashed where they lie.
 */
static uint64
jsonb_word(Buf *scratch, Datum d)
{
	struct varlena *v = (struct varlena *) DatumGetPointer(d);
	char	   *c;
	int			len;
	int			changed;

	if (VARATT_IS_EXTERNAL(v) || VARATT_IS_COMPRESSED(v))
		v = pg_detoast_datum(v);
	c = VARDATA_ANY(v);
	len = VARSIZE_ANY_EXHDR(v);
	changed = jsonb_mask(c, false);
	if (changed == 0)
		return XXH3_64bits(c, len);
	if (changed < 0)
	{
		Jsonb	   *canon = jsonb_canonical(c, len);

		c = VARDATA(canon);
		len = VARSIZE(canon) - VARHDRSZ;
	}
	/* a copy to clear the scales in (a canonical rebuild may still carry them) */
	scratch->len = 0;
	buf_reserve(scratch, len);
	memcpy(scratch->data, c, len);
	if (jsonb_mask(scratch->data, true) < 0)
		elog(ERROR, "could not put a jsonb value in canonical form");
	return XXH3_64bits(scratch->data, len);
}

/*
 * The 64-bit word of a NULL (the row's NULL bitmap tells it from a value).
 */
#define NULL_WORD		UINT64CONST(0x6e756c6c2d2d6e75)

static inline uint64
double_word(double v)
{
	uint64		bits;

	if (isnan(v))
		return UINT64CONST(0x7ff8000000000000);	/* every NaN alike */
	if (v == 0.0)
		v = 0.0;				/* -0 is 0 */
	memcpy(&bits, &v, sizeof(bits));
	return bits;
}

/*
 * A numeric's word.  Most numerics have at most three base-10000 digits
 * (after dropping leading and trailing zero digits, which PostgreSQL never
 * stores); those are packed into the word as sign, weight and digits, so
 * equal values get equal words whatever their display scale.  Others
 * hash their canonical bytes.
 */
static uint64
numeric_word(Buf *scratch, Datum d)
{
	struct varlena *v = (struct varlena *) DatumGetPointer(d);
	const char *p;
	int			len;
	uint16		hdr;

	if (VARATT_IS_EXTERNAL(v) || VARATT_IS_COMPRESSED(v))
		v = pg_detoast_datum_packed(v);
	p = VARDATA_ANY(v);
	len = VARSIZE_ANY_EXHDR(v);
	memcpy(&hdr, p, sizeof(hdr));
	if ((hdr & 0xC000) == 0x8000 && len >= 2 && len <= 8)
	{
		/* short form: sign 0x2000, dscale 0x1F80, weight sign 0x0040 and 0x003F */
		int			ndigits = (len - 2) / 2;
		int			weight = (hdr & 0x0040) ? (int) (~0x003F | (hdr & 0x003F)) : (int) (hdr & 0x003F);
		uint64		w;
		int			i;

		if (ndigits == 0)
			return UINT64CONST(0x7a65726f);		/* zero */
		if (digit_at(p + 2, 0) != 0 && digit_at(p + 2, ndigits - 1) != 0)
		{
			/* bit 63: packed; 62: negative; 61-60: digits; 59-52: weight; digits 14 bits each */
			w = (UINT64CONST(1) << 63) | ((uint64) ((hdr & 0x2000) != 0) << 62) |
				((uint64) ndigits << 60) | ((uint64) (uint8) (int8) weight << 52);
			for (i = 0; i < ndigits; i++)
				w |= (uint64) (uint16) digit_at(p + 2, i) << (14 * i);
			return w;
		}
	}
	scratch->len = 0;
	put_numeric_data(scratch, p, len);
	return XXH3_64bits(scratch->data, scratch->len);
}

/* The word of a varlena's bytes (text, varchar, bytea, json, xml). */
static inline uint64
bytes_word(Datum d)
{
	struct varlena *v = (struct varlena *) DatumGetPointer(d);

	if (VARATT_IS_EXTERNAL(v) || VARATT_IS_COMPRESSED(v))
		v = pg_detoast_datum_packed(v);
	return XXH3_64bits(VARDATA_ANY(v), VARSIZE_ANY_EXHDR(v));
}

/* The word of a value of the types value_word leaves out. */
static pg_noinline uint64
other_word(Buf *scratch, const ColHash *c, Datum d)
{
	switch (c->kind)
	{
		case HK_NUMERIC:
			return numeric_word(scratch, d);
		case HK_BPCHAR:
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
				return XXH3_64bits(p, n);
			}
		case HK_NAME:
			{
				const char *p = NameStr(*DatumGetName(d));

				return XXH3_64bits(p, strlen(p));
			}
		case HK_UUID:
			return XXH3_64bits(DatumGetUUIDP(d)->data, UUID_LEN);
		case HK_INTERVAL:
			{
				/* equal spans are equal intervals: 1 day = 24 hours, 1 month = 30 days */
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
		case HK_JSONB:
			return jsonb_word(scratch, d);
		case HK_SEND:
			{
				bytea	   *v = SendFunctionCall((FmgrInfo *) &c->send, d);

				return XXH3_64bits(VARDATA(v), VARSIZE(v) - VARHDRSZ);
			}
		default:
			elog(ERROR, "unexpected hash kind %d", (int) c->kind);
	}
	return 0;					/* not reached */
}

/*
 * The 64-bit word standing for one non-NULL value in its row's hash:
 * values of at most 8 bytes are their own canonical bits (an injective
 * code, no hashing needed), longer ones the XXH3-64 hash of their
 * canonical bytes.  scratch holds the bytes of the types that need
 * building (numeric, jsonb); anything detoasted or sent is allocated in the
 * caller's per-row context.
 */
static inline uint64
value_word(Buf *scratch, const ColHash *c, Datum d)
{
	switch (c->op)
	{
		case W_INT2:
			return (uint64) (int64) DatumGetInt16(d);
		case W_INT4:
			return (uint64) (int64) DatumGetInt32(d);
		case W_INT8:
			return (uint64) DatumGetInt64(d);
		case W_U8:
			return (uint64) DatumGetUInt8(d);
		case W_U32:
			return (uint64) DatumGetUInt32(d);
		case W_FLOAT4:
			return double_word((double) DatumGetFloat4(d));
		case W_FLOAT8:
			return double_word(DatumGetFloat8(d));
		case W_BYTES:
			return bytes_word(d);
		case W_OTHER:
			break;
	}
	return other_word(scratch, c, d);
}

/* ---------------------------------------------------------------- what to hash */

/* One column or key expression: how the user named it and the SQL for it. */
typedef struct Column
{
	char	   *label;
	char	   *sql;
	AttrNumber	attnum;			/* a plain column's number, 0 for an expression */
	bool		notnull;		/* a column declared NOT NULL */
} Column;

/* One side of a checksum: a relation, its columns and its key. */
typedef struct Side
{
	const char *what;			/* "source", "target", or "table" */
	Oid			relid;
	char	   *relname;		/* qualified, quoted */
	List	   *columns;		/* of Column * */
	List	   *key;			/* of Column *; NIL: the whole row is the key */
	bool		key_is_pk;
} Side;

static List *
text_array_list(ArrayType *arr)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;
	List	   *out = NIL;

	if (arr == NULL)
		return NIL;
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("a list of columns must be a one-dimensional text array")));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("a list of columns must not contain NULL")));
		out = lappend(out, TextDatumGetCString(elems[i]));
	}
	return out;
}

/*
 * A column given by the user: a column name of the relation as it is
 * (quoted here), or else one SQL expression over the relation's columns,
 * checked with the server's parser to be exactly one expression.
 */
static Column *
make_column(Relation rel, const char *side, const char *text, bool must_exist)
{
	TupleDesc	desc = RelationGetDescr(rel);
	Column	   *col = palloc(sizeof(Column));
	char	   *sql;
	List	   *stmts;
	SelectStmt *s;
	int			i;
	MemoryContext cxt = CurrentMemoryContext;

	col->label = pstrdup(text);
	col->attnum = 0;
	col->notnull = false;
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), text) == 0)
		{
			col->sql = pstrdup(quote_identifier(text));
			col->attnum = att->attnum;
			col->notnull = att->attnotnull;
			return col;
		}
	}
	if (must_exist)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("%s \"%s\" has no column \"%s\"", side, RelationGetRelationName(rel), text),
				 errhint("Name the columns on each side: columns => ARRAY[...], target_columns => ARRAY[...] (expressions such as 'id::bigint' are allowed).")));
	sql = psprintf("SELECT %s", text);
	PG_TRY();
	{
		stmts = raw_parser(sql, RAW_PARSE_DEFAULT);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		ereport(ERROR,
				(errcode(edata->sqlerrcode),
				 errmsg("%s column \"%s\" is neither a column of \"%s\" nor an expression: %s",
						side, text, RelationGetRelationName(rel), edata->message)));
	}
	PG_END_TRY();
	s = (list_length(stmts) == 1) ? (SelectStmt *) linitial_node(RawStmt, stmts)->stmt : NULL;
	if (s == NULL || !IsA(s, SelectStmt) || s->op != SETOP_NONE ||
		list_length(s->targetList) != 1 || s->fromClause != NIL || s->whereClause != NULL ||
		s->groupClause != NIL || s->havingClause != NULL || s->windowClause != NIL ||
		s->sortClause != NIL || s->limitCount != NULL || s->limitOffset != NULL ||
		s->lockingClause != NIL || s->withClause != NULL || s->intoClause != NULL ||
		s->distinctClause != NIL || s->valuesLists != NIL ||
		((ResTarget *) linitial(s->targetList))->name != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("%s column \"%s\" must be a column of \"%s\" or a single expression",
						side, text, RelationGetRelationName(rel)),
				 errhint("Give a column name as it is, or an expression such as 'id::bigint' or 'lower(email)'.")));
	col->sql = psprintf("(%s)", text);
	return col;
}

/*
 * Opens one side: columns default to every column in order, the key to the
 * primary key (none: the whole row identifies itself).
 */
static void
side_init(Side *side, const char *what, Oid relid, ArrayType *columns, ArrayType *key,
		  bool key_given_empty_means_pk)
{
	Relation	rel;
	TupleDesc	desc;
	List	   *names;
	ListCell   *lc;
	int			i;

	side->what = what;
	side->relid = relid;
	side->columns = NIL;
	side->key = NIL;
	side->key_is_pk = false;
	rel = table_open(relid, AccessShareLock);
	if (rel->rd_rel->relkind != RELKIND_RELATION &&
		rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE &&
		rel->rd_rel->relkind != RELKIND_MATVIEW &&
		rel->rd_rel->relkind != RELKIND_VIEW &&
		rel->rd_rel->relkind != RELKIND_FOREIGN_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("%s \"%s\" is not a table", what, RelationGetRelationName(rel))));
	side->relname = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
											   RelationGetRelationName(rel));
	if (check_enable_rls(relid, InvalidOid, true) == RLS_ENABLED)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("row-level security hides rows of %s \"%s\" from role \"%s\"", what,
						RelationGetRelationName(rel), GetUserNameFromId(GetUserId(), false)),
				 errdetail("A checksum of the rows a policy lets you see would not be a checksum of the table."),
				 errhint("Run it as the table's owner or a role with BYPASSRLS.")));
	desc = RelationGetDescr(rel);

	names = text_array_list(columns);
	if (columns != NULL && names == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the %s column list is empty", what)));
	if (names == NIL)
	{
		for (i = 0; i < desc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);

			if (!att->attisdropped)
				names = lappend(names, pstrdup(NameStr(att->attname)));
		}
		if (names == NIL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s \"%s\" has no columns", what, RelationGetRelationName(rel))));
	}
	foreach(lc, names)
		side->columns = lappend(side->columns, make_column(rel, what, lfirst(lc), false));

	names = text_array_list(key);
	if (key == NULL && key_given_empty_means_pk)
	{
		Oid			pk = RelationGetPrimaryKeyIndex(rel);

		if (OidIsValid(pk))
		{
			Relation	idx = index_open(pk, AccessShareLock);

			for (i = 0; i < idx->rd_index->indnkeyatts; i++)
			{
				AttrNumber	attnum = idx->rd_index->indkey.values[i];

				names = lappend(names, pstrdup(NameStr(TupleDescAttr(desc, attnum - 1)->attname)));
			}
			index_close(idx, AccessShareLock);
			side->key_is_pk = true;
		}
	}
	foreach(lc, names)
		side->key = lappend(side->key, make_column(rel, what, lfirst(lc), false));
	if (list_length(side->key) > INDEX_MAX_KEYS)
		ereport(ERROR,
				(errcode(ERRCODE_TOO_MANY_COLUMNS),
				 errmsg("a key may have at most %d columns", INDEX_MAX_KEYS)));
	if (list_length(side->columns) + list_length(side->key) > MaxTupleAttributeNumber / 2)
		ereport(ERROR,
				(errcode(ERRCODE_TOO_MANY_COLUMNS),
				 errmsg("too many columns to hash for %s \"%s\"", what,
						RelationGetRelationName(rel))));
	table_close(rel, AccessShareLock);
}

/*
 * What a scan of the side returns: the columns, then the key columns that
 * are not among them; keypos[k] is key k's position in it.
 */
static List *
side_output(Side *side, int *keypos)
{
	List	   *out = list_copy(side->columns);
	ListCell   *lc;
	int			k = 0;

	foreach(lc, side->key)
	{
		Column	   *key = lfirst(lc);
		ListCell   *lc2;
		int			i = 0;

		keypos[k] = -1;
		foreach(lc2, side->columns)
		{
			if (strcmp(((Column *) lfirst(lc2))->sql, key->sql) == 0)
			{
				keypos[k] = i;
				break;
			}
			i++;
		}
		if (keypos[k] < 0)
		{
			keypos[k] = list_length(out);
			out = lappend(out, key);
		}
		k++;
	}
	return out;
}

/* The target list of side_output. */
static char *
side_target_list(Side *side, int *keypos)
{
	StringInfoData s;
	ListCell   *lc;

	initStringInfo(&s);
	foreach(lc, side_output(side, keypos))
		appendStringInfo(&s, "%s%s", s.len ? ", " : "", ((Column *) lfirst(lc))->sql);
	return s.data;
}

static void
append_key_list(StringInfo s, Side *side, const char *suffix)
{
	ListCell   *lc;
	int			i = 0;

	foreach(lc, side->key)
		appendStringInfo(s, "%s%s%s", i++ ? ", " : "", ((Column *) lfirst(lc))->sql, suffix);
}

/* ---------------------------------------------------------------- the hashing receiver */

typedef struct Acc
{
	uint64		rows;
	uint64		lo;
	uint64		hi;
} Acc;

/* A row kept for the drill-down: its key, its hashes, its column hashes. */
typedef struct RowEntry
{
	XXH128_hash_t key;
	XXH128_hash_t row;
	uint32		bucket;
	int			side;
	Datum		keytext;		/* text[] of the key's output, in collect_cxt */
	uint64	   *colhash;		/* NULL unless asked for */
} RowEntry;

typedef enum ReceiverMode
{
	RM_TOTAL,					/* one sum */
	RM_BUCKETS,					/* one sum per bucket */
	RM_RANGE,					/* one sum, and the last key seen */
	RM_ROWS						/* keep each row of the wanted buckets */
} ReceiverMode;

/* One table column as tuple_words reads it: its layout and its output column. */
typedef struct PhysAtt
{
	int16		len;
	char		align;
	bool		byval;
	int			col;			/* the target-list column it is, or -1 */
} PhysAtt;

typedef struct HashReceiver
{
	DestReceiver pub;
	ReceiverMode mode;
	int			ncols;			/* leading columns hashed as the row */
	int			nkeys;			/* 0: the row is its own key */
	int			keypos[INDEX_MAX_KEYS * 4];
	bool		key_outside;	/* a key column is not among the hashed columns */
	bool		ready;
	int			natts;			/* columns of the target list */
	int		   *map;			/* target-list column -> slot column */
	Oid		   *types;			/* target-list column types */
	int			maxatt;			/* slot columns to deform */
	PhysAtt    *phys;			/* per table column, for tuple_words; or NULL */
	ColHash    *ch;
	uint64	   *hashes;			/* the row's column hashes, then the key's */
	Buf			buf;			/* the row hash's input */
	Buf			kbuf;			/* the key hash's input */
	Buf			scratch;		/* canonical bytes of one value */
	MemoryContext row_cxt;		/* reset per row */
	MemoryContext keep_cxt;		/* what outlives a row */

	/* RM_TOTAL and RM_RANGE */
	Acc			total;
	/* RM_BUCKETS and RM_ROWS */
	int			bits;
	Acc		   *accs;
	const uint8 *only;			/* bitmap of wanted buckets, or NULL for all */
	/* RM_RANGE: the last row's key, copied into last_cxt */
	MemoryContext last_cxt;
	Datum	   *last;
	bool	   *last_null;
	/* RM_ROWS */
	int			side;
	bool		want_colhash;
	RowEntry   *rows;
	int64		nrows;
	int64		maxrows;
	MemoryContext collect_cxt;
} HashReceiver;

/*
 * Sets up hashing for the target-list column types (types[i] of column i,
 * read from slot column map[i], or column i when map is NULL).
 */
static void
receiver_setup(HashReceiver *r, int natts, const Oid *types, const int *map)
{
	MemoryContext old = MemoryContextSwitchTo(r->keep_cxt);
	int			i;

	r->natts = natts;
	r->ch = palloc(sizeof(ColHash) * natts);
	r->map = palloc(sizeof(int) * natts);
	r->types = palloc(sizeof(Oid) * natts);
	r->hashes = palloc(sizeof(uint64) * (natts + r->nkeys + 1));
	r->maxatt = 0;
	for (i = 0; i < natts; i++)
	{
		colhash_init(&r->ch[i], types[i]);
		r->types[i] = types[i];
		r->map[i] = map ? map[i] : i;
		r->maxatt = Max(r->maxatt, r->map[i] + 1);
	}
	for (i = 0; i < r->nkeys; i++)
		if (r->keypos[i] >= r->ncols)
			r->key_outside = true;
	r->ready = true;
	MemoryContextSwitchTo(old);
}

static void
recv_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
	HashReceiver *r = (HashReceiver *) self;
	Oid		   *types;
	int			i;

	if (r->ready)
		return;
	types = palloc(sizeof(Oid) * typeinfo->natts);
	for (i = 0; i < typeinfo->natts; i++)
		types[i] = TupleDescAttr(typeinfo, i)->atttypid;
	receiver_setup(r, typeinfo->natts, types, NULL);
}

static inline uint32
bucket_of(int bits, XXH128_hash_t key)
{
	return bits == 0 ? 0 : (uint32) (key.high64 >> (64 - bits));
}

static inline void
acc_add(Acc *a, XXH128_hash_t h)
{
	a->rows++;
	a->lo += h.low64;
	a->hi += h.high64;
}

/* text[] of the key's output values (the whole row's when keyless) */
static Datum
key_text(HashReceiver *r, const Datum *values, const bool *nulls_in)
{
	int			n = r->nkeys ? r->nkeys : r->ncols;
	Datum	   *vals = palloc(sizeof(Datum) * n);
	bool	   *nulls = palloc(sizeof(bool) * n);
	int			dims[1] = {n};
	int			lbs[1] = {1};
	int			i;

	for (i = 0; i < n; i++)
	{
		int			col = r->nkeys ? r->keypos[i] : i;
		int			att = r->map[col];
		Oid			out;
		bool		isvarlena;

		nulls[i] = nulls_in[att];
		if (!nulls[i])
		{
			getTypeOutputInfo(r->types[col], &out, &isvarlena);
			vals[i] = CStringGetTextDatum(OidOutputFunctionCall(out, values[att]));
		}
	}
	return PointerGetDatum(construct_md_array(vals, nulls, 1, dims, lbs, TEXTOID, -1, false,
											  TYPALIGN_INT));
}

/* The words of the target-list columns 0..n-1 (NULL_WORD for NULL) into h[] and isnull[]. */
static inline void
value_words(HashReceiver *r, int n, const Datum *values, const bool *nulls, uint64 *h,
			bool *isnull)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		int			att = r->map[i];

		isnull[i] = nulls[att];
		h[i] = isnull[i] ? NULL_WORD : value_word(&r->scratch, &r->ch[i], values[att]);
	}
}

/*
 * Stores output column col's word: straight into the row buffer (words at
 * p, NULL bitmap at bits, cleared by the caller) when direct, else into
 * h[] and isnull[].
 */
static pg_attribute_always_inline void
set_word(bool direct, int col, uint64 w, bool null, uint64 *h, bool *isnull,
		 char *p, char *bits)
{
	if (direct)
	{
		uint64		le = LE64(w);

		memcpy(p + 8 * col, &le, 8);
		if (null)
			bits[col >> 3] |= (char) (1 << (col & 7));
	}
	else
	{
		h[col] = w;
		isnull[col] = null;
	}
}

/*
 * The same read straight from a heap tuple, for every target-list column
 * (as heap_deform_tuple walks it, without its arrays): the whole-table
 * scans spend most of their time here.  r->phys says which table column is
 * which output column.  direct (every output column is a row column, no
 * key column outside them) writes the row buffer itself, saving a copy.
 */
static pg_attribute_always_inline void
tuple_words(HashReceiver *r, HeapTuple tuple, TupleDesc desc, bool direct,
			uint64 *h, bool *isnull, char *p, char *bits)
{
	HeapTupleHeader tup = tuple->t_data;
	bool		hasnulls = HeapTupleHasNulls(tuple);
	bits8	   *bp = tup->t_bits;
	char	   *tp = (char *) tup + tup->t_hoff;
	int			natts = Min(HeapTupleHeaderGetNatts(tup), r->maxatt);
	uint32		off = 0;
	int			att;

	for (att = 0; att < natts; att++)
	{
		const PhysAtt *a = &r->phys[att];

		if (hasnulls && att_isnull(att, bp))
		{
			if (a->col >= 0)
				set_word(direct, a->col, NULL_WORD, true, h, isnull, p, bits);
			continue;
		}
		if (a->len == -1)
			off = att_align_pointer(off, a->align, -1, tp + off);
		else
			off = att_align_nominal(off, a->align);
		if (a->col >= 0)
			set_word(direct, a->col,
					 value_word(&r->scratch, &r->ch[a->col],
								fetch_att(tp + off, a->byval, a->len)),
					 false, h, isnull, p, bits);
		off = att_addlength_pointer(off, a->len, tp + off);
	}
	/* columns added after the tuple was written: their missing value */
	for (; att < r->maxatt; att++)
	{
		int			col = r->phys[att].col;

		if (col >= 0)
		{
			bool		null;
			Datum		d = getmissingattr(desc, att + 1, &null);

			set_word(direct, col, null ? NULL_WORD : value_word(&r->scratch, &r->ch[col], d),
					 null, h, isnull, p, bits);
		}
	}
}

/*
 * Appends the words of the row's columns (little-endian) and their NULL
 * bitmap: the input of the row hash.  Value i is the i-th 8 bytes, so a
 * value's position counts; the bitmap tells NULL from any value.
 */
static inline void
put_row_words(HashReceiver *r, const uint64 *h, const bool *isnull)
{
	int			n = r->ncols;
	int			nbytes = (n + 7) / 8;
	Buf		   *b = &r->buf;
	char	   *p;
	char	   *bits;
	int			i;

	buf_reserve(b, 8 * n + nbytes);
	p = b->data + b->len;
	bits = p + 8 * n;
	memset(bits, 0, nbytes);
	for (i = 0; i < n; i++)
	{
		uint64		le = LE64(h[i]);

		if (isnull[i])
			bits[i >> 3] |= (char) (1 << (i & 7));
		memcpy(p + 8 * i, &le, 8);
	}
	b->len += 8 * n + nbytes;
}

/*
 * The same for the key into kbuf: key columns among the columns reuse their
 * words, as do all when values is NULL (tuple_words computed them all).
 */
static void
put_key_words(HashReceiver *r, const Datum *values, const bool *nulls, const uint64 *h,
			  const bool *isnull)
{
	int			n = r->nkeys;
	int			nbytes = (n + 7) / 8;
	Buf		   *b = &r->kbuf;
	char	   *p;
	char	   *bits;
	int			i;

	b->len = 0;
	buf_reserve(b, 8 * n + nbytes);
	p = b->data;
	bits = p + 8 * n;
	memset(bits, 0, nbytes);
	for (i = 0; i < n; i++)
	{
		int			col = r->keypos[i];
		bool		null;
		uint64		w;
		uint64		le;

		if (col < r->ncols || values == NULL)
		{
			null = isnull[col];
			w = h[col];
		}
		else
		{
			int			att = r->map[col];

			null = nulls[att];
			w = null ? NULL_WORD : value_word(&r->scratch, &r->ch[col], values[att]);
		}
		if (null)
			bits[i >> 3] |= (char) (1 << (i & 7));
		le = LE64(w);
		memcpy(p + 8 * i, &le, 8);
	}
	b->len = 8 * n + nbytes;
}

/*
 * The hashes of one row.  Each value stands as a 64-bit word (its own bits,
 * or the hash of its canonical bytes); the row hash is XXH3-128 of the
 * words in column order and the NULL bitmap (with the key's words appended
 * when a key column is not among the columns, so values swapped between
 * keys change it).  The key hash is XXH3-128 of the key columns' words,
 * seeded apart; a keyless row is its own key.  The values come from
 * values/nulls, or when tuple is given straight from it (r->phys set, and
 * only for the modes that keep no values).
 */
static void
hash_row(HashReceiver *r, const Datum *values, const bool *nulls, TupleDesc desc,
		 HeapTuple tuple)
{
	MemoryContext old;
	XXH128_hash_t row;
	XXH128_hash_t key = {0, 0};
	bool		want_key = (r->mode != RM_TOTAL);
	uint64	   *h = r->hashes;
	bool		isnull[MaxTupleAttributeNumber];
	uint32		bucket = 0;
	int			i;

	CHECK_FOR_INTERRUPTS();
	old = MemoryContextSwitchTo(r->row_cxt);

	r->buf.len = 0;
	if (tuple && r->natts == r->ncols)
	{
		int			n = r->ncols;
		int			nbytes = (n + 7) / 8;

		buf_reserve(&r->buf, 8 * n + nbytes);
		memset(r->buf.data + 8 * n, 0, nbytes);
		tuple_words(r, tuple, desc, true, NULL, NULL, r->buf.data, r->buf.data + 8 * n);
		r->buf.len = 8 * n + nbytes;
		/* the key's words, for put_key_words */
		for (i = 0; i < r->nkeys; i++)
		{
			int			col = r->keypos[i];

			memcpy(&h[col], r->buf.data + 8 * col, 8);
			h[col] = LE64(h[col]);
			isnull[col] = (r->buf.data[8 * n + (col >> 3)] & (1 << (col & 7))) != 0;
		}
	}
	else
	{
		if (tuple)
			tuple_words(r, tuple, desc, false, h, isnull, NULL, NULL);
		else
			value_words(r, r->ncols, values, nulls, h, isnull);
		put_row_words(r, h, isnull);
	}
	if (want_key)
	{
		if (r->nkeys == 0)
			key = XXH3_128bits_withSeed(r->buf.data, r->buf.len, KEY_SEED);
		else
		{
			put_key_words(r, values, nulls, h, isnull);
			key = XXH3_128bits_withSeed(r->kbuf.data, r->kbuf.len, KEY_SEED);
			if (r->key_outside)
				put_bytes(&r->buf, r->kbuf.data, r->kbuf.len);
		}
	bucket = bucket_of(r->bits, key);
	}
	row = XXH3_128bits(r->buf.data, r->buf.len);

	switch (r->mode)
	{
		case RM_TOTAL:
			acc_add(&r->total, row);
			break;
		case RM_BUCKETS:
			if (r->only == NULL || (r->only[bucket >> 3] & (1 << (bucket & 7))))
				acc_add(&r->accs[bucket], row);
			break;
		case RM_RANGE:
			Assert(values != NULL);
			acc_add(&r->total, row);
			MemoryContextReset(r->last_cxt);
			MemoryContextSwitchTo(r->last_cxt);
			for (i = 0; i < r->nkeys; i++)
			{
				int			att = r->map[r->keypos[i]];
				Form_pg_attribute a = TupleDescAttr(desc, att);

				r->last_null[i] = nulls[att];
				r->last[i] = r->last_null[i] ? (Datum) 0 :
					datumCopy(values[att], a->attbyval, a->attlen);
			}
			break;
		case RM_ROWS:
			Assert(values != NULL);
			if (r->only == NULL || (r->only[bucket >> 3] & (1 << (bucket & 7))))
			{
				RowEntry   *e;

				MemoryContextSwitchTo(r->collect_cxt);
				if (r->nrows == r->maxrows)
				{
					r->maxrows = r->maxrows ? r->maxrows * 2 : 1024;
					if ((Size) r->maxrows * sizeof(RowEntry) > MaxAllocHugeSize)
						ereport(ERROR,
								(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
								 errmsg("too many rows differ to list them")));
					r->rows = r->rows ?
						repalloc_huge(r->rows, sizeof(RowEntry) * r->maxrows) :
						MemoryContextAllocHuge(r->collect_cxt, sizeof(RowEntry) * r->maxrows);
				}
				e = &r->rows[r->nrows++];
				e->key = key;
				e->row = row;
				e->bucket = bucket;
				e->side = r->side;
				e->keytext = key_text(r, values, nulls);
				e->colhash = NULL;
				if (r->want_colhash)
				{
					e->colhash = palloc(sizeof(uint64) * r->ncols);
					memcpy(e->colhash, h, sizeof(uint64) * r->ncols);
				}
			}
			break;
	}
	MemoryContextSwitchTo(old);
	if (!r->row_cxt->isReset)
		MemoryContextReset(r->row_cxt);
}

static bool
recv_slot(TupleTableSlot *slot, DestReceiver *self)
{
	HashReceiver *r = (HashReceiver *) self;

	slot_getsomeattrs(slot, r->maxatt);
	hash_row(r, slot->tts_values, slot->tts_isnull, slot->tts_tupleDescriptor, NULL);
	return true;
}

static void
recv_shutdown(DestReceiver *self)
{
}

static void
recv_destroy(DestReceiver *self)
{
}

static HashReceiver *
receiver_create(ReceiverMode mode, Side *side)
{
	HashReceiver *r = palloc0(sizeof(HashReceiver));

	r->pub.receiveSlot = recv_slot;
	r->pub.rStartup = recv_startup;
	r->pub.rShutdown = recv_shutdown;
	r->pub.rDestroy = recv_destroy;
	r->pub.mydest = DestTuplestore;		/* like plpgsql's RETURN QUERY receiver */
	r->mode = mode;
	r->ncols = list_length(side->columns);
	r->nkeys = list_length(side->key);
	r->keep_cxt = CurrentMemoryContext;
	r->row_cxt = AllocSetContextCreate(CurrentMemoryContext, "shift checksum row",
									   ALLOCSET_DEFAULT_SIZES);
	buf_init(&r->buf);
	buf_init(&r->kbuf);
	buf_init(&r->scratch);
	if (mode == RM_RANGE)
	{
		r->last_cxt = AllocSetContextCreate(CurrentMemoryContext, "shift checksum key",
											ALLOCSET_SMALL_SIZES);
		r->last = palloc0(sizeof(Datum) * r->nkeys);
		r->last_null = palloc0(sizeof(bool) * r->nkeys);
	}
	if (mode == RM_ROWS)
		r->collect_cxt = AllocSetContextCreate(CurrentMemoryContext, "shift checksum rows",
											   ALLOCSET_DEFAULT_SIZES);
	return r;
}

static void
set_buckets(HashReceiver *r, int bits, const uint8 *only)
{
	r->bits = bits;
	r->only = only;
	if (r->mode == RM_BUCKETS)
		r->accs = MemoryContextAllocHuge(r->keep_cxt, sizeof(Acc) * ((Size) 1 << bits));
	if (r->accs)
		memset(r->accs, 0, sizeof(Acc) * ((Size) 1 << bits));
}

/* ---------------------------------------------------------------- running queries */

static SPIPlanPtr
prepare_plan(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql,
			 SPI_result_code_string(SPI_result));
	return plan;
}

/* Runs plan read-only in the caller's snapshot, every row into r. */
static void
run_into(SPIPlanPtr plan, ParamListInfo params, HashReceiver *r)
{
	SPIExecuteOptions opts;
	int			rc;

	memset(&opts, 0, sizeof(opts));
	opts.params = params;
	opts.read_only = true;
	opts.dest = (DestReceiver *) r;
	rc = SPI_execute_plan_extended(plan, &opts);
	if (rc < 0)
		elog(ERROR, "SPI_execute_plan_extended failed: %s", SPI_result_code_string(rc));
}

static char *
scan_sql(Side *side, int *keypos, const char *where)
{
	char	   *tl = side_target_list(side, keypos);

	return psprintf("SELECT %s FROM %s%s%s", tl, side->relname,
					where ? " WHERE " : "", where ? where : "");
}

/* A range of heap pages: [lo, hi), hi = InvalidBlockNumber for no end. */
typedef struct PageRange
{
	bool		given;
	bool		empty;
	BlockNumber lo;
	BlockNumber hi;
} PageRange;

static PageRange
page_range(Datum range, bool isnull)
{
	PageRange	pr = {false, false, 0, InvalidBlockNumber};
	RangeType  *r;
	TypeCacheEntry *tc;
	RangeBound	lower;
	RangeBound	upper;
	bool		empty;
	int64		lo;
	int64		hi;

	if (isnull)
		return pr;
	pr.given = true;
	r = DatumGetRangeTypeP(range);
	tc = lookup_type_cache(RangeTypeGetOid(r), TYPECACHE_RANGE_INFO);
	range_deserialize(tc, r, &lower, &upper, &empty);
	if (empty)
	{
		pr.empty = true;
		return pr;
	}
	lo = lower.infinite ? 0 : DatumGetInt64(lower.val) + (lower.inclusive ? 0 : 1);
	hi = upper.infinite ? -1 : DatumGetInt64(upper.val) + (upper.inclusive ? 1 : 0);
	if (lo < 0 || lo > MaxBlockNumber ||
		(!upper.infinite && (DatumGetInt64(upper.val) < 0 || DatumGetInt64(upper.val) > MaxBlockNumber)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pages must be a range of block numbers from 0 to %u", MaxBlockNumber)));
	pr.lo = (BlockNumber) lo;
	if (hi >= 0)
	{
		pr.hi = (BlockNumber) hi;
		pr.empty = pr.hi <= pr.lo;
	}
	return pr;
}

/* "ctid >= '(lo,0)' AND ctid < '(hi,0)'" for a page range, or NULL */
static char *
pages_condition(PageRange pr)
{
	StringInfoData s;

	if (!pr.given)
		return NULL;
	if (pr.empty)
		return "false";
	initStringInfo(&s);
	appendStringInfo(&s, "ctid >= '(%u,0)'::pg_catalog.tid", pr.lo);
	if (pr.hi != InvalidBlockNumber)
		appendStringInfo(&s, " AND ctid < '(%u,0)'::pg_catalog.tid", pr.hi);
	return s.data;
}

/*
 * Reads the side with a plain heap scan in the active snapshot, when it
 * can: only columns (no expressions) of a heap table the role may read in
 * full.  That skips the executor's per-row work, which was a third of the
 * time.  Returns false (having read nothing) otherwise; the caller then
 * runs the query, which also gives the executor's own permission error.
 */
/*
 * Sets r->phys for tuple_words when it can serve: a mode that keeps no
 * values, and no table column read as two output columns.
 */
static bool
phys_setup(HashReceiver *r, TupleDesc desc)
{
	int			att;
	int			i;

	if (r->mode != RM_TOTAL && r->mode != RM_BUCKETS)
		return false;
	if (r->phys)
		pfree(r->phys);
	r->phys = MemoryContextAlloc(r->keep_cxt, sizeof(PhysAtt) * r->maxatt);
	for (att = 0; att < r->maxatt; att++)
	{
		Form_pg_attribute a = TupleDescAttr(desc, att);

		r->phys[att].len = a->attlen;
		r->phys[att].align = a->attalign;
		r->phys[att].byval = a->attbyval;
		r->phys[att].col = -1;
	}
	for (i = 0; i < r->natts; i++)
	{
		if (r->phys[r->map[i]].col >= 0)
		{
			pfree(r->phys);
			r->phys = NULL;
			return false;
		}
		r->phys[r->map[i]].col = i;
	}
	return true;
}

/*
 * Hashes the visible tuples of pages lo..hi-1 straight from each page (no
 * slot, no deformed arrays, no per-tuple call into the scan): heapgetpage
 * pins the page, prunes it and lists the tuples the scan's snapshot sees,
 * which stay readable while the pin is held, as in a page-at-a-time scan.
 */
static void
heap_pages_into(HashReceiver *r, TableScanDesc sscan, TupleDesc desc, BlockNumber lo,
				BlockNumber hi)
{
	HeapScanDesc scan = (HeapScanDesc) sscan;
	Relation	rel = sscan->rs_rd;
	HeapTupleData tuple;
	BlockNumber blk;

	tuple.t_tableOid = RelationGetRelid(rel);
	for (blk = lo; blk < hi && blk < scan->rs_nblocks; blk++)
	{
		Page		page;
		int			i;

		heapgetpage(sscan, blk);
		page = BufferGetPage(scan->rs_cbuf);
		for (i = 0; i < scan->rs_ntuples; i++)
		{
			OffsetNumber off = scan->rs_vistuples[i];
			ItemId		lpp = PageGetItemId(page, off);

			tuple.t_data = (HeapTupleHeader) PageGetItem(page, lpp);
			tuple.t_len = ItemIdGetLength(lpp);
			ItemPointerSet(&tuple.t_self, blk, off);
			hash_row(r, NULL, NULL, desc, &tuple);
		}
		if (pgstat_should_count_relation(rel))
			rel->pgstat_info->t_counts.t_tuples_returned += scan->rs_ntuples;
	}
}

static bool
heap_scan_into(Side *side, HashReceiver *r, PageRange pr)
{
	List	   *out = side_output(side, r->keypos);
	int			n = list_length(out);
	int		   *map = palloc(sizeof(int) * n);
	Oid		   *types = palloc(sizeof(Oid) * n);
	Relation	rel;
	TableScanDesc scan;
	TupleTableSlot *slot;
	bool		readable;
	ListCell   *lc;
	int			i = 0;

	rel = table_open(side->relid, AccessShareLock);
	if ((rel->rd_rel->relkind != RELKIND_RELATION && rel->rd_rel->relkind != RELKIND_MATVIEW) ||
		rel->rd_rel->relam != HEAP_TABLE_AM_OID)
	{
		table_close(rel, AccessShareLock);
		return false;
	}
	readable = pg_class_aclcheck(side->relid, GetUserId(), ACL_SELECT) == ACLCHECK_OK;
	foreach(lc, out)
	{
		Column	   *col = lfirst(lc);

		if (col->attnum <= 0 ||
			(!readable &&
			 pg_attribute_aclcheck(side->relid, col->attnum, GetUserId(), ACL_SELECT) != ACLCHECK_OK))
		{
			table_close(rel, AccessShareLock);
			return false;
		}
		map[i] = col->attnum - 1;
		types[i] = TupleDescAttr(RelationGetDescr(rel), col->attnum - 1)->atttypid;
		i++;
	}
	receiver_setup(r, n, types, map);
	if (!pr.empty)
	{
		BlockNumber nblocks = RelationGetNumberOfBlocks(rel);

		TupleDesc	desc = RelationGetDescr(rel);

		BlockNumber lo = pr.given ? Min(pr.lo, nblocks) : 0;
		BlockNumber hi = pr.given ? Min(pr.hi, nblocks) : nblocks;
		bool		fused = phys_setup(r, desc);

		/*
		 * A page range starts where it says; a whole table read tuple by
		 * tuple may join a running scan (the page loop reads in block order).
		 */
		scan = table_beginscan_strat(rel, GetActiveSnapshot(), 0, NULL, true,
									 !pr.given && !fused);
		if (pr.given)
			heap_setscanlimits(scan, lo, hi > lo ? hi - lo : 0);
		if (fused && (scan->rs_flags & SO_ALLOW_PAGEMODE))
			heap_pages_into(r, scan, desc, lo, hi);
		else if (fused)
		{
			HeapTuple	tuple;

			while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
				hash_row(r, NULL, NULL, desc, tuple);
		}
		else
		{
			slot = table_slot_create(rel, NULL);
			while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
				recv_slot(slot, (DestReceiver *) r);
			ExecDropSingleTupleTableSlot(slot);
		}
		table_endscan(scan);
	}
	table_close(rel, NoLock);
	return true;
}

/* Reads the side (in a page range, if given) into r. */
static void
scan_into(Side *side, HashReceiver *r, PageRange pr)
{
	if (heap_scan_into(side, r, pr))
		return;
	run_into(prepare_plan(scan_sql(side, r->keypos, pages_condition(pr)), 0, NULL), NULL, r);
}

static int
bucket_bits(int32 buckets)
{
	int			bits = 0;

	if (buckets < 1 || buckets > (1 << MAX_BUCKET_BITS) || (buckets & (buckets - 1)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("buckets must be a power of two from 1 to %d", 1 << MAX_BUCKET_BITS),
				 errdetail("It was %d.", buckets),
				 errhint("Bucket b of n buckets splits into buckets 2b and 2b+1 of 2n.")));
	while ((1 << bits) < buckets)
		bits++;
	return bits;
}

/* A bitmap of the bucket numbers in only (NULL: every bucket). */
static uint8 *
only_bitmap(ArrayType *only, int bits)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;
	uint8	   *map;

	if (only == NULL)
		return NULL;
	map = palloc0(((Size) 1 << bits) / 8 + 1);
	deconstruct_array(only, INT4OID, 4, true, TYPALIGN_INT, &elems, &nulls, &n);
	for (i = 0; i < n; i++)
	{
		int32		b = DatumGetInt32(elems[i]);

		if (nulls[i] || b < 0 || b >= (1 << bits))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("bucket %d is not one of the %d buckets", nulls[i] ? -1 : b, 1 << bits)));
		map[b >> 3] |= (uint8) (1 << (b & 7));
	}
	return map;
}

static char *
hex128(uint64 hi, uint64 lo)
{
	return psprintf("%016llx%016llx", (unsigned long long) hi, (unsigned long long) lo);
}

static Datum
acc_checksum(const Acc *a)
{
	return CStringGetTextDatum(hex128(a->hi, a->lo));
}

static void
open_spi(void)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

/* ---------------------------------------------------------------- table_checksum */

/*
 * shift.table_checksum(rel regclass, columns text[] DEFAULT NULL)
 *	 RETURNS TABLE (rows bigint, checksum text)
 *
 * The row count and 128-bit checksum of the whole table in one scan.
 */
Datum
shift_table_checksum(PG_FUNCTION_ARGS)
{
	Side		side;
	HashReceiver *r;
	TupleDesc	desc;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the table must not be NULL")));
	side_init(&side, "table", PG_GETARG_OID(0),
			  PG_ARGISNULL(1) ? NULL : PG_GETARG_ARRAYTYPE_P(1), NULL, false);
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	open_spi();
	r = receiver_create(RM_TOTAL, &side);
	scan_into(&side, r, page_range(0, true));
	values[0] = Int64GetDatum((int64) r->total.rows);
	SPI_finish();
	/* after SPI_finish: the text must live in the caller's memory */
	values[1] = acc_checksum(&r->total);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}

/* ---------------------------------------------------------------- chunk_checksums */

/* text[] of key values for output (NULL when absent) */
static Datum
keys_out(Oid *types, Side *side, Datum *vals, bool *nulls, bool *isnull)
{
	int			n = list_length(side->key);
	Datum	   *out = palloc(sizeof(Datum) * n);
	int			dims[1] = {n};
	int			lbs[1] = {1};
	int			i;

	if (vals == NULL)
	{
		*isnull = true;
		return (Datum) 0;
	}
	*isnull = false;
	for (i = 0; i < n; i++)
	{
		Oid			outfn;
		bool		isvarlena;

		if (!nulls[i])
		{
			getTypeOutputInfo(types[i], &outfn, &isvarlena);
			out[i] = CStringGetTextDatum(OidOutputFunctionCall(outfn, vals[i]));
		}
	}
	return PointerGetDatum(construct_md_array(out, nulls, 1, dims, lbs, TEXTOID, -1, false,
											  TYPALIGN_INT));
}

/* The types of the key's output columns, from the plan's result description. */
static void
key_types(SPIPlanPtr plan, Side *side, int *keypos, Oid *types)
{
	List	   *sources = SPI_plan_get_plan_sources(plan);
	CachedPlanSource *ps;
	int			i;

	if (list_length(sources) != 1)
		elog(ERROR, "unexpected plan shape");
	ps = linitial(sources);
	/* the probe selects the key columns alone, in order */
	for (i = 0; i < list_length(side->key); i++)
		types[i] = TupleDescAttr(ps->resultDesc, i)->atttypid;
}

/* Key values given as text (lower => / upper =>), read with each key type's input function. */
static void
keys_in(ArrayType *arr, Side *side, Oid *types, const char *what, Datum *vals)
{
	List	   *texts = text_array_list(arr);
	ListCell   *lc;
	int			i = 0;

	if (list_length(texts) != list_length(side->key))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must have one value per key column (%d), not %d", what,
						list_length(side->key), list_length(texts))));
	foreach(lc, texts)
	{
		Oid			infn;
		Oid			ioparam;

		getTypeInputInfo(types[i], &infn, &ioparam);
		vals[i] = OidInputFunctionCall(infn, lfirst(lc), ioparam, -1);
		i++;
	}
}

static ParamListInfo
make_params(int n, Oid *types, Datum *vals)
{
	ParamListInfo p = makeParamList(n);
	int			i;

	for (i = 0; i < n; i++)
	{
		p->params[i].value = vals[i];
		p->params[i].isnull = false;
		p->params[i].pflags = PARAM_FLAG_CONST;
		p->params[i].ptype = types[i];
	}
	p->numParams = n;
	return p;
}

static void
emit_chunk(ReturnSetInfo *rsinfo, int64 chunk, Datum lower, bool lower_null, Datum upper,
		   bool upper_null, const Acc *a)
{
	Datum		values[5];
	bool		nulls[5] = {false, lower_null, upper_null, false, false};

	values[0] = Int64GetDatum(chunk);
	values[1] = lower;
	values[2] = upper;
	values[3] = Int64GetDatum((int64) a->rows);
	values[4] = acc_checksum(a);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/* Hash buckets: one scan, one row per non-empty bucket. */
static void
chunk_buckets(ReturnSetInfo *rsinfo, Side *side, int bits, ArrayType *only, Datum pages,
			  bool pages_null)
{
	HashReceiver *r;
	uint32		b;

	r = receiver_create(RM_BUCKETS, side);
	set_buckets(r, bits, only_bitmap(only, bits));
	scan_into(side, r, page_range(pages, pages_null));
	for (b = 0; b < ((uint32) 1 << bits); b++)
		if (r->accs[b].rows > 0)
			emit_chunk(rsinfo, b, 0, true, 0, true, &r->accs[b]);
}

/*
 * Refuses a key that is NULL in some row, or not unique: key ranges would
 * skip those rows.  The primary key needs no look; anything else is checked
 * once (a scan).
 */
static void
check_key_not_null(Side *side)
{
	ListCell   *lc;
	StringInfoData sql;

	if (side->key_is_pk)
		return;
	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT 1 FROM ");
	appendStringInfo(&sql, "%s GROUP BY ", side->relname);
	append_key_list(&sql, side, "");
	appendStringInfoString(&sql, " HAVING pg_catalog.count(*) > 1 LIMIT 1");
	if (SPI_execute(sql.data, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed: %s", sql.data);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("key of %s \"%s\" is not unique", side->what, get_rel_name(side->relid)),
				 errdetail("Key ranges cut between rows of one key value would skip rows."),
				 errhint("Use a unique key, or buckets => n.")));

	foreach(lc, side->key)
	{
		Column	   *key = lfirst(lc);
		char	   *sql;

		if (key->notnull)
			continue;
		sql = psprintf("SELECT 1 FROM %s WHERE %s IS NULL LIMIT 1", side->relname, key->sql);
		if (SPI_execute(sql, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "SPI_execute failed: %s", sql);
		if (SPI_processed > 0)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("key column \"%s\" of %s \"%s\" is NULL in some rows", key->label,
							side->what, get_rel_name(side->relid)),
					 errdetail("Key ranges cannot hold rows whose key is NULL."),
					 errhint("Use buckets => n, which handles NULL keys.")));
	}
}

/*
 * Key ranges: chunk after chunk of chunk_rows rows in key order (or sized
 * to target_ms), each (lower, upper] with the first open below and the last
 * open above, so another table checked with the same bounds covers the same
 * keys.
 */
static void
chunk_ranges(ReturnSetInfo *rsinfo, Side *side, int64 chunk_rows, int32 target_ms,
			 ArrayType *lower_arr, ArrayType *upper_arr)
{
	int			nkeys = list_length(side->key);
	char	   *tl;
	StringInfoData sql;
	Oid			types[INDEX_MAX_KEYS * 2 + 1];
	Datum		vals[INDEX_MAX_KEYS * 2 + 1];
	Datum		upper[INDEX_MAX_KEYS];
	SPIPlanPtr	probe;
	SPIPlanPtr	plans[2];		/* [0] from the start, [1] after a lower key */
	bool		no_nulls[INDEX_MAX_KEYS] = {false};
	MemoryContext param_cxt;
	HashReceiver *r;
	int64		chunk = 0;
	int64		size = chunk_rows;
	bool		has_lower = lower_arr != NULL;
	bool		has_upper = upper_arr != NULL;
	int			i;
	int			p;

	if (nkeys == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s \"%s\" has no primary key to cut into key ranges", side->what,
						get_rel_name(side->relid)),
				 errhint("Name its key with key => ARRAY['col'], or use buckets => n, which needs no key.")));
	check_key_not_null(side);
	r = receiver_create(RM_RANGE, side);
	tl = side_target_list(side, r->keypos);
	/* the lower key's copy passed to a query; the receiver overwrites r->last meanwhile */
	param_cxt = AllocSetContextCreate(CurrentMemoryContext, "shift checksum bound",
									  ALLOCSET_SMALL_SIZES);

	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT ");
	append_key_list(&sql, side, "");
	appendStringInfo(&sql, " FROM %s LIMIT 0", side->relname);
	probe = prepare_plan(sql.data, 0, NULL);
	key_types(probe, side, r->keypos, types);
	for (i = 0; i < nkeys; i++)
		types[nkeys + i] = types[i];
	types[2 * nkeys] = INT8OID;
	if (has_upper)
		keys_in(upper_arr, side, types, "upper", upper);

	/* $1..$n lower key, $n+1..$2n upper key, $2n+1 the limit */
	for (p = 0; p < 2; p++)
	{
		bool		any = false;

		resetStringInfo(&sql);
		appendStringInfo(&sql, "SELECT %s FROM %s", tl, side->relname);
		if (p == 1)
		{
			appendStringInfoString(&sql, " WHERE (");
			append_key_list(&sql, side, "");
			appendStringInfoString(&sql, ") > (");
			for (i = 0; i < nkeys; i++)
				appendStringInfo(&sql, "%s$%d", i ? ", " : "", i + 1);
			appendStringInfoChar(&sql, ')');
			any = true;
		}
		if (has_upper)
		{
			appendStringInfoString(&sql, any ? " AND (" : " WHERE (");
			append_key_list(&sql, side, "");
			appendStringInfoString(&sql, ") <= (");
			for (i = 0; i < nkeys; i++)
				appendStringInfo(&sql, "%s$%d", i ? ", " : "", nkeys + i + 1);
			appendStringInfoChar(&sql, ')');
		}
		appendStringInfoString(&sql, " ORDER BY ");
		append_key_list(&sql, side, "");
		appendStringInfo(&sql, " LIMIT $%d", 2 * nkeys + 1);
		plans[p] = prepare_plan(sql.data, 2 * nkeys + 1, types);
	}

	if (has_lower)
	{
		MemoryContext old = MemoryContextSwitchTo(r->last_cxt);

		keys_in(lower_arr, side, types, "lower", r->last);
		MemoryContextSwitchTo(old);
	}
	for (;;)
	{
		Datum		lower_out;
		bool		lower_null;
		Datum		upper_out;
		bool		upper_null;
		instr_time	start;
		instr_time	elapsed;
		bool		last_chunk;

		lower_out = keys_out(types, side, has_lower ? r->last : NULL, r->last_null, &lower_null);
		MemoryContextReset(param_cxt);
		for (i = 0; i < nkeys; i++)
		{
			if (has_lower)
			{
				int16		typlen;
				bool		typbyval;

				MemoryContext old = MemoryContextSwitchTo(param_cxt);

				get_typlenbyval(types[i], &typlen, &typbyval);
				vals[i] = datumCopy(r->last[i], typbyval, typlen);
				MemoryContextSwitchTo(old);
			}
			else
				vals[i] = (Datum) 0;
			vals[nkeys + i] = has_upper ? upper[i] : (Datum) 0;
		}
		vals[2 * nkeys] = Int64GetDatum(size);
		memset(&r->total, 0, sizeof(r->total));
		INSTR_TIME_SET_CURRENT(start);
		run_into(plans[has_lower ? 1 : 0], make_params(2 * nkeys + 1, types, vals), r);
		INSTR_TIME_SET_CURRENT(elapsed);
		INSTR_TIME_SUBTRACT(elapsed, start);

		last_chunk = (int64) r->total.rows < size;
		if (last_chunk)
			upper_out = keys_out(types, side, has_upper ? upper : NULL, no_nulls, &upper_null);
		else
			upper_out = keys_out(types, side, r->last, r->last_null, &upper_null);
		emit_chunk(rsinfo, chunk++, lower_out, lower_null, upper_out, upper_null, &r->total);
		if (last_chunk)
			break;
		has_lower = true;
		if (target_ms > 0)
		{
			double		ms = INSTR_TIME_GET_MILLISEC(elapsed);
			double		next = ms > 0 ? size * (target_ms / ms) : size * 2.0;

			next = Min(next, size * 2.0);
			next = Max(next, size / 2.0);
			size = (int64) Min(Max(next, 100.0), 10000000.0);
		}
	}
}

/*
 * shift.chunk_checksums(rel regclass, columns text[], key text[],
 *		buckets integer, chunk_rows bigint, target_ms integer,
 *		lower text[], upper text[], only integer[], pages int8range)
 *	 RETURNS TABLE (chunk bigint, lower text[], upper text[], rows bigint, checksum text)
 */
Datum
shift_chunk_checksums(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Side		side;
	bool		by_bucket = !PG_ARGISNULL(3);
	bool		by_range = !PG_ARGISNULL(4) || !PG_ARGISNULL(5) || !PG_ARGISNULL(6) ||
		!PG_ARGISNULL(7);
	int64		chunk_rows;
	int32		target_ms;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the table must not be NULL")));
	if (by_bucket && by_range)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("buckets cannot be combined with chunk_rows, target_ms, lower or upper"),
				 errhint("Hash buckets and key ranges are two ways to cut a table; pick one.")));
	if (!by_bucket && (!PG_ARGISNULL(8) || !PG_ARGISNULL(9)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("only_buckets and pages need buckets => n")));
	InitMaterializedSRF(fcinfo, 0);
	side_init(&side, "table", PG_GETARG_OID(0), PG_ARGISNULL(1) ? NULL : PG_GETARG_ARRAYTYPE_P(1),
			  PG_ARGISNULL(2) ? NULL : PG_GETARG_ARRAYTYPE_P(2), true);
	open_spi();
	if (by_bucket)
	{
		int			bits = bucket_bits(PG_GETARG_INT32(3));

		chunk_buckets(rsinfo, &side, bits, PG_ARGISNULL(8) ? NULL : PG_GETARG_ARRAYTYPE_P(8),
					  PG_ARGISNULL(9) ? (Datum) 0 : PG_GETARG_DATUM(9), PG_ARGISNULL(9));
	}
	else
	{
		target_ms = PG_ARGISNULL(5) ? 0 : PG_GETARG_INT32(5);
		chunk_rows = PG_ARGISNULL(4) ? (target_ms > 0 ? 1000 : 100000) : PG_GETARG_INT64(4);
		if (chunk_rows < 1 || target_ms < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("chunk_rows must be at least 1 and target_ms positive")));
		chunk_ranges(rsinfo, &side, chunk_rows, target_ms,
					 PG_ARGISNULL(6) ? NULL : PG_GETARG_ARRAYTYPE_P(6),
					 PG_ARGISNULL(7) ? NULL : PG_GETARG_ARRAYTYPE_P(7));
	}
	SPI_finish();
	return (Datum) 0;
}

/* ---------------------------------------------------------------- row hashes and compare */

/* The planner's row estimate of a table (a million when never analyzed). */
static double
reltuples(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	double		n;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	n = ((Form_pg_class) GETSTRUCT(tup))->reltuples;
	ReleaseSysCache(tup);
	return n < 0 ? 1e6 : n;
}

/* Collects the rows of the wanted buckets of one side. */
static HashReceiver *
collect_rows(Side *side, int bits, const uint8 *only, int sideno, bool colhash)
{
	HashReceiver *r = receiver_create(RM_ROWS, side);

	set_buckets(r, bits, only);
	r->side = sideno;
	r->want_colhash = colhash;
	scan_into(side, r, page_range(0, true));
	return r;
}

/*
 * shift.row_hashes(rel regclass, columns text[], key text[], buckets integer,
 *		only integer[])
 *	 RETURNS TABLE (bucket integer, key text[], key_hash text, row_hash text)
 */
Datum
shift_row_hashes(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Side		side;
	HashReceiver *r;
	int			bits;
	int64		i;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the table and buckets must not be NULL")));
	bits = bucket_bits(PG_GETARG_INT32(3));
	InitMaterializedSRF(fcinfo, 0);
	side_init(&side, "table", PG_GETARG_OID(0), PG_ARGISNULL(1) ? NULL : PG_GETARG_ARRAYTYPE_P(1),
			  PG_ARGISNULL(2) ? NULL : PG_GETARG_ARRAYTYPE_P(2), true);
	open_spi();
	r = collect_rows(&side, bits, only_bitmap(PG_ARGISNULL(4) ? NULL : PG_GETARG_ARRAYTYPE_P(4), bits),
					 0, false);
	for (i = 0; i < r->nrows; i++)
	{
		RowEntry   *e = &r->rows[i];
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};

		values[0] = Int32GetDatum((int32) e->bucket);
		values[1] = e->keytext;
		values[2] = CStringGetTextDatum(hex128(e->key.high64, e->key.low64));
		values[3] = CStringGetTextDatum(hex128(e->row.high64, e->row.low64));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}

static int
cmp_hash(XXH128_hash_t a, XXH128_hash_t b)
{
	if (a.high64 != b.high64)
		return a.high64 < b.high64 ? -1 : 1;
	if (a.low64 != b.low64)
		return a.low64 < b.low64 ? -1 : 1;
	return 0;
}

/* by key hash, then row hash, then side */
static int
cmp_entry(const void *pa, const void *pb)
{
	const RowEntry *a = pa;
	const RowEntry *b = pb;
	int			c = cmp_hash(a->key, b->key);

	if (c == 0)
		c = cmp_hash(a->row, b->row);
	if (c == 0)
		c = a->side - b->side;
	return c;
}

static void
emit_difference(ReturnSetInfo *rsinfo, const char *kind, RowEntry *e, RowEntry *other,
				Side *src)
{
	Datum		values[3];
	bool		nulls[3] = {false, false, true};

	values[0] = CStringGetTextDatum(kind);
	values[1] = e->keytext;
	values[2] = (Datum) 0;
	if (other && e->colhash && other->colhash)
	{
		ArrayBuildState *astate = initArrayResult(TEXTOID, CurrentMemoryContext, false);
		ListCell   *lc;
		int			i = 0;

		foreach(lc, src->columns)
		{
			if (e->colhash[i] != other->colhash[i])
				astate = accumArrayResult(astate,
										  CStringGetTextDatum(((Column *) lfirst(lc))->label),
										  false, TEXTOID, CurrentMemoryContext);
			i++;
		}
		values[2] = makeArrayResult(astate, CurrentMemoryContext);
		nulls[2] = false;
	}
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/* Refuses column pairs that can never hold equal values (int against text, ...). */
static void
check_column_types(Side *src, Side *tgt, int *src_keypos, int *tgt_keypos)
{
	StringInfoData sql;
	SPIPlanPtr	plans[2];
	TupleDesc	descs[2];
	int			ncols = list_length(src->columns);
	int			nkeys = list_length(src->key);
	int			i;

	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT %s FROM %s LIMIT 0",
					 side_target_list(src, src_keypos), src->relname);
	plans[0] = prepare_plan(sql.data, 0, NULL);
	resetStringInfo(&sql);
	appendStringInfo(&sql, "SELECT %s FROM %s LIMIT 0",
					 side_target_list(tgt, tgt_keypos), tgt->relname);
	plans[1] = prepare_plan(sql.data, 0, NULL);
	for (i = 0; i < 2; i++)
		descs[i] = ((CachedPlanSource *) linitial(SPI_plan_get_plan_sources(plans[i])))->resultDesc;
	for (i = 0; i < ncols + nkeys; i++)
	{
		int			a = i < ncols ? i : src_keypos[i - ncols];
		int			b = i < ncols ? i : tgt_keypos[i - ncols];
		Oid			ta = TupleDescAttr(descs[0], a)->atttypid;
		Oid			tb = TupleDescAttr(descs[1], b)->atttypid;
		ColHash		ca;
		ColHash		cb;

		colhash_init(&ca, ta);
		colhash_init(&cb, tb);
		if (strcmp(colhash_class(&ca), colhash_class(&cb)) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("%s \"%s\" is %s in the source but %s \"%s\" is %s in the target",
							i < ncols ? "column" : "key column",
							((Column *) list_nth(i < ncols ? src->columns : src->key,
												 i < ncols ? i : i - ncols))->label,
							format_type_be(ta),
							i < ncols ? "column" : "key column",
							((Column *) list_nth(i < ncols ? tgt->columns : tgt->key,
												 i < ncols ? i : i - ncols))->label,
							format_type_be(tb)),
					 errdetail("Values of these two types never hash equal."),
					 errhint("Cast one side to the other's type, e.g. columns => ARRAY['id::bigint'].")));
	}
}

/*
 * shift.compare(source regclass, target regclass, columns text[],
 *		target_columns text[], key text[], target_key text[], buckets integer)
 *	 RETURNS TABLE (kind text, key text[], columns text[])
 *
 * Sums both tables into key-hash buckets, then looks at the rows of the
 * buckets that differ only: a key on one side only is missing_in_target or
 * missing_in_source, a key on both sides with different rows is different
 * (columns lists which).  Without a key the rows themselves are compared as
 * multisets.  Both scans read the caller's snapshot.
 */
Datum
shift_compare(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Side		src;
	Side		tgt;
	int			src_keypos[INDEX_MAX_KEYS * 4];
	int			tgt_keypos[INDEX_MAX_KEYS * 4];
	HashReceiver *rs;
	HashReceiver *rt;
	HashReceiver *cs;
	HashReceiver *ct;
	int			bits;
	uint32		nb;
	uint32		b;
	uint8	   *differ;
	int64		ndiffer = 0;
	RowEntry   *all;
	int64		n;
	int64		i;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("source and target must not be NULL")));
	InitMaterializedSRF(fcinfo, 0);
	side_init(&src, "source", PG_GETARG_OID(0), PG_ARGISNULL(2) ? NULL : PG_GETARG_ARRAYTYPE_P(2),
			  PG_ARGISNULL(4) ? NULL : PG_GETARG_ARRAYTYPE_P(4), true);
	side_init(&tgt, "target", PG_GETARG_OID(1),
			  PG_ARGISNULL(3) ? (PG_ARGISNULL(2) ? NULL : PG_GETARG_ARRAYTYPE_P(2)) :
			  PG_GETARG_ARRAYTYPE_P(3),
			  PG_ARGISNULL(5) ? (PG_ARGISNULL(4) ? NULL : PG_GETARG_ARRAYTYPE_P(4)) :
			  PG_GETARG_ARRAYTYPE_P(5), false);

	/* the target's columns and key default to the source's, by name */
	if (PG_ARGISNULL(3) && PG_ARGISNULL(2))
	{
		ListCell   *lc;
		Relation	rel = table_open(tgt.relid, AccessShareLock);

		tgt.columns = NIL;
		foreach(lc, src.columns)
			tgt.columns = lappend(tgt.columns,
								  make_column(rel, "target", ((Column *) lfirst(lc))->label, true));
		table_close(rel, AccessShareLock);
	}
	if (PG_ARGISNULL(5) && PG_ARGISNULL(4))
	{
		ListCell   *lc;
		Relation	rel = table_open(tgt.relid, AccessShareLock);

		tgt.key = NIL;
		foreach(lc, src.key)
			tgt.key = lappend(tgt.key, make_column(rel, "target", ((Column *) lfirst(lc))->label, true));
		table_close(rel, AccessShareLock);
	}
	if (list_length(src.columns) != list_length(tgt.columns))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("source has %d columns to compare but target has %d",
						list_length(src.columns), list_length(tgt.columns)),
				 errhint("Give both lists: columns => ARRAY[...], target_columns => ARRAY[...].")));
	if (list_length(src.key) != list_length(tgt.key))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("source key has %d columns but target key has %d",
						list_length(src.key), list_length(tgt.key))));
	open_spi();
	check_column_types(&src, &tgt, src_keypos, tgt_keypos);

	if (PG_ARGISNULL(6))
	{
		/* about a thousand rows per bucket */
		double		est = reltuples(src.relid);

		bits = 4;
		while (bits < 20 && ((double) ((int64) 1 << bits)) * 1000.0 < est)
			bits++;
	}
	else
		bits = bucket_bits(PG_GETARG_INT32(6));
	nb = (uint32) 1 << bits;

	rs = receiver_create(RM_BUCKETS, &src);
	set_buckets(rs, bits, NULL);
	scan_into(&src, rs, page_range(0, true));
	rt = receiver_create(RM_BUCKETS, &tgt);
	set_buckets(rt, bits, NULL);
	scan_into(&tgt, rt, page_range(0, true));

	differ = palloc0(nb / 8 + 1);
	for (b = 0; b < nb; b++)
		if (memcmp(&rs->accs[b], &rt->accs[b], sizeof(Acc)) != 0)
		{
			differ[b >> 3] |= (uint8) (1 << (b & 7));
			ndiffer++;
		}
	if (ndiffer == 0)
	{
		SPI_finish();
		return (Datum) 0;
	}

	cs = collect_rows(&src, bits, differ, 0, true);
	ct = collect_rows(&tgt, bits, differ, 1, true);
	n = cs->nrows + ct->nrows;
	all = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(RowEntry) * Max(n, 1));
	if (cs->nrows)
		memcpy(all, cs->rows, sizeof(RowEntry) * cs->nrows);
	if (ct->nrows)
		memcpy(all + cs->nrows, ct->rows, sizeof(RowEntry) * ct->nrows);
	qsort(all, n, sizeof(RowEntry), cmp_entry);

	/*
	 * Walk each run of one key hash: equal row hashes on both sides cancel
	 * in pairs; what remains pairs up as different, the rest is missing.
	 */
	for (i = 0; i < n;)
	{
		int64		end = i;
		int64		j;
		List	   *left[2] = {NIL, NIL};

		while (end < n && cmp_hash(all[end].key, all[i].key) == 0)
			end++;
		for (j = i; j < end;)
		{
			int64		k = j;
			int64		count[2] = {0, 0};
			int64		m;

			while (k < end && cmp_hash(all[k].row, all[j].row) == 0)
				count[all[k++].side]++;
			/* sorted by side within the run: sources first */
			for (m = 0; m < count[0] - Min(count[0], count[1]); m++)
				left[0] = lappend(left[0], &all[j + m]);
			for (m = 0; m < count[1] - Min(count[0], count[1]); m++)
				left[1] = lappend(left[1], &all[j + count[0] + m]);
			j = k;
		}
		while (left[0] != NIL && left[1] != NIL)
		{
			emit_difference(rsinfo, "different", linitial(left[0]), linitial(left[1]), &src);
			left[0] = list_delete_first(left[0]);
			left[1] = list_delete_first(left[1]);
		}
		for (j = 0; j < list_length(left[0]); j++)
			emit_difference(rsinfo, "missing_in_target", list_nth(left[0], j), NULL, &src);
		for (j = 0; j < list_length(left[1]); j++)
			emit_difference(rsinfo, "missing_in_source", list_nth(left[1], j), NULL, &src);
		i = end;
	}
	SPI_finish();
	return (Datum) 0;
}

/*
 * shift.checksum_columns(rel regclass, columns text[], key text[])
 *	 RETURNS TABLE (ord integer, label text, is_key boolean, type text, class text)
 *
 * What a checksum of rel hashes: each column (then each key column) with its
 * type and its class; columns of different classes never hash equal.  The
 * runner compares two servers' answers before it scans anything.
 */
Datum
shift_checksum_columns(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Side		side;
	int			keypos[INDEX_MAX_KEYS];
	SPIPlanPtr	plan;
	TupleDesc	desc;
	int			ncols;
	int			nkeys;
	int			i;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the table must not be NULL")));
	InitMaterializedSRF(fcinfo, 0);
	side_init(&side, "table", PG_GETARG_OID(0), PG_ARGISNULL(1) ? NULL : PG_GETARG_ARRAYTYPE_P(1),
			  PG_ARGISNULL(2) ? NULL : PG_GETARG_ARRAYTYPE_P(2), true);
	ncols = list_length(side.columns);
	nkeys = list_length(side.key);
	open_spi();
	plan = prepare_plan(psprintf("SELECT %s FROM %s LIMIT 0", side_target_list(&side, keypos),
								 side.relname), 0, NULL);
	desc = ((CachedPlanSource *) linitial(SPI_plan_get_plan_sources(plan)))->resultDesc;
	for (i = 0; i < ncols + nkeys; i++)
	{
		int			att = i < ncols ? i : keypos[i - ncols];
		Oid			typid = TupleDescAttr(desc, att)->atttypid;
		ColHash		ch;
		Datum		values[5];
		bool		nulls[5] = {false, false, false, false, false};

		colhash_init(&ch, typid);
		values[0] = Int32GetDatum(i < ncols ? i + 1 : i - ncols + 1);
		values[1] = CStringGetTextDatum(((Column *) list_nth(i < ncols ? side.columns : side.key,
															  i < ncols ? i : i - ncols))->label);
		values[2] = BoolGetDatum(i >= ncols);
		values[3] = CStringGetTextDatum(format_type_be(typid));
		values[4] = CStringGetTextDatum(colhash_class(&ch));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}
