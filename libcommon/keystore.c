#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/pem.h>

#include "csrmake.h"
#include "exitcode.h"
#include "fileio.h"
#include "keystore.h"

#define KEY_FILE_NAME_SIZE 96   /* "previous-" + 64 hex + ".key" + NUL, with room */

/* The three states a key file is in, by the prefix of its name. */
static const char *const key_states[] = { "current", "staged", "previous" };

static const char *key_store_path(const char *path)
{
	const char *from_environment = getenv(KEY_DIR_ENV);

	if (path != NULL)
		return path;
	return from_environment != NULL && from_environment[0] != '\0' ? from_environment : KEY_DIR_DEFAULT;
}

/* mkdir -p with mode 0700 for what it makes; 0, or -1 with errno. */
static int make_directories(const char *path)
{
	char partial[PATH_MAX];
	size_t length = strlen(path);

	if (length >= sizeof(partial)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(partial, path, length + 1);
	for (size_t i = 1; i <= length; i++) {
		if (partial[i] != '/' && partial[i] != '\0')
			continue;
		partial[i] = '\0';
		if (mkdir(partial, 0700) != 0 && errno != EEXIST)
			return -1;
		partial[i] = i == length ? '\0' : '/';
	}
	return 0;
}

/* A directory holding keys: ours and closed to everyone else. */
static int check_private_directory(int fd, const char *path, struct error *err)
{
	struct stat info;

	if (fstat(fd, &info) != 0)
		return error_set(err, EXIT_CONFIG, "key directory %s: %s", path, strerror(errno));
	if (info.st_uid != geteuid())
		return error_set(err, EXIT_CONFIG, "key directory %s: owned by uid %u, not by this user (%u)",
				 path, (unsigned)info.st_uid, (unsigned)geteuid());
	if ((info.st_mode & 0077) != 0)
		return error_set(err, EXIT_CONFIG, "key directory %s: open to group or others (mode %04o); chmod 0700 it",
				 path, (unsigned)(info.st_mode & 07777));
	return 0;
}

int key_store_open(const char *path, bool create, struct key_store *store, struct error *err)
{
	path = key_store_path(path);
	store->fd = -1;
	if (snprintf(store->path, sizeof(store->path), "%s", path) >= (int)sizeof(store->path))
		return error_set(err, EXIT_CONFIG, "key directory %.200s...: name too long", path);
	if (create && make_directories(path) != 0)
		return error_set(err, EXIT_CANT_CREATE, "key directory %s: %s", path, strerror(errno));
	store->fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (store->fd < 0) {
		if (errno == ENOENT && !create)
			return 0;
		return error_set(err, errno == ENOTDIR ? EXIT_CONFIG : EXIT_CANT_CREATE, "key directory %s: %s",
				 path, strerror(errno));
	}
	if (check_private_directory(store->fd, path, err) != 0) {
		key_store_close(store);
		return err->code;
	}
	return 0;
}

void key_store_close(struct key_store *store)
{
	if (store->fd >= 0)
		close(store->fd);
	store->fd = -1;
}

/*
 * The certificate's directory, locked against another certctl-csr or
 * certctl-deploy of the same certificate. Missing and !create: EXIT_NOT_FOUND.
 */
static int open_certificate_directory(const struct key_store *store, const char *certificate_id, bool create,
				      int *fd, struct error *err)
{
	char path[PATH_MAX];
	int code;

	*fd = -1;
	if (certificate_id[0] == '\0' || certificate_id[0] == '.' || strchr(certificate_id, '/') != NULL ||
	    strlen(certificate_id) > NAME_MAX - KEY_FILE_NAME_SIZE)
		return error_set(err, EXIT_DATA, "certificate id \"%.200s\": not usable as a directory name of %s",
				 certificate_id, store->path);
	snprintf(path, sizeof(path), "%s/%s", store->path, certificate_id);
	if (store->fd < 0)
		return error_set(err, EXIT_NOT_FOUND, "%s: no such directory", path);
	if (create && mkdirat(store->fd, certificate_id, 0700) == 0 && fsync(store->fd) != 0)
		return error_set(err, EXIT_CANT_CREATE, "%s: fsync: %s", store->path, strerror(errno));
	if ((*fd = openat(store->fd, certificate_id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return error_set(err, errno == ENOENT && !create ? EXIT_NOT_FOUND : EXIT_CANT_CREATE, "%s: %s",
				 path, strerror(errno));
	if ((code = check_private_directory(*fd, path, err)) == 0 && flock(*fd, LOCK_EX) != 0)
		code = error_set(err, errno == EINTR ? EXIT_TEMPORARY : EXIT_CANT_CREATE, "%s: lock: %s", path,
				 strerror(errno));
	if (code != 0) {
		close(*fd);
		*fd = -1;
	}
	return code;
}

static void key_file_name(const char *state, const char hash[SHA256_HEX_SIZE], char name[KEY_FILE_NAME_SIZE])
{
	snprintf(name, KEY_FILE_NAME_SIZE, "%s-%s.key", state, hash);
}

/* Whether name is "<state>-<64 hex>.key"; hash gets its digest. */
static bool key_file_parse(const char *name, const char *state, char hash[SHA256_HEX_SIZE])
{
	size_t prefix = strlen(state);

	if (strncmp(name, state, prefix) != 0 || name[prefix] != '-' ||
	    strspn(name + prefix + 1, "0123456789abcdef") != SHA256_HEX_SIZE - 1 ||
	    strcmp(name + prefix + SHA256_HEX_SIZE, ".key") != 0)
		return false;
	memcpy(hash, name + prefix + 1, SHA256_HEX_SIZE - 1);
	hash[SHA256_HEX_SIZE - 1] = '\0';
	return true;
}

int key_store_stage(struct key_store *store, const char *certificate_id, EVP_PKEY *key,
		    char hash[SHA256_HEX_SIZE], struct error *err)
{
	char name[KEY_FILE_NAME_SIZE], temp[KEY_FILE_NAME_SIZE + 8];
	unsigned char *pem = NULL;
	size_t length = 0;
	int dir_fd = -1, fd = -1, code;

	if (public_key_sha256(key, hash) != 0)
		return error_set(err, EXIT_INTERNAL, "the new key's public key does not encode");
	if ((code = open_certificate_directory(store, certificate_id, true, &dir_fd, err)) != 0 ||
	    (code = private_key_pem(key, &pem, &length, err)) != 0)
		goto out;
	key_file_name("staged", hash, name);
	snprintf(temp, sizeof(temp), ".%s.tmp", name);
	unlinkat(dir_fd, temp, 0);
	/* Whole or not at all: the name appears only once the bytes are on disk. */
	if ((fd = openat(dir_fd, temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0 ||
	    fd_write_all(fd, pem, length) != 0 || fsync(fd) != 0 || close(fd) != 0 ||
	    (fd = -1, linkat(dir_fd, temp, dir_fd, name, 0)) != 0) {
		code = error_set(err, EXIT_CANT_CREATE, "%s/%s/%s: %s", store->path, certificate_id, name,
				 strerror(errno));
		unlinkat(dir_fd, temp, 0);
		goto out;
	}
	if (unlinkat(dir_fd, temp, 0) != 0 || fsync(dir_fd) != 0)
		code = error_set(err, EXIT_CANT_CREATE, "%s/%s: %s", store->path, certificate_id, strerror(errno));
out:
	if (fd >= 0)
		close(fd);
	if (dir_fd >= 0)
		close(dir_fd);
	if (pem != NULL)
		OPENSSL_cleanse(pem, length);
	free(pem);
	return code;
}

void key_store_unstage(struct key_store *store, const char *certificate_id, const char hash[SHA256_HEX_SIZE])
{
	struct error ignored = { 0, "" };
	char name[KEY_FILE_NAME_SIZE];
	int dir_fd;

	if (open_certificate_directory(store, certificate_id, false, &dir_fd, &ignored) != 0)
		return;
	key_file_name("staged", hash, name);
	if (unlinkat(dir_fd, name, 0) == 0)
		fsync(dir_fd);
	close(dir_fd);
}

/* The state (key_states[]) of the key with hash in dir_fd: -1 when there is none. */
static int key_file_find(int dir_fd, const char hash[SHA256_HEX_SIZE], char name[KEY_FILE_NAME_SIZE],
			 struct stat *info)
{
	for (size_t i = 0; i < sizeof(key_states) / sizeof(key_states[0]); i++) {
		key_file_name(key_states[i], hash, name);
		if (fstatat(dir_fd, name, info, AT_SYMLINK_NOFOLLOW) == 0)
			return (int)i;
	}
	return -1;
}

/* The file's key must be the one its name says: a PEM private key with that public key. */
static int key_pem_check(const char *pem, size_t length, const char hash[SHA256_HEX_SIZE], const char *path,
			 struct error *err)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)length);
	EVP_PKEY *key = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	char actual[SHA256_HEX_SIZE];
	int code = 0;

	if (key == NULL)
		code = error_set(err, EXIT_DATA, "%s: not a PEM private key", path);
	else if (public_key_sha256(key, actual) != 0 || strcmp(actual, hash) != 0)
		code = error_set(err, EXIT_DATA, "%s: holds a key whose public key is %s, not the one its name says",
				 path, actual);
	EVP_PKEY_free(key);
	BIO_free(bio);
	return code;
}

int key_store_find(struct key_store *store, const char *certificate_id, const char hash[SHA256_HEX_SIZE],
		   char **pem, size_t *length, struct error *err)
{
	char name[KEY_FILE_NAME_SIZE], path[PATH_MAX];
	struct stat info;
	int dir_fd, code;

	*pem = NULL;
	*length = 0;
	if ((code = open_certificate_directory(store, certificate_id, false, &dir_fd, err)) != 0)
		return code == EXIT_NOT_FOUND
			       ? error_set(err, EXIT_NOT_FOUND, "no key in %s/%s has public key %s", store->path,
					   certificate_id, hash)
			       : code;
	if (key_file_find(dir_fd, hash, name, &info) < 0) {
		code = error_set(err, EXIT_NOT_FOUND, "no key in %s/%s has public key %s", store->path,
				 certificate_id, hash);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/%s/%s", store->path, certificate_id, name);
	if (!S_ISREG(info.st_mode)) {
		code = error_set(err, EXIT_DATA, "%s: not a regular file", path);
		goto out;
	}
	if ((*pem = secret_file_read(path, KEY_STORE_FILE_MAX_BYTES, length, err)) == NULL) {
		code = err->code;
		goto out;
	}
	if ((code = key_pem_check(*pem, *length, hash, path, err)) != 0) {
		secret_free(*pem, *length);
		*pem = NULL;
		*length = 0;
	}
out:
	close(dir_fd);
	return code;
}

/* Removes what the old order leaves behind; the first failure is kept in err. */
static int prune(int dir_fd, const char *dir_path, const char hash[SHA256_HEX_SIZE],
		 const struct timespec *made, bool previous_too, struct error *err)
{
	char other[SHA256_HEX_SIZE];
	struct dirent *entry;
	struct stat info;
	int listing_fd = dup(dir_fd), code = 0;
	DIR *listing = listing_fd >= 0 ? fdopendir(listing_fd) : NULL;

	if (listing == NULL) {
		if (listing_fd >= 0)
			close(listing_fd);
		return error_set(err, EXIT_CANT_CREATE, "%s: %s", dir_path, strerror(errno));
	}
	rewinddir(listing);
	while ((entry = readdir(listing)) != NULL) {
		bool drop = false;

		if (key_file_parse(entry->d_name, "previous", other))
			drop = previous_too && strcmp(other, hash) != 0;
		else if (key_file_parse(entry->d_name, "staged", other) && strcmp(other, hash) != 0 &&
			 fstatat(dir_fd, entry->d_name, &info, AT_SYMLINK_NOFOLLOW) == 0)
			drop = info.st_mtim.tv_sec < made->tv_sec ||
			       (info.st_mtim.tv_sec == made->tv_sec && info.st_mtim.tv_nsec < made->tv_nsec);
		if (drop && unlinkat(dir_fd, entry->d_name, 0) != 0 && code == 0)
			code = error_set(err, EXIT_CANT_CREATE, "%s/%s: %s", dir_path, entry->d_name, strerror(errno));
	}
	closedir(listing);
	return code;
}

/* The current key other than hash, if any: its digest in current. */
static bool other_current_key(int dir_fd, const char hash[SHA256_HEX_SIZE], char current[SHA256_HEX_SIZE])
{
	int listing_fd = dup(dir_fd);
	DIR *listing = listing_fd >= 0 ? fdopendir(listing_fd) : NULL;
	struct dirent *entry;
	bool found = false;

	if (listing == NULL) {
		if (listing_fd >= 0)
			close(listing_fd);
		return false;
	}
	rewinddir(listing);
	while (!found && (entry = readdir(listing)) != NULL)
		found = key_file_parse(entry->d_name, "current", current) && strcmp(current, hash) != 0;
	closedir(listing);
	return found;
}

int key_store_promote(struct key_store *store, const char *certificate_id, const char hash[SHA256_HEX_SIZE],
		      struct error *err)
{
	char name[KEY_FILE_NAME_SIZE], target[KEY_FILE_NAME_SIZE], demoted[KEY_FILE_NAME_SIZE];
	char dir_path[PATH_MAX], current[SHA256_HEX_SIZE];
	struct stat info;
	int dir_fd, state, code;
	bool demoting;

	if ((code = open_certificate_directory(store, certificate_id, false, &dir_fd, err)) != 0)
		return code;
	snprintf(dir_path, sizeof(dir_path), "%s/%s", store->path, certificate_id);
	if ((state = key_file_find(dir_fd, hash, name, &info)) < 0) {
		code = error_set(err, EXIT_NOT_FOUND, "no key in %s has public key %s", dir_path, hash);
		goto out;
	}
	/*
	 * The previous key goes only when there is a current one to take its
	 * place, so a run stopped between the two renames loses nothing.
	 */
	demoting = state != 0 && other_current_key(dir_fd, hash, current);
	if (demoting) {
		if ((code = prune(dir_fd, dir_path, hash, &info.st_mtim, true, err)) != 0)
			goto out;
		key_file_name("current", current, name);
		key_file_name("previous", current, demoted);
		if (renameat(dir_fd, name, dir_fd, demoted) != 0) {
			code = error_set(err, EXIT_CANT_CREATE, "%s/%s: %s", dir_path, name, strerror(errno));
			goto out;
		}
		key_file_find(dir_fd, hash, name, &info);
	}
	if (state != 0) {
		key_file_name("current", hash, target);
		if (renameat(dir_fd, name, dir_fd, target) != 0) {
			code = error_set(err, EXIT_CANT_CREATE, "%s/%s: %s", dir_path, name, strerror(errno));
			goto out;
		}
	}
	if ((code = prune(dir_fd, dir_path, hash, &info.st_mtim, false, err)) == 0 && fsync(dir_fd) != 0)
		code = error_set(err, EXIT_CANT_CREATE, "%s: fsync: %s", dir_path, strerror(errno));
out:
	close(dir_fd);
	return code;
}
