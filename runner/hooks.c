/*
 * hooks.c
 *	  What runs in a Lua state's hook, and what it needs: the sandbox's guard
 *	  (memory through the state's allocator, Lua instructions through the
 *	  count hook, CPU time through SIGPROF), the line tracking of a migration
 *	  file while it loads (C.track), and interrupts (SIGINT, SIGTERM) that
 *	  stop a phase's code.  The guard's rules are in script.c's header;
 *	  script.c makes the states and calls in here.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#include "pgshift.h"

/* ---- the sandbox's guard ---- */

/*
 * The sandbox's limits.  The plan of the largest example (scripts/examples)
 * runs 15 000 Lua instructions in a state that never holds more than 0.4 MiB
 * and takes milliseconds of CPU: the limits are thousands of times that, so
 * only a file that loops or hoards meets them, and its reviewer waits
 * seconds (100 million instructions are about 2 s on the 2-core test
 * machine), not forever.
 */
#define HOOK_STEP			1000	/* instructions between two count hooks */
#define DEFAULT_STEPS		100000000LL
#define DEFAULT_MEMORY		((size_t) 256 << 20)
#define DEFAULT_CPU_SECONDS 10
#define CPU_GRACE_SECONDS	5		/* then the process ends (a stuck C call) */
#define MEMORY_RESERVE		((size_t) 16 << 20) /* to report, once stopped */

static long long sandbox_steps = DEFAULT_STEPS;
static size_t sandbox_memory = DEFAULT_MEMORY;
static int	sandbox_cpu = DEFAULT_CPU_SECONDS;

/* One per sandboxed state: the allocator's user data. */
typedef struct Guard
{
	size_t		used;			/* bytes the state holds */
	size_t		limit;
	long long	steps;			/* instructions run (in HOOK_STEP units) */
	long long	step_limit;
	int			cpu_seconds;
	PgsSandboxStop stop;		/* why the file's code was stopped */
	char		where[LUA_IDSIZE + 16]; /* "file:line" of the stop, or "" */
} Guard;

static volatile sig_atomic_t cpu_over = 0;

/*
 * pgs_sandbox_limits: the limits of sandboxed states made from now on;
 * 0 keeps a limit's default.  For tests, which cannot wait for the defaults.
 */
void
pgs_sandbox_limits(long long steps, size_t memory, int cpu_seconds)
{
	sandbox_steps = steps > 0 ? steps : DEFAULT_STEPS;
	sandbox_memory = memory > 0 ? memory : DEFAULT_MEMORY;
	sandbox_cpu = cpu_seconds > 0 ? cpu_seconds : DEFAULT_CPU_SECONDS;
}

static void *
guard_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	Guard	   *g = ud;
	size_t		old = ptr ? osize : 0;
	void	   *p;

	if (nsize == 0)
	{
		free(ptr);
		g->used -= old;
		return NULL;
	}
	if (nsize > old &&
		g->used - old + nsize > g->limit + (g->stop != PGS_SANDBOX_OK ? MEMORY_RESERVE : 0))
	{
		if (g->stop == PGS_SANDBOX_OK)
			g->stop = PGS_SANDBOX_MEMORY;
		return NULL;			/* Lua raises "not enough memory" */
	}
	p = realloc(ptr, nsize);
	if (p != NULL)
		g->used = g->used - old + nsize;
	return p;
}

/* The guard of a sandboxed state; NULL for a trusted one. */
static Guard *
guard_of(lua_State *L)
{
	void	   *ud;

	return lua_getallocf(L, &ud) == guard_alloc ? ud : NULL;
}

/* While a migration file loads: the line it is at (see C.track). */
static struct
{
	char	   *source;			/* the file's chunk name, "@path"; NULL: off */
	char		short_src[LUA_IDSIZE];
	int			line;
}			tracking;

/*
 * The hook of every state: line events while a file loads (tracking), and in
 * a sandbox the instruction count, CPU time and memory checks.  Once the
 * file's code is stopped, every hook raises again, so that a pcall in the
 * file cannot catch the stop and go on.
 */
