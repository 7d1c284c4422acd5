/*
 * The names a certificate is asked for (its common name and SANs), and
 * whether an issued leaf or a submitted CSR carries exactly those.
 */
#ifndef CERTCTL_CERTNAMES_H
#define CERTCTL_CERTNAMES_H

#include <stddef.h>

#include <openssl/x509.h>

#include "error.h"

struct name_request {
	const char *common_name;
	const char *const *sans;    /* DNS names and IP literals; may repeat the common name */
	size_t san_count;
};

/*
 * The leaf's subjectAltName DNS names and IP addresses are, as a set, the
 * common name and the sans (DNS names case-insensitively, IP addresses by
 * value), and its CN, when it has one, is one of them. Otherwise EXIT_DATA
 * naming the first name found or missing.
 */
int certificate_names_check(X509 *leaf, const struct name_request *names, struct error *err);

/* The same for a CSR's requested subjectAltName and subject CN. */
int csr_names_check(X509_REQ *request, const struct name_request *names, struct error *err);

#endif
