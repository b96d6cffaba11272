/*
 * notice: the outbox's notices, notify_event <-> JSON, and the Slack view
 * of one (SPEC §9). See notice.h. Never: put a secret or a signed link into
 * a notice; links are signed when a message is built.
 */
#include "rollbackd/notice.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollbackd/channel.h"
#include "rollbackd/json.h"
#include "rollbackd/pagerduty.h"
#include "rollbackd/text.h"

static const char *const kind_names[] = {
    [NOTIFY_TRIGGER] = "trigger",   [NOTIFY_UPDATE] = "update",
    [NOTIFY_ACK] = "acknowledge",   [NOTIFY_RESOLVE] = "resolve",
    [NOTIFY_ESCALATE] = "escalate", [NOTIFY_ROLLED_BACK] = "rolled_back",
    [NOTIFY_STEP] = "step",
};
#define N_KINDS (sizeof(kind_names) / sizeof(kind_names[0]))

const char *notify_kind_name(enum notify_kind k)
{
	return (unsigned)k < N_KINDS ? kind_names[k] : "?";
}

bool notify_step_is_failure(const char *step)
{
	static const char *const failures[] = {NOTIFY_STEP_ACTION_FAILED, NOTIFY_STEP_UNKNOWN,
					       NOTIFY_STEP_INEFFECTIVE, NOTIFY_STEP_INCONCLUSIVE};
	for (size_t i = 0; step && i < sizeof(failures) / sizeof(failures[0]); i++)
		if (strcmp(step, failures[i]) == 0)
			return true;
	return false;
}

int notify_kind_parse(const char *s, enum notify_kind *out)
{
	for (size_t i = 0; i < N_KINDS; i++) {
		if (strcmp(s, kind_names[i]) == 0) {
			*out = (enum notify_kind)i;
			return 0;
		}
	}
	return -1;
}

/* Append s[0..n) as a JSON string that the strict tokenizer takes back:
 * invalid UTF-8 and NUL become U+FFFD. At most max input bytes are kept:
 * the head, or with tail the tail, cut on a character boundary. */
int notice_add_json_text(struct buf *b, const char *s, size_t n, size_t max, bool tail)
{
	const unsigned char *u;
	struct buf clean;
	int rc;

	if (!s) {
		s = "";
		n = 0;
	}
	if (n > max && tail) {
		s += n - max;
		n = max;
		for (int i = 0; i < 3 && n > 0 && ((unsigned char)*s & 0xc0) == 0x80; i++) {
			s++;
			n--;
		}
	} else if (n > max) {
		n = max;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	u = (const unsigned char *)s;
	buf_init(&clean, 0);
	rc = buf_add(&clean, "", 0);
	for (size_t i = 0; i < n && rc == 0;) {
		size_t k = u[i] ? text_utf8_next(u + i, n - i, NULL) : 0;
		rc = k ? buf_add(&clean, s + i, k) : buf_adds(&clean, "\xef\xbf\xbd");
		i += k ? k : 1;
	}
	if (rc == 0)
		rc = buf_add_json_str(b, clean.data, clean.len);
	buf_release(&clean);
	return rc;
}

/* ,"name":"text" (nothing when s is NULL). */
static int add_text_member(struct buf *b, const char *name, const char *s, size_t max)
{
	if (!s)
		return 0;
	return buf_addf(b, ",\"%s\":", name) | notice_add_json_text(b, s, strlen(s), max, false);
}

/* ---- notices: notify_event <-> JSON -------------------------------------- */

static bool label_dup(const struct label *l, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (strcmp(l[j].name, l[i].name) == 0)
			return true;
	return false;
}

/* A label name goes in as is or not at all, so that two names cannot
 * become one key (the tokenizer refuses duplicate keys). */
static bool label_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > PD_LABEL_NAME_MAX)
		return false;
	for (size_t i = 0, k; i < n; i += k)
		if ((k = text_utf8_next((const unsigned char *)s + i, n - i, NULL)) == 0)
			return false;
	return true;
}

