/*
 * main.c
 *	  pgshift's command line: options, commands, exit codes.
 *
 *	  0  done (or a check found no difference)
 *	  1  the migration failed, a verify gate failed, a rollback was refused,
 *	     lint found something at or above --fail-on
 *	  2  usage, file, connection or setup error, or the migration is locked
 *	     by another runner (nothing was run)
 *
 * Two tables say everything about the command line: commands[] (name,
 * synopsis, summary, description, example, what it runs) and options[]
 * (name, letter, value, the commands that take it, help text, what it sets).
 * The parser is made from them, and so are the help, the man page and the
 * shell completion (help.c, which gets a copy of what they show): they
 * cannot tell different stories.
 */
#include <getopt.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pgshift.h"

/* What the command line fills in. */
typedef struct Cli
{
	PgsOptions	opts;
	PgsCompareOptions copts;
	bool		done;			/* --version or --man printed: exit 0 */
	bool		help;			/* --help: print the command's help */
	const char *html;			/* report: --html FILE */
	const char *svg;			/* report: --svg FILE */
} Cli;

/* ---- commands ---- */

enum
{
	CMD_RUN = 1 << 0,
	CMD_ROLLBACK = 1 << 1,
	CMD_VERIFY = 1 << 2,
	CMD_PLAN = 1 << 3,
	CMD_STATUS = 1 << 4,
	CMD_LINT = 1 << 5,
	CMD_COMPARE = 1 << 6,
	CMD_HELP = 1 << 7,
	CMD_COMPLETION = 1 << 8,
	CMD_REPORT = 1 << 9
};

#define CMD_SESSION (CMD_RUN | CMD_ROLLBACK | CMD_VERIFY)
/* the commands that talk to a server */
#define CMD_DB (~(unsigned) (CMD_HELP | CMD_COMPLETION))

typedef enum CommandArg
{
	ARG_FILE,					/* a migration FILE, required */
	ARG_NAME,					/* a migration NAME, optional */
	ARG_MIGRATION,				/* a migration NAME, required; never a directory */
	ARG_NONE
} CommandArg;

typedef struct Command
{
	const char *name;
	unsigned	bit;
	CommandArg	arg;
	const char *synopsis;		/* after "pgshift [OPTION]... "; \n continues it */
	const char *summary;		/* \n starts another line */
	const char *description;	/* help COMMAND: one paragraph */
	const char *example;		/* help COMMAND: \n starts another line */
	int			(*run) (Cli *cli, const char *command, const char *arg);
} Command;

static int	usage_error(const char *fmt, const char *arg);

static int
run_session(Cli *cli, const char *command, const char *arg)
{
	return pgs_cmd_session(&cli->opts, command, arg);
}

static int
run_plan(Cli *cli, const char *command, const char *arg)
{
	return pgs_cmd_plan(&cli->opts, arg);
}

static int
run_status(Cli *cli, const char *command, const char *arg)
{
	return pgs_cmd_status(&cli->opts, arg);
}

static int
run_lint(Cli *cli, const char *command, const char *arg)
{
	return pgs_cmd_lint(&cli->opts, arg);
}

static int
run_report(Cli *cli, const char *command, const char *arg)
{
	if (cli->html == NULL && cli->svg == NULL)
		return usage_error("%sreport: give --html=FILE, --svg=FILE or both", "");
	return pgs_cmd_report(&cli->opts, arg, cli->html, cli->svg);
}

static int
run_compare(Cli *cli, const char *command, const char *arg)
{
	if (cli->copts.target == NULL)
		return usage_error("%scompare: --target=DSN is required", "");
	if (cli->copts.table == NULL)
		return usage_error("%scompare: --table=TABLE is required", "");
	if (cli->copts.source == NULL)
		cli->copts.source = cli->opts.dsn;
	return pgs_cmd_compare(&cli->opts, &cli->copts);
}

static int
run_help(Cli *cli, const char *command, const char *arg)
{
	if (arg == NULL)
	{
		pgs_help_usage(stdout);
		return PGS_EXIT_OK;
	}
	return pgs_help_command(stdout, arg);
}

