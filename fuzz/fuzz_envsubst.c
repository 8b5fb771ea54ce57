/*
 * fuzz_envsubst: feeds arbitrary text to envsubst_expand (src/config/envsubst.c),
 * the ${NAME} / ${NAME:-default} substitution of configuration strings, with
 * a fixed environment (A=alpha, EMPTY="", DOLLAR="$", NESTED="${A}", LONG=
 * 4 KiB of x; anything else is unset).
 *
 * Contract checked (aborts when broken):
 *   - the answer is a string, or NULL with a reason in err;
 *   - a text without "$" comes back unchanged;
 *   - substitution is one pass: expanding "$$" then the result again never
 *     re-expands what a variable's value brought in (NESTED stays "${A}");
 *   - the result is never longer than the input plus the values it can
 *     bring (each ${ consumes at least 3 bytes and brings at most 4 KiB).
 */
#include <string.h>

#include "config/envsubst.h"
#include "fuzz.h"

static char long_value[4097];

static const char *
fake_getenv(const char *name)
{
	if (strcmp(name, "A") == 0)
		return "alpha";
	if (strcmp(name, "EMPTY") == 0)
		return "";
	if (strcmp(name, "DOLLAR") == 0)
		return "$";
	if (strcmp(name, "NESTED") == 0)
		return "${A}";
	if (strcmp(name, "LONG") == 0)
		return long_value;
	return NULL;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = malloc(size + 1), *out, err[256];
	size_t dollars = 0;

	FUZZ_CHECK(in != NULL);
	if (long_value[0] == '\0')
		memset(long_value, 'x', sizeof(long_value) - 1);
	memcpy(in, data, size);
	in[size] = '\0';
	for (const char *p = in; *p != '\0'; p++)
		dollars += *p == '$';
	err[0] = '\0';
	out = envsubst_expand(in, fake_getenv, err, sizeof(err));
	if (out == NULL) {
		FUZZ_CHECK(err[0] != '\0');
		FUZZ_CHECK(dollars > 0);
	} else {
		FUZZ_CHECK(strlen(out) <= strlen(in) + dollars * (sizeof(long_value) - 1));
		if (dollars == 0)
			FUZZ_CHECK(strcmp(out, in) == 0);
		if (strcmp(in, "${NESTED}") == 0)
			FUZZ_CHECK(strcmp(out, "${A}") == 0);
	}
	free(out);
	free(in);
	return 0;
}
