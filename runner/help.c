/*
 * help.c
 *	  What pgshift says about itself: the help (pgshift --help, pgshift help
 *	  COMMAND, pgshift COMMAND --help), the man page pgshift.1 (pgshift --man,
 *	  run at build time) and the completion scripts of bash and zsh
 *	  (pgshift completion bash|zsh).
 *
 * All of it is made from main.c's two tables, commands[] and options[],
 * which the parser is made from too (main.c hands a copy of what they show
 * to pgs_help_tables): a command's help lists exactly the options its parser
 * takes, and the completion offers exactly those.  Only the values an option
 * can take (choices[] below) and the prose around the tables live here.
 */
#include <stdlib.h>
#include <string.h>

#include "pgshift.h"

static const PgsHelpCommand *commands;
static int	ncommands;
static const PgsHelpOption *options;
static int	noptions;

/* The values of options that take one of a few words (for the completion). */
static const struct
{
	const char *option;
	const char *words;
}			choices[] = {
	{"format", "text markdown json"},
	{"fail-on", "critical high medium low"},
	{"color", "auto always never"},
};

#define TAGLINE "zero-downtime PostgreSQL migrations written in Lua"

/* The exit status, for --help and the man page: paragraphs of lines. */
static const char *const exit_status =
"0 done (compare: equal); 1 the migration failed (or a verify\n"
"gate, or a refused rollback; compare: the tables differ; lint: a finding\n"
"at or above --fail-on; status DIR: a file is invalid or changed since it\n"
"was applied); 2 usage, file,\n"
"connection or setup error, or the\n"
"migration is locked by another runner (nothing was run).";

/* Column where the summaries and help texts start in --help. */
#define SUMMARY_COLUMN	37
#define HELP_COLUMN		23
#define WIDTH			78

/* pgs_help_tables: what main.c's tables show (kept, not copied). */
void
pgs_help_tables(const PgsHelpCommand *cmds, int ncmds,
				const PgsHelpOption *opts, int nopts)
{
	commands = cmds;
	ncommands = ncmds;
	options = opts;
	noptions = nopts;
}

