/*
 * output.c
 *	  Everything pgshift prints goes through here: the filter in front of
 *	  stdout and stderr, the one JSON string writer, the live line on a
 *	  terminal (a phase's elapsed time, a backfill's progress bar), and the
 *	  one format of an error report.  The text it prints comes from the server
 *	  (error messages, notices, recorded state), from the migration file
 *	  (log(), errors, descriptions, SQL) and from the command line, and none
 *	  of it may drive the terminal.  This file calls no other file of the
 *	  runner: connections, Lua and commands print through it.
 *
 * pgs_output_init() puts a filter in front of stdout and stderr (glibc's
 * fopencookie: stdout and stderr are plain variables there), so every
 * printf, fputs and Lua print() of every source file is filtered in one
 * place.  In text mode the filter replaces what a terminal would act on:
 * C0 controls other than newline and tab, DEL, and bytes that are not valid
 * UTF-8 become \xNN; C1 controls (U+0080..U+009F) and the bidirectional
 * formatting characters (which can make text display in another order than
 * it reads) become \uNNNN.  Only pgs_term_control() writes escape sequences,
 * for the live progress line, and pgs_styled(), for colour: both write their
 * own sequences past the filter, never text.  In JSON mode (--json) stdout carries JSON
 * documents: the same characters become JSON escapes instead, so that even
 * a writer that missed one still produces valid JSON (see pgs_json_quote,
 * which escapes them itself).  Every JSON document pgshift writes is made
 * by the prelude's one writer (output.lua: O.json; from C, pgs_emit and
 * pgs_json_line), and every JSON string in it by pgs_json_quote here
 * (C.json_string).
 */
#define _GNU_SOURCE				/* fopencookie */

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgshift.h"

/*
 * pgs_utf8_decode: the length of the valid UTF-8 sequence at s (1..4, with
 * the code point in *cp), 0 if s[0] does not start one (an invalid byte), or
 * -1 if the len bytes at s are a valid but incomplete start of one.
 * Overlong forms, surrogates and code points above U+10FFFF are invalid.
 */
int
pgs_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
	unsigned char c = s[0];
	unsigned char lo = 0x80;
	unsigned char hi = 0xBF;
	int			n;
	int			i;
	uint32_t	v;

	if (c < 0x80)
	{
		*cp = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF)
	{
		n = 2;
		v = c & 0x1F;
	}
	else if (c >= 0xE0 && c <= 0xEF)
	{
		n = 3;
		v = c & 0x0F;
		if (c == 0xE0)
			lo = 0xA0;			/* no overlong forms */
		else if (c == 0xED)
			hi = 0x9F;			/* no surrogates */
	}
	else if (c >= 0xF0 && c <= 0xF4)
	{
		n = 4;
		v = c & 0x07;
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F;			/* nothing above U+10FFFF */
	}
	else
		return 0;
	for (i = 1; i < n; i++)
	{
		if ((size_t) i >= len)
			return -1;
		if (s[i] < lo || s[i] > hi)
			return 0;
		v = (v << 6) | (s[i] & 0x3F);
		lo = 0x80;
		hi = 0xBF;
	}
	*cp = v;
	return n;
}

