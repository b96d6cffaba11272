/*
 * store: the durable state the engine shares (SPEC §7, §8, §12).
 *
 * One interface, several implementations, in the manner of curl's
 * Curl_handler: a struct store begins with a pointer to its ops table, and
 * the engine calls only the store_* wrappers below, never an
 * implementation. Today's implementation is the journal plus memory
 * (store_journal_new, src/store_journal.c); a PostgreSQL store (SPEC §12)
 * slots in by providing the same ops, without touching the engine.
 *
 * Words used in the contracts:
 * - durable: the record survives a crash of this process and of the
 *   machine (journal: written and fdatasync'ed; PostgreSQL: committed). A
 *   record is "accepted" when append returned 0; it becomes durable later,
 *   and store_when_durable says when.
 * - memory-only: a store with nothing behind it (test-rules, unit tests):
 *   appends are accepted and dropped, and count as durable at once.
 * - epoch: a fencing token. Every grant of a target to a new holder
 *   returns a larger epoch than any before for that target, so a holder
 *   that lost its claim (expired, taken over by another replica) can be
 *   told from the current one: release and anything done "under" a claim
 *   carries the epoch, and a stale epoch changes nothing.
 *
 * Threads: every operation may be called from any thread, and with the
 * engine's lock held (the engine calls them under e->lock): an
 * implementation takes only its own internal locks, never calls back into
 * the caller while holding one, and never blocks for I/O in an operation
 * except where the contract says so (replay, free). Lock order: caller's
 * locks -> the store's lock -> the journal's lock.
 *
 * Ownership: strings passed in are borrowed for the call (copied if
 * kept). Strings handed out (claims, timers) are copied into the caller's
 * structs. Records passed to a replay callback are valid for the call.
 *
 * Failure: operations return 0 on success, -1 on failure (out of memory,
 * the store unavailable) with nothing changed unless the contract says
 * otherwise; 1 means "refused" (already claimed, held by another, stale
 * epoch) and is not an error.
 */
#ifndef ROLLBACKD_STORE_H
#define ROLLBACKD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollbackd/error.h"

struct event_base;
struct journal;
struct store;

#define STORE_ID_MAX 63	     /* incident ids and other ids kept by a store */
#define STORE_TARGET_MAX 255 /* target names (SPEC §6 `target`) */

/* A record as read back is a decoded journal line: struct record
 * (rollbackd/record.h), decoded once and handed to every reader. */
struct record;

/* A target's claim as the store holds it. */
struct store_target_claim {
	char holder[STORE_ID_MAX + 1]; /* incident id; "" when released */
	uint64_t epoch;		       /* fencing token of the current (or last) grant */
	int64_t held_until_ms;	       /* wall clock ms; past it the claim may be taken */
};

enum store_timer_kind {
	STORE_TIMER_FIRING_FOR,
	STORE_TIMER_APPROVE,
	STORE_TIMER_VERIFY,
	STORE_TIMER_VERIFY_SAMPLE, /* verify.query's next evaluation (every interval) */
	STORE_TIMER_KINDS
};

/* A timer the engine armed: fire kind for incident's episode at due_ms. */
struct store_timer {
	char incident[STORE_ID_MAX + 1];
	enum store_timer_kind kind;
	int episode;
	int64_t due_ms;
};

/* A notice waiting for delivery (notify_intent in the journal). */
struct store_outbox_entry {
	const char *id; /* unique; letters, digits, '-' and '_' */
	const char *incident;
	const char *channel; /* "slack", "pagerduty", ... */
	const char *event;   /* "trigger", "update", ... */
	const char *notice;  /* a JSON object */
	size_t notice_len;
};

typedef int (*store_replay_fn)(const struct record *rec, void *arg);
typedef void (*store_durable_fn)(bool ok, void *arg);
typedef int (*store_outbox_fn)(const struct store_outbox_entry *e, void *arg);

struct store_ops {
	const char *name; /* "journal", "postgresql" */

	/* ---- records ---- */
	/* Accept one record of type for incident ("" for none); members is
	 * empty or JSON object members with a leading comma. The store adds
	 * seq, ts, type, incident (and the chain, in the journal). On success
	 * *ticket (may be NULL) orders the record: a later append gets a
	 * larger ticket. -1 when the store is unavailable, out of memory or
	 * the record too long: nothing was accepted and *ticket is untouched. */
	int (*append)(struct store *s, const char *type, const char *incident, const char *members,
		      size_t members_len, uint64_t *ticket);
	/* Run cb(ok, arg) on base's loop thread once every record up to
	 * ticket is durable (ok), or its write failed (!ok: it stays
	 * accepted and is retried; ask again later). Never runs cb on the
	 * caller's stack. -1 (out of memory): cb never runs. */
	int (*when_durable)(struct store *s, uint64_t ticket, struct event_base *base,
			    store_durable_fn cb, void *arg);
	/* The ticket of the last record accepted so far (0 before any). */
	uint64_t (*last_ticket)(struct store *s);
	/* Read every durable record in order and call fn for each (after
	 * observing it itself, as observe does). Blocking I/O: call at start,
	 * before any append, from one thread. fn returning -1 aborts with -1.
	 * 0, or -1 with err. */
	int (*replay)(struct store *s, store_replay_fn fn, void *arg, struct error *err);
	/* A record read back by someone else's replay (the journal replays
	 * inside journal_open): rebuild the store's own state from the
	 * records it writes itself (target claims and epochs, pause, the
	 * outbox). Before any append; records it does not own are ignored.
	 * 0, or -1 on OOM (replay must stop). */
	int (*observe)(struct store *s, const struct record *rec);

