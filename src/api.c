/*
 * api: routes and handlers for SPEC §5.
 *
 * POST /v1/alerts: size -> auth -> content type -> parse -> accept. Every
 * path ends in exactly one reply. Nothing here blocks: handlers are pure
 * computation over the received request. Secrets never reach a reply, a log
 * line or a metric: auth failures use auth_result_message().
 *
 * Over 800 lines because every route of SPEC §5 is here with the intake
 * pipeline it shares (size, auth, content type, parse, accept); /v1/changes
 * and the ack/approve pages are sections of their own, each using that
 * pipeline.
 */
#include "rollbackd/api.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "rollbackd/alert.h"
#include "rollbackd/auth.h"
#include "rollbackd/buf.h"
#include "rollbackd/changes.h"
#include "rollbackd/engine.h"
#include "rollbackd/journal.h"
#include "rollbackd/links.h"
#include "rollbackd/notify.h"
#include "rollbackd/replay_guard.h"
#include "rollbackd/slack.h"
#include "rollbackd/ui.h"
#include "rollbackd/log.h"
#include "rollbackd/metrics.h"

enum webhook_result {
	WH_ACCEPTED,
	WH_BAD_REQUEST,
	WH_UNAUTHORIZED,
	WH_TOO_LARGE,
	WH_UNSUPPORTED_MEDIA_TYPE,
	WH_JOURNAL_UNAVAILABLE,
	WH_RESULT_COUNT
};

static const char *const webhook_result_names[WH_RESULT_COUNT] = {
	"accepted", "bad_request", "unauthorized", "too_large", "unsupported_media_type",
	"journal_unavailable",
};

/* Answers to signed requests kept for replays (replay_guard.h). */
#define GUARD_ENTRIES 65536
#define GUARD_BYTES (32u << 20)

struct api {
	const struct config *_Atomic cfg; /* swapped by a reload; old ones stay valid */
	struct engine *engine;
	struct journal *journal; /* NULL: answers do not wait for a disk */
	struct notify *notify;   /* NULL: Slack response_url updates are not sent */
	struct ui *ui;           /* the console under /ui/ */
	_Atomic bool ready;
	struct metric_child *webhooks[WH_RESULT_COUNT];
	struct metric_child *alerts_firing;
	struct metric_child *alerts_resolved;
	struct metric_child *request_duration;
	struct metric_child *webhooks_replayed;
	struct replay_guard *guard; /* answers to signed requests, for replays */
	struct metric_family *changes_total; /* {source} */
	char listen_addr[128]; /* "127.0.0.1:9097": the Host of an open operator API */
};

/* A signed request's replay key and how long its answer is kept. */
struct guard_note {
	unsigned char key[REPLAY_GUARD_KEY_LEN];
	int64_t expires_ms;
};

struct api *api_new(const struct config *cfg, struct engine *engine)
{
	static const char *const result_label[] = {"result", NULL};
	static const char *const status_label[] = {"status", NULL};
	static const char *const version_label[] = {"version", NULL};
	static const char *const source_label[] = {"source", NULL};
	static const double duration_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025,
						 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1};
	struct api *api = calloc(1, sizeof(*api));
	if (!api)
		return NULL;
	api->cfg = cfg;
	api->engine = engine;
	atomic_store(&api->ready, true);
	if (!(api->ui = ui_new(cfg, engine))) {
		free(api);
		return NULL;
	}

	struct metric_family *webhooks = metrics_register(
		METRIC_COUNTER, "webhooks_total",
		"Webhook requests to /v1/alerts by result.", result_label, NULL, 0);
	struct metric_family *alerts = metrics_register(
		METRIC_COUNTER, "alerts_total", "Alerts received by status.", status_label,
		NULL, 0);
	struct metric_family *duration = metrics_register(
		METRIC_HISTOGRAM, "request_duration_seconds",
		"Time to handle an HTTP request, from dispatch to reply.", NULL,
		duration_bounds, sizeof(duration_bounds) / sizeof(duration_bounds[0]));
	struct metric_family *build = metrics_register(
		METRIC_GAUGE, "build_info", "Build information.", version_label, NULL, 0);
	api->changes_total = metrics_register(METRIC_COUNTER, "changes_total",
					      "Changes recorded through POST /v1/changes, by source.",
					      source_label, NULL, 0);
	if (!webhooks || !alerts || !duration || !build || !api->changes_total)
		goto fail;
	for (int i = 0; i < WH_RESULT_COUNT; i++) {
		api->webhooks[i] = metrics_child(webhooks, webhook_result_names[i]);
		if (!api->webhooks[i])
			goto fail;
	}
	api->alerts_firing = metrics_child(alerts, "firing");
	api->alerts_resolved = metrics_child(alerts, "resolved");
	api->request_duration = metrics_child(duration);
	struct metric_child *bi = metrics_child(build, ROLLBACKD_VERSION);
	if (!api->alerts_firing || !api->alerts_resolved || !api->request_duration || !bi)
		goto fail;
	metric_set(bi, 1);
	api->webhooks_replayed = metrics_child(webhooks, "replayed");
	api->guard = replay_guard_new(GUARD_ENTRIES, GUARD_BYTES);
	if (!api->webhooks_replayed || !api->guard)
		goto fail;
	return api;
fail:
	replay_guard_free(api->guard);
	ui_free(api->ui);
	free(api);
	return NULL;
}

void api_free(struct api *api)
{
	if (api) {
		replay_guard_free(api->guard);
		ui_free(api->ui);
	}
	free(api);
}

void api_set_journal(struct api *api, struct journal *j)
{
	api->journal = j;
	ui_set_journal(api->ui, j);
}

void api_set_config(struct api *api, const struct config *cfg)
{
	atomic_store(&api->cfg, cfg);
	ui_set_config(api->ui, cfg);
}

void api_set_notify(struct api *api, struct notify *n)
{
	api->notify = n;
}

void api_set_listen_addr(struct api *api, const char *addr)
{
	snprintf(api->listen_addr, sizeof(api->listen_addr), "%s", addr);
}

void api_set_ready(struct api *api, bool ready)
{
	atomic_store(&api->ready, ready);
}

static void send_json(struct evhttp_request *req, int status, const char *reason,
		      const char *body, size_t len)
{
	struct evbuffer *out = evhttp_request_get_output_buffer(req);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", "application/json");
	evhttp_add_header(h, "Cache-Control", "no-store");
	evbuffer_add(out, body, len);
	evhttp_send_reply(req, status, reason, NULL);
}

