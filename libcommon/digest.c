#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "digest.h"

void hex_encode(const unsigned char *bytes, size_t length, char *hex)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < length; i++) {
		hex[2 * i] = digits[bytes[i] >> 4];
		hex[2 * i + 1] = digits[bytes[i] & 0x0f];
	}
	hex[2 * length] = '\0';
}

static int hex_digit_value(char digit)
{
	if (digit >= '0' && digit <= '9')
		return digit - '0';
	if (digit >= 'a' && digit <= 'f')
		return digit - 'a' + 10;
	if (digit >= 'A' && digit <= 'F')
		return digit - 'A' + 10;
	return -1;
}

int hex_decode(const char *hex, size_t length, unsigned char *bytes)
{
	for (size_t i = 0; i < length; i++) {
		int high = hex_digit_value(hex[2 * i]), low = hex_digit_value(hex[2 * i + 1]);

		if (high < 0 || low < 0)
			return -1;
		bytes[i] = (unsigned char)(high << 4 | low);
	}
	return 0;
}

void sha256_hex(const void *data, size_t length, char hex[SHA256_HEX_SIZE])
{
	unsigned char digest[SHA256_DIGEST_LENGTH];

	SHA256(data, length, digest);
	hex_encode(digest, sizeof(digest), hex);
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
