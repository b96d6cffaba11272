/*
 * target: the name of what a rollback changes, and the blast-radius window
 * (include/rollbackd/target.h).
 */
#include "rollbackd/target.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "rollbackd/template.h"

static int cmp_label(const void *a, const void *b)
{
	const struct label *x = *(const struct label *const *)a;
	const struct label *y = *(const struct label *const *)b;
	return strcmp(x->name, y->name);
}

static int default_target(const struct label *group, size_t n, struct buf *out)
{
	const struct label **sorted = calloc(n ? n : 1, sizeof(*sorted));
	if (!sorted)
		return -1;
	for (size_t i = 0; i < n; i++)
		sorted[i] = &group[i];
	qsort(sorted, n, sizeof(*sorted), cmp_label);
	int bad = 0;
	for (size_t i = 0; i < n; i++)
		bad |= (i ? buf_addc(out, ',') : 0) | buf_adds(out, sorted[i]->name) |
		       buf_addc(out, '=') | buf_add(out, sorted[i]->value, sorted[i]->value_len);
	free(sorted);
	return bad ? -1 : 0;
}

int target_name(const struct rule *r, const struct alert *a, const struct label *group,
		size_t n_group, struct buf *out, struct error *err)
{
	struct error e = {{0}};
	out->len = 0;
	if (out->data)
		out->data[0] = '\0';
	if (r->target) {
		struct template_ctx ctx = {.labels = &a->labels,
					   .annotations = &a->annotations,
					   .incident_id = "",
					   .rule_name = r->name};
		if (template_expand(r->target, &ctx, TEMPLATE_RAW, out, &e) < 0) {
			error_set(err, "target: %s", e.msg);
			goto fail;
		}
	} else if (default_target(group, n_group, out) < 0) {
		error_set(err, "target: out of memory");
		goto fail;
	}
	if (buf_addc(out, '\0') < 0) { /* a NUL-terminated string even when empty */
		error_set(err, "target: out of memory");
		goto fail;
	}
	out->len--;
	if (out->len == 0) {
		error_set(err, "target: expands to an empty name");
		goto fail;
	}
	if (out->len > TARGET_MAX) {
		error_set(err, "target: longer than %d bytes", TARGET_MAX);
		goto fail;
	}
	for (size_t i = 0; i < out->len; i++) {
		unsigned char c = (unsigned char)out->data[i];
		if (c < 0x20 || c == 0x7f) {
			error_set(err, "target: contains a control character");
			goto fail;
		}
	}
	return 0;
fail:
	out->len = 0;
	if (out->data)
		out->data[0] = '\0';
	return -1;
}

uint64_t target_hash(const char *target)
{
	unsigned char h[8];
	uint64_t v;
	crypto_generichash(h, sizeof(h), (const unsigned char *)target, strlen(target), NULL, 0);
	memcpy(&v, h, sizeof(v));
	return v ? v : 1; /* 0 means "none" to blast_count */
}

void blast_note(struct blast_window *w, uint64_t hash, int64_t now_ms)
{
	size_t slot = (w->head + w->n) % BLAST_RING;
	if (w->n == BLAST_RING) { /* the oldest goes */
		slot = w->head;
		w->head = (w->head + 1) % BLAST_RING;
	} else {
		w->n++;
	}
	w->hash[slot] = hash;
	w->at_ms[slot] = now_ms;
}

size_t blast_count(const struct blast_window *w, int64_t now_ms, int64_t window_ms, uint64_t except,
		   size_t limit)
{
	uint64_t seen[BLAST_RING];
	size_t n_seen = 0;
	for (size_t k = 0; k < w->n && n_seen < limit; k++) {
		size_t i = (w->head + k) % BLAST_RING;
		if (w->at_ms[i] <= now_ms - window_ms || w->at_ms[i] > now_ms ||
		    w->hash[i] == except)
			continue;
		bool dup = false;
		for (size_t j = 0; j < n_seen && !dup; j++)
			dup = seen[j] == w->hash[i];
		if (!dup)
			seen[n_seen++] = w->hash[i];
	}
	return n_seen;
}
