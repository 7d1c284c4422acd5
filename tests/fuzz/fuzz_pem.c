/* pem_bundle_check: input is CERT NUL CHAIN NUL KEY (missing parts empty). */
#include <string.h>

#include "exitcode.h"
#include "fuzz.h"
#include "pem.h"

static const uint8_t *next_part(const uint8_t **cursor, const uint8_t *end, size_t *length)
{
	const uint8_t *start = *cursor, *nul = start < end ? memchr(start, '\0', (size_t)(end - start)) : NULL;

	*length = (size_t)((nul != NULL ? nul : end) - start);
	*cursor = nul != NULL ? nul + 1 : end;
	return start;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *cursor = data, *end = data + size, *cert, *chain, *key;
	size_t cert_length, chain_length, key_length;
	struct pem_bundle bundle;
	struct error err;
	int code;

	cert = next_part(&cursor, end, &cert_length);
	chain = next_part(&cursor, end, &chain_length);
	key = next_part(&cursor, end, &key_length);
	memset(&bundle, 0, sizeof(bundle));
	code = pem_bundle_check((const char *)cert, cert_length, "cert", (const char *)chain, chain_length,
				"chain", key, key_length, "key", &bundle, &err);
	if (code == 0) {
		FUZZ_ASSERT(bundle.cert_pem != NULL && bundle.chain_pem != NULL && bundle.key_pem != NULL);
		FUZZ_ASSERT(strlen(bundle.fingerprint_sha256) == 64);
	} else {
		FUZZ_ASSERT(code == EXIT_DATA && bundle.cert_pem == NULL && bundle.key_pem == NULL);
	}
	pem_bundle_free(&bundle);
	return 0;
}
