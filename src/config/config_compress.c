/* config_compress: the "compress" key of a site or route; see config_internal.h. */
#include "config/config_internal.h"

#include <stdlib.h>
#include <string.h>

#include "http/acceptenc.h"
#include "proxy/encoder.h"

#define COMPRESS_MIN_LENGTH_DEFAULT 1024

/* Static content only: HTML is left out on purpose (BREACH, docs/config.md). */
static const char *const compress_default_types[] = {
	"text/css", "text/plain", "text/javascript", "application/javascript",
	"application/x-javascript", "application/json", "application/manifest+json",
	"application/ld+json", "application/source-map", "image/svg+xml", "application/wasm",
	"font/ttf", "font/otf", "font/collection", "application/vnd.ms-fontobject", NULL
};
static const char *const compress_keys[] = { "types", "level", "min_length", "encodings", NULL };
static const char *const compress_codings[] = { "gzip", "zstd", "br", NULL };
static const char *const compress_level_keys[] = { "gzip", "zstd", "br", NULL };

static bool
compress_set_default_types(struct config_compress *c)
{
	size_t n = 0;

	while (compress_default_types[n] != NULL)
		n++;
	c->types = calloc(n, sizeof *c->types);
	if (c->types == NULL)
		return false;
	for (c->ntypes = 0; c->ntypes < n; c->ntypes++)
		if ((c->types[c->ntypes] = strdup(compress_default_types[c->ntypes])) == NULL)
			return false;
	return true;
}

/* "types": media types "type/subtype", or "type/" and a star for all of a type; lower-cased. */
static void
compress_parse_types(struct config_loader *ld, const char *path, const json_t *v,
		     struct config_compress *c)
{
	char ip[CONFIG_JPATH_MAX];

	if (!config_string_list(ld, path, v, true,
				"an array of media types like \"application/json\" or \"text/*\"",
				&c->types, &c->ntypes))
		return;
	for (size_t i = 0; i < c->ntypes; i++) {
		char *t = c->types[i], *slash;

		if (t == NULL)
			continue;
		for (char *p = t; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p | 0x20);
		slash = strchr(t, '/');
		if (slash == NULL || slash == t || slash[1] == '\0' || strchr(slash + 1, '/') ||
		    strpbrk(t, " \t;,") != NULL || strcmp(t, "*/*") == 0 ||
		    (strchr(t, '*') != NULL && strcmp(slash, "/*") != 0))
			config_error(ld, config_jidx(ip, path, i),
				     "\"%s\" is not a media type (\"type/subtype\" or \"type/*\", "
				     "no parameters)",
				     t);
		else if (strcmp(t, "text/event-stream") == 0)
			config_error(ld, config_jidx(ip, path, i),
				     "text/event-stream is never compressed (events must reach the "
				     "client at once); remove it");
	}
}

/* "level": {"gzip": 1-9, "zstd": 1-19, "br": 0-11}. */
static void
compress_parse_level(struct config_loader *ld, const char *path, const json_t *v,
		     struct config_compress *c)
{
	static const int min[] = { ENCODER_GZIP_LEVEL_MIN, ENCODER_ZSTD_LEVEL_MIN,
				   ENCODER_BR_LEVEL_MIN };
	static const int max[] = { ENCODER_GZIP_LEVEL_MAX, ENCODER_ZSTD_LEVEL_MAX,
				   ENCODER_BR_LEVEL_MAX };
	int *slot[] = { &c->gzip_level, &c->zstd_level, &c->br_level };
	char kp[CONFIG_JPATH_MAX];

	if (json_is_integer(v)) {
		config_error(ld, path,
			     "the codings count levels differently: give one per coding, like "
			     "{\"gzip\": 6, \"zstd\": 3, \"br\": 4}");
		return;
	}
	if (config_object(ld, path, v, compress_level_keys) == NULL)
		return;
	for (size_t i = 0; compress_level_keys[i] != NULL; i++) {
		const json_t *f = json_object_get(v, compress_level_keys[i]);
		uint64_t n;

		if (f != NULL && config_uint(ld, config_jkey(kp, path, compress_level_keys[i]), f,
					     UNIT_COUNT, (uint64_t)min[i], (uint64_t)max[i], &n))
			*slot[i] = (int)n;
	}
}

/* "encodings": which of gzip, zstd, br to offer (default all three). */
static void
compress_parse_codings(struct config_loader *ld, const char *path, const json_t *v,
		       struct config_compress *c)
{
	static const unsigned bits[] = { ACCEPTENC_GZIP, ACCEPTENC_ZSTD, ACCEPTENC_BR };
	char ip[CONFIG_JPATH_MAX];

	if (!json_is_array(v) || json_array_size(v) == 0) {
		config_type_error(ld, path, "a non-empty array of \"gzip\", \"zstd\", \"br\"", v);
		return;
	}
	c->codings = 0;
	for (size_t i = 0; i < json_array_size(v); i++) {
		int k;

		if (config_enum(ld, config_jidx(ip, path, i), json_array_get(v, i),
				compress_codings, &k))
			c->codings |= bits[k];
	}
}

void
config_parse_compress(struct config_loader *ld, const char *path, const json_t *v,
		      struct config_compress **out)
{
	struct config_compress *c;
	char kp[CONFIG_JPATH_MAX];
	const json_t *f;
	uint64_t n;

	if (!json_is_boolean(v) && !json_is_object(v)) {
		config_type_error(ld, path,
				  "true, false or an object {\"types\", \"level\", \"min_length\", "
				  "\"encodings\"}",
				  v);
		return;
	}
	if ((c = calloc(1, sizeof *c)) == NULL) {
		ld->oom = true;
		return;
	}
	*out = c;
	c->enabled = !json_is_false(v);
	c->codings = ACCEPTENC_ALL;
	c->gzip_level = 6;
	c->zstd_level = 3;
	c->br_level = 4;
	c->min_length = COMPRESS_MIN_LENGTH_DEFAULT;
	if (json_is_object(v)) {
		config_check_keys(ld, path, v, compress_keys);
		if ((f = json_object_get(v, "types")) != NULL)
			compress_parse_types(ld, config_jkey(kp, path, "types"), f, c);
		if ((f = json_object_get(v, "level")) != NULL)
			compress_parse_level(ld, config_jkey(kp, path, "level"), f, c);
		if ((f = json_object_get(v, "encodings")) != NULL)
			compress_parse_codings(ld, config_jkey(kp, path, "encodings"), f, c);
		if ((f = json_object_get(v, "min_length")) != NULL &&
		    config_uint(ld, config_jkey(kp, path, "min_length"), f, UNIT_BYTES, 0,
				CONFIG_MAX_BYTES, &n))
			c->min_length = n;
	}
	if (c->types == NULL && !compress_set_default_types(c))
		ld->oom = true;
}
