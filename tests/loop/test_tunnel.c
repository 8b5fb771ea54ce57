/*
 * In-process tests of the tunnel (src/http/tunnel.c): one event_base, two
 * socketpair()s (or loopback TCP pairs where a reset is needed), the
 * tunnel on one end of each and the test playing both peers on the other
 * ends with events on the same loop.  Each case runs in milliseconds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "access/ipacl.h"
#include "http/conn.h"
#include "http/tunnel.h"

#define MIB (1024 * 1024)

/* One peer: the test's end of a socket pair. */
struct peer {
	int fd;
	struct event *rev, *wev;
	unsigned char *src; /* what it sends */
	size_t src_len, sent;
	bool shut_after;    /* shutdown(SHUT_WR) once all is sent */
	bool shut_done;
	bool reading;       /* reads what arrives (false: lets it pile up) */
	unsigned char *got;
	size_t got_len, got_cap;
	bool eof;
	int err;            /* errno of a failed read or write */
};

struct fix {
	struct event_base *base;
	struct peer a, b;   /* the test's ends */
	int ta, tb;         /* the tunnel's ends */
	struct tunnel *t;
	int done;           /* completion callbacks */
	enum tunnel_reason why;
	enum tunnel_side side;
	uint64_t counted[2]; /* reported through the bytes callback */
};

static void
pattern(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)((i % 251) ^ seed ^ (i >> 13));
}

static void
peer_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct peer *p = arg;

	(void)what;
	for (;;) {
		ssize_t n;

		if (p->got_cap - p->got_len < 65536) {
			p->got_cap = p->got_cap ? p->got_cap * 2 : 131072;
			p->got = realloc(p->got, p->got_cap);
			assert_non_null(p->got);
		}
		n = read(fd, p->got + p->got_len, p->got_cap - p->got_len);
		if (n > 0) {
			p->got_len += (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0)
			p->err = errno;
		p->eof = true;
		event_del(p->rev);
		return;
	}
}

static void
peer_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct peer *p = arg;

	(void)what;
	while (p->sent < p->src_len) {
		ssize_t n = send(fd, p->src + p->sent, p->src_len - p->sent, MSG_NOSIGNAL);

		if (n > 0) {
			p->sent += (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			event_add(p->wev, NULL);
			return;
		}
		p->err = errno;
		return;
	}
	if (p->shut_after && !p->shut_done) {
		shutdown(fd, SHUT_WR);
		p->shut_done = true;
	}
}

static void
peer_init(struct fix *f, struct peer *p, int fd)
{
	memset(p, 0, sizeof(*p));
	p->fd = fd;
	p->reading = true;
	p->rev = event_new(f->base, fd, EV_READ | EV_PERSIST, peer_read_cb, p);
	p->wev = event_new(f->base, fd, EV_WRITE, peer_write_cb, p);
	assert_non_null(p->rev);
	assert_non_null(p->wev);
	event_add(p->rev, NULL);
}

/* Send <n> bytes of pattern <seed> (then shut down writing if <shut>). */
static void
peer_send(struct peer *p, size_t n, unsigned seed, bool shut)
{
	free(p->src);
	p->src = malloc(n ? n : 1);
	assert_non_null(p->src);
	pattern(p->src, n, seed);
	p->src_len = n;
	p->sent = 0;
	p->shut_after = shut;
	event_active(p->wev, EV_WRITE, 1);
}

static void
peer_send_text(struct peer *p, const char *s, bool shut)
{
	free(p->src);
	p->src = (unsigned char *)strdup(s);
	p->src_len = strlen(s);
	p->sent = 0;
	p->shut_after = shut;
	event_active(p->wev, EV_WRITE, 1);
}

static void
peer_pause(struct peer *p)
{
	p->reading = false;
	event_del(p->rev);
}

static void
peer_resume(struct peer *p)
{
	p->reading = true;
	event_add(p->rev, NULL);
}

static void
peer_free(struct peer *p)
{
	if (p->rev)
		event_free(p->rev);
	if (p->wev)
		event_free(p->wev);
	if (p->fd >= 0)
		close(p->fd);
	free(p->src);
	free(p->got);
	memset(p, 0, sizeof(*p));
	p->fd = -1;
}

static void
done_cb(struct tunnel *t, enum tunnel_reason why, enum tunnel_side side, void *arg)
{
	struct fix *f = arg;

	assert_ptr_equal(t, f->t);
	f->done++;
	f->why = why;
	f->side = side;
	f->t = NULL;
}

