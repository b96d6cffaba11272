/*
 * httpc: outbound HTTP on libcurl's multi interface, driven by libevent in
 * the shape of curl's docs/examples/hiperfifo.c: curl tells us which sockets
 * to watch (CURLMOPT_SOCKETFUNCTION) and when to wake it
 * (CURLMOPT_TIMERFUNCTION); libevent calls curl_multi_socket_action and we
 * collect finished transfers with curl_multi_info_read.
 *
 * Must never block the loop (no curl_easy_perform), never follow a
 * redirect, never speak anything but http/https, and never keep more of a
 * response than the caller allowed. Every request's done callback runs
 * exactly once.
 */
#include "rollbackd/httpc.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <event2/event.h>
#include <limits.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "rollbackd/buf.h"
#include "rollbackd/timestamp.h"

/*
 * libcurl is loaded with dlopen the first time a client is created, not at
 * start: libcurl and the ~30 libraries it pulls in (TLS, LDAP, SSH, ...)
 * cost about 6 MB of resident memory just by being loaded, which a daemon
 * that never runs an http action or notification should not pay. Calls go
 * through this table; the macros below keep the code reading like curl.
 */
static struct {
	CURLcode (*global_init)(long);
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
	void (*easy_cleanup)(CURL *);
	const char *(*easy_strerror)(CURLcode);
	time_t (*getdate)(const char *, const time_t *);
	CURLM *(*multi_init)(void);
	CURLMcode (*multi_setopt)(CURLM *, CURLMoption, ...);
	CURLMcode (*multi_add_handle)(CURLM *, CURL *);
	CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
	CURLMcode (*multi_assign)(CURLM *, curl_socket_t, void *);
	CURLMcode (*multi_socket_action)(CURLM *, curl_socket_t, int, int *);
	CURLMsg *(*multi_info_read)(CURLM *, int *);
	CURLMcode (*multi_cleanup)(CURLM *);
	struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
	void (*slist_free_all)(struct curl_slist *);
} rb_curl;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_loaded; /* 1 loaded, -1 failed */

static void curl_load(void)
{
	void *lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		curl_loaded = -1;
		return;
	}
	/* Never dlclose: libcurl keeps global state (TLS init) for the process. */
#define LOAD(field, name) \
	if (!(*(void **)&rb_curl.field = dlsym(lib, name))) { curl_loaded = -1; return; }
	LOAD(global_init, "curl_global_init");
	LOAD(easy_init, "curl_easy_init");
	LOAD(easy_setopt, "curl_easy_setopt");
	LOAD(easy_getinfo, "curl_easy_getinfo");
	LOAD(easy_cleanup, "curl_easy_cleanup");
	LOAD(easy_strerror, "curl_easy_strerror");
	LOAD(getdate, "curl_getdate");
	LOAD(multi_init, "curl_multi_init");
	LOAD(multi_setopt, "curl_multi_setopt");
	LOAD(multi_add_handle, "curl_multi_add_handle");
	LOAD(multi_remove_handle, "curl_multi_remove_handle");
	LOAD(multi_assign, "curl_multi_assign");
	LOAD(multi_socket_action, "curl_multi_socket_action");
	LOAD(multi_info_read, "curl_multi_info_read");
	LOAD(multi_cleanup, "curl_multi_cleanup");
	LOAD(slist_append, "curl_slist_append");
	LOAD(slist_free_all, "curl_slist_free_all");
#undef LOAD
	curl_loaded = rb_curl.global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 1 : -1;
}

#undef curl_easy_setopt
#undef curl_easy_getinfo
#undef curl_multi_setopt
#define curl_easy_init (*rb_curl.easy_init)
#define curl_easy_setopt (*rb_curl.easy_setopt)
#define curl_easy_getinfo (*rb_curl.easy_getinfo)
#define curl_easy_cleanup (*rb_curl.easy_cleanup)
#define curl_easy_strerror (*rb_curl.easy_strerror)
#define curl_getdate (*rb_curl.getdate)
#define curl_multi_init (*rb_curl.multi_init)
#define curl_multi_setopt (*rb_curl.multi_setopt)
#define curl_multi_add_handle (*rb_curl.multi_add_handle)
#define curl_multi_remove_handle (*rb_curl.multi_remove_handle)
#define curl_multi_assign (*rb_curl.multi_assign)
#define curl_multi_socket_action (*rb_curl.multi_socket_action)
#define curl_multi_info_read (*rb_curl.multi_info_read)
#define curl_multi_cleanup (*rb_curl.multi_cleanup)
#define curl_slist_append (*rb_curl.slist_append)
#define curl_slist_free_all (*rb_curl.slist_free_all)

