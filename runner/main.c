/*
 * main.c
 *	  pgshift's command line: options, commands, exit codes.
 *
 *	  0  done (or a check found no difference)
 *	  1  the migration failed, a verify gate failed, a rollback was refused,
 *	     lint found something at or above --fail-on
 *	  2  usage, file, connection or setup error, or the migration is locked
 *	     by another runner (nothing was run)
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pgshift.h"

static void
usage(FILE *out)
{
	fprintf(out,
			"pgshift %s: zero-downtime PostgreSQL migrations written in Lua\n"
			"\n"
			"Usage:\n"
			"  pgshift [OPTION]... run FILE [--to PHASE] [--allow-drift]\n"
			"                                     run the pending phases in order\n"
			"  pgshift [OPTION]... rollback FILE [--to PHASE] [--allow-drift]\n"
			"                                     undo completed phases, last first\n"
			"  pgshift [OPTION]... verify FILE    run the verify gates of completed phases\n"
			"  pgshift [OPTION]... plan FILE [--format text|markdown|json] [--offline]\n"
			"                                     print the plan; change nothing\n"
			"  pgshift [OPTION]... status [NAME]  the state of every migration, or of one\n"
			"  pgshift [OPTION]... lint FILE [--fail-on LEVEL]\n"
			"                                     lint every phase's SQL on the server\n"
			"  pgshift [OPTION]... compare --target=DSN --table=TABLE [--source=DSN]\n"
			"          [--target-table=T] [--columns=C,...] [--target-columns=C,...]\n"
			"          [--key=C,...] [--target-key=C,...] [--buckets=N] [--recheck=N]\n"
			"                                     compare a table on two servers by chunk\n"
			"                                     checksums; list the rows that differ\n"
			"\n"
			"Options:\n"
			"  -d, --dsn=DSN        connection string or URI (default: the libpq\n"
			"                       environment: PGHOST, PGPORT, PGDATABASE, PGUSER, ...)\n"
			"      --to=PHASE       run: stop after PHASE; rollback: keep PHASE and\n"
			"                       the phases before it\n"
			"      --lock-wait=SECS wait up to SECS for another runner to finish (default 0)\n"
			"      --allow-drift    accept a completed migration's changed script (logged)\n"
			"      --format=FORMAT  plan: text (default), markdown or json\n"
			"      --offline        plan: do not connect (no recorded state, no lint)\n"
			"      --fail-on=LEVEL  lint: exit 1 on a finding at or above LEVEL:\n"
			"                       critical, high (default), medium or low\n"
			"      --source=DSN     compare: the source server (default: --dsn or the\n"
			"                       libpq environment)\n"
			"      --target=DSN     compare: the target server\n"
			"      --table=TABLE    compare: the table (schema-qualified if needed)\n"
			"      --recheck=N      compare: read differing rows again up to N times\n"
			"                       (default 3); rows written meanwhile are in flight\n"
			"      --json           machine-readable output (events, status, plan, compare)\n"
			"  -q, --quiet          print only errors\n"
			"  -v, --verbose        add a Lua traceback to errors\n"
			"  -V, --version        print the version and exit\n"
			"  -h, --help           print this help and exit\n"
			"\n"
			"Exit status: 0 done (compare: equal); 1 the migration failed (or a verify\n"
			"gate, or a refused rollback; compare: the tables differ; lint: a finding\n"
			"at or above --fail-on); 2 usage, file,\n"
			"connection or setup error, or the\n"
			"migration is locked by another runner (nothing was run).\n"
			"The database needs the pg_shift extension of the same version:\n"
			"  CREATE EXTENSION pg_shift;\n",
			PGS_VERSION);
}

/* "High" -> "HIGH": a lint severity in any case, or NULL */
static const char *
severity_name(const char *arg)
{
	static const char *const names[] = {"CRITICAL", "HIGH", "MEDIUM", "LOW"};
	size_t		i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(arg, names[i]) == 0)
			return names[i];
	return NULL;
}

static int
usage_error(const char *fmt, const char *arg)
{
	fputs("pgshift: ", stderr);
	fprintf(stderr, fmt, arg);
	fputs("\nTry \"pgshift --help\" for more information.\n", stderr);
	return PGS_EXIT_USAGE;
}

enum
{
	OPT_TO = 256,
	OPT_LOCK_WAIT,
	OPT_ALLOW_DRIFT,
	OPT_FORMAT,
	OPT_OFFLINE,
	OPT_JSON,
	OPT_SOURCE,
	OPT_TARGET,
	OPT_TABLE,
	OPT_TARGET_TABLE,
	OPT_COLUMNS,
	OPT_TARGET_COLUMNS,
	OPT_KEY,
	OPT_TARGET_KEY,
	OPT_BUCKETS,
	OPT_FAIL_ON,
	OPT_RECHECK
};

