/*
 * server: evhttp plumbing for `rollbackd serve`.
 *
 * Workers: one event base + evhttp per worker, each with its own listening
 * socket on the same address (SO_REUSEPORT), so the kernel spreads
 * connections and no lock is taken on the request path. Worker 0 runs on
 * the main thread and also owns the signal events.
 *
 * Limits: libevent 2.1 sets none by default, so every one is set here:
 * body and header size, idle timeout, allowed methods, and connections.
 * evhttp 2.1 has no connection cap (evhttp_set_max_connections is 2.2), so
 * each worker counts its connections (evhttp_set_bevcb sees every accept,
 * a close callback every close) and disables its listener at its share of
 * limits.max_connections; further clients wait in the kernel backlog.
 *
 * This module must never block: no sleeping, no waiting on children, no
 * synchronous I/O beyond the sockets libevent hands it.
 */
#include "rollbackd/server.h"

#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <event2/util.h>

#include "rollbackd/api.h"
#include "rollbackd/checkpoint.h"
#include "rollbackd/engine.h"
#include "rollbackd/journal.h"
#include "rollbackd/notify.h"
#include "rollbackd/rules.h"
#include "rollbackd/timestamp.h"
#include "rollbackd/log.h"

#define LISTEN_BACKLOG 511
#define SHUTDOWN_GRACE_MS 30000 /* running actions may finish this long */

struct worker;

