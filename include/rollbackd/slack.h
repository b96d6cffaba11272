/*
 * slack: Slack Block Kit messages, request signatures and interactivity
 * payloads (SPEC §9).
 *
 * Pure functions: they build request bodies and parse replies and payloads;
 * sending them (webhook, chat.postMessage, response_url) is the caller's.
 * Every message holds Slack's limits whatever the input: text is cut on
 * UTF-8 character boundaries with "…", bytes that are not UTF-8 become
 * U+FFFD, and & < > in interpolated text are escaped as Slack asks. Limits
 * are counted in bytes, which is never less than Slack's character count.
 * Never: compare a signature other than in constant time, or put a secret
 * into a message or an error.
 */
#ifndef ROLLBACKD_SLACK_H
#define ROLLBACKD_SLACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollbackd/buf.h"
#include "rollbackd/error.h"
#include "rollbackd/secret.h"
#include "rollbackd/timestamp.h"

/* Slack's limits (bytes here; Slack counts characters). */
#define SLACK_MAX_BLOCKS 50
#define SLACK_TEXT_MAX 3000	 /* section / mrkdwn text, fallback text */
#define SLACK_HEADER_MAX 150	 /* header block text */
#define SLACK_BUTTON_TEXT_MAX 75 /* button label */
#define SLACK_URL_MAX 3000	 /* button url: longer ones are left out */
#define SLACK_VALUE_MAX 2000	 /* button value */
/* Ours: what a message shows at most. */
#define SLACK_OUTPUT_MAX 1500		    /* the tail of an action's output */
#define SLACK_MAX_ACTIONS_SHOWN 10	    /* action sections in a one-incident message */
#define SLACK_SIG_WINDOW 300		    /* seconds of request timestamp skew allowed */
#define SLACK_ACTION_BODY_MAX (1024 * 1024) /* largest interactivity body parsed */

/* One action run, as the message shows it. */
struct slack_action_view {
	const char *type;   /* "exec" | "http" */
	const char *result; /* ok | failed | timeout | error | unknown | running */
	int exit_code;	    /* exec: shown for ok/failed when >= 0 */
	int status_code;    /* http: shown when > 0 */
	const char *output; /* captured output or response, NULL = none */
};

/* An incident, as the message shows it. Every pointer is borrowed for the
 * call; NULL (or "") means "not known, leave it out" except where noted. */
struct slack_incident_view {
	const char *id, *rule, *service, *state; /* id is required */
	const char *value;			 /* "0.052" or NULL */
	const char *threshold;			 /* "above 0.01" or NULL */
	const struct slack_action_view *actions;
	size_t n_actions;
	struct timestamp alert_started; /* zero (or Go's zero) = unknown */
	struct timestamp now;
	const char *generator_url, *external_url; /* http(s) only, else left out */
	const char *ack_url;	     /* Acknowledge button; left out once acknowledged */
	const char *approve_url;     /* NULL unless awaiting approval */
	const char *acknowledged_by; /* NULL until acknowledged */
	const char *note;	     /* an extra line, e.g. "The rollback did not fix it: …" */
	int episode;		     /* the buttons act on this episode */
	bool interactive;	     /* Slack interactivity is on (auth.slack_signing): a
					button acts through it (value "<id>:<episode>", no
					url); else a button opens the confirm page (url, no
					value). Never both: a click would do the thing twice. */
};

/*
 * Append the JSON body for an incoming webhook, {"text": fallback, "blocks":
 * [...]}, to out.
 *
 * n == 1: a header (state and rule), a section with rule, service, state,
 * value vs threshold, how long the alert has fired and the incident id, one
 * section per action (at most SLACK_MAX_ACTIONS_SHOWN, then a context line
 * "and N more actions") with its result and the tail of its output in a code
 * block, the note, a context block of links (Prometheus, Alertmanager), the
 * acknowledgement, and an actions block: "Acknowledge" (action_id "ack",
 * url ack_url, value id) and "Approve" (action_id "approve", style primary,
 * url approve_url) as far as they are set and fit.
 *
 * n > 1 (a coalesced burst): a header, then one compact section per incident
 * with one button as accessory (Approve if set, else Acknowledge); when the
 * incidents do not fit in SLACK_MAX_BLOCKS blocks, the last block is a
 * context "and N more incidents".
 *
 * Returns 0, or -1 (n == 0, v NULL, an id NULL, OOM, out's cap) with out
 * unchanged.
 */
int slack_message(const struct slack_incident_view *v, size_t n, struct buf *out);

