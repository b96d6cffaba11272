/*
 * httphead: the pure checks of rollbackd's HTTP gate (server.c) - an
 * HTTP/1.x request head and a chunked body, over plain buffers.
 *
 * No I/O, no allocation beyond what an evbuffer output takes, no state:
 * unit-tested and fuzzable without a server. Messages never quote a header
 * value (only a header name, truncated).
 */
#include "rollbackd/httphead.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

int httphead_refuse(struct head_check *hc, int status, const char *code, const char *fmt, ...)
{
	va_list ap;
	hc->status = status;
	hc->code = code;
	va_start(ap, fmt);
	vsnprintf(hc->msg, sizeof(hc->msg), fmt, ap);
	va_end(ap);
	return 1;
}

static bool is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

bool httphead_name_is(const char *p, size_t n, const char *name)
{
	return strlen(name) == n && strncasecmp(p, name, n) == 0;
}

static bool value_is(const char *p, size_t n, const char *want)
{
	return strlen(want) == n && strncasecmp(p, want, n) == 0;
}

static bool is_probe_target(const char *p, size_t n)
{
	static const char *const probes[] = {"/healthz", "/readyz", "/metrics"};
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		size_t k = strlen(probes[i]);
		if (n >= k && memcmp(p, probes[i], k) == 0 && (n == k || p[k] == '?'))
			return true;
	}
	return false;
}

/* One header line "name: value" (without its line end). 0, or 1 refused. */
static int head_header(const char *p, size_t n, size_t max_body, struct head_check *hc)
{
	char shown[64];
	size_t k = 0;
	while (k < n && is_tchar((unsigned char)p[k]))
		k++;
	if (k == 0 || k == n || p[k] != ':')
		return httphead_refuse(
		    hc, 400, "bad_request", "%s",
		    n && (p[0] == ' ' || p[0] == '\t')
			? "malformed header: folded header lines are not accepted"
			: "malformed header line (expected 'Name: value')");
	snprintf(shown, sizeof(shown), "%.*s", (int)(k < 60 ? k : 60), p);
	const char *v = p + k + 1, *end = p + n;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	size_t vn = (size_t)(end - v);
	for (const char *c = v; c < end; c++) {
		if (*c == '\0' && httphead_name_is(p, k, "Authorization")) {
			hc->hdr = "WWW-Authenticate";
			hc->hdr_value = "Bearer realm=\"rollbackd\"";
			return httphead_refuse(
			    hc, 401, "unauthorized", "%s",
			    "invalid credentials: the Authorization header holds a "
			    "NUL byte");
		}
		if (*c == '\0' || *c == '\r')
			return httphead_refuse(hc, 400, "bad_request",
					       "header '%s' holds a NUL or CR byte", shown);
	}
	if (httphead_name_is(p, k, "Content-Length")) {
		int64_t len = 0;
		if (vn == 0 || vn > 18)
			return httphead_refuse(hc, 400, "bad_request", "%s",
					       "invalid Content-Length");
		for (size_t i = 0; i < vn; i++) {
			if (v[i] < '0' || v[i] > '9')
				return httphead_refuse(hc, 400, "bad_request", "%s",
						       "invalid Content-Length");
			len = len * 10 + (v[i] - '0');
		}
		if (hc->content_length >= 0 && hc->content_length != len)
			return httphead_refuse(hc, 400, "bad_request", "%s",
					       "conflicting Content-Length headers");
		hc->content_length = len;
		(void)max_body;
	} else if (httphead_name_is(p, k, "Transfer-Encoding")) {
		if (hc->chunked || !value_is(v, vn, "chunked"))
			return httphead_refuse(
			    hc, 400, "bad_request", "%s",
			    "unsupported Transfer-Encoding (only one 'chunked' is "
			    "accepted)");
		hc->chunked = true;
	} else if (httphead_name_is(p, k, "Expect")) {
		if (!value_is(v, vn, "100-continue"))
			return httphead_refuse(hc, 417, "expectation_failed", "%s",
					       "Expect: only 100-continue is supported");
		hc->expect_continue = true;
	}
	return 0;
}

/*
 * Check the request head at the start of p[0..n). 0: incomplete, wait for
 * more; 1: complete or refused (hc->status says which; hc->len is valid
 * when complete).
 */
