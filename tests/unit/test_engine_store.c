/* The engine through the state store (include/rollbackd/store.h): a store
 * given in engine_options sees the rollbacks, decides pause, and an episode
 * another process claimed first is only a repeat here. No event base:
 * nothing runs. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollbackd/engine.h"
#include "rollbackd/metrics.h"
#include "rollbackd/store.h"

static struct config cfg;
static struct ruleset rules;
static struct store *store;
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
	struct store_journal_options so = {.journal = NULL};
	store = store_journal_new(&so);
	cr_assert_not_null(store);
	struct engine_options eo = {.cfg = &cfg, .store = store};
	eng = engine_new(&eo, &rules);
	cr_assert_not_null(eng);
	cr_assert_eq(engine_attach_journal(eng, NULL), 0);
}

static void teardown(void)
{
	engine_free(eng);
	store_free(store); /* borrowed by the engine: still ours */
	ruleset_release(&rules);
	config_release(&cfg);
	metrics_free_all();
}

TestSuite(engine_store, .init = setup, .fini = teardown);

/* One alert that started at starts (an episode is (fingerprint, startsAt)). */
static json_t *send_at(const char *service, const char *status, const char *starts, const char *now)
{
	char body[1024];
	snprintf(body, sizeof(body),
		 "{\"version\":\"4\",\"groupKey\":\"g\",\"status\":\"%s\",\"receiver\":\"r\","
		 "\"alerts\":[{\"status\":\"%s\",\"labels\":{\"alertname\":\"RollbackErrorRate\","
		 "\"service\":\"%s\"},\"annotations\":{\"value\":\"0.05\"},"
		 "\"startsAt\":\"%s\"}]}",
		 status, status, service, starts);
	struct webhook wh;
	struct error err = {{0}};
	struct alert_limits lim = ALERT_LIMITS_DEFAULT;
	cr_assert_eq(alert_parse_webhook(body, strlen(body), &lim, &wh, &err), ALERT_PARSE_OK, "%s",
		     err.msg);
	struct timestamp t;
	cr_assert_eq(timestamp_parse(now, strlen(now), &t), 0);
	struct buf out = BUF_INIT;
	cr_assert_eq(engine_process(eng, &wh, t, &out), 0);
	webhook_release(&wh);
	json_t *arr = json_loads(out.data, 0, NULL);
	cr_assert_not_null(arr, "%s", out.data);
	buf_release(&out);
	return arr;
}

static json_t *send(const char *service, const char *status, const char *now)
{
	return send_at(service, status, "2026-11-21T10:00:00Z", now);
}

static const char *outcome(json_t *d)
{
	return json_string_value(json_object_get(json_array_get(d, 0), "outcome"));
}

static const char *reason(json_t *d)
{
	return json_string_value(json_object_get(json_array_get(d, 0), "reason"));
}

static int64_t ms(const char *s)
{
	struct timestamp t;
	cr_assert_eq(timestamp_parse(s, strlen(s), &t), 0);
	return t.sec * 1000 + t.nsec / 1000000;
}

Test(engine_store, rollbacks_are_counted_by_the_store)
{
	json_t *d = send("a", "firing", "2026-11-21T10:00:00Z");
	cr_assert_str_eq(outcome(d), "acting");
	json_decref(d);
	cr_assert_eq(store_count_rollbacks(store, ms("2026-11-21T10:00:00Z"), 3600000), 1);
	/* a rollback the store knows of (another replica's) counts for the cap */
	cr_assert_eq(store_note_rollback(store, "inc-elsewhere", ms("2026-11-21T10:00:01Z")), 0);
	d = send("b", "firing", "2026-11-21T10:00:02Z");
	cr_assert_str_eq(outcome(d), "held");
	cr_assert_str_eq(reason(d), "limits.max_rollbacks_per_hour (2) reached");
	json_decref(d);
}

Test(engine_store, pause_is_the_stores)
{
	engine_set_paused(eng, true, "api");
	cr_assert(store_paused(store));
	cr_assert(engine_paused(eng));
	json_t *d = send("a", "firing", "2026-11-21T10:00:00Z");
	cr_assert_str_eq(outcome(d), "held");
	cr_assert_str_eq(reason(d), "paused: automatic actions are switched off");
	json_decref(d);
	cr_assert_eq(store_set_paused(store, false, "elsewhere"), 0);
	cr_assert_not(engine_paused(eng));
}

Test(engine_store, an_episode_claimed_elsewhere_is_a_repeat)
{
	json_t *d = send("a", "firing", "2026-11-21T10:00:00Z");
	cr_assert_str_eq(outcome(d), "acting");
	char id[64];
	snprintf(id, sizeof(id), "%s",
		 json_string_value(json_object_get(json_array_get(d, 0), "incident")));
	json_decref(d);
	json_decref(send("a", "resolved", "2026-11-21T10:01:00Z"));
	/* another process took episode 2 first */
	cr_assert_eq(store_claim_episode(store, id, 2), 0);
	/* a new firing (a new startsAt): episode 2, which the other process has */
	d = send_at("a", "firing", "2026-11-21T10:59:00Z", "2026-11-21T11:00:00Z");
	cr_assert_str_eq(outcome(d), "repeat");
	cr_assert_str_eq(reason(d), "episode 2 already decided: pending");
	json_decref(d);
	cr_assert_eq(store_count_rollbacks(store, ms("2026-11-21T11:00:00Z"), 3600000), 0);
}