static int
run_completion(Cli *cli, const char *command, const char *arg)
{
	if (arg == NULL)
		return usage_error("%scompletion: which shell? bash or zsh", "");
	return pgs_help_completion(stdout, arg);
}

static const Command commands[] = {
	{"run", CMD_RUN, ARG_FILE, "run FILE|DIR [--to PHASE] [--allow-drift]",
		"run the pending phases in order (of FILE, or of each file of DIR not yet applied)",
		"Runs the phases of the migration FILE that are not done yet, in order, "
		"each followed by its verify gate, and records every step in the database "
		"(shift.*), so that a run that was interrupted resumes where it stopped. "
		"A phase that fails runs its down and stops the run (exit 1). With --to, "
		"the run stops after PHASE. A completed migration whose file has changed "
		"since it ran is refused unless --allow-drift. Given a directory DIR, "
		"runs each of its migration files (*.lua, *.json, *.yaml, *.yml) not yet "
		"applied, in the byte order of their "
		"names, and stops at the first that fails (DIR/pgshift.conf may name the "
		"target, the lock wait and the lint threshold).",
	"pgshift run migrations/ --service staging", run_session},
	{"rollback", CMD_ROLLBACK, ARG_FILE, "rollback FILE [--to PHASE] [--allow-drift]",
		"undo completed phases, last first",
		"Runs the down of the completed phases of the migration FILE, last first, "
		"each recorded in the database. With --to, PHASE and the phases before it "
		"are kept. Before changing anything it refuses to cross a phase that has "
		"no down.",
	"pgshift rollback migrations/add_email.lua --to add_column", run_session},
	{"verify", CMD_VERIFY, ARG_FILE, "verify FILE",
		"run the verify gates of completed phases",
		"Runs the verify gates of the completed phases of the migration FILE "
		"again, and nothing else; exits 1 if one fails (recorded as "
		"verify_failed).",
	"pgshift verify migrations/add_email.lua", run_session},
	{"plan", CMD_PLAN, ARG_FILE, "plan FILE|DIR [--format text|markdown|json] [--offline]",
		"print the plan; change nothing",
		"Prints what run would do: each phase's SQL (from a dry run of the file "
		"in a sandbox), its rollback, its verify gate and its points of no "
		"return, with the state the database recorded for each phase and, "
		"connected, each statement's lint findings. Its session is read-only: "
		"nothing changes. With --offline it does not connect. Given a directory, "
		"plans the files run would run, in order (offline: every file).",
	"pgshift plan migrations/add_email.lua --format markdown > plan.md", run_plan},
	{"status", CMD_STATUS, ARG_NAME, "status [NAME|DIR]",
		"the state of every migration, or of one, or of each file of DIR",
		"Prints the state of every migration the database recorded (shift.status), "
		"or, given NAME, of that migration and each of its phases. Given a "
		"directory, shows each file as applied, pending, failed, interrupted, "
		"running or changed since it was applied (drift), and the migrations the "
		"database has that no file declares.",
	"pgshift status migrations/", run_status},
	{"lint", CMD_LINT, ARG_FILE, "lint FILE|DIR [--fail-on LEVEL]",
		"lint every phase's SQL on the server",
		"Dry-runs every phase of the migration FILE as plan does and lints the "
		"SQL on the server, with PostgreSQL's own parser and the catalog: the "
		"locks each statement takes, table rewrites and scans, changes that "
		"break running code. Nothing is changed. Exits 1 if a finding is at or "
		"above --fail-on. Given a directory, lints every file in it.",
	"pgshift lint migrations/add_email.lua --fail-on medium", run_lint},
	{"report", CMD_REPORT, ARG_MIGRATION, "report NAME [--html=FILE] [--svg=FILE]",
		"a run report with charts, for a change ticket",
		"Draws, from what the database recorded for migration NAME (its phases, "
		"events, backfill jobs and their batches), a phase timeline, the rows "
		"written per second, each batch's duration against its target, where "
		"the backfill waited (resting, throttled, lag, not running) and the "
		"lock waits (retries) over time. --html writes one self-contained HTML "
		"page (inline SVG and CSS, nothing to fetch) with the facts a change "
		"ticket needs: database, migration, when, who, outcome, every event. "
		"--svg writes the charts alone as one SVG. Nothing is changed.",
	"pgshift report add_email --html add_email.html", run_report},
	{"compare", CMD_COMPARE, ARG_NONE,
		"compare --target=DSN --table=TABLE [--source=DSN]\n"
		"          [--target-table=T] [--columns=C,...] [--target-columns=C,...]\n"
		"          [--key=C,...] [--target-key=C,...] [--buckets=N] [--recheck=N]",
		"compare a table on two servers by chunk\n"
		"checksums; list the rows that differ",
		"Compares a table on two servers (a primary and its logical replica, an "
		"old cluster and a new one) by checksums of key ranges, narrows the "
		"ranges that differ down to rows, and lists those rows; rows that change "
		"while it runs are read again (--recheck) and reported as in flight. "
		"Exits 1 if the tables differ.",
		"pgshift compare --source=postgres://old/app --target=postgres://new/app \\\n"
	"    --table=public.users", run_compare},
	{"help", CMD_HELP, ARG_NAME, "help [COMMAND]",
		"print this help, or a command's",
		"Prints the help of pgshift, or of COMMAND: its synopsis, what it does, "
		"the options it takes and an example. \"pgshift COMMAND --help\" prints "
		"the same. \"man pgshift\" has it all.",
	"pgshift help run", run_help},
	{"completion", CMD_COMPLETION, ARG_NAME, "completion bash|zsh",
		"print a shell completion script",
		"Prints the completion script of bash or zsh for pgshift: commands, the "
		"options of each command and their values. \"make install\" installs both "
		"(share/bash-completion/completions/pgshift, "
		"share/zsh/site-functions/_pgshift); to try one in the current shell, "
		"source its output.",
	"source <(pgshift completion bash)", run_completion},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

/* ---- options ---- */

typedef struct Option
{
	const char *name;			/* the long name, without "--" */
	char		letter;			/* the short option, or 0 */
	const char *value;			/* the value's name in the help; NULL: no value */
	unsigned	commands;		/* the commands that take it; 0: every command */
	const char *help;			/* \n starts another line; NULL: in the synopsis */
	size_t		field;			/* offset in Cli of the const char * (with a
								 * value) or bool (without) it sets */
	/* parses and sets the value instead; returns NULL or what is wrong (%s: the value) */
	const char *(*parse) (Cli *cli, const char *value);
} Option;

static const char *
parse_lock_wait(Cli *cli, const char *value)
{
	char	   *end;

	cli->opts.lock_wait = strtod(value, &end);
	cli->opts.lock_wait_given = true;
	if (end == value || *end != '\0' || cli->opts.lock_wait < 0 ||
		cli->opts.lock_wait > 86400)
		return "--lock-wait: \"%s\" is not a number of seconds from 0 to 86400";
	return NULL;
}

static const char *
parse_format(Cli *cli, const char *value)
{
	if (strcmp(value, "text") != 0 && strcmp(value, "markdown") != 0 &&
		strcmp(value, "json") != 0)
		return "--format: \"%s\" is not text, markdown or json";
	cli->opts.format = value;
	return NULL;
}

/* "High" -> "HIGH": a lint severity in any case */
static const char *
parse_fail_on(Cli *cli, const char *value)
{
	static const char *const names[] = {"CRITICAL", "HIGH", "MEDIUM", "LOW"};
	size_t		i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(value, names[i]) == 0)
		{
			cli->opts.fail_on = names[i];
			return NULL;
		}
	return "--fail-on: \"%s\" is not critical, high, medium or low";
}

