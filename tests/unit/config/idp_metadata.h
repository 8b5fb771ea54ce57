/*
 * idp_metadata: IdP metadata for the config tests whose successful loads open
 * the SAML SP (test_config.c, test_config_redis.c, test_config_require.c).
 */
#ifndef PORTCULLIS_TEST_IDP_METADATA_H
#define PORTCULLIS_TEST_IDP_METADATA_H

/* Write to <path> the metadata of IdP https://idp.test/md: a new self-signed
 * RSA 2048 signing certificate (CN idp.test, a day long) and an HTTP-Redirect
 * SingleSignOnService at https://idp.test/sso.  A cmocka assertion fails the
 * test when that cannot be done. */
void write_idp_metadata(const char *path);

/* The same metadata with the signing certificate <cert_b64> (the base64 of
 * its DER form, as in a PEM file without its header lines). */
void write_idp_metadata_with(const char *path, const char *cert_b64);

#endif
