/*
 * fuzz_config: feeds arbitrary bytes to the configuration loader
 * (src/config/: jansson, every section's reader, ${NAME} substitution in
 * string values through envsubst) as the text of a configuration file,
 * read by config_check_file (the `portcullis -t` path: everything is
 * checked, nothing is created, written or fetched, so a fuzzed path cannot
 * make the harness write files).  The file is a memfd; the environment is
 * fixed (HOST=example.com, PORT=8080, EMPTY=""; anything else is unset).
 *
 * Contract checked (aborts when broken):
 *   - a config comes back with an empty error, or NULL with at least one
 *     error line, each line non-empty;
 *   - the same text loads the same way twice (no state kept between loads);
 *   - config_unref frees everything the load allocated (LeakSanitizer).
 */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config/config.h"
#include "fuzz.h"

static const char *
fake_getenv(const char *name)
{
	if (strcmp(name, "HOST") == 0)
		return "example.com";
	if (strcmp(name, "PORT") == 0)
		return "8080";
	if (strcmp(name, "EMPTY") == 0)
		return "";
	return NULL;
}

static char err[65536], err2[65536];

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = memfd_create("fuzz-config", MFD_CLOEXEC);
	char path[64];
	struct config *cfg, *again;

	FUZZ_CHECK(fd >= 0);
	FUZZ_CHECK(write(fd, data, size) == (ssize_t)size);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	cfg = config_check_file(path, err, sizeof(err), fake_getenv);
	if (cfg != NULL) {
		FUZZ_CHECK(err[0] == '\0');
	} else {
		FUZZ_CHECK(err[0] != '\0');
		FUZZ_CHECK(strstr(err, "\n\n") == NULL);
	}
	again = config_check_file(path, err2, sizeof(err2), fake_getenv);
	FUZZ_CHECK((again != NULL) == (cfg != NULL));
	FUZZ_CHECK(strcmp(err, err2) == 0);
	config_unref(again);
	config_unref(cfg);
	close(fd);
	return 0;
}
