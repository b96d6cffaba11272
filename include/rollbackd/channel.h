/*
 * channel: one notification channel behind one interface (SPEC §9), in the
 * manner of curl's Curl_handler.
 *
 * A channel is a const struct channel in its own file (channel_*.c): its
 * name (what rules say in "notify" and what records and metrics say in
 * "channel"), whether the config sets it up, which notices it takes, how
 * it builds a request from the entries it is handed, how it sends it (HTTP
 * through httpc unless it says otherwise), how it reads the reply, and its
 * pacing (requests in flight, notices per request, least time between two
 * requests, order per incident). The outbox (notify.c) knows channels only
 * through this interface and keeps one bounded queue per channel, so a dead
 * channel never makes another one drop or wait. Adding a channel is one
 * file, one line in channel_registry[] (notify.c) and its config block.
 *
 * Several channels may share a name when the config picks one of them
 * (Slack: the bot API when bot_token and channel are set, else the
 * webhook): the first configured one of that name gets the notices.
 *
 * Threads: every hook runs on the notify loop thread except `wants`, which
 * runs on the caller of notify_incident under the engine's lock (pure: no
 * I/O, no lock). Hooks never keep a pointer to an entry after they return,
 * except through the channel_send they were handed. Never: put a secret
 * (URL, token, key, password) into a record, a log line or an error text;
 * the core redacts what `secret` lists from every error text it journals.
 */
#ifndef ROLLBACKD_CHANNEL_H
#define ROLLBACKD_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollbackd/buf.h"
#include "rollbackd/config.h"
#include "rollbackd/httpc.h"
#include "rollbackd/notify.h"

struct json_doc;
struct notify;

#define CHANNEL_BATCH_MAX 49	/* entries in one request at most */
#define CHANNEL_HEADERS_MAX 4	/* request headers a channel sets */
#define CHANNEL_ERROR_MAX 300	/* bytes of error text journaled */
#define CHANNEL_QUEUE_MAX 10000 /* default notices queued or waiting, per channel */

/* One notice for one channel, from notify_incident (or replay) until a
 * notify_sent / notify_failed record. Owned by the outbox; a channel reads
 * it and may use `mode` while it is in flight. */
struct notify_entry {
	struct notify_entry *prev, *next; /* the queue, then the channel's outbox */
	char id[32];			  /* "n-" + 16 hex */
	unsigned ch;			  /* index of its channel in the notify */
	enum notify_kind kind;
	char *incident; /* "" for notices without one (slack_response) */
	char *notice;	/* JSON object (notice.h), no secret; NULL without */
	size_t notice_len;
	char *url, *body; /* slack_response only: never journaled or logged */
	size_t body_len;
	bool journaled; /* its intent is in the journal (or needs none) */
	bool inflight;
	int attempts;	/* transfer attempts over every round */
	int rounds;	/* failed rounds so far */
	int64_t due_ms; /* monotonic: not before */
};

/* One request in flight and the entries it carries (at most batch_max). */
struct channel_send {
	struct notify *n;
	unsigned ch;
	int mode; /* the channel's own, e.g. post or update */
	size_t k;
	struct notify_entry *e[CHANNEL_BATCH_MAX];
};

/* What build fills for an HTTP channel; the core wipes every buffer after
 * the request started (they may hold a secret). */
struct channel_request {
	struct buf url, body, auth; /* auth: an "Authorization: …" header or empty */
	const char *headers[CHANNEL_HEADERS_MAX + 1]; /* NULL-terminated; may point into auth */
	size_t max_response;			      /* 0 = 16 KiB */
	int64_t backoff_base_ms;		      /* 0 = 500 ms */
};

/* What a channel instance gets in every hook. */
struct channel_ctx {
	struct notify *n;
	const struct config *cfg; /* borrowed: the notify's config */
	int64_t interval_ms;	  /* the pacing interval in force */
	void *priv;		  /* the channel's own state (init/cleanup) */
};

