/*
 * policy: the pure part of the engine's decisions (see policy.h).
 *
 * Must never: do I/O, read the clock, take a lock, or touch an incident.
 * The engine gathers the inputs under its lock and applies the verdict.
 */
#include "policy.h"

#include <stdio.h>
#include <string.h>

bool policy_dry_run(int rule_dry_run, bool global_dry_run)
{
	return rule_dry_run == 1 || (rule_dry_run == -1 && global_dry_run);
}

bool policy_in_cooldown(int64_t cooldown_ms, bool has_acted, struct timestamp last_acted,
			struct timestamp now)
{
	return cooldown_ms > 0 && has_acted && policy_ms(now) - policy_ms(last_acted) < cooldown_ms;
}

enum outcome policy_decide(const struct policy_input *in, struct timestamp now,
			   enum policy_state *state, char *reason, size_t rsz)
{
	if (in->mode == RULE_MODE_NOTIFY) {
		*state = POLICY_STATE_HELD;
		snprintf(reason, rsz, "mode notify: rollbackd never acts on this rule");
		return OUTCOME_NOTIFY_ONLY;
	}
	if (in->paused) {
		*state = POLICY_STATE_HELD;
		snprintf(reason, rsz, "paused: automatic actions are switched off");
		return OUTCOME_HELD;
	}
	if (policy_in_cooldown(in->cooldown_ms, in->has_acted, in->last_acted, now)) {
		char until[TIMESTAMP_STRLEN];
		struct timestamp u = in->last_acted;
		u.sec += in->cooldown_ms / 1000;
		timestamp_format(u, until, sizeof(until));
		*state = POLICY_STATE_HELD;
		snprintf(reason, rsz, "in cooldown until %s", until);
		return OUTCOME_HELD;
	}
	if (in->acted_in_window >= (size_t)in->max_per_hour) {
		*state = POLICY_STATE_HELD;
		snprintf(reason, rsz, "limits.max_rollbacks_per_hour (%d) reached",
			 in->max_per_hour);
		return OUTCOME_HELD;
	}
	if (in->dry_run) {
		*state = POLICY_STATE_DRY_RUN;
		snprintf(reason, rsz, "dry-run: would run %zu action(s)", in->n_actions);
		return OUTCOME_DRY_RUN;
	}
	if (in->mode == RULE_MODE_APPROVE) {
		*state = POLICY_STATE_AWAITING_APPROVAL;
		snprintf(reason, rsz, "mode approve: waiting for an engineer to approve");
		return OUTCOME_AWAITING_APPROVAL;
	}
	*state = POLICY_STATE_ACTING;
	snprintf(reason, rsz, "running %zu action(s)", in->n_actions);
	return OUTCOME_ACTING;
}

bool policy_firing_for_wait(int64_t firing_for_ms, struct timestamp starts_at, struct timestamp now,
			    struct timestamp *at)
{
	if (firing_for_ms <= 0 || policy_ms(now) - policy_ms(starts_at) >= firing_for_ms)
		return false;
	*at = starts_at;
	at->sec += firing_for_ms / 1000;
	at->nsec += (int32_t)((firing_for_ms % 1000) * 1000000);
	if (at->nsec >= 1000000000) {
		at->sec++;
		at->nsec -= 1000000000;
	}
	return true;
}

static const struct label *label_with_nul(const struct label_set *ls)
{
	for (size_t i = 0; i < ls->n; i++)
		if (memchr(ls->items[i].value, '\0', ls->items[i].value_len))
			return &ls->items[i];
	return NULL;
}

bool policy_alert_invalid(const struct alert *a, size_t index, struct timestamp now, char *reason,
			  size_t rsz)
{
	char at[TIMESTAMP_STRLEN];
	const struct label *l = label_with_nul(&a->labels);
	const char *set = "labels";
	if (!l) {
		l = label_with_nul(&a->annotations);
		set = "annotations";
	}
	if (l) {
		snprintf(reason, rsz, "alerts[%zu] (fingerprint %s): %s.%s contains a NUL byte",
			 index, a->fingerprint, set, l->name);
		return true;
	}
	if (a->status != ALERT_FIRING)
		return false;
	if (timestamp_is_zero(a->starts_at)) {
		snprintf(reason, rsz,
			 "alerts[%zu] (fingerprint %s): startsAt is Go's zero time "
			 "0001-01-01T00:00:00Z",
			 index, a->fingerprint);
		return true;
	}
	if (policy_ms(a->starts_at) - policy_ms(now) > POLICY_MAX_FUTURE_MS) {
		timestamp_format(a->starts_at, at, sizeof(at));
		snprintf(reason, rsz,
			 "alerts[%zu] (fingerprint %s): startsAt %s is more than 1h in the future",
			 index, a->fingerprint, at);
		return true;
	}
	return false;
}