/* The chat.postMessage body for one incident: {"channel", "text", "blocks",
 * "unfurl_links": false, "unfurl_media": false}. channel is required. Same
 * returns as slack_message. */
int slack_post_message(const char *channel, const struct slack_incident_view *v, struct buf *out);
/* The chat.update body: {"channel", "ts", "text", "blocks"}, to edit the
 * message chat.postMessage created. */
int slack_update_message(const char *channel, const char *ts, const struct slack_incident_view *v,
			 struct buf *out);

/* The chat.postMessage body of a reply in the thread of the message ts of
 * channel (bot mode, SPEC §9): {"channel", "thread_ts", "text" (mrkdwn,
 * escaped, at most SLACK_TEXT_MAX), "reply_broadcast": true when broadcast
 * (also shown in the channel), "unfurl_links": false, "unfurl_media":
 * false}. 0, or -1 (no text, unusable channel or ts, OOM). */
int slack_thread_reply(const char *channel, const char *thread_ts, const char *text, bool broadcast,
		       struct buf *out);
/* Parse a chat.postMessage / chat.update reply {"ok":true,"channel":"C…",
 * "ts":"123.456",…}. Copies channel and ts (NUL-terminated) when ok is true
 * and both are strings that fit. Returns 0, or -1 (not JSON, ok not true,
 * missing or oversized field; channel and ts are then empty strings). */
int slack_parse_post_reply(const char *body, size_t len, char *channel, size_t chsz, char *ts,
			   size_t tssz);
/* Copy the "error" of a reply with "ok": false ("channel_not_found",
 * "ratelimited") into err (NUL-terminated, control bytes as '?'), for logs.
 * Returns 0, or -1 when the reply is not such an error. */
int slack_reply_error(const char *body, size_t len, char *err, size_t errsz);

enum slack_sig {
	SLACK_SIG_OK = 0,
	SLACK_SIG_MISSING,   /* a header is absent or empty */
	SLACK_SIG_MALFORMED, /* timestamp not decimal, signature not "v0=" + 64 hex */
	SLACK_SIG_STALE,     /* signature verifies, |now - ts| > SLACK_SIG_WINDOW */
	SLACK_SIG_BAD,	     /* signature does not verify (or no secret is set) */
};

/* Verify X-Slack-Signature (signature_hdr) = "v0=" + hex HMAC-SHA256(
 * signing_secret, "v0:" + X-Slack-Request-Timestamp + ":" + body) with the
 * timestamp exactly as sent (1..19 digits). Constant-time compare. Staleness
 * is reported only for a signature that verifies. body may be NULL when len
 * is 0. */
enum slack_sig slack_verify(const struct secret *signing_secret, const char *timestamp_hdr,
			    const char *signature_hdr, const unsigned char *body, size_t len,
			    int64_t now);
/* A short, secret-free sentence for a 401 body. Static. */
const char *slack_sig_message(enum slack_sig s);

/* A click on a button, from an interactivity payload. */
struct slack_action {
	char action[16];	 /* "ack" | "approve" */
	char incident[32];	 /* "inc-" + 16 lowercase hex */
	int episode;		 /* the episode the button was posted for (>= 1) */
	char user[128];		 /* user.username, else user.name, else user.id; cut to
				    fit on a UTF-8 boundary */
	char user_id[64];	 /* user.id */
	char response_url[3001]; /* http:// or https:// */
};

/* Parse a POST /v1/slack/actions body: form-urlencoded "payload=<JSON>"
 * (other fields ignored, at most SLACK_ACTION_BODY_MAX bytes). The JSON must
 * be {"type": "block_actions", "actions": [{"action_id": "ack"|"approve",
 * "value": "inc-<16 hex>", …}, …], "user": {"id", "username"|"name"},
 * "response_url": "http(s)://…"}; only actions[0] counts. Returns 0, or -1
 * with out zeroed and err naming the field ("payload.actions[0].value: …").
 * Call only after slack_verify said SLACK_SIG_OK. */
int slack_parse_action(const char *body, size_t len, struct slack_action *out, struct error *err);

/* Append the body to POST to a response_url: {"replace_original": false,
 * "response_type": "in_channel", "text": text}. text is plain: & < > are
 * escaped, it is cut to SLACK_TEXT_MAX. Returns 0, or -1 with out unchanged. */
int slack_response_update(const char *text, struct buf *out);
/* The same with the incident's whole message, replacing the one clicked:
 * {"replace_original": true, "text", "blocks"}. */
int slack_response_replace(const struct slack_incident_view *v, struct buf *out);

#endif
