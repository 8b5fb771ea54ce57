/*
 * saml_refresh: the SAML SP's IdP metadata refresh thread (saml_internal.h)
 * and the load and next-fetch times it keeps for the status page (saml.h).
 */
#include "auth/saml.h"
#include "auth/saml_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/saml_fetch.h"
#include "auth/saml_metadata.h"
#include "base/log.h"
#include "tls/localca.h"

/* The refresh thread: every sp->refresh seconds until saml_refresh_stop. */
static void *
saml_refresh_main(void *arg)
{
	struct saml *sp = arg;

	pthread_mutex_lock(&sp->stop_lock);
	while (!sp->stop) {
		struct timespec ts;
		int rc;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += (time_t)sp->refresh;
		atomic_store(&sp->idp_next_fetch, (int64_t)ts.tv_sec);
		rc = 0;
		while (!sp->stop && rc != ETIMEDOUT)
			rc = pthread_cond_timedwait(&sp->stop_cond, &sp->stop_lock, &ts);
		if (sp->stop)
			break;
		pthread_mutex_unlock(&sp->stop_lock);
		{
			char err[512];
			char *doc = saml_fetch(sp->idp_metadata, err, sizeof err);

			if (doc == NULL) {
				log_warn("saml: refreshing the IdP metadata failed: %s; keeping the "
					 "current copy",
					 err);
			} else if (strcmp(doc, sp->idp->metadata) == 0) {
				/* Unchanged: no rebuild (it loads the CA bundle twice, lock held). */
				atomic_store(&sp->idp_loaded_at, (int64_t)time(NULL));
				free(doc);
			} else {
				struct saml_idp *idp;

				pthread_mutex_lock(&saml_lock);
				idp = saml_metadata_idp_new(sp->sp_metadata, sp->sp_key_pem,
							    sp->sp_key_path, doc, sp->idp_metadata,
							    err, sizeof err);
				if (idp != NULL) {
					struct saml_idp *old = sp->idp;

					sp->idp = idp;
					atomic_store(&sp->idp_loaded_at, (int64_t)time(NULL));
					saml_metadata_idp_free(old);
				}
				pthread_mutex_unlock(&saml_lock);
				if (idp == NULL) {
					log_warn("saml: the refreshed IdP metadata is refused: %s; keeping "
						 "the current copy",
						 err);
				} else if (localca_write_atomic(sp->idp_metadata_cache, doc, strlen(doc),
								0644, err, sizeof err) < 0) {
					log_warn("saml: cannot cache the IdP metadata: %s", err);
				} else {
					log_debug("saml: IdP metadata refreshed from %s", sp->idp_metadata);
				}
				free(doc);
			}
		}
		pthread_mutex_lock(&sp->stop_lock);
	}
	pthread_mutex_unlock(&sp->stop_lock);
	return NULL;
}

void
saml_metadata_times(const struct saml *sp, int64_t *loaded_at, int64_t *next_fetch)
{
	*loaded_at = atomic_load(&sp->idp_loaded_at);
	*next_fetch = atomic_load(&sp->idp_next_fetch);
}

int
saml_refresh_start(struct saml *sp, char *err, size_t errlen)
{
	atomic_store(&sp->idp_loaded_at, (int64_t)time(NULL));
	if (saml_is_url(sp->idp_metadata))
		atomic_store(&sp->idp_next_fetch, (int64_t)time(NULL) + (int64_t)sp->refresh);
	if (saml_is_url(sp->idp_metadata)) {
		if (pthread_create(&sp->thread, NULL, saml_refresh_main, sp) != 0) {
			saml_err(err, errlen, "cannot start the IdP metadata refresh thread");
			return -1;
		}
		sp->thread_started = true;
	}
	return 0;
}

void
saml_refresh_stop(struct saml *sp)
{
	if (sp->thread_started) {
		pthread_mutex_lock(&sp->stop_lock);
		sp->stop = true;
		pthread_cond_signal(&sp->stop_cond);
		pthread_mutex_unlock(&sp->stop_lock);
		pthread_join(sp->thread, NULL);
	}
}