#ifndef ROLLBACKD_VERSION
#define ROLLBACKD_VERSION "dev"
#endif

/* Defaults for request fields left at 0. */
#define HTTPC_DEFAULT_TIMEOUT_MS 10000
#define HTTPC_DEFAULT_MAX_RESPONSE 65536
#define HTTPC_DEFAULT_BACKOFF_BASE_MS 500
#define HTTPC_DEFAULT_BACKOFF_MAX_MS 30000
/* A server cannot make us wait longer than this with Retry-After. */
#define HTTPC_RETRY_AFTER_CAP_MS 300000

struct httpc_sock {
	struct httpc *h;
	curl_socket_t fd;
	struct event *ev;
	struct httpc_sock *prev, *next; /* h->socks, so free can sweep leftovers */
};

struct httpc_xfer {
	struct httpc *h;
	struct httpc_xfer *prev, *next; /* h->xfers */

	/* the request, copied */
	char *method;
	char *url;
	char *body;
	size_t body_len;
	bool has_body;
	struct curl_slist *headers;
	long timeout_ms;
	int retries;
	int *expect;
	size_t n_expect;
	size_t max_response;
	int64_t backoff_base_ms;
	int64_t backoff_max_ms;
	httpc_done_fn done;
	void *arg;

	/* progress */
	CURL *easy;		   /* the attempt in flight, NULL while waiting */
	struct event *retry_timer; /* armed while waiting to retry */
	int attempts;
	int64_t started_ms; /* timestamp_mono_ms() at httpc_send */
	struct buf resp;	/* body of the current attempt, capped */
	int64_t retry_after_ms; /* from the current response, -1 if none */
	int64_t retry_at_ms;	/* timestamp_mono_ms() not before which to retry */
	char errbuf[CURL_ERROR_SIZE];
};

struct httpc {
	struct event_base *base;
	CURLM *multi;
	struct event *timer; /* curl's single timeout */
	int still_running;
	struct httpc_xfer *xfers; /* in flight or waiting to retry */
	int n_xfers;
	struct httpc_sock *socks;
	int depth;  /* > 0 while one of our event callbacks runs */
	bool dying; /* httpc_free was called inside a callback */
};

/* ---- the client's lifetime across re-entrant callbacks ---------------- */

static void destroy(struct httpc *h);

/* A done callback may call httpc_free; the struct must outlive the event
 * callback that is running, so destruction waits for the outermost one. */
static void enter(struct httpc *h)
{
	h->depth++;
}

static void leave(struct httpc *h)
{
	if (--h->depth == 0 && h->dying)
		destroy(h);
}

/* ---- transfers --------------------------------------------------------- */

static void xfer_unlink(struct httpc_xfer *x)
{
	struct httpc *h = x->h;
	if (x->prev)
		x->prev->next = x->next;
	else
		h->xfers = x->next;
	if (x->next)
		x->next->prev = x->prev;
	h->n_xfers--;
	x->prev = x->next = NULL;
}

static void xfer_stop_attempt(struct httpc_xfer *x)
{
	if (x->easy) {
		curl_multi_remove_handle(x->h->multi, x->easy);
		curl_easy_cleanup(x->easy);
		x->easy = NULL;
	}
	if (x->retry_timer) {
		event_free(x->retry_timer);
		x->retry_timer = NULL;
	}
}

static void xfer_free(struct httpc_xfer *x)
{
	if (!x)
		return;
	xfer_stop_attempt(x);
	free(x->method);
	free(x->url);
	free(x->body);
	curl_slist_free_all(x->headers);
	free(x->expect);
	buf_release(&x->resp);
	free(x);
}

/* Report the final result and free the transfer. The transfer is unlinked
 * before the callback so that an httpc_free inside it does not report it a
 * second time; the body stays valid until the callback returns. */
