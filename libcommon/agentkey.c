#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <sodium.h>

#include "agentkey.h"
#include "exitcode.h"
#include "fileio.h"
#include "jsonl.h"

/* The key's 44 base64 characters; the file adds a newline. A larger file is refused unread. */
#define KEY_FILE_TEXT_LENGTH (AGENT_PUBLIC_KEY_TEXT_SIZE - 1)
#define KEY_FILE_MAX_BYTES 256
#define BASE64_VARIANT sodium_base64_VARIANT_ORIGINAL

/* Sealed plaintext: magic and format version, then three length-prefixed fields, then the key. */
static const unsigned char version_key_magic[4] = { 'C', 'V', 'K', 0x01 };
#define FIELD_LENGTH_BYTES 4
#define BINDING_FIELDS 3
#define HEADER_FIXED_BYTES (sizeof(version_key_magic) + BINDING_FIELDS * FIELD_LENGTH_BYTES)
/* Shown in messages: header values are chosen by whoever sealed the row. */
#define SHOWN_VALUE_MAX 160

static int sodium_ready(struct error *err)
{
	if (sodium_init() < 0)
		return error_set(err, EXIT_INTERNAL, "libsodium failed to initialise");
	return 0;
}

/* path NULL: $CERTCTL_AGENT_KEY_FILE (an empty value counts as unset), else AGENT_KEY_DEFAULT_PATH */
static const char *agent_key_path(const char *path)
{
	const char *from_environment;

	if (path != NULL)
		return path;
	from_environment = getenv("CERTCTL_AGENT_KEY_FILE");
	return from_environment != NULL && from_environment[0] != '\0' ? from_environment
								       : AGENT_KEY_DEFAULT_PATH;
}

void agent_key_wipe(struct agent_keypair *pair)
{
	sodium_memzero(pair, sizeof(*pair));
}

void agent_public_key_format(const unsigned char public_key[AGENT_KEY_BYTES],
			     char text[AGENT_PUBLIC_KEY_TEXT_SIZE])
{
	sodium_bin2base64(text, AGENT_PUBLIC_KEY_TEXT_SIZE, public_key, AGENT_KEY_BYTES, BASE64_VARIANT);
}

/*
 * Canonical padded base64 of exactly 32 bytes; 0 or -1. With no end pointer
 * libsodium refuses trailing text, and more than 32 bytes overflows bin_maxlen.
 */
static int key_base64_decode(const char *text, size_t length, unsigned char key[AGENT_KEY_BYTES])
{
	size_t decoded = 0;

	if (sodium_base642bin(key, AGENT_KEY_BYTES, text, length, NULL, &decoded, NULL,
			      BASE64_VARIANT) != 0 ||
	    decoded != AGENT_KEY_BYTES) {
		sodium_memzero(key, AGENT_KEY_BYTES);
		return -1;
	}
	return 0;
}

int agent_public_key_parse(const char *text, unsigned char public_key[AGENT_KEY_BYTES],
			   struct error *err)
{
	if (text == NULL || key_base64_decode(text, strlen(text), public_key) != 0)
		return error_set(err, EXIT_DATA,
				 "public key: not 32 bytes of standard base64 (44 characters, padded)");
	return 0;
}

/* The public half of an X25519 secret key; 0 or -1. */
static int keypair_complete(struct agent_keypair *pair)
{
	return crypto_scalarmult_base(pair->public_key, pair->secret_key) == 0 ? 0 : -1;
}

