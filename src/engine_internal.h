/*
 * engine_internal: what the engine's modules share (private to src/).
 *
 * The engine is one object split by responsibility:
 *   engine.c          intake (engine_process), decisions, timers, ack/approve,
 *                     pause, reload, shutdown
 *   incident.c        the incident store: incidents, their index by id, label
 *                     copies, firing fingerprints, the seen-alert map
 *   policy.c          pure decisions (decide, cooldown, hourly cap, pause)
 *   engine_records.c  the journal records the engine writes and the notices
 *                     it hands to notify
 *   actions.c         action expansion (templates) and secret redaction
 *   runner.c          the action queue, launching exec/http, their callbacks,
 *                     the child's environment
 *   replay.c          rebuilding state from the journal, and resuming after it
 *   views.c           the JSON views of incidents
 * Nothing here is part of the public API (include/rollbackd/engine.h).
 *
 * Lock rules:
 * - e->lock guards every field of the engine and of every incident. Every
 *   function declared here runs with e->lock held unless its comment says
 *   otherwise; the callbacks (timers, the kicks, proc, httpc, store
 *   durability) run on the engine's loop and take it themselves.
 * - Threads: engine_process, engine_ack/approve and the views run on any
 *   thread (HTTP workers). Everything that touches a libevent event of the
 *   engine runs on the engine's loop (e->base): no other thread ever adds,
 *   deletes or re-arms one, because libevent 2.1's event_del from another
 *   thread waits for the event's running callback, which may be waiting
 *   for e->lock. Other threads hand work to the loop: the timers through
 *   e->timer_ops + event_active(e->timer_kick) (timers.c), actions through
 *   e->queue + event_active(e->kick) (runner.c). event_active only queues.
 * - Every timer callback re-checks, under e->lock, that it is still the
 *   armed generation for the current episode (timers.c); a stale one does
 *   nothing.
 * - Never under e->lock: a blocking syscall other than the PAUSED stat,
 *   spawn, fsync, DNS, or waiting on another thread (proc_spawn and
 *   httpc_send only register work on the loop; notify and the store only
 *   queue or buffer).
 * - Lock order: e->lock -> the store's lock -> the journal's lock; notify's
 *   queue lock is taken inside e->lock too. None of them calls back into
 *   the engine while held.
 */
#ifndef ROLLBACKD_ENGINE_INTERNAL_H
#define ROLLBACKD_ENGINE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <jansson.h>

#include "policy.h"
#include "rollbackd/alert.h"
#include "rollbackd/buf.h"
#include "rollbackd/changes.h"
#include "rollbackd/config.h"
#include "rollbackd/engine.h"
#include "rollbackd/error.h"
#include "rollbackd/hmap.h"
#include "rollbackd/list.h"
#include "rollbackd/notify.h"
#include "rollbackd/rules.h"
#include "rollbackd/store.h"
#include "rollbackd/target.h"
#include "rollbackd/template.h"
#include "rollbackd/timestamp.h"
#include "rollbackd/u64map.h"
#include "rollbackd/verify.h"

#define INCIDENT_ID_LEN 20 /* "inc-" + 16 hex */
#define HOURLY_WINDOW_MS POLICY_HOUR_MS
#define MAX_OUTPUT 65536
#define KILL_GRACE_MS 5000
#define EPISODE_KEYS_MAX 64 /* kept per incident (struct incident.keys) */

enum incident_state {
	INC_PENDING,
	INC_ACTING,
	INC_ROLLED_BACK,
	INC_ACTION_FAILED,
	INC_DRY_RUN,
	INC_HELD,
	INC_AWAITING_APPROVAL,
	INC_RESOLVED,
	INC_UNKNOWN,	  /* an action was cut off by a crash: never re-run */
	INC_EFFECTIVE,	  /* resolved within verify.within after the rollback */
	INC_INEFFECTIVE,  /* still firing when verify.within ended */
	INC_COALESCED,	  /* another incident holds the target: coalesced_into */
	INC_INCONCLUSIVE, /* verify.query kept failing, no data or NaN until within */
	INC_STATE_COUNT
};

/* An incident's claim on its target (targets.c). */
enum incident_hold { HOLD_NONE, HOLD_RESERVED, HOLD_ACTING, HOLD_COOLING };

/* A private copy of a label set (names and values owned). */
struct owned_labels {
	struct label *items;
	size_t n;
};

