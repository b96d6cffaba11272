/*
 * engine: rules -> incidents -> decisions -> actions.
 *
 * Safety first: an incident acts at most once per firing episode; repeats
 * change nothing; resolved ends the episode; cooldown, the hourly cap,
 * pause (API or PAUSED file) and dry-run hold instead of acting. Decisions
 * are taken under one mutex and are cheap; actions run on the event base's
 * thread, one step at a time, through proc (exec) and httpc (http), so the
 * loop never blocks. A template that names something the alert lacks fails
 * the action before anything runs.
 *
 * This file: intake (engine_process), deciding an episode (with policy.c),
 * the firing_for, approve_timeout and verify timers, ack/approve, pause,
 * reload and shutdown. The rest of the engine is listed at the top of
 * engine_internal.h, with the lock rules all of it follows. Must never:
 * know HTTP, or run anything slow under e->lock.
 *
 * Just over 800 lines: the incident lifecycle entry points (intake, resolve,
 * ack, approve, pause) that take e->lock; the rest of the engine is in its
 * own files (incident, policy, records, actions, runner, timers, replay,
 * views, targets).
 */
#include "engine_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rollbackd/duration.h"
#include "rollbackd/httpc.h"
#include "rollbackd/log.h"
#include "rollbackd/metrics.h"


struct engine *engine_new(const struct engine_options *opt, const struct ruleset *rules)
{
	static const char *const dlabels[] = {"rule", "outcome", NULL};
	static const char *const alabels[] = {"rule", "type", "result", NULL};
	static const double bounds[] = {0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300};
	struct engine *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	pthread_mutex_init(&e->lock, NULL);
	list_init(&e->incidents);
	hmap_init(&e->by_id);
	hmap_init(&e->rule_names);
	list_init(&e->queue);
	seen_map_init(&e->seen);
	e->cfg = opt->cfg;
	e->rules = rules;
	e->base = opt->base;
	e->plan_only = opt->plan_only;
	e->decision_children = calloc((rules->n_rules + 1) * OUTCOME_COUNT,
				      sizeof(*e->decision_children));
	if (opt->store) {
		e->store = opt->store;
	} else {
		struct store_journal_options so = {.journal = NULL};
		e->store = store_journal_new(&so);
		e->own_store = true;
	}
	e->changes = changes_new();
	if (!e->store || !e->decision_children || !e->changes)
		goto fail;
	list_init(&e->resolved);
	list_init(&e->graveyard);
	if (e->base) {
		e->kick = event_new(e->base, -1, 0, runner_kick_cb, e);
		e->reap = event_new(e->base, -1, 0, incident_reap_cb, e);
		if (!e->kick || !e->reap)
			goto fail;
	}
	if (timers_init(e) < 0)
		goto fail;
	e->decisions_total = metrics_register(METRIC_COUNTER, "decisions_total",
					      "Decisions by rule and outcome.", dlabels, NULL, 0);
	e->actions_total = metrics_register(METRIC_COUNTER, "actions_total",
					    "Actions run by rule, type and result.", alabels,
					    NULL, 0);
	struct metric_family *dur = metrics_register(
		METRIC_HISTOGRAM, "action_duration_seconds", "Time an action took.", NULL, bounds,
		sizeof(bounds) / sizeof(bounds[0]));
	struct metric_family *open = metrics_register(
		METRIC_GAUGE, "incidents_open", "Incidents not resolved.", NULL, NULL, 0);
	struct metric_family *paused = metrics_register(
		METRIC_GAUGE, "paused", "1 when automatic actions are paused.", NULL, NULL, 0);
	struct metric_family *locked = metrics_register(
		METRIC_GAUGE, "targets_locked",
		"Targets held by an incident: acting, awaiting approval or in target_cooldown.",
		NULL, NULL, 0);
	struct metric_family *mem = metrics_register(
		METRIC_GAUGE, "incidents_in_memory", "Incidents kept in memory.", NULL, NULL, 0);
	struct metric_family *over = metrics_register(
		METRIC_COUNTER, "incidents_over_limit_total",
		"Incidents made over limits.max_incidents (nothing could be evicted): held.", NULL,
		NULL, 0);
	if (!e->decisions_total || !e->actions_total || !dur || !open || !paused || !locked ||
	    !mem || !over || verify_run_init(e) < 0)
		goto fail;
	e->in_memory = metrics_child(mem);
	e->over_limit = metrics_child(over);
	e->targets_locked = metrics_child(locked);
	e->action_duration = metrics_child(dur);
	e->incidents_open = metrics_child(open);
	e->paused_gauge = metrics_child(paused);
	return e;
fail:
	engine_free(e);
	return NULL;
}

