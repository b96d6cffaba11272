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
#include "rollbackd/record.h"

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

/* The number a decision was taken on, against its threshold (no number:
 * null), as record_build_decision writes it; from must hold 256 bytes. */
static struct record_value value_of(const struct rule *r, const struct label_set *labels,
				    const struct label_set *annotations, char from[256])
{
	const struct rule_value *rv = &r->value;
	const struct label *l = label_set_get(rv->from_annotations ? annotations : labels, rv->key);
	snprintf(from, 256, "%s.%s", rv->from_annotations ? "annotations" : "labels", rv->key);
	char *end = NULL;
	double v = l ? strtod(l->value, &end) : 0;
	return (struct record_value){
	    .from = from,
	    .has_number = l && end == l->value + l->value_len && l->value_len > 0 && isfinite(v),
	    .number = v,
	    .has_above = rv->has_above,
	    .above = rv->above,
	    .has_below = rv->has_below,
	    .below = rv->below,
	};
}

void rec_decision(struct engine *e, const struct incident *inc, const struct rule *r,
		  const struct alert *a, enum outcome o, const char *reason,
		  const struct alert *trigger, const char *trigger_kind)
{
	struct record_decision d = {
	    .rule = r ? r->name : "",
	    .fingerprint = a ? a->fingerprint : "",
	    .outcome = outcome_name(o),
	    .reason = reason,
	    .has_starts_at = a != NULL,
	    .starts_at = a ? a->starts_at : (struct timestamp){0},
	    .has_incident = inc != NULL,
	    .trigger = trigger_kind,
	};
	struct inc_sets sets;
	/* on OOM the decision is recorded all the same, without the labels */
	if (inc && incident_sets(inc, &sets) < 0)
		log_error("journal: out of memory: a decision is recorded without its labels",
			  "incident", inc->id, NULL);
	if (inc) {
		d.episode = inc->episode;
		d.state = incident_state_names[inc->state];
		d.target = incident_target(inc);
		d.coalesced_into = incident_coalesced_into(inc);
		d.group = sets.set[SET_GROUP].items;
		d.n_group = sets.set[SET_GROUP].n;
	}
	/* What it decided on: the alert at hand, or (a timer, an approval) the
	 * alert that opened the episode. */
	struct label_set ls = {0}, as = {0};
	d.has_alert = trigger || (inc && trigger_kind);
	if (trigger) {
		ls = trigger->labels;
		as = trigger->annotations;
	} else if (d.has_alert) {
		ls = sets.set[SET_LABELS];
		as = sets.set[SET_ANNOTATIONS];
	}
	d.labels = ls.items;
	d.n_labels = ls.n;
	d.annotations = as.items;
	d.n_annotations = as.n;
	char from[256];
	struct record_value value;
	if (d.has_alert && r && r->has_value) {
		value = value_of(r, &ls, &as, from);
		d.value = &value;
	}
	struct buf m = BUF_INIT;
	if (record_build_decision(&m, &d) < 0 ||
	    rec_append(e, "decision", inc ? inc->id : "", &m) < 0)
		log_error("journal: cannot record a decision", NULL);
	buf_release(&m);
	if (inc)
		inc_sets_release(&sets);
}

void rec_resolved(struct engine *e, const struct incident *inc)
{
	struct buf m = BUF_INIT;
	struct record_resolved v = {.rule = inc->rule_name, .episode = inc->episode};
	if (record_build_resolved(&m, &v) < 0 || rec_append(e, "resolved", inc->id, &m) < 0)
		log_error("journal: cannot record a resolve", NULL);
	buf_release(&m);
}

void rec_action_finished(struct engine *e, const struct incident *inc, size_t index,
			 const struct action_record *rec, const char *final_state)
{
	struct record_action_finished v = {
	    .rule = inc->rule_name,
	    .episode = inc->episode,
	    .index = index,
	    .exec = rec->type == ACTION_EXEC,
	    .result = rec->result,
	    .exit_code = rec->exit_code,
	    .status_code = rec->status_code,
	    .duration_ms = timestamp_diff_ms(rec->finished, rec->started),
	    .output = rec->output ? rec->output : "",
	    .incident_state = final_state,
	};
	struct buf m = BUF_INIT;
	if (record_build_action_finished(&m, &v) < 0 ||
	    rec_append(e, "action_finished", inc->id, &m) < 0)
		log_error("journal: cannot record an action's end", NULL);
	buf_release(&m);
}