static const char *status_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 202: return "Accepted";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 417: return "Expectation Failed";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Error";
	}
}

void api_send_error(struct evhttp_request *req, int status, const char *code,
		    const char *msg)
{
	struct buf b;
	buf_init(&b, 0);
	if (buf_adds(&b, "{\"error\":") || buf_add_json_str(&b, code, strlen(code)) ||
	    buf_adds(&b, ",\"message\":") || buf_add_json_str(&b, msg, strlen(msg)) ||
	    buf_adds(&b, "}\n")) {
		buf_release(&b);
		evhttp_send_error(req, 500, NULL);
		return;
	}
	send_json(req, status, status_reason(status), b.data, b.len);
	buf_release(&b);
}

/*
 * A reply that waits for its journal records: sent from the worker's loop
 * once they are durable (200), or 503 when the write failed. If the client
 * went away meanwhile, evhttp has detached the request and sending frees it.
 */
static void count_webhook(struct api *api, enum webhook_result r);

struct deferred {
	struct api *api;
	struct evhttp_request *req;
	struct buf body;
	bool is_webhook;
	bool html;
	int status;
	bool guarded; /* remember the answer for replays of this request */
	struct guard_note guard;
};

static void send_html(struct evhttp_request *req, int status, const char *body, size_t len);

static void journal_unavailable(struct api *api, struct evhttp_request *req, bool webhook)
{
	char why[700], msg[800];
	journal_last_error(api->journal, why, sizeof(why));
	snprintf(msg, sizeof(msg),
		 "the journal cannot be written (%s); nothing was lost, retry later",
		 why[0] ? why : "write failed");
	if (webhook)
		count_webhook(api, WH_JOURNAL_UNAVAILABLE);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
	api_send_error(req, 503, "journal_unavailable", msg);
}

static void deferred_done(bool ok, void *arg)
{
	struct deferred *d = arg;
	if (ok) {
		if (d->guarded)
			replay_guard_put(d->api->guard, d->guard.key, d->guard.expires_ms,
					 d->status, d->body.data, d->body.len);
		if (d->is_webhook)
			count_webhook(d->api, WH_ACCEPTED);
		if (d->html)
			send_html(d->req, d->status, d->body.data, d->body.len);
		else
			send_json(d->req, d->status, status_reason(d->status), d->body.data,
				  d->body.len);
	} else {
		journal_unavailable(d->api, d->req, d->is_webhook);
	}
	buf_release(&d->body);
	free(d);
}

/* Send body (taken over; JSON or an HTML page, with status) once
 * everything journaled so far is durable. With g, the answer is kept for
 * replays of the same signed request — only once it is durable, so a
 * replay never gets a 200 that a 503 preceded. */
static void reply_durable(struct api *api, struct evhttp_request *req, struct buf *body,
			  bool is_webhook, bool html, int status, const struct guard_note *g)
{
	uint64_t ticket = api->journal ? journal_last_ticket(api->journal) : 0;
	if (!api->journal || journal_durable(api->journal, ticket)) {
		if (g)
			replay_guard_put(api->guard, g->key, g->expires_ms, status, body->data,
					 body->len);
		if (is_webhook)
			count_webhook(api, WH_ACCEPTED);
		if (html)
			send_html(req, status, body->data, body->len);
		else
			send_json(req, status, status_reason(status), body->data, body->len);
		buf_release(body);
		return;
	}
	struct deferred *d = calloc(1, sizeof(*d));
	struct evhttp_connection *conn = evhttp_request_get_connection(req);
	struct event_base *base = conn ? evhttp_connection_get_base(conn) : NULL;
	if (d && base) {
		d->api = api;
		d->req = req;
		d->body = *body;
		d->is_webhook = is_webhook;
		d->html = html;
		d->status = status;
		if (g) {
			d->guarded = true;
			d->guard = *g;
		}
		if (journal_wait(api->journal, ticket, base, deferred_done, d) == 0)
			return;
	}
	free(d);
	buf_release(body);
	api_send_error(req, 500, "internal", "out of memory");
}

static bool peer_is_loopback(struct evhttp_request *req)
{
	struct evhttp_connection *conn = evhttp_request_get_connection(req);
	const struct sockaddr *sa = conn ? evhttp_connection_get_addr(conn) : NULL;
	if (!sa)
		return false;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
			return true;
		return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127;
	}
	return false;
}

/* What req presents to auth_verify but its Authorization header (the
 * caller's: the webhook verifies each of several, the changes endpoint
 * takes the api token from it): the signature headers, the body, the
 * time and whether the peer is on loopback. */
static struct auth_input request_auth_input(const struct config *cfg, struct evhttp_request *req,
					    const unsigned char *body, size_t len)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	return (struct auth_input){
		.rollbackd_signature = evhttp_find_header(in, "X-Rollbackd-Signature"),
		.hub_signature_256 = evhttp_find_header(in, "X-Hub-Signature-256"),
		.grafana_signature =
			evhttp_find_header(in, auth_grafana_signature_header(&cfg->auth)),
		.grafana_timestamp =
			evhttp_find_header(in, auth_grafana_timestamp_header(&cfg->auth)),
		.body = body,
		.body_len = len,
		.now = (int64_t)time(NULL),
		.from_loopback = peer_is_loopback(req),
	};
}

/* "application/json" with optional parameters ("; charset=utf-8"). */
static bool is_json_content_type(const char *ct)
{
	static const char want[] = "application/json";
	if (!ct || strncasecmp(ct, want, sizeof(want) - 1) != 0)
		return false;
	char next = ct[sizeof(want) - 1];
	return next == '\0' || next == ';' || next == ' ' || next == '\t';
}

#define AUTHZ_MAX 8

/* The Authorization headers of req in order, up to AUTHZ_MAX of them in
 * out; returns how many there are (which may be more). */
static size_t authorization_headers(struct evhttp_request *req, const char *out[AUTHZ_MAX])
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	size_t n = 0;
	for (struct evkeyval *kv = h->tqh_first; kv; kv = kv->next.tqe_next) {
		if (strcasecmp(kv->key, "Authorization") != 0)
			continue;
		if (n < AUTHZ_MAX)
			out[n] = kv->value;
		n++;
	}
	return n;
}

static void count_webhook(struct api *api, enum webhook_result r)
{
	metric_inc(api->webhooks[r]);
}

