/*
 * config_redis: the "redis" section (docs/config.md#redis), the server that
 * replicas share single-use SAML IDs through when saml.replay_store is
 * "redis".
 */
#include "config/config_internal.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

static const char *const config_redis_keys[] = { "address", "username", "password",
						 "password_file", "db", "key_prefix",
						 "connect_timeout", "command_timeout", NULL };

/* Largest password file read (Redis passwords are short). */
#define CONFIG_REDIS_MAX_PASSWORD 4096

/* "address": a unix socket path, or host:port. */
static void
config_redis_address(struct config_loader *ld, struct config_redis *r)
{
	char why[256];
	char *host = NULL, *port = NULL;

	if (r->address[0] == '/') {
		if ((r->unix_path = strdup(r->address)) == NULL)
			ld->oom = true;
		return;
	}
	if (config_split_hostport(r->address, &host, &port, why, sizeof why) < 0) {
		config_error(ld, "redis.address", "%s, or a unix socket path (\"/run/redis/redis.sock\")",
			     why);
		goto out;
	}
	if (host == NULL || host[0] == '\0') {
		config_error(ld, "redis.address", "\"%s\" names no host; write \"redis:6379\" or "
						  "\"127.0.0.1:6379\"",
			     r->address);
		goto out;
	}
	if (strcmp(port, "0") == 0) {
		config_error(ld, "redis.address", "\"%s\": port 0 cannot be connected to; Redis "
						  "listens on 6379 by default",
			     r->address);
		goto out;
	}
	r->port = (uint16_t)strtoul(port, NULL, 10);
	r->host = host;
	host = NULL;
out:
	free(host);
	free(port);
}

/* The first line of "password_file". */
static void
config_redis_password_file(struct config_loader *ld, struct config_redis *r)
{
	char *buf = calloc(1, CONFIG_REDIS_MAX_PASSWORD + 2);
	FILE *f = NULL;
	size_t n;

	if (buf == NULL) {
		ld->oom = true;
		return;
	}
	f = fopen(r->password_file, "r");
	if (f == NULL) {
		config_error(ld, "redis.password_file", "cannot read %s: %s", r->password_file,
			     strerror(errno));
		goto out;
	}
	n = fread(buf, 1, CONFIG_REDIS_MAX_PASSWORD + 1, f);
	if (ferror(f)) {
		config_error(ld, "redis.password_file", "cannot read %s: %s", r->password_file,
			     strerror(errno));
		goto out;
	}
	if (n > CONFIG_REDIS_MAX_PASSWORD) {
		config_error(ld, "redis.password_file", "%s is larger than %d bytes; it must hold the "
							"password on its first line",
			     r->password_file, CONFIG_REDIS_MAX_PASSWORD);
		goto out;
	}
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	if (buf[0] == '\0') {
		config_error(ld, "redis.password_file", "%s: the first line is empty; it must hold "
							"the password",
			     r->password_file);
		goto out;
	}
	if ((r->password = strdup(buf)) == NULL)
		ld->oom = true;
out:
	if (f != NULL)
		fclose(f);
	OPENSSL_cleanse(buf, CONFIG_REDIS_MAX_PASSWORD + 2);
	free(buf);
}

/*
 * Parse the top-level "redis" section into cfg->redis, and check that it and
 * saml.replay_store agree: "redis" as the replay store needs this section,
 * and this section is only accepted when something uses it.  Called after
 * config_parse_saml.
 */
void
config_parse_redis(struct config_loader *ld, const json_t *root)
{
	const json_t *v = json_object_get(root, "redis");
	const json_t *f;
	struct config_redis *r;
	uint64_t db = 0;
	bool wanted = ld->cfg->saml != NULL && (ld->cfg->saml->replay_store == REPLAY_STORE_REDIS ||
						ld->cfg->saml->revocation.enabled);

	if (v == NULL || json_is_null(v)) {
		if (wanted)
			config_error(ld, ld->cfg->saml->revocation.enabled ? "saml.revocation"
									   : "saml.replay_store",
				     "%sneeds a top-level \"redis\" section with the server's "
				     "address (docs/config.md#redis)",
				     ld->cfg->saml->revocation.enabled ? "" : "\"redis\" ");
		return;
	}
	if (config_object(ld, "redis", v, config_redis_keys) == NULL)
		return;
	if (!wanted)
		config_error(ld, "redis", "nothing uses this section; set saml.replay_store to "
					  "\"redis\" or saml.revocation (or remove it)");
	r = calloc(1, sizeof *r);
	if (r == NULL) {
		ld->oom = true;
		return;
	}
	ld->cfg->redis = r;
	r->connect_timeout = 2;
	r->command_timeout = 1;

	if ((f = json_object_get(v, "address")) == NULL)
		config_missing(ld, "redis", "address",
			       "the server: \"host:port\" (\"redis:6379\") or a unix socket path");
	else if ((r->address = config_string(ld, "redis.address", f)) != NULL)
		config_redis_address(ld, r);
	if ((f = json_object_get(v, "username")) != NULL) {
		r->username = config_string(ld, "redis.username", f);
		if (r->username != NULL && r->username[0] == '\0') {
			free(r->username);
			r->username = NULL; /* "${REDIS_USER:-}": no ACL user */
		}
	}
	if ((f = json_object_get(v, "password")) != NULL) {
		r->password = config_string(ld, "redis.password", f);
		if (r->password != NULL && r->password[0] == '\0') {
			free(r->password);
			r->password = NULL; /* "${REDIS_PASSWORD:-}": no AUTH */
		}
	}
	if ((f = json_object_get(v, "password_file")) != NULL) {
		if (json_object_get(v, "password") != NULL)
			config_error(ld, "redis.password_file",
				     "give the password either here or in \"password\", not both");
		else if ((r->password_file = config_string(ld, "redis.password_file", f)) != NULL)
			config_redis_password_file(ld, r);
	}
	if (r->username != NULL && r->password == NULL)
		config_error(ld, "redis.username", "a user needs a \"password\" or \"password_file\"");
	if ((f = json_object_get(v, "db")) != NULL && config_uint(ld, "redis.db", f, UNIT_COUNT, 0,
								   65535, &db))
		r->db = (unsigned)db;
	r->key_prefix = config_string_or(ld, "redis.key_prefix", json_object_get(v, "key_prefix"),
					 "portcullis:");
	if (r->key_prefix != NULL && strpbrk(r->key_prefix, " \t\r\n") != NULL)
		config_error(ld, "redis.key_prefix", "\"%s\" contains white space", r->key_prefix);
	config_seconds(ld, "redis.connect_timeout", json_object_get(v, "connect_timeout"),
		       &r->connect_timeout);
	config_seconds(ld, "redis.command_timeout", json_object_get(v, "command_timeout"),
		       &r->command_timeout);
	if (r->connect_timeout > 60)
		config_error(ld, "redis.connect_timeout",
			     "%g s is more than 60 s; logins wait for it", r->connect_timeout);
	if (r->command_timeout > 30)
		config_error(ld, "redis.command_timeout",
			     "%g s is more than 30 s; every login waits for it", r->command_timeout);
}