/* An incident's label sets: the group_by labels, and the labels and
 * annotations of the alert that decided (struct incident.lab). */
enum inc_set { SET_GROUP, SET_LABELS, SET_ANNOTATIONS, SET_COUNT };

/* An incident's label sets and its trigger's URLs packed in one block:
 * limits.max_incidents of these are kept and few are ever read, so no
 * array of struct label and no allocation per set. Each label is its name,
 * NUL, its value's length (LEB128), the value, NUL; the sets follow each
 * other, then generator_url NUL and external_url NUL, then the episode's
 * target NUL. incident_sets unpacks them; incident_label reads one in
 * place. */
struct inc_labels {
	uint32_t at[SET_COUNT + 1]; /* where each set starts in data, then the URLs */
	uint32_t n[SET_COUNT];
	uint32_t target; /* where the target starts (after the URLs) */
	bool urls;	 /* the URLs were given (replay has none) */
	bool has_target;
	char data[];
};

/* inc's labels unpacked: arrays of struct label whose strings point into
 * inc->lab (valid until its labels change, under e->lock). */
#define INC_SETS_BUF 24
struct inc_sets {
	struct label_set set[SET_COUNT];
	const char *generator_url, *external_url; /* NULL: not given */
	struct label *heap;			  /* when buf was too small */
	struct label buf[INC_SETS_BUF];
};

struct action_record {
	enum action_type type;
	struct timestamp started, finished;
	bool begun; /* action_started is journaled */
	bool done;
	const char *result; /* static: "ok", "failed", "timeout", "error" */
	int exit_code;	    /* exec; -1 when killed or not run */
	int status_code;    /* http; 0 when none */
	char *output;	    /* captured output / response body / error text */
};

/* One of an incident's timers (firing_for, approve_timeout, verify.within;
 * timers.c). Every field is under e->lock; ev is only ever added, deleted
 * or freed on the engine's loop (or after it ended). */
struct inc_timer {
	struct event *ev;     /* made by the loop on first arm */
	struct incident *inc; /* NULL until first armed */
	enum store_timer_kind kind;
	uint64_t gen;	     /* bumped by every arm and cancel */
	uint64_t armed_gen;  /* the generation the loop armed ev with */
	int episode;	     /* the episode it was armed for */
	bool armed;	     /* armed and neither fired nor cancelled */
	int64_t due_mono_ms; /* when (timestamp_mono_ms) */
	struct list_node op; /* in e->timer_ops while the loop must apply it */
};

/* What only an incident that acts, waits for approval, verifies, is held on
 * its target or was acknowledged needs: most incidents (notify mode, never
 * acted) never have one. Made zeroed on first use (incident_extra), kept
 * until the incident is freed (the queue, the timer ops and the loop's
 * events point into it), under e->lock like the rest of the incident. */
struct incident_extra {
	struct incident *inc;	     /* whose (e->queue links queued) */
	struct timestamp last_acted; /* when inc->has_acted */
	struct timestamp acknowledged_at, approved_at;
	char *acknowledged_by, *approved_by;
	/* by enum store_timer_kind; NULL until first armed (timers.c) */
	struct inc_timer *timers[STORE_TIMER_KINDS];
	struct event *retry;		    /* action_started waits for a failing journal
					     * (armed on the loop only) */
	json_t *ready;			    /* the expanded action waiting for its record */
	const struct action_tpl *ready_tpl; /* its template: the rule set it was decided
					       with (a reload keeps old sets until exit) */
	struct action_record *actions;
	size_t n_actions;
	size_t next_action;
	struct list_node queued; /* in e->queue while waiting for an action slot */
	char *target_err;	 /* why the target could not be named (held) */
	uint64_t fence;		 /* the target claim's epoch while it holds it */
	/* verify.query's samples (verify_run.c); NULL until the first verification */
	struct verify_progress *verify;
	size_t trigger_over;	 /* bytes of a trigger over TRIGGER_BYTES_MAX (none kept) */
	size_t n_untracked;	 /* firings beyond FIRING_MAX this episode (counted only) */
	enum incident_hold hold; /* its target claim */
	int verify_episode;
	char coalesced_into[INCIDENT_ID_LEN + 1]; /* "" unless coalesced */
	bool verify_active;			  /* verify.query runs for verify_episode */
	bool verify_inflight;			  /* one of its queries is on its way */
};

