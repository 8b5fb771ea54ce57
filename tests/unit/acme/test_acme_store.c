/*
 * Unit tests for acme_store (folder and file modes, atomic replacement, the
 * lock file with its stale takeover, the state file and folder names) and
 * acme_sched (renewal time, back-off, retry times, Retry-After, RFC 3339, ARI).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>

#include <cmocka.h>

#include "acme/acme_sched.h"
#include "acme/acme_store.h"

static int
rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int
setup(void **state)
{
	char *dir = strdup("/tmp/test_acme_store.XXXXXX");

	assert_non_null(mkdtemp(dir));
	*state = dir;
	return 0;
}

static int
teardown(void **state)
{
	nftw(*state, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(*state);
	return 0;
}

static mode_t
mode_of(const char *path)
{
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	return st.st_mode & 07777;
}

static void
test_mkdirs_modes(void **state)
{
	char path[512], err[256];

	snprintf(path, sizeof(path), "%s/certs/acme/ca", (char *)*state);
	umask(022);
	assert_int_equal(acme_store_mkdirs(path, err, sizeof(err)), 0);
	assert_int_equal(mode_of(path), 0700);
	snprintf(path, sizeof(path), "%s/certs", (char *)*state);
	assert_int_equal(mode_of(path), 0700);
	/* an existing folder is tightened */
	chmod(path, 0755);
	assert_int_equal(acme_store_mkdirs(path, err, sizeof(err)), 0);
	assert_int_equal(mode_of(path), 0700);
	/* a file in the way */
	snprintf(path, sizeof(path), "%s/file", (char *)*state);
	assert_int_equal(acme_store_write(path, "x", 1, 0600, err, sizeof(err)), 0);
	snprintf(path, sizeof(path), "%s/file/sub", (char *)*state);
	assert_int_equal(acme_store_mkdirs(path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "file"));
}

