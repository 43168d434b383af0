/*
 * project.c
 *	  A directory of migrations, as a team keeps them: pgshift run, plan,
 *	  lint and status DIR; the project file DIR/pgshift.conf; and the target
 *	  named by --service (libpq's service file).
 *
 * The files of DIR are its regular files named *.lua, *.json, *.yaml or
 * *.yml (not starting with a dot; see pgs_migration_file_name), in
 * byte-wise order of their names (strcmp, whatever the locale), so
 * that 001_a.lua, 002_b.lua, ... run in the order a file listing shows, the
 * same on every machine.  There is no second file listing them to keep in
 * step.  Each file is one migration, known to the database by the name it
 * declares (migration { name = ... }); its state is what shift.status
 * recorded for that name, and its drift is the same comparison as
 * shift.migration_begin's: the script_sha256 recorded against the file's
 * SHA-256 now (pgs_load_migration).  A file "to run" is one that is not
 * done with the same script.
 *
 * run DIR reads what the database recorded, then loads every file (as run
 * FILE would: trusted code) and runs nothing if one is not valid, two
 * declare the same name, or an applied one changed (unless --allow-drift);
 * then runs each file to run, in order, as run FILE does, in the state it
 * was loaded in (a file's top level runs once), and stops at the first that
 * does not finish, with its exit code.
 * plan DIR plans the files to run, lint DIR lints every file, each as for
 * one FILE (in the sandbox), with the worst exit code.  status DIR loads
 * the files in the sandbox and shows each one's state, then the migrations
 * the database has that the directory lacks; it exits 1 if run DIR would
 * refuse a file (invalid, or changed since applied).
 *
 * pgshift.conf is Lua, text only, run with an empty environment whose
 * assignments are checked as they happen (unknown names and wrong types are
 * errors at FILE:LINE), in the sandbox that reviews migration files
 * (script.c's guard) under an instruction and a memory limit of its own: it
 * can set values, nothing else.  What the command line says wins over it.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <lauxlib.h>

#include "pgshift.h"

#define CONF_NAME			"pgshift.conf"
#define CONF_MAX_STEPS		1000000 /* Lua instructions */
#define CONF_MAX_MEMORY		((size_t) 1 << 20)	/* bytes, beyond the empty state */

/* ---- targets ---- */

/*
 * pgs_service_dsn: the connection string "service='NAME'" (quoted as libpq
 * reads it), malloc'd.
 */
char *
pgs_service_dsn(const char *service)
{
	return pgs_conninfo_pair("service", service);
}

static int
project_usage_error(const char *fmt, const char *arg)
{
	fputs("pgshift: ", stderr);
	fprintf(stderr, fmt, arg);
	fputs("\nTry \"pgshift --help\" for more information.\n", stderr);
	return PGS_EXIT_USAGE;
}

/*
 * pgs_resolve_target: --service NAME becomes the connection string
 * service=NAME (libpq then reads the service file: PGSERVICEFILE,
 * ~/.pg_service.conf, PGSYSCONFDIR/pg_service.conf).  With neither --dsn nor
 * --service, opts->dsn stays NULL and libpq's environment decides,
 * PGSERVICE included.
 */
int
pgs_resolve_target(PgsOptions *opts)
{
	char	   *dsn;

	if (opts->service == NULL)
		return PGS_EXIT_OK;
	if (opts->dsn)
		return project_usage_error("%s--dsn and --service both name the target: give one", "");
	if ((dsn = pgs_service_dsn(opts->service)) == NULL)
	{
		pgs_errorf("out of memory\n");
		return PGS_EXIT_USAGE;
	}
	opts->dsn = dsn;			/* lives as long as the command */
	return PGS_EXIT_OK;
}

/* ---- pgshift.conf ---- */

/* What conf_main reads, and fills. */
typedef struct ConfRead
{
	const char *path;
	PgsConf    *conf;
} ConfRead;

