/*
 * httpc against a scripted evhttp server on 127.0.0.1:0 in the same
 * event_base. Each test runs its own base with a safety timer, so a bug
 * cannot hang the suite.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "rollbackd/httpc.h"

/* ---- scripted server ---------------------------------------------------- */

struct step {
	int status;
	const char *hname, *hvalue; /* one optional response header */
	const char *body;
	size_t repeat;	       /* body repeated this many times (0 = once) */
	int delay_ms;	       /* reply later, from a timer */
	bool retry_after_date; /* Retry-After: an HTTP date 2 s from now */
};

struct seen {
	char method[16];
	char uri[256];
	char x_test[128];
	char ctype[128];
	char expect[64];
	char body[512];
	size_t body_len;
	int64_t at_ms;
};

struct delayed {
	struct evhttp_request *req;
	const struct step *st;
	struct event *ev;
	struct delayed *next;
};

struct got {
	bool ok;
	int status;
	char error[CURL_ERROR_SIZE + 64];
	bool has_error;
	char body[2048];
	size_t body_len;
	size_t body_strlen;
	int attempts;
	int64_t duration_ms;
};

static struct event_base *base;
static struct evhttp *server;
static int port;
static struct httpc *hc;
static struct event *safety;
static bool timed_out;

static const struct step *script;
static size_t n_script;
static struct seen seen[16];
static int n_seen;
static struct delayed *delayed;

static struct got got[8];
static int n_done;
static int want_done = 1;

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void copy_str(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src ? src : "");
}

static const char *method_name(enum evhttp_cmd_type c)
{
	switch (c) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_HEAD:
		return "HEAD";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	case EVHTTP_REQ_PATCH:
		return "PATCH";
	default:
		return "?";
	}
}

static void reply(struct evhttp_request *req, const struct step *st)
{
	struct evbuffer *out = evbuffer_new();
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	if (st->hname)
		evhttp_add_header(h, st->hname, st->hvalue);
	if (st->retry_after_date) {
		char date[64];
		time_t t = time(NULL) + 2;
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
		evhttp_add_header(h, "Retry-After", date);
	}
	if (st->body) {
		size_t n = st->repeat ? st->repeat : 1;
		for (size_t i = 0; i < n; i++)
			evbuffer_add(out, st->body, strlen(st->body));
	}
	evhttp_send_reply(req, st->status, "Scripted", out);
	evbuffer_free(out);
}

static void delayed_cb(evutil_socket_t fd, short what, void *arg)
{
	struct delayed *d = arg;
	for (struct delayed **p = &delayed; *p; p = &(*p)->next) {
		if (*p == d) {
			*p = d->next;
			break;
		}
	}
	reply(d->req, d->st);
	event_free(d->ev);
	free(d);
}

static void handler(struct evhttp_request *req, void *arg)
{
	struct seen *s = &seen[n_seen < 16 ? n_seen : 15];
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct evbuffer *body = evhttp_request_get_input_buffer(req);

	memset(s, 0, sizeof(*s));
	copy_str(s->method, sizeof(s->method), method_name(evhttp_request_get_command(req)));
	copy_str(s->uri, sizeof(s->uri), evhttp_request_get_uri(req));
	copy_str(s->x_test, sizeof(s->x_test), evhttp_find_header(in, "X-Test"));
	copy_str(s->ctype, sizeof(s->ctype), evhttp_find_header(in, "Content-Type"));
	copy_str(s->expect, sizeof(s->expect), evhttp_find_header(in, "Expect"));
	s->body_len = evbuffer_get_length(body);
	evbuffer_copyout(body, s->body, sizeof(s->body) - 1);
	s->at_ms = mono_ms();

	/* "/slow" always answers 200 after 3 s, whatever the script says. */
	static const struct step slow = {.status = 200, .delay_ms = 3000};
	const struct step *st = &script[(size_t)n_seen < n_script ? (size_t)n_seen : n_script - 1];
	if (strcmp(s->uri, "/slow") == 0)
		st = &slow;
	n_seen++;
	if (st->delay_ms > 0) {
		struct delayed *d = calloc(1, sizeof(*d));
		d->req = req;
		d->st = st;
		d->ev = evtimer_new(base, delayed_cb, d);
		struct timeval tv = {st->delay_ms / 1000, (st->delay_ms % 1000) * 1000};
		evtimer_add(d->ev, &tv);
		d->next = delayed;
		delayed = d;
		return;
	}
	reply(req, st);
}

