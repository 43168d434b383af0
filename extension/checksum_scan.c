/*-------------------------------------------------------------------------
 *
 * checksum_scan.c
 *	  Row hashes, and reading a relation into them.
 *
 * A row hash is XXH3-128 of its columns' words (checksum_canon.c) in
 * order and their NULL bitmap, followed, when the checksum has a key, by
 * the key columns' words and their NULL bitmap: every keyed row binds its
 * values to its key, however the column lists are spelled.  The key hash
 * is XXH3-128 of the key's words and bitmap, seeded apart; a keyless row
 * is its own key.  A HashReceiver sums rows into one total, into key-hash
 * buckets, or keeps them (the drill-down).
 *
 * Plain columns of heap tables, partitioned tables, inheritance parents and
 * materialized views are read straight from the pages of every heap that
 * SELECT would read (the relation and all its inheritors), in the active
 * snapshot, after the same privilege check the executor makes on the named
 * relation.  Anything else (expressions, views, foreign tables, another
 * table AM) runs as a query through SPI with a DestReceiver that hashes
 * each slot as it comes, read-only in the caller's snapshot.  Both give the
 * same hashes for the same rows.  Only AccessShareLock is taken.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/buffile.h"
#include "storage/bufmgr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rangetypes.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "checksum.h"

/* ---------------------------------------------------------------- the receiver */

static bool recv_slot(TupleTableSlot *slot, DestReceiver *self);

static void
recv_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
	HashReceiver *r = (HashReceiver *) self;
	int			i;

	/* the query is the side's output list: the same columns, the same types */
	if (typeinfo->natts != r->natts)
		elog(ERROR, "checksum query returned %d columns, not %d", typeinfo->natts, r->natts);
	for (i = 0; i < r->natts; i++)
		if (getBaseType(TupleDescAttr(typeinfo, i)->atttypid) != r->ch[i].typid)
			elog(ERROR, "checksum query column %d is of type %s, not %s", i + 1,
				 format_type_be(TupleDescAttr(typeinfo, i)->atttypid),
				 format_type_be(r->ch[i].typid));
	for (i = 0; i < r->natts; i++)
		r->map[i] = i;
	r->maxatt = r->natts;
}

static void
recv_shutdown(DestReceiver *self)
{
}

static void
recv_destroy(DestReceiver *self)
{
}

/*
 * A receiver for the rows of side in the given mode: the columns' words
 * are set up from the side's output list (its columns, then the key
 * columns not among them).
 */
HashReceiver *
receiver_create(ReceiverMode mode, Side *side)
{
	HashReceiver *r = palloc0(sizeof(HashReceiver));
	ListCell   *lc;
	int			i = 0;

	r->pub.receiveSlot = recv_slot;
	r->pub.rStartup = recv_startup;
	r->pub.rShutdown = recv_shutdown;
	r->pub.rDestroy = recv_destroy;
	r->pub.mydest = DestTuplestore;		/* like plpgsql's RETURN QUERY receiver */
	r->mode = mode;
	r->ncols = list_length(side->columns);
	r->nkeys = list_length(side->key);
	memcpy(r->keypos, side->keypos, sizeof(int) * r->nkeys);
	r->keep_cxt = CurrentMemoryContext;
	r->row_cxt = AllocSetContextCreate(CurrentMemoryContext, "shift checksum row",
									   ALLOCSET_DEFAULT_SIZES);
	buf_init(&r->buf);
	buf_init(&r->kbuf);
	canon_init(&r->canon);
	r->natts = list_length(side->output);
	r->ch = palloc0(sizeof(ColHash) * r->natts);
	r->map = palloc(sizeof(int) * r->natts);
	r->hashes = palloc(sizeof(uint64) * r->natts);
	r->isnull = palloc(sizeof(bool) * r->natts);
	foreach(lc, side->output)
	{
		Column	   *col = lfirst(lc);

		colhash_init(&r->ch[i], col->typid, col->typmod, r->keep_cxt);
		r->map[i] = i;
		i++;
	}
	r->maxatt = r->natts;
	if (mode == RM_RANGE)
	{
		r->last_cxt = AllocSetContextCreate(CurrentMemoryContext, "shift checksum key",
											ALLOCSET_SMALL_SIZES);
		r->last = palloc0(sizeof(Datum) * Max(r->nkeys, 1));
		r->last_null = palloc0(sizeof(bool) * Max(r->nkeys, 1));
	}
	if (mode == RM_ROWS)
		r->collect_cxt = AllocSetContextCreate(CurrentMemoryContext, "shift checksum rows",
											   ALLOCSET_DEFAULT_SIZES);
	return r;
}

