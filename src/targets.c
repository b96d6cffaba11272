/*
 * targets: one remediation per target (SPEC §7), on the store's claims.
 *
 * Acting on a target, or reserving it while an incident awaits approval
 * or runs dry, is a claim in the store (store_claim_target): at most one
 * incident holds a target, whatever rule it came from, and — once the
 * store is shared (SPEC §12) — whatever replica decided it. Every grant to
 * a new holder carries a new epoch, the fencing token. After the holder's
 * actions finish its claim is cut to target_cooldown, during which no
 * other incident acts on the target; a reservation that never acted is
 * released when its episode resolves.
 *
 * While acting or reserved a claim lasts TARGET_HOLD_MS: the journal store
 * keeps it until it is cut or released; a shared store will renew it while
 * actions run (issue 14).
 *
 * Lock rules: every function runs under e->lock (engine_internal.h) and
 * calls the store, which takes only its own lock. Never does I/O itself.
 */
#include "engine_internal.h"

#include <stdio.h>
#include <string.h>

#include "rollbackd/metrics.h"

#define TARGET_HOLD_MS (24LL * 3600 * 1000)

enum target_claim targets_claim(struct engine *e, struct incident *inc, bool acting, int64_t now_ms,
				struct target_busy *busy)
{
	struct store_target_claim c;
	if (!incident_target(inc) || !incident_extra(inc))
		return TARGET_OOM;
	switch (store_claim_target(e->store, incident_target(inc), inc->id, now_ms, TARGET_HOLD_MS,
				   &c)) {
	case 0:
		inc->x->fence = c.epoch;
		inc->x->hold = acting ? HOLD_ACTING : HOLD_RESERVED;
		targets_gauge(e, now_ms);
		return TARGET_CLAIMED;
	case 1:
		snprintf(busy->holder, sizeof(busy->holder), "%s", c.holder);
		busy->until_ms = c.held_until_ms;
		return TARGET_BUSY;
	default:
		return TARGET_OOM;
	}
}

void targets_busy_reason(struct engine *e, const char *target, const struct target_busy *b,
			 char *out, size_t outsz)
{
	const struct incident *h = incident_find(e, b->holder);
	if (h && h->state == INC_ACTING) {
		snprintf(out, outsz, "target %s is being rolled back by incident %s", target,
			 b->holder);
	} else if (h && (h->state == INC_AWAITING_APPROVAL || h->state == INC_DRY_RUN ||
			 h->state == INC_PENDING)) {
		snprintf(out, outsz, "target %s is held by incident %s, which has not acted yet",
			 target, b->holder);
	} else {
		char until[TIMESTAMP_STRLEN];
		struct timestamp u = {b->until_ms / 1000,
				      (int32_t)((b->until_ms % 1000) * 1000000)};
		timestamp_format(u, until, sizeof(until));
		snprintf(out, outsz, "target %s is in target_cooldown after incident %s until %s",
			 target, b->holder, until);
	}
}

static bool holds(struct engine *e, const struct incident *inc)
{
	struct store_target_claim c;
	return incident_target(inc) && inc->x && inc->x->fence &&
	       store_target_claim(e->store, incident_target(inc), &c) == 0 &&
	       c.epoch == inc->x->fence && strcmp(c.holder, inc->id) == 0;
}

void targets_finish(struct engine *e, struct incident *inc, int64_t now_ms)
{
	if (!holds(e, inc))
		return;
	int64_t cool = e->cfg->limits.target_cooldown_ms;
	struct store_target_claim c;
	if (cool > 0)
		(void)store_claim_target(e->store, incident_target(inc), inc->id, now_ms, cool, &c);
	else
		(void)store_release_target(e->store, incident_target(inc), inc->x->fence);
	inc->x->hold = cool > 0 ? HOLD_COOLING : HOLD_NONE; /* holds(): x exists */
	targets_gauge(e, now_ms);
}

void targets_release(struct engine *e, struct incident *inc)
{
	if (incident_hold(inc) != HOLD_RESERVED || !holds(e, inc))
		return;
	(void)store_release_target(e->store, incident_target(inc), inc->x->fence);
	inc->x->fence = 0;
	inc->x->hold = HOLD_NONE;
}

void targets_gauge(struct engine *e, int64_t now_ms)
{
	if (e->targets_gauge_ms && now_ms >= e->targets_gauge_ms &&
	    now_ms - e->targets_gauge_ms < 100)
		return;
	e->targets_gauge_ms = now_ms;
	metric_set(e->targets_locked, (int64_t)store_targets_held(e->store, now_ms));
}

bool targets_holding(struct engine *e, const struct incident *inc, int64_t now_ms)
{
	struct store_target_claim c;
	return holds(e, inc) && store_target_claim(e->store, incident_target(inc), &c) == 0 &&
	       c.held_until_ms > now_ms;
}
