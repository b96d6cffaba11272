/* Decisions of the engine without an event base: nothing runs, so these
 * tests check the decision logic alone (episodes, repeats, holds). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollbackd/engine.h"
#include "rollbackd/metrics.h"

static struct config cfg;
static struct ruleset rules;
static struct engine *eng;

static void setup(void)
{
	struct error err = {{0}};
	char path[1024];
	snprintf(path, sizeof(path), "%s/engine/rules.json", getenv("ROLLBACKD_TEST_DATA"));
	cr_assert_eq(config_init(&cfg), 0);
	cfg.dry_run = false;
	cfg.limits.max_rollbacks_per_hour = 2;
	free(cfg.state_dir);
	cfg.state_dir = strdup("/nonexistent-rollbackd-state");
	cr_assert_eq(rules_load(path, &rules, &err), 0, "%s", err.msg);
	struct engine_options eo = {.cfg = &cfg, .base = NULL, .plan_only = false};
	eng = engine_new(&eo, &rules);
	cr_assert_not_null(eng);
}

static void teardown(void)
{
	engine_free(eng);
	ruleset_release(&rules);
	config_release(&cfg);
	metrics_free_all();
}

TestSuite(engine, .init = setup, .fini = teardown);

/* Build a one-alert webhook and return the decisions array. */
static json_t *send(const char *alertname, const char *service, const char *value,
		    const char *status, const char *starts, const char *now)
{
	char body[2048];
	snprintf(body, sizeof(body),
		 "{\"version\":\"4\",\"groupKey\":\"g\",\"status\":\"%s\",\"receiver\":\"r\","
		 "\"alerts\":[{\"status\":\"%s\",\"labels\":{\"alertname\":\"%s\",\"service\":\"%s\","
		 "\"pod\":\"p-%s\"},\"annotations\":{\"value\":\"%s\"},\"startsAt\":\"%s\"}]}",
		 status, status, alertname, service, value, value, starts);
	struct webhook wh;
	struct error err = {{0}};
	struct alert_limits lim = ALERT_LIMITS_DEFAULT;
	cr_assert_eq(alert_parse_webhook(body, strlen(body), &lim, &wh, &err), ALERT_PARSE_OK,
		     "%s", err.msg);
	struct timestamp t;
	cr_assert_eq(timestamp_parse(now, strlen(now), &t), 0);
	struct buf out = BUF_INIT;
	cr_assert_eq(engine_process(eng, &wh, t, &out), 0);
	webhook_release(&wh);
	json_error_t je;
	json_t *arr = json_loads(out.data, 0, &je);
	cr_assert_not_null(arr, "decisions are not JSON: %s", out.data);
	buf_release(&out);
	return arr;
}

static const char *field(json_t *arr, size_t i, const char *key)
{
	return json_string_value(json_object_get(json_array_get(arr, i), key));
}

#define T0 "2026-11-21T10:00:00Z"

Test(engine, first_firing_acts_then_repeats)
{
	json_t *d = send("RollbackErrorRate", "checkout", "0.05", "firing", T0, T0);
	cr_assert_eq(json_array_size(d), 1);
	cr_assert_str_eq(field(d, 0, "outcome"), "acting");
	cr_assert_str_eq(field(d, 0, "rule"), "errors");
	char id[64];
	snprintf(id, sizeof(id), "%s", field(d, 0, "incident"));
	cr_assert_eq(strncmp(id, "inc-", 4), 0);
	json_decref(d);

	/* another pod of the same service: same incident, a repeat */
	d = send("RollbackErrorRate", "checkout", "0.07", "firing", T0, "2026-11-21T10:01:00Z");
	cr_assert_str_eq(field(d, 0, "outcome"), "repeat");
	cr_assert_str_eq(field(d, 0, "incident"), id);
	json_decref(d);
}

Test(engine, value_below_threshold_is_no_match_with_reason)
{
	json_t *d = send("RollbackErrorRate", "checkout", "0.004", "firing", T0, T0);
	cr_assert_str_eq(field(d, 0, "outcome"), "no_match");
	cr_assert_str_eq(field(d, 0, "reason"), "value 0.004 not above 0.01");
	json_decref(d);
	d = send("RollbackErrorRate", "checkout", "n/a", "firing", T0, T0);
	cr_assert_str_eq(field(d, 0, "outcome"), "no_match");
	cr_assert(strstr(field(d, 0, "reason"), "not a number"));
	json_decref(d);
}

Test(engine, unmatched_alert_is_no_match)
{
	json_t *d = send("Other", "checkout", "1", "firing", T0, T0);
	cr_assert_str_eq(field(d, 0, "outcome"), "no_match");
	cr_assert_str_eq(field(d, 0, "rule"), "");
	json_decref(d);
}

