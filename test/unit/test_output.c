/*
 * test_output.c
 *	  What pgshift prints: the UTF-8 decoder, the terminal filter in front of
 *	  stdout and stderr (text and JSON modes, a sequence split across writes),
 *	  and JSON string literals, which must be valid JSON whatever bytes a
 *	  migration or a server put in them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <lauxlib.h>

#include "pgshift.h"

typedef struct Out
{
	char		buf[4096];
	size_t		len;
} Out;

static void
put_out(void *arg, const char *s, size_t len)
{
	Out		   *o = arg;

	assert_true(o->len + len < sizeof(o->buf));
	memcpy(o->buf + o->len, s, len);
	o->len += len;
	o->buf[o->len] = '\0';
}

/* in (len bytes) through the filter, as one final write */
static const char *
sanitized(const char *in, size_t len, bool json)
{
	static Out	o;

	o.len = 0;
	o.buf[0] = '\0';
	assert_int_equal(pgs_sanitize(in, len, json, true, put_out, &o), len);
	return o.buf;
}

static const char *
quoted(const char *in, size_t len)
{
	static Out	o;

	o.len = 0;
	o.buf[0] = '\0';
	pgs_json_quote(in, len, put_out, &o);
	return o.buf;
}

#define S(lit) (lit), sizeof(lit) - 1

static void
test_output_utf8_decode(void **state)
{
	uint32_t	cp;

	assert_int_equal(pgs_utf8_decode((const unsigned char *) "A", 1, &cp), 1);
	assert_int_equal(cp, 'A');
	assert_int_equal(pgs_utf8_decode((const unsigned char *) "\xc3\xa9", 2, &cp), 2);
	assert_int_equal(cp, 0xE9);
	assert_int_equal(pgs_utf8_decode((const unsigned char *) "\xe2\x82\xac", 3, &cp), 3);
	assert_int_equal(cp, 0x20AC);
	assert_int_equal(pgs_utf8_decode((const unsigned char *) "\xf0\x9f\x98\x80", 4, &cp), 4);
	assert_int_equal(cp, 0x1F600);
	/* incomplete, but valid so far */
	assert_int_equal(pgs_utf8_decode((const unsigned char *) "\xe2\x82", 2, &cp), -1);
	/* invalid: a lone continuation, overlong forms, a surrogate, > U+10FFFF, 0xff */
	assert_int_equal(pgs_utf8_decode((const unsigned char *) "\x9b", 1, &cp), 0);
	assert_int_equal(pgs_utf8_decode((const unsigned char *) "\xc0\x80", 2, &cp), 0);
	assert_int_equal(pgs_utf8_decode((const unsigned char *) "\xe0\x80\xaf", 3, &cp), 0);
	assert_int_equal(pgs_utf8_decode((const unsigned char *) "\xed\xa0\x80", 3, &cp), 0);
	assert_int_equal(pgs_utf8_decode((const unsigned char *) "\xf4\x90\x80\x80", 4, &cp), 0);
	assert_int_equal(pgs_utf8_decode((const unsigned char *) "\xff", 1, &cp), 0);
	assert_int_equal(pgs_utf8_decode((const unsigned char *) "\xe2\x41\x41", 3, &cp), 0);
}

static void
test_output_terminal_text(void **state)
{
	/* newline, tab and UTF-8 text pass as they are */
	assert_string_equal(sanitized(S("a\tb\nc \xc3\xa9 \xe2\x82\xac"), false),
						"a\tb\nc \xc3\xa9 \xe2\x82\xac");
	/* ESC sequences, CR, BEL, BS, DEL and a zero byte are shown, not obeyed */
	assert_string_equal(sanitized(S("\x1b[2J\x1b]0;t\x07x\rz\by\x7f\0!"), false),
						"\\x1b[2J\\x1b]0;t\\x07x\\x0dz\\x08y\\x7f\\x00!");
	/* C1 controls (CSI U+009B) and bidi overrides as code points */
	assert_string_equal(sanitized(S("a\xc2\x9b" "2Jb\xe2\x80\xae" "c"), false),
						"a\\u009b2Jb\\u202ec");
	/* bytes that are not UTF-8: a lone 0x9b is CSI to some terminals */
	assert_string_equal(sanitized(S("x\x9b" "2J\xff\xc3"), false), "x\\x9b2J\\xff\\xc3");
	/* U+2028 is harmless on a terminal */
	assert_string_equal(sanitized(S("\xe2\x80\xa8"), false), "\xe2\x80\xa8");
}

static void
test_output_terminal_json_mode(void **state)
{
	/* inside a JSON document: JSON escapes, newline kept (it ends a line) */
	assert_string_equal(sanitized(S("{\"a\":\"\x1b\t\x7f\xc2\x85\xe2\x80\xa8\xff\"}\n"), true),
						"{\"a\":\"\\u001b\\u0009\\u007f\\u0085\\u2028\\ufffd\"}\n");
}

static void
test_output_split_sequence_kept_for_next_write(void **state)
{
	Out			o = {.len = 0};
	const char *euro = "\xe2\x82\xac";

	/* the first two bytes of a euro sign are held, not mangled */
	assert_int_equal(pgs_sanitize(euro, 2, false, false, put_out, &o), 0);
	assert_int_equal(o.len, 0);
	assert_int_equal(pgs_sanitize("ab\xe2\x82", 4, false, false, put_out, &o), 2);
	assert_string_equal(o.buf, "ab");
	/* at the end they count as invalid */
	o.len = 0;
	assert_int_equal(pgs_sanitize("\xe2\x82", 2, false, true, put_out, &o), 2);
	assert_string_equal(o.buf, "\\xe2\\x82");
}

