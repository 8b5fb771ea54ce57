/* websocket: WebSocket upgrades and their tunnels; see websocket.h. */
#include "proxy/websocket.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "access/access.h"
#include "access/access_check.h"
#include "auth/revoke.h"
#include "auth/session_id.h"
#include "base/log.h"
#include "config/config_model.h"
#include "core/generation.h"
#include "http/conn.h"
#include "http/headers.h"
#include "http/tunnel.h"
#include "proxy/listenlimit.h"
#include "proxy/router.h"

#define WEBSOCKET_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WEBSOCKET_PATH_MAX 8192

/* ---- the handshake ------------------------------------------------------ */

/* True when the comma-separated list <value> holds <token> (any case). */
static bool
list_has_token(const char *value, const char *token)
{
	size_t tl = strlen(token);
	const char *p = value;

	while (*p) {
		const char *start, *end;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		start = p;
		while (*p && *p != ',')
			p++;
		end = p;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if ((size_t)(end - start) == tl && strncasecmp(start, token, tl) == 0)
			return true;
	}
	return false;
}

/* True when some header <name> of <h> lists <token>. */
static bool
headers_list_token(struct evkeyvalq *h, const char *name, const char *token)
{
	struct evkeyval *kv;

	TAILQ_FOREACH(kv, h, next)
		if (strcasecmp(kv->key, name) == 0 && list_has_token(kv->value, token))
			return true;
	return false;
}

/* A Sec-WebSocket-Key: base64 of 16 bytes (22 characters and "=="). */
static bool
key_ok(const char *k)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

	if (k == NULL || strlen(k) != 24 || strcmp(k + 22, "==") != 0)
		return false;
	for (size_t i = 0; i < 22; i++)
		if (strchr(b64, k[i]) == NULL)
			return false;
	return true;
}

enum websocket_ask
websocket_classify(struct evkeyvalq *headers, const char *method, enum server_proto proto)
{
	const char *version;

	if (evhttp_find_header(headers, "Upgrade") == NULL)
		return WEBSOCKET_NONE;
	if (proto == SERVER_PROTO_HTTP10 || strcmp(method, "GET") != 0 ||
	    !headers_list_token(headers, "Connection", "upgrade") ||
	    !headers_list_token(headers, "Upgrade", "websocket"))
		return WEBSOCKET_OTHER;
	/* HTTP/2 cannot carry Upgrade or Connection: these are the h2 codec's
	 * rendering of an extended CONNECT (RFC 8441), which has no key and no
	 * version; the upstream gets a made-up key. */
	if (proto == SERVER_PROTO_HTTP2)
		return WEBSOCKET_ASKED;
	version = evhttp_find_header(headers, "Sec-WebSocket-Version");
	if (!key_ok(evhttp_find_header(headers, "Sec-WebSocket-Key")) || version == NULL ||
	    strcmp(version, "13") != 0)
		return WEBSOCKET_OTHER;
	return WEBSOCKET_ASKED;
}

int
websocket_upgrade_init(struct websocket_upgrade *u, struct evkeyvalq *headers)
{
	const char *key = headers ? evhttp_find_header(headers, "Sec-WebSocket-Key") : NULL;
	unsigned char raw[16];

	memset(u, 0, sizeof(*u));
	if (key_ok(key)) {
		memcpy(u->key, key, 25);
		return 0;
	}
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -1;
	EVP_EncodeBlock((unsigned char *)u->key, raw, sizeof(raw));
	u->made_up = true;
	return 0;
}

size_t
websocket_upgrade_lines(const struct websocket_upgrade *u, char *buf, size_t len)
{
	int n;

	if (u->made_up)
		n = snprintf(buf, len,
			     "Connection: Upgrade\r\nUpgrade: websocket\r\n"
			     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n",
			     u->key);
	else
		n = snprintf(buf, len, "Connection: Upgrade\r\nUpgrade: websocket\r\n");
	return n < 0 ? 0 : (size_t)n < len ? (size_t)n : len - 1;
}

