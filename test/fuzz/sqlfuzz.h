/*-------------------------------------------------------------------------
 *
 * sqlfuzz.h
 *	  Declarations shared by the SQL fuzzer's two files:
 *	  sqlfuzz.c        the run: options, the watched backend, the server
 *	                   log, reporting failures, main
 *	  sqlfuzz_input.c  the inputs: the corpus, the mutations, the targets
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQLFUZZ_H
#define SQLFUZZ_H

#include <stddef.h>
#include <stdint.h>

extern uint64_t opt_seed;
extern size_t opt_max_size;

/* ---------------------------------------------------------------- sqlfuzz.c */

/* A growable byte buffer (inputs may hold NUL bytes). */
typedef struct Buf
{
	char	   *data;
	size_t		len;
	size_t		cap;
} Buf;

extern void die(const char *fmt,...) __attribute__((format(printf, 1, 2), noreturn));
extern void *xmalloc(size_t n);
extern char *xstrndup(const char *s, size_t n);
extern void buf_add(Buf *b, const char *s, size_t n);
extern void buf_adds(Buf *b, const char *s);
extern void buf_reset(Buf *b);
extern void buf_insert(Buf *b, size_t pos, const char *s, size_t n);
extern void buf_delete(Buf *b, size_t pos, size_t n);

/* ---------------------------------------------------------------- sqlfuzz_input.c */

typedef struct Corpus
{
	char	  **items;
	size_t		n;
	size_t		cap;
} Corpus;

extern Corpus statements;		/* whole statements or scripts */
extern Corpus fragments;		/* expressions, conditions, lists */

typedef enum Target
{
	T_LINT, T_LINT_SCRIPT, T_SELECT_LIST, T_BF_SET, T_BF_WHERE, T_BF_SELECT,
	T_BF_THROTTLE, T_SYNC_SET, T_SYNC_SELECT, T_COUNT,
	/* --self-test only: inputs the watch must catch */
	T_CONTROL_MEMORY, T_CONTROL_CAP, T_CONTROL_TIME
} Target;

extern const char *const target_names[];

/* One generated input: the target and up to four parameters. */
typedef struct Input
{
	long		number;
	Target		target;
	Buf			param[4];
	int			null[4];
	int			nparams;
} Input;

extern void load_file(const char *path);
extern void generate(Input *in, long number);
extern const char *target_sql(Target t);
extern int	in_transaction(Target t);

#endif							/* SQLFUZZ_H */
