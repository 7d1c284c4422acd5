#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "deadline.h"
#include "signals.h"
#include "tcpconnect.h"

static int fail(struct tcp_failure *failure, enum tcp_failure_step step, int error_number)
{
	failure->step = step;
	failure->error_number = error_number;
	return -1;
}

int tcp_wait(int fd, short events, long long deadline, bool stop_on_signal,
	     struct tcp_failure *failure)
{
	struct pollfd poll_fd = { .fd = fd, .events = events, .revents = 0 };
	long long remaining;
	int ready;

	for (;;) {
		/* A signal that came between two waits would otherwise go unseen until the deadline. */
		if (stop_on_signal && signals_stop_requested())
			return fail(failure, TCP_FAILED_STOPPED, EINTR);
		remaining = deadline - monotonic_milliseconds();
		if (remaining <= 0)
			return fail(failure, TCP_FAILED_TIMEOUT, ETIMEDOUT);
		ready = poll(&poll_fd, 1, remaining > INT_MAX ? INT_MAX : (int)remaining);
		if (ready > 0)
			return 0;
		if (ready < 0 && errno != EINTR)
			return fail(failure, TCP_FAILED_CONNECT, errno);
	}
}

/* Connects fd to address: 0, 1 to try the next address, -1 to give up (failure set). */
static int connect_one(int fd, const struct addrinfo *address, long long deadline,
		       bool stop_on_signal, struct tcp_failure *failure)
{
	int socket_error = 0;
	socklen_t length = sizeof(socket_error);

	if (connect(fd, address->ai_addr, address->ai_addrlen) == 0)
		return 0;
	if (errno != EINPROGRESS) {
		fail(failure, TCP_FAILED_CONNECT, errno);
		return 1;
	}
	if (tcp_wait(fd, POLLOUT, deadline, stop_on_signal, failure) != 0)
		return -1;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &socket_error, &length) != 0)
		socket_error = errno;
	if (socket_error == 0)
		return 0;
	fail(failure, TCP_FAILED_CONNECT, socket_error);
	return 1;
}

int tcp_connect(const char *host, const char *port, long long deadline, bool stop_on_signal,
		struct tcp_failure *failure)
{
	struct addrinfo hints, *addresses = NULL, *address;
	int fd = -1, status = 1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_ADDRCONFIG;
	failure->resolve_status = getaddrinfo(host, port, &hints, &addresses);
	if (failure->resolve_status != 0)
		return fail(failure, TCP_FAILED_RESOLVE, errno);
	fail(failure, TCP_FAILED_NO_ADDRESS, 0);
	for (address = addresses; address != NULL && status > 0; address = address->ai_next) {
		fd = socket(address->ai_family, address->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			    address->ai_protocol);
		if (fd < 0) {
			fail(failure, TCP_FAILED_SOCKET, errno);
			continue;
		}
		if ((status = connect_one(fd, address, deadline, stop_on_signal, failure)) != 0) {
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(addresses);
	return fd;
}
