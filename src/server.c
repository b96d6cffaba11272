/*
 * server: evhttp plumbing for `rollbackd serve` (include/rollbackd/server.h).
 *
 * Workers: one event base + evhttp per worker, each with its own listening
 * socket on the same address (SO_REUSEPORT), so the kernel spreads
 * connections and no lock is taken on the request path. Worker 0 runs on
 * the main thread.
 *
 * The gate: evhttp 2.1 answers what it refuses itself, with an HTML page
 * (evhttp_send_error) and no hook to change it (evhttp_set_errorcb is 2.2),
 * and it reads a whole body before it can refuse its size. So nothing
 * reaches evhttp unchecked: we create each connection's bufferevent
 * (evhttp_set_bevcb) and watch its input buffer; the callback runs when
 * bytes arrive, before evhttp's read callback. The gate holds a request's
 * head until it is complete and checks it (size, request line, header
 * lines, Content-Length, Transfer-Encoding, Expect, method). A good head is
 * put back for evhttp to parse; a chunked body is held too, de-chunked
 * (bounded by limits.max_body_bytes) and handed over with a Content-Length.
 * A refused one is replaced by a tiny request of our own that evhttp
 * dispatches like any other, and on_request answers it with the JSON error
 * and closes; the rest of the input is dropped. evhttp's own limits are
 * set above ours, so its error pages are never reached.
 *
 * Connections: limits.max_connections are served; beyond them a reserve of
 * connections is accepted for probes (/healthz, /readyz, /metrics), while
 * any other request on a reserve connection waits (its head held) until a
 * served one closes. Idle or slow-head connections of the reserve, and
 * slow-head connections of the served ones while requests wait, are closed
 * to make room. limits.max_connections_per_peer caps one address. A head
 * must be complete within limits.header_timeout of its first byte, a request
 * within limits.request_timeout. accept() failing (EMFILE) pauses the
 * listener with a backoff instead of spinning.
 *
 * The pure checks of a head and a chunked body are in httphead.c. This file
 * is over 800 lines because the gate, the connection accounting and the
 * workers share one per-connection struct and its lifecycle callbacks;
 * split, each part would need the others' internals.
 *
 * This module must never block: no sleeping, no waiting on children, no
 * synchronous I/O beyond the sockets libevent hands it.
 */
#include "rollbackd/server.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "rollbackd/api.h"
#include "rollbackd/httphead.h"
#include "rollbackd/log.h"
#include "rollbackd/timestamp.h"

#define LISTEN_BACKLOG 511
#define SHUTDOWN_GRACE_MS 30000 /* running actions may finish this long */
#define FD_OVERHEAD 128		/* journal, children's pipes, curl, event fds */
#define ACCEPT_BACKOFF_MIN_MS 50
#define ACCEPT_BACKOFF_MAX_MS 2000
#define SLOW_HEAD_MS 1000   /* a head this old is not a fast client's */
#define RESERVE_IDLE_MS 250 /* a reserve connection this idle may make room */
#define LOG_EVERY_MS 10000  /* rate-limited warnings: one line per interval */
#define REFUSED_TARGET "/.rollbackd/refused"

/* ---- rate-limited log lines ---------------------------------------------- */

/* One line per LOG_EVERY_MS per kind, with how many were left out. */
struct log_limit {
	_Atomic int64_t next_ms;
	_Atomic long suppressed;
};

static void log_limited(struct log_limit *ll, const char *msg, const char *k1, const char *v1)
{
	int64_t now = timestamp_mono_ms(), next = atomic_load(&ll->next_ms);
	if (now < next ||
	    !atomic_compare_exchange_strong(&ll->next_ms, &next, now + LOG_EVERY_MS)) {
		atomic_fetch_add(&ll->suppressed, 1);
		return;
	}
	char n[24];
	snprintf(n, sizeof(n), "%ld", atomic_exchange(&ll->suppressed, 0));
	log_warn(msg, k1, v1, "suppressed_since_last", n, NULL);
}

static struct log_limit ll_libevent, ll_timeout, ll_head_timeout, ll_peer, ll_accept, ll_evict,
    ll_limit;

/* libevent's own warnings ("[warn] ..."), as JSON and rate-limited. */
static void on_libevent_log(int severity, const char *msg)
{
	if (severity < EVENT_LOG_WARN)
		return;
	log_limited(&ll_libevent, "libevent", "message", msg);
}

/* ---- connections ---------------------------------------------------------- */

struct worker;
struct peer;

enum gate_state {
	GATE_HEAD,    /* holding a head until it is complete */
	GATE_HELD,    /* a complete head waits (reserve, or not yet accepted) */
	GATE_CHUNKED, /* holding a chunked body until its last chunk */
	GATE_BODY,    /* a Content-Length body passes to evhttp */
	GATE_DISCARD, /* refused: the input is dropped */
};

/* A connection the server counts; freed when evhttp closes it. */
struct conn_ref {
	struct worker *w;
	struct bufferevent *bev;
	struct evhttp_connection *evcon; /* NULL until on_conn_accepted ran */
	struct conn_ref *prev, *next;	 /* the worker's list, oldest first */
	struct peer *peer;		 /* counted against its address */
	struct evbuffer *held;		 /* bytes the gate holds back */
	struct event *kick_ev;		 /* resumes the gate after a reply */
	enum gate_state state;
	bool reserve;		    /* beyond max_connections: probes only, others wait */
	bool waiting;		    /* a reserve connection's request waits for a slot */
	bool refuse_pending;	    /* refused before on_conn_accepted: it hands it over */
	bool awaiting_reply;	    /* a request went to evhttp and is not answered */
	bool in_request;	    /* a head or body is arriving */
	int64_t request_started_ms; /* its first byte */
	int64_t accepted_ms;
	int64_t body_left;	/* GATE_BODY: bytes still to pass */
	size_t head_len;	/* of the held head, GATE_HELD/GATE_CHUNKED */
	int64_t content_length; /* of the held head; -1 chunked */
	bool head_method_head;	/* the held head is a HEAD request */
	int refuse_status;	/* on_request answers this; 0: none */
	const char *refuse_code;
	const char *refuse_header, *refuse_value; /* one extra header, or NULL */
	char refuse_msg[200];
	bool gate_busy; /* we are moving bytes: ignore our own buffer callbacks */
	bool trigger;	/* bytes were handed over outside a read: run evhttp's reader */
};