void
websocket_accept_value(const char *key, char out[29])
{
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;
	char buf[64];
	int n = snprintf(buf, sizeof(buf), "%s%s", key, WEBSOCKET_GUID);

	if (n < 0 || (size_t)n >= sizeof(buf) ||
	    EVP_Digest(buf, (size_t)n, digest, &dlen, EVP_sha1(), NULL) != 1 || dlen != 20) {
		out[0] = '\0';
		return;
	}
	EVP_EncodeBlock((unsigned char *)out, digest, 20);
}

bool
websocket_upgrade_accepted(const struct websocket_upgrade *u, struct evkeyvalq *headers,
			   const char **why)
{
	const char *accept = evhttp_find_header(headers, "Sec-WebSocket-Accept");
	char want[29];

	if (!headers_list_token(headers, "Upgrade", "websocket")) {
		*why = "the 101 does not say \"Upgrade: websocket\"";
		return false;
	}
	if (!headers_list_token(headers, "Connection", "upgrade")) {
		*why = "the 101 does not say \"Connection: Upgrade\"";
		return false;
	}
	websocket_accept_value(u->key, want);
	if (accept == NULL || want[0] == '\0' || strcmp(accept, want) != 0) {
		*why = accept == NULL ? "the 101 has no Sec-WebSocket-Accept"
				      : "the 101's Sec-WebSocket-Accept does not match the key";
		return false;
	}
	return true;
}

/* ---- metrics --------------------------------------------------------------- */

enum ws_end {
	WS_END_CLOSED,
	WS_END_IDLE,
	WS_END_ERROR,
	WS_END_SESSION,
	WS_END_RELOAD,
	WS_END_DRAIN,
	WS_END_CLIENT_GONE,
	WS_END_REVOKED,
	WS_END_N,
};

static const char *const ws_end_names[WS_END_N] = {
	"closed", "idle", "error", "session_end", "reload_refused", "drain", "client_gone",
	"revoked",
};

static const char *const ws_refusal_names[WEBSOCKET_REFUSED_N] = {
	"route_off", "access", "auth", "upstream_refused", "bad_accept",
};

static struct {
	struct access_counter *open, *total, *bytes_in, *bytes_out;
	struct access_counter *ended[WS_END_N];
	struct access_counter *refused[WEBSOCKET_REFUSED_N];
} ws_metrics;
static pthread_once_t ws_metrics_once = PTHREAD_ONCE_INIT;

static void
ws_metrics_init(void)
{
	char labels[64];

	ws_metrics.open = access_counter_get("portcullis_websocket_tunnels_open", "");
	ws_metrics.total = access_counter_get("portcullis_websocket_tunnels_total", "");
	ws_metrics.bytes_in = access_counter_get("portcullis_websocket_bytes_total",
						 "direction=\"in\"");
	ws_metrics.bytes_out = access_counter_get("portcullis_websocket_bytes_total",
						  "direction=\"out\"");
	for (int i = 0; i < WS_END_N; i++) {
		snprintf(labels, sizeof(labels), "reason=\"%s\"", ws_end_names[i]);
		ws_metrics.ended[i] = access_counter_get("portcullis_websocket_tunnels_ended_total",
							 labels);
	}
	for (int i = 0; i < WEBSOCKET_REFUSED_N; i++) {
		snprintf(labels, sizeof(labels), "reason=\"%s\"", ws_refusal_names[i]);
		ws_metrics.refused[i] = access_counter_get("portcullis_websocket_refusals_total",
							   labels);
	}
}

void
websocket_refused(enum websocket_refusal why)
{
	pthread_once(&ws_metrics_once, ws_metrics_init);
	access_counter_add(ws_metrics.refused[why], 1);
}

/* ---- tunnels ---------------------------------------------------------------- */

struct websocket {
	TAILQ_ENTRY(websocket) link;
	struct websocket_set *set;
	struct txn_env *env;
	struct tunnel *tunnel;        /* once both sides are in */
	struct event *session_timer;  /* the SAML session's end, or NULL */
	int upstream_fd;              /* held until the client's side comes */
	SSL *upstream_ssl;            /* on upstream_fd for a TLS upstream, or NULL */
	struct evbuffer *upstream_early;
	void *slot;                   /* the client connection's limit slot (listenlimit.h) */
	double start;
	size_t listener;
	int64_t session_end;
	double idle_timeout;
	bool gated;                   /* it passed the SAML gate */
	char client[64];
	char request_id[129];
	char host[256];
	char *path, *route, *upstream;
	char *user;                   /* saml.revocation: the session's NameID, or NULL */
	char sid[SESSION_ID_LEN + 1];
	int64_t issued;
};

