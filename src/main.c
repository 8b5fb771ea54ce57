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
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "access/access.h"
#include "acme/acme.h"
#include "auth/revoke.h"
#include "core/admin.h"
#include "core/explain.h"
#include "core/status_page.h"
#include "core/handoff.h"
#include "core/keyguard.h"
#include "access/geoip.h"
#include "config/config.h"
#include "core/listener.h"
#include "core/memtrim.h"
#include "http/conn.h"
#include "core/ocsp_stapler.h"
#include "http/outbound.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/reaper.h"
#include "core/privdrop.h"
#include "core/runtime.h"
#include "proxy/tcprelay.h"
#include "base/timeutil.h"
#include "tls/tls.h"
#include "core/worker.h"

#define ERRLEN 16384
#define MEMTRIM_SECONDS 5                   /* how often idle memory is given back */
#define MEMTRIM_MIN_FREE (8 * 1024 * 1024)  /* ... once this much is free */

struct app {
	const char *config_path;
	struct event_base *base;
	struct runtime *current;
	struct tcprelay_shared **relays; /* [listener], NULL for HTTP listeners */
	struct server_share **shares;    /* [listener], NULL for TCP listeners */
	struct worker **workers;
	unsigned nworkers;
	struct admin *admin;
	struct admin_state admin_state;
	unsigned generation;
	bool stopping;
	struct tls_store *tls;      /* one store for every TLS listener, or NULL */
	struct event *tls_timer;    /* tls_store_poll: files changed on disk, rotations */
	struct acme_manager *acme;  /* NULL without "tls.acme" */
	struct ocsp_stapler *ocsp;  /* NULL with "tls.ocsp_stapling": false */

	/* start-up and teardown (main) */
	bool test_only;             /* -t */
	const char *revoke;         /* --revoke TARGET */
	struct explain_request explain; /* --explain 'METHOD URL' and its options */
	bool explain_options;       /* one of --from, --listener, --header, --identity, --json */
	bool switching;             /* root with a "user": become it after binding */
	char *err;                  /* ERRLEN bytes */
	struct config *cfg;         /* as loaded for the start */
	int *fds, *ports;           /* [listener]: bound sockets (-1 once handed over) */
	int admin_fd, admin_port;   /* -1 / 0 without an admin listener */
	struct event *sig_hup, *sig_term, *sig_int;
	struct event *stop_poll, *geoip_poll;
	struct memtrim *memtrim;    /* freed memory back to the kernel when idle */
	/* SIGUSR2: the listening sockets kept for a new process (core/handoff) */
	char *exe;                  /* this binary's path at start */
	char **argv;
	int admin_keep;             /* the admin socket, or -1 */
	struct event *sig_usr2, *sig_chld;
};

static bool tls_config_equal(const struct config *x, const struct config *y);
static void take_over(struct app *app);

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
		"       portcullis --revoke user=NAMEID|session=ID -c FILE\n"
		"                                sign a user or a session out everywhere (through\n"
		"                                FILE's Redis; saml.revocation) and exit\n"
		"       portcullis -t -c FILE --explain 'METHOD URL' [--from ADDR] [--listener NAME]\n"
		"                  [--header 'Name: value']... [--identity 'attribute=value']... [--json]\n"
		"                                what that request would meet, step by step (listener,\n"
		"                                path, site, route, access, rate limit, auth, upstream,\n"
		"                                headers), sending nothing; exit 0: forwarded, 3: refused,\n"
		"                                4: answered by portcullis itself (docs/explain.md)\n"
		"       portcullis --version     print the version\n"
		"       portcullis --help        print this help\n"
		"\n"
		"Signals: SIGHUP reloads the configuration (kept when the new one has errors);\n"
		"SIGTERM or SIGINT stop accepting, let requests finish (timeouts.drain), exit 0.\n"
		"SIGUSR2 starts the binary again with the listening sockets; once the new\n"
		"process serves, this one drains and exits (a restart that refuses nothing).\n"
		"\n"
		"-t creates, writes and fetches nothing (SAML keys, IdP metadata URLs).\n"
		"\n"
		"Started as root it binds its ports, then runs as the configured \"user\"; it\n"
		"refuses to stay root unless \"allow_root\" is true or PORTCULLIS_ALLOW_ROOT=1.\n");
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