	/* ---- episodes and targets ---- */
	/* Claim episode of incident, so that one episode is decided once
	 * across every process sharing the store. 0: claimed now (episode is
	 * larger than any claimed before for incident); 1: already claimed
	 * (an equal or later episode was); -1 on failure. Durable once the
	 * decision record of that episode is. The journal store keeps claims
	 * in memory: whoever replays the journal claims each episode it reads
	 * again (the engine's replay does), and ignores a 1 there. */
	int (*claim_episode)(struct store *s, const char *incident, int episode);
	/* Optional (NULL: nothing to forget). The engine evicted incident from
	 * memory (limits.max_incidents) and keeps its last episode itself: a
	 * store that holds claims only in memory may drop incident's claim.
	 * The engine never claims an episode at or below one it claimed
	 * before for incident while it remembers it. */
	void (*forget_episode)(struct store *s, const char *incident);
	/* Claim target for incident until now_ms + hold_ms (SPEC §7 "One
	 * remediation per target"). 0: granted (new, expired, released, or
	 * already this incident's: then the hold is extended and the epoch
	 * kept); *out is the claim with its epoch. 1: held by another
	 * incident until out->held_until_ms; *out says by whom. -1 on failure
	 * (nothing granted). The grant is journaled (target_claimed); it is
	 * durable when that record is (last_ticket right after the call). */
	int (*claim_target)(struct store *s, const char *target, const char *incident,
			    int64_t now_ms, int64_t hold_ms, struct store_target_claim *out);
	/* Release target if epoch is its current grant: 0 released
	 * (journaled as target_released), 1 stale epoch or not held
	 * (nothing changes), -1 on failure. */
	int (*release_target)(struct store *s, const char *target, uint64_t epoch);
	/* The current claim of target: 0 with *out, 1 never claimed. */
	int (*target_claim)(struct store *s, const char *target, struct store_target_claim *out);
	/* Targets whose claim is in force at now_ms (held, not released, not
	 * expired): the targets_locked gauge. May walk every target. */
	size_t (*targets_held)(struct store *s, int64_t now_ms);

	/* ---- limits and the kill switch ---- */
	/* A rollback of incident started at at_ms. Call after appending the
	 * record that evidences it (the acting decision). The journal store
	 * keeps them in memory: whoever replays the journal notes each acting
	 * decision it reads again (the engine's replay does), with the
	 * record's time. 0 or -1 on OOM. */
	int (*note_rollback)(struct store *s, const char *incident, int64_t at_ms);
	/* Rollbacks started in (now_ms - window_ms, now_ms]; window_ms up to
	 * one hour (older ones may be forgotten). */
	size_t (*count_rollbacks)(struct store *s, int64_t now_ms, int64_t window_ms);
	/* Pause or resume automatic actions (journaled as pause / resume with
	 * "by" when it changes; no record when it does not). 0, or -1 when
	 * the record could not be accepted (the state changes anyway: a
	 * kill switch must work with a failing disk). */
	int (*set_paused)(struct store *s, bool paused, const char *by);
	bool (*paused)(struct store *s);

	/* ---- timers ---- */
	/* Remember (or replace) the timer (incident, kind). Memory in the
	 * journal store (timers do not survive a restart there: the engine
	 * re-arms from its incidents); durable in a shared store, so that
	 * another replica can fire it. 0 or -1 on OOM. */
	int (*set_timer)(struct store *s, const struct store_timer *t);
	/* Forget the timer (incident, kind), if any. */
	void (*cancel_timer)(struct store *s, const char *incident, enum store_timer_kind kind);
	/* Up to max timers with due_ms <= now_ms, earliest first, into out;
	 * returns how many. They stay set until cancelled. */
	size_t (*timers_due)(struct store *s, int64_t now_ms, struct store_timer *out, size_t max);

	/* ---- outbox ---- */
	/* Accept a notice for delivery (journaled as notify_intent). 0, or -1
	 * (not accepted). */
	int (*outbox_put)(struct store *s, const struct store_outbox_entry *e);
	/* The notice id left the outbox: delivered (notify_sent) or given up
	 * (notify_failed); members (leading comma, may be empty) go into the
	 * record after the id. 0, 1 when id is not pending, -1 on failure. */
	int (*outbox_done)(struct store *s, const char *id, bool delivered, const char *members,
			   size_t members_len);
	/* Call fn for every pending notice, oldest first (fn returning -1
	 * stops the walk with -1). The entry is valid for the call only; fn
	 * must not call back into the store. */
	int (*outbox_pending)(struct store *s, store_outbox_fn fn, void *arg);

