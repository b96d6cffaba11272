/*
 * replay: rebuilding the engine's state from the journal at start
 * (incidents, episodes, firing alerts, actions, cooldowns, the hourly cap,
 * pause, acks and approvals), then resuming: what a crash cut off becomes
 * unknown, what was decided but not started runs, timers are re-armed.
 *
 * Must never: journal while replaying (only engine_attach_journal writes,
 * after replay), or run an action that may have run before. Lock rules:
 * engine_replay takes e->lock once per record; engine_attach_journal takes
 * it once.
 */
#include "engine_internal.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "rollbackd/journal.h"
#include "rollbackd/json.h"
#include "rollbackd/log.h"
#include "rollbackd/metrics.h"
#include "rollbackd/record.h"

/* One decoded journal line, as the engine replays it. */
struct rline {
	struct engine *e;
	const struct record *rec;
	const struct json_doc *doc; /* &rec->doc */
	struct timestamp ts;
};

static const char *rstr(struct rline *rl, size_t tok, char *dst, size_t dstsz)
{
	const struct json_tok *t = &rl->doc->toks[tok];
	if (!tok || t->kind != JSON_KIND_STRING || t->size + 1 > dstsz)
		return NULL;
	json_str_decode(rl->doc, t, dst);
	return dst;
}

static const char *rget(struct rline *rl, const char *name, char *dst, size_t dstsz)
{
	return rstr(rl, json_obj_get(rl->doc, 0, name), dst, dstsz);
}

static int64_t rgetint(struct rline *rl, const char *name, int64_t dflt)
{
	size_t t = json_obj_get(rl->doc, 0, name);
	if (!t || rl->doc->toks[t].kind != JSON_KIND_NUMBER ||
	    !(rl->doc->toks[t].flags & JSON_TOK_INT))
		return dflt;
	return json_int_value(rl->doc, &rl->doc->toks[t]);
}

/* An object of strings into owned labels, in record order. */
static int rlabels(struct rline *rl, const char *name, struct owned_labels *out)
{
	size_t o = json_obj_get(rl->doc, 0, name);
	owned_labels_release(out);
	if (!o || rl->doc->toks[o].kind != JSON_KIND_OBJECT)
		return 0;
	size_t n = rl->doc->toks[o].size, bytes = 0;
	for (size_t k = json_obj_first(rl->doc, o); k < json_obj_end(rl->doc, o);
	     k = json_obj_nextkey(rl->doc, k))
		bytes += (size_t)rl->doc->toks[k].size + 1 + rl->doc->toks[k + 1].size + 1;
	char *p = owned_labels_alloc(out, n, bytes);
	if (n && !p)
		return -1;
	for (size_t k = json_obj_first(rl->doc, o); k < json_obj_end(rl->doc, o);
	     k = json_obj_nextkey(rl->doc, k)) {
		const struct json_tok *kt = &rl->doc->toks[k], *vt = &rl->doc->toks[k + 1];
		if (vt->kind != JSON_KIND_STRING)
			continue;
		char *kn = p, *vv = p + kt->size + 1;
		p = vv + vt->size + 1;
		json_str_decode(rl->doc, kt, kn);
		json_str_decode(rl->doc, vt, vv);
		out->items[out->n++] = (struct label){kn, vv, vt->size};
	}
	return 0;
}

static struct incident *replay_incident(struct rline *rl, const char *id, const char *rule)
{
	struct engine *e = rl->e;
	struct incident *inc = incident_find(e, id);
	if (inc)
		return inc;
	if (strlen(id) != INCIDENT_ID_LEN || !rule)
		return NULL;
	inc = calloc(1, sizeof(*inc));
	if (!inc)
		return NULL;
	incident_init_links(inc);
	memcpy(inc->id, id, sizeof(inc->id));
	inc->state = INC_RESOLVED;
	inc->first_seen_ns = inc->last_seen_ns = ts_ns(rl->ts);
	inc->born_after = rl->rec->seq ? rl->rec->seq - 1 : 0;
	struct owned_labels g = {0};
	int bad = !(inc->rule_name = incident_rule_name(e, rule)) || rlabels(rl, "group", &g) < 0 ||
		  incident_pack(inc, &(struct label_set){g.items, g.n}, NULL, NULL, false, NULL,
				NULL) < 0;
	owned_labels_release(&g);
	if (bad || incident_link(e, inc) < 0) {
		incident_free(inc);
		return NULL;
	}
	return inc;
}

