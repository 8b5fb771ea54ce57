/*
 * saml_decrypt: the SP's side of XML Encryption for a SAML EncryptedAssertion
 * (xmlsec): the session key in an xenc:EncryptedKey (inside the
 * EncryptedData's KeyInfo, or a sibling of it as Shibboleth IdP sends it) is
 * unwrapped with the SP's RSA encryption key (RSA-OAEP only), then the
 * xenc:EncryptedData (AES-CBC or AES-GCM, Type Element) is decrypted in
 * place.  Nothing here decides whether the assertion is trustworthy:
 * saml_response.c verifies the signatures around and inside it.
 *
 * No locking of its own: called under saml.c's process-wide lock.
 */
#ifndef PORTCULLIS_SAML_DECRYPT_H
#define PORTCULLIS_SAML_DECRYPT_H

#include <stddef.h>

#include <libxml/tree.h>
#include <xmlsec/keys.h>

#define SAML_NS_XENC "http://www.w3.org/2001/04/xmlenc#"

/*
 * The SP's RSA private key from <pem> (PEM text; a certificate after it is
 * ignored), as an xmlsec key (caller frees with xmlSecKeyDestroy), or NULL
 * with the reason, naming <what>, in <err>.
 */
xmlSecKeyPtr saml_decrypt_key_load(const char *pem, const char *what, char *err, size_t errlen);

/*
 * Decrypt the saml:EncryptedAssertion <enc> of <doc> with <key> and put the
 * saml:Assertion it held in its place: *assertion gets that element.  Every
 * failure to decrypt gives the same reason in <err> (no padding or key
 * oracle), except a refused algorithm or shape, which is named.  Returns 0,
 * or -1 and the document may have been changed.
 */
int saml_decrypt_assertion(xmlDocPtr doc, xmlNodePtr enc, xmlSecKeyPtr key, xmlNodePtr *assertion,
			   char *err, size_t errlen);

#endif
