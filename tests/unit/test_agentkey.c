/* agent keys and version keys: a sealed key opens only for its agent, version and leaf. */
#include <stdlib.h>
#include <sys/stat.h>

#include <sodium.h>

#include "agentkey.h"
#include "check.h"
#include "exitcode.h"

static const unsigned char secret[] = "-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n";
#define SECRET_LENGTH (sizeof(secret) - 1)
#define FINGERPRINT "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
static const char fingerprint[] = FINGERPRINT;

static void write_file(const char *path, const char *content)
{
	FILE *file = fopen(path, "wb");
	fputs(content, file);
	fclose(file);
}

/* Opens blob for pair under expected; returns the code and frees any key. */
static int open_code(const struct agent_keypair *pair, const char *version_id, const char *agent_id,
		     const char *fingerprint_sha256, const unsigned char *blob, size_t blob_length,
		     struct error *err)
{
	const struct version_key_binding expected = { version_id, agent_id, fingerprint_sha256 };
	unsigned char *key = NULL;
	size_t key_length = 0;
	int code = version_key_open(pair, &expected, blob, blob_length, &key, &key_length, err);

	if (key != NULL) {
		sodium_memzero(key, key_length);
		free(key);
	}
	return code;
}

static void check_key_files(const char *dir)
{
	struct agent_keypair pair, again;
	char path[512], text[AGENT_PUBLIC_KEY_TEXT_SIZE];
	bool created = false;
	struct error err;

	snprintf(path, sizeof(path), "%s/agent.key", dir);
	CHECK(agent_key_create(path, &pair, &created, &err) == 0);
	CHECK(created);
	CHECK(agent_key_load(path, &again, &err) == 0);
	CHECK(memcmp(&pair, &again, sizeof(pair)) == 0);
	CHECK(agent_key_create(path, &again, &created, &err) == 0);
	CHECK(!created);
	CHECK(memcmp(&pair, &again, sizeof(pair)) == 0);
	agent_public_key_format(pair.public_key, text);
	CHECK(strlen(text) == 44);
	CHECK(agent_public_key_parse(text, again.public_key, &err) == 0);
	CHECK(memcmp(pair.public_key, again.public_key, AGENT_KEY_BYTES) == 0);

	/* RFC 7748 section 6.1: Alice's private key and the public key it gives. */
	snprintf(path, sizeof(path), "%s/rfc7748.key", dir);
	write_file(path, "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=\n");
	CHECK(agent_key_load(path, &pair, &err) == 0);
	agent_public_key_format(pair.public_key, text);
	CHECK_STR("hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=", text);

	chmod(path, 0640);
	CHECK(agent_key_load(path, &pair, &err) == EXIT_CONFIG);
	CHECK(strstr(err.message, path) != NULL && strstr(err.message, "0640") != NULL);
	snprintf(path, sizeof(path), "%s/short.key", dir);
	write_file(path, "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LA==\n");
	CHECK(agent_key_load(path, &pair, &err) == EXIT_CONFIG);
	CHECK(strstr(err.message, path) != NULL);
	snprintf(path, sizeof(path), "%s/missing.key", dir);
	CHECK(agent_key_load(path, &pair, &err) == EXIT_CONFIG);
	CHECK(strstr(err.message, path) != NULL);
	CHECK(agent_key_load(dir, &pair, &err) == EXIT_CONFIG);
	CHECK(strstr(err.message, "not a regular file") != NULL);
	snprintf(path, sizeof(path), "%s/no/such/dir/agent.key", dir);
	CHECK(agent_key_create(path, &pair, &created, &err) == EXIT_CANT_CREATE);
	agent_key_wipe(&pair);
	agent_key_wipe(&again);
}

