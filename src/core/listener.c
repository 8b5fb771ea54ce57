/* listener: bind listening sockets; see listener.h. */
#include "core/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"

static int
bind_one(const struct addrinfo *ai, bool dual_stack, char *err, size_t errlen, const char *address)
{
	int one = 1, zero = 0;
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);

	if (fd < 0) {
		snprintf(err, errlen, "%s: socket: %s", address, strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (ai->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, dual_stack ? &zero : &one, sizeof(int));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		snprintf(err, errlen, "%s: bind: %s", address, strerror(errno));
		close(fd);
		return -1;
	}
	if (listen(fd, 1024) < 0) {
		snprintf(err, errlen, "%s: listen: %s", address, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Log the address <fd> is bound to and store its port in *port.  0 or -1. */
static int
report(const struct config_listener *l, int fd, int *port, const char *how, char *err,
       size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	char host[INET6_ADDRSTRLEN];

	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) < 0) {
		snprintf(err, errlen, "%s: getsockname: %s", l->address, strerror(errno));
		return -1;
	}
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &a6->sin6_addr, host, sizeof(host));
		*port = ntohs(a6->sin6_port);
		log_info("listening on [%s]:%d (%s%s)", host, *port, l->name, how);
	} else {
		struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &a4->sin_addr, host, sizeof(host));
		*port = ntohs(a4->sin_port);
		log_info("listening on %s:%d (%s%s)", host, *port, l->name, how);
	}
	return 0;
}

int
listener_bind(const struct config_listener *l, int *port, char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL;
	bool any = l->host == NULL || l->host[0] == '\0';
	int fd = -1, rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	hints.ai_family = any ? AF_INET6 : AF_UNSPEC;
	rc = getaddrinfo(any ? NULL : l->host, l->port, &hints, &res);
	if (rc != 0 && any) {
		hints.ai_family = AF_INET;
		rc = getaddrinfo(NULL, l->port, &hints, &res);
	}
	if (rc != 0) {
		snprintf(err, errlen, "%s: cannot resolve: %s", l->address, gai_strerror(rc));
		return -1;
	}
	fd = bind_one(res, any, err, errlen, l->address);
	if (fd < 0 && any && res->ai_family == AF_INET6) {
		/* No IPv6 on this host: IPv4 alone. */
		freeaddrinfo(res);
		res = NULL;
		hints.ai_family = AF_INET;
		if (getaddrinfo(NULL, l->port, &hints, &res) == 0)
			fd = bind_one(res, false, err, errlen, l->address);
	}
	if (res)
		freeaddrinfo(res);
	if (fd < 0)
		return -1;
	if (report(l, fd, port, "", err, errlen) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int
listener_adopt(const struct config_listener *l, int fd, int *port, char *err, size_t errlen)
{
	int listening = 0;
	socklen_t len = sizeof(listening);
	long want = strtol(l->port, NULL, 10);

	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 || !listening) {
		snprintf(err, errlen, "%s: the socket handed over is not listening", l->address);
		return -1;
	}
	if (report(l, fd, port, ", handed over", err, errlen) < 0)
		return -1;
	if (want != 0 && want != *port) {
		snprintf(err, errlen, "%s: the socket handed over has port %d", l->address, *port);
		return -1;
	}
	return 0;
}
