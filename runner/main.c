/*
 * main.c
 *	  pgshift's command line: options, commands, exit codes.
 *
 *	  0  done (or a check found no difference)
 *	  1  the migration failed (Lua error, SQL error, invalid migration file)
 *	  2  usage, file, connection or setup error (nothing was run)
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "pgshift.h"

static void
usage(FILE *out)
{
	fprintf(out,
			"pgshift %s: zero-downtime PostgreSQL migrations written in Lua\n"
			"\n"
			"Usage:\n"
			"  pgshift [OPTION]... run FILE     run the migration's phases in order\n"
			"\n"
			"Options:\n"
			"  -d, --dsn=DSN    connection string or URI (default: the libpq\n"
			"                   environment: PGHOST, PGPORT, PGDATABASE, PGUSER, ...)\n"
			"  -q, --quiet      print only errors\n"
			"  -v, --verbose    add a Lua traceback to errors\n"
			"  -V, --version    print the version and exit\n"
			"  -h, --help       print this help and exit\n"
			"\n"
			"Exit status: 0 done, 1 the migration failed, 2 usage, file,\n"
			"connection or setup error (nothing was run).\n"
			"The database needs the pg_shift extension of the same version:\n"
			"  CREATE EXTENSION pg_shift;\n",
			PGS_VERSION);
}

static int
usage_error(const char *fmt, const char *arg)
{
	fputs("pgshift: ", stderr);
	fprintf(stderr, fmt, arg);
	fputs("\nTry \"pgshift --help\" for more information.\n", stderr);
	return PGS_EXIT_USAGE;
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
		{NULL, 0, NULL, 0}
	};
	PgsOptions	opts;
	const char *command;
	int			c;

	memset(&opts, 0, sizeof(opts));
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
			case ':':
				return usage_error("option %s needs a value", argv[optind - 1]);
			default:
				return usage_error("unknown option \"%s\"", argv[optind - 1]);
		}
	}
	pgs_quiet = opts.quiet;

	if (optind >= argc)
		return usage_error("%sno command given", "");
	command = argv[optind++];

	if (strcmp(command, "run") == 0)
	{
		if (optind >= argc)
			return usage_error("%s: missing migration FILE", command);
		if (optind + 1 < argc)
			return usage_error("unexpected argument \"%s\"", argv[optind + 1]);
		return pgs_cmd_run(&opts, argv[optind]);
	}
	return usage_error("unknown command \"%s\"", command);
}
