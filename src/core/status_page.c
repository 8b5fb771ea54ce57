/* status_page: the admin listener's HTML status page; see status_page.h. */
#include "core/status_page.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "acme/acme.h"
#include "auth/saml.h"
#include "base/refusals.h"
#include "config/config_model.h"
#include "core/runtime.h"
#include "http/htmlesc.h"
#include "proxy/upstream.h"
#include "tls/tls.h"

static const char style[] =
	"body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1d2327;background:#fff}"
	"h1{font-size:1.5em;margin:0 0 .2em}h2{font-size:1.15em;margin:1.6em 0 .4em;"
	"border-bottom:1px solid #ccd0d4}h3{font-size:1em;margin:1em 0 .3em}"
	"table{border-collapse:collapse;margin:.3em 0}th,td{text-align:left;padding:.25em .7em;"
	"border-bottom:1px solid #e5e7e9;vertical-align:top}th{background:#f3f4f5}"
	"code{font:12px ui-monospace,monospace}.meta{color:#555}"
	".up,.ok{color:#11733b;font-weight:600}.down,.bad{color:#b32d2e;font-weight:600}"
	".warn{color:#9a6700;font-weight:600}.none{color:#777}";


/* "<td>s</td>", escaped. */
static void
cell(struct evbuffer *b, const char *s)
{
	evbuffer_add(b, "<td>", 4);
	htmlesc_append(b, s);
	evbuffer_add(b, "</td>", 5);
}

/* A Unix time as "2026-12-07 05:20:00Z"; "—" for 0. */
static void
put_time(struct evbuffer *b, double t)
{
	time_t tt = (time_t)t;
	struct tm tm;
	char s[32];

	if (t <= 0 || gmtime_r(&tt, &tm) == NULL ||
	    strftime(s, sizeof(s), "%Y-%m-%d %H:%M:%SZ", &tm) == 0) {
		evbuffer_add(b, "—", strlen("—"));
		return;
	}
	evbuffer_add(b, s, strlen(s));
}

/* A duration in its largest units: "3 d 4 h", "2 h 5 min", "40 s". */
static void
put_span(struct evbuffer *b, double seconds)
{
	long long s = (long long)(seconds < 0 ? -seconds : seconds);

	if (s >= 86400)
		evbuffer_add_printf(b, "%lld d %lld h", s / 86400, s % 86400 / 3600);
	else if (s >= 3600)
		evbuffer_add_printf(b, "%lld h %lld min", s / 3600, s % 3600 / 60);
	else if (s >= 60)
		evbuffer_add_printf(b, "%lld min %lld s", s / 60, s % 60);
	else
		evbuffer_add_printf(b, "%lld s", s);
}

/* "<time> (in 3 d 4 h)" or "(5 min ago)". */
static void
put_when(struct evbuffer *b, double t, double now)
{
	put_time(b, t);
	if (t <= 0)
		return;
	evbuffer_add_printf(b, " <span class=\"meta\">(%s", t >= now ? "in " : "");
	put_span(b, t - now);
	evbuffer_add_printf(b, "%s)</span>", t >= now ? "" : " ago");
}

/* Strings joined by ", ", escaped. */
static void
put_list(struct evbuffer *b, const char *const *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (i)
			evbuffer_add(b, ", ", 2);
		htmlesc_append(b, v[i]);
	}
}

static bool
host_is_loopback(const char *host)
{
	unsigned char a[16];

	if (host == NULL || host[0] == '\0')
		return false; /* every address */
	if (strcasecmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, a) == 1)
		return a[0] == 127;
	if (inet_pton(AF_INET6, host, a) == 1)
		return memcmp(a, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1", 16) == 0;
	return false;
}

bool
status_page_served(const struct config *cfg, char *why, size_t len)
{
	if (cfg->admin == NULL) {
		snprintf(why, len, "status page: not served (no admin listener)");
		return false;
	}
	if (cfg->admin_status_page > 0) {
		snprintf(why, len, "status page: served at http://%s/ (admin.status_page is true)",
			 cfg->admin->address);
		return true;
	}
	if (cfg->admin_status_page < 0) {
		snprintf(why, len, "status page: not served (admin.status_page is false)");
		return false;
	}
	if (host_is_loopback(cfg->admin->host)) {
		snprintf(why, len, "status page: served at http://%s/ (a loopback address)",
			 cfg->admin->address);
		return true;
	}
	snprintf(why, len,
		 "status page: not served: admin.address \"%s\" is not a loopback address; "
		 "set admin.status_page to true to serve it there",
		 cfg->admin->address);
	return false;
}

