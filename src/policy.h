/*
 * policy: the engine's pure decisions (SPEC §7): act, hold (paused,
 * cooldown, hourly cap), dry-run, ask for approval, only notify;
 * firing_for deadlines.
 *
 * Everything here is a function over plain values and caller-owned
 * structs: no I/O (not even stat), no clock, no locks, no allocation.
 * The caller gathers the inputs (under
 * its own lock) and applies the verdict. Private to the engine; unit
 * tested in tests/unit/test_policy.c.
 */
#ifndef ROLLBACKD_POLICY_H
#define ROLLBACKD_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollbackd/engine.h"
#include "rollbackd/rules.h"
#include "rollbackd/timestamp.h"

#define POLICY_HOUR_MS (3600 * 1000LL)

/* What a decision may set an incident's state to (a subset of the
 * engine's incident states, named the same). */
enum policy_state {
	POLICY_STATE_ACTING,
	POLICY_STATE_DRY_RUN,
	POLICY_STATE_HELD,
	POLICY_STATE_AWAITING_APPROVAL,
};

struct policy_input {
	enum rule_mode mode;
	bool paused;		     /* API pause or PAUSED file: gathered by the caller */
	bool dry_run;		     /* the rule's, or the global one (policy_dry_run) */
	int64_t cooldown_ms;	     /* 0: none */
	bool has_acted;		     /* the incident acted before ... */
	struct timestamp last_acted; /* ... at this time */
	size_t acted_in_window;	     /* rollbacks in the last hour (store_count_rollbacks) */
	int max_per_hour;	     /* limits.max_rollbacks_per_hour */
	size_t n_actions;	     /* the rule's actions (for the reason) */
};

/* Decide one episode at now. Writes the state the incident takes into
 * *state and the reason (NUL-terminated, cut to rsz) into reason. The
 * order is SPEC §7's: notify-only, paused, cooldown, hourly cap, dry-run,
 * approve, act. Acting does not record the rollback: the caller does that
 * (store_note_rollback) when it applies the verdict. */
enum outcome policy_decide(const struct policy_input *in, struct timestamp now,
			   enum policy_state *state, char *reason, size_t rsz);

/* A rule's dry_run (-1 inherit, 0 off, 1 on) against the global one. */
bool policy_dry_run(int rule_dry_run, bool global_dry_run);

/* Whether the incident is still in cooldown at now. */
bool policy_in_cooldown(int64_t cooldown_ms, bool has_acted, struct timestamp last_acted,
			struct timestamp now);

/* firing_for: when an alert that started at starts_at may be decided.
 * Returns true (and *at) when it has not fired long enough at now. */
bool policy_firing_for_wait(int64_t firing_for_ms, struct timestamp starts_at, struct timestamp now,
			    struct timestamp *at);

/* How far ahead of now an alert's startsAt may be (clock skew between
 * Prometheus and us); further is an unusable alert. */
#define POLICY_MAX_FUTURE_MS POLICY_HOUR_MS

/* An alert well-formed but unusable: a NUL inside a label or annotation
 * value (what runs would see the value cut there), or, firing, a startsAt
 * of Go's zero time or more than POLICY_MAX_FUTURE_MS after now. Returns
 * true with the reason, naming the alert (index and fingerprint) and the
 * field; decided `invalid`, while the notification's other alerts go on. */
bool policy_alert_invalid(const struct alert *a, size_t index, struct timestamp now, char *reason,
			  size_t rsz);

static inline int64_t policy_ms(struct timestamp t)
{
	return t.sec * 1000 + t.nsec / 1000000;
}

#endif
