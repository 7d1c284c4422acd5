#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/x509_vfy.h>

#include "deadline.h"
#include "exitcode.h"
#include "sslerror.h"
#include "tcpconnect.h"
#include "tlsprobe.h"

#define SECONDS_PER_DAY 86400L

/* A bare IPv6 address would make the port ambiguous: it must be in brackets. */
int tls_endpoint_parse(const char *text, struct tls_endpoint *endpoint, struct error *err)
{
	const char *host = text, *host_end, *port;
	unsigned char address[sizeof(struct in6_addr)];
	size_t host_length;
	long port_number;
	char *end;

	if (text[0] == '[') {
		host = text + 1;
		host_end = strchr(host, ']');
		if (host_end == NULL || host_end[1] != ':')
			goto malformed;
		port = host_end + 2;
	} else {
		host_end = strrchr(text, ':');
		if (host_end == NULL || memchr(text, ':', (size_t)(host_end - text)) != NULL)
			goto malformed;
		port = host_end + 1;
	}
	host_length = (size_t)(host_end - host);
	if (host_length == 0 || host_length >= sizeof(endpoint->host))
		goto malformed;
	if (port[0] < '0' || port[0] > '9')
		goto malformed;
	errno = 0;
	port_number = strtol(port, &end, 10);
	if (errno != 0 || *end != '\0' || port_number < 1 || port_number > 65535)
		goto malformed;
	memcpy(endpoint->host, host, host_length);
	endpoint->host[host_length] = '\0';
	snprintf(endpoint->port, sizeof(endpoint->port), "%ld", port_number);
	endpoint->host_is_ip = inet_pton(AF_INET, endpoint->host, address) == 1 ||
			       inet_pton(AF_INET6, endpoint->host, address) == 1;
	if (text[0] == '[' && inet_pton(AF_INET6, endpoint->host, address) != 1)
		goto malformed;
	return 0;
malformed:
	return error_set(err, EXIT_USAGE, "%s: endpoint must be HOST:PORT or [IPV6]:PORT", text);
}

/* failure as err: the endpoint, what was being done (connect, TLS handshake), why. */
static int tcp_failure_error(const struct tcp_failure *failure, const char *what, const char *endpoint,
			     const char *host, int timeout_seconds, struct error *err)
{
	switch (failure->step) {
	case TCP_FAILED_RESOLVE:
		return error_set(err, EXIT_UNAVAILABLE, "%s: cannot resolve %s: %s", endpoint, host,
				 failure->resolve_status == EAI_SYSTEM ? strerror(failure->error_number)
								       : gai_strerror(failure->resolve_status));
	case TCP_FAILED_NO_ADDRESS:
		return error_set(err, EXIT_UNAVAILABLE, "%s: no address to connect to", endpoint);
	case TCP_FAILED_SOCKET:
		return error_set(err, EXIT_UNAVAILABLE, "%s: socket: %s", endpoint,
				 strerror(failure->error_number));
	case TCP_FAILED_TIMEOUT:
		return error_set(err, EXIT_UNAVAILABLE, "%s: %s timed out after %d s", endpoint, what,
				 timeout_seconds);
	case TCP_FAILED_STOPPED:
		return error_set(err, EXIT_TEMPORARY, "%s: %s interrupted by a signal", endpoint, what);
	case TCP_FAILED_CONNECT:
	default:
		return error_set(err, EXIT_UNAVAILABLE, "%s: %s: %s", endpoint, what,
				 strerror(failure->error_number));
	}
}

/*
 * Waits for events on fd until the deadline. Returns 0 when ready, else an
 * exit code: EXIT_UNAVAILABLE on timeout, EXIT_TEMPORARY when a stop signal came.
 */
static int wait_for(int fd, short events, long long deadline, const char *what,
		    const char *endpoint, int timeout_seconds, struct error *err)
{
	struct tcp_failure failure;

	if (tcp_wait(fd, events, deadline, true, &failure) == 0)
		return 0;
	return tcp_failure_error(&failure, what, endpoint, NULL, timeout_seconds, err);
}

