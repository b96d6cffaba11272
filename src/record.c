/*
 * record: journal record types, the one decoder, and the typed builders.
 *
 * Must never: allocate per member, or copy the line (a record points into
 * the caller's text and token array).
 */
#include "rollbackd/record.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollbackd/alert.h"
#include "rollbackd/buf.h"
#include "rollbackd/notice.h"

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

/* 0, or -1 when any part of a write ran out of memory. */
static int ret(int bad)
{
	return bad ? -1 : 0;
}

/* ---- snapshot state lines ------------------------------------------------ */

bool record_is_snapshot_state(enum record_type t)
{
	return t == RECORD_SNAPSHOT_TOMB || t == RECORD_SNAPSHOT_ROLLBACK ||
	       t == RECORD_SNAPSHOT_BLAST;
}

int record_snapshot_tomb(struct buf *out, uint64_t id, int episode, int64_t max_starts_ms)
{
	return ret(buf_addf(out,
			    "{\"type\":\"snapshot_tomb\",\"incident\":\"\",\"id\":\"%016" PRIx64
			    "\",\"episode\":%d,\"max_starts_ms\":%" PRId64 "}\n",
			    id, episode, max_starts_ms));
}

int record_snapshot_rollback(struct buf *out, int64_t at_ms)
{
	return ret(buf_addf(
	    out, "{\"type\":\"snapshot_rollback\",\"incident\":\"\",\"at_ms\":%" PRId64 "}\n",
	    at_ms));
}

int record_snapshot_blast(struct buf *out, uint64_t target_hash, int64_t at_ms)
{
	return ret(buf_addf(out,
			    "{\"type\":\"snapshot_blast\",\"incident\":\"\",\"id\":\"%016" PRIx64
			    "\",\"at_ms\":%" PRId64 "}\n",
			    target_hash, at_ms));
}

uint64_t record_snapshot_key(const struct record *r)
{
	char hex[17], *end;
	if (!record_str(r, "id", hex, sizeof(hex)) || strlen(hex) != 16)
		return 0;
	uint64_t k = strtoull(hex, &end, 16);
	return *end ? 0 : k;
}

/* ---- builders ------------------------------------------------------------ */

int record_member_str(struct buf *m, const char *name, const char *s)
{
	return buf_addf(m, ",\"%s\":", name) | buf_add_json_str(m, s ? s : "", s ? strlen(s) : 0);
}

int record_member_ts(struct buf *m, const char *name, struct timestamp t)
{
	char ts[TIMESTAMP_STRLEN];
	timestamp_format(t, ts, sizeof(ts));
	return record_member_str(m, name, ts);
}

int record_labels_json(struct buf *m, const struct label *items, size_t n)
{
	int bad = buf_addc(m, '{');
	for (size_t i = 0; i < n; i++)
		bad |= (i ? buf_addc(m, ',') : 0) |
		       buf_add_json_str(m, items[i].name, strlen(items[i].name)) |
		       buf_addc(m, ':') | buf_add_json_str(m, items[i].value, items[i].value_len);
	return bad | buf_addc(m, '}');
}

static bool given(const char *s)
{
	return s && s[0];
}

/* ,"rule":...,"episode":N: how every incident record begins */
static int rule_episode(struct buf *m, const char *rule, int episode)
{
	return record_member_str(m, "rule", rule) | buf_addf(m, ",\"episode\":%d", episode);
}

int record_build_started(struct buf *m, const struct record_started *v)
{
	return ret(record_member_str(m, "version", v->version) |
		   buf_addf(m, ",\"pid\":%d", v->pid));
}

int record_build_config_loaded(struct buf *m, const struct record_config_loaded *v)
{
	return ret(record_member_str(m, "rules_path", v->rules_path) |
		   buf_addf(m, ",\"rules\":%zu", v->rules) |
		   record_member_str(m, "rules_digest", v->rules_digest) |
		   buf_addf(m, ",\"dry_run\":%s,\"reload\":%s", v->dry_run ? "true" : "false",
			    v->reload ? "true" : "false"));
}