static void
guard_hook(lua_State *L, lua_Debug *ar)
{
	Guard	   *g;

	if (ar->event == LUA_HOOKLINE)
	{
		if (tracking.source && lua_getinfo(L, "S", ar) &&
			strcmp(ar->source, tracking.source) == 0)
		{
			memcpy(tracking.short_src, ar->short_src, sizeof(tracking.short_src));
			tracking.line = ar->currentline;
		}
		return;
	}
	if (ar->event != LUA_HOOKCOUNT || (g = guard_of(L)) == NULL)
		return;
	g->steps += HOOK_STEP;
	if (g->stop == PGS_SANDBOX_OK)
	{
		if (cpu_over)
			g->stop = PGS_SANDBOX_CPU;
		else if (g->steps > g->step_limit)
			g->stop = PGS_SANDBOX_STEPS;
		else
			return;
		if (lua_getinfo(L, "Sl", ar) && ar->currentline > 0)
			snprintf(g->where, sizeof(g->where), "%s:%d", ar->short_src, ar->currentline);
	}
	lua_sethook(L, guard_hook, lua_gethookmask(L), 1);
	luaL_error(L, "%s", pgs_sandbox_stopped(L));
}

/* The hook a state runs with when no interrupt is pending. */
static void
set_guard_hook(lua_State *L)
{
	int			mask = (tracking.source ? LUA_MASKLINE : 0) |
		(guard_of(L) ? LUA_MASKCOUNT : 0);

	lua_sethook(L, mask ? guard_hook : NULL, mask, HOOK_STEP);
}

/*
 * pgs_sandbox_stopped: why the file's code was stopped ("" if it was not,
 * or the state is not a sandbox), for the one line plan and lint print.
 */
const char *
pgs_sandbox_stopped(lua_State *L)
{
	static char msg[256];
	Guard	   *g = guard_of(L);

	if (g == NULL || g->stop == PGS_SANDBOX_OK)
		return "";
	switch (g->stop)
	{
		case PGS_SANDBOX_STEPS:
			snprintf(msg, sizeof(msg), "%s%sthe migration file's code ran more than %lld "
					 "Lua instructions (an endless loop?)",
					 g->where, *g->where ? ": " : "", g->step_limit);
			break;
		case PGS_SANDBOX_MEMORY:
			snprintf(msg, sizeof(msg), "the migration file's code used more than %zu MiB "
					 "of memory", g->limit >> 20);
			break;
		default:
			snprintf(msg, sizeof(msg), "%s%sthe migration file's code used more than %d s "
					 "of CPU time", g->where, *g->where ? ": " : "", g->cpu_seconds);
			break;
	}
	return msg;
}

/*
 * SIGPROF: the CPU time is up.  The first time, the count hook stops the
 * file's code; if it is still inside one library call CPU_GRACE_SECONDS
 * later (a pattern match, string.rep of an empty string: no hook runs
 * there), the process ends.
 */
static void
on_cpu_limit(int signo)
{
	static const char msg[] =
		"pgshift: stopped: the migration file's code went on past the CPU time limit "
		"inside one call that cannot be interrupted (a Lua library function); "
		"nothing was changed\n";

	ssize_t		n;

	if (!cpu_over)
	{
		cpu_over = 1;
		return;
	}
	n = write(STDERR_FILENO, msg, sizeof(msg) - 1);
	(void) n;					/* nothing more to do if it failed */
	_exit(PGS_EXIT_FAIL);
}

static void
set_cpu_timer(int seconds)
{
	struct itimerval t;

	memset(&t, 0, sizeof(t));
	t.it_value.tv_sec = seconds;
	t.it_interval.tv_sec = seconds < CPU_GRACE_SECONDS ? seconds : CPU_GRACE_SECONDS;
	setitimer(ITIMER_PROF, &t, NULL);
}

