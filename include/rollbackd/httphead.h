/*
 * httphead: the pure checks of rollbackd's HTTP gate (see server.c): a
 * request head (size, request line, header lines, Content-Length,
 * Transfer-Encoding, Expect, method) and a chunked body.
 *
 * Never does I/O or keeps state; thread-safe.
 */
#ifndef ROLLBACKD_HTTPHEAD_H
#define ROLLBACKD_HTTPHEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

/* What the gate learned from a complete head, or why it refuses it. */
struct head_check {
	int status;		     /* 0: good; else the HTTP status of the refusal */
	const char *code;	     /* the JSON error code of the refusal */
	const char *hdr, *hdr_value; /* one extra response header, or NULL */
	char msg[200];		     /* the JSON error message (no header value in it) */
	size_t skip;		     /* empty lines before the request line */
	size_t len;		     /* the head from skip, with its empty line */
	int64_t content_length;	     /* -1: none */
	bool chunked, expect_continue, is_head, is_probe;
};

/* Check the request head at the start of p[0..n). 0: incomplete, wait for
 * more bytes; 1: complete or refused (hc->status says which; hc->len is
 * valid when complete). A head over max_header bytes is refused (431) even
 * before it is complete; a Content-Length over max_body (413). */
int httphead_parse(const char *p, size_t n, size_t max_header, size_t max_body,
		   struct head_check *hc);

/* Set hc's refusal (status, code, message); returns 1. */
__attribute__((format(printf, 4, 5))) int httphead_refuse(struct head_check *hc, int status,
							  const char *code, const char *fmt, ...);

/* The header name p[0..n) is name (case-insensitive). */
bool httphead_name_is(const char *p, size_t n, const char *name);

enum httphead_chunked_result {
	CHUNKED_MORE = 0,
	CHUNKED_DONE = 1,
	CHUNKED_BAD = -1,
	CHUNKED_BIG = -2,
};

/* Decode the chunked body in p[0..n). DONE sets *used (bytes of the body
 * with its last chunk and trailers, which are dropped) and *size (decoded);
 * out, when not NULL, gets the decoded bytes appended. BIG as soon as a
 * chunk size would take the body over limit, before its data arrived. */
enum httphead_chunked_result httphead_chunked(const unsigned char *p, size_t n, size_t limit,
					      struct evbuffer *out, size_t *used, size_t *size);

#endif