/*
 * Connections by evhttp_connection pointer, so a dispatched request finds
 * its conn_ref in O(1). Open addressing with linear probing and backward
 * shift deletion; one table per worker, used only by that worker's loop.
 */
struct conn_table {
	struct conn_ref **slots;
	size_t mask; /* slots - 1; slots is a power of two */
};

static size_t ptr_hash(const void *key)
{
	uint64_t x = (uint64_t)(uintptr_t)key;
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return (size_t)x;
}

static int conn_table_init(struct conn_table *t, size_t capacity)
{
	size_t n = 16;
	while (n < capacity * 2)
		n *= 2;
	t->slots = calloc(n, sizeof(*t->slots));
	t->mask = n - 1;
	return t->slots ? 0 : -1;
}

static struct conn_ref *conn_table_get(const struct conn_table *t, const void *evcon)
{
	for (size_t i = ptr_hash(evcon) & t->mask;; i = (i + 1) & t->mask) {
		if (!t->slots[i])
			return NULL;
		if (t->slots[i]->evcon == evcon)
			return t->slots[i];
	}
}

/* Returns -1 when full (more connections than the table was sized for). */
static int conn_table_put(struct conn_table *t, struct conn_ref *ref)
{
	size_t i = ptr_hash(ref->evcon) & t->mask;
	for (size_t probes = 0; probes <= t->mask; probes++, i = (i + 1) & t->mask) {
		if (!t->slots[i]) {
			t->slots[i] = ref;
			return 0;
		}
	}
	return -1;
}

static void conn_table_del(struct conn_table *t, const struct conn_ref *ref)
{
	size_t i = ptr_hash(ref->evcon) & t->mask;
	while (t->slots[i] && t->slots[i] != ref)
		i = (i + 1) & t->mask;
	if (!t->slots[i])
		return;
	t->slots[i] = NULL;
	/* Shift back the entries of the cluster that follow. */
	for (size_t j = (i + 1) & t->mask; t->slots[j]; j = (j + 1) & t->mask) {
		size_t home = ptr_hash(t->slots[j]->evcon) & t->mask;
		bool movable = i <= j ? (home <= i || home > j) : (home <= i && home > j);
		if (movable) {
			t->slots[i] = t->slots[j];
			t->slots[j] = NULL;
			i = j;
		}
	}
}

/* Open connections per peer address, all workers (under peer_lock). */
struct peer {
	unsigned char addr[16];
	int family;
	int count;
	size_t bucket;	   /* in peers[] */
	struct peer *next; /* the bucket's chain */
};

#define PEER_BUCKETS 1024

struct worker {
	struct server *srv;
	int index;
	struct event_base *base;
	struct evhttp *http;
	struct evconnlistener *listener; /* owned by http once bound */
	struct event *stop_ev;		 /* activated from any thread */
	struct event *drain_ev;		 /* polls for the end of a stop */
	struct event *listen_ev;	 /* activated to pause/resume the listener */
	struct event *wake_ev;		 /* activated when waiting requests may go */
	struct event *accept_retry_ev;	 /* ends a pause after accept() failed */
	struct event *pressure_ev;	 /* at the limit: makes room for probes */
	int64_t accept_backoff_ms;	 /* the next such pause */
	bool accept_paused;		 /* accept() failed; retry_ev pending */
	int64_t drain_left_ms;		 /* how much longer a stop may wait */
	pthread_t thread;
	bool thread_started;
	struct conn_ref *conns, *conns_tail; /* live connections, oldest first */
	struct conn_table table;	     /* the same, by evhttp_connection */
	struct event *sweep_ev;		     /* cuts heads and requests over their deadline */
	bool stopping;
};

struct server {
	const struct config *cfg;
	struct api *api;
	int (*busy)(void *);
	void *busy_arg;
	struct sockaddr_storage addr;
	int addr_len;
	bool on_loopback;
	int reserve;	       /* connections beyond max_connections, for probes */
	_Atomic int n_conns;   /* open connections, all workers */
	_Atomic int n_served;  /* of them, not reserve */
	_Atomic int n_waiting; /* reserve connections with a request waiting */
	_Atomic int n_reserve; /* reserve connections */
	pthread_mutex_t pause_lock;
	bool listeners_paused; /* under pause_lock */
	pthread_mutex_t peer_lock;
	struct peer *peers[PEER_BUCKETS]; /* under peer_lock */
	_Atomic bool stopping;
	struct worker *workers;
	int n_workers;
};

/* evconnlistener hands its error callback the evhttp (evhttp_bind_listener
 * set that as the listener's argument), so the callback finds the server
 * here. One server per process. */
static struct server *_Atomic the_server;

/* ---- peers ---------------------------------------------------------------- */

static size_t peer_key(const struct sockaddr *sa, unsigned char addr[16], int *family)
{
	memset(addr, 0, 16);
	*family = sa->sa_family;
	if (sa->sa_family == AF_INET) {
		memcpy(addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) { /* the same peer as over IPv4 */
			memcpy(addr, in6->sin6_addr.s6_addr + 12, 4);
			*family = AF_INET;
		} else {
			memcpy(addr, &in6->sin6_addr, 16);
		}
	}
	uint64_t h = 1469598103934665603ULL;
	for (int i = 0; i < 16; i++)
		h = (h ^ addr[i]) * 1099511628211ULL;
	return (size_t)(h % PEER_BUCKETS);
}

/* Count a connection from sa: 0, 1 when the peer is at its cap (not
 * counted), -1 on OOM (not counted either, but let in). */
static int peer_acquire(struct server *srv, const struct sockaddr *sa, struct peer **out)
{
	unsigned char addr[16];
	int family, rc = 0;
	size_t b = peer_key(sa, addr, &family);
	*out = NULL;
	pthread_mutex_lock(&srv->peer_lock);
	struct peer *p = srv->peers[b];
	while (p && (p->family != family || memcmp(p->addr, addr, 16) != 0))
		p = p->next;
	if (!p && (p = calloc(1, sizeof(*p))) != NULL) {
		memcpy(p->addr, addr, 16);
		p->family = family;
		p->bucket = b;
		p->next = srv->peers[b];
		srv->peers[b] = p;
	}
	if (!p)
		rc = -1;
	else if (p->count >= srv->cfg->limits.max_connections_per_peer)
		rc = 1;
	else {
		p->count++;
		*out = p;
	}
	pthread_mutex_unlock(&srv->peer_lock);
	return rc;
}

