/*
 * server: the HTTP side of `rollbackd serve` on libevent's evhttp.
 *
 * One event loop per worker (SO_REUSEPORT), every limit of libevent 2.1 set
 * from config (body, headers, timeout, methods, connections), signals
 * (SIGTERM/SIGINT stop after in-flight requests are answered). Requests are
 * handed to api.c; this module knows nothing of alerts.
 */
#ifndef ROLLBACKD_SERVER_H
#define ROLLBACKD_SERVER_H

#include "rollbackd/config.h"
#include "rollbackd/error.h"

/* Run until SIGTERM/SIGINT. cfg stays owned by the caller and must outlive
 * the call. 0 after a clean stop, -1 when start-up failed (err says why). */
int server_run(const struct config *cfg, const char *config_path, struct error *err);

#endif