static void set_script(const struct step *s, size_t n)
{
	script = s;
	n_script = n;
}

#define SCRIPT(...)                                                                                \
	do {                                                                                       \
		static const struct step steps_[] = {__VA_ARGS__};                                 \
		set_script(steps_, sizeof(steps_) / sizeof(steps_[0]));                            \
	} while (0)

/* ---- client side ---------------------------------------------------------- */

static void done_cb(const struct httpc_result *res, void *arg)
{
	cr_assert_lt(n_done, 8);
	struct got *g = &got[n_done++];
	g->ok = res->ok;
	g->status = res->status;
	g->has_error = res->error != NULL;
	copy_str(g->error, sizeof(g->error), res->error);
	cr_assert_not_null(res->body);
	cr_assert_eq(res->body[res->body_len], '\0');
	g->body_len = res->body_len;
	g->body_strlen = strlen(res->body);
	copy_str(g->body, sizeof(g->body), res->body);
	g->attempts = res->attempts;
	g->duration_ms = res->duration_ms;
	if (n_done >= want_done)
		event_base_loopbreak(base);
}

static void safety_cb(evutil_socket_t fd, short what, void *arg)
{
	timed_out = true;
	event_base_loopbreak(base);
}

static void run(void)
{
	event_base_dispatch(base);
	cr_assert_not(timed_out, "safety timer fired: the test hung");
}

static char url_buf[256];

static const char *url(const char *path)
{
	snprintf(url_buf, sizeof(url_buf), "http://127.0.0.1:%d%s", port, path);
	return url_buf;
}

static struct httpc_request base_req(const char *u)
{
	struct httpc_request r = {
	    .method = "GET",
	    .url = u,
	    .timeout_ms = 5000,
	    .retries = 0,
	    .max_response = 65536,
	    .backoff_base_ms = 10,
	    .backoff_max_ms = 100,
	};
	return r;
}

static void send_ok(const struct httpc_request *r)
{
	struct error err = {{0}};
	cr_assert_eq(httpc_send(hc, r, done_cb, NULL, &err), 0, "httpc_send: %s", err.msg);
}

static void setup(void)
{
	cr_assert_eq(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
	static const char *proxies[] = {"http_proxy", "https_proxy", "HTTPS_PROXY",
					"ALL_PROXY",  "all_proxy",   NULL};
	for (const char **p = proxies; *p; p++)
		unsetenv(*p);

	base = event_base_new();
	cr_assert_not_null(base);
	server = evhttp_new(base);
	evhttp_set_allowed_methods(server, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
					       EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
					       EVHTTP_REQ_PATCH);
	evhttp_set_gencb(server, handler, NULL);
	struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(server, "127.0.0.1", 0);
	cr_assert_not_null(bs);
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	cr_assert_eq(getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sin, &len), 0);
	port = ntohs(sin.sin_port);

	safety = evtimer_new(base, safety_cb, NULL);
	struct timeval tv = {15, 0};
	evtimer_add(safety, &tv);

	hc = httpc_new(base);
	cr_assert_not_null(hc);
	n_seen = 0;
	n_done = 0;
	want_done = 1;
	timed_out = false;
}

static void teardown(void)
{
	httpc_free(hc);
	hc = NULL;
	while (delayed) {
		struct delayed *d = delayed;
		delayed = d->next;
		reply(d->req, d->st); /* evhttp frees the request either way */
		event_free(d->ev);
		free(d);
	}
	evhttp_free(server);
	event_free(safety);
	event_base_free(base);
	curl_global_cleanup();
}

TestSuite(httpc, .init = setup, .fini = teardown, .timeout = 30);

/* ---- tests ----------------------------------------------------------------- */

