/*
 * decl.c
 *	  Declarative migration files (FILE.json, FILE.yaml, FILE.yml): the
 *	  document read by libyaml and turned into plain Lua data, which
 *	  scripts/prelude/decl.lua validates against doc/migration.schema.json
 *	  (embedded in the binary, read by the same code) and maps to the Lua
 *	  recipes.
 *
 * One parser reads both kinds: a JSON document is a YAML 1.1 flow document
 * as libyaml reads it.  The document must be plain data: anchors, aliases
 * and tags are refused (an alias would let a small file stand for a huge
 * one, a tag would change what a value is), and so are a second document,
 * duplicate keys, keys that are not scalars and null values.  The file may
 * hold at most PGS_DECL_MAX_BYTES bytes, and nest at most PGS_DECL_MAX_DEPTH
 * collections deep.
 *
 * Scalars: a quoted scalar is a string; a plain one is a boolean (true,
 * false, in any of YAML's three cases), an integer (-?[0-9]+), a number
 * (JSON's form), null (refused) or else a string.  YAML 1.1's yes/no/on/off
 * stay strings: the schema then says a boolean was wanted.
 *
 * C.decl_read(path) -> document, marks, kinds, keymarks; C.decl_schema() ->
 * the same for the embedded schema.  marks[t] maps each key (or index) of the
 * collection t to "line:column" of its value (1-based, as an editor counts),
 * and marks[t][0] is t's own place; kinds[t] is "object" or "array" (an
 * empty {} and [] differ only there); keymarks[t] maps each key of the
 * mapping t to the key's own place.  Errors are raised as
 * "path:line:column: json.path: what is wrong".
 */
#include "pgshift.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <sys/stat.h>
#include <yaml.h>

#include <lauxlib.h>

#define PGS_DECL_MAX_BYTES	(1024 * 1024)
#define PGS_DECL_MAX_DEPTH	32

typedef struct DeclReader
{
	lua_State  *L;
	yaml_parser_t parser;
	const char *name;			/* the file, as errors name it */
	int			marks;			/* stack index of the marks table */
	int			kinds;			/* stack index of the kinds table */
	int			keymarks;		/* stack index of the keys' marks */
	char		path[512];		/* JSON path of the node being read */
	char		error[2048];	/* set on failure */
} DeclReader;

/* Sets the reader's error: "name:line:col: path: msg". */
static void
decl_fail(DeclReader *r, yaml_mark_t mark, const char *fmt,...)
	__attribute__((format(printf, 3, 4)));

static void
decl_fail(DeclReader *r, yaml_mark_t mark, const char *fmt,...)
{
	char		msg[512];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(r->error, sizeof(r->error), "%s:%lu:%lu: %s%s%s", r->name,
			 (unsigned long) mark.line + 1, (unsigned long) mark.column + 1,
			 r->path[0] ? r->path : "", r->path[0] ? ": " : "", msg);
}

/* Does name end in suffix? */
static bool
ends_with(const char *name, const char *suffix)
{
	size_t		len = strlen(name);
	size_t		n = strlen(suffix);

	return len > n && strcmp(name + len - n, suffix) == 0;
}

/* The next event, or false with the parser's error set. */
static bool
decl_next(DeclReader *r, yaml_event_t *ev)
{
	if (yaml_parser_parse(&r->parser, ev))
		return true;
	decl_fail(r, r->parser.problem_mark, "invalid %s: %s%s%s",
			  ends_with(r->name, ".json") ? "JSON" : "YAML",
			  r->parser.problem ? r->parser.problem : "syntax error",
			  r->parser.context ? " " : "",
			  r->parser.context ? r->parser.context : "");
	return false;
}

/* Pushes "line:col" of mark (1-based, as an editor counts). */
static void
push_mark(lua_State *L, yaml_mark_t mark)
{
	lua_pushfstring(L, "%d:%d", (int) mark.line + 1, (int) mark.column + 1);
}

/*
 * Does s read as a JSON number (-?digits[.digits][e[+-]digits])?  *integer
 * says whether it is digits alone.
 */
static bool
matches_number(const char *s, bool *integer)
{
	const char *p = s;

	if (*p == '-')
		p++;
	if (!isdigit((unsigned char) *p))
		return false;
	while (isdigit((unsigned char) *p))
		p++;
	*integer = (*p == '\0');
	if (*p == '.')
	{
		p++;
		if (!isdigit((unsigned char) *p))
			return false;
		while (isdigit((unsigned char) *p))
			p++;
	}
	if (*p == 'e' || *p == 'E')
	{
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!isdigit((unsigned char) *p))
			return false;
		while (isdigit((unsigned char) *p))
			p++;
	}
	return *p == '\0';
}

