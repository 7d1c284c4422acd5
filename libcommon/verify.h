/* Probing one endpoint and comparing what it serves with what it should (certctl-verify). */
#ifndef CERTCTL_VERIFY_H
#define CERTCTL_VERIFY_H

#include <stdbool.h>
#include <stdio.h>

#include "digest.h"
#include "error.h"

#define VERIFY_DEFAULT_TIMEOUT_SECONDS 10
#define VERIFY_MAX_TIMEOUT_SECONDS 3600

struct verify_request {
	const char *endpoint;       /* "host:port" or "[v6]:port" */
	const char *sni;            /* NULL: the host, unless it is an IP literal */
	const char *expect_sha256;  /* normalized by verify_normalize_fingerprint, or NULL */
	const char *certificate_id; /* compare with its current version, or NULL */
	const char *ca_file;        /* NULL: the system store */
	const char *dsn;            /* only used with certificate_id */
	int timeout_seconds;
};

/*
 * Accepts 64 hex digits in either case, optionally colon-separated in pairs
 * (as `openssl x509 -fingerprint -sha256` prints them); writes lowercase hex.
 */
bool verify_normalize_fingerprint(const char *text, char hex[SHA256_HEX_SIZE]);

/*
 * Looks up the expected fingerprint (if any), probes the endpoint and prints
 * one JSON line on output. Returns 0, EXIT_FAILED_CLEANLY on a fingerprint mismatch
 * (err says what was served and expected), or the exit code of the failure.
 */
int verify_endpoint(const struct verify_request *request, FILE *output, struct error *err);

#endif