static void
section_generation(struct evbuffer *b, const struct runtime *rt, bool draining, double now)
{
	evbuffer_add_printf(b, "<section id=\"generation\"><h2>Configuration</h2><table>");
	if (rt == NULL) {
		evbuffer_add_printf(b, "<tr><td class=\"none\">no configuration yet</td></tr>");
	} else {
		evbuffer_add_printf(b, "<tr><th>generation</th><td>%u</td></tr><tr><th>loaded</th><td>",
				    rt->generation);
		put_when(b, (double)rt->loaded_at, now);
		evbuffer_add_printf(b, "</td></tr><tr><th>file</th>");
		cell(b, rt->cfg->source);
		evbuffer_add_printf(b, "</tr><tr><th>workers</th><td>%u</td></tr>", rt->cfg->workers);
	}
	evbuffer_add_printf(b, "<tr><th>state</th><td class=\"%s\">%s</td></tr></table></section>",
			    draining ? "warn" : "ok", draining ? "draining" : "serving");
}

/* "<td>address</td>", with the bound port when the address asked for port 0. */
static void
address_cell(struct evbuffer *b, const struct config_listener *l, int port)
{
	evbuffer_add(b, "<td>", 4);
	htmlesc_append(b, l->address);
	if (port > 0 && l->port && strcmp(l->port, "0") == 0)
		evbuffer_add_printf(b, " <span class=\"meta\">(bound to port %d)</span>", port);
	evbuffer_add(b, "</td>", 5);
}

static void
section_listeners(struct evbuffer *b, const struct config *cfg, const int *ports, int admin_port)
{
	evbuffer_add_printf(b, "<section id=\"listeners\"><h2>Listeners</h2><table><tr><th>name</th>"
			       "<th>address</th><th>type</th><th>protocols</th></tr>");
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const struct config_listener *l = &cfg->listeners[i];

		evbuffer_add(b, "<tr>", 4);
		cell(b, l->name);
		address_cell(b, l, ports ? ports[i] : 0);
		cell(b, l->type == LISTENER_TCP ? "tcp relay" : "http");
		evbuffer_add_printf(b, "<td>%s%s%s%s</td></tr>",
				    l->tls ? "TLS" : "plain",
				    l->type == LISTENER_HTTP && l->tls && l->http2 ? ", h2" : "",
				    l->type == LISTENER_HTTP && !l->tls && l->h2c ? ", h2c" : "",
				    l->proxy_protocol ? ", PROXY protocol" : "");
	}
	if (cfg->admin) {
		evbuffer_add(b, "<tr>", 4);
		cell(b, cfg->admin->name);
		address_cell(b, cfg->admin, admin_port);
		evbuffer_add_printf(b, "<td>admin</td><td>plain</td></tr>");
	}
	evbuffer_add_printf(b, "</table></section>");
}

static void
route_match(struct evbuffer *b, const struct config_route *r)
{
	bool any = false;

	evbuffer_add(b, "<td><code>", 10);
	if (r->npaths) {
		put_list(b, (const char *const *)r->paths, r->npaths);
		any = true;
	}
	if (r->nexact) {
		evbuffer_add_printf(b, "%s= ", any ? "; " : "");
		put_list(b, (const char *const *)r->exact, r->nexact);
		any = true;
	}
	if (r->nprefixes) {
		evbuffer_add_printf(b, "%s", any ? "; " : "");
		put_list(b, (const char *const *)r->prefixes, r->nprefixes);
		evbuffer_add(b, "*", 1);
		any = true;
	}
	if (!any)
		evbuffer_add(b, "every path", 10);
	evbuffer_add(b, "</code></td>", 12);
}

static void
section_sites(struct evbuffer *b, const struct config *cfg)
{
	evbuffer_add_printf(b, "<section id=\"sites\"><h2>Sites and routes</h2>");
	for (size_t i = 0; i < cfg->nsites; i++) {
		const struct config_site *s = &cfg->sites[i];

		evbuffer_add_printf(b, "<h3>");
		htmlesc_append(b, s->name);
		evbuffer_add_printf(b, " <span class=\"meta\">");
		if (s->nhosts)
			put_list(b, (const char *const *)s->hosts, s->nhosts);
		evbuffer_add_printf(b, "%s%s", s->is_default ? (s->nhosts ? " · " : "") : "",
				    s->is_default ? "default site" : "");
		if (s->nlisteners) {
			evbuffer_add_printf(b, " · on ");
			put_list(b, (const char *const *)s->listeners, s->nlisteners);
		}
		evbuffer_add_printf(b, "</span></h3><table><tr><th>route</th><th>path</th>"
				       "<th>action</th><th>auth</th></tr>");
		for (size_t j = 0; j < s->nroutes; j++) {
			const struct config_route *r = &s->routes[j];

			evbuffer_add(b, "<tr>", 4);
			cell(b, r->name);
			route_match(b, r);
			evbuffer_add(b, "<td>", 4);
			switch (r->action) {
			case ACTION_PROXY:
				evbuffer_add_printf(b, "upstream ");
				htmlesc_append(b, r->upstream ? r->upstream->name : "");
				break;
			case ACTION_RESPOND:
				evbuffer_add_printf(b, "respond %d", r->status);
				break;
			case ACTION_REDIRECT:
				evbuffer_add_printf(b, "redirect %d to ", r->status);
				htmlesc_append(b, r->redirect_to);
				break;
			case ACTION_SITE:
				evbuffer_add_printf(b, "site ");
				htmlesc_append(b, r->site ? r->site->name : "");
				break;
			}
			evbuffer_add_printf(b, "</td><td>%s</td></tr>",
					    r->auth == AUTH_SAML ? "SAML" : "open");
		}
		evbuffer_add_printf(b, "</table>");
	}
	evbuffer_add_printf(b, "</section>");
}