static int notice_labels(struct buf *b, const struct notify_event *ev)
{
	int bad = buf_adds(b, ",\"labels\":{");
	size_t kept = 0;
	for (size_t i = 0; i < ev->n_labels && kept < PD_LABELS_MAX; i++) {
		const struct label *l = &ev->labels[i];
		if (!l->name || !l->value || !label_name_ok(l->name) || label_dup(ev->labels, i))
			continue;
		bad |= (kept++ ? buf_addc(b, ',') : 0) |
		       buf_add_json_str(b, l->name, strlen(l->name)) | buf_addc(b, ':') |
		       notice_add_json_text(b, l->value, l->value_len, PD_LABEL_VALUE_MAX, false);
	}
	return bad | buf_addc(b, '}');
}

static int notice_actions(struct buf *b, const struct notify_event *ev, bool compact)
{
	int bad = buf_adds(b, ",\"actions\":[");
	size_t n = ev->n_actions < NOTICE_MAX_ACTIONS ? ev->n_actions : NOTICE_MAX_ACTIONS;
	for (size_t i = 0; i < n; i++) {
		const struct notify_action *a = &ev->actions[i];
		bad |= buf_adds(b, i ? ",{\"type\":" : "{\"type\":") |
		       notice_add_json_text(b, a->type, a->type ? strlen(a->type) : 0, 16, false) |
		       buf_adds(b, ",\"result\":") |
		       notice_add_json_text(b, a->result, a->result ? strlen(a->result) : 0, 16,
					    false) |
		       buf_addf(b, ",\"exit_code\":%d,\"status_code\":%d", a->exit_code,
				a->status_code);
		/* Slack shows the first few actions only; the rest need no output. */
		if (a->output && i < SLACK_MAX_ACTIONS_SHOWN && !compact)
			bad |= buf_adds(b, ",\"output\":") |
			       notice_add_json_text(b, a->output, strlen(a->output),
						    SLACK_OUTPUT_MAX, true);
		bad |= buf_addc(b, '}');
	}
	return bad | buf_addc(b, ']');
}

/* ,"target": the incident's target, else its group labels as k=v,… (in
 * group_by order); nothing when neither is known. */
static int notice_target(struct buf *b, const struct notify_event *ev)
{
	struct buf t = BUF_INIT;
	int bad = 0;

	if (ev->target && ev->target[0])
		return add_text_member(b, "target", ev->target, NOTICE_FIELD_MAX);
	for (size_t i = 0; i < ev->n_group && !bad; i++) {
		const struct label *l = &ev->group[i];
		if (!l->name || !l->value)
			continue;
		bad = (t.len ? buf_addc(&t, ',') : 0) | buf_adds(&t, l->name) | buf_addc(&t, '=') |
		      buf_add(&t, l->value, l->value_len);
	}
	if (!bad && t.len)
		bad = buf_adds(b, ",\"target\":") |
		      notice_add_json_text(b, t.data, t.len, NOTICE_FIELD_MAX, false);
	buf_release(&t);
	return bad;
}

/* The notice: a JSON object with everything the messages are built from,
 * and nothing secret (links are signed at send time). compact leaves out
 * labels and action outputs, for when the whole would pass b's cap. */