static void
bytes_cb(enum tunnel_side from, size_t n, void *arg)
{
	struct fix *f = arg;

	f->counted[from] += n;
}

static const struct tunnel_callbacks callbacks = {done_cb, bytes_cb};

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Run the loop until <pred> holds or <ms> pass. */
static bool
run_until(struct fix *f, bool (*pred)(struct fix *), long ms)
{
	long end = now_ms() + ms;

	while (!pred(f)) {
		struct timeval tick = {0, 10000};

		if (now_ms() > end)
			return false;
		event_base_loopexit(f->base, &tick);
		event_base_loop(f->base, EVLOOP_ONCE);
	}
	return true;
}

static bool
never(struct fix *f)
{
	(void)f;
	return false;
}

static bool
is_done(struct fix *f)
{
	return f->done > 0;
}

static void
set_nonblocking(int fd)
{
	assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
}

/* Two connected non-blocking sockets: unix socketpair, or loopback TCP. */
static void
make_pair(int sv[2], bool tcp)
{
	if (!tcp) {
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	} else {
		struct sockaddr_in sin;
		socklen_t len = sizeof(sin);
		int l = socket(AF_INET, SOCK_STREAM, 0);

		assert_true(l >= 0);
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		assert_int_equal(bind(l, (struct sockaddr *)&sin, sizeof(sin)), 0);
		assert_int_equal(listen(l, 1), 0);
		assert_int_equal(getsockname(l, (struct sockaddr *)&sin, &len), 0);
		sv[0] = socket(AF_INET, SOCK_STREAM, 0);
		assert_int_equal(connect(sv[0], (struct sockaddr *)&sin, sizeof(sin)), 0);
		sv[1] = accept(l, NULL, NULL);
		assert_true(sv[1] >= 0);
		close(l);
	}
	set_nonblocking(sv[0]);
	set_nonblocking(sv[1]);
}

static struct fix *
fix_new(bool tcp, size_t high_water, double idle)
{
	struct fix *f = calloc(1, sizeof(*f));
	int sa[2], sb[2];
	struct tunnel_end ends[2];
	struct tunnel_params params = {high_water, idle};

	assert_non_null(f);
	f->base = event_base_new();
	assert_non_null(f->base);
	make_pair(sa, tcp);
	make_pair(sb, tcp);
	peer_init(f, &f->a, sa[0]);
	peer_init(f, &f->b, sb[0]);
	f->ta = sa[1];
	f->tb = sb[1];
	ends[TUNNEL_A].fd = f->ta;
	ends[TUNNEL_A].ssl = NULL;
	ends[TUNNEL_B].fd = f->tb;
	ends[TUNNEL_B].ssl = NULL;
	f->t = tunnel_new(f->base, ends, &params, &callbacks, f);
	assert_non_null(f->t);
	return f;
}

static int
setup(void **state)
{
	*state = NULL;
	return 0;
}

static int
teardown(void **state)
{
	struct fix *f = *state;

	if (f == NULL)
		return 0;
	tunnel_free(f->t);
	peer_free(&f->a);
	peer_free(&f->b);
	event_base_free(f->base);
	free(f);
	return 0;
}

/* The completion callback came exactly once, and nothing follows it. */
static void
assert_done_once(struct fix *f, enum tunnel_reason why)
{
	assert_true(run_until(f, is_done, 3000));
	run_until(f, never, 50);
	assert_int_equal(f->done, 1);
	assert_int_equal(f->why, why);
}

static bool
both_got_all(struct fix *f)
{
	return f->a.eof && f->b.eof && f->a.got_len >= f->b.src_len &&
	       f->b.got_len >= f->a.src_len;
}

/* ---- cases ------------------------------------------------------------------ */

/* Bytes both ways at once, 3 MiB one way and 1 MiB + 1 the other, intact,
 * each half-close passed on; counted both ways. */
static void
test_both_ways(void **state)
{
	struct fix *f = fix_new(false, 0, 0);
	unsigned char *want;

	*state = f;
	peer_send(&f->a, 3 * MIB, 0x11, true);
	peer_send(&f->b, MIB + 1, 0x22, true);
	assert_true(run_until(f, both_got_all, 5000));
	assert_int_equal(f->b.got_len, 3 * MIB);
	assert_int_equal(f->a.got_len, MIB + 1);
	want = malloc(3 * MIB);
	pattern(want, 3 * MIB, 0x11);
	assert_memory_equal(f->b.got, want, 3 * MIB);
	pattern(want, MIB + 1, 0x22);
	assert_memory_equal(f->a.got, want, MIB + 1);
	free(want);
	assert_done_once(f, TUNNEL_CLOSED);
	assert_int_equal(f->counted[TUNNEL_A], 3 * MIB);
	assert_int_equal(f->counted[TUNNEL_B], MIB + 1);
}