void engine_free(struct engine *e)
{
	if (!e)
		return;
	if (e->http)
		httpc_free(e->http);
	incident_free_all(e);
	incident_reap(e);
	tomb_map_release(&e->tombs);
	hmap_release(&e->rule_names); /* empty: every incident is freed */
	if (e->reap)
		event_free(e->reap);
	if (e->kick)
		event_free(e->kick);
	timers_release(e);
	if (e->own_store)
		store_free(e->store);
	free(e->decision_children);
	seen_map_release(&e->seen);
	changes_free(e->changes);
	pthread_mutex_destroy(&e->lock);
	free(e);
}

static bool paused_now(struct engine *e)
{
	if (store_paused(e->store))
		return true;
	char path[4096];
	struct stat st;
	snprintf(path, sizeof(path), "%s/PAUSED", e->cfg->state_dir);
	return stat(path, &st) == 0;
}

/* decisions_total{rule,outcome}; the children are looked up once per
 * (rule, outcome) and cached, since this runs for every decision. */
void engine_count_decision(struct engine *e, const struct rule *r, enum outcome o)
{
	size_t row = r ? (size_t)(r - e->rules->rules) + 1 : 0; /* row 0: no rule */
	struct metric_child **slot = &e->decision_children[row * OUTCOME_COUNT + o];
	if (!*slot)
		*slot = metrics_child(e->decisions_total, r ? r->name : "", outcome_name(o));
	metric_inc(*slot);
}

/* After a decision that changed the incident: tell people; an approval
 * that may time out starts its clock. */
static void after_decision(struct engine *e, struct incident *inc, const struct rule *r,
			   enum outcome o, const char *reason)
{
	rec_notify(e, inc, NOTIFY_TRIGGER, reason, NULL);
	if (o == OUTCOME_AWAITING_APPROVAL && r->approve_timeout_ms > 0)
		timers_arm(e, inc, STORE_TIMER_APPROVE, r->approve_timeout_ms);
}

/* verify.within: the rollback should make the alert resolve in time. */
void engine_arm_verify(struct engine *e, struct incident *inc)
{
	const struct rule *r = engine_find_rule(e, inc->rule_name);
	if (r && r->verify_within_ms > 0)
		timers_arm(e, inc, STORE_TIMER_VERIFY, r->verify_within_ms);
	if (r && r->verify_within_ms > 0 && r->verify_query)
		verify_run_begin(e, inc); /* verify_run.c */
}

/* The episode resolves: a rollback still being verified was effective. */
static void settle_verify(struct engine *e, struct incident *inc, bool resolved)
{
	if (!timers_armed(inc, STORE_TIMER_VERIFY) || verify_run_active(inc))
		return; /* with verify.query, only the query says effective */
	timers_cancel(e, inc, STORE_TIMER_VERIFY);
	if (resolved && inc->state == INC_ROLLED_BACK) {
		inc->state = INC_EFFECTIVE;
		rec_state(e, inc, "resolved within verify.within after the rollback");
	}
}

void engine_escalate_coalesced(struct engine *e, const struct incident *holder,
			       const char *note)
{
	char msg[512];
	struct incident *c;
	LIST_FOR_EACH (c, link, &e->incidents) {
		if (c->state != INC_COALESCED ||
		    strcmp(incident_coalesced_into(c), holder->id) != 0)
			continue;
		snprintf(msg, sizeof(msg), "coalesced into %s, which did not fix it: %s", holder->id,
			 note);
		rec_state(e, c, msg);
		rec_notify(e, c, NOTIFY_ESCALATE, msg, msg);
	}
}

/* verify.within ended. */
static void verify_elapsed(struct engine *e, struct incident *inc)
{
	if (inc->state == INC_ROLLED_BACK && inc->n_firing > 0) {
		const struct rule *r = engine_find_rule(e, inc->rule_name);
		char note[160];
		snprintf(note, sizeof(note),
			 "The rollback did not fix it: still firing %llds after the actions finished",
			 (long long)(r ? r->verify_within_ms / 1000 : 0));
		inc->state = INC_INEFFECTIVE;
		rec_state(e, inc, note);
		rec_notify(e, inc, NOTIFY_ESCALATE, note, note);
		engine_escalate_coalesced(e, inc, note);
		log_warn("rollback ineffective", "incident", inc->id, "rule", inc->rule_name, NULL);
	}
}

