#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "digest.h"
#include "exitcode.h"
#include "fileio.h"
#include "log.h"
#include "sealed.h"

#define SEALED_VERSION 0x01
#define SEALED_NONCE_BYTES 12
#define SEALED_TAG_BYTES 16
#define SEALED_OVERHEAD (1 + SEALED_NONCE_BYTES + SEALED_TAG_BYTES)
#define KEY_FILE_MAX_BYTES 256

int sealed_load_key(const char *path, unsigned char key[SEALED_KEY_BYTES], struct error *err)
{
	struct error read_err = { 0, "" };
	struct stat info;
	char *content;
	size_t total, length;
	int code = 0;

	if (path == NULL)
		path = getenv("CERTCTL_KEY_FILE");
	if (path == NULL || path[0] == '\0')
		return error_set(err, EXIT_CONFIG,
				 "CERTCTL_KEY_FILE is not set: private keys are sealed with the key it names");
	content = secret_file_read(path, KEY_FILE_MAX_BYTES, &total, &read_err);
	if (content == NULL)
		return error_set(err, EXIT_CONFIG, "key file %s", read_err.message);
	if (stat(path, &info) == 0 && (info.st_mode & 0077) != 0)
		log_warn("key file %s: readable by group or others (mode %04o); chmod 0600 it",
			 path, (unsigned)(info.st_mode & 07777));
	length = total;
	while (length > 0 && (content[length - 1] == '\n' || content[length - 1] == '\r'))
		length--;
	if (length == SEALED_KEY_BYTES) {
		memcpy(key, content, SEALED_KEY_BYTES);
	} else if (length == 2 * SEALED_KEY_BYTES) {
		if (hex_decode(content, SEALED_KEY_BYTES, key) != 0)
			code = error_set(err, EXIT_CONFIG, "key file %s: not 64 hex digits", path);
	} else {
		code = error_set(err, EXIT_CONFIG,
				 "key file %s: must hold 32 bytes or 64 hex digits (make one with: openssl rand -hex 32)",
				 path);
	}
	secret_free(content, total);
	if (code != 0)
		OPENSSL_cleanse(key, SEALED_KEY_BYTES);
	return code;
}

/* One AES-256-GCM pass; encrypting when encrypt is 1. Returns 0 or -1. */
static int gcm_crypt(int encrypt, const unsigned char *key, const unsigned char *nonce,
		     const char *context, const unsigned char *input, size_t length,
		     unsigned char *output, unsigned char *tag)
{
	EVP_CIPHER_CTX *cipher = EVP_CIPHER_CTX_new();
	int written, ok;

	ok = cipher != NULL &&
	     EVP_CipherInit_ex(cipher, EVP_aes_256_gcm(), NULL, NULL, NULL, encrypt) == 1 &&
	     EVP_CIPHER_CTX_ctrl(cipher, EVP_CTRL_GCM_SET_IVLEN, SEALED_NONCE_BYTES, NULL) == 1 &&
	     EVP_CipherInit_ex(cipher, NULL, NULL, key, nonce, encrypt) == 1 &&
	     EVP_CipherUpdate(cipher, NULL, &written, (const unsigned char *)context,
			      (int)strlen(context)) == 1 &&
	     EVP_CipherUpdate(cipher, output, &written, input, (int)length) == 1 &&
	     (encrypt || EVP_CIPHER_CTX_ctrl(cipher, EVP_CTRL_GCM_SET_TAG, SEALED_TAG_BYTES, tag) == 1) &&
	     EVP_CipherFinal_ex(cipher, output + written, &written) == 1 &&
	     (!encrypt || EVP_CIPHER_CTX_ctrl(cipher, EVP_CTRL_GCM_GET_TAG, SEALED_TAG_BYTES, tag) == 1);
	EVP_CIPHER_CTX_free(cipher);
	return ok ? 0 : -1;
}

int sealed_seal(const unsigned char key[SEALED_KEY_BYTES], const char *context,
		const unsigned char *plaintext, size_t length,
		unsigned char **blob, size_t *blob_length, struct error *err)
{
	unsigned char *sealed;

	*blob = NULL;
	if (length > (size_t)1 << 30)
		return error_set(err, EXIT_DATA, "private key too large to seal");
	sealed = malloc(length + SEALED_OVERHEAD);
	if (sealed == NULL)
		return error_set(err, EXIT_INTERNAL, "out of memory");
	sealed[0] = SEALED_VERSION;
	if (RAND_bytes(sealed + 1, SEALED_NONCE_BYTES) != 1 ||
	    gcm_crypt(1, key, sealed + 1, context, plaintext, length,
		      sealed + 1 + SEALED_NONCE_BYTES,
		      sealed + 1 + SEALED_NONCE_BYTES + length) != 0) {
		free(sealed);
		return error_set(err, EXIT_INTERNAL, "sealing the private key failed (OpenSSL)");
	}
	*blob = sealed;
	*blob_length = length + SEALED_OVERHEAD;
	return 0;
}

int sealed_open(const unsigned char key[SEALED_KEY_BYTES], const char *context,
		const unsigned char *blob, size_t blob_length,
		unsigned char **plaintext, size_t *length, struct error *err)
{
	unsigned char tag[SEALED_TAG_BYTES];
	size_t body_length;
	unsigned char *opened;

	*plaintext = NULL;
	if (blob_length < SEALED_OVERHEAD || blob[0] != SEALED_VERSION)
		return error_set(err, EXIT_DATA, "sealed private key: unknown format");
	body_length = blob_length - SEALED_OVERHEAD;
	memcpy(tag, blob + 1 + SEALED_NONCE_BYTES + body_length, SEALED_TAG_BYTES);
	opened = malloc(body_length + 1);
	if (opened == NULL)
		return error_set(err, EXIT_INTERNAL, "out of memory");
	if (gcm_crypt(0, key, blob + 1, context, blob + 1 + SEALED_NONCE_BYTES, body_length,
		      opened, tag) != 0) {
		OPENSSL_cleanse(opened, body_length);
		free(opened);
		return error_set(err, EXIT_DATA,
				 "sealed private key does not open: wrong CERTCTL_KEY_FILE, or the row was altered");
	}
	opened[body_length] = '\0';
	*plaintext = opened;
	*length = body_length;
	return 0;
}