/* Pushes the value of a scalar event; false (error set) if it is refused. */
static bool
push_scalar(DeclReader *r, yaml_event_t *ev)
{
	const char *s = (const char *) ev->data.scalar.value;
	size_t		len = ev->data.scalar.length;
	bool		integer;

	if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
	{
		lua_pushlstring(r->L, s, len);
		return true;
	}
	if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0)
		lua_pushboolean(r->L, 1);
	else if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 || strcmp(s, "FALSE") == 0)
		lua_pushboolean(r->L, 0);
	else if (len == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
			 strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0)
	{
		decl_fail(r, ev->start_mark, "null is not a value here: leave the key out, or give a value");
		return false;
	}
	else if (matches_number(s, &integer))
	{
		if (integer)
		{
			char	   *end;
			long long	v;

			errno = 0;
			v = strtoll(s, &end, 10);
			if (errno == ERANGE)
			{
				decl_fail(r, ev->start_mark, "integer %s is out of range", s);
				return false;
			}
			lua_pushinteger(r->L, (lua_Integer) v);
		}
		else
		{
			double		v;

			errno = 0;
			v = strtod(s, NULL);
			if (errno == ERANGE && (v == HUGE_VAL || v == -HUGE_VAL))
			{
				decl_fail(r, ev->start_mark, "number %s is out of range", s);
				return false;
			}
			lua_pushnumber(r->L, v);
		}
	}
	else
		lua_pushlstring(r->L, s, len);
	return true;
}

/* Refuses what is not plain data: an anchor or a tag on a node. */
static bool
plain_node(DeclReader *r, yaml_event_t *ev, const yaml_char_t *anchor,
		   const yaml_char_t *tag, int implicit)
{
	if (anchor)
	{
		decl_fail(r, ev->start_mark, "anchors (&%s) and aliases are not allowed: a migration document is plain data",
				  (const char *) anchor);
		return false;
	}
	if (tag && !implicit)
	{
		decl_fail(r, ev->start_mark, "tags (%s) are not allowed: a migration document is plain data",
				  (const char *) tag);
		return false;
	}
	return true;
}

static bool read_node(DeclReader *r, yaml_event_t *ev, int depth);

/*
 * Reads the collection whose start event is ev (a mapping or a sequence)
 * into a new table pushed on the stack.
 */