static void
section_upstreams(struct evbuffer *b, const struct runtime *rt)
{
	const struct config *cfg = rt->cfg;

	evbuffer_add_printf(b, "<section id=\"upstreams\"><h2>Upstreams</h2><table><tr>"
			       "<th>upstream</th><th>server</th><th>health</th><th>failures</th>"
			       "<th>in flight</th><th>connections</th></tr>");
	for (size_t i = 0; i < cfg->nupstreams; i++) {
		const struct config_upstream *up = &cfg->upstreams[i];

		for (size_t s = 0; s < up->nservers; s++) {
			struct upstream_server_state st;

			if (upstream_health_server_state(rt->health, i, s, &st) < 0)
				continue;
			evbuffer_add(b, "<tr>", 4);
			cell(b, up->name);
			cell(b, up->servers[s].address);
			if (st.down) {
				evbuffer_add_printf(b, "<td class=\"down\">down <span class=\"meta\">"
						       "(skipped for ");
				put_span(b, st.down_seconds);
				evbuffer_add_printf(b, ")</span></td>");
			} else {
				evbuffer_add_printf(b, "<td class=\"up\">up</td>");
			}
			evbuffer_add_printf(b, "<td>%u</td><td>%d</td><td>%d</td></tr>", st.fails,
					    st.in_flight, st.open);
		}
	}
	evbuffer_add_printf(b, "</table><p class=\"meta\">Health is passive: a server is skipped "
			       "after max_fails consecutive failures, for fail_timeout.</p></section>");
}

struct cert_rows {
	struct evbuffer *b;
	double now;
	size_t n;
};

/* Expiry with a class by how near it is: past, under 14 days, later. */
static void
expiry_cell(struct evbuffer *b, double not_after, double now)
{
	const char *cls = not_after <= 0 ? "none"
			  : not_after <= now ? "bad"
			  : not_after - now < 14 * 86400.0 ? "warn" : "ok";

	evbuffer_add_printf(b, "<td class=\"%s\">", cls);
	put_when(b, not_after, now);
	evbuffer_add(b, "</td>", 5);
}

static void
tls_row(const struct tls_cert_info *c, void *arg)
{
	struct cert_rows *rows = arg;
	struct evbuffer *b = rows->b;

	evbuffer_add(b, "<tr><td>", 8);
	put_list(b, c->names, c->nnames);
	evbuffer_add(b, "</td>", 5);
	cell(b, c->source);
	cell(b, c->key);
	expiry_cell(b, (double)c->not_after, rows->now);
	evbuffer_add(b, "</tr>", 5);
	rows->n++;
}

static void
acme_row(const struct acme_cert_status *c, void *arg)
{
	struct cert_rows *rows = arg;
	struct evbuffer *b = rows->b;

	evbuffer_add(b, "<tr><td>", 8);
	put_list(b, c->names, c->n_names);
	evbuffer_add(b, "</td>", 5);
	expiry_cell(b, (double)c->not_after, rows->now);
	evbuffer_add(b, "<td>", 4);
	put_when(b, (double)c->renew_at, rows->now);
	evbuffer_add(b, "</td><td>", 9);
	if (c->ordering)
		evbuffer_add_printf(b, "<span class=\"warn\">ordering now</span>");
	else
		put_when(b, (double)c->next_attempt, rows->now);
	evbuffer_add_printf(b, "</td><td class=\"%s\">%u", c->failures ? "bad" : "ok", c->failures);
	if (c->last_error && c->last_error[0]) {
		evbuffer_add(b, ": ", 2);
		htmlesc_append(b, c->last_error);
	}
	evbuffer_add(b, "</td></tr>", 10);
	rows->n++;
}

