/*
 * channel_email: email through libcurl's SMTP (smtpc) behind channel.h
 * (SPEC §9 notify.email): one message per incident when it rolls back,
 * when a rollback action fails, when the rollback proved ineffective, and
 * when it resolves — for people and lists outside Slack.
 *
 * Each message is multipart/alternative (plain text and HTML, both UTF-8
 * in base64, so no line is too long and no byte needs escaping) with a
 * Message-ID of its own; the messages after an incident's first carry
 * In-Reply-To and References naming the first, so a mail client shows one
 * thread per incident episode. The first Message-ID is kept (msgmap),
 * journaled in notify_sent as "email_message_id" and rebuilt on replay;
 * resolving forgets it. One delivery at a time; a failed one is retried
 * like the other channels, except that a 5xx reply (a refused login, a
 * refused recipient) fails for good. Never: put the password into a
 * record, a log line or an error (the core redacts it).
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rollbackd/channel.h"
#include "rollbackd/json.h"
#include "rollbackd/log.h"
#include "rollbackd/msgmap.h"
#include "rollbackd/notice.h"
#include "rollbackd/smtpc.h"

#define EMAIL_THREADS_MAX 10000 /* incidents whose first Message-ID we know */
#define EMAIL_MSGID_MAX 320	/* bytes of a Message-ID with its <> */
#define EMAIL_TIMEOUT_MS 60000	/* one delivery */
#define EMAIL_SUBJECT_MAX 200	/* bytes of subject text before encoding */

struct email {
	struct msgmap *first; /* incident -> the first message's Message-ID */
	struct smtpc *smtp;
};

static bool email_configured(const struct config *c)
{
	const struct email_config *m = &c->notify.email;
	return m->smtp_url && m->smtp_url[0] && m->from && m->n_to > 0;
}

static bool email_wants(const struct notify_event *ev)
{
	switch (ev->kind) {
	case NOTIFY_ROLLED_BACK:
	case NOTIFY_ESCALATE:
	case NOTIFY_RESOLVE:
		return true;
	case NOTIFY_TRIGGER: /* only when an action failed */
		return ev->state && strcmp(ev->state, "action_failed") == 0;
	default:
		return false;
	}
}

static const struct secret *email_secret(const struct config *c, size_t i)
{
	return i == 0 ? &c->notify.email.password : NULL;
}

static int email_init(struct channel_ctx *c)
{
	struct email *m = calloc(1, sizeof(*m));
	if (!m || !(m->first = msgmap_new(EMAIL_THREADS_MAX))) {
		free(m);
		return -1;
	}
	c->priv = m;
	return 0;
}

static void email_cleanup(struct channel_ctx *c)
{
	struct email *m = c->priv;
	if (!m)
		return;
	smtpc_free(m->smtp); /* cancels: the core frees the sends */
	msgmap_free(m->first);
	free(m);
	c->priv = NULL;
}

/* ---- the message (pure) ------------------------------------------------------ */

static int add_base64(struct buf *b, const char *s, size_t n)
{
	/* 57 input bytes make one 76-character line. */
	char line[80];
	int bad = 0;
	for (size_t i = 0; i < n && !bad; i += 57) {
		size_t k = n - i < 57 ? n - i : 57;
		sodium_bin2base64(line, sizeof(line), (const unsigned char *)s + i, k,
				  sodium_base64_VARIANT_ORIGINAL);
		bad |= buf_adds(b, line) | buf_adds(b, "\r\n");
	}
	return bad;
}

/* Header-safe text: control bytes become spaces, cut on a UTF-8 boundary. */
static void header_text(const char *in, char *out, size_t sz)
{
	size_t n = 0;
	for (; in && *in && n + 1 < sz; in++)
		out[n++] = (unsigned char)*in < 0x20 || *in == 0x7f ? ' ' : *in;
	while (n > 0 && in && *in && ((unsigned char)out[n] & 0xc0) == 0x80)
		n--;
	out[n] = '\0';
}

