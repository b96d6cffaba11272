/*
 * Unit tests for alert: the Alertmanager v4 webhook parser, its error
 * messages (exact, since they reach Alertmanager's logs in a 400), limits,
 * label sets and Alertmanager's fingerprint.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollbackd/alert.h"
#include "rollbackd/buf.h"

static char *read_data(const char *name, size_t *len)
{
	const char *dir = getenv("ROLLBACKD_TEST_DATA");
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s", dir ? dir : "tests/data", name);
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "cannot open %s (set ROLLBACKD_TEST_DATA)", path);
	struct buf b = BUF_INIT;
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		cr_assert_eq(buf_add(&b, chunk, n), 0);
	fclose(f);
	return buf_detach(&b, len);
}

static enum alert_parse_result parse_with(const char *s, const struct alert_limits *lim,
					  struct webhook *wh, struct error *err)
{
	return alert_parse_webhook(s, strlen(s), lim, wh, err);
}

static void assert_label(const struct label_set *set, const char *name, const char *value)
{
	const struct label *l = label_set_get(set, name);
	cr_assert_not_null(l, "label %s missing", name);
	cr_assert_str_eq(l->name, name);
	cr_assert_str_eq(l->value, value, "label %s", name);
	cr_assert_eq(l->value_len, strlen(value), "label %s", name);
}

static void assert_sorted(const struct label_set *set)
{
	for (size_t i = 1; i < set->n; i++)
		cr_assert_lt(strcmp(set->items[i - 1].name, set->items[i].name), 0, "%s before %s",
			     set->items[i - 1].name, set->items[i].name);
}

static struct timestamp ts(const char *s)
{
	struct timestamp t;
	cr_assert_eq(timestamp_parse(s, strlen(s), &t), 0, "%s", s);
	return t;
}

static void assert_ts(struct timestamp got, const char *want)
{
	struct timestamp w = ts(want);
	cr_assert_eq(got.sec, w.sec, "want %s", want);
	cr_assert_eq(got.nsec, w.nsec, "want %s", want);
}

#define GEN_URL                                                                                    \
	"http://prometheus-0.example.com:9090/graph?g0.expr=sum+by+%28service"                     \
	"%2C+instance%29+%28rate%28http_requests_total%7Bcode%3D~%225..%22%7D"                     \
	"%5B5m%5D%29%29+%2F+sum+by+%28service%2C+instance%29+%28rate%28http_"                      \
	"requests_total%5B5m%5D%29%29+%3E+0.05&g0.tab=1"
#define RUNBOOK                                                                                    \
	"https://runbooks.example.com/checkout/high-error-rate?env=prod&team="                     \
	"payments"

static void assert_firing_alert(const struct alert *a, const char *instance, const char *pod,
				const char *pct, const char *starts, const char *fp)
{
	char desc[128];
	cr_assert_eq(a->status, ALERT_FIRING);
	cr_assert_eq(a->labels.n, 7);
	assert_sorted(&a->labels);
	static const char *names[] = {"alertname", "instance", "job",	  "namespace",
				      "pod",	   "service",  "severity"};
	for (size_t i = 0; i < 7; i++)
		cr_assert_str_eq(a->labels.items[i].name, names[i]);
	assert_label(&a->labels, "alertname", "HighErrorRate");
	assert_label(&a->labels, "instance", instance);
	assert_label(&a->labels, "job", "checkout");
	assert_label(&a->labels, "namespace", "shop");
	assert_label(&a->labels, "pod", pod);
	assert_label(&a->labels, "service", "checkout");
	assert_label(&a->labels, "severity", "page");
	cr_assert_eq(a->annotations.n, 3);
	assert_sorted(&a->annotations);
	snprintf(desc, sizeof(desc), "Error ratio is %s \xe2\x80\x94 above the 5%% SLO for 5m.",
		 pct);
	assert_label(&a->annotations, "description", desc);
	assert_label(&a->annotations, "runbook_url", RUNBOOK);
	assert_label(&a->annotations, "summary", "checkout is failing <5xx>");
	assert_ts(a->starts_at, starts);
	cr_assert(timestamp_is_zero(a->ends_at));
	cr_assert_str_eq(a->generator_url, GEN_URL);
	cr_assert_str_eq(a->fingerprint, fp);
	/* what Alertmanager sent is what we compute from the labels */
	char computed[17];
	alert_fingerprint(&a->labels, computed);
	cr_assert_str_eq(computed, fp);
}