/* A connection the server counts; freed when evhttp closes it. */
struct conn_ref {
	struct worker *w;
	struct bufferevent *bev;
	struct evhttp_connection *evcon; /* NULL until on_conn_accepted ran */
	struct conn_ref *prev, *next;    /* the worker's list */
	bool in_request;                 /* bytes arrived since the last dispatch */
	int64_t request_started_ms;      /* when they started to arrive */
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

static size_t conn_hash(const struct conn_table *t, const void *key)
{
	uint64_t x = (uint64_t)(uintptr_t)key;
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return (size_t)x & t->mask;
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
	for (size_t i = conn_hash(t, evcon);; i = (i + 1) & t->mask) {
		if (!t->slots[i])
			return NULL;
		if (t->slots[i]->evcon == evcon)
			return t->slots[i];
	}
}

/* Returns -1 when full (more connections than the table was sized for). */
static int conn_table_put(struct conn_table *t, struct conn_ref *ref)
{
	size_t i = conn_hash(t, ref->evcon);
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
	size_t i = conn_hash(t, ref->evcon);
	while (t->slots[i] && t->slots[i] != ref)
		i = (i + 1) & t->mask;
	if (!t->slots[i])
		return;
	t->slots[i] = NULL;
	/* Shift back the entries of the cluster that follow. */
	for (size_t j = (i + 1) & t->mask; t->slots[j]; j = (j + 1) & t->mask) {
		size_t home = conn_hash(t, t->slots[j]->evcon);
		bool movable = i <= j ? (home <= i || home > j) : (home <= i && home > j);
		if (movable) {
			t->slots[i] = t->slots[j];
			t->slots[j] = NULL;
			i = j;
		}
	}
}

struct worker {
	struct server *srv;
	int index;
	struct event_base *base;
	struct evhttp *http;
	struct evconnlistener *listener; /* owned by http once bound */
	struct event *stop_ev;           /* activated from any thread */
	struct event *drain_ev;          /* polls for the end of a stop */
	struct event *listen_ev;         /* activated to pause/resume the listener */
	int64_t drain_left_ms;           /* how much longer a stop may wait */
	pthread_t thread;
	bool thread_started;
	struct conn_ref *conns; /* live connections of this worker's loop */
	struct conn_table table; /* the same, by evhttp_connection */
	struct event *sweep_ev;  /* cuts requests that exceed request_timeout */
	bool stopping;
};

/* A configuration loaded by SIGHUP; kept until exit, since requests in
 * flight may still read the one before. */
struct generation {
	struct config cfg;
	struct ruleset rules;
	struct generation *prev;
};

struct server {
	const struct config *cfg;       /* the one the process started with */
	const struct config *current;   /* the one deciding now */
	const char *config_path;        /* NULL: built-in defaults */
	struct generation *gens;
	bool on_loopback;
	struct ruleset rules;
	struct engine *engine;
	struct journal *journal;
	struct notify *notify;
	struct checkpointer *checkpoint; /* NULL without checkpoints */
	struct api *api;
	_Atomic int n_conns;     /* open connections, all workers */
	pthread_mutex_t pause_lock;
	bool listeners_paused;   /* under pause_lock */
	_Atomic bool stopping;
	struct worker *workers;
	int n_workers;
	struct event *sig_term, *sig_int, *sig_hup, *sig_pipe;
};


static _Atomic size_t max_body_for_errors;
static struct api *_Atomic api_for_errors; /* counts the 413s evhttp answers */

/*
 * evhttp 2.1 answers transport-level failures itself with an HTML page
 * (evhttp_send_error, reached through the PLT), and has no error callback
 * (evhttp_set_errorcb is 2.2). We define the symbol here so those answers
 * are JSON like every other error of ours: 413 for a body or headers over
 * the limits, and 405 where libevent would say 501 for a method outside
 * evhttp_set_allowed_methods. Anything else goes to libevent's own.
 */
void evhttp_send_error(struct evhttp_request *req, int error, const char *reason)
{
	static void (*real_send_error)(struct evhttp_request *, int, const char *);
	if (error == 413 || error == 501) {
		char msg[200];
		struct evkeyvalq *h = evhttp_request_get_output_headers(req);
		evhttp_add_header(h, "Connection", "close");
		if (error == 413) {
			snprintf(msg, sizeof(msg),
				 "request too large: body over limits.max_body_bytes (%zu bytes) or "
				 "headers over limits.max_header_bytes",
				 atomic_load(&max_body_for_errors));
			api_count_too_large(atomic_load(&api_for_errors));
			api_send_error(req, 413, "body_too_large", msg);
		} else {
			evhttp_add_header(h, "Allow", "GET, HEAD, POST");
			api_send_error(req, 405, "method_not_allowed",
				       "method not allowed; rollbackd accepts GET, HEAD and POST");
		}
		return;
	}
	if (!real_send_error)
		*(void **)&real_send_error = dlsym(RTLD_NEXT, "evhttp_send_error");
	if (real_send_error)
		real_send_error(req, error, reason);
	else
		evhttp_send_reply(req, error, reason ? reason : "Error", NULL);
}

/* Each worker pauses or resumes its own listener, on its own thread:
 * libevent 2.1 cannot safely disable a listener from another thread while
 * its accept callback may run. */
static void on_listen_toggle(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct server *srv = w->srv;
	if (w->stopping || !w->listener)
		return;
	bool pause = atomic_load(&srv->n_conns) >= srv->cfg->limits.max_connections;
	if (pause)
		evconnlistener_disable(w->listener);
	else
		evconnlistener_enable(w->listener);
}

/* Tell every worker when the open connections cross the limit. Between two
 * workers' accepts the count can pass the limit by at most workers - 1
 * before the listeners stop. */
static void server_update_listeners(struct server *srv)
{
	bool want_pause = atomic_load(&srv->n_conns) >= srv->cfg->limits.max_connections;
	pthread_mutex_lock(&srv->pause_lock);
	bool changed = !atomic_load(&srv->stopping) && want_pause != srv->listeners_paused;
	if (changed)
		srv->listeners_paused = want_pause;
	pthread_mutex_unlock(&srv->pause_lock);
	if (!changed)
		return;
	if (want_pause)
		log_warn("connection limit reached; new connections wait", "limit",
			 "limits.max_connections", NULL);
	for (int i = 0; i < srv->n_workers; i++)
		if (srv->workers[i].listen_ev)
			event_active(srv->workers[i].listen_ev, EV_READ, 0);
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
}

static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
	struct conn_ref *ref = arg;
	struct server *srv = ref->w->srv;
	if (ref->evcon)
		conn_table_del(&ref->w->table, ref);
	conn_unlink(ref);
	free(ref);
	atomic_fetch_sub(&srv->n_conns, 1);
	server_update_listeners(srv);
}