static bool
b_got_some(struct fix *f)
{
	return f->b.got_len > 0;
}

/* Bytes pushed before the start (read past a head) go out first. */
static void
test_push_first(void **state)
{
	struct fix *f = fix_new(false, 0, 0);

	*state = f;
	assert_int_equal(tunnel_push(f->t, TUNNEL_A, "early:", 6), 0);
	peer_send_text(&f->a, "late", true);
	peer_send_text(&f->b, "", true);
	assert_true(run_until(f, both_got_all, 2000));
	assert_int_equal(f->b.got_len, 10);
	assert_memory_equal(f->b.got, "early:late", 10);
	assert_done_once(f, TUNNEL_CLOSED);
	assert_int_equal(f->counted[TUNNEL_A], 10);
}

/* A peer that does not read stops the other peer's bytes being read: the
 * tunnel's queue stays bounded; once it reads, everything arrives. */
static void
test_back_pressure(void **state)
{
	const size_t hw = 128 * 1024, total = 16 * MIB;
	struct fix *f = fix_new(false, hw, 0);
	uint64_t before;
	unsigned char *want;

	*state = f;
	peer_pause(&f->b);
	peer_send(&f->a, total, 0x33, true);
	run_until(f, never, 200);
	before = tunnel_bytes(f->t, TUNNEL_A);
	run_until(f, never, 200);
	/* Stalled: nothing more read from A, A could not send it all. */
	assert_int_equal(tunnel_bytes(f->t, TUNNEL_A), before);
	assert_true(f->a.sent < total);
	assert_true(tunnel_queued(f->t, TUNNEL_B) <= hw + 64 * 1024);
	assert_true(tunnel_queued(f->t, TUNNEL_B) >= hw / 2); /* it did queue */
	assert_int_equal(f->done, 0);
	/* The other direction is not blocked by it. */
	peer_send_text(&f->b, "still flowing", false);
	run_until(f, never, 100);
	assert_int_equal(f->a.got_len, 13);
	peer_resume(&f->b);
	peer_send_text(&f->b, "", true);
	assert_true(run_until(f, both_got_all, 10000));
	assert_int_equal(f->b.got_len, total);
	want = malloc(total);
	pattern(want, total, 0x33);
	assert_memory_equal(f->b.got, want, total);
	free(want);
	assert_done_once(f, TUNNEL_CLOSED);
}

static bool
b_eof(struct fix *f)
{
	return f->b.eof;
}

static bool
a_eof(struct fix *f)
{
	return f->a.eof;
}

/* A half-closes: B sees the bytes then EOF, and B's answer still reaches
 * A; the tunnel ends when B closes too. */
static void
test_half_close_from_a(void **state)
{
	struct fix *f = fix_new(false, 0, 0);

	*state = f;
	peer_send_text(&f->a, "question", true);
	assert_true(run_until(f, b_eof, 2000));
	assert_int_equal(f->b.got_len, 8);
	assert_memory_equal(f->b.got, "question", 8);
	run_until(f, never, 50);
	assert_int_equal(f->done, 0);
	assert_false(f->a.eof);
	peer_send_text(&f->b, "answer", true);
	assert_true(run_until(f, a_eof, 2000));
	assert_int_equal(f->a.got_len, 6);
	assert_memory_equal(f->a.got, "answer", 6);
	assert_done_once(f, TUNNEL_CLOSED);
}

static void
test_half_close_from_b(void **state)
{
	struct fix *f = fix_new(false, 0, 0);

	*state = f;
	peer_send_text(&f->b, "banner", true);
	assert_true(run_until(f, a_eof, 2000));
	assert_int_equal(f->a.got_len, 6);
	run_until(f, never, 50);
	assert_int_equal(f->done, 0);
	assert_false(f->b.eof);
	peer_send_text(&f->a, "reply", true);
	assert_true(run_until(f, b_eof, 2000));
	assert_memory_equal(f->b.got, "reply", 5);
	assert_done_once(f, TUNNEL_CLOSED);
}