/* No holes between the fields, please: limits.max_incidents of these are
 * kept, 184 bytes each (a 192-byte malloc chunk). What most of them never
 * need is in x; the engine is the rule name's (incident_engine). */
struct incident {
	char id[INCIDENT_ID_LEN + 1];
	bool decided : 1;		     /* this episode has been decided */
	bool has_acted : 1;		     /* x->last_acted is set */
	bool running : 1;		     /* actions queued or in progress */
	bool over_limit : 1;		     /* created over limits.max_incidents: held */
	uint8_t state;			     /* enum incident_state */
	uint8_t n_keys, cap_keys, keys_head; /* keys: a ring of at most EPISODE_KEYS_MAX */
	int episode;
	int tomb_episode; /* an evicted predecessor's last episode (0: none) */
	uint32_t n_firing;
	char *rule_name; /* shared (incident_rule_name) */
	/* the group_by labels and the alert that decided, packed (incident_sets) */
	struct inc_labels *lab;
	/* rollbackd's clock (ts_ns): when first and last seen */
	int64_t first_seen_ns, last_seen_ns;
	struct timestamp episode_start; /* its first alert's startsAt */
	uint64_t *firing;		/* fp_key of the alerts firing in this episode */
	struct episode_key *keys;	/* (fingerprint, startsAt) of this and past episodes */
	struct list_node link;		/* in e->incidents (newest first) */
	struct hmap_node by_id;		/* in e->by_id */
	struct list_node lru;		/* e->resolved: resolved, oldest first */
	int64_t max_starts_ms;		/* latest startsAt of its firings */
	int64_t tomb_starts_ms;		/* that predecessor's max_starts_ms */
	uint64_t born_after; /* records of its id up to this seq are an evicted predecessor's */
	struct incident_extra *x; /* NULL until needed (incident_extra) */
};
_Static_assert(EPISODE_KEYS_MAX <= UINT8_MAX, "n_keys, cap_keys and keys_head are bytes");

/* A firing alert of an episode: hash of (fingerprint, startsAt). A firing
 * whose key belongs to an episode that already resolved is a late or
 * replayed copy of it (Alertmanager HA peers, a captured request), never a
 * new episode. */
struct episode_key {
	uint64_t key;
	uint64_t fp; /* incident_fp_key of the fingerprint (the seen map's key) */
	int episode;
};

/* Which alerts were journaled, and as what: fingerprint hash -> digest of
 * the alert's content, so an exact repeat is only counted. One slot of 24
 * bytes per fingerprint, at most 3/4 full (u64map.h). */
struct seen_map {
	struct u64map entries; /* incident_fp_key (never 0) -> digest[16] */
};

/* What an evicted incident leaves behind (incident.c): its last episode
 * and the latest startsAt of its firings, so that the incident made anew
 * goes on counting episodes and a late or replayed firing of an old
 * episode is still a repeat. At most limits.max_incidents are kept (the
 * oldest goes first: an id evicted that long ago starts again at episode
 * 1, its store claim forgotten with it); 24 bytes each, in a map at most
 * half full, plus 8 in the ring. */
struct tombstone {
	uint64_t id; /* the id's 64-bit hash (its hex); 0 = empty */
	int64_t max_starts_ms;
	int episode;
};

struct tomb_map {
	struct tombstone *slots;
	size_t cap, n;
	uint64_t *ring; /* ids, oldest at head */
	size_t ring_cap, head;
};