/* Bytes arrived: the first ones after a dispatch start a request's clock. */
static void on_conn_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct conn_ref *ref = arg;
	if (info->n_added > 0 && !ref->in_request) {
		ref->in_request = true;
		ref->request_started_ms = timestamp_mono_ms();
	}
}

/* evhttp 2.1's timeout is per read, so a client trickling a byte at a time
 * could hold a connection forever; this bounds the whole request. */
static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	int64_t now = timestamp_mono_ms(), limit = w->srv->cfg->limits.request_timeout_ms;
	struct conn_ref *c = w->conns;
	while (c) {
		struct conn_ref *next = c->next; /* freeing the connection frees c */
		if (c->evcon && c->in_request && now - c->request_started_ms > limit) {
			log_warn("request timed out; closing the connection", "limit",
				 "limits.request_timeout", NULL);
			evhttp_connection_free(c->evcon);
		}
		c = next;
	}
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
	void *cbarg = NULL;
	bufferevent_getcb(bev, NULL, NULL, NULL, &cbarg);
	if (cbarg) {
		ref->evcon = cbarg;
		if (conn_table_put(&ref->w->table, ref) < 0) {
			ref->evcon = NULL; /* cannot happen: sized for the limit */
			log_error("connection table full", NULL);
		}
		evbuffer_add_cb(bufferevent_get_input(bev), on_conn_input, ref);
		evhttp_connection_set_closecb(cbarg, on_conn_close, ref);
		if (ref->w->stopping) /* accepted just before the stop */
			evhttp_connection_set_timeout(ref->evcon, 1);
	} else {
		on_conn_close(NULL, ref);
	}
	bufferevent_decref(bev);
}

static struct bufferevent *on_new_connection(struct event_base *base, void *arg)
{
	struct worker *w = arg;
	struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	struct conn_ref *ref = bev ? calloc(1, sizeof(*ref)) : NULL;
	if (!ref)
		return bev; /* evhttp copes with NULL; we just cannot count it */
	ref->w = w;
	ref->bev = bev;
	bufferevent_incref(bev);
	struct timeval now = {0, 0};
	if (event_base_once(base, -1, EV_TIMEOUT, on_conn_accepted, ref, &now) < 0) {
		bufferevent_decref(bev);
		free(ref);
		return bev;
	}
	ref->next = w->conns;
	if (w->conns)
		w->conns->prev = ref;
	w->conns = ref;
	atomic_fetch_add(&w->srv->n_conns, 1);
	server_update_listeners(w->srv);
	return bev;
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct worker *w = arg;
	struct conn_ref *ref = conn_table_get(&w->table, evhttp_request_get_connection(req));
	if (ref)
		ref->in_request = false;
	if (w->stopping) /* answer, then close: the server is going away */
		evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
	api_handle(w->srv->api, req);
}

/*
 * Stopping: listeners are off; requests already on a connection are read
 * and answered (the client is still sending, so the connection's timeout
 * keeps being pushed back), idle keep-alive connections time out after 1 s,
 * and each worker's loop ends when its connections are gone (at most
 * request_timeout later). Worker 0 also waits for running actions, up to
 * SHUTDOWN_GRACE_MS.
 */
static void on_drain(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct server *srv = w->srv;
	int running = w->index == 0 && srv->engine ? engine_running_actions(srv->engine) : 0;
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
	for (struct conn_ref *c = w->conns; c; c = c->next)
		if (c->evcon)
			evhttp_connection_set_timeout(c->evcon, 1);
	on_drain(-1, 0, w);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	event_base_dispatch(w->base);
	return NULL;
}

