/*
 * config_upstream_tls: "upstreams.<name>.tls", HTTPS to an upstream's
 * servers: true, or an object with "server_name", "ca_bundle",
 * "client_cert", "client_key" and "insecure_skip_verify".  The client
 * SSL_CTX is built here, so -t finds unreadable bundles and keys.
 */
#include "config/config_internal.h"

#include <stdlib.h>
#include <string.h>

#include "tls/tls_client.h"

static const char *const config_upstream_tls_keys[] = {
	"server_name", "ca_bundle", "client_cert", "client_key", "insecure_skip_verify", NULL
};

/* An optional string key of <v> at <path>.<key>; NULL when absent. */
static char *
config_tls_string(struct config_loader *ld, const char *path, const json_t *v, const char *key)
{
	char kp[CONFIG_JPATH_MAX];
	const json_t *f = json_object_get(v, key);
	char *s;

	if (f == NULL)
		return NULL;
	s = config_string(ld, config_jkey(kp, path, key), f);
	if (s != NULL && s[0] == '\0') {
		free(s);
		return NULL; /* "${VAR:-}": not set */
	}
	return s;
}

/*
 * Parse "tls" (<v>, at <path>) of upstream <u> and build its client
 * SSL_CTX.  true / false / an object; an object means TLS on.
 */
void
config_parse_upstream_tls(struct config_loader *ld, const char *path, const json_t *v,
			  struct config_upstream *u)
{
	char kp[CONFIG_JPATH_MAX];
	char err[512];
	struct tls_client_opts opts = { 0 };
	bool on = true;
	const char *why = NULL;
	size_t errors = ld->nerrors;

	if (!json_is_object(v)) {
		if (!config_bool(ld, path, v, &on))
			return;
		if (!on)
			return;
	} else {
		config_check_keys(ld, path, v, config_upstream_tls_keys);
		u->tls_server_name = config_tls_string(ld, path, v, "server_name");
		u->tls_ca_bundle = config_tls_string(ld, path, v, "ca_bundle");
		u->tls_client_cert = config_tls_string(ld, path, v, "client_cert");
		u->tls_client_key = config_tls_string(ld, path, v, "client_key");
		config_bool(ld, config_jkey(kp, path, "insecure_skip_verify"),
			    json_object_get(v, "insecure_skip_verify"), &u->tls_skip_verify);
	}
	if (u->tls_server_name != NULL && !config_host_name_ok(u->tls_server_name, false, &why))
		config_error(ld, config_jkey(kp, path, "server_name"),
			     "\"%s\" is not a host name: %s", u->tls_server_name, why);
	if (u->tls_client_key != NULL && u->tls_client_cert == NULL)
		config_error(ld, config_jkey(kp, path, "client_key"),
			     "needs \"client_cert\" (the certificate this key belongs to)");
	if (u->tls_skip_verify && u->tls_ca_bundle != NULL)
		config_error(ld, config_jkey(kp, path, "insecure_skip_verify"),
			     "and \"ca_bundle\" contradict each other; keep one");
	if (ld->nerrors > errors || ld->oom)
		return;
	opts.ca_bundle = u->tls_ca_bundle;
	opts.client_cert = u->tls_client_cert;
	opts.client_key = u->tls_client_key;
	opts.verify = !u->tls_skip_verify;
	u->tls_ctx = tls_client_ctx_new(&opts, err, sizeof err);
	if (u->tls_ctx == NULL) {
		config_error(ld, path, "%s", err);
		return;
	}
	if (u->tls_skip_verify)
		log_warn("%s.insecure_skip_verify: the certificates of upstream %s are NOT "
			 "verified; anyone on the path can read and change its traffic",
			 path, u->name ? u->name : "");
}
