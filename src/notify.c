/*
 * notify: the outbox that tells Slack and PagerDuty (SPEC §9).
 *
 * notify_incident runs on any thread, under the engine's lock: it only
 * copies the event into a self-contained JSON notice, journals it as a
 * notify_intent and hands it to the loop through a mutex-protected queue
 * and event_active. Everything else runs on the loop: the outbox, the
 * timers and httpc. Messages are built at send time from the notice, so
 * signed links get a fresh expiry and no secret or signature is ever
 * journaled.
 *
 * Delivery is at least once: a notice leaves the outbox only when a
 * notify_sent or notify_failed record says so (replay rebuilds the rest).
 * PagerDuty: one event per notice, in order per incident. Slack: one post
 * at a time and at most one per slack_interval; a webhook gets the ready
 * notices coalesced into one message, the bot API one living message per
 * incident (chat.postMessage, then chat.update).
 *
 * Never: block or do I/O on a caller's thread, put a secret (webhook URL,
 * bot token, routing key) or a response_url in a log line, a journal
 * record, a metric or an error text.
 */
#include "rollbackd/notify.h"

#include <event2/event.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rollbackd/buf.h"
#include "rollbackd/httpc.h"
#include "rollbackd/journal.h"
#include "rollbackd/json.h"
#include "rollbackd/links.h"
#include "rollbackd/log.h"
#include "rollbackd/metrics.h"
#include "rollbackd/pagerduty.h"
#include "rollbackd/slack.h"
#include "rollbackd/text.h"

#define NOTIFY_ID_MAX 31		 /* "n-" + 16 hex; replayed ids up to this */
#define RETRY_BASE_MS 1000		 /* between delivery rounds, doubled... */
#define RETRY_MAX_MS (5 * 60 * 1000)	 /* ...up to this */
#define SLACK_INTERVAL_MS 1000		 /* least time between two Slack posts */
#define HTTP_TIMEOUT_MS 10000		 /* per attempt */
#define HTTP_RETRIES 2			 /* inside one round, by httpc */
#define HTTP_BACKOFF_MAX_MS 60000	 /* httpc's own backoff cap */
#define HTTP_MAX_RESPONSE 16384		 /* reply bytes kept */
#define SLACK_API_MAX_RESPONSE (1 << 20) /* chat.* replies echo the whole message */
#define SLACK_BATCH_MAX 49		 /* notices in one coalesced message */
#define PD_MAX_INFLIGHT 4		 /* PagerDuty events in flight */
#define RESPONSE_MAX_INFLIGHT 4		 /* response_url posts in flight */
#define SCAN_MAX 256			 /* entries of a channel looked at per pump */
#define OUTBOX_MAX 10000		 /* notices queued or waiting */
#define NOTICE_MAX (512 * 1024)		 /* bytes of one serialized notice */
#define NOTICE_FIELD_MAX 1024		 /* ids, names, states, values */
#define NOTICE_TEXT_MAX 4096		 /* reason, note, urls */
#define NOTICE_MAX_ACTIONS 64		 /* actions kept in a notice */
#define RESPONSE_URL_MAX 3000		 /* as slack.h takes them */
#define RESPONSE_BODY_MAX (512 * 1024)	 /* body posted to a response_url */
#define ERROR_TEXT_MAX 300		 /* bytes of error text journaled */
#define THREADS_MAX 10000		 /* bot mode: incidents whose message we know */
#define THREAD_BUCKETS 1024
#define SLACK_ID_MAX 64 /* channel id or ts */

/* ---- names --------------------------------------------------------------- */

enum channel { CH_SLACK, CH_PAGERDUTY, CH_SLACK_RESPONSE, CH_COUNT };
enum result { R_SENT, R_FAILED, R_RETRIED, R_COUNT };
enum send_mode { SEND_WEBHOOK, SEND_POST, SEND_UPDATE, SEND_PD, SEND_RESPONSE };

static const char *const channel_names[CH_COUNT] = {"slack", "pagerduty", "slack_response"};
static const char *const result_names[R_COUNT] = {"sent", "failed", "retried"};
static const char *const kind_names[] = {
    [NOTIFY_TRIGGER] = "trigger", [NOTIFY_UPDATE] = "update",	  [NOTIFY_ACK] = "acknowledge",
    [NOTIFY_RESOLVE] = "resolve", [NOTIFY_ESCALATE] = "escalate",
};
#define N_KINDS (sizeof(kind_names) / sizeof(kind_names[0]))

static int kind_parse(const char *s, enum notify_kind *out)
{
	for (size_t i = 0; i < N_KINDS; i++) {
		if (strcmp(s, kind_names[i]) == 0) {
			*out = (enum notify_kind)i;
			return 0;
		}
	}
	return -1;
}

static int channel_parse(const char *s, enum channel *out)
{
	for (size_t i = 0; i < CH_COUNT; i++) {
		if (strcmp(s, channel_names[i]) == 0) {
			*out = (enum channel)i;
			return 0;
		}
	}
	return -1;
}

/* ---- state --------------------------------------------------------------- */

/* One notice for one channel, from notify_incident (or replay) until a
 * notify_sent / notify_failed record. */
struct entry {
	struct entry *prev, *next; /* the queue, then the outbox */
	char id[NOTIFY_ID_MAX + 1];
	enum channel ch;
	enum notify_kind kind;
	char *incident; /* "" for slack_response */
	char *notice;	/* JSON object, no secret; NULL for slack_response */
	size_t notice_len;
	char *url, *body; /* slack_response only: never journaled or logged */
	size_t body_len;
	bool journaled; /* its intent is in the journal (or needs none) */
	bool inflight;
	int attempts;	/* HTTP attempts over every round */
	int rounds;	/* failed rounds so far */
	int64_t due_ms; /* monotonic: not before */
};

struct entry_list {
	struct entry *head, *tail;
};

/* Bot mode: the message an incident has (chat.update edits it). */
struct thread {
	struct thread *hnext;	      /* bucket chain */
	struct thread *older, *newer; /* eviction order */
	char channel[SLACK_ID_MAX], ts[SLACK_ID_MAX];
	char incident[]; /* NUL-terminated */
};

/* One HTTP request in flight and the entries it carries. */
struct send {
	struct notify *n;
	enum send_mode mode;
	size_t k;
	struct entry *e[SLACK_BATCH_MAX];
};

struct notify {
	const struct config *_Atomic cfg; /* swapped by notify_set_config */
	struct event_base *base;
	int64_t retry_base_ms, retry_max_ms, slack_interval_ms;

	/* shared with other threads, under qlock */
	pthread_mutex_t qlock;
	struct entry_list queue;
	struct journal *journal;
	bool started;
	_Atomic size_t pending; /* queue + outbox */