TAILQ_HEAD(websocket_list, websocket);

struct websocket_set {
	struct websocket_list all;
	size_t n;
	struct event *revoke_timer;   /* looks at the revocation list now and then */
	uint64_t revoke_seen;         /* the list generation last looked at */
};

static struct websocket_set *
set_of(struct txn_env *env)
{
	if (env->websockets == NULL) {
		env->websockets = calloc(1, sizeof(*env->websockets));
		if (env->websockets != NULL)
			TAILQ_INIT(&env->websockets->all);
	}
	return env->websockets;
}

/* Log, count, close and free (the tunnel, if any, is the caller's). */
static void
ws_end(struct websocket *w, enum ws_end why)
{
	uint64_t in = w->tunnel ? tunnel_bytes(w->tunnel, TUNNEL_A) : 0;
	uint64_t out = w->tunnel ? tunnel_bytes(w->tunnel, TUNNEL_B) : 0;

	TAILQ_REMOVE(&w->set->all, w, link);
	w->set->n--;
	access_counter_add(ws_metrics.ended[why], 1);
	if (ws_metrics.open)
		atomic_fetch_sub_explicit(&ws_metrics.open->value, 1, memory_order_relaxed);
	log_info("websocket %s: %s %s%s (route %s, upstream %s) ended (%s): %llu bytes in, "
		 "%llu bytes out, %.1f s",
		 w->request_id, w->client, w->host, w->path, w->route, w->upstream,
		 ws_end_names[why], (unsigned long long)in, (unsigned long long)out,
		 log_now() - w->start);
	if (w->session_timer)
		event_free(w->session_timer);
	if (w->upstream_ssl)
		SSL_free(w->upstream_ssl);
	if (w->upstream_fd >= 0)
		close(w->upstream_fd);
	if (w->upstream_early)
		evbuffer_free(w->upstream_early);
	listenlimit_put(w->slot);
	free(w->path);
	free(w->route);
	free(w->upstream);
	free(w->user);
	free(w);
}

/* Close now (not from the tunnel's own callback). */
static void
ws_close(struct websocket *w, enum ws_end why)
{
	struct tunnel *t = w->tunnel;

	ws_end(w, why); /* logs the byte counts first */
	tunnel_free(t);
}

static void
ws_tunnel_done(struct tunnel *t, enum tunnel_reason why, enum tunnel_side side, void *arg)
{
	struct websocket *w = arg;

	(void)t;
	(void)side;
	ws_end(w, why == TUNNEL_IDLE ? WS_END_IDLE : why == TUNNEL_ERROR ? WS_END_ERROR
									 : WS_END_CLOSED);
}

static void
ws_tunnel_bytes(enum tunnel_side from, size_t n, void *arg)
{
	(void)arg;
	access_counter_add(from == TUNNEL_A ? ws_metrics.bytes_in : ws_metrics.bytes_out, n);
}

static const struct tunnel_callbacks ws_tunnel_callbacks = {
	ws_tunnel_done,
	ws_tunnel_bytes,
};

static void
ws_session_cb(evutil_socket_t fd, short what, void *arg)
{
	struct websocket *w = arg;

	(void)fd;
	(void)what;
	ws_close(w, WS_END_SESSION);
}

/* Every quarter second: when the revocation list changed (or cannot be
 * read), close the tunnels of the sessions it refuses now. */
static void
ws_revoke_cb(evutil_socket_t fd, short what, void *arg)
{
	struct websocket_set *set = arg;
	uint64_t gen = revoke_generation();
	int64_t now = (int64_t)time(NULL);
	struct websocket *w, *next;

	(void)fd;
	(void)what;
	if (gen == set->revoke_seen && !revoke_stale_now(now))
		return; /* nothing new, and the list is readable */
	for (w = TAILQ_FIRST(&set->all); w != NULL; w = next) {
		next = TAILQ_NEXT(w, link);
		if (w->user == NULL)
			continue;
		if (revoke_check_parts(w->user, w->sid, w->issued, now) != REVOKE_PASS) {
			log_info("websocket %s: %s %s%s: session %s of %s is revoked; closing",
				 w->request_id, w->client, w->host, w->path, w->sid, w->user);
			ws_close(w, WS_END_REVOKED);
		}
	}
	set->revoke_seen = gen;
}

