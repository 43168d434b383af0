/*-------------------------------------------------------------------------
 *
 * checksum.h
 *	  Declarations shared by the checksum code:
 *	  checksum_type.c     which rule a type's values follow (ColHash setup)
 *	  checksum_canon.c    the canonical word of a value, per rule
 *	  checksum_scan.c     row hashes, and reading a relation (page reader
 *	                      or executor) into them
 *	  checksum_side.c     what to hash: a side's columns and key, and the
 *	                      key's btree operators
 *	  checksum.c          the SQL entry points, key ranges
 *	  checksum_compare.c  shift.compare
 *
 * doc/checksum.md specifies the canonical form these implement, with test
 * vectors; a change to a word is a change to that document.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHIFT_CHECKSUM_H
#define SHIFT_CHECKSUM_H

#include <math.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "access/stratnum.h"
#include "access/tupdesc.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "port/pg_bswap.h"
#include "tcop/dest.h"
#include "utils/typcache.h"

/* ---------------------------------------------------------------- byte buffers */

/*
 * Canonical bytes are written into a Buf directly (a StringInfo append is
 * a function call per field, which was a quarter of the time).
 */
typedef struct Buf
{
	char	   *data;
	int			len;
	int			cap;
} Buf;

extern void buf_init(Buf *b);
extern void buf_grow(Buf *b, int n);