void api_count_too_large(struct api *api)
{
	/* A request whose body was over the limit: evhttp never read it, so it
	 * never reached the route; still a webhook refused for its size. */
	if (api)
		count_webhook(api, WH_TOO_LARGE);
}

static void log_alert(const struct alert *a)
{
	if (!log_enabled(LOG_INFO))
		return;
	const struct label *name = label_set_get(&a->labels, "alertname");
	char starts[TIMESTAMP_STRLEN];
	timestamp_format(a->starts_at, starts, sizeof(starts));
	log_info("alert", "fingerprint", a->fingerprint, "status", alert_status_name(a->status),
		 "alertname", name ? name->value : "", "startsAt", starts, NULL);
}

static void handle_alerts(struct api *api, struct evhttp_request *req)
{
	const struct config *cfg = api->cfg;
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct evbuffer *body_buf = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(body_buf);
	struct webhook wh = {0};
	struct error err = {{0}};
	struct buf reply;
	buf_init(&reply, 0);

	if (len > cfg->limits.max_body_bytes) {
		/* evhttp stops bodies over the same limit before they get here;
		 * this covers a limit that was raised for evhttp's sake only. */
		char msg[160];
		snprintf(msg, sizeof(msg), "request body exceeds limits.max_body_bytes (%zu bytes)",
			 cfg->limits.max_body_bytes);
		count_webhook(api, WH_TOO_LARGE);
		api_send_error(req, 413, "body_too_large", msg);
		return;
	}
	/* One contiguous view of the body, without a copy when it is already one chunk. */
	const unsigned char *body = len ? evbuffer_pullup(body_buf, (ev_ssize_t)len) : NULL;
	if (len && !body) {
		api_send_error(req, 500, "internal", "out of memory");
		return;
	}

	struct auth_input ai = request_auth_input(cfg, req, body, len);
	const char *scheme = NULL;
	const char *authz[AUTHZ_MAX];
	size_t n_authz = authorization_headers(req, authz);
	enum auth_result ar = n_authz > AUTHZ_MAX ? AUTH_INVALID : AUTH_OK;
	/* Several Authorization headers: each one must verify. */
	for (size_t i = 0; ar == AUTH_OK && i < (n_authz ? n_authz : 1); i++) {
		ai.authorization = n_authz ? authz[i] : NULL;
		ar = auth_verify(&cfg->auth, &ai, &scheme);
	}
	if (ar != AUTH_OK) {
		char why[256];
		auth_failure_message(ar, scheme, &cfg->auth, why, sizeof(why));
		count_webhook(api, WH_UNAUTHORIZED);
		evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
				  "Bearer realm=\"rollbackd\"");
		api_send_error(req, 401, "unauthorized", why);
		return;
	}

	const char *ct = evhttp_find_header(in, "Content-Type");
	if (!is_json_content_type(ct)) {
		count_webhook(api, WH_UNSUPPORTED_MEDIA_TYPE);
		api_send_error(req, 415, "unsupported_media_type",
			       ct ? "Content-Type must be application/json"
				  : "Content-Type is missing; expected application/json");
		return;
	}

	/* A signed request seen before (a capture replayed within max_skew, or
	 * a sender's retry of the very same bytes) answers as the first did and
	 * reaches nothing else. Bearer and basic credentials sign nothing. */
	struct guard_note gn, *g = NULL;
	const char *sig_hdr = NULL;
	if (scheme && strcmp(scheme, "hmac") == 0)
		sig_hdr = ai.rollbackd_signature;
	else if (scheme && strcmp(scheme, "grafana") == 0)
		sig_hdr = ai.grafana_signature;
	else if (scheme && strcmp(scheme, "github") == 0)
		sig_hdr = ai.hub_signature_256;
	if (sig_hdr) {
		char both[1024];
		snprintf(both, sizeof(both), "%s\n%s", sig_hdr,
			 ai.grafana_timestamp && strcmp(scheme, "grafana") == 0 ? ai.grafana_timestamp
										: "");
		replay_guard_key(scheme, both, body, len, gn.key);
		gn.expires_ms = timestamp_mono_ms() + cfg->auth.max_skew_ms;
		g = &gn;
		int status = 0;
		if (replay_guard_get(api->guard, gn.key, timestamp_mono_ms(), &status, &reply) == 1) {
			metric_inc(api->webhooks_replayed);
			send_json(req, status, "OK", reply.data, reply.len);
			buf_release(&reply);
			return;
		}
	}

	struct alert_limits lim = {cfg->limits.max_alerts, 256};
	switch (alert_parse_webhook((const char *)body, len, &lim, &wh, &err)) {
	case ALERT_PARSE_OK:
		break;
	case ALERT_PARSE_EMPTY:
		count_webhook(api, WH_BAD_REQUEST);
		api_send_error(req, 400, "empty_body", "request body is empty");
		return;
	case ALERT_PARSE_JSON:
		count_webhook(api, WH_BAD_REQUEST);
		api_send_error(req, 400, "malformed_json", err.msg);
		return;
	case ALERT_PARSE_INVALID:
		count_webhook(api, WH_BAD_REQUEST);
		api_send_error(req, 400, "invalid_payload", err.msg);
		return;
	case ALERT_PARSE_NOMEM:
	default:
		api_send_error(req, 500, "internal", "out of memory");
		return;
	}

	/* A failing disk refuses new work before anything changes: 503, and
	 * Alertmanager sends it again. */
	if (api->journal && !journal_available(api->journal)) {
		webhook_release(&wh);
		journal_unavailable(api, req, true);
		return;
	}
	for (size_t i = 0; i < wh.n_alerts; i++) {
		const struct alert *a = &wh.alerts[i];
		metric_inc(a->status == ALERT_FIRING ? api->alerts_firing : api->alerts_resolved);
		log_alert(a);
	}
	if (buf_addf(&reply, "{\"status\":\"accepted\",\"alerts\":%zu,\"decisions\":",
		     wh.n_alerts) < 0 ||
	    engine_process(api->engine, &wh, timestamp_now(), &reply) < 0 ||
	    buf_adds(&reply, "}\n") < 0) {
		webhook_release(&wh);
		buf_release(&reply);
		api_send_error(req, 500, "internal", "out of memory");
		return;
	}
	webhook_release(&wh);
	reply_durable(api, req, &reply, true, false, 200, g);
}

/* ---- POST /v1/changes (SPEC §11) ----------------------------------------- */