struct engine {
	pthread_mutex_t lock;
	const struct config *cfg;
	const struct ruleset *rules;
	struct event_base *base;
	bool plan_only;
	struct list_node incidents; /* struct incident.link, newest first */
	size_t n_incidents;
	struct hmap by_id;	/* struct incident.by_id, hash of the id */
	size_t n_open;		/* incidents not in INC_RESOLVED */
	struct list_node queue; /* struct incident.queued: waiting for an action slot */
	size_t n_queue;
	int running;
	struct event *kick;	    /* activated to start queued work */
	struct event *timer_kick;   /* activated to apply e->timer_ops */
	struct list_node timer_ops; /* struct inc_timer.op: arms/cancels for the loop */
	struct httpc *http;
	struct metric_family *decisions_total;
	struct metric_child **decision_children; /* (n_rules + 1) x OUTCOME_COUNT */
	struct metric_family *actions_total;
	struct metric_child *action_duration;
	struct metric_child *incidents_open;
	struct metric_child *paused_gauge;
	struct store *store;	   /* records, pause, the hourly cap, claims */
	bool own_store;		   /* the journal store made by engine_new */
	struct notify *notify;	   /* NULL: nobody is told */
	struct seen_map seen;	   /* fingerprint -> digest of what was journaled */
	struct blast_window blast; /* targets rolled back recently (blast radius) */
	struct metric_child *targets_locked;
	int64_t targets_gauge_ms;   /* when targets_locked was last counted */
	struct changes *changes;    /* POST /v1/changes, replayed (changes.h) */
	struct list_node resolved;  /* eviction candidates, oldest resolved first */
	struct list_node graveyard; /* evicted with events (by link): freed on the loop (reap) */
	struct event *reap;
	struct tomb_map tombs;
	struct hmap rule_names; /* what incidents' rule_name point into (incident_rule_name) */
	struct metric_child *in_memory;	 /* incidents_in_memory */
	struct metric_child *over_limit; /* incidents_over_limit_total */
	uint64_t n_over_limit;
	uint64_t n_evicted;
	struct metric_family *verify_total; /* verify_total{rule,result} */
	bool snapshot_replay; /* replaying a snapshot: rollbacks and blast come from its state lines
			       */
};

static inline int64_t ts_ms(struct timestamp t)
{
	return policy_ms(t);
}

/* t in nanoseconds since the epoch, held at the ends of int64 (years 1677
 * and 2262); ts_of_ns gives it back. */
static inline int64_t ts_ns(struct timestamp t)
{
	if (t.sec >= INT64_MAX / 1000000000)
		return INT64_MAX;
	if (t.sec <= INT64_MIN / 1000000000)
		return INT64_MIN;
	return t.sec * 1000000000 + t.nsec;
}
static inline struct timestamp ts_of_ns(int64_t ns)
{
	int64_t sec = ns / 1000000000, rem = ns % 1000000000;
	if (rem < 0) {
		sec--;
		rem += 1000000000;
	}
	return (struct timestamp){sec, (int32_t)rem};
}

/* ---- incident.c: the incident store ----------------------------------- */

extern const char *const incident_state_names[INC_STATE_COUNT];
/* The state named s, or -1. */
int incident_state_parse(const char *s);

/* inc's labels unpacked into *out (inc_sets_release frees it). 0, or -1 on
 * OOM (out empty). */
int incident_sets(const struct incident *inc, struct inc_sets *out);
void inc_sets_release(struct inc_sets *s);
/* The value of label name in set s of inc, in place; NULL when absent. */
const char *incident_label(const struct incident *inc, enum inc_set s, const char *name);
/* How many labels set s of inc has. */
size_t incident_n_labels(const struct incident *inc, enum inc_set s);
/* Pack the sets (NULL: that set of inc as it is) and the trigger's URLs
 * (urls false: inc's as they are) into a new block for inc; the old one
 * goes (what is passed may point into it). 0, or -1 on OOM (nothing
 * changed). */
int incident_pack(struct incident *inc, const struct label_set *group,
		  const struct label_set *labels, const struct label_set *annotations, bool urls,
		  const char *generator_url, const char *external_url);

/* What the current episode rolls back (SPEC §6), or NULL: not named yet
 * (or it could not be: x->target_err). Points into inc->lab: valid until
 * its labels or target change. */
static inline const char *incident_target(const struct incident *inc)
{
	return inc->lab && inc->lab->has_target ? inc->lab->data + inc->lab->target : NULL;
}
/* Name it (NULL: none); the labels stay. The old target goes first, in
 * place: on OOM (-1) inc has none, never the previous episode's. 0 or -1;
 * NULL never fails. */
int incident_set_target(struct incident *inc, const char *target);

/* Label copies: dst owns its names and values (release frees them). */
void owned_labels_release(struct owned_labels *l);
/* One block for n labels and string_bytes of their strings (the items,
 * then the strings, all freed by release): where the strings go, or NULL
 * when n is 0 or on OOM (dst->items NULL too). dst->n is 0: the caller
 * fills the items and counts them. */
char *owned_labels_alloc(struct owned_labels *dst, size_t n, size_t string_bytes);

/* One copy of each rule name, shared by the incidents naming it (many
 * incidents, few rules) and counted: inc->rule_name = incident_rule_name(e,
 * name); incident_free gives it back (the last one frees it). NULL on OOM. */
char *incident_rule_name(struct engine *e, const char *name);

/* The rule named name in the current rule set, or NULL (a reload removed it). */
const struct rule *engine_find_rule(const struct engine *e, const char *name);

