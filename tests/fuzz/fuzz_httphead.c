/*
 * fuzz_httphead: the HTTP gate's head and chunked-body checks.
 *
 * Invariants (abort() when broken): a complete head has 0 < len <= n - skip
 * and len <= max_header; a refusal has a 4xx status, a code and a message;
 * a good head's Content-Length is within max_body; a decoded chunked body
 * is within its limit, uses no more than it was given, and decoding it
 * twice (counting, then copying) agrees. Plain C, so tests/fuzz/replay.c
 * can drive it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "rollbackd/httphead.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct head_check hc;
	const size_t max_header = 512, max_body = 4096;
	int r = httphead_parse((const char *)data, size, max_header, max_body, &hc);
	if (r == 1 && hc.status == 0) {
		if (hc.len == 0 || hc.len > size - hc.skip || hc.len > max_header)
			abort();
		if (hc.content_length > (int64_t)max_body)
			abort();
	} else if (r == 1) {
		if (hc.status < 400 || hc.status > 499 || !hc.code || !hc.msg[0])
			abort();
	} else if (r != 0) {
		abort();
	}
	size_t used = 0, n = 0, used2 = 0, n2 = 0;
	enum httphead_chunked_result c = httphead_chunked(data, size, max_body, NULL, &used, &n);
	if (c == CHUNKED_DONE) {
		struct evbuffer *out = evbuffer_new();
		if (!out || used > size || n > max_body ||
		    httphead_chunked(data, size, max_body, out, &used2, &n2) != CHUNKED_DONE ||
		    used2 != used || n2 != n || evbuffer_get_length(out) != n)
			abort();
		evbuffer_free(out);
	}
	return 0;
}