void
set_buckets(HashReceiver *r, int bits, const uint8 *only)
{
	r->bits = bits;
	r->only = only;
	if (r->mode == RM_BUCKETS)
	{
		r->accs = MemoryContextAllocHuge(r->keep_cxt, sizeof(Acc) * ((Size) 1 << bits));
		memset(r->accs, 0, sizeof(Acc) * ((Size) 1 << bits));
	}
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

		nulls[i] = nulls_in[att];
		if (!nulls[i])
		{
			Oid			out;
			bool		isvarlena;

			getTypeOutputInfo(r->ch[col].typid, &out, &isvarlena);
			vals[i] = CStringGetTextDatum(OidOutputFunctionCall(out, values[att]));
		}
	}
	return PointerGetDatum(construct_md_array(vals, nulls, 1, dims, lbs, TEXTOID, -1, false,
											  TYPALIGN_INT));
}

/* The words of every output column (NULL_WORD for NULL) into r->hashes and r->isnull. */
static inline void
value_words(HashReceiver *r, const Datum *values, const bool *nulls)
{
	int			i;

	for (i = 0; i < r->natts; i++)
	{
		int			att = r->map[i];

		r->isnull[i] = nulls[att];
		r->hashes[i] = r->isnull[i] ? NULL_WORD : value_word(&r->canon, &r->ch[i], values[att]);
	}
}

/*
 * Stores output column col's word: straight into the row buffer (words at
 * p, NULL bitmap at bits, cleared by the caller) when direct, else into
 * r->hashes and r->isnull.
 */
static pg_attribute_always_inline void
set_word(HashReceiver *r, bool direct, int col, uint64 w, bool null, char *p, char *bits)
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
		r->hashes[col] = w;
		r->isnull[col] = null;
	}
}

/*
 * The same read straight from a heap tuple, for every output column (as
 * heap_deform_tuple walks it, without its arrays): the whole-table scans
 * spend most of their time here.  r->phys says which table column is which
 * output column.  direct (every output column is a row column) writes the
 * row buffer itself, saving a copy.
 */
static pg_attribute_always_inline void
tuple_words(HashReceiver *r, HeapTuple tuple, TupleDesc desc, bool direct, char *p, char *bits)
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
				set_word(r, direct, a->col, NULL_WORD, true, p, bits);
			continue;
		}
		if (a->len == -1)
			off = att_align_pointer(off, a->align, -1, tp + off);
		else
			off = att_align_nominal(off, a->align);
		if (a->col >= 0)
			set_word(r, direct, a->col,
					 value_word(&r->canon, &r->ch[a->col],
								fetch_att(tp + off, a->byval, a->len)),
					 false, p, bits);
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

			set_word(r, direct, col, null ? NULL_WORD : value_word(&r->canon, &r->ch[col], d),
					 null, p, bits);
		}
	}
}

/* Appends n words (little-endian) and their NULL bitmap to b. */
static inline void
put_words(Buf *b, const uint64 *h, const bool *isnull, const int *pos, int n)
{
	int			nbytes = (n + 7) / 8;
	char	   *p;
	char	   *bits;
	int			i;

	buf_reserve(b, 8 * n + nbytes);
	p = b->data + b->len;
	bits = p + 8 * n;
	memset(bits, 0, nbytes);
	for (i = 0; i < n; i++)
	{
		int			col = pos ? pos[i] : i;
		uint64		le = LE64(h[col]);

		if (isnull[col])
			bits[i >> 3] |= (char) (1 << (i & 7));
		memcpy(p + 8 * i, &le, 8);
	}
	b->len += 8 * n + nbytes;
}

/* A new RowEntry at the end of r->rows, in collect_cxt (which is current). */
static RowEntry *
push_entry(HashReceiver *r)
{
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
	return &r->rows[r->nrows++];
}