static void xfer_finish(struct httpc_xfer *x, bool ok, int status, const char *error)
{
	struct httpc_result res = {
	    .ok = ok,
	    .status = status,
	    .error = error,
	    .body = x->resp.data ? x->resp.data : "",
	    .body_len = x->resp.len,
	    .attempts = x->attempts,
	    .duration_ms = timestamp_mono_ms() - x->started_ms,
	};
	xfer_stop_attempt(x);
	xfer_unlink(x);
	x->done(&res, x->arg);
	xfer_free(x);
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userp)
{
	struct httpc_xfer *x = userp;
	size_t n = size * nmemb;
	size_t room = x->max_response - x->resp.len;
	/* Keep reading past the cap so that the connection stays usable and
	 * the status is still reported; only the first bytes are kept. */
	if (room > 0 && buf_add(&x->resp, ptr, n < room ? n : room) < 0)
		return 0; /* OOM: abort the transfer */
	return n;
}

/* Seconds ("120") or an HTTP date; -1 when neither. */
static int64_t parse_retry_after(const char *v)
{
	if (*v >= '0' && *v <= '9') {
		int64_t s = 0;
		for (; *v >= '0' && *v <= '9'; v++) {
			if (s < HTTPC_RETRY_AFTER_CAP_MS / 1000)
				s = s * 10 + (*v - '0');
		}
		if (*v != '\0')
			return -1;
		return s * 1000;
	}
	time_t when = curl_getdate(v, NULL);
	if (when == -1)
		return -1;
	time_t now = time(NULL);
	return when > now ? (int64_t)(when - now) * 1000 : 0;
}

static size_t header_cb(char *ptr, size_t size, size_t nitems, void *userp)
{
	struct httpc_xfer *x = userp;
	size_t n = size * nitems;
	static const char name[] = "retry-after:";

	/* A status line starts a new response (after a 1xx, say). */
	if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0) {
		x->retry_after_ms = -1;
		return n;
	}
	if (n <= sizeof(name) - 1 || strncasecmp(ptr, name, sizeof(name) - 1) != 0)
		return n;

	const char *v = ptr + sizeof(name) - 1;
	size_t vlen = n - (sizeof(name) - 1);
	while (vlen && (*v == ' ' || *v == '\t')) {
		v++;
		vlen--;
	}
	while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' ' ||
			v[vlen - 1] == '\t'))
		vlen--;
	char val[128];
	if (vlen == 0 || vlen >= sizeof(val))
		return n;
	memcpy(val, v, vlen);
	val[vlen] = '\0';
	int64_t ms = parse_retry_after(val);
	if (ms >= 0)
		x->retry_after_ms = ms > HTTPC_RETRY_AFTER_CAP_MS ? HTTPC_RETRY_AFTER_CAP_MS : ms;
	return n;
}

static int xfer_start_attempt(struct httpc_xfer *x)
{
	CURL *e = curl_easy_init();
	if (!e)
		return -1;

	buf_reset(&x->resp);
	x->retry_after_ms = -1;
	x->errbuf[0] = '\0';

	CURLcode rc = CURLE_OK;
#define SET(opt, val)                                                                              \
	do {                                                                                       \
		if (rc == CURLE_OK)                                                                \
			rc = curl_easy_setopt(e, opt, val);                                        \
	} while (0)
	SET(CURLOPT_URL, x->url);
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_TIMEOUT_MS, x->timeout_ms);
	SET(CURLOPT_ERRORBUFFER, x->errbuf);
	SET(CURLOPT_PRIVATE, x);
	SET(CURLOPT_WRITEFUNCTION, write_cb);
	SET(CURLOPT_WRITEDATA, x);
	SET(CURLOPT_HEADERFUNCTION, header_cb);
	SET(CURLOPT_HEADERDATA, x);
	SET(CURLOPT_USERAGENT, "rollbackd/" ROLLBACKD_VERSION);
	SET(CURLOPT_HTTPHEADER, x->headers);
	if (strcmp(x->method, "HEAD") == 0) {
		/* CUSTOMREQUEST "HEAD" would make curl wait for a body. */
		SET(CURLOPT_NOBODY, 1L);
	} else {
		SET(CURLOPT_CUSTOMREQUEST, x->method);
		if (x->has_body) {
			SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body_len);
			SET(CURLOPT_POSTFIELDS, x->body);
		}
	}