/* The api token (Authorization: Bearer) or an HMAC signature, as the
 * webhook takes them; with neither configured, loopback peers only. */
static bool changes_allowed(struct api *api, struct evhttp_request *req, const unsigned char *body,
			    size_t len)
{
	const struct config *cfg = api->cfg;
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	const char *authz = evhttp_find_header(in, "Authorization");
	struct auth_input ai = request_auth_input(cfg, req, body, len);
	/* Only the HMAC part of the webhook's schemes: the Alertmanager bearer
	 * token and basic auth are for alerts, the api token is for changes. */
	struct auth_config hmac_only = {
		.hmac_secrets = cfg->auth.hmac_secrets,
		.n_hmac_secrets = cfg->auth.n_hmac_secrets,
		.max_skew_ms = cfg->auth.max_skew_ms,
		.allow_untimestamped = cfg->auth.allow_untimestamped,
		.grafana_signature_header = cfg->auth.grafana_signature_header,
		.grafana_timestamp_header = cfg->auth.grafana_timestamp_header,
	};
	bool token_on = secret_is_set(&cfg->api_token);
	bool hmac_on = !auth_config_is_open(&hmac_only);
	bool signed_req = ai.rollbackd_signature || ai.hub_signature_256 || ai.grafana_signature;
	enum auth_result r;
	const char *scheme = NULL, *sig_scheme = NULL;
	if (!token_on && !hmac_on) {
		r = ai.from_loopback ? AUTH_OK : AUTH_MISSING;
	} else {
		enum auth_result rs = AUTH_MISSING, rt = AUTH_MISSING;
		if (signed_req && hmac_on) {
			rs = auth_verify(&hmac_only, &ai, &sig_scheme);
		} else if (signed_req) {
			rs = AUTH_DISABLED;
			sig_scheme = ai.rollbackd_signature ? "hmac"
				     : ai.grafana_signature ? "grafana"
							    : "github";
		}
		if (authz && token_on)
			rt = auth_check_bearer(&cfg->api_token, authz);
		else if (authz)
			rt = AUTH_DISABLED;
		scheme = signed_req && rs != AUTH_OK ? sig_scheme : "bearer";
		/* a presented but wrong credential fails the request */
		if ((signed_req && rs != AUTH_OK) || (authz && rt != AUTH_OK))
			r = signed_req && rs != AUTH_OK ? rs : rt;
		else
			r = signed_req || authz ? AUTH_OK : AUTH_MISSING;
	}
	if (r == AUTH_OK)
		return true;
	char why[256];
	if (r == AUTH_DISABLED && scheme && strcmp(scheme, "bearer") == 0)
		snprintf(why, sizeof(why),
			 "the api token scheme is disabled: auth.api.token is not configured");
	else
		auth_failure_message(r, scheme, &hmac_only, why, sizeof(why));
	evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
			  "Bearer realm=\"rollbackd\"");
	api_send_error(req, 401, "unauthorized", why);
	return false;
}

static void handle_changes(struct api *api, struct evhttp_request *req)
{
	const struct config *cfg = api->cfg;
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct evbuffer *body_buf = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(body_buf);
	struct changes *store = engine_changes(api->engine);
	struct error err = {{0}};

	if (len > cfg->limits.max_body_bytes) {
		char msg[160];
		snprintf(msg, sizeof(msg), "request body exceeds limits.max_body_bytes (%zu bytes)",
			 cfg->limits.max_body_bytes);
		api_send_error(req, 413, "body_too_large", msg);
		return;
	}
	const unsigned char *body = len ? evbuffer_pullup(body_buf, (ev_ssize_t)len) : NULL;
	if ((len && !body) || !store) {
		api_send_error(req, 500, "internal", "out of memory");
		return;
	}
	if (!changes_allowed(api, req, body, len))
		return;
	const char *ct = evhttp_find_header(in, "Content-Type");
	if (!is_json_content_type(ct)) {
		api_send_error(req, 415, "unsupported_media_type",
			       ct ? "Content-Type must be application/json"
				  : "Content-Type is missing; expected application/json");
		return;
	}
	size_t blank = 0;
	while (blank < len && (body[blank] == ' ' || body[blank] == '\t' || body[blank] == '\n' ||
			       body[blank] == '\r'))
		blank++;
	if (blank == len) {
		api_send_error(req, 400, "empty_body", "request body is empty");
		return;
	}
	struct change *c = calloc(1, sizeof(*c));
	struct buf m = BUF_INIT, reply = BUF_INIT;
	bool json_error = false;
	enum change_format fmt;
	if (!c) {
		api_send_error(req, 500, "internal", "out of memory");
		return;
	}
	if (changes_parse((const char *)body, len, timestamp_now(), c, &fmt, &json_error, &err) <
	    0) {
		api_send_error(req, 400, json_error ? "malformed_json" : "invalid_change", err.msg);
		goto out;
	}
	if (fmt == CHANGE_FORMAT_IGNORED) {
		/* Flux sends every event to a Provider; only new revisions are
		 * changes, and a 4xx would only make it log errors. */
		if (buf_adds(&reply, "{\"status\":\"ignored\",\"reason\":") ||
		    buf_add_json_str(&reply, err.msg, strlen(err.msg)) || buf_adds(&reply, "}\n"))
			api_send_error(req, 500, "internal", "out of memory");
		else
			send_json(req, 202, "Accepted", reply.data, reply.len);
		goto out;
	}
	if (api->journal && !journal_available(api->journal)) {
		journal_unavailable(api, req, false);
		goto out;
	}
	/* A resent change (same target, revision, previous, source and time)
	 * is answered again but kept and journaled once. Journaled and kept
	 * under the ingest lock: a snapshot's freeze sees every change
	 * record up to its seq in the store, and two copies sent at once are
	 * journaled once. */
	changes_ingest_lock(store);
	bool repeat = changes_has(store, c);
	if (fmt == CHANGE_FORMAT_FLUX) {
		/* Flux reports the same revision at every reconcile: a change is a
		 * new revision, and the one before it is the previous revision. */
		struct change *latest = calloc(1, sizeof(*latest));
		if (latest && changes_latest(store, c->target, latest)) {
			if (strcmp(latest->revision, c->revision) == 0)
				repeat = true;
			else
				snprintf(c->previous_revision, sizeof(c->previous_revision), "%s",
					 latest->revision);
		}
		free(latest);
	}
	uint64_t seq = 0;
	if (!repeat && api->journal &&
	    (changes_record_members(c, &m) < 0 ||
	     journal_append_seq(api->journal, "change", "", m.data, m.len, NULL, &seq) < 0)) {
		changes_ingest_unlock(store);
		api_send_error(req, 500, "internal", "cannot journal the change");
		goto out;
	}
	int added = repeat ? 0 : changes_add_seq(store, c, seq);
	changes_ingest_unlock(store);
	if (added < 0) {
		api_send_error(req, 500, "internal", "out of memory");
		goto out;
	}
	if (!repeat)
		metric_inc(metrics_child(api->changes_total, c->source));
	char at[TIMESTAMP_STRLEN];
	timestamp_format(c->at, at, sizeof(at));
	log_info("change", "target", c->target, "revision", c->revision, "source", c->source,
		 "repeat", repeat ? "true" : "false", NULL);
	if (buf_adds(&reply, repeat ? "{\"status\":\"repeat\"" : "{\"status\":\"recorded\"") ||
	    buf_adds(&reply, ",\"target\":") ||
	    buf_add_json_str(&reply, c->target, strlen(c->target)) ||
	    buf_adds(&reply, ",\"revision\":") ||
	    buf_add_json_str(&reply, c->revision, strlen(c->revision)) ||
	    buf_adds(&reply, ",\"at\":") || buf_add_json_str(&reply, at, strlen(at)) ||
	    buf_adds(&reply, "}\n")) {
		api_send_error(req, 500, "internal", "out of memory");
		goto out;
	}
	reply_durable(api, req, &reply, false, false, 202, NULL);
	reply = (struct buf)BUF_INIT; /* reply_durable took it over */
out:
	buf_release(&m);
	buf_release(&reply);
	free(c);
}

