/*
 * test_sha256.c
 *	  The script hash the drift check records must be real SHA-256 (a DBA may
 *	  compare it with sha256sum): FIPS 180-4 test vectors, including the
 *	  56-byte message whose padding spills into a second block and a message
 *	  read through the file buffer many times over.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "pgshift.h"

static void
expect_hash(const char *data, size_t len, size_t repeat, const char *want)
{
	char		path[] = "/tmp/pgshift-sha.XXXXXX";
	int			fd = mkstemp(path);
	FILE	   *f;
	char		hex[65];
	size_t		i;

	assert_true(fd >= 0);
	f = fdopen(fd, "wb");
	for (i = 0; i < repeat; i++)
		assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
	assert_int_equal(pgs_sha256_file(path, hex), 0);
	unlink(path);
	assert_string_equal(hex, want);
}

static void
test_sha256_empty(void **state)
{
	expect_hash("", 0, 1, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void
test_sha256_abc(void **state)
{
	expect_hash("abc", 3, 1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void
test_sha256_two_block_padding(void **state)
{
	const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";

	expect_hash(m, strlen(m), 1, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

/* Lengths around the padding's edges (values from coreutils sha256sum). */
static void
test_sha256_padding_edges(void **state)
{
	static const struct
	{
		size_t		len;
		const char *hash;
	}			cases[] = {
		{55, "d5e285683cd4efc02d021a5c62014694958901005d6f71e89e0989fac77e4072"},
		{56, "04c26261370ee7541549d16dee320c723e3fd14671e66a099afe0a377c16888e"},
		{63, "75220b47218278e656f2013bb8f0c455a25eaf01e86c64924e9d48d89776d6f2"},
		{64, "7ce100971f64e7001e8fe5a51973ecdfe1ced42befe7ee8d5fd6219506b5393c"},
		{65, "9537c5fdf120482f7d58d25e9ed583f52c02b4e304ea814db1633ad565aed7e9"},
		{119, "000b48d4edf0fa7bee3c6236ecd2785baa5db4eeb8bb54341b029e0d9fa5fb0c"},
		{120, "13f05a0b594787f5ecd315edc96141bd3243203d1b7d4f0836f37308b276ba98"},
	};
	char		x[128];
	size_t		i;

	memset(x, 'x', sizeof(x));
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_hash(x, cases[i].len, 1, cases[i].hash);
}

static void
test_sha256_million_a(void **state)
{
	char		block[1000];

	memset(block, 'a', sizeof(block));
	expect_hash(block, sizeof(block), 1000,
				"cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void
test_sha256_missing_file(void **state)
{
	char		hex[65];

	assert_int_equal(pgs_sha256_file("/nonexistent/migration.lua", hex), ENOENT);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sha256_empty),
		cmocka_unit_test(test_sha256_abc),
		cmocka_unit_test(test_sha256_two_block_padding),
		cmocka_unit_test(test_sha256_padding_edges),
		cmocka_unit_test(test_sha256_million_a),
		cmocka_unit_test(test_sha256_missing_file),
	};

	return cmocka_run_group_tests_name("sha256", tests, NULL, NULL);
}
