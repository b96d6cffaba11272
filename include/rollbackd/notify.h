/*
 * notify: the outbox that tells Slack, PagerDuty and the other channels
 * (SPEC §9). Each channel is one file behind include/rollbackd/channel.h;
 * the outbox knows them only through that interface and keeps one bounded
 * queue per channel (a dead Slack never makes PagerDuty notices drop).
 *
 * The engine calls notify_incident when an incident changes state; that
 * journals a notify_intent (the notice itself, never a secret) and queues
 * it, all without I/O on the caller's thread. Delivery runs on the main
 * loop through httpc: Slack at most one message per second per webhook
 * (bursts are coalesced into one message that lists the incidents),
 * PagerDuty one event per notice. Success journals notify_sent; 429, 5xx
 * and connection errors are retried with exponential backoff and jitter
 * (Retry-After honoured) until delivered, also across restarts (replay
 * rebuilds the outbox from intents without a sent/failed record); any
 * other 4xx journals notify_failed and counts notifications_total
 * {channel,result="failed"}. A notice that finds its channel's queue full
 * is journaled as notify_failed with the reason and counted as
 * result="dropped". Delivery errors are logged at most once per channel
 * per log interval, the line saying how many were suppressed since the
 * last one. A slow or dead Slack never delays intake.
 */
#ifndef ROLLBACKD_NOTIFY_H
#define ROLLBACKD_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollbackd/alert.h"
#include "rollbackd/config.h"
#include "rollbackd/timestamp.h"

struct event_base;
struct journal;
struct journal_line;
struct notify;

enum notify_kind {
	NOTIFY_TRIGGER,	    /* acting, held, awaiting approval, failed: PD trigger + Slack */
	NOTIFY_UPDATE,	    /* another state change (dry_run, pause, ...): Slack only */
	NOTIFY_ACK,	    /* acknowledged: PD acknowledge + Slack */
	NOTIFY_RESOLVE,	    /* resolved: PD resolve + Slack */
	NOTIFY_ESCALATE,    /* ineffective: PD trigger at critical + Slack "did not fix it" */
	NOTIFY_ROLLED_BACK, /* the rollback actions succeeded: PD trigger (update) + Slack */
	NOTIFY_STEP,	    /* one step (step, note): a reply in the Slack bot's thread only */
};

/* The steps of NOTIFY_STEP; the failures are also broadcast to the channel. */
#define NOTIFY_STEP_ACTION_STARTED "action_started"
#define NOTIFY_STEP_ACTION_FINISHED "action_finished"
#define NOTIFY_STEP_ACTION_FAILED "action_failed" /* failed, timeout, error */
#define NOTIFY_STEP_UNKNOWN "unknown"		  /* cut off by a restart */
#define NOTIFY_STEP_EFFECTIVE "effective"	  /* verification */
#define NOTIFY_STEP_INEFFECTIVE "ineffective"
#define NOTIFY_STEP_INCONCLUSIVE "inconclusive"
#define NOTIFY_STEP_ACKNOWLEDGED "acknowledged"
#define NOTIFY_STEP_APPROVED "approved"
/* Whether a step is a failure (broadcast). */
bool notify_step_is_failure(const char *step);

struct notify_action {
	const char *type;   /* "exec" | "http" */
	const char *result; /* ok|failed|timeout|error|unknown|running */
	int exit_code;
	int status_code;
	const char *output; /* may be long; the notice keeps its last 1500 bytes */
};

/* A notice: everything Slack and PagerDuty need, copied by notify_incident. */
struct notify_event {
	enum notify_kind kind;
	const char *const *channels; /* the rule's "notify" list: channel names */
	size_t n_channels;
	const char *incident, *rule, *service, *state;
	int episode;	       /* the incident's episode: links are signed for it */
	const char *value;     /* "0.052" or NULL */
	const char *threshold; /* "above 0.01" or NULL */
	const char *severity;  /* the alert's severity label or NULL */
	const char *reason;    /* the decision's reason */
	struct timestamp alert_started;
	const char *generator_url, *external_url; /* "" or NULL when unknown */
	const char *target;			  /* the incident's target, or NULL: then the
						     group labels name it */
	const struct label *group;		  /* the incident's group_by labels */
	size_t n_group;
	const struct label *labels; /* the triggering alert's labels */
	size_t n_labels;
	const struct notify_action *actions;
	size_t n_actions;
	const char *acknowledged_by; /* NULL */
	bool awaiting_approval;	     /* add the Approve link */
	const char *note;	     /* extra line, e.g. "still firing after 10m";
					NOTIFY_STEP: the step's text */
	const char *step;	     /* NOTIFY_STEP: NOTIFY_STEP_*, else NULL */
};

