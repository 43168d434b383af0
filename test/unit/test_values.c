/*
 * test_values.c
 *	  Conversions between PostgreSQL text values and Lua values: result
 *	  columns to Lua (pgs_push_value) and Lua arguments to query parameters
 *	  (pgs_param_text).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <lauxlib.h>

#include "pgshift.h"
#include "unit_files.h"

#define BOOLOID		16
#define INT8OID		20
#define INT2OID		21
#define INT4OID		23
#define TEXTOID		25
#define FLOAT4OID	700
#define FLOAT8OID	701
#define NUMERICOID	1700

static void
push(lua_State *L, const char *text, Oid type)
{
	pgs_push_value(L, text, (int) strlen(text), type, false);
}

/* Pushes text as a value of type, asserting it became a Lua value of luatype. */
static void
push_as(lua_State *L, const char *text, Oid type, int luatype)
{
	push(L, text, type);
	assert_int_equal(lua_type(L, -1), luatype);
}

static void
test_values_integers(void **state)
{
	lua_State  *L = *state;

	push(L, "32767", INT2OID);
	assert_true(lua_isinteger(L, -1));
	assert_int_equal(lua_tointeger(L, -1), 32767);
	push(L, "-2147483648", INT4OID);
	assert_int_equal(lua_tointeger(L, -1), -2147483648LL);
	push(L, "9223372036854775807", INT8OID);
	assert_true(lua_isinteger(L, -1));
	assert_true(lua_tointeger(L, -1) == LUA_MAXINTEGER);
	push(L, "-9223372036854775808", INT8OID);
	assert_true(lua_tointeger(L, -1) == LUA_MININTEGER);
	lua_settop(L, 0);
}

static void
test_values_floats(void **state)
{
	lua_State  *L = *state;

	push(L, "1.5", FLOAT8OID);
	assert_true(lua_isnumber(L, -1) && !lua_isinteger(L, -1));
	assert_true(lua_tonumber(L, -1) == 1.5);
	push(L, "NaN", FLOAT8OID);
	assert_true(isnan(lua_tonumber(L, -1)));
	push(L, "Infinity", FLOAT4OID);
	assert_true(isinf(lua_tonumber(L, -1)) && lua_tonumber(L, -1) > 0);
	push(L, "-Infinity", FLOAT8OID);
	assert_true(isinf(lua_tonumber(L, -1)) && lua_tonumber(L, -1) < 0);
	push(L, "-0", FLOAT8OID);
	assert_true(lua_tonumber(L, -1) == 0 && signbit(lua_tonumber(L, -1)));
	/* a float column never turns into a Lua integer, even when whole */
	push(L, "3", FLOAT8OID);
	assert_false(lua_isinteger(L, -1));
	lua_settop(L, 0);
}

static void
test_values_booleans_and_null(void **state)
{
	lua_State  *L = *state;

	push_as(L, "t", BOOLOID, LUA_TBOOLEAN);
	assert_true(lua_toboolean(L, -1));
	push_as(L, "f", BOOLOID, LUA_TBOOLEAN);
	assert_false(lua_toboolean(L, -1));
	pgs_push_value(L, "", 0, INT4OID, true);
	assert_true(lua_isnil(L, -1));
	pgs_push_value(L, "", 0, TEXTOID, true);
	assert_true(lua_isnil(L, -1));
	/* an empty string is not NULL */
	pgs_push_value(L, "", 0, TEXTOID, false);
	assert_int_equal(lua_type(L, -1), LUA_TSTRING);
	lua_settop(L, 0);
}

static void
test_values_numeric_keeps_precision(void **state)
{
	lua_State  *L = *state;
	const char *big = "123456789012345678901234567890.000000000000000000001";

	push_as(L, big, NUMERICOID, LUA_TSTRING);
	assert_string_equal(lua_tostring(L, -1), big);
	push(L, "1.10", NUMERICOID);
	assert_string_equal(lua_tostring(L, -1), "1.10");
	lua_settop(L, 0);
}

