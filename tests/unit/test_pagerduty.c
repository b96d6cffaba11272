/*
 * Unit tests for pagerduty: the Events API v2 shapes of trigger,
 * acknowledge and resolve (parsed back with jansson, exact members), the
 * summary and label limits with multi-byte text at the cut, the severity
 * table, and that the redacted variant holds no routing key.
 */
#include <criterion/criterion.h>
#include <jansson.h>

#include <stdlib.h>
#include <string.h>

#include "rollbackd/pagerduty.h"

#define KEY "R0UT1NGKEYabcdef0123456789abcdef"
#define ID "inc-0123456789abcdef"
#define ACK_URL "https://rb.example.com/v1/ack/" ID "?action=ack&exp=1&sig=ab"
#define GEN_URL "http://prom:9090/graph?g0.expr=up"
#define ELL "\xe2\x80\xa6"

static struct secret key;

static void setup(void)
{
	cr_assert_eq(secret_from_bytes(KEY, strlen(KEY), &key), 0);
}

static void teardown(void)
{
	secret_release(&key);
}

TestSuite(pagerduty, .init = setup, .fini = teardown);

static const struct label labels[] = {
    {"alertname", "HighErrorRate", 13},
    {"service", "checkout", 8},
    {"severity", "page", 4},
};

static struct pd_view view(void)
{
	struct pd_view v = {
	    .id = ID,
	    .rule = "HighErrorRate",
	    .service = "checkout",
	    .state = "rolled_back",
	    .severity_label = "page",
	    .summary_extra = "error rate 0.052 above 0.01 for 2m",
	    .labels = labels,
	    .n_labels = 3,
	    .decision = "acting",
	    .ack_url = ACK_URL,
	    .generator_url = GEN_URL,
	    .source = "rb-host-1",
	};
	return v;
}

static json_t *load(const struct buf *b)
{
	json_error_t je;
	cr_assert_not_null(b->data);
	json_t *j = json_loads(b->data, JSON_REJECT_DUPLICATES, &je);
	cr_assert_not_null(j, "not JSON (%s): %.300s", je.text, b->data);
	return j;
}

static json_t *event(const struct pd_view *v, enum pd_action a)
{
	struct buf b = BUF_INIT;
	cr_assert_eq(pd_event(v, a, &key, &b), 0);
	json_t *j = load(&b);
	buf_release(&b);
	return j;
}

static const char *str_at(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	cr_assert(json_is_string(v), "'%s' is not a string", k);
	return json_string_value(v);
}

static char *repeat(const char *unit, size_t times)
{
	size_t u = strlen(unit);
	char *s = malloc(u * times + 1);
	cr_assert_not_null(s);
	for (size_t i = 0; i < times; i++)
		memcpy(s + i * u, unit, u);
	s[u * times] = '\0';
	return s;
}

Test(pagerduty, trigger_shape)
{
	struct pd_view v = view();
	json_t *j = event(&v, PD_TRIGGER);

	cr_assert_eq(json_object_size(j), 5);
	cr_assert_str_eq(str_at(j, "routing_key"), KEY);
	cr_assert_str_eq(str_at(j, "event_action"), "trigger");
	cr_assert_str_eq(str_at(j, "dedup_key"), ID);

	json_t *p = json_object_get(j, "payload");
	cr_assert_eq(json_object_size(p), 6);
	cr_assert_str_eq(str_at(p, "summary"), "HighErrorRate on checkout: rolled back - error "
					       "rate 0.052 above 0.01 for 2m");
	cr_assert_str_eq(str_at(p, "source"), "rb-host-1");
	cr_assert_str_eq(str_at(p, "severity"), "critical");
	cr_assert_str_eq(str_at(p, "component"), "checkout");
	cr_assert_str_eq(str_at(p, "group"), "HighErrorRate");

	json_t *d = json_object_get(p, "custom_details");
	cr_assert_eq(json_object_size(d), 4);
	cr_assert_str_eq(str_at(d, "incident"), ID);
	cr_assert_str_eq(str_at(d, "state"), "rolled_back");
	cr_assert_str_eq(str_at(d, "decision"), "acting");
	json_t *l = json_object_get(d, "labels");
	cr_assert_eq(json_object_size(l), 3);
	cr_assert_str_eq(str_at(l, "alertname"), "HighErrorRate");
	cr_assert_str_eq(str_at(l, "service"), "checkout");
	cr_assert_str_eq(str_at(l, "severity"), "page");

	json_t *links = json_object_get(j, "links");
	cr_assert_eq(json_array_size(links), 2);
	cr_assert_str_eq(str_at(json_array_get(links, 0), "href"), ACK_URL);
	cr_assert_str_eq(str_at(json_array_get(links, 0), "text"), "Acknowledge in rollbackd");
	cr_assert_str_eq(str_at(json_array_get(links, 1), "href"), GEN_URL);
	cr_assert_str_eq(str_at(json_array_get(links, 1), "text"), "Prometheus");
	json_decref(j);
}

