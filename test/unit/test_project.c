/*
 * test_project.c
 *	  The project file DIR/pgshift.conf (pgs_conf_read) and the target
 *	  helpers of project.c: what a server is not needed for.  The file is
 *	  Lua that may only set four names: every other thing it tries (reading
 *	  a name, calling a library, a loop, a memory bomb, bytecode) is an error
 *	  that names the file and line; the duration and service quoting rules.
 *	  The directory commands themselves run against a real server in
 *	  test/integration/12_project.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "pgshift.h"
#include "unit_files.h"

static char dir[] = "/tmp/pgshift-project.XXXXXX";

static int
group_setup(void **state)
{
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
group_teardown(void **state)
{
	char		path[256];

	snprintf(path, sizeof(path), "%s/pgshift.conf", dir);
	unlink(path);
	return rmdir(dir);
}

/* Reads text as pgshift.conf: its exit code, *conf and *error filled. */
static int
read_conf(const char *text, PgsConf *conf, char **error)
{
	const char *path = unit_write_file(dir, "pgshift.conf", text);

	return pgs_conf_read(path, conf, error);
}

/* text must be refused with an error containing want. */
static void
expect_conf_error(const char *text, const char *want)
{
	PgsConf		conf;
	char	   *error = NULL;

	assert_int_equal(read_conf(text, &conf, &error), PGS_EXIT_USAGE);
	assert_non_null(error);
	if (strstr(error, want) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", error, want);
	/* nothing half-read is left */
	assert_null(conf.service);
	assert_null(conf.dsn);
	assert_null(conf.fail_on);
	assert_true(conf.lock_wait < 0);
	free(error);
}

static void
test_project_conf_all_settings(void **state)
{
	PgsConf		conf;
	char	   *error = NULL;

	assert_int_equal(read_conf("-- defaults\n"
							   "service = \"staging\"\n"
							   "local w = \"2min\"\n"
							   "lock_wait = w\n"
							   "fail_on = \"Medium\"\n", &conf, &error), PGS_EXIT_OK);
	assert_null(error);
	assert_string_equal(conf.service, "staging");
	assert_null(conf.dsn);
	assert_true(conf.lock_wait == 120);
	assert_string_equal(conf.fail_on, "MEDIUM");
	pgs_conf_free(&conf);
}

static void
test_project_conf_empty_and_dsn(void **state)
{
	PgsConf		conf;
	char	   *error = NULL;

	assert_int_equal(read_conf("", &conf, &error), PGS_EXIT_OK);
	assert_null(conf.service);
	assert_null(conf.dsn);
	assert_true(conf.lock_wait < 0);
	assert_null(conf.fail_on);
	assert_int_equal(read_conf("dsn = 'host=db1 dbname=app'\nlock_wait = 0.5\n",
							   &conf, &error), PGS_EXIT_OK);
	assert_string_equal(conf.dsn, "host=db1 dbname=app");
	assert_true(conf.lock_wait == 0.5);
	pgs_conf_free(&conf);
}

static void
test_project_conf_errors_name_the_line(void **state)
{
	expect_conf_error("service = \"a\"\n\nlockwait = 5\n",
					  "pgshift.conf:3: unknown setting \"lockwait\"");
	expect_conf_error("service = staging\n",
					  "pgshift.conf:1: \"staging\" is not defined");
	expect_conf_error("\nservice = 5\n", "pgshift.conf:2: service must be a non-empty string, not a number");
	expect_conf_error("service = ''\n", "pgshift.conf:1: service must be a non-empty string, not an empty one");
	expect_conf_error("lock_wait = {}\n", "pgshift.conf:1: lock_wait must be seconds (5) or a duration");
	expect_conf_error("lock_wait = -1\n", "pgshift.conf:1: lock_wait: \"-1\" is not a duration from 0 to 24 h");
	expect_conf_error("lock_wait = 1e9\n", "is not a duration from 0 to 24 h");
	expect_conf_error("lock_wait = 0/0\n", "is not a duration from 0 to 24 h");
	expect_conf_error("fail_on = 3\n", "pgshift.conf:1: fail_on must be a string");
	expect_conf_error("fail_on = 'none'\n", "fail_on: \"none\" is not critical, high, medium or low");
	expect_conf_error("service = 'a'\nservice = 'b'\n", "pgshift.conf:2: service is set twice");
	expect_conf_error("dsn = 'x'\nservice = 'b'\n", "pgshift.conf:2: service: dsn is set already");
	expect_conf_error("service = 'a' 'b'\n", "pgshift.conf:1:");
	expect_conf_error("[1] = 2\n", "pgshift.conf:1: unexpected symbol");
	expect_conf_error("_ENV[1] = 2\n", "pgshift.conf:1: only names can be set");
}

/* Nothing outside: no library, no metatable of strings, no bytecode. */
static void
test_project_conf_reaches_nothing(void **state)
{
	expect_conf_error("os.execute('true')\n", "pgshift.conf:1: \"os\" is not defined");
	expect_conf_error("print(1)\n", "\"print\" is not defined");
	expect_conf_error("load('x = 1')()\n", "\"load\" is not defined");
	expect_conf_error("require 'io'\n", "\"require\" is not defined");
	expect_conf_error("local s = ('x'):rep(10)\n", "pgshift.conf:1: attempt to index a string value");
	/* a binary chunk is refused */
	expect_conf_error("\x1bLua", "pgshift.conf: attempt to load a binary chunk");
	expect_conf_error("setmetatable(_ENV, nil)\n", "\"setmetatable\" is not defined");
}

/* A loop and a memory bomb stop, with the line of the first. */
static void
test_project_conf_limits(void **state)
{
	expect_conf_error("local n = 0\nwhile true do n = n + 1 end\n",
					  "pgshift.conf:2: stopped after 1000000 Lua instructions (a loop?)");
	expect_conf_error("local t = {}\nfor i = 1, 1e7 do t[i] = i end\n",
					  "uses more than 1024 kB of memory");
	expect_conf_error("local s = 'xxxxxxxxxxxxxxxx'\nfor i = 1, 40 do s = s .. s end\n",
					  "uses more than 1024 kB of memory");
}

static void
test_project_conf_missing_file(void **state)
{
	PgsConf		conf;
	char	   *error = NULL;
	char		path[256];

	snprintf(path, sizeof(path), "%s/nosuch.conf", dir);
	assert_int_equal(pgs_conf_read(path, &conf, &error), PGS_EXIT_USAGE);
	assert_non_null(strstr(error, "cannot open"));
	free(error);
}

static void
test_project_durations(void **state)
{
	assert_true(pgs_parse_duration("5") == 5);
	assert_true(pgs_parse_duration("5s") == 5);
	assert_true(pgs_parse_duration("1.5s") == 1.5);
	assert_true(pgs_parse_duration("250ms") == 0.25);
	assert_true(pgs_parse_duration("2min") == 120);
	assert_true(pgs_parse_duration("1h") == 3600);
	assert_true(pgs_parse_duration("") < 0);
	assert_true(pgs_parse_duration("s") < 0);
	assert_true(pgs_parse_duration("5 s") < 0);
	assert_true(pgs_parse_duration("5m") < 0);	/* minutes or metres? */
	assert_true(pgs_parse_duration("-1s") < 0);
	assert_true(pgs_parse_duration("nan") < 0);
}

static void
test_project_service_dsn(void **state)
{
	char	   *dsn = pgs_service_dsn("staging");

	assert_string_equal(dsn, "service='staging'");
	free(dsn);
	/* a quote or a backslash cannot end the value and add a keyword */
	dsn = pgs_service_dsn("x' host='evil\\");
	assert_string_equal(dsn, "service='x\\' host=\\'evil\\\\'");
	free(dsn);
}

static void
test_project_resolve_target(void **state)
{
	PgsOptions	opts;

	memset(&opts, 0, sizeof(opts));
	assert_int_equal(pgs_resolve_target(&opts), PGS_EXIT_OK);
	assert_null(opts.dsn);		/* libpq's environment, PGSERVICE included */
	opts.service = "staging";
	assert_int_equal(pgs_resolve_target(&opts), PGS_EXIT_OK);
	assert_string_equal(opts.dsn, "service='staging'");
	free((char *) opts.dsn);
	opts.dsn = "dbname=x";
	assert_int_equal(pgs_resolve_target(&opts), PGS_EXIT_USAGE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_project_conf_all_settings),
		cmocka_unit_test(test_project_conf_empty_and_dsn),
		cmocka_unit_test(test_project_conf_errors_name_the_line),
		cmocka_unit_test(test_project_conf_reaches_nothing),
		cmocka_unit_test(test_project_conf_limits),
		cmocka_unit_test(test_project_conf_missing_file),
		cmocka_unit_test(test_project_durations),
		cmocka_unit_test(test_project_service_dsn),
		cmocka_unit_test(test_project_resolve_target),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