/* One remediation per target (SPEC §7), for an episode that policy would
 * let act, run dry or wait for approval: a target that cannot be named
 * holds the incident; a target that another incident holds coalesces it
 * into that one; past the blast radius an automatic rollback waits for a
 * human. Otherwise the incident claims the target (acting, or reserving it
 * until it is approved or resolves). */
static enum outcome decide_target(struct engine *e, struct incident *inc, enum outcome o,
				  int64_t now_ms, char *reason, size_t rsz)
{
	struct target_busy busy;
	if (!incident_target(inc)) {
		inc->state = INC_HELD;
		snprintf(reason, rsz, "%s",
			 inc->x && inc->x->target_err ? inc->x->target_err : "target: unknown");
		return OUTCOME_HELD;
	}
	if (!incident_extra(inc)) { /* where a claim and coalesced_into are kept */
		inc->state = INC_HELD;
		snprintf(reason, rsz, "target %s: out of memory claiming it", incident_target(inc));
		return OUTCOME_HELD;
	}
	int blast = e->cfg->limits.blast_targets;
	int64_t window_ms = e->cfg->limits.blast_window_ms;
	if (o == OUTCOME_ACTING && blast > 0) {
		size_t n = blast_count(&e->blast, now_ms, window_ms, target_hash(incident_target(inc)),
				       (size_t)blast);
		if (n >= (size_t)blast) {
			char win[32];
			duration_format(window_ms, win, sizeof(win));
			o = OUTCOME_AWAITING_APPROVAL;
			snprintf(reason, rsz, "blast radius: %zu targets rolled back in the last %s",
				 n, win);
		}
	}
	switch (targets_claim(e, inc, o == OUTCOME_ACTING, now_ms, &busy)) {
	case TARGET_CLAIMED:
		break;
	case TARGET_BUSY:
		snprintf(inc->x->coalesced_into, sizeof(inc->x->coalesced_into), "%.*s",
			 INCIDENT_ID_LEN, busy.holder);
		inc->state = INC_COALESCED;
		targets_busy_reason(e, incident_target(inc), &busy, reason, rsz);
		return OUTCOME_COALESCED;
	case TARGET_OOM:
	default:
		inc->state = INC_HELD;
		snprintf(reason, rsz, "target %s: out of memory claiming it", incident_target(inc));
		return OUTCOME_HELD;
	}
	if (o == OUTCOME_AWAITING_APPROVAL)
		inc->state = INC_AWAITING_APPROVAL;
	return o;
}

/* when.changed_within: a change to the target in the window before the
 * episode's startsAt. False with the reason written when there was none. */
static bool changed_recently(struct engine *e, const struct incident *inc, const struct rule *r,
			     char *reason, size_t rsz)
{
	struct buf t = BUF_INIT;
	struct timestamp from = inc->episode_start;
	from.sec -= r->changed_within_ms / 1000;
	bool ok = incident_target_name(inc, &t) == 0 &&
		  changes_within(e->changes, t.data, from, inc->episode_start, NULL);
	if (!ok)
		snprintf(reason, rsz, "no change to '%s' recorded in the %llds before startsAt",
			 t.data ? t.data : "", (long long)(r->changed_within_ms / 1000));
	buf_release(&t);
	return ok;
}

/* Decide an incident whose episode has not been decided yet. Sets the state
 * and writes the reason. Never runs anything itself: acting enqueues. */