	/* the loop's */
	struct event *kick, *timer;
	struct httpc *http;
	struct entry_list outbox;
	bool slack_busy;
	int pd_inflight, resp_inflight;
	int64_t slack_next_ms;
	bool closing;
	struct thread *buckets[THREAD_BUCKETS];
	struct thread *oldest, *newest;
	size_t n_threads;

	/* replay */
	struct json_tok *rtoks;
	size_t rtoks_cap;

	struct metric_child *count[CH_COUNT][R_COUNT];
	struct metric_child *pending_gauge;
};

static void pending_add(struct notify *n, long d)
{
	size_t v;
	if (d >= 0)
		v = atomic_fetch_add(&n->pending, (size_t)d) + (size_t)d;
	else
		v = atomic_fetch_sub(&n->pending, (size_t)-d) - (size_t)-d;
	metric_set(n->pending_gauge, (int64_t)v);
}

static void list_push(struct entry_list *l, struct entry *e)
{
	e->next = NULL;
	e->prev = l->tail;
	if (l->tail)
		l->tail->next = e;
	else
		l->head = e;
	l->tail = e;
}

static void list_unlink(struct entry_list *l, struct entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		l->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		l->tail = e->prev;
	e->prev = e->next = NULL;
}

static void entry_free(struct entry *e)
{
	if (!e)
		return;
	free(e->incident);
	free(e->notice);
	free(e->url);
	free(e->body);
	free(e);
}

static void new_id(char id[NOTIFY_ID_MAX + 1])
{
	unsigned char r[8];
	randombytes_buf(r, sizeof(r));
	id[0] = 'n';
	id[1] = '-';
	sodium_bin2hex(id + 2, 2 * sizeof(r) + 1, r, sizeof(r));
}

static bool slack_bot(const struct config *c)
{
	return secret_is_set(&c->notify.slack_bot_token) && c->notify.slack_channel &&
	       c->notify.slack_channel[0] && c->notify.slack_api_url && c->notify.slack_api_url[0];
}

static bool channel_configured(const struct config *c, enum channel ch)
{
	switch (ch) {
	case CH_SLACK:
		return secret_is_set(&c->notify.slack_webhook_url) || slack_bot(c);
	case CH_PAGERDUTY:
		return secret_is_set(&c->notify.pagerduty_routing_key) && c->notify.pagerduty_url &&
		       c->notify.pagerduty_url[0];
	default:
		return true;
	}
}

static bool http_url(const char *u)
{
	return u && (strncasecmp(u, "http://", 7) == 0 || strncasecmp(u, "https://", 8) == 0);
}

/* ---- text ---------------------------------------------------------------- */

/* Append s[0..n) as a JSON string that the strict tokenizer takes back:
 * invalid UTF-8 and NUL become U+FFFD. At most max input bytes are kept:
 * the head, or with tail the tail, cut on a character boundary. */
static int add_json_text(struct buf *b, const char *s, size_t n, size_t max, bool tail)
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
	return buf_addf(b, ",\"%s\":", name) | add_json_text(b, s, strlen(s), max, false);
}

/* Replace every occurrence of secret in s (NUL-terminated) in place. */
static void redact(char *s, const char *secret, size_t slen)
{
	static const char mark[] = "<redacted>";
	char *p;

	if (!secret || slen == 0)
		return;
	while ((p = memmem(s, strlen(s), secret, slen))) {
		size_t tail = strlen(p + slen);
		if (slen >= sizeof(mark) - 1) {
			memcpy(p, mark, sizeof(mark) - 1);
			memmove(p + sizeof(mark) - 1, p + slen, tail + 1);
		} else {
			memmove(p, p + slen, tail + 1); /* too short to mark in place */
		}
	}
}

/* Make an error text fit for the journal and logs: every configured secret
 * (and extra, a response_url) replaced before anything is cut, then cut to
 * ERROR_TEXT_MAX on a character boundary, control bytes as '?' (the journal
 * repairs what is not UTF-8). */
static void error_text(const struct notify *n, const char *extra_secret, const char *in,
		       char out[ERROR_TEXT_MAX + 1])
{
	const struct config *c = n->cfg;
	const struct secret *sec[] = {&c->notify.slack_webhook_url, &c->notify.slack_bot_token,
				      &c->notify.pagerduty_routing_key};
	size_t len;
	char *tmp = strdup(in ? in : "");

	if (!tmp) {
		snprintf(out, ERROR_TEXT_MAX + 1, "out of memory");
		return;
	}
	for (size_t i = 0; i < sizeof(sec) / sizeof(sec[0]); i++)
		if (secret_is_set(sec[i]))
			redact(tmp, (const char *)sec[i]->data, sec[i]->len);
	if (extra_secret)
		redact(tmp, extra_secret, strlen(extra_secret));
	len = strlen(tmp);
	if (len > ERROR_TEXT_MAX) {
		len = ERROR_TEXT_MAX;
		while (len > 0 && ((unsigned char)tmp[len] & 0xc0) == 0x80)
			len--;
	}
	for (size_t i = 0; i < len; i++)
		out[i] = (unsigned char)tmp[i] < 0x20 || tmp[i] == 0x7f ? '?' : tmp[i];
	out[len] = '\0';
	sodium_memzero(tmp, strlen(tmp));
	free(tmp);
}

/* "HTTP 400: <the start of the reply>" or curl's message. The whole text
 * is redacted first: a cut could leave the head of a secret behind. */
static void result_text(const struct notify *n, const struct entry *e, const struct httpc_result *r,
			char out[ERROR_TEXT_MAX + 1])
{
	struct buf raw = BUF_INIT;
	int bad = r->error ? buf_adds(&raw, r->error)
			   : buf_addf(&raw, "HTTP %d: ", r->status) |
				 buf_add(&raw, r->body ? r->body : "", r->body ? r->body_len : 0);
	if (bad) {
		snprintf(out, ERROR_TEXT_MAX + 1, "HTTP %d", r->status);
	} else {
		error_text(n, e ? e->url : NULL, raw.data, out);
		sodium_memzero(raw.data, raw.len);
	}
	buf_release(&raw);
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
		       add_json_text(b, l->value, l->value_len, PD_LABEL_VALUE_MAX, false);
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
		       add_json_text(b, a->type, a->type ? strlen(a->type) : 0, 16, false) |
		       buf_adds(b, ",\"result\":") |
		       add_json_text(b, a->result, a->result ? strlen(a->result) : 0, 16, false) |
		       buf_addf(b, ",\"exit_code\":%d,\"status_code\":%d", a->exit_code,
				a->status_code);
		/* Slack shows the first few actions only; the rest need no output. */
		if (a->output && i < SLACK_MAX_ACTIONS_SHOWN && !compact)
			bad |=
			    buf_adds(b, ",\"output\":") |
			    add_json_text(b, a->output, strlen(a->output), SLACK_OUTPUT_MAX, true);
		bad |= buf_addc(b, '}');
	}
	return bad | buf_addc(b, ']');
}