static void
test_output_json_quote(void **state)
{
	assert_string_equal(quoted(S("plain é")), "\"plain é\"");
	assert_string_equal(quoted(S("q\"b\\s/")), "\"q\\\"b\\\\s/\"");
	assert_string_equal(quoted(S("\n\t\r\b\f\x01\x1b\x7f")),
						"\"\\n\\t\\r\\b\\f\\u0001\\u001b\\u007f\"");
	assert_string_equal(quoted(S("z\0z")), "\"z\\u0000z\"");
	/* C1, and U+2028/U+2029, which end a line in JavaScript */
	assert_string_equal(quoted(S("\xc2\x80\xc2\x9f\xc2\xa0\xe2\x80\xa8\xe2\x80\xa9")),
						"\"\\u0080\\u009f\xc2\xa0\\u2028\\u2029\"");
	/* each byte that is not part of valid UTF-8 becomes U+FFFD */
	assert_string_equal(quoted(S("a\xff" "b\xc3" "c\xed\xa0\x80" "d\xe2\x82")),
						"\"a\\ufffdb\\ufffdc\\ufffd\\ufffd\\ufffdd\\ufffd\\ufffd\"");
	/* 4-byte characters pass */
	assert_string_equal(quoted(S("\xf0\x9f\x98\x80")), "\"\xf0\x9f\x98\x80\"");
}

/* The prelude's JSON writer (every --json document) uses the same quoting. */
static void
test_output_prelude_json_strings(void **state)
{
	lua_State  *L = pgs_lua_new(NULL);

	pgs_push_prelude_function(L, "json");
	lua_createtable(L, 0, 2);
	lua_pushliteral(L, "\x1b[2J\xff\xe2\x80\xa8\x7f");
	lua_setfield(L, -2, "message");
	lua_pushliteral(L, "k");
	lua_setfield(L, -2, "\xc3\x28");	/* a key that is not UTF-8 */
	assert_int_equal(pgs_pcall(L, 1, 1), LUA_OK);
	assert_string_equal(lua_tostring(L, -1),
						"{\"message\":\"\\u001b[2J\\ufffd\\u2028\\u007f\",\"\\ufffd(\":\"k\"}");
	lua_close(L);
}

/* Numbers: integers as they are, floats in as few digits as read back exactly. */
static void
test_output_prelude_json_numbers(void **state)
{
	lua_State  *L = pgs_lua_new(NULL);

	pgs_push_prelude_function(L, "json");
	lua_createtable(L, 0, 5);
	lua_pushnumber(L, 5.3);
	lua_setfield(L, -2, "a");
	lua_pushnumber(L, 0.1 + 0.2);	/* not 0.3: needs all 17 digits */
	lua_setfield(L, -2, "b");
	lua_pushinteger(L, 9007199254740993LL);
	lua_setfield(L, -2, "c");
	lua_pushnumber(L, 2.0);
	lua_setfield(L, -2, "d");
	lua_pushnumber(L, 1e300 * 1e10);	/* infinity has no JSON form */
	lua_setfield(L, -2, "e");
	assert_int_equal(pgs_pcall(L, 1, 1), LUA_OK);
	assert_string_equal(lua_tostring(L, -1),
						"{\"a\":5.3,\"b\":0.30000000000000004,\"c\":9007199254740993,"
						"\"d\":2,\"e\":null}");
	lua_close(L);
}

/*
 * The filtered streams themselves, in a child whose stdout and stderr are
 * pipes: printf, a byte at a time with fputc, and the live line's own
 * escape sequence, which alone passes.
 */
static void
test_output_filtered_streams(void **state)
{
	int			out[2];
	int			err[2];
	pid_t		pid;
	char		buf[512];
	ssize_t		n;
	int			status;
	size_t		got = 0;

	assert_int_equal(pipe(out), 0);
	assert_int_equal(pipe(err), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
	{
		const char *euro = "\xe2\x82\xac";

		dup2(out[1], STDOUT_FILENO);
		dup2(err[1], STDERR_FILENO);
		close(out[0]);
		close(err[0]);
		pgs_output_init();
		printf("out \x1b[2J%s\n", euro);
		fflush(stdout);
		pgs_term_control("\r\033[K");
		fputc(euro[0], stderr);
		fputc(euro[1], stderr);
		fputc(euro[2], stderr);
		fprintf(stderr, " err \x1b]0;t\x07 \xff\n");
		pgs_output_json(true);
		printf("{\"a\":\"\x1b\xff\"}\n");
		fclose(stdout);
		fclose(stderr);
		_exit(0);
	}
	close(out[1]);
	close(err[1]);
	while ((n = read(out[0], buf + got, sizeof(buf) - 1 - got)) > 0)
		got += n;
	buf[got] = '\0';
	assert_string_equal(buf, "out \\x1b[2J\xe2\x82\xac\n\r\033[K{\"a\":\"\\u001b\\ufffd\"}\n");
	got = 0;
	while ((n = read(err[0], buf + got, sizeof(buf) - 1 - got)) > 0)
		got += n;
	buf[got] = '\0';
	assert_string_equal(buf, "\xe2\x82\xac err \\x1b]0;t\\x07 \\xff\n");
	close(out[0]);
	close(err[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_output_utf8_decode),
		cmocka_unit_test(test_output_terminal_text),
		cmocka_unit_test(test_output_terminal_json_mode),
		cmocka_unit_test(test_output_split_sequence_kept_for_next_write),
		cmocka_unit_test(test_output_json_quote),
		cmocka_unit_test(test_output_prelude_json_strings),
		cmocka_unit_test(test_output_prelude_json_numbers),
		cmocka_unit_test(test_output_filtered_streams),
	};

	return cmocka_run_group_tests_name("output", tests, NULL, NULL);
}
