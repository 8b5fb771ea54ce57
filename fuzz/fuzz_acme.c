/*
 * fuzz_acme: feeds arbitrary bytes as the body of a CA's answer to the
 * readers of ACME JSON documents (src/acme/): the body parser
 * (acme_body_object), the problem document (acme_problem_text), the
 * directory (acme_directory_read), an order (acme_order_read), an
 * authorization (acme_authz_choose for each set of enabled challenge
 * types, acme_authz_error), renewal information (acme_ari_window), and the
 * Retry-After value (the body's first line as the header).  The first byte
 * picks the HTTP status the answer came with.
 *
 * Contract checked (aborts when broken; ASan/LSan: no overflow, no leak):
 *   - a directory that reads has https newNonce, newAccount and newOrder
 *     URLs, and a renewalInfo URL that is https or none;
 *   - an order that reads has a status and no more authorizations than its
 *     array;
 *   - a chosen challenge is of an enabled type, with a URL and a token of at
 *     most 200 bytes without "/" (the token becomes a file and URL name);
 *   - a renewal window that reads has start < end;
 *   - the problem text is one line starting with "HTTP " (or the transport
 *     error for status 0).
 */
#include <string.h>

#include "acme/acme.h"
#include "acme/acme_internal.h"
#include "acme/acme_order.h"
#include "fuzz.h"

static const int statuses[] = {0, 200, 201, 204, 400, 403, 404, 409, 429, 500, 503};

static void
check_directory(json_t *root)
{
	struct acme_manager m;
	bool eab;

	memset(&m, 0, sizeof(m));
	if (acme_directory_read(&m, root, &eab) == 0) {
		FUZZ_CHECK(strncmp(m.url_new_nonce, "https://", 8) == 0);
		FUZZ_CHECK(strncmp(m.url_new_account, "https://", 8) == 0);
		FUZZ_CHECK(strncmp(m.url_new_order, "https://", 8) == 0);
		FUZZ_CHECK(m.url_renewal_info == NULL ||
			   strncmp(m.url_renewal_info, "https://", 8) == 0);
	}
	free(m.url_new_nonce);
	free(m.url_new_account);
	free(m.url_new_order);
	free(m.url_renewal_info);
}

static void
check_order(json_t *root)
{
	struct acme_job job;
	const char *status = NULL;

	memset(&job, 0, sizeof(job));
	if (acme_order_read(&job, root, &status) == 0) {
		FUZZ_CHECK(status != NULL);
		FUZZ_CHECK(job.n_authz <= json_array_size(json_object_get(root, "authorizations")));
	}
	/* a second read keeps the authorizations of the first */
	(void)acme_order_read(&job, root, &status);
	free(job.finalize_url);
	free(job.cert_url);
	acme_free_strv(job.authz, job.n_authz);
}

static void
check_authz(json_t *root)
{
	static const unsigned sets[] = {ACME_CHALLENGE_HTTP01, ACME_CHALLENGE_TLSALPN01,
					ACME_CHALLENGE_HTTP01 | ACME_CHALLENGE_TLSALPN01};
	char detail[512];

	for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
		struct acme_authz_choice c;

		if (acme_authz_choose(root, sets[i], &c) != ACME_AUTHZ_OK)
			continue;
		FUZZ_CHECK(c.name != NULL && c.type != NULL && c.token != NULL && c.url != NULL);
		FUZZ_CHECK(((sets[i] & ACME_CHALLENGE_HTTP01) && strcmp(c.type, "http-01") == 0) ||
			   ((sets[i] & ACME_CHALLENGE_TLSALPN01) &&
			    strcmp(c.type, "tls-alpn-01") == 0));
		FUZZ_CHECK(strlen(c.token) <= 200 && strchr(c.token, '/') == NULL);
	}
	acme_authz_error(root, detail, sizeof(detail));
	FUZZ_CHECK(strlen(detail) < sizeof(detail));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct acme_http_response resp;
	char text[600], type[128], *line, *nl;
	time_t start, end;
	json_t *root;

	if (size == 0)
		return 0;
	memset(&resp, 0, sizeof(resp));
	resp.status = statuses[data[0] % (sizeof(statuses) / sizeof(statuses[0]))];
	snprintf(resp.error, sizeof(resp.error), "timeout");
	resp.body = malloc(size);
	FUZZ_CHECK(resp.body != NULL);
	memcpy(resp.body, data + 1, size - 1);
	resp.body[size - 1] = '\0';
	resp.body_len = size - 1;

	acme_problem_text(&resp, text, sizeof(text), type, sizeof(type));
	FUZZ_CHECK(resp.status == 0 || strncmp(text, "HTTP ", 5) == 0);

	line = strdup(resp.body);
	FUZZ_CHECK(line != NULL);
	if ((nl = strchr(line, '\n')) != NULL)
		*nl = '\0';
	resp.retry_after = line;
	(void)acme_retry_after_of(&resp);

	root = acme_body_object(&resp);
	if (root != NULL) {
		FUZZ_CHECK(json_is_object(root));
		check_directory(root);
		check_order(root);
		check_authz(root);
		if (acme_ari_window(root, &start, &end) == 0)
			FUZZ_CHECK(start < end);
		json_decref(root);
	}
	free(line);
	free(resp.body);
	return 0;
}