/*
 * "5s", "500ms", "2min", "1h" or "5" (seconds) -> seconds; -1 if it is none
 * of these.
 */
double
pgs_parse_duration(const char *text)
{
	static const struct
	{
		const char *unit;
		double		seconds;
	}			units[] = {{"", 1}, {"s", 1}, {"ms", 0.001}, {"min", 60}, {"h", 3600}};
	char	   *end;
	double		v;
	size_t		i;

	errno = 0;
	v = strtod(text, &end);
	if (end == text || errno != 0 || v < 0 || v != v)
		return -1;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcmp(end, units[i].unit) == 0)
			return v * units[i].seconds;
	return -1;
}

/* Raises "KEY WHAT" at the line of the assignment being checked. */
static int
conf_error(lua_State *L, const char *key, const char *what)
{
	return luaL_error(L, "%s %s", key, what);
}

/* "nil", "a number", "a boolean", ...: what a value is, for messages */
static const char *
conf_type(lua_State *L, int idx)
{
	return lua_isnil(L, idx) ? "nil" :
		lua_pushfstring(L, "a %s", luaL_typename(L, idx));
}

/*
 * __newindex of pgshift.conf's environment: every assignment to a global
 * (key = value) comes here, since the environment stays empty.  Checks the
 * name and the value's type and stores it in the PgsConf.
 */