static const char *
parse_buckets(Cli *cli, const char *value)
{
	char	   *end;
	long		v = strtol(value, &end, 10);

	if (end == value || *end != '\0' || v < 1 || v > 4096 || (v & (v - 1)) != 0)
		return "--buckets: \"%s\" is not a power of two from 1 to 4096";
	cli->copts.buckets = (int) v;
	return NULL;
}

static const char *
parse_recheck(Cli *cli, const char *value)
{
	char	   *end;
	long		v = strtol(value, &end, 10);

	if (end == value || *end != '\0' || v < 0 || v > 100)
		return "--recheck: \"%s\" is not a number from 0 to 100";
	cli->copts.recheck = (int) v;
	return NULL;
}

static const char *
parse_color(Cli *cli, const char *value)
{
	if (strcmp(value, "auto") == 0)
		pgs_color_mode(PGS_COLOR_AUTO);
	else if (strcmp(value, "always") == 0)
		pgs_color_mode(PGS_COLOR_ALWAYS);
	else if (strcmp(value, "never") == 0)
		pgs_color_mode(PGS_COLOR_NEVER);
	else
		return "--color: \"%s\" is not auto, always or never";
	return NULL;
}

static const char *
print_version(Cli *cli, const char *value)
{
	printf("pgshift %s\n", PGS_VERSION);
	cli->done = true;
	return NULL;
}