/* With saml.revocation, keep <w>'s session and start the set's timer. */
static int
ws_watch_session(struct websocket_set *set, struct websocket *w, const struct websocket_info *info)
{
	struct session s = { .issued = info->session_issued, .expires = info->session_expires };

	if (!revoke_enabled() || info->session_user == NULL || info->session_user[0] == '\0')
		return 0;
	if ((w->user = strdup(info->session_user)) == NULL)
		return -1;
	s.name_id = w->user;
	session_id(&s, w->sid);
	w->issued = info->session_issued;
	if (set->revoke_timer == NULL) {
		set->revoke_seen = revoke_generation();
		set->revoke_timer = event_new(w->env->base, -1, EV_PERSIST, ws_revoke_cb, set);
		if (set->revoke_timer == NULL)
			return -1;
		event_add(set->revoke_timer, &(struct timeval){0, 250000});
	}
	return 0;
}

static char *
dup_or_dash(const char *s)
{
	return strdup(s && s[0] ? s : "-");
}

struct websocket *
websocket_new(struct txn_env *env, const struct websocket_info *info, struct tunnel_end *upstream,
	      struct evbuffer *early)
{
	struct websocket_set *set = set_of(env);
	struct websocket *w = calloc(1, sizeof(*w));

	pthread_once(&ws_metrics_once, ws_metrics_init);
	if (set == NULL || w == NULL)
		goto fail;
	w->upstream_early = evbuffer_new();
	w->path = dup_or_dash(info->path);
	w->route = dup_or_dash(info->route);
	w->upstream = dup_or_dash(info->upstream);
	if (w->upstream_early == NULL || !w->path || !w->route || !w->upstream)
		goto fail;
	if (early)
		evbuffer_add_buffer(w->upstream_early, early);
	w->set = set;
	w->env = env;
	w->upstream_fd = upstream->fd;
	w->upstream_ssl = upstream->ssl; /* a TLS upstream: the tunnel speaks TLS to it */
	upstream->ssl = NULL;
	w->start = log_now();
	w->listener = info->listener;
	w->idle_timeout = info->idle_timeout;
	w->session_end = info->session_end;
	w->gated = info->session_end != 0 || info->gated;
	snprintf(w->client, sizeof(w->client), "%s", info->client ? info->client : "-");
	snprintf(w->request_id, sizeof(w->request_id), "%s", info->request_id ? info->request_id : "-");
	snprintf(w->host, sizeof(w->host), "%s", info->host ? info->host : "");
	if (ws_watch_session(set, w, info) < 0)
		goto fail;
	if (info->session_end > 0 && info->close_at_session_end) {
		int64_t left = info->session_end - (int64_t)time(NULL);
		struct timeval tv = {left > 0 ? (time_t)left : 0, 0};

		w->session_timer = evtimer_new(env->base, ws_session_cb, w);
		if (w->session_timer == NULL)
			goto fail;
		evtimer_add(w->session_timer, &tv);
	}
	TAILQ_INSERT_TAIL(&set->all, w, link);
	set->n++;
	access_counter_add(ws_metrics.total, 1);
	access_counter_add(ws_metrics.open, 1);
	return w;
fail:
	if (w) {
		if (w->upstream_early)
			evbuffer_free(w->upstream_early);
		free(w->path);
		free(w->route);
		free(w->upstream);
		free(w->user);
		free(w);
	}
	close(upstream->fd);
	SSL_free(upstream->ssl);
	upstream->ssl = NULL;
	return NULL;
}