int agent_key_load(const char *path, struct agent_keypair *pair, struct error *err)
{
	struct error read_err = { 0, "" };
	struct stat info;
	char *content;
	size_t length = 0, text_length;
	int code;

	agent_key_wipe(pair);
	if ((code = sodium_ready(err)) != 0)
		return code;
	path = agent_key_path(path);
	if (path[0] == '\0')
		return error_set(err, EXIT_CONFIG, "agent key file: no file named");
	if (stat(path, &info) != 0)
		return error_set(err, EXIT_CONFIG, "agent key file %s: %s", path, strerror(errno));
	if (!S_ISREG(info.st_mode))
		return error_set(err, EXIT_CONFIG, "agent key file %s: not a regular file", path);
	/* A key others can read is no longer this agent's alone; one they can write is not trusted. */
	if ((info.st_mode & 0077) != 0)
		return error_set(err, EXIT_CONFIG,
				 "agent key file %s: accessible by group or others (mode %04o); chmod 0600 it",
				 path, (unsigned)(info.st_mode & 07777));
	content = secret_file_read(path, KEY_FILE_MAX_BYTES, &length, &read_err);
	if (content == NULL)
		return error_set(err, EXIT_CONFIG, "agent key file %s", read_err.message);
	text_length = length;
	if (text_length > 0 && content[text_length - 1] == '\n')
		text_length--;
	if (key_base64_decode(content, text_length, pair->secret_key) != 0)
		code = error_set(err, EXIT_CONFIG,
				 "agent key file %s: not one line of base64 holding a 32-byte X25519 key", path);
	else if (keypair_complete(pair) != 0)
		code = error_set(err, EXIT_CONFIG, "agent key file %s: not a usable X25519 key", path);
	secret_free(content, length);
	if (code != 0)
		agent_key_wipe(pair);
	return code;
}

/* So that the new name survives a crash, not just the file's bytes. */
static int directory_sync(const char *path)
{
	char *copy = strdup(path);
	int fd, code = -1;

	if (copy == NULL)
		return -1;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		code = fsync(fd);
		close(fd);
	}
	free(copy);
	return code;
}

/* An existing name is loaded, never replaced; a dangling link is named as such. */
static int existing_key_load(const char *path, struct agent_keypair *pair, struct error *err)
{
	struct stat link_info, info;

	if (lstat(path, &link_info) == 0 && S_ISLNK(link_info.st_mode) && stat(path, &info) != 0)
		return error_set(err, EXIT_CONFIG,
				 "agent key file %s: a symbolic link to a missing file; not followed to create a key",
				 path);
	return agent_key_load(path, pair, err);
}

int agent_key_create(const char *path, struct agent_keypair *pair, bool *created, struct error *err)
{
	char text[AGENT_PUBLIC_KEY_TEXT_SIZE + 1];
	int fd, closed, code, saved_errno;

	*created = false;
	agent_key_wipe(pair);
	if ((code = sodium_ready(err)) != 0)
		return code;
	path = agent_key_path(path);
	if (path[0] == '\0')
		return error_set(err, EXIT_CONFIG, "agent key file: no file named");
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0 && errno == EEXIST)
		return existing_key_load(path, pair, err);
	if (fd < 0)
		return error_set(err, EXIT_CANT_CREATE, "agent key file %s: %s", path, strerror(errno));

	randombytes_buf(pair->secret_key, AGENT_KEY_BYTES);
	if (keypair_complete(pair) != 0) {
		code = error_set(err, EXIT_INTERNAL, "agent key file %s: X25519 key derivation failed", path);
		goto fail;
	}
	sodium_bin2base64(text, AGENT_PUBLIC_KEY_TEXT_SIZE, pair->secret_key, AGENT_KEY_BYTES,
			  BASE64_VARIANT);
	text[KEY_FILE_TEXT_LENGTH] = '\n';
	/* The umask may have taken bits the owner needs; 0600 exactly. */
	if (fchmod(fd, 0600) != 0 || fd_write_all(fd, text, KEY_FILE_TEXT_LENGTH + 1) != 0 ||
	    fsync(fd) != 0) {
		saved_errno = errno;
		code = error_set(err, EXIT_CANT_CREATE, "agent key file %s: %s; removed", path,
				 strerror(saved_errno));
		goto fail;
	}
	sodium_memzero(text, sizeof(text));
	closed = close(fd);
	fd = -1;
	if (closed != 0 || directory_sync(path) != 0) {
		saved_errno = errno;
		code = error_set(err, EXIT_CANT_CREATE, "agent key file %s: %s; removed", path,
				 strerror(saved_errno));
		goto fail;
	}
	*created = true;
	return 0;
