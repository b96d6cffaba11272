/* Memory bounds of the engine (SPEC §4 limits.max_incidents): which
 * incidents are evicted and in what order, what an incident made over the
 * limit is decided, and what an evicted incident leaves behind (episodes
 * go on; a late firing of an old episode stays a repeat). No event base:
 * nothing runs. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
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
	cfg.limits.max_incidents = 3;
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

TestSuite(memory, .init = setup, .fini = teardown);

/* One alert; the decision's outcome, reason and incident into the out
 * parameters (NULL: not wanted). */
static void fire(const char *alertname, const char *service, const char *status, const char *starts,
		 const char *now, char *outcome, char *reason, char *id)
{
	char body[2048];
	snprintf(
	    body, sizeof(body),
	    "{\"version\":\"4\",\"groupKey\":\"g\",\"status\":\"%s\",\"receiver\":\"r\","
	    "\"alerts\":[{\"status\":\"%s\",\"labels\":{\"alertname\":\"%s\",\"service\":\"%s\"},"
	    "\"annotations\":{\"value\":\"0.5\"},\"startsAt\":\"%s\"}]}",
	    status, status, alertname, service, starts);
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
	json_error_t je;
	json_t *arr = json_loads(out.data, 0, &je);
	cr_assert_not_null(arr, "decisions are not JSON: %s", out.data);
	json_t *d = json_array_get(arr, 0);
	if (outcome)
		strcpy(outcome, json_string_value(json_object_get(d, "outcome")));
	if (reason)
		strcpy(reason, json_string_value(json_object_get(d, "reason")));
	if (id)
		strcpy(id, json_string_value(json_object_get(d, "incident")));
	json_decref(arr);
	buf_release(&out);
}

#define T0 "2026-11-21T10:00:00Z"
#define T1 "2026-11-21T10:01:00Z"
#define T2 "2026-11-21T10:02:00Z"

static bool in_memory(const char *id)
{
	pthread_mutex_lock(&eng->lock);
	bool found = incident_find(eng, id) != NULL;
	pthread_mutex_unlock(&eng->lock);
	return found;
}

static size_t list_len(void)
{
	size_t n = 0;
	for (struct list_node *l = eng->incidents.next; l != &eng->incidents; l = l->next) {
		cr_assert(l->next->prev == l);
		n++;
	}
	cr_assert_eq(hmap_count(&eng->by_id), n, "the index holds what the list holds");
	return n;
}

static int episode_of(const char *id)
{
	struct buf b = BUF_INIT;
	cr_assert_eq(engine_incident_json(eng, id, &b), 0);
	json_error_t je;
	json_t *j = json_loads(b.data, 0, &je);
	int ep = (int)json_integer_value(json_object_get(j, "episode"));
	json_decref(j);
	buf_release(&b);
	return ep;
}

Test(memory, oldest_resolved_goes_first)
{
	char a[32], b[32], c[32], d[32], e[32], o[32];
	fire("Watch", "a", "firing", T0, T0, o, NULL, a);
	cr_assert_str_eq(o, "notify_only");
	fire("Watch", "b", "firing", T0, T0, NULL, NULL, b);
	fire("Watch", "c", "firing", T0, T0, NULL, NULL, c);
	/* resolved in the order b, a, c */
	fire("Watch", "b", "resolved", T0, T1, NULL, NULL, NULL);
	fire("Watch", "a", "resolved", T0, T1, NULL, NULL, NULL);
	fire("Watch", "c", "resolved", T0, T1, NULL, NULL, NULL);
	cr_assert_eq(eng->n_incidents, 3);
	fire("Watch", "d", "firing", T2, T2, o, NULL, d);
	cr_assert_str_eq(o, "notify_only");
	cr_assert(!in_memory(b), "b resolved first: it goes first");
	cr_assert(in_memory(a) && in_memory(c) && in_memory(d));
	fire("Watch", "e", "firing", T2, T2, NULL, NULL, e);
	cr_assert(!in_memory(a));
	cr_assert(in_memory(c) && in_memory(d) && in_memory(e));
	cr_assert_eq(eng->n_incidents, 3);
	cr_assert_eq(list_len(), 3);
	cr_assert_eq(eng->n_evicted, 2);
	cr_assert_eq(eng->n_over_limit, 0);
}