/* The notice: a JSON object with everything the messages are built from,
 * and nothing secret (links are signed at send time). compact leaves out
 * labels and action outputs, for when the whole would pass b's cap. */
static int notice_write(struct buf *b, const struct notify_event *ev, bool compact)
{
	char started[TIMESTAMP_STRLEN];
	timestamp_format(ev->alert_started, started, sizeof(started));
	int bad = buf_addf(b, "{\"kind\":\"%s\"", kind_names[ev->kind]) |
		  add_text_member(b, "incident", ev->incident, NOTICE_FIELD_MAX) |
		  add_text_member(b, "rule", ev->rule, NOTICE_FIELD_MAX) |
		  add_text_member(b, "service", ev->service, NOTICE_FIELD_MAX) |
		  add_text_member(b, "state", ev->state, NOTICE_FIELD_MAX) |
		  add_text_member(b, "value", ev->value, NOTICE_FIELD_MAX) |
		  add_text_member(b, "threshold", ev->threshold, NOTICE_FIELD_MAX) |
		  add_text_member(b, "severity", ev->severity, NOTICE_FIELD_MAX) |
		  add_text_member(b, "reason", ev->reason, NOTICE_TEXT_MAX) |
		  add_text_member(b, "alert_started", started, NOTICE_FIELD_MAX);
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
	       add_text_member(b, "note", ev->note, NOTICE_TEXT_MAX) | buf_addc(b, '}');
	return bad ? -1 : 0;
}

/* A notice read back: every string lives in arena. */
struct notice {
	enum notify_kind kind;
	const char *incident, *rule, *service, *state, *value, *threshold, *severity, *reason;
	const char *generator_url, *external_url, *acknowledged_by, *note;
	struct timestamp alert_started;
	bool awaiting_approval;
	struct label *labels;
	size_t n_labels;
	struct slack_action_view *actions;
	size_t n_actions;
	char *arena; /* decoded strings: never more than the text plus a NUL each */
	size_t used;
};

static void notice_release(struct notice *nt)
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
static int notice_parse(const char *text, size_t len, struct notice *nt)
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
	if (!kind || kind_parse(kind, &nt->kind) < 0 || !nt->incident || !nt->incident[0])
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

/* ---- links ---------------------------------------------------------------- */

/* Signed at send time, so the expiry counts from when the message goes out.
 * Left out (empty) without public_url or links secret. */
static const char *make_link(const struct notify *n, const char *action, const char *id,
			     struct buf *out)
{
	const struct config *c = n->cfg;
	if (!c->public_url || !c->public_url[0] || !secret_is_set(&c->links_secret))
		return NULL;
	int64_t exp = timestamp_now().sec + (c->links_ttl_ms > 0 ? c->links_ttl_ms / 1000 : 0);
	if (links_url(c->public_url, &c->links_secret, action, id, exp, out) < 0)
		return NULL;
	return out->data;
}

static bool wants_ack_link(const struct notice *nt)
{
	return nt->kind != NOTIFY_RESOLVE && !(nt->acknowledged_by && nt->acknowledged_by[0]);
}

/* The Slack view of a notice; links[0..1] hold the signed links. */
static void slack_view(const struct notify *n, const struct notice *nt, struct buf links[2],
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
	if (wants_ack_link(nt))
		v->ack_url = make_link(n, "ack", nt->incident, &links[0]);
	if (nt->awaiting_approval && nt->kind != NOTIFY_RESOLVE)
		v->approve_url = make_link(n, "approve", nt->incident, &links[1]);
}

/* ---- bot mode: an incident's message ---------------------------------------- */