static void peer_release(struct server *srv, struct peer *peer)
{
	pthread_mutex_lock(&srv->peer_lock);
	if (--peer->count == 0) {
		struct peer **pp = &srv->peers[peer->bucket];
		while (*pp && *pp != peer)
			pp = &(*pp)->next;
		if (*pp)
			*pp = peer->next;
		free(peer);
	}
	pthread_mutex_unlock(&srv->peer_lock);
}

/* ---- listeners ------------------------------------------------------------ */

static bool over_limit(const struct server *srv)
{
	return atomic_load(&srv->n_conns) >= srv->cfg->limits.max_connections + srv->reserve;
}

/* Each worker pauses or resumes its own listener, on its own thread:
 * libevent 2.1 cannot safely disable a listener from another thread while
 * its accept callback may run. */
static void on_listen_toggle(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	if (w->stopping || !w->listener)
		return;
	bool full = over_limit(w->srv);
	if (full || w->accept_paused)
		evconnlistener_disable(w->listener);
	else
		evconnlistener_enable(w->listener);
	if (full && !evtimer_pending(w->pressure_ev, NULL)) {
		struct timeval tv = timestamp_tv(RESERVE_IDLE_MS);
		evtimer_add(w->pressure_ev, &tv);
	}
}

/* Tell every worker when the open connections cross the limit. Between two
 * workers' accepts the count can pass the limit by at most workers - 1
 * before the listeners stop. */
static void server_update_listeners(struct server *srv)
{
	bool want_pause = over_limit(srv);
	pthread_mutex_lock(&srv->pause_lock);
	bool changed = !atomic_load(&srv->stopping) && want_pause != srv->listeners_paused;
	if (changed)
		srv->listeners_paused = want_pause;
	pthread_mutex_unlock(&srv->pause_lock);
	if (!changed)
		return;
	if (want_pause)
		log_limited(&ll_limit, "connection limit reached; new connections wait", "limit",
			    "limits.max_connections");
	for (int i = 0; i < srv->n_workers; i++)
		if (srv->workers[i].listen_ev)
			event_active(srv->workers[i].listen_ev, EV_READ, 0);
}

/* accept() failed for a reason other than a retriable one (EMFILE, ENFILE,
 * ENOBUFS, ENOMEM): the socket stays readable, so libevent would call
 * accept() again at once, forever. Pause this listener and retry later. */
static void on_accept_error(struct evconnlistener *lev, void *arg)
{
	int err = EVUTIL_SOCKET_ERROR();
	struct server *srv = atomic_load(&the_server);
	struct worker *w = NULL;
	for (int i = 0; srv && i < srv->n_workers; i++)
		if (srv->workers[i].listener == lev)
			w = &srv->workers[i];
	if (!w) {
		evconnlistener_disable(lev);
		return;
	}
	evconnlistener_disable(lev);
	w->accept_paused = true;
	struct timeval tv = timestamp_tv(w->accept_backoff_ms);
	evtimer_add(w->accept_retry_ev, &tv);
	char why[160];
	snprintf(why, sizeof(why), "%s; retrying in %lld ms", evutil_socket_error_to_string(err),
		 (long long)w->accept_backoff_ms);
	log_limited(&ll_accept, "cannot accept connections; the listener pauses", "error", why);
	w->accept_backoff_ms *= 2;
	if (w->accept_backoff_ms > ACCEPT_BACKOFF_MAX_MS)
		w->accept_backoff_ms = ACCEPT_BACKOFF_MAX_MS;
}

static void on_accept_retry(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	w->accept_paused = false;
	on_listen_toggle(-1, 0, w);
}

/* ---- the gate ------------------------------------------------------------- */

static void evict_idle_reserve(struct worker *w);

/* At the limit with the listener off: reserve connections that sent no
 * request make room, so that a probe waiting in the backlog gets in. */
static void on_pressure(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	if (w->stopping || !over_limit(w->srv))
		return;
	evict_idle_reserve(w);
	if (over_limit(w->srv)) {
		struct timeval tv = timestamp_tv(RESERVE_IDLE_MS);
		evtimer_add(w->pressure_ev, &tv);
	}
}

static void conn_close(struct conn_ref *c, struct log_limit *ll, const char *msg, const char *limit)
{
	if (ll)
		log_limited(ll, msg, "limit", limit);
	evhttp_connection_free(c->evcon); /* on_conn_close frees c */
}

/* Move the last n bytes of from to the end of to. */
static void take_tail(struct evbuffer *from, struct evbuffer *to, size_t n)
{
	size_t len = evbuffer_get_length(from);
	if (n >= len) {
		evbuffer_add_buffer(to, from);
		return;
	}
	struct evbuffer *front = evbuffer_new();
	if (!front)
		return; /* then evhttp sees the bytes unchecked: only on OOM */
	evbuffer_remove_buffer(from, front, len - n);
	evbuffer_add_buffer(to, from);
	evbuffer_add_buffer(from, front);
	evbuffer_free(front);
}

static bool claim_slot(struct server *srv)
{
	int n = atomic_load(&srv->n_served);
	while (n < srv->cfg->limits.max_connections)
		if (atomic_compare_exchange_weak(&srv->n_served, &n, n + 1))
			return true;
	return false;
}

/* Bytes handed to evhttp outside a read of the socket need a nudge. */
static void gate_hand_over(struct conn_ref *ref, bool from_read)
{
	if (!from_read)
		ref->trigger = true; /* gate_resume does, when it is done with ref */
}

static void refusal_hand_over(struct conn_ref *ref, bool from_read)
{
	ref->refuse_pending = false;
	evbuffer_add_printf(bufferevent_get_input(ref->bev),
			    "%s " REFUSED_TARGET " HTTP/1.1\r\nConnection: close\r\n\r\n",
			    ref->head_method_head ? "HEAD" : "GET");
	gate_hand_over(ref, from_read);
}

/* Replace the request with one of ours that on_request answers with the
 * JSON error; what the client sends from now on is dropped. */