Test(memory, open_and_cooling_incidents_stay_and_the_next_is_held)
{
	char x[32], a[32], b[32], c[32], o[32], r[512];
	/* x acted: its rule's cooldown (30m) and its target claim keep it */
	fire("RollbackErrorRate", "x", "firing", T0, T0, o, NULL, x);
	cr_assert_str_eq(o, "acting");
	fire("RollbackErrorRate", "x", "resolved", T0, T1, NULL, NULL, NULL);
	fire("Watch", "a", "firing", T0, T0, NULL, NULL, a);
	fire("Watch", "a", "resolved", T0, T1, NULL, NULL, NULL);
	fire("Watch", "b", "firing", T0, T0, NULL, NULL, b);
	/* full: x (resolved first, cooling) stays; a goes */
	fire("Watch", "c", "firing", T2, T2, o, NULL, c);
	cr_assert_str_eq(o, "notify_only");
	cr_assert(in_memory(x) && !in_memory(a) && in_memory(b) && in_memory(c));
	/* full again, nothing evictable: b and c are open, x cools down */
	char y[32];
	fire("RollbackErrorRate", "y", "firing", T2, T2, o, r, y);
	cr_assert_str_eq(o, "held");
	cr_assert_str_eq(r, "limits.max_incidents (3) reached and no resolved incident is past "
			    "its cooldown to make room: held");
	cr_assert(in_memory(y));
	cr_assert_eq(eng->n_incidents, 4, "kept over the limit");
	cr_assert_eq(eng->n_over_limit, 1);
	/* its next episode is decided as usual */
	fire("RollbackErrorRate", "y", "resolved", T2, T2, NULL, NULL, NULL);
	fire("RollbackErrorRate", "y", "firing", "2026-11-21T10:03:00Z", "2026-11-21T10:03:00Z", o,
	     r, NULL);
	cr_assert_str_eq(o, "acting", "%s", r);
}

Test(memory, cooldown_over_makes_it_evictable)
{
	char x[32], o[32];
	cfg.limits.target_cooldown_ms = 0;
	fire("RollbackErrorRate", "x", "firing", T0, T0, o, NULL, x);
	cr_assert_str_eq(o, "acting");
	fire("RollbackErrorRate", "x", "resolved", T0, T1, NULL, NULL, NULL);
	fire("Watch", "a", "firing", T0, T0, NULL, NULL, NULL);
	fire("Watch", "b", "firing", T0, T0, NULL, NULL, NULL);
	/* 10:20: x still in its 30m cooldown (and holding its target) */
	fire("Watch", "c", "firing", "2026-11-21T10:20:00Z", "2026-11-21T10:20:00Z", o, NULL, NULL);
	cr_assert_str_eq(o, "notify_only");
	cr_assert(in_memory(x));
	cr_assert_eq(eng->n_over_limit, 1);
	/* Without a loop its actions never finish: the claim (acting) is held
	 * for a day. Past both, it goes. */
	fire("Watch", "d", "firing", "2026-11-22T10:31:00Z", "2026-11-22T10:31:00Z", o, NULL, NULL);
	cr_assert(!in_memory(x));
	cr_assert_eq(eng->n_incidents, 4);
}

Test(memory, evicted_incident_keeps_counting_episodes_and_late_firings_repeat)
{
	char a[32], o[32], r[512], id[32];
	fire("Watch", "a", "firing", T0, T0, NULL, NULL, a);
	fire("Watch", "a", "resolved", T0, T1, NULL, NULL, NULL);
	size_t seen_before = seen_map_count(&eng->seen);
	fire("Watch", "b", "firing", T0, T0, NULL, NULL, NULL);
	fire("Watch", "c", "firing", T0, T0, NULL, NULL, NULL);
	fire("Watch", "d", "firing", T0, T0, NULL, NULL, NULL);
	cr_assert(!in_memory(a));
	cr_assert_eq(seen_map_count(&eng->seen), seen_before + 3 - 1,
		     "a's fingerprint left the seen map");
	/* the very firing of episode 1 again (an HA peer, a replayed capture) */
	fire("Watch", "a", "firing", T0, T2, o, r, id);
	cr_assert_str_eq(id, a);
	cr_assert_str_eq(o, "repeat");
	cr_assert_str_eq(r, "episode 1 already resolved: a late or replayed firing of it");
	cr_assert_eq(episode_of(a), 1);
	/* a new firing: episode 2, not 1 again */
	fire("Watch", "a", "firing", T2, T2, o, r, id);
	cr_assert_str_eq(o, "notify_only", "%s", r);
	cr_assert_eq(episode_of(a), 2);
}

