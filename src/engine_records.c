/*
 * engine_records: the journal records the engine writes (SPEC §8:
 * notification, decision, resolved, incident_state, action_finished, ack,
 * approve) and the notices it hands to notify.
 *
 * Must never: change an incident, wait for the disk, or send anything
 * itself (notify only queues; the journal only buffers). What is journaled
 * never holds a secret's value (actions.c redacts at the source: expansion
 * and captured output). Lock rules: every function runs under e->lock
 * except rec_notes_build/release and rec_alert_digest, which run before it
 * is taken.
 */
#include "engine_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "rollbackd/journal.h" /* JOURNAL_MAX_LINE */
#include "rollbackd/log.h"

static int rec_labels_json(struct buf *b, const struct label *items, size_t n)
{
	int bad = buf_addc(b, '{');
	for (size_t i = 0; i < n; i++)
		bad |= (i ? buf_addc(b, ',') : 0) |
		       buf_add_json_str(b, items[i].name, strlen(items[i].name)) |
		       buf_addc(b, ':') | buf_add_json_str(b, items[i].value, items[i].value_len);
	return bad | buf_addc(b, '}');
}

int rec_member_str(struct buf *b, const char *name, const char *v)
{
	return buf_addf(b, ",\"%s\":", name) | buf_add_json_str(b, v ? v : "", v ? strlen(v) : 0);
}

int rec_member_ts(struct buf *b, const char *name, struct timestamp t)
{
	char ts[TIMESTAMP_STRLEN];
	timestamp_format(t, ts, sizeof(ts));
	return rec_member_str(b, name, ts);
}

/* The alert as a notification record holds it (members, leading comma). */
static int rec_alert_members(struct buf *b, const struct alert *a)
{
	return rec_member_str(b, "status", alert_status_name(a->status)) |
	       rec_member_str(b, "fingerprint", a->fingerprint) |
	       rec_member_ts(b, "startsAt", a->starts_at) | rec_member_ts(b, "endsAt", a->ends_at) |
	       buf_adds(b, ",\"labels\":") | rec_labels_json(b, a->labels.items, a->labels.n) |
	       buf_adds(b, ",\"annotations\":") |
	       rec_labels_json(b, a->annotations.items, a->annotations.n) |
	       rec_member_str(b, "generatorURL", a->generator_url);
}

int rec_append(struct engine *e, const char *type, const char *incident, const struct buf *m)
{
	return store_append(e->store, type, incident, m->data ? m->data : "", m->len, NULL);
}

/* The same, telling the record's ticket (may be NULL). Secrets were
 * redacted where they could enter: expansion and captured output. */
int rec_append_ticket(struct engine *e, const char *type, const char *incident, const struct buf *m,
		      uint64_t *ticket)
{
	return store_append(e->store, type, incident, m->data ? m->data : "", m->len, ticket);
}

/* ,"value":{"from":"annotations.value","value":0.052,"above":0.01}: the
 * number a decision was taken on, against its threshold (null when the
 * alert did not carry a number). */
static int rec_value_member(struct buf *m, const struct rule *r, const struct label_set *labels,
			    const struct label_set *annotations)
{
	const struct rule_value *rv = &r->value;
	const struct label *l = label_set_get(rv->from_annotations ? annotations : labels, rv->key);
	char from[256];
	snprintf(from, sizeof(from), "%s.%s", rv->from_annotations ? "annotations" : "labels",
		 rv->key);
	int bad = buf_adds(m, ",\"value\":{\"from\":") | buf_add_json_str(m, from, strlen(from));
	char *end = NULL;
	double v = l ? strtod(l->value, &end) : 0;
	if (l && end == l->value + l->value_len && l->value_len > 0 && isfinite(v))
		bad |= buf_addf(m, ",\"value\":%.17g", v);
	else
		bad |= buf_adds(m, ",\"value\":null");
	if (rv->has_above)
		bad |= buf_addf(m, ",\"above\":%.17g", rv->above);
	if (rv->has_below)
		bad |= buf_addf(m, ",\"below\":%.17g", rv->below);
	return bad | buf_addc(m, '}');
}