static inline void
buf_reserve(Buf *b, int n)
{
	if (unlikely(b->len + n > b->cap))
		buf_grow(b, n);
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

/* The low n bytes of v, least significant first (LE64 puts them first in memory). */
static inline void
put_le(Buf *b, uint64 v, int n)
{
	uint64		le = LE64(v);

	buf_reserve(b, n);
	memcpy(b->data + b->len, &le, n);
	b->len += n;
}

#define put_u8(b, v)	put_le((b), (uint8) (v), 1)
#define put_u16(b, v)	put_le((b), (uint16) (v), 2)
#define put_u32(b, v)	put_le((b), (uint32) (v), 4)
#define put_u64(b, v)	put_le((b), (uint64) (v), 8)

static inline void
put_bytes(Buf *b, const void *p, int n)
{
	buf_reserve(b, n);
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

/* ---------------------------------------------------------------- canonical words */

/* What a type's canonical form is (doc/checksum.md, "Values"). */
typedef enum HashKind
{
	HK_INT,						/* int2, int4, int8: as int64 */
	HK_FIXED,					/* by-value types whose bits are their value */
	HK_FLOAT4,
	HK_FLOAT8,
	HK_NUMERIC,
	HK_TEXT,					/* text, varchar, json, xml: characters in UTF-8 */
	HK_BPCHAR,					/* the same, without trailing blanks */
	HK_NAME,
	HK_ENUM,					/* the label */
	HK_CITEXT,					/* lower-cased as citext compares */
	HK_BYTEA,
	HK_UUID,
	HK_INTERVAL,
	HK_TIMETZ,
	HK_JSONB,
	HK_INET,					/* inet and cidr */
	HK_MACADDR,
	HK_MACADDR8,
	HK_BIT,						/* bit and varbit */
	HK_TID,
	HK_POINT,
	HK_LSEG,
	HK_BOX,
	HK_LINE,
	HK_CIRCLE,
	HK_PATH,
	HK_POLYGON,
	HK_ARRAY,
	HK_RECORD,					/* composite types, named or anonymous */
	HK_RANGE,
	HK_MULTIRANGE,
	HK_OUTPUT					/* no rule: the output function's text */
} HashKind;

/* How value_word computes a word: the common cases inline, the rest apart. */
typedef enum WordOp
{
	W_INT2,
	W_INT4,
	W_INT8,						/* and 8-byte by-value fixed types */
	W_U8,
	W_U32,
	W_FLOAT4,
	W_FLOAT8,
	W_TEXT,						/* varlena characters, as UTF-8 */
	W_BYTES,					/* varlena bytes */
	W_NUMERIC,
	W_OTHER						/* everything else: other_word */
} WordOp;

/*
 * How the values of one type become words.  Arrays, ranges, multiranges
 * and composites hold the ColHash of their elements, bounds or fields.
 */
typedef struct ColHash ColHash;
struct ColHash
{
	WordOp		op;
	HashKind	kind;
	Oid			typid;			/* after domains */
	int32		typmod;
	int16		typlen;
	bool		typbyval;
	char		typalign;
	ColHash    *elem;			/* arrays: element; ranges, multiranges: bound */
	TypeCacheEntry *tc;			/* ranges (range info), multiranges (its range's) */
	/* composites: the fields of (rectype, rectypmod), looked up when first seen */
	Oid			rectype;
	int32		rectypmod;
	TupleDesc	desc;
	ColHash    *fields;			/* per attribute of desc (dropped ones unused) */
	FmgrInfo	out;			/* HK_OUTPUT */
	MemoryContext cxt;			/* where the nested parts live */
};

/*
 * Per-call state of canonicalization: one byte buffer per nesting level
 * (an array of composites of jsonb uses three).
 */
typedef struct Canon
{
	Buf		  **bufs;
	int			nbufs;
	int			depth;
	MemoryContext cxt;
} Canon;

/* The word of a NULL (the row's NULL bitmap tells it from a value). */
#define NULL_WORD		UINT64CONST(0x6e756c6c2d2d6e75)

/* checksum_type.c */
extern void colhash_init(ColHash *c, Oid typid, int32 typmod, MemoryContext cxt);
extern void record_setup(ColHash *c, Oid typid, int32 typmod);
extern char *colhash_class(ColHash *c);

/* checksum_canon.c */
extern bool canon_convert_text;
extern void canon_init(Canon *cn);
extern uint64 text_word_bytes(const char *p, int len);
extern uint64 numeric_word_slow(const char *p, int len);
extern uint64 other_word(Canon *cn, ColHash *c, Datum d);
extern int	canon_pin_settings(void);
extern void canon_pin_search_path(void);

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

/* The word of a varlena's characters (text, varchar, json, xml). */
static inline uint64
text_word(Datum d)
{
	struct varlena *v = (struct varlena *) DatumGetPointer(d);

	if (VARATT_IS_EXTERNAL(v) || VARATT_IS_COMPRESSED(v))
		v = pg_detoast_datum_packed(v);
	if (likely(!canon_convert_text))
		return XXH3_64bits(VARDATA_ANY(v), VARSIZE_ANY_EXHDR(v));
	return text_word_bytes(VARDATA_ANY(v), VARSIZE_ANY_EXHDR(v));
}

/* The word of a varlena's bytes (bytea). */
static inline uint64
bytes_word(Datum d)
{
	struct varlena *v = (struct varlena *) DatumGetPointer(d);

	if (VARATT_IS_EXTERNAL(v) || VARATT_IS_COMPRESSED(v))
		v = pg_detoast_datum_packed(v);
	return XXH3_64bits(VARDATA_ANY(v), VARSIZE_ANY_EXHDR(v));
}

static inline int16
digit_at(const char *digits, int i)
{
	int16		d;

	memcpy(&d, digits + 2 * i, sizeof(d));
	return d;
}

/*
 * The word of a numeric from its data (after the varlena header, at any
 * alignment), the common case here: the short form with one to three
 * digits, none of them a leading or trailing zero (PostgreSQL stores none),
 * packed straight from the header (its weight, -64..63, always fits the
 * packed form).  numeric_word_slow (checksum_canon.c) does the rest, and
 * defines the word.
 */
static inline uint64
numeric_word_data(const char *p, int len)
{
	uint16		hdr;

	memcpy(&hdr, p, sizeof(hdr));
	if ((hdr & 0xC000) == 0x8000 && len >= 4 && len <= 8)
	{
		int			n = (len - 2) / 2;

		if (digit_at(p + 2, 0) != 0 && digit_at(p + 2, n - 1) != 0)
		{
			int			weight = (hdr & 0x0040) ?
				(int) (~0x003F | (hdr & 0x003F)) : (int) (hdr & 0x003F);
			uint64		w = (UINT64CONST(1) << 63) |
				((uint64) ((hdr & 0x2000) != 0) << 62) |
				((uint64) n << 60) | ((uint64) (uint8) (int8) weight << 52);
			int			i;

			for (i = 0; i < n; i++)
				w |= (uint64) (uint16) digit_at(p + 2, i) << (14 * i);
			return w;
		}
	}
	return numeric_word_slow(p, len);
}

/* The word of a numeric datum. */
static inline uint64
numeric_word(Datum d)
{
	struct varlena *v = (struct varlena *) DatumGetPointer(d);

	if (VARATT_IS_EXTERNAL(v) || VARATT_IS_COMPRESSED(v))
		v = pg_detoast_datum_packed(v);
	return numeric_word_data(VARDATA_ANY(v), VARSIZE_ANY_EXHDR(v));
}

/*
 * The 64-bit word standing for one non-NULL value: values of at most 8
 * bytes are their own canonical bits (an injective code, no hashing
 * needed), longer ones the XXH3-64 hash of their canonical bytes.
 * Anything detoasted or built is allocated in the caller's per-row context.
 */
static pg_attribute_always_inline uint64
value_word(Canon *cn, ColHash *c, Datum d)
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
		case W_TEXT:
			return text_word(d);
		case W_BYTES:
			return bytes_word(d);
		case W_NUMERIC:
			return numeric_word(d);
		case W_OTHER:
			break;
	}
	return other_word(cn, c, d);
}