static void check_public_key_parse(void)
{
	unsigned char public_key[AGENT_KEY_BYTES];
	struct error err;

	CHECK(agent_public_key_parse("hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=", public_key, &err) == 0);
	CHECK(public_key[0] == 0x85 && public_key[31] == 0x6a);
	/* Not base64, unpadded, url-safe, non-canonical last digit, 31 and 33 bytes, trailing text. */
	CHECK(agent_public_key_parse("hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTm!=", public_key, &err) == EXIT_DATA);
	CHECK(agent_public_key_parse("hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo", public_key, &err) == EXIT_DATA);
	CHECK(agent_public_key_parse("hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo=", public_key, &err) == EXIT_DATA);
	CHECK(agent_public_key_parse("hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmp=", public_key, &err) == EXIT_DATA);
	CHECK(agent_public_key_parse("hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTg==", public_key, &err) == EXIT_DATA);
	CHECK(agent_public_key_parse("hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmpq", public_key, &err) == EXIT_DATA);
	CHECK(agent_public_key_parse("hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=\n", public_key, &err) == EXIT_DATA);
	CHECK(agent_public_key_parse("", public_key, &err) == EXIT_DATA);
	CHECK(agent_public_key_parse(NULL, public_key, &err) == EXIT_DATA);
}