Test(pagerduty, trigger_starts_with_routing_key)
{
	struct pd_view v = view();
	struct buf b = BUF_INIT;
	cr_assert_eq(buf_adds(&b, "x"), 0);
	cr_assert_eq(pd_event(&v, PD_TRIGGER, &key, &b), 0);
	cr_assert(strncmp(b.data,
			  "x{\"routing_key\":\"" KEY "\",\"event_action\":\"trigger\","
			  "\"dedup_key\":\"" ID "\",\"payload\":{",
			  strlen("x{\"routing_key\":\"" KEY "\",\"event_action\":\"trigger\","
				 "\"dedup_key\":\"" ID "\",\"payload\":{")) == 0,
		  "%s", b.data);
	buf_release(&b);
}

Test(pagerduty, minimal_trigger)
{
	struct pd_view v = {.id = ID};
	json_t *j = event(&v, PD_TRIGGER);
	cr_assert_eq(json_object_size(j), 4); /* no links */
	json_t *p = json_object_get(j, "payload");
	cr_assert_eq(json_object_size(p), 4); /* no component, no group */
	cr_assert_str_eq(str_at(p, "summary"), "incident " ID);
	cr_assert_str_eq(str_at(p, "source"), "rollbackd");
	cr_assert_str_eq(str_at(p, "severity"), "error");
	json_t *d = json_object_get(p, "custom_details");
	cr_assert_eq(json_object_size(d), 2);
	cr_assert_str_eq(str_at(d, "incident"), ID);
	cr_assert_eq(json_object_size(json_object_get(d, "labels")), 0);
	json_decref(j);
}

Test(pagerduty, only_http_links)
{
	struct pd_view v = view();
	v.ack_url = "javascript:alert(1)";
	json_t *j = event(&v, PD_TRIGGER);
	json_t *links = json_object_get(j, "links");
	cr_assert_eq(json_array_size(links), 1);
	cr_assert_str_eq(str_at(json_array_get(links, 0), "href"), GEN_URL);
	json_decref(j);
	v.generator_url = "http://a b";
	j = event(&v, PD_TRIGGER);
	cr_assert_null(json_object_get(j, "links"));
	json_decref(j);
}

Test(pagerduty, acknowledge_and_resolve_shapes)
{
	struct pd_view v = view();
	const struct {
		enum pd_action a;
		const char *name;
	} cases[] = {{PD_ACKNOWLEDGE, "acknowledge"}, {PD_RESOLVE, "resolve"}};
	for (size_t i = 0; i < 2; i++) {
		struct buf b = BUF_INIT;
		cr_assert_eq(pd_event(&v, cases[i].a, &key, &b), 0);
		char want[256];
		snprintf(want, sizeof(want),
			 "{\"routing_key\":\"" KEY "\",\"event_action\":\"%s\",\"dedup_key\":\"" ID
			 "\"}",
			 cases[i].name);
		cr_assert_str_eq(b.data, want);
		buf_release(&b);
	}
	cr_assert_str_eq(pd_action_name(PD_TRIGGER), "trigger");
}

Test(pagerduty, summary_limit)
{
	struct pd_view v = view();
	char *big = repeat("x", 5000);
	v.summary_extra = big;
	json_t *j = event(&v, PD_TRIGGER);
	const char *s = str_at(json_object_get(j, "payload"), "summary");
	cr_assert_eq(strlen(s), PD_SUMMARY_MAX);
	cr_assert_str_eq(s + PD_SUMMARY_MAX - 3, ELL);
	cr_assert(strncmp(s, "HighErrorRate on checkout: rolled back - xxx", 44) == 0);
	json_decref(j);
	free(big);
}