/* The half-close waits until the queued bytes are written. */
static void
test_half_close_after_queue(void **state)
{
	struct fix *f = fix_new(false, 64 * 1024, 0);

	*state = f;
	peer_pause(&f->b);
	peer_send(&f->a, 2 * MIB, 0x44, true);
	run_until(f, never, 100);
	assert_false(f->b.eof);
	peer_resume(&f->b);
	assert_true(run_until(f, b_eof, 5000));
	assert_int_equal(f->b.got_len, 2 * MIB);
	peer_send_text(&f->b, "", true);
	assert_done_once(f, TUNNEL_CLOSED);
}

/* Nothing moves: the idle timeout ends it, and both peers see the close. */
static void
test_idle_timeout(void **state)
{
	struct fix *f = fix_new(false, 0, 0.15);
	long start = now_ms();

	*state = f;
	/* Traffic keeps it open past the idle time. */
	for (int i = 0; i < 5; i++) {
		peer_send_text(&f->a, "x", false);
		run_until(f, never, 60);
	}
	assert_int_equal(f->done, 0);
	assert_true(now_ms() - start >= 250);
	assert_done_once(f, TUNNEL_IDLE);
	assert_true(run_until(f, a_eof, 1000));
	assert_true(run_until(f, b_eof, 1000));
	assert_int_equal(f->b.got_len, 5);
}

/* A goes away entirely while B still sends: writing to A fails, the tunnel
 * ends with an error on A, and B is closed. */
static void
test_abort_a(void **state)
{
	struct fix *f = fix_new(false, 0, 0);

	*state = f;
	event_del(f->a.rev);
	close(f->a.fd);
	event_free(f->a.rev);
	event_free(f->a.wev);
	f->a.rev = f->a.wev = NULL;
	f->a.fd = -1;
	assert_true(run_until(f, b_eof, 2000)); /* A's EOF passed on */
	peer_send(&f->b, 256 * 1024, 0x55, false);
	assert_done_once(f, TUNNEL_ERROR);
	assert_int_equal(f->side, TUNNEL_A);
}

static void
test_abort_b(void **state)
{
	struct fix *f = fix_new(false, 0, 0);

	*state = f;
	event_del(f->b.rev);
	close(f->b.fd);
	event_free(f->b.rev);
	event_free(f->b.wev);
	f->b.rev = f->b.wev = NULL;
	f->b.fd = -1;
	assert_true(run_until(f, a_eof, 2000));
	peer_send(&f->a, 256 * 1024, 0x66, false);
	assert_done_once(f, TUNNEL_ERROR);
	assert_int_equal(f->side, TUNNEL_B);
}

/* A TCP reset (SO_LINGER 0) from either side is an error on that side, at
 * once, and the other peer is closed. */
static void
reset_side(struct fix *f, struct peer *p)
{
	struct linger lg = {1, 0};

	assert_int_equal(setsockopt(p->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
	event_free(p->rev);
	event_free(p->wev);
	p->rev = p->wev = NULL;
	close(p->fd);
	p->fd = -1;
	(void)f;
}

static void
test_reset_a(void **state)
{
	struct fix *f = fix_new(true, 0, 0);

	*state = f;
	peer_send_text(&f->a, "hello", false);
	assert_true(run_until(f, b_got_some, 2000));
	assert_int_equal(f->b.got_len, 5);
	reset_side(f, &f->a);
	assert_done_once(f, TUNNEL_ERROR);
	assert_int_equal(f->side, TUNNEL_A);
	assert_true(run_until(f, b_eof, 1000));
}

static void
test_reset_b(void **state)
{
	struct fix *f = fix_new(true, 0, 0);

	*state = f;
	reset_side(f, &f->b);
	assert_done_once(f, TUNNEL_ERROR);
	assert_int_equal(f->side, TUNNEL_B);
	assert_true(run_until(f, a_eof, 1000));
}

/* tunnel_free closes both ends and does not call back. */
static void
test_free_silent(void **state)
{
	struct fix *f = fix_new(false, 0, 0);

	*state = f;
	peer_send(&f->a, MIB, 0x77, false);
	run_until(f, never, 20);
	tunnel_free(f->t);
	f->t = NULL;
	assert_true(run_until(f, a_eof, 1000));
	assert_true(run_until(f, b_eof, 1000));
	run_until(f, never, 20);
	assert_int_equal(f->done, 0);
}

/* ---- a TLS end ------------------------------------------------------------------ */

/* The test plays a TLS client on A's test end, pumped from the loop's
 * predicate; the tunnel's A end is a server-side SSL whose handshake the
 * tunnel drives. */
struct tls_client {
	SSL_CTX *sctx, *cctx;
	SSL *ssl;
	unsigned char *src;
	size_t len, sent;
	bool close_notify_after; /* SSL_shutdown once all is sent */
	bool notified;
	unsigned char got[65536];
	size_t got_len;
	bool eof;                /* SSL_read returned 0 (close_notify) */
	bool failed;
};

static struct tls_client *tls;

static SSL_CTX *
tls_server_ctx(void)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	assert_non_null(key);
	assert_non_null(x);
	assert_non_null(ctx);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, key);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"tunnel.test",
				   -1, -1, 0);
	X509_set_issuer_name(x, name);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	assert_int_equal(SSL_CTX_use_certificate(ctx, x), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
	X509_free(x);
	EVP_PKEY_free(key);
	return ctx;
}