/* Unicode's bidirectional formatting characters (UAX #9). */
static bool
is_bidi_control(uint32_t cp)
{
	return cp == 0x061C || cp == 0x200E || cp == 0x200F ||
		(cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
}

/*
 * How one code point is passed: false if as it is, else true with esc set
 * to what stands for it.  n and cp are pgs_utf8_decode's (n <= 0: the byte
 * at s is not part of a valid sequence).
 */
typedef bool (*EscapeFn) (const unsigned char *s, int n, uint32_t cp, char *esc,
						  size_t size, const void *how);

/*
 * Passes s[0..len) to put, each code point that escape picks replaced by its
 * escape, the bytes between in runs as they are.  An incomplete UTF-8
 * sequence at the end stops the walk if wait is set (it is not consumed);
 * returns the number of bytes consumed.
 */
static size_t
put_escaped(const unsigned char *s, size_t len, bool wait, EscapeFn escape,
			const void *how, PgsPutFn put, void *arg)
{
	size_t		i = 0;
	size_t		run = 0;		/* start of the bytes passed as they are */

	while (i < len)
	{
		uint32_t	cp = 0;
		int			n = pgs_utf8_decode(s + i, len - i, &cp);
		char		esc[16];

		if (n == -1 && wait)
			break;
		if (!escape(s + i, n, cp, esc, sizeof(esc), how))
		{
			i += n;
			continue;
		}
		if (n <= 0)
			n = 1;
		if (i > run)
			put(arg, (const char *) s + run, i - run);
		put(arg, esc, strlen(esc));
		i += n;
		run = i;
	}
	if (i > run)
		put(arg, (const char *) s + run, i - run);
	return i;
}

/* pgs_sanitize's escapes; how points to its json flag. */
static bool
sanitize_escape(const unsigned char *s, int n, uint32_t cp, char *esc,
				size_t size, const void *how)
{
	bool		json = *(const bool *) how;
	bool		bad;

	if (n <= 0)
	{
		/* an invalid byte, or a truncated sequence */
		if (json)
			strcpy(esc, "\\ufffd");
		else
			snprintf(esc, size, "\\x%02x", s[0]);
		return true;
	}
	if (json)
		bad = (cp < 0x20 && cp != '\n') || (cp >= 0x7F && cp <= 0x9F) ||
			cp == 0x2028 || cp == 0x2029;
	else
		bad = (cp < 0x20 && cp != '\n' && cp != '\t') ||
			(cp >= 0x7F && cp <= 0x9F) || is_bidi_control(cp);
	if (!bad)
		return false;
	if (json || cp >= 0x80)
		snprintf(esc, size, "\\u%04x", (unsigned) cp);
	else
		snprintf(esc, size, "\\x%02x", (unsigned) cp);
	return true;
}

/*
 * pgs_sanitize: passes the len bytes at in to put, neutralised for a
 * terminal (json false) or for the inside of a JSON string (json true), as
 * the file header describes.  An incomplete UTF-8 sequence at the end is not
 * consumed unless final is set (then its bytes count as invalid); returns
 * the number of bytes consumed.
 */
size_t
pgs_sanitize(const char *in, size_t len, bool json, bool final,
			 PgsPutFn put, void *arg)
{
	return put_escaped((const unsigned char *) in, len, !final, sanitize_escape,
					   &json, put, arg);
}

/* pgs_json_quote's escapes. */
static bool
json_escape(const unsigned char *s, int n, uint32_t cp, char *esc,
			size_t size, const void *how)
{
	if (n > 0 && cp >= 0x20 && cp != '"' && cp != '\\' &&
		!(cp >= 0x7F && cp <= 0x9F) && cp != 0x2028 && cp != 0x2029)
		return false;
	if (n <= 0)
		strcpy(esc, "\\ufffd");
	else if (cp == '"' || cp == '\\')
		snprintf(esc, size, "\\%c", (char) cp);
	else if (cp == '\n')
		strcpy(esc, "\\n");
	else if (cp == '\t')
		strcpy(esc, "\\t");
	else if (cp == '\r')
		strcpy(esc, "\\r");
	else if (cp == '\b')
		strcpy(esc, "\\b");
	else if (cp == '\f')
		strcpy(esc, "\\f");
	else
		snprintf(esc, size, "\\u%04x", (unsigned) cp);
	return true;
}

/*
 * pgs_json_quote: s[0..len) as a JSON string literal, quotes included.
 * Escaped: '"', '\\', U+0000..U+001F, DEL and the C1 controls
 * U+0080..U+009F, and U+2028/U+2029 (line breaks to JavaScript); each byte
 * that is not part of a valid UTF-8 sequence becomes U+FFFD.  Everything
 * else is passed as UTF-8.
 */
void
pgs_json_quote(const char *s, size_t len, PgsPutFn put, void *arg)
{
	put(arg, "\"", 1);
	put_escaped((const unsigned char *) s, len, false, json_escape, NULL, put, arg);
	put(arg, "\"", 1);
}

/* ---- the filtered standard streams ---- */

typedef struct Filter
{
	int			fd;				/* where the filtered bytes go */
	bool		json;			/* JSON mode (stdout with --json) */
	size_t		held;			/* an incomplete UTF-8 sequence, kept for the next write */
	char		hold[4];
} Filter;

static Filter out_filter = {STDOUT_FILENO, false, 0, {0}};
static Filter err_filter = {STDERR_FILENO, false, 0, {0}};
static bool output_ready = false;

/* write(2) all of it; output errors are not worth dying for here. */
static void
write_all(int fd, const char *s, size_t len)
{
	while (len > 0)
	{
		ssize_t		n = write(fd, s, len);

		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			return;
		}
		s += n;
		len -= n;
	}
}

static void
put_fd(void *arg, const char *s, size_t len)
{
	write_all(((Filter *) arg)->fd, s, len);
}

