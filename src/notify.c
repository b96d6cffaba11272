/*
 * notify: the outbox that tells the notification channels (SPEC §9).
 *
 * notify_incident runs on any thread, under the engine's lock: it only
 * copies the event into a self-contained JSON notice (notice.h), journals
 * it as a notify_intent per channel and hands it to the loop through a
 * mutex-protected queue and event_active. Everything else runs on the
 * loop: the channels' outboxes, the timers and the transfers. Messages are
 * built at send time from the notice (channel.h: build), so signed links
 * get a fresh expiry and no secret or signature is ever journaled.
 *
 * Each channel has its own bounded outbox and its own pacing: a notice
 * that finds its channel full is journaled as notify_failed and counted as
 * dropped, and never takes another channel's room. Delivery is at least
 * once: a notice leaves the outbox only when a notify_sent or
 * notify_failed record says so (replay rebuilds the rest). Delivery errors
 * are logged at most once per channel per log interval.
 *
 * Locks: qlock protects the queue, the journal pointer and started;
 * loglock the log gates. Neither is held while calling a channel hook or
 * httpc, and nothing under them waits for another thread.
 *
 * Never: block or do I/O on a caller's thread, put a secret (webhook URL,
 * bot token, routing key, password) or a response_url in a log line, a
 * journal record, a metric or an error text.
 *
 * Over 800 lines because the outbox's queues, pacing, journaling, replay and
 * lifetime all guard the same per-channel state under one lock; the channels
 * themselves are one file each (channel_*.c).
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
#include "rollbackd/channel.h"
#include "rollbackd/httpc.h"
#include "rollbackd/journal.h"
#include "rollbackd/json.h"
#include "rollbackd/links.h"
#include "rollbackd/log.h"
#include "rollbackd/metrics.h"
#include "rollbackd/notice.h"
#include "rollbackd/record.h"
#include "rollbackd/text.h"

#define NOTIFY_ID_MAX 31	       /* "n-" + 16 hex; replayed ids up to this */
#define RETRY_BASE_MS 1000	       /* between delivery rounds, doubled... */
#define RETRY_MAX_MS (5 * 60 * 1000)   /* ...up to this */
#define SLACK_INTERVAL_MS 1000	       /* least time between two paced requests */
#define LOG_INTERVAL_MS 10000	       /* one delivery-error line per channel per this */
#define HTTP_TIMEOUT_MS 10000	       /* per attempt */
#define HTTP_RETRIES 2		       /* inside one round, by httpc */
#define HTTP_BACKOFF_MAX_MS 60000      /* httpc's own backoff cap */
#define HTTP_MAX_RESPONSE 16384	       /* reply bytes kept */
#define SCAN_MAX 256		       /* entries of a channel looked at per pump */
#define CHANNELS_MAX 8		       /* channels in the registry at most */
#define RESPONSE_URL_MAX 3000	       /* as slack.h takes them */
#define RESPONSE_BODY_MAX (512 * 1024) /* body posted to a response_url */

_Static_assert(sizeof(((struct notify_entry *)0)->id) == NOTIFY_ID_MAX + 1, "entry id size");

/* Every channel; the first configured one of a name gets that name's notices. */
const struct channel *const channel_registry[] = {
    &channel_slack_bot,
    &channel_slack_webhook,
    &channel_pagerduty,
    &channel_pagerduty_change,
    &channel_slack_response,
    &channel_email,
    NULL,
};

enum result { R_SENT, R_FAILED, R_RETRIED, R_DROPPED, R_COUNT };
static const char *const result_names[R_COUNT] = {"sent", "failed", "retried", "dropped"};

/* ---- the registry's names ----------------------------------------------- */

static const char *rule_names[CHANNELS_MAX + 1];
static pthread_once_t rule_names_once = PTHREAD_ONCE_INIT;

static void rule_names_init(void)
{
	size_t k = 0;
	for (size_t i = 0; channel_registry[i] && k < CHANNELS_MAX; i++) {
		const struct channel *h = channel_registry[i];
		const char *name = h->rule_name ? h->rule_name : h->name;
		bool seen = false;
		for (size_t j = 0; j < k && !seen; j++)
			seen = strcmp(rule_names[j], name) == 0;
		if (!h->internal && !seen)
			rule_names[k++] = name;
	}
	rule_names[k] = NULL;
}

const char *const *channel_rule_names(void)
{
	pthread_once(&rule_names_once, rule_names_init);
	return rule_names;
}

bool channel_rule_name_ok(const char *name)
{
	for (const char *const *p = channel_rule_names(); *p; p++)
		if (strcmp(*p, name) == 0)
			return true;
	return false;
}

/* ---- state ---------------------------------------------------------------- */

struct entry_list {
	struct notify_entry *head, *tail;
};