static bool
read_collection(DeclReader *r, yaml_event_t *ev, int depth)
{
	lua_State  *L = r->L;
	bool		mapping = ev->type == YAML_MAPPING_START_EVENT;
	int			t;
	size_t		pathlen = strlen(r->path);
	lua_Integer n = 0;

	if (depth > PGS_DECL_MAX_DEPTH)
	{
		decl_fail(r, ev->start_mark, "nested more than %d levels deep", PGS_DECL_MAX_DEPTH);
		return false;
	}
	luaL_checkstack(L, 8, "decl");
	lua_newtable(L);
	t = lua_gettop(L);
	lua_pushvalue(L, t);
	lua_pushstring(L, mapping ? "object" : "array");
	lua_settable(L, r->kinds);
	lua_pushvalue(L, t);
	lua_newtable(L);
	push_mark(L, ev->start_mark);
	lua_rawseti(L, -2, 0);
	lua_settable(L, r->marks);
	if (mapping)
	{
		lua_pushvalue(L, t);
		lua_newtable(L);
		lua_settable(L, r->keymarks);
	}

	for (;;)
	{
		yaml_event_t key;
		yaml_event_t value;
		bool		ok;

		if (!decl_next(r, &key))
			return false;
		if (key.type == YAML_MAPPING_END_EVENT || key.type == YAML_SEQUENCE_END_EVENT)
		{
			yaml_event_delete(&key);
			break;
		}
		if (mapping)
		{
			if (key.type == YAML_ALIAS_EVENT)
				ok = plain_node(r, &key, key.data.alias.anchor, NULL, 1);
			else if (key.type != YAML_SCALAR_EVENT)
			{
				decl_fail(r, key.start_mark, "a key must be a name, not a %s",
						  key.type == YAML_MAPPING_START_EVENT ? "mapping" : "list");
				ok = false;
			}
			else
				ok = plain_node(r, &key, key.data.scalar.anchor, key.data.scalar.tag,
								key.data.scalar.plain_implicit || key.data.scalar.quoted_implicit);
			if (!ok)
			{
				yaml_event_delete(&key);
				return false;
			}
			lua_pushlstring(L, (const char *) key.data.scalar.value, key.data.scalar.length);
			if (lua_rawget(L, t) != LUA_TNIL)
			{
				decl_fail(r, key.start_mark, "duplicate key '%s'", (const char *) key.data.scalar.value);
				yaml_event_delete(&key);
				return false;
			}
			lua_pop(L, 1);
			if (pathlen + key.data.scalar.length + 2 < sizeof(r->path))
				snprintf(r->path + pathlen, sizeof(r->path) - pathlen, "%s%s",
						 pathlen ? "." : "", (const char *) key.data.scalar.value);
			/* keymarks[t][key] = where the key is */
			lua_pushvalue(L, t);
			lua_gettable(L, r->keymarks);
			lua_pushlstring(L, (const char *) key.data.scalar.value, key.data.scalar.length);
			push_mark(L, key.start_mark);
			lua_settable(L, -3);
			lua_pop(L, 1);
			lua_pushlstring(L, (const char *) key.data.scalar.value, key.data.scalar.length);
			yaml_event_delete(&key);
			if (!decl_next(r, &value))
				return false;
		}
		else
		{
			value = key;
			n++;
			/* JSON paths count from 0, as JSON Pointer and jq do */
			snprintf(r->path + pathlen, sizeof(r->path) - pathlen, "[%lld]", (long long) n - 1);
			lua_pushinteger(L, n);
		}
		/* the key is on the stack; the value's mark goes to marks[t][key] */
		lua_pushvalue(L, t);
		lua_gettable(L, r->marks);
		lua_pushvalue(L, -2);
		push_mark(L, value.start_mark);
		lua_settable(L, -3);
		lua_pop(L, 1);
		ok = read_node(r, &value, depth);
		yaml_event_delete(&value);
		if (!ok)
			return false;
		lua_settable(L, t);
		r->path[pathlen] = '\0';
	}
	return true;
}

/* Reads the node that starts with ev (consumed by the caller) and pushes it. */
static bool
read_node(DeclReader *r, yaml_event_t *ev, int depth)
{
	switch (ev->type)
	{
		case YAML_SCALAR_EVENT:
			if (!plain_node(r, ev, ev->data.scalar.anchor, ev->data.scalar.tag,
							ev->data.scalar.plain_implicit || ev->data.scalar.quoted_implicit))
				return false;
			return push_scalar(r, ev);
		case YAML_MAPPING_START_EVENT:
			if (!plain_node(r, ev, ev->data.mapping_start.anchor, ev->data.mapping_start.tag,
							ev->data.mapping_start.implicit))
				return false;
			return read_collection(r, ev, depth + 1);
		case YAML_SEQUENCE_START_EVENT:
			if (!plain_node(r, ev, ev->data.sequence_start.anchor, ev->data.sequence_start.tag,
							ev->data.sequence_start.implicit))
				return false;
			return read_collection(r, ev, depth + 1);
		case YAML_ALIAS_EVENT:
			decl_fail(r, ev->start_mark, "aliases (*%s) and anchors are not allowed: a migration document is plain data",
					  (const char *) ev->data.alias.anchor);
			return false;
		default:
			decl_fail(r, ev->start_mark, "unexpected YAML event");
			return false;
	}
}

/*
 * Reads the one document of text (len bytes) and pushes it, its marks and
 * kinds.  Returns false with r->error set.
 */