static void gate_refuse(struct conn_ref *ref, const struct head_check *hc, bool from_read)
{
	ref->refuse_status = hc->status;
	ref->refuse_code = hc->code;
	ref->refuse_header = hc->hdr;
	ref->refuse_value = hc->hdr_value;
	snprintf(ref->refuse_msg, sizeof(ref->refuse_msg), "%s", hc->msg);
	ref->state = GATE_DISCARD;
	ref->awaiting_reply = true;
	ref->head_method_head = hc->is_head;
	evbuffer_drain(ref->held, evbuffer_get_length(ref->held));
	if (!ref->evcon) { /* on_request could not find ref yet */
		ref->refuse_pending = true;
		return;
	}
	refusal_hand_over(ref, from_read);
}

/* Under pressure, a connection of this worker that is only slowly sending
 * a head makes room for one that sent a whole request. */
static void evict_slow_head(struct worker *w, bool reserve, const struct conn_ref *keep)
{
	int64_t now = timestamp_mono_ms();
	for (struct conn_ref *c = w->conns; c; c = c->next) {
		if (c == keep || !c->evcon || c->reserve != reserve || c->state != GATE_HEAD ||
		    c->awaiting_reply)
			continue;
		/* Reserve connections go when idle for a moment too; served ones
		 * only when their head has been arriving for a while. */
		int64_t since = c->in_request ? c->request_started_ms : c->accepted_ms;
		if (reserve ? now - since < RESERVE_IDLE_MS
			    : !(c->in_request && now - c->request_started_ms >= SLOW_HEAD_MS))
			continue;
		conn_close(c, &ll_evict,
			   "connections at the limit; closing a slow or idle one to make room",
			   "limits.max_connections");
		return;
	}
}

static bool reserve_idle(const struct conn_ref *c, int64_t now)
{
	int64_t since = c->in_request ? c->request_started_ms : c->accepted_ms;
	return c->evcon && c->reserve && c->state == GATE_HEAD && !c->awaiting_reply &&
	       now - since >= RESERVE_IDLE_MS;
}

static void evict_idle_reserve(struct worker *w)
{
	int64_t now = timestamp_mono_ms();
	struct conn_ref *c = w->conns;
	while (c) {
		struct conn_ref *next = c->next;
		if (reserve_idle(c, now))
			conn_close(c, &ll_evict,
				   "connections at the limit; closing an idle one to make room",
				   "limits.max_connections");
		c = next;
	}
}

static void gate_step(struct conn_ref *ref, bool from_read);

static void gate_wait(struct conn_ref *ref)
{
	if (!ref->reserve)
		return;
	struct server *srv = ref->w->srv;
	if (!claim_slot(srv)) {
		evict_slow_head(ref->w, false, ref);
		if (!claim_slot(srv))
			return;
	}
	ref->reserve = false;
	atomic_fetch_sub(&srv->n_reserve, 1);
	if (ref->waiting) {
		ref->waiting = false;
		atomic_fetch_sub(&srv->n_waiting, 1);
	}
}

static void gate_release_chunked(struct conn_ref *ref, bool from_read)
{
	struct evbuffer *in = bufferevent_get_input(ref->bev);
	const struct config *cfg = ref->w->srv->cfg;
	size_t len = evbuffer_get_length(ref->held), used = 0, size = 0;
	const unsigned char *p = evbuffer_pullup(ref->held, (ev_ssize_t)len);
	struct head_check hc = {.is_head = ref->head_method_head};
	if (!p)
		return;
	enum httphead_chunked_result r = httphead_chunked(
	    p + ref->head_len, len - ref->head_len, cfg->limits.max_body_bytes, NULL, &used, &size);
	if (r == CHUNKED_MORE && len - ref->head_len > 2 * cfg->limits.max_body_bytes + 65536)
		r = CHUNKED_BIG; /* chunk framing that dwarfs its data */
	if (r == CHUNKED_MORE)
		return;
	if (r == CHUNKED_BAD) {
		httphead_refuse(&hc, 400, "bad_request", "%s", "malformed chunked body");
		gate_refuse(ref, &hc, from_read);
		return;
	}
	if (r == CHUNKED_BIG) {
		char lim[24];
		snprintf(lim, sizeof(lim), "%zu", cfg->limits.max_body_bytes);
		httphead_refuse(&hc, 413, "body_too_large",
				"request too large: body over limits.max_body_bytes (%s bytes)",
				lim);
		gate_refuse(ref, &hc, from_read);
		return;
	}
	/* The head without Transfer-Encoding and Expect, with the length. */
	const char *line = (const char *)p, *stop = (const char *)p + ref->head_len;
	bool first = true;
	while (line < stop) {
		const char *lf = memchr(line, '\n', (size_t)(stop - line));
		const char *le = lf > line && lf[-1] == '\r' ? lf - 1 : lf;
		size_t ln = (size_t)(le - line);
		if (ln == 0)
			break;
		const char *colon = first ? NULL : memchr(line, ':', ln);
		size_t nn = colon ? (size_t)(colon - line) : 0;
		if (first || !(httphead_name_is(line, nn, "Transfer-Encoding") ||
			       httphead_name_is(line, nn, "Expect")))
			evbuffer_add_printf(in, "%.*s\r\n", (int)ln, line);
		first = false;
		line = lf + 1;
	}
	evbuffer_add_printf(in, "Content-Length: %zu\r\n\r\n", size);
	httphead_chunked(p + ref->head_len, len - ref->head_len, cfg->limits.max_body_bytes, in,
			 &used, &size);
	evbuffer_drain(ref->held, ref->head_len + used);
	ref->state = GATE_HEAD;
	ref->awaiting_reply = true;
	gate_hand_over(ref, from_read);
}

