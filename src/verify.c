/*
 * verify: verify.query's pure core (include/rollbackd/verify.h): PromQL
 * escaping, the classification of one /api/v1/query answer and the folding
 * of samples into a result.
 *
 * Must never: do I/O, or let a failed query, no data or NaN count as a pass.
 */
#include "rollbackd/verify.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

const char *verify_result_name(enum verify_result r)
{
	switch (r) {
	case VERIFY_EFFECTIVE:
		return "effective";
	case VERIFY_INEFFECTIVE:
		return "ineffective";
	case VERIFY_INCONCLUSIVE:
		return "inconclusive";
	case VERIFY_PENDING:
	default:
		return "pending";
	}
}

int verify_promql_escape(struct buf *out, const char *s, size_t n)
{
	int bad = buf_grow(out, n);
	for (size_t i = 0; i < n && !bad; i++) {
		unsigned char c = (unsigned char)s[i];
		switch (c) {
		case '\\':
			bad = buf_adds(out, "\\\\");
			break;
		case '"':
			bad = buf_adds(out, "\\\"");
			break;
		case '\n':
			bad = buf_adds(out, "\\n");
			break;
		case '\r':
			bad = buf_adds(out, "\\r");
			break;
		case '\t':
			bad = buf_adds(out, "\\t");
			break;
		default:
			bad = c < 0x20 || c == 0x7f ? buf_addf(out, "\\x%02x", c)
						    : buf_addc(out, (char)c);
		}
	}
	return bad ? -1 : 0;
}

/* Escaped copies of a label set's values (names kept). */
static int escape_set(const struct label_set *in, struct label_set *out, struct buf *bufs)
{
	out->items = NULL;
	out->n = 0;
	if (!in || in->n == 0)
		return 0;
	out->items = calloc(in->n, sizeof(*out->items));
	if (!out->items)
		return -1;
	for (size_t i = 0; i < in->n; i++) {
		const struct label *l = &in->items[i];
		size_t len = l->value_len ? l->value_len : strlen(l->value);
		if (verify_promql_escape(&bufs[i], l->value, len) < 0 || buf_grow(&bufs[i], 1) < 0)
			return -1;
		bufs[i].data[bufs[i].len] = '\0';
		out->items[i].name = l->name;
		out->items[i].value = bufs[i].data;
		out->items[i].value_len = bufs[i].len;
	}
	out->n = in->n;
	return 0;
}

static int escape_field(char *dst, size_t dsz, const char *src)
{
	struct buf b = BUF_INIT;
	int rc = verify_promql_escape(&b, src, strlen(src));
	if (rc == 0 && b.len >= dsz)
		rc = -1;
	if (rc == 0) {
		memcpy(dst, b.data ? b.data : "", b.len);
		dst[b.len] = '\0';
	}
	buf_release(&b);
	return rc;
}

int verify_expand_query(const char *tpl, const struct template_ctx *ctx, struct buf *out,
			struct error *err)
{
	size_t nl = ctx->labels ? ctx->labels->n : 0;
	size_t na = ctx->annotations ? ctx->annotations->n : 0;
	struct buf *bufs = calloc(nl + na + 1, sizeof(*bufs));
	struct label_set labels = {NULL, 0}, annotations = {NULL, 0};
	struct template_ctx c = *ctx;
	struct change chg;
	int rc = -1;
	if (!bufs || escape_set(ctx->labels, &labels, bufs) < 0 ||
	    escape_set(ctx->annotations, &annotations, bufs + nl) < 0) {
		error_set(err, "out of memory expanding the query");
		goto out;
	}
	if (ctx->change) {
		if (escape_field(chg.revision, sizeof(chg.revision), ctx->change->revision) < 0 ||
		    escape_field(chg.previous_revision, sizeof(chg.previous_revision),
				 ctx->change->previous_revision) < 0 ||
		    escape_field(chg.source, sizeof(chg.source), ctx->change->source) < 0) {
			error_set(err, "the change's fields are too long once escaped for PromQL");
			goto out;
		}
		memcpy(chg.target, ctx->change->target, sizeof(chg.target));
		memcpy(chg.url, ctx->change->url, sizeof(chg.url));
		memcpy(chg.author, ctx->change->author, sizeof(chg.author));
		chg.at = ctx->change->at;
		c.change = &chg;
	}
	c.labels = ctx->labels ? &labels : NULL;
	c.annotations = ctx->annotations ? &annotations : NULL;
	c.secret_lookup = NULL; /* check-rules refuses secrets in a query */
	rc = template_expand(tpl, &c, TEMPLATE_RAW, out, err);
out:
	for (size_t i = 0; bufs && i < nl + na; i++)
		buf_release(&bufs[i]);
	free(bufs);
	free(labels.items);
	free(annotations.items);
	return rc;
}