void rec_decision(struct engine *e, const struct incident *inc, const struct rule *r,
		  const struct alert *a, enum outcome o, const char *reason,
		  const struct alert *trigger, const char *trigger_kind)
{
	struct buf m = BUF_INIT;
	const char *fp = a ? a->fingerprint : "";
	int bad =
	    rec_member_str(&m, "rule", r ? r->name : "") | rec_member_str(&m, "fingerprint", fp) |
	    rec_member_str(&m, "outcome", outcome_name(o)) | rec_member_str(&m, "reason", reason);
	/* startsAt (with the fingerprint, the episode key) before any nested
	 * object: replay's fast path reads the first ,"startsAt": it finds. */
	if (a)
		bad |= rec_member_ts(&m, "startsAt", a->starts_at);
	if (inc)
		bad |= buf_addf(&m, ",\"episode\":%d", inc->episode) |
		       rec_member_str(&m, "state", incident_state_names[inc->state]);
	if (inc && inc->target)
		bad |= rec_member_str(&m, "target", inc->target);
	if (inc && inc->coalesced_into[0])
		bad |= rec_member_str(&m, "coalesced_into", inc->coalesced_into);
	if (inc)
		bad |= buf_adds(&m, ",\"group\":") |
		       rec_labels_json(&m, inc->group.items, inc->group.n);
	/* What it decided on: the alert at hand, or (a timer, an approval) the
	 * alert that opened the episode. */
	struct label_set ls = {0}, as = {0};
	bool what = trigger || (inc && trigger_kind);
	if (trigger) {
		ls = trigger->labels;
		as = trigger->annotations;
	} else if (what) {
		ls = (struct label_set){inc->trigger_labels.items, inc->trigger_labels.n};
		as = (struct label_set){inc->trigger_annotations.items, inc->trigger_annotations.n};
	}
	if (what)
		bad |= buf_adds(&m, ",\"labels\":") | rec_labels_json(&m, ls.items, ls.n) |
		       buf_adds(&m, ",\"annotations\":") | rec_labels_json(&m, as.items, as.n);
	if (what && r && r->has_value)
		bad |= rec_value_member(&m, r, &ls, &as);
	if (trigger_kind)
		bad |= rec_member_str(&m, "trigger", trigger_kind);
	if (bad || rec_append(e, "decision", inc ? inc->id : "", &m) < 0)
		log_error("journal: cannot record a decision", NULL);
	buf_release(&m);
}

void rec_resolved(struct engine *e, const struct incident *inc)
{
	struct buf m = BUF_INIT;
	if ((rec_member_str(&m, "rule", inc->rule_name) |
	     buf_addf(&m, ",\"episode\":%d", inc->episode)) ||
	    rec_append(e, "resolved", inc->id, &m) < 0)
		log_error("journal: cannot record a resolve", NULL);
	buf_release(&m);
}

void rec_action_finished(struct engine *e, const struct incident *inc, size_t index,
			 const struct action_record *rec, const char *final_state)
{
	struct buf m = BUF_INIT;
	bool exec = rec->type == ACTION_EXEC;
	const char *out = rec->output ? rec->output : "";
	int bad = rec_member_str(&m, "rule", inc->rule_name) |
		  buf_addf(&m, ",\"episode\":%d,\"index\":%zu", inc->episode, index) |
		  rec_member_str(&m, "action", exec ? "exec" : "http") |
		  rec_member_str(&m, "result", rec->result) |
		  (exec ? buf_addf(&m, ",\"exit_code\":%d", rec->exit_code)
			: buf_addf(&m, ",\"status_code\":%d", rec->status_code)) |
		  buf_addf(&m, ",\"duration_ms\":%lld",
			   (long long)timestamp_diff_ms(rec->finished, rec->started)) |
		  buf_adds(&m, ",\"output\":") | buf_add_json_str(&m, out, strlen(out));
	if (final_state)
		bad |= rec_member_str(&m, "incident_state", final_state);
	if (bad || rec_append(e, "action_finished", inc->id, &m) < 0)
		log_error("journal: cannot record an action's end", NULL);
	buf_release(&m);
}

/* What every notice of inc says: its rule's channels, who and where it is. */
static struct notify_event event_of(const struct rule *r, const struct incident *inc,
				    enum notify_kind kind, const char *reason)
{
	return (struct notify_event){
	    .kind = kind,
	    .channels = (const char *const *)r->notify,
	    .n_channels = r->n_notify,
	    .incident = inc->id,
	    .episode = inc->episode,
	    .rule = inc->rule_name,
	    .state = incident_state_names[inc->state],
	    .reason = reason,
	    .alert_started = inc->episode_start,
	    .target = inc->target,
	    .group = inc->group.items,
	    .n_group = inc->group.n,
	};
}