/* the command's help, once the command is known (see main) */
static const char *
ask_help(Cli *cli, const char *value)
{
	cli->help = true;
	return NULL;
}

static const char *
print_man(Cli *cli, const char *value)
{
	pgs_help_man(stdout);
	cli->done = true;
	return NULL;
}

#define OPT(f) offsetof(Cli, opts.f)
#define COPT(f) offsetof(Cli, copts.f)

/* In the order --help lists them; no help text: hidden. */
static const Option options[] = {
	{"dsn", 'd', "DSN", CMD_DB, "connection string or URI (default: the libpq\n"
	"environment: PGHOST, PGPORT, PGDATABASE, PGUSER, ...)", OPT(dsn), NULL},
	{"service", 0, "NAME", CMD_DB, "connect to service NAME of libpq's service file\n"
	"(pg_service.conf; PGSERVICE does so without it)", OPT(service), NULL},
	{"to", 0, "PHASE", CMD_RUN | CMD_ROLLBACK,
		"run: stop after PHASE; rollback: keep PHASE and\n"
	"the phases before it", OPT(to), NULL},
	{"lock-wait", 0, "SECS", CMD_SESSION,
	"wait up to SECS for another runner to finish (default 0)", 0, parse_lock_wait},
	{"allow-drift", 0, NULL, CMD_SESSION,
	"accept a completed migration's changed script (logged)", OPT(allow_drift), NULL},
	{"format", 0, "FORMAT", CMD_PLAN,
	"plan: text (default), markdown or json", 0, parse_format},
	{"offline", 0, NULL, CMD_PLAN,
	"plan: do not connect (no recorded state, no lint)", OPT(offline), NULL},
	{"fail-on", 0, "LEVEL", CMD_LINT, "lint: exit 1 on a finding at or above LEVEL:\n"
	"critical, high (default), medium or low", 0, parse_fail_on},
	{"source", 0, "DSN", CMD_COMPARE, "compare: the source server (default: --dsn or the\n"
	"libpq environment)", COPT(source), NULL},
	{"target", 0, "DSN", CMD_COMPARE, "compare: the target server", COPT(target), NULL},
	{"table", 0, "TABLE", CMD_COMPARE, "compare: the table (schema-qualified if needed)",
	COPT(table), NULL},
	{"target-table", 0, "T", CMD_COMPARE, "compare: the table on the target (default:\n"
	"--table)", COPT(target_table), NULL},
	{"columns", 0, "C,...", CMD_COMPARE, "compare: the columns (default: every column)",
	COPT(columns), NULL},
	{"target-columns", 0, "C,...", CMD_COMPARE, "compare: the columns on the target\n"
	"(default: --columns)", COPT(target_columns), NULL},
	{"key", 0, "C,...", CMD_COMPARE, "compare: the key (default: the primary key)",
	COPT(key), NULL},
	{"target-key", 0, "C,...", CMD_COMPARE, "compare: the key on the target (default:\n"
	"--key)", COPT(target_key), NULL},
	{"buckets", 0, "N", CMD_COMPARE, "compare: the first split, a power of two up to\n"
	"4096 (default: from the table's size)", 0, parse_buckets},
	{"recheck", 0, "N", CMD_COMPARE, "compare: read differing rows again up to N times\n"
	"(default 3); rows written meanwhile are in flight", 0, parse_recheck},
	{"html", 0, "FILE", CMD_REPORT, "report: write the HTML report to FILE", offsetof(Cli, html),
	NULL},
	{"svg", 0, "FILE", CMD_REPORT, "report: write the charts to FILE as one SVG",
	offsetof(Cli, svg), NULL},
	{"json", 0, NULL, CMD_DB & ~(unsigned) CMD_REPORT, "machine-readable output (events, status, plan, compare)",
	OPT(json), NULL},
	{"quiet", 'q', NULL, CMD_DB, "print only errors", OPT(quiet), NULL},
	{"verbose", 'v', NULL, CMD_DB, "add a Lua traceback to errors", OPT(verbose), NULL},
	{"color", 0, "WHEN", 0, "colour: auto (default: on a terminal, unless\n"
	"NO_COLOR is set or TERM=dumb), always or never", 0, parse_color},
	{"version", 'V', NULL, 0, "print the version and exit", 0, print_version},
	{"help", 'h', NULL, 0, "print the help (of the command) and exit", 0, ask_help},
	{"man", 0, NULL, 0, NULL, 0, print_man},
};

