/* Whole-file reads for small inputs (SQL, PEM, key files). */
#ifndef CERTCTL_FILEIO_H
#define CERTCTL_FILEIO_H

#include <stddef.h>

#include "error.h"

/*
 * Reads path into a NUL-terminated buffer the caller free()s; *length (may be
 * NULL) excludes the NUL. Files over max_bytes are refused (EXIT_DATA); a
 * missing or unreadable file is EXIT_NOT_FOUND.
 */
char *file_read_all(const char *path, size_t max_bytes, size_t *length, struct error *err);

#endif