/* Move what is held along as far as it can go now. */
static void gate_step(struct conn_ref *ref, bool from_read)
{
	struct server *srv = ref->w->srv;
	const struct config *cfg = srv->cfg;
	struct evbuffer *in = bufferevent_get_input(ref->bev);
	if (ref->state == GATE_HEAD) {
		size_t len = evbuffer_get_length(ref->held);
		if (ref->awaiting_reply || len == 0)
			return; /* a pipelined request waits for the answer before it */
		if (!ref->in_request) {
			ref->in_request = true;
			ref->request_started_ms = timestamp_mono_ms();
		}
		struct head_check hc;
		const char *p = (const char *)evbuffer_pullup(ref->held, (ev_ssize_t)len);
		if (!p || httphead_parse(p, len, cfg->limits.max_header_bytes,
					 cfg->limits.max_body_bytes, &hc) == 0)
			return;
		if (hc.status) {
			gate_refuse(ref, &hc, from_read);
			return;
		}
		evbuffer_drain(ref->held, hc.skip);
		ref->head_len = hc.len;
		/* evhttp reads no body after a HEAD: what follows is the next request. */
		ref->content_length = hc.is_head	      ? 0
				      : hc.chunked	      ? -1
				      : hc.content_length < 0 ? 0
							      : hc.content_length;
		ref->head_method_head = hc.is_head;
		ref->state = GATE_HELD;
		/* A probe on a reserve connection goes; anything else waits. It
		 * counts as waiting before it tries for a slot: the slot its
		 * eviction frees must go to it, not to another worker's idle
		 * reserve connection (on_wake). */
		if (ref->reserve && !hc.is_probe) {
			ref->waiting = true;
			atomic_fetch_add(&srv->n_waiting, 1);
			gate_wait(ref);
		}
		if (hc.chunked && hc.expect_continue && ref->evcon && !ref->waiting) {
			static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
			/* evhttp would only send it when handed the head, which
			 * waits for the body: the socket is empty, this fits. */
			(void)!send(bufferevent_getfd(ref->bev), cont, sizeof(cont) - 1,
				    MSG_NOSIGNAL | MSG_DONTWAIT);
		}
	}
	if (ref->state == GATE_HELD) {
		if (!ref->evcon || ref->waiting)
			return; /* on_conn_accepted or a promotion goes on */
		if (ref->content_length < 0) {
			ref->state = GATE_CHUNKED;
		} else {
			size_t len = evbuffer_get_length(ref->held);
			size_t want = ref->head_len + (size_t)ref->content_length;
			size_t give = len < want ? len : want;
			evbuffer_remove_buffer(ref->held, in, give);
			ref->body_left = (int64_t)(want - give);
			ref->state = ref->body_left > 0 ? GATE_BODY : GATE_HEAD;
			ref->awaiting_reply = true;
			gate_hand_over(ref, from_read);
			return;
		}
	}
	if (ref->state == GATE_CHUNKED)
		gate_release_chunked(ref, from_read);
}

/* Bytes arrived, before evhttp's read callback sees them. */
static void on_conn_input(struct evbuffer *in, const struct evbuffer_cb_info *info, void *arg)
{
	struct conn_ref *ref = arg;
	if (ref->gate_busy || info->n_added == 0)
		return;
	ref->gate_busy = true;
	size_t added = info->n_added;
	switch (ref->state) {
	case GATE_DISCARD:
		evbuffer_drain(in, evbuffer_get_length(in));
		break;
	case GATE_BODY:
		if ((int64_t)added <= ref->body_left) {
			ref->body_left -= (int64_t)added;
			if (ref->body_left == 0)
				ref->state = GATE_HEAD;
			break;
		}
		take_tail(in, ref->held, added - (size_t)ref->body_left);
		ref->body_left = 0;
		ref->state = GATE_HEAD;
		break; /* a pipelined request: it waits for this one's answer */
	default:
		take_tail(in, ref->held, added);
		gate_step(ref, true);
		break;
	}
	/* A client sending more than one request could ever be: stop reading
	 * it until the held bytes went on. */
	const struct config *cfg = ref->w->srv->cfg;
	if (evbuffer_get_length(ref->held) >
	    2 * (cfg->limits.max_header_bytes + cfg->limits.max_body_bytes) + 65536)
		bufferevent_disable(ref->bev, EV_READ);
	ref->gate_busy = false;
}

/* Run the gate outside a read: after accept, a promotion or a reply. A
 * bufferevent keeps the end of its input frozen except while it reads. */
static void gate_resume(struct conn_ref *ref)
{
	struct evbuffer *in = bufferevent_get_input(ref->bev);
	ref->gate_busy = true;
	evbuffer_unfreeze(in, 0);
	if (ref->refuse_pending)
		refusal_hand_over(ref, false);
	else
		gate_step(ref, false);
	evbuffer_freeze(in, 0);
	ref->gate_busy = false;
	if (ref->trigger) {
		/* evhttp's read callback may answer and even free ref. */
		ref->trigger = false;
		bufferevent_trigger(ref->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS);
	}
}

/* ---- connection lifecycle ------------------------------------------------- */

static void wake_waiting(struct server *srv)
{
	if (atomic_load(&srv->n_reserve) <= 0)
		return;
	for (int i = 0; i < srv->n_workers; i++)
		if (srv->workers[i].wake_ev)
			event_active(srv->workers[i].wake_ev, EV_READ, 0);
}

static void conn_unlink(struct conn_ref *ref)
{
	struct worker *w = ref->w;
	if (ref->prev)
		ref->prev->next = ref->next;
	else
		w->conns = ref->next;
	if (ref->next)
		ref->next->prev = ref->prev;
	else
		w->conns_tail = ref->prev;
}

static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
	struct conn_ref *ref = arg;
	struct server *srv = ref->w->srv;
	if (ref->evcon)
		conn_table_del(&ref->w->table, ref);
	conn_unlink(ref);
	if (ref->waiting)
		atomic_fetch_sub(&srv->n_waiting, 1);
	if (ref->peer)
		peer_release(srv, ref->peer);
	if (ref->kick_ev)
		event_free(ref->kick_ev);
	evbuffer_free(ref->held);
	bool served = !ref->reserve;
	if (!served)
		atomic_fetch_sub(&srv->n_reserve, 1);
	free(ref);
	atomic_fetch_sub(&srv->n_conns, 1);
	if (served) {
		atomic_fetch_sub(&srv->n_served, 1);
		wake_waiting(srv);
	}
	server_update_listeners(srv);
}

/* A served connection closed: reserve connections of this worker take its
 * place, those with a request waiting first, then the oldest. */
