/* socket_client: a harness' client end of a socketpair; see socket_client.h. */
#include "socket_client.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "http/conn.h"

void
socket_client_open(struct socket_client *c, struct event_base *base, struct server *srv)
{
	struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(40000)};
	int sv[2];

	*c = (struct socket_client){.base = base, .fd = -1};
	FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	peer.sin_addr.s_addr = htonl(0x7f000001);
	FUZZ_CHECK(server_adopt(srv, sv[0], (struct sockaddr *)&peer, sizeof(peer)) == 0);
	c->fd = sv[1];
	FUZZ_CHECK(fcntl(c->fd, F_SETFL, O_NONBLOCK) == 0);
}

static size_t
socket_client_read(struct socket_client *c)
{
	uint8_t buf[16384];
	size_t total = 0;

	for (;;) {
		ssize_t n = read(c->fd, buf, sizeof(buf));

		if (n <= 0)
			return total;
		for (ssize_t i = 0; i < n && c->got < sizeof(c->head); i++)
			c->head[c->got++] = buf[i];
		total += (size_t)n;
	}
}

void
socket_client_pump(struct socket_client *c, int turns)
{
	int idle = 0;

	for (int i = 0; i < turns && idle < 3; i++) {
		event_base_loop(c->base, EVLOOP_NONBLOCK);
		if (socket_client_read(c) > 0)
			idle = 0;
		else
			idle++;
	}
}

void
socket_client_send(struct socket_client *c, const uint8_t *data, size_t len)
{
	size_t off = 0;
	int stalls = 0;

	while (off < len && stalls < 100) {
		ssize_t n = write(c->fd, data + off, len - off);

		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN)
			return; /* the server closed: the rest is not read */
		stalls++;
		socket_client_pump(c, 4);
	}
}

void
socket_client_feed(struct socket_client *c, const uint8_t *data, size_t size, size_t cut)
{
	socket_client_send(c, data, cut);
	socket_client_pump(c, 64);
	socket_client_send(c, data + cut, size - cut);
	socket_client_pump(c, 64);
	shutdown(c->fd, SHUT_WR);
	socket_client_pump(c, 64);
}

void
socket_client_close(struct socket_client *c, struct server *srv)
{
	close(c->fd);
	c->fd = -1;
	for (int i = 0; i < 64 && server_connections(srv) > 0; i++)
		event_base_loop(c->base, EVLOOP_NONBLOCK);
	FUZZ_CHECK(server_connections(srv) == 0);
}
