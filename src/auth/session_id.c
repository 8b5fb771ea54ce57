/* session_id: SHA-256 over the fields a session never changes; see session_id.h. */
#include "auth/session_id.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <string.h>

#include "base/b64url.h"

static void
session_id_put64(unsigned char *p, int64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (unsigned char)((uint64_t)v & 0xff);
		v = (int64_t)((uint64_t)v >> 8);
	}
}

void
session_id(const struct session *s, char out[SESSION_ID_LEN + 1])
{
	static const char label[] = "portcullis session id v1";
	unsigned char times[16], md[SHA256_DIGEST_LENGTH];
	char text[SESSION_ID_LEN + 8];
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	unsigned int mdlen = 0;

	session_id_put64(times, s->issued);
	session_id_put64(times + 8, s->expires);
	memset(md, 0, sizeof(md)); /* out of memory: an id all the same, never a crash */
	if (c != NULL && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(c, label, sizeof(label)) == 1 &&
	    EVP_DigestUpdate(c, times, sizeof(times)) == 1 &&
	    (s->name_id == NULL || EVP_DigestUpdate(c, s->name_id, strlen(s->name_id)) == 1))
		EVP_DigestFinal_ex(c, md, &mdlen);
	EVP_MD_CTX_free(c);
	b64url_encode(md, 12, text);
	memcpy(out, text, SESSION_ID_LEN);
	out[SESSION_ID_LEN] = '\0';
}