int notice_write(struct buf *b, const struct notify_event *ev, bool compact)
{
	char started[TIMESTAMP_STRLEN];
	timestamp_format(ev->alert_started, started, sizeof(started));
	int bad = buf_addf(b, "{\"kind\":\"%s\"", notify_kind_name(ev->kind)) |
		  add_text_member(b, "incident", ev->incident, NOTICE_FIELD_MAX) |
		  add_text_member(b, "rule", ev->rule, NOTICE_FIELD_MAX) |
		  add_text_member(b, "service", ev->service, NOTICE_FIELD_MAX) |
		  add_text_member(b, "state", ev->state, NOTICE_FIELD_MAX) |
		  add_text_member(b, "value", ev->value, NOTICE_FIELD_MAX) |
		  add_text_member(b, "threshold", ev->threshold, NOTICE_FIELD_MAX) |
		  add_text_member(b, "severity", ev->severity, NOTICE_FIELD_MAX) |
		  add_text_member(b, "reason", ev->reason, NOTICE_TEXT_MAX) |
		  add_text_member(b, "alert_started", started, NOTICE_FIELD_MAX) |
		  buf_addf(b, ",\"episode\":%d", ev->episode > 0 ? ev->episode : 1);
	bad |= notice_target(b, ev);
	/* A cut URL would be a wrong one: too long ones are left out. */
	if (ev->generator_url && strlen(ev->generator_url) <= NOTICE_TEXT_MAX)
		bad |= add_text_member(b, "generator_url", ev->generator_url, NOTICE_TEXT_MAX);
	if (ev->external_url && strlen(ev->external_url) <= NOTICE_TEXT_MAX)
		bad |= add_text_member(b, "external_url", ev->external_url, NOTICE_TEXT_MAX);
	if (!compact)
		bad |= notice_labels(b, ev);
	bad |= notice_actions(b, ev, compact) |
	       add_text_member(b, "acknowledged_by", ev->acknowledged_by, NOTICE_FIELD_MAX) |
	       buf_addf(b, ",\"awaiting_approval\":%s", ev->awaiting_approval ? "true" : "false") |
	       add_text_member(b, "note", ev->note, NOTICE_TEXT_MAX) |
	       add_text_member(b, "step", ev->step, NOTICE_FIELD_MAX) | buf_addc(b, '}');
	return bad ? -1 : 0;
}

void notice_release(struct notice *nt)
{
	free(nt->labels);
	free(nt->actions);
	free(nt->arena);
	memset(nt, 0, sizeof(*nt));
}

static const char *arena_str(struct notice *nt, const struct json_doc *d, size_t t)
{
	char *p = nt->arena + nt->used;
	json_str_decode(d, &d->toks[t], p);
	nt->used += d->toks[t].size + 1;
	return p;
}

static const char *nt_str(struct notice *nt, const struct json_doc *d, size_t obj, const char *name)
{
	size_t t = json_obj_get(d, obj, name);
	if (!t || d->toks[t].kind != JSON_KIND_STRING)
		return NULL;
	return arena_str(nt, d, t);
}

static int nt_int(const struct json_doc *d, size_t obj, const char *name)
{
	size_t t = json_obj_get(d, obj, name);
	if (!t || d->toks[t].kind != JSON_KIND_NUMBER || !(d->toks[t].flags & JSON_TOK_INT))
		return -1;
	int64_t v = json_int_value(d, &d->toks[t]);
	return v < -1000000 || v > 1000000 ? -1 : (int)v;
}

static int notice_read_labels(struct notice *nt, const struct json_doc *d, size_t obj)
{
	size_t t = json_obj_get(d, obj, "labels");
	if (!t || d->toks[t].kind != JSON_KIND_OBJECT || d->toks[t].size == 0)
		return 0;
	nt->labels = calloc(d->toks[t].size, sizeof(*nt->labels));
	if (!nt->labels)
		return -1;
	for (size_t k = json_obj_first(d, t); k < json_obj_end(d, t); k = json_obj_nextkey(d, k)) {
		if (d->toks[k + 1].kind != JSON_KIND_STRING)
			continue;
		struct label *l = &nt->labels[nt->n_labels++];
		l->name = arena_str(nt, d, k);
		l->value = arena_str(nt, d, k + 1);
		l->value_len = d->toks[k + 1].size;
	}
	return 0;
}

static int notice_read_actions(struct notice *nt, const struct json_doc *d, size_t obj)
{
	size_t t = json_obj_get(d, obj, "actions");
	if (!t || d->toks[t].kind != JSON_KIND_ARRAY || d->toks[t].size == 0)
		return 0;
	nt->actions = calloc(d->toks[t].size, sizeof(*nt->actions));
	if (!nt->actions)
		return -1;
	for (size_t a = json_arr_first(d, t); a < json_arr_end(d, t); a = json_arr_nextel(d, a)) {
		if (d->toks[a].kind != JSON_KIND_OBJECT)
			continue;
		struct slack_action_view *v = &nt->actions[nt->n_actions++];
		v->type = nt_str(nt, d, a, "type");
		v->result = nt_str(nt, d, a, "result");
		v->exit_code = nt_int(d, a, "exit_code");
		v->status_code = nt_int(d, a, "status_code");
		v->output = nt_str(nt, d, a, "output");
	}
	return 0;
}