/* Filters buf (after the bytes held from last time) onto the filter's fd. */
static void
filter_bytes(Filter *f, const char *buf, size_t len, bool final)
{
	size_t		used;

	if (f->held > 0)
	{
		/* complete the held sequence with up to 3 new bytes */
		char		tmp[8];
		size_t		take = len < 4 ? len : 4;
		size_t		have = f->held;

		memcpy(tmp, f->hold, have);
		memcpy(tmp + have, buf, take);
		used = pgs_sanitize(tmp, have + take, f->json, final && take == len,
							put_fd, f);
		f->held = 0;
		if (used < have)
		{
			/* still incomplete: everything new was part of it */
			memcpy(f->hold, tmp + used, have + take - used);
			f->held = have + take - used;
			return;
		}
		buf += used - have;
		len -= used - have;
	}
	used = pgs_sanitize(buf, len, f->json, final, put_fd, f);
	if (used < len)
	{
		memcpy(f->hold, buf + used, len - used);
		f->held = len - used;
	}
}

static ssize_t
filter_write(void *cookie, const char *buf, size_t len)
{
	filter_bytes(cookie, buf, len, false);
	return len;
}

/* Writes out a sequence left incomplete at the end (as invalid bytes). */
static void
filter_finish(Filter *f)
{
	if (f->held > 0)
		filter_bytes(f, "", 0, true);
}

static void
output_at_exit(void)
{
	fflush(stdout);
	fflush(stderr);
	filter_finish(&out_filter);
	filter_finish(&err_filter);
}

/*
 * pgs_output_init: puts the filter in front of stdout and stderr, text mode
 * on both.  Call it first in main(), before any Lua state is made (the io
 * library keeps the stdout it finds).
 */
void
pgs_output_init(void)
{
	cookie_io_functions_t io = {NULL, filter_write, NULL, NULL};
	FILE	   *o;
	FILE	   *e;

	if (output_ready)
		return;
	o = fopencookie(&out_filter, "w", io);
	e = fopencookie(&err_filter, "w", io);
	if (o == NULL || e == NULL)
	{
		if (o)
			fclose(o);
		if (e)
			fclose(e);
		return;					/* out of memory at start: nothing printed yet */
	}
	fflush(stdout);
	fflush(stderr);
	setvbuf(o, NULL, isatty(STDOUT_FILENO) ? _IOLBF : _IOFBF, BUFSIZ);
	setvbuf(e, NULL, _IONBF, 0);
	stdout = o;
	stderr = e;
	output_ready = true;
	atexit(output_at_exit);
	pgs_color_mode(PGS_COLOR_AUTO);
}

/* pgs_output_json: stdout carries JSON from now on (--json, --format json). */
void
pgs_output_json(bool on)
{
	fflush(stdout);
	out_filter.json = on;
}

/*
 * pgs_term_control: an escape sequence of the runner's own (the live line)
 * written to the terminal as it is, after what stdout holds.
 */
void
pgs_term_control(const char *seq)
{
	fflush(stdout);
	if (output_ready)
		write_all(STDOUT_FILENO, seq, strlen(seq));
	else
	{
		fputs(seq, stdout);
		fflush(stdout);
	}
}

/* ---- colour ---- */

/*
 * --color=auto (the default) colours a stream that is a terminal, unless
 * NO_COLOR is set to anything but "" (https://no-color.org) or TERM is
 * "dumb" or unset; always and never say it all.  stdout carrying JSON is
 * never coloured.  The runner picks what is coloured (pgs_styled's callers:
 * phase headers, ok and failed markers, errors, lint severities); the colours
 * are here.
 */
static bool color_out = false;
static bool color_err = false;

/* pgs_color_mode: decides colour for stdout and stderr (--color=WHEN). */
void
pgs_color_mode(PgsColorMode mode)
{
	const char *no_color = getenv("NO_COLOR");
	const char *term = getenv("TERM");
	bool		allowed;

	if (mode != PGS_COLOR_AUTO)
	{
		color_out = color_err = (mode == PGS_COLOR_ALWAYS);
		return;
	}
	allowed = (no_color == NULL || no_color[0] == '\0') &&
		term != NULL && term[0] != '\0' && strcmp(term, "dumb") != 0;
	color_out = allowed && isatty(STDOUT_FILENO);
	color_err = allowed && isatty(STDERR_FILENO);
}

/* pgs_color_on: is what goes to out (stdout or stderr) coloured? */
bool
pgs_color_on(FILE *out)
{
	if (out == stdout)
		return color_out && !out_filter.json;
	if (out == stderr)
		return color_err;
	return false;
}