static void promote(struct conn_ref *c)
{
	struct server *srv = c->w->srv;
	c->reserve = false;
	atomic_fetch_sub(&srv->n_reserve, 1);
	if (c->waiting) {
		c->waiting = false;
		atomic_fetch_sub(&srv->n_waiting, 1);
		gate_resume(c); /* may hand the request to evhttp */
	}
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct server *srv = w->srv;
	for (int pass = 0; pass < 2; pass++) {
		struct conn_ref *c = w->conns;
		while (c && atomic_load(&srv->n_reserve) > 0) {
			struct conn_ref *next = c->next;
			/* requests waiting (on any worker) first: an idle reserve
			 * connection takes a slot only when none waits */
			if (c->reserve && c->evcon &&
			    (c->waiting || (pass == 1 && atomic_load(&srv->n_waiting) == 0))) {
				if (!claim_slot(srv))
					return;
				promote(c);
			}
			c = next;
		}
	}
}

/* evhttp 2.1's timeout is per read, so a client trickling a byte at a time
 * could hold a connection forever; this bounds the head and the request. */
static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	const struct config *cfg = w->srv->cfg;
	int64_t now = timestamp_mono_ms(), limit = cfg->limits.request_timeout_ms;
	int64_t head_limit =
	    cfg->limits.header_timeout_ms < limit ? cfg->limits.header_timeout_ms : limit;
	struct conn_ref *c = w->conns;
	while (c) {
		struct conn_ref *next = c->next; /* freeing the connection frees c */
		if (c->evcon && c->in_request) {
			int64_t age = now - c->request_started_ms;
			if (c->state == GATE_HEAD && !c->awaiting_reply && age > head_limit)
				conn_close(c, &ll_head_timeout,
					   "request head not complete in time; closing the "
					   "connection",
					   "limits.header_timeout");
			else if (age > limit)
				conn_close(c, &ll_timeout,
					   "request timed out; closing the connection",
					   "limits.request_timeout");
		}
		c = next;
	}
}

/* After a reply: a pipelined request held meanwhile goes on. */
static void on_kick(evutil_socket_t fd, short what, void *arg)
{
	gate_resume(arg);
}

static void on_reply_done(struct evhttp_request *req, void *arg)
{
	struct conn_ref *ref = arg;
	ref->awaiting_reply = false;
	if (evbuffer_get_length(ref->held) == 0 || ref->state == GATE_DISCARD)
		return;
	if (!ref->kick_ev)
		ref->kick_ev = evtimer_new(ref->w->base, on_kick, ref);
	struct timeval now = {0, 0};
	if (ref->kick_ev)
		evtimer_add(ref->kick_ev, &now);
	bufferevent_enable(ref->bev, EV_READ);
}

/*
 * Runs on the next loop iteration after an accept: by then evhttp has
 * wrapped the bufferevent in its connection and set itself as the callback
 * argument, which is how we find the connection to watch. We held a
 * reference to the bufferevent, so it is valid even if evhttp already gave
 * the connection up (then its callbacks are cleared).
 */
static void on_conn_accepted(evutil_socket_t fd, short what, void *arg)
{
	struct conn_ref *ref = arg;
	struct bufferevent *bev = ref->bev;
	struct worker *w = ref->w;
	struct server *srv = w->srv;
	void *cbarg = NULL;
	bufferevent_getcb(bev, NULL, NULL, NULL, &cbarg);
	if (!cbarg) {
		on_conn_close(NULL, ref);
		bufferevent_decref(bev);
		return;
	}
	ref->evcon = cbarg;
	if (conn_table_put(&w->table, ref) < 0) {
		ref->evcon = NULL; /* cannot happen: sized for the limit */
		log_error("connection table full", NULL);
		bufferevent_decref(bev);
		return;
	}
	evhttp_connection_set_closecb(cbarg, on_conn_close, ref);
	const struct sockaddr *sa = evhttp_connection_get_addr(cbarg);
	if (sa && peer_acquire(srv, sa, &ref->peer) == 1) {
		char cap[24];
		snprintf(cap, sizeof(cap), "%d", srv->cfg->limits.max_connections_per_peer);
		log_limited(&ll_peer, "too many connections from one address; closing the new one",
			    "max_connections_per_peer", cap);
		evhttp_connection_free(cbarg);
		bufferevent_decref(bev);
		return;
	}
	if (w->stopping) /* accepted just before the stop */
		evhttp_connection_set_timeout(ref->evcon, 1);
	if (ref->reserve &&
	    atomic_load(&srv->n_conns) >= srv->cfg->limits.max_connections + srv->reserve - 1)
		evict_slow_head(w, true, ref); /* keep a place free for probes */
	if (ref->refuse_pending || ref->state == GATE_HELD)
		gate_resume(ref);
	bufferevent_decref(bev);
}

static struct bufferevent *on_new_connection(struct event_base *base, void *arg)
{
	struct worker *w = arg;
	struct server *srv = w->srv;
	struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	struct conn_ref *ref = bev ? calloc(1, sizeof(*ref)) : NULL;
	w->accept_backoff_ms = ACCEPT_BACKOFF_MIN_MS;
	if (!ref)
		return bev; /* evhttp copes with NULL; we just cannot count it */
	ref->w = w;
	ref->bev = bev;
	ref->held = evbuffer_new();
	struct timeval now = {0, 0};
	if (!ref->held || !evbuffer_add_cb(bufferevent_get_input(bev), on_conn_input, ref)) {
		if (ref->held)
			evbuffer_free(ref->held);
		free(ref);
		bufferevent_free(bev);
		return NULL;
	}
	bufferevent_incref(bev);
	if (event_base_once(base, -1, EV_TIMEOUT, on_conn_accepted, ref, &now) < 0) {
		/* Without on_conn_accepted the gate would hold the head forever. */
		bufferevent_decref(bev);
		evbuffer_free(ref->held);
		free(ref);
		bufferevent_free(bev);
		return NULL;
	}
	ref->reserve = !claim_slot(srv);
	if (ref->reserve)
		atomic_fetch_add(&srv->n_reserve, 1);
	ref->accepted_ms = timestamp_mono_ms();
	ref->prev = w->conns_tail;
	if (w->conns_tail)
		w->conns_tail->next = ref;
	else
		w->conns = ref;
	w->conns_tail = ref;
	atomic_fetch_add(&srv->n_conns, 1);
	server_update_listeners(srv);
	return bev;
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct worker *w = arg;
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	struct conn_ref *ref = conn_table_get(&w->table, evhttp_request_get_connection(req));
	if (ref) {
		ref->in_request = false;
		evhttp_request_set_on_complete_cb(req, on_reply_done, ref);
		if (ref->refuse_status) {
			evhttp_add_header(out, "Connection", "close");
			if (ref->refuse_header)
				evhttp_add_header(out, ref->refuse_header, ref->refuse_value);
			if (ref->refuse_status == 413)
				api_count_too_large(w->srv->api);
			api_send_error(req, ref->refuse_status, ref->refuse_code, ref->refuse_msg);
			return;
		}
	}
	if (w->stopping) /* answer, then close: the server is going away */
		evhttp_add_header(out, "Connection", "close");
	if (!w->srv->api) {
		api_send_error(req, 503, "unavailable", "starting or stopping");
		return;
	}
	api_handle(w->srv->api, req);
}