Test(pagerduty, summary_cut_is_utf8_at_every_alignment)
{
	const char *units[] = {"\xc3\xa9",	    "\xe2\x82\xac",	  "\xf0\x9f\x98\x80",
			       "a\xf0\x9f\x98\x80", "ab\xf0\x9f\x98\x80", "abc\xf0\x9f\x98\x80"};
	for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
		char *s = repeat(units[u], 1000);
		struct pd_view v = view();
		v.rule = s;
		json_t *j = event(&v, PD_TRIGGER); /* load() rejects invalid UTF-8 */
		const char *sum = str_at(json_object_get(j, "payload"), "summary");
		cr_assert_leq(strlen(sum), PD_SUMMARY_MAX);
		cr_assert_geq(strlen(sum), PD_SUMMARY_MAX - 3);
		cr_assert_str_eq(sum + strlen(sum) - 3, ELL);
		/* group is cut to PD_FIELD_MAX as well. */
		cr_assert_leq(strlen(str_at(json_object_get(j, "payload"), "group")), PD_FIELD_MAX);
		json_decref(j);
		free(s);
	}
}

Test(pagerduty, summary_is_one_line_and_repaired)
{
	struct pd_view v = view();
	v.rule = "bad\xff"
		 "rule";
	v.summary_extra = "line1\nline2\ttab";
	json_t *j = event(&v, PD_TRIGGER);
	cr_assert_str_eq(str_at(json_object_get(j, "payload"), "summary"),
			 "bad\xef\xbf\xbdrule on checkout: rolled back - line1 line2 tab");
	json_decref(j);
}

Test(pagerduty, oversized_labels)
{
	char *big = repeat("v", 5000), *bigname = repeat("n", 5000);
	char *euros = repeat("\xe2\x82\xac", 2000);
	struct label ls[4] = {
	    {"big", big, 5000},
	    {bigname, "x", 1},
	    {"euros", euros, 6000},
	    {"bin", "a\xff\0b", 4},
	};
	struct pd_view v = view();
	v.labels = ls;
	v.n_labels = 4;
	json_t *j = event(&v, PD_TRIGGER);
	json_t *l = json_object_get(
	    json_object_get(json_object_get(j, "payload"), "custom_details"), "labels");
	cr_assert_eq(json_object_size(l), 4);
	const char *b = str_at(l, "big");
	cr_assert_eq(strlen(b), PD_LABEL_VALUE_MAX);
	cr_assert_str_eq(b + PD_LABEL_VALUE_MAX - 3, ELL);
	const char *e = str_at(l, "euros");
	cr_assert_eq(strlen(e), 1023); /* 340 euros + "…" */
	cr_assert_str_eq(e + 1020, ELL);
	/* The value's bytes as given (value_len), repaired; NUL too. */
	cr_assert_str_eq(str_at(l, "bin"), "a\xef\xbf\xbd\xef\xbf\xbd"
					   "b");
	/* The long name was cut to 256 bytes. */
	size_t found = 0;
	const char *k;
	json_t *val;
	json_object_foreach(l, k, val)
	{
		if (k[0] == 'n') {
			cr_assert_eq(strlen(k), PD_LABEL_NAME_MAX);
			found++;
		}
	}
	cr_assert_eq(found, 1);
	json_decref(j);
	free(big);
	free(bigname);
	free(euros);
}

Test(pagerduty, label_count_capped)
{
	struct label *ls = calloc(PD_LABELS_MAX + 50, sizeof(*ls));
	char(*names)[16] = calloc(PD_LABELS_MAX + 50, 16);
	cr_assert(ls && names);
	for (size_t i = 0; i < PD_LABELS_MAX + 50; i++) {
		snprintf(names[i], 16, "l%zu", i);
		ls[i] = (struct label){names[i], "v", 1};
	}
	struct pd_view v = view();
	v.labels = ls;
	v.n_labels = PD_LABELS_MAX + 50;
	json_t *j = event(&v, PD_TRIGGER);
	json_t *l = json_object_get(
	    json_object_get(json_object_get(j, "payload"), "custom_details"), "labels");
	cr_assert_eq(json_object_size(l), PD_LABELS_MAX);
	json_decref(j);
	free(ls);
	free(names);
}