/* Which options each command takes (beyond the common ones). */
static bool
option_allowed(const char *command, int opt)
{
	bool		session = strcmp(command, "run") == 0 || strcmp(command, "rollback") == 0 ||
		strcmp(command, "verify") == 0;

	switch (opt)
	{
		case OPT_TO:
			return strcmp(command, "run") == 0 || strcmp(command, "rollback") == 0;
		case OPT_LOCK_WAIT:
			return session;
		case OPT_ALLOW_DRIFT:
			return session;
		case OPT_FORMAT:
		case OPT_OFFLINE:
			return strcmp(command, "plan") == 0;
		case OPT_FAIL_ON:
			return strcmp(command, "lint") == 0;
		case OPT_SOURCE:
		case OPT_TARGET:
		case OPT_TABLE:
		case OPT_TARGET_TABLE:
		case OPT_COLUMNS:
		case OPT_TARGET_COLUMNS:
		case OPT_KEY:
		case OPT_TARGET_KEY:
		case OPT_BUCKETS:
		case OPT_RECHECK:
			return strcmp(command, "compare") == 0;
		default:
			return true;
	}
}

static const char *
option_name(int opt)
{
	switch (opt)
	{
		case OPT_TO:
			return "--to";
		case OPT_LOCK_WAIT:
			return "--lock-wait";
		case OPT_ALLOW_DRIFT:
			return "--allow-drift";
		case OPT_FORMAT:
			return "--format";
		case OPT_OFFLINE:
			return "--offline";
		case OPT_SOURCE:
			return "--source";
		case OPT_TARGET:
			return "--target";
		case OPT_TABLE:
			return "--table";
		case OPT_TARGET_TABLE:
			return "--target-table";
		case OPT_COLUMNS:
			return "--columns";
		case OPT_TARGET_COLUMNS:
			return "--target-columns";
		case OPT_KEY:
			return "--key";
		case OPT_TARGET_KEY:
			return "--target-key";
		case OPT_BUCKETS:
			return "--buckets";
		case OPT_FAIL_ON:
			return "--fail-on";
		case OPT_RECHECK:
			return "--recheck";
		default:
			return "?";
	}
}