/* ---- stopping ------------------------------------------------------------- */

/*
 * Stopping: listeners are off; requests already on a connection are read
 * and answered (the client is still sending, so the connection's timeout
 * keeps being pushed back), idle keep-alive connections time out after 1 s,
 * and each worker's loop ends when its connections are gone (at most
 * request_timeout later). Worker 0 also waits until the busy callback says
 * nothing runs (running actions), up to SHUTDOWN_GRACE_MS.
 */
static void on_drain(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct server *srv = w->srv;
	int running = w->index == 0 && srv->busy ? srv->busy(srv->busy_arg) : 0;
	bool conns_left = w->conns != NULL;
	if ((!running && !conns_left) || w->drain_left_ms <= 0) {
		if (running > 0)
			log_warn("shutdown grace period over; actions still running are abandoned",
				 NULL);
		event_base_loopexit(w->base, NULL);
		return;
	}
	w->drain_left_ms -= 50;
	struct timeval tv = timestamp_tv(50);
	evtimer_add(w->drain_ev, &tv);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	w->stopping = true;
	w->drain_left_ms = w->srv->cfg->limits.request_timeout_ms;
	if (w->index == 0 && w->drain_left_ms < SHUTDOWN_GRACE_MS)
		w->drain_left_ms = SHUTDOWN_GRACE_MS; /* running actions may finish */
	if (w->listener)
		evconnlistener_disable(w->listener);
	evtimer_del(w->accept_retry_ev);
	evtimer_del(w->pressure_ev);
	struct conn_ref *c = w->conns;
	while (c) {
		struct conn_ref *next = c->next;
		if (c->evcon && c->waiting)
			conn_close(c, NULL, NULL, NULL); /* never handed to evhttp */
		else if (c->evcon)
			evhttp_connection_set_timeout(c->evcon, 1);
		c = next;
	}
	on_drain(-1, 0, w);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	event_base_dispatch(w->base);
	return NULL;
}

void server_stop(struct server *srv, const char *why)
{
	log_info("stopping", "signal", why, NULL);
	atomic_store(&srv->stopping, true);
	for (int i = 0; i < srv->n_workers; i++)
		if (srv->workers[i].stop_ev)
			event_active(srv->workers[i].stop_ev, EV_READ, 0);
}

/* ---- set-up --------------------------------------------------------------- */

static int worker_setup(struct worker *w, const struct sockaddr *sa, int salen, struct error *err)
{
	const struct config *cfg = w->srv->cfg;
	w->base = timestamp_event_base_new();
	if (!w->base)
		return error_set(err, "cannot create event base");
	w->http = evhttp_new(w->base);
	if (!w->http)
		return error_set(err, "cannot create HTTP server");
	/* The gate enforces ours; evhttp's are above them so that it never
	 * refuses (and answers with its HTML page) what the gate let by. */
	evhttp_set_max_body_size(w->http, (ev_ssize_t)cfg->limits.max_body_bytes + 1024);
	evhttp_set_max_headers_size(w->http, (ev_ssize_t)cfg->limits.max_header_bytes + 1024);
	struct timeval tv = timestamp_tv(cfg->limits.request_timeout_ms);
	evhttp_set_timeout_tv(w->http, &tv);
	/* Every method evhttp knows, so it never answers 501 itself; the gate
	 * answers 405 for those other than GET, HEAD and POST. */
	evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
						EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
						EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
						EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_default_content_type(w->http, "application/json");
	evhttp_set_gencb(w->http, on_request, w);
	evhttp_set_bevcb(w->http, on_new_connection, w);

	w->listener = evconnlistener_new_bind(w->base, NULL, NULL,
					      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC |
						  LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT,
					      LISTEN_BACKLOG, sa, salen);
	if (!w->listener)
		return error_set(err, "cannot listen on '%s': %s", cfg->listen, strerror(errno));
	if (!evhttp_bind_listener(w->http, w->listener)) {
		evconnlistener_free(w->listener);
		w->listener = NULL;
		return error_set(err, "cannot bind HTTP server to '%s'", cfg->listen);
	}
	evconnlistener_set_error_cb(w->listener, on_accept_error);
	w->accept_backoff_ms = ACCEPT_BACKOFF_MIN_MS;
	w->stop_ev = event_new(w->base, -1, 0, on_stop, w);
	w->drain_ev = evtimer_new(w->base, on_drain, w);
	w->sweep_ev = event_new(w->base, -1, EV_PERSIST, on_sweep, w);
	w->listen_ev = event_new(w->base, -1, 0, on_listen_toggle, w);
	w->wake_ev = event_new(w->base, -1, 0, on_wake, w);
	w->accept_retry_ev = evtimer_new(w->base, on_accept_retry, w);
	w->pressure_ev = evtimer_new(w->base, on_pressure, w);
	if (!w->pressure_ev || !w->stop_ev || !w->drain_ev || !w->sweep_ev || !w->listen_ev ||
	    !w->wake_ev || !w->accept_retry_ev ||
	    conn_table_init(&w->table,
			    (size_t)(cfg->limits.max_connections + w->srv->reserve) + 64) < 0)
		return error_set(err, "cannot create worker events");
	int64_t shortest = cfg->limits.header_timeout_ms < cfg->limits.request_timeout_ms
			       ? cfg->limits.header_timeout_ms
			       : cfg->limits.request_timeout_ms;
	struct timeval sweep = timestamp_tv(shortest / 4 + 1);
	evtimer_add(w->sweep_ev, &sweep);
	return 0;
}

