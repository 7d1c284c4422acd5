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

struct tls_endpoint {
	char host[256];
	char port[6];
	bool host_is_ip; /* an IPv4 or IPv6 literal: no SNI by default */
};

/* Parses "host:port" or "[v6]:port" (port 1..65535); malformed: EXIT_USAGE. */
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

/*
 * For many probes (certctl-verify --all): the trust store (ca_file, or the
 * system's) loaded once and one TLS context, shared by every probe and
 * thread. NULL with err set as tls_probe() would for a bad ca_file.
 */
struct tls_prober;
struct tls_prober *tls_prober_new(const char *ca_file, struct error *err);
void tls_prober_free(struct tls_prober *prober);

/* tls_probe() with the prober's trust store and context; safe from several threads at once. */
int tls_prober_probe(struct tls_prober *prober, const char *endpoint, const char *sni,
		     int timeout_seconds, struct tls_probe_result *result, struct error *err);

#endif