static int replay_decision(struct rline *rl, const char *id)
{
	struct engine *e = rl->e;
	char rule[512], fp[256], outcome[32], state[32], trigger[32];
	if (!id[0] || !rget(rl, "rule", rule, sizeof(rule)) ||
	    !rget(rl, "outcome", outcome, sizeof(outcome)) ||
	    !rget(rl, "state", state, sizeof(state)))
		return 0; /* no incident: nothing to rebuild */
	if (!rget(rl, "fingerprint", fp, sizeof(fp)))
		fp[0] = '\0';
	struct incident *inc = replay_incident(rl, id, rule);
	int st = incident_state_parse(state);
	if (!inc || st < 0)
		return inc ? 0 : -1;
	int episode = (int)rgetint(rl, "episode", inc->episode);
	inc->last_seen_ns = ts_ns(rl->ts);
	if (episode != inc->episode) { /* a new episode */
		inc->episode = episode;
		/* the journal store keeps episode claims in memory: claim again
		 * what the journal shows (a 1 here is this very episode) */
		if (store_claim_episode(e->store, inc->id, episode) < 0)
			return -1;
		inc->episode_start = rl->ts;
		incident_clear_episode(inc);
		incident_clear_firing(inc);
	}
	char target[TARGET_MAX + 1], into[INCIDENT_ID_LEN + 1], starts[64];
	if (rget(rl, "target", target, sizeof(target)) &&
	    (!incident_target(inc) || strcmp(incident_target(inc), target) != 0) &&
	    incident_set_target(inc, target) < 0)
		return -1;
	if (rget(rl, "coalesced_into", into, sizeof(into))) {
		if (!incident_extra(inc))
			return -1;
		memcpy(inc->x->coalesced_into, into, sizeof(into));
	}
	struct timestamp sa;
	if (fp[0] && strcmp(outcome, "no_match") != 0 && strcmp(outcome, "resolved") != 0 &&
	    rget(rl, "startsAt", starts, sizeof(starts)) &&
	    timestamp_parse(starts, strlen(starts), &sa) == 0 &&
	    incident_add_key(inc, fp, sa, episode) < 0)
		return -1;
	if (strcmp(outcome, "repeat") == 0 && st == INC_RESOLVED)
		return 0; /* a late copy of a resolved episode: nothing changed */
	if (strcmp(outcome, "resolved") == 0)
		incident_remove_firing(inc, fp);
	else if (fp[0] && strcmp(outcome, "no_match") != 0 && incident_add_firing(inc, fp) < 0)
		return -1;
	inc->state = (enum incident_state)st;
	inc->decided = st != INC_PENDING && st != INC_RESOLVED;
	if (json_obj_get(rl->doc, 0, "labels")) {
		struct owned_labels l = {0}, a = {0};
		int bad = rlabels(rl, "labels", &l) < 0 || rlabels(rl, "annotations", &a) < 0 ||
			  incident_pack(inc, NULL, &(struct label_set){l.items, l.n},
					&(struct label_set){a.items, a.n}, false, NULL, NULL) < 0;
		owned_labels_release(&l);
		owned_labels_release(&a);
		if (bad)
			return -1;
	}
	incident_cap_trigger(inc);
	/* The claims themselves are the store's records (target_claimed,
	 * target_released), which it replays; the engine only remembers what
	 * its claim is for. */
	if (strcmp(outcome, "dry_run") == 0 || strcmp(outcome, "awaiting_approval") == 0) {
		if (incident_set_hold(inc, HOLD_RESERVED) < 0)
			return -1;
	} else if (strcmp(outcome, "coalesced") == 0 || strcmp(outcome, "held") == 0) {
		(void)incident_set_hold(inc, HOLD_NONE); /* never fails */
	}
	if (strcmp(outcome, "acting") == 0) {
		if (!incident_extra(inc))
			return -1;
		inc->has_acted = true;
		inc->x->last_acted = rl->ts;
		inc->x->hold = HOLD_ACTING;
		/* a snapshot's rollbacks and blast radius are its state lines */
		if (!e->snapshot_replay) {
			store_note_rollback(e->store, inc->id, ts_ms(rl->ts));
			if (incident_target(inc))
				blast_note(&e->blast, target_hash(incident_target(inc)),
					   ts_ms(rl->ts));
		}
		const struct rule *r = engine_find_rule(e, rule);
		incident_clear_actions(inc);
		inc->x->actions =
		    r && r->n_actions ? calloc(r->n_actions, sizeof(*inc->x->actions)) : NULL;
		inc->x->n_actions = inc->x->actions ? r->n_actions : 0;
	}
	(void)rget(rl, "trigger", trigger, sizeof(trigger));
	return 0;
}

