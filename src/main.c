/*
 * main: command line, configuration, listening sockets, worker threads, and
 * the signals that reload (SIGHUP) or drain and stop (SIGTERM, SIGINT).
 * The process exits only here, before or after the event loops run.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "access.h"
#include "admin.h"
#include "geoip.h"
#include "config.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "runtime.h"
#include "tcprelay.h"
#include "worker.h"

#define ERRLEN 16384

struct app {
	const char *config_path;
	struct event_base *base;
	struct runtime *current;
	struct tcprelay_shared **relays; /* [listener], NULL for HTTP listeners */
	struct worker **workers;
	unsigned nworkers;
	struct admin *admin;
	struct admin_state admin_state;
	unsigned generation;
	bool stopping;
};

static const char *
env_lookup(const char *name)
{
	return getenv(name);
}

static void
usage(FILE *out)
{
	fprintf(out,
		"usage: portcullis -c FILE       run with the configuration in FILE\n"
		"       portcullis -t -c FILE    check FILE and exit (0: valid, 1: errors listed)\n"
		"       portcullis --version     print the version\n"
		"       portcullis --help        print this help\n"
		"\n"
		"Signals: SIGHUP reloads the configuration (kept when the new one has errors);\n"
		"SIGTERM or SIGINT stop accepting, let requests finish (timeouts.drain), exit 0.\n");
}

/* Log each line of a multi-line error text. */
static void
log_error_lines(const char *text)
{
	const char *p = text;

	while (*p) {
		size_t len = strcspn(p, "\n");

		if (len)
			log_error("%.*s", (int)len, p);
		p += len;
		if (*p == '\n')
			p++;
	}
}

static bool
listeners_equal(const struct config *a, const struct config *b)
{
	if (a->nlisteners != b->nlisteners || (a->admin == NULL) != (b->admin == NULL))
		return false;
	for (size_t i = 0; i < a->nlisteners; i++)
		if (strcmp(a->listeners[i].address, b->listeners[i].address) != 0)
			return false;
	if (a->admin && strcmp(a->admin->address, b->admin->address) != 0)
		return false;
	return a->workers == b->workers;
}

static void
reload(struct app *app)
{
	char *err = malloc(ERRLEN);
	struct config *cfg;
	struct runtime *rt;
	char logerr[512];

	if (err == NULL)
		return;
	err[0] = '\0';
	log_info("reloading configuration from %s", app->config_path);
	cfg = config_load_file(app->config_path, err, ERRLEN, env_lookup);
	if (cfg == NULL) {
		log_error("configuration reload failed; keeping the old one");
		log_error_lines(err);
		metrics_add(METRIC_RELOADS_ERROR, 1);
		free(err);
		return;
	}
	free(err);
	if (!listeners_equal(cfg, app->current->cfg))
		log_warn("listener addresses, the admin address or the worker count changed: "
			 "they take effect at the next restart");
	if (access_log_open(cfg->access_log, logerr, sizeof(logerr)) < 0) {
		log_error("configuration reload failed; keeping the old one");
		log_error("%s", logerr);
		metrics_add(METRIC_RELOADS_ERROR, 1);
		config_unref(cfg);
		return;
	}
	rt = runtime_new(cfg, ++app->generation);
	if (rt == NULL) {
		log_error("configuration reload failed (out of memory); keeping the old one");
		metrics_add(METRIC_RELOADS_ERROR, 1);
		return;
	}
	log_set_level(cfg->log_level);
	for (unsigned i = 0; i < app->nworkers; i++)
		worker_reload(app->workers[i], rt);
	runtime_unref(app->current);
	app->current = rt;
	app->admin_state.current = rt;
	metrics_add(METRIC_RELOADS_OK, 1);
	log_info("configuration reloaded from %s", app->config_path);
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct app *app = arg;

	if (sig == SIGHUP) {
		if (!app->stopping)
			reload(app);
		return;
	}
	if (app->stopping) {
		log_warn("second stop signal: exiting now");
		event_base_loopbreak(app->base);
		return;
	}
	app->stopping = true;
	app->admin_state.draining = true;
	log_info("stopping: no new connections; letting requests finish (up to %.0f s)",
		 app->current->cfg->drain_timeout);
	for (unsigned i = 0; i < app->nworkers; i++)
		worker_drain(app->workers[i]);
}