/* C.track(source) starts following the lines of chunk source; C.track() stops. */
int
pgs_l_track(lua_State *L)
{
	const char *source = luaL_optstring(L, 1, NULL);

	free(tracking.source);
	tracking.source = source ? strdup(source) : NULL;
	tracking.line = 0;
	tracking.short_src[0] = '\0';
	if (pgs_interrupted && guard_of(L) == NULL)
		lua_sethook(L, pgs_stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
	else
		set_guard_hook(L);
	return 0;
}

/* C.tracked() -> short_src, line of the tracked chunk last run (nil if none) */
int
pgs_l_tracked(lua_State *L)
{
	if (tracking.line <= 0)
		return 0;
	lua_pushstring(L, tracking.short_src);
	lua_pushinteger(L, tracking.line);
	return 2;
}

/* Is L a sandboxed state (plan, lint, pgshift.conf)? */
bool
pgs_is_sandbox(lua_State *L)
{
	return guard_of(L) != NULL;
}

/* The tracked file's short name and line while it loads (see C.track), or NULL. */
const char *
pgs_tracked_at(int *line)
{
	if (tracking.source == NULL || tracking.line <= 0)
		return NULL;
	*line = tracking.line;
	return tracking.short_src;
}

/*
 * Makes the sandbox's part of a state: the guard as its allocator (memory:
 * the bytes the state may hold, beyond those it holds now when relative),
 * the count hook set before any coroutine exists (each new one inherits
 * it), the CPU timer (none for 0 seconds).  False if out of memory.
 */
static bool
guard_state(lua_State *L, long long steps, size_t memory, bool relative,
			int cpu_seconds)
{
	Guard	   *g = calloc(1, sizeof(Guard));

	if (g == NULL)
		return false;
	/* what the state holds so far, counted the way Lua counts it */
	g->used = (size_t) lua_gc(L, LUA_GCCOUNT, 0) * 1024 + (size_t) lua_gc(L, LUA_GCCOUNTB, 0);
	g->limit = relative ? g->used + memory : memory;
	g->step_limit = steps;
	g->cpu_seconds = cpu_seconds;
	lua_setallocf(L, guard_alloc, g);
	set_guard_hook(L);

	if (cpu_seconds > 0)
	{
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_cpu_limit;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGPROF, &sa, NULL);
		cpu_over = 0;
		set_cpu_timer(cpu_seconds);
	}
	return true;
}

/*
 * pgs_sandbox_run: runs fn (given ud as a light userdata) in a new Lua state
 * of its own under the sandbox's guard with run's limits, and closes the
 * state.  The state has no library open: fn loads the code and gives it the
 * environment it may use.  Returns LUA_OK or the status of the error, with
 * run->error (malloc'd) its message, and run->stop and run->where saying
 * whether and where the guard stopped the code (the error is then the
 * guard's own, worded for a migration file: the caller says what stopped).
 * For a small file of settings (pgshift.conf); the CPU timer is the
 * process's, so not while a sandboxed migration state is open.
 */
int
pgs_sandbox_run(PgsSandboxRun *run, lua_CFunction fn, void *ud)
{
	lua_State  *L = luaL_newstate();
	Guard	   *g;
	int			rc;

	run->stop = PGS_SANDBOX_OK;
	run->where[0] = '\0';
	run->error = NULL;
	if (L == NULL || !guard_state(L, run->steps, run->memory, true, run->cpu_seconds))
	{
		if (L)
			lua_close(L);
		run->error = strdup("cannot create a Lua state: out of memory");
		return LUA_ERRMEM;
	}
	lua_pushcfunction(L, fn);
	lua_pushlightuserdata(L, ud);
	rc = lua_pcall(L, 1, 0, 0);
	g = guard_of(L);
	run->stop = g->stop;
	snprintf(run->where, sizeof(run->where), "%s", g->where);
	if (rc != LUA_OK)
		run->error = strdup(lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) :
							rc == LUA_ERRMEM ? "not enough memory" : "unknown error");
	if (g->cpu_seconds > 0)
	{
		set_cpu_timer(0);
		cpu_over = 0;
	}
	lua_close(L);
	free(g);
	return rc;
}

/* The guard of a state under review (plan, lint), with the sandbox's limits. */
bool
pgs_guard_sandbox(lua_State *L)
{
	return guard_state(L, sandbox_steps, sandbox_memory, false, sandbox_cpu);
}

/* ---- interrupts ---- */