void rec_notify(struct engine *e, struct incident *inc, enum notify_kind kind, const char *reason,
		const char *note)
{
	const struct rule *r = engine_find_rule(e, inc->rule_name);
	if (!e->notify || !r || r->n_notify == 0)
		return;
	struct notify_event ev = event_of(r, inc, kind, reason);
	ev.generator_url = inc->generator_url;
	ev.external_url = inc->external_url;
	ev.labels = inc->trigger_labels.items;
	ev.n_labels = inc->trigger_labels.n;
	ev.acknowledged_by = inc->acknowledged_by;
	ev.awaiting_approval = inc->state == INC_AWAITING_APPROVAL;
	ev.note = note;
	ev.service = owned_labels_get(&inc->trigger_labels, "service");
	if (!ev.service)
		ev.service = owned_labels_get(&inc->group, "service");
	ev.severity = owned_labels_get(&inc->trigger_labels, "severity");
	char value[64] = "", threshold[64] = "";
	if (r->has_value) {
		const struct owned_labels *src =
		    r->value.from_annotations ? &inc->trigger_annotations : &inc->trigger_labels;
		const char *v = owned_labels_get(src, r->value.key);
		if (v) {
			snprintf(value, sizeof(value), "%s", v);
			ev.value = value;
		}
		if (r->value.has_above)
			snprintf(threshold, sizeof(threshold), "above %g", r->value.above);
		else if (r->value.has_below)
			snprintf(threshold, sizeof(threshold), "below %g", r->value.below);
		ev.threshold = threshold[0] ? threshold : NULL;
	}
	struct notify_action acts[16];
	size_t n = 0;
	for (size_t i = 0; i < inc->n_actions && n < 16; i++) {
		const struct action_record *a = &inc->actions[i];
		if (!a->begun && !a->done)
			continue;
		acts[n++] = (struct notify_action){
		    .type = a->type == ACTION_EXEC ? "exec" : "http",
		    .result = a->done ? a->result : "running",
		    .exit_code = a->exit_code,
		    .status_code = a->status_code,
		    .output = a->output,
		};
	}
	ev.actions = acts;
	ev.n_actions = n;
	notify_incident(e->notify, &ev);
}

void rec_step(struct engine *e, const struct incident *inc, const char *step, const char *text)
{
	const struct rule *r = engine_find_rule(e, inc->rule_name);
	if (!e->notify || !r || r->n_notify == 0)
		return;
	/* Only what a thread reply says: no labels, no outputs (the living
	 * message has those), so a step costs the journal little. */
	struct notify_event ev = event_of(r, inc, NOTIFY_STEP, step);
	ev.note = text;
	ev.step = step;
	notify_incident(e->notify, &ev);
}

void rec_state(struct engine *e, const struct incident *inc, const char *reason)
{
	struct buf m = BUF_INIT;
	if ((rec_member_str(&m, "rule", inc->rule_name) |
	     buf_addf(&m, ",\"episode\":%d", inc->episode) |
	     rec_member_str(&m, "state", incident_state_names[inc->state]) |
	     rec_member_str(&m, "reason", reason)) ||
	    rec_append(e, "incident_state", inc->id, &m) < 0)
		log_error("journal: cannot record an incident state", NULL);
	buf_release(&m);
}

/*
 * The digest that tells an exact repeat: BLAKE2b-128 over the alert's own
 * fields, each string framed by its length, so that two alerts get one digest
 * exactly when their notification records (rec_alert_members, plus
 * truncated_alerts) would be the same JSON. Computed from the parsed fields
 * rather than from that JSON: a repeat costs this hash and a lookup, and the
 * JSON is written only for an alert that is journaled.
 *
 * Journals written before this definition hold digests of the record JSON;
 * a replayed one never equals a new one, so after an upgrade the first
 * repeat of each alert is journaled once more, and exact repeats are
 * recognised again from then on. The leading tag keeps the two definitions
 * apart.
 */
struct digest_acc {
	crypto_generichash_state st;
	size_t len;
	unsigned char pending[1024];
};

static void digest_flush(struct digest_acc *d)
{
	crypto_generichash_update(&d->st, d->pending, d->len);
	d->len = 0;
}

static void digest_bytes(struct digest_acc *d, const void *p, size_t len)
{
	if (len > sizeof(d->pending) - d->len) {
		digest_flush(d);
		if (len > sizeof(d->pending)) {
			crypto_generichash_update(&d->st, p, len);
			return;
		}
	}
	memcpy(d->pending + d->len, p, len);
	d->len += len;
}

/* LEB128: unambiguous framing in one byte for most lengths. */
static void digest_u64(struct digest_acc *d, uint64_t v)
{
	unsigned char out[10];
	size_t n = 0;
	do {
		out[n] = (unsigned char)(v & 0x7f);
		v >>= 7;
		out[n++] |= v ? 0x80 : 0;
	} while (v);
	digest_bytes(d, out, n);
}