static struct action_record *replay_action(struct rline *rl, struct incident *inc)
{
	int64_t index = rgetint(rl, "index", -1);
	if (!inc || index < 0 || (size_t)index >= incident_n_actions(inc) ||
	    rgetint(rl, "episode", -1) != inc->episode)
		return NULL;
	return &inc->x->actions[index];
}

/* A notification record's seen-map key and digest; false when it has none. */
static bool notification_seen(const struct record *rec, uint64_t *key, unsigned char d[16])
{
	char fp[256], hex[40];
	if (!record_str(rec, "fingerprint", fp, sizeof(fp)) ||
	    !record_str(rec, "digest", hex, sizeof(hex)) ||
	    sodium_hex2bin(d, 16, hex, strlen(hex), NULL, NULL, NULL) != 0)
		return false;
	*key = incident_fp_key(fp);
	return true;
}

static int replay_line(struct rline *rl)
{
	struct engine *e = rl->e;
	const struct record *rec = rl->rec;
	const char *id = rec->incident;
	char buf[64];
	if (!rec->has_incident)
		return 0;
	if (rec->has_ts)
		rl->ts = rec->ts;
	if (rec->type == RECORD_NOTIFICATION) {
		uint64_t key;
		unsigned char d[16];
		if (notification_seen(rec, &key, d))
			return seen_map_put(&e->seen, key, d) < 0 ? -1 : 0;
		return 0;
	}
	if (rec->type == RECORD_DECISION)
		return replay_decision(rl, id);
	struct incident *inc = id[0] ? incident_find(e, id) : NULL;
	if (!inc)
		return 0;
	if (rec->type == RECORD_ACTION_STARTED) {
		struct action_record *a = replay_action(rl, inc);
		char action[8];
		if (a) {
			a->begun = true;
			a->started = rl->ts;
			a->type = rget(rl, "action", action, sizeof(action)) &&
					  strcmp(action, "http") == 0
				      ? ACTION_HTTP
				      : ACTION_EXEC;
		}
	} else if (rec->type == RECORD_ACTION_FINISHED) {
		struct action_record *a = replay_action(rl, inc);
		char result[16], state[32];
		if (a) {
			static const char *const results[] = {"ok",    "failed",  "timeout",
							      "error", "unknown", "interrupted"};
			a->done = true;
			a->finished = rl->ts;
			a->result = "error";
			if (rget(rl, "result", result, sizeof(result)))
				for (size_t i = 0; i < sizeof(results) / sizeof(results[0]); i++)
					if (strcmp(result, results[i]) == 0)
						a->result = results[i];
			a->exit_code = (int)rgetint(rl, "exit_code", -1);
			a->status_code = (int)rgetint(rl, "status_code", 0);
			size_t t = json_obj_get(rl->doc, 0, "output");
			if (t && rl->doc->toks[t].kind == JSON_KIND_STRING &&
			    (a->output = malloc(rl->doc->toks[t].size + 1)))
				json_str_decode(rl->doc, &rl->doc->toks[t], a->output);
			inc->x->next_action = (size_t)(a - inc->x->actions) + 1;
		}
		int st;
		if (rget(rl, "incident_state", state, sizeof(state)) &&
		    (st = incident_state_parse(state)) >= 0) {
			inc->state = (enum incident_state)st;
			if (incident_hold(inc) == HOLD_ACTING) /* the last action: it cools down */
				inc->x->hold = HOLD_COOLING;
		}
	} else if (rec->type == RECORD_RESOLVED) {
		inc->state = INC_RESOLVED;
		incident_resolved(e, inc);
		incident_clear_firing(inc);
		if (incident_hold(inc) == HOLD_RESERVED)
			inc->x->hold = HOLD_NONE;
	} else if (rec->type == RECORD_INCIDENT_STATE) {
		int st;
		if (rget(rl, "state", buf, sizeof(buf)) && (st = incident_state_parse(buf)) >= 0)
			inc->state = (enum incident_state)st;
	} else if (rec->type == RECORD_ACK || rec->type == RECORD_APPROVE) {
		char by[256];
		bool ack = rec->type == RECORD_ACK;
		if (rget(rl, "by", by, sizeof(by))) {
			if (!incident_extra(inc))
				return -1;
			char **who = ack ? &inc->x->acknowledged_by : &inc->x->approved_by;
			free(*who);
			*who = strdup(by);
			*(ack ? &inc->x->acknowledged_at : &inc->x->approved_at) = rl->ts;
		}
	}
	return 0;
}