/* Move the client along: write what it can, read what there is. */
static void
tls_pump(void)
{
	struct tls_client *c = tls;

	while (!c->failed && c->sent < c->len) {
		size_t n = c->len - c->sent > 16384 ? 16384 : c->len - c->sent;
		int r = SSL_write(c->ssl, c->src + c->sent, (int)n);

		if (r > 0) {
			c->sent += (size_t)r;
			continue;
		}
		r = SSL_get_error(c->ssl, r);
		if (r != SSL_ERROR_WANT_READ && r != SSL_ERROR_WANT_WRITE)
			c->failed = true;
		break;
	}
	if (!c->failed && c->sent == c->len && c->close_notify_after && !c->notified &&
	    SSL_is_init_finished(c->ssl)) {
		SSL_shutdown(c->ssl);
		c->notified = true;
	}
	while (!c->failed && !c->eof) {
		int r = SSL_read(c->ssl, c->got + c->got_len, (int)(sizeof(c->got) - c->got_len));

		if (r > 0) {
			c->got_len += (size_t)r;
			continue;
		}
		r = SSL_get_error(c->ssl, r);
		if (r == SSL_ERROR_ZERO_RETURN)
			c->eof = true;
		else if (r != SSL_ERROR_WANT_READ && r != SSL_ERROR_WANT_WRITE)
			c->failed = true;
		break;
	}
}

static struct fix *
fix_new_tls(void)
{
	struct fix *f = calloc(1, sizeof(*f));
	int sa[2], sb[2];
	struct tunnel_end ends[2];

	assert_non_null(f);
	tls = calloc(1, sizeof(*tls));
	assert_non_null(tls);
	tls->sctx = tls_server_ctx();
	tls->cctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(tls->cctx);
	f->base = event_base_new();
	assert_non_null(f->base);
	make_pair(sa, false);
	make_pair(sb, false);
	memset(&f->a, 0, sizeof(f->a));
	f->a.fd = sa[0]; /* driven by tls_pump, not by events */
	peer_init(f, &f->b, sb[0]);
	tls->ssl = SSL_new(tls->cctx);
	assert_non_null(tls->ssl);
	SSL_set_fd(tls->ssl, sa[0]);
	SSL_set_connect_state(tls->ssl);
	ends[TUNNEL_A].fd = sa[1];
	ends[TUNNEL_A].ssl = SSL_new(tls->sctx);
	assert_non_null(ends[TUNNEL_A].ssl);
	SSL_set_fd(ends[TUNNEL_A].ssl, sa[1]);
	SSL_set_accept_state(ends[TUNNEL_A].ssl);
	ends[TUNNEL_B].fd = sb[1];
	ends[TUNNEL_B].ssl = NULL;
	f->t = tunnel_new(f->base, ends, NULL, &callbacks, f);
	assert_non_null(f->t);
	return f;
}

static int
tls_teardown(void **state)
{
	if (tls) {
		SSL_free(tls->ssl);
		SSL_CTX_free(tls->sctx);
		SSL_CTX_free(tls->cctx);
		free(tls->src);
		free(tls);
		tls = NULL;
	}
	return teardown(state);
}

static bool
tls_b_eof(struct fix *f)
{
	tls_pump();
	return f->b.eof || tls->failed;
}

static bool
tls_a_eof(struct fix *f)
{
	(void)f;
	tls_pump();
	return tls->eof || tls->failed;
}

static bool
tls_a_got_banner(struct fix *f)
{
	(void)f;
	tls_pump();
	return tls->got_len >= 12 || tls->failed;
}