static int add_html_escaped(struct buf *b, const char *s)
{
	int bad = 0;
	for (; s && *s && !bad; s++) {
		switch (*s) {
		case '&':
			bad = buf_adds(b, "&amp;");
			break;
		case '<':
			bad = buf_adds(b, "&lt;");
			break;
		case '>':
			bad = buf_adds(b, "&gt;");
			break;
		case '"':
			bad = buf_adds(b, "&quot;");
			break;
		case '\'':
			bad = buf_adds(b, "&#39;");
			break;
		default:
			bad = buf_addc(b, *s);
		}
	}
	return bad;
}

static const char *or_dash(const char *s)
{
	return s && s[0] ? s : "-";
}

/* The two bodies of a notice; ack is the signed Acknowledge link or NULL. */
static int email_bodies(const struct notice *nt, const char *ack, struct buf *text,
			struct buf *html)
{
	const char *why = nt->note && nt->note[0] ? nt->note : nt->reason;
	int bad = buf_addf(text, "Incident %s: %s\n\n", nt->incident, or_dash(nt->state)) |
		  buf_addf(text, "Rule:     %s\nService:  %s\nState:    %s\n", or_dash(nt->rule),
			   or_dash(nt->service), or_dash(nt->state));
	if (nt->value)
		bad |= buf_addf(text, "Value:    %s (%s)\n", nt->value, or_dash(nt->threshold));
	if (why && why[0])
		bad |= buf_addf(text, "Why:      %s\n", why);
	bad |= buf_adds(html, "<!DOCTYPE html><html><body style=\"font-family:sans-serif\">"
			      "<h2>Incident ") |
	       add_html_escaped(html, nt->incident) | buf_adds(html, ": ") |
	       add_html_escaped(html, or_dash(nt->state)) |
	       buf_adds(html, "</h2><table><tr><th align=left>Rule</th><td>") |
	       add_html_escaped(html, or_dash(nt->rule)) |
	       buf_adds(html, "</td></tr><tr><th align=left>Service</th><td>") |
	       add_html_escaped(html, or_dash(nt->service)) |
	       buf_adds(html, "</td></tr><tr><th align=left>State</th><td>") |
	       add_html_escaped(html, or_dash(nt->state)) | buf_adds(html, "</td></tr>");
	if (nt->value)
		bad |= buf_adds(html, "<tr><th align=left>Value</th><td>") |
		       add_html_escaped(html, nt->value) | buf_adds(html, " (") |
		       add_html_escaped(html, or_dash(nt->threshold)) |
		       buf_adds(html, ")</td></tr>");
	if (why && why[0])
		bad |= buf_adds(html, "<tr><th align=left>Why</th><td>") |
		       add_html_escaped(html, why) | buf_adds(html, "</td></tr>");
	bad |= buf_adds(html, "</table>");
	for (size_t i = 0; i < nt->n_actions; i++) {
		const struct slack_action_view *a = &nt->actions[i];
		char code[48] = "";
		if (a->status_code > 0)
			snprintf(code, sizeof(code), ", HTTP %d", a->status_code);
		else if (a->exit_code >= 0 && a->type && strcmp(a->type, "exec") == 0)
			snprintf(code, sizeof(code), ", exit %d", a->exit_code);
		bad |= buf_addf(text, "\nAction %zu (%s): %s%s\n", i + 1, or_dash(a->type),
				or_dash(a->result), code) |
		       buf_addf(html, "<h3>Action %zu (", i + 1) |
		       add_html_escaped(html, or_dash(a->type)) | buf_adds(html, "): ") |
		       add_html_escaped(html, or_dash(a->result)) | add_html_escaped(html, code) |
		       buf_adds(html, "</h3>");
		if (a->output && a->output[0])
			bad |= buf_addf(text, "%s%s", a->output,
					a->output[strlen(a->output) - 1] == '\n' ? "" : "\n") |
			       buf_adds(html, "<pre>") | add_html_escaped(html, a->output) |
			       buf_adds(html, "</pre>");
	}
	if (nt->acknowledged_by && nt->acknowledged_by[0])
		bad |= buf_addf(text, "\nAcknowledged by %s\n", nt->acknowledged_by) |
		       buf_adds(html, "<p>Acknowledged by ") |
		       add_html_escaped(html, nt->acknowledged_by) | buf_adds(html, "</p>");
	if (ack)
		bad |= buf_addf(text, "\nAcknowledge: %s\n", ack) |
		       buf_adds(html, "<p><a href=\"") | add_html_escaped(html, ack) |
		       buf_adds(html, "\">Acknowledge</a></p>");
	if (nt->generator_url && nt->generator_url[0])
		bad |= buf_addf(text, "Prometheus: %s\n", nt->generator_url) |
		       buf_adds(html, "<p><a href=\"") | add_html_escaped(html, nt->generator_url) |
		       buf_adds(html, "\">Prometheus</a></p>");
	bad |= buf_adds(text, "\n-- \nrollbackd\n") | buf_adds(html, "</body></html>\n");
	return bad;
}