fail:
	sodium_memzero(text, sizeof(text));
	agent_key_wipe(pair);
	if (fd >= 0)
		close(fd);
	unlink(path);
	return code;
}

int agent_keygen(const char *path, FILE *output, struct error *err)
{
	struct agent_keypair pair;
	char public_text[AGENT_PUBLIC_KEY_TEXT_SIZE];
	json_object *line;
	bool created;
	int code;

	path = agent_key_path(path);
	code = agent_key_create(path, &pair, &created, err);
	if (code != 0)
		return code;
	agent_public_key_format(pair.public_key, public_text);
	agent_key_wipe(&pair);
	line = json_object_new_object();
	json_object_object_add(line, "public_key", json_object_new_string(public_text));
	json_object_object_add(line, "key_file", json_object_new_string(path));
	json_object_object_add(line, "created", json_object_new_boolean(created));
	code = jsonl_write(output, line, err);
	json_object_put(line);
	return code;
}

static void put_length(unsigned char *out, size_t length)
{
	out[0] = (unsigned char)(length >> 24);
	out[1] = (unsigned char)(length >> 16);
	out[2] = (unsigned char)(length >> 8);
	out[3] = (unsigned char)length;
}

static size_t get_length(const unsigned char *in)
{
	return (size_t)in[0] << 24 | (size_t)in[1] << 16 | (size_t)in[2] << 8 | (size_t)in[3];
}

int version_key_seal(const unsigned char public_key[AGENT_KEY_BYTES],
		     const struct version_key_binding *binding,
		     const unsigned char *key_pem, size_t key_length,
		     unsigned char **sealed, size_t *sealed_length, struct error *err)
{
	const char *fields[BINDING_FIELDS] = { binding->version_id, binding->agent_id,
					       binding->fingerprint_sha256 };
	size_t plain_length = HEADER_FIXED_BYTES + key_length, used;
	unsigned char *plain, *box;
	int code;

	*sealed = NULL;
	*sealed_length = 0;
	if ((code = sodium_ready(err)) != 0)
		return code;
	for (int i = 0; i < BINDING_FIELDS; i++) {
		if (fields[i] == NULL)
			return error_set(err, EXIT_INTERNAL, "version key binding: a field is missing");
		if (strlen(fields[i]) > UINT32_MAX)
			return error_set(err, EXIT_DATA, "version key binding: a field is too long");
		plain_length += strlen(fields[i]);
	}
	if (key_length == 0)
		return error_set(err, EXIT_DATA, "version key: empty private key");
	if (key_length > (size_t)1 << 30)
		return error_set(err, EXIT_DATA, "version key: private key too large to seal");
	if ((plain = malloc(plain_length)) == NULL)
		return error_set(err, EXIT_INTERNAL, "out of memory");
	if ((box = malloc(plain_length + crypto_box_SEALBYTES)) == NULL) {
		free(plain);
		return error_set(err, EXIT_INTERNAL, "out of memory");
	}
	memcpy(plain, version_key_magic, sizeof(version_key_magic));
	used = sizeof(version_key_magic);
	for (int i = 0; i < BINDING_FIELDS; i++) {
		size_t length = strlen(fields[i]);
		put_length(plain + used, length);
		memcpy(plain + used + FIELD_LENGTH_BYTES, fields[i], length);
		used += FIELD_LENGTH_BYTES + length;
	}
	memcpy(plain + used, key_pem, key_length);
	if (crypto_box_seal(box, plain, plain_length, public_key) != 0) {
		free(box);
		code = error_set(err, EXIT_INTERNAL, "version key: crypto_box_seal failed");
	} else {
		*sealed = box;
		*sealed_length = plain_length + crypto_box_SEALBYTES;
	}
	sodium_memzero(plain, plain_length);
	free(plain);
	return code;
}