static bool
tls_b_got_ehlo(struct fix *f)
{
	tls_pump();
	return f->b.got_len >= 6 || tls->failed;
}

/* 1 MiB + 3 through the TLS end intact; the client's close_notify reaches
 * B as an EOF, B's reply then reaches the client, followed by our
 * close_notify. */
static void
test_tls_end(void **state)
{
	struct fix *f = fix_new_tls();
	const size_t n = MIB + 3;
	unsigned char *src = malloc(n);

	*state = f;
	assert_non_null(src);
	pattern(src, n, 0x5a);
	tls->src = src;
	tls->len = n;
	tls->close_notify_after = true;
	assert_true(run_until(f, tls_b_eof, 5000));
	assert_false(tls->failed);
	assert_int_equal(f->b.got_len, n);
	assert_memory_equal(f->b.got, src, n);
	assert_int_equal(f->done, 0);
	peer_send_text(&f->b, "BYE\n", true);
	assert_true(run_until(f, tls_a_eof, 2000));
	assert_false(tls->failed);
	assert_int_equal(tls->got_len, 4);
	assert_memory_equal(tls->got, "BYE\n", 4);
	assert_true(SSL_get_shutdown(tls->ssl) & SSL_RECEIVED_SHUTDOWN);
	assert_done_once(f, TUNNEL_CLOSED);
	assert_int_equal(f->counted[TUNNEL_A], n);
}

/* B speaks first (a banner) before the client even started its
 * handshake: the tunnel's SSL_write waits for the handshake. */
static void
test_tls_banner_first(void **state)
{
	struct fix *f = fix_new_tls();

	*state = f;
	peer_send_text(&f->b, "220 banner\r\n", false);
	run_until(f, never, 30); /* the tunnel tries to write before the handshake */
	assert_true(run_until(f, tls_a_got_banner, 2000));
	assert_false(tls->failed);
	assert_memory_equal(tls->got, "220 banner\r\n", 12);
	tls->src = (unsigned char *)strdup("EHLO x");
	tls->len = 6;
	assert_true(run_until(f, tls_b_got_ehlo, 2000));
	assert_memory_equal(f->b.got, "EHLO x", 6);
	assert_int_equal(f->done, 0);
}

/* Plain bytes on the TLS end: a handshake error on A ends it. */
static void
test_tls_garbage(void **state)
{
	struct fix *f = fix_new_tls();

	*state = f;
	assert_int_equal(write(f->a.fd, "HELLO plain\r\n\r\n", 15), 15);
	assert_done_once(f, TUNNEL_ERROR);
	assert_int_equal(f->side, TUNNEL_A);
	assert_int_equal(f->b.got_len, 0);
	ERR_clear_error();
}

/* ---- a raw listener's connection handed to a tunnel ---------------------------- */

/* The transport (conn.c) in raw mode: a server without a listening socket
 * adopts the tunnel's end of pair A; on_ready detaches it into a tunnel
 * with pair B. */
struct rawfix {
	struct fix f;
	struct server *srv;
	struct ipacl *trusted;
	char events[16][64];
	int nevents;
	int data;                 /* what on_accept returns a pointer to */
	char peer_text[64];
	bool detach_in_ready;
};

static void
raw_event(struct rawfix *r, const char *e)
{
	assert_true(r->nevents < 16);
	snprintf(r->events[r->nevents++], sizeof(r->events[0]), "%s", e);
}

static void *
raw_accept_cb(struct server_conn *c, const struct sockaddr *peer, void *arg)
{
	struct rawfix *r = arg;

	(void)c;
	(void)peer;
	raw_event(r, "accept");
	return &r->data;
}

static void
raw_refused_cb(struct server_conn *c, enum server_refusal why, const char *detail, void *data)
{
	struct rawfix *r = (struct rawfix *)((char *)data - offsetof(struct rawfix, data));

	(void)c;
	(void)detail;
	raw_event(r, why == SERVER_REFUSED_UNTRUSTED       ? "refused untrusted"
		     : why == SERVER_REFUSED_PROXY_HEADER ? "refused header"
							  : "refused timeout");
}