Test(memory, many_incidents_stay_indexed)
{
	cfg.limits.max_incidents = 50;
	char svc[32], id[32], ids[1000][32];
	for (int i = 0; i < 1000; i++) {
		snprintf(svc, sizeof(svc), "s%d", i);
		fire("Watch", svc, "firing", T0, T0, NULL, NULL, id);
		fire("Watch", svc, "resolved", T0, T1, NULL, NULL, NULL);
		strcpy(ids[i], id);
	}
	cr_assert_eq(eng->n_incidents, 50);
	cr_assert_eq(list_len(), 50);
	for (int i = 0; i < 1000; i++)
		cr_assert_eq(in_memory(ids[i]), i >= 950, "incident %d", i);
	cr_assert_eq(seen_map_count(&eng->seen), 50);
	cr_assert_eq(eng->tombs.n, 50, "tombstones: at most max_incidents, the newest");
	/* s949's tombstone is kept: its next firing is episode 2, and its
	 * old firing a repeat */
	char o[32], r[512];
	fire("Watch", "s949", "firing", T0, T2, o, r, id);
	cr_assert_str_eq(o, "repeat");
	fire("Watch", "s949", "firing", T2, T2, o, r, id);
	cr_assert_str_eq(o, "notify_only", "%s", r);
	cr_assert_eq(episode_of(id), 2);
	/* s0's went long ago (and its store claim with the incident): it
	 * starts again at episode 1, and is decided */
	fire("Watch", "s0", "firing", T2, T2, o, r, id);
	cr_assert_str_eq(o, "notify_only", "%s", r);
	cr_assert_eq(episode_of(id), 1);
}

/* A webhook of the alerts JSON (an array's members) at now; the decisions. */
static json_t *fire_raw(const char *status, const char *alerts, const char *now)
{
	struct buf body = BUF_INIT;
	cr_assert_eq(buf_addf(&body,
			      "{\"version\":\"4\",\"groupKey\":\"g\",\"status\":\"%s\","
			      "\"receiver\":\"r\",\"alerts\":[%s]}",
			      status, alerts),
		     0);
	struct webhook wh;
	struct error err = {{0}};
	struct alert_limits lim = ALERT_LIMITS_DEFAULT;
	cr_assert_eq(alert_parse_webhook(body.data, body.len, &lim, &wh, &err), ALERT_PARSE_OK,
		     "%s", err.msg);
	struct timestamp t;
	cr_assert_eq(timestamp_parse(now, strlen(now), &t), 0);
	struct buf out = BUF_INIT;
	cr_assert_eq(engine_process(eng, &wh, t, &out), 0);
	webhook_release(&wh);
	json_error_t je;
	json_t *arr = json_loads(out.data, 0, &je);
	cr_assert_not_null(arr);
	buf_release(&out);
	buf_release(&body);
	return arr;
}

static const char *nth(json_t *arr, size_t i, const char *key)
{
	return json_string_value(json_object_get(json_array_get(arr, i), key));
}

