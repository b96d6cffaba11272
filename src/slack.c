/*
 * slack: Block Kit messages, request signatures and interactivity payloads
 * (SPEC §9).
 *
 * Pure functions over strings; jansson builds and parses the JSON. Every
 * piece of interpolated text goes through add_text, which makes it valid
 * UTF-8, escapes what Slack's mrkdwn would interpret and cuts it on a
 * character boundary so that no limit of Slack's can be passed, whatever
 * the input. The signature is compared with sodium_memcmp. Nothing here
 * does I/O or logs.
 *
 * Over 800 lines because Block Kit messages, Web API bodies and replies,
 * request signatures and interactivity payloads all go through the same
 * bounded-text and JSON helpers that keep Slack's limits.
 */
#include "rollbackd/slack.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "rollbackd/auth.h"
#include "rollbackd/text.h"

#define MAC_LEN crypto_auth_hmacsha256_BYTES
#define ELLIPSIS "\xe2\x80\xa6" /* U+2026 */
#define ELLIPSIS_LEN 3
#define REPLACEMENT "\xef\xbf\xbd" /* U+FFFD */
#define ZWSP "\xe2\x80\x8b"	   /* U+200B, breaks a run of backticks */
#define REPLY_MAX (1024 * 1024)	   /* largest Web API reply parsed */
#define TS_DIGITS 19

/* Per-field caps inside a section, so that the fixed parts always fit. */
#define FIELD_RULE 500
#define FIELD_SERVICE 300
#define FIELD_SHORT 200 /* value, threshold, state, id, a name */
#define FIELD_COMPACT 200
#define FIELD_NOTE_COMPACT 300

/* ---- text that fits ---- */

enum {
	T_MRKDWN = 1 << 0,  /* escape & < > as Slack asks */
	T_ONELINE = 1 << 1, /* line breaks and tabs become spaces */
	T_CODE = 1 << 2,    /* inside ``` … ```: break runs of backticks */
	T_TAIL = 1 << 3,    /* when cut, keep the end ("…" + tail) */
};

/*
 * What the source character at s[*i] becomes, into piece (at most 6 bytes);
 * returns its length (0: dropped) and moves *i past it. Depends only on the
 * source, never on what was emitted, so that lengths can be summed first
 * and the text cut anywhere.
 */
static size_t next_piece(const unsigned char *s, size_t n, size_t *i, unsigned flags, char piece[8])
{
	size_t at = *i, k;
	uint32_t cp;

	k = text_utf8_next(s + at, n - at, &cp);
	if (k == 0) {
		*i = at + 1;
		memcpy(piece, REPLACEMENT, 3);
		return 3;
	}
	*i = at + k;
	if (cp == 0x1b && at + 1 < n && s[at + 1] == '[') {
		/* An ANSI escape (colours in command output): CSI parameter and
		 * intermediate bytes, then one final byte. */
		size_t j = at + 2;
		while (j < n && s[j] >= 0x20 && s[j] <= 0x3f)
			j++;
		if (j < n && s[j] >= 0x40 && s[j] <= 0x7e)
			j++;
		*i = j;
		return 0;
	}
	if (cp == '\r')
		return 0;
	if (cp == '\n' || cp == '\t' || cp == 0x2028 || cp == 0x2029) {
		if (flags & T_ONELINE) {
			piece[0] = ' ';
			return 1;
		}
		if (cp == '\n' || cp == '\t') {
			piece[0] = (char)cp;
			return 1;
		}
		piece[0] = '\n';
		return 1;
	}
	if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) {
		memcpy(piece, REPLACEMENT, 3);
		return 3;
	}
	if (flags & T_MRKDWN) {
		const char *e = cp == '&'   ? "&amp;"
				: cp == '<' ? "&lt;"
				: cp == '>' ? "&gt;"
					    : NULL;
		if (e) {
			size_t el = strlen(e);
			memcpy(piece, e, el);
			return el;
		}
	}
	if ((flags & T_CODE) && cp == '`' && *i < n && s[*i] == '`') {
		memcpy(piece, "`" ZWSP, 4);
		return 4;
	}
	memcpy(piece, s + at, k);
	return k;
}

/* A text being built under a cap (bytes). */
struct text {
	struct buf b;
	size_t cap;
	bool full;   /* cut for lack of room: nothing more is added */
	bool failed; /* an allocation failed */
};

static void t_init(struct text *t, size_t cap)
{
	buf_init(&t->b, 0);
	t->cap = cap;
	t->full = false;
	t->failed = false;
}

static void t_release(struct text *t)
{
	buf_release(&t->b);
}

static size_t t_room(const struct text *t)
{
	return t->cap - t->b.len;
}

static void t_put(struct text *t, const void *p, size_t n)
{
	if (!t->failed && buf_add(&t->b, p, n) < 0)
		t->failed = true;
}

/* Append s[0..n), transformed by flags, in at most min(field_max, room)
 * bytes: when it does not fit it is cut on a character boundary and "…"
 * marks the cut (at the end, or at the start with T_TAIL). A cut for lack
 * of room fills the text. */