Test(httpc, patch_with_headers_and_json_body)
{
	SCRIPT({.status = 200, .hname = "X-Reply", .hvalue = "yes", .body = "hello"});
	char u[256], hdr[64], body[64];
	const char *headers[] = {hdr, "Content-Type: application/json", NULL};
	snprintf(u, sizeof(u), "%s", url("/api/flags/checkout-v2?x=1"));
	snprintf(hdr, sizeof(hdr), "X-Test: abc");
	snprintf(body, sizeof(body), "{\"enabled\":false}");
	struct httpc_request r = base_req(u);
	r.method = "PATCH";
	r.headers = headers;
	r.body = body;
	r.body_len = strlen(body);
	send_ok(&r);
	cr_assert_eq(httpc_pending(hc), 1);
	/* The request must have been copied. */
	memset(u, 'z', sizeof(u) - 1);
	memset(hdr, 'z', sizeof(hdr) - 1);
	memset(body, 'z', sizeof(body) - 1);
	run();

	cr_assert_eq(n_seen, 1);
	cr_assert_str_eq(seen[0].method, "PATCH");
	cr_assert_str_eq(seen[0].uri, "/api/flags/checkout-v2?x=1");
	cr_assert_str_eq(seen[0].x_test, "abc");
	cr_assert_str_eq(seen[0].ctype, "application/json");
	cr_assert_str_eq(seen[0].body, "{\"enabled\":false}");
	cr_assert_str_eq(seen[0].expect, "");

	cr_assert_eq(n_done, 1);
	cr_assert(got[0].ok);
	cr_assert_eq(got[0].status, 200);
	cr_assert_not(got[0].has_error);
	cr_assert_str_eq(got[0].body, "hello");
	cr_assert_eq(got[0].body_len, 5);
	cr_assert_eq(got[0].attempts, 1);
	cr_assert_geq(got[0].duration_ms, 0);
	cr_assert_eq(httpc_pending(hc), 0);
}

Test(httpc, post_without_body_sends_empty_body)
{
	SCRIPT({.status = 201});
	struct httpc_request r = base_req(url("/p"));
	r.method = "POST";
	send_ok(&r);
	run();
	cr_assert_str_eq(seen[0].method, "POST");
	cr_assert_eq(seen[0].body_len, 0);
	cr_assert(got[0].ok);
	cr_assert_eq(got[0].status, 201);
}

Test(httpc, unexpected_2xx_is_final)
{
	SCRIPT({.status = 200, .body = "fine"});
	static const int expect[] = {204};
	struct httpc_request r = base_req(url("/"));
	r.expect_status = expect;
	r.n_expect_status = 1;
	r.retries = 3;
	send_ok(&r);
	run();
	cr_assert_eq(n_seen, 1);
	cr_assert_not(got[0].ok);
	cr_assert_eq(got[0].status, 200);
	cr_assert_not(got[0].has_error);
	cr_assert_eq(got[0].attempts, 1);
}

Test(httpc, retries_5xx_until_success)
{
	SCRIPT({.status = 500}, {.status = 503}, {.status = 204});
	static const int expect[] = {200, 204};
	struct httpc_request r = base_req(url("/"));
	r.expect_status = expect;
	r.n_expect_status = 2;
	r.retries = 3;
	send_ok(&r);
	run();
	cr_assert_eq(n_seen, 3);
	cr_assert(got[0].ok);
	cr_assert_eq(got[0].status, 204);
	cr_assert_eq(got[0].attempts, 3);
}

Test(httpc, retries_exhausted_reports_last_status)
{
	SCRIPT({.status = 502, .body = "bad gateway"});
	struct httpc_request r = base_req(url("/"));
	r.retries = 2;
	send_ok(&r);
	run();
	cr_assert_eq(n_seen, 3);
	cr_assert_not(got[0].ok);
	cr_assert_eq(got[0].status, 502);
	cr_assert_str_eq(got[0].body, "bad gateway");
	cr_assert_eq(got[0].attempts, 3);
}

Test(httpc, not_found_is_final)
{
	SCRIPT({.status = 404});
	struct httpc_request r = base_req(url("/missing"));
	r.retries = 3;
	send_ok(&r);
	run();
	cr_assert_eq(n_seen, 1);
	cr_assert_not(got[0].ok);
	cr_assert_eq(got[0].status, 404);
	cr_assert_eq(got[0].attempts, 1);
}

Test(httpc, redirect_is_not_followed)
{
	SCRIPT({.status = 302, .hname = "Location", .hvalue = "/elsewhere"});
	struct httpc_request r = base_req(url("/"));
	r.retries = 3;
	send_ok(&r);
	run();
	cr_assert_eq(n_seen, 1);
	cr_assert_not(got[0].ok);
	cr_assert_eq(got[0].status, 302);
	cr_assert_eq(got[0].attempts, 1);
}