/* A snapshot's state line (engine_snapshot_state wrote it). */
static int replay_snapshot_state(struct engine *e, const struct record *rec)
{
	int64_t at = record_int(rec, "at_ms", INT64_MIN);
	int rc = 0;
	if (rec->type == RECORD_SNAPSHOT_ROLLBACK) {
		if (at != INT64_MIN)
			rc = store_note_rollback(e->store, "", at);
		return rc < 0 ? -1 : 0;
	}
	uint64_t key = record_snapshot_key(rec);
	pthread_mutex_lock(&e->lock);
	if (rec->type == RECORD_SNAPSHOT_BLAST && key && at != INT64_MIN)
		blast_note(&e->blast, key, at);
	else if (rec->type == RECORD_SNAPSHOT_TOMB)
		rc = tomb_restore(e, key, (int)record_int(rec, "episode", 0),
				  record_int(rec, "max_starts_ms", 0));
	pthread_mutex_unlock(&e->lock);
	return rc < 0 ? -1 : 0;
}

int engine_replay_record(const struct record *rec, void *arg)
{
	struct engine *e = arg;
	if (rec->status == RECORD_ENOTJSON || rec->status == RECORD_ENOTOBJECT) {
		log_warn("journal: a record is not JSON; skipped on replay", "segment",
			 rec->where ? rec->where : "", NULL);
		return 0;
	}
	if (rec->status != RECORD_OK)
		return rec->status == RECORD_ENOMEM ? -1 : 0;
	if (record_is_snapshot_state(rec->type))
		return replay_snapshot_state(e, rec);
	/* the store first: pause, target claims and its outbox are its own */
	if (store_observe(e->store, rec) < 0)
		return -1;
	int ch = changes_replay_record(e->changes, rec);
	if (ch != 0) /* a change record: the change store's */
		return ch < 0 ? -1 : 0;
	pthread_mutex_lock(&e->lock);
	struct rline rl = {.e = e, .rec = rec, .doc = &rec->doc};
	int rc = replay_line(&rl);
	pthread_mutex_unlock(&e->lock);
	return rc < 0 ? -1 : 0;
}

