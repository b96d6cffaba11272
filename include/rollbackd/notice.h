/*
 * notice: a notification as the outbox keeps it (SPEC §9), a JSON object
 * with everything the channels build their messages from and nothing
 * secret (links are signed at send time), and the views built from it.
 *
 * Pure, except notice_slack_view which signs links with the notify's
 * config. Never: put a secret, a signed link or a response_url into a
 * notice.
 */
#ifndef ROLLBACKD_NOTICE_H
#define ROLLBACKD_NOTICE_H

#include <stdbool.h>
#include <stddef.h>

#include "rollbackd/alert.h"
#include "rollbackd/buf.h"
#include "rollbackd/notify.h"
#include "rollbackd/slack.h"
#include "rollbackd/timestamp.h"

struct notify;

#define NOTICE_MAX (512 * 1024) /* bytes of one serialized notice */
#define NOTICE_FIELD_MAX 1024	/* ids, names, states, values */
#define NOTICE_TEXT_MAX 4096	/* reason, note, urls */
#define NOTICE_MAX_ACTIONS 64	/* actions kept in a notice */

/* A notice read back: every string lives in arena (notice_release). */
struct notice {
	enum notify_kind kind;
	const char *incident, *rule, *service, *state, *value, *threshold, *severity, *reason;
	const char *generator_url, *external_url, *acknowledged_by, *note;
	const char *target; /* the target, or "k=v,k2=v2" of the group labels; NULL */
	const char *step;   /* NOTIFY_STEP: which (notify.h), else NULL */
	struct timestamp alert_started;
	int episode; /* links are signed for it (1 in notices journaled before) */
	bool awaiting_approval;
	struct label *labels;
	size_t n_labels;
	struct slack_action_view *actions;
	size_t n_actions;
	char *arena; /* decoded strings: never more than the text plus a NUL each */
	size_t used;
};

/* "trigger", "update", "acknowledge", "resolve", "escalate", "rolled_back", "step";
 * "?" out of range. Static. */
const char *notify_kind_name(enum notify_kind k);
/* 0, or -1 for an unknown name. */
int notify_kind_parse(const char *s, enum notify_kind *out);

/* Append ev as a notice to b (bounded: labels, action outputs' tails,
 * texts; invalid UTF-8 repaired). compact leaves out labels and action
 * outputs, for when the whole would pass b's cap. 0, or -1 (OOM, b's cap). */
int notice_write(struct buf *b, const struct notify_event *ev, bool compact);

/* Parse a notice (as notice_write wrote it, or as replay found it). 0, or
 * -1 when it is not such an object (or on OOM) with nt zeroed. */
int notice_parse(const char *text, size_t len, struct notice *nt);
void notice_release(struct notice *nt);

/* Append s[0..n) as a JSON string the strict tokenizer takes back: invalid
 * UTF-8 and NUL become U+FFFD; at most max input bytes, the head or (tail)
 * the tail, cut on a character boundary. 0 or -1. */
int notice_add_json_text(struct buf *b, const char *s, size_t n, size_t max, bool tail);

/* Whether a message for this notice offers the Acknowledge link. */
bool notice_wants_ack_link(const struct notice *nt);

/* The Slack view of a notice; links[0..1] hold the signed links (release
 * them after use). Borrowed from nt: valid while nt is. */
void notice_slack_view(const struct notify *n, const struct notice *nt, struct buf links[2],
		       struct slack_incident_view *v);

#endif
