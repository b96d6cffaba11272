/*
 * evhttp_floor: the floor of any libevent evhttp intake, for bench/intake.sh.
 *
 *   evhttp_floor PORT SECRET_FILE
 *
 * One event loop on 127.0.0.1:PORT. POST /v1/alerts: read the body, compute
 * HMAC-SHA256(secret, body), compare it in constant time with the
 * X-Hub-Signature-256 header (sha256=<hex>), answer 200 {"status":"ok"} or
 * 401 {"error":"bad signature"}. Anything else: 404. It parses nothing,
 * decides nothing and journals nothing: rollbackd's per-loop throughput is
 * measured against it. Not part of the daemon; stops on SIGTERM/SIGINT.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sodium.h>

#define BODY_MAX (1 << 20)

struct floor_ctx {
	unsigned char key[64];
	size_t key_len;
	unsigned char body[BODY_MAX];
};

static void reply(struct evhttp_request *req, int code, const char *json)
{
	struct evbuffer *out = evhttp_request_get_output_buffer(req);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "application/json");
	evbuffer_add(out, json, strlen(json));
	evhttp_send_reply(req, code, code == 200 ? "OK" : "Unauthorized", NULL);
}

/* sig is "sha256=<64 hex>" and names mac (constant-time compare). */
static int sig_matches(const char *sig, const unsigned char mac[crypto_auth_hmacsha256_BYTES])
{
	unsigned char want[crypto_auth_hmacsha256_BYTES];
	size_t len = 0;
	if (!sig || strncmp(sig, "sha256=", 7) != 0)
		return 0;
	sig += 7;
	if (sodium_hex2bin(want, sizeof(want), sig, strlen(sig), NULL, &len, NULL) != 0)
		return 0;
	return len == sizeof(want) && sodium_memcmp(want, mac, sizeof(want)) == 0;
}

static void on_alerts(struct evhttp_request *req, void *arg)
{
	struct floor_ctx *c = arg;
	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		evhttp_send_error(req, 405, NULL);
		return;
	}
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	if (len > BODY_MAX || evbuffer_remove(in, c->body, len) != (int)len) {
		evhttp_send_error(req, 413, NULL);
		return;
	}
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	crypto_auth_hmacsha256_state st;
	crypto_auth_hmacsha256_init(&st, c->key, c->key_len);
	crypto_auth_hmacsha256_update(&st, c->body, len);
	crypto_auth_hmacsha256_final(&st, mac);

	const char *sig =
	    evhttp_find_header(evhttp_request_get_input_headers(req), "X-Hub-Signature-256");
	if (!sig_matches(sig, mac)) {
		reply(req, 401, "{\"error\":\"bad signature\"}");
		return;
	}
	reply(req, 200, "{\"status\":\"ok\"}");
}

static void on_signal(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
	int rc = 1;
	struct event_base *base = NULL;
	struct evhttp *http = NULL;
	struct event *sigterm = NULL, *sigint = NULL;
	struct floor_ctx *c = NULL;
	FILE *f = NULL;

	if (argc != 3) {
		fprintf(stderr, "usage: evhttp_floor PORT SECRET_FILE\n");
		return 2;
	}
	if (sodium_init() < 0 || !(c = calloc(1, sizeof(*c))))
		goto out;
	/* The secret as bench/intake.sh writes it: one line, trailing newline cut. */
	if (!(f = fopen(argv[2], "rb"))) {
		fprintf(stderr, "evhttp_floor: cannot open '%s'\n", argv[2]);
		goto out;
	}
	c->key_len = fread(c->key, 1, sizeof(c->key), f);
	while (c->key_len && (c->key[c->key_len - 1] == '\n' || c->key[c->key_len - 1] == '\r'))
		c->key_len--;
	if (!c->key_len) {
		fprintf(stderr, "evhttp_floor: '%s' is empty\n", argv[2]);
		goto out;
	}
	signal(SIGPIPE, SIG_IGN);
	if (!(base = event_base_new()) || !(http = evhttp_new(base)))
		goto out;
	evhttp_set_max_body_size(http, BODY_MAX);
	evhttp_set_max_headers_size(http, 16384);
	evhttp_set_timeout(http, 30);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_POST | EVHTTP_REQ_GET);
	evhttp_set_cb(http, "/v1/alerts", on_alerts, c);
	if (evhttp_bind_socket(http, "127.0.0.1", (ev_uint16_t)strtoul(argv[1], NULL, 10)) != 0) {
		fprintf(stderr, "evhttp_floor: cannot listen on 127.0.0.1:%s\n", argv[1]);
		goto out;
	}
	sigterm = evsignal_new(base, SIGTERM, on_signal, base);
	sigint = evsignal_new(base, SIGINT, on_signal, base);
	if (!sigterm || !sigint || event_add(sigterm, NULL) || event_add(sigint, NULL))
		goto out;
	event_base_dispatch(base);
	rc = 0;
out:
	if (f)
		fclose(f);
	if (sigterm)
		event_free(sigterm);
	if (sigint)
		event_free(sigint);
	if (http)
		evhttp_free(http);
	if (base)
		event_base_free(base);
	if (c) {
		sodium_memzero(c->key, sizeof(c->key));
		free(c);
	}
	return rc;
}
