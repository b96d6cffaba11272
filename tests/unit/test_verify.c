/*
 * Unit tests for verify (verify.query's pure core): PromQL escaping, the
 * query's expansion, the classification of /api/v1/query answers, the
 * folding of samples; and the rule and config keys that feed it.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rollbackd/config.h"
#include "rollbackd/rules.h"
#include "rollbackd/verify.h"

static void esc_is(const char *in, size_t n, const char *want)
{
	struct buf b = BUF_INIT;
	cr_assert_eq(verify_promql_escape(&b, in, n), 0);
	cr_assert_eq(buf_addc(&b, '\0'), 0);
	cr_assert_str_eq(b.data, want);
	buf_release(&b);
}

Test(verify, promql_escape)
{
	esc_is("checkout", 8, "checkout");
	esc_is("a\"b", 3, "a\\\"b");
	esc_is("a\\b", 3, "a\\\\b");
	esc_is("x\"}) or vector(0) #", 19, "x\\\"}) or vector(0) #");
	esc_is("l1\nl2\r\t", 7, "l1\\nl2\\r\\t");
	esc_is("\x01\x7f", 2, "\\x01\\x7f");
	esc_is("caf\xc3\xa9", 5, "caf\xc3\xa9"); /* UTF-8 stays as it is */
	esc_is("", 0, "");
}

Test(verify, expand_escapes_label_values_not_the_literal_text)
{
	struct label l[] = {{"service", "a\"b\\c", 5}};
	struct label_set labels = {l, 1}, ann = {NULL, 0};
	struct template_ctx ctx = {
	    .labels = &labels, .annotations = &ann, .incident_id = "inc-1", .rule_name = "r"};
	struct buf out = BUF_INIT;
	struct error err = {""};
	cr_assert_eq(
	    verify_expand_query("up{service=\"{{labels.service}}\"} > 0", &ctx, &out, &err), 0,
	    "%s", err.msg);
	cr_assert_str_eq(out.data, "up{service=\"a\\\"b\\\\c\"} > 0");
	buf_reset(&out);
	cr_assert_eq(verify_expand_query("up{job=\"{{labels.job}}\"}", &ctx, &out, &err), -1);
	cr_assert_str_eq(err.msg, "template '{{labels.job}}': the alert has no label 'job'");
	buf_release(&out);
}

static struct verify_sample classify(int status, const char *terr, const char *body, bool below,
				     double thr)
{
	struct verify_cond c = {below, thr};
	struct verify_sample s;
	verify_sample_classify(status, terr, body, body ? strlen(body) : 0, &c, &s);
	return s;
}

#define VEC(...)                                                                                   \
	"{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[" __VA_ARGS__ "]" \
	"}"                                                                                        \
	"}"
#define SER(svc, v) "{\"metric\":{\"service\":\"" svc "\"},\"value\":[1700000000.5,\"" v "\"]}"

Test(verify, classify_vector_worst_series)
{
	struct verify_sample s =
	    classify(200, NULL, VEC(SER("a", "0.002") "," SER("b", "0.03")), true, 0.01);
	cr_assert(s.ok);
	cr_assert_not(s.holds);
	cr_assert_eq(s.n_series, 2);
	cr_assert_float_eq(s.value, 0.03, 1e-12);
	s = classify(200, NULL, VEC(SER("a", "0.002") "," SER("b", "0.005")), true, 0.01);
	cr_assert(s.ok);
	cr_assert(s.holds);
	cr_assert_float_eq(s.value, 0.005, 1e-12);
	/* above: the lowest series decides */
	s = classify(200, NULL, VEC(SER("a", "1") "," SER("b", "0")), false, 0.5);
	cr_assert(s.ok);
	cr_assert_not(s.holds);
	cr_assert_float_eq(s.value, 0, 1e-12);
	s = classify(200, NULL, VEC(SER("a", "+Inf")), true, 0.5);
	cr_assert(s.ok);
	cr_assert_not(s.holds);
	cr_assert(isinf(s.value));
}

Test(verify, classify_scalar)
{
	struct verify_sample s = classify(
	    200, NULL,
	    "{\"status\":\"success\",\"data\":{\"resultType\":\"scalar\",\"result\":[1,\"0.25\"]}}",
	    true, 0.5);
	cr_assert(s.ok);
	cr_assert(s.holds);
	cr_assert_eq(s.n_series, 1);
	cr_assert_float_eq(s.value, 0.25, 1e-12);
}