struct channel {
	const char *name;
	const char *rule_name; /* what a rule's "notify" says to get it; NULL = name
				  (pagerduty_change comes with "pagerduty") */
	bool internal;	       /* not for rules (slack_response) */
	bool (*configured)(const struct config *cfg);
	/* Whether this notice goes to the channel; NULL = every notice. Any
	 * thread, under the caller's lock: pure. */
	bool (*wants)(const struct notify_event *ev);
	/* Pacing and concurrency. */
	int max_inflight;			       /* requests in flight at once */
	size_t (*batch_max)(const struct config *cfg); /* NULL = 1 */
	bool paced;				       /* at most one request per interval */
	bool ordered; /* an incident's notices go one after another */
	bool retries; /* false: a failed round is final */
	bool steps;   /* takes NOTIFY_STEP notices (the Slack bot's thread replies) */
	/* The channel's state; NULL = none. init returns 0 or -1 (OOM). */
	int (*init)(struct channel_ctx *c);
	void (*cleanup)(struct channel_ctx *c);
	/* Build the request for s->e[0..k). An entry that cannot be sent at
	 * all is failed by build (notify_entry_failed) and removed from s.
	 * 0 with req filled, or -1 when nothing could be built (the entries
	 * left in s are retried later). */
	int (*build)(struct channel_ctx *c, struct channel_send *s, struct channel_request *req);
	/* Start the transfer itself instead of HTTP (NULL = HTTP POST of req
	 * through httpc): 0 once under way, then call notify_channel_done
	 * exactly once with the outcome; -1 when it cannot start. */
	int (*send)(struct channel_ctx *c, struct channel_send *s, struct channel_request *req);
	/* The reply of a successful transfer (NULL = every entry sent). A
	 * failed transfer is retried or failed by the core. The hook settles
	 * every entry of s with notify_entry_sent/_retry/_failed. */
	void (*reply)(struct channel_ctx *c, struct channel_send *s, const struct httpc_result *r);
	/* Whether a failed transfer is worth another round (NULL = HTTP's
	 * rules: no reply, 429, 5xx). */
	bool (*retryable)(const struct httpc_result *r);
	/* Journal replay of a notify_sent / notify_failed record of this
	 * channel (d is the record), e.g. the Slack message an incident has.
	 * kind is the entry's when it was still in the outbox, else -1. */
	int (*replay)(struct channel_ctx *c, const char *incident, int kind, bool sent,
		      const struct json_doc *d);
	/* The i-th secret to redact from error texts, NULL past the last. */
	const struct secret *(*secret)(const struct config *cfg, size_t i);
};

/* Every channel rollbackd has, NULL-terminated (notify.c). */
extern const struct channel *const channel_registry[];

/* The names rules may use ("slack", "pagerduty", …), each once,
 * NULL-terminated. Static. */
const char *const *channel_rule_names(void);
/* Whether a rule may name it. */
bool channel_rule_name_ok(const char *name);

/* ---- what the core offers to channels (loop thread) ---------------------- */

/* Delivered: journal notify_sent (extra: more members, ",\"k\":…", or NULL)
 * and drop the entry. */
void notify_entry_sent(struct notify *n, struct notify_entry *e, int status, const char *extra);
/* Given up: journal notify_failed with error (already free of secrets:
 * notify_error_text) and drop the entry. */
void notify_entry_failed(struct notify *n, struct notify_entry *e, int status, const char *error);
/* Try again after delay_ms (< 0: the channel's backoff). */
void notify_entry_retry(struct notify *n, struct notify_entry *e, int64_t delay_ms, int status,
			const char *error);
/* A transfer a channel started itself (send) ended: ok, or not with r's
 * status and error; retried or failed like HTTP ones. */
void notify_channel_done(struct channel_send *s, const struct httpc_result *r);
/* Make in fit for the journal and logs: every secret of every channel and
 * extra (may be NULL) replaced, cut to CHANNEL_ERROR_MAX, control bytes as
 * '?'. */
void notify_error_text(const struct notify *n, const char *extra_secret, const char *in,
		       char out[CHANNEL_ERROR_MAX + 1]);
/* Whether Slack interactivity is configured (auth.slack_signing): Slack
 * buttons then act through it instead of opening the confirm page. */
bool notify_slack_interactive(const struct notify *n);
/* A signed ack/approve link (public_url and links secret) for the
 * incident's episode, or NULL without them; out holds it. */
const char *notify_link(const struct notify *n, const char *action, const char *id, int episode,
			struct buf *out);
/* The event base of the notify's loop. */
struct event_base *notify_base(const struct notify *n);

/* The channels, for the registry (channel_*.c). */
extern const struct channel channel_slack_bot;
extern const struct channel channel_slack_webhook;
extern const struct channel channel_pagerduty;
extern const struct channel channel_slack_response;
extern const struct channel channel_email;
extern const struct channel channel_pagerduty_change;

#endif