Test(alert, firing_sample_every_field)
{
	size_t len;
	char *body = read_data("am_firing_3.json", &len);
	cr_assert_eq(body[len - 1], '\n', "sample keeps Go's trailing newline");
	struct webhook wh;
	struct error err;
	struct alert_limits lim = ALERT_LIMITS_DEFAULT;
	cr_assert_eq(alert_parse_webhook(body, len, &lim, &wh, &err), ALERT_PARSE_OK, "%s",
		     err.msg);
	free(body); /* nothing may point into the body */

	cr_assert_str_eq(wh.version, "4");
	cr_assert_str_eq(wh.group_key, "{}/{severity=\"page\"}:{alertname="
				       "\"HighErrorRate\", service=\"checkout\"}");
	cr_assert_eq(wh.truncated_alerts, 0);
	cr_assert_eq(wh.status, ALERT_FIRING);
	cr_assert_str_eq(wh.receiver, "rollbackd");
	cr_assert_str_eq(wh.external_url, "http://alertmanager.example.com:9093");

	cr_assert_eq(wh.group_labels.n, 2);
	assert_label(&wh.group_labels, "alertname", "HighErrorRate");
	assert_label(&wh.group_labels, "service", "checkout");
	cr_assert_eq(wh.common_labels.n, 5);
	assert_sorted(&wh.common_labels);
	assert_label(&wh.common_labels, "alertname", "HighErrorRate");
	assert_label(&wh.common_labels, "job", "checkout");
	assert_label(&wh.common_labels, "namespace", "shop");
	assert_label(&wh.common_labels, "service", "checkout");
	assert_label(&wh.common_labels, "severity", "page");
	cr_assert_null(label_set_get(&wh.common_labels, "instance"));
	cr_assert_eq(wh.common_annotations.n, 2);
	assert_label(&wh.common_annotations, "runbook_url", RUNBOOK);
	assert_label(&wh.common_annotations, "summary", "checkout is failing <5xx>");

	cr_assert_eq(wh.n_alerts, 3);
	assert_firing_alert(&wh.alerts[0], "10.0.3.17:8080", "checkout-7d9f8b6c5-2xkqz", "7.3%",
			    "2023-06-12T08:41:15.482Z", "a7c5d3acfbe8752b");
	assert_firing_alert(&wh.alerts[1], "10.0.3.18:8080", "checkout-7d9f8b6c5-9mw4t", "12.81%",
			    "2023-06-12T08:41:45.48Z", "147ce63e86b8ca89");
	assert_firing_alert(&wh.alerts[2], "10.0.4.2:8080", "checkout-7d9f8b6c5-lq5vn", "5.02%",
			    "2023-06-12T08:42:15.123456789Z", "06366056a743ab9a");
	cr_assert_eq(wh.alerts[0].starts_at.sec, 1686559275LL);
	cr_assert_eq(wh.alerts[0].starts_at.nsec, 482000000);
	cr_assert_eq(wh.alerts[1].starts_at.nsec, 480000000);
	cr_assert_eq(wh.alerts[2].starts_at.nsec, 123456789);
	cr_assert_eq(wh.alerts[0].ends_at.sec, TIMESTAMP_GO_ZERO_SEC);

	webhook_release(&wh);
	cr_assert_null(wh.arena_);
	cr_assert_null(wh.alerts);
	cr_assert_eq(wh.n_alerts, 0);
	webhook_release(&wh); /* a released webhook may be released again */
}

Test(alert, resolved_sample)
{
	size_t len;
	char *body = read_data("am_resolved.json", &len);
	struct webhook wh;
	struct error err;
	cr_assert_eq(alert_parse_webhook(body, len, NULL, &wh, &err), ALERT_PARSE_OK, "%s",
		     err.msg);
	free(body);
	cr_assert_eq(wh.status, ALERT_RESOLVED);
	cr_assert_eq(wh.n_alerts, 1);
	const struct alert *a = &wh.alerts[0];
	cr_assert_eq(a->status, ALERT_RESOLVED);
	assert_ts(a->starts_at, "2023-06-12T08:41:15.482Z");
	assert_ts(a->ends_at, "2023-06-12T09:03:45.482Z");
	cr_assert_not(timestamp_is_zero(a->ends_at));
	cr_assert_eq(timestamp_diff_ms(a->ends_at, a->starts_at), 1350000);
	cr_assert_str_eq(a->fingerprint, "a7c5d3acfbe8752b");
	cr_assert_eq(wh.common_labels.n, 7);
	cr_assert_eq(wh.common_annotations.n, 3);
	webhook_release(&wh);
}

Test(alert, minimal_payload_gets_defaults)
{
	size_t len;
	char *body = read_data("am_minimal.json", &len);
	struct webhook wh;
	struct error err;
	cr_assert_eq(alert_parse_webhook(body, len, NULL, &wh, &err), ALERT_PARSE_OK, "%s",
		     err.msg);
	free(body);
	cr_assert_str_eq(wh.group_key, "{}:{alertname=\"DiskFull\"}");
	cr_assert_eq(wh.group_labels.n, 0);
	cr_assert_null(wh.group_labels.items);
	cr_assert_eq(wh.common_labels.n, 0);
	cr_assert_eq(wh.common_annotations.n, 0);
	cr_assert_str_eq(wh.external_url, "");
	cr_assert_eq(wh.truncated_alerts, 0);
	cr_assert_eq(wh.n_alerts, 1);
	const struct alert *a = &wh.alerts[0];
	/* sent unsorted, kept sorted */
	cr_assert_eq(a->labels.n, 3);
	cr_assert_str_eq(a->labels.items[0].name, "alertname");
	cr_assert_str_eq(a->labels.items[1].name, "instance");
	cr_assert_str_eq(a->labels.items[2].name, "severity");
	assert_label(&a->labels, "severity", "warning");
	cr_assert_eq(a->annotations.n, 0);
	cr_assert_null(label_set_get(&a->annotations, "summary"));
	/* 23:30:00.1+02:00 on a leap day */
	cr_assert_eq(a->starts_at.sec, 1709242200LL);
	cr_assert_eq(a->starts_at.nsec, 100000000);
	cr_assert(timestamp_is_zero(a->ends_at));
	cr_assert_str_eq(a->generator_url, "");
	/* absent fingerprint: computed like Alertmanager (checked in Python) */
	cr_assert_str_eq(a->fingerprint, "72f53153853b9cde");
	webhook_release(&wh);
}

#define HEAD "{\"version\":\"4\",\"status\":\"firing\",\"receiver\":\"r\",\"groupKey\":\"k\","
#define ALERT_OK                                                                                   \
	"{\"status\":\"firing\",\"labels\":{\"alertname\":\"A\"},\"startsAt\":\"2023-06-12T08:41:" \
	"15Z\"}"

