/* keystore: staging, lookup by public key, promotion, and a promotion cut short. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "csrmake.h"
#include "exitcode.h"
#include "fileio.h"
#include "keystore.h"

static char store_path[4096], cert_path[4200];

/* The certificate directory's names, sorted, space-separated, states only ("current-A"). */
static void listing(const char names[][SHA256_HEX_SIZE], size_t count, char *out, size_t size)
{
	struct dirent **entries;
	int n = scandir(cert_path, &entries, NULL, alphasort);

	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		const char *name = entries[i]->d_name, *dash = strchr(name, '-');
		char shown[80] = "";

		if (name[0] != '.' && dash != NULL) {
			snprintf(shown, sizeof(shown), "%.*s-?", (int)(dash - name), name);
			for (size_t k = 0; k < count; k++)
				if (strncmp(dash + 1, names[k], 64) == 0)
					snprintf(shown, sizeof(shown), "%.*s-%c", (int)(dash - name), name, (char)('A' + k));
			if (out[0] != '\0')
				strncat(out, " ", size - strlen(out) - 1);
			strncat(out, shown, size - strlen(out) - 1);
		}
		free(entries[i]);
	}
	free(entries);
}

static void stage(struct key_store *store, char hash[SHA256_HEX_SIZE])
{
	struct error err = { 0 };
	EVP_PKEY *key = private_key_generate("ecdsa-p256", &err);

	CHECK(key != NULL && key_store_stage(store, "mc-shop", key, hash, &err) == 0);
	EVP_PKEY_free(key);
}

int main(int argc, char *argv[])
{
	char hashes[3][SHA256_HEX_SIZE], text[512], from[4400], to[4400];
	struct key_store store;
	struct error err = { 0 };
	struct stat info;
	char *pem;
	size_t length;

	snprintf(store_path, sizeof(store_path), "%s/keys/a/b", argc > 1 ? argv[1] : "/tmp");
	snprintf(cert_path, sizeof(cert_path), "%s/mc-shop", store_path);

	/* A missing store is empty for a reader, made 0700 for a writer. */
	CHECK(key_store_open(store_path, false, &store, &err) == 0 && store.fd < 0);
	memset(hashes, '0', sizeof(hashes));
	hashes[0][64] = '\0';
	CHECK(key_store_find(&store, "mc-shop", hashes[0], &pem, &length, &err) == EXIT_NOT_FOUND);
	CHECK(key_store_open(store_path, true, &store, &err) == 0 && store.fd >= 0);
	CHECK(stat(store_path, &info) == 0 && (info.st_mode & 0777) == 0700);

	stage(&store, hashes[0]);
	CHECK(stat(cert_path, &info) == 0 && (info.st_mode & 0777) == 0700);
	listing(hashes, 1, text, sizeof(text));
	CHECK_STR("staged-A", text);
	snprintf(from, sizeof(from), "%s/staged-%s.key", cert_path, hashes[0]);
	CHECK(stat(from, &info) == 0 && (info.st_mode & 0777) == 0600);
	CHECK(key_store_find(&store, "mc-shop", hashes[0], &pem, &length, &err) == 0);
	CHECK(pem != NULL && strncmp(pem, "-----BEGIN PRIVATE KEY-----", 27) == 0);
	secret_free(pem, length);

	CHECK(key_store_promote(&store, "mc-shop", hashes[0], &err) == 0);
	listing(hashes, 1, text, sizeof(text));
	CHECK_STR("current-A", text);
	/* Promoting the key in service again changes nothing. */
	CHECK(key_store_promote(&store, "mc-shop", hashes[0], &err) == 0);
	listing(hashes, 1, text, sizeof(text));
	CHECK_STR("current-A", text);

	stage(&store, hashes[1]);
	CHECK(key_store_promote(&store, "mc-shop", hashes[1], &err) == 0);
	listing(hashes, 2, text, sizeof(text));
	CHECK_STR("current-B previous-A", text);

	/* A promotion stopped after the demotion, before the promotion: the next one loses nothing. */
	stage(&store, hashes[2]);
	snprintf(from, sizeof(from), "%s/current-%s.key", cert_path, hashes[1]);
	snprintf(to, sizeof(to), "%s/previous-%s.key", cert_path, hashes[1]);
	snprintf(text, sizeof(text), "%s/previous-%s.key", cert_path, hashes[0]);
	CHECK(unlink(text) == 0 && rename(from, to) == 0);
	listing(hashes, 3, text, sizeof(text));
	CHECK_STR("previous-B staged-C", text);
	CHECK(key_store_promote(&store, "mc-shop", hashes[2], &err) == 0);
	listing(hashes, 3, text, sizeof(text));
	CHECK_STR("current-C previous-B", text);

	/* Back to the previous key (an older leaf deployed again): the two swap. */
	CHECK(key_store_find(&store, "mc-shop", hashes[1], &pem, &length, &err) == 0);
	secret_free(pem, length);
	CHECK(key_store_promote(&store, "mc-shop", hashes[1], &err) == 0);
	listing(hashes, 3, text, sizeof(text));
	CHECK_STR("current-B previous-C", text);

	/* The name is not trusted: a file holding another key under A's name is 65. */
	snprintf(from, sizeof(from), "%s/current-%s.key", cert_path, hashes[1]);
	snprintf(to, sizeof(to), "%s/staged-%s.key", cert_path, hashes[0]);
	CHECK(link(from, to) == 0);
	CHECK(key_store_find(&store, "mc-shop", hashes[0], &pem, &length, &err) == EXIT_DATA);
	CHECK(pem == NULL && strstr(err.message, "not the one its name says") != NULL);
	CHECK(unlink(to) == 0);
	CHECK(key_store_find(&store, "mc-shop", hashes[0], &pem, &length, &err) == EXIT_NOT_FOUND);
	CHECK(key_store_promote(&store, "mc-shop", hashes[0], &err) == EXIT_NOT_FOUND);

	CHECK(key_store_find(&store, "../mc-shop", hashes[1], &pem, &length, &err) == EXIT_DATA);
	CHECK(key_store_find(&store, ".hidden", hashes[1], &pem, &length, &err) == EXIT_DATA);
	CHECK(key_store_find(&store, "", hashes[1], &pem, &length, &err) == EXIT_DATA);
	key_store_close(&store);

	/* A store open to others is refused. */
	CHECK(chmod(store_path, 0755) == 0);
	CHECK(key_store_open(store_path, false, &store, &err) == EXIT_CONFIG);
	CHECK(strstr(err.message, "mode 0755") != NULL);
	return CHECK_DONE();
}