static void
test_values_text_with_zero_byte(void **state)
{
	lua_State  *L = *state;
	size_t		len;

	/* bytea output never has one, but the length is what counts */
	pgs_push_value(L, "a\0b", 3, TEXTOID, false);
	lua_tolstring(L, -1, &len);
	assert_int_equal(len, 3);
	lua_settop(L, 0);
}

static void
test_values_unexpected_integer_text_stays_string(void **state)
{
	lua_State  *L = *state;

	push_as(L, "12abc", INT4OID, LUA_TSTRING);
	push_as(L, "99999999999999999999", INT8OID, LUA_TSTRING);	/* out of range */
	push_as(L, "x", BOOLOID, LUA_TSTRING);
	lua_settop(L, 0);
}

/* Calls pgs_param_text on argument 1 inside a protected call. */
static int
param_of_arg(lua_State *L)
{
	const char *s = pgs_param_text(L, 1, 7);

	if (s == NULL)
		lua_pushnil(L);
	else
		lua_pushstring(L, s);
	return 1;
}

static const char *
param(lua_State *L, int status_expected)
{
	int			status;

	lua_pushcfunction(L, param_of_arg);
	lua_insert(L, -2);
	status = lua_pcall(L, 1, 1, 0);
	assert_int_equal(status, status_expected);
	return lua_tostring(L, -1);
}

static void
test_values_params(void **state)
{
	lua_State  *L = *state;

	/* floats go as the shortest text that reads back as the same double */
	static const struct
	{
		double		value;
		const char *text;
	}			floats[] = {
		{0.1, "0.1"}, {19.99, "19.99"}, {1.0 / 3.0, "0.3333333333333333"},
		{HUGE_VAL, "Infinity"}, {-HUGE_VAL, "-Infinity"}, {NAN, "NaN"},
	};
	size_t		i;

	lua_pushinteger(L, 42);
	assert_string_equal(param(L, LUA_OK), "42");
	lua_pushinteger(L, LUA_MININTEGER);
	assert_string_equal(param(L, LUA_OK), "-9223372036854775808");
	for (i = 0; i < sizeof(floats) / sizeof(floats[0]); i++)
	{
		lua_pushnumber(L, floats[i].value);
		assert_string_equal(param(L, LUA_OK), floats[i].text);
	}
	lua_pushnumber(L, 5e-324);
	assert_true(strtod(param(L, LUA_OK), NULL) == 5e-324);
	lua_pushboolean(L, 1);
	assert_string_equal(param(L, LUA_OK), "true");
	lua_pushboolean(L, 0);
	assert_string_equal(param(L, LUA_OK), "false");
	lua_pushliteral(L, "héllo");
	assert_string_equal(param(L, LUA_OK), "héllo");
	lua_pushnil(L);
	param(L, LUA_OK);
	assert_true(lua_isnil(L, -1));
	lua_settop(L, 0);
}

static void
test_values_params_refused(void **state)
{
	lua_State  *L = *state;

	lua_newtable(L);
	assert_non_null(strstr(param(L, LUA_ERRRUN), "parameter $7 is a table"));
	lua_pushlstring(L, "a\0b", 3);
	assert_non_null(strstr(param(L, LUA_ERRRUN), "parameter $7 contains a zero byte"));
	lua_pushcfunction(L, param_of_arg);
	assert_non_null(strstr(param(L, LUA_ERRRUN), "is a function"));
	lua_settop(L, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_values_integers),
		cmocka_unit_test(test_values_floats),
		cmocka_unit_test(test_values_booleans_and_null),
		cmocka_unit_test(test_values_numeric_keeps_precision),
		cmocka_unit_test(test_values_text_with_zero_byte),
		cmocka_unit_test(test_values_unexpected_integer_text_stays_string),
		cmocka_unit_test(test_values_params),
		cmocka_unit_test(test_values_params_refused),
	};

	return cmocka_run_group_tests_name("values", tests, unit_lua_setup, unit_lua_teardown);
}
