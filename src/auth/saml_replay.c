/*
 * saml_replay: the process-wide cache of accepted assertion IDs (saml.h,
 * saml_replay_check), shared by every worker thread, bounded, entries kept
 * until the assertion could no longer be accepted anyway.
 */
#include "auth/saml.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct saml_replay_entry {
	char *id;
	int64_t expires;
};

static pthread_mutex_t saml_replay_lock = PTHREAD_MUTEX_INITIALIZER;
static struct saml_replay_entry *saml_replay;
static size_t saml_nreplay, saml_replay_cap;

void
saml_replay_reset(void)
{
	pthread_mutex_lock(&saml_replay_lock);
	for (size_t i = 0; i < saml_nreplay; i++)
		free(saml_replay[i].id);
	free(saml_replay);
	saml_replay = NULL;
	saml_nreplay = saml_replay_cap = 0;
	pthread_mutex_unlock(&saml_replay_lock);
}

int
saml_replay_check(const char *id, int64_t expires, int64_t now, size_t capacity)
{
	int rc = 0;
	size_t i = 0;

	pthread_mutex_lock(&saml_replay_lock);
	/* Logins are rare and the cache small: a linear pass that also drops
	 * expired entries is simpler than an index and fast enough. */
	while (i < saml_nreplay) {
		if (saml_replay[i].expires <= now) {
			free(saml_replay[i].id);
			saml_replay[i] = saml_replay[--saml_nreplay];
			continue;
		}
		if (strcmp(saml_replay[i].id, id) == 0)
			rc = -1;
		i++;
	}
	if (rc == 0 && saml_nreplay >= capacity)
		rc = -1;
	if (rc == 0) {
		if (saml_nreplay == saml_replay_cap) {
			size_t cap = saml_replay_cap ? saml_replay_cap * 2 : 64;
			struct saml_replay_entry *e = realloc(saml_replay, cap * sizeof *e);

			if (e == NULL) {
				rc = -1;
				goto out;
			}
			saml_replay = e;
			saml_replay_cap = cap;
		}
		saml_replay[saml_nreplay].id = strdup(id);
		if (saml_replay[saml_nreplay].id == NULL) {
			rc = -1;
			goto out;
		}
		saml_replay[saml_nreplay++].expires = expires;
	}
out:
	pthread_mutex_unlock(&saml_replay_lock);
	return rc;
}

/* Whether the cache refused because it is full (for the error message). */
bool
saml_replay_full(size_t capacity)
{
	bool full;

	pthread_mutex_lock(&saml_replay_lock);
	full = saml_nreplay >= capacity;
	pthread_mutex_unlock(&saml_replay_lock);
	return full;
}

