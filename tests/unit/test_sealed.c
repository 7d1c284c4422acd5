/* sealed_*: a key round-trips only under the same key and context. */
#include <stdlib.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

#include "check.h"
#include "exitcode.h"
#include "sealed.h"

static void write_file(const char *path, const char *content, size_t length)
{
	FILE *file = fopen(path, "wb");
	fwrite(content, 1, length, file);
	fclose(file);
}

int main(int argc, char *argv[])
{
	const char *dir = argc > 1 ? argv[1] : "/tmp";
	static const unsigned char secret[] = "-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n";
	unsigned char key[SEALED_KEY_BYTES], other_key[SEALED_KEY_BYTES];
	unsigned char *blob, *opened;
	size_t blob_length, opened_length;
	char path[512];
	struct error err;

	umask(077);
	snprintf(path, sizeof(path), "%s/hex.key", dir);
	write_file(path, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n", 65);
	CHECK(sealed_load_key(path, key, &err) == 0);
	CHECK(key[0] == 0 && key[31] == 0x1f);
	snprintf(path, sizeof(path), "%s/short.key", dir);
	write_file(path, "abc", 3);
	CHECK(sealed_load_key(path, other_key, &err) == EXIT_CONFIG);
	snprintf(path, sizeof(path), "%s/missing.key", dir);
	CHECK(sealed_load_key(path, other_key, &err) == EXIT_CONFIG);
	unsetenv("CERTCTL_KEY_FILE");
	CHECK(sealed_load_key(NULL, other_key, &err) == EXIT_CONFIG);
	CHECK(strstr(err.message, "CERTCTL_KEY_FILE") != NULL);

	CHECK(sealed_seal(key, "mc-shop", secret, sizeof(secret) - 1, &blob, &blob_length, &err) == 0);
	CHECK(blob_length == sizeof(secret) - 1 + 29);
	CHECK(memmem(blob, blob_length, "PRIVATE KEY", 11) == NULL);

	CHECK(sealed_open(key, "mc-shop", blob, blob_length, &opened, &opened_length, &err) == 0);
	CHECK(opened_length == sizeof(secret) - 1 && memcmp(opened, secret, opened_length) == 0);
	OPENSSL_cleanse(opened, opened_length);
	free(opened);

	/* Another row's context, another key, or a flipped bit: refused. */
	CHECK(sealed_open(key, "mc-other", blob, blob_length, &opened, &opened_length, &err) == EXIT_DATA);
	memcpy(other_key, key, sizeof(key));
	other_key[5] ^= 1;
	CHECK(sealed_open(other_key, "mc-shop", blob, blob_length, &opened, &opened_length, &err) == EXIT_DATA);
	blob[20] ^= 1;
	CHECK(sealed_open(key, "mc-shop", blob, blob_length, &opened, &opened_length, &err) == EXIT_DATA);
	free(blob);
	return CHECK_DONE();
}
