/*
 * test_prelude.c
 *	  Validation of migration files by the embedded prelude: every malformed
 *	  shape is refused with "file:line: what is wrong" before anything
 *	  connects to a database.  And the file's digest, which the drift check
 *	  compares with the one recorded in the database: it must stay the
 *	  SHA-256 a DBA gets from sha256sum (FIPS 180-4 test vectors).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <lauxlib.h>

#include "pgshift.h"

static char dir[] = "/tmp/pgshift-unit.XXXXXX";

static int
group_setup(void **state)
{
	return mkdtemp(dir) ? 0 : -1;
}

static int
group_teardown(void **state)
{
	return rmdir(dir);
}

/* Writes text to DIR/name and returns the path (static buffer). */
static const char *
write_file(const char *name, const char *text)
{
	static char path[256];
	FILE	   *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

/*
 * Loads text as migration file `name` and checks that it is refused with a
 * message containing "WHERE:LINE:" (WHERE: the file expected in the message)
 * and fragment.
 */
static void
expect_refusal_in(const char *where_file, const char *name, const char *text,
				  int line, const char *fragment)
{
	lua_State  *L = pgs_lua_new(NULL);
	const char *path = write_file(name, text);
	char		where[128];
	const char *msg;

	assert_non_null(L);
	assert_int_equal(pgs_load_migration(L, path, NULL), PGS_EXIT_FAIL);
	assert_true(lua_istable(L, -1));
	lua_getfield(L, -1, "message");
	msg = lua_tostring(L, -1);
	assert_non_null(msg);
	snprintf(where, sizeof(where), "%s:%d: ", where_file, line);
	if (line > 0 && strstr(msg, where) == NULL)
		fail_msg("expected \"%s\" in \"%s\"", where, msg);
	if (strstr(msg, fragment) == NULL)
		fail_msg("expected \"%s\" in \"%s\"", fragment, msg);
	lua_close(L);
	unlink(path);
}

static void
expect_refusal(const char *name, const char *text, int line, const char *fragment)
{
	expect_refusal_in(name, name, text, line, fragment);
}

static void
test_prelude_valid_file_loads(void **state)
{
	lua_State  *L = pgs_lua_new(NULL);
	const char *path = write_file("ok.lua",
		"return migration {\n"
		"  name = 'ok', description = 'fine',\n"
		"  phases = {\n"
		"    { name = 'a', up = function(db) end, down = function(db) end },\n"
		"    { name = 'b', up = function(db) end, verify = function(db) end },\n"
		"  },\n"
		"}\n");

	assert_int_equal(pgs_load_migration(L, path, NULL), PGS_EXIT_OK);
	lua_getfield(L, -1, "name");
	assert_string_equal(lua_tostring(L, -1), "ok");
	lua_getfield(L, -2, "phases");
	assert_int_equal(luaL_len(L, -1), 2);
	lua_geti(L, -1, 2);
	lua_getfield(L, -1, "line");
	assert_int_equal(lua_tointeger(L, -1), 5);
	lua_close(L);
	unlink(path);
}

static void
test_prelude_syntax_error(void **state)
{
	expect_refusal("syntax.lua",
				   "return migration {\n  name = 'x'\n  phases = {}\n}\n",
				   3, "'}' expected");
}

static void
test_prelude_runtime_error_at_top_level(void **state)
{
	expect_refusal("toplevel.lua",
				   "local x = nil\n\nlocal y = x.field\n",
				   3, "attempt to index a nil value");
}

static void
test_prelude_missing_name(void **state)
{
	expect_refusal("noname.lua",
				   "\nreturn migration {\n  phases = { { name = 'a', up = function() end } },\n}\n",
				   2, "migration: missing 'name'");
}

static void
test_prelude_unknown_migration_key(void **state)
{
	expect_refusal("unknownkey.lua",
				   "return migration {\n  name = 'x',\n  phase = {},\n}\n",
				   1, "unknown key 'phase'");
}

static void
test_prelude_wrong_type(void **state)
{
	expect_refusal("wrongtype.lua",
				   "return migration { name = 42, phases = {} }\n",
				   1, "'name' must be a string, got number");
}

static void
test_prelude_bad_name(void **state)
{
	expect_refusal("badname.lua",
				   "return migration { name = 'drop table; x', phases = { { name = 'a', up = print } } }\n",
				   1, "may contain only letters");
}

static void
test_prelude_no_phases(void **state)
{
	expect_refusal("nophases.lua",
				   "return migration { name = 'x', phases = {} }\n",
				   1, "at least one phase");
	expect_refusal("nophases2.lua",
				   "return migration { name = 'x' }\n",
				   1, "at least one phase");
}

static void
test_prelude_phases_not_a_list(void **state)
{
	expect_refusal("notlist.lua",
				   "return migration { name = 'x', phases = { expand = { name = 'a', up = print } } }\n",
				   1, "'phases' must be a list");
}

static void
test_prelude_phase_not_a_table(void **state)
{
	expect_refusal("phasetype.lua",
				   "return migration { name = 'x', phases = { 'expand' } }\n",
				   1, "phase 1 must be a table, got string");
}

static void
test_prelude_phase_without_up(void **state)
{
	expect_refusal("noup.lua",
				   "return migration {\n  name = 'x',\n  phases = {\n"
				   "    { name = 'a', up = function() end },\n"
				   "    { name = 'b',\n      down = function() end },\n  },\n}\n",
				   6, "phase 2 'b': missing 'up' function");
	/* no function at all: the line of the migration { call */
	expect_refusal("noup2.lua",
				   "\n\nreturn migration { name = 'x', phases = { { name = 'b' } } }\n",
				   3, "missing 'up' function");
}

static void
test_prelude_duplicate_phase(void **state)
{
	expect_refusal("dup.lua",
				   "return migration {\n  name = 'x',\n  phases = {\n"
				   "    { name = 'expand', up = function() end },\n"
				   "    { name = 'expand',\n      up = function() end },\n  },\n}\n",
				   6, "phase 2 'expand': duplicate phase name (phase 1 has it too)");
}

static void
test_prelude_unknown_phase_key(void **state)
{
	expect_refusal("phasekey.lua",
				   "return migration {\n  name = 'x',\n  phases = {\n"
				   "    { name = 'a', up = function() end, verfy = function() end },\n  },\n}\n",
				   4, "unknown key 'verfy'");
}

static void
test_prelude_phase_function_wrong_type(void **state)
{
	expect_refusal("uptype.lua",
				   "return migration { name = 'x', phases = { { name = 'a', up = 'ALTER TABLE t' } } }\n",
				   1, "'up' must be a function, got string");
}

static void
test_prelude_metatables_refused(void **state)
{
	/* a metatable could make a phase look valid to the checks only */
	expect_refusal("meta.lua",
				   "local p = setmetatable({}, { __index = { name = 'a', up = 'x' } })\n"
				   "return migration { name = 'm', phases = { p } }\n",
				   2, "phase 1 must be a plain table (it has a metatable)");
	expect_refusal("meta2.lua",
				   "return migration(setmetatable({ name = 'm' }, { __index = { phases = {} } }))\n",
				   1, "migration must be a plain table");
}

static void
test_prelude_phase_from_helper_points_at_helper(void **state)
{
	char		helper[256];
	char		code[512];
	FILE	   *f;

	snprintf(helper, sizeof(helper), "%s/helper.lua", dir);
	f = fopen(helper, "w");
	assert_non_null(f);
	fputs("local M = {}\n\nfunction M.phase(name)\n  return { name = name,\n"
		  "    up = function(db) end, bogus = 1 }\nend\nreturn M\n", f);
	fclose(f);
	snprintf(code, sizeof(code),
			 "local h = dofile('%s')\nreturn migration { name = 'm', phases = { h.phase('a') } }\n",
			 helper);
	expect_refusal_in("helper.lua", "main.lua", code, 5, "unknown key 'bogus'");
	unlink(helper);
}

static void
test_prelude_migration_not_a_table(void **state)
{
	expect_refusal("call.lua",
				   "\nreturn migration 'x'\n",
				   2, "migration: expected a table");
}

static void
test_prelude_file_returns_nothing(void **state)
{
	expect_refusal("noreturn.lua",
				   "migration { name = 'x', phases = { { name = 'a', up = print } } }\n",
				   0, "must end with 'return migration { ... }' (it returned nothing)");
	expect_refusal("returnstring.lua", "return 'x'\n",
				   0, "(it returned a string)");
}

static void
test_prelude_missing_file_is_usage_error(void **state)
{
	lua_State  *L = pgs_lua_new(NULL);

	assert_int_equal(pgs_load_migration(L, "/nonexistent/x.lua", NULL), PGS_EXIT_USAGE);
	lua_getfield(L, -1, "message");
	assert_non_null(strstr(lua_tostring(L, -1), "No such file or directory"));
	assert_int_equal(pgs_load_migration(L, "/tmp", NULL), PGS_EXIT_USAGE);
	lua_getfield(L, -1, "message");
	assert_non_null(strstr(lua_tostring(L, -1), "is not a regular file"));
	lua_close(L);
}

static void
test_prelude_globals_stay_in_the_file(void **state)
{
	lua_State  *L = pgs_lua_new(NULL);
	const char *path = write_file("globals.lua",
		"leaked = 1\nreturn migration { name = 'g', phases = { { name = 'a', up = print } } }\n");

	assert_int_equal(pgs_load_migration(L, path, NULL), PGS_EXIT_OK);
	assert_int_equal(lua_getglobal(L, "leaked"), LUA_TNIL);
	lua_close(L);
	unlink(path);
}

/*
 * What migration{} returns is a copy: a file that changes it afterwards (a
 * phase name no check saw, another up function) changes nothing that runs.
 */
static void
test_prelude_changes_after_validation_ignored(void **state)
{
	lua_State  *L = pgs_lua_new(NULL);
	const char *path = write_file("changed.lua",
		"local ran = false\n"
		"local m = migration { name = 'c', phases = { { name = 'a', up = function() end } } }\n"
		"m.name = 'c\\27[2J'\n"
		"m.phases[1].name = 'a\\27]0;pwned\\7'\n"
		"m.phases[1].up = function() ran = true end\n"
		"m.phases[2] = { name = 'extra', up = function() end }\n"
		"return m\n");

	assert_int_equal(pgs_load_migration(L, path, NULL), PGS_EXIT_OK);
	lua_getfield(L, -1, "name");
	assert_string_equal(lua_tostring(L, -1), "c");
	lua_getfield(L, -2, "phases");
	assert_int_equal(luaL_len(L, -1), 1);
	lua_geti(L, -1, 1);
	lua_getfield(L, -1, "name");
	assert_string_equal(lua_tostring(L, -1), "a");
	lua_close(L);
	unlink(path);
}

/* Writes len bytes of data, repeat times, to DIR/name; returns the path. */
static const char *
write_bytes(const char *name, const char *data, size_t len, size_t repeat)
{
	static char path[256];
	FILE	   *f;
	size_t		i;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	assert_non_null(f);
	for (i = 0; i < repeat; i++)
		assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
	return path;
}

static void
expect_digest(const char *data, size_t len, size_t repeat, const char *want)
{
	const char *path = write_bytes("digest", data, len, repeat);
	char		hex[65];

	assert_int_equal(pgs_sha256_file(path, hex), 0);
	unlink(path);
	assert_string_equal(hex, want);
}

static void
test_prelude_digest_vectors(void **state)
{
	const char *two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	char		block[1000];

	expect_digest("", 0, 1, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	expect_digest("abc", 3, 1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	expect_digest(two_blocks, strlen(two_blocks), 1,
				  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	/* a million 'a': read through the file buffer many times over */
	memset(block, 'a', sizeof(block));
	expect_digest(block, sizeof(block), 1000,
				  "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void
test_prelude_digest_missing_file(void **state)
{
	char		hex[65];

	assert_int_equal(pgs_sha256_file("/nonexistent/migration.lua", hex), ENOENT);
}

/* Loading a valid file gives its digest (value from coreutils sha256sum). */
static void
test_prelude_load_gives_digest(void **state)
{
	lua_State  *L = pgs_lua_new(NULL);
	const char *text = "return migration { name = 'd', phases = { { name = 'a', up = print } } }\n";
	const char *path = write_file("digest.lua", text);
	char		loaded[65];
	char		direct[65];

	assert_int_equal(pgs_load_migration(L, path, loaded), PGS_EXIT_OK);
	assert_int_equal(pgs_sha256_file(path, direct), 0);
	assert_string_equal(loaded, direct);
	assert_string_equal(loaded, "09ee7a0c37e790becb5dc829ed137ec2ba32db773d826582dafa8a06b3ff3dfc");
	lua_close(L);
	unlink(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prelude_valid_file_loads),
		cmocka_unit_test(test_prelude_syntax_error),
		cmocka_unit_test(test_prelude_runtime_error_at_top_level),
		cmocka_unit_test(test_prelude_missing_name),
		cmocka_unit_test(test_prelude_unknown_migration_key),
		cmocka_unit_test(test_prelude_wrong_type),
		cmocka_unit_test(test_prelude_bad_name),
		cmocka_unit_test(test_prelude_no_phases),
		cmocka_unit_test(test_prelude_phases_not_a_list),
		cmocka_unit_test(test_prelude_phase_not_a_table),
		cmocka_unit_test(test_prelude_phase_without_up),
		cmocka_unit_test(test_prelude_duplicate_phase),
		cmocka_unit_test(test_prelude_unknown_phase_key),
		cmocka_unit_test(test_prelude_phase_function_wrong_type),
		cmocka_unit_test(test_prelude_metatables_refused),
		cmocka_unit_test(test_prelude_phase_from_helper_points_at_helper),
		cmocka_unit_test(test_prelude_migration_not_a_table),
		cmocka_unit_test(test_prelude_file_returns_nothing),
		cmocka_unit_test(test_prelude_missing_file_is_usage_error),
		cmocka_unit_test(test_prelude_globals_stay_in_the_file),
		cmocka_unit_test(test_prelude_changes_after_validation_ignored),
		cmocka_unit_test(test_prelude_digest_vectors),
		cmocka_unit_test(test_prelude_digest_missing_file),
		cmocka_unit_test(test_prelude_load_gives_digest),
	};

	return cmocka_run_group_tests_name("prelude", tests, group_setup, group_teardown);
}
