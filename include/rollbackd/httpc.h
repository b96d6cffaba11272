/*
 * httpc: outbound HTTP on libcurl's multi interface driven by libevent
 * (curl_multi_socket_action; the shape of curl's docs/examples/hiperfifo.c).
 * Shared by http actions and, later, the Slack and PagerDuty notifiers.
 *
 * Never blocks the loop. Retries connection errors, 429 and 5xx with
 * exponential backoff and full jitter, honouring Retry-After (seconds or an
 * HTTP date); other 4xx are final. Only http:// and https://, no redirects
 * followed, response bodies capped. Single-threaded: call from the loop
 * thread of the base it was created on.
 */
#ifndef ROLLBACKD_HTTPC_H
#define ROLLBACKD_HTTPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollbackd/error.h"

struct event_base;
struct httpc;

struct httpc_request {
	const char *method;        /* "GET", "POST", "PATCH", ... */
	const char *url;           /* http:// or https:// only */
	const char *const *headers; /* "Name: value" strings, NULL-terminated; may be NULL */
	const char *body;          /* may be NULL */
	size_t body_len;
	int64_t timeout_ms;        /* per attempt */
	int retries;               /* extra attempts after the first */
	const int *expect_status;  /* success statuses; NULL/0 = any 2xx */
	size_t n_expect_status;
	size_t max_response;       /* bytes of body kept (e.g. 65536) */
	int64_t backoff_base_ms;   /* first retry delay before jitter (e.g. 500) */
	int64_t backoff_max_ms;    /* cap (e.g. 30000) */
};

struct httpc_result {
	bool ok;              /* final status in expect_status */
	int status;           /* last HTTP status, 0 when none was received */
	const char *error;    /* NULL when a status was received, else curl's message */
	const char *body;     /* NUL-terminated, capped; valid in the callback only */
	size_t body_len;
	int attempts;
	int64_t duration_ms;  /* from send to final result, retries included */
};

typedef void (*httpc_done_fn)(const struct httpc_result *res, void *arg);

/* NULL on failure. curl_global_init must have been called. */
struct httpc *httpc_new(struct event_base *base);
/* Cancels every transfer in flight (their callbacks run with ok=false,
 * error "cancelled") and frees the client. */
void httpc_free(struct httpc *h);

/* Start a request; the request's strings are copied. done runs exactly once
 * on the loop. -1 with err (bad URL scheme, OOM) and no callback. */
int httpc_send(struct httpc *h, const struct httpc_request *req, httpc_done_fn done,
	       void *arg, struct error *err);

/* Transfers in flight or waiting to retry. */
int httpc_pending(const struct httpc *h);

#endif