/* Print the errors of a configuration that did not load, as -t shows them. */
static void
print_config_errors(const char *path, const char *err, bool test_only)
{
	fprintf(stderr, "%s", err);
	if (err[0] && err[strlen(err) - 1] != '\n')
		fputc('\n', stderr);
	if (!test_only)
		fprintf(stderr, "portcullis: %s: configuration has errors; not starting\n", path);
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
	if (!privdrop_settings_equal(cfg, app->current->cfg))
		log_warn("\"user\", \"group\" or \"allow_root\" changed: it takes effect at the "
			 "next restart");
	if (!tls_config_equal(cfg, app->current->cfg))
		log_warn("the \"tls\" block or a listener's \"tls\", \"http2\", \"h2c\" or \"alpn\" "
			 "changed: it takes effect at the next restart (certificate files reload by "
			 "themselves)");
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
	if (revoke_configure(rt->cfg) < 0)
		log_error("revocation: cannot start the poller thread");
	metrics_add(METRIC_RELOADS_OK, 1);
	log_info("configuration reloaded from %s", app->config_path);
}

/* Close the listening sockets kept for a handoff (stopping: refuse, not queue). */
static void
close_kept(struct app *app)
{
	for (size_t l = 0; app->fds && app->cfg && l < app->cfg->nlisteners; l++) {
		if (app->fds[l] >= 0)
			close(app->fds[l]);
		app->fds[l] = -1;
	}
	if (app->admin_keep >= 0)
		close(app->admin_keep);
	app->admin_keep = -1;
}

/* SIGUSR2: start the binary again with every listening socket (core/handoff);
 * the new process sends this one SIGTERM once it serves. */
static void
handoff_cb(evutil_socket_t sig, short what, void *arg)
{
	struct app *app = arg;
	const struct config *cfg = app->cfg;
	size_t n = 0;
	int *fds = calloc(cfg->nlisteners + 1, sizeof(*fds));
	const char **names = calloc(cfg->nlisteners + 1, sizeof(*names));
	char err[256];
	pid_t pid;

	if (app->stopping || fds == NULL || names == NULL || app->exe == NULL) {
		log_warn("handoff: not now (stopping, or no binary path)");
		goto out;
	}
	for (size_t l = 0; l < cfg->nlisteners; l++) {
		if (app->fds[l] < 0)
			continue;
		fds[n] = app->fds[l];
		names[n++] = cfg->listeners[l].name;
	}
	if (app->admin_keep >= 0) {
		fds[n] = app->admin_keep;
		names[n++] = HANDOFF_ADMIN_NAME;
	}
	pid = handoff_spawn(app->exe, app->argv, fds, names, n, err, sizeof(err));
	if (pid < 0)
		log_error("handoff: cannot start %s: %s", app->exe, err);
	else
		log_info("handoff: started %s (pid %ld) with %zu listening socket%s", app->exe,
			 (long)pid, n, n == 1 ? "" : "s");
out:
	free(fds);
	free(names);
}

/* SIGCHLD: a process started on SIGUSR2 that exited (it failed to start). */
static void
child_cb(evutil_socket_t sig, short what, void *arg)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		log_warn("handoff: process %ld exited (%s %d); still serving here", (long)pid,
			 WIFEXITED(status) ? "status" : "signal",
			 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
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
	close_kept(app);
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
		if (!worker_exited(app->workers[i]))
			return;
	event_base_loopexit(app->base, NULL);
}

/*
 * The full load of a start: the configuration as the process runs now (SAML
 * keys created, IdP metadata fetched), after <first>, the load without side
 * effects that the sockets were bound from.  Returns the new config, or NULL
 * after printing why (errors, or a file changed in between).
 */
static struct config *
load_for_start(const char *path, const struct config *first, char *err)
{
	struct config *cfg = config_load_file(path, err, ERRLEN, env_lookup);

	if (cfg == NULL) {
		print_config_errors(path, err, false);
		return NULL;
	}
	if (!listeners_equal(first, cfg) || !privdrop_settings_equal(first, cfg)) {
		fprintf(stderr,
			"portcullis: %s: configuration changed during start-up (listeners, admin, "
			"workers, \"user\", \"group\" or \"allow_root\" differ between the first "
			"reading and the second); not starting\n",
			path);
		config_unref(cfg);
		return NULL;
	}
	return cfg;
}

/* ---- TLS and ACME --------------------------------------------------- */

