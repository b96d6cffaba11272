/* The engine's pure policy (src/policy.c): every branch of the decision in
 * SPEC §7's order, the cooldown edge, the hourly cap, firing_for
 * deadlines. No engine, no I/O. (The hourly window itself is the store's:
 * tests/unit/test_store.c.) */
#include <criterion/criterion.h>
#include <string.h>

#include "policy.h"

static struct timestamp ts(const char *s)
{
	struct timestamp t;
	cr_assert_eq(timestamp_parse(s, strlen(s), &t), 0, "%s", s);
	return t;
}

/* An auto rule that would act: nothing holds it. */
static struct policy_input acting_input(void)
{
	return (struct policy_input){
	    .mode = RULE_MODE_AUTO,
	    .paused = false,
	    .dry_run = false,
	    .cooldown_ms = 0,
	    .has_acted = false,
	    .acted_in_window = 0,
	    .max_per_hour = 3,
	    .n_actions = 2,
	};
}

#define NOW "2026-11-21T10:00:00Z"

static enum outcome decide(const struct policy_input *in, enum policy_state *st, char *reason)
{
	return policy_decide(in, ts(NOW), st, reason, 256);
}

Test(policy, acts_when_nothing_holds)
{
	struct policy_input in = acting_input();
	enum policy_state st;
	char reason[256];
	cr_assert_eq(decide(&in, &st, reason), OUTCOME_ACTING);
	cr_assert_eq(st, POLICY_STATE_ACTING);
	cr_assert_str_eq(reason, "running 2 action(s)");
}

Test(policy, notify_mode_wins_over_everything)
{
	struct policy_input in = acting_input();
	in.mode = RULE_MODE_NOTIFY;
	in.paused = true;
	in.dry_run = true;
	in.acted_in_window = 99;
	enum policy_state st;
	char reason[256];
	cr_assert_eq(decide(&in, &st, reason), OUTCOME_NOTIFY_ONLY);
	cr_assert_eq(st, POLICY_STATE_HELD);
	cr_assert_str_eq(reason, "mode notify: rollbackd never acts on this rule");
}

Test(policy, paused_holds_before_cooldown_and_cap)
{
	struct policy_input in = acting_input();
	in.paused = true;
	in.has_acted = true;
	in.last_acted = ts(NOW);
	in.cooldown_ms = 60000;
	in.acted_in_window = 3;
	enum policy_state st;
	char reason[256];
	cr_assert_eq(decide(&in, &st, reason), OUTCOME_HELD);
	cr_assert_eq(st, POLICY_STATE_HELD);
	cr_assert_str_eq(reason, "paused: automatic actions are switched off");
}

Test(policy, cooldown_holds_until_it_ends)
{
	struct policy_input in = acting_input();
	in.has_acted = true;
	in.last_acted = ts("2026-11-21T09:55:00Z");
	in.cooldown_ms = 10 * 60 * 1000;
	enum policy_state st;
	char reason[256];
	cr_assert_eq(decide(&in, &st, reason), OUTCOME_HELD);
	cr_assert_eq(st, POLICY_STATE_HELD);
	cr_assert_str_eq(reason, "in cooldown until 2026-11-21T10:05:00Z");

	/* exactly cooldown_ms later the incident may act again */
	in.last_acted = ts("2026-11-21T09:50:00Z");
	cr_assert_eq(decide(&in, &st, reason), OUTCOME_ACTING);
	cr_assert_not(policy_in_cooldown(in.cooldown_ms, true, in.last_acted, ts(NOW)));
	cr_assert(policy_in_cooldown(in.cooldown_ms, true, in.last_acted,
				     ts("2026-11-21T09:59:59.999Z")));
	/* never acted: no cooldown, whatever last_acted says */
	cr_assert_not(policy_in_cooldown(in.cooldown_ms, false, ts(NOW), ts(NOW)));
	cr_assert_not(policy_in_cooldown(0, true, ts(NOW), ts(NOW)));
}

Test(policy, hourly_cap_holds_at_the_limit)
{
	struct policy_input in = acting_input();
	in.acted_in_window = 3;
	enum policy_state st;
	char reason[256];
	cr_assert_eq(decide(&in, &st, reason), OUTCOME_HELD);
	cr_assert_str_eq(reason, "limits.max_rollbacks_per_hour (3) reached");
	in.acted_in_window = 2;
	cr_assert_eq(decide(&in, &st, reason), OUTCOME_ACTING);
}

Test(policy, dry_run_after_the_holds_and_before_approve)
{
	struct policy_input in = acting_input();
	in.dry_run = true;
	in.mode = RULE_MODE_APPROVE;
	enum policy_state st;
	char reason[256];
	cr_assert_eq(decide(&in, &st, reason), OUTCOME_DRY_RUN);
	cr_assert_eq(st, POLICY_STATE_DRY_RUN);
	cr_assert_str_eq(reason, "dry-run: would run 2 action(s)");
	in.acted_in_window = 3; /* the cap is checked first */
	cr_assert_eq(decide(&in, &st, reason), OUTCOME_HELD);
}

