/*
 * test_sandbox.c
 *	  pgshift plan and lint review a migration file that need not be
 *	  trusted: the file runs in a sandbox.  These tests run `plan --offline`
 *	  (pgs_cmd_plan) on hostile files: nothing outside the sandbox is
 *	  reachable, what migrations use still works, the plan shows what the
 *	  file's code sent whatever the code does to hide it, and endless loops,
 *	  memory bombs and stuck library calls end with a clear error.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <lauxlib.h>

#include "pgshift.h"

static char dir[] = "/tmp/pgshift-sandbox.XXXXXX";
static char marker[256];		/* a hostile file's proof that it got out */

static int
group_setup(void **state)
{
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(marker, sizeof(marker), "%s/escaped", dir);
	return 0;
}

static int
group_teardown(void **state)
{
	unlink(marker);
	return rmdir(dir);
}

static int
teardown_limits(void **state)
{
	pgs_sandbox_limits(0, 0, 0);
	return 0;
}

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

static char *
read_file(const char *path)
{
	FILE	   *f = fopen(path, "r");
	char	   *buf = calloc(1, 65536);
	size_t		n;

	assert_non_null(f);
	assert_non_null(buf);
	n = fread(buf, 1, 65535, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

typedef struct Planned
{
	int			rc;
	char	   *out;			/* stdout, malloc'd */
	char	   *err;			/* stderr, malloc'd */
} Planned;

/* pgshift plan --offline on text (written to DIR/name), its output captured. */
static Planned
plan(const char *name, const char *text, const char *format)
{
	PgsOptions	opts;
	Planned		p;
	char		outp[300];
	char		errp[300];
	int			saved_out = dup(STDOUT_FILENO);
	int			saved_err = dup(STDERR_FILENO);
	int			fo;
	int			fe;
	const char *path = write_file(name, text);

	snprintf(outp, sizeof(outp), "%s/stdout", dir);
	snprintf(errp, sizeof(errp), "%s/stderr", dir);
	fo = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	fe = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fo >= 0 && fe >= 0);
	memset(&opts, 0, sizeof(opts));
	opts.offline = true;
	opts.format = format;
	fflush(stdout);
	fflush(stderr);
	dup2(fo, STDOUT_FILENO);
	dup2(fe, STDERR_FILENO);
	p.rc = pgs_cmd_plan(&opts, path);
	fflush(stdout);
	fflush(stderr);
	dup2(saved_out, STDOUT_FILENO);
	dup2(saved_err, STDERR_FILENO);
	close(saved_out);
	close(saved_err);
	close(fo);
	close(fe);
	p.out = read_file(outp);
	p.err = read_file(errp);
	unlink(outp);
	unlink(errp);
	unlink(path);
	return p;
}

static void
planned_free(Planned *p)
{
	free(p->out);
	free(p->err);
}

#define assert_contains(hay, needle) \
	do { if (strstr((hay), (needle)) == NULL) \
			fail_msg("expected \"%s\" in:\n%s", (needle), (hay)); } while (0)

/*
 * Every way out of the sandbox a reviewer's plan could offer: each attempt
 * would create the marker file.  The file itself is a valid migration.
 */
static void
test_sandbox_no_way_out(void **state)
{
	char		code[4096];
	Planned		p;
	struct stat st;

	unlink(marker);
	snprintf(code, sizeof(code),
			 "local m = '%s'\n"
			 "local function out(o) local f = o.open(m, 'w'); f:write('x'); f:close() end\n"
			 "local tries = {\n"
			 "  function() out(io) end,\n"
			 "  function() os.execute('touch ' .. m) end,\n"
			 "  function() out(_G.io) end,\n"
			 "  function() out(require('io')) end,\n"
			 "  function() out(package.loaded.io) end,\n"
			 "  function() out(debug.getregistry()._LOADED.io) end,\n"
			 "  function() dofile('/dev/null') end,\n"
			 "  function() loadfile('/dev/null') end,\n"
			 /* the strings' metatable leads to the real string table */
			 "  function() local s = getmetatable('').__index; out(s.dump and load(s.dump(out)) or nil) end,\n"
			 "  function() local f = ('').dump(function() end); load(f, 'x', 'b')() end,\n"
			 /* a chunk loaded without an environment gets the sandbox's */
			 "  function() out(load('return io')()) end,\n"
			 "  function() load('io.open(...)')(m) end,\n"
			 /* a coroutine's function has the same environment */
			 "  function() coroutine.wrap(function() out(io) end)() end,\n"
			 /* the runner's own functions have no metatable to follow */
			 "  function() out(getmetatable(migration)) end,\n"
			 "  function() collectgarbage('stop') end,\n"
			 /* a finalizer runs with hooks off: no limit could stop it */
			 "  function() setmetatable({}, { __gc = function() while true do end end }) end,\n"
			 "}\n"
			 "local refused = 0\n"
			 "for _, f in ipairs(tries) do if not pcall(f) then refused = refused + 1 end end\n"
			 "return migration { name = 'hostile', description = 'refused ' .. refused .. ' of ' .. #tries,\n"
			 "  phases = { { name = 'a', up = function(db)\n"
			 "    for _, f in ipairs(tries) do pcall(f) end\n"
			 "    pcall(function() out(getmetatable(db)) end)\n"
			 "    db:exec('SELECT 1')\n"
			 "  end } } }\n", marker);
	p = plan("hostile.lua", code, NULL);
	assert_int_equal(p.rc, PGS_EXIT_OK);
	assert_int_not_equal(stat(marker, &st), 0);
	assert_contains(p.out, "refused 16 of 16");
	assert_contains(p.out, "SELECT 1;");
	planned_free(&p);
}

/* What migrations legitimately use is there, and says so when it is not. */
static void
test_sandbox_offers_what_migrations_use(void **state)
{
	Planned		p;

	p = plan("fine.lua",
			 "assert(string.format('%05.1f', 1.5) == '001.5' and ('ab'):upper() == 'AB')\n"
			 "assert(table.concat({1, 2}, ',') == '1,2' and math.max(1, 2) == 2)\n"
			 "assert(utf8.char(233) == '\\u{e9}' and utf8.len('\\u{e9}') == 1)\n"
			 "assert(type(os.time()) == 'number' and os.date('!%Y', 0) == '1970')\n"
			 "assert(type(os.clock()) == 'number' and os.difftime(2, 1) == 1)\n"
			 "assert(os.getenv('HOME') == nil)        -- the reviewer's environment is private\n"
			 "assert(load('return 1 + ...')(1) == 2)\n"
			 "assert(coroutine.wrap(function() coroutine.yield(7) end)() == 7)\n"
			 "assert(getmetatable('') == false and string.dump == nil)\n"
			 "assert(select('#', pcall(error)) == 2 and tostring(nil) == 'nil')\n"
			 "local ok, e = pcall(function() return io.open end)\n"
			 "assert(not ok and e:find('io.open is not available in pgshift plan and lint', 1, true), e)\n"
			 "ok, e = pcall(require, 'x')\n"
			 "assert(not ok and e:find('require is not available', 1, true), e)\n"
			 "string.format = nil                     -- its own copy: the runner's is untouched\n"
			 "log('printed by run, not by plan'); print('nor this')\n"
			 "return migration { name = 'fine', phases = {\n"
			 "  { name = 'a', up = function(db) db:exec('SELECT ' .. math.floor(2.5)) end },\n"
			 "  online.change_column_type { table = 't', column = 'c', type = 'bigint' } } }\n",
			 NULL);
	assert_int_equal(p.rc, PGS_EXIT_OK);
	assert_contains(p.out, "SELECT 2;");
	assert_contains(p.out, "t_c_type-swap");
	assert_true(strstr(p.out, "printed") == NULL && strstr(p.out, "nor this") == NULL);
	assert_string_equal(p.err, "");
	planned_free(&p);
}

/* A binary chunk cannot be loaded, even one made by hand. */
static void
test_sandbox_binary_chunks_refused(void **state)
{
	Planned		p;

	p = plan("binary.lua",
			 "local f, e = load('\\27LuaT\\0\\25\\147\\r\\n\\26\\n', 'x', 'b')\n"
			 "assert(f == nil and e:find('attempt to load a binary chunk'), e)\n"
			 "f, e = load(function() return nil end, 'y', 'bt', {})\n"
			 "assert(f)\n"
			 "return migration { name = 'b', phases = { { name = 'a', up = function() end } } }\n",
			 NULL);
	assert_int_equal(p.rc, PGS_EXIT_OK);
	planned_free(&p);
}

/*
 * The plan shows what the phases sent, whatever they do to hide it: the
 * dry-run db's records and metatable are out of their reach.
 */
static void
test_sandbox_plan_cannot_be_doctored(void **state)
{
	Planned		p;

	p = plan("doctor.lua",
			 "return migration { name = 'd', phases = {\n"
			 "  { name = 'a', up = function(db)\n"
			 "      db:exec('DROP TABLE precious_a')\n"
			 "      pcall(function() db.statements[#db.statements] = nil end)\n"
			 "      pcall(function() getmetatable(db).exec = function() return 0 end end)\n"
			 "      pcall(function() getmetatable(db).__index.exec = function() return 0 end end)\n"
			 "    end },\n"
			 "  { name = 'b', up = function(db) db:exec('DROP TABLE precious_b') end } } }\n",
			 NULL);
	assert_int_equal(p.rc, PGS_EXIT_OK);
	assert_contains(p.out, "DROP TABLE precious_a;");
	assert_contains(p.out, "DROP TABLE precious_b;");
	planned_free(&p);
}

/* Endless loops end, wherever they are and however they catch the stop. */
static void
test_sandbox_endless_loops_end(void **state)
{
	static const char *const loops[] = {
		/* at the top level */
		"local n = 0\nwhile true do n = n + 1 end\n",
		/* catching the stop in a loop of its own */
		"while true do pcall(function() while true do end end) end\n",
		/* in a coroutine, which has a hook of its own */
		"coroutine.wrap(function()\n  while true do end\nend)()\n",
		/* in a phase's dry run, then in the next phase's */
		"return migration { name = 'l', phases = {\n"
		"  { name = 'a', up = function() while true do end end },\n"
		"  { name = 'b', up = function() while true do end end } } }\n",
		/* in a metamethod the runner calls (an error object's __tostring) */
		"error(setmetatable({}, { __tostring = function() while true do end end }))\n",
	};
	size_t		i;

	pgs_sandbox_limits(200000, 0, 0);
	for (i = 0; i < sizeof(loops) / sizeof(loops[0]); i++)
	{
		Planned		p = plan("loop.lua", loops[i], NULL);

		assert_int_equal(p.rc, PGS_EXIT_FAIL);
		assert_contains(p.err, "the migration file's code ran more than 200000 Lua instructions");
		assert_contains(p.err, "nothing was changed");
		assert_string_equal(p.out, "");
		planned_free(&p);
	}
}

/* A memory bomb ends at the limit, even one that catches the failures. */
static void
test_sandbox_memory_bomb_ends(void **state)
{
	Planned		p;

	pgs_sandbox_limits(0, 8 << 20, 0);
	p = plan("bomb.lua",
			 "local t = {}\n"
			 "while true do pcall(function() t[#t + 1] = ('x'):rep(100000) .. #t end) end\n",
			 NULL);
	assert_int_equal(p.rc, PGS_EXIT_FAIL);
	assert_contains(p.err, "the migration file's code used more than 8 MiB of memory");
	planned_free(&p);

	p = plan("bomb2.lua", "local s = ('x'):rep(1 << 30)\n", NULL);
	assert_int_equal(p.rc, PGS_EXIT_FAIL);
	assert_contains(p.err, "more than 8 MiB of memory");
	planned_free(&p);
}

/* Library calls that take long each but few instructions: the CPU limit. */
static void
test_sandbox_cpu_limit(void **state)
{
	Planned		p;

	pgs_sandbox_limits(1LL << 60, 0, 1);
	p = plan("cpu.lua",
			 "while true do local s = ('x'):rep(5000):upper():lower() end\n",
			 NULL);
	assert_int_equal(p.rc, PGS_EXIT_FAIL);
	assert_contains(p.err, "cpu.lua:1: the migration file's code used more than 1 s of CPU time");
	planned_free(&p);
}

/*
 * One library call that never returns (no hook runs inside it): the process
 * ends after the grace period, saying why.  In a child of its own, this
 * binary run again with --plan-stuck (exec'd, so that valgrind, which does
 * not follow it, does not count the state the exit leaves as a leak).
 */
static const char *self;

static void
test_sandbox_stuck_library_call_ends_the_process(void **state)
{
	int			err[2];
	pid_t		pid;
	char		buf[512];
	ssize_t		n;
	size_t		got = 0;
	int			status;
	char		path[256];

	snprintf(path, sizeof(path), "%s", write_file("stuck.lua", "local s = (''):rep(1 << 62)\n"));
	assert_int_equal(pipe(err), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
	{
		dup2(err[1], STDERR_FILENO);
		close(err[0]);
		execl(self, self, "--plan-stuck", path, (char *) NULL);
		_exit(43);
	}
	close(err[1]);
	while ((n = read(err[0], buf + got, sizeof(buf) - 1 - got)) > 0)
		got += n;
	buf[got] = '\0';
	close(err[0]);
	unlink(path);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), PGS_EXIT_FAIL);
	assert_contains(buf, "went on past the CPU time limit inside one call that cannot be interrupted");
}

/* The child of the test above: plan FILE with a CPU limit of 1 s. */
static int
plan_stuck(const char *path)
{
	PgsOptions	opts;

	memset(&opts, 0, sizeof(opts));
	opts.offline = true;
	pgs_sandbox_limits(0, 0, 1);
	pgs_cmd_plan(&opts, path);
	return 42;					/* not reached: the guard ends the process */
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sandbox_no_way_out),
		cmocka_unit_test(test_sandbox_offers_what_migrations_use),
		cmocka_unit_test(test_sandbox_binary_chunks_refused),
		cmocka_unit_test(test_sandbox_plan_cannot_be_doctored),
		cmocka_unit_test_teardown(test_sandbox_endless_loops_end, teardown_limits),
		cmocka_unit_test_teardown(test_sandbox_memory_bomb_ends, teardown_limits),
		cmocka_unit_test_teardown(test_sandbox_cpu_limit, teardown_limits),
		cmocka_unit_test(test_sandbox_stuck_library_call_ends_the_process),
	};

	if (argc == 3 && strcmp(argv[1], "--plan-stuck") == 0)
		return plan_stuck(argv[2]);
	self = argv[0];
	return cmocka_run_group_tests_name("sandbox", tests, group_setup, group_teardown);
}
