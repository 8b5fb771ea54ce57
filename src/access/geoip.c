/* geoip: MaxMind DB lookups with hot reload; see geoip.h. */
#include "access/geoip.h"

#include <errno.h>
#include <maxminddb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define GEOIP_CACHE_SLOTS 1024

struct geoip_file {
	char *path;
	MMDB_s *db;           /* NULL when this file is not configured */
	struct stat seen;     /* the file as last opened or last tried */
};

struct geoip {
	pthread_rwlock_t lock; /* readers: lookups that miss the cache; writer: a swap */
	struct geoip_file country;
	struct geoip_file asn;
	_Atomic uint64_t generation; /* changes with every swap; part of the cache key */
};

struct geoip_cache_slot {
	uint64_t generation;
	struct netaddr addr;
	netaddr_country country;
	uint32_t asn;
};

static _Atomic uint64_t geoip_generations = 1;
static _Thread_local struct geoip_cache_slot geoip_cache[GEOIP_CACHE_SLOTS];

/* Open <path> into a new MMDB_s.  NULL with a reason in <err>. */
static MMDB_s *
geoip_db_open(const char *path, struct stat *st, char *err, size_t errlen)
{
	MMDB_s *db = calloc(1, sizeof(*db));
	int rc;

	if (db == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	if (stat(path, st) < 0) {
		snprintf(err, errlen, "%s: cannot open the GeoIP database: %s", path,
			 strerror(errno));
		free(db);
		return NULL;
	}
	rc = MMDB_open(path, MMDB_MODE_MMAP, db);
	if (rc != MMDB_SUCCESS) {
		snprintf(err, errlen, "%s: not a usable MaxMind database: %s%s%s", path,
			 MMDB_strerror(rc), rc == MMDB_IO_ERROR ? ": " : "",
			 rc == MMDB_IO_ERROR ? strerror(errno) : "");
		free(db);
		return NULL;
	}
	return db;
}

static void
geoip_db_close(MMDB_s *db)
{
	if (db == NULL)
		return;
	MMDB_close(db);
	free(db);
}

static int
geoip_file_open(struct geoip_file *f, const char *path, char *err, size_t errlen)
{
	if (path == NULL)
		return 0;
	f->path = strdup(path);
	if (f->path == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	f->db = geoip_db_open(path, &f->seen, err, errlen);
	return f->db == NULL ? -1 : 0;
}

struct geoip *
geoip_open(const char *country_path, const char *asn_path, char *err, size_t errlen)
{
	struct geoip *g;

	if (country_path == NULL && asn_path == NULL) {
		snprintf(err, errlen, "no database file given");
		return NULL;
	}
	g = calloc(1, sizeof(*g));
	if (g == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_rwlock_init(&g->lock, NULL);
	atomic_store(&g->generation, atomic_fetch_add(&geoip_generations, 1));
	if (geoip_file_open(&g->country, country_path, err, errlen) < 0 ||
	    geoip_file_open(&g->asn, asn_path, err, errlen) < 0) {
		geoip_free(g);
		return NULL;
	}
	return g;
}

void
geoip_free(struct geoip *g)
{
	if (g == NULL)
		return;
	geoip_db_close(g->country.db);
	geoip_db_close(g->asn.db);
	free(g->country.path);
	free(g->asn.path);
	pthread_rwlock_destroy(&g->lock);
	free(g);
}

static netaddr_country
geoip_country_of(MMDB_lookup_result_s *res)
{
	static const char *const paths[][3] = {
		{"country", "iso_code", NULL},
		{"registered_country", "iso_code", NULL},
	};
	MMDB_entry_data_s d;

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		if (MMDB_aget_value(&res->entry, &d, paths[i]) == MMDB_SUCCESS && d.has_data &&
		    d.type == MMDB_DATA_TYPE_UTF8_STRING && d.data_size == 2) {
			char code[3] = {d.utf8_string[0], d.utf8_string[1], '\0'};

			return netaddr_country_parse(code);
		}
	}
	return 0;
}

static uint32_t
geoip_asn_of(MMDB_lookup_result_s *res)
{
	static const char *const path[] = {"autonomous_system_number", NULL};
	MMDB_entry_data_s d;

	if (MMDB_aget_value(&res->entry, &d, path) != MMDB_SUCCESS || !d.has_data)
		return 0;
	switch (d.type) {
	case MMDB_DATA_TYPE_UINT32:
		return d.uint32;
	case MMDB_DATA_TYPE_UINT16:
		return d.uint16;
	case MMDB_DATA_TYPE_UINT64:
		return d.uint64 > UINT32_MAX ? 0 : (uint32_t)d.uint64;
	default:
		return 0;
	}
}

/* Look <sa> up in <db>; a NULL <db> or a miss leaves the outputs alone. */
static void
geoip_db_lookup(MMDB_s *db, const struct sockaddr *sa, netaddr_country *country, uint32_t *asn)
{
	MMDB_lookup_result_s res;
	int mmdb_err = MMDB_SUCCESS;

	if (db == NULL)
		return;
	res = MMDB_lookup_sockaddr(db, sa, &mmdb_err);
	if (mmdb_err != MMDB_SUCCESS || !res.found_entry)
		return;
	if (country != NULL && *country == 0)
		*country = geoip_country_of(&res);
	if (asn != NULL && *asn == 0)
		*asn = geoip_asn_of(&res);
}

static size_t
geoip_slot(const struct netaddr *a)
{
	uint64_t h = a->family == AF_INET ? a->v4 : a->v6[0] ^ (a->v6[1] * 0x9e3779b97f4a7c15ull);

	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 32;
	return (size_t)(h & (GEOIP_CACHE_SLOTS - 1));
}

void
geoip_lookup(struct geoip *g, const struct netaddr *a, netaddr_country *country,
	     uint32_t *asn)
{
	struct geoip_cache_slot *slot;
	struct sockaddr_storage ss;
	uint64_t gen;

	*country = 0;
	*asn = 0;
	if (g == NULL || a->family == 0)
		return;
	gen = atomic_load_explicit(&g->generation, memory_order_acquire);
	slot = &geoip_cache[geoip_slot(a)];
	if (slot->generation == gen && slot->addr.family == a->family && slot->addr.v4 == a->v4 &&
	    slot->addr.v6[0] == a->v6[0] && slot->addr.v6[1] == a->v6[1]) {
		*country = slot->country;
		*asn = slot->asn;
		return;
	}
	if (netaddr_to_sockaddr(a, &ss) == 0)
		return;
	pthread_rwlock_rdlock(&g->lock);
	gen = atomic_load_explicit(&g->generation, memory_order_relaxed);
	geoip_db_lookup(g->country.db, (const struct sockaddr *)&ss, country, NULL);
	geoip_db_lookup(g->asn.db, (const struct sockaddr *)&ss, country, asn);
	if (g->country.db != NULL && g->asn.db == NULL)
		geoip_db_lookup(g->country.db, (const struct sockaddr *)&ss, NULL, asn);
	pthread_rwlock_unlock(&g->lock);
	slot->generation = gen;
	slot->addr = *a;
	slot->country = *country;
	slot->asn = *asn;
}

static bool
geoip_changed(const struct stat *a, const struct stat *b)
{
	return a->st_ino != b->st_ino || a->st_dev != b->st_dev || a->st_size != b->st_size ||
	       a->st_mtim.tv_sec != b->st_mtim.tv_sec || a->st_mtim.tv_nsec != b->st_mtim.tv_nsec;
}

/* Refresh one file: 1 swapped, 0 unchanged, -1 failed. */
static int
geoip_file_refresh(struct geoip *g, struct geoip_file *f, char *err, size_t errlen)
{
	struct stat st;
	MMDB_s *fresh, *old;

	if (f->path == NULL)
		return 0;
	if (stat(f->path, &st) < 0) {
		if (f->seen.st_ino == 0)
			return 0; /* already reported */
		snprintf(err, errlen, "%s: cannot open the GeoIP database: %s; keeping the one loaded",
			 f->path, strerror(errno));
		memset(&f->seen, 0, sizeof(f->seen));
		return -1;
	}
	if (!geoip_changed(&st, &f->seen))
		return 0;
	fresh = geoip_db_open(f->path, &f->seen, err, errlen);
	if (fresh == NULL) {
		size_t n = strlen(err);

		snprintf(err + n, errlen > n ? errlen - n : 0, "; keeping the one loaded");
		f->seen = st; /* not retried until it changes again */
		return -1;
	}
	pthread_rwlock_wrlock(&g->lock);
	old = f->db;
	f->db = fresh;
	atomic_store_explicit(&g->generation, atomic_fetch_add(&geoip_generations, 1),
			      memory_order_release);
	pthread_rwlock_unlock(&g->lock);
	geoip_db_close(old);
	return 1;
}

int
geoip_refresh(struct geoip *g, char *err, size_t errlen)
{
	int a, b;

	if (g == NULL)
		return 0;
	a = geoip_file_refresh(g, &g->country, err, errlen);
	if (a < 0)
		return -1;
	b = geoip_file_refresh(g, &g->asn, err, errlen);
	if (b < 0)
		return -1;
	return a > 0 || b > 0 ? 1 : 0;
}