Test(policy, approve_mode_waits)
{
	struct policy_input in = acting_input();
	in.mode = RULE_MODE_APPROVE;
	enum policy_state st;
	char reason[256];
	cr_assert_eq(decide(&in, &st, reason), OUTCOME_AWAITING_APPROVAL);
	cr_assert_eq(st, POLICY_STATE_AWAITING_APPROVAL);
	cr_assert_str_eq(reason, "mode approve: waiting for an engineer to approve");
}

Test(policy, reason_is_cut_to_its_buffer)
{
	struct policy_input in = acting_input();
	enum policy_state st;
	char reason[8];
	cr_assert_eq(policy_decide(&in, ts(NOW), &st, reason, sizeof(reason)), OUTCOME_ACTING);
	cr_assert_str_eq(reason, "running");
}

Test(policy, dry_run_inherits_the_global_setting)
{
	cr_assert(policy_dry_run(1, false));
	cr_assert_not(policy_dry_run(0, true));
	cr_assert(policy_dry_run(-1, true));
	cr_assert_not(policy_dry_run(-1, false));
}

Test(policy, firing_for_waits_until_its_deadline)
{
	struct timestamp at = {0};
	struct timestamp start = ts("2026-11-21T09:59:59.500Z");
	cr_assert(policy_firing_for_wait(1700, start, ts(NOW), &at));
	char s[TIMESTAMP_STRLEN];
	timestamp_format(at, s, sizeof(s));
	cr_assert_eq(at.sec, ts("2026-11-21T10:00:01Z").sec);
	cr_assert_eq(at.nsec, 200000000, "%s", s);
	/* fired long enough, or no firing_for: decide now */
	cr_assert_not(policy_firing_for_wait(500, start, ts(NOW), &at));
	cr_assert_not(policy_firing_for_wait(0, start, ts(NOW), &at));
}

/* ---- unusable alerts --------------------------------------------------- */

static bool invalid_alert(struct alert *a, size_t index, char *reason)
{
	return policy_alert_invalid(a, index, ts(NOW), reason, 256);
}

Test(policy, usable_alert_is_not_invalid)
{
	struct label l[] = {{"service", "checkout", 8}};
	struct alert a = {.status = ALERT_FIRING,
			  .labels = {l, 1},
			  .annotations = {NULL, 0},
			  .starts_at = ts("2026-11-21T09:58:00Z"),
			  .ends_at = ts("0001-01-01T00:00:00Z"),
			  .generator_url = "",
			  .fingerprint = "0123456789abcdef"};
	char reason[256] = "";
	cr_assert(!invalid_alert(&a, 0, reason));
	a.starts_at = ts("2026-11-21T11:00:00Z"); /* exactly 1h ahead: clock skew */
	cr_assert(!invalid_alert(&a, 0, reason));
	cr_assert_str_eq(reason, "");
}

Test(policy, nul_in_a_value_is_invalid)
{
	struct label l[] = {{"pod", "pod\0evil", 8}, {"service", "checkout", 8}};
	struct label an[] = {{"summary", "a\0b", 3}};
	struct alert a = {.status = ALERT_FIRING,
			  .labels = {l, 2},
			  .annotations = {NULL, 0},
			  .starts_at = ts("2026-11-21T09:58:00Z"),
			  .ends_at = ts("0001-01-01T00:00:00Z"),
			  .generator_url = "",
			  .fingerprint = "0123456789abcdef"};
	char reason[256];
	cr_assert(invalid_alert(&a, 3, reason));
	cr_assert_str_eq(reason, "alerts[3] (fingerprint 0123456789abcdef): labels.pod contains "
				 "a NUL byte");
	a.status = ALERT_RESOLVED; /* a resolve with it is no better */
	cr_assert(invalid_alert(&a, 3, reason));
	a.labels.items = l + 1;
	a.labels.n = 1;
	a.annotations = (struct label_set){an, 1};
	cr_assert(invalid_alert(&a, 0, reason));
	cr_assert_str_eq(reason, "alerts[0] (fingerprint 0123456789abcdef): annotations.summary "
				 "contains a NUL byte");
}

Test(policy, unusable_starts_at_is_invalid_when_firing)
{
	struct label l[] = {{"service", "checkout", 8}};
	struct alert a = {.status = ALERT_FIRING,
			  .labels = {l, 1},
			  .annotations = {NULL, 0},
			  .starts_at = ts("0001-01-01T00:00:00Z"),
			  .ends_at = ts("0001-01-01T00:00:00Z"),
			  .generator_url = "",
			  .fingerprint = "fp1"};
	char reason[256];
	cr_assert(invalid_alert(&a, 1, reason));
	cr_assert_str_eq(reason, "alerts[1] (fingerprint fp1): startsAt is Go's zero time "
				 "0001-01-01T00:00:00Z");
	a.starts_at = ts("2026-11-21T11:00:00.001Z");
	cr_assert(invalid_alert(&a, 2, reason));
	cr_assert_str_eq(reason, "alerts[2] (fingerprint fp1): startsAt 2026-11-21T11:00:00.001Z "
				 "is more than 1h in the future");
	a.status = ALERT_RESOLVED; /* a resolve never acts: it goes on */
	cr_assert(!invalid_alert(&a, 2, reason));
	a.starts_at = ts("0001-01-01T00:00:00Z");
	cr_assert(!invalid_alert(&a, 2, reason));
}
