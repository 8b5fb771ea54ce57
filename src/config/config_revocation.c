/*
 * config_revocation: "saml.revocation" (docs/saml.md#revocation): how often
 * each process reads the revocation list from Redis, and what a SAML
 * session gets when Redis cannot be read.
 */
#include "config/config_internal.h"

#include <jansson.h>

static const char *const config_revocation_keys[] = { "poll_interval", "max_staleness",
						      "on_redis_down", NULL };
static const char *const config_revocation_modes[] = { "open", "closed", NULL };

void
config_parse_saml_revocation(struct config_loader *ld, struct config_saml *sc, const json_t *v)
{
	struct config_revocation *r = &sc->revocation;
	int mode = 0;

	r->poll_interval = 1;
	r->max_staleness = 10;
	if (v == NULL || json_is_null(v) ||
	    config_object(ld, "saml.revocation", v, config_revocation_keys) == NULL)
		return;
	r->enabled = true;
	config_seconds(ld, "saml.revocation.poll_interval", json_object_get(v, "poll_interval"),
		       &r->poll_interval);
	config_seconds(ld, "saml.revocation.max_staleness", json_object_get(v, "max_staleness"),
		       &r->max_staleness);
	if (config_enum(ld, "saml.revocation.on_redis_down", json_object_get(v, "on_redis_down"),
			config_revocation_modes, &mode))
		r->fail_closed = mode == 1;
	if (r->poll_interval < 0.05 || r->poll_interval > 60)
		config_error(ld, "saml.revocation.poll_interval",
			     "%g s: give 0.05 to 60 s (a revocation takes effect within it)",
			     r->poll_interval);
	if (r->max_staleness < 2 * r->poll_interval)
		config_error(ld, "saml.revocation.max_staleness",
			     "%g s is less than two poll intervals (%g s); one slow poll would "
			     "refuse every session",
			     r->max_staleness, 2 * r->poll_interval);
}