static void t_addn(struct text *t, const char *s, size_t n, size_t field_max, unsigned flags)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t total = 0, i, room = t_room(t), limit = field_max < room ? field_max : room;
	char piece[8];

	if (t->full || t->failed || !s)
		return;
	for (i = 0; i < n;)
		total += next_piece(u, n, &i, flags, piece);
	if (total <= limit) {
		for (i = 0; i < n;)
			t_put(t, piece, next_piece(u, n, &i, flags, piece));
		return;
	}
	if (limit == room)
		t->full = true;
	if (limit < ELLIPSIS_LEN)
		return;
	size_t budget = limit - ELLIPSIS_LEN, used = 0;
	if (flags & T_TAIL) {
		/* Skip from the front until the rest fits. */
		size_t skipped = 0;
		for (i = 0; i < n && total - skipped > budget;)
			skipped += next_piece(u, n, &i, flags, piece);
		t_put(t, ELLIPSIS, ELLIPSIS_LEN);
		while (i < n)
			t_put(t, piece, next_piece(u, n, &i, flags, piece));
		return;
	}
	for (i = 0; i < n;) {
		size_t k = next_piece(u, n, &i, flags, piece);
		if (used + k > budget)
			break;
		t_put(t, piece, k);
		used += k;
	}
	t_put(t, ELLIPSIS, ELLIPSIS_LEN);
}

static void t_add(struct text *t, const char *s, size_t field_max, unsigned flags)
{
	if (s)
		t_addn(t, s, strlen(s), field_max, flags);
}

/* Literal markup: all of it or, when it does not fit, nothing (and the text
 * is full). */
static void t_lit(struct text *t, const char *s)
{
	size_t n = strlen(s);
	if (t->full || t->failed)
		return;
	if (n > t_room(t)) {
		t->full = true;
		return;
	}
	t_put(t, s, n);
}

static bool is_set(const char *s)
{
	return s && *s;
}

/* A URL we are willing to put in a message: http(s), printable ASCII only
 * (no spaces, quotes are fine), at most max bytes. */
static bool url_usable(const char *url, size_t max)
{
	size_t n;
	if (!url)
		return false;
	n = strnlen(url, max + 1);
	if (n > max || !(strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] >= 0x7f)
			return false;
	return true;
}

/* A mrkdwn link <url|label>, whole or not at all. Inside the angle brackets
 * & is an entity and < > | would end the link, so they are percent-encoded. */
static void t_link(struct text *t, const char *url, const char *label)
{
	struct buf l = BUF_INIT;
	bool ok = true;

	if (t->full || t->failed || !url_usable(url, SLACK_TEXT_MAX))
		return;
	ok = buf_addc(&l, '<') == 0;
	for (const char *p = url; ok && *p; p++) {
		switch (*p) {
		case '&':
			ok = buf_adds(&l, "&amp;") == 0;
			break;
		case '<':
			ok = buf_adds(&l, "%3C") == 0;
			break;
		case '>':
			ok = buf_adds(&l, "%3E") == 0;
			break;
		case '|':
			ok = buf_adds(&l, "%7C") == 0;
			break;
		default:
			ok = buf_addc(&l, *p) == 0;
			break;
		}
	}
	ok = ok && buf_addc(&l, '|') == 0 && buf_adds(&l, label) == 0 && buf_addc(&l, '>') == 0;
	if (!ok)
		t->failed = true;
	else if (l.len <= t_room(t))
		t_put(t, l.data, l.len);
	buf_release(&l);
}

/* ---- JSON pieces (jansson; *_new calls steal the reference, on failure
 * too, and fail on a NULL value) ---- */

static json_t *t_json(const struct text *t)
{
	if (t->failed)
		return NULL;
	return json_stringn(t->b.data ? t->b.data : "", t->b.len);
}

