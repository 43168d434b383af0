/*
 * test_decl.c
 *	  The conversion of declarative migration documents (JSON, YAML) into Lua
 *	  data (runner/decl.c, pgs_decl_parse): scalar typing, the refusal of
 *	  what is not plain data, the limits, and the line:column marks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <lauxlib.h>

#include "pgshift.h"
#include "unit_files.h"

static char err[2048];

/* Parses text; true leaves document, marks, kinds, keymarks on the stack. */
static bool
parse(lua_State *L, const char *text)
{
	err[0] = '\0';
	return pgs_decl_parse(L, "t.yaml", text, strlen(text), err, sizeof(err));
}

/* Runs Lua code over the parsed values (doc, marks, kinds, keymarks), which must return true. */
static void
assert_lua(lua_State *L, const char *code)
{
	int			top = lua_gettop(L);

	if (luaL_loadstring(L, code) != LUA_OK)
		fail_msg("%s", lua_tostring(L, -1));
	lua_insert(L, top - 3);
	if (lua_pcall(L, 4, 1, 0) != LUA_OK)
		fail_msg("%s", lua_tostring(L, -1));
	if (!lua_toboolean(L, -1))
		fail_msg("false: %s", code);
	lua_settop(L, top - 4);
}

static void
assert_refused(lua_State *L, const char *text, const char *want)
{
	int			top = lua_gettop(L);

	assert_false(parse(L, text));
	assert_int_equal(lua_gettop(L), top);	/* nothing left on the stack */
	if (strstr(err, want) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", err, want);
}

static void
test_decl_scalars(void **state)
{
	lua_State  *L = *state;

	assert_true(parse(L, "{a: 42, b: -7, c: 1.5, d: 2e3, e: '42', f: true, g: False, h: TRUE,\n"
					  " i: yes, j: on, k: \"x y\", l: 0x10, m: 1.}"));
	assert_lua(L, "local d = ... return math.type(d.a) == 'integer' and d.a == 42 and d.b == -7"
			   " and math.type(d.c) == 'float' and d.c == 1.5 and d.d == 2000.0"
			   " and d.e == '42' and d.f == true and d.g == false and d.h == true"
			   " and d.i == 'yes' and d.j == 'on' and d.k == 'x y' and d.l == '0x10' and d.m == '1.'");
}

static void
test_decl_json_and_kinds(void **state)
{
	lua_State  *L = *state;

	assert_true(parse(L, "{\"name\": \"n\",\n \"o\": {},\n \"a\": [],\n \"l\": [1, \"2\", {\"k\": null1}]}"));
	assert_lua(L, "local d, m, k = ... return d.name == 'n' and k[d.o] == 'object' and k[d.a] == 'array'"
			   " and k[d] == 'object' and k[d.l] == 'array' and d.l[1] == 1 and d.l[2] == '2'"
			   " and d.l[3].k == 'null1'");
}

static void
test_decl_marks(void **state)
{
	lua_State  *L = *state;

	assert_true(parse(L, "name: x\nops:\n  - a: 1\n    bb: [2, 3]\n"));
	assert_lua(L, "local d, m, k, km = ... return m[d][0] == '1:1' and m[d].name == '1:7'"
			   " and m[d.ops][1] == '3:5' and m[d.ops[1]].bb == '4:9' and km[d.ops[1]].bb == '4:5'"
			   " and m[d.ops[1].bb][2] == '4:13' and km[d].ops == '2:1'");
}

static void
test_decl_refused(void **state)
{
	lua_State  *L = *state;

	assert_refused(L, "a: 99999999999999999999\n", "t.yaml:1:4: a: integer 99999999999999999999 is out of range");
	assert_refused(L, "a: null\n", "t.yaml:1:4: a: null is not a value here");
	assert_refused(L, "a: ~\n", "null is not a value here");
	assert_refused(L, "a: 1\na: 2\n", "t.yaml:2:1: duplicate key 'a'");
	assert_refused(L, "? [a]\n: 1\n", "a key must be a name, not a list");
	assert_refused(L, "a: &x 1\nb: *x\n", "t.yaml:1:4: a: anchors (&x) and aliases are not allowed");
	assert_refused(L, "a: !!int 1\n", "t.yaml:1:4: a: tags (tag:yaml.org,2002:int) are not allowed");
	assert_refused(L, "a: 1\n---\nb: 2\n", "t.yaml:2:1: a second document");
	assert_refused(L, "", "the file holds no document");
	assert_refused(L, "# only a comment\n", "the file holds no document");
	assert_refused(L, "a: [1, 2\n", "t.yaml:2:1: a: invalid YAML: did not find expected ',' or ']'");
	assert_refused(L, "a: 1e999\n", "t.yaml:1:4: a: number 1e999 is out of range");
	assert_refused(L, "a: -2e400\n", "a: number -2e400 is out of range");
	/* the kind named is the file's last suffix's */
	assert_false(pgs_decl_parse(L, "x.json.yaml", "a: [1, 2\n", 9, err, sizeof(err)));
	assert_non_null(strstr(err, "invalid YAML"));
	assert_false(pgs_decl_parse(L, "x.yaml.json", "{\"a\": [1, 2", 11, err, sizeof(err)));
	assert_non_null(strstr(err, "invalid JSON"));
	assert_false(pgs_decl_parse(L, "z.json", "{\"a\": \"x\0y\"}", 12, err, sizeof(err)));
	assert_non_null(strstr(err, "z.json: the document contains a zero byte"));
}

static void
test_decl_limits(void **state)
{
	lua_State  *L = *state;
	char		text[256];
	int			i;
	char	   *big;

	/* 32 levels: accepted; 33: refused */
	for (i = 0; i < 32; i++)
		text[i] = '[';
	for (i = 0; i < 32; i++)
		text[32 + i] = ']';
	text[64] = '\0';
	assert_true(parse(L, text));
	lua_pop(L, 4);
	memmove(text + 1, text, 65);
	text[0] = '[';
	strcat(text, "]");
	assert_refused(L, text, "nested more than 32 levels deep");

	big = malloc(1024 * 1024 + 2);
	assert_non_null(big);
	memset(big, 'x', 1024 * 1024 + 1);
	big[1024 * 1024 + 1] = '\0';
	assert_refused(L, big, "t.yaml: the document is larger than 1048576 bytes");
	big[1024 * 1024] = '\0';
	assert_true(parse(L, big));		/* exactly the limit: a (long) string */
	lua_pop(L, 4);
	free(big);
}

static void
test_decl_file_names(void **state)
{
	assert_true(pgs_migration_file_name("a.lua"));
	assert_true(pgs_migration_file_name("001_x.json"));
	assert_true(pgs_migration_file_name("b.yaml"));
	assert_true(pgs_migration_file_name("b.yml"));
	assert_false(pgs_migration_file_name(".yml"));
	assert_false(pgs_migration_file_name("b.yaml.bak"));
	assert_false(pgs_migration_file_name("README.txt"));
	assert_false(pgs_migration_file_name("x.jsonl"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decl_scalars),
		cmocka_unit_test(test_decl_json_and_kinds),
		cmocka_unit_test(test_decl_marks),
		cmocka_unit_test(test_decl_refused),
		cmocka_unit_test(test_decl_limits),
		cmocka_unit_test(test_decl_file_names),
	};

	return cmocka_run_group_tests(tests, unit_lua_setup, unit_lua_teardown);
}