Test(pagerduty, severity_table)
{
	const char *table[][2] = {
	    {"critical", "critical"},
	    {"CRITICAL", "critical"},
	    {"crit", "critical"},
	    {"page", "critical"},
	    {"P1", "critical"},
	    {"fatal", "critical"},
	    {"Emergency", "critical"},
	    {"error", "error"},
	    {"err", "error"},
	    {"high", "error"},
	    {"Major", "error"},
	    {"p2", "error"},
	    {"warning", "warning"},
	    {"WARN", "warning"},
	    {"medium", "warning"},
	    {"minor", "warning"},
	    {"p3", "warning"},
	    {"info", "info"},
	    {"low", "info"},
	    {"none", "info"},
	    {"p4", "info"},
	    {"P5", "info"},
	    {"informational", "info"},
	    {"", "error"},
	    {"bogus", "error"},
	    {"critical ", "error"},
	    {"p6", "error"},
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		cr_assert_str_eq(pd_severity(table[i][0], false), table[i][1], "'%s'", table[i][0]);
		cr_assert_str_eq(pd_severity(table[i][0], true), "critical", "'%s'", table[i][0]);
	}
	cr_assert_str_eq(pd_severity(NULL, false), "error");
	cr_assert_str_eq(pd_severity(NULL, true), "critical");
}

Test(pagerduty, escalate_in_event)
{
	struct pd_view v = view();
	v.severity_label = "info";
	json_t *j = event(&v, PD_TRIGGER);
	cr_assert_str_eq(str_at(json_object_get(j, "payload"), "severity"), "info");
	json_decref(j);
	v.escalate = true;
	j = event(&v, PD_TRIGGER);
	cr_assert_str_eq(str_at(json_object_get(j, "payload"), "severity"), "critical");
	json_decref(j);
}

Test(pagerduty, redacted_has_no_key)
{
	struct pd_view v = view();
	for (int a = PD_TRIGGER; a <= PD_RESOLVE; a++) {
		struct buf b = BUF_INIT, full = BUF_INIT;
		cr_assert_eq(pd_event_redacted(&v, (enum pd_action)a, &b), 0);
		cr_assert_null(strstr(b.data, KEY));
		cr_assert_null(strstr(b.data, "R0UT1NG"));
		json_t *j = load(&b);
		cr_assert_str_eq(str_at(j, "routing_key"), "<redacted>");
		json_decref(j);
		/* Otherwise the same bytes as the real event. */
		cr_assert_eq(pd_event(&v, (enum pd_action)a, &key, &full), 0);
		char *p = strstr(full.data, KEY);
		cr_assert_not_null(p);
		size_t pre = (size_t)(p - full.data);
		cr_assert_eq(strncmp(b.data, full.data, pre), 0);
		cr_assert_str_eq(b.data + pre + strlen(PD_REDACTED), p + strlen(KEY));
		buf_release(&b);
		buf_release(&full);
	}
}

Test(pagerduty, rejects)
{
	struct pd_view v = view();
	struct buf b = BUF_INIT;
	struct secret unset = {NULL, 0}, spacey, longkey;
	char *long_id = repeat("i", PD_DEDUP_KEY_MAX + 1);
	char *k = repeat("k", PD_ROUTING_KEY_MAX + 1);
	cr_assert_eq(secret_from_bytes("has space", 9, &spacey), 0);
	cr_assert_eq(secret_from_bytes(k, strlen(k), &longkey), 0);
	cr_assert_eq(buf_adds(&b, "keep"), 0);

	cr_assert_eq(pd_event(&v, PD_TRIGGER, &unset, &b), -1);
	cr_assert_eq(pd_event(&v, PD_TRIGGER, NULL, &b), -1);
	cr_assert_eq(pd_event(&v, PD_TRIGGER, &spacey, &b), -1);
	cr_assert_eq(pd_event(&v, PD_TRIGGER, &longkey, &b), -1);
	cr_assert_eq(pd_event(NULL, PD_TRIGGER, &key, &b), -1);
	cr_assert_eq(pd_event(&v, (enum pd_action)7, &key, &b), -1);
	v.id = NULL;
	cr_assert_eq(pd_event(&v, PD_RESOLVE, &key, &b), -1);
	v.id = "";
	cr_assert_eq(pd_event(&v, PD_RESOLVE, &key, &b), -1);
	v.id = long_id;
	cr_assert_eq(pd_event(&v, PD_RESOLVE, &key, &b), -1);
	long_id[PD_DEDUP_KEY_MAX] = '\0';
	cr_assert_eq(pd_event(&v, PD_RESOLVE, &key, &b), 0);
	b.len = 4;
	b.data[4] = '\0';
	v.id = "inc-\xff";
	cr_assert_eq(pd_event(&v, PD_RESOLVE, &key, &b), -1);
	cr_assert_str_eq(b.data, "keep");
	/* A cap the event would pass: nothing written, no key left behind. */
	v = view();
	b.max = 100;
	cr_assert_eq(pd_event(&v, PD_TRIGGER, &key, &b), -1);
	cr_assert_str_eq(b.data, "keep");
	cr_assert_eq(b.len, 4);
	buf_release(&b);
	secret_release(&spacey);
	secret_release(&longkey);
	free(long_id);
	free(k);
}

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* n random bytes, NULs included, plus a terminating NUL. */
static char *random_bytes(size_t n)
{
	char *s = malloc(n + 1);
	cr_assert_not_null(s);
	for (size_t i = 0; i < n; i++)
		s[i] = (char)(rng() & 0xff);
	s[n] = '\0';
	return s;
}