static enum outcome decide(struct engine *e, struct incident *inc, const struct rule *r,
			   struct timestamp now, char *reason, size_t rsz)
{
	static const enum incident_state states[] = {
		[POLICY_STATE_ACTING] = INC_ACTING,
		[POLICY_STATE_DRY_RUN] = INC_DRY_RUN,
		[POLICY_STATE_HELD] = INC_HELD,
		[POLICY_STATE_AWAITING_APPROVAL] = INC_AWAITING_APPROVAL,
	};
	int64_t now_ms = ts_ms(now);
	struct policy_input in = {
		.mode = r->mode,
		/* the PAUSED stat only when it can matter, as before the split */
		.paused = r->mode != RULE_MODE_NOTIFY && paused_now(e),
		.dry_run = policy_dry_run(r->dry_run, e->cfg->dry_run),
		.cooldown_ms = r->cooldown_ms,
		.has_acted = inc->has_acted,
		.last_acted = inc->has_acted ? inc->x->last_acted : (struct timestamp){0},
		.acted_in_window = store_count_rollbacks(e->store, now_ms, HOURLY_WINDOW_MS),
		.max_per_hour = e->cfg->limits.max_rollbacks_per_hour,
		.n_actions = r->n_actions,
	};
	if (r->mode != RULE_MODE_NOTIFY && r->changed_within_ms > 0 &&
	    !changed_recently(e, inc, r, reason, rsz)) {
		/* rolling back a version that did not just change is the wrong fix */
		inc->decided = true;
		inc->state = INC_HELD;
		return OUTCOME_NO_RECENT_CHANGE;
	}
	enum policy_state st;
	enum outcome o = policy_decide(&in, now, &st, reason, rsz);
	inc->decided = true;
	inc->state = states[st];
	if ((inc->over_limit || incident_trigger_over(inc)) &&
	    o != OUTCOME_NOTIFY_ONLY) { /* incident.c */
		if (incident_trigger_over(inc))
			incident_trigger_reason(inc, reason, rsz);
		else
			snprintf(reason, rsz,
				 "limits.max_incidents (%zu) reached and no resolved incident is past "
				 "its cooldown to make room: held",
				 e->cfg->limits.max_incidents);
		inc->over_limit = false;
		inc->state = INC_HELD;
		return OUTCOME_HELD;
	}
	if (o == OUTCOME_ACTING || o == OUTCOME_DRY_RUN || o == OUTCOME_AWAITING_APPROVAL)
		o = decide_target(e, inc, o, now_ms, reason, rsz);
	if (o == OUTCOME_ACTING) {
		inc->has_acted = true; /* decide_target made inc->x */
		inc->x->last_acted = now;
		store_note_rollback(e->store, inc->id, now_ms);
		blast_note(&e->blast, target_hash(incident_target(inc)), now_ms);
		runner_enqueue_run(e, inc);
	}
	return o;
}

/* Publish the number of incidents not resolved (kept in e->n_open at the
 * transitions into and out of INC_RESOLVED, not recounted per request). */
void engine_open_count(struct engine *e)
{
	metric_set(e->incidents_open, (int64_t)e->n_open);
}

struct decision_out {
	struct buf *out;
	bool first;
	bool alert_new; /* the alert carries something not yet journaled */
	const char *external_url;
	int64_t truncated; /* truncatedAlerts of the notification */
};

static int emit(struct engine *e, struct decision_out *d, const char *fp, const struct rule *r,
		const struct incident *inc, enum outcome o, const char *reason)
{
	const char *rule = r ? r->name : "", *id = inc ? inc->id : "", *out = outcome_name(o);
	struct buf *b = d->out;
	int bad = buf_adds(b, d->first ? "{\"fingerprint\":" : ",{\"fingerprint\":") |
		  buf_add_json_str(b, fp, strlen(fp)) | buf_adds(b, ",\"rule\":") |
		  buf_add_json_str(b, rule, strlen(rule)) | buf_adds(b, ",\"incident\":") |
		  buf_add_json_str(b, id, strlen(id)) | buf_adds(b, ",\"outcome\":") |
		  buf_add_json_str(b, out, strlen(out)) | buf_adds(b, ",\"reason\":") |
		  buf_add_json_str(b, reason, strlen(reason));
	if (!bad && e->plan_only && r && inc && o != OUTCOME_NO_MATCH && o != OUTCOME_RESOLVED &&
	    o != OUTCOME_COALESCED) /* a coalesced incident runs nothing */
		bad |= actions_plan_json(e, r, inc, b);
	bad |= buf_addc(b, '}');
	d->first = false;
	engine_count_decision(e, r, o);
	return bad ? -1 : 0;
}

void engine_arm_firing_for(struct engine *e, struct incident *inc, struct timestamp at,
		      struct timestamp now)
{
	timers_arm(e, inc, STORE_TIMER_FIRING_FOR, ts_ms(at) - ts_ms(now));
}

/* Name the target of the episode that alert a opens (SPEC §6). A name
 * that cannot be made holds the incident when it is decided, with the
 * reason. -1 only on OOM. */
static int episode_target(struct incident *inc, const struct rule *r, const struct alert *a,
			  const struct label *group, size_t n_group)
{
	struct buf b = BUF_INIT;
	struct error err = {{0}};
	if (inc->x) {
		free(inc->x->target_err);
		inc->x->target_err = NULL;
	}
	int rc = 0;
	if (target_name(r, a, group, n_group, &b, &err) == 0)
		rc = incident_set_target(inc, b.data);
	else if (incident_set_target(inc, NULL) < 0 || !incident_extra(inc) ||
		 !(inc->x->target_err = strdup(err.msg)))
		rc = -1;
	buf_release(&b);
	return rc;
}