static void server_stop_all(struct server *srv, const char *why)
{
	log_info("stopping", "signal", why, NULL);
	atomic_store(&srv->stopping, true);
	api_set_ready(srv->api, false);
	for (int i = 0; i < srv->n_workers; i++)
		event_active(srv->workers[i].stop_ev, EV_READ, 0);
}

/* config_loaded: the rules this process decides with from now on. */
static int journal_config_loaded(struct server *srv, const struct config *cfg,
				 const struct ruleset *rules, bool reload)
{
	struct buf m = BUF_INIT;
	int bad = buf_adds(&m, ",\"rules_path\":") |
		  buf_add_json_str(&m, cfg->rules, strlen(cfg->rules)) |
		  buf_addf(&m, ",\"rules\":%zu,\"rules_digest\":\"%s\",\"dry_run\":%s,\"reload\":%s",
			   rules->n_rules, rules->digest, cfg->dry_run ? "true" : "false",
			   reload ? "true" : "false");
	if (!bad)
		bad = journal_append(srv->journal, "config_loaded", "", m.data, m.len, NULL);
	buf_release(&m);
	return bad ? -1 : 0;
}

/* What a reload cannot change in a running process. */
static int reload_check(const struct server *srv, const struct config *now,
			const struct config *next, struct error *err)
{
	if (strcmp(now->listen, next->listen) != 0)
		return error_set(err, "listen cannot change without a restart");
	if (strcmp(now->state_dir, next->state_dir) != 0)
		return error_set(err, "state_dir cannot change without a restart");
	if (now->workers != next->workers)
		return error_set(err, "workers cannot change without a restart");
	if (auth_config_is_open(&next->auth) && !srv->on_loopback)
		return error_set(err, "the new configuration has no authentication and rollbackd "
				      "listens on a non-loopback address");
	return 0;
}

/*
 * SIGHUP: load and validate the configuration and every rule file; a valid
 * set decides from now on (incidents, episodes and running actions carry
 * over); an invalid one is refused, logged and journaled, and the running
 * set goes on. listen, state_dir, workers, the HTTP limits and notify.*
 * keep their values until a restart.
 */
static void server_reload(struct server *srv)
{
	struct generation *g = calloc(1, sizeof(*g));
	struct error err = {{0}};
	struct buf m = BUF_INIT;
	bool have_cfg = false, have_rules = false;
	log_info("SIGHUP: reloading", "config", srv->config_path ? srv->config_path : "(built-in)",
		 NULL);
	if (!g) {
		error_set(&err, "out of memory");
		goto refuse;
	}
	if ((srv->config_path ? config_load(srv->config_path, &g->cfg, &err)
			      : config_init(&g->cfg)) < 0)
		goto refuse;
	have_cfg = true;
	if (rules_load(g->cfg.rules, &g->rules, &err) < 0)
		goto refuse;
	have_rules = true;
	if (reload_check(srv, srv->current, &g->cfg, &err) < 0 ||
	    engine_reload(srv->engine, &g->cfg, &g->rules) < 0) {
		if (!err.msg[0])
			error_set(&err, "out of memory");
		goto refuse;
	}
	api_set_config(srv->api, &g->cfg);
	srv->current = &g->cfg;
	g->prev = srv->gens;
	srv->gens = g;
	char n[16];
	snprintf(n, sizeof(n), "%zu", g->rules.n_rules);
	log_info("reloaded", "rules", n, "digest", g->rules.digest, NULL);
	if (journal_config_loaded(srv, &g->cfg, &g->rules, true) < 0)
		log_error("journal: cannot record the reload", NULL);
	return;
refuse:
	log_error("reload refused; the running configuration stays", "error", err.msg, NULL);
	if ((buf_adds(&m, ",\"error\":") | buf_add_json_str(&m, err.msg, strlen(err.msg))) ||
	    journal_append(srv->journal, "config_rejected", "", m.data, m.len, NULL) < 0)
		log_error("journal: cannot record the refused reload", NULL);
	buf_release(&m);
	if (g) {
		if (have_rules)
			ruleset_release(&g->rules);
		if (have_cfg)
			config_release(&g->cfg);
		free(g);
	}
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct server *srv = arg;
	switch (sig) {
	case SIGTERM:
		server_stop_all(srv, "SIGTERM");
		break;
	case SIGINT:
		server_stop_all(srv, "SIGINT");
		break;
	case SIGHUP:
		server_reload(srv);
		break;
	default:
		break; /* SIGPIPE: a peer went away; the write fails with EPIPE instead */
	}
}