static void digest_str(struct digest_acc *d, const char *s, size_t len)
{
	digest_u64(d, len);
	digest_bytes(d, s, len);
}

static void digest_labels(struct digest_acc *d, const struct label_set *set)
{
	digest_u64(d, set->n);
	for (size_t i = 0; i < set->n; i++) {
		digest_str(d, set->items[i].name, strlen(set->items[i].name));
		digest_str(d, set->items[i].value, set->items[i].value_len);
	}
}

static void digest_ts(struct digest_acc *d, struct timestamp t)
{
	digest_u64(d, (uint64_t)t.sec);
	digest_u64(d, (uint64_t)(uint32_t)t.nsec);
}

void rec_alert_digest(const struct alert *a, int64_t truncated_alerts, unsigned char out[16])
{
	static const char tag[] = "rollbackd alert digest v2";
	struct digest_acc d;
	crypto_generichash_init(&d.st, NULL, 0, 16);
	d.len = 0;
	digest_bytes(&d, tag, sizeof(tag));
	digest_u64(&d, (uint64_t)a->status);
	digest_str(&d, a->fingerprint, strlen(a->fingerprint));
	digest_ts(&d, a->starts_at);
	digest_ts(&d, a->ends_at);
	digest_labels(&d, &a->labels);
	digest_labels(&d, &a->annotations);
	digest_str(&d, a->generator_url, strlen(a->generator_url));
	/* A notification that left alerts out is never an exact repeat of one
	 * that did not: it is journaled, and it says so. */
	digest_u64(&d, truncated_alerts > 0 ? (uint64_t)truncated_alerts : 0);
	digest_flush(&d);
	crypto_generichash_final(&d.st, out, 16);
}

int rec_notes_build(const struct webhook *wh, struct alert_notes *n)
{
	n->digest = calloc(wh->n_alerts ? wh->n_alerts : 1, sizeof(*n->digest));
	if (!n->digest)
		return -1;
	for (size_t i = 0; i < wh->n_alerts; i++)
		rec_alert_digest(&wh->alerts[i], wh->truncated_alerts, n->digest[i]);
	return 0;
}

void rec_notes_release(struct alert_notes *n)
{
	free(n->digest);
}

/* Journal alert i of wh unless it is an exact repeat. 1 new, 0 repeat. */
int rec_note_alert(struct engine *e, const struct webhook *wh, size_t i,
		   const struct alert_notes *n)
{
	const struct alert *a = &wh->alerts[i];
	int fresh = seen_map_put(&e->seen, incident_fp_key(a->fingerprint), n->digest[i]);
	if (fresh <= 0)
		return fresh < 0 ? 1 : fresh; /* without memory, journal it again */
	struct buf m = BUF_INIT;
	char hex[33];
	sodium_bin2hex(hex, sizeof(hex), n->digest[i], 16);
	int bad = rec_member_str(&m, "receiver", wh->receiver) |
		  rec_member_str(&m, "group_key", wh->group_key) |
		  rec_member_str(&m, "external_url", wh->external_url);
	size_t mark = m.len;
	bad |= rec_alert_members(&m, a);
	if (wh->truncated_alerts > 0)
		bad |= buf_addf(&m, ",\"truncated_alerts\":%lld", (long long)wh->truncated_alerts);
	/* Keep the line readable: when the alert is too long, say it was cut. */
	if (!bad && m.len - mark > JOURNAL_MAX_LINE / 2) {
		m.len = mark;
		m.data[mark] = '\0';
		bad |= rec_member_str(&m, "status", alert_status_name(a->status)) |
		       rec_member_str(&m, "fingerprint", a->fingerprint) |
		       rec_member_ts(&m, "startsAt", a->starts_at) |
		       rec_member_ts(&m, "endsAt", a->ends_at) |
		       buf_adds(&m, ",\"truncated\":true");
	}
	bad |= rec_member_str(&m, "digest", hex);
	if (bad || rec_append(e, "notification", "", &m) < 0)
		log_error("journal: cannot record a notification", NULL);
	buf_release(&m);
	return 1;
}

void rec_use(struct engine *e, const char *type, const struct incident *inc, const char *by,
	     const char *via)
{
	struct buf m = BUF_INIT;
	if ((rec_member_str(&m, "by", by) | rec_member_str(&m, "via", via)) ||
	    rec_append(e, type, inc->id, &m) < 0)
		log_error("journal: cannot record who acted", "type", type, NULL);
	buf_release(&m);
}