static const PgsHelpCommand *
find_command(const char *name)
{
	int			i;

	for (i = 0; i < ncommands; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* Does command c take option o?  (What main.c's parser checks.) */
static bool
takes(const PgsHelpCommand *c, const PgsHelpOption *o)
{
	return o->commands == 0 || (o->commands & c->bit) != 0;
}

/* Does o show anywhere (help, man page, completion)? */
static bool
visible(const PgsHelpOption *o)
{
	return o->help != NULL;
}

/*
 * Is o one that most commands take?  The completion offers those before
 * the command is known, as in "pgshift -d DSN run FILE".
 */
static bool
common(const PgsHelpOption *o)
{
	int			i;
	int			n = 0;

	for (i = 0; i < ncommands; i++)
		if (takes(&commands[i], o))
			n++;
	return 2 * n > ncommands;
}

static const char *
choices_of(const PgsHelpOption *o)
{
	size_t		i;

	for (i = 0; i < sizeof(choices) / sizeof(choices[0]); i++)
		if (strcmp(choices[i].option, o->name) == 0)
			return choices[i].words;
	return NULL;
}

/* ---- --help ---- */

/* Prints text's lines, the first after what is printed already, the rest indented. */
static void
print_lines(FILE *out, const char *text, int indent)
{
	const char *nl;

	while ((nl = strchr(text, '\n')) != NULL)
	{
		fprintf(out, "%.*s\n%*s", (int) (nl - text), text, indent, "");
		text = nl + 1;
	}
	fprintf(out, "%s\n", text);
}

/* Prints a paragraph, its words wrapped at WIDTH, each line indented. */
static void
print_wrapped(FILE *out, const char *text, int indent)
{
	int			col = 0;

	while (*text)
	{
		size_t		len;

		while (*text == ' ')
			text++;
		len = strcspn(text, " ");
		if (len == 0)
			break;
		if (col > 0 && col + 1 + (int) len > WIDTH)
		{
			fputc('\n', out);
			col = 0;
		}
		if (col == 0)
			col = fprintf(out, "%*s", indent, "");
		else
			col += fprintf(out, " ");
		col += fprintf(out, "%.*s", (int) len, text);
		text += len;
	}
	fputc('\n', out);
}

static void
print_option(FILE *out, const PgsHelpOption *o)
{
	char		letter[8] = "    ";
	char		name[64];

	if (o->letter)
		snprintf(letter, sizeof(letter), "-%c, ", o->letter);
	snprintf(name, sizeof(name), "--%s%s%s", o->name, o->value ? "=" : "",
			 o->value ? o->value : "");
	if (strlen(name) > 16)
		fprintf(out, "  %s%s\n%*s", letter, name, HELP_COLUMN, "");
	else
		fprintf(out, "  %s%-16s ", letter, name);
	print_lines(out, o->help, HELP_COLUMN);
}

/* pgs_help_usage: pgshift --help, pgshift help. */
void
pgs_help_usage(FILE *out)
{
	int			i;

	fprintf(out, "pgshift %s: " TAGLINE "\n\nUsage:\n", PGS_VERSION);
	for (i = 0; i < ncommands; i++)
	{
		const PgsHelpCommand *c = &commands[i];
		int			len = fprintf(out, "  pgshift [OPTION]... %s", c->synopsis);

		if (strchr(c->synopsis, '\n') == NULL && len + 2 <= SUMMARY_COLUMN)
			fprintf(out, "%*s", SUMMARY_COLUMN - len, "");
		else
			fprintf(out, "\n%*s", SUMMARY_COLUMN, "");
		print_lines(out, c->summary, SUMMARY_COLUMN);
	}
	fputs("\nOptions:\n", out);
	for (i = 0; i < noptions; i++)
		if (visible(&options[i]))
			print_option(out, &options[i]);
	fprintf(out, "\n"
			"\"pgshift help COMMAND\" (or \"pgshift COMMAND --help\") shows a command's\n"
			"options and an example; \"man pgshift\" shows everything.\n"
			"\nExit status: %s\n"
			"The database needs the pg_shift extension of the same version:\n"
			"  CREATE EXTENSION pg_shift;\n", exit_status);
}

/*
 * pgs_help_command: pgshift help NAME, pgshift NAME --help: the synopsis,
 * what the command does, exactly the options it takes, an example.
 */
int
pgs_help_command(FILE *out, const char *name)
{
	const PgsHelpCommand *c = find_command(name);
	int			i;

	if (c == NULL)
		return pgs_help_unknown_command(name);
	fprintf(out, "Usage:\n  pgshift [OPTION]... ");
	print_lines(out, c->synopsis, 0);
	fputc('\n', out);
	print_lines(out, c->summary, 0);
	fputc('\n', out);
	print_wrapped(out, c->description, 0);
	fputs("\nOptions:\n", out);
	for (i = 0; i < noptions; i++)
		if (visible(&options[i]) && takes(c, &options[i]))
			print_option(out, &options[i]);
	fputs("\nExample:\n  ", out);
	print_lines(out, c->example, 2);
	return PGS_EXIT_OK;
}

/* pgs_help_unknown_command: the usage error, naming the commands there are. */
int
pgs_help_unknown_command(const char *name)
{
	int			i;

	pgs_errorf("unknown command \"%s\"\n", name);
	fputs("The commands are:", stderr);
	for (i = 0; i < ncommands; i++)
		fprintf(stderr, "%s %s", i ? "," : "", commands[i].name);
	fputs(".\nTry \"pgshift --help\" for more information.\n", stderr);
	return PGS_EXIT_USAGE;
}

/* ---- the man page ---- */

/*
 * Text for roff: backslashes escaped, a hyphen that starts a word (an
 * option) a minus, newlines as they are (each line protected from starting
 * a request).
 */
static void
man_text(FILE *out, const char *text)
{
	const char *p;
	bool		line_start = true;

	for (p = text; *p; p++)
	{
		if (line_start && (*p == '.' || *p == '\''))
			fputs("\\&", out);
		line_start = false;
		if (*p == '\\')
			fputs("\\e", out);
		else if (*p == '-' && (p == text || strchr(" [(|=-\n", p[-1]) || p[1] == '-'))
			fputs("\\-", out);
		else
		{
			fputc(*p, out);
			line_start = (*p == '\n');
		}
	}
}

/* A text of lines (\n), as one paragraph. */
static void
man_joined(FILE *out, const char *text)
{
	char	   *copy = strdup(text);
	char	   *p;

	if (copy == NULL)
		return;
	for (p = copy; *p; p++)
		if (*p == '\n')
			*p = ' ';
	man_text(out, copy);
	free(copy);
}

static void
man_option_tag(FILE *out, const PgsHelpOption *o)
{
	fputs(".TP\n", out);
	if (o->letter)
		fprintf(out, "\\fB\\-%c\\fR, ", o->letter);
	fputs("\\fB\\-\\-", out);
	man_text(out, o->name);
	fputs("\\fR", out);
	if (o->value)
	{
		fputs("=\\fI", out);
		man_text(out, o->value);
		fputs("\\fR", out);
	}
	fputc('\n', out);
}

/* pgs_help_man: the man page, pgshift.1, in roff (man macros). */
void
pgs_help_man(FILE *out)
{
	int			i;
	int			j;
	int			n;

	fprintf(out, ".\\\" pgshift.1: made by \"pgshift --man\" from the tables of "
			"runner/main.c; do not edit\n"
			".TH PGSHIFT 1 \"\" \"pgshift %s\" \"User Commands\"\n"
			".nh\n"
			".SH NAME\n"
			"pgshift \\- " TAGLINE "\n"
			".SH SYNOPSIS\n"
			".nf\n", PGS_VERSION);
	for (i = 0; i < ncommands; i++)
	{
		fputs("\\fBpgshift\\fR [\\fIOPTION\\fR]... ", out);
		man_text(out, commands[i].synopsis);
		fputc('\n', out);
	}
	fputs(".fi\n"
		  ".SH DESCRIPTION\n"
		  "\\fBpgshift\\fR runs migration files, written in Lua, phase by phase "
		  "against a PostgreSQL database with the \\fBpg_shift\\fR extension, "
		  "which records each step so that an interrupted run resumes where it "
		  "stopped. It also plans, lints and reviews migration files, shows what "
		  "the database recorded, and compares a table on two servers.\n"
		  ".PP\n"
		  "Options may come before or after the command; each command takes "
		  "the options listed under it, and every command takes", out);
	for (i = 0, j = 0; i < noptions; i++)
		if (visible(&options[i]) && options[i].commands == 0)
			j++;
	for (i = 0, n = j; i < noptions; i++)
		if (visible(&options[i]) && options[i].commands == 0)
		{
			fprintf(out, "%s\\fB\\-\\-", --j == 0 && n > 1 ? " and " : " ");
			man_text(out, options[i].name);
			fputs(j > 0 ? "\\fR," : "\\fR", out);
		}
	fputs(".\n.SH COMMANDS\n", out);
	for (i = 0; i < ncommands; i++)
	{
		const PgsHelpCommand *c = &commands[i];
		bool		first = true;

		fprintf(out, ".SS %s\n.nf\n\\fBpgshift\\fR [\\fIOPTION\\fR]... ", c->name);
		man_text(out, c->synopsis);
		fputs("\n.fi\n.PP\n", out);
		man_text(out, c->description);
		fputs("\n.PP\nOptions:", out);
		for (j = 0; j < noptions; j++)
		{
			const PgsHelpOption *o = &options[j];

			if (!visible(o) || o->commands == 0 || !takes(c, o))
				continue;
			fprintf(out, "%s\\fB\\-\\-", first ? " " : ", ");
			man_text(out, o->name);
			fputs("\\fR", out);
			first = false;
		}
		fputs(".\n.PP\nExample:\n.PP\n.RS 4\n.nf\n", out);
		man_text(out, c->example);
		fputs("\n.fi\n.RE\n", out);
	}
	fputs(".SH OPTIONS\n", out);
	for (i = 0; i < noptions; i++)
	{
		const PgsHelpOption *o = &options[i];

		if (!visible(o))
			continue;
		man_option_tag(out, o);
		man_joined(out, o->help);
		fputc('\n', out);
	}
	fputs(".SH EXIT STATUS\n", out);
	man_joined(out, exit_status);
	fputs("\n"
		  ".SH ENVIRONMENT\n"
		  ".TP\n"
		  "\\fBPGHOST\\fR, \\fBPGPORT\\fR, \\fBPGDATABASE\\fR, \\fBPGUSER\\fR, ...\n"
		  "Without \\fB\\-\\-dsn\\fR, libpq's environment says where to connect.\n"
		  ".TP\n"
		  "\\fBNO_COLOR\\fR\n"
		  "Set to anything but the empty string, no colour unless "
		  "\\fB\\-\\-color=always\\fR.\n"
		  ".TP\n"
		  "\\fBTERM\\fR\n"
		  "Unset or \\fBdumb\\fR, no colour unless \\fB\\-\\-color=always\\fR.\n"
		  ".SH SEE ALSO\n"
		  "\\fBpsql\\fR(1); the pg_shift documentation: README.md and doc/*.md\n", out);
}

/* ---- shell completion ---- */

/* The names of the options c takes (c NULL: the common ones), as "--a --b". */
static void
option_words(FILE *out, const PgsHelpCommand *c, bool letters)
{
	int			i;
	bool		first = true;

	for (i = 0; i < noptions; i++)
	{
		const PgsHelpOption *o = &options[i];

		if (!visible(o) || !(c ? takes(c, o) : common(o)))
			continue;
		if (letters && o->letter)
			fprintf(out, "%s-%c", first ? "" : " ", o->letter);
		fprintf(out, "%s--%s", first && !(letters && o->letter) ? "" : " ", o->name);
		first = false;
	}
}

static void
completion_bash(FILE *out)
{
	int			i;

	fprintf(out, "# bash completion of pgshift %s: made by \"pgshift completion bash\"\n"
			"# from the tables its parser is made from; do not edit.\n"
			"_pgshift()\n"
			"{\n"
			"    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n"
			"    local cmd='' word i opt='' opts\n"
			"    # the options that take a value (in the next word, or after '=')\n"
			"    local valued=' ", PGS_VERSION);
	for (i = 0; i < noptions; i++)
		if (visible(&options[i]) && options[i].value)
		{
			if (options[i].letter)
				fprintf(out, "-%c ", options[i].letter);
			fprintf(out, "--%s ", options[i].name);
		}
	fputs("'\n"
		  "    # the command: the first word that is no option and no option's value\n"
		  "    for ((i = 1; i < COMP_CWORD; i++)); do\n"
		  "        word=${COMP_WORDS[i]}\n"
		  "        case $word in\n"
		  "            =) ((i++)) ;;\n"
		  "            -*) [[ $valued == *\" $word \"* && ${COMP_WORDS[i+1]} != = ]] && ((i++)) ;;\n"
		  "            *) cmd=$word; break ;;\n"
		  "        esac\n"
		  "    done\n"
		  "    # an option's value: \"--opt value\", \"--opt=value\" (split at '=')\n"
		  "    if [[ $cur == = ]]; then opt=$prev; cur=''\n"
		  "    elif [[ $prev == = ]]; then opt=${COMP_WORDS[COMP_CWORD-2]}\n"
		  "    elif [[ $valued == *\" $prev \"* ]]; then opt=$prev\n"
		  "    fi\n"
		  "    if [[ -n $opt ]]; then\n"
		  "        case $opt in\n", out);
	for (i = 0; i < noptions; i++)
	{
		const char *words = choices_of(&options[i]);

		if (visible(&options[i]) && words)
			fprintf(out, "            --%s) COMPREPLY=($(compgen -W '%s' -- \"$cur\")) ;;\n",
					options[i].name, words);
		else if (visible(&options[i]) && options[i].value &&
				 strcmp(options[i].value, "FILE") == 0)
			fprintf(out, "            --%s) compopt -o filenames 2>/dev/null;"
					" COMPREPLY=($(compgen -f -- \"$cur\")) ;;\n", options[i].name);
	}
	fputs("            *) COMPREPLY=() ;;\n"
		  "        esac\n"
		  "        return 0\n"
		  "    fi\n"
		  "    # the options the command takes\n"
		  "    case $cmd in\n"
		  "        '') opts='", out);
	option_words(out, NULL, true);
	fputs("' ;;\n", out);
	for (i = 0; i < ncommands; i++)
	{
		fprintf(out, "        %s) opts='", commands[i].name);
		option_words(out, &commands[i], true);
		fputs("' ;;\n", out);
	}
	fputs("        *) opts='' ;;\n"
		  "    esac\n"
		  "    if [[ $cur == -* ]]; then\n"
		  "        COMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))\n"
		  "        return 0\n"
		  "    fi\n"
		  "    # the command's argument\n"
		  "    case $cmd in\n"
		  "        '') COMPREPLY=($(compgen -W '", out);
	for (i = 0; i < ncommands; i++)
		fprintf(out, "%s%s", i ? " " : "", commands[i].name);
	fputs("' -- \"$cur\")) ;;\n"
		  "        help) COMPREPLY=($(compgen -W '", out);
	for (i = 0; i < ncommands; i++)
		fprintf(out, "%s%s", i ? " " : "", commands[i].name);
	fputs("' -- \"$cur\")) ;;\n"
		  "        completion) COMPREPLY=($(compgen -W 'bash zsh' -- \"$cur\")) ;;\n", out);
	for (i = 0; i < ncommands; i++)
		if (commands[i].file_arg)
			fprintf(out, "        %s) compopt -o filenames 2>/dev/null;"
					" COMPREPLY=($(compgen -f -- \"$cur\")) ;;\n", commands[i].name);
	fputs("        *) COMPREPLY=() ;;\n"
		  "    esac\n"
		  "    return 0\n"
		  "}\n"
		  "complete -F _pgshift pgshift\n", out);
}

/* text inside zsh single quotes and an _arguments [description] */
static void
zsh_text(FILE *out, const char *text)
{
	const char *p;

	for (p = text; *p; p++)
	{
		if (*p == '\'')
			fputs("'\\''", out);
		else if (*p == '[' || *p == ']' || *p == ':' || *p == '\\')
			fprintf(out, "\\%c", *p);
		else if (*p == '\n')
			fputc(' ', out);
		else
			fputc(*p, out);
	}
}

/* one _arguments spec per option c takes (c NULL: the common ones) */
static void
zsh_option_specs(FILE *out, const PgsHelpCommand *c, const char *indent)
{
	int			i;

	for (i = 0; i < noptions; i++)
	{
		const PgsHelpOption *o = &options[i];
		const char *words = choices_of(o);
		const char *arg = o->value ? (o->letter ? "+" : "=") : "";

		if (!visible(o) || !(c ? takes(c, o) : common(o)))
			continue;
		fputs(indent, out);
		if (o->letter)
			fprintf(out, "'(-%c --%s)'{-%c%s,--%s%s}'[", o->letter, o->name,
					o->letter, arg, o->name, o->value ? "=" : "");
		else
			fprintf(out, "'--%s%s[", o->name, arg);
		zsh_text(out, o->help);
		fputc(']', out);
		if (o->value)
		{
			fputc(':', out);
			zsh_text(out, o->value);
			fputc(':', out);
			if (words)
				fprintf(out, "(%s)", words);
			else if (strcmp(o->value, "FILE") == 0)
				fputs("_files", out);
		}
		fputs("' \\\n", out);
	}
}

static void
completion_zsh(FILE *out)
{
	int			i;

	fprintf(out, "#compdef pgshift\n"
			"# zsh completion of pgshift %s: made by \"pgshift completion zsh\"\n"
			"# from the tables its parser is made from; do not edit.\n"
			"_pgshift() {\n"
			"  local curcontext=$curcontext state state_descr line ret=1\n"
			"  typeset -A opt_args\n"
			"  local -a commands\n"
			"  commands=(\n", PGS_VERSION);
	for (i = 0; i < ncommands; i++)
	{
		fprintf(out, "    '%s:", commands[i].name);
		zsh_text(out, commands[i].summary);
		fputs("'\n", out);
	}
	fputs("  )\n"
		  "  _arguments -C \\\n", out);
	zsh_option_specs(out, NULL, "    ");
	fputs("    '1: :->command' \\\n"
		  "    '*:: :->args' && ret=0\n"
		  "  case $state in\n"
		  "    command) _describe -t commands 'pgshift command' commands && ret=0 ;;\n"
		  "    args)\n"
		  "      curcontext=${curcontext%:*:*}:pgshift-$words[1]:\n"
		  "      case $words[1] in\n", out);
	for (i = 0; i < ncommands; i++)
	{
		const PgsHelpCommand *c = &commands[i];

		fprintf(out, "        %s) _arguments \\\n", c->name);
		zsh_option_specs(out, c, "            ");
		if (c->file_arg)
			fputs("            '1:migration file:_files' \\\n", out);
		else if (strcmp(c->name, "help") == 0)
		{
			int			j;

			fputs("            '1:command:(", out);
			for (j = 0; j < ncommands; j++)
				fprintf(out, "%s%s", j ? " " : "", commands[j].name);
			fputs(")' \\\n", out);
		}
		else if (strcmp(c->name, "completion") == 0)
			fputs("            '1:shell:(bash zsh)' \\\n", out);
		fputs("            && ret=0 ;;\n", out);
	}
	fputs("      esac ;;\n"
		  "  esac\n"
		  "  return ret\n"
		  "}\n"
		  "_pgshift \"$@\"\n", out);
}

/* pgs_help_completion: pgshift completion SHELL. */
int
pgs_help_completion(FILE *out, const char *shell)
{
	if (strcmp(shell, "bash") == 0)
		completion_bash(out);
	else if (strcmp(shell, "zsh") == 0)
		completion_zsh(out);
	else
	{
		pgs_errorf("completion: \"%s\" is not bash or zsh\n", shell);
		return PGS_EXIT_USAGE;
	}
	return PGS_EXIT_OK;
}
