/* Reads the certificate a live TLS endpoint serves (post-deploy verification). */
#ifndef CERTCTL_TLSPROBE_H
#define CERTCTL_TLSPROBE_H

#include <stdbool.h>

#include "digest.h"
#include "error.h"

struct tls_probe_result {
	char fingerprint_sha256[SHA256_HEX_SIZE]; /* lowercase hex SHA-256 of the leaf's DER */
	char not_after[32];                       /* RFC 3339 UTC */
	long days_left;                           /* whole days until not_after; negative when expired */
	bool verified_chain;                      /* chain verifies against ca_file or the system store */
	char verify_error[256];                   /* why it did not verify, or "" */
};

/* An endpoint split into what getaddrinfo() and SNI take. */
struct tls_endpoint {
	char host[256];
	char port[6];
	bool host_is_ip;
};

/* Parses "host:port" or "[v6]:port"; malformed: EXIT_USAGE. */
int tls_endpoint_parse(const char *text, struct tls_endpoint *endpoint, struct error *err);

/*
 * Handshakes with endpoint ("host:port", "[v6]:port") sending SNI sni (NULL:
 * the host, unless it is an IP address) and reads the peer's leaf certificate
 * without making a trust decision; the chain is then checked against ca_file
 * (NULL: the system store) and reported in result. Unreachable, refused,
 * timed out (timeout_seconds for connect and handshake together) or a failed
 * handshake: EXIT_UNAVAILABLE. A malformed endpoint: EXIT_USAGE.
 */
int tls_probe(const char *endpoint, const char *sni, const char *ca_file,
	      int timeout_seconds, struct tls_probe_result *result, struct error *err);

#endif