/* One firing alert against one matching rule. */
static int on_firing(struct engine *e, struct decision_out *d, const struct rule *r,
		     const struct alert *a, struct timestamp now)
{
	char reason[512];
	struct label *group = NULL;
	size_t n_group = 0;
	char id[INCIDENT_ID_LEN + 1];
	int rc = -1;

	if (r->has_value && !rule_value_check(r, a, reason, sizeof(reason))) {
		if (d->alert_new)
			rec_decision(e, NULL, r, a, OUTCOME_NO_MATCH, reason, NULL,
					 NULL);
		return emit(e, d, a->fingerprint, r, NULL, OUTCOME_NO_MATCH, reason);
	}

	int owned = incident_group_labels(r, a, &group, &n_group);
	if (owned < 0)
		return -1;
	incident_id_for(r, group, n_group, id);
	struct incident *inc = incident_find(e, id);
	if (!inc && !(inc = incident_new(e, r, id, group, n_group, now)))
		goto out;
	inc->last_seen_ns = ts_ns(now);

	int old_episode = inc->state == INC_RESOLVED
				  ? incident_late_episode(inc, a->fingerprint, a->starts_at)
				  : 0;
	if (old_episode > 0) {
		/* This very firing (fingerprint, startsAt) was part of an episode
		 * that resolved: a late duplicate from an HA peer or a replayed
		 * capture. It changes nothing. */
		snprintf(reason, sizeof(reason),
			 "episode %d already resolved: a late or replayed firing of it", old_episode);
		if (d->alert_new)
			rec_decision(e, inc, r, a, OUTCOME_REPEAT, reason, NULL, NULL);
		rc = emit(e, d, a->fingerprint, r, inc, OUTCOME_REPEAT, reason);
		goto out;
	}

	bool episode_started = false;
	if (inc->state == INC_RESOLVED) { /* a new episode starts */
		episode_started = true;
		inc->episode++;
		inc->decided = false;
		inc->episode_start = a->starts_at;
		inc->state = INC_PENDING;
		e->n_open++;
		incident_clear_episode(inc);
		incident_clear_firing(inc);
		if (inc->x)
			inc->x->fence = 0;
		if (episode_target(inc, r, a, group, n_group) < 0)
			goto out;
		/* One decision per episode across everything sharing the store: an
		 * episode another process claimed first is only a repeat here. */
		int claim = store_claim_episode(e->store, inc->id, inc->episode);
		if (claim < 0)
			goto out;
		if (claim > 0)
			inc->decided = true;
	}
	int counted_only = incident_add_firing(inc, a->fingerprint);
	if (counted_only < 0 ||
	    incident_add_key(inc, a->fingerprint, a->starts_at, inc->episode) < 0)
		goto out;

	enum outcome o;
	if (inc->decided) {
		o = OUTCOME_REPEAT;
		snprintf(reason, sizeof(reason), "episode %d already decided: %s", inc->episode,
			 incident_state_names[inc->state]);
	} else {
		if (incident_set_trigger(inc, a, d->external_url) < 0)
			goto out;
		int64_t firing_ms = ts_ms(now) - ts_ms(a->starts_at);
		struct timestamp at;
		if (policy_firing_for_wait(r->firing_for_ms, a->starts_at, now, &at)) {
			char when[TIMESTAMP_STRLEN];
			timestamp_format(at, when, sizeof(when));
			o = OUTCOME_PENDING;
			snprintf(reason, sizeof(reason), "firing for %llds of %llds; deciding at %s",
				 (long long)(firing_ms > 0 ? firing_ms / 1000 : 0),
				 (long long)(r->firing_for_ms / 1000), when);
			engine_arm_firing_for(e, inc, at, now);
		} else {
			o = decide(e, inc, r, now, reason, sizeof(reason));
		}
	}
	if (counted_only > 0)
		incident_untracked_note(inc, reason, sizeof(reason));
	if (d->alert_new || episode_started || (o != OUTCOME_REPEAT && o != OUTCOME_PENDING))
		rec_decision(e, inc, r, a, o, reason,
				 o == OUTCOME_REPEAT ? NULL : a, NULL);
	rc = emit(e, d, a->fingerprint, r, inc, o, reason);
	if (o != OUTCOME_REPEAT && o != OUTCOME_PENDING)
		after_decision(e, inc, r, o, reason);
	if (o != OUTCOME_REPEAT && o != OUTCOME_PENDING)
		log_info("decision", "rule", r->name, "incident", inc->id, "outcome",
			 outcome_name(o), "reason", reason, NULL);
out:
	if (owned > 0)
		free(group);
	return rc;
}

