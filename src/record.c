/*
 * record: journal record types, the one decoder, and the typed builders.
 *
 * Must never: allocate per member, or copy the line (a record points into
 * the caller's text and token array).
 */
#include "rollbackd/record.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollbackd/buf.h"

static const char *const type_names[RECORD_TYPE_COUNT] = {
    [RECORD_UNKNOWN] = "",
    [RECORD_STARTED] = "started",
    [RECORD_CONFIG_LOADED] = "config_loaded",
    [RECORD_CONFIG_REJECTED] = "config_rejected",
    [RECORD_NOTIFICATION] = "notification",
    [RECORD_DECISION] = "decision",
    [RECORD_ACTION_STARTED] = "action_started",
    [RECORD_ACTION_FINISHED] = "action_finished",
    [RECORD_RESOLVED] = "resolved",
    [RECORD_INCIDENT_STATE] = "incident_state",
    [RECORD_VERIFY_SAMPLE] = "verify_sample",
    [RECORD_VERIFY_RESULT] = "verify_result",
    [RECORD_ACK] = "ack",
    [RECORD_APPROVE] = "approve",
    [RECORD_PAUSE] = "pause",
    [RECORD_RESUME] = "resume",
    [RECORD_NOTIFY_INTENT] = "notify_intent",
    [RECORD_NOTIFY_SENT] = "notify_sent",
    [RECORD_NOTIFY_FAILED] = "notify_failed",
    [RECORD_TARGET_CLAIMED] = "target_claimed",
    [RECORD_TARGET_RELEASED] = "target_released",
    [RECORD_CHANGE] = "change",
    [RECORD_SNAPSHOT_TOMB] = "snapshot_tomb",
    [RECORD_SNAPSHOT_ROLLBACK] = "snapshot_rollback",
    [RECORD_SNAPSHOT_BLAST] = "snapshot_blast",
    [RECORD_CHECKPOINT] = "checkpoint",
    [RECORD_JOURNAL_TRUNCATED] = "journal_truncated",
    [RECORD_JOURNAL_RECOVERED] = "journal_recovered",
};

const char *record_type_name(enum record_type t)
{
	return (unsigned)t < RECORD_TYPE_COUNT ? type_names[t] : "";
}

enum record_type record_type_of(const char *name, size_t n)
{
	for (int t = RECORD_UNKNOWN + 1; t < RECORD_TYPE_COUNT; t++)
		if (strlen(type_names[t]) == n && memcmp(type_names[t], name, n) == 0)
			return (enum record_type)t;
	return RECORD_UNKNOWN;
}

void record_toks_release(struct record_toks *t)
{
	free(t->toks);
	t->toks = NULL;
	t->cap = 0;
}

static bool key_is(const struct json_doc *d, const struct json_tok *k, const char *s, size_t n)
{
	return k->size == n && json_str_eq(d, k, s, n);
}

static enum record_status decode(const char *text, size_t len, struct record *out,
				 struct record_toks *toks)
{
	size_t need = JSON_TOKENS_ENOUGH(len);
	if (need > toks->cap) {
		struct json_tok *t = realloc(toks->toks, need * sizeof(*t));
		if (!t)
			return RECORD_ENOMEM;
		toks->toks = t;
		toks->cap = need;
	}
	struct json_doc *d = &out->doc;
	enum json_status js = json_doc_parse(d, text, len, toks->toks, toks->cap);
	if (js != JSON_OK) {
		d->n = 0;
		return js == JSON_ENOSPACE ? RECORD_ENOMEM : RECORD_ENOTJSON;
	}
	const struct json_tok *t = d->toks;
	if (t[0].kind != JSON_KIND_OBJECT) {
		d->n = 0;
		return RECORD_ENOTOBJECT;
	}
	/* the frame's members come first: stop once all four are seen */
	bool type_seen = false;
	int left = 4;
	for (size_t k = json_obj_first(d, 0); left > 0 && k < json_obj_end(d, 0);
	     k = json_obj_nextkey(d, k)) {
		const struct json_tok *v = &t[k + 1];
		if (key_is(d, &t[k], "type", 4)) {
			left--;
			if (v->kind != JSON_KIND_STRING)
				continue;
			type_seen = true;
			if (!(v->flags & JSON_TOK_ESCAPED))
				out->type = record_type_of(text + v->start, v->end - v->start);
			else {
				char name[32];
				if (v->size < sizeof(name)) {
					json_str_decode(d, v, name);
					out->type = record_type_of(name, v->size);
				}
			}
		} else if (key_is(d, &t[k], "seq", 3)) {
			left--;
			if (v->kind == JSON_KIND_NUMBER && (v->flags & JSON_TOK_INT) &&
			    text[v->start] != '-') {
				out->seq = (uint64_t)json_int_value(d, v);
				out->has_seq = true;
			}
		} else if (key_is(d, &t[k], "ts", 2)) {
			left--;
			out->has_ts =
			    v->kind == JSON_KIND_STRING && !(v->flags & JSON_TOK_ESCAPED) &&
			    timestamp_parse(text + v->start, v->end - v->start, &out->ts) == 0;
		} else if (key_is(d, &t[k], "incident", 8)) {
			left--;
			if (v->kind == JSON_KIND_STRING && v->size <= RECORD_INCIDENT_MAX) {
				json_str_decode(d, v, out->incident);
				out->has_incident = true;
			}
		}
	}
	if (!type_seen) {
		out->type = RECORD_UNKNOWN;
		d->n = 0;
		return RECORD_ENOTYPE;
	}
	return RECORD_OK;
}

