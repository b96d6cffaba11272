/*
 * channel_slack_bot: Slack's Web API with a bot token (SPEC §9) behind
 * channel.h: chat.postMessage for an incident's first notice, chat.update
 * of that message afterwards, so a channel shows one living message per
 * incident. Each step (NOTIFY_STEP: an action started or finished, the
 * verification's result, an acknowledgement or approval) is a reply in
 * that message's thread (chat.postMessage with thread_ts), the failures
 * also broadcast to the channel (reply_broadcast). The channel is ordered,
 * so a step waits until the notice before it settled, and with it the
 * message's ts; a step whose incident has no message (its first notice
 * failed for good, or it was forgotten past THREADS_MAX) fails, journaled,
 * rather than post a reply to nothing. One request at a time, at most one
 * per pacing interval. The message an incident has (channel id and ts) is
 * kept here, rebuilt on replay from notify_sent records (slack_ts; a
 * reply's record has slack_reply_ts instead), and forgotten when it
 * resolves.
 * Never: journal or log the bot token (the core wipes the header).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollbackd/channel.h"
#include "rollbackd/json.h"
#include "rollbackd/log.h"
#include "rollbackd/msgmap.h"
#include "rollbackd/notice.h"
#include "rollbackd/slack.h"

#define THREADS_MAX 10000		 /* incidents whose message we know */
#define SLACK_ID_MAX 64			 /* channel id or ts */
#define SLACK_API_MAX_RESPONSE (1 << 20) /* chat.* replies echo the whole message */

enum { MODE_POST, MODE_UPDATE, MODE_REPLY };

/* The message an incident has (chat.update edits it), as found. */
struct thread {
	char channel[SLACK_ID_MAX], ts[SLACK_ID_MAX];
};

struct bot {
	struct msgmap *threads; /* incident -> "channel ts" */
	struct thread found;	/* bot_thread_find's answer */
};

static bool bot_configured(const struct config *c)
{
	return secret_is_set(&c->notify.slack_bot_token) && c->notify.slack_channel &&
	       c->notify.slack_channel[0] && c->notify.slack_api_url && c->notify.slack_api_url[0];
}

static const struct secret *bot_secret(const struct config *c, size_t i)
{
	return i == 0 ? &c->notify.slack_bot_token : NULL;
}

/* ---- the messages incidents have ------------------------------------------ */

static void bot_thread_forget(struct bot *b, const char *incident)
{
	msgmap_forget(b->threads, incident);
}

/* Valid until the next call. */
static const struct thread *bot_thread_find(struct bot *b, const char *incident)
{
	const char *v = msgmap_get(b->threads, incident), *sp;
	if (!v || !(sp = strchr(v, ' ')) || (size_t)(sp - v) >= SLACK_ID_MAX ||
	    strlen(sp + 1) >= SLACK_ID_MAX)
		return NULL;
	snprintf(b->found.channel, sizeof(b->found.channel), "%.*s", (int)(sp - v), v);
	snprintf(b->found.ts, sizeof(b->found.ts), "%s", sp + 1);
	return &b->found;
}

/* Remember (or move) an incident's message; the oldest is forgotten past
 * THREADS_MAX (its next notice then starts a new message). Slack's ids
 * have no spaces. */
static int bot_thread_set(struct bot *b, const char *incident, const char *channel, const char *ts)
{
	char v[2 * SLACK_ID_MAX + 2];

	if (strlen(channel) >= SLACK_ID_MAX || strlen(ts) >= SLACK_ID_MAX || !channel[0] ||
	    strchr(channel, ' ') || strchr(ts, ' '))
		return -1;
	snprintf(v, sizeof(v), "%s %s", channel, ts);
	return msgmap_set(b->threads, incident, v);
}

static int bot_init(struct channel_ctx *c)
{
	struct bot *b = calloc(1, sizeof(*b));
	if (!b || !(b->threads = msgmap_new(THREADS_MAX))) {
		free(b);
		return -1;
	}
	c->priv = b;
	return 0;
}

static void bot_cleanup(struct channel_ctx *c)
{
	struct bot *b = c->priv;
	if (b)
		msgmap_free(b->threads);
	free(b);
	c->priv = NULL;
}

/* ---- build, reply, replay ---------------------------------------------------- */