int httphead_parse(const char *p, size_t n, size_t max_header, size_t max_body,
		   struct head_check *hc)
{
	char shown[32];
	memset(hc, 0, sizeof(*hc));
	hc->content_length = -1;
	size_t i = 0;
	while (i < n && (p[i] == '\r' || p[i] == '\n'))
		i++;
	hc->skip = i;
	size_t end = 0;
	for (size_t j = i; j < n && !end; j++) {
		if (p[j] != '\n')
			continue;
		if (j + 1 < n && p[j + 1] == '\n')
			end = j + 2;
		else if (j + 2 < n && p[j + 1] == '\r' && p[j + 2] == '\n')
			end = j + 3;
		if (j - i >= max_header)
			break;
	}
	snprintf(shown, sizeof(shown), "%zu", max_header);
	if ((!end && n - i > max_header) || (end && end - i > max_header))
		return httphead_refuse(hc, 431, "headers_too_large",
				       "request headers over limits.max_header_bytes (%s bytes)",
				       shown);
	if (!end)
		return 0;
	hc->len = end - i;
	const char *line = p + i, *stop = p + end;
	bool first = true;
	while (line < stop) {
		const char *lf = memchr(line, '\n', (size_t)(stop - line));
		const char *le = lf > line && lf[-1] == '\r' ? lf - 1 : lf;
		size_t ln = (size_t)(le - line);
		if (ln == 0)
			break; /* the empty line that ends the head */
		if (first) {
			const char *sp1 = memchr(line, ' ', ln);
			const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(le - sp1 - 1)) : NULL;
			bool ok = sp1 && sp2 && sp1 > line && sp2 > sp1 + 1 &&
				  (size_t)(le - sp2 - 1) == 8 &&
				  (memcmp(sp2 + 1, "HTTP/1.0", 8) == 0 ||
				   memcmp(sp2 + 1, "HTTP/1.1", 8) == 0);
			for (const char *c = line; ok && c < sp1; c++)
				ok = *c >= 'A' && *c <= 'Z';
			for (const char *c = sp1 + 1; ok && c < sp2; c++)
				ok = (unsigned char)*c > ' ' && *c != 0x7f;
			if (!ok)
				return httphead_refuse(
				    hc, 400, "bad_request", "%s",
				    "malformed request line (expected 'METHOD /path "
				    "HTTP/1.1')");
			size_t mn = (size_t)(sp1 - line);
			hc->is_head = mn == 4 && memcmp(line, "HEAD", 4) == 0;
			if (!(mn == 3 && memcmp(line, "GET", 3) == 0) && !hc->is_head &&
			    !(mn == 4 && memcmp(line, "POST", 4) == 0)) {
				hc->hdr = "Allow";
				hc->hdr_value = "GET, HEAD, POST";
				return httphead_refuse(
				    hc, 405, "method_not_allowed", "%s",
				    "method not allowed; rollbackd accepts GET, HEAD "
				    "and POST");
			}
			hc->is_probe = is_probe_target(sp1 + 1, (size_t)(sp2 - sp1 - 1));
			first = false;
		} else if (head_header(line, ln, max_body, hc)) {
			return 1;
		}
		line = lf + 1;
	}
	if (hc->chunked && hc->content_length >= 0)
		return httphead_refuse(hc, 400, "bad_request", "%s",
				       "both Content-Length and Transfer-Encoding");
	if (hc->content_length > 0 && (uint64_t)hc->content_length > max_body) {
		snprintf(shown, sizeof(shown), "%zu", max_body);
		return httphead_refuse(
		    hc, 413, "body_too_large",
		    "request too large: body over limits.max_body_bytes (%s bytes)", shown);
	}
	return 1;
}

/*
 * Decode the chunked body in p[0..n). DONE sets *used (bytes of the body
 * with its last chunk and trailers) and *size (decoded); out, when not
 * NULL, gets the decoded bytes. BIG as soon as a chunk size would take the
 * body over limit, before its data arrived.
 */
enum httphead_chunked_result httphead_chunked(const unsigned char *p, size_t n, size_t limit,
					      struct evbuffer *out, size_t *used, size_t *size)
{
	size_t i = 0, total = 0;
	for (;;) {
		const unsigned char *lf = memchr(p + i, '\n', n - i < 256 ? n - i : 256);
		if (!lf)
			return n - i < 256 ? CHUNKED_MORE : CHUNKED_BAD;
		uint64_t sz = 0;
		size_t d = i;
		while (d < (size_t)(lf - p) && d - i < 15 &&
		       ((p[d] >= '0' && p[d] <= '9') ||
			((p[d] | 0x20) >= 'a' && (p[d] | 0x20) <= 'f'))) {
			unsigned char c = p[d] | 0x20;
			sz = sz * 16 + (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
			d++;
		}
		if (d == i || (p[d] != ';' && p[d] != '\r' && p[d] != '\n'))
			return CHUNKED_BAD;
		i = (size_t)(lf - p) + 1;
		if (sz == 0)
			break;
		if (sz > limit - total)
			return CHUNKED_BIG;
		if (n - i < sz + 1)
			return CHUNKED_MORE;
		if (out)
			evbuffer_add(out, p + i, (size_t)sz);
		total += (size_t)sz;
		i += (size_t)sz;
		if (p[i] == '\r') {
			if (n - i < 2)
				return CHUNKED_MORE;
			i++;
		}
		if (p[i] != '\n')
			return CHUNKED_BAD;
		i++;
	}
	/* Trailers, dropped: lines up to an empty one. */
	for (size_t start = i;;) {
		const unsigned char *lf = memchr(p + i, '\n', n - i);
		if (!lf)
			return n - start < 4096 ? CHUNKED_MORE : CHUNKED_BAD;
		size_t ln = (size_t)(lf - p) - i;
		i = (size_t)(lf - p) + 1;
		if (ln == 0 || (ln == 1 && lf[-1] == '\r'))
			break;
		if (i - start >= 4096)
			return CHUNKED_BAD;
	}
	*used = i;
	*size = total;
	return CHUNKED_DONE;
}