static uint32_t hash_str(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static struct thread **thread_slot(struct notify *n, const char *incident)
{
	struct thread **p = &n->buckets[hash_str(incident) % THREAD_BUCKETS];
	while (*p && strcmp((*p)->incident, incident) != 0)
		p = &(*p)->hnext;
	return p;
}

static void thread_unlink_order(struct notify *n, struct thread *t)
{
	if (t->older)
		t->older->newer = t->newer;
	else
		n->oldest = t->newer;
	if (t->newer)
		t->newer->older = t->older;
	else
		n->newest = t->older;
	t->older = t->newer = NULL;
}

static void thread_forget(struct notify *n, const char *incident)
{
	struct thread **p = thread_slot(n, incident), *t = *p;
	if (!t)
		return;
	*p = t->hnext;
	thread_unlink_order(n, t);
	n->n_threads--;
	free(t);
}

static const struct thread *thread_find(struct notify *n, const char *incident)
{
	return *thread_slot(n, incident);
}

/* Remember (or move) an incident's message; the oldest is forgotten past
 * THREADS_MAX (its next notice then starts a new message). */
static int thread_set(struct notify *n, const char *incident, const char *channel, const char *ts)
{
	struct thread **p = thread_slot(n, incident), *t = *p;

	if (strlen(channel) >= SLACK_ID_MAX || strlen(ts) >= SLACK_ID_MAX)
		return -1;
	if (!t) {
		size_t len = strlen(incident);
		t = calloc(1, sizeof(*t) + len + 1);
		if (!t)
			return -1;
		memcpy(t->incident, incident, len + 1);
		*p = t;
		n->n_threads++;
	} else {
		thread_unlink_order(n, t);
	}
	snprintf(t->channel, sizeof(t->channel), "%s", channel);
	snprintf(t->ts, sizeof(t->ts), "%s", ts);
	t->older = n->newest;
	if (n->newest)
		n->newest->newer = t;
	else
		n->oldest = t;
	n->newest = t;
	if (n->n_threads > THREADS_MAX)
		thread_forget(n, n->oldest->incident);
	return 0;
}

static void threads_free(struct notify *n)
{
	while (n->oldest)
		thread_forget(n, n->oldest->incident);
}

/* ---- journal and outcome ------------------------------------------------------ */

static void jrecord(struct notify *n, const char *type, const struct entry *e, struct buf *m,
		    bool bad)
{
	struct journal *j;

	pthread_mutex_lock(&n->qlock);
	j = n->journal;
	pthread_mutex_unlock(&n->qlock);
	if (!j)
		return;
	if (bad || journal_append(j, type, e->incident, m->data, m->len, NULL) < 0)
		log_error("notify: cannot journal a record; delivery goes on", "type", type, "id",
			  e->id, "channel", channel_names[e->ch], NULL);
}

static void count(struct notify *n, enum channel ch, enum result r)
{
	metric_inc(n->count[ch][r]);
}

static void outbox_drop(struct notify *n, struct entry *e)
{
	list_unlink(&n->outbox, e);
	entry_free(e);
	pending_add(n, -1);
}

static void entry_sent(struct notify *n, struct entry *e, int status, const char *slack_channel,
		       const char *slack_ts)
{
	struct buf m = BUF_INIT;
	int bad =
	    buf_addf(&m, ",\"id\":\"%s\",\"channel\":\"%s\",\"status_code\":%d,\"attempts\":%d",
		     e->id, channel_names[e->ch], status, e->attempts);
	if (slack_channel && slack_ts)
		bad |=
		    buf_adds(&m, ",\"slack_channel\":") |
		    add_json_text(&m, slack_channel, strlen(slack_channel), SLACK_ID_MAX, false) |
		    buf_adds(&m, ",\"slack_ts\":") |
		    add_json_text(&m, slack_ts, strlen(slack_ts), SLACK_ID_MAX, false);
	jrecord(n, "notify_sent", e, &m, bad);
	buf_release(&m);
	count(n, e->ch, R_SENT);
	log_debug("notify: sent", "id", e->id, "channel", channel_names[e->ch], "incident",
		  e->incident, NULL);
	outbox_drop(n, e);
}

/* error must already be free of secrets (error_text). */
static void entry_failed(struct notify *n, struct entry *e, int status, const char *error)
{
	struct buf m = BUF_INIT;
	int bad =
	    buf_addf(&m, ",\"id\":\"%s\",\"channel\":\"%s\",\"status_code\":%d,\"error\":", e->id,
		     channel_names[e->ch], status) |
	    add_json_text(&m, error, strlen(error), ERROR_TEXT_MAX, false) |
	    buf_addf(&m, ",\"attempts\":%d", e->attempts);
	char st[16];
	snprintf(st, sizeof(st), "%d", status);
	jrecord(n, "notify_failed", e, &m, bad);
	buf_release(&m);
	count(n, e->ch, R_FAILED);
	log_warn("notify: not delivered; given up", "id", e->id, "channel", channel_names[e->ch],
		 "incident", e->incident, "status", st, "error", error, NULL);
	outbox_drop(n, e);
}

/* Exponential backoff with full jitter for delivery round `round` (1 after
 * the first failure): uniform in [0, min(max, base * 2^(round-1))], but
 * never less than base, so that a dead endpoint is not hammered. */
static int64_t round_delay_ms(int round, int64_t base, int64_t max)
{
	int64_t d = base;
	for (int i = 1; i < round && d < max; i++)
		d *= 2;
	if (d > max)
		d = max;
	if (d > (int64_t)UINT32_MAX - 1)
		d = (int64_t)UINT32_MAX - 1;
	int64_t r = (int64_t)randombytes_uniform((uint32_t)d + 1);
	return r < base ? base : r;
}

/* A round failed in a way worth retrying: try again later, forever. */
static void entry_retry(struct notify *n, struct entry *e, int64_t delay_ms, int status,
			const char *error)
{
	char st[16], in[32];
	e->rounds++;
	e->due_ms = timestamp_mono_ms() + delay_ms;
	count(n, e->ch, R_RETRIED);
	snprintf(st, sizeof(st), "%d", status);
	snprintf(in, sizeof(in), "%" PRId64, delay_ms);
	log_warn("notify: delivery failed; will retry", "id", e->id, "channel",
		 channel_names[e->ch], "incident", e->incident, "status", st, "error", error,
		 "retry_in_ms", in, NULL);
}

static int64_t next_round_ms(struct notify *n, const struct entry *e)
{
	return round_delay_ms(e->rounds + 1, n->retry_base_ms, n->retry_max_ms);
}

/* ---- sending ----------------------------------------------------------------- */

static void kick(struct notify *n)
{
	event_active(n->kick, EV_READ, 0);
}

static bool retryable(const struct httpc_result *r)
{
	return r->status == 0 || r->status == 429 || (r->status >= 500 && r->status <= 599);
}

static void send_done(const struct httpc_result *res, void *arg);

static struct send *send_new(struct notify *n, enum send_mode mode)
{
	struct send *s = calloc(1, sizeof(*s));
	if (s) {
		s->n = n;
		s->mode = mode;
	}
	return s;
}

static int start(struct notify *n, struct send *s, const char *url, const char *const *headers,
		 const struct buf *body)
{
	struct httpc_request req = {
	    .method = "POST",
	    .url = url,
	    .headers = headers,
	    .body = body->data ? body->data : "",
	    .body_len = body->len,
	    .timeout_ms = HTTP_TIMEOUT_MS,
	    .retries = HTTP_RETRIES,
	    .max_response = HTTP_MAX_RESPONSE,
	    .backoff_base_ms = 500,
	    .backoff_max_ms = HTTP_BACKOFF_MAX_MS,
	};
	/* httpc's messages may quote the URL: never pass them on. */
	struct error err;

	if (s->mode == SEND_WEBHOOK || s->mode == SEND_POST || s->mode == SEND_UPDATE) {
		/* Its own retries keep Slack's pace too: jitter in [interval, 2 interval]. */
		req.backoff_base_ms = 2 * n->slack_interval_ms;
		if (req.backoff_base_ms > HTTP_BACKOFF_MAX_MS)
			req.backoff_base_ms = HTTP_BACKOFF_MAX_MS;
	}
	/* A cut reply would hide the ts of a message that was posted. */
	if (s->mode == SEND_POST || s->mode == SEND_UPDATE)
		req.max_response = SLACK_API_MAX_RESPONSE;
	if (!n->http && !(n->http = httpc_new(n->base))) {
		log_error("notify: cannot start an HTTP client (libcurl missing?)", NULL);
		return -1;
	}
	return httpc_send(n->http, &req, send_done, s, &err);
}

static void mark_inflight(struct notify *n, struct send *s, bool on)
{
	for (size_t i = 0; i < s->k; i++)
		s->e[i]->inflight = on;
	switch (s->mode) {
	case SEND_PD:
		n->pd_inflight += on ? 1 : -1;
		break;
	case SEND_RESPONSE:
		n->resp_inflight += on ? 1 : -1;
		break;
	default:
		n->slack_busy = on;
		break;
	}
}

static const char *const json_headers[] = {"Content-Type: application/json", NULL};

/* 1 when e was dropped (failed for good), else 0. */
static int send_pagerduty(struct notify *n, struct entry *e)
{
	static const enum pd_action actions[] = {
	    [NOTIFY_TRIGGER] = PD_TRIGGER,  [NOTIFY_UPDATE] = PD_TRIGGER,
	    [NOTIFY_ACK] = PD_ACKNOWLEDGE,  [NOTIFY_RESOLVE] = PD_RESOLVE,
	    [NOTIFY_ESCALATE] = PD_TRIGGER,
	};
	const struct config *c = n->cfg;
	struct notice nt;
	struct buf body = BUF_INIT, link = BUF_INIT;
	struct send *s = NULL;
	int dropped = 0;

	if (notice_parse(e->notice, e->notice_len, &nt) < 0) {
		entry_failed(n, e, 0, "the notice cannot be read back");
		return 1;
	}
	struct pd_view v = {
	    .id = nt.incident,
	    .rule = nt.rule,
	    .service = nt.service,
	    .state = nt.state,
	    .severity_label = nt.severity,
	    .escalate = e->kind == NOTIFY_ESCALATE,
	    .summary_extra =
		e->kind == NOTIFY_ESCALATE && nt.note && nt.note[0] ? nt.note : nt.reason,
	    .labels = nt.labels,
	    .n_labels = nt.n_labels,
	    .generator_url = nt.generator_url,
	};
	if (wants_ack_link(&nt))
		v.ack_url = make_link(n, "ack", nt.incident, &link);
	/* The intent's event decides, as journaled. */
	if (pd_event(&v, actions[e->kind], &c->notify.pagerduty_routing_key, &body) < 0) {
		entry_failed(n, e, 0, "cannot build the PagerDuty event (bad routing key?)");
		dropped = 1;
		goto out;
	}
	s = send_new(n, SEND_PD);
	if (s)
		s->e[s->k++] = e;
	if (!s || start(n, s, c->notify.pagerduty_url, json_headers, &body) < 0) {
		free(s);
		entry_retry(n, e, next_round_ms(n, e), 0, "cannot start the request");
		goto out;
	}
	mark_inflight(n, s, true);
out:
	if (body.data)
		sodium_memzero(body.data, body.len); /* it holds the routing key */
	buf_release(&body);
	buf_release(&link);
	notice_release(&nt);
	return dropped;
}

static void send_response(struct notify *n, struct entry *e)
{
	struct buf body = BUF_INIT;
	struct send *s = send_new(n, SEND_RESPONSE);

	body.data = e->body;
	body.len = e->body_len;
	if (s)
		s->e[s->k++] = e;
	if (!s || start(n, s, e->url, json_headers, &body) < 0) {
		free(s);
		entry_failed(n, e, 0, "cannot start the request");
		return;
	}
	mark_inflight(n, s, true);
}

/* One message for the ready Slack notices (webhook): an incident that has
 * several is shown once, as its latest notice says. */
static void send_slack_webhook(struct notify *n, struct entry **batch, size_t k)
{
	struct notice nts[SLACK_BATCH_MAX];
	struct slack_incident_view views[SLACK_BATCH_MAX];
	struct buf links[SLACK_BATCH_MAX][2];
	struct buf body = BUF_INIT;
	size_t nv = 0, good = 0;
	struct send *s = send_new(n, SEND_WEBHOOK);

	memset(links, 0, sizeof(links));
	for (size_t i = 0; i < k; i++) {
		if (notice_parse(batch[i]->notice, batch[i]->notice_len, &nts[good]) < 0) {
			entry_failed(n, batch[i], 0, "the notice cannot be read back");
			continue;
		}
		batch[good++] = batch[i];
	}
	for (size_t i = 0; i < good; i++) {
		bool later = false;
		for (size_t j = i + 1; j < good && !later; j++)
			later = strcmp(batch[j]->incident, batch[i]->incident) == 0;
		if (!later) {
			slack_view(n, &nts[i], links[nv], &views[nv]);
			nv++;
		}
	}
	if (good == 0)
		goto out;
	if (!s || slack_message(views, nv, &body) < 0) {
		log_error("notify: cannot build the Slack message (out of memory?)", NULL);
		goto retry;
	}
	for (size_t i = 0; i < good; i++)
		s->e[s->k++] = batch[i];
	if (start(n, s, (const char *)n->cfg->notify.slack_webhook_url.data, json_headers, &body) <
	    0)
		goto retry;
	mark_inflight(n, s, true);
	s = NULL;
	goto out;
retry:
	for (size_t i = 0; i < good; i++)
		entry_retry(n, batch[i], next_round_ms(n, batch[i]), 0, "cannot start the request");
out:
	free(s);
	buf_release(&body);
	for (size_t i = 0; i < good; i++)
		notice_release(&nts[i]);
	for (size_t i = 0; i < nv; i++) {
		buf_release(&links[i][0]);
		buf_release(&links[i][1]);
	}
}

/* Bot token: chat.postMessage for an incident's first notice, chat.update
 * of that message afterwards. */
static void send_slack_bot(struct notify *n, struct entry *e)
{
	const struct config *c = n->cfg;
	const struct secret *tok = &c->notify.slack_bot_token;
	struct notice nt;
	struct slack_incident_view v;
	struct buf links[2] = {BUF_INIT, BUF_INIT}, body = BUF_INIT, url = BUF_INIT,
		   auth = BUF_INIT;
	const struct thread *t = thread_find(n, e->incident);
	struct send *s = send_new(n, t ? SEND_UPDATE : SEND_POST);
	int rc;

	if (notice_parse(e->notice, e->notice_len, &nt) < 0) {
		free(s);
		entry_failed(n, e, 0, "the notice cannot be read back");
		return;
	}
	slack_view(n, &nt, links, &v);
	rc = !s	 ? -1
	     : t ? slack_update_message(t->channel, t->ts, &v, &body)
		 : slack_post_message(c->notify.slack_channel, &v, &body);
	rc |= buf_addf(&url, "%s/%s", c->notify.slack_api_url,
		       t ? "chat.update" : "chat.postMessage") |
	      buf_adds(&auth, "Authorization: Bearer ") | buf_add(&auth, tok->data, tok->len);
	const char *headers[] = {"Content-Type: application/json; charset=utf-8", auth.data, NULL};
	if (rc == 0)
		s->e[s->k++] = e;
	if (rc < 0 || start(n, s, url.data, headers, &body) < 0) {
		free(s);
		entry_retry(n, e, next_round_ms(n, e), 0, "cannot start the request");
	} else {
		mark_inflight(n, s, true);
	}
	if (auth.data)
		sodium_memzero(auth.data, auth.len);
	buf_release(&auth);
	buf_release(&url);
	buf_release(&body);
	buf_release(&links[0]);
	buf_release(&links[1]);
	notice_release(&nt);
}

/* chat.postMessage / chat.update answer 200 with {"ok": false, "error"} on
 * errors: ratelimited is retried, a message that is gone is posted anew,
 * anything else fails for good. */
static void bot_reply(struct notify *n, struct send *s, const struct httpc_result *r)
{
	struct entry *e = s->e[0];
	char ch[SLACK_ID_MAX], ts[SLACK_ID_MAX], err[128], text[ERROR_TEXT_MAX + 1];

	if (slack_parse_post_reply(r->body, r->body_len, ch, sizeof(ch), ts, sizeof(ts)) == 0) {
		if (e->kind == NOTIFY_RESOLVE)
			thread_forget(n, e->incident); /* a new episode gets a new message */
		else if (thread_set(n, e->incident, ch, ts) < 0)
			log_warn("notify: cannot remember the Slack message", "incident",
				 e->incident, NULL);
		entry_sent(n, e, r->status, ch, ts);
		return;
	}
	if (slack_reply_error(r->body, r->body_len, err, sizeof(err)) < 0)
		snprintf(err, sizeof(err), "unreadable reply");
	if (strcmp(err, "ratelimited") == 0) {
		entry_retry(n, e, next_round_ms(n, e), r->status, "slack: ratelimited");
		return;
	}
	if (s->mode == SEND_UPDATE &&
	    (strcmp(err, "message_not_found") == 0 || strcmp(err, "cant_update_message") == 0 ||
	     strcmp(err, "edit_window_closed") == 0)) {
		/* The message is gone: post a new one, now. */
		thread_forget(n, e->incident);
		entry_retry(n, e, 0, r->status, err);
		return;
	}
	char raw[160];
	snprintf(raw, sizeof(raw), "slack: %s", err);
	error_text(n, NULL, raw, text);
	entry_failed(n, e, r->status, text);
}

static void send_done(const struct httpc_result *res, void *arg)
{
	struct send *s = arg;
	struct notify *n = s->n;
	char text[ERROR_TEXT_MAX + 1];

	if (n->closing) { /* httpc_free cancelled it: the entries stay journaled */
		free(s);
		return;
	}
	mark_inflight(n, s, false);
	for (size_t i = 0; i < s->k; i++)
		s->e[i]->attempts += res->attempts;
	if (res->ok && (s->mode == SEND_POST || s->mode == SEND_UPDATE)) {
		bot_reply(n, s, res);
	} else if (res->ok) {
		for (size_t i = 0; i < s->k; i++)
			entry_sent(n, s->e[i], res->status, NULL, NULL);
	} else {
		result_text(n, s->e[0], res, text);
		/* A batch shares one delay, so that it stays one message. */
		int64_t delay = next_round_ms(n, s->e[0]);
		for (size_t i = 0; i < s->k; i++) {
			if (retryable(res) && s->mode != SEND_RESPONSE)
				entry_retry(n, s->e[i], delay, res->status, text);
			else
				entry_failed(n, s->e[i], res->status, text);
		}
	}
	free(s);
	kick(n);
}

/* ---- the pump: what is due goes out --------------------------------------------- */

static bool in_set(const char *const *set, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(set[i], s) == 0)
			return true;
	return false;
}