/* After replay: what a crash cut off becomes unknown (never re-run); what
 * was decided but never started runs now; pending incidents get their
 * firing_for timers back. */
int engine_attach_journal(struct engine *e, struct journal *j)
{
	struct timestamp now = timestamp_now();
	pthread_mutex_lock(&e->lock);
	if (j && e->own_store)
		store_journal_attach(e->store, j);
	e->n_open = 0;
	struct incident *inc;
	LIST_FOR_EACH(inc, link, &e->incidents)
	{
		struct store_target_claim tc;
		if (incident_target(inc) &&
		    store_target_claim(e->store, incident_target(inc), &tc) == 0 &&
		    strcmp(tc.holder, inc->id) == 0 && incident_extra(inc))
			inc->x->fence = tc.epoch; /* the store replayed the claim */
		if (inc->state != INC_RESOLVED)
			e->n_open++;
		if (inc->state == INC_PENDING) {
			const struct rule *r = engine_find_rule(e, inc->rule_name);
			if (r) {
				struct timestamp at = inc->episode_start;
				at.sec += r->firing_for_ms / 1000;
				engine_arm_firing_for(e, inc, at, now);
			}
			continue;
		}
		const struct rule *rr = engine_find_rule(e, inc->rule_name);
		/* Timers do not survive a restart: give them a full window from now
		 * (later rather than earlier). */
		if (inc->state == INC_AWAITING_APPROVAL && rr && rr->approve_timeout_ms > 0)
			timers_arm(e, inc, STORE_TIMER_APPROVE, rr->approve_timeout_ms);
		if (inc->state == INC_ROLLED_BACK)
			engine_arm_verify(e, inc);
		if (inc->state != INC_ACTING)
			continue;
		bool cut = false;
		for (size_t i = 0; i < incident_n_actions(inc); i++) {
			struct action_record *a = &inc->x->actions[i];
			if (!a->begun || a->done)
				continue;
			static const char msg[] =
			    "rollbackd stopped before this action finished; it is not run again";
			a->done = true;
			a->result = "unknown";
			a->finished = now;
			a->output = strdup(msg);
			cut = true;
			inc->state = INC_UNKNOWN;
			rec_action_finished(e, inc, i, a, "unknown");
			char step[160];
			snprintf(step, sizeof(step), "Action %zu of %zu: result unknown: %s", i + 1,
				 inc->x->n_actions, msg);
			rec_step(e, inc, NOTIFY_STEP_UNKNOWN, step);
			rec_notify(e, inc, NOTIFY_TRIGGER, msg, msg);
			log_warn("action cut off by a restart; not re-run", "incident", inc->id,
				 "rule", inc->rule_name, NULL);
		}
		if (!cut && e->base && incident_next_action(inc) < incident_n_actions(inc)) {
			log_info("resuming actions decided before the restart", "incident", inc->id,
				 NULL);
			runner_enqueue_resume(e, inc);
		}
	}
	metric_set(e->paused_gauge, store_paused(e->store));
	engine_open_count(e);
	pthread_mutex_unlock(&e->lock);
	return 0;
}

/* ---- snapshots (snapshot.h) ---------------------------------------------- */

void engine_replay_snapshot(struct engine *e, bool on)
{
	pthread_mutex_lock(&e->lock);
	e->snapshot_replay = on;
	pthread_mutex_unlock(&e->lock);
}

/* What the engine holds at one instant, for a snapshot up to that seq
 * (engine.h): the incidents in memory and the seen map, sorted by key. */
struct frozen_incident {
	uint64_t id; /* tomb_key of the id */
	uint64_t born_after;
};

struct frozen_seen {
	uint64_t key;
	unsigned char digest[16];
};