static void worker_release(struct worker *w)
{
	struct event *evs[] = {w->stop_ev, w->drain_ev,	       w->sweep_ev,   w->listen_ev,
			       w->wake_ev, w->accept_retry_ev, w->pressure_ev};
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
		if (evs[i])
			event_free(evs[i]);
	if (w->http)
		evhttp_free(w->http); /* frees the listener and open connections */
	if (w->base)
		event_base_free(w->base);
	free(w->table.slots);
}

static int resolve_listen(const struct config *cfg, struct sockaddr_storage *ss, int *salen,
			  struct error *err)
{
	char host[256];
	int port;
	if (config_listen_addr(cfg, host, sizeof(host), &port, err) < 0)
		return -1;
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	if (evutil_inet_pton(AF_INET, host, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		*salen = (int)sizeof(*in);
	} else if (evutil_inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*salen = (int)sizeof(*in6);
	} else {
		return error_set(err, "listen: '%s' is not a numeric IPv4 or IPv6 address and port",
				 cfg->listen);
	}
	return 0;
}

static bool is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
}

static int connection_reserve(const struct config *cfg)
{
	int r = cfg->limits.max_connections / 16;
	return r < 4 ? 4 : r > 64 ? 64 : r;
}

int server_check_fd_limit(const struct config *cfg, struct error *err)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)cfg->limits.max_connections + (rlim_t)connection_reserve(cfg) +
		      FD_OVERHEAD + 8 * (rlim_t)(cfg->workers > 0 ? cfg->workers : 1);
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return error_set(err, "getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= need)
		return 0;
	if (rl.rlim_cur == RLIM_INFINITY)
		return 0;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
		return error_set(err,
				 "limits.max_connections is %d, which needs %llu open files, but "
				 "the hard limit on open files (RLIMIT_NOFILE) is %llu: raise it "
				 "(ulimit -Hn, LimitNOFILE= in the systemd unit) or lower "
				 "limits.max_connections",
				 cfg->limits.max_connections, (unsigned long long)need,
				 (unsigned long long)rl.rlim_max);
	char from[24], to[24];
	snprintf(from, sizeof(from), "%llu", (unsigned long long)rl.rlim_cur);
	snprintf(to, sizeof(to), "%llu", (unsigned long long)need);
	rl.rlim_cur = need;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		return error_set(err,
				 "cannot raise the open-file limit (RLIMIT_NOFILE) from %s to "
				 "%s for limits.max_connections: %s",
				 from, to, strerror(errno));
	log_info("raised the open-file limit for limits.max_connections", "from", from, "to", to,
		 NULL);
	return 0;
}

struct server *server_new(const struct server_options *opt, struct error *err)
{
	const struct config *cfg = opt->cfg;
	struct server *srv = calloc(1, sizeof(*srv));
	if (!srv) {
		error_set(err, "out of memory");
		return NULL;
	}
	srv->cfg = cfg;
	srv->busy = opt->busy;
	srv->busy_arg = opt->busy_arg;
	srv->reserve = connection_reserve(cfg);
	pthread_mutex_init(&srv->pause_lock, NULL);
	pthread_mutex_init(&srv->peer_lock, NULL);
	if (resolve_listen(cfg, &srv->addr, &srv->addr_len, err) < 0)
		goto fail;
	srv->on_loopback = is_loopback((struct sockaddr *)&srv->addr);
	event_set_log_callback(on_libevent_log);
	srv->n_workers = cfg->workers > 0 ? cfg->workers : 1;
	srv->workers = calloc((size_t)srv->n_workers, sizeof(*srv->workers));
	if (!srv->workers) {
		error_set(err, "out of memory");
		goto fail;
	}
	for (int i = 0; i < srv->n_workers; i++) {
		struct worker *w = &srv->workers[i];
		w->srv = srv;
		w->index = i;
		if (worker_setup(w, (struct sockaddr *)&srv->addr, srv->addr_len, err) < 0)
			goto fail;
		if (i == 0) {
			/* With port 0 the kernel picked one; the others share it. */
			socklen_t len = sizeof(srv->addr);
			evutil_socket_t fd = evconnlistener_get_fd(w->listener);
			if (getsockname(fd, (struct sockaddr *)&srv->addr, &len) < 0) {
				error_set(err, "getsockname: %s", strerror(errno));
				goto fail;
			}
			srv->addr_len = (int)len;
		}
	}
	atomic_store(&the_server, srv);
	return srv;
fail:
	server_free(srv);
	return NULL;
}

struct event_base *server_main_base(struct server *srv)
{
	return srv->workers[0].base;
}

void server_addr(const struct server *srv, char *out, size_t outsz)
{
	char host[64] = "?";
	const struct sockaddr *sa = (const struct sockaddr *)&srv->addr;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		evutil_inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(out, outsz, "%s:%d", host, ntohs(in->sin_port));
	} else {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		evutil_inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(out, outsz, "[%s]:%d", host, ntohs(in6->sin6_port));
	}
}

bool server_on_loopback(const struct server *srv)
{
	return srv->on_loopback;
}

void server_set_api(struct server *srv, struct api *api)
{
	if (srv)
		srv->api = api;
}

int server_run(struct server *srv, struct error *err)
{
	int rc = 0;
	for (int i = 1; i < srv->n_workers; i++) {
		struct worker *w = &srv->workers[i];
		if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
			error_set(err, "cannot start worker thread");
			server_stop(srv, "startup failure");
			rc = -1;
			break;
		}
		w->thread_started = true;
	}
	event_base_dispatch(srv->workers[0].base);
	for (int i = 1; i < srv->n_workers; i++) {
		if (srv->workers[i].thread_started) {
			pthread_join(srv->workers[i].thread, NULL);
			srv->workers[i].thread_started = false;
		}
	}
	return rc;
}

void server_free(struct server *srv)
{
	if (!srv)
		return;
	struct server *self = srv;
	atomic_compare_exchange_strong(&the_server, &self, NULL);
	for (int i = 0; srv->workers && i < srv->n_workers; i++)
		worker_release(&srv->workers[i]);
	free(srv->workers);
	for (size_t b = 0; b < PEER_BUCKETS; b++) {
		while (srv->peers[b]) {
			struct peer *p = srv->peers[b];
			srv->peers[b] = p->next;
			free(p);
		}
	}
	pthread_mutex_destroy(&srv->pause_lock);
	pthread_mutex_destroy(&srv->peer_lock);
	free(srv);
}