Test(memory, labels_over_the_cap_are_not_kept_and_hold)
{
	struct buf a = BUF_INIT;
	char big[17001];
	memset(big, 'x', 17000);
	big[17000] = '\0';
	cr_assert_eq(buf_addf(&a,
			      "{\"status\":\"firing\",\"labels\":{\"alertname\":"
			      "\"RollbackErrorRate\",\"service\":\"x\"},\"annotations\":{"
			      "\"value\":\"0.5\",\"big\":\"%s\"},\"startsAt\":\"" T0 "\"}",
			      big),
		     0);
	json_t *d = fire_raw("firing", a.data, T0);
	/* alertname 9+17, service 7+1, value 5+3, big 3+17000 */
	cr_assert_str_eq(nth(d, 0, "outcome"), "held");
	cr_assert_str_eq(nth(d, 0, "reason"),
			 "the alert's labels and annotations are 17045 bytes, over the 16384 kept "
			 "per incident: not acting on values that cannot be kept whole");
	pthread_mutex_lock(&eng->lock);
	struct incident *inc = incident_find(eng, nth(d, 0, "incident"));
	cr_assert_eq(incident_n_labels(inc, SET_LABELS), 0);
	cr_assert_eq(incident_n_labels(inc, SET_ANNOTATIONS), 0);
	pthread_mutex_unlock(&eng->lock);
	json_decref(d);
	buf_release(&a);
	/* at the cap exactly it acts: big of 16384 - 45 bytes */
	struct buf b = BUF_INIT;
	big[16384 - 45] = '\0';
	cr_assert_eq(buf_addf(&b,
			      "{\"status\":\"firing\",\"labels\":{\"alertname\":"
			      "\"RollbackErrorRate\",\"service\":\"y\"},\"annotations\":{"
			      "\"value\":\"0.5\",\"big\":\"%s\"},\"startsAt\":\"" T0 "\"}",
			      big),
		     0);
	d = fire_raw("firing", b.data, T0);
	cr_assert_str_eq(nth(d, 0, "outcome"), "acting", "%s", nth(d, 0, "reason"));
	json_decref(d);
	buf_release(&b);
}

static void pods(struct buf *b, const char *status, int from, int to)
{
	for (int i = from; i < to; i++)
		cr_assert_eq(buf_addf(b,
				      "%s{\"status\":\"%s\",\"labels\":{\"alertname\":"
				      "\"RollbackErrorRate\",\"service\":\"big\",\"pod\":\"p%d\"},"
				      "\"annotations\":{\"value\":\"0.5\"},\"startsAt\":\"" T0
				      "\"}",
				      i > from ? "," : "", status, i),
			     0);
}

Test(memory, firing_set_is_bounded_and_the_rest_counted)
{
	struct buf b = BUF_INIT;
	pods(&b, "firing", 0, 10000);
	json_t *d = fire_raw("firing", b.data, T0);
	cr_assert_str_eq(nth(d, 0, "outcome"), "acting");
	cr_assert_str_eq(nth(d, 9999, "reason"), "episode 1 already decided: acting");
	json_decref(d);
	buf_release(&b);
	pods(&b, "firing", 10000, 10002);
	d = fire_raw("firing", b.data, T1);
	cr_assert_str_eq(nth(d, 1, "outcome"), "repeat");
	cr_assert_str_eq(nth(d, 1, "reason"),
			 "episode 1 already decided: acting; 2 alert(s) beyond the 10000 followed "
			 "per incident are counted, not followed (they do not keep it open)");
	pthread_mutex_lock(&eng->lock);
	struct incident *inc = incident_find(eng, nth(d, 0, "incident"));
	cr_assert_eq(inc->n_firing, 10000);
	cr_assert_not_null(inc->x);
	cr_assert_eq(inc->x->n_untracked, 2);
	pthread_mutex_unlock(&eng->lock);
	json_decref(d);
	buf_release(&b);
	pods(&b, "resolved", 0, 10000);
	d = fire_raw("resolved", b.data, T2);
	cr_assert_str_eq(nth(d, 9998, "reason"), "1 alert(s) of the incident still firing");
	cr_assert_str_eq(nth(d, 9999, "reason"),
			 "episode 1 resolved; 2 alert(s) beyond the 10000 followed per incident "
			 "are counted, not followed (they do not keep it open)");
	json_decref(d);
	buf_release(&b);
}

static json_t *page(struct engine_page *p, int want_rc)
{
	struct buf b = BUF_INIT;
	cr_assert_eq(engine_incidents_page(eng, p, &b), want_rc);
	json_t *arr = want_rc == 0 ? json_loadb(b.data, b.len, 0, NULL) : NULL;
	buf_release(&b);
	return arr;
}