/* The certificate store for cfg->tls (which must not be NULL). */
static struct tls_store *
tls_from_config(const struct config *cfg, char *err, size_t errlen)
{
	const struct config_tls *t = cfg->tls;
	struct tls_file_pair *files = calloc(t->ncertificates + 1, sizeof(*files));
	struct tls_options opt = {
		.certs_dir = t->certs_dir,
		.files = files,
		.nfiles = t->ncertificates,
		.local_ca = t->local_ca,
		.local_names = (const char *const *)t->local_names,
		.nlocal_names = t->nlocal_names,
		.local_leaf_days = t->local_leaf_days,
		.default_name = t->default_name,
		.ticket_rotate_seconds = t->ticket_rotate,
	};
	struct tls_store *s;

	if (files == NULL) {
		snprintf(err, errlen, "tls: out of memory");
		return NULL;
	}
	for (size_t i = 0; i < t->ncertificates; i++)
		files[i] = (struct tls_file_pair){t->certificates[i].cert, t->certificates[i].key,
						  (const char *const *)t->certificates[i].names,
						  t->certificates[i].nnames};
	s = tls_store_new(&opt, err, errlen);
	free(files);
	return s;
}

/* -t: every certificate file pair as the store would load it.  Prints one
 * line per problem to stderr; returns the number of problems. */
static int
tls_check_config(const struct config *cfg)
{
	char why[1024];
	int bad = 0;

	for (size_t i = 0; cfg->tls && i < cfg->tls->ncertificates; i++) {
		const struct config_tls_file *c = &cfg->tls->certificates[i];
		struct tls_file_pair pair = {c->cert, c->key, (const char *const *)c->names,
					     c->nnames};

		if (c->cert == NULL || c->key == NULL)
			continue;
		if (tls_check_files(&pair, why, sizeof(why)) < 0) {
			fprintf(stderr, "tls.certificates[%zu]: %s\n", i, why);
			bad++;
		}
	}
	return bad;
}

/* The challenge types to use: as configured, else HTTP-01 when a plain
 * HTTP listener exists and TLS-ALPN-01 when a TLS listener exists. */
static unsigned
acme_challenges_for(const struct config *cfg)
{
	unsigned bits = cfg->tls->acme->challenges;

	if (bits != 0)
		return bits;
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		if (cfg->listeners[i].type != LISTENER_HTTP)
			continue;
		bits |= cfg->listeners[i].tls ? ACME_CHALLENGE_TLSALPN01 : ACME_CHALLENGE_HTTP01;
	}
	return bits;
}

/* Start the ACME manager of cfg->tls->acme on the main loop: certificates
 * found in storage are installed at once, the rest are ordered. */
static struct acme_manager *
acme_from_config(struct app *app, const struct config *cfg, char *err, size_t errlen)
{
	const struct config_acme *a = cfg->tls->acme;
	struct acme_order_spec *orders = calloc(a->norders + 1, sizeof(*orders));
	struct acme_settings st = {
		.directory_url = a->directory,
		.email = a->email,
		.ca_bundle = a->ca_bundle,
		.eab_kid = a->eab_kid,
		.eab_hmac_key = a->eab_hmac_key,
		.storage_dir = cfg->tls->certs_dir,
		.orders = orders,
		.n_orders = a->norders,
		.challenges = acme_challenges_for(cfg),
		.on_certificate = tls_store_acme_certificate_cb,
		.cb_arg = app->tls,
		.retry_base_seconds = a->retry_base,
	};
	struct acme_manager *m = NULL;

	if (orders == NULL) {
		snprintf(err, errlen, "tls.acme: out of memory");
		return NULL;
	}
	for (size_t i = 0; i < a->norders; i++)
		orders[i] = (struct acme_order_spec){(const char *const *)a->orders[i].names,
						     a->orders[i].nnames};
	if ((st.challenges & ACME_CHALLENGE_HTTP01) && !(a->challenges & ACME_CHALLENGE_HTTP01) &&
	    !(st.challenges & ACME_CHALLENGE_TLSALPN01))
		log_info("acme: HTTP-01 only (no listener has \"tls\": true)");
	tls_store_set_challenge_hook(app->tls, acme_tlsalpn01_cert);
	m = acme_manager_new(app->base, &st, err, errlen);
	if (m != NULL && acme_manager_start(m, err, errlen) < 0) {
		acme_manager_free(m);
		m = NULL;
	}
	free(orders);
	return m;
}

static void
tls_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	tls_store_poll(arg);
}

static bool
strings_equal(const char *a, const char *b)
{
	return (a == NULL || b == NULL) ? a == b : strcmp(a, b) == 0;
}

