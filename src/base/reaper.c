/* reaper: frees run off the event loops; see reaper.h. */
#include "base/reaper.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

struct reaper_job {
	struct reaper_job *next;
	void (*fn)(void *);
	void *arg;
};

static pthread_mutex_t reaper_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t reaper_cond = PTHREAD_COND_INITIALIZER;
static struct reaper_job *reaper_head, *reaper_tail;
static pthread_t reaper_thread;
static bool reaper_running; /* accepting jobs */
static bool reaper_stopping;

static void *
reaper_main(void *unused)
{
	(void)unused;
	pthread_mutex_lock(&reaper_lock);
	for (;;) {
		struct reaper_job *j = reaper_head;

		if (j == NULL) {
			if (reaper_stopping)
				break;
			pthread_cond_wait(&reaper_cond, &reaper_lock);
			continue;
		}
		reaper_head = j->next;
		if (reaper_head == NULL)
			reaper_tail = NULL;
		pthread_mutex_unlock(&reaper_lock);
		j->fn(j->arg);
		free(j);
		pthread_mutex_lock(&reaper_lock);
	}
	pthread_mutex_unlock(&reaper_lock);
	return NULL;
}

int
reaper_start(void)
{
	int rc = 0;

	pthread_mutex_lock(&reaper_lock);
	if (!reaper_running) {
		reaper_stopping = false;
		if (pthread_create(&reaper_thread, NULL, reaper_main, NULL) == 0)
			reaper_running = true;
		else
			rc = -1;
	}
	pthread_mutex_unlock(&reaper_lock);
	return rc;
}

void
reaper_defer(void (*fn)(void *), void *arg)
{
	struct reaper_job *j = malloc(sizeof *j);
	bool queued = false;

	if (j != NULL) {
		j->next = NULL;
		j->fn = fn;
		j->arg = arg;
		pthread_mutex_lock(&reaper_lock);
		if (reaper_running) {
			if (reaper_tail)
				reaper_tail->next = j;
			else
				reaper_head = j;
			reaper_tail = j;
			pthread_cond_signal(&reaper_cond);
			queued = true;
		}
		pthread_mutex_unlock(&reaper_lock);
	}
	if (queued)
		return;
	free(j);
	fn(arg);
}

void
reaper_stop(void)
{
	bool was_running;

	pthread_mutex_lock(&reaper_lock);
	was_running = reaper_running;
	reaper_running = false;
	reaper_stopping = true;
	pthread_cond_signal(&reaper_cond);
	pthread_mutex_unlock(&reaper_lock);
	if (was_running)
		pthread_join(reaper_thread, NULL);
}