/* {"type": type, key: val}; takes val's reference, on failure too. */
static json_t *typed(const char *type, const char *key, json_t *val)
{
	json_t *o = json_object();
	if (!o || json_object_set_new(o, "type", json_string(type)) < 0) {
		json_decref(o);
		json_decref(val);
		return NULL;
	}
	if (json_object_set_new(o, key, val) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *text_obj(const char *type, json_t *str)
{
	return typed(type, "text", str);
}

static json_t *mrkdwn(const struct text *t)
{
	return text_obj("mrkdwn", t_json(t));
}

/* A plain_text object of s, one line, at most max bytes. */
static json_t *plain(const char *s, size_t max)
{
	struct text t;
	json_t *o;
	t_init(&t, max);
	t_add(&t, s, max, T_ONELINE);
	o = text_obj("plain_text", t_json(&t));
	t_release(&t);
	return o;
}

static json_t *block(const char *type, const char *key, json_t *val)
{
	return typed(type, key, val);
}

static json_t *section(const struct text *t)
{
	return block("section", "text", mrkdwn(t));
}

static json_t *header(const struct text *t)
{
	return block("header", "text", text_obj("plain_text", t_json(t)));
}

/* A context block of one mrkdwn element. */
static json_t *context1(const struct text *t)
{
	json_t *els = json_array();
	if (!els || json_array_append_new(els, mrkdwn(t)) < 0) {
		json_decref(els);
		return NULL;
	}
	return block("context", "elements", els);
}

static bool utf8_valid(const char *s, size_t n)
{
	uint32_t cp;
	for (size_t i = 0, k; i < n; i += k)
		if ((k = text_utf8_next((const unsigned char *)s + i, n - i, &cp)) == 0)
			return false;
	return true;
}

/* Whether a button for url can be made (else it is left out). */
static bool button_usable(const char *url)
{
	return url_usable(url, SLACK_URL_MAX);
}

/* A button; the caller checked button_usable(url). With interactivity it
 * carries the value "<incident id>:<episode>" and no url (the click comes
 * back signed to /v1/slack/actions); without, the url of the confirm page
 * and no value. */
static json_t *button(const char *label, const char *action_id, const char *url,
		      const struct slack_incident_view *v, const char *style)
{
	json_t *b = json_object();
	char value[64];
	int vlen = snprintf(value, sizeof(value), "%s:%d", v->id, v->episode > 0 ? v->episode : 1);

	if (!b || json_object_set_new(b, "type", json_string("button")) < 0 ||
	    json_object_set_new(b, "text", plain(label, SLACK_BUTTON_TEXT_MAX)) < 0 ||
	    json_object_set_new(b, "action_id", json_string(action_id)) < 0)
		goto fail;
	if (!v->interactive && json_object_set_new(b, "url", json_string(url)) < 0)
		goto fail;
	if (v->interactive && vlen > 0 && (size_t)vlen < sizeof(value) &&
	    (size_t)vlen <= SLACK_VALUE_MAX && utf8_valid(value, (size_t)vlen) &&
	    json_object_set_new(b, "value", json_stringn(value, (size_t)vlen)) < 0)
		goto fail;
	if (style && json_object_set_new(b, "style", json_string(style)) < 0)
		goto fail;
	return b;
fail:
	json_decref(b);
	return NULL;
}

static int push(json_t *arr, json_t *v)
{
	return json_array_append_new(arr, v);
}

/* ---- what an incident looks like ---- */

static const struct {
	const char *state, *word;
} state_words[] = {
    {"pending", "Pending"},
    {"acting", "Rolling back"},
    {"rolled_back", "Rolled back"},
    {"action_failed", "Rollback failed"},
    {"dry_run", "Dry run"},
    {"held", "Held"},
    {"awaiting_approval", "Awaiting approval"},
    {"effective", "Rollback effective"},
    {"ineffective", "Rollback ineffective"},
    {"acknowledged", "Acknowledged"},
    {"resolved", "Resolved"},
    {"unknown", "Outcome unknown"},
};

/* Plain words for a state; an unknown state is shown as it is. */
static const char *state_word(const char *state)
{
	if (!is_set(state))
		return "Incident";
	for (size_t i = 0; i < sizeof(state_words) / sizeof(state_words[0]); i++)
		if (strcmp(state, state_words[i].state) == 0)
			return state_words[i].word;
	return state;
}

/* "45s", "3m12s", "2h5m", "3d4h": the two largest units, zeros left out. */
static void format_age(int64_t ms, char *out, size_t sz)
{
	int64_t s = ms / 1000, d = s / 86400, h = s % 86400 / 3600, m = s % 3600 / 60, sec = s % 60;
	int64_t big, small;
	char bu, su;

	if (d)
		big = d, bu = 'd', small = h, su = 'h';
	else if (h)
		big = h, bu = 'h', small = m, su = 'm';
	else if (m)
		big = m, bu = 'm', small = sec, su = 's';
	else
		big = sec, bu = 's', small = 0, su = 0;
	if (small)
		snprintf(out, sz, "%lld%c%lld%c", (long long)big, bu, (long long)small, su);
	else
		snprintf(out, sz, "%lld%c", (long long)big, bu);
}

/* How long the alert has fired, or "" when unknown. */
static void incident_age(const struct slack_incident_view *v, char *out, size_t sz)
{
	struct timestamp st = v->alert_started;
	out[0] = '\0';
	if ((st.sec == 0 && st.nsec == 0) || timestamp_is_zero(st))
		return;
	int64_t ms = timestamp_diff_ms(v->now, st);
	if (ms >= 0)
		format_age(ms, out, sz);
}

/* "exec ok (exit 0)", "http failed (HTTP 503)", "exec timeout". */
static void t_action_result(struct text *t, const struct slack_action_view *a)
{
	char num[32];
	const char *result = is_set(a->result) ? a->result : "unknown";

	t_lit(t, "*");
	t_add(t, is_set(a->type) ? a->type : "action", 32, T_MRKDWN | T_ONELINE);
	t_lit(t, "* ");
	t_add(t, result, 32, T_MRKDWN | T_ONELINE);
	num[0] = '\0';
	if (a->type && strcmp(a->type, "http") == 0 && a->status_code > 0)
		snprintf(num, sizeof(num), " (HTTP %d)", a->status_code);
	else if (a->type && strcmp(a->type, "exec") == 0 && a->exit_code >= 0 &&
		 (strcmp(result, "ok") == 0 || strcmp(result, "failed") == 0))
		snprintf(num, sizeof(num), " (exit %d)", a->exit_code);
	t_lit(t, num);
}

static bool acknowledged(const struct slack_incident_view *v)
{
	return is_set(v->acknowledged_by);
}

static void t_fallback_one(struct text *t, const struct slack_incident_view *v)
{
	t_add(t, state_word(v->state), FIELD_SHORT, T_MRKDWN | T_ONELINE);
	t_lit(t, ": ");
	t_add(t, is_set(v->rule) ? v->rule : "incident", FIELD_RULE, T_MRKDWN | T_ONELINE);
	if (is_set(v->service)) {
		t_lit(t, " on ");
		t_add(t, v->service, FIELD_SERVICE, T_MRKDWN | T_ONELINE);
	}
	t_lit(t, " (");
	t_add(t, v->id, FIELD_SHORT, T_MRKDWN | T_ONELINE);
	t_lit(t, ")");
}

/* ---- one incident ---- */

static int one_incident(const struct slack_incident_view *v, json_t *blocks, json_t **fallback)
{
	struct text t;
	char age[48];
	json_t *els = NULL;
	int ret = -1;

	/* Fallback text: notifications and clients without blocks. */
	t_init(&t, SLACK_TEXT_MAX);
	t_fallback_one(&t, v);
	*fallback = t_json(&t);
	t_release(&t);
	if (!*fallback)
		return -1;

	t_init(&t, SLACK_HEADER_MAX);
	t_add(&t, state_word(v->state), 64, T_ONELINE);
	t_lit(&t, ": ");
	t_add(&t, is_set(v->rule) ? v->rule : v->id, SLACK_HEADER_MAX, T_ONELINE);
	if (push(blocks, header(&t)) < 0)
		goto out;
	t_release(&t);

	t_init(&t, SLACK_TEXT_MAX);
	if (is_set(v->rule)) {
		t_lit(&t, "*Rule:* ");
		t_add(&t, v->rule, FIELD_RULE, T_MRKDWN | T_ONELINE);
		t_lit(&t, "\n");
	}
	if (is_set(v->service)) {
		t_lit(&t, "*Service:* ");
		t_add(&t, v->service, FIELD_SERVICE, T_MRKDWN | T_ONELINE);
		t_lit(&t, "\n");
	}
	t_lit(&t, "*State:* ");
	t_add(&t, state_word(v->state), FIELD_SHORT, T_MRKDWN | T_ONELINE);
	t_lit(&t, "\n");
	if (is_set(v->value) || is_set(v->threshold)) {
		t_lit(&t, is_set(v->value) ? "*Value:* " : "*Threshold:* ");
		if (is_set(v->value))
			t_add(&t, v->value, FIELD_SHORT, T_MRKDWN | T_ONELINE);
		if (is_set(v->value) && is_set(v->threshold))
			t_lit(&t, " (threshold: ");
		if (is_set(v->threshold))
			t_add(&t, v->threshold, FIELD_SHORT, T_MRKDWN | T_ONELINE);
		if (is_set(v->value) && is_set(v->threshold))
			t_lit(&t, ")");
		t_lit(&t, "\n");
	}
	incident_age(v, age, sizeof(age));
	if (age[0]) {
		t_lit(&t, "*Firing for:* ");
		t_lit(&t, age);
		t_lit(&t, "\n");
	}
	t_lit(&t, "*Incident:* ");
	t_add(&t, v->id, FIELD_SHORT, T_MRKDWN | T_ONELINE);
	if (push(blocks, section(&t)) < 0)
		goto out;
	t_release(&t);

	size_t shown =
	    v->n_actions < SLACK_MAX_ACTIONS_SHOWN ? v->n_actions : SLACK_MAX_ACTIONS_SHOWN;
	for (size_t i = 0; i < shown && v->actions; i++) {
		const struct slack_action_view *a = &v->actions[i];
		char num[64];
		t_init(&t, SLACK_TEXT_MAX);
		if (v->n_actions > 1) {
			snprintf(num, sizeof(num), "Action %zu of %zu: ", i + 1, v->n_actions);
			t_lit(&t, num);
		} else {
			t_lit(&t, "Action: ");
		}
		t_action_result(&t, a);
		if (is_set(a->output)) {
			/* Surrounding blank space says nothing; the tail of the
			 * output is where commands say what went wrong. */
			const char *o = a->output, *e = o + strlen(o);
			while (o < e && strchr(" \t\r\n", *o))
				o++;
			while (e > o && strchr(" \t\r\n", e[-1]))
				e--;
			if (o < e) {
				t_lit(&t, "\n```\n");
				size_t room = t_room(&t) > 4 ? t_room(&t) - 4 : 0;
				t_addn(&t, o, (size_t)(e - o),
				       room < SLACK_OUTPUT_MAX ? room : SLACK_OUTPUT_MAX,
				       T_MRKDWN | T_CODE | T_TAIL);
				t_lit(&t, "\n```");
			}
		}
		if (push(blocks, section(&t)) < 0)
			goto out;
		t_release(&t);
	}
	if (v->actions && v->n_actions > shown) {
		char more[64];
		snprintf(more, sizeof(more), "and %zu more actions", v->n_actions - shown);
		t_init(&t, SLACK_TEXT_MAX);
		t_lit(&t, more);
		if (push(blocks, context1(&t)) < 0)
			goto out;
		t_release(&t);
	}

	if (is_set(v->note)) {
		t_init(&t, SLACK_TEXT_MAX);
		t_add(&t, v->note, SLACK_TEXT_MAX, T_MRKDWN);
		if (push(blocks, section(&t)) < 0)
			goto out;
		t_release(&t);
	}

	if (url_usable(v->generator_url, SLACK_TEXT_MAX) ||
	    url_usable(v->external_url, SLACK_TEXT_MAX)) {
		t_init(&t, SLACK_TEXT_MAX);
		t_link(&t, v->generator_url, "Prometheus");
		if (url_usable(v->generator_url, SLACK_TEXT_MAX) &&
		    url_usable(v->external_url, SLACK_TEXT_MAX) && t.b.len > 0)
			t_lit(&t, " · ");
		t_link(&t, v->external_url, "Alertmanager");
		if (t.b.len > 0 && push(blocks, context1(&t)) < 0)
			goto out;
		t_release(&t);
	}

	if (acknowledged(v)) {
		t_init(&t, SLACK_TEXT_MAX);
		t_lit(&t, "Acknowledged by *");
		t_add(&t, v->acknowledged_by, FIELD_SHORT, T_MRKDWN | T_ONELINE);
		t_lit(&t, "*");
		if (push(blocks, context1(&t)) < 0)
			goto out;
		t_release(&t);
	}

	els = json_array();
	if (!els)
		goto out;
	if (!acknowledged(v) && button_usable(v->ack_url) &&
	    push(els, button("Acknowledge", "ack", v->ack_url, v, NULL)) < 0)
		goto out;
	if (button_usable(v->approve_url) &&
	    push(els, button("Approve", "approve", v->approve_url, v, "primary")) < 0)
		goto out;
	if (json_array_size(els) > 0) {
		json_t *b = block("actions", "elements", els);
		els = NULL; /* stolen */
		if (push(blocks, b) < 0)
			goto out;
	}
	ret = 0;
out:
	t_release(&t);
	json_decref(els);
	if (ret < 0) {
		json_decref(*fallback);
		*fallback = NULL;
	}
	return ret;
}

/* ---- a burst of incidents ---- */

static json_t *compact_section(const struct slack_incident_view *v)
{
	struct text t;
	char age[48];
	json_t *sec, *acc = NULL;
	bool approve = button_usable(v->approve_url);
	bool ack = !acknowledged(v) && button_usable(v->ack_url);

	t_init(&t, SLACK_TEXT_MAX);
	t_lit(&t, "*");
	t_add(&t, state_word(v->state), FIELD_COMPACT, T_MRKDWN | T_ONELINE);
	t_lit(&t, ":* ");
	t_add(&t, is_set(v->rule) ? v->rule : "incident", FIELD_COMPACT, T_MRKDWN | T_ONELINE);
	if (is_set(v->service)) {
		t_lit(&t, " on ");
		t_add(&t, v->service, FIELD_COMPACT, T_MRKDWN | T_ONELINE);
	}
	t_lit(&t, "\n");
	if (is_set(v->value)) {
		t_add(&t, v->value, FIELD_COMPACT, T_MRKDWN | T_ONELINE);
		if (is_set(v->threshold)) {
			t_lit(&t, " (");
			t_add(&t, v->threshold, FIELD_COMPACT, T_MRKDWN | T_ONELINE);
			t_lit(&t, ")");
		}
		t_lit(&t, " · ");
	}
	incident_age(v, age, sizeof(age));
	if (age[0]) {
		t_lit(&t, "for ");
		t_lit(&t, age);
		t_lit(&t, " · ");
	}
	t_add(&t, v->id, FIELD_COMPACT, T_MRKDWN | T_ONELINE);
	if (v->actions && v->n_actions > 0) {
		size_t shown = v->n_actions < 3 ? v->n_actions : 3;
		t_lit(&t, "\n");
		for (size_t i = 0; i < shown; i++) {
			if (i)
				t_lit(&t, ", ");
			t_action_result(&t, &v->actions[i]);
		}
		if (v->n_actions > shown) {
			char more[48];
			snprintf(more, sizeof(more), " and %zu more", v->n_actions - shown);
			t_lit(&t, more);
		}
	}
	if (is_set(v->note)) {
		t_lit(&t, "\n");
		t_add(&t, v->note, FIELD_NOTE_COMPACT, T_MRKDWN | T_ONELINE);
	}
	if (acknowledged(v)) {
		t_lit(&t, "\nAcknowledged by *");
		t_add(&t, v->acknowledged_by, FIELD_COMPACT, T_MRKDWN | T_ONELINE);
		t_lit(&t, "*");
	}
	/* Links, as far as they fit whole. */
	if (url_usable(v->generator_url, SLACK_TEXT_MAX)) {
		t_lit(&t, "\n");
		t_link(&t, v->generator_url, "Prometheus");
	}
	if (approve && ack) {
		t_lit(&t, "\n");
		t_link(&t, v->ack_url, "Acknowledge");
	}
	sec = section(&t);
	t_release(&t);
	if (!sec)
		return NULL;
	if (approve)
		acc = button("Approve", "approve", v->approve_url, v, "primary");
	else if (ack)
		acc = button("Acknowledge", "ack", v->ack_url, v, NULL);
	else
		return sec;
	if (json_object_set_new(sec, "accessory", acc) < 0) {
		json_decref(sec);
		return NULL;
	}
	return sec;
}

static int many_incidents(const struct slack_incident_view *v, size_t n, json_t *blocks,
			  json_t **fallback)
{
	struct text t;
	char num[64];
	/* A header, the incidents, and "and N more" when they do not all fit. */
	size_t shown = n <= SLACK_MAX_BLOCKS - 1 ? n : SLACK_MAX_BLOCKS - 2;

	t_init(&t, SLACK_TEXT_MAX);
	snprintf(num, sizeof(num), "%zu incidents: ", n);
	t_lit(&t, num);
	for (size_t i = 0; i < n && !t.full; i++) {
		if (i)
			t_lit(&t, "; ");
		t_fallback_one(&t, &v[i]);
	}
	*fallback = t_json(&t);
	t_release(&t);
	if (!*fallback)
		return -1;

	t_init(&t, SLACK_HEADER_MAX);
	snprintf(num, sizeof(num), "%zu rollbackd incidents", n);
	t_lit(&t, num);
	if (push(blocks, header(&t)) < 0)
		goto fail;
	t_release(&t);
	for (size_t i = 0; i < shown; i++)
		if (push(blocks, compact_section(&v[i])) < 0)
			goto fail;
	if (shown < n) {
		t_init(&t, SLACK_TEXT_MAX);
		snprintf(num, sizeof(num), "and %zu more incidents", n - shown);
		t_lit(&t, num);
		if (push(blocks, context1(&t)) < 0)
			goto fail;
		t_release(&t);
	}
	return 0;
fail:
	t_release(&t);
	json_decref(*fallback);
	*fallback = NULL;
	return -1;
}

/* Add "text" and "blocks" for v[0..n) to root. */
static int add_message(json_t *root, const struct slack_incident_view *v, size_t n)
{
	json_t *blocks = NULL, *fallback = NULL;
	int r;

	if (!v || n == 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!v[i].id)
			return -1;
	blocks = json_array();
	if (!blocks)
		return -1;
	r = n == 1 ? one_incident(v, blocks, &fallback) : many_incidents(v, n, blocks, &fallback);
	if (r < 0) {
		json_decref(blocks);
		return -1;
	}
	if (json_object_set_new(root, "text", fallback) < 0 ||
	    json_object_set_new(root, "blocks", blocks) < 0)
		return -1;
	return 0;
}

/* Serialize root (whose reference this takes) onto out. */
static int dump(json_t *root, struct buf *out)
{
	char *s;
	int r;

	if (!root)
		return -1;
	s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(root);
	if (!s)
		return -1;
	r = buf_adds(out, s);
	free(s);
	return r;
}

int slack_message(const struct slack_incident_view *v, size_t n, struct buf *out)
{
	json_t *root = json_object();
	if (!root || add_message(root, v, n) < 0) {
		json_decref(root);
		return -1;
	}
	return dump(root, out);
}

/* A string we send as is (a channel, a ts): non-empty valid UTF-8 of at
 * most 255 bytes. */
static json_t *id_string(const char *s)
{
	size_t n;
	if (!s)
		return NULL;
	n = strnlen(s, 256);
	if (n == 0 || n > 255 || !utf8_valid(s, n))
		return NULL;
	return json_stringn(s, n);
}

int slack_post_message(const char *channel, const struct slack_incident_view *v, struct buf *out)
{
	json_t *root = json_object();
	if (!root || json_object_set_new(root, "channel", id_string(channel)) < 0 ||
	    add_message(root, v, 1) < 0 ||
	    json_object_set_new(root, "unfurl_links", json_false()) < 0 ||
	    json_object_set_new(root, "unfurl_media", json_false()) < 0) {
		json_decref(root);
		return -1;
	}
	return dump(root, out);
}

int slack_update_message(const char *channel, const char *ts, const struct slack_incident_view *v,
			 struct buf *out)
{
	json_t *root = json_object();
	if (!root || json_object_set_new(root, "channel", id_string(channel)) < 0 ||
	    json_object_set_new(root, "ts", id_string(ts)) < 0 || add_message(root, v, 1) < 0) {
		json_decref(root);
		return -1;
	}
	return dump(root, out);
}

int slack_thread_reply(const char *channel, const char *thread_ts, const char *text, bool broadcast,
		       struct buf *out)
{
	struct text t;
	json_t *root;

	if (!text || !text[0])
		return -1;
	t_init(&t, SLACK_TEXT_MAX);
	t_add(&t, text, SLACK_TEXT_MAX, T_MRKDWN);
	root = json_object();
	if (!root || json_object_set_new(root, "channel", id_string(channel)) < 0 ||
	    json_object_set_new(root, "thread_ts", id_string(thread_ts)) < 0 ||
	    json_object_set_new(root, "text", t_json(&t)) < 0 ||
	    (broadcast && json_object_set_new(root, "reply_broadcast", json_true()) < 0) ||
	    json_object_set_new(root, "unfurl_links", json_false()) < 0 ||
	    json_object_set_new(root, "unfurl_media", json_false()) < 0) {
		t_release(&t);
		json_decref(root);
		return -1;
	}
	t_release(&t);
	return dump(root, out);
}

int slack_response_update(const char *text, struct buf *out)
{
	struct text t;
	json_t *root;

	if (!text)
		return -1;
	t_init(&t, SLACK_TEXT_MAX);
	t_add(&t, text, SLACK_TEXT_MAX, T_MRKDWN);
	root = json_object();
	if (!root || json_object_set_new(root, "replace_original", json_false()) < 0 ||
	    json_object_set_new(root, "response_type", json_string("in_channel")) < 0 ||
	    json_object_set_new(root, "text", t_json(&t)) < 0) {
		t_release(&t);
		json_decref(root);
		return -1;
	}
	t_release(&t);
	return dump(root, out);
}

int slack_response_replace(const struct slack_incident_view *v, struct buf *out)
{
	json_t *root = json_object();
	if (!root || json_object_set_new(root, "replace_original", json_true()) < 0 ||
	    add_message(root, v, 1) < 0) {
		json_decref(root);
		return -1;
	}
	return dump(root, out);
}

/* ---- Web API replies ---- */

static int copy_str(json_t *s, char *dst, size_t sz)
{
	const char *v = json_string_value(s);
	size_t n;
	if (!v)
		return -1;
	n = json_string_length(s);
	if (n == 0 || n >= sz || memchr(v, '\0', n))
		return -1;
	memcpy(dst, v, n + 1);
	return 0;
}

int slack_parse_post_reply(const char *body, size_t len, char *channel, size_t chsz, char *ts,
			   size_t tssz)
{
	json_t *root;
	int ret = -1;

	if (chsz == 0 || tssz == 0)
		return -1;
	channel[0] = ts[0] = '\0';
	if (!body || len > REPLY_MAX)
		return -1;
	root = json_loadb(body, len, 0, NULL);
	if (!json_is_object(root) || !json_is_true(json_object_get(root, "ok")))
		goto out;
	if (copy_str(json_object_get(root, "channel"), channel, chsz) < 0 ||
	    copy_str(json_object_get(root, "ts"), ts, tssz) < 0) {
		channel[0] = ts[0] = '\0';
		goto out;
	}
	ret = 0;
out:
	json_decref(root);
	return ret;
}

int slack_reply_error(const char *body, size_t len, char *err, size_t errsz)
{
	json_t *root, *e;
	int ret = -1;

	if (errsz < 4)
		return -1;
	err[0] = '\0';
	if (!body || len > REPLY_MAX)
		return -1;
	root = json_loadb(body, len, 0, NULL);
	e = json_object_get(root, "error");
	if (json_is_object(root) && json_is_false(json_object_get(root, "ok")) &&
	    json_is_string(e)) {
		text_show(json_string_value(e), json_string_length(e), err, errsz);
		ret = 0;
	}
	json_decref(root);
	return ret;
}

/* ---- request signatures ---- */

enum slack_sig slack_verify(const struct secret *signing_secret, const char *timestamp_hdr,
			    const char *signature_hdr, const unsigned char *body, size_t len,
			    int64_t now)
{
	static const char pfx[] = "v0=";
	unsigned char got[MAC_LEN], want[MAC_LEN];
	crypto_auth_hmacsha256_state st;
	int64_t t;
	bool match;

	if (!is_set(timestamp_hdr) || !is_set(signature_hdr))
		return SLACK_SIG_MISSING;
	size_t ts_len = strnlen(timestamp_hdr, TS_DIGITS + 1); /* 1..19 digits within int64 */
	if (ts_len > TS_DIGITS || text_parse_digits(timestamp_hdr, ts_len, &t) < 0)
		return SLACK_SIG_MALFORMED;
	if (strncmp(signature_hdr, pfx, 3) != 0 ||
	    auth_hex_decode(signature_hdr + 3, strnlen(signature_hdr + 3, 2 * MAC_LEN + 1), got,
			    MAC_LEN) < 0)
		return SLACK_SIG_MALFORMED;
	if (!signing_secret || !secret_is_set(signing_secret) || (len > 0 && !body) ||
	    sodium_init() < 0)
		return SLACK_SIG_BAD;

	/* The timestamp exactly as sent: it is what Slack signed. */
	crypto_auth_hmacsha256_init(&st, signing_secret->data, signing_secret->len);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)"v0:", 3);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)timestamp_hdr,
				      strlen(timestamp_hdr));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)":", 1);
	if (len)
		crypto_auth_hmacsha256_update(&st, body, len);
	crypto_auth_hmacsha256_final(&st, want);
	sodium_memzero(&st, sizeof(st));
	match = sodium_memcmp(want, got, MAC_LEN) == 0;
	sodium_memzero(want, sizeof(want));
	if (!match)
		return SLACK_SIG_BAD;
	/* The distance of two int64 always fits in a uint64. */
	uint64_t d = t >= now ? (uint64_t)t - (uint64_t)now : (uint64_t)now - (uint64_t)t;
	return d > SLACK_SIG_WINDOW ? SLACK_SIG_STALE : SLACK_SIG_OK;
}