static const struct
{
	const char *name;			/* what Lua calls it (C.write's second argument) */
	const char *sgr;			/* its Select Graphic Rendition parameters */
}			styles[] = {
	[PGS_STYLE_PLAIN] = {"plain", NULL},
	[PGS_STYLE_HEADER] = {"header", "1"},
	[PGS_STYLE_PHASE] = {"phase", "1;36"},
	[PGS_STYLE_OK] = {"ok", "32"},
	[PGS_STYLE_FAIL] = {"fail", "1;31"},
	[PGS_STYLE_ERROR] = {"error", "1;31"},
	[PGS_STYLE_WARN] = {"warn", "33"},
	[PGS_STYLE_CRITICAL] = {"CRITICAL", "1;35"},
	[PGS_STYLE_HIGH] = {"HIGH", "1;31"},
	[PGS_STYLE_MEDIUM] = {"MEDIUM", "33"},
	[PGS_STYLE_LOW] = {"LOW", "36"},
};

/* pgs_style_named: the style called name ("ok", "HIGH", ...); plain if none. */
PgsStyle
pgs_style_named(const char *name)
{
	size_t		i;

	for (i = 0; name != NULL && i < sizeof(styles) / sizeof(styles[0]); i++)
		if (strcmp(styles[i].name, name) == 0)
			return (PgsStyle) i;
	return PGS_STYLE_PLAIN;
}

/* Writes a sequence of the runner's own to out's terminal, past the filter. */
static void
write_control(FILE *out, const char *seq)
{
	Filter	   *f = out == stderr ? &err_filter : &out_filter;

	fflush(out);
	if (!output_ready)
	{
		fputs(seq, out);
		fflush(out);
		return;
	}
	filter_finish(f);			/* a sequence cut short stays before it */
	write_all(f->fd, seq, strlen(seq));
}

/*
 * pgs_styled: the len bytes of text on out (stdout or stderr), through the
 * filter as everything else, in style's colour if out is coloured.
 */
void
pgs_styled(FILE *out, PgsStyle style, const char *text, size_t len)
{
	char		sgr[32];
	bool		on = pgs_color_on(out) && style > PGS_STYLE_PLAIN &&
		(size_t) style < sizeof(styles) / sizeof(styles[0]) && len > 0;

	if (on)
	{
		snprintf(sgr, sizeof(sgr), "\033[%sm", styles[style].sgr);
		write_control(out, sgr);
	}
	fwrite(text, 1, len, out);
	if (on)
		write_control(out, "\033[0m");
}

/* ---- the live line ---- */

/*
 * On a terminal, the running phase's elapsed time or its backfill's
 * progress, redrawn in place.  Everything else printed clears it first.
 */
static bool live_shown = false;

void
pgs_live_clear(void)
{
	if (live_shown)
	{
		pgs_term_control("\r\033[K");
		live_shown = false;
	}
}

/* The line's text goes through the output filter; only "\r\033[K" does not. */
void
pgs_live_update(const char *text)
{
	pgs_term_control("\r\033[K");
	fputs(text, stdout);
	fflush(stdout);
	live_shown = true;
}

/* 1234567 -> "1,234,567" */
static void
group_digits(char *buf, size_t len, long long n)
{
	char		raw[32];
	int			digits;
	int			i;
	size_t		o = 0;

	snprintf(raw, sizeof(raw), "%lld", n < 0 ? -n : n);
	digits = (int) strlen(raw);
	if (n < 0 && o < len - 1)
		buf[o++] = '-';
	for (i = 0; i < digits && o < len - 1; i++)
	{
		if (i > 0 && (digits - i) % 3 == 0 && o < len - 1)
			buf[o++] = ',';
		buf[o++] = raw[i];
	}
	buf[o] = '\0';
}

/* The live line of a phase running for secs seconds. */
void
pgs_live_elapsed(const char *phase, int secs)
{
	char		line[256];

	snprintf(line, sizeof(line), "    ... %s running for %d:%02d", phase,
			 secs / 60, secs % 60);
	pgs_live_update(line);
}

/*
 * The live line of a backfill: a bar, percent, rows, rate (keys per second
 * of wall-clock time), and the ETA (eta < 0: unknown) or, instead, what it
 * waits for ("" if nothing).
 */