/* "inc-" + hex of BLAKE2b-64 over the rule name and the group labels. */
void incident_id_for(const struct rule *r, const struct label *group, size_t n,
		     char out[INCIDENT_ID_LEN + 1]);
/* The group labels of a for r: 0 when *out points into a (do not free), 1
 * when the caller frees *out (the labels' strings stay a's), -1 on OOM. */
int incident_group_labels(const struct rule *r, const struct alert *a, struct label **out,
			  size_t *n);

/* A new incident with no episode yet (state resolved), linked first and
 * indexed; NULL on OOM. Freed by engine_free. */
struct incident *incident_new(struct engine *e, const struct rule *r, const char *id,
			      const struct label *group, size_t n, struct timestamp now);
/* Link and index inc (replay builds its own). At limits.max_incidents an
 * evictable incident goes first (incident_evict_one, inc->first_seen as
 * now); when none can, inc is linked over the limit with over_limit set
 * (its first decision is held) and counted. A tombstone of inc's id gives
 * it its predecessor's episode. 0 or -1 on OOM. */
int incident_link(struct engine *e, struct incident *inc);
/* A zeroed incident's list nodes, before anything else touches it. */
void incident_init_links(struct incident *inc);
/* Unlink and free every incident (engine_free). */
void incident_free_all(struct engine *e);
/* Evict the oldest resolved incident that is past its rule's cooldown,
 * not running and holds no target claim (SPEC §4). Entries that reopened
 * are dropped on the way (each was pushed once); at most EVICT_SCAN still
 * cooling are moved to the back. 1 evicted, 0 none. O(1) amortized. */
#define EVICT_SCAN 16
int incident_evict_one(struct engine *e, int64_t now_ms);
/* inc entered INC_RESOLVED: it becomes the newest eviction candidate. */
void incident_resolved(struct engine *e, struct incident *inc);
/* Free what eviction left for the loop (with a base, e->reap runs it). */
void incident_reap(struct engine *e);
void incident_reap_cb(evutil_socket_t fd, short what, void *arg);
void tomb_map_release(struct tomb_map *m);
/* The tombstones, oldest first (snapshot state); fn's non-zero stops. */
int tomb_map_each(const struct tomb_map *m,
		  int (*fn)(uint64_t id, int episode, int64_t max_starts_ms, void *arg), void *arg);
bool tomb_map_has(const struct tomb_map *m, const char *incident_id);
/* A snapshot's tombstone back (id as tomb_key gives it). 0, or -1 on OOM. */
int tomb_restore(struct engine *e, uint64_t id, int episode, int64_t max_starts_ms);
uint64_t tomb_key(const char *incident_id);
/* The episode a firing (fp, starts_at) belongs to when it is a late copy
 * of an episode already seen (its key, or a startsAt no later than the
 * evicted predecessor's), else 0. */
int incident_late_episode(const struct incident *inc, const char *fp, struct timestamp starts_at);
struct incident *incident_find(struct engine *e, const char *id);
/* The engine inc is in (its rule name's: no pointer per incident). */
struct engine *incident_engine(const struct incident *inc);
/* inc->x, made zeroed on first use; NULL on OOM. */
struct incident_extra *incident_extra(struct incident *inc);
/* What x holds, read where it may not exist (the defaults without it). */
static inline size_t incident_n_actions(const struct incident *inc)
{
	return inc->x ? inc->x->n_actions : 0;
}
static inline size_t incident_next_action(const struct incident *inc)
{
	return inc->x ? inc->x->next_action : 0;
}
static inline const char *incident_acknowledged_by(const struct incident *inc)
{
	return inc->x ? inc->x->acknowledged_by : NULL;
}
static inline const char *incident_approved_by(const struct incident *inc)
{
	return inc->x ? inc->x->approved_by : NULL;
}
/* "" unless coalesced. */
static inline const char *incident_coalesced_into(const struct incident *inc)
{
	return inc->x ? inc->x->coalesced_into : "";
}
static inline enum incident_hold incident_hold(const struct incident *inc)
{
	return inc->x ? inc->x->hold : HOLD_NONE;
}
static inline bool incident_queued(const struct incident *inc)
{
	return inc->x && list_linked(&inc->x->queued);
}
/* x->hold = h (x is made for anything but HOLD_NONE). 0 or -1 on OOM. */
int incident_set_hold(struct incident *inc, enum incident_hold h);
/* A new episode: its actions, acknowledgement, approval and coalesced_into
 * go (incident_clear_actions included). */
