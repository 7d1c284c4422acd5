/*
 * An issuer of type "command": its config, and one run of it for one
 * certificate under the environment protocol of certctl-issue(1).
 */
#ifndef CERTCTL_ISSUER_H
#define CERTCTL_ISSUER_H

#include <stddef.h>

#include "error.h"
#include "runcmd.h"

#define ISSUER_DEFAULT_TIMEOUT_SECONDS 300
/* A day, as certctl-import allows: longer is a stuck issuer, not a slow one. */
#define ISSUER_MAX_TIMEOUT_SECONDS 86400

struct issuer {
	char **argv;                    /* NULL-terminated; freed by issuer_free() */
	int timeout_seconds;
};

/*
 * An issuers row's type and config (JSON text) as an issuer: type
 * "command", config {"command":[argv...],"timeout":SECONDS} with a
 * non-empty argv of non-empty strings and a whole timeout from 1 to
 * ISSUER_MAX_TIMEOUT_SECONDS (default ISSUER_DEFAULT_TIMEOUT_SECONDS).
 * Anything else: EXIT_CONFIG naming what is wrong.
 */
int issuer_parse(const char *issuer_id, const char *type, const char *config_json,
		 struct issuer *issuer, struct error *err);
void issuer_free(struct issuer *issuer);

struct issuer_request {
	const char *certificate_id;
	const char *const *names;       /* every name, the common name first */
	size_t name_count;
	const char *csr_pem;
};

/*
 * Runs the issuer for request in a fresh 0700 directory holding the CSR:
 * argv with stdin /dev/null, a scrubbed environment (runcmd.h) plus
 * CERTCTL_CSR_FILE, CERTCTL_CERT_FILE, CERTCTL_CERTIFICATE_ID,
 * CERTCTL_COMMON_NAME and CERTCTL_SANS, within its timeout; then reads what
 * it wrote to CERTCTL_CERT_FILE into *cert_pem (malloc'd, *cert_length
 * bytes). The directory is removed on every path. An issuer that fails,
 * times out or writes nothing: EXIT_FAILED_CLEANLY, err ending with its
 * last stderr line. No directory or file: EXIT_CANT_CREATE.
 */
int issuer_run(const struct issuer *issuer, const struct issuer_request *request, char **cert_pem,
	       size_t *cert_length, struct error *err);

#endif