static int on_resolved(struct engine *e, struct decision_out *d, const struct rule *r,
		       const struct alert *a, struct timestamp now)
{
	struct label *group = NULL;
	size_t n_group = 0;
	char id[INCIDENT_ID_LEN + 1], reason[256];
	int owned = incident_group_labels(r, a, &group, &n_group);
	if (owned < 0)
		return -1;
	incident_id_for(r, group, n_group, id);
	if (owned > 0)
		free(group);
	struct incident *inc = incident_find(e, id);
	if (!inc || inc->state == INC_RESOLVED) {
		snprintf(reason, sizeof(reason), "no open incident for this alert");
		if (d->alert_new)
			rec_decision(e, inc, r, a, OUTCOME_RESOLVED, reason, NULL,
					 NULL);
		return emit(e, d, a->fingerprint, r, inc, OUTCOME_RESOLVED, reason);
	}
	inc->last_seen_ns = ts_ns(now);
	bool was_firing = incident_is_firing(inc, a->fingerprint);
	bool resolved_now = false;
	incident_remove_firing(inc, a->fingerprint);
	if (inc->n_firing > 0) {
		snprintf(reason, sizeof(reason), "%zu alert(s) of the incident still firing",
			 (size_t)inc->n_firing);
	} else if (d->truncated > 0) {
		/* Alertmanager left alerts out of this notification: some of them
		 * may still be firing, so the episode does not end on it. */
		snprintf(reason, sizeof(reason),
			 "%lld alert(s) were truncated by Alertmanager; the incident stays open",
			 (long long)d->truncated);
	} else {
		timers_cancel(e, inc, STORE_TIMER_FIRING_FOR); /* a pending firing_for */
		if (!inc->running) { /* running actions finish their records first */
			settle_verify(e, inc, true);
			inc->state = INC_RESOLVED;
			e->n_open--;
			resolved_now = true;
		}
		snprintf(reason, sizeof(reason), "episode %d resolved", inc->episode);
		incident_untracked_note(inc, reason, sizeof(reason));
		log_info("resolved", "rule", r->name, "incident", inc->id, NULL);
	}
	if (d->alert_new || was_firing)
		rec_decision(e, inc, r, a, OUTCOME_RESOLVED, reason, NULL, NULL);
	if (resolved_now) {
		incident_resolved(e, inc);
		targets_release(e, inc);
		rec_resolved(e, inc);
		rec_notify(e, inc, NOTIFY_RESOLVE, reason, NULL);
	}
	return emit(e, d, a->fingerprint, r, inc, OUTCOME_RESOLVED, reason);
}


int engine_process(struct engine *e, const struct webhook *wh, struct timestamp now,
		   struct buf *out)
{
	struct decision_out d = {out, true, false, wh->external_url, wh->truncated_alerts};
	struct alert_notes notes = {NULL};
	int rc = 0;
	if (buf_addc(out, '[') < 0 || rec_notes_build(wh, &notes) < 0) {
		rec_notes_release(&notes);
		return -1;
	}
	pthread_mutex_lock(&e->lock);
	for (size_t i = 0; i < wh->n_alerts && rc == 0; i++) {
		const struct alert *a = &wh->alerts[i];
		bool matched = false;
		d.alert_new = rec_note_alert(e, wh, i, &notes) > 0;
		char bad[512];
		if (policy_alert_invalid(a, i, now, bad, sizeof(bad))) {
			/* Only this alert: a 4xx would drop the whole group. */
			if (d.alert_new)
				rec_decision(e, NULL, NULL, a, OUTCOME_INVALID, bad, NULL, NULL);
			rc = emit(e, &d, a->fingerprint, NULL, NULL, OUTCOME_INVALID, bad);
			continue;
		}
		for (size_t j = 0; j < e->rules->n_rules && rc == 0; j++) {
			const struct rule *r = &e->rules->rules[j];
			if (!rule_matches(r, a))
				continue;
			matched = true;
			rc = a->status == ALERT_FIRING ? on_firing(e, &d, r, a, now)
						       : on_resolved(e, &d, r, a, now);
		}
		if (!matched && rc == 0) {
			static const char why[] = "no rule matches the alert's labels";
			if (d.alert_new)
				rec_decision(e, NULL, NULL, a, OUTCOME_NO_MATCH, why,
						 NULL, NULL);
			rc = emit(e, &d, a->fingerprint, NULL, NULL, OUTCOME_NO_MATCH, why);
		}
	}
	engine_open_count(e);
	pthread_mutex_unlock(&e->lock);
	rec_notes_release(&notes);
	if (rc == 0 && buf_addc(out, ']') < 0)
		rc = -1;
	return rc;
}