/* The state lines' data, copied under e->lock and written after it. */
struct frozen_state {
	struct tombstone *tombs;
	size_t n_tombs, cap_tombs;
	uint64_t blast_key[BLAST_RING];
	int64_t blast_at[BLAST_RING];
	size_t n_blast;
	int64_t *rollbacks;
	size_t n_rollbacks, cap_rollbacks;
	size_t next; /* the next state line to write (engine_frozen_state) */
};

struct engine_frozen {
	struct store *store;
	struct frozen_state fs;
	/* sorted by their leading uint64_t (engine_frozen_finish) */
	struct frozen_incident *incs;
	size_t n_incs;
	struct frozen_seen *seen;
	size_t n_seen;
	uint64_t *changes; /* seqs of the change records the change store held */
	size_t n_changes;
};

static int grow(void **p, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return 0;
	size_t c = *cap ? *cap * 2 : 64;
	void *q = realloc(*p, c * size);
	if (!q)
		return -1;
	*p = q;
	*cap = c;
	return 0;
}

static int add_tomb(struct frozen_state *fs, uint64_t id, int episode, int64_t max_starts_ms)
{
	if (grow((void **)&fs->tombs, &fs->cap_tombs, fs->n_tombs, sizeof(*fs->tombs)) < 0)
		return -1;
	fs->tombs[fs->n_tombs++] = (struct tombstone){id, max_starts_ms, episode};
	return 0;
}

static int tomb_copy(uint64_t id, int episode, int64_t max_starts_ms, void *arg)
{
	return add_tomb(arg, id, episode, max_starts_ms);
}

static int rollback_copy(int64_t at_ms, void *arg)
{
	struct frozen_state *fs = arg;
	if (grow((void **)&fs->rollbacks, &fs->cap_rollbacks, fs->n_rollbacks,
		 sizeof(*fs->rollbacks)) < 0)
		return -1;
	fs->rollbacks[fs->n_rollbacks++] = at_ms;
	return 0;
}

/* Under e->lock: the incidents, the seen map and what the state lines say
 * (no kept record carries it), in f's arrays sized for them. */
static int copy_locked(struct engine *e, struct engine_frozen *f)
{
	struct frozen_state *fs = &f->fs;
	int rc = tomb_map_each(&e->tombs, tomb_copy, fs);
	struct incident *inc;
	LIST_FOR_EACH(inc, link, &e->incidents)
	{
		f->incs[f->n_incs++] = (struct frozen_incident){tomb_key(inc->id), inc->born_after};
		/* an incident back after its eviction keeps what its tombstone
		 * said, even once the tombstone itself left the ring */
		if (rc == 0 && inc->tomb_episode > 0 && !tomb_map_has(&e->tombs, inc->id))
			rc =
			    add_tomb(fs, tomb_key(inc->id), inc->tomb_episode, inc->tomb_starts_ms);
	}
	uint64_t key;
	const unsigned char *digest;
	for (size_t pos = 0; seen_map_next(&e->seen, &pos, &key, &digest);) {
		f->seen[f->n_seen].key = key;
		memcpy(f->seen[f->n_seen++].digest, digest, 16);
	}
	for (size_t i = 0; i < e->blast.n; i++) {
		size_t at = (e->blast.head + i) % BLAST_RING;
		fs->blast_key[fs->n_blast] = e->blast.hash[at];
		fs->blast_at[fs->n_blast++] = e->blast.at_ms[at];
	}
	if (rc == 0)
		rc = store_journal_each_rollback(e->store, rollback_copy, fs);
	if (rc == 0)
		rc = changes_held_seqs(e->changes, &f->changes, &f->n_changes);
	return rc ? -1 : 0;
}

/* The state lines (record_snapshot_*), after the lock: from fs->next, up
 * to STATE_PART of them. 1 when more follow, 0 done, -1 on OOM. */