static void
section_certificates(struct evbuffer *b, struct tls_store *tls, struct acme_manager *acme,
		     double now)
{
	struct cert_rows rows = {b, now, 0};

	evbuffer_add_printf(b, "<section id=\"certificates\"><h2>Certificates</h2>");
	if (tls == NULL) {
		evbuffer_add_printf(b, "<p class=\"none\">no TLS listener</p></section>");
		return;
	}
	evbuffer_add_printf(b, "<table><tr><th>names</th><th>source</th><th>key</th>"
			       "<th>expires</th></tr>");
	tls_store_each_cert(tls, tls_row, &rows);
	if (rows.n == 0)
		evbuffer_add_printf(b, "<tr><td class=\"none\" colspan=\"4\">none served yet</td></tr>");
	evbuffer_add_printf(b, "</table>");
	if (acme != NULL) {
		rows.n = 0;
		evbuffer_add_printf(b, "<h3>ACME renewals</h3><table><tr><th>names</th>"
				       "<th>expires</th><th>renewal from</th><th>next attempt</th>"
				       "<th>failures</th></tr>");
		acme_manager_each_cert(acme, acme_row, &rows);
		evbuffer_add_printf(b, "</table>");
	}
	evbuffer_add_printf(b, "</section>");
}

static void
section_saml(struct evbuffer *b, const struct config *cfg, double now)
{
	int64_t loaded, next;

	if (cfg->saml == NULL || cfg->saml->sp == NULL)
		return;
	saml_metadata_times(cfg->saml->sp, &loaded, &next);
	evbuffer_add_printf(b, "<section id=\"saml\"><h2>SAML</h2><table><tr><th>IdP metadata</th>");
	cell(b, cfg->saml->idp_metadata);
	evbuffer_add_printf(b, "</tr><tr><th>loaded</th><td>");
	put_when(b, (double)loaded, now);
	evbuffer_add_printf(b, "</td></tr><tr><th>next fetch</th><td>");
	if (next > 0)
		put_when(b, (double)next, now);
	else
		evbuffer_add_printf(b, "<span class=\"none\">never (a file)</span>");
	evbuffer_add_printf(b, "</td></tr></table></section>");
}

static void
section_refusals(struct evbuffer *b, double now)
{
	struct refusal *r = calloc(REFUSALS_KEPT, sizeof(*r));
	size_t n = r ? refusals_snapshot(r, REFUSALS_KEPT) : 0;

	evbuffer_add_printf(b, "<section id=\"refusals\"><h2>Recent refusals</h2>"
			       "<p class=\"meta\">The last %d requests refused by an access rule, "
			       "a rate limit, a missing session or a policy (newest first).</p>"
			       "<table><tr><th>time</th><th>status</th><th>client</th><th>rule</th>"
			       "<th>path</th></tr>",
			    REFUSALS_KEPT);
	for (size_t i = 0; i < n; i++) {
		evbuffer_add(b, "<tr><td>", 8);
		put_when(b, r[i].when, now);
		evbuffer_add_printf(b, "</td><td>%d</td>", r[i].status);
		cell(b, r[i].client);
		evbuffer_add(b, "<td><code>", 10);
		htmlesc_append(b, r[i].rule);
		evbuffer_add(b, "</code></td>", 12);
		cell(b, r[i].path);
		evbuffer_add(b, "</tr>", 5);
	}
	if (n == 0)
		evbuffer_add_printf(b, "<tr><td class=\"none\" colspan=\"5\">none</td></tr>");
	evbuffer_add_printf(b, "</table></section>");
	free(r);
}

char *
status_page_render(const struct status_page_input *in)
{
	const struct runtime *rt = in->rt;
	double now = in->now;
	struct evbuffer *b = evbuffer_new();
	char *out = NULL;
	size_t len;

	if (b == NULL)
		return NULL;
	evbuffer_add_printf(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
			       "<meta name=\"viewport\" content=\"width=device-width\">"
			       "<meta name=\"referrer\" content=\"no-referrer\">"
			       "<title>Portcullis status</title><style>%s</style></head><body>"
			       "<h1>Portcullis status</h1><p class=\"meta\">version %s · page made ",
			    style, PORTCULLIS_VERSION);
	put_time(b, now);
	evbuffer_add_printf(b, " · read-only; reload the page to refresh</p>\n");
	section_generation(b, rt, in->draining, now);
	if (rt != NULL) {
		section_listeners(b, rt->cfg, in->ports, in->admin_port);
		section_sites(b, rt->cfg);
		section_upstreams(b, rt);
	}
	section_certificates(b, in->tls, in->acme, now);
	if (rt != NULL)
		section_saml(b, rt->cfg, now);
	section_refusals(b, now);
	evbuffer_add_printf(b, "</body></html>\n");
	len = evbuffer_get_length(b);
	out = malloc(len + 1);
	if (out != NULL) {
		evbuffer_remove(b, out, len);
		out[len] = '\0';
	}
	evbuffer_free(b);
	return out;
}