static void
raw_ready_cb(struct server_conn *c, const struct sockaddr *peer, void *data)
{
	struct rawfix *r = (struct rawfix *)((char *)data - offsetof(struct rawfix, data));
	struct tunnel_end ends[2];
	struct evbuffer *early = evbuffer_new();

	raw_event(r, "ready");
	if (peer->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)peer;

		inet_ntop(AF_INET, &sin->sin_addr, r->peer_text, sizeof(r->peer_text));
	}
	if (!r->detach_in_ready) {
		evbuffer_free(early);
		return;
	}
	assert_int_equal(server_conn_detach(c, &ends[TUNNEL_A], early), 0);
	assert_int_equal(evbuffer_get_length(early), 0); /* nothing read past the header */
	evbuffer_free(early);
	ends[TUNNEL_B].fd = r->f.tb;
	ends[TUNNEL_B].ssl = NULL;
	r->f.t = tunnel_new(r->f.base, ends, NULL, &callbacks, &r->f);
	assert_non_null(r->f.t);
}

static void
raw_close_cb(struct server_conn *c, void *data)
{
	struct rawfix *r = (struct rawfix *)((char *)data - offsetof(struct rawfix, data));

	(void)c;
	raw_event(r, "close");
}

static const struct server_raw_handler raw_handler = {
	raw_accept_cb, raw_refused_cb, raw_ready_cb, raw_close_cb,
};

static struct rawfix *
rawfix_new(bool proxy_protocol)
{
	struct rawfix *r = calloc(1, sizeof(*r));
	const char *cidrs[] = {"127.0.0.0/8"};
	int sa[2], sb[2];
	char err[128];

	assert_non_null(r);
	r->detach_in_ready = true;
	r->f.base = event_base_new();
	assert_non_null(r->f.base);
	make_pair(sa, false);
	make_pair(sb, false);
	peer_init(&r->f, &r->f.a, sa[0]);
	peer_init(&r->f, &r->f.b, sb[0]);
	r->f.ta = sa[1];
	r->f.tb = sb[1];
	r->trusted = ipacl_new(cidrs, 1, err, sizeof(err));
	assert_non_null(r->trusted);
	r->srv = server_new(r->f.base, -1, 0, NULL, NULL, NULL);
	assert_non_null(r->srv);
	server_set_counted(r->srv, false);
	server_set_raw(r->srv, &raw_handler, r);
	server_set_proxy_protocol(r->srv, proxy_protocol, r->trusted);
	return r;
}

/* The server adopts the tunnel's end of pair A as if accepted from
 * r->peer_text (127.0.0.1 when empty); peer_text then receives on_ready's. */
static void
rawfix_adopt(struct rawfix *r)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(40000);
	assert_int_equal(inet_pton(AF_INET, r->peer_text[0] ? r->peer_text : "127.0.0.1",
				   &sin.sin_addr), 1);
	r->peer_text[0] = 0;
	assert_int_equal(server_adopt(r->srv, r->f.ta, (struct sockaddr *)&sin, sizeof(sin)), 0);
}

static int
raw_teardown(void **state)
{
	struct rawfix *r = *state;

	if (r == NULL)
		return 0;
	tunnel_free(r->f.t);
	server_free(r->srv);
	ipacl_free(r->trusted);
	peer_free(&r->f.a);
	peer_free(&r->f.b);
	if (r->f.tb >= 0 && r->f.t == NULL && r->f.done == 0)
		close(r->f.tb); /* never handed to a tunnel */
	event_base_free(r->f.base);
	free(r);
	return 0;
}

static int
raw_has(struct rawfix *r, const char *e)
{
	for (int i = 0; i < r->nevents; i++)
		if (strcmp(r->events[i], e) == 0)
			return i;
	return -1;
}

/* No PROXY header: ready at once, detached, bytes both ways through the
 * tunnel, the server forgets the connection and never calls on_close. */
static void
test_raw_detach(void **state)
{
	struct rawfix *r = rawfix_new(false);

	*state = r;
	rawfix_adopt(r);
	assert_int_equal(r->nevents, 2);
	assert_string_equal(r->events[0], "accept");
	assert_string_equal(r->events[1], "ready");
	assert_non_null(r->f.t);
	assert_int_equal(server_connections(r->srv), 0);
	peer_send(&r->f.a, MIB + 7, 0x21, true);
	peer_send(&r->f.b, 1000, 0x12, true);
	assert_true(run_until(&r->f, both_got_all, 5000));
	assert_int_equal(r->f.b.got_len, MIB + 7);
	assert_done_once(&r->f, TUNNEL_CLOSED);
	assert_int_equal(raw_has(r, "close"), -1);
	r->f.tb = -1;
}

/* A PROXY header from a trusted peer: its address becomes the peer, and
 * the bytes behind it stay in the socket for the tunnel. */