Test(memory, incidents_page_cursor_filter_and_counts)
{
	cfg.limits.max_incidents = 100;
	char ids[5][32], svc[8];
	for (int i = 0; i < 5; i++) {
		snprintf(svc, sizeof(svc), "s%d", i);
		fire("Watch", svc, "firing", T0, T0, NULL, NULL, ids[i]);
	}
	fire("Watch", "s1", "resolved", T0, T1, NULL, NULL, NULL);
	fire("Watch", "s3", "resolved", T0, T1, NULL, NULL, NULL);
	struct engine_page p = {.limit = 2};
	json_t *a = page(&p, 0);
	cr_assert_eq(json_array_size(a), 2);
	cr_assert_str_eq(nth(a, 0, "id"), ids[4], "newest first");
	cr_assert_str_eq(nth(a, 1, "id"), ids[3]);
	cr_assert_str_eq(p.next, ids[3]);
	json_decref(a);
	p.before = ids[3];
	a = page(&p, 0);
	cr_assert_str_eq(nth(a, 0, "id"), ids[2]);
	cr_assert_str_eq(nth(a, 1, "id"), ids[1]);
	cr_assert_str_eq(p.next, ids[1]);
	json_decref(a);
	p.before = ids[1];
	a = page(&p, 0);
	cr_assert_eq(json_array_size(a), 1);
	cr_assert_str_eq(nth(a, 0, "id"), ids[0]);
	cr_assert_str_eq(p.next, "", "the last page");
	json_decref(a);
	/* resolved only, counted */
	p = (struct engine_page){.limit = 1, .state = "resolved", .count = true};
	a = page(&p, 0);
	cr_assert_str_eq(nth(a, 0, "id"), ids[3]);
	cr_assert_str_eq(p.next, ids[3]);
	cr_assert_eq(p.matched, 2);
	cr_assert_eq(p.state_counts[7], 2); /* resolved */
	cr_assert_eq(p.state_counts[4], 0);
	cr_assert_str_eq(engine_state_name(7), "resolved");
	json_decref(a);
	p.skip = 1;
	a = page(&p, 0);
	cr_assert_str_eq(nth(a, 0, "id"), ids[1]);
	cr_assert_str_eq(p.next, "");
	json_decref(a);
	p = (struct engine_page){.limit = 1, .state = "gone"};
	page(&p, ENGINE_PAGE_BAD_STATE);
	p = (struct engine_page){.limit = 1, .before = "inc-0000000000000000"};
	page(&p, ENGINE_PAGE_BAD_CURSOR);
}

Test(memory, reopened_candidates_do_not_hide_an_evictable_one)
{
	cfg.limits.max_incidents = 20;
	char svc[8], r0[32], o[32];
	for (int i = 0; i < 19; i++) { /* each was a candidate until its episode began */
		snprintf(svc, sizeof(svc), "o%d", i);
		fire("Watch", svc, "firing", T0, T0, NULL, NULL, NULL);
	}
	fire("Watch", "r0", "firing", T0, T0, NULL, NULL, r0);
	fire("Watch", "r0", "resolved", T0, T1, NULL, NULL, NULL);
	fire("Watch", "new", "firing", T2, T2, o, NULL, NULL);
	cr_assert_str_eq(o, "notify_only");
	cr_assert(!in_memory(r0));
	cr_assert_eq(eng->n_incidents, 20);
	cr_assert_eq(eng->n_over_limit, 0);
}

Test(memory, a_lowered_limit_comes_back_two_per_new_incident)
{
	char o[32];
	fire("Watch", "a", "firing", T0, T0, NULL, NULL, NULL);
	fire("Watch", "b", "firing", T0, T0, NULL, NULL, NULL);
	fire("Watch", "c", "firing", T0, T0, NULL, NULL, NULL);
	fire("Watch", "a", "resolved", T0, T1, NULL, NULL, NULL);
	fire("Watch", "b", "resolved", T0, T1, NULL, NULL, NULL);
	fire("Watch", "c", "resolved", T0, T1, NULL, NULL, NULL);
	cfg.limits.max_incidents = 1; /* as a reload would */
	fire("Watch", "d", "firing", T2, T2, o, NULL, NULL);
	cr_assert_str_eq(o, "notify_only");
	cr_assert_eq(eng->n_incidents, 2, "a and b went");
	fire("Watch", "d", "resolved", T2, T2, NULL, NULL, NULL);
	fire("Watch", "e", "firing", T2, T2, o, NULL, NULL);
	cr_assert_str_eq(o, "notify_only");
	cr_assert_eq(eng->n_incidents, 1, "c and d went");
	cr_assert_eq(eng->n_over_limit, 0);
}