static int worker_setup(struct worker *w, const struct sockaddr *sa, int salen,
			struct error *err)
{
	const struct config *cfg = w->srv->cfg;
	w->base = event_base_new();
	if (!w->base)
		return error_set(err, "cannot create event base");
	w->http = evhttp_new(w->base);
	if (!w->http)
		return error_set(err, "cannot create HTTP server");
	evhttp_set_max_body_size(w->http, (ev_ssize_t)cfg->limits.max_body_bytes);
	evhttp_set_max_headers_size(w->http, (ev_ssize_t)cfg->limits.max_header_bytes);
	struct timeval tv = timestamp_tv(cfg->limits.request_timeout_ms);
	evhttp_set_timeout_tv(w->http, &tv);
	evhttp_set_allowed_methods(w->http,
				   EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
	/* Read and drop an oversized body before answering 413, so the client
	 * sees the answer instead of a reset. Bounded by request_timeout. */
	evhttp_set_flags(w->http, EVHTTP_SERVER_LINGERING_CLOSE);
	evhttp_set_default_content_type(w->http, "application/json");
	evhttp_set_gencb(w->http, on_request, w);
	evhttp_set_bevcb(w->http, on_new_connection, w);

	w->listener = evconnlistener_new_bind(
		w->base, NULL, NULL,
		LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE |
			LEV_OPT_REUSEABLE_PORT,
		LISTEN_BACKLOG, sa, salen);
	if (!w->listener)
		return error_set(err, "cannot listen on '%s': %s", cfg->listen,
				 strerror(errno));
	if (!evhttp_bind_listener(w->http, w->listener)) {
		evconnlistener_free(w->listener);
		w->listener = NULL;
		return error_set(err, "cannot bind HTTP server to '%s'", cfg->listen);
	}
	w->stop_ev = event_new(w->base, -1, 0, on_stop, w);
	w->drain_ev = evtimer_new(w->base, on_drain, w);
	w->sweep_ev = event_new(w->base, -1, EV_PERSIST, on_sweep, w);
	w->listen_ev = event_new(w->base, -1, 0, on_listen_toggle, w);
	if (!w->stop_ev || !w->drain_ev || !w->sweep_ev || !w->listen_ev ||
	    conn_table_init(&w->table, (size_t)cfg->limits.max_connections + 64) < 0)
		return error_set(err, "cannot create worker events");
	int64_t every = cfg->limits.request_timeout_ms / 4;
	struct timeval sweep = timestamp_tv(every + 1);
	evtimer_add(w->sweep_ev, &sweep);
	return 0;
}

static void worker_release(struct worker *w)
{
	if (w->stop_ev)
		event_free(w->stop_ev);
	if (w->drain_ev)
		event_free(w->drain_ev);
	if (w->sweep_ev)
		event_free(w->sweep_ev);
	if (w->listen_ev)
		event_free(w->listen_ev);
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

static void format_addr(const struct sockaddr *sa, char *out, size_t outsz)
{
	char host[64] = "?";
	int port = 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		evutil_inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
		snprintf(out, outsz, "%s:%d", host, port);
	} else {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		evutil_inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
		snprintf(out, outsz, "[%s]:%d", host, port);
	}
}

static bool is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
}

static int replay_line(const struct journal_line *line, void *arg)
{
	struct server *srv = arg;
	if (engine_replay(line, srv->engine) < 0 || notify_replay(line, srv->notify) < 0)
		return -1;
	return 0;
}

/* Replay the journal into the engine and the outbox, then journal from
 * here on: the start, and the rules this process decides with. */