#undef SET
	if (rc != CURLE_OK) {
		curl_easy_cleanup(e);
		return -1;
	}
	if (curl_multi_add_handle(x->h->multi, e) != CURLM_OK) {
		curl_easy_cleanup(e);
		return -1;
	}
	/* add_handle asks for an immediate timeout through timer_cb; the
	 * transfer starts on the next loop iteration. */
	x->easy = e;
	x->attempts++;
	return 0;
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct httpc_xfer *x = arg;
	struct httpc *h = x->h;

	enter(h);
	/* libevent's clock is CLOCK_MONOTONIC_COARSE (a few ms per tick), so a
	 * timer can fire a tick early: Retry-After is a "not before", so wait
	 * out the rest. */
	int64_t left = x->retry_at_ms - timestamp_mono_ms();
	if (left > 0) {
		struct timeval tv = timestamp_tv(left);
		if (evtimer_add(x->retry_timer, &tv) == 0) {
			leave(h);
			return;
		}
	}
	event_free(x->retry_timer);
	x->retry_timer = NULL;
	if (xfer_start_attempt(x) < 0)
		xfer_finish(x, false, 0, "cannot start the next attempt (out of memory?)");
	leave(h);
}

/* delay = min(max, base * 2^(attempt-1)), then full jitter in [d/2, d]. */
static int64_t backoff_ms(const struct httpc_xfer *x)
{
	int64_t d = x->backoff_base_ms;
	for (int i = 1; i < x->attempts && d < x->backoff_max_ms; i++)
		d *= 2;
	if (d > x->backoff_max_ms)
		d = x->backoff_max_ms;
	if (d > UINT32_MAX - 1)
		d = UINT32_MAX - 1;
	int64_t half = d / 2;
	return half + (int64_t)randombytes_uniform((uint32_t)(d - half + 1));
}

static int schedule_retry(struct httpc_xfer *x)
{
	int64_t delay = backoff_ms(x);
	if (x->retry_after_ms > delay)
		delay = x->retry_after_ms;
	x->retry_timer = evtimer_new(x->h->base, retry_cb, x);
	if (!x->retry_timer)
		return -1;
	struct timeval tv = timestamp_tv(delay);
	/* libevent measures a timeout from the loop's cached time, which can be
	 * older than this response: refresh it; retry_cb checks the rest. The +1
	 * rounds the millisecond clock up. */
	event_base_update_cache_time(x->h->base);
	x->retry_at_ms = timestamp_mono_ms() + delay + 1;
	if (evtimer_add(x->retry_timer, &tv) < 0) {
		event_free(x->retry_timer);
		x->retry_timer = NULL;
		return -1;
	}
	return 0;
}

static bool status_expected(const struct httpc_xfer *x, int status)
{
	if (x->n_expect == 0)
		return status >= 200 && status <= 299;
	for (size_t i = 0; i < x->n_expect; i++)
		if (x->expect[i] == status)
			return true;
	return false;
}

/* One attempt is over: finish, or wait and try again. */
static void xfer_attempt_done(struct httpc_xfer *x, CURLcode result)
{
	long code = 0;
	char error[CURL_ERROR_SIZE];
	bool ok = false, retryable;

	error[0] = '\0';
	if (result == CURLE_OK) {
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
		ok = status_expected(x, (int)code);
		retryable = !ok && (code == 429 || (code >= 500 && code <= 599));
	} else {
		snprintf(error, sizeof(error), "%s",
			 x->errbuf[0] ? x->errbuf : curl_easy_strerror(result));
		retryable = true;
	}
	curl_multi_remove_handle(x->h->multi, x->easy);
	curl_easy_cleanup(x->easy);
	x->easy = NULL;

	if (retryable && x->attempts <= x->retries) {
		if (schedule_retry(x) == 0)
			return;
	}
	xfer_finish(x, ok, (int)code, result == CURLE_OK ? NULL : error);
}

/* ---- libcurl <-> libevent glue (hiperfifo) ----------------------------- */

static void check_multi_info(struct httpc *h)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(h->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		char *priv = NULL;
		CURLcode result = msg->data.result;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
		/* msg is invalid once the handle is removed. */
		if (priv)
			xfer_attempt_done((struct httpc_xfer *)(void *)priv, result);
	}
}