void incident_clear_episode(struct incident *inc);
/* Frees inc and everything it owns (its events included); not unlinked. */
void incident_free(struct incident *inc);
void incident_clear_actions(struct incident *inc);
void incident_clear_firing(struct incident *inc);
/* Copy the triggering alert (labels, annotations, URLs). Labels and
 * annotations over TRIGGER_BYTES_MAX together (names and values) are not
 * kept at all: trigger_over says how many bytes they were, and the
 * episode is held rather than acting on cut values. 0 or -1 on OOM. */
#define TRIGGER_BYTES_MAX 16384
int incident_set_trigger(struct incident *inc, const struct alert *a, const char *external_url);
/* The same cap on labels replay copied into inc. */
void incident_cap_trigger(struct incident *inc);
/* "the alert's labels and annotations are N bytes, over the 16384 kept
 * per incident: not acting on values that cannot be kept whole". */
void incident_trigger_reason(const struct incident *inc, char *out, size_t outsz);
/* The bytes of a trigger not kept (over TRIGGER_BYTES_MAX), else 0. */
static inline size_t incident_trigger_over(const struct incident *inc)
{
	return inc->x ? inc->x->trigger_over : 0;
}

/* The alerts firing in the current episode, by fingerprint. */
uint64_t incident_fp_key(const char *fp);
bool incident_is_firing(const struct incident *inc, const char *fp);
/* At most FIRING_MAX fingerprints are followed per episode; a firing
 * beyond is only counted (n_untracked) and does not keep the episode
 * open. 0 added or known, 1 counted, -1 OOM. */
#define FIRING_MAX 10000
int incident_add_firing(struct incident *inc, const char *fp);
/* Append "; N alert(s) beyond the 10000 followed per incident are counted,
 * not followed (they do not keep it open)" to reason when there are any. */
void incident_untracked_note(const struct incident *inc, char *reason, size_t rsz);
void incident_remove_firing(struct incident *inc, const char *fp);

/* Record digest for key. 1 when it is new or differs, 0 when it is an
 * exact repeat, -1 on OOM. */
int seen_map_put(struct seen_map *m, uint64_t key, const unsigned char digest[16]);
/* Whether key's entry holds exactly digest. */
bool seen_map_holds(const struct seen_map *m, uint64_t key, const unsigned char digest[16]);
void seen_map_init(struct seen_map *m);
void seen_map_release(struct seen_map *m);
static inline size_t seen_map_count(const struct seen_map *m)
{
	return u64map_count(&m->entries);
}
/* Every entry, in no particular order: *pos starts at 0; true with the next
 * key and its digest (valid until the map changes), false at the end. */
bool seen_map_next(const struct seen_map *m, size_t *pos, uint64_t *key,
		   const unsigned char **digest);

/* Episode keys (incident.c). */
uint64_t incident_episode_key(const char *fp, struct timestamp starts_at);
/* The episode key belongs to, or 0 when it is not known. */
int incident_key_episode(const struct incident *inc, uint64_t key);
/* Remember the firing (fp, starts_at) for episode (the oldest key goes
 * when full); max_starts_ms follows. 0 or -1 OOM. */
int incident_add_key(struct incident *inc, const char *fp, struct timestamp starts_at, int episode);
/* Forget the seen entry of key (an evicted incident's fingerprints). */
void seen_map_del(struct seen_map *m, uint64_t key);

/* ---- targets.c: one remediation per target ----------------------------- */

enum target_claim { TARGET_CLAIMED = 0, TARGET_BUSY = 1, TARGET_OOM = -1 };
/* What a busy target says about its holder. */
struct target_busy {
	char holder[STORE_ID_MAX + 1];
	int64_t until_ms;
};
/* Claim incident_target(inc) through the store for inc at now_ms: acting (actions
 * run now) or reserved (awaiting approval, dry-run). The holder itself may
 * claim again (a new episode, an approval). TARGET_BUSY with *busy when
 * another incident acts on it, reserves it, or it is in target_cooldown
 * after one. On success inc->fence is the claim's epoch. TARGET_OOM when
 * the store failed (nothing claimed). */
enum target_claim targets_claim(struct engine *e, struct incident *inc, bool acting, int64_t now_ms,
				struct target_busy *busy);