/* The domain part of an address, for Message-IDs. */
static const char *domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');
	return at && at[1] ? at + 1 : "rollbackd.invalid";
}

static void message_id(const char *from, const char *id, const char *incident,
		       char out[EMAIL_MSGID_MAX])
{
	snprintf(out, EMAIL_MSGID_MAX, "<%s.%s@%s>", id, incident, domain_of(from));
}

/*
 * The whole message for notice nt as entry id: headers, then a
 * multipart/alternative body. msgid gets this message's Message-ID;
 * first is the incident's first Message-ID or NULL (this is the first).
 */
static int email_message(const struct email_config *m, const char *id, const struct notice *nt,
			 const char *ack, const char *first, time_t now, struct buf *out,
			 char msgid[EMAIL_MSGID_MAX])
{
	struct buf text = BUF_INIT, html = BUF_INIT;
	char subject[EMAIL_SUBJECT_MAX + 1], raw[EMAIL_SUBJECT_MAX + 64], date[64], b64[400];
	struct tm tm;
	int bad;

	message_id(m->from, id, nt->incident, msgid);
	snprintf(raw, sizeof(raw), "[rollbackd] %s: %s on %s (%s)", or_dash(nt->state),
		 or_dash(nt->rule), or_dash(nt->service), nt->incident);
	header_text(raw, subject, sizeof(subject));
	sodium_bin2base64(b64, sizeof(b64), (const unsigned char *)subject, strlen(subject),
			  sodium_base64_VARIANT_ORIGINAL);
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	bad = email_bodies(nt, ack, &text, &html) |
	      buf_addf(out, "From: rollbackd <%s>\r\nTo: ", m->from);
	for (size_t i = 0; i < m->n_to; i++)
		bad |= buf_addf(out, "%s%s", i ? ", " : "", m->to[i]);
	bad |= buf_addf(out, "\r\nSubject: =?UTF-8?B?%s?=\r\nDate: %s\r\nMessage-ID: %s\r\n", b64,
			date, msgid);
	if (first)
		bad |= buf_addf(out, "In-Reply-To: %s\r\nReferences: %s\r\n", first, first);
	bad |= buf_addf(out,
			"MIME-Version: 1.0\r\nAuto-Submitted: auto-generated\r\n"
			"Content-Type: multipart/alternative; boundary=\"=_%s\"\r\n\r\n"
			"--=_%s\r\nContent-Type: text/plain; charset=utf-8\r\n"
			"Content-Transfer-Encoding: base64\r\n\r\n",
			id, id) |
	       add_base64(out, text.data ? text.data : "", text.len) |
	       buf_addf(out,
			"--=_%s\r\nContent-Type: text/html; charset=utf-8\r\n"
			"Content-Transfer-Encoding: base64\r\n\r\n",
			id) |
	       add_base64(out, html.data ? html.data : "", html.len) |
	       buf_addf(out, "--=_%s--\r\n", id);
	buf_release(&text);
	buf_release(&html);
	return bad ? -1 : 0;
}

/* ---- build, send, reply, replay ----------------------------------------------- */