/* The column words and NULL bitmap of the current row, when they are wanted. */
static void
entry_columns(HashReceiver *r, RowEntry *e)
{
	int			i;

	e->colhash = NULL;
	e->colnull = NULL;
	if (!r->want_colhash)
		return;
	e->colhash = palloc(sizeof(uint64) * Max(r->ncols, 1));
	memcpy(e->colhash, r->hashes, sizeof(uint64) * r->ncols);
	e->colnull = palloc0((r->ncols + 7) / 8);
	for (i = 0; i < r->ncols; i++)
		if (r->isnull[i])
			e->colnull[i >> 3] |= (bits8) (1 << (i & 7));
}

/* RM_ROWS: keeps the current row for the drill-down. */
static void
keep_entry(HashReceiver *r, XXH128_hash_t key, XXH128_hash_t row, uint32 bucket,
		   const Datum *values, const bool *nulls)
{
	RowEntry   *e;

	MemoryContextSwitchTo(r->collect_cxt);
	e = push_entry(r);
	e->key = key;
	e->row = row;
	e->bucket = bucket;
	e->side = r->side;
	e->keytext = key_text(r, values, nulls);
	entry_columns(r, e);
}

/*
 * The spool: what RM_ROWS would keep of every row, written to a temporary
 * file while the buckets are summed, so that a side costly to read again
 * (a foreign table: every row crosses the wire) is read once.  A record is
 * the bucket, the key and row hashes, the key's text[] (its length, then its
 * varlena), then
 * the column words and NULL bitmap.  Memory stays a buffer; the file goes
 * with the transaction's temporary files.
 */
static void
spool_entry(HashReceiver *r, XXH128_hash_t key, XXH128_hash_t row, uint32 bucket,
			const Datum *values, const bool *nulls)
{
	struct varlena *kt = (struct varlena *) DatumGetPointer(key_text(r, values, nulls));
	uint32		ktlen = VARSIZE(kt);

	BufFileWrite(r->spool, &bucket, sizeof(bucket));
	BufFileWrite(r->spool, &key, sizeof(key));
	BufFileWrite(r->spool, &row, sizeof(row));
	BufFileWrite(r->spool, &ktlen, sizeof(ktlen));
	BufFileWrite(r->spool, kt, ktlen);
	BufFileWrite(r->spool, r->hashes, sizeof(uint64) * r->ncols);
	BufFileWrite(r->spool, r->isnull, sizeof(bool) * r->ncols);
	r->spooled++;
}

/* Spool the rows of an RM_BUCKETS receiver as it sums them (see spool_entry). */
void
spool_rows(HashReceiver *r)
{
	Assert(r->mode == RM_BUCKETS);
	r->spool = BufFileCreateTemp(false);
}

static void
spool_read(BufFile *f, void *p, size_t n)
{
	if (BufFileRead(f, p, n) != n)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read the compare's temporary file")));
}

/*
 * The spooled rows of the buckets in only (all when NULL), as collect_rows
 * would have kept them, without reading the side again.
 */