/* Parse a notice (as notice_write wrote it, or as replay found it). 0, or -1
 * when it is not such an object (or on OOM) with nt zeroed. */
int notice_parse(const char *text, size_t len, struct notice *nt)
{
	struct json_doc d;
	size_t cap = JSON_TOKENS_ENOUGH(len);
	struct json_tok *toks = calloc(cap, sizeof(*toks));
	const char *kind, *started;

	memset(nt, 0, sizeof(*nt));
	if (!toks)
		return -1;
	if (json_doc_parse(&d, text, len, toks, cap) != JSON_OK || toks[0].kind != JSON_KIND_OBJECT)
		goto fail;
	nt->arena = malloc(len + d.n + 1);
	if (!nt->arena)
		goto fail;
	kind = nt_str(nt, &d, 0, "kind");
	nt->incident = nt_str(nt, &d, 0, "incident");
	if (!kind || notify_kind_parse(kind, &nt->kind) < 0 || !nt->incident || !nt->incident[0])
		goto fail;
	nt->rule = nt_str(nt, &d, 0, "rule");
	nt->service = nt_str(nt, &d, 0, "service");
	nt->state = nt_str(nt, &d, 0, "state");
	nt->value = nt_str(nt, &d, 0, "value");
	nt->threshold = nt_str(nt, &d, 0, "threshold");
	nt->severity = nt_str(nt, &d, 0, "severity");
	nt->reason = nt_str(nt, &d, 0, "reason");
	started = nt_str(nt, &d, 0, "alert_started");
	if (!started || timestamp_parse(started, strlen(started), &nt->alert_started) < 0)
		nt->alert_started = (struct timestamp){TIMESTAMP_GO_ZERO_SEC, 0};
	nt->generator_url = nt_str(nt, &d, 0, "generator_url");
	nt->external_url = nt_str(nt, &d, 0, "external_url");
	nt->acknowledged_by = nt_str(nt, &d, 0, "acknowledged_by");
	nt->note = nt_str(nt, &d, 0, "note");
	nt->step = nt_str(nt, &d, 0, "step");
	nt->target = nt_str(nt, &d, 0, "target");
	nt->episode = nt_int(&d, 0, "episode");
	if (nt->episode < 1) /* journaled before links were bound to episodes */
		nt->episode = 1;
	size_t t = json_obj_get(&d, 0, "awaiting_approval");
	nt->awaiting_approval = t && toks[t].kind == JSON_KIND_TRUE;
	if (notice_read_labels(nt, &d, 0) < 0 || notice_read_actions(nt, &d, 0) < 0)
		goto fail;
	free(toks);
	return 0;
fail:
	free(toks);
	notice_release(nt);
	return -1;
}

bool notice_wants_ack_link(const struct notice *nt)
{
	return nt->kind != NOTIFY_RESOLVE && !(nt->acknowledged_by && nt->acknowledged_by[0]);
}

/* The Slack view of a notice; links[0..1] hold the signed links. */
void notice_slack_view(const struct notify *n, const struct notice *nt, struct buf links[2],
		       struct slack_incident_view *v)
{
	memset(v, 0, sizeof(*v));
	v->id = nt->incident;
	v->rule = nt->rule;
	v->service = nt->service;
	v->state = nt->state;
	v->value = nt->value;
	v->threshold = nt->threshold;
	v->actions = nt->actions;
	v->n_actions = nt->n_actions;
	v->alert_started = nt->alert_started;
	v->now = timestamp_now();
	v->generator_url = nt->generator_url;
	v->external_url = nt->external_url;
	v->acknowledged_by = nt->acknowledged_by;
	v->note = nt->note && nt->note[0] ? nt->note : nt->reason;
	v->episode = nt->episode;
	v->interactive = notify_slack_interactive(n);
	if (notice_wants_ack_link(nt))
		v->ack_url = notify_link(n, "ack", nt->incident, nt->episode, &links[0]);
	if (nt->awaiting_approval && nt->kind != NOTIFY_RESOLVE)
		v->approve_url = notify_link(n, "approve", nt->incident, nt->episode, &links[1]);
}