static void
test_raw_proxy_header(void **state)
{
	struct rawfix *r = rawfix_new(true);

	*state = r;
	rawfix_adopt(r);
	assert_int_equal(raw_has(r, "ready"), -1);
	peer_send_text(&r->f.a, "PROXY TCP4 192.0.2.7 127.0.0.1 5000 80\r\nhello", false);
	assert_true(run_until(&r->f, b_got_some, 2000));
	assert_true(raw_has(r, "ready") >= 0);
	assert_string_equal(r->peer_text, "192.0.2.7");
	run_until(&r->f, never, 50);
	assert_int_equal(r->f.b.got_len, 5);
	assert_memory_equal(r->f.b.got, "hello", 5);
	r->f.tb = -1;
}

static bool
raw_closed(struct fix *f)
{
	struct rawfix *r = (struct rawfix *)f;

	return raw_has(r, "close") >= 0;
}

/* Refusals by the transport: reported, then on_close, and the client sees
 * the connection closed. */
static void
test_raw_refusals(void **state)
{
	struct rawfix *r = rawfix_new(true);

	*state = r;
	r->detach_in_ready = false;
	/* from outside trusted_proxies */
	snprintf(r->peer_text, sizeof(r->peer_text), "10.1.2.3");
	rawfix_adopt(r);
	assert_int_equal(r->nevents, 3);
	assert_string_equal(r->events[1], "refused untrusted");
	assert_string_equal(r->events[2], "close");
	assert_int_equal(server_connections(r->srv), 0);
	assert_true(run_until(&r->f, a_eof, 1000));
}

static void
test_raw_bad_header(void **state)
{
	struct rawfix *r = rawfix_new(true);

	*state = r;
	r->detach_in_ready = false;
	rawfix_adopt(r);
	peer_send_text(&r->f.a, "GET / HTTP/1.1\r\n\r\n", false);
	assert_true(run_until(&r->f, raw_closed, 2000));
	assert_true(raw_has(r, "refused header") >= 0);
	assert_int_equal(raw_has(r, "ready"), -1);
	assert_true(run_until(&r->f, a_eof, 1000));
}

static void
test_raw_header_timeout(void **state)
{
	struct rawfix *r = rawfix_new(true);
	struct server_limits limits = {65536, {0, 100000}};

	*state = r;
	r->detach_in_ready = false;
	server_set_limits(r->srv, &limits);
	rawfix_adopt(r);
	peer_send_text(&r->f.a, "PROXY TCP4", false); /* and nothing more */
	assert_true(run_until(&r->f, raw_closed, 2000));
	assert_true(raw_has(r, "refused timeout") >= 0);
	assert_true(run_until(&r->f, a_eof, 1000));
}

/* Held (not detached): the server's drain keeps it, server_free closes it
 * with on_close. */
static void
test_raw_held(void **state)
{
	struct rawfix *r = rawfix_new(false);

	*state = r;
	r->detach_in_ready = false;
	rawfix_adopt(r);
	assert_true(raw_has(r, "ready") >= 0);
	server_drain(r->srv);
	assert_int_equal(server_connections(r->srv), 1);
	server_free(r->srv);
	r->srv = NULL;
	assert_true(raw_has(r, "close") >= 0);
	assert_true(run_until(&r->f, a_eof, 1000));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_both_ways, setup, teardown),
		cmocka_unit_test_setup_teardown(test_push_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_back_pressure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_half_close_from_a, setup, teardown),
		cmocka_unit_test_setup_teardown(test_half_close_from_b, setup, teardown),
		cmocka_unit_test_setup_teardown(test_half_close_after_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abort_a, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abort_b, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_a, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_b, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_silent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_end, setup, tls_teardown),
		cmocka_unit_test_setup_teardown(test_tls_banner_first, setup, tls_teardown),
		cmocka_unit_test_setup_teardown(test_tls_garbage, setup, tls_teardown),
		cmocka_unit_test_setup_teardown(test_raw_detach, setup, raw_teardown),
		cmocka_unit_test_setup_teardown(test_raw_proxy_header, setup, raw_teardown),
		cmocka_unit_test_setup_teardown(test_raw_refusals, setup, raw_teardown),
		cmocka_unit_test_setup_teardown(test_raw_bad_header, setup, raw_teardown),
		cmocka_unit_test_setup_teardown(test_raw_header_timeout, setup, raw_teardown),
		cmocka_unit_test_setup_teardown(test_raw_held, setup, raw_teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