/* "scheme://authority" of url, or "" (for public_url's origin and host). */
static void url_origin(const char *url, char *out, size_t outsz, const char **authority)
{
	const char *a = url ? strstr(url, "://") : NULL;
	out[0] = '\0';
	*authority = out;
	if (!a)
		return;
	size_t n = strcspn(a + 3, "/?#");
	snprintf(out, outsz, "%.*s", (int)(a + 3 - url + n), url);
	*authority = out + (a + 3 - url);
}

/* Host names this rollbackd: its listen address, localhost on its port, or
 * public_url's authority. */
static bool host_is_ours(const struct api *api, const char *host)
{
	char origin[300], local[160];
	const char *authority, *port = strrchr(api->listen_addr, ':');
	url_origin(api->cfg->public_url, origin, sizeof(origin), &authority);
	snprintf(local, sizeof(local), "localhost%s", port ? port : "");
	return host && ((api->listen_addr[0] && strcasecmp(host, api->listen_addr) == 0) ||
			strcasecmp(host, local) == 0 || (authority[0] && strcasecmp(host, authority) == 0));
}

static bool origin_is_ours(const struct api *api, const char *origin)
{
	char pub[300], local[200];
	const char *authority;
	url_origin(api->cfg->public_url, pub, sizeof(pub), &authority);
	if (pub[0] && strcasecmp(origin, pub) == 0)
		return true;
	if (strncasecmp(origin, "http://", 7) != 0 || !host_is_ours(api, origin + 7))
		return false;
	snprintf(local, sizeof(local), "http://%s", origin + 7);
	return strcasecmp(origin, local) == 0;
}

/*
 * The operator API (incidents, pause, resume) takes the api token; without
 * one configured it is open to loopback peers only, like intake, and then
 * only for requests a browser on the host cannot be tricked into sending:
 * the Host names this rollbackd (no DNS rebinding), an Origin is our own
 * (no cross-site request), and a state-changing call is application/json
 * (which a cross-site form cannot send).
 */
static bool operator_allowed(struct api *api, struct evhttp_request *req, bool changes_state)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	const char *authz[AUTHZ_MAX];
	size_t n_authz = authorization_headers(req, authz);
	enum auth_result r = AUTH_OK;
	const struct config *cfg = api->cfg;
	if (!secret_is_set(&cfg->api_token)) {
		if (!peer_is_loopback(req))
			r = AUTH_MISSING;
	} else if (n_authz == 0 || n_authz > AUTHZ_MAX) {
		r = n_authz ? AUTH_INVALID : AUTH_MISSING;
	} else {
		for (size_t i = 0; r == AUTH_OK && i < n_authz; i++)
			r = auth_check_bearer(&cfg->api_token, authz[i]);
	}
	if (r != AUTH_OK) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
				  "Bearer realm=\"rollbackd\"");
		api_send_error(req, 401, "unauthorized", auth_result_message(r));
		return false;
	}
	if (secret_is_set(&cfg->api_token))
		return true;
	const char *origin = evhttp_find_header(in, "Origin");
	const char *ct = evhttp_find_header(in, "Content-Type");
	if (!host_is_ours(api, evhttp_find_header(in, "Host"))) {
		api_send_error(req, 403, "forbidden_host",
			       "the Host header does not name this rollbackd (its listen address "
			       "or public_url); without auth.api.token the operator API answers "
			       "only requests for its own address");
	} else if (origin && !origin_is_ours(api, origin)) {
		api_send_error(req, 403, "cross_origin",
			       "cross-origin request refused: Origin is not this rollbackd; set "
			       "auth.api.token to use the operator API from elsewhere");
	} else if (changes_state && !is_json_content_type(ct)) {
		api_send_error(req, 415, "unsupported_media_type",
			       ct ? "Content-Type must be application/json"
				  : "Content-Type is missing; expected application/json");
	} else {
		return true;
	}
	return false;
}

static void send_buf_json(struct evhttp_request *req, struct buf *b)
{
	if (buf_addc(b, '\n') < 0) {
		api_send_error(req, 500, "internal", "out of memory");
		return;
	}
	send_json(req, 200, "OK", b->data, b->len);
}

/* An incident id as the engine makes them: "inc-" and 16 hex digits. */
static bool incident_id_syntax(const char *s)
{
	return strlen(s) == 20 && strncmp(s, "inc-", 4) == 0 &&
	       strspn(s + 4, "0123456789abcdef") == 16;
}

/* GET /v1/incidents[?limit=N&before=ID&state=S]: one page, newest first
 * (a JSON array, as before); a Link header names the next page. */