static void event_cb(evutil_socket_t fd, short kind, void *arg)
{
	struct httpc *h = arg;
	int action =
	    ((kind & EV_READ) ? CURL_CSELECT_IN : 0) | ((kind & EV_WRITE) ? CURL_CSELECT_OUT : 0);

	enter(h);
	curl_multi_socket_action(h->multi, fd, action, &h->still_running);
	check_multi_info(h);
	/* Unlike hiperfifo, do not delete the timer when still_running drops
	 * to 0: a done callback may just have added a handle, whose timeout
	 * that would lose. curl clears the timer itself (timeout -1). */
	leave(h);
}

static void timer_cb(evutil_socket_t fd, short kind, void *arg)
{
	struct httpc *h = arg;

	enter(h);
	curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &h->still_running);
	check_multi_info(h);
	leave(h);
}

/* CURLMOPT_TIMERFUNCTION: one timer, set or updated; -1 deletes it. */
static int multi_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct httpc *h = userp;
	if (timeout_ms < 0) {
		evtimer_del(h->timer);
		return 0;
	}
	struct timeval tv = timestamp_tv(timeout_ms);
	return evtimer_add(h->timer, &tv) < 0 ? -1 : 0;
}

static void sock_free(struct httpc_sock *s)
{
	struct httpc *h = s->h;
	if (s->prev)
		s->prev->next = s->next;
	else
		h->socks = s->next;
	if (s->next)
		s->next->prev = s->prev;
	if (s->ev)
		event_free(s->ev);
	free(s);
}

/* CURLMOPT_SOCKETFUNCTION: watch s for what curl asks, or stop watching. */
static int sock_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *sockp)
{
	struct httpc *h = userp;
	struct httpc_sock *s = sockp;

	if (what == CURL_POLL_REMOVE) {
		if (s)
			sock_free(s);
		curl_multi_assign(h->multi, fd, NULL);
		return 0;
	}
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			return -1;
		s->h = h;
		s->fd = fd;
		s->next = h->socks;
		if (h->socks)
			h->socks->prev = s;
		h->socks = s;
		curl_multi_assign(h->multi, fd, s);
	}
	short kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) |
			     ((what & CURL_POLL_OUT) ? EV_WRITE : 0) | EV_PERSIST);
	if (s->ev)
		event_free(s->ev);
	s->ev = event_new(h->base, fd, kind, event_cb, h);
	if (!s->ev || event_add(s->ev, NULL) < 0)
		return -1;
	return 0;
}

/* ---- public ------------------------------------------------------------ */

struct httpc *httpc_new(struct event_base *base)
{
	struct httpc *h = NULL;

	if (!base || sodium_init() < 0)
		return NULL;
	pthread_once(&curl_once, curl_load);
	if (curl_loaded != 1)
		return NULL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->base = base;
	h->multi = curl_multi_init();
	h->timer = evtimer_new(base, timer_cb, h);
	if (!h->multi || !h->timer)
		goto fail;
	if (curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, sock_cb) != CURLM_OK ||
	    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h) != CURLM_OK ||
	    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, multi_timer_cb) != CURLM_OK ||
	    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h) != CURLM_OK)
		goto fail;
	return h;
fail:
	destroy(h);
	return NULL;
}

static void cancel_all(struct httpc *h)
{
	/* Callbacks may add transfers (httpc_send refuses while dying) or
	 * free others; take them one at a time from the head. */
	while (h->xfers)
		xfer_finish(h->xfers, false, 0, "cancelled");
}

static void destroy(struct httpc *h)
{
	if (!h)
		return;
	cancel_all(h);
	if (h->multi)
		curl_multi_cleanup(h->multi); /* may call sock_cb / multi_timer_cb */
	while (h->socks)
		sock_free(h->socks);
	if (h->timer)
		event_free(h->timer);
	free(h);
}

void httpc_free(struct httpc *h)
{
	if (!h || h->dying)
		return;
	h->dying = true;
	if (h->depth > 0) {
		/* Inside one of our callbacks: report now, free on the way out. */
		cancel_all(h);
		return;
	}
	destroy(h);
}

static bool scheme_allowed(const char *url)
{
	return strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0;
}