void
websocket_take_client(struct server_tunnel_client *client, void *arg)
{
	struct websocket *w = arg;
	struct tunnel_params params = {0, w->idle_timeout};
	struct tunnel_end ends[2];
	struct evbuffer *early;

	if (client == NULL) {
		ws_close(w, WS_END_CLIENT_GONE);
		return;
	}
	w->slot = client->slot; /* counted until the tunnel ends */
	ends[TUNNEL_A] = client->end;
	early = client->early;
	ends[TUNNEL_B].fd = w->upstream_fd;
	ends[TUNNEL_B].ssl = w->upstream_ssl;
	w->upstream_fd = -1;
	w->upstream_ssl = NULL;
	w->tunnel = tunnel_new(w->env->base, ends, &params, &ws_tunnel_callbacks, w);
	if (w->tunnel == NULL) {
		evbuffer_free(early);
		ws_close(w, WS_END_ERROR);
		return;
	}
	if (evbuffer_get_length(early) > 0 &&
	    tunnel_push(w->tunnel, TUNNEL_A, evbuffer_pullup(early, -1),
			evbuffer_get_length(early)) < 0)
		goto fail;
	if (evbuffer_get_length(w->upstream_early) > 0 &&
	    tunnel_push(w->tunnel, TUNNEL_B, evbuffer_pullup(w->upstream_early, -1),
			evbuffer_get_length(w->upstream_early)) < 0)
		goto fail;
	evbuffer_free(early);
	evbuffer_free(w->upstream_early);
	w->upstream_early = NULL;
	return;
fail:
	evbuffer_free(early);
	ws_close(w, WS_END_ERROR);
}

/* Why the rules of <cfg> refuse <w> now, or NULL. */
static const char *
ws_refused_by(const struct config *cfg, const struct websocket *w)
{
	const struct config_site *site = router_find_site_on(cfg, w->listener, w->host[0] ? w->host : NULL);
	const struct config_route *r, *jump = NULL;
	struct access_outcome out;

	if (site == NULL)
		return "no site is configured for its host";
	r = router_match(site, w->path, METHOD_GET);
	if (r != NULL && r->action == ACTION_SITE) {
		char fwd[WEBSOCKET_PATH_MAX];
		const char *p = w->path;

		if (r->strip_prefix) {
			if (router_strip_prefix(w->path, r->strip_prefix, fwd, sizeof(fwd)) < 0)
				return "its path no longer routes";
			p = fwd;
		}
		jump = r;
		r = router_match(r->site, p, METHOD_GET);
	}
	if (r == NULL)
		return "no route matches its path";
	if (r->action != ACTION_PROXY || r->websocket_off)
		return "its route no longer passes WebSocket";
	if (r->auth == AUTH_SAML && !w->gated)
		return "its route now requires a SAML session";
	if (access_check_again(cfg, w->listener, jump, r, w->client, &out) != 0)
		return "the access rules refuse it";
	return NULL;
}

void
websocket_reload(struct txn_env *env)
{
	const struct config *cfg = env->gen->rt->cfg;
	struct websocket *w, *next;

	if (env->websockets == NULL)
		return;
	for (w = TAILQ_FIRST(&env->websockets->all); w != NULL; w = next) {
		const char *why;

		next = TAILQ_NEXT(w, link);
		if (w->tunnel == NULL)
			continue; /* opens in a moment, checked at the next reload */
		why = ws_refused_by(cfg, w);
		if (why != NULL) {
			log_info("websocket %s: %s %s%s: the new configuration refuses it (%s); closing",
				 w->request_id, w->client, w->host, w->path, why);
			ws_close(w, WS_END_RELOAD);
		}
	}
}

size_t
websocket_count(const struct txn_env *env)
{
	return env->websockets ? env->websockets->n : 0;
}

void
websocket_close_all(struct txn_env *env, const char *why)
{
	if (env->websockets == NULL)
		return;
	if (env->websockets->n > 0)
		log_info("closing %zu WebSocket tunnel%s: %s", env->websockets->n,
			 env->websockets->n == 1 ? "" : "s", why);
	while (!TAILQ_EMPTY(&env->websockets->all))
		ws_close(TAILQ_FIRST(&env->websockets->all), WS_END_DRAIN);
	if (env->websockets->revoke_timer)
		event_free(env->websockets->revoke_timer);
	free(env->websockets);
	env->websockets = NULL;
}
