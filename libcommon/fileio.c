#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