static bool method_valid(const char *m)
{
	if (!*m)
		return false;
	for (; *m; m++)
		if (!((*m >= 'A' && *m <= 'Z') || *m == '-' || *m == '_'))
			return false;
	return true;
}

int httpc_send(struct httpc *h, const struct httpc_request *req, httpc_done_fn done, void *arg,
	       struct error *err)
{
	struct httpc_xfer *x = NULL;
	bool has_expect = false;

	if (!h || !req || !done)
		return error_set(err, "httpc: missing client, request or callback");
	if (h->dying)
		return error_set(err, "httpc: client is shutting down");
	if (!req->url || !scheme_allowed(req->url))
		return error_set(err, "url '%s': only http:// and https:// are allowed",
				 req->url ? req->url : "");
	if (!req->method || !method_valid(req->method))
		return error_set(err, "invalid method '%s'", req->method ? req->method : "");

	x = calloc(1, sizeof(*x));
	if (!x)
		goto oom;
	x->h = h;
	x->done = done;
	x->arg = arg;
	x->started_ms = timestamp_mono_ms();
	x->method = strdup(req->method);
	x->url = strdup(req->url);
	if (!x->method || !x->url)
		goto oom;

	for (const char *const *p = req->headers; p && *p; p++) {
		if (strpbrk(*p, "\r\n") || !strchr(*p, ':')) {
			error_set(err, "invalid header '%.64s': want 'Name: value' on one line",
				  *p);
			goto fail;
		}
		if (strncasecmp(*p, "Expect:", 7) == 0)
			has_expect = true;
		struct curl_slist *l = curl_slist_append(x->headers, *p);
		if (!l)
			goto oom;
		x->headers = l;
	}
	if (!has_expect) {
		/* No "Expect: 100-continue" round trip before a body. */
		struct curl_slist *l = curl_slist_append(x->headers, "Expect:");
		if (!l)
			goto oom;
		x->headers = l;
	}

	if (req->body || strcmp(req->method, "POST") == 0 || strcmp(req->method, "PUT") == 0 ||
	    strcmp(req->method, "PATCH") == 0) {
		/* Even an empty body is sent, with Content-Length: 0. */
		x->has_body = true;
		x->body_len = req->body ? req->body_len : 0;
		x->body = malloc(x->body_len + 1);
		if (!x->body)
			goto oom;
		if (x->body_len)
			memcpy(x->body, req->body, x->body_len);
		x->body[x->body_len] = '\0';
	}

	if (req->n_expect_status && req->expect_status) {
		x->expect = calloc(req->n_expect_status, sizeof(*x->expect));
		if (!x->expect)
			goto oom;
		memcpy(x->expect, req->expect_status, req->n_expect_status * sizeof(*x->expect));
		x->n_expect = req->n_expect_status;
	}

	int64_t t = req->timeout_ms > 0 ? req->timeout_ms : HTTPC_DEFAULT_TIMEOUT_MS;
	x->timeout_ms = t > LONG_MAX ? LONG_MAX : (long)t;
	x->retries = req->retries > 0 ? req->retries : 0;
	x->max_response = req->max_response ? req->max_response : HTTPC_DEFAULT_MAX_RESPONSE;
	x->backoff_base_ms =
	    req->backoff_base_ms > 0 ? req->backoff_base_ms : HTTPC_DEFAULT_BACKOFF_BASE_MS;
	x->backoff_max_ms =
	    req->backoff_max_ms > 0 ? req->backoff_max_ms : HTTPC_DEFAULT_BACKOFF_MAX_MS;
	if (x->backoff_max_ms < x->backoff_base_ms)
		x->backoff_max_ms = x->backoff_base_ms;
	buf_init(&x->resp, x->max_response);

	if (xfer_start_attempt(x) < 0) {
		error_set(err, "url '%s': cannot start the transfer", req->url);
		goto fail;
	}
	x->next = h->xfers;
	if (h->xfers)
		h->xfers->prev = x;
	h->xfers = x;
	h->n_xfers++;
	return 0;

oom:
	error_set(err, "httpc: out of memory");
fail:
	xfer_free(x);
	return -1;
}

int httpc_pending(const struct httpc *h)
{
	return h ? h->n_xfers : 0;
}