/* One channel of this notify: its outbox, pacing and counters. */
struct chan {
	const struct channel *h;
	struct channel_ctx ctx;
	struct entry_list outbox; /* the loop's */
	_Atomic size_t pending;	  /* queued or in the outbox */
	size_t queue_max;
	int inflight;		  /* the loop's */
	int64_t next_ms;	  /* paced: not before */
	int64_t log_next_ms;	  /* under loglock */
	unsigned long suppressed; /* under loglock: lines held back */
	struct metric_child *count[R_COUNT];
};

struct notify {
	const struct config *_Atomic cfg; /* swapped by notify_set_config */
	struct event_base *base;
	int64_t retry_base_ms, retry_max_ms, slack_interval_ms, log_interval_ms;

	/* shared with other threads, under qlock */
	pthread_mutex_t qlock;
	struct entry_list queue;
	struct journal *journal;
	bool started;
	_Atomic size_t pending; /* queue + outboxes */

	pthread_mutex_t loglock;

	/* the loop's */
	struct event *kick, *timer;
	struct httpc *http;
	bool closing;

	struct chan ch[CHANNELS_MAX];
	size_t n_ch;

	struct metric_child *pending_gauge;
};

static void pending_add(struct notify *n, struct chan *c, long d)
{
	size_t v;
	if (d >= 0) {
		atomic_fetch_add(&c->pending, (size_t)d);
		v = atomic_fetch_add(&n->pending, (size_t)d) + (size_t)d;
	} else {
		atomic_fetch_sub(&c->pending, (size_t)-d);
		v = atomic_fetch_sub(&n->pending, (size_t)-d) - (size_t)-d;
	}
	metric_set(n->pending_gauge, (int64_t)v);
}

static void list_push(struct entry_list *l, struct notify_entry *e)
{
	e->next = NULL;
	e->prev = l->tail;
	if (l->tail)
		l->tail->next = e;
	else
		l->head = e;
	l->tail = e;
}

static void list_unlink(struct entry_list *l, struct notify_entry *e)
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

static void entry_free(struct notify_entry *e)
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

static bool http_url(const char *u)
{
	return u && (strncasecmp(u, "http://", 7) == 0 || strncasecmp(u, "https://", 8) == 0);
}

static const char *chan_name(const struct notify *n, unsigned ch)
{
	return n->ch[ch].h->name;
}

/* The channel that gets name's notices: the first configured one of that
 * name, else (configured false) the first of that name; NULL when none. */
static struct chan *chan_for(struct notify *n, const char *name, bool configured)
{
	struct chan *first = NULL;
	for (size_t i = 0; i < n->n_ch; i++) {
		struct chan *c = &n->ch[i];
		if (strcmp(c->h->name, name) != 0)
			continue;
		if (c->h->configured(n->cfg))
			return c;
		if (!first)
			first = c;
	}
	return configured ? NULL : first;
}

static unsigned chan_index(const struct notify *n, const struct chan *c)
{
	return (unsigned)(c - n->ch);
}

/* ---- error texts ------------------------------------------------------------ */

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

/* Every configured secret of every channel (and extra, a response_url) is
 * replaced before anything is cut: a cut could leave the head of one. */
void notify_error_text(const struct notify *n, const char *extra_secret, const char *in,
		       char out[CHANNEL_ERROR_MAX + 1])
{
	size_t len;
	char *tmp = strdup(in ? in : "");

	if (!tmp) {
		snprintf(out, CHANNEL_ERROR_MAX + 1, "out of memory");
		return;
	}
	for (size_t c = 0; c < n->n_ch; c++) {
		const struct channel *h = n->ch[c].h;
		const struct secret *sec;
		for (size_t i = 0; h->secret && (sec = h->secret(n->cfg, i)); i++)
			if (secret_is_set(sec))
				redact(tmp, (const char *)sec->data, sec->len);
	}
	if (extra_secret)
		redact(tmp, extra_secret, strlen(extra_secret));
	len = strlen(tmp);
	if (len > CHANNEL_ERROR_MAX) {
		len = CHANNEL_ERROR_MAX;
		while (len > 0 && ((unsigned char)tmp[len] & 0xc0) == 0x80)
			len--;
	}
	for (size_t i = 0; i < len; i++)
		out[i] = (unsigned char)tmp[i] < 0x20 || tmp[i] == 0x7f ? '?' : tmp[i];
	out[len] = '\0';
	sodium_memzero(tmp, strlen(tmp));
	free(tmp);
}

