/*
 * targets: one remediation per target (SPEC §7), for the journal store.
 *
 * A map from target name to its hold: the incident acting on it, the
 * incident reserving it (awaiting approval, dry-run), or target_cooldown
 * after an incident's actions finished. At most one incident acts on a
 * target at a time, and none other for target_cooldown after it; every
 * claim hands out a new epoch (the fencing token that a shared store gives
 * its holders). Rebuilt on replay from the decision, action_finished and
 * resolved records, which name the target.
 *
 * Lock rules: every function runs under e->lock (engine_internal.h). Never
 * does I/O. Memory: one hold per target in force; expired cooldowns are
 * dropped when met and swept when the map grows.
 */
#include "engine_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollbackd/metrics.h"

static struct target_hold **slot_of(struct engine *e, const char *name, uint64_t hash)
{
	struct target_hold **p = &e->targets[hash & (e->targets_cap - 1)];
	while (*p && ((*p)->hash != hash || strcmp((*p)->name, name) != 0))
		p = &(*p)->next;
	return p;
}

static void hold_free(struct target_hold *h)
{
	free(h->name);
	free(h);
}

static bool expired(const struct target_hold *h, int64_t now_ms)
{
	return h->kind == HOLD_COOLING && h->until_ms <= now_ms;
}

/* Drop every expired cooldown. */
static void sweep(struct engine *e, int64_t now_ms)
{
	for (size_t i = 0; i < e->targets_cap; i++) {
		struct target_hold **p = &e->targets[i];
		while (*p) {
			if (expired(*p, now_ms)) {
				struct target_hold *dead = *p;
				*p = dead->next;
				hold_free(dead);
				e->n_targets--;
			} else {
				p = &(*p)->next;
			}
		}
	}
}

static int grow(struct engine *e, int64_t now_ms)
{
	if (e->targets && e->n_targets < e->targets_cap)
		return 0;
	if (e->targets) {
		sweep(e, now_ms);
		if (e->n_targets < e->targets_cap / 2)
			return 0;
	}
	size_t cap = e->targets_cap ? e->targets_cap * 2 : 64;
	struct target_hold **t = calloc(cap, sizeof(*t));
	if (!t)
		return e->targets ? 0 : -1; /* a longer chain is still correct */
	for (size_t i = 0; i < e->targets_cap; i++) {
		struct target_hold *h = e->targets[i], *next;
		for (; h; h = next) {
			next = h->next;
			h->next = t[h->hash & (cap - 1)];
			t[h->hash & (cap - 1)] = h;
		}
	}
	free(e->targets);
	e->targets = t;
	e->targets_cap = cap;
	return 0;
}

enum target_claim targets_claim(struct engine *e, struct incident *inc, bool acting,
				int64_t now_ms, const struct target_hold **busy)
{
	if (!inc->target)
		return TARGET_OOM;
	if (grow(e, now_ms) < 0)
		return TARGET_OOM;
	uint64_t hash = target_hash(inc->target);
	struct target_hold **p = slot_of(e, inc->target, hash), *h = *p;
	if (h && expired(h, now_ms)) { /* its cooldown is over: the target is free */
		*p = h->next;
		hold_free(h);
		e->n_targets--;
		h = NULL;
	}
	if (h && strcmp(h->holder, inc->id) != 0) {
		*busy = h;
		return TARGET_BUSY;
	}
	if (!h) {
		h = calloc(1, sizeof(*h));
		if (!h || !(h->name = strdup(inc->target))) {
			free(h);
			return TARGET_OOM;
		}
		h->hash = hash;
		memcpy(h->holder, inc->id, sizeof(h->holder));
		h->next = *p;
		*p = h;
		e->n_targets++;
	}
	h->kind = acting ? HOLD_ACTING : HOLD_RESERVED;
	h->until_ms = 0;
	h->epoch = ++e->target_epoch;
	inc->fence = h->epoch;
	return TARGET_CLAIMED;
}

void targets_busy_reason(const struct target_hold *h, char *out, size_t outsz)
{
	char until[TIMESTAMP_STRLEN];
	struct timestamp u = {h->until_ms / 1000, (int32_t)((h->until_ms % 1000) * 1000000)};
	switch (h->kind) {
	case HOLD_ACTING:
		snprintf(out, outsz, "target %s is being rolled back by incident %s", h->name,
			 h->holder);
		break;
	case HOLD_RESERVED:
		snprintf(out, outsz, "target %s is held by incident %s, which has not acted yet",
			 h->name, h->holder);
		break;
	case HOLD_COOLING:
		timestamp_format(u, until, sizeof(until));
		snprintf(out, outsz, "target %s is in target_cooldown after incident %s until %s",
			 h->name, h->holder, until);
		break;
	}
}

static struct target_hold **held_by(struct engine *e, const struct incident *inc)
{
	if (!inc->target || !e->targets)
		return NULL;
	struct target_hold **p = slot_of(e, inc->target, target_hash(inc->target));
	return *p && strcmp((*p)->holder, inc->id) == 0 ? p : NULL;
}

static void drop(struct engine *e, struct target_hold **p)
{
	struct target_hold *h = *p;
	*p = h->next;
	hold_free(h);
	e->n_targets--;
}

void targets_finish(struct engine *e, const struct incident *inc, int64_t now_ms)
{
	struct target_hold **p = held_by(e, inc);
	if (!p)
		return;
	if (e->cfg->limits.target_cooldown_ms <= 0) {
		drop(e, p);
		return;
	}
	(*p)->kind = HOLD_COOLING;
	(*p)->until_ms = now_ms + e->cfg->limits.target_cooldown_ms;
}

void targets_release(struct engine *e, const struct incident *inc)
{
	struct target_hold **p = held_by(e, inc);
	if (p && (*p)->kind == HOLD_RESERVED)
		drop(e, p);
}

size_t targets_in_force(struct engine *e, int64_t now_ms)
{
	for (int k = 0; k < 8 && e->targets; k++) {
		size_t i = e->targets_sweep++ & (e->targets_cap - 1);
		struct target_hold **p = &e->targets[i];
		while (*p) {
			if (expired(*p, now_ms))
				drop(e, p);
			else
				p = &(*p)->next;
		}
	}
	return e->n_targets;
}

void targets_free(struct engine *e)
{
	for (size_t i = 0; i < e->targets_cap; i++) {
		struct target_hold *h = e->targets[i], *next;
		for (; h; h = next) {
			next = h->next;
			hold_free(h);
		}
	}
	free(e->targets);
	e->targets = NULL;
	e->targets_cap = e->n_targets = 0;
}