Test(httpc, backoff_grows_with_jitter)
{
	SCRIPT({.status = 500}, {.status = 500}, {.status = 200});
	struct httpc_request r = base_req(url("/"));
	r.retries = 2;
	r.backoff_base_ms = 100;
	r.backoff_max_ms = 1000;
	send_ok(&r);
	run();
	cr_assert_eq(n_seen, 3);
	cr_assert(got[0].ok);
	int64_t gap1 = seen[1].at_ms - seen[0].at_ms;
	int64_t gap2 = seen[2].at_ms - seen[1].at_ms;
	/* [50, 100] then [100, 200], plus scheduling slack */
	cr_assert_geq(gap1, 50, "gap1 %lld", (long long)gap1);
	cr_assert_lt(gap1, 600, "gap1 %lld", (long long)gap1);
	cr_assert_geq(gap2, 100, "gap2 %lld", (long long)gap2);
	cr_assert_lt(gap2, 700, "gap2 %lld", (long long)gap2);
}

Test(httpc, retry_after_seconds_is_honoured)
{
	SCRIPT({.status = 429, .hname = "Retry-After", .hvalue = "1"}, {.status = 200});
	struct httpc_request r = base_req(url("/"));
	r.retries = 1;
	send_ok(&r);
	run();
	cr_assert_eq(n_seen, 2);
	cr_assert(got[0].ok);
	cr_assert_eq(got[0].attempts, 2);
	int64_t gap = seen[1].at_ms - seen[0].at_ms;
	cr_assert_geq(gap, 1000, "second attempt after %lld ms", (long long)gap);
	cr_assert_geq(got[0].duration_ms, 1000);
}

Test(httpc, retry_after_http_date_is_honoured)
{
	SCRIPT({.status = 503, .retry_after_date = true}, {.status = 200});
	struct httpc_request r = base_req(url("/"));
	r.retries = 1;
	send_ok(&r);
	run();
	cr_assert_eq(n_seen, 2);
	cr_assert(got[0].ok);
	int64_t gap = seen[1].at_ms - seen[0].at_ms;
	/* now + 2 s at one-second resolution: more than one second away */
	cr_assert_geq(gap, 900, "second attempt after %lld ms", (long long)gap);
	cr_assert_lt(gap, 3500, "second attempt after %lld ms", (long long)gap);
}

Test(httpc, connection_refused_is_retried_then_reported)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET};
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	socklen_t len = sizeof(sin);
	getsockname(fd, (struct sockaddr *)&sin, &len);
	close(fd); /* nobody listens there now */

	char u[64];
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/", ntohs(sin.sin_port));
	SCRIPT({.status = 200});
	struct httpc_request r = base_req(u);
	r.retries = 2;
	send_ok(&r);
	run();
	cr_assert_not(got[0].ok);
	cr_assert_eq(got[0].status, 0);
	cr_assert(got[0].has_error);
	cr_assert(strstr(got[0].error, "onnect") != NULL, "error: %s", got[0].error);
	cr_assert_eq(got[0].attempts, 3);
}

Test(httpc, per_attempt_timeout)
{
	SCRIPT({.status = 200, .delay_ms = 2000});
	struct httpc_request r = base_req(url("/slow"));
	r.timeout_ms = 200;
	send_ok(&r);
	run();
	cr_assert_eq(n_seen, 1);
	cr_assert_not(got[0].ok);
	cr_assert_eq(got[0].status, 0);
	cr_assert(got[0].has_error);
	cr_assert(strstr(got[0].error, "imed out") != NULL, "error: %s", got[0].error);
	cr_assert_lt(got[0].duration_ms, 1500);
}

Test(httpc, response_body_is_capped)
{
	SCRIPT({.status = 200, .body = "0123456789", .repeat = 1000});
	struct httpc_request r = base_req(url("/big"));
	r.max_response = 100;
	send_ok(&r);
	run();
	cr_assert(got[0].ok);
	cr_assert_eq(got[0].status, 200);
	cr_assert_eq(got[0].body_len, 100);
	cr_assert_eq(got[0].body_strlen, 100);
	cr_assert_eq(strncmp(got[0].body, "0123456789", 10), 0);
}

Test(httpc, other_schemes_are_refused)
{
	static const char *bad[] = {"ftp://x", "file:///etc/passwd", "gopher://x/", "x", ""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct error err = {{0}};
		struct httpc_request r = base_req(bad[i]);
		cr_assert_eq(httpc_send(hc, &r, done_cb, NULL, &err), -1, "%s", bad[i]);
		cr_assert(strstr(err.msg, "http") != NULL, "%s", err.msg);
	}
	cr_assert_eq(httpc_pending(hc), 0);
	cr_assert_eq(n_done, 0);
}