static void handle_incidents(struct api *api, struct evhttp_request *req)
{
	if (!operator_allowed(api, req, false))
		return;
	const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	struct evkeyvalq params;
	TAILQ_INIT(&params);
	if (q && evhttp_parse_query_str(q, &params) < 0) {
		api_send_error(req, 400, "invalid_parameter", "query: malformed");
		return;
	}
	struct engine_page p = {.limit = 100};
	const char *limit = evhttp_find_header(&params, "limit");
	const char *state = evhttp_find_header(&params, "state");
	p.before = evhttp_find_header(&params, "before");
	p.state = state;
	char msg[160];
	msg[0] = '\0';
	if (limit) {
		size_t n = strlen(limit);
		long v = n && n <= 4 && strspn(limit, "0123456789") == n ? strtol(limit, NULL, 10) : 0;
		if (v < 1 || v > ENGINE_PAGE_MAX)
			snprintf(msg, sizeof(msg), "limit: expected an integer from 1 to %d",
				 ENGINE_PAGE_MAX);
		p.limit = (size_t)v;
	}
	if (!msg[0] && p.before && !incident_id_syntax(p.before))
		snprintf(msg, sizeof(msg),
			 "before: expected an incident id (inc- and 16 lowercase hex digits)");
	struct buf b = BUF_INIT;
	int rc = msg[0] ? 0 : engine_incidents_page(api->engine, &p, &b);
	if (rc == ENGINE_PAGE_BAD_CURSOR)
		snprintf(msg, sizeof(msg),
			 "before: no incident %s in memory (evicted, or never seen); list again "
			 "without before",
			 p.before);
	else if (rc == ENGINE_PAGE_BAD_STATE)
		snprintf(msg, sizeof(msg), "state: not an incident state (pending, acting, ...)");
	if (msg[0]) {
		api_send_error(req, 400, "invalid_parameter", msg);
	} else if (rc < 0) {
		api_send_error(req, 500, "internal", "out of memory");
	} else {
		if (p.next[0]) {
			char link[256];
			snprintf(link, sizeof(link), "</v1/incidents?before=%s&limit=%zu%s%s>; rel=\"next\"",
				 p.next, p.limit, state ? "&state=" : "", state ? state : "");
			evhttp_add_header(evhttp_request_get_output_headers(req), "Link", link);
		}
		send_buf_json(req, &b);
	}
	buf_release(&b);
	evhttp_clear_headers(&params);
}

static void handle_incident(struct api *api, struct evhttp_request *req)
{
	if (!operator_allowed(api, req, false))
		return;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	const char *id = path + strlen("/v1/incidents/");
	struct buf b = BUF_INIT;
	int r = engine_incident_json(api->engine, id, &b);
	if (r < 0)
		api_send_error(req, 500, "internal", "out of memory");
	else if (r > 0)
		api_send_error(req, 404, "not_found", "no incident with that id");
	else
		send_buf_json(req, &b);
	buf_release(&b);
}

static void handle_pause(struct api *api, struct evhttp_request *req, bool pause)
{
	if (!operator_allowed(api, req, true))
		return;
	if (api->journal && !journal_available(api->journal)) {
		journal_unavailable(api, req, false);
		return;
	}
	engine_set_paused(api->engine, pause, "api");
	struct buf b = BUF_INIT;
	if (buf_addf(&b, "{\"paused\":%s}\n", engine_paused(api->engine) ? "true" : "false") < 0) {
		buf_release(&b);
		api_send_error(req, 500, "internal", "out of memory");
	} else {
		reply_durable(api, req, &b, false, false, 200, NULL);
	}
}

static void handle_pause_on(struct api *api, struct evhttp_request *req)
{
	handle_pause(api, req, true);
}

static void handle_pause_off(struct api *api, struct evhttp_request *req)
{
	handle_pause(api, req, false);
}

static void handle_metrics(struct api *api, struct evhttp_request *req)
{
	struct buf b;
	buf_init(&b, 0);
	if (metrics_render(&b) < 0) {
		buf_release(&b);
		api_send_error(req, 500, "internal", "out of memory");
		return;
	}
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	evbuffer_add(evhttp_request_get_output_buffer(req), b.data, b.len);
	evhttp_send_reply(req, 200, "OK", NULL);
	buf_release(&b);
}

static void handle_healthz(struct api *api, struct evhttp_request *req)
{
	static const char ok[] = "{\"status\":\"ok\"}\n";
	send_json(req, 200, "OK", ok, sizeof(ok) - 1);
}

static void handle_readyz(struct api *api, struct evhttp_request *req)
{
	static const char ready[] = "{\"status\":\"ready\"}\n";
	static const char not_ready[] =
		"{\"status\":\"not_ready\",\"reason\":\"shutting down\"}\n";
	if (!atomic_load(&api->ready)) {
		send_json(req, 503, "Service Unavailable", not_ready, sizeof(not_ready) - 1);
		return;
	}
	if (api->journal && !journal_available(api->journal)) {
		char why[700];
		struct buf b = BUF_INIT;
		journal_last_error(api->journal, why, sizeof(why));
		if (buf_adds(&b, "{\"status\":\"not_ready\",\"reason\":") ||
		    buf_add_json_str(&b, "journal unavailable", 19) ||
		    buf_adds(&b, ",\"error\":") || buf_add_json_str(&b, why, strlen(why)) ||
		    buf_adds(&b, "}\n"))
			send_json(req, 503, "Service Unavailable", not_ready, sizeof(not_ready) - 1);
		else
			send_json(req, 503, "Service Unavailable", b.data, b.len);
		buf_release(&b);
		return;
	}
	send_json(req, 200, "OK", ready, sizeof(ready) - 1);
}

/* ---- acknowledge / approve (SPEC §9) ------------------------------------ */

static const char *status_reason(int status);

static void send_html(struct evhttp_request *req, int status, const char *body, size_t len)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", "text/html; charset=utf-8");
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "Content-Security-Policy", LINKS_PAGE_CSP);
	evhttp_add_header(h, "X-Frame-Options", "DENY");
	evhttp_add_header(h, "Referrer-Policy", "no-referrer");
	evbuffer_add(evhttp_request_get_output_buffer(req), body, len);
	evhttp_send_reply(req, status, status_reason(status), NULL);
}

static void send_page(struct evhttp_request *req, int status, const char *title, const char *msg)
{
	struct buf b = BUF_INIT;
	if (links_page_message(&b, title, msg) < 0)
		api_send_error(req, 500, "internal", "out of memory");
	else
		send_html(req, status, b.data, b.len);
	buf_release(&b);
}

