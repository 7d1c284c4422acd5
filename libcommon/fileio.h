/* Whole-file reads for small inputs (SQL, PEM, key files), and whole-file atomic writes. */
#ifndef CERTCTL_FILEIO_H
#define CERTCTL_FILEIO_H

#include <stddef.h>
#include <sys/types.h>

#include "error.h"

/*
 * Reads path into a NUL-terminated buffer the caller free()s; *length (may be
 * NULL) excludes the NUL. Files over max_bytes are refused (EXIT_DATA); a
 * missing or unreadable file is EXIT_NOT_FOUND.
 */
char *file_read_all(const char *path, size_t max_bytes, size_t *length, struct error *err);

/*
 * Reads a secret (a password, a key) from a regular file: one buffer of
 * max_bytes, never grown (a realloc would leave copies behind), wiped on
 * every failure. Errors as file_read_all. Caller releases with secret_free().
 */
char *secret_file_read(const char *path, size_t max_bytes, size_t *length, struct error *err);

/* The secret's first line: the text is cut at the first CR or LF. */
char *secret_file_read_line(const char *path, size_t max_bytes, size_t *length, struct error *err);

/* write(2) until all length bytes are written; 0, or -1 with errno set. */
int fd_write_all(int fd, const void *bytes, size_t length);

/*
 * Replaces path with length bytes of data, mode mode: written to a temp file
 * ".<name>.certctl-tmp.XXXXXX" beside it, fsynced, renamed over path, the
 * directory fsynced, so a reader sees the old file or the new one. Not for
 * secrets. Returns 0 or EXIT_CANT_CREATE (nothing left behind).
 */
int file_write_atomic(const char *path, const char *data, size_t length, mode_t mode,
		      struct error *err);

/* Wipes length bytes (and the terminating NUL) and frees; NULL is fine. */
void secret_free(char *secret, size_t length);

#endif