static int
count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void
test_atomic_write(void **state)
{
	char path[512], err[256], *data;
	size_t len;
	struct stat st1, st2;

	snprintf(path, sizeof(path), "%s/key.pem", (char *)*state);
	umask(0);
	assert_int_equal(acme_store_write(path, "first", 5, 0600, err, sizeof(err)), 0);
	assert_int_equal(mode_of(path), 0600);
	assert_int_equal(lstat(path, &st1), 0);
	assert_int_equal(acme_store_write(path, "second!", 7, 0600, err, sizeof(err)), 0);
	assert_int_equal(lstat(path, &st2), 0);
	/* replaced by rename: a new inode, never rewritten in place */
	assert_true(st1.st_ino != st2.st_ino);
	data = acme_store_read(path, &len, err, sizeof(err));
	assert_int_equal(len, 7);
	assert_string_equal(data, "second!");
	free(data);
	/* no temporary files left behind */
	assert_int_equal(count_entries(*state), 1);
	umask(022);

	/* failure leaves the old file untouched and no temporary file */
	snprintf(path, sizeof(path), "%s/missing/x", (char *)*state);
	assert_int_equal(acme_store_write(path, "x", 1, 0600, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot create"));
	assert_null(acme_store_read(path, &len, err, sizeof(err)));
	assert_int_equal(errno, ENOENT);
}

static void
test_lock(void **state)
{
	char path[512], err[256], *data;
	struct timeval old[2];

	snprintf(path, sizeof(path), "%s/lock", (char *)*state);
	assert_int_equal(acme_store_lock(path, "tokA", 60, err, sizeof(err)), ACME_LOCK_TAKEN);
	assert_int_equal(mode_of(path), 0600);
	assert_int_equal(acme_store_lock(path, "tokB", 60, err, sizeof(err)), ACME_LOCK_BUSY);
	assert_int_equal(acme_store_lock_touch(path, "tokA"), 0);
	assert_int_equal(acme_store_lock_touch(path, "tokB"), -1);
	/* B cannot release A's lock */
	acme_store_unlock(path, "tokB");
	assert_int_equal(acme_store_lock(path, "tokB", 60, err, sizeof(err)), ACME_LOCK_BUSY);

	/* A's lock goes stale: B takes it over, and A notices it lost it */
	old[0].tv_sec = old[1].tv_sec = time(NULL) - 120;
	old[0].tv_usec = old[1].tv_usec = 0;
	assert_int_equal(utimes(path, old), 0);
	assert_int_equal(acme_store_lock(path, "tokB", 60, err, sizeof(err)), ACME_LOCK_TAKEN);
	data = acme_store_read(path, NULL, err, sizeof(err));
	assert_string_equal(data, "tokB");
	free(data);
	assert_int_equal(acme_store_lock_touch(path, "tokA"), -1);
	acme_store_unlock(path, "tokA");
	assert_int_equal(access(path, F_OK), 0);
	acme_store_unlock(path, "tokB");
	assert_int_equal(access(path, F_OK), -1);
	/* nothing left over from the takeover */
	assert_int_equal(count_entries(*state), 0);
	assert_int_equal(acme_store_lock(path, "tokC", 60, err, sizeof(err)), ACME_LOCK_TAKEN);
	acme_store_unlock(path, "tokC");

	snprintf(path, sizeof(path), "%s/nofolder/lock", (char *)*state);
	assert_int_equal(acme_store_lock(path, "t", 60, err, sizeof(err)), ACME_LOCK_ERROR);
	assert_non_null(strstr(err, "nofolder/lock"));
}

static void
test_state_file(void **state)
{
	char path[512], err[256];
	struct acme_state st = { 3, 1700000000, "HTTP 429 rateLimited" }, got;

	snprintf(path, sizeof(path), "%s/state.json", (char *)*state);
	/* missing file: zero state */
	assert_int_equal(acme_store_state_load(path, &got, err, sizeof(err)), 0);
	assert_int_equal(got.failures, 0);
	assert_int_equal(got.next_attempt, 0);
	assert_int_equal(acme_store_state_save(path, &st, err, sizeof(err)), 0);
	assert_int_equal(mode_of(path), 0600);
	assert_int_equal(acme_store_state_load(path, &got, err, sizeof(err)), 0);
	assert_int_equal(got.failures, 3);
	assert_int_equal(got.next_attempt, 1700000000);
	assert_string_equal(got.last_error, "HTTP 429 rateLimited");
	/* garbage is reported with the path */
	assert_int_equal(acme_store_write(path, "{\"failures\":\"x\"}", 16, 0600, err, sizeof(err)), 0);
	assert_int_equal(acme_store_state_load(path, &got, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "failures"));
	assert_int_equal(acme_store_write(path, "not json", 8, 0600, err, sizeof(err)), 0);
	assert_int_equal(acme_store_state_load(path, &got, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "state.json"));
}

static void
test_folder_names(void **state)
{
	char out[128];

	assert_int_equal(acme_store_ca_folder("https://acme-v02.api.letsencrypt.org/directory", out,
					      sizeof(out)), 0);
	assert_string_equal(out, "acme-v02.api.letsencrypt.org");
	assert_int_equal(acme_store_ca_folder("https://127.0.0.1:14000/dir", out, sizeof(out)), 0);
	assert_string_equal(out, "127.0.0.1_14000");
	assert_int_equal(acme_store_ca_folder("https://user@CA.Example:443/x", out, sizeof(out)), 0);
	assert_string_equal(out, "ca.example_443");
	assert_int_equal(acme_store_ca_folder("https:///dir", out, sizeof(out)), -1);
	assert_int_equal(acme_store_ca_folder("nourl", out, sizeof(out)), -1);
	assert_int_equal(acme_store_name_folder("WWW.Example.org", out, sizeof(out)), 0);
	assert_string_equal(out, "www.example.org");
	assert_int_equal(acme_store_name_folder("../x", out, sizeof(out)), -1);
}

/* ---------------------------------------------------------------- sched */

static void
test_renew_at(void **state)
{
	const time_t nb = 1700000000;

	/* 90 days: a third left (30 days), jitter up to 12 h earlier */
	time_t na = nb + 90 * 86400;
	assert_int_equal(acme_sched_renew_at(nb, na, 0), na - 30 * 86400);
	assert_int_equal(acme_sched_renew_at(nb, na, 12 * 3600), na - 30 * 86400 - 12 * 3600);
	assert_int_equal(acme_sched_renew_at(nb, na, 12 * 3600 + 1), na - 30 * 86400);
	/* 10 days or less: half left */
	na = nb + 10 * 86400;
	assert_int_equal(acme_sched_renew_at(nb, na, 0), nb + 5 * 86400);
	na = nb + 6 * 86400;
	assert_int_equal(acme_sched_renew_at(nb, na, 0), nb + 3 * 86400);
	/* 11 days: a third */
	na = nb + 11 * 86400;
	assert_int_equal(acme_sched_renew_at(nb, na, 0), na - 11 * 86400 / 3);
	/* 600 s: at 300 s, jitter at most lifetime/20 = 30 s */
	na = nb + 600;
	assert_int_equal(acme_sched_renew_at(nb, na, 0), nb + 300);
	assert_int_equal(acme_sched_renew_at(nb, na, 30), nb + 270);
	for (uint32_t r = 0; r < 1000; r += 7)
		assert_true(acme_sched_renew_at(nb, na, r) >= nb + 270 &&
			    acme_sched_renew_at(nb, na, r) <= nb + 300);
	/* nonsense validity: renew at once */
	assert_int_equal(acme_sched_renew_at(nb, nb - 5, 3), nb);
}

static void
test_backoff(void **state)
{
	assert_int_equal(acme_sched_backoff(0, 60, 21600), 0);
	assert_int_equal(acme_sched_backoff(1, 60, 21600), 60);
	assert_int_equal(acme_sched_backoff(2, 60, 21600), 120);
	assert_int_equal(acme_sched_backoff(3, 60, 21600), 240);
	assert_int_equal(acme_sched_backoff(8, 60, 21600), 7680);
	assert_int_equal(acme_sched_backoff(9, 60, 21600), 15360);
	assert_int_equal(acme_sched_backoff(10, 60, 21600), 21600);
	assert_int_equal(acme_sched_backoff(1000, 60, 21600), 21600);
	assert_int_equal(acme_sched_backoff(40, 4000000000u, 4000000000u), 4000000000u);
}

static void
test_next_attempt(void **state)
{
	const time_t now = 1700000000;

	/* no certificate: plain back-off */
	assert_int_equal(acme_sched_next_attempt(now, 1, 60, 21600, 0, 0), now + 60);
	assert_int_equal(acme_sched_next_attempt(now, 20, 60, 21600, 0, 0), now + 21600);
	/* a certificate with 30 days left: back-off as is */
	assert_int_equal(acme_sched_next_attempt(now, 20, 60, 21600, now + 30 * 86400, 0),
			 now + 21600);
	/* 1 hour left: at most a quarter of it */
	assert_int_equal(acme_sched_next_attempt(now, 20, 60, 21600, now + 3600, 0), now + 900);
	/* 2 minutes left: never sooner than the base */
	assert_int_equal(acme_sched_next_attempt(now, 20, 60, 21600, now + 120, 0), now + 60);
	/* the CA's Retry-After wins when later */
	assert_int_equal(acme_sched_next_attempt(now, 1, 60, 21600, 0, now + 7200), now + 7200);
	assert_int_equal(acme_sched_next_attempt(now, 3, 60, 21600, 0, now + 10), now + 240);
}

static void
test_retry_after(void **state)
{
	const time_t now = 1700000000; /* Tue, 14 Nov 2023 22:13:20 GMT */
	time_t t;

	assert_int_equal(acme_sched_parse_retry_after("120", now, &t), 0);
	assert_int_equal(t, now + 120);
	assert_int_equal(acme_sched_parse_retry_after(" 0 ", now, &t), 0);
	assert_int_equal(t, now);
	assert_int_equal(acme_sched_parse_retry_after("99999999999", now, &t), 0);
	assert_int_equal(t, now + 8 * 86400);
	assert_int_equal(acme_sched_parse_retry_after("Tue, 14 Nov 2023 23:13:20 GMT", now, &t), 0);
	assert_int_equal(t, now + 3600);
	assert_int_equal(acme_sched_parse_retry_after("Mon, 13 Nov 2023 23:13:20 GMT", now, &t), 0);
	assert_int_equal(t, now);
	assert_int_equal(acme_sched_parse_retry_after("soon", now, &t), -1);
	assert_int_equal(acme_sched_parse_retry_after("12s", now, &t), -1);
	assert_int_equal(acme_sched_parse_retry_after("-5", now, &t), -1);
}

static void
test_rfc3339_and_ari(void **state)
{
	time_t t, a, b;

	assert_int_equal(acme_sched_parse_rfc3339("2023-11-14T22:13:20Z", &t), 0);
	assert_int_equal(t, 1700000000);
	assert_int_equal(acme_sched_parse_rfc3339("2023-11-14T22:13:20.123456Z", &t), 0);
	assert_int_equal(t, 1700000000);
	assert_int_equal(acme_sched_parse_rfc3339("2023-11-15T00:13:20+02:00", &t), 0);
	assert_int_equal(t, 1700000000);
	assert_int_equal(acme_sched_parse_rfc3339("2023-11-14T21:13:20-01:00", &t), 0);
	assert_int_equal(t, 1700000000);
	assert_int_equal(acme_sched_parse_rfc3339("2023-11-14 22:13:20", &t), -1);
	assert_int_equal(acme_sched_parse_rfc3339("2023-13-14T22:13:20Z", &t), -1);
	assert_int_equal(acme_sched_parse_rfc3339("2023-11-14T22:13:20Zjunk", &t), -1);
	assert_int_equal(acme_sched_parse_rfc3339("", &t), -1);

	a = 1700000000;
	b = a + 86400;
	assert_int_equal(acme_sched_ari_pick(a, b, a - 100, 0), a);
	assert_int_equal(acme_sched_ari_pick(a, b, a - 100, 86400), a);
	assert_int_equal(acme_sched_ari_pick(a, b, a - 100, 86399), b - 1);
	/* window partly past: pick in what is left */
	assert_true(acme_sched_ari_pick(a, b, a + 3600, 5) == a + 3605);
	/* window over: now */
	assert_int_equal(acme_sched_ari_pick(a, b, b + 10, 77), b + 10);
	assert_int_equal(acme_sched_ari_pick(b, a, a, 0), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_mkdirs_modes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_atomic_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_file, setup, teardown),
		cmocka_unit_test(test_folder_names),
		cmocka_unit_test(test_renew_at),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_next_attempt),
		cmocka_unit_test(test_retry_after),
		cmocka_unit_test(test_rfc3339_and_ari),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