#define NOPTIONS (sizeof(options) / sizeof(options[0]))

static int
usage_error(const char *fmt, const char *arg)
{
	pgs_errorf(fmt, arg);
	fputs("\nTry \"pgshift --help\" for more information.\n", stderr);
	return PGS_EXIT_USAGE;
}

/* Sets what option o sets; returns PGS_EXIT_OK or prints what is wrong. */
static int
apply_option(Cli *cli, const Option *o, const char *value)
{
	const char *wrong;

	if (o->parse)
	{
		if ((wrong = o->parse(cli, value)) != NULL)
			return usage_error(wrong, value);
	}
	else if (o->value)
		*(const char **) ((char *) cli + o->field) = value;
	else
		*(bool *) ((char *) cli + o->field) = true;
	return PGS_EXIT_OK;
}

/*
 * Parses the options into cli (getopt_long: they may come anywhere, before
 * or after the command).  Returns PGS_EXIT_OK, or prints what is wrong;
 * *used gets the options given that not every command takes.
 */
static int
parse_options(int argc, char **argv, Cli *cli, const Option **used, int *nused)
{
	struct option longopts[NOPTIONS + 1];
	char		shortopts[2 * NOPTIONS + 2] = ":";
	size_t		i;
	int			c;
	int			rc;

	memset(longopts, 0, sizeof(longopts));
	for (i = 0; i < NOPTIONS; i++)
	{
		const Option *o = &options[i];

		longopts[i].name = o->name;
		longopts[i].has_arg = o->value ? required_argument : no_argument;
		longopts[i].val = o->letter ? o->letter : 256 + (int) i;
		if (o->letter)
		{
			size_t		n = strlen(shortopts);

			shortopts[n++] = o->letter;
			if (o->value)
				shortopts[n++] = ':';
			shortopts[n] = '\0';
		}
	}
	opterr = 0;
	*nused = 0;
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1)
	{
		const Option *o = NULL;

		if (c == ':')
			return usage_error("option %s needs a value", argv[optind - 1]);
		if (c >= 256)
			o = &options[c - 256];
		else
			for (i = 0; i < NOPTIONS && o == NULL; i++)
				if (c != '?' && options[i].letter == c)
					o = &options[i];
		if (o == NULL)
		{
			if (optopt != 0 && optopt < 256)
			{
				char		opt[3] = {'-', (char) optopt, '\0'};

				return usage_error("unknown option \"%s\"", opt);
			}
			return usage_error("unknown option or value in \"%s\"", argv[optind - 1]);
		}
		if ((rc = apply_option(cli, o, optarg)) != PGS_EXIT_OK || cli->done)
			return rc;
		if (o->commands != 0 && *nused < (int) NOPTIONS)
			used[(*nused)++] = o;
	}
	return PGS_EXIT_OK;
}