const char *slack_sig_message(enum slack_sig s)
{
	switch (s) {
	case SLACK_SIG_OK:
		return "ok";
	case SLACK_SIG_MISSING:
		return "missing X-Slack-Signature or X-Slack-Request-Timestamp header";
	case SLACK_SIG_MALFORMED:
		return "malformed X-Slack-Signature or X-Slack-Request-Timestamp header";
	case SLACK_SIG_STALE:
		return "Slack request timestamp outside the 5-minute window";
	case SLACK_SIG_BAD:
		return "invalid Slack signature";
	}
	return "invalid Slack signature";
}

/* ---- interactivity payloads ---- */

/* The decoded value of the one "payload" field, malloc'd, or NULL with err
 * set. */
static char *form_payload(const char *body, size_t len, size_t *out_len, struct error *err)
{
	const char *val = NULL;
	size_t vlen = 0, i = 0;
	char *dst;

	while (i < len) {
		size_t start = i, end;
		while (i < len && body[i] != '&')
			i++;
		end = i++;
		if (end - start >= 8 && memcmp(body + start, "payload=", 8) == 0) {
			if (val) {
				error_set(err, "payload: given more than once");
				return NULL;
			}
			val = body + start + 8;
			vlen = end - start - 8;
		}
	}
	if (!val) {
		error_set(err, "payload: missing form field 'payload'");
		return NULL;
	}
	dst = malloc(vlen + 1);
	if (!dst) {
		error_set(err, "payload: out of memory");
		return NULL;
	}
	if (text_form_decode(val, vlen, dst, vlen + 1, out_len, true) != TEXT_FORM_OK) {
		free(dst);
		error_set(err, "payload: malformed %%-escape");
		return NULL;
	}
	return dst;
}