static int handshake(SSL *ssl, int fd, long long deadline, const char *text,
		     int timeout_seconds, struct error *err)
{
	char reason[256];
	int status, ssl_error;

	for (;;) {
		ERR_clear_error();
		status = SSL_connect(ssl);
		if (status == 1)
			return 0;
		ssl_error = SSL_get_error(ssl, status);
		if (ssl_error == SSL_ERROR_WANT_READ)
			status = wait_for(fd, POLLIN, deadline, "TLS handshake", text, timeout_seconds, err);
		else if (ssl_error == SSL_ERROR_WANT_WRITE)
			status = wait_for(fd, POLLOUT, deadline, "TLS handshake", text, timeout_seconds, err);
		else if (ssl_error == SSL_ERROR_SYSCALL && errno != 0)
			return error_set(err, EXIT_UNAVAILABLE, "%s: TLS handshake: %s", text,
					 strerror(errno));
		else
			return error_set(err, EXIT_UNAVAILABLE, "%s: TLS handshake failed: %s", text,
					 openssl_reason(reason, sizeof(reason),
							"connection closed by peer"));
		if (status != 0)
			return status;
	}
}

/* Trust anchors from ca_file, or the system's default locations when NULL. */
static X509_STORE *load_trust_store(const char *ca_file, struct error *err)
{
	X509_STORE *store = X509_STORE_new();
	char reason[256];
	FILE *file;

	if (store == NULL) {
		error_set(err, EXIT_INTERNAL, "out of memory");
		return NULL;
	}
	if (ca_file == NULL) {
		if (X509_STORE_set_default_paths(store) != 1)
			ERR_clear_error(); /* no system store: nothing will verify, which is the answer */
		return store;
	}
	if ((file = fopen(ca_file, "r")) == NULL) {
		error_set(err, EXIT_NOT_FOUND, "%s: %s", ca_file, strerror(errno));
		X509_STORE_free(store);
		return NULL;
	}
	fclose(file);
	if (X509_STORE_load_file(store, ca_file) != 1) {
		error_set(err, EXIT_DATA, "%s: no usable CA certificate: %s", ca_file,
			  openssl_reason(reason, sizeof(reason), "no PEM certificate"));
		X509_STORE_free(store);
		return NULL;
	}
	return store;
}

/* Sets verified_chain and verify_error; the name is a host name or an IP literal. */
static int verify_peer_chain(X509_STORE *store, X509 *leaf, STACK_OF(X509) *untrusted,
			     const char *name, bool name_is_ip, struct tls_probe_result *result,
			     struct error *err)
{
	X509_STORE_CTX *context = X509_STORE_CTX_new();
	X509_VERIFY_PARAM *param;
	int code = 0, status;

	if (context == NULL || X509_STORE_CTX_init(context, store, leaf, untrusted) != 1) {
		code = error_set(err, EXIT_INTERNAL, "cannot set up certificate verification");
		goto out;
	}
	param = X509_STORE_CTX_get0_param(context);
	X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_SERVER);
	status = name_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name)
			    : X509_VERIFY_PARAM_set1_host(param, name, 0);
	if (status != 1) {
		code = error_set(err, EXIT_INTERNAL, "cannot check the certificate against '%s'", name);
		goto out;
	}
	result->verified_chain = X509_verify_cert(context) == 1;
	if (!result->verified_chain)
		snprintf(result->verify_error, sizeof(result->verify_error), "%s",
			 X509_verify_cert_error_string(X509_STORE_CTX_get_error(context)));
out:
	ERR_clear_error();
	X509_STORE_CTX_free(context);
	return code;
}

static int read_validity(X509 *leaf, struct tls_probe_result *result, struct error *err)
{
	struct tm not_after;
	time_t expires, now = time(NULL);
	long long seconds_left;

	if (ASN1_TIME_to_tm(X509_get0_notAfter(leaf), &not_after) != 1)
		return error_set(err, EXIT_UNAVAILABLE, "the peer certificate has an unreadable notAfter");
	expires = timegm(&not_after);
	strftime(result->not_after, sizeof(result->not_after), "%Y-%m-%dT%H:%M:%SZ", &not_after);
	seconds_left = (long long)expires - (long long)now;
	/* floor, also for an expired certificate: one second past is day -1 */
	result->days_left = (long)(seconds_left >= 0 ? seconds_left / SECONDS_PER_DAY
						     : -((-seconds_left + SECONDS_PER_DAY - 1) / SECONDS_PER_DAY));
	return 0;
}

static int leaf_fingerprint(X509 *leaf, struct tls_probe_result *result, struct error *err)
{
	if (certificate_fingerprint(leaf, result->fingerprint_sha256) != 0)
		return error_set(err, EXIT_INTERNAL, "cannot encode the peer certificate");
	return 0;
}

/* What every probe of a run shares: the trust anchors (parsing the system store costs tens of ms) and the TLS context. */
struct tls_prober {
	X509_STORE *store;
	SSL_CTX *ssl_context;
};

struct tls_prober *tls_prober_new(const char *ca_file, struct error *err)
{
	struct tls_prober *prober = calloc(1, sizeof(*prober));
	char reason[256];

