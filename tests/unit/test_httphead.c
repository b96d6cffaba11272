/*
 * Unit tests for the HTTP gate's pure checks: httphead_parse and
 * httphead_chunked.
 */
#include <criterion/criterion.h>

#include <string.h>

#include <event2/buffer.h>

#include "rollbackd/httphead.h"

static int parse(const char *head, struct head_check *hc)
{
	return httphead_parse(head, strlen(head), 256, 1000, hc);
}

Test(httphead, head_incomplete_then_complete)
{
	struct head_check hc;
	cr_assert_eq(parse("GET /healthz HTTP/1.1\r\nHost: x\r\n", &hc), 0);
	cr_assert_eq(parse("\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\nrest", &hc), 1);
	cr_assert_eq(hc.status, 0);
	cr_assert_eq(hc.skip, 2);
	cr_assert_eq(hc.len, strlen("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
	cr_assert(hc.is_probe);
	cr_assert_eq(hc.content_length, -1);
	cr_assert_eq(parse("GET /metrics?x=1 HTTP/1.0\n\n", &hc), 1);
	cr_assert(hc.is_probe && hc.status == 0);
	cr_assert_eq(parse("GET /metricsx HTTP/1.1\r\n\r\n", &hc), 1);
	cr_assert(!hc.is_probe);
}

Test(httphead, head_refusals)
{
	static const struct {
		const char *head;
		int status;
		const char *msg;
	} cases[] = {
	    {"HELLO\r\n\r\n", 400, "malformed request line (expected 'METHOD /path HTTP/1.1')"},
	    {"GET / HTTP/2.0\r\n\r\n", 400,
	     "malformed request line (expected 'METHOD /path HTTP/1.1')"},
	    {"PUT / HTTP/1.1\r\n\r\n", 405,
	     "method not allowed; rollbackd accepts GET, HEAD and POST"},
	    {"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400,
	     "conflicting Content-Length headers"},
	    {"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400, "invalid Content-Length"},
	    {"POST / HTTP/1.1\r\nContent-Length: 1001\r\n\r\n", 413,
	     "request too large: body over limits.max_body_bytes (1000 bytes)"},
	    {"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
	     "both Content-Length and Transfer-Encoding"},
	    {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400,
	     "unsupported Transfer-Encoding (only one 'chunked' is accepted)"},
	    {"POST / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n", 417,
	     "Expect: only 100-continue is supported"},
	    {"GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400,
	     "malformed header line (expected 'Name: value')"},
	    {"GET / HTTP/1.1\r\nA: b\r\n  folded\r\n\r\n", 400,
	     "malformed header: folded header lines are not accepted"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct head_check hc;
		cr_assert_eq(parse(cases[i].head, &hc), 1, "%s", cases[i].head);
		cr_assert_eq(hc.status, cases[i].status, "%s", cases[i].head);
		cr_assert_str_eq(hc.msg, cases[i].msg);
	}
}

Test(httphead, head_nul_and_size)
{
	struct head_check hc;
	static const char auth[] = "GET / HTTP/1.1\r\nAuthorization: Bearer a\0b\r\n\r\n";
	cr_assert_eq(httphead_parse(auth, sizeof(auth) - 1, 256, 1000, &hc), 1);
	cr_assert_eq(hc.status, 401);
	cr_assert_str_eq(hc.hdr, "WWW-Authenticate");
	static const char other[] = "GET / HTTP/1.1\r\nX-A: a\0b\r\n\r\n";
	cr_assert_eq(httphead_parse(other, sizeof(other) - 1, 256, 1000, &hc), 1);
	cr_assert_eq(hc.status, 400);
	cr_assert_str_eq(hc.msg, "header 'X-A' holds a NUL or CR byte");
	char big[400];
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
	cr_assert_eq(httphead_parse(big, sizeof(big), 256, 1000, &hc), 1, "unfinished and too big");
	cr_assert_eq(hc.status, 431);
	cr_assert_str_eq(hc.msg, "request headers over limits.max_header_bytes (256 bytes)");
}

Test(httphead, chunked)
{
	size_t used = 0, size = 0;
	static const char body[] = "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\nNEXT";
	struct evbuffer *out = evbuffer_new();
	cr_assert_eq(httphead_chunked((const unsigned char *)body, sizeof(body) - 1, 1000, out,
				      &used, &size),
		     CHUNKED_DONE);
	cr_assert_eq(size, 11);
	cr_assert_eq(used, sizeof(body) - 1 - 4);
	cr_assert_eq(evbuffer_get_length(out), 11);
	cr_assert_eq(memcmp(evbuffer_pullup(out, -1), "hello world", 11), 0);
	evbuffer_free(out);
	for (size_t n = 0; n < sizeof(body) - 1 - 4; n++)
		cr_assert_eq(
		    httphead_chunked((const unsigned char *)body, n, 1000, NULL, &used, &size),
		    CHUNKED_MORE, "prefix of %zu bytes", n);
	cr_assert_eq(
	    httphead_chunked((const unsigned char *)"3e9\r\nab", 7, 1000, NULL, &used, &size),
	    CHUNKED_BIG, "a chunk size over the limit is refused before its data");
	cr_assert_eq(httphead_chunked((const unsigned char *)"zz\r\n", 4, 1000, NULL, &used, &size),
		     CHUNKED_BAD);
	cr_assert_eq(
	    httphead_chunked((const unsigned char *)"2\r\nabX", 6, 1000, NULL, &used, &size),
	    CHUNKED_BAD, "data not followed by CRLF");
}