/* ---------------------------------------------------------------- what to hash */

/* One column or key expression: how the user named it and what it is. */
typedef struct Column
{
	char	   *label;			/* as given */
	char	   *sql;			/* a quoted name, or the expression on lines of its own */
	AttrNumber	attnum;			/* what it resolves to: a column, or 0 */
	Node	   *expr;			/* the analyzed expression */
	Oid			typid;
	int32		typmod;
	bool		notnull;		/* a column declared NOT NULL */
} Column;

/* One side of a checksum: a relation, its columns and its key. */
typedef struct Side
{
	const char *what;			/* "source", "target", or "table" */
	Oid			relid;
	char		relkind;
	char	   *relname;		/* qualified, quoted */
	List	   *columns;		/* of Column * */
	List	   *key;			/* of Column *; NIL: the whole row is the key */
	bool		key_is_pk;
	bool		has_exprs;		/* some column or key is the caller's SQL */
	/* what a scan returns: the columns, then the key columns not among them */
	List	   *output;			/* of Column * */
	int			keypos[INDEX_MAX_KEYS];	/* key k's position in output */
} Side;

extern void side_init(Side *side, const char *what, Oid relid, ArrayType *columns,
					  ArrayType *key, bool key_defaults_to_pk);
extern void side_default_target(Side *tgt, Side *src, bool columns, bool key);
extern void side_finish(Side *side);
extern char *side_target_list(Side *side);
extern List *text_array_list(ArrayType *arr);
extern void append_key_list(StringInfo s, Side *side);

/* A key column's btree operators, each as OPERATOR(schema.name). */
typedef struct KeyOps
{
	bool		found;
	char	   *schema;			/* quoted */
	char	   *ops[BTMaxStrategyNumber + 1];	/* by strategy */
	char	   *names[BTMaxStrategyNumber + 1];
} KeyOps;

extern KeyOps *key_ops(Side *side);
extern void require_key_ops(Side *side, KeyOps *ops);
extern void append_key_bound(StringInfo s, Side *side, KeyOps *ops, bool greater, int param);

/* ---------------------------------------------------------------- row hashes */

typedef struct Acc
{
	uint64		rows;
	uint64		lo;
	uint64		hi;
} Acc;