	if (prober == NULL) {
		error_set(err, EXIT_INTERNAL, "out of memory");
		return NULL;
	}
	if ((prober->store = load_trust_store(ca_file, err)) == NULL) {
		free(prober);
		return NULL;
	}
	if ((prober->ssl_context = SSL_CTX_new(TLS_client_method())) == NULL) {
		error_set(err, EXIT_INTERNAL, "cannot set up TLS: %s",
			  openssl_reason(reason, sizeof(reason), "out of memory"));
		tls_prober_free(prober);
		return NULL;
	}
	/* Any certificate must be readable; trust is decided apart from the handshake. */
	SSL_CTX_set_verify(prober->ssl_context, SSL_VERIFY_NONE, NULL);
	return prober;
}

void tls_prober_free(struct tls_prober *prober)
{
	if (prober == NULL)
		return;
	SSL_CTX_free(prober->ssl_context);
	X509_STORE_free(prober->store);
	free(prober);
}

int tls_prober_probe(struct tls_prober *prober, const char *endpoint_text, const char *sni,
		     int timeout_seconds, struct tls_probe_result *result, struct error *err)
{
	struct tls_endpoint endpoint;
	struct tcp_failure failure;
	SSL *ssl = NULL;
	X509 *leaf = NULL;
	const char *check_name;
	long long deadline;
	char reason[256];
	int fd = -1, code;

	memset(result, 0, sizeof(*result));
	if ((code = tls_endpoint_parse(endpoint_text, &endpoint, err)) != 0)
		return code;
	if (sni != NULL && sni[0] == '\0')
		sni = NULL;
	if (timeout_seconds < 1)
		return error_set(err, EXIT_USAGE, "the probe timeout must be at least 1 s");

	deadline = monotonic_milliseconds() + (long long)timeout_seconds * 1000;
	if ((fd = tcp_connect(endpoint.host, endpoint.port, deadline, true, &failure)) < 0) {
		code = tcp_failure_error(&failure, "connect", endpoint_text, endpoint.host,
					 timeout_seconds, err);
		goto out;
	}
	if ((ssl = SSL_new(prober->ssl_context)) == NULL || SSL_set_fd(ssl, fd) != 1) {
		code = error_set(err, EXIT_INTERNAL, "cannot set up TLS: %s",
				 openssl_reason(reason, sizeof(reason), "out of memory"));
		goto out;
	}
	if (sni == NULL && !endpoint.host_is_ip)
		sni = endpoint.host;
	if (sni != NULL && SSL_set_tlsext_host_name(ssl, sni) != 1) {
		code = error_set(err, EXIT_USAGE, "%s: cannot send '%s' as SNI", endpoint_text, sni);
		goto out;
	}
	if ((code = handshake(ssl, fd, deadline, endpoint_text, timeout_seconds, err)) != 0)
		goto out;
	if ((leaf = SSL_get1_peer_certificate(ssl)) == NULL) {
		code = error_set(err, EXIT_UNAVAILABLE, "%s: the peer sent no certificate", endpoint_text);
		goto out;
	}
	if ((code = leaf_fingerprint(leaf, result, err)) != 0 ||
	    (code = read_validity(leaf, result, err)) != 0)
		goto out;
	check_name = sni != NULL ? sni : endpoint.host;
	code = verify_peer_chain(prober->store, leaf, SSL_get_peer_cert_chain(ssl), check_name,
				 sni == NULL && endpoint.host_is_ip, result, err);
	if (code == 0)
		(void)SSL_shutdown(ssl); /* best effort close_notify; the socket is non-blocking */
out:
	ERR_clear_error();
	X509_free(leaf);
	SSL_free(ssl);
	if (fd >= 0)
		close(fd);
	return code;
}

int tls_probe(const char *endpoint_text, const char *sni, const char *ca_file,
	      int timeout_seconds, struct tls_probe_result *result, struct error *err)
{
	struct tls_endpoint endpoint;
	struct tls_prober *prober;
	int code;

	memset(result, 0, sizeof(*result));
	/* A malformed endpoint is reported before the CA file is read, as before. */
	if ((code = tls_endpoint_parse(endpoint_text, &endpoint, err)) != 0)
		return code;
	if (timeout_seconds < 1)
		return error_set(err, EXIT_USAGE, "the probe timeout must be at least 1 s");
	/* A bad CA file is found before anything is sent over the network. */
	if ((prober = tls_prober_new(ca_file, err)) == NULL)
		return err->code;
	code = tls_prober_probe(prober, endpoint_text, sni, timeout_seconds, result, err);
	tls_prober_free(prober);
	return code;
}