static bool
string_lists_equal(char *const *a, size_t na, char *const *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (!strings_equal(a[i], b[i]))
			return false;
	return true;
}

/* Whether two "tls" blocks (and the listeners' "tls" flags) are the same:
 * the store and the ACME manager are built once, at start. */
static bool
tls_config_equal(const struct config *x, const struct config *y)
{
	const struct config_tls *a = x->tls, *b = y->tls;

	for (size_t i = 0; i < x->nlisteners && i < y->nlisteners; i++)
		if (x->listeners[i].tls != y->listeners[i].tls ||
		    x->listeners[i].http2 != y->listeners[i].http2 ||
		    x->listeners[i].h2c != y->listeners[i].h2c ||
		    x->listeners[i].alpn != y->listeners[i].alpn) /* interned: same list, same pointer */
			return false;
	if (a == NULL || b == NULL)
		return a == b;
	if (a->mode != b->mode || !strings_equal(a->certs_dir, b->certs_dir) ||
	    !strings_equal(a->default_name, b->default_name) || a->ticket_rotate != b->ticket_rotate ||
	    a->watch_interval != b->watch_interval || a->local_ca != b->local_ca ||
	    a->local_leaf_days != b->local_leaf_days ||
	    !string_lists_equal(a->local_names, a->nlocal_names, b->local_names, b->nlocal_names) ||
	    a->ncertificates != b->ncertificates || (a->acme == NULL) != (b->acme == NULL))
		return false;
	for (size_t i = 0; i < a->ncertificates; i++) {
		const struct config_tls_file *p = &a->certificates[i], *q = &b->certificates[i];

		if (!strings_equal(p->cert, q->cert) || !strings_equal(p->key, q->key) ||
		    !string_lists_equal(p->names, p->nnames, q->names, q->nnames))
			return false;
	}
	if (a->acme) {
		const struct config_acme *p = a->acme, *q = b->acme;

		if (!strings_equal(p->directory, q->directory) || !strings_equal(p->email, q->email) ||
		    !strings_equal(p->ca_bundle, q->ca_bundle) || !strings_equal(p->eab_kid, q->eab_kid) ||
		    !strings_equal(p->eab_hmac_key, q->eab_hmac_key) ||
		    p->challenges != q->challenges || p->retry_base != q->retry_base ||
		    p->norders != q->norders)
			return false;
		for (size_t i = 0; i < p->norders; i++)
			if (!string_lists_equal(p->orders[i].names, p->orders[i].nnames,
						q->orders[i].names, q->orders[i].nnames))
				return false;
	}
	return true;
}

/* ---- start-up, in order ------------------------------------------------ */

/*
 * The command line into <app>.  Returns -1 to go on, else the exit status
 * (0 after --version or --help, 2 after a usage error).
 */