int
main(int argc, char **argv)
{
	static const struct option long_options[] = {
		{"dsn", required_argument, NULL, 'd'},
		{"quiet", no_argument, NULL, 'q'},
		{"verbose", no_argument, NULL, 'v'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{"to", required_argument, NULL, OPT_TO},
		{"lock-wait", required_argument, NULL, OPT_LOCK_WAIT},
		{"allow-drift", no_argument, NULL, OPT_ALLOW_DRIFT},
		{"format", required_argument, NULL, OPT_FORMAT},
		{"offline", no_argument, NULL, OPT_OFFLINE},
		{"json", no_argument, NULL, OPT_JSON},
		{"source", required_argument, NULL, OPT_SOURCE},
		{"target", required_argument, NULL, OPT_TARGET},
		{"table", required_argument, NULL, OPT_TABLE},
		{"target-table", required_argument, NULL, OPT_TARGET_TABLE},
		{"columns", required_argument, NULL, OPT_COLUMNS},
		{"target-columns", required_argument, NULL, OPT_TARGET_COLUMNS},
		{"key", required_argument, NULL, OPT_KEY},
		{"target-key", required_argument, NULL, OPT_TARGET_KEY},
		{"buckets", required_argument, NULL, OPT_BUCKETS},
		{"fail-on", required_argument, NULL, OPT_FAIL_ON},
		{"recheck", required_argument, NULL, OPT_RECHECK},
		{NULL, 0, NULL, 0}
	};
	PgsOptions	opts;
	PgsCompareOptions copts;
	const char *command;
	const char *arg = NULL;
	int			used[32] = {0};
	int			nused = 0;
	int			c;
	int			i;

	memset(&opts, 0, sizeof(opts));
	memset(&copts, 0, sizeof(copts));
	copts.recheck = 3;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":d:qvVh", long_options, NULL)) != -1)
	{
		switch (c)
		{
			case 'd':
				opts.dsn = optarg;
				break;
			case 'q':
				opts.quiet = true;
				break;
			case 'v':
				opts.verbose = true;
				break;
			case 'V':
				printf("pgshift %s\n", PGS_VERSION);
				return PGS_EXIT_OK;
			case 'h':
				usage(stdout);
				return PGS_EXIT_OK;
			case OPT_TO:
				opts.to = optarg;
				break;
			case OPT_LOCK_WAIT:
				{
					char	   *end;

					opts.lock_wait = strtod(optarg, &end);
					if (end == optarg || *end != '\0' || opts.lock_wait < 0 ||
						opts.lock_wait > 86400)
						return usage_error("--lock-wait: \"%s\" is not a number of "
										   "seconds from 0 to 86400", optarg);
					break;
				}
			case OPT_ALLOW_DRIFT:
				opts.allow_drift = true;
				break;
			case OPT_FORMAT:
				if (strcmp(optarg, "text") != 0 && strcmp(optarg, "markdown") != 0 &&
					strcmp(optarg, "json") != 0)
					return usage_error("--format: \"%s\" is not text, markdown or json", optarg);
				opts.format = optarg;
				break;
			case OPT_OFFLINE:
				opts.offline = true;
				break;
			case OPT_JSON:
				opts.json = true;
				break;
			case OPT_SOURCE:
				copts.source = optarg;
				break;
			case OPT_TARGET:
				copts.target = optarg;
				break;
			case OPT_TABLE:
				copts.table = optarg;
				break;
			case OPT_TARGET_TABLE:
				copts.target_table = optarg;
				break;
			case OPT_COLUMNS:
				copts.columns = optarg;
				break;
			case OPT_TARGET_COLUMNS:
				copts.target_columns = optarg;
				break;
			case OPT_KEY:
				copts.key = optarg;
				break;
			case OPT_TARGET_KEY:
				copts.target_key = optarg;
				break;
			case OPT_BUCKETS:
				{
					char	   *end;
					long		v = strtol(optarg, &end, 10);

					if (end == optarg || *end != '\0' || v < 1 || v > 4096 || (v & (v - 1)) != 0)
						return usage_error("--buckets: \"%s\" is not a power of two from 1 to 4096",
										   optarg);
					copts.buckets = (int) v;
					break;
				}
			case OPT_RECHECK:
				{
					char	   *end;
					long		v = strtol(optarg, &end, 10);

					if (end == optarg || *end != '\0' || v < 0 || v > 100)
						return usage_error("--recheck: \"%s\" is not a number from 0 to 100", optarg);
					copts.recheck = (int) v;
					break;
				}
			case OPT_FAIL_ON:
				if ((opts.fail_on = severity_name(optarg)) == NULL)
					return usage_error("--fail-on: \"%s\" is not critical, high, medium or low",
									   optarg);
				break;
			case ':':
				return usage_error("option %s needs a value", argv[optind - 1]);
			default:
				if (optopt != 0 && optopt < 256)
				{
					char		opt[3] = {'-', (char) optopt, '\0'};

					return usage_error("unknown option \"%s\"", opt);
				}
				return usage_error("unknown option or value in \"%s\"", argv[optind - 1]);
		}
		if (c >= OPT_TO && nused < 32)
			used[nused++] = c;
	}

	if (optind >= argc)
		return usage_error("%sno command given", "");
	command = argv[optind++];
	if (strcmp(command, "run") != 0 && strcmp(command, "rollback") != 0 &&
		strcmp(command, "verify") != 0 && strcmp(command, "plan") != 0 &&
		strcmp(command, "status") != 0 && strcmp(command, "compare") != 0 &&
		strcmp(command, "lint") != 0)
		return usage_error("unknown command \"%s\"", command);
	for (i = 0; i < nused; i++)
		if (!option_allowed(command, used[i]))
		{
			fprintf(stderr, "pgshift: %s does not take %s\n", command, option_name(used[i]));
			fputs("Try \"pgshift --help\" for more information.\n", stderr);
			return PGS_EXIT_USAGE;
		}

	if (strcmp(command, "compare") == 0)
	{
		if (optind < argc)
			return usage_error("unexpected argument \"%s\"", argv[optind]);
		if (copts.target == NULL)
			return usage_error("%scompare: --target=DSN is required", "");
		if (copts.table == NULL)
			return usage_error("%scompare: --table=TABLE is required", "");
		if (copts.source == NULL)
			copts.source = opts.dsn;
		return pgs_cmd_compare(&opts, &copts);
	}
	if (strcmp(command, "status") == 0)
	{
		if (optind < argc)
			arg = argv[optind++];
	}
	else
	{
		if (optind >= argc)
			return usage_error("%s: missing migration FILE", command);
		arg = argv[optind++];
	}
	if (optind < argc)
		return usage_error("unexpected argument \"%s\"", argv[optind]);

	if (strcmp(command, "plan") == 0)
		return pgs_cmd_plan(&opts, arg);
	if (strcmp(command, "status") == 0)
		return pgs_cmd_status(&opts, arg);
	if (strcmp(command, "lint") == 0)
		return pgs_cmd_lint(&opts, arg);
	return pgs_cmd_session(&opts, command, arg);
}