void
pgs_live_backfill(const PgsBackfillProgress *p)
{
	char		rowbuf[32];
	char		ratebuf[32];
	char		etabuf[32];
	char		bar[21];
	char		line[512];
	int			filled = (int) (p->percent / 5);
	int			i;

	group_digits(rowbuf, sizeof(rowbuf), p->rows);
	group_digits(ratebuf, sizeof(ratebuf), (long long) p->rate);
	/* a job held back says why instead of an ETA it would not keep */
	if (*p->waiting)
		snprintf(etabuf, sizeof(etabuf), "waiting: ");
	else if (p->eta >= 0)
		snprintf(etabuf, sizeof(etabuf), "ETA %lld:%02lld", p->eta / 60, p->eta % 60);
	else
		snprintf(etabuf, sizeof(etabuf), "ETA ?");
	for (i = 0; i < 20; i++)
		bar[i] = i < filled ? '#' : '.';
	bar[20] = '\0';
	snprintf(line, sizeof(line), "    [%s] %5.1f%%  %s rows  %s keys/s  %s%s", bar,
			 p->percent, rowbuf, ratebuf, etabuf, p->waiting);
	pgs_live_update(line);
}

/* ---- messages and error reports ---- */

/* pgs_errorf: "pgshift: " and the message on stderr, below the live line. */
void
pgs_errorf(const char *fmt,...)
{
	va_list		ap;

	pgs_live_clear();
	fflush(stdout);
	pgs_styled(stderr, PGS_STYLE_ERROR, "pgshift:", 8);
	fputc(' ', stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fflush(stderr);
}

/* A server's warning (see pgs_connect), on a line of its own. */
void
pgs_print_notice(const char *severity, const char *message)
{
	pgs_live_clear();
	fflush(stdout);
	fputs("pgshift: ", stderr);
	severity = severity ? severity : "NOTICE";
	if (strcmp(severity, "NOTICE") != 0 && strcmp(severity, "INFO") != 0 &&
		strcmp(severity, "LOG") != 0 && strncmp(severity, "DEBUG", 5) != 0)
	{
		pgs_styled(stderr, PGS_STYLE_WARN, "server ", 7);
		pgs_styled(stderr, PGS_STYLE_WARN, severity, strlen(severity));
	}
	else
		fprintf(stderr, "server %s", severity);
	fprintf(stderr, ": %s\n", message ? message : "");
	fflush(stderr);
}

/*
 * Prints the context lines of an error (the one-line cause is the caller's):
 * detail, hint, the statement with a caret at the error position, and the
 * server's context.
 */
void
pgs_error_print(FILE *out, const PgsError *err)
{
	if (err->detail)
		fprintf(out, "  detail: %s\n", err->detail);
	if (err->hint)
		fprintf(out, "  hint: %s\n", err->hint);
	if (err->statement)
	{
		const char *s = err->statement;
		int			line = 1;
		int			col = 1;
		int			chars = 0;
		bool		multiline = strchr(s, '\n') != NULL;
		const char *p;

		/* position counts characters; count UTF-8 lead bytes to find it */
		for (p = s; *p && err->position > 0; p++)
		{
			if (((unsigned char) *p & 0xC0) != 0x80)
			{
				if (++chars == err->position)
					break;
				if (*p == '\n')
				{
					line++;
					col = 0;
				}
				col++;
			}
		}
		fprintf(out, "  statement: ");
		for (p = s; *p; p++)
		{
			fputc(*p, out);
			if (*p == '\n')
				fputs("             ", out);
		}
		fputc('\n', out);
		if (err->position > 0 && !multiline)
			fprintf(out, "%*s^\n", 13 + col - 1, "");
		else if (err->position > 0)
			fprintf(out, "  position: line %d, column %d of the statement\n",
					line, col);
	}
	if (err->context)
		fprintf(out, "  server context: %s\n", err->context);
}

/*
 * pgs_print_error: the one format of an error report on out:
 *	 pgshift: message[ (SQLSTATE xxxxx)]
 *	   context
 *	   detail, hint, statement, server context (details, may be NULL)
 *	 traceback (may be NULL)
 */
void
pgs_print_error(FILE *out, const char *message, const char *sqlstate,
				const char *context, const PgsError *details,
				const char *traceback)
{
	pgs_live_clear();
	fflush(stdout);
	pgs_styled(out, PGS_STYLE_ERROR, "pgshift:", 8);
	if (sqlstate)
		fprintf(out, " %s (SQLSTATE %s)\n", message, sqlstate);
	else
		fprintf(out, " %s\n", message);
	if (context)
		fprintf(out, "  %s\n", context);
	if (details)
		pgs_error_print(out, details);
	if (traceback)
		fprintf(out, "%s\n", traceback);
	fflush(out);
}

/* Prints a PgsError on stderr: "pgshift: message (SQLSTATE x)", context, details. */
void
pgs_report_error(const PgsError *err, const char *context)
{
	pgs_print_error(stderr, err->message, err->sqlstate, context, err, NULL);
}