static int
parse_args(struct app *app, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"test", no_argument, NULL, 't'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{"revoke", required_argument, NULL, 'R'},
		{"explain", required_argument, NULL, 'E'},
		{"from", required_argument, NULL, 'F'},
		{"listener", required_argument, NULL, 'L'},
		{"header", required_argument, NULL, 'H'},
		{"identity", required_argument, NULL, 'I'},
		{"json", no_argument, NULL, 'J'},
		{NULL, 0, NULL, 0},
	};
	struct explain_request *x = &app->explain;
	int opt;

	/* every argument at most once: room for all --header / --identity */
	x->headers = calloc((size_t)argc, sizeof(*x->headers));
	x->identity = calloc((size_t)argc, sizeof(*x->identity));
	if (x->headers == NULL || x->identity == NULL) {
		fprintf(stderr, "portcullis: out of memory\n");
		return 1;
	}

	while ((opt = getopt_long(argc, argv, "c:thV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			app->config_path = optarg;
			break;
		case 't':
			app->test_only = true;
			break;
		case 'R':
			app->revoke = optarg;
			app->test_only = true; /* read the file only: nothing created */
			break;
		case 'E':
			x->request = optarg;
			app->test_only = true; /* read the file only: nothing created */
			break;
		case 'F':
			x->from = optarg;
			app->explain_options = true;
			break;
		case 'L':
			x->listener = optarg;
			app->explain_options = true;
			break;
		case 'H':
			x->headers[x->nheaders++] = optarg;
			app->explain_options = true;
			break;
		case 'I':
			x->identity[x->nidentity++] = optarg;
			app->explain_options = true;
			break;
		case 'J':
			x->json = true;
			app->explain_options = true;
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
	if (app->config_path == NULL || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (app->explain_options && x->request == NULL) {
		fprintf(stderr, "portcullis: --from, --listener, --header, --identity and --json go "
				"with --explain 'METHOD URL'\n");
		return 2;
	}
	if (x->request != NULL && app->revoke != NULL) {
		fprintf(stderr, "portcullis: --explain and --revoke do not go together\n");
		return 2;
	}
	return -1;
}

/*
 * The first reading of the configuration into app->cfg, and -t's checks.
 * -t, and every start as root, read the file with no side effects: nothing
 * is created or fetched, so a check changes nothing and root never writes
 * where the user it switches to could have put a symlink.  The full load
 * comes later, as the user (load_for_start).  Returns 0, or -1 after
 * printing why.
 */
static int
read_config(struct app *app)
{
	/* Before any thread exists (loading SAML may start one), so that every
	 * thread has it: this process never needs execve to grant privileges. */
	if (!app->test_only && privdrop_no_new_privs(app->err, ERRLEN) < 0) {
		fprintf(stderr, "portcullis: %s\n", app->err);
		return -1;
	}
	if (app->test_only || geteuid() == 0)
		app->cfg = config_check_file(app->config_path, app->err, ERRLEN, env_lookup);
	else
		app->cfg = config_load_file(app->config_path, app->err, ERRLEN, env_lookup);
	if (app->cfg == NULL) {
		print_config_errors(app->config_path, app->err, app->test_only);
		return -1;
	}
	if (tls_check_config(app->cfg) > 0) {
		if (!app->test_only)
			fprintf(stderr, "portcullis: %s: configuration has errors; not starting\n",
				app->config_path);
		return -1;
	}
	return 0;
}

/* Replace app->cfg by the full load of a start (see load_for_start). */
static int
reload_for_start(struct app *app)
{
	struct config *full = load_for_start(app->config_path, app->cfg, app->err);

	if (full == NULL)
		return -1;
	config_unref(app->cfg);
	app->cfg = full;
	return 0;
}

/*
 * Process-wide settings (SIGPIPE, malloc, libevent threads, log level), the
 * privilege checks of a start, and, for root staying root ("allow_root"),
 * the full load now.  Returns 0 or -1 (logged).
 */
static int
prepare_start(struct app *app)
{
	signal(SIGPIPE, SIG_IGN);
#ifdef __GLIBC__
	/* Bodies and relayed streams move through 64 KiB buffers that come and
	 * go by the thousand.  glibc would hand each freed one back to the
	 * kernel (madvise) and fault it in again at the next read: keep them. */
	mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
	mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
#endif
	if (evthread_use_pthreads() < 0) {
		fprintf(stderr, "portcullis: libevent has no pthreads support\n");
		return -1;
	}
	log_set_level(app->cfg->log_level);
	if (privdrop_check_start(app->cfg, env_lookup, app->err, ERRLEN) < 0) {
		log_error("%s", app->err);
		return -1;
	}
	app->switching = privdrop_switches(app->cfg);
	/* Root staying root ("allow_root"): load for real now. */
	if (app->cfg->check_only && !app->switching)
		return reload_for_start(app);
	return 0;
}

/* The socket handed over under <name> (core/handoff), else a new one. */
static int
take_or_bind(const struct config_listener *l, const char *name, int *port, char *err)
{
	int fd = handoff_take(name);

	if (fd >= 0) {
		if (listener_adopt(l, fd, port, err, ERRLEN) == 0)
			return fd;
		log_warn("handoff: %s; binding anew", err);
		close(fd);
	}
	return listener_bind(l, port, err, ERRLEN);
}

/* Bind every listener (app->fds, app->ports) and the admin listener.
 * Returns 0 or -1 (logged). */
static int
bind_all(struct app *app)
{
	const struct config *cfg = app->cfg;

	app->fds = calloc(cfg->nlisteners, sizeof(*app->fds));
	app->ports = calloc(cfg->nlisteners, sizeof(*app->ports));
	if (app->fds == NULL || app->ports == NULL)
		return -1;
	for (size_t i = 0; i < cfg->nlisteners; i++)
		app->fds[i] = -1;
	handoff_collect();
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		app->fds[i] = take_or_bind(&cfg->listeners[i], cfg->listeners[i].name, &app->ports[i],
					   app->err);
		if (app->fds[i] < 0) {
			log_error("listeners[%zu]: %s", i, app->err);
			return -1;
		}
	}
	if (cfg->admin) {
		app->admin_fd = take_or_bind(cfg->admin, HANDOFF_ADMIN_NAME, &app->admin_port, app->err);
		if (app->admin_fd < 0) {
			log_error("admin: %s", app->err);
			return -1;
		}
	}
	handoff_close_rest();
	return 0;
}

/*
 * Every socket is bound: as root with a "user", make the state folders that
 * do not exist yet (given to the user), become the user for good, and only
 * then load the configuration for real: SAML keys, the access log, the
 * certificate store and ACME are the user's work, done in folders only the
 * user writes.  Otherwise: a warning as root, or nothing at all.  Returns 0
 * or -1 (logged).
 */
static int
become_user(struct app *app)
{
	if (privdrop_apply(app->cfg, app->config_path, env_lookup, app->err, ERRLEN) < 0 ||
	    keyguard_apply(app->err, ERRLEN) < 0) { /* setuid resets "dumpable" */
		log_error("%s", app->err);
		return -1;
	}
	if (app->switching && reload_for_start(app) < 0)
		return -1;
	if (access_log_open(app->cfg->access_log, app->err, ERRLEN) < 0) {
		log_error("%s", app->err);
		return -1;
	}
	return 0;
}

/* The TLS certificate store, its poll timer and the ACME manager, for
 * app->cfg->tls (which must not be NULL).  Returns 0 or -1 (logged). */
static int
build_tls(struct app *app)
{
	const struct config *cfg = app->cfg;
	struct timeval tv = timeval_from_seconds(cfg->tls->watch_interval);

	app->tls = tls_from_config(cfg, app->err, ERRLEN);
	if (app->tls == NULL) {
		log_error_lines(app->err);
		return -1;
	}
	app->admin_state.tls = app->tls;
	app->tls_timer = event_new(app->base, -1, EV_PERSIST, tls_poll_cb, app->tls);
	if (app->tls_timer == NULL || event_add(app->tls_timer, &tv) < 0)
		return -1;
	if (cfg->tls->ocsp_stapling) {
		char dir[4096];

		snprintf(dir, sizeof(dir), "%s/ocsp", cfg->tls->certs_dir);
		app->ocsp = ocsp_stapler_new(app->base, app->tls, dir, app->err, ERRLEN);
		if (app->ocsp == NULL) /* handshakes go on without staples */
			log_warn("tls.ocsp_stapling: %s; no OCSP stapling", app->err);
	}
	if (cfg->tls->acme) {
		app->acme = acme_from_config(app, cfg, app->err, ERRLEN);
		if (app->acme == NULL) {
			log_error("tls.acme: %s", app->err);
			return -1;
		}
		app->admin_state.acme = app->acme;
	}
	return 0;
}

/*
 * What the workers share, on the main event loop: the first runtime
 * generation, the admin listener, TLS and ACME, the TCP relays' shared
 * state.  Returns 0 or -1 (logged, except when out of memory).
 */
static int
build_runtime(struct app *app)
{
	const struct config *cfg = app->cfg;

	if (cfg->check_only) { /* never serve from a load that set up no SAML */
		log_error("internal error: the configuration was only checked, not loaded");
		return -1;
	}
	app->current = runtime_new(config_ref(app->cfg), ++app->generation);
	if (app->current == NULL)
		return -1;
	app->admin_state.current = app->current;
	app->admin_state.ports = app->ports;
	app->admin_state.admin_port = app->admin_port;
	if (revoke_configure(app->cfg) < 0) {
		log_error("revocation: cannot start the poller thread");
		return -1;
	}
	app->base = event_base_new();
	if (app->base == NULL)
		return -1;
	if (app->admin_fd >= 0) {
		app->admin_keep = fcntl(app->admin_fd, F_DUPFD_CLOEXEC, 0);
		app->admin = admin_new(app->base, app->admin_fd, &app->admin_state);
		app->admin_fd = -1; /* taken over (closed on failure) */
		if (app->admin == NULL) {
			log_error("admin: cannot serve");
			return -1;
		}
	}

	if (cfg->tls_listeners_off)
		log_warn("tls: \"mode\" is \"off\": %zu listener%s with \"tls\": true not opened",
			 cfg->tls_listeners_off, cfg->tls_listeners_off == 1 ? "" : "s");
	if (cfg->tls && build_tls(app) < 0)
		return -1;

	app->relays = calloc(cfg->nlisteners ? cfg->nlisteners : 1, sizeof(*app->relays));
	if (app->relays == NULL)
		return -1;
	app->shares = calloc(cfg->nlisteners ? cfg->nlisteners : 1, sizeof(*app->shares));
	if (app->shares == NULL)
		return -1;
	for (size_t l = 0; l < cfg->nlisteners; l++) {
		if (cfg->listeners[l].type != LISTENER_TCP) {
			app->shares[l] = server_share_new();
			if (app->shares[l] == NULL)
				return -1;
			continue;
		}
		app->relays[l] = tcprelay_shared_new(&cfg->listeners[l]);
		if (app->relays[l] == NULL)
			return -1;
	}
	return 0;
}

/*
 * Make the workers (each with duplicates of the listening sockets, which
 * the main thread then closes), catch the signals, start the worker
 * threads and the main loop's polls.  Returns 0 or -1 (logged, except when
 * out of memory).
 */
static int
start_workers(struct app *app)
{
	const struct config *cfg = app->cfg;

	app->nworkers = cfg->workers;
	app->workers = calloc(app->nworkers, sizeof(*app->workers));
	if (app->workers == NULL)
		return -1;
	for (unsigned i = 0; i < app->nworkers; i++) {
		int *dups = calloc(cfg->nlisteners ? cfg->nlisteners : 1, sizeof(int));

		if (dups == NULL)
			return -1;
		/* Each worker owns a duplicate of every listening socket and closes
		 * it when it stops accepting; the socket closes with the last one. */
		for (size_t l = 0; l < cfg->nlisteners; l++)
			dups[l] = fcntl(app->fds[l], F_DUPFD_CLOEXEC, 0);
		app->workers[i] = worker_new(i, app->current, dups, app->ports, cfg->nlisteners,
					     app->relays, app->shares, app->tls, app->err, ERRLEN);
		free(dups);
		if (app->workers[i] == NULL) {
			log_error("worker %u: %s", i, app->err);
			return -1;
		}
	}
	/* app->fds stay open for SIGUSR2's handoff; a stop signal closes them. */
	app->sig_hup = evsignal_new(app->base, SIGHUP, signal_cb, app);
	app->sig_term = evsignal_new(app->base, SIGTERM, signal_cb, app);
	app->sig_int = evsignal_new(app->base, SIGINT, signal_cb, app);
	if (!app->sig_hup || !app->sig_term || !app->sig_int)
		return -1;
	evsignal_add(app->sig_hup, NULL);
	evsignal_add(app->sig_term, NULL);
	evsignal_add(app->sig_int, NULL);
	app->sig_usr2 = evsignal_new(app->base, SIGUSR2, handoff_cb, app);
	app->sig_chld = evsignal_new(app->base, SIGCHLD, child_cb, app);
	if (!app->sig_usr2 || !app->sig_chld)
		return -1;
	evsignal_add(app->sig_usr2, NULL);
	evsignal_add(app->sig_chld, NULL);

	for (unsigned i = 0; i < app->nworkers; i++) {
		if (worker_start(app->workers[i]) < 0) {
			log_error("worker %u: cannot start its thread", i);
			return -1;
		}
	}
	log_info("ready: %u worker%s", app->nworkers, app->nworkers == 1 ? "" : "s");
	take_over(app);
	app->stop_poll = event_new(app->base, -1, EV_PERSIST, stop_poll_cb, app);
	if (app->stop_poll == NULL)
		return -1;
	event_add(app->stop_poll, &(struct timeval){0, 50000});
	app->geoip_poll = event_new(app->base, -1, EV_PERSIST, geoip_poll_cb, app);
	if (app->geoip_poll == NULL)
		return -1;
	event_add(app->geoip_poll, &(struct timeval){2, 0});
	return 0;
}

/* Started by a SIGUSR2 handoff: now that this process serves, the one that
 * started it drains and exits. */
static void
take_over(struct app *app)
{
	pid_t from = handoff_from();

	if (from > 0) {
		log_info("handoff: serving; telling process %ld to drain", (long)from);
		kill(from, SIGTERM);
	}
}

/*
 * Free everything start-up made, whatever step it reached: the workers
 * first (joined), then what they shared (the SSL_CTX outlives every
 * connection), the main loop, the sockets, the configuration.
 */
static void
teardown(struct app *app, int status)
{
	const struct config *cfg = app->cfg;

	memtrim_free(app->memtrim);
	if (app->workers) {
		for (unsigned i = 0; i < app->nworkers; i++)
			worker_join_free(app->workers[i]);
		free(app->workers);
	}
	/* Whatever the workers retired is freed before what they shared. */
	reaper_stop();
	/* The SSL_CTX outlives every connection: free it after the workers. */
	app->admin_state.acme = NULL;
	app->admin_state.tls = NULL;
	acme_manager_free(app->acme);
	ocsp_stapler_free(app->ocsp);
	if (app->tls_timer)
		event_free(app->tls_timer);
	tls_store_free(app->tls);
	for (size_t l = 0; app->relays && cfg && l < cfg->nlisteners; l++)
		tcprelay_shared_free(app->relays[l]);
	free(app->relays);
	for (size_t l = 0; app->shares && cfg && l < cfg->nlisteners; l++)
		server_share_free(app->shares[l]);
	free(app->shares);
	if (status == 0 && app->stopping)
		log_info("shutdown complete");
	admin_free(app->admin);
	if (app->sig_hup)
		event_free(app->sig_hup);
	if (app->sig_term)
		event_free(app->sig_term);
	if (app->sig_int)
		event_free(app->sig_int);
	if (app->sig_usr2)
		event_free(app->sig_usr2);
	if (app->sig_chld)
		event_free(app->sig_chld);
	if (app->stop_poll)
		event_free(app->stop_poll);
	if (app->geoip_poll)
		event_free(app->geoip_poll);
	if (app->base)
		event_base_free(app->base);
	for (size_t i = 0; app->fds && cfg && i < cfg->nlisteners; i++)
		if (app->fds[i] >= 0)
			close(app->fds[i]);
	if (app->admin_fd >= 0)
		close(app->admin_fd);
	if (app->admin_keep >= 0)
		close(app->admin_keep);
	free(app->exe);
	free(app->explain.headers);
	free(app->explain.identity);
	free(app->fds);
	free(app->ports);
	revoke_shutdown();
	runtime_unref(app->current);
	config_unref(app->cfg);
	access_log_close();
	metrics_shutdown();
	access_metrics_shutdown();
	free(app->err);
	outbound_cleanup();
	libevent_global_shutdown();
}

int
main(int argc, char **argv)
{
	struct app app = {.admin_fd = -1, .admin_keep = -1, .argv = argv};
	int status;

	status = parse_args(&app, argc, argv);
	if (status >= 0) {
		free(app.explain.headers);
		free(app.explain.identity);
		return status;
	}
	status = 1;
	app.err = calloc(1, ERRLEN);
	if (app.err == NULL)
		return 1;
	/* Before any key is read: no core dumps, keys in locked memory. */
	if (!app.test_only && keyguard_apply(app.err, ERRLEN) < 0) {
		fprintf(stderr, "portcullis: %s\n", app.err);
		goto out;
	}
	if (read_config(&app) < 0)
		goto out;
	if (app.revoke != NULL) {
		if (revoke_target(app.cfg, app.revoke, app.err, ERRLEN) < 0) {
			fprintf(stderr, "portcullis: --revoke %s: %s\n", app.revoke, app.err);
			goto out;
		}
		printf("revoked: %s\n", app.revoke);
		status = 0;
		goto out;
	}
	if (app.explain.request != NULL) {
		status = explain_run(app.cfg, &app.explain, stdout, app.err, ERRLEN);
		if (status < 0) {
			fprintf(stderr, "portcullis: %s\n", app.err);
			status = 2;
		}
		goto out;
	}
	app.exe = realpath("/proc/self/exe", NULL);
	if (app.test_only) {
		char why[400];

		if (app.cfg->admin != NULL) {
			status_page_served(app.cfg, why, sizeof(why));
			fprintf(stderr, "%s: %s\n", app.config_path, why);
		}
		printf("%s: configuration OK\n", app.config_path);
		status = 0;
		goto out;
	}
	if (prepare_start(&app) < 0 || bind_all(&app) < 0 || become_user(&app) < 0 ||
	    build_runtime(&app) < 0 || start_workers(&app) < 0)
		goto out;
	/* Retired configurations are freed there, never on a worker's loop. */
	if (reaper_start() < 0)
		log_warn("cannot start the thread that frees retired configurations; workers free them");
	app.memtrim = memtrim_start(app.base, MEMTRIM_SECONDS, MEMTRIM_MIN_FREE);
	event_base_dispatch(app.base);
	status = 0;
out:
	teardown(&app, status);
	return status;
}