Test(alert, empty_alerts_array_is_fine)
{
	struct webhook wh;
	struct error err;
	cr_assert_eq(parse_with(HEAD "\"alerts\":[]}", NULL, &wh, &err), ALERT_PARSE_OK, "%s",
		     err.msg);
	cr_assert_eq(wh.n_alerts, 0);
	cr_assert_null(wh.alerts);
	webhook_release(&wh);
}

Test(alert, unknown_keys_and_nulls_for_optional_fields)
{
	const char *body = HEAD "\"alerts\":[{\"status\":\"resolved\",\"labels\":{\"a\":\"1\"},"
				"\"startsAt\":\"2023-06-12T08:41:15Z\",\"annotations\":null,"
				"\"endsAt\":null,\"generatorURL\":null,\"fingerprint\":null,"
				"\"silencedBy\":[\"x\"],\"extra\":{\"deep\":[1,2,{}]}}],"
				"\"groupLabels\":null,\"commonLabels\":null,"
				"\"commonAnnotations\":null,\"externalURL\":null,"
				"\"truncatedAlerts\":null,\"newField\":true}\r\n\t ";
	struct webhook wh;
	struct error err;
	cr_assert_eq(parse_with(body, NULL, &wh, &err), ALERT_PARSE_OK, "%s", err.msg);
	cr_assert_eq(wh.group_labels.n, 0);
	cr_assert_str_eq(wh.external_url, "");
	cr_assert_eq(wh.truncated_alerts, 0);
	cr_assert_eq(wh.alerts[0].status, ALERT_RESOLVED);
	cr_assert_eq(wh.alerts[0].annotations.n, 0);
	cr_assert(timestamp_is_zero(wh.alerts[0].ends_at));
	cr_assert_str_eq(wh.alerts[0].generator_url, "");
	char fp[17];
	alert_fingerprint(&wh.alerts[0].labels, fp);
	cr_assert_str_eq(wh.alerts[0].fingerprint, fp);
	webhook_release(&wh);
}

Test(alert, truncated_alerts_and_sent_fingerprint)
{
	struct webhook wh;
	struct error err;
	const char *body = HEAD "\"truncatedAlerts\":17,\"alerts\":[{\"status\":"
				"\"firing\",\"labels\":{\"a\":\"1\"},\"startsAt\":"
				"\"2023-06-12T08:41:15Z\",\"fingerprint\":\"not-hex\"}]}";
	cr_assert_eq(parse_with(body, NULL, &wh, &err), ALERT_PARSE_OK, "%s", err.msg);
	cr_assert_eq(wh.truncated_alerts, 17);
	cr_assert_str_eq(wh.alerts[0].fingerprint, "not-hex"); /* as sent */
	webhook_release(&wh);
}

Test(alert, values_keep_nul_and_utf8)
{
	const char *body = HEAD "\"alerts\":[{\"status\":\"firing\",\"startsAt\":"
				"\"2023-06-12T08:41:15Z\",\"labels\":{\"a\":\"x\\u0000y\","
				"\"b\":\"\\u00e9\\ud83d\\ude00\",\"c\":\"\"}}]}";
	struct webhook wh;
	struct error err;
	cr_assert_eq(parse_with(body, NULL, &wh, &err), ALERT_PARSE_OK, "%s", err.msg);
	const struct label *a = label_set_get(&wh.alerts[0].labels, "a");
	cr_assert_eq(a->value_len, 3);
	cr_assert_eq(memcmp(a->value, "x\0y", 4), 0); /* and NUL-terminated */
	assert_label(&wh.alerts[0].labels, "b", "\xc3\xa9\xf0\x9f\x98\x80");
	assert_label(&wh.alerts[0].labels, "c", "");
	/* the NUL and what follows count in the fingerprint */
	char fp[17];
	struct label l = {"a", "x\0y", 3};
	struct label_set one = {&l, 1};
	alert_fingerprint(&one, fp);
	cr_assert_str_eq(fp, "52f416211abf4a8d");
	l.value_len = 1;
	alert_fingerprint(&one, fp);
	cr_assert_str_eq(fp, "d2c7718192a8a294");
	webhook_release(&wh);
}

Test(alert, body_need_not_be_nul_terminated)
{
	size_t len;
	char *body = read_data("am_firing_3.json", &len);
	/* an exact-size copy: ASan reports any read past len */
	char *exact = malloc(len);
	memcpy(exact, body, len);
	free(body);
	struct webhook wh;
	struct error err;
	cr_assert_eq(alert_parse_webhook(exact, len, NULL, &wh, &err), ALERT_PARSE_OK, "%s",
		     err.msg);
	cr_assert_eq(wh.n_alerts, 3);
	webhook_release(&wh);
	/* the same bytes followed by garbage outside len */
	char *more = malloc(len + 5);
	memcpy(more, exact, len);
	memcpy(more + len, "}}}}}", 5);
	cr_assert_eq(alert_parse_webhook(more, len, NULL, &wh, &err), ALERT_PARSE_OK, "%s",
		     err.msg);
	webhook_release(&wh);
	free(more);
	free(exact);
}

struct bad_case {
	const char *body;
	enum alert_parse_result rc;
	const char *msg;
};