static int email_build(struct channel_ctx *c, struct channel_send *s, struct channel_request *rq)
{
	struct email *m = c->priv;
	struct notify_entry *e = s->e[0];
	struct notice nt;
	struct buf link = BUF_INIT;
	char msgid[EMAIL_MSGID_MAX];
	const char *ack = NULL;
	int rc;

	if (notice_parse(e->notice, e->notice_len, &nt) < 0) {
		s->k = 0;
		notify_entry_failed(c->n, e, 0, "the notice cannot be read back");
		return 0;
	}
	if (notice_wants_ack_link(&nt))
		ack = notify_link(c->n, "ack", nt.incident, nt.episode, &link);
	/* mode 1: a reply in the incident's thread; 0: its first message. */
	const char *first = msgmap_get(m->first, e->incident);
	s->mode = first ? 1 : 0;
	rc = email_message(&c->cfg->notify.email, e->id, &nt, ack, first, time(NULL), &rq->body,
			   msgid);
	buf_release(&link);
	notice_release(&nt);
	return rc ? -1 : 0;
}

static void email_done(const struct httpc_result *res, void *arg)
{
	notify_channel_done(arg, res);
}

static int email_send(struct channel_ctx *c, struct channel_send *s, struct channel_request *rq)
{
	const struct email_config *cfg = &c->cfg->notify.email;
	struct email *m = c->priv;
	struct error err;
	struct smtpc_message msg = {
	    .url = cfg->smtp_url,
	    .from = cfg->from,
	    .to = (const char *const *)cfg->to,
	    .n_to = cfg->n_to,
	    .username = cfg->username,
	    .password = &cfg->password,
	    .starttls = cfg->starttls && strncmp(cfg->smtp_url, "smtp://", 7) == 0,
	    .ca_file = cfg->ca_file,
	    .data = rq->body.data,
	    .len = rq->body.len,
	    .timeout_ms = EMAIL_TIMEOUT_MS,
	};

	if (!m->smtp && !(m->smtp = smtpc_new(notify_base(c->n)))) {
		log_error("notify: cannot start an SMTP client (libcurl missing?)", NULL);
		return -1;
	}
	return smtpc_send(m->smtp, &msg, email_done, s, &err);
}

/* A 5xx reply is the server's final no (a refused login or recipient);
 * connection errors and 4xx are worth another try. */
static bool email_retryable(const struct httpc_result *r)
{
	return !(r->status >= 500 && r->status <= 599);
}

static void email_reply(struct channel_ctx *c, struct channel_send *s, const struct httpc_result *r)
{
	struct email *m = c->priv;
	struct notify_entry *e = s->e[0];
	struct buf x = BUF_INIT;
	char msgid[EMAIL_MSGID_MAX];
	int bad = 0;

	if (!s->mode) { /* the incident's first message: its thread root */
		message_id(c->cfg->notify.email.from, e->id, e->incident, msgid);
		bad = buf_adds(&x, ",\"email_message_id\":") |
		      notice_add_json_text(&x, msgid, strlen(msgid), EMAIL_MSGID_MAX, false);
		if (e->kind != NOTIFY_RESOLVE && msgmap_set(m->first, e->incident, msgid) < 0)
			log_warn("notify: cannot remember the email thread", "incident",
				 e->incident, NULL);
	}
	if (e->kind == NOTIFY_RESOLVE)
		msgmap_forget(m->first, e->incident); /* a new episode starts a new thread */
	notify_entry_sent(c->n, e, r->status, bad || !x.data ? NULL : x.data);
	buf_release(&x);
}

static int email_replay(struct channel_ctx *c, const char *incident, int kind, bool sent,
			const struct json_doc *d)
{
	struct email *m = c->priv;
	char id[EMAIL_MSGID_MAX];
	size_t t;

	if (!sent)
		return 0;
	if (kind == NOTIFY_RESOLVE) {
		msgmap_forget(m->first, incident);
		return 0;
	}
	t = json_obj_get(d, 0, "email_message_id");
	if (!t || d->toks[t].kind != JSON_KIND_STRING || d->toks[t].size >= sizeof(id))
		return 0;
	json_str_decode(d, &d->toks[t], id);
	return msgmap_set(m->first, incident, id);
}

const struct channel channel_email = {
    .name = "email",
    .configured = email_configured,
    .wants = email_wants,
    .max_inflight = 1,
    .ordered = true,
    .retries = true,
    .init = email_init,
    .cleanup = email_cleanup,
    .build = email_build,
    .send = email_send,
    .reply = email_reply,
    .retryable = email_retryable,
    .replay = email_replay,
    .secret = email_secret,
};