/* Every few seconds: re-open GeoIP databases whose files changed; a file
 * that fails to open leaves the last good database in use. */
static void
geoip_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct app *app = arg;
	char why[1024];
	int rc;

	if (app->current == NULL || app->current->cfg->geoip == NULL)
		return;
	why[0] = '\0';
	rc = geoip_refresh(app->current->cfg->geoip, why, sizeof(why));
	if (rc > 0)
		log_info("geoip: database re-opened after a change on disk");
	else if (rc < 0)
		log_error("geoip: %s", why);
}

/* After a stop signal: leave the main loop once every worker has left its own. */
static void
stop_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct app *app = arg;

	if (!app->stopping)
		return;
	for (unsigned i = 0; i < app->nworkers; i++)
		if (!atomic_load(&app->workers[i]->exited))
			return;
	event_base_loopexit(app->base, NULL);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"test", no_argument, NULL, 't'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct app app = {0};
	bool test_only = false;
	char *err = NULL;
	struct config *cfg = NULL;
	int *fds = NULL, *ports = NULL;
	int admin_fd = -1, admin_port = 0;
	struct event *sig_hup = NULL, *sig_term = NULL, *sig_int = NULL, *poll = NULL;
	struct event *geoip_poll = NULL;
	int status = 1, opt;

	while ((opt = getopt_long(argc, argv, "c:thV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			app.config_path = optarg;
			break;
		case 't':
			test_only = true;
			break;
		case 'V':
			printf("portcullis %s\n", PORTCULLIS_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (app.config_path == NULL || optind != argc) {
		usage(stderr);
		return 2;
	}
	err = calloc(1, ERRLEN);
	if (err == NULL)
		return 1;
	cfg = config_load_file(app.config_path, err, ERRLEN, env_lookup);
	if (cfg == NULL) {
		fprintf(stderr, "%s", err);
		if (err[0] && err[strlen(err) - 1] != '\n')
			fputc('\n', stderr);
		if (!test_only)
			fprintf(stderr, "portcullis: %s: configuration has errors; not starting\n",
				app.config_path);
		goto out;
	}
	if (test_only) {
		printf("%s: configuration OK\n", app.config_path);
		status = 0;
		goto out;
	}

	signal(SIGPIPE, SIG_IGN);
	if (evthread_use_pthreads() < 0) {
		fprintf(stderr, "portcullis: libevent has no pthreads support\n");
		goto out;
	}
	log_set_level(cfg->log_level);
	if (access_log_open(cfg->access_log, err, ERRLEN) < 0) {
		log_error("%s", err);
		goto out;
	}

	fds = calloc(cfg->nlisteners, sizeof(*fds));
	ports = calloc(cfg->nlisteners, sizeof(*ports));
	if (fds == NULL || ports == NULL)
		goto out;
	for (size_t i = 0; i < cfg->nlisteners; i++)
		fds[i] = -1;
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		fds[i] = listener_bind(&cfg->listeners[i], &ports[i], err, ERRLEN);
		if (fds[i] < 0) {
			log_error("listeners[%zu]: %s", i, err);
			goto out;
		}
	}
	if (cfg->admin) {
		admin_fd = listener_bind(cfg->admin, &admin_port, err, ERRLEN);
		if (admin_fd < 0) {
			log_error("admin: %s", err);
			goto out;
		}
	}

	app.current = runtime_new(config_ref(cfg), ++app.generation);
	if (app.current == NULL)
		goto out;
	app.admin_state.current = app.current;
	app.base = event_base_new();
	if (app.base == NULL)
		goto out;
	if (admin_fd >= 0) {
		app.admin = admin_new(app.base, admin_fd, &app.admin_state);
		admin_fd = -1; /* taken over (closed on failure) */
		if (app.admin == NULL) {
			log_error("admin: cannot serve");
			goto out;
		}
	}

	app.relays = calloc(cfg->nlisteners ? cfg->nlisteners : 1, sizeof(*app.relays));
	if (app.relays == NULL)
		goto out;
	for (size_t l = 0; l < cfg->nlisteners; l++) {
		if (cfg->listeners[l].type != LISTENER_TCP)
			continue;
		app.relays[l] = tcprelay_shared_new(&cfg->listeners[l]);
		if (app.relays[l] == NULL)
			goto out;
	}

	app.nworkers = cfg->workers;
	app.workers = calloc(app.nworkers, sizeof(*app.workers));
	if (app.workers == NULL)
		goto out;
	for (unsigned i = 0; i < app.nworkers; i++) {
		int *dups = calloc(cfg->nlisteners ? cfg->nlisteners : 1, sizeof(int));

		if (dups == NULL)
			goto out;
		/* Each worker owns a duplicate of every listening socket and closes
		 * it when it stops accepting; the socket closes with the last one. */
		for (size_t l = 0; l < cfg->nlisteners; l++)
			dups[l] = fcntl(fds[l], F_DUPFD_CLOEXEC, 0);
		app.workers[i] = worker_new(i, app.current, dups, ports, cfg->nlisteners, app.relays,
					    err, ERRLEN);
		free(dups);
		if (app.workers[i] == NULL) {
			log_error("worker %u: %s", i, err);
			goto out;
		}
	}
	for (size_t l = 0; l < cfg->nlisteners; l++) {
		close(fds[l]);
		fds[l] = -1;
	}

	sig_hup = evsignal_new(app.base, SIGHUP, signal_cb, &app);
	sig_term = evsignal_new(app.base, SIGTERM, signal_cb, &app);
	sig_int = evsignal_new(app.base, SIGINT, signal_cb, &app);
	if (!sig_hup || !sig_term || !sig_int)
		goto out;
	evsignal_add(sig_hup, NULL);
	evsignal_add(sig_term, NULL);
	evsignal_add(sig_int, NULL);

	for (unsigned i = 0; i < app.nworkers; i++) {
		if (worker_start(app.workers[i]) < 0) {
			log_error("worker %u: cannot start its thread", i);
			goto out;
		}
	}
	log_info("ready: %u worker%s", app.nworkers, app.nworkers == 1 ? "" : "s");
	poll = event_new(app.base, -1, EV_PERSIST, stop_poll_cb, &app);
	if (poll == NULL)
		goto out;
	event_add(poll, &(struct timeval){0, 50000});
	geoip_poll = event_new(app.base, -1, EV_PERSIST, geoip_poll_cb, &app);
	if (geoip_poll == NULL)
		goto out;
	event_add(geoip_poll, &(struct timeval){2, 0});
	event_base_dispatch(app.base);
	status = 0;

out:
	if (app.workers) {
		for (unsigned i = 0; i < app.nworkers; i++)
			worker_join_free(app.workers[i]);
		free(app.workers);
	}
	for (size_t l = 0; app.relays && cfg && l < cfg->nlisteners; l++)
		tcprelay_shared_free(app.relays[l]);
	free(app.relays);
	if (status == 0 && app.stopping)
		log_info("shutdown complete");
	admin_free(app.admin);
	if (sig_hup)
		event_free(sig_hup);
	if (sig_term)
		event_free(sig_term);
	if (sig_int)
		event_free(sig_int);
	if (poll)
		event_free(poll);
	if (geoip_poll)
		event_free(geoip_poll);
	if (app.base)
		event_base_free(app.base);
	for (size_t i = 0; fds && cfg && i < cfg->nlisteners; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (admin_fd >= 0)
		close(admin_fd);
	free(fds);
	free(ports);
	runtime_unref(app.current);
	config_unref(cfg);
	access_log_close();
	metrics_shutdown();
	access_metrics_shutdown();
	free(err);
	libevent_global_shutdown();
	return status;
}
