/*
 * server: the HTTP side of `rollbackd serve` on libevent's evhttp.
 *
 * One event loop per worker (SO_REUSEPORT), worker 0 on the calling
 * thread. Every limit is enforced here, before evhttp parses a byte: a gate
 * on each connection's input reads the request head itself and refuses,
 * with the JSON error of SPEC §5, a head over limits.max_header_bytes
 * (431), a malformed request line or header, conflicting Content-Length
 * (400), a method other than GET/HEAD/POST (405), a body over
 * limits.max_body_bytes (413, as soon as the head or the chunk sizes say
 * so, also after `Expect: 100-continue`). evhttp's own limits are set
 * above ours so that it never answers with its HTML error pages; no libevent
 * symbol is redefined. Connections: limits.max_connections in all, a
 * per-peer cap, a header deadline apart from the request timeout, probes
 * answered under pressure (idle connections are closed to make room), and
 * accept() failing with EMFILE pauses the listeners with a backoff.
 * Requests are handed to api.c; this module knows nothing of alerts.
 *
 * Threads: server_new/server_run/server_free on the main thread;
 * server_stop from any thread. Each worker's loop touches only its own
 * connections; the connection count and per-peer counts are shared
 * (atomics, and peer_lock: held for a table lookup only, nothing runs
 * under it).
 */
#ifndef ROLLBACKD_SERVER_H
#define ROLLBACKD_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "rollbackd/config.h"
#include "rollbackd/error.h"

struct server;
struct api;
struct event_base;

struct server_options {
	const struct config *cfg; /* limits, listen, workers; must outlive the server */
	/* Worker 0 waits at stop until this returns 0 (running actions), up to
	 * the shutdown grace period. NULL: nothing to wait for. */
	int (*busy)(void *arg);
	void *busy_arg;
};

/* Raise the soft RLIMIT_NOFILE to what limits.max_connections needs, or
 * fail with err saying which limit forbids it and what to change. */
int server_check_fd_limit(const struct config *cfg, struct error *err);

/* Resolve cfg->listen and bind every worker's listener. NULL with err on
 * failure. Nothing is served until server_run. */
struct server *server_new(const struct server_options *opt, struct error *err);

/* The main loop (worker 0): signals and the engine's timers live there. */
struct event_base *server_main_base(struct server *srv);

/* The bound address ("127.0.0.1:9097", "[::1]:9097"), and whether it is a
 * loopback address. */
void server_addr(const struct server *srv, char *out, size_t outsz);
bool server_on_loopback(const struct server *srv);

/* Requests go to api (must outlive server_run). Before server_run. */
void server_set_api(struct server *srv, struct api *api);

/* Start the other workers and run worker 0's loop on this thread until a
 * stop drained every worker. 0, or -1 when a worker thread could not start
 * (err says so; the others were stopped). */
int server_run(struct server *srv, struct error *err);

/* Stop listening, answer what is in flight, close idle connections; the
 * loops end when drained. Any thread; why is logged. */
void server_stop(struct server *srv, const char *why);

/* After server_run returned (or instead of it): free the workers, their
 * listeners and connections. */
void server_free(struct server *srv);

#endif