static void fail(struct verify_sample *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void fail(struct verify_sample *s, const char *fmt, ...)
{
	va_list ap;
	s->ok = false;
	s->holds = false;
	va_start(ap, fmt);
	vsnprintf(s->error, sizeof(s->error), fmt, ap);
	va_end(ap);
}

/* [ts, "value"] into *v: 1 a number, 0 NaN, -1 malformed. */
static int sample_number(const json_t *pair, double *v)
{
	const json_t *x = json_array_get(pair, 1);
	if (!json_is_array(pair) || json_array_size(pair) != 2 || !json_is_string(x))
		return -1;
	const char *s = json_string_value(x);
	char *end;
	*v = strtod(s, &end);
	if (end == s || *end)
		return -1;
	return isnan(*v) ? 0 : 1;
}

void verify_sample_classify(int status, const char *transport_error, const char *body, size_t len,
			    const struct verify_cond *cond, struct verify_sample *out)
{
	json_error_t je;
	memset(out, 0, sizeof(*out));
	if (transport_error && status == 0) {
		fail(out, "prometheus unreachable: %s", transport_error);
		return;
	}
	json_t *root = body && len ? json_loadb(body, len, 0, &je) : NULL;
	const char *st = json_string_value(json_object_get(root, "status"));
	if (status < 200 || status > 299 || !st || strcmp(st, "success") != 0) {
		const char *msg = json_string_value(json_object_get(root, "error"));
		if (msg)
			fail(out, "prometheus answered %d: %s", status, msg);
		else if (status < 200 || status > 299)
			fail(out, "prometheus answered %d", status);
		else
			fail(out, "prometheus answered %d without a success status", status);
		json_decref(root);
		return;
	}
	json_t *data = json_object_get(root, "data");
	const char *type = json_string_value(json_object_get(data, "resultType"));
	json_t *result = json_object_get(data, "result");
	double v;
	int num;
	if (type && strcmp(type, "scalar") == 0) {
		num = sample_number(result, &v);
		if (num < 0) {
			fail(out, "prometheus answered a malformed scalar");
		} else if (num == 0) {
			fail(out, "the query returned NaN");
		} else {
			out->ok = true;
			out->n_series = 1;
			out->value = v;
		}
	} else if (type && strcmp(type, "vector") == 0 && json_is_array(result)) {
		size_t i;
		json_t *series;
		out->ok = true;
		json_array_foreach(result, i, series)
		{
			num = sample_number(json_object_get(series, "value"), &v);
			if (num < 0) {
				fail(out, "prometheus answered a malformed series");
				break;
			}
			if (num == 0) {
				fail(out, "the query returned NaN");
				break;
			}
			if (i == 0 || (cond->below ? v > out->value : v < out->value))
				out->value = v;
			out->n_series++;
		}
		if (out->ok && out->n_series == 0)
			fail(out, "no data: the query returned no series");
	} else {
		fail(out, "prometheus answered result type '%s' (expected a vector or a scalar)",
		     type ? type : "none");
	}
	if (out->ok)
		out->holds =
		    cond->below ? out->value < cond->threshold : out->value > cond->threshold;
	json_decref(root);
}

void verify_progress_init(struct verify_progress *p)
{
	memset(p, 0, sizeof(*p));
	p->held_since_ms = -1;
}

enum verify_result verify_step(struct verify_progress *p, const struct verify_sample *s,
			       int64_t now_ms, int64_t for_ms)
{
	p->n_samples++;
	p->last_ok = s->ok;
	if (!s->ok) {
		p->n_failed++;
		snprintf(p->last_error, sizeof(p->last_error), "%s", s->error);
	}
	if (!s->holds) {
		p->held_since_ms = -1;
		return VERIFY_PENDING;
	}
	if (p->held_since_ms < 0)
		p->held_since_ms = now_ms;
	return now_ms - p->held_since_ms >= for_ms ? VERIFY_EFFECTIVE : VERIFY_PENDING;
}

enum verify_result verify_deadline(const struct verify_progress *p, char *why, size_t whysz)
{
	if (p->n_samples == 0) {
		snprintf(why, whysz, "no evaluation of the query finished");
		return VERIFY_INCONCLUSIVE;
	}
	if (!p->last_ok) {
		snprintf(why, whysz, "%s (%zu of %zu evaluations failed)", p->last_error,
			 p->n_failed, p->n_samples);
		return VERIFY_INCONCLUSIVE;
	}
	snprintf(why, whysz, "the condition did not hold for 'for' (%zu evaluations)",
		 p->n_samples);
	return VERIFY_INEFFECTIVE;
}