enum record_status record_decode(const char *text, size_t len, struct record *out,
				 struct record_toks *toks)
{
	out->text = text;
	out->len = len;
	out->where = NULL;
	out->offset = 0;
	out->doc.n = 0;
	out->doc.toks = NULL;
	out->type = RECORD_UNKNOWN;
	out->has_seq = out->has_ts = out->has_incident = false;
	out->seq = 0;
	out->ts = (struct timestamp){0, 0};
	out->incident[0] = '\0';
	return out->status = decode(text, len, out, toks);
}

size_t record_member(const struct record *r, const char *name)
{
	if (!r->doc.n)
		return 0;
	return json_obj_get(&r->doc, 0, name);
}

const char *record_str(const struct record *r, const char *name, char *dst, size_t dstsz)
{
	size_t i = record_member(r, name);
	const struct json_tok *t = i ? &r->doc.toks[i] : NULL;
	if (!t || t->kind != JSON_KIND_STRING || t->size + 1 > dstsz)
		return NULL;
	json_str_decode(&r->doc, t, dst);
	return dst;
}

bool record_str_is(const struct record *r, const char *name, const char *s)
{
	size_t i = record_member(r, name);
	return i && r->doc.toks[i].kind == JSON_KIND_STRING &&
	       json_str_eq(&r->doc, &r->doc.toks[i], s, strlen(s));
}

bool record_get_int(const struct record *r, const char *name, int64_t *out)
{
	size_t i = record_member(r, name);
	const struct json_tok *t = i ? &r->doc.toks[i] : NULL;
	if (!t || t->kind != JSON_KIND_NUMBER || !(t->flags & JSON_TOK_INT))
		return false;
	*out = json_int_value(&r->doc, t);
	return true;
}

int64_t record_int(const struct record *r, const char *name, int64_t dflt)
{
	int64_t v;
	return record_get_int(r, name, &v) ? v : dflt;
}

bool record_bool(const struct record *r, const char *name, bool dflt)
{
	size_t i = record_member(r, name);
	if (!i)
		return dflt;
	uint8_t k = r->doc.toks[i].kind;
	return k == JSON_KIND_TRUE ? true : k == JSON_KIND_FALSE ? false : dflt;
}

size_t record_obj(const struct record *r, const char *name)
{
	size_t i = record_member(r, name);
	return i && r->doc.toks[i].kind == JSON_KIND_OBJECT ? i : 0;
}

const char *record_raw(const struct record *r, const char *name, size_t *len)
{
	size_t i = record_member(r, name);
	if (!i)
		return NULL;
	const struct json_tok *t = &r->doc.toks[i];
	size_t s = t->start, e = t->end;
	if (t->kind == JSON_KIND_STRING) {
		s--;
		e++;
	}
	*len = e - s;
	return r->text + s;
}

/* ---- snapshot state lines ------------------------------------------------ */

int record_snapshot_tomb(struct buf *out, uint64_t id, int episode, int64_t max_starts_ms)
{
	return buf_addf(out,
			"{\"type\":\"snapshot_tomb\",\"incident\":\"\",\"id\":\"%016" PRIx64
			"\",\"episode\":%d,\"max_starts_ms\":%" PRId64 "}\n",
			id, episode, max_starts_ms)
		   ? -1
		   : 0;
}

int record_snapshot_rollback(struct buf *out, int64_t at_ms)
{
	return buf_addf(out,
			"{\"type\":\"snapshot_rollback\",\"incident\":\"\",\"at_ms\":%" PRId64
			"}\n",
			at_ms)
		   ? -1
		   : 0;
}

int record_snapshot_blast(struct buf *out, uint64_t target_hash, int64_t at_ms)
{
	return buf_addf(out,
			"{\"type\":\"snapshot_blast\",\"incident\":\"\",\"id\":\"%016" PRIx64
			"\",\"at_ms\":%" PRId64 "}\n",
			target_hash, at_ms)
		   ? -1
		   : 0;
}

uint64_t record_snapshot_key(const struct record *r)
{
	char hex[17], *end;
	if (!record_str(r, "id", hex, sizeof(hex)) || strlen(hex) != 16)
		return 0;
	uint64_t k = strtoull(hex, &end, 16);
	return *end ? 0 : k;
}
