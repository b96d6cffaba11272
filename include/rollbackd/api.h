/*
 * api: the HTTP endpoints of SPEC §5 over evhttp requests.
 *
 * Each handler sends exactly one reply. Errors are JSON
 * {"error": code, "message": what and where}; messages never hold a secret.
 * Thread-safe: every worker's loop calls api_handle concurrently.
 */
#ifndef ROLLBACKD_API_H
#define ROLLBACKD_API_H

#include <stdbool.h>

#include "rollbackd/config.h"

struct evhttp_request;
struct api;
struct engine;

/* Create the API for cfg and engine (both must outlive it); registers its
 * metrics. NULL on OOM. */
struct api *api_new(const struct config *cfg, struct engine *engine);
void api_free(struct api *api);

/* Answer one request (exactly one reply). */
void api_handle(struct api *api, struct evhttp_request *req);

/* Send {"error":code,"message":msg} with status. */
void api_send_error(struct evhttp_request *req, int status, const char *code,
		    const char *msg);

/* Count a request refused by evhttp for its size (api may be NULL). */
void api_count_too_large(struct api *api);

/* Make POST /v1/alerts (and pause/resume) answer only once their journal
 * records are durable, 503 journal_unavailable when they cannot be. */
struct journal;
void api_set_journal(struct api *api, struct journal *j);

/* A reloaded configuration (the old one must stay valid: requests in
 * flight may still read it). */
void api_set_config(struct api *api, const struct config *cfg);

/* Slack response_url updates go through n. */
struct notify;
void api_set_notify(struct api *api, struct notify *n);

/* The address the server listens on ("127.0.0.1:9097"): without an api
 * token, the operator API answers only requests whose Host (and Origin)
 * name it, localhost on its port, or public_url. Before requests arrive. */
void api_set_listen_addr(struct api *api, const char *addr);

/* Readiness as /readyz reports it. */
void api_set_ready(struct api *api, bool ready);

#endif
