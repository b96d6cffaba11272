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

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <event2/util.h>

#include "rollbackd/api.h"
#include "rollbackd/log.h"

#define LISTEN_BACKLOG 511

struct worker {
	struct server *srv;
	int index;
	struct event_base *base;
	struct evhttp *http;
	struct evconnlistener *listener; /* owned by http once bound */
	struct event *stop_ev;           /* activated from any thread */
	pthread_t thread;
	bool thread_started;
	int conns;      /* open connections (this worker's loop only) */
	int max_conns;  /* this worker's share of limits.max_connections */
	bool paused;    /* listener disabled because conns reached max */
	bool stopping;
};

struct server {
	const struct config *cfg;
	struct api *api;
	struct worker *workers;
	int n_workers;
	struct event *sig_term, *sig_int, *sig_hup, *sig_pipe;
};

/* A connection the worker counts; freed when evhttp closes it. */
struct conn_ref {
	struct worker *w;
	struct bufferevent *bev;
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

static void worker_update_listener(struct worker *w)
{
	if (w->stopping || !w->listener)
		return;
	if (!w->paused && w->conns >= w->max_conns) {
		evconnlistener_disable(w->listener);
		w->paused = true;
		log_warn("connection limit reached; new connections wait", "limit",
			 "limits.max_connections", NULL);
	} else if (w->paused && w->conns < w->max_conns) {
		evconnlistener_enable(w->listener);
		w->paused = false;
	}
}

static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
	struct worker *w = arg;
	w->conns--;
	worker_update_listener(w);
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
	void *cbarg = NULL;
	bufferevent_getcb(ref->bev, NULL, NULL, NULL, &cbarg);
	if (cbarg)
		evhttp_connection_set_closecb(cbarg, on_conn_close, ref->w);
	else
		on_conn_close(NULL, ref->w);
	bufferevent_decref(ref->bev);
	free(ref);
}

static struct bufferevent *on_new_connection(struct event_base *base, void *arg)
{
	struct worker *w = arg;
	struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	struct conn_ref *ref = bev ? malloc(sizeof(*ref)) : NULL;
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
	w->conns++;
	worker_update_listener(w);
	return bev;
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct worker *w = arg;
	api_handle(w->srv->api, req);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	w->stopping = true;
	/* Stop accepting; requests already dispatched in this iteration are
	 * answered before the loop returns. */
	if (w->listener)
		evconnlistener_disable(w->listener);
	event_base_loopexit(w->base, NULL);
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
	api_set_ready(srv->api, false);
	for (int i = 0; i < srv->n_workers; i++)
		event_active(srv->workers[i].stop_ev, EV_READ, 0);
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
		log_warn("SIGHUP received; reloading is not supported yet, keeping the running "
			 "configuration",
			 NULL);
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
	struct timeval tv = {
		.tv_sec = cfg->limits.request_timeout_ms / 1000,
		.tv_usec = (cfg->limits.request_timeout_ms % 1000) * 1000,
	};
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
	if (!w->stop_ev)
		return error_set(err, "cannot create stop event");
	return 0;
}

static void worker_release(struct worker *w)
{
	if (w->stop_ev)
		event_free(w->stop_ev);
	if (w->http)
		evhttp_free(w->http); /* frees the listener and open connections */
	if (w->base)
		event_base_free(w->base);
}

static int resolve_listen(const struct config *cfg, struct sockaddr_storage *ss, int *salen,
			  struct error *err)
{
	char host[256], text[300];
	int port;
	if (config_listen_addr(cfg, host, sizeof(host), &port, err) < 0)
		return -1;
	if (strchr(host, ':'))
		snprintf(text, sizeof(text), "[%s]:%d", host, port);
	else
		snprintf(text, sizeof(text), "%s:%d", host, port);
	*salen = (int)sizeof(*ss);
	memset(ss, 0, sizeof(*ss));
	if (evutil_parse_sockaddr_port(text, (struct sockaddr *)ss, salen) < 0)
		return error_set(err, "listen: '%s' is not a numeric address and port",
				 cfg->listen);
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

int server_run(const struct config *cfg, struct error *err)
{
	struct server srv = {.cfg = cfg};
	struct sockaddr_storage ss;
	int salen, rc = -1;
	char addr[128];

	if (evthread_use_pthreads() < 0)
		return error_set(err, "cannot enable libevent threading");
	if (resolve_listen(cfg, &ss, &salen, err) < 0)
		return -1;
	if (auth_config_is_open(&cfg->auth) && !is_loopback((struct sockaddr *)&ss))
		return error_set(err,
				 "listen: '%s' is not a loopback address and no authentication "
				 "is configured (set auth.hmac, auth.bearer or auth.basic)",
				 cfg->listen);
	atomic_store(&max_body_for_errors, cfg->limits.max_body_bytes);
	srv.api = api_new(cfg);
	atomic_store(&api_for_errors, srv.api);
	srv.n_workers = cfg->workers > 0 ? cfg->workers : 1;
	srv.workers = calloc((size_t)srv.n_workers, sizeof(*srv.workers));
	if (!srv.api || !srv.workers) {
		error_set(err, "out of memory");
		goto out;
	}
	int share = cfg->limits.max_connections / srv.n_workers;
	for (int i = 0; i < srv.n_workers; i++) {
		struct worker *w = &srv.workers[i];
		w->srv = &srv;
		w->index = i;
		w->max_conns = share > 0 ? share : 1;
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
	for (int i = 0; srv.workers && i < srv.n_workers; i++)
		worker_release(&srv.workers[i]);
	free(srv.workers);
	atomic_store(&api_for_errors, NULL);
	api_free(srv.api);
	return rc;
}