static void min_due(int64_t *next, int64_t due)
{
	if (due < *next)
		*next = due;
}

/* PagerDuty: in order per incident (trigger before acknowledge before
 * resolve), so an incident's next event waits for the one before it. */
static void pump_pagerduty(struct notify *n, int64_t now, int64_t *next)
{
	const char *blocked[SCAN_MAX];
	size_t nb = 0, scanned = 0;

	if (!channel_configured(n->cfg, CH_PAGERDUTY))
		return;
	for (struct entry *e = n->outbox.head, *nx; e && scanned < SCAN_MAX; e = nx) {
		nx = e->next;
		if (e->ch != CH_PAGERDUTY)
			continue;
		scanned++;
		if (in_set(blocked, nb, e->incident))
			continue;
		blocked[nb++] = e->incident;
		if (e->inflight)
			continue;
		if (e->due_ms > now) {
			min_due(next, e->due_ms);
			continue;
		}
		if (n->pd_inflight >= PD_MAX_INFLIGHT)
			continue; /* a reply kicks us again */
		if (send_pagerduty(n, e))
			nb--; /* dropped: the incident's next event may go */
		else if (!e->inflight)
			min_due(next, e->due_ms);
	}
}

/* Slack: one request at a time, at most one per slack_interval. */
static void pump_slack(struct notify *n, int64_t now, int64_t *next)
{
	const char *blocked[SCAN_MAX];
	struct entry *batch[SLACK_BATCH_MAX];
	size_t nb = 0, k = 0, scanned = 0;
	bool bot = slack_bot(n->cfg);
	size_t want = bot ? 1 : SLACK_BATCH_MAX;

	if (n->slack_busy || !channel_configured(n->cfg, CH_SLACK))
		return; /* a reply kicks us again; a config without Slack keeps them */
	for (struct entry *e = n->outbox.head; e && scanned < SCAN_MAX && k < want; e = e->next) {
		if (e->ch != CH_SLACK)
			continue;
		scanned++;
		if (in_set(blocked, nb, e->incident))
			continue;
		if (e->due_ms > now) {
			blocked[nb++] = e->incident; /* its later notices wait for it */
			min_due(next, e->due_ms);
			continue;
		}
		batch[k++] = e;
	}
	if (k == 0)
		return;
	if (now < n->slack_next_ms) {
		min_due(next, n->slack_next_ms);
		return;
	}
	n->slack_next_ms = now + n->slack_interval_ms;
	if (bot)
		send_slack_bot(n, batch[0]);
	else
		send_slack_webhook(n, batch, k);
	/* Entries that could not even start got a new due time. */
	min_due(next, n->slack_next_ms);
}

