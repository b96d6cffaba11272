/*
 * engine: decisions and incidents (SPEC §6-§7).
 *
 * The engine matches alerts against the rule set, keeps incidents (rule +
 * group_by labels) and their firing episodes, and decides: act at most once
 * per episode, hold when paused / in cooldown / over the hourly cap, wait
 * for firing_for, ask for approval, or only notify. It does not know HTTP.
 * With an event base it also runs the actions (exec through proc, never
 * blocking) and arms firing_for timers on that base; without one (test-rules,
 * unit tests) it only decides. Thread-safe: one mutex guards all state, and
 * nothing slow ever runs under it.
 */
#ifndef ROLLBACKD_ENGINE_H
#define ROLLBACKD_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollbackd/alert.h"
#include "rollbackd/buf.h"
#include "rollbackd/config.h"
#include "rollbackd/rules.h"
#include "rollbackd/timestamp.h"

struct event_base;
struct engine;

enum outcome {
	OUTCOME_ACTING,
	OUTCOME_PENDING,
	OUTCOME_REPEAT,
	OUTCOME_HELD,
	OUTCOME_DRY_RUN,
	OUTCOME_NOTIFY_ONLY,
	OUTCOME_AWAITING_APPROVAL,
	OUTCOME_RESOLVED,
	OUTCOME_NO_MATCH,
	OUTCOME_COALESCED,	  /* another incident holds the target (SPEC §7) */
	OUTCOME_NO_RECENT_CHANGE, /* when.changed_within: the target did not just change */
	OUTCOME_INVALID,	  /* a well-formed but unusable alert (issue 12) */
	OUTCOME_COUNT
};

const char *outcome_name(enum outcome o);

struct engine_options {
	const struct config *cfg; /* dry_run, limits, state_dir, secrets */
	struct event_base *base;  /* NULL: decide only, never run or arm */
	bool plan_only;		  /* test-rules: expand actions into decisions */
	/* Durable shared state (rollbackd/store.h), borrowed. NULL: the
	 * engine makes its own journal store (memory-only until
	 * engine_attach_journal). */
	struct store *store;
};

/* rules is borrowed and must outlive the engine. NULL on OOM. */
struct engine *engine_new(const struct engine_options *opt, const struct ruleset *rules);
void engine_free(struct engine *e);

/* Decide on every alert of wh at time now and append the decisions as a
 * JSON array ("[{...},...]") to out. In plan_only mode each decision also
 * carries "actions": the fully expanded actions (secrets redacted).
 * 0 or -1 on OOM. */
int engine_process(struct engine *e, const struct webhook *wh, struct timestamp now,
		   struct buf *out);

/* JSON for GET /v1/incidents (list, newest first, without actions) and
 * /v1/incidents/{id}. engine_incident_json returns 1 when not found. */
int engine_incidents_json(struct engine *e, struct buf *out);
int engine_incident_json(struct engine *e, const char *id, struct buf *out);

/* One page of GET /v1/incidents, newest first: the copy under the lock is
 * bounded by limit (only counting walks further). */
#define ENGINE_STATES 13
#define ENGINE_PAGE_MAX 1000
struct engine_page {
	size_t limit;	    /* 1..ENGINE_PAGE_MAX items */
	size_t skip;	    /* matching incidents skipped first (the console's pages) */
	const char *before; /* NULL, or the incidents after this one (a cursor) */
	const char *state;  /* NULL: every state; else a state name */
	bool count;	    /* also fill matched and state_counts (walks every incident) */
	/* out */
	char next[32];	/* the last one listed when more match after it, else "" */
	size_t matched; /* with count: incidents matching state (after before) */
	size_t state_counts[ENGINE_STATES]; /* with count: by state (after before) */
};
enum { ENGINE_PAGE_BAD_CURSOR = 1, ENGINE_PAGE_BAD_STATE = 2 };
/* Append the page (a JSON array, the list's shape) to out. 0; -1 on OOM;
 * ENGINE_PAGE_BAD_CURSOR when before is not an incident in memory;
 * ENGINE_PAGE_BAD_STATE when state is not a state name. */
int engine_incidents_page(struct engine *e, struct engine_page *p, struct buf *out);
/* The name of state i (0..ENGINE_STATES-1), as in the incident JSON. */
const char *engine_state_name(int i);

/* Kill switch (the PAUSED file in state_dir also pauses). via: who pulled it,
 * journaled as the pause/resume record's "by" ("api", "console", "recover"). */
void engine_set_paused(struct engine *e, bool paused, const char *via);
bool engine_paused(struct engine *e);

/* Who used an ack/approve before, and when. */
struct engine_use {
	char by[128];
	struct timestamp at;
	int episode; /* ENGINE_USE_WRONG_EPISODE: the incident's episode now */
};

enum {
	ENGINE_USE_DONE = 0,	       /* recorded now */
	ENGINE_USE_ALREADY = 1,	       /* done before: *prev says by whom and when */
	ENGINE_USE_NOT_APPLICABLE = 2, /* not awaiting approval / already resolved */
	ENGINE_USE_WRONG_EPISODE = 3,  /* the link was for another episode (prev->episode) */
	ENGINE_USE_NOT_FOUND = -1,
};