static int bot_build(struct channel_ctx *c, struct channel_send *s, struct channel_request *rq)
{
	const struct config *cfg = c->cfg;
	const struct secret *tok = &cfg->notify.slack_bot_token;
	struct notify_entry *e = s->e[0];
	struct notice nt;
	struct slack_incident_view v;
	struct buf links[2] = {BUF_INIT, BUF_INIT};
	const struct thread *t = bot_thread_find(c->priv, e->incident);
	int rc;

	if (notice_parse(e->notice, e->notice_len, &nt) < 0) {
		s->k = 0;
		notify_entry_failed(c->n, e, 0, "the notice cannot be read back");
		return 0;
	}
	if (e->kind == NOTIFY_STEP) {
		if (!t || !nt.note || !nt.note[0]) {
			notice_release(&nt);
			s->k = 0;
			notify_entry_failed(
			    c->n, e, 0,
			    t ? "slack: a step without text"
			      : "slack: no message to reply to (the incident's first "
				"notice was not delivered)");
			return 0;
		}
		s->mode = MODE_REPLY;
		rc = slack_thread_reply(t->channel, t->ts, nt.note, notify_step_is_failure(nt.step),
					&rq->body) |
		     buf_addf(&rq->url, "%s/chat.postMessage", cfg->notify.slack_api_url);
		notice_release(&nt);
		goto headers;
	}
	s->mode = t ? MODE_UPDATE : MODE_POST;
	notice_slack_view(c->n, &nt, links, &v);
	rc = t ? slack_update_message(t->channel, t->ts, &v, &rq->body)
	       : slack_post_message(cfg->notify.slack_channel, &v, &rq->body);
	rc |= buf_addf(&rq->url, "%s/%s", cfg->notify.slack_api_url,
		       t ? "chat.update" : "chat.postMessage");
	buf_release(&links[0]);
	buf_release(&links[1]);
	notice_release(&nt);
headers:
	rc |=
	    buf_adds(&rq->auth, "Authorization: Bearer ") | buf_add(&rq->auth, tok->data, tok->len);
	rq->headers[0] = "Content-Type: application/json; charset=utf-8";
	rq->headers[1] = rq->auth.data;
	/* A cut reply would hide the ts of a message that was posted. */
	rq->max_response = SLACK_API_MAX_RESPONSE;
	rq->backoff_base_ms = 2 * c->interval_ms;
	return rc ? -1 : 0;
}

/* chat.postMessage / chat.update answer 200 with {"ok": false, "error"} on
 * errors: ratelimited is retried, a message that is gone is posted anew,
 * anything else fails for good. */
static void bot_reply(struct channel_ctx *c, struct channel_send *s, const struct httpc_result *r)
{
	struct bot *b = c->priv;
	struct notify_entry *e = s->e[0];
	char ch[SLACK_ID_MAX], ts[SLACK_ID_MAX], err[128], text[CHANNEL_ERROR_MAX + 1];

	if (slack_parse_post_reply(r->body, r->body_len, ch, sizeof(ch), ts, sizeof(ts)) == 0) {
		struct buf m = BUF_INIT;
		if (s->mode == MODE_REPLY) {
			/* the thread stays the incident's message */
			int bad = buf_adds(&m, ",\"slack_reply_ts\":") |
				  notice_add_json_text(&m, ts, strlen(ts), SLACK_ID_MAX, false);
			notify_entry_sent(c->n, e, r->status, bad ? NULL : m.data);
			buf_release(&m);
			return;
		}
		if (e->kind == NOTIFY_RESOLVE)
			bot_thread_forget(b, e->incident); /* a new episode gets a new message */
		else if (bot_thread_set(b, e->incident, ch, ts) < 0)
			log_warn("notify: cannot remember the Slack message", "incident",
				 e->incident, NULL);
		int bad = buf_adds(&m, ",\"slack_channel\":") |
			  notice_add_json_text(&m, ch, strlen(ch), SLACK_ID_MAX, false) |
			  buf_adds(&m, ",\"slack_ts\":") |
			  notice_add_json_text(&m, ts, strlen(ts), SLACK_ID_MAX, false);
		notify_entry_sent(c->n, e, r->status, bad ? NULL : m.data);
		buf_release(&m);
		return;
	}
	if (slack_reply_error(r->body, r->body_len, err, sizeof(err)) < 0)
		snprintf(err, sizeof(err), "unreadable reply");
	if (strcmp(err, "ratelimited") == 0) {
		notify_entry_retry(c->n, e, -1, r->status, "slack: ratelimited");
		return;
	}
	if (s->mode == MODE_UPDATE &&
	    (strcmp(err, "message_not_found") == 0 || strcmp(err, "cant_update_message") == 0 ||
	     strcmp(err, "edit_window_closed") == 0)) {
		/* The message is gone: post a new one, now. */
		bot_thread_forget(b, e->incident);
		notify_entry_retry(c->n, e, 0, r->status, err);
		return;
	}
	char raw[160];
	snprintf(raw, sizeof(raw), "slack: %s", err);
	notify_error_text(c->n, NULL, raw, text);
	notify_entry_failed(c->n, e, r->status, text);
}

static bool bot_rec_str(const struct json_doc *d, const char *name, char *dst, size_t dsz)
{
	size_t t = json_obj_get(d, 0, name);
	if (!t || d->toks[t].kind != JSON_KIND_STRING || d->toks[t].size >= dsz)
		return false;
	json_str_decode(d, &d->toks[t], dst);
	return strlen(dst) == d->toks[t].size;
}

static int bot_replay(struct channel_ctx *c, const char *incident, int kind, bool sent,
		      const struct json_doc *d)
{
	char sch[SLACK_ID_MAX], sts[SLACK_ID_MAX];

	if (!sent)
		return 0;
	if (kind == NOTIFY_RESOLVE)
		bot_thread_forget(c->priv, incident);
	else if (bot_rec_str(d, "slack_channel", sch, sizeof(sch)) &&
		 bot_rec_str(d, "slack_ts", sts, sizeof(sts)) &&
		 bot_thread_set(c->priv, incident, sch, sts) < 0)
		return -1;
	return 0;
}

const struct channel channel_slack_bot = {
    .name = "slack",
    .configured = bot_configured,
    .max_inflight = 1,
    .paced = true,
    .ordered = true,
    .retries = true,
    .steps = true,
    .init = bot_init,
    .cleanup = bot_cleanup,
    .build = bot_build,
    .reply = bot_reply,
    .replay = bot_replay,
    .secret = bot_secret,
};