static void check_bad(const struct bad_case *c)
{
	struct webhook wh;
	struct error err;
	memset(&wh, 0x5a, sizeof(wh)); /* must come back zeroed */
	enum alert_parse_result rc =
	    alert_parse_webhook(c->body, c->body ? strlen(c->body) : 0, NULL, &wh, &err);
	cr_assert_eq(rc, c->rc, "%s: got %d (%s), want %d", c->body, rc, err.msg, c->rc);
	cr_assert_str_eq(err.msg, c->msg, "for %s", c->body);
	cr_assert_null(wh.arena_);
	cr_assert_null(wh.alerts);
	cr_assert_eq(wh.n_alerts, 0);
	cr_assert_null(wh.version);
	webhook_release(&wh);
}

#define A0(fields) HEAD "\"alerts\":[" fields "]}"

Test(alert, errors_empty_and_json)
{
	static const struct bad_case cases[] = {
	    {"", ALERT_PARSE_EMPTY, "body: empty"},
	    {" \r\n\t\n", ALERT_PARSE_EMPTY, "body: empty"},
	    {"\n", ALERT_PARSE_EMPTY, "body: empty"},
	    {"{", ALERT_PARSE_JSON,
	     "invalid JSON at line 1, column 1: string or '}' expected "
	     "near end of file"},
	    {"{\"version\":\"4\",}", ALERT_PARSE_JSON,
	     "invalid JSON at line 1, column 16: string or '}' expected "
	     "near '}'"},
	    {"{\"a\":1,\n\"a\":2}", ALERT_PARSE_JSON,
	     "invalid JSON at line 2, column 3: duplicate object key near "
	     "'\"a\"'"},
	    {"{}\n{}", ALERT_PARSE_JSON,
	     "invalid JSON at line 2, column 1: end of file expected near "
	     "'{'"},
	    {"nul", ALERT_PARSE_JSON, "invalid JSON at line 1, column 3: invalid token near 'nul'"},
	    /* raw non-ASCII in jansson's text is escaped, never copied */
	    {"{\"a\":\xc3\xa9}", ALERT_PARSE_JSON,
	     "invalid JSON at line 1, column 6: invalid token near "
	     "'\\xc3\\xa9'"},
	    {"{\"a\":\"\xff\"}", ALERT_PARSE_JSON,
	     "invalid JSON at line 1, column 6: unable to decode byte 0xff "
	     "near '\"'"},
	    {"{\"a\\u0000b\":1}", ALERT_PARSE_JSON,
	     "invalid JSON at line 1, column 11: NUL byte in object key not "
	     "supported near '\"a\\u0000b\"'"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_bad(&cases[i]);
	struct bad_case null_body = {NULL, ALERT_PARSE_EMPTY, "body: empty"};
	check_bad(&null_body);
}

Test(alert, errors_top_level)
{
	static const struct bad_case cases[] = {
	    {"[]", ALERT_PARSE_INVALID, "body: expected a JSON object, got an array"},
	    {"\"4\"", ALERT_PARSE_INVALID, "body: expected a JSON object, got a string"},
	    {"4\n", ALERT_PARSE_INVALID, "body: expected a JSON object, got a number"},
	    {"null", ALERT_PARSE_INVALID, "body: expected a JSON object, got null"},
	    {"{}", ALERT_PARSE_INVALID, "version: missing"},
	    {"{\"version\":\"3\"}", ALERT_PARSE_INVALID, "version: expected \"4\", got \"3\""},
	    {"{\"version\":4}", ALERT_PARSE_INVALID, "version: expected a string, got a number"},
	    {"{\"version\":\"\"}", ALERT_PARSE_INVALID, "version: expected \"4\", got \"\""},
	    {"{\"version\":\"4\"}", ALERT_PARSE_INVALID, "status: missing"},
	    {"{\"version\":\"4\",\"status\":\"ok\"}", ALERT_PARSE_INVALID,
	     "status: expected \"firing\" or \"resolved\", got \"ok\""},
	    {"{\"version\":\"4\",\"status\":\"Firing\"}", ALERT_PARSE_INVALID,
	     "status: expected \"firing\" or \"resolved\", got \"Firing\""},
	    {"{\"version\":\"4\",\"status\":true}", ALERT_PARSE_INVALID,
	     "status: expected a string, got a boolean"},
	    {"{\"version\":\"4\",\"status\":\"firing\"}", ALERT_PARSE_INVALID, "receiver: missing"},
	    {"{\"version\":\"4\",\"status\":\"firing\",\"receiver\":1}", ALERT_PARSE_INVALID,
	     "receiver: expected a string, got a number"},
	    {"{\"version\":\"4\",\"status\":\"firing\",\"receiver\":\"r\"}", ALERT_PARSE_INVALID,
	     "groupKey: missing"},
	    {"{\"version\":\"4\",\"status\":\"firing\",\"receiver\":\"r\","
	     "\"groupKey\":null}",
	     ALERT_PARSE_INVALID, "groupKey: expected a string, got null"},
	    {HEAD "\"x\":1}", ALERT_PARSE_INVALID, "alerts: missing"},
	    {HEAD "\"alerts\":{}}", ALERT_PARSE_INVALID,
	     "alerts: expected an array, got an object"},
	    {HEAD "\"alerts\":null}", ALERT_PARSE_INVALID, "alerts: expected an array, got null"},
	    {HEAD "\"alerts\":[],\"groupLabels\":\"x\"}", ALERT_PARSE_INVALID,
	     "groupLabels: expected an object, got a string"},
	    {HEAD "\"alerts\":[],\"commonLabels\":{\"job\":[]}}", ALERT_PARSE_INVALID,
	     "commonLabels.job: expected a string, got an array"},
	    {HEAD "\"alerts\":[],\"commonAnnotations\":{\"summary\":null}}", ALERT_PARSE_INVALID,
	     "commonAnnotations.summary: expected a string, got null"},
	    {HEAD "\"alerts\":[],\"externalURL\":{}}", ALERT_PARSE_INVALID,
	     "externalURL: expected a string, got an object"},
	    {HEAD "\"alerts\":[],\"truncatedAlerts\":-1}", ALERT_PARSE_INVALID,
	     "truncatedAlerts: expected a non-negative integer, got -1"},
	    {HEAD "\"alerts\":[],\"truncatedAlerts\":\"3\"}", ALERT_PARSE_INVALID,
	     "truncatedAlerts: expected a non-negative integer, got a string"},
	    {HEAD "\"alerts\":[],\"truncatedAlerts\":1.5}", ALERT_PARSE_INVALID,
	     "truncatedAlerts: expected a non-negative integer, got a number"},
	    /* the alerts' own errors come after the top-level fields */
	    {HEAD "\"alerts\":[1],\"externalURL\":1}", ALERT_PARSE_INVALID,
	     "externalURL: expected a string, got a number"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_bad(&cases[i]);
}

Test(alert, errors_in_alerts)
{
	static const struct bad_case cases[] = {
	    {A0("\"x\""), ALERT_PARSE_INVALID, "alerts[0]: expected an object, got a string"},
	    {A0(ALERT_OK ",[]"), ALERT_PARSE_INVALID,
	     "alerts[1]: expected an object, got an array"},
	    {A0("{}"), ALERT_PARSE_INVALID, "alerts[0].status: missing"},
	    {A0("{\"status\":\"pending\"}"), ALERT_PARSE_INVALID,
	     "alerts[0].status: expected \"firing\" or \"resolved\", got "
	     "\"pending\""},
	    {A0("{\"status\":\"firing\"}"), ALERT_PARSE_INVALID, "alerts[0].labels: missing"},
	    {A0("{\"status\":\"firing\",\"labels\":{}}"), ALERT_PARSE_INVALID,
	     "alerts[0].labels: expected at least one label"},
	    {A0("{\"status\":\"firing\",\"labels\":[]}"), ALERT_PARSE_INVALID,
	     "alerts[0].labels: expected an object, got an array"},
	    {A0("{\"status\":\"firing\",\"labels\":null}"), ALERT_PARSE_INVALID,
	     "alerts[0].labels: expected an object, got null"},
	    {A0(ALERT_OK "," ALERT_OK ",{\"status\":\"firing\",\"labels\":"
			 "{\"alertname\":\"A\",\"severity\":3}}"),
	     ALERT_PARSE_INVALID, "alerts[2].labels.severity: expected a string, got a number"},
	    {A0("{\"status\":\"firing\",\"labels\":{\"foo bar\":1}}"), ALERT_PARSE_INVALID,
	     "alerts[0].labels[\"foo bar\"]: expected a string, got a number"},
	    {A0("{\"status\":\"firing\",\"labels\":{\"a\":\"1\",\"\":\"x\"}}"), ALERT_PARSE_INVALID,
	     "alerts[0].labels: empty name"},
	    {A0("{\"status\":\"firing\",\"labels\":{\"a\":\"1\"}}"), ALERT_PARSE_INVALID,
	     "alerts[0].startsAt: missing"},
	    {A0("{\"status\":\"firing\",\"labels\":{\"a\":\"1\"},\"startsAt\":"
		"1686559275}"),
	     ALERT_PARSE_INVALID, "alerts[0].startsAt: expected a string, got a number"},
	    {A0(ALERT_OK ",{\"status\":\"firing\",\"labels\":{\"a\":\"1\"},"
			 "\"startsAt\":\"yesterday\"}"),
	     ALERT_PARSE_INVALID, "alerts[1].startsAt: not an RFC 3339 time: \"yesterday\""},
	    {A0("{\"status\":\"firing\",\"labels\":{\"a\":\"1\"},\"startsAt\":"
		"\"2023-06-12T08:41:15Z\",\"endsAt\":\"2023-02-30T00:00:00Z\"}"),
	     ALERT_PARSE_INVALID,
	     "alerts[0].endsAt: not an RFC 3339 time: "
	     "\"2023-02-30T00:00:00Z\""},
	    {A0("{\"status\":\"firing\",\"labels\":{\"a\":\"1\"},\"startsAt\":"
		"\"2023-06-12T08:41:15Z\",\"annotations\":[]}"),
	     ALERT_PARSE_INVALID, "alerts[0].annotations: expected an object, got an array"},
	    {A0("{\"status\":\"firing\",\"labels\":{\"a\":\"1\"},\"startsAt\":"
		"\"2023-06-12T08:41:15Z\",\"annotations\":{\"summary\":false}}"),
	     ALERT_PARSE_INVALID,
	     "alerts[0].annotations.summary: expected a string, got a "
	     "boolean"},
	    {A0("{\"status\":\"firing\",\"labels\":{\"a\":\"1\"},\"startsAt\":"
		"\"2023-06-12T08:41:15Z\",\"generatorURL\":true}"),
	     ALERT_PARSE_INVALID, "alerts[0].generatorURL: expected a string, got a boolean"},
	    {A0("{\"status\":\"firing\",\"labels\":{\"a\":\"1\"},\"startsAt\":"
		"\"2023-06-12T08:41:15Z\",\"fingerprint\":12}"),
	     ALERT_PARSE_INVALID, "alerts[0].fingerprint: expected a string, got a number"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_bad(&cases[i]);
}

Test(alert, echoed_values_are_short_and_escaped)
{
	static const struct bad_case cases[] = {
	    /* quotes, backslashes and control bytes are escaped */
	    {"{\"version\":\"4\",\"status\":\"a\\\"b\\\\c\\n\\u0000\\u007f\"}", ALERT_PARSE_INVALID,
	     "status: expected \"firing\" or \"resolved\", got "
	     "\"a\\\"b\\\\c\\u000a\\u0000\\u007f\""},
	    /* long values stop after 64 bytes */
	    {"{\"version\":\"4\",\"status\":\"firing\",\"receiver\":\"r\","
	     "\"groupKey\":\"k\",\"alerts\":[{\"status\":\"firing\",\"labels\":"
	     "{\"a\":\"1\"},\"startsAt\":\"0123456789012345678901234567890123"
	     "456789012345678901234567890123456789\"}]}",
	     ALERT_PARSE_INVALID,
	     "alerts[0].startsAt: not an RFC 3339 time: \"01234567890123456"
	     "78901234567890123456789012345678901234567890123\"..."},
	    /* odd label names are quoted in the path, and cut too */
	    {A0("{\"status\":\"firing\",\"labels\":{\"a.b\\\"c\":1}}"), ALERT_PARSE_INVALID,
	     "alerts[0].labels[\"a.b\\\"c\"]: expected a string, got a "
	     "number"},
	    {A0("{\"status\":\"firing\",\"labels\":{\"0a\":1}}"), ALERT_PARSE_INVALID,
	     "alerts[0].labels[\"0a\"]: expected a string, got a number"},
	    {A0("{\"status\":\"firing\",\"labels\":{\"k_"
		"123456789012345678901234567890123456789012345678901234567890"
		"12345\":1}}"),
	     ALERT_PARSE_INVALID,
	     "alerts[0].labels[\"k_1234567890123456789012345678901234567890"
	     "1234567890123456789012\"...]: expected a string, got a number"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_bad(&cases[i]);

	/* never cut in the middle of a UTF-8 character: 63 'a' + "é" puts
	 * the 64-byte cut inside the "é", so the excerpt stops before it */
	char body[128], want[128];
	memset(body, 'a', sizeof(body));
	memcpy(body, "{\"version\":\"", 12);
	memcpy(body + 12 + 63, "\xc3\xa9\xc3\xa9\"}", 7);
	body[12 + 63 + 7] = '\0';
	memset(want, 'a', sizeof(want));
	memcpy(want, "version: expected \"4\", got \"", 28);
	memcpy(want + 28 + 63, "\"...", 5);
	struct bad_case utf8 = {body, ALERT_PARSE_INVALID, want};
	check_bad(&utf8);
	/* 62 'a' + "é": the cut falls after the "é", which is kept whole */
	memcpy(body + 12 + 62, "\xc3\xa9\xc3\xa9\"}", 7);
	body[12 + 62 + 7] = '\0';
	memcpy(want + 28 + 62, "\xc3\xa9\"...", 7);
	check_bad(&utf8);
}

/* A payload of n alerts with k labels each, built like Alertmanager would. */
static char *build_payload(size_t n, size_t k)
{
	struct buf b = BUF_INIT;
	cr_assert_eq(buf_adds(&b, HEAD "\"alerts\":["), 0);
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(buf_addf(&b, "%s{\"status\":\"firing\",\"labels\":{", i ? "," : ""),
			     0);
		for (size_t j = 0; j < k; j++)
			cr_assert_eq(buf_addf(&b, "%s\"l%04zu\":\"value %zu of alert %zu\"",
					      j ? "," : "", j, j, i),
				     0);
		cr_assert_eq(buf_addf(&b, "},\"startsAt\":\"2023-06-12T08:41:%02zu.%zuZ\"}", i % 60,
				      i % 9 + 1),
			     0);
	}
	cr_assert_eq(buf_adds(&b, "]}\n"), 0);
	return buf_detach(&b, NULL);
}

Test(alert, limits)
{
	struct alert_limits lim = {3, 4};
	struct webhook wh;
	struct error err;
	char *body = build_payload(3, 4);
	cr_assert_eq(parse_with(body, &lim, &wh, &err), ALERT_PARSE_OK, "%s", err.msg);
	cr_assert_eq(wh.n_alerts, 3);
	webhook_release(&wh);
	free(body);

	body = build_payload(4, 1);
	cr_assert_eq(parse_with(body, &lim, &wh, &err), ALERT_PARSE_INVALID);
	cr_assert_str_eq(err.msg, "alerts: 4 alerts exceed the limit of 3");
	cr_assert_null(wh.arena_);
	free(body);

	body = build_payload(1, 5);
	cr_assert_eq(parse_with(body, &lim, &wh, &err), ALERT_PARSE_INVALID);
	cr_assert_str_eq(err.msg, "alerts[0].labels: 5 entries exceed the limit of 4");
	free(body);

	const char *ann = A0("{\"status\":\"firing\",\"labels\":{\"a\":\"1\"},"
			     "\"startsAt\":\"2023-06-12T08:41:15Z\",\"annotations\":"
			     "{\"a\":\"\",\"b\":\"\",\"c\":\"\",\"d\":\"\",\"e\":\"\"}}");
	cr_assert_eq(parse_with(ann, &lim, &wh, &err), ALERT_PARSE_INVALID);
	cr_assert_str_eq(err.msg, "alerts[0].annotations: 5 entries exceed the limit of 4");
	const char *common = HEAD "\"alerts\":[],\"commonLabels\":"
				  "{\"a\":\"\",\"b\":\"\",\"c\":\"\",\"d\":\"\",\"e\":\"\"}}";
	cr_assert_eq(parse_with(common, &lim, &wh, &err), ALERT_PARSE_INVALID);
	cr_assert_str_eq(err.msg, "commonLabels: 5 entries exceed the limit of 4");

	/* the 3-alert sample needs room for 3 alerts */
	size_t len;
	char *sample = read_data("am_firing_3.json", &len);
	struct alert_limits two = {2, 256};
	cr_assert_eq(alert_parse_webhook(sample, len, &two, &wh, &err), ALERT_PARSE_INVALID);
	cr_assert_str_eq(err.msg, "alerts: 3 alerts exceed the limit of 2");
	struct alert_limits six = {10, 6};
	cr_assert_eq(alert_parse_webhook(sample, len, &six, &wh, &err), ALERT_PARSE_INVALID);
	cr_assert_str_eq(err.msg, "alerts[0].labels: 7 entries exceed the limit of 6");
	free(sample);
}

Test(alert, large_payload_spans_arena_chunks)
{
	struct alert_limits lim = {1000, 64};
	char *body = build_payload(500, 40);
	struct webhook wh;
	struct error err;
	cr_assert_eq(parse_with(body, &lim, &wh, &err), ALERT_PARSE_OK, "%s", err.msg);
	free(body);
	cr_assert_eq(wh.n_alerts, 500);
	for (size_t i = 0; i < wh.n_alerts; i++) {
		const struct alert *a = &wh.alerts[i];
		cr_assert_eq(a->labels.n, 40);
		assert_sorted(&a->labels);
		char want[64];
		snprintf(want, sizeof(want), "value 39 of alert %zu", i);
		assert_label(&a->labels, "l0039", want);
		cr_assert_eq(a->starts_at.nsec, (int32_t)(i % 9 + 1) * 100000000);
		cr_assert_eq(strlen(a->fingerprint), 16);
	}
	webhook_release(&wh);
}

Test(alert, label_set_get_binary_search)
{
	struct label items[] = {
	    {"alertname", "A", 1},   {"b", "2", 1},    {"job", "j", 1},
	    {"severity", "page", 4}, {"zone", "z", 1},
	};
	struct label_set set = {items, 5};
	for (size_t i = 0; i < 5; i++)
		cr_assert_eq(label_set_get(&set, items[i].name), &items[i]);
	cr_assert_null(label_set_get(&set, "a"));    /* before the first */
	cr_assert_null(label_set_get(&set, "zzz"));  /* after the last */
	cr_assert_null(label_set_get(&set, "jobs")); /* between */
	cr_assert_null(label_set_get(&set, ""));
	cr_assert_null(label_set_get(&set, NULL));
	cr_assert_null(label_set_get(NULL, "job"));
	struct label_set empty = {NULL, 0};
	cr_assert_null(label_set_get(&empty, "job"));
	struct label_set one = {items, 1};
	cr_assert_eq(label_set_get(&one, "alertname"), &items[0]);
	cr_assert_null(label_set_get(&one, "b"));
}

Test(alert, fingerprint_matches_prometheus_vectors)
{
	/* prometheus/common model/signature_test.go */
	char fp[17];
	struct label_set empty = {NULL, 0};
	alert_fingerprint(&empty, fp);
	cr_assert_str_eq(fp, "cbf29ce484222325"); /* 14695981039346656037 */

	struct label two[] = {{"fear", "love is not enough", 18}, {"name", "garland, briggs", 15}};
	struct label_set set2 = {two, 2};
	alert_fingerprint(&set2, fp);
	cr_assert_str_eq(fp, "507a62d79ee76c9a"); /* 5799056148416392346 */

	struct label one[] = {{"first-label", "first-label-value", 17}};
	struct label_set set1 = {one, 1};
	alert_fingerprint(&set1, fp);
	cr_assert_str_eq(fp, "476b44f5db3e21f9"); /* 5146282821936882169 */

	struct label three[] = {{"first-label", "first-label-value", 17},
				{"second-label", "second-label-value", 18},
				{"third-label", "third-label-value", 17}};
	struct label_set set3 = {three, 3};
	alert_fingerprint(&set3, fp);
	cr_assert_str_eq(fp, "c01c58139d52b4b9"); /* 13843036195897128121 */
}

Test(alert, status_names)
{
	cr_assert_str_eq(alert_status_name(ALERT_FIRING), "firing");
	cr_assert_str_eq(alert_status_name(ALERT_RESOLVED), "resolved");
	cr_assert_str_eq(alert_status_name((enum alert_status)7), "unknown");
}

Test(alert, null_error_and_reuse)
{
	struct webhook wh;
	cr_assert_eq(parse_with("[]", NULL, &wh, NULL), ALERT_PARSE_INVALID);
	cr_assert_eq(parse_with("", NULL, &wh, NULL), ALERT_PARSE_EMPTY);
	cr_assert_eq(parse_with("{", NULL, &wh, NULL), ALERT_PARSE_JSON);
	cr_assert_eq(parse_with(A0(ALERT_OK), NULL, &wh, NULL), ALERT_PARSE_OK);
	webhook_release(&wh);
	webhook_release(NULL);

	/* a success clears a message left by an earlier failure */
	struct error err;
	cr_assert_eq(parse_with("[]", NULL, &wh, &err), ALERT_PARSE_INVALID);
	cr_assert_eq(parse_with(A0(ALERT_OK), NULL, &wh, &err), ALERT_PARSE_OK);
	cr_assert_str_eq(err.msg, "");
	webhook_release(&wh);
}

/* Grafana's documented webhook payloads (tests/data/grafana_webhook*.json,
 * from Grafana's webhook-notifier docs: the current one with "values", and
 * Grafana 9's with "valueString"). */
Test(alert, grafana_documented_payload)
{
	size_t len;
	char *body = read_data("grafana_webhook.json", &len);
	struct webhook wh;
	struct error err = {{0}};
	cr_assert_eq(parse_with(body, NULL, &wh, &err), ALERT_PARSE_OK, "%s", err.msg);
	cr_assert_eq(wh.sender, WEBHOOK_GRAFANA);
	cr_assert_str_eq(wh.version, "1");
	cr_assert_eq(wh.org_id, 1);
	cr_assert_str_eq(wh.state, "alerting");
	cr_assert_str_eq(wh.title, "[FIRING:2]  (blue)");
	cr_assert(strncmp(wh.message, "**Firing**\n\nLabels:\n - alertname = T2\n", 37) == 0);
	cr_assert_str_eq(wh.group_key, "{}:{}");
	cr_assert_str_eq(wh.external_url, "https://play.grafana.org/");
	cr_assert_eq(wh.n_alerts, 2);
	const struct alert *a = &wh.alerts[0];
	assert_label(&a->labels, "alertname", "High memory usage");
	cr_assert_str_eq(a->fingerprint, "c6eadffa33fcdf37");
	cr_assert_str_eq(a->generator_url, "https://play.grafana.org/alerting/1afz29v7z/edit");
	cr_assert_str_eq(a->silence_url,
			 "https://play.grafana.org/alerting/silence/new?alertmanager=grafana&"
			 "matchers=alertname%3DT2%2Cteam%3Dblue%2Czone%3Dus-1");
	cr_assert_str_eq(a->dashboard_url, "");
	cr_assert_str_eq(a->panel_url, "");
	cr_assert_str_eq(a->image_url, "");
	cr_assert_str_eq(a->value_string, "");
	cr_assert_eq(a->values.n, 2);
	assert_label(&a->values, "B", "44.23943737541908");
	assert_label(&a->values, "C", "1");
	assert_ts(a->starts_at, "2021-10-12T07:51:03.157076Z");
	cr_assert(timestamp_is_zero(a->ends_at));
	webhook_release(&wh);
	free(body);

	body = read_data("grafana_webhook_v9.json", &len);
	cr_assert_eq(parse_with(body, NULL, &wh, &err), ALERT_PARSE_OK, "%s", err.msg);
	cr_assert_eq(wh.sender, WEBHOOK_GRAFANA);
	cr_assert_str_eq(wh.alerts[1].value_string,
			 "[ metric='' labels={} value=47043.702386305304 ]");
	cr_assert_eq(wh.alerts[1].values.n, 0);
	webhook_release(&wh);
	free(body);
}

Test(alert, grafana_detected_by_its_fields_not_the_version)
{
	struct webhook wh;
	struct error err = {{0}};
	/* "1" alone is not Grafana */
	const char *v1 = "{\"version\":\"1\",\"status\":\"firing\",\"receiver\":\"r\","
			 "\"groupKey\":\"k\",\"alerts\":[]}";
	cr_assert_eq(parse_with(v1, NULL, &wh, &err), ALERT_PARSE_INVALID);
	cr_assert_str_eq(err.msg, "version: expected \"4\", got \"1\"");
	/* orgId must be an integer */
	const char *badorg = "{\"version\":\"1\",\"orgId\":\"1\",\"state\":\"alerting\","
			     "\"status\":\"firing\",\"receiver\":\"r\",\"groupKey\":\"k\","
			     "\"alerts\":[]}";
	cr_assert_eq(parse_with(badorg, NULL, &wh, &err), ALERT_PARSE_INVALID);
	cr_assert_str_eq(err.msg, "version: expected \"4\", got \"1\"");
	/* orgId plus a silenceURL on the first alert is enough */
	const char *su = "{\"version\":\"1\",\"orgId\":3,\"status\":\"firing\",\"receiver\":\"r\","
			 "\"groupKey\":\"k\",\"alerts\":[{\"status\":\"firing\",\"labels\":"
			 "{\"a\":\"b\"},\"startsAt\":\"2026-01-01T00:00:00Z\",\"silenceURL\":"
			 "\"https://g/s\",\"values\":{\"A\":\"x\"}}]}";
	cr_assert_eq(parse_with(su, NULL, &wh, &err), ALERT_PARSE_INVALID);
	cr_assert_str_eq(err.msg, "alerts[0].values.A: expected a number, got a string");
	/* an Alertmanager v4 payload keeps "" for Grafana's fields */
	const char *am = "{\"version\":\"4\",\"status\":\"firing\",\"receiver\":\"r\","
			 "\"groupKey\":\"k\",\"alerts\":[{\"status\":\"firing\",\"labels\":"
			 "{\"a\":\"b\"},\"startsAt\":\"2026-01-01T00:00:00Z\",\"silenceURL\":"
			 "\"https://g/s\"}]}";
	cr_assert_eq(parse_with(am, NULL, &wh, &err), ALERT_PARSE_OK, "%s", err.msg);
	cr_assert_eq(wh.sender, WEBHOOK_ALERTMANAGER);
	cr_assert_str_eq(wh.alerts[0].silence_url, "");
	cr_assert_str_eq(wh.state, "");
	webhook_release(&wh);
}
