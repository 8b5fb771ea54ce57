/* sslerr: OpenSSL's error queue as text; see sslerr.h. */
#include "base/sslerr.h"

#include <openssl/err.h>

const char *
sslerr_reason(const char *fallback)
{
	static _Thread_local char buf[256];
	unsigned long e = ERR_peek_last_error();

	if (e == 0)
		return fallback;
	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return buf;
}