/* What every notice of inc says: its rule's channels, who and where it is. */
static struct notify_event event_of(const struct rule *r, const struct incident *inc,
				    const struct inc_sets *sets, enum notify_kind kind,
				    const char *reason)
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
	    .target = incident_target(inc),
	    .group = sets->set[SET_GROUP].items,
	    .n_group = sets->set[SET_GROUP].n,
	};
}

void rec_notify(struct engine *e, struct incident *inc, enum notify_kind kind, const char *reason,
		const char *note)
{
	const struct rule *r = engine_find_rule(e, inc->rule_name);
	if (!e->notify || !r || r->n_notify == 0)
		return;
	struct inc_sets sets;
	if (incident_sets(inc, &sets) < 0) /* told all the same, without the labels */
		log_error("notify: out of memory: a notice goes without the incident's labels",
			  "incident", inc->id, NULL);
	struct notify_event ev = event_of(r, inc, &sets, kind, reason);
	ev.generator_url = sets.generator_url;
	ev.external_url = sets.external_url;
	ev.labels = sets.set[SET_LABELS].items;
	ev.n_labels = sets.set[SET_LABELS].n;
	ev.acknowledged_by = incident_acknowledged_by(inc);
	ev.awaiting_approval = inc->state == INC_AWAITING_APPROVAL;
	ev.note = note;
	ev.service = incident_label(inc, SET_LABELS, "service");
	if (!ev.service)
		ev.service = incident_label(inc, SET_GROUP, "service");
	ev.severity = incident_label(inc, SET_LABELS, "severity");
	char value[64] = "", threshold[64] = "";
	if (r->has_value) {
		const char *v = incident_label(
		    inc, r->value.from_annotations ? SET_ANNOTATIONS : SET_LABELS, r->value.key);
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
	for (size_t i = 0; i < incident_n_actions(inc) && n < 16; i++) {
		const struct action_record *a = &inc->x->actions[i];
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
	inc_sets_release(&sets);
}

void rec_step(struct engine *e, const struct incident *inc, const char *step, const char *text)
{
	const struct rule *r = engine_find_rule(e, inc->rule_name);
	if (!e->notify || !r || r->n_notify == 0)
		return;
	/* Only what a thread reply says: no labels, no outputs (the living
	 * message has those), so a step costs the journal little. */
	struct inc_sets sets;
	if (incident_sets(inc, &sets) < 0) /* told all the same, without the labels */
		log_error("notify: out of memory: a notice goes without the incident's labels",
			  "incident", inc->id, NULL);
	struct notify_event ev = event_of(r, inc, &sets, NOTIFY_STEP, step);
	ev.note = text;
	ev.step = step;
	notify_incident(e->notify, &ev);
	inc_sets_release(&sets);
}

void rec_state(struct engine *e, const struct incident *inc, const char *reason)
{
	struct record_incident_state v = {
	    .rule = inc->rule_name,
	    .episode = inc->episode,
	    .state = incident_state_names[inc->state],
	    .reason = reason,
	};
	struct buf m = BUF_INIT;
	if (record_build_incident_state(&m, &v) < 0 ||
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
	char hex[33];
	sodium_bin2hex(hex, sizeof(hex), n->digest[i], 16);
	struct record_notification v = {
	    .receiver = wh->receiver,
	    .group_key = wh->group_key,
	    .external_url = wh->external_url,
	    .status = alert_status_name(a->status),
	    .fingerprint = a->fingerprint,
	    .starts_at = a->starts_at,
	    .ends_at = a->ends_at,
	    .labels = a->labels.items,
	    .n_labels = a->labels.n,
	    .annotations = a->annotations.items,
	    .n_annotations = a->annotations.n,
	    .generator_url = a->generator_url,
	    .truncated_alerts = wh->truncated_alerts,
	    /* Keep the line readable: when the alert is too long, say it was cut. */
	    .alert_max = JOURNAL_MAX_LINE / 2,
	    .digest = hex,
	};
	struct buf m = BUF_INIT;
	if (record_build_notification(&m, &v) < 0 || rec_append(e, "notification", "", &m) < 0)
		log_error("journal: cannot record a notification", NULL);
	buf_release(&m);
	return 1;
}

void rec_use(struct engine *e, const char *type, const struct incident *inc, const char *by,
	     const char *via)
{
	struct record_use v = {.by = by, .via = via};
	struct buf m = BUF_INIT;
	bool approve = strcmp(type, "approve") == 0;
	if ((approve ? record_build_approve(&m, &v) : record_build_ack(&m, &v)) < 0 ||
	    rec_append(e, type, inc->id, &m) < 0)
		log_error("journal: cannot record who acted", "type", type, NULL);
	buf_release(&m);
}