int record_build_config_rejected(struct buf *m, const struct record_config_rejected *v)
{
	return ret(record_member_str(m, "error", v->error));
}

int record_build_pause(struct buf *m, const struct record_pause *v)
{
	return ret(record_member_str(m, "by", v->by));
}

int record_build_resume(struct buf *m, const struct record_pause *v)
{
	return record_build_pause(m, v);
}

int record_build_ack(struct buf *m, const struct record_use *v)
{
	return ret(record_member_str(m, "by", v->by) | record_member_str(m, "via", v->via));
}

int record_build_approve(struct buf *m, const struct record_use *v)
{
	return record_build_ack(m, v);
}

int record_build_change(struct buf *m, const struct record_change *v)
{
	int bad = record_member_str(m, "target", v->target) |
		  record_member_str(m, "revision", v->revision);
	if (given(v->previous_revision))
		bad |= record_member_str(m, "previous_revision", v->previous_revision);
	bad |= record_member_ts(m, "at", v->at) | record_member_str(m, "source", v->source);
	if (given(v->url))
		bad |= record_member_str(m, "url", v->url);
	if (given(v->author))
		bad |= record_member_str(m, "author", v->author);
	return ret(bad);
}

int record_checkpoint_signed(struct buf *m, uint64_t seq, const char *hash, const char *ts)
{
	return ret(
	    buf_addf(m, "{\"seq\":%" PRIu64 ",\"hash\":\"%s\",\"ts\":\"%s\"}", seq, hash, ts));
}

int record_build_checkpoint(struct buf *m, const struct record_checkpoint *v)
{
	return ret(buf_adds(m, ",\"signed\":") |
		   record_checkpoint_signed(m, v->seq, v->hash, v->ts) |
		   buf_addf(m, ",\"key_id\":\"%s\",\"sig\":\"%s\"", v->key_id, v->sig));
}

int record_build_journal_truncated(struct buf *m, const struct record_journal_truncated *v)
{
	return ret(record_member_str(m, "segment", v->segment) |
		   buf_addf(m, ",\"offset\":%" PRIu64 ",\"bytes\":%" PRIu64, v->offset, v->bytes));
}

int record_build_journal_recovered(struct buf *m, const struct record_journal_recovered *v)
{
	return ret(
	    buf_adds(m, ",\"moved\":") | buf_add(m, v->moved, v->moved_len) |
	    record_member_str(m, "segment", v->segment) |
	    buf_addf(m, ",\"offset\":%" PRIu64 ",\"bad_seq\":%" PRIu64, v->offset, v->bad_seq) |
	    record_member_str(m, "error", v->error) |
	    buf_addf(m, ",\"last_good_seq\":%" PRIu64 ",\"last_good_hash\":\"%s\"",
		     v->last_good_seq, v->last_good_hash));
}

int record_build_target_claimed(struct buf *m, const struct record_target_claimed *v)
{
	return ret(record_member_str(m, "target", v->target) |
		   buf_addf(m, ",\"epoch\":%llu,\"held_until_ms\":%lld",
			    (unsigned long long)v->epoch, (long long)v->held_until_ms));
}

int record_build_target_released(struct buf *m, const struct record_target_released *v)
{
	return ret(record_member_str(m, "target", v->target) |
		   buf_addf(m, ",\"epoch\":%llu", (unsigned long long)v->epoch));
}