/* firing_for elapsed without a resolve: decide now. */
static void firing_for_elapsed(struct engine *e, struct incident *inc)
{
	char reason[512];
	const struct rule *r = engine_find_rule(e, inc->rule_name);
	if (r && inc->state == INC_PENDING && !inc->decided) {
		enum outcome o = decide(e, inc, r, timestamp_now(), reason, sizeof(reason));
		rec_decision(e, inc, r, NULL, o, reason, NULL, "firing_for");
		after_decision(e, inc, r, o, reason);
		engine_count_decision(e, r, o);
		log_info("decision", "rule", r->name, "incident", inc->id, "outcome",
			 outcome_name(o), "reason", reason, "trigger", "firing_for elapsed", NULL);
	}
}

void engine_set_paused(struct engine *e, bool paused, const char *via)
{
	pthread_mutex_lock(&e->lock);
	if (store_set_paused(e->store, paused, via) < 0)
		log_error("journal: cannot record pause/resume", NULL);
	metric_set(e->paused_gauge, paused);
	pthread_mutex_unlock(&e->lock);
	log_warn(paused ? "paused: automatic actions are off" : "resumed: automatic actions are on",
		 NULL);
}

bool engine_paused(struct engine *e)
{
	pthread_mutex_lock(&e->lock);
	bool p = paused_now(e);
	pthread_mutex_unlock(&e->lock);
	return p;
}

static void approve_locked(struct engine *e, struct incident *inc, const char *by,
			   const char *via, const char *trigger)
{
	struct incident_extra *x = incident_extra(inc);
	if (!x) {
		log_error("engine: out of memory approving", "incident", inc->id, NULL);
		return;
	}
	rec_use(e, "approve", inc, by, via);
	free(x->approved_by);
	x->approved_by = strdup(by);
	x->approved_at = timestamp_now();
	timers_cancel(e, inc, STORE_TIMER_APPROVE);
	inc->state = INC_ACTING;
	inc->has_acted = true;
	x->last_acted = x->approved_at;
	store_note_rollback(e->store, inc->id, ts_ms(x->last_acted));
	/* It reserved its target when it began to wait: now it acts on it. */
	struct target_busy busy;
	if (incident_target(inc) &&
	    targets_claim(e, inc, true, ts_ms(x->approved_at), &busy) == TARGET_CLAIMED)
		blast_note(&e->blast, target_hash(incident_target(inc)), ts_ms(x->approved_at));
	char reason[160];
	snprintf(reason, sizeof(reason), "approved by %s: running the actions", by);
	rec_decision(e, inc, engine_find_rule(e, inc->rule_name), NULL, OUTCOME_ACTING, reason, NULL,
			 trigger);
	rec_step(e, inc, NOTIFY_STEP_APPROVED, reason);
	rec_notify(e, inc, NOTIFY_UPDATE, reason, NULL);
	log_info("approved", "incident", inc->id, "by", by, "via", via, NULL);
	runner_enqueue_run(e, inc);
}

void engine_timer_fired(struct engine *e, struct incident *inc, enum store_timer_kind kind)
{
	switch (kind) {
	case STORE_TIMER_FIRING_FOR:
		firing_for_elapsed(e, inc);
		break;
	case STORE_TIMER_APPROVE:
		if (inc->state == INC_AWAITING_APPROVAL)
			approve_locked(e, inc, "approve_timeout", "timer", "approve_timeout");
		break;
	case STORE_TIMER_VERIFY:
		if (!verify_run_deadline(e, inc))
			verify_elapsed(e, inc);
		break;
	case STORE_TIMER_VERIFY_SAMPLE:
		verify_run_sample(e, inc);
		break;
	case STORE_TIMER_KINDS:
		break;
	}
	engine_open_count(e);
}

static void fill_prev(const char *who, struct timestamp at, struct engine_use *prev)
{
	if (!prev)
		return;
	snprintf(prev->by, sizeof(prev->by), "%s", who ? who : "");
	prev->at = at;
}