/* A row kept for the drill-down: its key, its hashes, its column words. */
typedef struct RowEntry
{
	XXH128_hash_t key;
	XXH128_hash_t row;
	uint32		bucket;
	int			side;
	Datum		keytext;		/* text[] of the key's output, in collect_cxt */
	uint64	   *colhash;		/* NULL unless asked for */
	bits8	   *colnull;		/* which of them are NULL */
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
	int			col;			/* the output column it is, or -1 */
} PhysAtt;

typedef struct HashReceiver
{
	DestReceiver pub;
	ReceiverMode mode;
	int			ncols;			/* leading columns hashed as the row */
	int			nkeys;			/* 0: the row is its own key */
	int			keypos[INDEX_MAX_KEYS];
	int			natts;			/* output columns */
	int		   *map;			/* output column -> slot column */
	int			maxatt;			/* slot columns to deform */
	PhysAtt    *phys;			/* per table column, for tuple_words; or NULL */
	ColHash    *ch;
	uint64	   *hashes;			/* the row's column words */
	bool	   *isnull;
	Buf			buf;			/* the row hash's input */
	Buf			kbuf;			/* the key hash's input */
	Canon		canon;
	MemoryContext row_cxt;		/* reset per row */
	MemoryContext keep_cxt;		/* what outlives a row */

	/* RM_TOTAL and RM_RANGE */
	Acc			total;
	/* RM_BUCKETS and RM_ROWS */
	int			bits;
	Acc		   *accs;
	const uint8 *only;			/* bitmap of wanted buckets, or NULL for all */
	/* RM_ROWS: only rows whose key hash is one of these (sorted), when set */
	XXH128_hash_t *want_keys;
	int			nwant_keys;
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
	/* RM_BUCKETS: every summed row also written here (spool_rows), when set */
	struct BufFile *spool;
	int64		spooled;
} HashReceiver;

/* A range of heap pages: [lo, hi), hi = InvalidBlockNumber for no end. */
typedef struct PageRange
{
	bool		given;
	bool		empty;
	BlockNumber lo;
	BlockNumber hi;
} PageRange;

/* Seeds the key hash, so a keyless table's key hash differs from its row hash. */
#define KEY_SEED		UINT64CONST(0x7067736869667421)
#define MAX_BUCKET_BITS	24

extern HashReceiver *receiver_create(ReceiverMode mode, Side *side);
extern void set_buckets(HashReceiver *r, int bits, const uint8 *only);
extern void scan_into(Side *side, HashReceiver *r, PageRange pr);
extern void spool_rows(HashReceiver *r);
extern HashReceiver *spooled_rows(HashReceiver *spooled, Side *side, const uint8 *only,
								  int sideno, bool colhash);
extern void run_into(SPIPlanPtr plan, ParamListInfo params, HashReceiver *r);
extern SPIPlanPtr prepare_plan(const char *sql, int nargs, Oid *argtypes);
extern PageRange page_range(Datum range, bool isnull);
extern XXH128_hash_t key_hash_of(HashReceiver *r, const Datum *values, const bool *nulls);
extern char *hex128(uint64 hi, uint64 lo);
extern HashReceiver *collect_rows(Side *side, int bits, const uint8 *only, int sideno,
								  bool colhash);

/* checksum.c */
extern int	bucket_bits(int32 buckets);
extern uint8 *only_bitmap(ArrayType *only, int bits);
extern void open_spi(void);

static inline int
cmp_hash(XXH128_hash_t a, XXH128_hash_t b)
{
	if (a.high64 != b.high64)
		return a.high64 < b.high64 ? -1 : 1;
	if (a.low64 != b.low64)
		return a.low64 < b.low64 ? -1 : 1;
	return 0;
}

static inline uint32
bucket_of(int bits, XXH128_hash_t key)
{
	return bits == 0 ? 0 : (uint32) (key.high64 >> (64 - bits));
}

#endif							/* SHIFT_CHECKSUM_H */