Test(verify, classify_failures_are_never_a_pass)
{
	struct verify_sample s = classify(200, NULL, VEC(), true, 0.01);
	cr_assert_not(s.ok);
	cr_assert_not(s.holds);
	cr_assert_str_eq(s.error, "no data: the query returned no series");
	s = classify(200, NULL, VEC(SER("a", "0.001") "," SER("b", "NaN")), true, 0.01);
	cr_assert_not(s.holds);
	cr_assert_str_eq(s.error, "the query returned NaN");
	s = classify(0, "Couldn't connect to server", NULL, true, 0.01);
	cr_assert_not(s.holds);
	cr_assert_str_eq(s.error, "prometheus unreachable: Couldn't connect to server");
	s = classify(
	    400, NULL,
	    "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"1:5: parse error: "
	    "unexpected \\\"}\\\"\"}",
	    true, 0.01);
	cr_assert_not(s.holds);
	cr_assert_str_eq(s.error, "prometheus answered 400: 1:5: parse error: unexpected \"}\"");
	s = classify(503, NULL, "Service Unavailable", true, 0.01);
	cr_assert_str_eq(s.error, "prometheus answered 503");
	s = classify(200, NULL, "not json", true, 0.01);
	cr_assert_str_eq(s.error, "prometheus answered 200 without a success status");
	s = classify(200, NULL,
		     "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[]}}",
		     true, 0.01);
	cr_assert_str_eq(
	    s.error, "prometheus answered result type 'matrix' (expected a vector or a scalar)");
	s = classify(200, NULL, VEC("{\"metric\":{},\"value\":[1,2]}"), true, 0.01);
	cr_assert_str_eq(s.error, "prometheus answered a malformed series");
}

static struct verify_sample good(bool holds)
{
	struct verify_sample s = {.ok = true, .holds = holds, .n_series = 1, .value = 0};
	return s;
}

static struct verify_sample bad(const char *why)
{
	struct verify_sample s = {.ok = false};
	snprintf(s.error, sizeof(s.error), "%s", why);
	return s;
}

Test(verify, effective_after_holding_for)
{
	struct verify_progress p;
	struct verify_sample y = good(true), n = good(false);
	verify_progress_init(&p);
	cr_assert_eq(verify_step(&p, &n, 0, 60000), VERIFY_PENDING);
	cr_assert_eq(verify_step(&p, &y, 15000, 60000), VERIFY_PENDING);
	cr_assert_eq(verify_step(&p, &y, 60000, 60000), VERIFY_PENDING);
	cr_assert_eq(verify_step(&p, &y, 75000, 60000), VERIFY_EFFECTIVE);
	/* a break starts the run again */
	verify_progress_init(&p);
	struct verify_sample e = bad("the query returned NaN");
	cr_assert_eq(verify_step(&p, &y, 0, 30000), VERIFY_PENDING);
	cr_assert_eq(verify_step(&p, &e, 15000, 30000), VERIFY_PENDING);
	cr_assert_eq(verify_step(&p, &y, 30000, 30000), VERIFY_PENDING);
	cr_assert_eq(verify_step(&p, &y, 45000, 30000), VERIFY_PENDING);
	cr_assert_eq(verify_step(&p, &y, 60000, 30000), VERIFY_EFFECTIVE);
	/* for 0: the first holding sample */
	verify_progress_init(&p);
	cr_assert_eq(verify_step(&p, &y, 5, 0), VERIFY_EFFECTIVE);
}

Test(verify, deadline_ineffective_or_inconclusive)
{
	char why[512];
	struct verify_progress p;
	struct verify_sample n = good(false), e = bad("no data: the query returned no series");
	verify_progress_init(&p);
	cr_assert_eq(verify_deadline(&p, why, sizeof(why)), VERIFY_INCONCLUSIVE);
	cr_assert_str_eq(why, "no evaluation of the query finished");
	verify_step(&p, &e, 0, 60000);
	verify_step(&p, &e, 15000, 60000);
	cr_assert_eq(verify_deadline(&p, why, sizeof(why)), VERIFY_INCONCLUSIVE);
	cr_assert_str_eq(why, "no data: the query returned no series (2 of 2 evaluations failed)");
	verify_step(&p, &n, 30000, 60000);
	cr_assert_eq(verify_deadline(&p, why, sizeof(why)), VERIFY_INEFFECTIVE);
	cr_assert_str_eq(why, "the condition did not hold for 'for' (3 evaluations)");
	/* data, then the metric disappears: inconclusive, never ineffective or a pass */
	verify_step(&p, &e, 45000, 60000);
	cr_assert_eq(verify_deadline(&p, why, sizeof(why)), VERIFY_INCONCLUSIVE);
	cr_assert_str_eq(why, "no data: the query returned no series (3 of 4 evaluations failed)");
	cr_assert_str_eq(verify_result_name(VERIFY_INCONCLUSIVE), "inconclusive");
}

/* ---- rules and config ---------------------------------------------------- */

static char *rules_error(const char *verify_json)
{
	char dir[] = "/tmp/test_verify_XXXXXX", path[64];
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/r.json", dir);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f,
		"{\"rules\":[{\"name\":\"r\",\"matchers\":[\"alertname=\\\"A\\\"\"],"
		"\"actions\":[{\"type\":\"exec\",\"argv\":[\"true\"]}],\"verify\":%s}]}\n",
		verify_json);
	fclose(f);
	struct ruleset rs;
	struct error err = {""};
	int rc = rules_load(path, &rs, &err);
	char *msg = NULL;
	if (rc == 0) {
		cr_assert_eq(rs.n_rules, 1);
		const struct rule *r = &rs.rules[0];
		cr_assert_eq(asprintf(&msg, "ok %s %s %g for=%lld interval=%lld",
				      r->verify_query ? r->verify_query : "-",
				      r->verify_below ? "below" : "above", r->verify_threshold,
				      (long long)r->verify_for_ms,
				      (long long)r->verify_interval_ms) > 0,
			     1);
		ruleset_release(&rs);
	} else {
		const char *colon = strstr(err.msg, ": ");
		msg = strdup(colon ? colon + 2 : err.msg);
	}
	unlink(path);
	rmdir(dir);
	return msg;
}

