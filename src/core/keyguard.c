/* keyguard: no core dumps, not dumpable, keys in locked memory; see keyguard.h. */
#include "core/keyguard.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "base/log.h"

/* OpenSSL's secure heap: a power of two; RSA-4096 and EC private keys take
 * a few hundred bytes each, so this holds thousands of certificates' keys. */
#define SECURE_HEAP_BYTES (1 << 20)
#define SECURE_HEAP_MIN 32

int
keyguard_apply(char *err, size_t errlen)
{
	static bool heap_tried;
	struct rlimit none = {0, 0};

	if (setrlimit(RLIMIT_CORE, &none) < 0) {
		snprintf(err, errlen, "setrlimit(RLIMIT_CORE): %s", strerror(errno));
		return -1;
	}
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
		snprintf(err, errlen, "prctl(PR_SET_DUMPABLE): %s", strerror(errno));
		return -1;
	}
	if (!heap_tried) {
		heap_tried = true;
		if (CRYPTO_secure_malloc_init(SECURE_HEAP_BYTES, SECURE_HEAP_MIN) == 0)
			log_warn("keys: no locked memory for OpenSSL's secure heap (RLIMIT_MEMLOCK?); "
				 "private keys stay in ordinary memory");
	}
	return 0;
}
