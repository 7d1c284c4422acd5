/* A TCP connection made before a deadline, and the waits on its socket (tlsprobe, sshsession). */
#ifndef CERTCTL_TCPCONNECT_H
#define CERTCTL_TCPCONNECT_H

#include <stdbool.h>

/* Which step failed; the caller words the message (each names its endpoint its own way). */
enum tcp_failure_step {
	TCP_FAILED_RESOLVE,     /* resolve_status from getaddrinfo(); errno for EAI_SYSTEM */
	TCP_FAILED_NO_ADDRESS,  /* the name resolved to nothing */
	TCP_FAILED_SOCKET,      /* socket(): error_number */
	TCP_FAILED_CONNECT,     /* refused, unreachable, a poll error: error_number */
	TCP_FAILED_TIMEOUT,     /* the deadline passed */
	TCP_FAILED_STOPPED,     /* a stop signal came (only when stop_on_signal) */
};

struct tcp_failure {
	enum tcp_failure_step step;
	int resolve_status;
	int error_number;
};

/*
 * Waits until fd is ready for events or the monotonic deadline (milliseconds)
 * passes. Returns 0 when ready, or -1 with *failure set (TIMEOUT, STOPPED,
 * CONNECT for a poll error). stop_on_signal: a SIGINT/SIGTERM ends the wait.
 */
int tcp_wait(int fd, short events, long long deadline, bool stop_on_signal,
	     struct tcp_failure *failure);

/*
 * Connects to the first address of host:port that answers before the
 * deadline. Returns a non-blocking, close-on-exec socket (caller closes), or
 * -1 with *failure saying why the last address failed. A timeout or a stop
 * ends the attempt: the deadline covers every address.
 */
int tcp_connect(const char *host, const char *port, long long deadline, bool stop_on_signal,
		struct tcp_failure *failure);

#endif