#define STATE_PART 4096
static int state_lines(struct frozen_state *fs, struct buf *out)
{
	size_t end = fs->n_tombs + fs->n_blast + fs->n_rollbacks;
	int rc = 0;
	for (size_t k = 0; rc == 0 && k < STATE_PART && fs->next < end; k++, fs->next++) {
		size_t i = fs->next;
		if (i < fs->n_tombs)
			rc = record_snapshot_tomb(out, fs->tombs[i].id, fs->tombs[i].episode,
						  fs->tombs[i].max_starts_ms);
		else if ((i -= fs->n_tombs) < fs->n_blast)
			rc = record_snapshot_blast(out, fs->blast_key[i], fs->blast_at[i]);
		else
			rc = record_snapshot_rollback(out, fs->rollbacks[i - fs->n_blast]);
	}
	return rc ? -1 : fs->next < end;
}

/* For the arrays of struct engine_frozen: by their leading uint64_t. */
static int by_u64(const void *a, const void *b)
{
	uint64_t x, y;
	memcpy(&x, a, sizeof(x));
	memcpy(&y, b, sizeof(y));
	return x < y ? -1 : x > y;
}

void engine_frozen_free(struct engine_frozen *f)
{
	if (!f)
		return;
	free(f->fs.tombs);
	free(f->fs.rollbacks);
	free(f->incs);
	free(f->seen);
	free(f->changes);
	free(f);
}

int engine_snapshot_freeze(struct engine *e, struct journal *j, uint64_t *seq,
			   struct engine_frozen **out)
{
	struct engine_frozen *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	f->store = e->store;
	changes_ingest_lock(e->changes); /* every change up to the seq is in the store */
	pthread_mutex_lock(&e->lock);
	/* every record of the engine is appended under its lock: what it holds
	 * now is what the records up to this seq say */
	*seq = journal_seq(j);
	size_t n_seen = seen_map_count(&e->seen);
	f->incs = malloc((e->n_incidents ? e->n_incidents : 1) * sizeof(*f->incs));
	f->seen = malloc((n_seen ? n_seen : 1) * sizeof(*f->seen));
	int rc = f->incs && f->seen ? copy_locked(e, f) : -1;
	pthread_mutex_unlock(&e->lock);
	changes_ingest_unlock(e->changes);
	if (rc < 0) {
		engine_frozen_free(f);
		return -1;
	}
	*out = f;
	return 0;
}

void engine_frozen_finish(struct engine_frozen *f)
{
	qsort(f->incs, f->n_incs, sizeof(*f->incs), by_u64);
	qsort(f->seen, f->n_seen, sizeof(*f->seen), by_u64);
	qsort(f->changes, f->n_changes, sizeof(*f->changes), by_u64);
}

int engine_frozen_state(struct engine_frozen *f, struct buf *out)
{
	return state_lines(&f->fs, out);
}

bool engine_frozen_keep(const struct engine_frozen *f, const struct record *rec)
{
	if (rec->status != RECORD_OK)
		return false;
	if (store_journal_snapshot_keep(f->store, rec))
		return true;
	if (!rec->seq)
		return false;
	if (rec->type == RECORD_CHANGE) /* the change store's, while it holds it */
		return bsearch(&rec->seq, f->changes, f->n_changes, sizeof(rec->seq), by_u64);
	if (!rec->has_incident)
		return false;
	if (rec->type == RECORD_NOTIFICATION) {
		/* the seen map's: the latest of each fingerprint still held */
		struct frozen_seen k;
		if (!notification_seen(rec, &k.key, k.digest))
			return false;
		const struct frozen_seen *x = bsearch(&k, f->seen, f->n_seen, sizeof(k), by_u64);
		return x && memcmp(x->digest, k.digest, 16) == 0;
	}
	if (strlen(rec->incident) != INCIDENT_ID_LEN || strncmp(rec->incident, "inc-", 4) != 0)
		return false;
	struct frozen_incident k = {tomb_key(rec->incident), 0};
	const struct frozen_incident *x = bsearch(&k, f->incs, f->n_incs, sizeof(k), by_u64);
	return x && rec->seq > x->born_after;
}