static void rules_say(const char *verify_json, const char *want)
{
	char *got = rules_error(verify_json);
	cr_assert_str_eq(got, want, "verify %s", verify_json);
	free(got);
}

Test(verify, rule_keys)
{
	rules_say("{\"within\":\"10m\",\"query\":\"up{service=\\\"{{labels.service}}\\\"}\","
		  "\"above\":0.5}",
		  "ok up{service=\"{{labels.service}}\"} above 0.5 for=60000 interval=15000");
	rules_say("{\"within\":\"10m\",\"query\":\"x\",\"below\":0.01,\"for\":\"2m\","
		  "\"interval\":\"5s\"}",
		  "ok x below 0.01 for=120000 interval=5000");
	rules_say("{\"within\":\"10m\"}", "ok - above 0 for=60000 interval=15000");
	rules_say("{\"within\":\"10m\",\"query\":\"x\"}",
		  "rules[0].verify: needs 'below' or 'above' with 'query'");
	rules_say("{\"within\":\"10m\",\"query\":\"x\",\"below\":1,\"above\":0}",
		  "rules[0].verify: takes 'below' or 'above', not both");
	rules_say("{\"within\":\"10m\",\"below\":1}", "rules[0].verify.below: needs 'query'");
	rules_say("{\"within\":\"10m\",\"interval\":\"5s\"}",
		  "rules[0].verify.interval: needs 'query'");
	rules_say("{\"within\":\"10m\",\"query\":\"\",\"below\":1}",
		  "rules[0].verify.query: must not be empty");
	rules_say(
	    "{\"within\":\"10m\",\"query\":\"x{a=\\\"{{secret.t}}\\\"}\",\"below\":1}",
	    "rules[0].verify.query: must not name a secret: the query is journaled and shown");
	rules_say("{\"within\":\"10m\",\"query\":\"x{a=\\\"{{lables.a}}\\\"}\",\"below\":1}",
		  "rules[0].verify.query: unknown template root 'lables' in '{{lables.a}}'");
	rules_say("{\"within\":\"10m\",\"query\":7,\"below\":1}",
		  "rules[0].verify.query: expected a string, got a number");
	rules_say("{\"within\":\"10m\",\"query\":\"x\",\"below\":\"1\"}",
		  "rules[0].verify.below: expected a number, got a string");
	rules_say(
	    "{\"within\":\"2m\",\"query\":\"x\",\"below\":1,\"for\":\"2m\"}",
	    "rules[0].verify.for: 2m is not less than 'within' 2m: it could never be effective");
	rules_say("{\"within\":\"1m\",\"query\":\"x\",\"below\":1,\"for\":\"10s\","
		  "\"interval\":\"1m\"}",
		  "rules[0].verify.interval: 1m is not less than 'within' 1m");
	rules_say("{\"within\":\"10m\",\"query\":\"x\",\"below\":1,\"interval\":\"0s\"}",
		  "rules[0].verify.interval: must be more than 0");
	rules_say("{\"query\":\"x\",\"below\":1}", "rules[0].verify: needs 'within'");
	rules_say("{\"within\":\"10m\",\"qurey\":\"x\"}",
		  "rules[0].verify.qurey: unknown key (did you mean 'query'?)");
}

static void config_says(const char *json, const char *want)
{
	struct config cfg;
	struct error err = {""};
	int rc = config_load_text(json, strlen(json), "c.json", &cfg, &err);
	if (!want) {
		cr_assert_eq(rc, 0, "%s", err.msg);
		cr_assert_str_eq(cfg.prometheus_url, "http://prom:9090");
		config_release(&cfg);
	} else {
		cr_assert_eq(rc, -1);
		cr_assert_str_eq(err.msg, want);
	}
}

Test(verify, config_prometheus_url)
{
	config_says("{\"prometheus\":{\"url\":\"http://prom:9090/\"}}", NULL);
	config_says("{\"prometheus\":{\"url\":\"prom:9090\"}}",
		    "c.json: prometheus.url: expected an http:// or https:// URL");
	config_says("{\"prometheus\":{}}", "c.json: prometheus: missing key 'url'");
	config_says("{\"prometheus\":{\"url\":\"http://p\",\"timeout\":\"1s\"}}",
		    "c.json: prometheus.timeout: unknown key");
	struct config cfg;
	cr_assert_eq(config_init(&cfg), 0);
	cr_assert_str_eq(cfg.prometheus_url, "");
	config_release(&cfg);
}