Test(httpc, header_injection_is_refused)
{
	const char *headers[] = {"X-Test: a\r\nX-Evil: b", NULL};
	struct error err = {{0}};
	struct httpc_request r = base_req(url("/"));
	r.headers = headers;
	cr_assert_eq(httpc_send(hc, &r, done_cb, NULL, &err), -1);
	cr_assert(strstr(err.msg, "header") != NULL, "%s", err.msg);
	cr_assert_eq(httpc_pending(hc), 0);
}

static void free_client_cb(evutil_socket_t fd, short what, void *arg)
{
	httpc_free(hc);
	hc = NULL;
}

Test(httpc, free_cancels_in_flight_and_waiting)
{
	/* /slow answers late; /fail fails and then waits a long backoff */
	SCRIPT({.status = 500});
	struct httpc_request r = base_req(url("/slow"));
	send_ok(&r);
	struct httpc_request r2 = base_req(url("/fail"));
	r2.retries = 3;
	r2.backoff_base_ms = 5000;
	r2.backoff_max_ms = 5000;
	send_ok(&r2);
	cr_assert_eq(httpc_pending(hc), 2);
	want_done = 2;

	struct event *ev = evtimer_new(base, free_client_cb, NULL);
	struct timeval tv = {0, 300 * 1000};
	evtimer_add(ev, &tv);
	run();
	event_free(ev);

	cr_assert_eq(n_seen, 2);
	cr_assert_eq(n_done, 2);
	for (int i = 0; i < 2; i++) {
		cr_assert_not(got[i].ok);
		cr_assert_eq(got[i].status, 0);
		cr_assert_str_eq(got[i].error, "cancelled");
		cr_assert_eq(got[i].attempts, 1);
	}
}

static void free_in_callback_cb(const struct httpc_result *res, void *arg)
{
	done_cb(res, arg);
	httpc_free(hc);
	hc = NULL;
}

Test(httpc, free_inside_done_callback)
{
	SCRIPT({.status = 200});
	struct error err = {{0}};
	struct httpc_request r = base_req(url("/slow"));
	cr_assert_eq(httpc_send(hc, &r, done_cb, NULL, &err), 0);
	struct httpc_request r2 = base_req(url("/fast"));
	cr_assert_eq(httpc_send(hc, &r2, free_in_callback_cb, NULL, &err), 0);
	want_done = 2;
	run();
	cr_assert_null(hc);
	cr_assert_eq(n_done, 2);
	cr_assert(got[0].ok);
	cr_assert_eq(got[0].status, 200);
	cr_assert_not(got[1].ok);
	cr_assert_str_eq(got[1].error, "cancelled");
}

static void send_in_callback_cb(const struct httpc_result *res, void *arg)
{
	struct error err = {{0}};
	done_cb(res, arg);
	if (n_done == 1) {
		struct httpc_request r = base_req(url("/again"));
		cr_assert_eq(httpc_send(hc, &r, done_cb, NULL, &err), 0, "%s", err.msg);
	}
}

Test(httpc, send_inside_done_callback)
{
	SCRIPT({.status = 200});
	struct error err = {{0}};
	struct httpc_request r = base_req(url("/first"));
	cr_assert_eq(httpc_send(hc, &r, send_in_callback_cb, NULL, &err), 0);
	want_done = 2;
	run();
	cr_assert_eq(n_done, 2);
	cr_assert_eq(n_seen, 2);
	cr_assert_str_eq(seen[1].uri, "/again");
	cr_assert(got[1].ok);
}

Test(httpc, many_concurrent_requests)
{
	SCRIPT({.status = 200, .body = "ok"});
	want_done = 8;
	for (int i = 0; i < 8; i++) {
		struct httpc_request r = base_req(url("/c"));
		send_ok(&r);
	}
	cr_assert_eq(httpc_pending(hc), 8);
	run();
	cr_assert_eq(n_done, 8);
	for (int i = 0; i < 8; i++) {
		cr_assert(got[i].ok);
		cr_assert_str_eq(got[i].body, "ok");
	}
	cr_assert_eq(httpc_pending(hc), 0);
}
