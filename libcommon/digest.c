#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "digest.h"

void sha256_hex(const void *data, size_t length, char hex[SHA256_HEX_SIZE])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char digest[SHA256_DIGEST_LENGTH];

	SHA256(data, length, digest);
	for (size_t i = 0; i < SHA256_DIGEST_LENGTH; i++) {
		hex[2 * i] = digits[digest[i] >> 4];
		hex[2 * i + 1] = digits[digest[i] & 0x0f];
	}
	hex[2 * SHA256_DIGEST_LENGTH] = '\0';
}

int certificate_fingerprint(X509 *certificate, char hex[SHA256_HEX_SIZE])
{
	unsigned char *der = NULL;
	int length = i2d_X509(certificate, &der);

	if (length <= 0)
		return -1;
	sha256_hex(der, (size_t)length, hex);
	OPENSSL_free(der);
	return 0;
}