/* "HTTP 400: <the start of the reply>" or the transfer's message. */
static void result_text(const struct notify *n, const struct notify_entry *e,
			const struct httpc_result *r, char out[CHANNEL_ERROR_MAX + 1])
{
	struct buf raw = BUF_INIT;
	int bad = r->error ? buf_adds(&raw, r->error)
			   : buf_addf(&raw, "HTTP %d: ", r->status) |
				 buf_add(&raw, r->body ? r->body : "", r->body ? r->body_len : 0);
	if (bad) {
		snprintf(out, CHANNEL_ERROR_MAX + 1, "HTTP %d", r->status);
	} else {
		notify_error_text(n, e ? e->url : NULL, raw.data, out);
		sodium_memzero(raw.data, raw.len);
	}
	buf_release(&raw);
}

/* ---- links ------------------------------------------------------------------ */

/* Signed at send time, so the expiry counts from when the message goes out.
 * Left out (NULL) without public_url or links secret. */
const char *notify_link(const struct notify *n, const char *action, const char *id, int episode,
			struct buf *out)
{
	const struct config *c = n->cfg;
	if (!c->public_url || !c->public_url[0] || !secret_is_set(&c->links_secret))
		return NULL;
	int64_t exp = timestamp_now().sec + (c->links_ttl_ms > 0 ? c->links_ttl_ms / 1000 : 0);
	if (links_url(c->public_url, &c->links_secret, action, id, episode, exp, out) < 0)
		return NULL;
	return out->data;
}

bool notify_slack_interactive(const struct notify *n)
{
	return secret_is_set(&n->cfg->slack_signing);
}

struct event_base *notify_base(const struct notify *n)
{
	return n->base;
}

/* ---- journal, outcome and the log gate ----------------------------------------- */

/* Whether a delivery-error line of c may be logged now; supp gets how many
 * were held back since the last one. */
static bool log_gate(struct notify *n, struct chan *c, char supp[24])
{
	int64_t now = timestamp_mono_ms();
	bool go;

	pthread_mutex_lock(&n->loglock);
	go = now >= c->log_next_ms;
	if (go) {
		snprintf(supp, 24, "%lu", c->suppressed);
		c->suppressed = 0;
		c->log_next_ms = now + n->log_interval_ms;
	} else {
		c->suppressed++;
	}
	pthread_mutex_unlock(&n->loglock);
	return go;
}

static void jappend(struct notify *n, struct journal *j, const char *type,
		    const struct notify_entry *e, struct buf *m, bool bad)
{
	if (!j)
		return;
	if (bad || journal_append(j, type, e->incident, m->data, m->len, NULL) < 0)
		log_error("notify: cannot journal a record; delivery goes on", "type", type, "id",
			  e->id, "channel", chan_name(n, e->ch), NULL);
}

static void jrecord(struct notify *n, const char *type, const struct notify_entry *e, struct buf *m,
		    bool bad)
{
	struct journal *j;

	pthread_mutex_lock(&n->qlock);
	j = n->journal;
	pthread_mutex_unlock(&n->qlock);
	jappend(n, j, type, e, m, bad);
}

static void count(struct notify *n, unsigned ch, enum result r)
{
	metric_inc(n->ch[ch].count[r]);
}

static void outbox_drop(struct notify *n, struct notify_entry *e)
{
	struct chan *c = &n->ch[e->ch];
	list_unlink(&c->outbox, e);
	entry_free(e);
	pending_add(n, c, -1);
}

void notify_entry_sent(struct notify *n, struct notify_entry *e, int status, const char *extra)
{
	struct record_notify_sent v = {
	    .id = e->id,
	    .channel = chan_name(n, e->ch),
	    .status_code = status,
	    .attempts = e->attempts,
	    .extra = extra,
	};
	struct buf m = BUF_INIT;
	int bad = record_build_notify_sent(&m, &v);
	jrecord(n, "notify_sent", e, &m, bad);
	buf_release(&m);
	count(n, e->ch, R_SENT);
	log_debug("notify: sent", "id", e->id, "channel", chan_name(n, e->ch), "incident",
		  e->incident, NULL);
	outbox_drop(n, e);
}

/* The members of a notify_failed record (with_event: its notice's kind). */
static int failed_members(struct notify *n, const struct notify_entry *e, int status,
			  const char *error, bool with_event, struct buf *m)
{
	struct record_notify_failed v = {
	    .id = e->id,
	    .channel = chan_name(n, e->ch),
	    .status_code = status,
	    .error = error,
	    .error_max = CHANNEL_ERROR_MAX,
	    .attempts = e->attempts,
	    .event = with_event ? notify_kind_name(e->kind) : NULL,
	};
	return record_build_notify_failed(m, &v);
}