static void pump_responses(struct notify *n, int64_t now, int64_t *next)
{
	for (struct entry *e = n->outbox.head, *nx; e; e = nx) {
		nx = e->next;
		if (n->resp_inflight >= RESPONSE_MAX_INFLIGHT)
			return;
		if (e->ch == CH_SLACK_RESPONSE && !e->inflight)
			send_response(n, e);
	}
}

static void pump(struct notify *n)
{
	int64_t now = timestamp_mono_ms(), next = INT64_MAX;

	if (n->closing || !n->started)
		return;
	pump_pagerduty(n, now, &next);
	pump_slack(n, now, &next);
	pump_responses(n, now, &next);
	if (next == INT64_MAX) {
		evtimer_del(n->timer);
		return;
	}
	struct timeval tv = timestamp_tv(next - now);
	if (evtimer_add(n->timer, &tv) < 0)
		log_error("notify: cannot arm the retry timer", NULL);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	pump(arg);
}

static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct notify *n = arg;
	struct entry_list q;

	pthread_mutex_lock(&n->qlock);
	if (!n->started) {
		pthread_mutex_unlock(&n->qlock);
		return;
	}
	q = n->queue;
	n->queue.head = n->queue.tail = NULL;
	pthread_mutex_unlock(&n->qlock);
	for (struct entry *e = q.head, *nx; e; e = nx) {
		nx = e->next;
		list_push(&n->outbox, e);
	}
	pump(n);
}