HashReceiver *
spooled_rows(HashReceiver *spooled, Side *side, const uint8 *only, int sideno, bool colhash)
{
	HashReceiver *r = receiver_create(RM_ROWS, side);
	MemoryContext old;
	int64		n;

	set_buckets(r, spooled->bits, only);
	r->side = sideno;
	r->want_colhash = colhash;
	if (BufFileSeek(spooled->spool, 0, 0, SEEK_SET) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not rewind the compare's temporary file")));
	old = MemoryContextSwitchTo(r->collect_cxt);
	for (n = 0; n < spooled->spooled; n++)
	{
		uint32		bucket;
		XXH128_hash_t key;
		XXH128_hash_t row;
		uint32		ktlen;
		struct varlena *kt;

		CHECK_FOR_INTERRUPTS();
		spool_read(spooled->spool, &bucket, sizeof(bucket));
		spool_read(spooled->spool, &key, sizeof(key));
		spool_read(spooled->spool, &row, sizeof(row));
		spool_read(spooled->spool, &ktlen, sizeof(ktlen));
		kt = palloc(ktlen);
		spool_read(spooled->spool, kt, ktlen);
		spool_read(spooled->spool, r->hashes, sizeof(uint64) * r->ncols);
		spool_read(spooled->spool, r->isnull, sizeof(bool) * r->ncols);
		if (only != NULL && !(only[bucket >> 3] & (1 << (bucket & 7))))
		{
			pfree(kt);
			continue;
		}
		{
			RowEntry   *e = push_entry(r);

			e->key = key;
			e->row = row;
			e->bucket = bucket;
			e->side = sideno;
			e->keytext = PointerGetDatum(kt);
			entry_columns(r, e);
		}
	}
	MemoryContextSwitchTo(old);
	BufFileClose(spooled->spool);
	spooled->spool = NULL;
	return r;
}

/*
 * The hashes of one row (see the file header).  The values come from
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
	uint32		bucket = 0;
	int			i;

	CHECK_FOR_INTERRUPTS();
	old = MemoryContextSwitchTo(r->row_cxt);

	r->buf.len = 0;
	if (tuple && r->natts == r->ncols)
	{
		int			n = r->ncols;
		int			nbytes = (n + 7) / 8;
		char	   *bits;

		buf_reserve(&r->buf, 8 * n + nbytes);
		bits = r->buf.data + 8 * n;
		memset(bits, 0, nbytes);
		tuple_words(r, tuple, desc, true, r->buf.data, bits);
		r->buf.len = 8 * n + nbytes;
		if (r->nkeys > 0)
		{
			/* the key part: the key's words and bitmap, copied from the row's */
			int			kbytes = (r->nkeys + 7) / 8;
			char	   *kp;
			char	   *kbits;

			buf_reserve(&r->buf, 8 * r->nkeys + kbytes);
			bits = r->buf.data + 8 * n;
			kp = r->buf.data + r->buf.len;
			kbits = kp + 8 * r->nkeys;
			memset(kbits, 0, kbytes);
			for (i = 0; i < r->nkeys; i++)
			{
				int			col = r->keypos[i];

				memcpy(kp + 8 * i, r->buf.data + 8 * col, 8);
				if (bits[col >> 3] & (1 << (col & 7)))
					kbits[i >> 3] |= (char) (1 << (i & 7));
			}
			r->buf.len += 8 * r->nkeys + kbytes;
		}
	}
	else
	{
		if (tuple)
			tuple_words(r, tuple, desc, false, NULL, NULL);
		else
			value_words(r, values, nulls);
		put_words(&r->buf, r->hashes, r->isnull, NULL, r->ncols);
		if (r->nkeys > 0)
			put_words(&r->buf, r->hashes, r->isnull, r->keypos, r->nkeys);
	}

	/*
	 * The row hash's input is the row's words and bitmap, then the key's
	 * (key_hash_of's input, which is the key hash's); keyless, the row is
	 * its own key.
	 */
	if (want_key)
	{
		int			keystart = r->nkeys > 0 ? 8 * r->ncols + (r->ncols + 7) / 8 : 0;

		key = XXH3_128bits_withSeed(r->buf.data + keystart, r->buf.len - keystart, KEY_SEED);
	}
	bucket = bucket_of(r->bits, key);
	row = XXH3_128bits(r->buf.data, r->buf.len);

	switch (r->mode)
	{
		case RM_TOTAL:
			acc_add(&r->total, row);
			break;
		case RM_BUCKETS:
			if (r->only == NULL || (r->only[bucket >> 3] & (1 << (bucket & 7))))
			{
				acc_add(&r->accs[bucket], row);
				if (r->spool)
				{
					if (values == NULL)
						elog(ERROR, "a spooled side must be read through the executor");
					spool_entry(r, key, row, bucket, values, nulls);
				}
			}
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
			if (r->only != NULL && !(r->only[bucket >> 3] & (1 << (bucket & 7))))
				break;
			if (r->want_keys != NULL)
			{
				int			lo = 0;
				int			hi = r->nwant_keys;

				while (lo < hi)
				{
					int			mid = (lo + hi) / 2;

					if (cmp_hash(r->want_keys[mid], key) < 0)
						lo = mid + 1;
					else
						hi = mid;
				}
				if (lo == r->nwant_keys || cmp_hash(r->want_keys[lo], key) != 0)
					break;
			}
			keep_entry(r, key, row, bucket, values, nulls);
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

/*
 * The key hash of a key's values (the whole row's, keyless), as hash_row
 * computes it: for looking rows up by key hash.
 */
XXH128_hash_t
key_hash_of(HashReceiver *r, const Datum *values, const bool *nulls)
{
	int			n = r->nkeys ? r->nkeys : r->ncols;
	int			i;
	XXH128_hash_t key;

	for (i = 0; i < n; i++)
	{
		int			col = r->nkeys ? r->keypos[i] : i;

		r->isnull[col] = nulls[i];
		r->hashes[col] = nulls[i] ? NULL_WORD : value_word(&r->canon, &r->ch[col], values[i]);
	}
	r->kbuf.len = 0;
	put_words(&r->kbuf, r->hashes, r->isnull, r->nkeys ? r->keypos : NULL, n);
	key = XXH3_128bits_withSeed(r->kbuf.data, r->kbuf.len, KEY_SEED);
	return key;
}

/* ---------------------------------------------------------------- queries */

SPIPlanPtr
prepare_plan(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql,
			 SPI_result_code_string(SPI_result));
	return plan;
}