/* error must already be free of secrets (notify_error_text). */
void notify_entry_failed(struct notify *n, struct notify_entry *e, int status, const char *error)
{
	struct buf m = BUF_INIT;
	char st[16], supp[24];
	int bad = failed_members(n, e, status, error, false, &m);

	jrecord(n, "notify_failed", e, &m, bad);
	buf_release(&m);
	count(n, e->ch, R_FAILED);
	snprintf(st, sizeof(st), "%d", status);
	if (log_gate(n, &n->ch[e->ch], supp))
		log_warn("notify: not delivered; given up", "id", e->id, "channel",
			 chan_name(n, e->ch), "incident", e->incident, "status", st, "error", error,
			 "suppressed", supp, NULL);
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

static int64_t next_round_ms(struct notify *n, const struct notify_entry *e)
{
	return round_delay_ms(e->rounds + 1, n->retry_base_ms, n->retry_max_ms);
}

/* A round failed in a way worth retrying: try again later, forever. */
void notify_entry_retry(struct notify *n, struct notify_entry *e, int64_t delay_ms, int status,
			const char *error)
{
	char st[16], in[32], supp[24];

	if (delay_ms < 0)
		delay_ms = next_round_ms(n, e);
	e->rounds++;
	e->due_ms = timestamp_mono_ms() + delay_ms;
	count(n, e->ch, R_RETRIED);
	snprintf(st, sizeof(st), "%d", status);
	snprintf(in, sizeof(in), "%" PRId64, delay_ms);
	if (log_gate(n, &n->ch[e->ch], supp))
		log_warn("notify: delivery failed; will retry", "id", e->id, "channel",
			 chan_name(n, e->ch), "incident", e->incident, "status", st, "error", error,
			 "retry_in_ms", in, "suppressed", supp, NULL);
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

static void mark_inflight(struct notify *n, struct channel_send *s, bool on)
{
	for (size_t i = 0; i < s->k; i++)
		s->e[i]->inflight = on;
	n->ch[s->ch].inflight += on ? 1 : -1;
}

void notify_channel_done(struct channel_send *s, const struct httpc_result *res)
{
	struct notify *n = s->n;
	struct chan *c = &n->ch[s->ch];
	char text[CHANNEL_ERROR_MAX + 1];

	if (n->closing) { /* the transfer was cancelled: the entries stay journaled */
		free(s);
		return;
	}
	mark_inflight(n, s, false);
	if (c->h->paced) {
		/* The interval counts from the answer too: what the receiver sees is
		 * never closer than that, however long the request took to start. */
		int64_t after = timestamp_mono_ms() + c->ctx.interval_ms;
		if (after > c->next_ms)
			c->next_ms = after;
	}
	for (size_t i = 0; i < s->k; i++)
		s->e[i]->attempts += res->attempts;
	if (res->ok && c->h->reply) {
		c->h->reply(&c->ctx, s, res);
	} else if (res->ok) {
		for (size_t i = 0; i < s->k; i++)
			notify_entry_sent(n, s->e[i], res->status, NULL);
	} else {
		result_text(n, s->e[0], res, text);
		/* A batch shares one delay, so that it stays one message. */
		int64_t delay = next_round_ms(n, s->e[0]);
		for (size_t i = 0; i < s->k; i++) {
			if ((c->h->retryable ? c->h->retryable(res) : retryable(res)) &&
			    c->h->retries)
				notify_entry_retry(n, s->e[i], delay, res->status, text);
			else
				notify_entry_failed(n, s->e[i], res->status, text);
		}
	}
	free(s);
	kick(n);
}

static void http_done(const struct httpc_result *res, void *arg)
{
	notify_channel_done(arg, res);
}

static int http_start(struct notify *n, struct channel_send *s, const struct channel_request *rq)
{
	struct httpc_request req = {
	    .method = "POST",
	    .url = rq->url.data,
	    .headers = rq->headers,
	    .body = rq->body.data ? rq->body.data : "",
	    .body_len = rq->body.len,
	    .timeout_ms = HTTP_TIMEOUT_MS,
	    .retries = HTTP_RETRIES,
	    .max_response = rq->max_response ? rq->max_response : HTTP_MAX_RESPONSE,
	    .backoff_base_ms = rq->backoff_base_ms ? rq->backoff_base_ms : 500,
	    .backoff_max_ms = HTTP_BACKOFF_MAX_MS,
	};
	/* httpc's messages may quote the URL: never pass them on. */
	struct error err;

	if (!rq->url.data)
		return -1;
	if (req.backoff_base_ms > HTTP_BACKOFF_MAX_MS)
		req.backoff_base_ms = HTTP_BACKOFF_MAX_MS;
	if (!n->http && !(n->http = httpc_new(n->base))) {
		log_error("notify: cannot start an HTTP client (libcurl missing?)", NULL);
		return -1;
	}
	return httpc_send(n->http, &req, http_done, s, &err);
}

static void request_wipe(struct channel_request *rq)
{
	struct buf *b[] = {&rq->url, &rq->body, &rq->auth};
	for (size_t i = 0; i < sizeof(b) / sizeof(b[0]); i++) {
		if (b[i]->data)
			sodium_memzero(b[i]->data, b[i]->len);
		buf_release(b[i]);
	}
}

/* Build and start one request for batch[0..k) of c. */
static void start_send(struct notify *n, struct chan *c, struct notify_entry **batch, size_t k)
{
	struct channel_request rq = {.url = BUF_INIT, .body = BUF_INIT, .auth = BUF_INIT};
	struct channel_send *s = calloc(1, sizeof(*s));
	int rc = -1;

	if (s) {
		s->n = n;
		s->ch = chan_index(n, c);
		for (size_t i = 0; i < k; i++)
			s->e[s->k++] = batch[i];
		rc = c->h->build(&c->ctx, s, &rq);
		if (rc == 0 && s->k > 0)
			rc = c->h->send ? c->h->send(&c->ctx, s, &rq) : http_start(n, s, &rq);
	}
	if (s && s->k == 0) {
		free(s); /* build failed every entry */
	} else if (rc < 0) {
		struct notify_entry **es = s ? s->e : batch;
		size_t ks = s ? s->k : k;
		int64_t delay = next_round_ms(n, es[0]);
		for (size_t i = 0; i < ks; i++) {
			if (c->h->retries)
				notify_entry_retry(n, es[i], delay, 0, "cannot start the request");
			else
				notify_entry_failed(n, es[i], 0, "cannot start the request");
		}
		free(s);
	} else {
		mark_inflight(n, s, true);
	}
	request_wipe(&rq);
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

/* An ordered channel sends an incident's notices one after another (a
 * batch may carry several of them); a notice not yet due holds back the
 * incident's later ones. A paced channel sends at most one request per
 * interval. */
static void pump_chan(struct notify *n, struct chan *c, int64_t now, int64_t *next)
{
	const struct channel *h = c->h;
	size_t want = h->batch_max ? h->batch_max(n->cfg) : 1;

	if (!h->configured(n->cfg))
		return; /* a config without the channel keeps its notices */
	if (want < 1)
		want = 1;
	if (want > CHANNEL_BATCH_MAX)
		want = CHANNEL_BATCH_MAX;
	while (c->inflight < h->max_inflight) {
		const char *blocked[SCAN_MAX];
		struct notify_entry *batch[CHANNEL_BATCH_MAX];
		size_t nb = 0, k = 0, scanned = 0;

		for (struct notify_entry *e = c->outbox.head; e && scanned < SCAN_MAX && k < want;
		     e = e->next) {
			scanned++;
			if (h->ordered && in_set(blocked, nb, e->incident))
				continue;
			if (e->inflight || e->due_ms > now) {
				if (h->ordered)
					blocked[nb++] = e->incident; /* its later notices wait */
				if (!e->inflight)
					min_due(next, e->due_ms);
				continue;
			}
			batch[k++] = e;
			if (h->ordered && want == 1)
				blocked[nb++] = e->incident;
		}
		if (k == 0)
			return;
		if (h->paced && now < c->next_ms) {
			min_due(next, c->next_ms);
			return;
		}
		c->next_ms = now + c->ctx.interval_ms;
		start_send(n, c, batch, k);
		if (h->paced) {
			/* Entries that could not even start got a new due time. */
			min_due(next, c->next_ms);
			return;
		}
	}
}

static void pump(struct notify *n)
{
	int64_t now = timestamp_mono_ms(), next = INT64_MAX;

	if (n->closing || !n->started)
		return;
	for (size_t i = 0; i < n->n_ch; i++)
		pump_chan(n, &n->ch[i], now, &next);
	if (next == INT64_MAX) {
		evtimer_del(n->timer);
		return;
	}
	struct timeval tv = timestamp_tv(next > now ? next - now : 0);
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
	for (struct notify_entry *e = q.head, *nx; e; e = nx) {
		nx = e->next;
		list_push(&n->ch[e->ch].outbox, e);
	}
	pump(n);
}

/* ---- intake (any thread) ----------------------------------------------------------- */

static struct notify_entry *entry_new(unsigned ch, enum notify_kind kind, const char *incident)
{
	struct notify_entry *e = calloc(1, sizeof(*e));
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

/* Under qlock. Entries without a notice (slack_response) need no intent. */
static void journal_intent(struct notify *n, struct notify_entry *e)
{
	struct buf m = BUF_INIT;

	if (!n->journal) {
		e->journaled = !e->notice;
		return;
	}
	e->journaled = true;
	if (!e->notice)
		return;
	struct record_notify_intent v = {
	    .id = e->id,
	    .channel = chan_name(n, e->ch),
	    .event = notify_kind_name(e->kind),
	    .notice = e->notice,
	    .notice_len = e->notice_len,
	};
	int bad = record_build_notify_intent(&m, &v);
	if (bad ||
	    journal_append(n->journal, "notify_intent", e->incident, m.data, m.len, NULL) < 0)
		log_error("notify: cannot journal a notice; delivering it anyway", "id", e->id,
			  "incident", e->incident, NULL);
	buf_release(&m);
}

/* The reason a notice is dropped for its channel's full queue. */
static void full_reason(const struct notify *n, const struct chan *c, char *out, size_t sz)
{
	snprintf(out, sz, "the %s queue is full (%zu notices waiting); notice dropped", c->h->name,
		 c->queue_max);
	(void)n;
}

/* A notice its channel has no room for: journaled as notify_failed (j may
 * be NULL), counted and logged at the gated rate, freed. */
static void entry_dropped(struct notify *n, struct journal *j, struct notify_entry *e,
			  const char *reason)
{
	struct buf m = BUF_INIT;
	char supp[24];
	int bad = failed_members(n, e, 0, reason, e->notice != NULL, &m);
	jappend(n, j, "notify_failed", e, &m, bad);
	buf_release(&m);
	count(n, e->ch, R_DROPPED);
	if (log_gate(n, &n->ch[e->ch], supp))
		log_error("notify: queue full; notice dropped", "id", e->id, "channel",
			  chan_name(n, e->ch), "incident", e->incident, "suppressed", supp, NULL);
	entry_free(e);
}

/* Queue e for the loop, or drop it when its channel is full. */
static void enqueue(struct notify *n, struct notify_entry *e)
{
	struct chan *c = &n->ch[e->ch];

	pthread_mutex_lock(&n->qlock);
	if (atomic_load(&c->pending) >= c->queue_max) {
		char reason[160];
		struct journal *j = n->started ? n->journal : NULL;
		full_reason(n, c, reason, sizeof(reason));
		pthread_mutex_unlock(&n->qlock);
		entry_dropped(n, j, e, reason);
		return;
	}
	journal_intent(n, e);
	list_push(&n->queue, e);
	pending_add(n, c, 1);
	pthread_mutex_unlock(&n->qlock);
	kick(n);
}

/* Whether channel h takes ev (as far as ev tells: replay probes by kind). */
static bool chan_takes(const struct channel *h, const struct notify_event *ev)
{
	if (ev->kind == NOTIFY_STEP && !h->steps)
		return false;
	return !h->wants || h->wants(ev);
}

void notify_incident(struct notify *n, const struct notify_event *ev)
{
	struct buf notice;
	unsigned chs[CHANNELS_MAX];
	size_t k = 0;

	if (!n || !ev || !ev->incident || !ev->incident[0] ||
	    !strcmp(notify_kind_name(ev->kind), "?"))
		return;
	/* Every channel the rule's names select: of those sharing a record name
	 * (the two Slacks), the first configured one. */
	for (size_t i = 0; i < n->n_ch && k < CHANNELS_MAX; i++) {
		const struct channel *h = n->ch[i].h;
		bool asked = false, taken = false;
		for (size_t j = 0; j < ev->n_channels && !asked; j++)
			asked = ev->channels[j] &&
				strcmp(ev->channels[j], h->rule_name ? h->rule_name : h->name) == 0;
		if (!asked || h->internal || !h->configured(n->cfg) || !chan_takes(h, ev))
			continue;
		for (size_t j = 0; j < k && !taken; j++)
			taken = strcmp(n->ch[chs[j]].h->name, h->name) == 0;
		if (!taken)
			chs[k++] = (unsigned)i;
	}
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
		struct notify_entry *e = entry_new(chs[i], ev->kind, ev->incident);
		if (e && (e->notice = malloc(notice.len + 1))) {
			memcpy(e->notice, notice.data, notice.len + 1);
			e->notice_len = notice.len;
			enqueue(n, e);
			continue;
		}
		entry_free(e);
		log_error("notify: out of memory; notice dropped", "incident", ev->incident,
			  "channel", chan_name(n, chs[i]), NULL);
	}
	buf_release(&notice);
}

void notify_slack_response(struct notify *n, const char *response_url, const char *body)
{
	struct notify_entry *e;
	struct chan *c;
	size_t len;

	if (!n || !response_url || !body || !(c = chan_for(n, "slack_response", true)))
		return;
	len = strlen(body);
	if (!http_url(response_url) || strlen(response_url) > RESPONSE_URL_MAX ||
	    len > RESPONSE_BODY_MAX) {
		log_warn("notify: slack response_url or body unusable; not posted", NULL);
		return;
	}
	e = entry_new(chan_index(n, c), NOTIFY_UPDATE, "");
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

static struct notify_entry *outbox_find(struct chan *c, const char *id)
{
	/* Sent records follow their intents closely: look from the end. */
	for (struct notify_entry *e = c->outbox.tail; e; e = e->prev)
		if (strcmp(e->id, id) == 0)
			return e;
	return NULL;
}

static int replay_intent(struct notify *n, const struct json_doc *d, const char *id,
			 const char *incident)
{
	char chname[32], ev[32];
	struct chan *c;
	enum notify_kind kind;
	size_t t = json_obj_get(d, 0, "notice");

	if (!rec_str(d, 0, "channel", chname, sizeof(chname)) ||
	    !(c = chan_for(n, chname, false)) || c->h->internal ||
	    !rec_str(d, 0, "event", ev, sizeof(ev)) || notify_kind_parse(ev, &kind) < 0 || !t ||
	    d->toks[t].kind != JSON_KIND_OBJECT || !incident[0]) {
		log_warn("notify: a notify_intent record is not readable; skipped", "id", id, NULL);
		return 0;
	}
	/* As notify_incident decided: a channel never got what it does not take
	 * (email takes a trigger by its state). */
	char state[64];
	struct notify_event probe = {.kind = kind, .incident = incident};
	if (rec_str(d, t, "state", state, sizeof(state)))
		probe.state = state;
	if (!chan_takes(c->h, &probe))
		return 0;
	if (outbox_find(c, id))
		return 0;
	struct notify_entry *e = calloc(1, sizeof(*e));
	size_t len = d->toks[t].end - d->toks[t].start;
	if (!e || !(e->incident = strdup(incident)) || !(e->notice = malloc(len + 1))) {
		entry_free(e);
		return -1;
	}
	memcpy(e->notice, d->text + d->toks[t].start, len);
	e->notice[len] = '\0';
	e->notice_len = len;
	snprintf(e->id, sizeof(e->id), "%s", id);
	e->ch = chan_index(n, c);
	e->kind = kind;
	e->journaled = true;
	list_push(&c->outbox, e);
	pending_add(n, c, 1);
	return 0;
}

static int replay_done(struct notify *n, const struct json_doc *d, const char *id,
		       const char *incident, bool sent)
{
	char chname[32];
	struct chan *c;
	struct notify_entry *e;
	int kind = -1;

	if (!rec_str(d, 0, "channel", chname, sizeof(chname)))
		return 0;
	/* Every channel of the name: the config may have moved from one to another. */
	for (size_t i = 0; i < n->n_ch; i++) {
		c = &n->ch[i];
		if (strcmp(c->h->name, chname) != 0)
			continue;
		if ((e = outbox_find(c, id))) {
			kind = (int)e->kind;
			outbox_drop(n, e);
		}
	}
	if (!incident[0])
		return 0;
	for (size_t i = 0; i < n->n_ch; i++) {
		c = &n->ch[i];
		if (strcmp(c->h->name, chname) == 0 && c->h->replay &&
		    c->h->replay(&c->ctx, incident, kind, sent, d) < 0)
			return -1;
	}
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

int notify_replay(const struct record *rec, void *arg)
{
	struct notify *n = arg;
	const struct json_doc *d = &rec->doc;
	char id[NOTIFY_ID_MAX + 1], incident[NOTICE_FIELD_MAX + 1];
	enum record_type type = rec->type;

	if (!n || (type != RECORD_NOTIFY_INTENT && type != RECORD_NOTIFY_SENT &&
		   type != RECORD_NOTIFY_FAILED))
		return 0;
	if (!rec_str(d, 0, "id", id, sizeof(id)) || !id_ok(id))
		return 0;
	if (!rec_str(d, 0, "incident", incident, sizeof(incident)))
		incident[0] = '\0';
	if (type == RECORD_NOTIFY_INTENT)
		return replay_intent(n, d, id, incident);
	return replay_done(n, d, id, incident, type == RECORD_NOTIFY_SENT);
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
	pthread_mutex_init(&n->loglock, NULL);
	n->cfg = opt->cfg;
	n->base = opt->base;
	n->retry_base_ms = opt->retry_base_ms > 0 ? opt->retry_base_ms : RETRY_BASE_MS;
	n->retry_max_ms = opt->retry_max_ms > 0 ? opt->retry_max_ms : RETRY_MAX_MS;
	if (n->retry_max_ms < n->retry_base_ms)
		n->retry_max_ms = n->retry_base_ms;
	n->slack_interval_ms =
	    opt->slack_interval_ms > 0 ? opt->slack_interval_ms : SLACK_INTERVAL_MS;
	n->log_interval_ms = opt->log_interval_ms > 0 ? opt->log_interval_ms : LOG_INTERVAL_MS;
	n->kick = event_new(n->base, -1, 0, kick_cb, n);
	n->timer = evtimer_new(n->base, timer_cb, n);
	total = metrics_register(METRIC_COUNTER, "notifications_total",
				 "Notifications by channel and result.", labels, NULL, 0);
	pending = metrics_register(METRIC_GAUGE, "notify_pending",
				   "Notices queued or waiting to be delivered.", NULL, NULL, 0);
	if (!n->kick || !n->timer || !total || !pending)
		goto fail;
	for (size_t i = 0; channel_registry[i] && i < CHANNELS_MAX; i++) {
		struct chan *c = &n->ch[n->n_ch++];
		c->h = channel_registry[i];
		c->ctx.n = n;
		c->ctx.cfg = n->cfg;
		c->ctx.interval_ms = c->h->paced ? n->slack_interval_ms : 0;
		c->queue_max = opt->queue_max		   ? opt->queue_max
			       : n->cfg->notify.max_queued ? n->cfg->notify.max_queued
							   : CHANNEL_QUEUE_MAX;
		for (int r = 0; r < R_COUNT; r++)
			if (!(c->count[r] = metrics_child(total, c->h->name, result_names[r])))
				goto fail;
		if (c->h->init && c->h->init(&c->ctx) < 0) {
			c->h = NULL; /* no cleanup for it */
			n->n_ch--;
			goto fail;
		}
	}
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
	pthread_mutex_lock(&n->qlock);
	n->journal = j;
	n->started = true;
	for (struct notify_entry *e = n->queue.head; e; e = e->next)
		if (!e->journaled)
			journal_intent(n, e);
	pthread_mutex_unlock(&n->qlock);
	for (size_t i = 0; i < n->n_ch; i++) {
		struct chan *c = &n->ch[i];
		bool configured = c->h->configured(n->cfg) && chan_for(n, c->h->name, true) == c;
		/* Replay may have found more than a channel keeps: the newest go. */
		while (configured && atomic_load(&c->pending) > c->queue_max && c->outbox.tail) {
			char reason[160];
			full_reason(n, c, reason, sizeof(reason));
			notify_entry_failed(n, c->outbox.tail, 0, reason);
		}
		for (struct notify_entry *e = c->outbox.head, *nx; e; e = nx) {
			nx = e->next;
			if (!configured)
				notify_entry_failed(n, e, 0, "the channel is no longer configured");
		}
	}
	if (notify_pending(n))
		log_info("notify: resending notices from before the restart", NULL);
	kick(n);
}

static void list_free(struct entry_list *l)
{
	while (l->head) {
		struct notify_entry *e = l->head;
		list_unlink(l, e);
		entry_free(e);
	}
}

void notify_set_config(struct notify *n, const struct config *cfg)
{
	atomic_store(&n->cfg, cfg);
}

static int add_ids(const struct entry_list *l, char **ids, size_t *n, size_t max)
{
	for (const struct notify_entry *e = l->head; e; e = e->next) {
		if (*n == max || !(ids[*n] = strdup(e->id)))
			return -1;
		(*n)++;
	}
	return 0;
}

static int id_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int notify_pending_ids(struct notify *n, char ***out, size_t *n_out)
{
	size_t max = 0, k = 0;
	/* the queue is filled from any thread; the outboxes are the loop's */
	pthread_mutex_lock(&n->qlock);
	for (const struct notify_entry *e = n->queue.head; e; e = e->next)
		max++;
	for (size_t i = 0; i < n->n_ch; i++)
		for (const struct notify_entry *e = n->ch[i].outbox.head; e; e = e->next)
			max++;
	char **ids = calloc(max ? max : 1, sizeof(*ids));
	int bad = !ids || add_ids(&n->queue, ids, &k, max);
	pthread_mutex_unlock(&n->qlock);
	for (size_t i = 0; !bad && i < n->n_ch; i++)
		bad = add_ids(&n->ch[i].outbox, ids, &k, max);
	if (bad) {
		notify_pending_free(ids, k);
		return -1;
	}
	qsort(ids, k, sizeof(*ids), id_cmp);
	*out = ids;
	*n_out = k;
	return 0;
}

bool notify_pending_has(char *const *ids, size_t n, const char *id)
{
	return n && bsearch(&id, ids, n, sizeof(*ids), id_cmp) != NULL;
}

void notify_pending_free(char **ids, size_t n)
{
	if (!ids)
		return;
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

void notify_free(struct notify *n)
{
	if (!n)
		return;
	n->closing = true;
	httpc_free(n->http); /* its callbacks see closing and only free */
	for (size_t i = 0; i < n->n_ch; i++) {
		struct chan *c = &n->ch[i];
		if (c->h && c->h->cleanup)
			c->h->cleanup(&c->ctx); /* cancels its own transfers the same way */
		list_free(&c->outbox);
	}
	if (n->kick)
		event_free(n->kick);
	if (n->timer)
		event_free(n->timer);
	list_free(&n->queue);
	pthread_mutex_destroy(&n->qlock);
	pthread_mutex_destroy(&n->loglock);
	free(n);
}