/* Why a busy target refuses: "target T is being rolled back by incident
 * I", "... is held by incident I, which has not acted yet", "... is in
 * target_cooldown after incident I until T". */
void targets_busy_reason(struct engine *e, const char *target, const struct target_busy *b,
			 char *out, size_t outsz);
/* inc's actions finished at now_ms: its claim now lasts target_cooldown
 * (or is released, when that is 0). No-op when inc holds nothing. */
void targets_finish(struct engine *e, struct incident *inc, int64_t now_ms);
/* inc's episode ended without acting (resolved while reserved): its
 * reservation is released; a cooldown stays. */
void targets_release(struct engine *e, struct incident *inc);
/* Publish targets_locked (counted at most every 100 ms: it walks the
 * store's targets). */
void targets_gauge(struct engine *e, int64_t now_ms);
/* Whether inc holds its target's claim in the store at now_ms (acting,
 * reserved, or in target_cooldown): it may not be evicted. */
bool targets_holding(struct engine *e, const struct incident *inc, int64_t now_ms);

/* ---- engine_records.c: records and notices ----------------------------- */

/* Append a record of type with members m (leading comma, from one of
 * record.h's record_build_*: no other code lays out a record) to the store
 * (a memory-only store accepts and drops it). 0 or -1. */
int rec_append(struct engine *e, const char *type, const char *incident, const struct buf *m);
/* The same; *ticket (may be NULL) is the record's ticket. What it gets is
 * redacted already (actions_redact_*). */
int rec_append_ticket(struct engine *e, const char *type, const char *incident, const struct buf *m,
		      uint64_t *ticket);
/* The decision record. trigger: the alert decided on (NULL: the one that
 * opened the episode, when trigger_kind says a timer or an approval). */
/* a: the alert at hand (NULL for a timer or an approval): its fingerprint
 * and startsAt are journaled. */
void rec_decision(struct engine *e, const struct incident *inc, const struct rule *r,
		  const struct alert *a, enum outcome o, const char *reason,
		  const struct alert *trigger, const char *trigger_kind);
void rec_resolved(struct engine *e, const struct incident *inc);
void rec_action_finished(struct engine *e, const struct incident *inc, size_t index,
			 const struct action_record *rec, const char *final_state);
void rec_state(struct engine *e, const struct incident *inc, const char *reason);
/* An ack or approve record: who, and through what (link, slack, timer). */
void rec_use(struct engine *e, const char *type, const struct incident *inc, const char *by,
	     const char *via);
/* Tell notify about inc (it only queues). */
void rec_notify(struct engine *e, struct incident *inc, enum notify_kind kind, const char *reason,
		const char *note);
/* Tell notify about one step (NOTIFY_STEP_*, notify.h) of inc, said by text:
 * a reply in the Slack bot's thread. */
void rec_step(struct engine *e, const struct incident *inc, const char *step, const char *text);

/* The digest of each alert's content (rec_alert_digest), computed before
 * taking the lock; the record itself is written only for a new alert. */
struct alert_notes {
	unsigned char (*digest)[16];
};
/* BLAKE2b-128 of what a's notification record says (engine_records.c says
 * how; not the digest of the record's JSON, which journals before it hold). */
void rec_alert_digest(const struct alert *a, int64_t truncated_alerts, unsigned char out[16]);
/* Without the lock. 0 or -1 on OOM (release anyway). */
int rec_notes_build(const struct webhook *wh, struct alert_notes *n);
void rec_notes_release(struct alert_notes *n);
/* Journal alert i of wh unless it is an exact repeat. 1 new, 0 repeat. */
int rec_note_alert(struct engine *e, const struct webhook *wh, size_t i,
		   const struct alert_notes *n);

/* ---- actions.c: expansion and redaction -------------------------------- */

struct secret_ctx {
	const struct config *cfg;
};
/* A template context over inc's trigger labels, unpacked into sets (the
 * caller's storage: inc_sets_release frees it, also on failure). 0, or -1
 * on OOM. */
int actions_template_ctx(const struct incident *inc, struct secret_ctx *sc,
			 struct template_ctx *ctx, struct inc_sets *sets, struct change *chg);
/* The target of inc's episode (SPEC §6) into out: its named target, or the
 * default from its group labels. 0 or -1 on OOM. */
int incident_target_name(const struct incident *inc, struct buf *out);
/* The fully expanded form of one action, as test-rules prints it and as the
 * runner uses it. A new reference, or NULL with err. */
