/*
 * saml_metadata: one generation of what the IdP metadata says, parsed from
 * the document: entity ID, HTTP-Redirect SSO and SLO endpoints, signing keys
 * (at most SAML_METADATA_MAX_KEYS), and a LassoServer for our SP with this
 * IdP.  It only parses: fetching, the on-disk cache, the refresh thread and
 * swapping generations stay in saml.c and saml_refresh.c.
 */
#ifndef PORTCULLIS_SAML_METADATA_H
#define PORTCULLIS_SAML_METADATA_H

#include <stddef.h>

#include <lasso/lasso.h>
#include <xmlsec/keys.h>

#define SAML_METADATA_MAX_KEYS 8

struct saml_idp {
	char *metadata;          /* the document */
	char *entity_id;
	char *sso_url;           /* HTTP-Redirect SingleSignOnService */
	char *slo_url;           /* HTTP-Redirect SingleLogoutService, or NULL */
	xmlSecKeyPtr keys[SAML_METADATA_MAX_KEYS];
	size_t nkeys;
	LassoServer *server;     /* SP + this IdP */
};

/*
 * Build an IdP generation from the IdP <metadata> document (named <what> in
 * errors) and our SP's <sp_metadata> and PEM key <sp_key_pem> (read from
 * <sp_key_path>, named in errors).  Builds new objects only, so it needs
 * no lock (it is slow: lasso loads the system CA bundle twice).  Returns
 * the generation (free with saml_metadata_idp_free), or NULL with the reason
 * in <err>.
 */
struct saml_idp *saml_metadata_idp_new(const char *sp_metadata, const char *sp_key_pem,
				       const char *sp_key_path, const char *metadata,
				       const char *what, char *err, size_t errlen);

/* Free a generation (lock held); NULL is accepted. */
void saml_metadata_idp_free(struct saml_idp *idp);

#endif