static int open_journal(struct server *srv, struct error *err)
{
	const struct config *cfg = srv->cfg;
	struct journal_options jo = {
		.state_dir = cfg->state_dir,
		.segment_bytes = cfg->journal.segment_bytes,
		.replay = replay_line,
		.replay_arg = srv,
		.recover = cfg->recover,
	};
	int64_t t0 = timestamp_mono_ms();
	if (journal_open(&jo, &srv->journal, err) < 0)
		return error_prefix(err, "journal: ");
	char ms[24], seq[24];
	snprintf(ms, sizeof(ms), "%lld", (long long)(timestamp_mono_ms() - t0));
	snprintf(seq, sizeof(seq), "%llu", (unsigned long long)journal_seq(srv->journal));
	log_info("journal replayed", "state_dir", cfg->state_dir, "records", seq, "ms", ms, NULL);
	struct buf m = BUF_INIT;
	int bad = buf_adds(&m, ",\"version\":\"" ROLLBACKD_VERSION "\"") |
		  buf_addf(&m, ",\"pid\":%d", (int)getpid());
	if (!bad)
		bad = journal_append(srv->journal, "started", "", m.data, m.len, NULL);
	buf_release(&m);
	if (bad || journal_config_loaded(srv, cfg, &srv->rules, false) < 0)
		return error_set(err, "journal: cannot record the start");
	notify_start(srv->notify, srv->journal);
	engine_set_notify(srv->engine, srv->notify);
	engine_attach_journal(srv->engine, srv->journal);
	char recovered[1200];
	if (journal_recovered(srv->journal, recovered, sizeof(recovered))) {
		log_error("journal recovered: starting PAUSED; read the moved file, then POST "
			  "/v1/resume", "what", recovered, NULL);
		engine_set_paused(srv->engine, true);
	}
	api_set_journal(srv->api, srv->journal);
	api_set_notify(srv->api, srv->notify);
	return 0;
}