json_t *actions_expand(const struct action_tpl *at, const struct template_ctx *ctx,
		       struct error *err);
/* Redaction: every secret cfg holds (config "secrets", the auth and notify
 * secrets), raw, JSON-escaped, percent- and form-encoded, is replaced by
 * <redacted:NAME>. Done once, where values are expanded (the shown and
 * journaled form of an action) and where output is captured. Lock-free
 * (cfg is read only). */
/* Append s[0..len) redacted to out; cut: s was cut, a secret's head at its
 * end goes too. 0 or -1 on OOM. */
int actions_redact_text(const struct config *cfg, const char *s, size_t len, bool cut,
			struct buf *out);
/* s redacted: a new string (caller frees), NULL on OOM. */
char *actions_redact(const struct config *cfg, const char *s);
/* A deep copy of x with every string (and key) redacted; NULL on OOM. */
json_t *actions_redact_json(const struct config *cfg, const json_t *x);
/* Append ,"actions":[...] with every action of r expanded for inc. */
int actions_plan_json(struct engine *e, const struct rule *r, const struct incident *inc,
		      struct buf *out);

/* ---- runner.c: the queue and the actions -------------------------------- */

/* Acting: (re)start inc's actions from the first. No-op without a base. */
void runner_enqueue_run(struct engine *e, struct incident *inc);
/* Queue inc's actions from inc->next_action on (replay). */
void runner_enqueue_resume(struct engine *e, struct incident *inc);
/* e->kick's callback (on the loop; takes the lock). */
void runner_kick_cb(evutil_socket_t fd, short what, void *arg);

/* ---- engine.c: shared by the modules ----------------------------------- */

void engine_count_decision(struct engine *e, const struct rule *r, enum outcome o);
/* Publish e->n_open. */
void engine_open_count(struct engine *e);
/* Arm inc's firing_for timer for at (relative to now). */
void engine_arm_firing_for(struct engine *e, struct incident *inc, struct timestamp at,
			   struct timestamp now);
/* Arm verify.within after a rollback (when the rule has one). */
void engine_arm_verify(struct engine *e, struct incident *inc);
/* The incidents coalesced into holder (still coalesced) are escalated with
 * it: journaled and notified, never rolled back. */
void engine_escalate_coalesced(struct engine *e, const struct incident *holder, const char *note);
/* A timer of inc's current episode elapsed (called by timers.c). */
void engine_timer_fired(struct engine *e, struct incident *inc, enum store_timer_kind kind);

/* ---- verify_run.c: verify.query against Prometheus --------------------- */

/* Register verify_total (engine_new). 0 or -1 on OOM. */
int verify_run_init(struct engine *e);
/* The actions of inc's episode succeeded and its rule has verify.query:
 * start evaluating it now, then every interval. */
void verify_run_begin(struct engine *e, struct incident *inc);
/* True while verify.query runs for inc's current episode (an alert that
 * resolves does not end it: only the query does). */
bool verify_run_active(const struct incident *inc);
/* STORE_TIMER_VERIFY_SAMPLE fired: send the query (on the loop). */
void verify_run_sample(struct engine *e, struct incident *inc);
/* verify.within ended: true when verify.query handled it (ineffective or
 * inconclusive, escalated); false for a verification without a query. */
bool verify_run_deadline(struct engine *e, struct incident *inc);

/* ---- timers.c: timers handed to the engine's loop ----------------------- */

/* e->timer_kick and e->timer_ops (any base; none without one). 0 or -1. */
int timers_init(struct engine *e);
void timers_release(struct engine *e);
/* Free inc's timer events (engine_free, after the loops). */
void timers_free_incident(struct incident *inc);
/* inc is evicted: cancel its armed timers and take its slots off
 * e->timer_ops (under e->lock). true when it still has events, which only
 * the loop may free (incident_reap_cb). */
bool timers_forget_incident(struct engine *e, struct incident *inc);
/* (Re)arm inc's timer kind to fire in ms for its current episode; from any
 * thread, under e->lock. No-op without a base. Mirrored in the store. */
void timers_arm(struct engine *e, struct incident *inc, enum store_timer_kind kind, int64_t ms);
/* Cancel it, if armed: a callback already on its way does nothing. */
void timers_cancel(struct engine *e, struct incident *inc, enum store_timer_kind kind);
bool timers_armed(const struct incident *inc, enum store_timer_kind kind);

#endif