static void check_sealing(void)
{
	const struct version_key_binding binding = { "ver-1", "agent-12", fingerprint };
	struct agent_keypair pair, other;
	unsigned char *blob, *key, *raw;
	size_t blob_length, key_length;
	struct error err;

	CHECK(sodium_init() >= 0);
	crypto_box_keypair(pair.public_key, pair.secret_key);
	crypto_box_keypair(other.public_key, other.secret_key);

	CHECK(version_key_seal(pair.public_key, &binding, secret, SECRET_LENGTH, &blob, &blob_length, &err) == 0);
	CHECK(blob_length > SECRET_LENGTH + crypto_box_SEALBYTES);
	CHECK(memmem(blob, blob_length, "PRIVATE KEY", 11) == NULL);
	CHECK(version_key_open(&pair, &binding, blob, blob_length, &key, &key_length, &err) == 0);
	CHECK(key_length == SECRET_LENGTH && memcmp(key, secret, key_length) == 0);
	CHECK(key[key_length] == '\0');
	sodium_memzero(key, key_length);
	free(key);

	/* Another agent's pair cannot open it. */
	CHECK(open_code(&other, "ver-1", "agent-12", fingerprint, blob, blob_length, &err) == EXIT_DATA);
	CHECK(strstr(err.message, "does not open with this agent's key") != NULL);
	/* Opens, but the row was copied to another version, agent or leaf. */
	CHECK(open_code(&pair, "ver-2", "agent-12", fingerprint, blob, blob_length, &err) == EXIT_DATA);
	CHECK(strstr(err.message, "version id 'ver-1', expected 'ver-2'") != NULL);
	CHECK(open_code(&pair, "ver-1", "agent-13", fingerprint, blob, blob_length, &err) == EXIT_DATA);
	CHECK(strstr(err.message, "agent id 'agent-12', expected 'agent-13'") != NULL);
	CHECK(open_code(&pair, "ver-1", "agent-12", "00", blob, blob_length, &err) == EXIT_DATA);
	CHECK(strstr(err.message, "fingerprint") != NULL && strstr(err.message, "expected '00'") != NULL);
	/* Fields cannot bleed into each other: "ver-1"+"agent-12" is not "ver-1a"+"gent-12". */
	CHECK(open_code(&pair, "ver-1a", "gent-12", fingerprint, blob, blob_length, &err) == EXIT_DATA);
	/* A bound value that is a prefix of the expected one is still another value. */
	CHECK(open_code(&pair, "ver-10", "agent-12", fingerprint, blob, blob_length, &err) == EXIT_DATA);
	CHECK(open_code(&pair, "ver-1", "agent-12", FINGERPRINT "0", blob, blob_length, &err) == EXIT_DATA);
	CHECK(open_code(&pair, "ver-1", "agent-12", fingerprint, blob, blob_length, &err) == 0);

	/* One flipped byte anywhere, or a truncated blob: refused. */
	for (size_t i = 0; i < blob_length; i += 7) {
		blob[i] ^= 0x01;
		CHECK(open_code(&pair, "ver-1", "agent-12", fingerprint, blob, blob_length, &err) == EXIT_DATA);
		blob[i] ^= 0x01;
	}
	CHECK(open_code(&pair, "ver-1", "agent-12", fingerprint, blob, blob_length - 1, &err) == EXIT_DATA);
	CHECK(open_code(&pair, "ver-1", "agent-12", fingerprint, blob, 10, &err) == EXIT_DATA);
	free(blob);

	/* Sealed to this agent, but not by certctl: the header is refused after opening. */
	raw = malloc(SECRET_LENGTH + crypto_box_SEALBYTES);
	CHECK(crypto_box_seal(raw, secret, SECRET_LENGTH, pair.public_key) == 0);
	CHECK(open_code(&pair, "ver-1", "agent-12", fingerprint, raw, SECRET_LENGTH + crypto_box_SEALBYTES,
			&err) == EXIT_DATA);
	CHECK(strstr(err.message, "does not open") == NULL);
	free(raw);

	/* A certctl header whose first field claims more bytes than there are. */
	{
		static const unsigned char truncated[] = { 'C', 'V', 'K', 0x01, 0xff, 0xff, 0xff, 0xff,
							   'v', 'e', 'r', '-', '1', 0, 0, 0, 0, 0, 0, 0, 0 };
		raw = malloc(sizeof(truncated) + crypto_box_SEALBYTES);
		CHECK(crypto_box_seal(raw, truncated, sizeof(truncated), pair.public_key) == 0);
		CHECK(open_code(&pair, "ver-1", "agent-12", fingerprint, raw,
				sizeof(truncated) + crypto_box_SEALBYTES, &err) == EXIT_DATA);
		CHECK(strstr(err.message, "truncated") != NULL);
		free(raw);
	}

	/* A well-formed header with another magic or format version: refused. */
	{
		static const unsigned char other_format[] = {
			'C', 'V', 'K', 0x02, 0, 0, 0, 1, 'v', 0, 0, 0, 1, 'a', 0, 0, 0, 1, 'f', 'k', 'e', 'y' };
		raw = malloc(sizeof(other_format) + crypto_box_SEALBYTES);
		CHECK(crypto_box_seal(raw, other_format, sizeof(other_format), pair.public_key) == 0);
		CHECK(open_code(&pair, "v", "a", "f", raw, sizeof(other_format) + crypto_box_SEALBYTES,
				&err) == EXIT_DATA);
		CHECK(strstr(err.message, "unknown format") != NULL);
		free(raw);
	}
	{
		static const unsigned char same_format[] = {
			'C', 'V', 'K', 0x01, 0, 0, 0, 1, 'v', 0, 0, 0, 1, 'a', 0, 0, 0, 1, 'f', 'k', 'e', 'y' };
		raw = malloc(sizeof(same_format) + crypto_box_SEALBYTES);
		CHECK(crypto_box_seal(raw, same_format, sizeof(same_format), pair.public_key) == 0);
		CHECK(open_code(&pair, "v", "a", "f", raw, sizeof(same_format) + crypto_box_SEALBYTES,
				&err) == 0);
		free(raw);
	}

	/* An empty key is not sealed. */
	CHECK(version_key_seal(pair.public_key, &binding, secret, 0, &blob, &blob_length, &err) == EXIT_DATA);
	CHECK(blob == NULL);
	agent_key_wipe(&pair);
	agent_key_wipe(&other);
}

int main(int argc, char *argv[])
{
	umask(077);
	check_key_files(argc > 1 ? argv[1] : "/tmp");
	check_public_key_parse();
	check_sealing();
	return CHECK_DONE();
}