/* A header value fit for a one-line message: printable ASCII, cut short. */
static void shown_value(const unsigned char *bytes, size_t length, char shown[SHOWN_VALUE_MAX + 4])
{
	size_t i;

	for (i = 0; i < length && i < SHOWN_VALUE_MAX; i++)
		shown[i] = bytes[i] >= 0x20 && bytes[i] < 0x7f ? (char)bytes[i] : '?';
	strcpy(shown + i, length > SHOWN_VALUE_MAX ? "..." : "");
}

/* Checks the header against expected; on success *key_offset is where the key starts. */
static int binding_check(const unsigned char *plain, size_t plain_length,
			 const struct version_key_binding *expected, size_t *key_offset,
			 struct error *err)
{
	static const char *const names[BINDING_FIELDS] = { "version id", "agent id", "fingerprint" };
	const char *wanted[BINDING_FIELDS] = { expected->version_id, expected->agent_id,
					       expected->fingerprint_sha256 };
	char got_shown[SHOWN_VALUE_MAX + 4], wanted_shown[SHOWN_VALUE_MAX + 4];
	size_t used = sizeof(version_key_magic);

	if (plain_length < HEADER_FIXED_BYTES ||
	    memcmp(plain, version_key_magic, sizeof(version_key_magic)) != 0)
		return error_set(err, EXIT_DATA, "version key: opens, but its header is not certctl's (unknown format)");
	for (int i = 0; i < BINDING_FIELDS; i++) {
		size_t length, wanted_length;

		if (plain_length - used < FIELD_LENGTH_BYTES ||
		    (length = get_length(plain + used)) > plain_length - used - FIELD_LENGTH_BYTES)
			return error_set(err, EXIT_DATA, "version key: opens, but its header is truncated");
		used += FIELD_LENGTH_BYTES;
		if (wanted[i] == NULL)
			return error_set(err, EXIT_INTERNAL, "version key binding: the expected %s is missing",
					 names[i]);
		wanted_length = strlen(wanted[i]);
		if (length != wanted_length || memcmp(plain + used, wanted[i], length) != 0) {
			shown_value(plain + used, length, got_shown);
			shown_value((const unsigned char *)wanted[i], wanted_length, wanted_shown);
			return error_set(err, EXIT_DATA,
					 "version key: bound to %s '%s', expected '%s'; refused (a row copied from elsewhere?)",
					 names[i], got_shown, wanted_shown);
		}
		used += length;
	}
	if (used == plain_length)
		return error_set(err, EXIT_DATA, "version key: opens, but holds no private key");
	*key_offset = used;
	return 0;
}

int version_key_open(const struct agent_keypair *pair, const struct version_key_binding *expected,
		     const unsigned char *sealed, size_t sealed_length,
		     unsigned char **key_pem, size_t *key_length, struct error *err)
{
	unsigned char *plain;
	size_t plain_length, key_offset = 0;
	int code;

	*key_pem = NULL;
	*key_length = 0;
	if ((code = sodium_ready(err)) != 0)
		return code;
	if (sealed_length < crypto_box_SEALBYTES)
		return error_set(err, EXIT_DATA,
				 "version key does not open with this agent's key: too short to be sealed");
	plain_length = sealed_length - crypto_box_SEALBYTES;
	/* One buffer: the key is moved to its front and NUL-terminated in place. */
	if ((plain = malloc(plain_length + 1)) == NULL)
		return error_set(err, EXIT_INTERNAL, "out of memory");
	if (crypto_box_seal_open(plain, sealed, sealed_length, pair->public_key, pair->secret_key) != 0) {
		code = error_set(err, EXIT_DATA,
				 "version key does not open with this agent's key: sealed to another agent, or altered");
		goto fail;
	}
	if ((code = binding_check(plain, plain_length, expected, &key_offset, err)) != 0)
		goto fail;
	memmove(plain, plain + key_offset, plain_length - key_offset);
	*key_length = plain_length - key_offset;
	sodium_memzero(plain + *key_length, plain_length + 1 - *key_length);
	*key_pem = plain;
	return 0;
fail:
	sodium_memzero(plain, plain_length + 1);
	free(plain);
	return code;
}