Test(pagerduty, random_inputs_stay_json)
{
	for (int round = 0; round < 200; round++) {
		char *f[6];
		size_t len[6];
		for (int i = 0; i < 6; i++)
			f[i] = random_bytes(len[i] = (size_t)(rng() % 3000));
		struct label ls[2] = {{f[4], f[5], len[5]}, {"k", f[0], len[0]}};
		struct pd_view v = view();
		v.rule = f[0];
		v.service = f[1];
		v.summary_extra = f[2];
		v.decision = f[3];
		v.state = f[4];
		v.source = f[5];
		v.labels = ls;
		v.n_labels = 2;
		json_t *j = event(&v, PD_TRIGGER);
		json_t *p = json_object_get(j, "payload");
		cr_assert_leq(strlen(str_at(p, "summary")), PD_SUMMARY_MAX);
		cr_assert_str_eq(str_at(j, "routing_key"), KEY);
		json_decref(j);
		for (int i = 0; i < 6; i++)
			free(f[i]);
	}
}

Test(pagerduty, change_event_shape)
{
	struct pd_view v = view();
	struct buf b = BUF_INIT;
	v.state = "acting";
	v.source = "service=checkout";
	v.timestamp = "2026-12-02T06:00:00Z";
	cr_assert_eq(pd_change_event(&v, &key, &b), 0);
	cr_assert(strncmp(b.data, "{\"routing_key\":\"" KEY "\",\"payload\":",
			  strlen("{\"routing_key\":\"" KEY "\",\"payload\":")) == 0,
		  "%s", b.data);
	json_t *j = load(&b);
	cr_assert_eq(json_object_size(j), 3);
	json_t *p = json_object_get(j, "payload");
	cr_assert_str_eq(str_at(p, "summary"),
			 "Rollback: HighErrorRate on checkout: acting - error rate 0.052 above "
			 "0.01 for 2m");
	cr_assert_str_eq(str_at(p, "source"), "service=checkout");
	cr_assert_str_eq(str_at(p, "timestamp"), "2026-12-02T06:00:00Z");
	cr_assert_null(json_object_get(p, "severity"), "change events have no severity");
	json_t *d = json_object_get(p, "custom_details");
	cr_assert_str_eq(str_at(d, "incident"), ID);
	cr_assert_str_eq(str_at(d, "rule"), "HighErrorRate");
	cr_assert_str_eq(str_at(json_object_get(d, "labels"), "severity"), "page");
	json_t *l = json_object_get(j, "links");
	cr_assert_eq(json_array_size(l), 2);
	cr_assert_str_eq(str_at(json_array_get(l, 0), "href"), ACK_URL);
	cr_assert_str_eq(str_at(json_array_get(l, 0), "text"), "Incident in rollbackd");
	cr_assert_str_eq(str_at(json_array_get(l, 1), "href"), GEN_URL);
	json_decref(j);
	buf_release(&b);

	/* Without a source, links or timestamp: rollbackd, no links member. */
	v.source = NULL;
	v.timestamp = NULL;
	v.ack_url = v.generator_url = NULL;
	cr_assert_eq(pd_change_event(&v, &key, &b), 0);
	j = load(&b);
	cr_assert_str_eq(str_at(json_object_get(j, "payload"), "source"), "rollbackd");
	cr_assert_null(json_object_get(json_object_get(j, "payload"), "timestamp"));
	cr_assert_null(json_object_get(j, "links"));
	json_decref(j);
	buf_release(&b);
	struct secret none = {0};
	cr_assert_eq(pd_change_event(&v, &none, &b), -1);
	cr_assert_eq(b.len, 0);
}