static lua_State *interrupt_L = NULL;
static bool phase_code = false;	/* a phase's up, down or verify is running */
static double interrupted_at = 0;	/* when the first signal came */
static void (*give_up_fn) (void *arg) = NULL;	/* see pgs_phase_code */
static void *give_up_arg = NULL;

/* How long a phase's code may go on after an interrupt before pgshift gives up on it. */
#define INTERRUPT_GRACE_SECONDS 5.0

/*
 * The hook an interrupt sets: stops the phase's code at its next instruction
 * with an "interrupted" error.  It stays set, firing again every few thousand
 * instructions, so a migration that catches the error (pcall in a loop) is
 * stopped again; if the code still runs INTERRUPT_GRACE_SECONDS later, the
 * engine records the interruption and ends pgshift (give_up_fn).  Outside a
 * phase's code (pgshift's own Lua: output, bookkeeping) it does nothing:
 * the engine sees pgs_interrupted itself.
 */
void
pgs_stop_hook(lua_State *L, lua_Debug *ar)
{
	if (!phase_code)
	{
		set_guard_hook(L);
		return;
	}
	if (interrupted_at > 0 && pgs_monotonic_seconds() - interrupted_at > INTERRUPT_GRACE_SECONDS &&
		give_up_fn)
		give_up_fn(give_up_arg);	/* does not return */
	lua_sethook(L, pgs_stop_hook, LUA_MASKCOUNT, 5000);
	luaL_error(L, "interrupted by %s", pgs_interrupted == SIGTERM ? "SIGTERM" : "SIGINT (Ctrl-C)");
}

static void
on_signal(int signo)
{
	pgs_interrupted = signo;
	interrupted_at = pgs_monotonic_seconds();	/* clock_gettime: async-signal-safe */
	signal(signo, SIG_DFL);		/* a second signal ends pgshift at once */
	if (interrupt_L && phase_code)
		lua_sethook(interrupt_L, pgs_stop_hook,
					LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

/*
 * pgs_catch_interrupts: the first SIGINT or SIGTERM sets pgs_interrupted,
 * cancels the running statement (see pgs_exec) and stops the phase's Lua
 * code at its next instruction; a second one ends the process.
 */
void
pgs_catch_interrupts(lua_State *L)
{
	struct sigaction sa;

	interrupt_L = L;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

/*
 * The engine says when a phase's code runs (on) and when it is back in its
 * own (off).  give_up(arg), if given, is what the stop hook calls when the
 * code goes on too long after an interrupt: it must record the interruption
 * and end the process.
 */
void
pgs_phase_code(lua_State *L, bool on, void (*give_up) (void *arg), void *arg)
{
	phase_code = on;
	give_up_fn = give_up;
	give_up_arg = arg;
	if (on && pgs_interrupted)
	{
		if (interrupted_at == 0)
			interrupted_at = pgs_monotonic_seconds();
		lua_sethook(L, pgs_stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
	}
	else if (!on)
		set_guard_hook(L);
}

/*
 * pgs_own_code: pgshift's own Lua (its output) runs now, inside a phase's
 * code: the interrupt hook is lifted (the guard's stays).  Returns whether
 * a phase's code was running, for pgs_own_code_end, which puts the hook
 * back if an interrupt came meanwhile.
 */
bool
pgs_own_code(lua_State *L)
{
	bool		was = phase_code;

	phase_code = false;
	set_guard_hook(L);
	return was;
}

void
pgs_own_code_end(lua_State *L, bool was_phase_code)
{
	phase_code = was_phase_code;
	if (phase_code && pgs_interrupted)
		lua_sethook(L, pgs_stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

/* Removes a stop hook an interrupt left behind (the code it was for is gone). */
void
pgs_clear_interrupt_hook(lua_State *L)
{
	set_guard_hook(L);
}

/* pgs_lua_close: closes a state of either kind, and a sandbox's guard. */
void
pgs_lua_close(lua_State *L)
{
	Guard	   *g = guard_of(L);

	lua_close(L);				/* finalizers still run under the guard */
	/* a file stopped while it loaded could not stop the tracking itself */
	free(tracking.source);
	tracking.source = NULL;
	if (g)
	{
		set_cpu_timer(0);
		cpu_over = 0;
		free(g);
	}
}