static int
conf_set(lua_State *L)
{
	PgsConf    *conf = lua_touserdata(L, lua_upvalueindex(1));
	const char *key;

	if (lua_type(L, 2) != LUA_TSTRING)
		return luaL_error(L, "only names can be set (service = \"...\", dsn, lock_wait, fail_on)");
	key = lua_tostring(L, 2);
	if (strcmp(key, "service") == 0 || strcmp(key, "dsn") == 0)
	{
		bool		service = key[0] == 's';
		char	  **slot = service ? &conf->service : &conf->dsn;

		if (lua_type(L, 3) != LUA_TSTRING || lua_rawlen(L, 3) == 0)
			return luaL_error(L, "%s must be a non-empty string, not %s%s", key,
							  lua_type(L, 3) == LUA_TSTRING ? "an empty one" : conf_type(L, 3),
							  lua_type(L, 3) == LUA_TNIL ? " (quote it: service = \"staging\")" : "");
		if (*slot)
			return conf_error(L, key, "is set twice");
		if ((service ? conf->dsn : conf->service) != NULL)
			return luaL_error(L, "%s: %s is set already; the default target is a service "
							  "or a DSN, not both", key, service ? "dsn" : "service");
		*slot = strdup(lua_tostring(L, 3));
	}
	else if (strcmp(key, "lock_wait") == 0)
	{
		double		v = -1;

		if (lua_type(L, 3) == LUA_TNUMBER)
			v = lua_tonumber(L, 3);
		else if (lua_type(L, 3) == LUA_TSTRING)
			v = pgs_parse_duration(lua_tostring(L, 3));
		else
			return luaL_error(L, "lock_wait must be seconds (5) or a duration (\"5s\", "
							  "\"500ms\", \"2min\"), not %s", conf_type(L, 3));
		if (!(v >= 0 && v <= 86400))
			return luaL_error(L, "lock_wait: \"%s\" is not a duration from 0 to 24 h "
							  "(such as 5, \"5s\", \"500ms\", \"2min\")", luaL_tolstring(L, 3, NULL));
		if (conf->lock_wait >= 0)
			return conf_error(L, key, "is set twice");
		conf->lock_wait = v;
	}
	else if (strcmp(key, "fail_on") == 0)
	{
		static const char *const levels[] = {"CRITICAL", "HIGH", "MEDIUM", "LOW"};
		size_t		i;

		if (lua_type(L, 3) != LUA_TSTRING)
			return luaL_error(L, "fail_on must be a string (\"critical\", \"high\", "
							  "\"medium\" or \"low\"), not %s", conf_type(L, 3));
		if (conf->fail_on)
			return conf_error(L, key, "is set twice");
		for (i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
			if (strcasecmp(lua_tostring(L, 3), levels[i]) == 0)
				conf->fail_on = levels[i];
		if (conf->fail_on == NULL)
			return luaL_error(L, "fail_on: \"%s\" is not critical, high, medium or low",
							  lua_tostring(L, 3));
	}
	else
		return luaL_error(L, "unknown setting \"%s\" (" CONF_NAME " sets service, dsn, "
						  "lock_wait and fail_on)", key);
	return 0;
}

/* __index of the environment: pgshift.conf has nothing to read. */
static int
conf_get(lua_State *L)
{
	return luaL_error(L, "\"%s\" is not defined: " CONF_NAME " only sets values "
					  "(quote text: service = \"staging\")", luaL_tolstring(L, 2, NULL));
}

/* Loads and runs the file (protected); the PgsConf fills as it goes. */
static int
conf_main(lua_State *L)
{
	ConfRead   *cr = lua_touserdata(L, 1);
	const char *path = cr->path;
	int			rc;

	rc = luaL_loadfilex(L, path, "t");
	if (rc != LUA_OK)
	{
		/* a syntax error names the file and line; a binary chunk does not */
		if (strstr(lua_tostring(L, -1), CONF_NAME) == NULL)
		{
			lua_pushfstring(L, "%s: %s", path, lua_tostring(L, -1));
			lua_remove(L, -2);
		}
		return lua_error(L);
	}
	/* the chunk's only upvalue is its _ENV: an empty table that checks */
	lua_newtable(L);
	lua_createtable(L, 0, 3);
	lua_pushlightuserdata(L, cr->conf);
	lua_pushcclosure(L, conf_set, 1);
	lua_setfield(L, -2, "__newindex");
	lua_pushcfunction(L, conf_get);
	lua_setfield(L, -2, "__index");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_setmetatable(L, -2);
	lua_setupvalue(L, -2, 1);
	lua_call(L, 0, 0);
	return 0;
}

/*
 * pgs_conf_read: reads the project file at path into *conf (which it
 * initializes; free it with pgs_conf_free).  Returns PGS_EXIT_OK, or
 * PGS_EXIT_USAGE with *error (malloc'd) saying what is wrong and where
 * (PATH:LINE: ...).  The file runs in the sandbox of migration files under
 * review (pgs_sandbox_run), with its own limits: a file that sets a few
 * values needs neither many instructions nor much memory.  It gets no CPU
 * timer: it can call no library function, so the instruction count sees
 * all it does.
 */
int
pgs_conf_read(const char *path, PgsConf *conf, char **error)
{
	ConfRead	cr = {path, conf};
	PgsSandboxRun run;
	int			rc;
	char		buf[1024];

	memset(conf, 0, sizeof(*conf));
	conf->lock_wait = -1;
	*error = NULL;
	memset(&run, 0, sizeof(run));
	run.steps = CONF_MAX_STEPS;
	run.memory = CONF_MAX_MEMORY;
	rc = pgs_sandbox_run(&run, conf_main, &cr);
	if (rc == LUA_OK)
		return PGS_EXIT_OK;
	if (run.stop == PGS_SANDBOX_STEPS)
	{
		snprintf(buf, sizeof(buf), "%s: stopped after %d Lua instructions (a loop?): "
				 CONF_NAME " only sets values", *run.where ? run.where : path,
				 CONF_MAX_STEPS);
		*error = strdup(buf);
		free(run.error);
	}
	else if (run.stop == PGS_SANDBOX_MEMORY || rc == LUA_ERRMEM)
	{
		snprintf(buf, sizeof(buf), "%s: uses more than %zu kB of memory: "
				 CONF_NAME " only sets values", path, CONF_MAX_MEMORY >> 10);
		*error = strdup(buf);
		free(run.error);
	}
	else
		*error = run.error;
	pgs_conf_free(conf);
	conf->lock_wait = -1;
	return PGS_EXIT_USAGE;
}

void
pgs_conf_free(PgsConf *conf)
{
	free(conf->service);
	free(conf->dsn);
	conf->service = conf->dsn = NULL;
	conf->fail_on = NULL;
}

/*
 * DIR/pgshift.conf, if there is one, fills in what the command line left
 * unset: the target (when neither --dsn nor --service is given), lock_wait,
 * fail_on.
 */
static int
apply_conf(PgsOptions *opts, const char *dir)
{
	char		path[4096];
	struct stat st;
	PgsConf		conf;
	char	   *error;

	snprintf(path, sizeof(path), "%s/%s", dir, CONF_NAME);
	if (stat(path, &st) != 0 && errno == ENOENT)
		return PGS_EXIT_OK;
	if (pgs_conf_read(path, &conf, &error) != PGS_EXIT_OK)
	{
		pgs_errorf("%s\n", error);
		fprintf(stderr, "  the project file is Lua that sets values, such as:\n"
				"    service = \"staging\"   -- or dsn = \"host=db1 dbname=app\"\n"
				"    lock_wait = \"5s\"\n"
				"    fail_on = \"high\"\n"
				"  nothing was run\n");
		free(error);
		return PGS_EXIT_USAGE;
	}
	if (opts->dsn == NULL && opts->service == NULL)
	{
		/* the PgsConf's strings live as long as the command */
		opts->service = conf.service;
		opts->dsn = conf.dsn;
	}
	if (!opts->lock_wait_given && conf.lock_wait >= 0)
		opts->lock_wait = conf.lock_wait;
	if (opts->fail_on == NULL)
		opts->fail_on = conf.fail_on;
	return PGS_EXIT_OK;
}

/* ---- the files of a directory ---- */

typedef struct ProjectFile
{
	char	   *path;			/* DIR/BASE */
	const char *base;			/* the file's name, in path */
	char	   *name;			/* the migration's name; NULL if it did not load */
	char	   *error;			/* why it did not load */
	int			load_rc;
	char		sha256[65];
	lua_State  *L;				/* run: the state it loaded in, kept to run it */
	/* recorded in the database (NULL: nothing) */
	const char *status;
	const char *recorded_sha256;
} ProjectFile;

typedef struct Project
{
	const char *dir;
	ProjectFile *files;
	int			nfiles;
	PGconn	   *conn;
	PGresult   *recorded;		/* shift.status: migration, status, script_sha256 */
} Project;

bool
pgs_is_directory(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int
compare_files(const void *a, const void *b)
{
	return strcmp(((const ProjectFile *) a)->base, ((const ProjectFile *) b)->base);
}

/* The migration files of p->dir, in byte-wise order of their names. */
static int
list_files(Project *p)
{
	DIR		   *d = opendir(p->dir);
	struct dirent *e;
	int			cap = 0;
	size_t		dirlen = strlen(p->dir);

	if (d == NULL)
	{
		pgs_errorf("cannot open directory \"%s\": %s\n", p->dir, strerror(errno));
		return PGS_EXIT_USAGE;
	}
	while ((e = readdir(d)) != NULL)
	{
		size_t		len = strlen(e->d_name);
		ProjectFile *f;
		struct stat st;

		if (e->d_name[0] == '.' || !pgs_migration_file_name(e->d_name))
			continue;
		if (p->nfiles == cap)
		{
			ProjectFile *more = realloc(p->files, (cap ? 2 * cap : 16) * sizeof(ProjectFile));

			if (more == NULL)
				break;
			p->files = more;
			cap = cap ? 2 * cap : 16;
		}
		f = &p->files[p->nfiles];
		memset(f, 0, sizeof(*f));
		if ((f->path = malloc(dirlen + len + 2)) == NULL)
			break;
		sprintf(f->path, "%s%s%s", p->dir, strcmp(p->dir, "/") == 0 ? "" : "/", e->d_name);
		f->base = strrchr(f->path, '/') + 1;
		/* a directory or a device named *.lua is not a migration */
		if (stat(f->path, &st) != 0 || !S_ISREG(st.st_mode))
		{
			free(f->path);
			continue;
		}
		p->nfiles++;
	}
	closedir(d);
	if (e != NULL)
	{
		pgs_errorf("out of memory\n");
		return PGS_EXIT_USAGE;
	}
	if (p->nfiles > 1)
		qsort(p->files, p->nfiles, sizeof(ProjectFile), compare_files);
	return PGS_EXIT_OK;
}

static void match_recorded(Project *p, ProjectFile *f);
static bool is_applied(const ProjectFile *f);

/*
 * Loads every file for its name and hash, each in a state of its own:
 * trusted for run (as run FILE loads it), the sandbox otherwise.  With
 * report, prints the first file that does not load and returns its exit
 * code; else keeps the error with the file and goes on.  With keep (run,
 * which read the recorded state first), the state of each file to run
 * stays open with its migration kept (pgs_keep_migration), so that the run
 * does not load the file a second time; an applied file's closes at once,
 * so that the states held are those of the files to run.
 */
static int
load_files(Project *p, const PgsOptions *opts, bool sandbox, bool report, bool keep)
{
	int			i;
	int			j;

	for (i = 0; i < p->nfiles; i++)
	{
		ProjectFile *f = &p->files[i];
		lua_State  *L = sandbox ? pgs_lua_new_sandbox(opts) : pgs_lua_new(opts);

		if (L == NULL)
			return PGS_EXIT_FAIL;
		f->load_rc = pgs_load_migration(L, f->path, f->sha256);
		if (f->load_rc == PGS_EXIT_OK)
		{
			lua_getfield(L, -1, "name");
			f->name = strdup(lua_tostring(L, -1));
			lua_pop(L, 1);
			match_recorded(p, f);
			if (keep && !is_applied(f))
			{
				pgs_keep_migration(L, f->path, f->sha256);
				f->L = L;
				continue;
			}
		}
		else if (report)
		{
			pgs_print_failure(L, -1, stderr, f->load_rc == PGS_EXIT_FAIL ?
							  "the migration file is not valid; nothing was run" : NULL,
							  opts->verbose);
			pgs_lua_close(L);
			return f->load_rc;
		}
		else
		{
			const char *stopped = pgs_sandbox_stopped(L);

			f->error = strdup(*stopped ? stopped : pgs_failure_message(L, -1, NULL));
		}
		pgs_lua_close(L);
	}
	/* one name, one migration: two files of one name would share its state */
	for (i = 0; i < p->nfiles; i++)
		for (j = 0; j < i; j++)
			if (p->files[i].name && p->files[j].name &&
				strcmp(p->files[i].name, p->files[j].name) == 0)
			{
				pgs_errorf("%s and %s both declare migration \"%s\"\n",
						   p->files[j].path, p->files[i].path, p->files[i].name);
				fprintf(stderr, "  each file of a directory is one migration, known by "
						"its name: rename one of them\n");
				return PGS_EXIT_USAGE;
			}
	return PGS_EXIT_OK;
}

/* What shift.status recorded of f's migration, if p read it and f loaded. */
static void
match_recorded(Project *p, ProjectFile *f)
{
	int			r;

	if (p->recorded == NULL || f->name == NULL)
		return;
	for (r = 0; r < PQntuples(p->recorded); r++)
		if (strcmp(PQgetvalue(p->recorded, r, 0), f->name) == 0)
		{
			f->status = PQgetvalue(p->recorded, r, 1);
			f->recorded_sha256 = PQgetvalue(p->recorded, r, 2);
		}
}

/*
 * Connects and reads what shift.status recorded of every migration, for the
 * files loaded so far and those load_files loads next.
 */
static int
read_recorded(Project *p, const PgsOptions *opts)
{
	PgsError	err;
	int			i;

	memset(&err, 0, sizeof(err));
	if ((p->conn = pgs_connect(opts->dsn, "pgshift", &err)) == NULL ||
		pgs_check_extension(p->conn, &err) != PGS_EXIT_OK)
	{
		pgs_report_error(&err, NULL);
		pgs_error_clear(&err);
		return PGS_EXIT_USAGE;
	}
	p->recorded = pgs_exec(p->conn, "SELECT migration, status, script_sha256 FROM shift.status",
						   0, NULL, &err);
	if (p->recorded == NULL)
	{
		pgs_report_error(&err, "while reading shift.status");
		if (err.sqlstate && strcmp(err.sqlstate, "42501") == 0)
			fprintf(stderr, "  hint: GRANT shift_operator TO %s; (or shift_monitor, "
					"which only reads)\n", PQuser(p->conn));
		pgs_error_clear(&err);
		return PGS_EXIT_USAGE;
	}
	for (i = 0; i < p->nfiles; i++)
		match_recorded(p, &p->files[i]);
	return PGS_EXIT_OK;
}

/* Done with the same script: nothing to run. */
static bool
is_applied(const ProjectFile *f)
{
	return f->status && strcmp(f->status, "done") == 0 &&
		strcmp(f->recorded_sha256, f->sha256) == 0;
}

/* Done, but the file changed since (drift): run refuses it. */
static bool
is_changed(const ProjectFile *f)
{
	return f->status && strcmp(f->status, "done") == 0 &&
		strcmp(f->recorded_sha256, f->sha256) != 0;
}

static void
free_project(Project *p)
{
	int			i;

	PQclear(p->recorded);
	if (p->conn)
		PQfinish(p->conn);
	for (i = 0; i < p->nfiles; i++)
	{
		if (p->files[i].L)
			pgs_lua_close(p->files[i].L);
		free(p->files[i].path);
		free(p->files[i].name);
		free(p->files[i].error);
	}
	free(p->files);
}

/* ---- the commands ---- */

/*
 * pgshift run DIR: every file to run, in order, each as run FILE; stops at
 * the first that does not finish.
 */
static int
run_dir(Project *p, const PgsOptions *opts)
{
	lua_State  *L;
	int			rc;
	int			i;
	int			applied = 0;
	int			torun = 0;
	int			changed = 0;
	int			ran = 0;

	/* the recorded state first: load_files keeps the files to run only */
	if ((rc = read_recorded(p, opts)) != PGS_EXIT_OK ||
		(rc = load_files(p, opts, false, true, true)) != PGS_EXIT_OK)
		return rc;
	PQfinish(p->conn);			/* each run opens its own sessions */
	p->conn = NULL;
	for (i = 0; i < p->nfiles; i++)
	{
		applied += is_applied(&p->files[i]);
		changed += is_changed(&p->files[i]);
	}
	torun = p->nfiles - applied;
	/* refuse before running anything, as each run would when it came to them */
	if (changed > 0 && !opts->allow_drift)
	{
		pgs_errorf("%d applied migration file%s changed since %s ran; nothing was run\n",
				   changed, changed == 1 ? "" : "s", changed == 1 ? "it" : "they");
		for (i = 0; i < p->nfiles; i++)
			if (is_changed(&p->files[i]))
				fprintf(stderr, "  %s (migration %s): sha256 %.12s... recorded, %.12s... now\n",
						p->files[i].path, p->files[i].name, p->files[i].recorded_sha256,
						p->files[i].sha256);
		fprintf(stderr, "  hint: put changes in a new file; to accept the edited file%s "
				"anyway, run with --allow-drift (it is logged)\n", changed == 1 ? "" : "s");
		return PGS_EXIT_FAIL;
	}

	if ((L = pgs_lua_new(opts)) == NULL)
		return PGS_EXIT_FAIL;
	pgs_emit(L, "project_start", "directory", 's', p->dir, "files", 'i', (long long) p->nfiles,
			 "applied", 'i', (long long) applied, "to_run", 'i', (long long) torun, NULL);
	rc = PGS_EXIT_OK;
	for (i = 0; i < p->nfiles && rc == PGS_EXIT_OK; i++)
	{
		if (is_applied(&p->files[i]))
			continue;
		if (pgs_interrupted)
			rc = PGS_EXIT_FAIL;
		else
		{
			lua_State  *loaded = p->files[i].L;

			p->files[i].L = NULL;	/* the session closes it */
			rc = pgs_cmd_session_in(loaded, opts, "run", p->files[i].path);
			if (rc == PGS_EXIT_OK)
				ran++;
		}
	}
	pgs_emit(L, "project_finish", "directory", 's', p->dir, "ran", 'i', (long long) ran,
			 "to_run", 'i', (long long) torun,
			 "stopped_at", 's', rc != PGS_EXIT_OK ? p->files[i - 1].path : NULL,
			 "exit", 'i', (long long) rc, NULL);
	pgs_lua_close(L);
	return rc;
}

/* pgshift plan DIR: the plan of each file to run (every file --offline). */
static int
plan_dir(Project *p, const PgsOptions *opts)
{
	int			rc = PGS_EXIT_OK;
	int			n = 0;
	int			i;

	if (!opts->offline)
	{
		if ((rc = load_files(p, opts, true, true, false)) != PGS_EXIT_OK ||
			(rc = read_recorded(p, opts)) != PGS_EXIT_OK)
			return rc;
		PQfinish(p->conn);
		p->conn = NULL;
	}
	for (i = 0; i < p->nfiles; i++)
	{
		int			r;

		if (is_applied(&p->files[i]))
			continue;
		if (n++ > 0 && !opts->json && (opts->format == NULL || strcmp(opts->format, "json") != 0))
			fputs("\n", stdout);
		fflush(stdout);
		r = pgs_cmd_plan(opts, p->files[i].path);
		if (r > rc)
			rc = r;
	}
	if (n == 0 && !opts->quiet && !opts->json &&
		(opts->format == NULL || strcmp(opts->format, "json") != 0))
		printf("nothing to plan: the %d migration file%s of %s %s applied\n", p->nfiles,
			   p->nfiles == 1 ? "" : "s", p->dir, p->nfiles == 1 ? "is" : "are");
	return rc;
}

/* pgshift lint DIR: every file, as lint FILE; the worst exit code. */
static int
lint_dir(Project *p, const PgsOptions *opts)
{
	int			rc = PGS_EXIT_OK;
	int			i;

	for (i = 0; i < p->nfiles; i++)
	{
		int			r;

		fflush(stdout);
		r = pgs_cmd_lint(opts, p->files[i].path);
		if (r > rc)
			rc = r;
	}
	return rc;
}

/*
 * The prelude's project_status(db, dir, files, format) renders the report;
 * this pushes its arguments but the db: the files as a Lua array.
 */
static int
status_main(lua_State *L)
{
	Project    *p = lua_touserdata(L, 1);
	const PgsOptions *opts = lua_touserdata(L, 2);
	int			i;

	pgs_push_prelude_function(L, "project_status");
	pgs_push_db(L, p->conn);	/* the db owns the connection now */
	p->conn = NULL;
	lua_pushstring(L, p->dir);
	lua_createtable(L, p->nfiles, 0);
	for (i = 0; i < p->nfiles; i++)
	{
		ProjectFile *f = &p->files[i];

		lua_createtable(L, 0, 5);
		lua_pushstring(L, f->base);
		lua_setfield(L, -2, "file");
		lua_pushstring(L, f->path);
		lua_setfield(L, -2, "path");
		if (f->name)
		{
			lua_pushstring(L, f->name);
			lua_setfield(L, -2, "migration");
			lua_pushstring(L, f->sha256);
			lua_setfield(L, -2, "sha256");
		}
		else
		{
			lua_pushstring(L, f->error);
			lua_setfield(L, -2, "error");
		}
		lua_rawseti(L, -2, i + 1);
	}
	lua_pushstring(L, opts->json ? "json" : "text");
	lua_call(L, 4, 1);
	fwrite(lua_tostring(L, -1), 1, lua_rawlen(L, -1), stdout);
	fflush(stdout);
	return 0;
}

/*
 * pgshift status DIR: each file's state, then what only the database has.
 * Exits 1 when a file is one run DIR refuses (invalid, or applied and
 * changed since: drift), so that a check in CI fails before the run would.
 */
static int
status_dir(Project *p, const PgsOptions *opts)
{
	lua_State  *L;
	int			rc;
	int			i;

	if ((rc = load_files(p, opts, true, false, false)) != PGS_EXIT_OK ||
		(rc = read_recorded(p, opts)) != PGS_EXIT_OK)
		return rc;
	if ((L = pgs_lua_new(opts)) == NULL)
		return PGS_EXIT_FAIL;
	lua_pushcfunction(L, status_main);
	lua_pushlightuserdata(L, p);
	lua_pushlightuserdata(L, (void *) opts);
	rc = PGS_EXIT_OK;
	if (pgs_pcall(L, 2, 0) != LUA_OK)
	{
		pgs_print_failure(L, -1, stderr, "while reading shift.status", opts->verbose);
		rc = PGS_EXIT_USAGE;
	}
	pgs_lua_close(L);
	for (i = 0; i < p->nfiles && rc == PGS_EXIT_OK; i++)
		if (p->files[i].name == NULL || is_changed(&p->files[i]))
			rc = PGS_EXIT_FAIL;
	return rc;
}

/*
 * pgs_cmd_project: pgshift COMMAND DIR (run, plan, lint, status).  Reads
 * DIR/pgshift.conf into opts first (the command line wins), then the target.
 */
int
pgs_cmd_project(PgsOptions *opts, const char *command, const char *dir)
{
	Project		p;
	int			rc;
	char	   *copy;
	size_t		n;

	if (strcmp(command, "rollback") == 0 || strcmp(command, "verify") == 0)
		return project_usage_error("%s takes one migration FILE, not a directory: "
								   "name the migration's file", command);
	if (opts->to)
		return project_usage_error("--to %s: with a directory it is ambiguous (a phase of "
								   "which migration?); run one FILE with --to", opts->to);
	/* "migrations/" and "migrations" are one directory, and print as one */
	if ((copy = strdup(dir)) == NULL)
	{
		pgs_errorf("out of memory\n");
		return PGS_EXIT_USAGE;
	}
	for (n = strlen(copy); n > 1 && copy[n - 1] == '/'; n--)
		copy[n - 1] = '\0';
	dir = copy;
	if ((rc = apply_conf(opts, dir)) != PGS_EXIT_OK ||
		(rc = pgs_resolve_target(opts)) != PGS_EXIT_OK)
		return rc;
	memset(&p, 0, sizeof(p));
	p.dir = dir;
	if ((rc = list_files(&p)) == PGS_EXIT_OK)
	{
		if (strcmp(command, "run") == 0)
			rc = run_dir(&p, opts);
		else if (strcmp(command, "plan") == 0)
			rc = plan_dir(&p, opts);
		else if (strcmp(command, "lint") == 0)
			rc = lint_dir(&p, opts);
		else if (strcmp(command, "status") == 0)
			rc = status_dir(&p, opts);
		else
			rc = project_usage_error("%s does not take a directory", command);
	}
	free_project(&p);
	free(copy);
	return rc;
}