int engine_approve(struct engine *e, const char *id, int episode, const char *by,
		   const char *via, struct engine_use *prev)
{
	int rc;
	pthread_mutex_lock(&e->lock);
	struct incident *inc = incident_find(e, id);
	if (!inc) {
		rc = ENGINE_USE_NOT_FOUND;
	} else if (episode > 0 && episode != inc->episode) {
		if (prev)
			prev->episode = inc->episode;
		rc = ENGINE_USE_WRONG_EPISODE;
	} else if (inc->state == INC_AWAITING_APPROVAL) {
		approve_locked(e, inc, by, via, "approved");
		rc = ENGINE_USE_DONE;
	} else if (incident_approved_by(inc)) {
		fill_prev(inc->x->approved_by, inc->x->approved_at, prev);
		rc = ENGINE_USE_ALREADY;
	} else {
		rc = ENGINE_USE_NOT_APPLICABLE;
	}
	pthread_mutex_unlock(&e->lock);
	return rc;
}

int engine_ack(struct engine *e, const char *id, int episode, const char *by, const char *via,
	       struct engine_use *prev)
{
	int rc;
	pthread_mutex_lock(&e->lock);
	struct incident *inc = incident_find(e, id);
	if (!inc) {
		rc = ENGINE_USE_NOT_FOUND;
	} else if (episode > 0 && episode != inc->episode) {
		if (prev)
			prev->episode = inc->episode;
		rc = ENGINE_USE_WRONG_EPISODE;
	} else if (incident_acknowledged_by(inc)) {
		fill_prev(inc->x->acknowledged_by, inc->x->acknowledged_at, prev);
		rc = ENGINE_USE_ALREADY;
	} else if (inc->state == INC_RESOLVED) {
		rc = ENGINE_USE_NOT_APPLICABLE;
	} else if (!incident_extra(inc)) {
		log_error("engine: out of memory acknowledging", "incident", inc->id, NULL);
		rc = ENGINE_USE_NOT_APPLICABLE;
	} else {
		rec_use(e, "ack", inc, by, via);
		inc->x->acknowledged_by = strdup(by);
		inc->x->acknowledged_at = timestamp_now();
		char reason[160];
		snprintf(reason, sizeof(reason), "acknowledged by %s", by);
		rec_step(e, inc, NOTIFY_STEP_ACKNOWLEDGED, reason);
		rec_notify(e, inc, NOTIFY_ACK, reason, NULL);
		log_info("acknowledged", "incident", inc->id, "by", by, "via", via, NULL);
		rc = ENGINE_USE_DONE;
	}
	pthread_mutex_unlock(&e->lock);
	return rc;
}

int engine_reload(struct engine *e, const struct config *cfg, const struct ruleset *rules)
{
	struct metric_child **children =
		calloc((rules->n_rules + 1) * OUTCOME_COUNT, sizeof(*children));
	if (!children)
		return -1;
	pthread_mutex_lock(&e->lock);
	/* the hourly cap goes on: the store keeps the last hour's rollbacks */
	free(e->decision_children);
	e->decision_children = children;
	e->cfg = cfg;
	e->rules = rules;
	pthread_mutex_unlock(&e->lock);
	return 0;
}

int engine_interrupt(struct engine *e)
{
	static const char msg[] = "rollbackd stopped before this action finished "
				  "(shutdown grace period over); it is not run again";
	int n = 0;
	pthread_mutex_lock(&e->lock);
	struct incident *inc;
	LIST_FOR_EACH (inc, link, &e->incidents) {
		for (size_t i = 0; i < incident_n_actions(inc); i++) {
			struct action_record *a = &inc->x->actions[i];
			if (!a->begun || a->done)
				continue;
			a->done = true;
			a->result = "interrupted";
			a->finished = timestamp_now();
			free(a->output);
			a->output = strdup(msg);
			inc->state = INC_UNKNOWN;
			rec_action_finished(e, inc, i, a, "unknown");
			log_warn("action interrupted by shutdown", "incident", inc->id, NULL);
			n++;
		}
	}
	pthread_mutex_unlock(&e->lock);
	return n;
}

void engine_set_notify(struct engine *e, struct notify *n)
{
	pthread_mutex_lock(&e->lock);
	e->notify = n;
	pthread_mutex_unlock(&e->lock);
}

struct changes *engine_changes(struct engine *e)
{
	return e->changes;
}