/* The {id} of /v1/ack/{id}. */
static const char *ack_id(struct evhttp_request *req)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	return path ? path + strlen("/v1/ack/") : "";
}

/* The target of incident id (ui_incident_target): 0, 1 when not found, -1. */
static int incident_target(struct api *api, const char *id, struct buf *out)
{
	struct buf js = BUF_INIT;
	int r = engine_incident_json(api->engine, id, &js);
	json_t *inc = r == 0 ? json_loadb(js.data, js.len, 0, NULL) : NULL;
	buf_release(&js);
	if (r == 0)
		r = !inc || ui_incident_target(inc, out) < 0 ||
				    (!out->len && buf_adds(out, id) < 0) /* no group labels */
			    ? -1
			    : 0;
	json_decref(inc);
	return r;
}

/* An approval must name the target (the form's "target" field): false,
 * with the page sent, when it does not; nothing changes then. */
static bool approve_target_ok(struct api *api, struct evhttp_request *req, const char *id,
			      const char *body, size_t len)
{
	char typed[512];
	struct buf target = BUF_INIT;
	if (incident_target(api, id, &target) != 0) {
		buf_release(&target);
		return true; /* unknown incident: use_link says so */
	}
	bool ok = false;
	if (ui_form_field(body, len, "target", typed, sizeof(typed)) == 1)
		ok = ui_target_matches(typed, target.data ? target.data : "");
	if (!ok) {
		char msg[700];
		snprintf(msg, sizeof(msg),
			 "To approve, type the target's name exactly: %s. What was typed does not "
			 "match, so nothing was approved.",
			 target.data ? target.data : "");
		send_page(req, 400, "Target does not match", msg);
	}
	buf_release(&target);
	return ok;
}

/* Check a link's action/exp/sig for id; on failure the page is sent. */
static bool link_ok(struct api *api, struct evhttp_request *req, const char *id,
		    const struct link_form *f, int parsed)
{
	const struct config *cfg = api->cfg;
	if (!secret_is_set(&cfg->links_secret)) {
		send_page(req, 404, "Links are not configured",
			  "This rollbackd has no auth.links secret, so it issues no links.");
		return false;
	}
	if (parsed < 0) {
		send_page(req, 400, "This link is not valid", f->error ? f->error : "malformed link");
		return false;
	}
	enum link_status st = links_verify(&cfg->links_secret, f->action, id, f->ep, f->exp, f->sig,
					   (int64_t)time(NULL));
	if (st != LINK_OK) {
		send_page(req, links_status_http(st),
			  st == LINK_EXPIRED ? "This link has expired" : "This link is not valid",
			  links_status_message(st));
		return false;
	}
	return true;
}

static void handle_ack_get(struct api *api, struct evhttp_request *req)
{
	const char *id = ack_id(req);
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	struct link_form f;
	int parsed = links_parse_query(uri ? evhttp_uri_get_query(uri) : NULL, &f);
	if (!link_ok(api, req, id, &f, parsed))
		return;
	char summary[512];
	if (engine_incident_summary(api->engine, id, summary, sizeof(summary)) < 0) {
		send_page(req, 404, "No such incident", "rollbackd does not know this incident.");
		return;
	}
	/* A GET changes nothing: Slack and mail clients prefetch links. */
	struct buf b = BUF_INIT, target = BUF_INIT, shown = BUF_INIT;
	bool approve = strcmp(f.action, "approve") == 0;
	/* An approver sees what will run (secrets redacted), the value against
	 * its threshold and how long it has fired (issue 11). */
	int bad = buf_adds(&shown, summary);
	if (approve && !bad) {
		bad = buf_adds(&shown, "; ");
		if (!bad && engine_approve_preview(api->engine, id, &shown) < 0)
			bad = -1;
	}
	if (bad || (approve && incident_target(api, id, &target) < 0) ||
	    links_page_confirm_target(&b, id, f.action, f.ep, f.exp, f.sig, shown.data,
				      approve ? (target.data ? target.data : "") : NULL) < 0)
		api_send_error(req, 500, "internal", "out of memory");
	else
		send_html(req, 200, b.data, b.len);
	buf_release(&b);
	buf_release(&target);
	buf_release(&shown);
}

/* Record an ack or approval; the answer (HTML page or Slack text) says
 * what happened. Returns the HTTP status for a page. */
static int use_link(struct api *api, const char *id, int episode, const char *action,
		    const char *by, const char *via, char *title, size_t tsz, char *msg, size_t msz)
{
	struct engine_use prev = {{0}, {0, 0}, 0};
	bool approve = strcmp(action, "approve") == 0;
	int rc = approve ? engine_approve(api->engine, id, episode, by, via, &prev)
			 : engine_ack(api->engine, id, episode, by, via, &prev);
	char when[TIMESTAMP_STRLEN];
	switch (rc) {
	case ENGINE_USE_WRONG_EPISODE:
		snprintf(title, tsz, "This link is for an earlier episode");
		snprintf(msg, msz,
			 "this link was for episode %d of %s; it is now in episode %d. "
			 "Nothing was changed: use the link of the current episode.",
			 episode, id, prev.episode);
		return 409;
	case ENGINE_USE_DONE:
		snprintf(title, tsz, approve ? "Approved" : "Acknowledged");
		snprintf(msg, msz, "%s %s by %s.", id,
			 approve ? "approved: the rollback actions run now" : "acknowledged", by);
		return 200;
	case ENGINE_USE_ALREADY:
		timestamp_format(prev.at, when, sizeof(when));
		snprintf(title, tsz, "Already %s", approve ? "approved" : "acknowledged");
		snprintf(msg, msz, "%s was already %s by %s at %s.", id,
			 approve ? "approved" : "acknowledged", prev.by, when);
		return 409;
	case ENGINE_USE_NOT_APPLICABLE:
		snprintf(title, tsz, "Nothing to do");
		snprintf(msg, msz, approve ? "%s is not awaiting approval." : "%s is already resolved.",
			 id);
		return 409;
	default:
		snprintf(title, tsz, "No such incident");
		snprintf(msg, msz, "rollbackd does not know %s.", id);
		return 404;
	}
}

