/*
 * smtpc: SMTP deliveries on libcurl's multi interface and libevent (see
 * smtpc.h). The glue is hiperfifo's, as in httpc: curl says which sockets
 * to watch and when to wake it, libevent calls curl_multi_socket_action,
 * finished transfers come from curl_multi_info_read. Must never block the
 * loop (no curl_easy_perform) nor report a transfer twice.
 */
#include "rollbackd/smtpc.h"

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

#include "rollbackd/timestamp.h"

/* Loaded on first use (httpc.c says why); never dlclosed. */
static struct {
	CURLcode (*global_init)(long);
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
	void (*easy_cleanup)(CURL *);
	const char *(*easy_strerror)(CURLcode);
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
} sc;

static pthread_once_t sc_once = PTHREAD_ONCE_INIT;
static int sc_loaded; /* 1 loaded, -1 failed */

static void sc_load(void)
{
	void *lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		sc_loaded = -1;
		return;
	}
#define LOAD(field, name)                                                                          \
	if (!(*(void **)&sc.field = dlsym(lib, name))) {                                           \
		sc_loaded = -1;                                                                    \
		return;                                                                            \
	}
	LOAD(global_init, "curl_global_init");
	LOAD(easy_init, "curl_easy_init");
	LOAD(easy_setopt, "curl_easy_setopt");
	LOAD(easy_getinfo, "curl_easy_getinfo");
	LOAD(easy_cleanup, "curl_easy_cleanup");
	LOAD(easy_strerror, "curl_easy_strerror");
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
	/* Reference-counted by libcurl: httpc's call and ours both count. */
	sc_loaded = sc.global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 1 : -1;
}

#define SMTPC_TIMEOUT_MS 30000

struct sock {
	struct smtpc *c;
	curl_socket_t fd;
	struct event *ev;
	struct sock *prev, *next;
};

struct xfer {
	struct smtpc *c;
	struct xfer *prev, *next;
	CURL *easy;
	struct curl_slist *rcpt;
	char *data; /* the message */
	size_t len, at;
	char *password; /* wiped on free */
	httpc_done_fn done;
	void *arg;
	int64_t started_ms;
	char errbuf[CURL_ERROR_SIZE];
};

struct smtpc {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	int running;
	struct xfer *xfers;
	struct sock *socks;
};

static void xfer_free(struct xfer *x)
{
	if (!x)
		return;
	if (x->easy) {
		sc.multi_remove_handle(x->c->multi, x->easy);
		sc.easy_cleanup(x->easy);
	}
	sc.slist_free_all(x->rcpt);
	if (x->password) {
		sodium_memzero(x->password, strlen(x->password));
		free(x->password);
	}
	free(x->data);
	free(x);
}

static void xfer_finish(struct xfer *x, CURLcode result)
{
	struct smtpc *c = x->c;
	long code = 0;
	char error[CURL_ERROR_SIZE + 32];

	if (x->easy)
		sc.easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
	snprintf(error, sizeof(error), "%s",
		 result == CURLE_ABORTED_BY_CALLBACK ? "cancelled"
		 : x->errbuf[0]			     ? x->errbuf
						     : sc.easy_strerror(result));
	struct httpc_result res = {
	    .ok = result == CURLE_OK,
	    .status = (int)code,
	    .error = result == CURLE_OK ? NULL : error,
	    .body = "",
	    .attempts = 1,
	    .duration_ms = timestamp_mono_ms() - x->started_ms,
	};
	if (x->prev)
		x->prev->next = x->next;
	else
		c->xfers = x->next;
	if (x->next)
		x->next->prev = x->prev;
	x->done(&res, x->arg);
	xfer_free(x);
}

static size_t read_cb(char *ptr, size_t size, size_t nmemb, void *userp)
{
	struct xfer *x = userp;
	size_t room = size * nmemb, left = x->len - x->at;
	size_t n = left < room ? left : room;
	memcpy(ptr, x->data + x->at, n);
	x->at += n;
	return n;
}

static void check_done(struct smtpc *c)
{
	CURLMsg *msg;
	int left;

	while ((msg = sc.multi_info_read(c->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		char *priv = NULL;
		CURLcode result = msg->data.result;
		sc.easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
		if (priv)
			xfer_finish((struct xfer *)(void *)priv, result);
	}
}

static void event_cb(evutil_socket_t fd, short kind, void *arg)
{
	struct smtpc *c = arg;
	int action =
	    ((kind & EV_READ) ? CURL_CSELECT_IN : 0) | ((kind & EV_WRITE) ? CURL_CSELECT_OUT : 0);
	sc.multi_socket_action(c->multi, fd, action, &c->running);
	check_done(c);
}

static void timer_cb(evutil_socket_t fd, short kind, void *arg)
{
	struct smtpc *c = arg;
	sc.multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &c->running);
	check_done(c);
}

static int multi_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct smtpc *c = userp;
	if (timeout_ms < 0) {
		evtimer_del(c->timer);
		return 0;
	}
	struct timeval tv = timestamp_tv(timeout_ms);
	return evtimer_add(c->timer, &tv) < 0 ? -1 : 0;
}

static void sock_free(struct sock *s)
{
	struct smtpc *c = s->c;
	if (s->prev)
		s->prev->next = s->next;
	else
		c->socks = s->next;
	if (s->next)
		s->next->prev = s->prev;
	if (s->ev)
		event_free(s->ev);
	free(s);
}