Test(engine, resolved_ends_episode_and_cooldown_holds_the_next)
{
	json_decref(send("RollbackErrorRate", "checkout", "0.05", "firing", T0, T0));
	json_t *d = send("RollbackErrorRate", "checkout", "0.05", "resolved", T0,
			 "2026-11-21T10:05:00Z");
	cr_assert_str_eq(field(d, 0, "outcome"), "resolved");
	json_decref(d);
	d = send("RollbackErrorRate", "checkout", "0.05", "firing", "2026-11-21T10:10:00Z",
		 "2026-11-21T10:10:00Z");
	cr_assert_str_eq(field(d, 0, "outcome"), "held");
	cr_assert(strstr(field(d, 0, "reason"), "in cooldown until 2026-11-21T10:30:00Z"),
		  "%s", field(d, 0, "reason"));
	json_decref(d);
	/* after the cooldown a new episode acts again */
	json_decref(send("RollbackErrorRate", "checkout", "0.05", "resolved", T0,
			 "2026-11-21T10:40:00Z"));
	d = send("RollbackErrorRate", "checkout", "0.05", "firing", "2026-11-21T10:41:00Z",
		 "2026-11-21T10:41:00Z");
	cr_assert_str_eq(field(d, 0, "outcome"), "acting");
	json_decref(d);
}

Test(engine, hourly_cap_holds_across_incidents)
{
	json_decref(send("RollbackErrorRate", "a", "0.05", "firing", T0, T0));
	json_decref(send("RollbackErrorRate", "b", "0.05", "firing", T0, T0));
	json_t *d = send("RollbackErrorRate", "c", "0.05", "firing", T0, T0);
	cr_assert_str_eq(field(d, 0, "outcome"), "held");
	cr_assert_str_eq(field(d, 0, "reason"), "limits.max_rollbacks_per_hour (2) reached");
	json_decref(d);
}

Test(engine, firing_for_makes_pending_then_decides_when_old_enough)
{
	json_t *d = send("Slow", "s", "1", "firing", T0, "2026-11-21T10:00:20Z");
	cr_assert_str_eq(field(d, 0, "outcome"), "pending");
	cr_assert(strstr(field(d, 0, "reason"), "deciding at 2026-11-21T10:01:00Z"), "%s",
		  field(d, 0, "reason"));
	json_decref(d);
	d = send("Slow", "s", "1", "firing", T0, "2026-11-21T10:01:05Z");
	cr_assert_str_eq(field(d, 0, "outcome"), "acting");
	json_decref(d);
}

Test(engine, pause_holds)
{
	engine_set_paused(eng, true, "api");
	json_t *d = send("RollbackErrorRate", "checkout", "0.05", "firing", T0, T0);
	cr_assert_str_eq(field(d, 0, "outcome"), "held");
	cr_assert(strstr(field(d, 0, "reason"), "paused"));
	json_decref(d);
}

Test(engine, dry_run_global)
{
	cfg.dry_run = true;
	json_t *d = send("RollbackErrorRate", "checkout", "0.05", "firing", T0, T0);
	cr_assert_str_eq(field(d, 0, "outcome"), "dry_run");
	json_decref(d);
}

Test(engine, notify_and_approve_modes)
{
	json_t *d = send("Watch", "w", "1", "firing", T0, T0);
	cr_assert_str_eq(field(d, 0, "outcome"), "notify_only");
	json_decref(d);
	d = send("Gate", "g", "1", "firing", T0, T0);
	cr_assert_str_eq(field(d, 0, "outcome"), "awaiting_approval");
	char id[64];
	snprintf(id, sizeof(id), "%s", field(d, 0, "incident"));
	json_decref(d);
	cr_assert_eq(engine_approve(eng, id, 0, "alice", "link", NULL), 0);
	cr_assert_eq(engine_approve(eng, id, 0, "bob", "link", NULL), 1, "a second approval changes nothing");
}

Test(engine, incidents_json_lists_and_details)
{
	json_t *d = send("RollbackErrorRate", "checkout", "0.05", "firing", T0, T0);
	char id[64];
	snprintf(id, sizeof(id), "%s", field(d, 0, "incident"));
	json_decref(d);
	struct buf b = BUF_INIT;
	cr_assert_eq(engine_incident_json(eng, id, &b), 0);
	json_error_t je;
	json_t *inc = json_loads(b.data, 0, &je);
	cr_assert_str_eq(json_string_value(json_object_get(inc, "state")), "acting");
	cr_assert_str_eq(json_string_value(json_object_get(
				 json_object_get(inc, "labels"), "service")),
			 "checkout");
	cr_assert_eq(json_integer_value(json_object_get(inc, "episode")), 1);
	json_decref(inc);
	buf_release(&b);
	cr_assert_eq(engine_incident_json(eng, "inc-0000000000000000", &b), 1);
	buf_release(&b);
}