/* Gives help.c what the two tables show. */
static void
help_tables(void)
{
	static PgsHelpCommand hc[NCOMMANDS];
	static PgsHelpOption ho[NOPTIONS];
	size_t		i;

	for (i = 0; i < NCOMMANDS; i++)
	{
		const Command *c = &commands[i];

		hc[i] = (PgsHelpCommand) {
			c->name, c->bit, c->arg == ARG_FILE, c->synopsis, c->summary,
			c->description, c->example
		};
	}
	for (i = 0; i < NOPTIONS; i++)
	{
		const Option *o = &options[i];

		ho[i] = (PgsHelpOption) {
			o->name, o->letter, o->value, o->commands, o->help
		};
	}
	pgs_help_tables(hc, (int) NCOMMANDS, ho, (int) NOPTIONS);
}

int
main(int argc, char **argv)
{
	Cli			cli;
	const Option *used[NOPTIONS];
	const Command *cmd = NULL;
	const char *arg = NULL;
	int			nused;
	int			rc;
	size_t		i;

	/* everything printed from here on goes through the output filter */
	pgs_output_init();
	help_tables();
	memset(&cli, 0, sizeof(cli));
	cli.copts.recheck = 3;
	if ((rc = parse_options(argc, argv, &cli, used, &nused)) != PGS_EXIT_OK || cli.done)
		return rc;

	if (optind >= argc)
	{
		if (cli.help)
		{
			pgs_help_usage(stdout);
			return PGS_EXIT_OK;
		}
		return usage_error("%sno command given", "");
	}
	for (i = 0; i < NCOMMANDS && cmd == NULL; i++)
		if (strcmp(argv[optind], commands[i].name) == 0)
			cmd = &commands[i];
	if (cmd == NULL)
		return pgs_help_unknown_command(argv[optind]);
	optind++;
	for (i = 0; i < (size_t) nused; i++)
		if ((used[i]->commands & cmd->bit) == 0)
		{
			pgs_errorf("%s does not take --%s\n", cmd->name, used[i]->name);
			fprintf(stderr, "Try \"pgshift help %s\" for its options.\n", cmd->name);
			return PGS_EXIT_USAGE;
		}
	if (cli.help)
		return pgs_help_command(stdout, cmd->name);

	/* stdout carries JSON: what the filter neutralises becomes JSON escapes */
	if (cli.opts.json || (cli.opts.format && strcmp(cli.opts.format, "json") == 0))
		pgs_output_json(true);

	if (cmd->arg == ARG_FILE)
	{
		if (optind >= argc)
			return usage_error("%s: missing migration FILE", cmd->name);
		arg = argv[optind++];
	}
	else if (cmd->arg == ARG_MIGRATION)
	{
		if (optind >= argc)
			return usage_error("%s: missing migration NAME", cmd->name);
		arg = argv[optind++];
	}
	else if (cmd->arg == ARG_NAME && optind < argc)
		arg = argv[optind++];
	if (optind < argc)
		return usage_error("unexpected argument \"%s\"", argv[optind]);
	/*
	 * a directory of migrations: project.c, file by file (only for the
	 * commands that take a migration FILE, and status; "help run" beside a
	 * directory named run is still help)
	 */
	if (arg && (cmd->arg == ARG_FILE || (cmd->bit & CMD_STATUS)) && pgs_is_directory(arg))
		return pgs_cmd_project(&cli.opts, cmd->name, arg);
	if ((rc = pgs_resolve_target(&cli.opts)) != PGS_EXIT_OK)
		return rc;
	return cmd->run(&cli, cmd->name, arg);
}
