/* sealed_open over arbitrary blobs: only an untampered blob under the fuzz key and context opens. */
#include <string.h>

#include <openssl/crypto.h>

#include "exitcode.h"
#include "fuzz.h"
#include "sealed.h"

/* Bytes 0..31; tests/fuzz/corpus/sealed/ holds blobs sealed under it for FUZZ_CONTEXT. */
#define FUZZ_CONTEXT "mc-fuzz"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char key[SEALED_KEY_BYTES], *plaintext = NULL;
	size_t length = 0;
	struct error err;

	for (int i = 0; i < SEALED_KEY_BYTES; i++)
		key[i] = (unsigned char)i;
	if (sealed_open(key, FUZZ_CONTEXT, data, size, &plaintext, &length, &err) == 0) {
		FUZZ_ASSERT(plaintext != NULL);
		OPENSSL_cleanse(plaintext, length);
		free(plaintext);
	} else {
		FUZZ_ASSERT((err.code == EXIT_DATA || err.code == EXIT_INTERNAL) && plaintext == NULL);
	}
	return 0;
}