/* Runs plan read-only in the caller's snapshot, every row into r. */
void
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

PageRange
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

/*
 * "ctid >= '(lo,0)' AND ctid < '(hi,0)'" for a page range (every
 * operator qualified), or NULL.  On a parent it applies to each child.
 */
static char *
pages_condition(PageRange pr)
{
	StringInfoData s;

	if (!pr.given)
		return NULL;
	if (pr.empty)
		return "false";
	initStringInfo(&s);
	appendStringInfo(&s, "ctid OPERATOR(pg_catalog.>=) '(%u,0)'::pg_catalog.tid", pr.lo);
	if (pr.hi != InvalidBlockNumber)
		appendStringInfo(&s, " AND ctid OPERATOR(pg_catalog.<) '(%u,0)'::pg_catalog.tid", pr.hi);
	return s.data;
}

/* ---------------------------------------------------------------- the page reader */

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

/* Reads one heap (a pages range of it, if given) into r, r->map set for it. */
static void
heap_one_into(HashReceiver *r, Relation rel, PageRange pr)
{
	BlockNumber nblocks = RelationGetNumberOfBlocks(rel);
	TupleDesc	desc = RelationGetDescr(rel);
	BlockNumber lo = pr.given ? Min(pr.lo, nblocks) : 0;
	BlockNumber hi = pr.given ? Min(pr.hi, nblocks) : nblocks;
	bool		fused = phys_setup(r, desc);
	TableScanDesc scan;

	/*
	 * A page range starts where it says; a whole table read tuple by tuple
	 * may join a running scan (the page loop reads in block order).
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
		TupleTableSlot *slot = table_slot_create(rel, NULL);

		while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
			recv_slot(slot, (DestReceiver *) r);
		ExecDropSingleTupleTableSlot(slot);
	}
	table_endscan(scan);
}

/*
 * Reads the side straight from its heaps when it can: only columns (no
 * expressions) of a table, partitioned table, inheritance parent or
 * materialized view whose heaps (the relation's and those of all its
 * inheritors, as SELECT reads them) all use the heap AM, and a role that
 * may read those columns.  That skips the executor's per-row work, which
 * was a third of the time.  Returns false (having read nothing) otherwise;
 * the caller then runs the query, which also gives the executor's own
 * permission error.
 */
static bool
heap_scan_into(Side *side, HashReceiver *r, PageRange pr)
{
	Relation	rel;
	List	   *members;
	List	   *rels = NIL;
	bool		readable;
	ListCell   *lc;

	if (side->relkind != RELKIND_RELATION && side->relkind != RELKIND_MATVIEW &&
		side->relkind != RELKIND_PARTITIONED_TABLE)
		return false;
	rel = table_open(side->relid, AccessShareLock);
	readable = pg_class_aclcheck(side->relid, GetUserId(), ACL_SELECT) == ACLCHECK_OK;
	foreach(lc, side->output)
	{
		Column	   *col = lfirst(lc);

		if (col->attnum <= 0 ||
			(!readable &&
			 pg_attribute_aclcheck(side->relid, col->attnum, GetUserId(), ACL_SELECT) != ACLCHECK_OK))
		{
			table_close(rel, AccessShareLock);
			return false;
		}
	}

	/* every heap SELECT would read, locked as the executor locks them */
	if (rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE || rel->rd_rel->relhassubclass)
		members = find_all_inheritors(side->relid, AccessShareLock, NULL);
	else
		members = list_make1_oid(side->relid);
	foreach(lc, members)
	{
		Relation	m = lfirst_oid(lc) == side->relid ? rel : table_open(lfirst_oid(lc), NoLock);

		if (m->rd_rel->relkind == RELKIND_PARTITIONED_TABLE)
		{
			if (m != rel)
				table_close(m, NoLock);
			continue;
		}
		rels = lappend(rels, m);
		if ((m->rd_rel->relkind != RELKIND_RELATION && m->rd_rel->relkind != RELKIND_MATVIEW) ||
			m->rd_rel->relam != HEAP_TABLE_AM_OID)
		{
			/* a foreign table or another AM among them: the executor reads it all */
			ListCell   *lc2;

			foreach(lc2, rels)
				if (lfirst(lc2) != rel)
					table_close(lfirst(lc2), NoLock);
			table_close(rel, AccessShareLock);
			return false;
		}
	}

	foreach(lc, rels)
	{
		Relation	m = lfirst(lc);
		TupleDesc	mdesc = RelationGetDescr(m);
		ListCell   *lc2;
		int			i = 0;

		/* output column i is the member's column of the same name */
		r->maxatt = 0;
		foreach(lc2, side->output)
		{
			Column	   *col = lfirst(lc2);
			AttrNumber	attnum = col->attnum;

			if (m != rel)
			{
				const char *name = NameStr(TupleDescAttr(RelationGetDescr(rel), attnum - 1)->attname);
				int			a;

				attnum = InvalidAttrNumber;
				for (a = 0; a < mdesc->natts; a++)
					if (!TupleDescAttr(mdesc, a)->attisdropped &&
						strcmp(NameStr(TupleDescAttr(mdesc, a)->attname), name) == 0)
						attnum = a + 1;
				if (attnum == InvalidAttrNumber)
					elog(ERROR, "column \"%s\" not found in \"%s\"", name,
						 RelationGetRelationName(m));
			}
			r->map[i] = attnum - 1;
			r->maxatt = Max(r->maxatt, attnum);
			i++;
		}
		if (!pr.empty)
			heap_one_into(r, m, pr);
		if (m != rel)
			table_close(m, NoLock);
	}
	table_close(rel, NoLock);
	return true;
}

/* Reads the side (in a page range, if given) into r. */
void
scan_into(Side *side, HashReceiver *r, PageRange pr)
{
	char	   *where;

	if (pr.given && side->relkind != RELKIND_RELATION && side->relkind != RELKIND_MATVIEW &&
		side->relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("%s \"%s\" has no pages", side->what, get_rel_name(side->relid)),
				 errdetail("Only tables and materialized views are stored in pages; views and foreign tables are read whole."),
				 errhint("Leave pages out.")));
	if (heap_scan_into(side, r, pr))
		return;
	where = pages_condition(pr);
	run_into(prepare_plan(psprintf("SELECT %s FROM %s%s%s", side_target_list(side), side->relname,
								   where ? " WHERE " : "", where ? where : ""), 0, NULL),
			 NULL, r);
}

char *
hex128(uint64 hi, uint64 lo)
{
	return psprintf("%016llx%016llx", (unsigned long long) hi, (unsigned long long) lo);
}

/* Collects the rows of the wanted buckets of one side (every bucket: only NULL). */
HashReceiver *
collect_rows(Side *side, int bits, const uint8 *only, int sideno, bool colhash)
{
	HashReceiver *r = receiver_create(RM_ROWS, side);

	set_buckets(r, bits, only);
	r->side = sideno;
	r->want_colhash = colhash;
	scan_into(side, r, page_range(0, true));
	return r;
}