static int sock_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *sockp)
{
	struct smtpc *c = userp;
	struct sock *s = sockp;

	if (what == CURL_POLL_REMOVE) {
		if (s)
			sock_free(s);
		sc.multi_assign(c->multi, fd, NULL);
		return 0;
	}
	if (!s) {
		if (!(s = calloc(1, sizeof(*s))))
			return -1;
		s->c = c;
		s->fd = fd;
		s->next = c->socks;
		if (c->socks)
			c->socks->prev = s;
		c->socks = s;
		sc.multi_assign(c->multi, fd, s);
	}
	short kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) |
			     ((what & CURL_POLL_OUT) ? EV_WRITE : 0) | EV_PERSIST);
	if (s->ev)
		event_free(s->ev);
	s->ev = event_new(c->base, fd, kind, event_cb, c);
	return !s->ev || event_add(s->ev, NULL) < 0 ? -1 : 0;
}

struct smtpc *smtpc_new(struct event_base *base)
{
	struct smtpc *c;

	if (!base || sodium_init() < 0)
		return NULL;
	pthread_once(&sc_once, sc_load);
	if (sc_loaded != 1 || !(c = calloc(1, sizeof(*c))))
		return NULL;
	c->base = base;
	c->multi = sc.multi_init();
	c->timer = evtimer_new(base, timer_cb, c);
	if (!c->multi || !c->timer ||
	    sc.multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, sock_cb) != CURLM_OK ||
	    sc.multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c) != CURLM_OK ||
	    sc.multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, multi_timer_cb) != CURLM_OK ||
	    sc.multi_setopt(c->multi, CURLMOPT_TIMERDATA, c) != CURLM_OK) {
		smtpc_free(c);
		return NULL;
	}
	return c;
}

void smtpc_free(struct smtpc *c)
{
	if (!c)
		return;
	while (c->xfers)
		xfer_finish(c->xfers, CURLE_ABORTED_BY_CALLBACK);
	if (c->multi)
		sc.multi_cleanup(c->multi);
	while (c->socks)
		sock_free(c->socks);
	if (c->timer)
		event_free(c->timer);
	free(c);
}

static bool scheme_ok(const char *url)
{
	return url && (strncasecmp(url, "smtp://", 7) == 0 || strncasecmp(url, "smtps://", 8) == 0);
}

int smtpc_send(struct smtpc *c, const struct smtpc_message *m, httpc_done_fn done, void *arg,
	       struct error *err)
{
	struct xfer *x = NULL;
	char addr[300];
	CURLcode rc = CURLE_OK;

	if (!c || !m || !done || !scheme_ok(m->url) || !m->from || m->n_to == 0 || !m->data)
		return error_set(err,
				 "smtpc: missing client, smtp(s) URL, sender, recipient or data");
	if (!(x = calloc(1, sizeof(*x))) || !(x->data = malloc(m->len + 1)))
		goto oom;
	x->c = c;
	x->done = done;
	x->arg = arg;
	x->started_ms = timestamp_mono_ms();
	memcpy(x->data, m->data, m->len);
	x->len = m->len;
	for (size_t i = 0; i < m->n_to; i++) {
		snprintf(addr, sizeof(addr), "<%s>", m->to[i]);
		struct curl_slist *l = sc.slist_append(x->rcpt, addr);
		if (!l)
			goto oom;
		x->rcpt = l;
	}
	if (m->password && secret_is_set(m->password) &&
	    !(x->password = strdup((const char *)m->password->data)))
		goto oom;
	if (!(x->easy = sc.easy_init()))
		goto oom;
	snprintf(addr, sizeof(addr), "<%s>", m->from);
#define SET(opt, val)                                                                              \
	do {                                                                                       \
		if (rc == CURLE_OK)                                                                \
			rc = sc.easy_setopt(x->easy, opt, val);                                    \
	} while (0)
	SET(CURLOPT_URL, m->url);
	SET(CURLOPT_PROTOCOLS_STR, "smtp,smtps");
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_TIMEOUT_MS, (long)(m->timeout_ms > 0 ? m->timeout_ms : SMTPC_TIMEOUT_MS));
	SET(CURLOPT_ERRORBUFFER, x->errbuf);
	SET(CURLOPT_PRIVATE, x);
	SET(CURLOPT_MAIL_FROM, addr);
	SET(CURLOPT_MAIL_RCPT, x->rcpt);
	SET(CURLOPT_UPLOAD, 1L);
	SET(CURLOPT_READFUNCTION, read_cb);
	SET(CURLOPT_READDATA, x);
	SET(CURLOPT_INFILESIZE_LARGE, (curl_off_t)x->len);
	if (m->starttls)
		SET(CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
	if (m->ca_file)
		SET(CURLOPT_CAINFO, m->ca_file);
	if (m->username)
		SET(CURLOPT_USERNAME, m->username);
	if (x->password)
		SET(CURLOPT_PASSWORD, x->password);
#undef SET
	if (rc != CURLE_OK || sc.multi_add_handle(c->multi, x->easy) != CURLM_OK) {
		sc.easy_cleanup(x->easy);
		x->easy = NULL;
		xfer_free(x);
		return error_set(err, "smtpc: cannot set up the transfer");
	}
	x->next = c->xfers;
	if (c->xfers)
		c->xfers->prev = x;
	c->xfers = x;
	return 0;
oom:
	xfer_free(x);
	return error_set(err, "smtpc: out of memory");
}
