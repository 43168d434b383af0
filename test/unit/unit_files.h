/*
 * unit_files.h
 *	  What the unit tests share: a fresh Lua state for a group of tests
 *	  (its setup and teardown) and, for those that load migration files,
 *	  writing a file into their temporary directory.  Include after
 *	  <cmocka.h>.
 */
#ifndef UNIT_FILES_H
#define UNIT_FILES_H

#include <stdio.h>

#include <lauxlib.h>
#include <lualib.h>

/*
 * Group setup: a new Lua state with the standard libraries, as the tests'
 * state; fails the group when the state cannot be made.
 */
static inline int
unit_lua_setup(void **state)
{
	lua_State  *L = luaL_newstate();

	if (L == NULL)
		return -1;
	luaL_openlibs(L);
	*state = L;
	return 0;
}

/* Group teardown: closes the state unit_lua_setup made. */
static inline int
unit_lua_teardown(void **state)
{
	lua_close(*state);
	return 0;
}

/* Writes text to dir/name and returns the path (static buffer). */
static inline const char *
unit_write_file(const char *dir, const char *name, const char *text)
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

#endif							/* UNIT_FILES_H */