/* ---- intake (any thread) ----------------------------------------------------------- */

static struct entry *entry_new(enum channel ch, enum notify_kind kind, const char *incident)
{
	struct entry *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->ch = ch;
	e->kind = kind;
	e->incident = strdup(incident ? incident : "");
	if (!e->incident) {
		free(e);
		return NULL;
	}
	new_id(e->id);
	return e;
}

/* Under qlock. */
static void journal_intent(struct notify *n, struct entry *e)
{
	struct buf m = BUF_INIT;

	if (!n->journal) {
		e->journaled = e->ch == CH_SLACK_RESPONSE;
		return;
	}
	e->journaled = true;
	if (e->ch == CH_SLACK_RESPONSE)
		return;
	int bad =
	    buf_addf(&m, ",\"id\":\"%s\",\"channel\":\"%s\",\"event\":\"%s\",\"notice\":", e->id,
		     channel_names[e->ch], kind_names[e->kind]) |
	    buf_add(&m, e->notice, e->notice_len);
	if (bad ||
	    journal_append(n->journal, "notify_intent", e->incident, m.data, m.len, NULL) < 0)
		log_error("notify: cannot journal a notice; delivering it anyway", "id", e->id,
			  "incident", e->incident, NULL);
	buf_release(&m);
}

/* Queue e for the loop, or refuse it past OUTBOX_MAX. */
static void enqueue(struct notify *n, struct entry *e)
{
	if (atomic_load(&n->pending) >= OUTBOX_MAX) {
		log_error("notify: outbox full; notice dropped", "id", e->id, "channel",
			  channel_names[e->ch], "incident", e->incident, NULL);
		count(n, e->ch, R_FAILED);
		entry_free(e);
		return;
	}
	pthread_mutex_lock(&n->qlock);
	journal_intent(n, e);
	list_push(&n->queue, e);
	pending_add(n, 1);
	pthread_mutex_unlock(&n->qlock);
	kick(n);
}

void notify_incident(struct notify *n, const struct notify_event *ev)
{
	struct buf notice;
	enum channel chs[2];
	size_t k = 0;

	if (!n || !ev || !ev->incident || !ev->incident[0] || (unsigned)ev->kind >= N_KINDS)
		return;
	if (ev->slack && channel_configured(n->cfg, CH_SLACK))
		chs[k++] = CH_SLACK;
	if (ev->pagerduty && ev->kind != NOTIFY_UPDATE && channel_configured(n->cfg, CH_PAGERDUTY))
		chs[k++] = CH_PAGERDUTY;
	if (k == 0)
		return;
	buf_init(&notice, NOTICE_MAX);
	if (notice_write(&notice, ev, false) < 0) {
		/* Labels and outputs full of escapes can pass the cap: say less. */
		buf_reset(&notice);
		if (notice_write(&notice, ev, true) == 0)
			log_warn("notify: notice too big; sent without labels and outputs",
				 "incident", ev->incident, NULL);
	}
	if (!notice.data || notice.data[notice.len - 1] != '}') {
		log_error("notify: cannot build a notice (out of memory or too big)", "incident",
			  ev->incident, NULL);
		buf_release(&notice);
		return;
	}
	for (size_t i = 0; i < k; i++) {
		struct entry *e = entry_new(chs[i], ev->kind, ev->incident);
		if (e && (e->notice = malloc(notice.len + 1))) {
			memcpy(e->notice, notice.data, notice.len + 1);
			e->notice_len = notice.len;
			enqueue(n, e);
			continue;
		}
		entry_free(e);
		log_error("notify: out of memory; notice dropped", "incident", ev->incident,
			  "channel", channel_names[chs[i]], NULL);
	}
	buf_release(&notice);
}

void notify_slack_response(struct notify *n, const char *response_url, const char *body)
{
	struct entry *e;
	size_t len;

	if (!n || !response_url || !body)
		return;
	len = strlen(body);
	if (!http_url(response_url) || strlen(response_url) > RESPONSE_URL_MAX ||
	    len > RESPONSE_BODY_MAX) {
		log_warn("notify: slack response_url or body unusable; not posted", NULL);
		return;
	}
	e = entry_new(CH_SLACK_RESPONSE, NOTIFY_UPDATE, "");
	if (!e || !(e->url = strdup(response_url)) || !(e->body = malloc(len + 1))) {
		entry_free(e);
		log_error("notify: out of memory; slack response dropped", NULL);
		return;
	}
	memcpy(e->body, body, len + 1);
	e->body_len = len;
	enqueue(n, e);
}

size_t notify_pending(struct notify *n)
{
	return n ? atomic_load(&n->pending) : 0;
}

/* ---- replay --------------------------------------------------------------------------- */

static bool rec_str(const struct json_doc *d, size_t obj, const char *name, char *dst, size_t dsz)
{
	size_t t = json_obj_get(d, obj, name);
	if (!t || d->toks[t].kind != JSON_KIND_STRING || d->toks[t].size >= dsz)
		return false;
	json_str_decode(d, &d->toks[t], dst);
	return strlen(dst) == d->toks[t].size;
}

static struct entry *outbox_find(struct notify *n, const char *id)
{
	/* Sent records follow their intents closely: look from the end. */
	for (struct entry *e = n->outbox.tail; e; e = e->prev)
		if (strcmp(e->id, id) == 0)
			return e;
	return NULL;
}

static int replay_intent(struct notify *n, const struct json_doc *d, const char *id,
			 const char *incident)
{
	char chname[32], ev[32];
	enum channel ch;
	enum notify_kind kind;
	size_t t = json_obj_get(d, 0, "notice");

	if (!rec_str(d, 0, "channel", chname, sizeof(chname)) || channel_parse(chname, &ch) < 0 ||
	    ch == CH_SLACK_RESPONSE || !rec_str(d, 0, "event", ev, sizeof(ev)) ||
	    kind_parse(ev, &kind) < 0 || !t || d->toks[t].kind != JSON_KIND_OBJECT ||
	    !incident[0]) {
		log_warn("notify: a notify_intent record is not readable; skipped", "id", id, NULL);
		return 0;
	}
	if (ch == CH_PAGERDUTY && kind == NOTIFY_UPDATE)
		return 0;
	if (outbox_find(n, id))
		return 0;
	if (atomic_load(&n->pending) >= OUTBOX_MAX) {
		log_error("notify: outbox full on replay; notice not resent", "id", id, NULL);
		return 0;
	}
	struct entry *e = calloc(1, sizeof(*e));
	size_t len = d->toks[t].end - d->toks[t].start;
	if (!e || !(e->incident = strdup(incident)) || !(e->notice = malloc(len + 1))) {
		entry_free(e);
		return -1;
	}
	memcpy(e->notice, d->text + d->toks[t].start, len);
	e->notice[len] = '\0';
	e->notice_len = len;
	snprintf(e->id, sizeof(e->id), "%s", id);
	e->ch = ch;
	e->kind = kind;
	e->journaled = true;
	list_push(&n->outbox, e);
	pending_add(n, 1);
	return 0;
}