/* ---- packed labels (struct inc_labels) --------------------------------- */

static void expect_set(const struct inc_sets *s, enum inc_set k, const struct label *want, size_t n)
{
	cr_assert_eq(s->set[k].n, n, "set %d: %zu labels, want %zu", k, s->set[k].n, n);
	for (size_t i = 0; i < n; i++) {
		const struct label *l = &s->set[k].items[i];
		cr_assert_str_eq(l->name, want[i].name);
		cr_assert_eq(l->value_len, want[i].value_len, "%s", l->name);
		cr_assert_eq(memcmp(l->value, want[i].value, l->value_len), 0, "%s", l->name);
		cr_assert_eq(l->value[l->value_len], '\0', "%s", l->name);
	}
}

Test(memory, packed_labels_keep_each_set_whole)
{
	struct incident inc = {0};
	/* a NUL inside a value, an empty value, one over 127 bytes (two length
	 * bytes) and one over 16383 (three) */
	char mid[300], big[20000];
	memset(mid, 'm', sizeof(mid));
	memset(big, 'b', sizeof(big));
	struct label g[] = {{"service", "api", 3}};
	struct label l[] = {
	    {"alertname", "A", 1}, {"nul", "a\0b", 3}, {"empty", "", 0}, {"mid", mid, sizeof(mid)}};
	struct label a[] = {{"big", big, sizeof(big)}};
	struct label_set gs = {g, 1}, ls = {l, 4}, as = {a, 1};
	cr_assert_eq(incident_pack(&inc, &gs, &ls, &as, true, "http://prom/g", ""), 0);
	struct inc_sets s;
	cr_assert_eq(incident_sets(&inc, &s), 0);
	expect_set(&s, SET_GROUP, g, 1);
	expect_set(&s, SET_LABELS, l, 4);
	expect_set(&s, SET_ANNOTATIONS, a, 1);
	cr_assert_str_eq(s.generator_url, "http://prom/g");
	cr_assert_str_eq(s.external_url, "");
	inc_sets_release(&s);
	cr_assert_str_eq(incident_label(&inc, SET_LABELS, "alertname"), "A");
	cr_assert_str_eq(incident_label(&inc, SET_GROUP, "service"), "api");
	cr_assert_null(incident_label(&inc, SET_GROUP, "alertname"));
	cr_assert_eq(incident_n_labels(&inc, SET_LABELS), 4);

	/* the target: named, renamed, kept by a new trigger */
	cr_assert_null(incident_target(&inc));
	cr_assert_eq(incident_set_target(&inc, "service=api"), 0);
	cr_assert_str_eq(incident_target(&inc), "service=api");
	cr_assert_eq(incident_set_target(&inc, incident_target(&inc)), 0); /* from itself */
	cr_assert_str_eq(incident_target(&inc), "service=api");
	cr_assert_eq(incident_n_labels(&inc, SET_LABELS), 4);
	/* a new trigger: the group, the target and (urls false) the URLs stay */
	struct label l2[] = {{"alertname", "B", 1}};
	struct label_set l2s = {l2, 1}, none = {0};
	cr_assert_eq(incident_pack(&inc, NULL, &l2s, &none, false, NULL, NULL), 0);
	cr_assert_str_eq(incident_target(&inc), "service=api");
	cr_assert_eq(incident_sets(&inc, &s), 0);
	expect_set(&s, SET_GROUP, g, 1);
	expect_set(&s, SET_LABELS, l2, 1);
	expect_set(&s, SET_ANNOTATIONS, NULL, 0);
	cr_assert_str_eq(s.generator_url, "http://prom/g");
	inc_sets_release(&s);

	/* sets passed from the block itself are copied before it goes */
	cr_assert_eq(incident_sets(&inc, &s), 0);
	cr_assert_eq(incident_pack(&inc, &s.set[SET_LABELS], &s.set[SET_GROUP], NULL, true,
				   s.external_url, s.generator_url),
		     0);
	inc_sets_release(&s);
	cr_assert_eq(incident_sets(&inc, &s), 0);
	expect_set(&s, SET_GROUP, l2, 1);
	expect_set(&s, SET_LABELS, g, 1);
	cr_assert_str_eq(s.generator_url, "");
	cr_assert_str_eq(s.external_url, "http://prom/g");
	inc_sets_release(&s);
	/* no target again: the labels stay */
	cr_assert_eq(incident_set_target(&inc, NULL), 0);
	cr_assert_null(incident_target(&inc));
	cr_assert_str_eq(incident_label(&inc, SET_GROUP, "alertname"), "B");
	free(inc.lab);
}

