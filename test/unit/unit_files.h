/*
 * unit_files.h
 *	  What the unit tests that load migration files share: writing a file
 *	  into their temporary directory.  Include after <cmocka.h>.
 */
#ifndef UNIT_FILES_H
#define UNIT_FILES_H

#include <stdio.h>

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
