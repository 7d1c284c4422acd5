#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "exitcode.h"
#include "fileio.h"

char *file_read_all(const char *path, size_t max_bytes, size_t *length, struct error *err)
{
	FILE *file = fopen(path, "rb");
	char *buffer = NULL;
	size_t used = 0, capacity = 0, got;

	if (file == NULL) {
		error_set(err, EXIT_NOT_FOUND, "%s: %s", path, strerror(errno));
		return NULL;
	}
	for (;;) {
		if (capacity - used < 4096) {
			char *grown;
			capacity = capacity ? capacity * 2 : 8192;
			grown = realloc(buffer, capacity + 1);
			if (grown == NULL) {
				error_set(err, EXIT_INTERNAL, "%s: out of memory", path);
				goto fail;
			}
			buffer = grown;
		}
		got = fread(buffer + used, 1, capacity - used, file);
		used += got;
		if (used > max_bytes) {
			error_set(err, EXIT_DATA, "%s: larger than %zu bytes", path, max_bytes);
			goto fail;
		}
		if (got == 0)
			break;
	}
	if (ferror(file)) {
		error_set(err, EXIT_NOT_FOUND, "%s: %s", path, strerror(errno));
		goto fail;
	}
	fclose(file);
	buffer[used] = '\0';
	if (length)
		*length = used;
	return buffer;
fail:
	free(buffer);
	fclose(file);
	return NULL;
}

char *secret_file_read(const char *path, size_t max_bytes, size_t *length, struct error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	struct stat info;
	char *buffer = NULL;
	size_t used = 0;
	ssize_t got;

	if (fd < 0) {
		error_set(err, EXIT_NOT_FOUND, "%s: %s", path, strerror(errno));
		return NULL;
	}
	/* A FIFO or a device would block or never end. */
	if (fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
		error_set(err, EXIT_DATA, "%s: not a regular file", path);
		goto out;
	}
	if ((buffer = malloc(max_bytes + 1)) == NULL) {
		error_set(err, EXIT_INTERNAL, "%s: out of memory", path);
		goto out;
	}
	/* One byte past the limit tells a file that is too large. */
	while (used <= max_bytes && (got = read(fd, buffer + used, max_bytes + 1 - used)) != 0) {
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			error_set(err, EXIT_NOT_FOUND, "%s: %s", path, strerror(errno));
			goto fail;
		}
		used += (size_t)got;
	}
	if (used > max_bytes) {
		error_set(err, EXIT_DATA, "%s: larger than %zu bytes", path, max_bytes);
		goto fail;
	}
	buffer[used] = '\0';
	if (length)
		*length = used;
	goto out;
fail:
	secret_free(buffer, max_bytes);
	buffer = NULL;
out:
	close(fd);
	return buffer;
}

char *secret_file_read_line(const char *path, size_t max_bytes, size_t *length, struct error *err)
{
	size_t total = 0, line;
	char *secret = secret_file_read(path, max_bytes, &total, err);

	if (secret == NULL)
		return NULL;
	line = strcspn(secret, "\r\n");
	/* What follows the first line is wiped too, not just hidden behind a NUL. */
	OPENSSL_cleanse(secret + line, total - line);
	if (length)
		*length = line;
	return secret;
}

int fd_write_all(int fd, const void *bytes, size_t length)
{
	const unsigned char *next = bytes;

	while (length > 0) {
		ssize_t written = write(fd, next, length);
		if (written < 0 && errno == EINTR)
			continue;
		if (written <= 0)
			return -1;
		next += written;
		length -= (size_t)written;
	}
	return 0;
}

void secret_free(char *secret, size_t length)
{
	if (secret == NULL)
		return;
	OPENSSL_cleanse(secret, length + 1);
	free(secret);
}

int file_write_atomic(const char *path, const char *data, size_t length, mode_t mode,
		      struct error *err)
{
	const char *slash = strrchr(path, '/');
	char temp[4096], directory[4096];
	const char *step = "write";
	size_t written = 0;
	ssize_t got;
	int fd, dir_fd;

	if (slash == NULL)
		snprintf(directory, sizeof(directory), ".");
	else if (slash == path)
		snprintf(directory, sizeof(directory), "/");
	else
		snprintf(directory, sizeof(directory), "%.*s", (int)(slash - path), path);
	if (snprintf(temp, sizeof(temp), "%s/.%s.certctl-tmp.XXXXXX", directory,
		     slash ? slash + 1 : path) >= (int)sizeof(temp))
		return error_set(err, EXIT_CANT_CREATE, "%s: path too long", path);
	if ((fd = mkstemp(temp)) < 0)
		return error_set(err, EXIT_CANT_CREATE, "%s: %s", temp, strerror(errno));
	while (written < length) {
		got = write(fd, data + written, length - written);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			goto fail;
		written += (size_t)got;
	}
	step = "fchmod";
	if (fchmod(fd, mode) != 0)
		goto fail;
	step = "fsync";
	if (fsync(fd) != 0)
		goto fail;
	step = "close";
	if (close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	step = "rename";
	if (rename(temp, path) != 0)
		goto fail;
	/* The rename is durable once the directory is. */
	if ((dir_fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		(void)fsync(dir_fd);
		close(dir_fd);
	}
	return 0;
fail:
	error_set(err, EXIT_CANT_CREATE, "%s: %s: %s", path, step, strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(temp);
	return err->code;
}