struct notify_options {
	const struct config *cfg; /* notify.*, public_url, auth.links; borrowed,
				     read on every send: must outlive the notify */
	struct event_base *base;  /* the main loop (httpc and timers live there) */
	/* Tuning, mostly for tests; 0 = the default in parentheses. */
	int64_t retry_base_ms;	   /* first delay between delivery rounds (1 s) */
	int64_t retry_max_ms;	   /* cap of that delay (5 min) */
	int64_t slack_interval_ms; /* least time between two Slack posts (1 s) */
	int64_t log_interval_ms;   /* one delivery-error line per channel per (10 s) */
	size_t queue_max;	   /* notices queued or waiting per channel (notify.max_queued) */
};

/* NULL on OOM. With no channel configured it still works and simply has
 * nothing to send (notify_incident is a no-op). Slack uses the bot API
 * when bot_token and channel are set (even with a webhook too), else the
 * webhook. Registers
 * the metrics notifications_total{channel,result} and notify_pending: make
 * one per process. Notices given before notify_start are kept (and
 * journaled by notify_start) but not sent before it. */
struct notify *notify_new(const struct notify_options *opt);
/* On the loop thread, once no other thread calls notify_* any more (after
 * the loop and the HTTP workers stopped). Transfers in flight are cancelled;
 * undelivered notices stay journaled as intents and go out after a restart. */
void notify_free(struct notify *n);

/* For a snapshot (snapshot.h), on the loop thread (or after the loop
 * ended, before notify_free): the ids of the notices not yet delivered
 * (queued or in an outbox), sorted, in a new array (notify_pending_free).
 * 0, or -1 on OOM. */
int notify_pending_ids(struct notify *n, char ***ids, size_t *n_ids);
bool notify_pending_has(char *const *ids, size_t n, const char *id);
void notify_pending_free(char **ids, size_t n);

/* Journal replay: rebuilds the outbox (intents without sent/failed) and,
 * in bot mode, which Slack message each incident has. Call for every
 * decoded journal record (rollbackd/record.h), before notify_start, on the
 * thread that will run the loop. Records of other types are skipped
 * cheaply. 0, or -1 on OOM. */
struct record;
int notify_replay(const struct record *rec, void *n);

/* Journal from now on into j (may be NULL: no journal) and start
 * delivering what the outbox holds. Intents of notices queued before this
 * are journaled now; replayed notices for a channel that is no longer
 * configured are journaled as notify_failed and dropped. Call once, on the
 * loop thread, after replay. */
void notify_start(struct notify *n, struct journal *j);

/* Queue a notice (any thread, also under the caller's lock; never blocks,
 * never does I/O beyond the journal's in-memory append). One outbox entry
 * per channel that ev->channels names, is configured and takes the notice
 * (PagerDuty gets nothing for NOTIFY_UPDATE), each journaled as a
 * notify_intent (or as notify_failed when its channel's queue is full). Everything ev points
 * to is copied (bounded: labels, action outputs' tails, texts). */
void notify_incident(struct notify *n, const struct notify_event *ev);

/* Post body to a Slack response_url (interactivity): best effort, retried
 * inside one round (2 retries), journaled as notify_sent / notify_failed
 * with channel "slack_response" and no incident; the URL is never
 * journaled or logged. Any thread; both strings are copied. */
void notify_slack_response(struct notify *n, const char *response_url, const char *body);

/* SIGHUP: links are signed with cfg's public_url and auth.links from now
 * on (the caller refuses reloads that change notify.*). cfg must outlive
 * the notify. Any thread. */
void notify_set_config(struct notify *n, const struct config *cfg);

/* Notices not yet delivered (metrics, shutdown). Any thread. */
size_t notify_pending(struct notify *n);

#endif