Test(memory, packed_labels_without_urls_and_past_the_stack_buffer)
{
	struct incident inc = {0};
	struct label l[INC_SETS_BUF + 5];
	char names[INC_SETS_BUF + 5][8];
	for (size_t i = 0; i < INC_SETS_BUF + 5; i++) {
		snprintf(names[i], sizeof(names[i]), "l%zu", i);
		l[i] = (struct label){names[i], names[i], strlen(names[i])};
	}
	struct label_set ls = {l, INC_SETS_BUF + 5};
	/* replay gives no URLs: they stay NULL, not "" */
	cr_assert_eq(incident_pack(&inc, NULL, &ls, NULL, false, NULL, NULL), 0);
	struct inc_sets s;
	cr_assert_eq(incident_sets(&inc, &s), 0);
	cr_assert_not_null(s.heap);
	expect_set(&s, SET_GROUP, NULL, 0);
	expect_set(&s, SET_LABELS, l, INC_SETS_BUF + 5);
	cr_assert_null(s.generator_url);
	cr_assert_null(s.external_url);
	inc_sets_release(&s);
	free(inc.lab);
	/* nothing at all: no block */
	struct incident empty = {0};
	cr_assert_eq(incident_pack(&empty, NULL, NULL, NULL, false, NULL, NULL), 0);
	cr_assert_null(empty.lab);
	cr_assert_eq(incident_sets(&empty, &s), 0);
	expect_set(&s, SET_LABELS, NULL, 0);
	inc_sets_release(&s);
}

Test(memory, a_trigger_capped_after_replay_keeps_group_and_urls)
{
	struct incident inc = {0};
	char big[TRIGGER_BYTES_MAX + 1];
	memset(big, 'x', sizeof(big));
	struct label g[] = {{"service", "api", 3}};
	struct label l[] = {{"alertname", "A", 1}};
	struct label a[] = {{"big", big, sizeof(big)}};
	struct label_set gs = {g, 1}, ls = {l, 1}, as = {a, 1};
	cr_assert_eq(incident_pack(&inc, &gs, &ls, &as, true, "http://g", "http://e"), 0);
	cr_assert_eq(incident_set_target(&inc, "service=api"), 0);
	cr_assert_geq(malloc_usable_size(inc.lab), sizeof(big));
	incident_cap_trigger(&inc);
	cr_assert_str_eq(incident_target(&inc), "service=api");
	/* what was dropped is given back, not kept in the block */
	cr_assert_lt(malloc_usable_size(inc.lab), 256, "%zu", malloc_usable_size(inc.lab));
	/* alertname 9 + 1, big 3 + TRIGGER_BYTES_MAX + 1 */
	cr_assert_eq(incident_trigger_over(&inc), 9 + 1 + 3 + sizeof(big));
	struct inc_sets s;
	cr_assert_eq(incident_sets(&inc, &s), 0);
	expect_set(&s, SET_GROUP, g, 1);
	expect_set(&s, SET_LABELS, NULL, 0);
	expect_set(&s, SET_ANNOTATIONS, NULL, 0);
	cr_assert_str_eq(s.generator_url, "http://g");
	cr_assert_str_eq(s.external_url, "http://e");
	inc_sets_release(&s);
	free(inc.x);
	free(inc.lab);
}