int record_build_verify_sample(struct buf *m, const struct record_verify_sample *v)
{
	int bad = rule_episode(m, v->rule, v->episode) | record_member_str(m, "query", v->query);
	if (v->has_value && isfinite(v->value))
		bad |= buf_addf(m, ",\"value\":%.17g", v->value);
	else if (v->has_value)
		bad |= record_member_str(m, "value", v->value > 0 ? "+Inf" : "-Inf");
	bad |= buf_addf(m, ",\"%s\":%.17g,\"for\":%lld,\"series\":%zu,\"holds\":%s",
			v->below ? "below" : "above", v->threshold, (long long)v->for_s, v->series,
			v->holds ? "true" : "false");
	if (v->error)
		bad |= record_member_str(m, "error", v->error);
	return ret(bad);
}

int record_build_verify_result(struct buf *m, const struct record_verify_result *v)
{
	return ret(rule_episode(m, v->rule, v->episode) |
		   record_member_str(m, "result", v->result) |
		   record_member_str(m, "reason", v->reason));
}

int record_build_incident_state(struct buf *m, const struct record_incident_state *v)
{
	return ret(rule_episode(m, v->rule, v->episode) | record_member_str(m, "state", v->state) |
		   record_member_str(m, "reason", v->reason));
}

int record_build_resolved(struct buf *m, const struct record_resolved *v)
{
	return ret(rule_episode(m, v->rule, v->episode));
}

int record_build_action_started(struct buf *m, const struct record_action_started *v)
{
	static const char type_member[] = "\"type\":\"exec\""; /* as long as "http"'s */
	size_t n = v->action_json ? strlen(v->action_json) : 0;
	if (n < 2 + strlen(type_member))
		return -1;
	return ret(
	    rule_episode(m, v->rule, v->episode) | buf_addf(m, ",\"index\":%zu", v->index) |
	    record_member_str(m, "action", v->exec ? "exec" : "http") |
	    buf_add(m, v->action_json + 1 + strlen(type_member), n - 2 - strlen(type_member)));
}

int record_build_action_finished(struct buf *m, const struct record_action_finished *v)
{
	int bad = rule_episode(m, v->rule, v->episode) | buf_addf(m, ",\"index\":%zu", v->index) |
		  record_member_str(m, "action", v->exec ? "exec" : "http") |
		  record_member_str(m, "result", v->result) |
		  (v->exec ? buf_addf(m, ",\"exit_code\":%d", v->exit_code)
			   : buf_addf(m, ",\"status_code\":%d", v->status_code)) |
		  buf_addf(m, ",\"duration_ms\":%lld", (long long)v->duration_ms) |
		  record_member_str(m, "output", v->output);
	if (v->incident_state)
		bad |= record_member_str(m, "incident_state", v->incident_state);
	return ret(bad);
}

static int value_member(struct buf *m, const struct record_value *v)
{
	int bad =
	    buf_adds(m, ",\"value\":{\"from\":") | buf_add_json_str(m, v->from, strlen(v->from));
	if (v->has_number)
		bad |= buf_addf(m, ",\"value\":%.17g", v->number);
	else
		bad |= buf_adds(m, ",\"value\":null");
	if (v->has_above)
		bad |= buf_addf(m, ",\"above\":%.17g", v->above);
	if (v->has_below)
		bad |= buf_addf(m, ",\"below\":%.17g", v->below);
	return bad | buf_addc(m, '}');
}

int record_build_decision(struct buf *m, const struct record_decision *v)
{
	int bad = record_member_str(m, "rule", v->rule) |
		  record_member_str(m, "fingerprint", v->fingerprint) |
		  record_member_str(m, "outcome", v->outcome) |
		  record_member_str(m, "reason", v->reason);
	/* startsAt (with the fingerprint, the episode key) before any nested
	 * object: replay's fast path reads the first ,"startsAt": it finds. */
	if (v->has_starts_at)
		bad |= record_member_ts(m, "startsAt", v->starts_at);
	if (v->has_incident)
		bad |= buf_addf(m, ",\"episode\":%d", v->episode) |
		       record_member_str(m, "state", v->state);
	if (v->target)
		bad |= record_member_str(m, "target", v->target);
	if (given(v->coalesced_into))
		bad |= record_member_str(m, "coalesced_into", v->coalesced_into);
	if (v->has_incident)
		bad |= buf_adds(m, ",\"group\":") | record_labels_json(m, v->group, v->n_group);
	if (v->has_alert)
		bad |= buf_adds(m, ",\"labels\":") | record_labels_json(m, v->labels, v->n_labels) |
		       buf_adds(m, ",\"annotations\":") |
		       record_labels_json(m, v->annotations, v->n_annotations);
	if (v->has_alert && v->value)
		bad |= value_member(m, v->value);
	if (v->trigger)
		bad |= record_member_str(m, "trigger", v->trigger);
	return ret(bad);
}