static int replay_done(struct notify *n, const struct json_doc *d, const char *id,
		       const char *incident, bool sent)
{
	char sch[SLACK_ID_MAX], sts[SLACK_ID_MAX];
	struct entry *e = outbox_find(n, id);
	bool resolve = e && e->kind == NOTIFY_RESOLVE;

	if (e)
		outbox_drop(n, e);
	if (!sent || !incident[0])
		return 0;
	if (resolve)
		thread_forget(n, incident);
	else if (rec_str(d, 0, "slack_channel", sch, sizeof(sch)) &&
		 rec_str(d, 0, "slack_ts", sts, sizeof(sts)) &&
		 thread_set(n, incident, sch, sts) < 0)
		return -1;
	return 0;
}

/* Ids go into records as they are: letters, digits, '-' and '_' only. */
static bool id_ok(const char *id)
{
	if (!id[0])
		return false;
	for (; *id; id++)
		if (!((*id >= 'a' && *id <= 'z') || (*id >= 'A' && *id <= 'Z') ||
		      (*id >= '0' && *id <= '9') || *id == '-' || *id == '_'))
			return false;
	return true;
}

int notify_replay(const struct journal_line *line, void *arg)
{
	static const char tag[] = "\"type\":\"notify_";
	struct notify *n = arg;
	struct json_doc d;
	char type[32], id[NOTIFY_ID_MAX + 1], incident[NOTICE_FIELD_MAX + 1];
	size_t head = line->len < 120 ? line->len : 120;

	if (!n || !memmem(line->text, head, tag, sizeof(tag) - 1))
		return 0;
	size_t need = JSON_TOKENS_ENOUGH(line->len);
	if (need > n->rtoks_cap) {
		struct json_tok *t = realloc(n->rtoks, need * sizeof(*t));
		if (!t)
			return -1;
		n->rtoks = t;
		n->rtoks_cap = need;
	}
	if (json_doc_parse(&d, line->text, line->len, n->rtoks, n->rtoks_cap) != JSON_OK ||
	    n->rtoks[0].kind != JSON_KIND_OBJECT || !rec_str(&d, 0, "type", type, sizeof(type)))
		return 0;
	if (!rec_str(&d, 0, "id", id, sizeof(id)) || !id_ok(id))
		return 0;
	if (!rec_str(&d, 0, "incident", incident, sizeof(incident)))
		incident[0] = '\0';
	if (strcmp(type, "notify_intent") == 0)
		return replay_intent(n, &d, id, incident);
	if (strcmp(type, "notify_sent") == 0 || strcmp(type, "notify_failed") == 0)
		return replay_done(n, &d, id, incident, strcmp(type, "notify_sent") == 0);
	return 0;
}

/* ---- lifetime ----------------------------------------------------------------------------- */

struct notify *notify_new(const struct notify_options *opt)
{
	static const char *const labels[] = {"channel", "result", NULL};
	struct notify *n;
	struct metric_family *total, *pending;

	if (!opt || !opt->cfg || !opt->base || sodium_init() < 0)
		return NULL;
	n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	pthread_mutex_init(&n->qlock, NULL);
	n->cfg = opt->cfg;
	n->base = opt->base;
	n->retry_base_ms = opt->retry_base_ms > 0 ? opt->retry_base_ms : RETRY_BASE_MS;
	n->retry_max_ms = opt->retry_max_ms > 0 ? opt->retry_max_ms : RETRY_MAX_MS;
	if (n->retry_max_ms < n->retry_base_ms)
		n->retry_max_ms = n->retry_base_ms;
	n->slack_interval_ms =
	    opt->slack_interval_ms > 0 ? opt->slack_interval_ms : SLACK_INTERVAL_MS;
	n->kick = event_new(n->base, -1, 0, kick_cb, n);
	n->timer = evtimer_new(n->base, timer_cb, n);
	total = metrics_register(METRIC_COUNTER, "notifications_total",
				 "Notifications to Slack and PagerDuty by channel and result.",
				 labels, NULL, 0);
	pending = metrics_register(METRIC_GAUGE, "notify_pending",
				   "Notices queued or waiting to be delivered.", NULL, NULL, 0);
	if (!n->kick || !n->timer || !total || !pending)
		goto fail;
	for (int c = 0; c < CH_COUNT; c++)
		for (int r = 0; r < R_COUNT; r++)
			if (!(n->count[c][r] =
				  metrics_child(total, channel_names[c], result_names[r])))
				goto fail;
	if (!(n->pending_gauge = metrics_child(pending)))
		goto fail;
	return n;
fail:
	notify_free(n);
	return NULL;
}

void notify_start(struct notify *n, struct journal *j)
{
	if (!n)
		return;
	free(n->rtoks);
	n->rtoks = NULL;
	n->rtoks_cap = 0;
	pthread_mutex_lock(&n->qlock);
	n->journal = j;
	n->started = true;
	for (struct entry *e = n->queue.head; e; e = e->next)
		if (!e->journaled)
			journal_intent(n, e);
	pthread_mutex_unlock(&n->qlock);
	for (struct entry *e = n->outbox.head, *nx; e; e = nx) {
		nx = e->next;
		if (!channel_configured(n->cfg, e->ch))
			entry_failed(n, e, 0, "the channel is no longer configured");
	}
	if (n->outbox.head)
		log_info("notify: resending notices from before the restart", NULL);
	kick(n);
}

static void list_free(struct entry_list *l)
{
	while (l->head) {
		struct entry *e = l->head;
		list_unlink(l, e);
		entry_free(e);
	}
}

void notify_set_config(struct notify *n, const struct config *cfg)
{
	atomic_store(&n->cfg, cfg);
}

void notify_free(struct notify *n)
{
	if (!n)
		return;
	n->closing = true;
	httpc_free(n->http); /* its callbacks see closing and only free */
	if (n->kick)
		event_free(n->kick);
	if (n->timer)
		event_free(n->timer);
	list_free(&n->queue);
	list_free(&n->outbox);
	threads_free(n);
	free(n->rtoks);
	pthread_mutex_destroy(&n->qlock);
	free(n);
}