/* Approve an incident that awaits approval: journals who approved it and
 * runs its actions, once. via: "link" | "slack" | "console". episode: the
 * episode the link or button was issued for (0: the current one, for the
 * console); another one changes nothing and answers
 * ENGINE_USE_WRONG_EPISODE. prev may be NULL. */
int engine_approve(struct engine *e, const char *id, int episode, const char *by, const char *via,
		   struct engine_use *prev);

/* Acknowledge an incident (any state before resolved), once per episode;
 * episode as for engine_approve. */
int engine_ack(struct engine *e, const char *id, int episode, const char *by, const char *via,
	       struct engine_use *prev);

/* For the approve page: "value V above T; firing since TS (NmSSs); will
 * run: [<expanded actions, secrets redacted>]" appended to out. 0, or -1
 * when not found (or OOM). */
int engine_approve_preview(struct engine *e, const char *id, struct buf *out);

/* "rule on service, state" for the ack page; -1 when not found. */
int engine_incident_summary(struct engine *e, const char *id, char *out, size_t outsz);

/* SIGHUP: decide with cfg and rules from now on (both must outlive the
 * engine). Incidents, episodes, cooldowns and the hourly cap carry over;
 * an action already running finishes. 0, or -1 on OOM (nothing changed). */
int engine_reload(struct engine *e, const struct config *cfg, const struct ruleset *rules);

/* Shutdown after the grace period: journal every action still running as
 * "interrupted" (the incident becomes unknown; never re-run). Returns how
 * many. */
int engine_interrupt(struct engine *e);

/* Tell n about state changes from now on. */
struct notify;
void engine_set_notify(struct engine *e, struct notify *n);

/* Replay one decoded journal record (journal_open's replay, through the
 * daemon, or store_replay's callback; arg = the engine): rebuilds
 * incidents, episodes, cooldowns, the hourly cap, pause and what was
 * already journaled. The engine's store and change store observe the
 * record first. A record that did not decode is skipped (a warning when
 * it is not a JSON object). */
struct journal;
struct record;
struct buf;
int engine_replay_record(const struct record *rec, void *arg);

/* Snapshots (snapshot.h).
 * engine_replay_snapshot: while on, the records replayed are a snapshot's:
 * the hourly cap's rollbacks and the blast radius come from its state
 * lines, not from the decisions it kept. Call before the loops start.
 * engine_snapshot_freeze: at one instant, under the engine's lock (any
 * thread; it only copies: about 5 ms per 10 000 incidents here): *seq = j's
 * last appended seq, and in *out the tombstones, rollbacks of the last
 * hour and blast window no kept record carries, the incidents in memory,
 * the seen map and the change records the change store holds (taken
 * under changes_ingest_lock too). Every record of the engine is appended
 * under that lock, and every change under the ingest lock, so the two
 * agree. 0, or -1 on OOM.
 * engine_frozen_finish: then, on any thread (the snapshot's): sorts what
 * engine_frozen_keep looks up.
 * engine_frozen_state: the state lines (record_snapshot_*) appended to
 * out, a part per call (snapshot_source.state): 1 when more follow, 0
 * when that was the last, -1 on OOM.
 * engine_frozen_keep: whether rec (seq <= the frozen one) is still needed
 * to rebuild the state: a record of an incident in memory then, written
 * since it was created (not a predecessor's, evicted); the latest
 * notification of each fingerprint the seen map held; the journal store's
 * (store_journal_snapshot_keep: asked now, which is safe because what
 * changed it since is in records after *seq); a change record the change
 * store held (the latest CHANGES_PER_TARGET of each target). Any thread, while
 * the engine lives. */
struct engine_frozen;
void engine_replay_snapshot(struct engine *e, bool on);
int engine_snapshot_freeze(struct engine *e, struct journal *j, uint64_t *seq,
			   struct engine_frozen **out);
void engine_frozen_finish(struct engine_frozen *f);
int engine_frozen_state(struct engine_frozen *f, struct buf *out);
bool engine_frozen_keep(const struct engine_frozen *f, const struct record *rec);
void engine_frozen_free(struct engine_frozen *f);

/* After replay, journal every step into j from now on (j NULL: the store
 * given in engine_options is already attached). Actions that were
 * started but never finished become "unknown" (journaled, never re-run);
 * actions decided but not started run; firing_for timers are re-armed. */
int engine_attach_journal(struct engine *e, struct journal *j);

/* The store of changes (POST /v1/changes, SPEC §11) the engine decides
 * when.changed_within and {{change.*}} with; owned by the engine, which
 * replays it from the journal. Thread-safe (changes.h). */
struct changes;
struct changes *engine_changes(struct engine *e);

/* Actions running right now (for shutdown and /readyz). */
int engine_running_actions(struct engine *e);

#endif