int record_build_notification(struct buf *m, const struct record_notification *v)
{
	int bad = record_member_str(m, "receiver", v->receiver) |
		  record_member_str(m, "group_key", v->group_key) |
		  record_member_str(m, "external_url", v->external_url);
	size_t mark = m->len;
	bad |= record_member_str(m, "status", v->status) |
	       record_member_str(m, "fingerprint", v->fingerprint) |
	       record_member_ts(m, "startsAt", v->starts_at) |
	       record_member_ts(m, "endsAt", v->ends_at) | buf_adds(m, ",\"labels\":") |
	       record_labels_json(m, v->labels, v->n_labels) | buf_adds(m, ",\"annotations\":") |
	       record_labels_json(m, v->annotations, v->n_annotations) |
	       record_member_str(m, "generatorURL", v->generator_url);
	if (v->truncated_alerts > 0)
		bad |= buf_addf(m, ",\"truncated_alerts\":%lld", (long long)v->truncated_alerts);
	/* Keep the line readable: when the alert is too long, say it was cut. */
	if (!bad && v->alert_max && m->len - mark > v->alert_max) {
		m->len = mark;
		m->data[mark] = '\0';
		bad |= record_member_str(m, "status", v->status) |
		       record_member_str(m, "fingerprint", v->fingerprint) |
		       record_member_ts(m, "startsAt", v->starts_at) |
		       record_member_ts(m, "endsAt", v->ends_at) |
		       buf_adds(m, ",\"truncated\":true");
	}
	return ret(bad | record_member_str(m, "digest", v->digest));
}

int record_build_notify_intent(struct buf *m, const struct record_notify_intent *v)
{
	return ret(buf_addf(m, ",\"id\":\"%s\"", v->id) |
		   record_member_str(m, "channel", v->channel) |
		   record_member_str(m, "event", v->event) | buf_adds(m, ",\"notice\":") |
		   buf_add(m, v->notice, v->notice_len));
}

int record_build_notify_sent(struct buf *m, const struct record_notify_sent *v)
{
	int bad = buf_addf(m, ",\"id\":\"%s\"", v->id) |
		  record_member_str(m, "channel", v->channel) |
		  buf_addf(m, ",\"status_code\":%d,\"attempts\":%d", v->status_code, v->attempts);
	if (v->extra)
		bad |= buf_adds(m, v->extra);
	return ret(bad);
}

int record_build_notify_done(struct buf *m, const char *id, const char *members, size_t len)
{
	return ret(buf_addf(m, ",\"id\":\"%s\"", id) |
		   buf_add(m, members ? members : "", members ? len : 0));
}

int record_build_notify_failed(struct buf *m, const struct record_notify_failed *v)
{
	const char *err = v->error ? v->error : "";
	int bad = buf_addf(m, ",\"id\":\"%s\"", v->id) |
		  record_member_str(m, "channel", v->channel) |
		  buf_addf(m, ",\"status_code\":%d,\"error\":", v->status_code) |
		  notice_add_json_text(m, err, strlen(err), v->error_max, false) |
		  buf_addf(m, ",\"attempts\":%d", v->attempts);
	if (v->event)
		bad |= record_member_str(m, "event", v->event);
	return ret(bad);
}