static bool
read_document(DeclReader *r, const char *text, size_t len)
{
	yaml_event_t ev;
	bool		ok = false;
	bool		got = false;

	lua_newtable(r->L);
	r->marks = lua_gettop(r->L);
	lua_newtable(r->L);
	r->kinds = lua_gettop(r->L);
	lua_newtable(r->L);
	r->keymarks = lua_gettop(r->L);
	if (!yaml_parser_initialize(&r->parser))
	{
		snprintf(r->error, sizeof(r->error), "%s: out of memory", r->name);
		return false;
	}
	yaml_parser_set_input_string(&r->parser, (const unsigned char *) text, len);
	for (;;)
	{
		if (!decl_next(r, &ev))
			break;
		if (ev.type == YAML_STREAM_END_EVENT)
		{
			yaml_event_delete(&ev);
			if (!got)
			{
				yaml_mark_t m = {0, 0, 0};

				decl_fail(r, m, "the file holds no document");
				break;
			}
			ok = true;
			break;
		}
		if (ev.type == YAML_DOCUMENT_START_EVENT && got)
		{
			decl_fail(r, ev.start_mark, "a second document: a migration file holds one");
			yaml_event_delete(&ev);
			break;
		}
		if (ev.type == YAML_STREAM_START_EVENT || ev.type == YAML_DOCUMENT_START_EVENT ||
			ev.type == YAML_DOCUMENT_END_EVENT)
		{
			yaml_event_delete(&ev);
			continue;
		}
		got = true;
		if (!read_node(r, &ev, 0))
		{
			yaml_event_delete(&ev);
			break;
		}
		yaml_event_delete(&ev);
		/* marks, kinds, keymarks, document -> document, marks, kinds, keymarks */
		lua_rotate(r->L, r->marks, 1);
		r->marks++;
		r->kinds++;
		r->keymarks++;
	}
	yaml_parser_delete(&r->parser);
	return ok;
}

/*
 * Parses len bytes of text, named name in errors, and pushes the document,
 * marks, kinds and keymarks (4 values); on failure, pushes nothing and returns the
 * message in err (errlen bytes).  For the unit tests and decl_read.
 */
bool
pgs_decl_parse(lua_State *L, const char *name, const char *text, size_t len,
			   char *err, size_t errlen)
{
	DeclReader	r;
	int			top = lua_gettop(L);

	memset(&r, 0, sizeof(r));
	r.L = L;
	r.name = name;
	if (len > PGS_DECL_MAX_BYTES)
	{
		snprintf(err, errlen, "%s: the document is larger than %d bytes", name, PGS_DECL_MAX_BYTES);
		return false;
	}
	if (memchr(text, '\0', len))
	{
		snprintf(err, errlen, "%s: the document contains a zero byte", name);
		return false;
	}
	if (!read_document(&r, text, len))
	{
		lua_settop(L, top);
		snprintf(err, errlen, "%s", r.error);
		return false;
	}
	return true;
}

/*
 * C.decl_read(path) -> document, marks, kinds, keymarks.  Raises "path: ..." when the
 * file cannot be read or is not a plain document.
 */
int
pgs_l_decl_read(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	char		err[2048];
	FILE	   *f;
	struct stat st;
	char	   *buf;
	size_t		n;
	bool		ok;

	if ((f = fopen(path, "rb")) == NULL)
		return luaL_error(L, "cannot read migration file \"%s\": %s", path, strerror(errno));
	if (fstat(fileno(f), &st) != 0 || st.st_size > PGS_DECL_MAX_BYTES)
	{
		fclose(f);
		return luaL_error(L, "%s: the document is larger than %d bytes", path,
						  PGS_DECL_MAX_BYTES);
	}
	/* a userdata: a Lua error (out of memory) below frees it too */
	buf = lua_newuserdatauv(L, (size_t) st.st_size + 1, 0);
	n = fread(buf, 1, (size_t) st.st_size + 1, f);
	if (ferror(f))
	{
		int			e = errno;

		fclose(f);
		return luaL_error(L, "cannot read migration file \"%s\": %s", path, strerror(e));
	}
	fclose(f);
	ok = pgs_decl_parse(L, path, buf, n, err, sizeof(err));
	if (!ok)
	{
		lua_pushstring(L, err);
		return lua_error(L);
	}
	lua_remove(L, -5);			/* the buffer, under the four results */
	return 4;
}

/* C.decl_schema() -> doc/migration.schema.json (embedded), marks, kinds. */
int
pgs_l_decl_schema(lua_State *L)
{
	char		err[2048];

	if (!pgs_decl_parse(L, "[doc/migration.schema.json]", (const char *) pgs_decl_schema_text,
						pgs_decl_schema_len, err, sizeof(err)))
	{
		lua_pushstring(L, err);
		return lua_error(L);
	}
	return 4;
}

/*
 * pgs_migration_file_name: is name (a file's name) that of a migration
 * file, FILE.lua, FILE.json, FILE.yaml or FILE.yml (with something before
 * the dot)?  The prelude's loader tells the kinds apart the same way.
 */
bool
pgs_migration_file_name(const char *name)
{
	static const char *const suffixes[] = {".lua", ".json", ".yaml", ".yml"};
	size_t		i;

	for (i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++)
		if (ends_with(name, suffixes[i]))
			return true;
	return false;
}