/* Code points no name we record may hold: controls, line separators,
 * bidirectional overrides. */
static bool has_control(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t n = strlen(s);
	uint32_t cp;
	for (size_t i = 0, k; i < n; i += k) {
		k = text_utf8_next(u + i, n - i, &cp);
		if (k == 0 || cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x2028 ||
		    cp == 0x2029 || (cp >= 0x202a && cp <= 0x202e) ||
		    (cp >= 0x2066 && cp <= 0x2069))
			return true;
	}
	return false;
}

/* Copy s into dst (sz bytes), cut on a UTF-8 boundary when it does not fit. */
static void copy_cut(const char *s, char *dst, size_t sz)
{
	size_t n = strlen(s);
	if (n >= sz) {
		n = sz - 1;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(dst, s, n);
	dst[n] = '\0';
}

static bool is_incident_id(const char *s)
{
	if (strlen(s) != 20 || memcmp(s, "inc-", 4) != 0)
		return false;
	for (size_t i = 4; i < 20; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static const char *show(const char *s, char *buf, size_t sz)
{
	return text_shows(s, buf, sz);
}

int slack_parse_action(const char *body, size_t len, struct slack_action *out, struct error *err)
{
	char *payload = NULL, q[64];
	size_t plen = 0;
	json_t *root = NULL, *a0, *user;
	json_error_t je;
	const char *s, *name;
	int ret = -1;

	memset(out, 0, sizeof(*out));
	if (len > SLACK_ACTION_BODY_MAX) {
		error_set(err, "payload: body over %d bytes", SLACK_ACTION_BODY_MAX);
		goto out;
	}
	if (!body && len > 0) {
		error_set(err, "payload: missing body");
		goto out;
	}
	payload = form_payload(body ? body : "", len, &plen, err);
	if (!payload)
		goto out;
	root = json_loadb(payload, plen, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		error_set(err, "payload: invalid JSON at line %d column %d: %s", je.line, je.column,
			  show(je.text, q, sizeof(q)));
		goto out;
	}
	if (!json_is_object(root)) {
		error_set(err, "payload: expected a JSON object");
		goto out;
	}
	s = json_string_value(json_object_get(root, "type"));
	if (!s) {
		error_set(err, "payload.type: missing");
		goto out;
	}
	if (strcmp(s, "block_actions") != 0) {
		error_set(err, "payload.type: expected 'block_actions', got '%s'",
			  show(s, q, sizeof(q)));
		goto out;
	}

	a0 = json_array_get(json_object_get(root, "actions"), 0);
	if (!json_is_object(a0)) {
		error_set(err, "payload.actions: missing or empty");
		goto out;
	}
	s = json_string_value(json_object_get(a0, "action_id"));
	if (!s) {
		error_set(err, "payload.actions[0].action_id: missing");
		goto out;
	}
	if (strcmp(s, "ack") != 0 && strcmp(s, "approve") != 0) {
		error_set(err, "payload.actions[0].action_id: unknown action '%s'",
			  show(s, q, sizeof(q)));
		goto out;
	}
	memcpy(out->action, s, strlen(s) + 1);
	s = json_string_value(json_object_get(a0, "value"));
	if (!s) {
		error_set(err, "payload.actions[0].value: missing");
		goto out;
	}
	/* "inc-<16 hex>:<episode>": a button acts on the episode it was posted for */
	const char *colon = strchr(s, ':');
	char id[21];
	int64_t ep = 0;
	if (colon && colon - s == 20) {
		memcpy(id, s, 20);
		id[20] = '\0';
	}
	if (!colon || colon - s != 20 || !is_incident_id(id) || colon[1] == '0' ||
	    strlen(colon + 1) > 9 || text_parse_digits(colon + 1, strlen(colon + 1), &ep) < 0 ||
	    ep < 1) {
		error_set(err,
			  "payload.actions[0].value: expected '<incident id>:<episode>', got '%s'",
			  show(s, q, sizeof(q)));
		goto out;
	}
	memcpy(out->incident, id, 21);
	out->episode = (int)ep;

	user = json_object_get(root, "user");
	if (!json_is_object(user)) {
		error_set(err, "payload.user: missing");
		goto out;
	}
	s = json_string_value(json_object_get(user, "id"));
	if (!s || !*s) {
		error_set(err, "payload.user.id: missing");
		goto out;
	}
	if (strlen(s) >= sizeof(out->user_id) || has_control(s) || strchr(s, ' ')) {
		error_set(err, "payload.user.id: not a user id: '%s'", show(s, q, sizeof(q)));
		goto out;
	}
	memcpy(out->user_id, s, strlen(s) + 1);
	name = "payload.user.username";
	s = json_string_value(json_object_get(user, "username"));
	if (!s || !*s) {
		name = "payload.user.name";
		s = json_string_value(json_object_get(user, "name"));
	}
	if (!s || !*s) {
		name = "payload.user.id";
		s = out->user_id;
	}
	if (has_control(s)) {
		error_set(err, "%s: contains a control character", name);
		goto out;
	}
	copy_cut(s, out->user, sizeof(out->user));

	s = json_string_value(json_object_get(root, "response_url"));
	if (!s) {
		error_set(err, "payload.response_url: missing");
		goto out;
	}
	if (strlen(s) > sizeof(out->response_url) - 1) {
		error_set(err, "payload.response_url: longer than %zu bytes",
			  sizeof(out->response_url) - 1);
		goto out;
	}
	if (!url_usable(s, sizeof(out->response_url) - 1)) {
		error_set(err, "payload.response_url: not an http(s) URL: '%s'",
			  show(s, q, sizeof(q)));
		goto out;
	}
	memcpy(out->response_url, s, strlen(s) + 1);
	ret = 0;
out:
	if (ret < 0)
		memset(out, 0, sizeof(*out));
	json_decref(root);
	free(payload);
	return ret;
}