int server_run(const struct config *cfg, const char *config_path, struct error *err)
{
	struct server srv = {.cfg = cfg, .current = cfg, .config_path = config_path,
			     .pause_lock = PTHREAD_MUTEX_INITIALIZER};
	struct sockaddr_storage ss;
	int salen = 0, rc = -1;
	char addr[128];

	if (evthread_use_pthreads() < 0)
		return error_set(err, "cannot enable libevent threading");
	if (resolve_listen(cfg, &ss, &salen, err) < 0)
		return -1;
	srv.on_loopback = is_loopback((struct sockaddr *)&ss);
	if (auth_config_is_open(&cfg->auth) && !srv.on_loopback)
		return error_set(err,
				 "listen: '%s' is not a loopback address and no authentication "
				 "is configured (set auth.hmac, auth.bearer or auth.basic)",
				 cfg->listen);
	atomic_store(&max_body_for_errors, cfg->limits.max_body_bytes);
	if (rules_load(cfg->rules, &srv.rules, err) < 0)
		return -1;
	srv.n_workers = cfg->workers > 0 ? cfg->workers : 1;
	srv.workers = calloc((size_t)srv.n_workers, sizeof(*srv.workers));
	if (!srv.workers) {
		error_set(err, "out of memory");
		goto out;
	}
	for (int i = 0; i < srv.n_workers; i++) {
		struct worker *w = &srv.workers[i];
		w->srv = &srv;
		w->index = i;
		if (worker_setup(w, (struct sockaddr *)&ss, salen, err) < 0)
			goto out;
		if (i == 0) {
			/* With port 0 the kernel picked one; the others share it. */
			socklen_t len = sizeof(ss);
			evutil_socket_t fd = evconnlistener_get_fd(w->listener);
			if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
				error_set(err, "getsockname: %s", strerror(errno));
				goto out;
			}
			salen = (int)len;
		}
	}

	struct event_base *main_base = srv.workers[0].base;
	struct engine_options eo = {.cfg = cfg, .base = main_base, .plan_only = false};
	srv.engine = engine_new(&eo, &srv.rules);
	srv.api = srv.engine ? api_new(cfg, srv.engine) : NULL;
	struct notify_options no = {.cfg = cfg, .base = main_base};
	srv.notify = notify_new(&no);
	if (!srv.engine || !srv.api || !srv.notify) {
		error_set(err, "out of memory");
		goto out;
	}
	if (open_journal(&srv, err) < 0 ||
	    checkpoint_start(cfg, srv.journal, &srv.checkpoint, err) < 0)
		goto out;
	atomic_store(&api_for_errors, srv.api);
	char nrules[16];
	snprintf(nrules, sizeof(nrules), "%zu", srv.rules.n_rules);
	log_info("rules loaded", "path", cfg->rules, "rules", nrules, "digest", srv.rules.digest,
		 NULL);
	srv.sig_term = evsignal_new(main_base, SIGTERM, on_signal, &srv);
	srv.sig_int = evsignal_new(main_base, SIGINT, on_signal, &srv);
	srv.sig_hup = evsignal_new(main_base, SIGHUP, on_signal, &srv);
	srv.sig_pipe = evsignal_new(main_base, SIGPIPE, on_signal, &srv);
	if (!srv.sig_term || !srv.sig_int || !srv.sig_hup || !srv.sig_pipe ||
	    evsignal_add(srv.sig_term, NULL) || evsignal_add(srv.sig_int, NULL) ||
	    evsignal_add(srv.sig_hup, NULL) || evsignal_add(srv.sig_pipe, NULL)) {
		error_set(err, "cannot install signal handlers");
		goto out;
	}

	format_addr((struct sockaddr *)&ss, addr, sizeof(addr));
	if (auth_config_is_open(&cfg->auth))
		log_warn("no authentication configured: accepting unauthenticated webhooks from "
			 "loopback only; configure auth.hmac or auth.bearer before exposing rollbackd",
			 "addr", addr, NULL);
	if (cfg->dry_run)
		log_warn("dry-run is on: rules decide but no rollback action runs", NULL);
	char workers[16];
	snprintf(workers, sizeof(workers), "%d", srv.n_workers);
	log_info("listening", "addr", addr, "workers", workers, "version", ROLLBACKD_VERSION,
		 NULL);

	for (int i = 1; i < srv.n_workers; i++) {
		struct worker *w = &srv.workers[i];
		if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
			error_set(err, "cannot start worker thread");
			server_stop_all(&srv, "startup failure");
			break;
		}
		w->thread_started = true;
	}
	event_base_dispatch(main_base);
	for (int i = 1; i < srv.n_workers; i++) {
		if (srv.workers[i].thread_started)
			pthread_join(srv.workers[i].thread, NULL);
	}
	rc = err->msg[0] ? -1 : 0;
	log_info("stopped", NULL);
out:
	if (srv.sig_term)
		event_free(srv.sig_term);
	if (srv.sig_int)
		event_free(srv.sig_int);
	if (srv.sig_hup)
		event_free(srv.sig_hup);
	if (srv.sig_pipe)
		event_free(srv.sig_pipe);
	atomic_store(&api_for_errors, NULL);
	if (srv.engine && srv.journal)
		engine_interrupt(srv.engine);
	checkpoint_stop(srv.checkpoint); /* the last checkpoint: after the last record */
	notify_free(srv.notify); /* what is undelivered is in the journal for next time */
	journal_close(srv.journal, 5000); /* the loops are over: flush what is left */
	api_free(srv.api);
	engine_free(srv.engine); /* before the base its events live on */
	for (int i = 0; srv.workers && i < srv.n_workers; i++)
		worker_release(&srv.workers[i]);
	free(srv.workers);
	ruleset_release(&srv.rules);
	while (srv.gens) {
		struct generation *g = srv.gens;
		srv.gens = g->prev;
		ruleset_release(&g->rules);
		config_release(&g->cfg);
		free(g);
	}
	return rc;
}