static void handle_ack_post(struct api *api, struct evhttp_request *req)
{
	const char *id = ack_id(req);
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const char *body = len ? (const char *)evbuffer_pullup(in, (ev_ssize_t)len) : "";
	struct link_form f;
	int parsed = links_parse_form(body ? body : "", body ? len : 0, &f);
	if (!link_ok(api, req, id, &f, parsed))
		return;
	if (strcmp(f.action, "approve") == 0 &&
	    !approve_target_ok(api, req, id, body ? body : "", body ? len : 0))
		return;
	if (api->journal && !journal_available(api->journal)) {
		journal_unavailable(api, req, false);
		return;
	}
	char title[64], msg[512];
	int status = use_link(api, id, atoi(f.ep), f.action, f.by, "link", title, sizeof(title),
			      msg, sizeof(msg));
	struct buf b = BUF_INIT;
	if (links_page_message(&b, title, msg) < 0) {
		buf_release(&b);
		api_send_error(req, 500, "internal", "out of memory");
		return;
	}
	reply_durable(api, req, &b, false, true, status, NULL);
}

static void handle_ack(struct api *api, struct evhttp_request *req)
{
	if (evhttp_request_get_command(req) == EVHTTP_REQ_POST)
		handle_ack_post(api, req);
	else
		handle_ack_get(api, req);
}

/* Slack interactivity: the Acknowledge / Approve buttons. */
static void handle_slack_actions(struct api *api, struct evhttp_request *req)
{
	const struct config *cfg = api->cfg;
	struct evkeyvalq *hdr = evhttp_request_get_input_headers(req);
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const unsigned char *body = len ? evbuffer_pullup(in, (ev_ssize_t)len) : NULL;
	if (!secret_is_set(&cfg->slack_signing)) {
		api_send_error(req, 404, "not_found",
			       "Slack interactivity is off: auth.slack_signing is not configured");
		return;
	}
	enum slack_sig sig = slack_verify(&cfg->slack_signing,
					  evhttp_find_header(hdr, "X-Slack-Request-Timestamp"),
					  evhttp_find_header(hdr, "X-Slack-Signature"), body, len,
					  (int64_t)time(NULL));
	if (sig != SLACK_SIG_OK) {
		api_send_error(req, 401, "unauthorized", slack_sig_message(sig));
		return;
	}
	/* A click replayed within Slack's window answers as before and does
	 * nothing: no second ack, approval or response_url update. */
	struct guard_note gn;
	char both[512];
	const char *ts = evhttp_find_header(hdr, "X-Slack-Request-Timestamp");
	snprintf(both, sizeof(both), "%s\n%s", evhttp_find_header(hdr, "X-Slack-Signature"),
		 ts ? ts : "");
	replay_guard_key("slack", both, body, len, gn.key);
	gn.expires_ms = timestamp_mono_ms() + 2 * SLACK_SIG_WINDOW * 1000LL;
	{
		struct buf cached = BUF_INIT;
		int status = 0;
		if (replay_guard_get(api->guard, gn.key, timestamp_mono_ms(), &status, &cached) == 1) {
			send_json(req, status, "OK", cached.data, cached.len);
			buf_release(&cached);
			return;
		}
	}
	struct slack_action act;
	struct error err = {{0}};
	if (slack_parse_action((const char *)(body ? body : (const unsigned char *)""), len, &act,
			       &err) < 0) {
		api_send_error(req, 400, "invalid_payload", err.msg);
		return;
	}
	if (api->journal && !journal_available(api->journal)) {
		journal_unavailable(api, req, false);
		return;
	}
	char title[64], msg[512], who[160];
	snprintf(who, sizeof(who), "%s (Slack)", act.user);
	use_link(api, act.incident, act.episode, act.action, who, "slack", title, sizeof(title), msg,
		 sizeof(msg));
	struct buf up = BUF_INIT;
	if (api->notify && act.response_url[0] && slack_response_update(msg, &up) == 0)
		notify_slack_response(api->notify, act.response_url, up.data);
	buf_release(&up);
	struct buf b = BUF_INIT;
	if (buf_adds(&b, "{\"ok\":true}\n") < 0) {
		buf_release(&b);
		api_send_error(req, 500, "internal", "out of memory");
		return;
	}
	reply_durable(api, req, &b, false, false, 200, &gn);
}

struct route {
	const char *path;             /* exact, or a prefix when it ends in '/' */
	enum evhttp_cmd_type methods; /* bit set */
	const char *allow;            /* Allow header for 405 */
	void (*handle)(struct api *, struct evhttp_request *);
};

static const struct route routes[] = {
	{"/v1/alerts", EVHTTP_REQ_POST, "POST", handle_alerts},
	{"/v1/changes", EVHTTP_REQ_POST, "POST", handle_changes},
	{"/metrics", EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, "GET, HEAD", handle_metrics},
	{"/healthz", EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, "GET, HEAD", handle_healthz},
	{"/readyz", EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, "GET, HEAD", handle_readyz},
	{"/v1/incidents", EVHTTP_REQ_GET, "GET", handle_incidents},
	{"/v1/incidents/", EVHTTP_REQ_GET, "GET", handle_incident},
	{"/v1/pause", EVHTTP_REQ_POST, "POST", handle_pause_on},
	{"/v1/resume", EVHTTP_REQ_POST, "POST", handle_pause_off},
	{"/v1/ack/", EVHTTP_REQ_GET | EVHTTP_REQ_POST, "GET, POST", handle_ack},
	{"/v1/slack/actions", EVHTTP_REQ_POST, "POST", handle_slack_actions},
};

static bool route_matches(const struct route *r, const char *path)
{
	size_t n = strlen(r->path);
	if (r->path[n - 1] == '/')
		return strncmp(path, r->path, n) == 0 && path[n] != '\0' && !strchr(path + n, '/');
	return strcmp(path, r->path) == 0;
}

void api_handle(struct api *api, struct evhttp_request *req)
{
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	const struct route *route = NULL;
	for (size_t i = 0; path && i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (route_matches(&routes[i], path)) {
			route = &routes[i];
			break;
		}
	}
	if (ui_owns_path(path)) {
		ui_handle(api->ui, req);
	} else if (!route) {
		api_send_error(req, 404, "not_found", "no such endpoint");
	} else if (!(evhttp_request_get_command(req) & route->methods)) {
		char msg[96];
		snprintf(msg, sizeof(msg), "%s accepts only %s", route->path, route->allow);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", route->allow);
		api_send_error(req, 405, "method_not_allowed", msg);
	} else {
		route->handle(api, req);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	metric_observe(api->request_duration,
		       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
}