	/* Free the store (not what it was given: the journal stays open). */
	void (*free)(struct store *s);
};

/* Every store begins with this. */
struct store {
	const struct store_ops *ops;
};

/* ---- the journal store ---------------------------------------------------- */

struct store_journal_options {
	struct journal *journal; /* borrowed; NULL: memory-only until attached */
	const char *state_dir;	 /* for store_replay (journal_reader); may be NULL */
	/* Track the outbox (notify_* records) on observe. Off while notify
	 * keeps its own outbox from the same records, so nothing is held
	 * twice; entries put through this store are tracked either way. */
	bool outbox;
};

/* NULL on OOM. */
struct store *store_journal_new(const struct store_journal_options *opt);
/* After journal_open (whose replay fed observe): append into j from now
 * on. j is borrowed and must outlive the store. */
void store_journal_attach(struct store *s, struct journal *j);

/* Snapshot (snapshot.h), the journal store's part; nothing else may run.
 * keep: whether rec (pause, resume, target_claimed/released, notify_*)
 * still shapes this store's state: the pause or resume that set the
 * current state, each target's latest claim and its release, a tracked
 * outbox entry's records. each_rollback: the start times count_rollbacks
 * still counts, oldest first. False / 0 for any other store. */
bool store_journal_snapshot_keep(struct store *s, const struct record *rec);
/* The seq of the last record appended (0 before attach, or for any other
 * store). */
uint64_t store_journal_seq(struct store *s);
int store_journal_each_rollback(struct store *s, int (*fn)(int64_t at_ms, void *arg), void *arg);

/* ---- calls ---------------------------------------------------------------- */

static inline int store_append(struct store *s, const char *type, const char *incident,
			       const char *members, size_t members_len, uint64_t *ticket)
{
	return s->ops->append(s, type, incident, members, members_len, ticket);
}
static inline int store_when_durable(struct store *s, uint64_t ticket, struct event_base *base,
				     store_durable_fn cb, void *arg)
{
	return s->ops->when_durable(s, ticket, base, cb, arg);
}
static inline uint64_t store_last_ticket(struct store *s)
{
	return s->ops->last_ticket(s);
}
static inline int store_replay(struct store *s, store_replay_fn fn, void *arg, struct error *err)
{
	return s->ops->replay(s, fn, arg, err);
}
static inline int store_observe(struct store *s, const struct record *rec)
{
	return s->ops->observe(s, rec);
}
static inline int store_claim_episode(struct store *s, const char *incident, int episode)
{
	return s->ops->claim_episode(s, incident, episode);
}
static inline void store_forget_episode(struct store *s, const char *incident)
{
	if (s->ops->forget_episode)
		s->ops->forget_episode(s, incident);
}
static inline int store_claim_target(struct store *s, const char *target, const char *incident,
				     int64_t now_ms, int64_t hold_ms,
				     struct store_target_claim *out)
{
	return s->ops->claim_target(s, target, incident, now_ms, hold_ms, out);
}
static inline int store_release_target(struct store *s, const char *target, uint64_t epoch)
{
	return s->ops->release_target(s, target, epoch);
}
static inline int store_target_claim(struct store *s, const char *target,
				     struct store_target_claim *out)
{
	return s->ops->target_claim(s, target, out);
}
static inline size_t store_targets_held(struct store *s, int64_t now_ms)
{
	return s->ops->targets_held(s, now_ms);
}
static inline int store_note_rollback(struct store *s, const char *incident, int64_t at_ms)
{
	return s->ops->note_rollback(s, incident, at_ms);
}
static inline size_t store_count_rollbacks(struct store *s, int64_t now_ms, int64_t window_ms)
{
	return s->ops->count_rollbacks(s, now_ms, window_ms);
}
static inline int store_set_paused(struct store *s, bool paused, const char *by)
{
	return s->ops->set_paused(s, paused, by);
}
static inline bool store_paused(struct store *s)
{
	return s->ops->paused(s);
}
static inline int store_set_timer(struct store *s, const struct store_timer *t)
{
	return s->ops->set_timer(s, t);
}
static inline void store_cancel_timer(struct store *s, const char *incident,
				      enum store_timer_kind kind)
{
	s->ops->cancel_timer(s, incident, kind);
}
static inline size_t store_timers_due(struct store *s, int64_t now_ms, struct store_timer *out,
				      size_t max)
{
	return s->ops->timers_due(s, now_ms, out, max);
}
static inline int store_outbox_put(struct store *s, const struct store_outbox_entry *e)
{
	return s->ops->outbox_put(s, e);
}
static inline int store_outbox_done(struct store *s, const char *id, bool delivered,
				    const char *members, size_t members_len)
{
	return s->ops->outbox_done(s, id, delivered, members, members_len);
}
static inline int store_outbox_pending(struct store *s, store_outbox_fn fn, void *arg)
{
	return s->ops->outbox_pending(s, fn, arg);
}
static inline void store_free(struct store *s)
{
	if (s)
		s->ops->free(s);
}

#endif
