/*-------------------------------------------------------------------------
 *
 * sqlfuzz_input.c
 *	  The SQL fuzzer's inputs (sqlfuzz.c runs them): the corpus of real SQL
 *	  read from the files given, split into statements and fragments; the
 *	  mutations (truncations, token deletions, duplications, swaps and
 *	  splices, random bytes, quotes and comments, deep nesting, huge
 *	  repetitions, glued statements); and the targets, the calls of
 *	  pg_shift an input is given to.  Input i depends only on the seed and
 *	  i (splitmix64), so any input can be regenerated alone.
 *
 *-------------------------------------------------------------------------
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqlfuzz.h"

/* ---------------------------------------------------------------- random numbers */

/* splitmix64: one state per input, derived from the seed and its number */
typedef struct Rng
{
	uint64_t	s;
} Rng;

static uint64_t
rng_next(Rng *r)
{
	uint64_t	z = (r->s += UINT64_C(0x9E3779B97F4A7C15));

	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

static size_t
rng_below(Rng *r, size_t n)
{
	return n ? (size_t) (rng_next(r) % n) : 0;
}

static int
rng_chance(Rng *r, int percent)
{
	return (int) rng_below(r, 100) < percent;
}

/* ---------------------------------------------------------------- corpus */

Corpus		statements;		/* whole statements or scripts */
Corpus		fragments;		/* expressions, conditions, lists */

static void
corpus_add(Corpus *c, const char *s, size_t n)
{
	while (n > 0 && isspace((unsigned char) *s))
		s++, n--;
	while (n > 0 && isspace((unsigned char) s[n - 1]))
		n--;
	if (n < 3)
		return;
	if (c->n == c->cap)
	{
		c->cap = c->cap ? c->cap * 2 : 256;
		c->items = realloc(c->items, c->cap * sizeof(char *));
		if (c->items == NULL)
			die("out of memory");
	}
	c->items[c->n++] = xstrndup(s, n);
}

static int
looks_like_sql(const char *s, size_t n)
{
	static const char *const words[] = {
		"SELECT", "ALTER", "CREATE", "DROP", "UPDATE", "INSERT", "DELETE",
		"VACUUM", "LOCK", "TRUNCATE", "REINDEX", "CLUSTER", "REFRESH", "BEGIN",
		"COMMIT", "SET ", "WITH", "RESET", NULL
	};
	int			i;

	for (i = 0; words[i]; i++)
		if (memmem(s, n, words[i], strlen(words[i])) != NULL)
			return 1;
	return 0;
}

/* Does it look like a fragment: an assignment, a condition or a list? */
static int
looks_like_fragment(const char *s, size_t n)
{
	return n < 400 && !looks_like_sql(s, n) &&
		(memchr(s, '=', n) || memchr(s, '(', n) || memchr(s, ',', n));
}

/* Splits a .sql file into statements (at a ';' that ends a line). */
static void
load_sql(const char *text, size_t len)
{
	size_t		start = 0;
	size_t		i;

	for (i = 0; i < len; i++)
		if (text[i] == ';' && (i + 1 == len || text[i + 1] == '\n'))
		{
			/* drop whole-line -- comments and psql's \ commands at the start */
			size_t		s = start;

			while (s < i)
			{
				while (s < i && isspace((unsigned char) text[s]))
					s++;
				if ((s + 1 < i && text[s] == '-' && text[s + 1] == '-') || text[s] == '\\')
				{
					while (s < i && text[s] != '\n')
						s++;
				}
				else
					break;
			}
			corpus_add(&statements, text + s, i + 1 - s);
			start = i + 1;
		}
}

/*
 * Takes the string literals out of a Lua or Markdown file: "...", '...',
 * [[...]] and ``` fenced blocks; SQL-looking ones are statements, short
 * expression-looking ones fragments.
 */
static void
load_strings(const char *text, size_t len)
{
	size_t		i = 0;

	while (i < len)
	{
		const char *end = NULL;
		size_t		from = 0;

		if (text[i] == '"' || text[i] == '\'')
		{
			char		q = text[i];
			size_t		j = i + 1;

			while (j < len && text[j] != q && text[j] != '\n')
				j += (text[j] == '\\') ? 2 : 1;
			if (j < len && text[j] == q)
			{
				from = i + 1;
				end = text + j;
			}
			else
			{
				i = j;
				continue;
			}
		}
		else if (i + 1 < len && text[i] == '[' && text[i + 1] == '[')
		{
			end = memmem(text + i + 2, len - i - 2, "]]", 2);
			from = i + 2;
		}
		else if (text[i] == '$')
		{
			/* $$...$$ or $tag$...$tag$ */
			size_t		j = i + 1;

			while (j < len && (isalnum((unsigned char) text[j]) || text[j] == '_'))
				j++;
			if (j < len && text[j] == '$')
			{
				end = memmem(text + j + 1, len - j - 1, text + i, j + 1 - i);
				from = j + 1;
			}
		}
		else if (i + 2 < len && strncmp(text + i, "```", 3) == 0)
		{
			const char *nl = memchr(text + i, '\n', len - i);

			if (nl)
			{
				from = nl + 1 - text;
				end = memmem(text + from, len - from, "```", 3);
			}
		}
		if (end == NULL)
		{
			i++;
			continue;
		}
		if (end - (text + from) > 65536)
		{
			/* not a string after all: a quote that was never closed */
			i++;
			continue;
		}
		if (looks_like_sql(text + from, end - (text + from)))
		{
			/* a fenced block may hold several statements */
			load_sql(text + from, end - (text + from));
			corpus_add(&statements, text + from, end - (text + from));
		}
		else if (looks_like_fragment(text + from, end - (text + from)))
			corpus_add(&fragments, text + from, end - (text + from));
		i = (end - text) + 1;
	}
}

void
load_file(const char *path)
{
	FILE	   *f = fopen(path, "rb");
	Buf			b = {0};
	char		chunk[65536];
	size_t		n;
	const char *dot = strrchr(path, '.');

	if (f == NULL)
		die("cannot read %s: %s", path, strerror(errno));
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_add(&b, chunk, n);
	fclose(f);
	if (b.data == NULL)
		return;
	/* a .sql file's statements, and the SQL in its strings (lint('...')) */
	if (dot && strcmp(dot, ".sql") == 0)
		load_sql(b.data, b.len);
	load_strings(b.data, b.len);
	free(b.data);
}

/* Fragments pg_shift is given in the README and the examples, by kind. */
static const char *const seed_sets[] = {
	"n = lower(t)::int", "m = n + 1, t = upper(t)", "n = coalesce(m, 0) * 2",
	"t = CASE WHEN n > 0 THEN 'a' ELSE 'b' END", "m = (SELECT 1)", NULL
};
static const char *const seed_wheres[] = {
	"id > 10 AND n IS NULL", "t LIKE 'a%'", "m IS DISTINCT FROM n + 1",
	"n IN (1, 2, 3) OR t ~ '^x'", NULL
};
static const char *const seed_selects[] = {
	"id, n + 1", "id::int, length(t)", "id, coalesce(m, n) /* a, b */",
	"id, (SELECT max(n) FROM fuzz.items)", NULL
};
static const char *const seed_throttles[] = {
	"SELECT count(*) < 5 FROM pg_stat_activity", "SELECT true",
	"SELECT pg_is_in_recovery() = false", NULL
};

/* SQL pieces the mutations insert. */
static const char *const specials[] = {
	"'", "\"", "$$", "$x$", "E'\\", "U&'\\0041'", "B'101'", "X'1F'", "--", "/*",
	"*/", ";", "(", ")", "[", "]", ",", "::", "\\", "\n", "\t", "\r", "NULL",
	"DEFAULT", "NOT VALID", "CONCURRENTLY", "BEGIN;", "COMMIT;", "ROLLBACK;",
	"SET lock_timeout = 0;", "SET LOCAL lock_timeout = '2s';", "RESET ALL;",
	"/* shift:allow all */", "-- shift:allow truncate\n", "ONLY", "IF EXISTS",
	"CHECK (n IS NOT NULL)", "USING", "ARRAY[", "ROW(", "CASE WHEN true THEN",
	"END", "$1", "%s", "\xff", "\xc3\x28", "\xe2\x82", "\xf0\x9f\x92\xa9", "é", NULL
};

/* ---------------------------------------------------------------- mutations */

static void
random_bytes(Rng *r, Buf *b, size_t pos)
{
	size_t		n = 1 + rng_below(r, 8);
	char		tmp[8];
	size_t		i;

	for (i = 0; i < n; i++)
		tmp[i] = (char) rng_below(r, 256);
	buf_insert(b, pos, tmp, n);
}

/* The token boundaries of b: starts of runs of non-blanks. */
static size_t
token_span(Rng *r, const Buf *b, size_t *len)
{
	size_t		pos;
	size_t		end;

	if (b->len == 0)
	{
		*len = 0;
		return 0;
	}
	pos = rng_below(r, b->len);
	while (pos > 0 && !isspace((unsigned char) b->data[pos - 1]))
		pos--;
	end = pos;
	while (end < b->len && !isspace((unsigned char) b->data[end]))
		end++;
	/* sometimes a few tokens */
	if (rng_chance(r, 30))
	{
		int			more = 1 + (int) rng_below(r, 4);

		while (more-- > 0 && end < b->len)
		{
			while (end < b->len && isspace((unsigned char) b->data[end]))
				end++;
			while (end < b->len && !isspace((unsigned char) b->data[end]))
				end++;
		}
	}
	*len = end - pos;
	return pos;
}

/* Repeats piece until b would be about target bytes long. */
static void
repeat_to(Buf *b, size_t pos, const char *piece, size_t plen, size_t target)
{
	Buf			rep = {0};

	if (plen == 0)
		return;
	buf_reset(&rep);
	while (rep.len + b->len + plen <= target)
		buf_add(&rep, piece, plen);
	buf_insert(b, pos, rep.data, rep.len);
	free(rep.data);
}

/*
 * How long a huge input should be: mostly up to a tenth of the budget,
 * sometimes up to all of it, sometimes just over a limit of pg_shift's.
 */
static size_t
huge_size(Rng *r)
{
	static const size_t limits[] = {128 * 1024, 512 * 1024, 1024 * 1024};
	int			k = (int) rng_below(r, 10);

	if (k < 6)
		return 1024 + rng_below(r, opt_max_size / 10 + 1);
	if (k < 9)
		return 1024 + rng_below(r, opt_max_size + 1);
	/* the edge of a limit, if the budget reaches it */
	{
		size_t		l = limits[rng_below(r, 3)];

		if (l + 64 > opt_max_size)
			return opt_max_size;
		return l - 32 + rng_below(r, 64);
	}
}

/* How often each mutation is picked, by its number in mutate(). */
#define lengthof_weights() (sizeof(mutation_weights) / sizeof(mutation_weights[0]))
static const int mutation_weights[] = {8, 10, 10, 8, 10, 4, 6, 6, 6, 5, 3, 10, 6, 4};

static int
pick_mutation(Rng *r)
{
	int			total = 0;
	int			k;

	for (k = 0; k < (int) lengthof_weights(); k++)
		total += mutation_weights[k];
	k = (int) rng_below(r, total);
	total = 0;
	while (k >= mutation_weights[total])
		k -= mutation_weights[total++];
	return total;
}

/* Swaps two token spans of b. */
static void
swap_spans(Rng *r, Buf *b)
{
	size_t		l1,
				l2;
	size_t		a1 = token_span(r, b, &l1);
	char	   *t1 = xstrndup(b->data + a1, l1);
	size_t		a2;
	char	   *t2;

	buf_delete(b, a1, l1);
	a2 = token_span(r, b, &l2);
	t2 = xstrndup(b->data + a2, l2);
	buf_delete(b, a2, l2);
	buf_insert(b, a2, t1, l1);
	buf_insert(b, a1 <= b->len ? a1 : b->len, t2, l2);
	free(t1);
	free(t2);
}

/* Inserts at pos a token span of another input of pool. */
static void
splice_tokens(Rng *r, Buf *b, size_t pos, const Corpus *pool)
{
	size_t		at;
	size_t		len;

	if (pool->n)
	{
		Buf			other = {0};

		buf_reset(&other);
		buf_adds(&other, pool->items[rng_below(r, pool->n)]);
		at = token_span(r, &other, &len);
		buf_insert(b, pos, " ", 1);
		buf_insert(b, pos + 1, other.data + at, len);
		free(other.data);
	}
}

/* Inserts at pos a quote, comment, keyword or odd byte (specials, or a NUL). */
static void
insert_special(Rng *r, Buf *b, size_t pos)
{
	size_t		k = 0;

	while (specials[k])
		k++;
	k = rng_below(r, k + 1);
	if (specials[k] == NULL)
		buf_insert(b, pos, "", 1);	/* a NUL byte */
	else
		buf_insert(b, pos, specials[k], strlen(specials[k]));
}

/* Wraps a token span of b in deep nesting (parentheses, ARRAY[, CASE, comments). */
static void
nest_span(Rng *r, Buf *b)
{
	static const char *const open[] = {"(", "ARRAY[", "ROW(", "CASE WHEN true THEN ", "/* ", "coalesce("};
	static const char *const close[] = {")", "]", ")", " END", " */", ", 1)"};
	int			k = (int) rng_below(r, 6);
	size_t		depth = 1 + rng_below(r, rng_chance(r, 20) ? 20000 : 50);
	Buf			o = {0};
	Buf			c = {0};
	size_t		at;
	size_t		len;
	size_t		i;

	at = token_span(r, b, &len);
	buf_reset(&o);
	buf_reset(&c);
	for (i = 0; i < depth && o.len + c.len + b->len < opt_max_size; i++)
	{
		buf_adds(&o, open[k]);
		buf_adds(&c, close[k]);
	}
	buf_insert(b, at + len, c.data, c.len);
	buf_insert(b, at, o.data, o.len);
	free(o.data);
	free(c.data);
}

/* Repeats a token span of b in place up to a huge size. */
static void
repeat_span(Rng *r, Buf *b)
{
	size_t		at;
	size_t		len;

	at = token_span(r, b, &len);
	if (len)
	{
		char	   *piece = xstrndup(b->data + at, len);
		Buf			p = {0};

		buf_reset(&p);
		buf_add(&p, piece, len);
		buf_add(&p, rng_chance(r, 50) ? ", " : " ", rng_chance(r, 50) ? 2 : 1);
		repeat_to(b, at, p.data, p.len, huge_size(r));
		free(piece);
		free(p.data);
	}
}

/* Inserts at pos a run of operator characters (or of comment openers). */
static void
operator_run(Rng *r, Buf *b, size_t pos)
{
	static const char ops[] = "~!@#^&|`?+-*/%<>=";
	size_t		n = 1 + rng_below(r, rng_chance(r, 10) ? 20000 : 200);
	char	   *run = xmalloc(n);
	size_t		i;

	for (i = 0; i < n; i++)
		run[i] = ops[rng_below(r, sizeof(ops) - 1)];
	if (rng_chance(r, 30))
		for (i = 0; i + 1 < n; i += 2)
			run[i] = '/', run[i + 1] = '*';
	buf_insert(b, pos, run, n);
	free(run);
}

/* Repeats the whole of a short b, as statements of a script, up to a huge size. */
static void
repeat_script(Rng *r, Buf *b)
{
	if (b->len && b->len < 4096)
	{
		char	   *piece = xstrndup(b->data, b->len);
		Buf			p = {0};

		buf_reset(&p);
		buf_add(&p, piece, strlen(piece));
		buf_adds(&p, ";\n");
		repeat_to(b, b->len, p.data, p.len, huge_size(r));
		free(piece);
		free(p.data);
	}
}

/* Applies one mutation, picked by weight, to b; pool gives what is spliced in. */
static void
mutate(Rng *r, Buf *b, const Corpus *pool)
{
	size_t		pos = b->len ? rng_below(r, b->len + 1) : 0;
	size_t		len;
	size_t		at;

	switch (pick_mutation(r))
	{
		case 0:					/* truncate */
			if (b->len)
				buf_delete(b, pos, b->len - pos);
			break;
		case 1:					/* delete tokens */
			at = token_span(r, b, &len);
			buf_delete(b, at, len);
			break;
		case 2:					/* duplicate tokens */
			at = token_span(r, b, &len);
			{
				char	   *copy = xstrndup(b->data + at, len);

				buf_insert(b, at, copy, len);
				buf_insert(b, at + len, " ", 1);
				free(copy);
			}
			break;
		case 3:					/* swap two token spans */
			swap_spans(r, b);
			break;
		case 4:					/* splice tokens of another input */
			splice_tokens(r, b, pos, pool);
			break;
		case 5:					/* random bytes */
			random_bytes(r, b, pos);
			break;
		case 6:					/* quotes, comments, keywords, odd bytes */
		case 7:
			insert_special(r, b, pos);
			break;
		case 8:					/* deep nesting around a span */
			nest_span(r, b);
			break;
		case 9:					/* huge repetition of a span */
			repeat_span(r, b);
			break;
		case 10:				/* a run of operator characters */
			operator_run(r, b, pos);
			break;
		case 11:				/* glue another input on */
			if (pool->n)
			{
				const char *s = pool->items[rng_below(r, pool->n)];

				buf_adds(b, rng_chance(r, 70) ? ";\n" : " ");
				buf_adds(b, s);
			}
			break;
		case 12:				/* change case or blanks */
			at = token_span(r, b, &len);
			{
				size_t		i;

				for (i = at; i < at + len; i++)
					b->data[i] = rng_chance(r, 50) ? toupper((unsigned char) b->data[i]) :
						tolower((unsigned char) b->data[i]);
			}
			break;
		case 13:				/* a huge repetition of the whole input, as a script */
			repeat_script(r, b);
			break;
	}
	if (b->len > opt_max_size)
		buf_delete(b, opt_max_size, b->len - opt_max_size);
}

/* ---------------------------------------------------------------- targets */

const char *const target_names[] = {
	"lint", "lint_script", "select_list", "backfill_set", "backfill_where",
	"backfill_select", "backfill_throttle", "sync_set", "sync_select", "-",
	"control_memory", "control_cap", "control_time"
};

/* The call, with $1 the input (and $2..$4 lint's other arguments). */
const char *
target_sql(Target t)
{
	switch (t)
	{
		case T_LINT:
			return "SELECT count(*) FROM shift.lint($1, $2)";
		case T_LINT_SCRIPT:
			return "SELECT count(*) FROM shift.lint_script(string_to_array($1, chr(30)), "
				"string_to_array($2, chr(30)), string_to_array($3, ',')::int[], $4)";
		case T_SELECT_LIST:
			return "SELECT array_length(shift_internal._select_list($1), 1)";
		case T_BF_SET:
			return "SELECT shift.backfill_create('fz', 'fuzz.items', set => $1)";
		case T_BF_WHERE:
			return "SELECT shift.backfill_create('fz', 'fuzz.items', set => 'n = 1', \"where\" => $1)";
		case T_BF_SELECT:
			return "SELECT shift.backfill_create('fz', 'fuzz.items', \"into\" => 'fuzz.items_copy', "
				"columns => ARRAY['id', 'n'], \"select\" => $1)";
		case T_BF_THROTTLE:
			return "SELECT shift.backfill_create('fz', 'fuzz.items', set => 'n = 1', throttle_query => $1)";
		case T_SYNC_SET:
			return "SELECT shift.sync_create('fz', 'fuzz.items', set => $1)";
		case T_SYNC_SELECT:
			return "SELECT shift.sync_create('fz', 'fuzz.items', \"into\" => 'fuzz.items_copy', "
				"columns => ARRAY['id', 'n'], \"select\" => $1)";
		case T_CONTROL_MEMORY:
			return "SELECT length(repeat(repeat('x', 1024 * 1024), 160))";
		case T_CONTROL_CAP:
			/* each lpad reserves 560 MB (4 bytes a character) and fills 140 MB */
			return "SELECT length(lpad('x', 140000000, 'y') || lpad('x', 140000000, 'y'))";
		case T_CONTROL_TIME:
			return "SELECT pg_sleep(2)";
		default:
			return NULL;
	}
}

int
in_transaction(Target t)
{
	return t >= T_BF_SET && t < T_COUNT;
}

static const char *
pick(Rng *r, const char *const *list)
{
	size_t		n = 0;

	while (list[n])
		n++;
	return list[rng_below(r, n)];
}

static void
base_text(Rng *r, Buf *b, Target t)
{
	buf_reset(b);
	if (t == T_LINT || t == T_LINT_SCRIPT)
	{
		if (statements.n)
			buf_adds(b, statements.items[rng_below(r, statements.n)]);
		return;
	}
	/* a fragment: a seed of its kind, one from the files, or a piece of a statement */
	switch (rng_below(r, 8))
	{
		case 0:
		case 1:
		case 2:
		case 3:
		case 4:
			buf_adds(b, pick(r, t == T_BF_SET || t == T_SYNC_SET ? seed_sets :
							 t == T_BF_WHERE ? seed_wheres :
							 t == T_BF_THROTTLE ? seed_throttles : seed_selects));
			break;
		case 5:
		case 6:
			if (fragments.n)
				buf_adds(b, fragments.items[rng_below(r, fragments.n)]);
			break;
		default:
			if (statements.n)
			{
				Buf			s = {0};
				size_t		at,
							len;

				buf_reset(&s);
				buf_adds(&s, statements.items[rng_below(r, statements.n)]);
				at = token_span(r, &s, &len);
				buf_add(b, s.data + at, len);
				free(s.data);
			}
			break;
	}
}

void
generate(Input *in, long number)
{
	Rng			r;
	int			i;
	int			k;
	int			mutations;

	r.s = opt_seed * UINT64_C(0x100000001B3) ^ (uint64_t) number * UINT64_C(0x9E3779B97F4A7C15);
	(void) rng_next(&r);
	in->number = number;
	{
		/* weights: lint and the splitter most, the slow fragment calls less */
		static const int weights[T_COUNT] = {30, 14, 16, 8, 7, 6, 4, 8, 7};
		int			total = 0;

		for (k = 0; k < T_COUNT; k++)
			total += weights[k];
		k = (int) rng_below(&r, total);
		for (in->target = 0; k >= weights[in->target]; in->target++)
			k -= weights[in->target];
	}
	for (i = 0; i < 4; i++)
	{
		buf_reset(&in->param[i]);
		in->null[i] = 1;
	}
	in->nparams = in->target == T_LINT ? 2 : in->target == T_LINT_SCRIPT ? 4 : 1;

	base_text(&r, &in->param[0], in->target);
	/* mostly one or two mutations: the input stays close to real SQL */
	k = (int) rng_below(&r, 100);
	mutations = k < 20 ? 0 : k < 60 ? 1 : k < 85 ? 2 : 3 + (int) rng_below(&r, 2);
	for (i = 0; i < mutations; i++)
		mutate(&r, &in->param[0], in->target <= T_LINT_SCRIPT ? &statements : &fragments);
	in->null[0] = rng_chance(&r, 1);

	if (in->target == T_LINT)
	{
		static const char *const timeouts[] = {"0", "1s", "2s", "500ms", "soon", "-1", "5min"};

		if (rng_chance(&r, 40))
		{
			buf_adds(&in->param[1], pick(&r, timeouts));
			in->null[1] = 0;
		}
	}
	else if (in->target == T_LINT_SCRIPT)
	{
		/* parts: split the input at some blanks; each part may get a timeout and a phase */
		Buf		   *p = &in->param[0];
		size_t		i2;
		int			parts = 1;

		for (i2 = 0; i2 < p->len; i2++)
			if (p->data[i2] == '\n' && rng_chance(&r, 30))
			{
				p->data[i2] = 30;
				parts++;
			}
		if (rng_chance(&r, 60))
		{
			static const char *const timeouts[] = {"", "1s", "2s", "0", "later"};
			int			k;

			for (k = 0; k < parts + (rng_chance(&r, 3) ? 1 : 0); k++)
			{
				if (k)
					buf_add(&in->param[1], "\036", 1);
				buf_adds(&in->param[1], pick(&r, timeouts));
			}
			in->null[1] = 0;
		}
		if (rng_chance(&r, 60))
		{
			int			k;
			char		num[16];

			for (k = 0; k < parts + (rng_chance(&r, 3) ? 1 : 0); k++)
			{
				snprintf(num, sizeof(num), "%s%d", k ? "," : "", 1 + (int) rng_below(&r, 3));
				buf_adds(&in->param[2], num);
			}
			in->null[2] = 0;
		}
		if (rng_chance(&r, 50))
		{
			buf_adds(&in->param[3], rng_chance(&r, 50) ? "0" : "1s");
			in->null[3] = 0;
		}
	}
}
