/*
 * Unit tests for rules: rule-file loading and validation (exact messages,
 * since operators read them in `rollbackd check-rules`), directory order and
 * digest, duplicate names across files, Alertmanager matchers (all four
 * operators, anchoring, escapes, missing labels) and value conditions.
 */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rollbackd/buf.h"
#include "rollbackd/rules.h"

static const char *data_dir(void)
{
	const char *dir = getenv("ROLLBACKD_TEST_DATA");
	return dir ? dir : "tests/data";
}

/* Path of a fixture under tests/data/rules; static buffer per call site is
 * enough for these tests (two at a time at most). */
static const char *rpath(char *out, size_t sz, const char *name)
{
	snprintf(out, sz, "%s/rules/%s", data_dir(), name);
	return out;
}

static void assert_load_error(const char *name, const char *what)
{
	char path[1024], want[2048];
	struct ruleset rs;
	struct error err = {{0}};
	rpath(path, sizeof(path), name);
	memset(&rs, 0xa5, sizeof(rs));
	cr_assert_eq(rules_load(path, &rs, &err), -1, "%s loaded", name);
	cr_assert_eq(rs.n_rules, 0);
	cr_assert_null(rs.rules);
	snprintf(want, sizeof(want), "%s%s", path, what);
	cr_assert_str_eq(err.msg, want);
}

/* ---- loading valid files ------------------------------------------------ */

Test(rules, valid_file_every_field)
{
	char path[1024];
	struct ruleset rs;
	struct error err = {{0}};
	rpath(path, sizeof(path), "valid/full.json");
	cr_assert_eq(rules_load(path, &rs, &err), 0, "%s", err.msg);
	cr_assert_eq(rs.n_rules, 2);
	cr_assert_eq(strlen(rs.digest), 64);

	const struct rule *r = &rs.rules[0];
	cr_assert_str_eq(r->name, "checkout-error-rate");
	cr_assert_str_eq(r->description,
			 "Error ratio above 1% for 1m: turn the new version's flag off");
	cr_assert_str_eq(r->file, path);
	cr_assert_eq(r->n_matchers, 4);
	cr_assert_str_eq(r->matchers[0].name, "alertname");
	cr_assert_eq(r->matchers[0].op, MATCH_EQ);
	cr_assert_str_eq(r->matchers[0].value, "RollbackErrorRate");
	cr_assert_str_eq(r->matchers[1].name, "service");
	cr_assert_eq(r->matchers[1].op, MATCH_RE);
	cr_assert_str_eq(r->matchers[1].value, "checkout|payments");
	cr_assert(r->matchers[1].has_re);
	cr_assert_eq(r->matchers[2].op, MATCH_NE);
	cr_assert_eq(r->matchers[3].op, MATCH_NRE);
	cr_assert_eq(r->firing_for_ms, 60000);
	cr_assert(r->has_value);
	cr_assert(r->value.from_annotations);
	cr_assert_str_eq(r->value.key, "value");
	cr_assert(r->value.has_above);
	cr_assert(r->value.has_below);
	cr_assert_float_eq(r->value.above, 0.01, 1e-12);
	cr_assert_float_eq(r->value.below, 1.0, 1e-12);
	cr_assert_eq(r->n_group_by, 2);
	cr_assert_str_eq(r->group_by[0], "service");
	cr_assert_str_eq(r->group_by[1], "env");
	cr_assert_eq(r->mode, RULE_MODE_APPROVE);
	cr_assert_eq(r->approve_timeout_ms, 15 * 60000);
	cr_assert(r->on_failure_continue);
	cr_assert_eq(r->cooldown_ms, 30 * 60000);
	cr_assert_eq(r->verify_within_ms, 10 * 60000);
	cr_assert_eq(r->dry_run, 1);
	cr_assert_eq(r->n_notify, 2);
	cr_assert_str_eq(r->notify[0], "slack");
	cr_assert_str_eq(r->notify[1], "pagerduty");

	cr_assert_eq(r->n_actions, 4);
	const struct action_tpl *a = &r->actions[0];
	cr_assert_eq(a->type, ACTION_HTTP);
	cr_assert_str_eq(a->method, "PATCH");
	cr_assert_str_eq(a->url, "http://flags.internal/api/flags/{{labels.service}}-v2");
	cr_assert_eq(a->n_headers, 2);
	cr_assert_str_eq(a->headers[0].name, "Authorization");
	cr_assert_str_eq(a->headers[0].value, "Bearer {{secret.flags_token}}");
	cr_assert_str_eq(a->headers[1].name, "X-Incident");
	cr_assert_str_eq(a->headers[1].value, "{{incident.id}}");
	cr_assert_not_null(a->body);
	cr_assert(json_is_false(json_object_get(a->body, "enabled")));
	cr_assert_eq(json_integer_value(json_object_get(a->body, "rollout_percentage")), 0);
	cr_assert_eq(a->n_expect_status, 2);
	cr_assert_eq(a->expect_status[0], 200);
	cr_assert_eq(a->expect_status[1], 204);
	cr_assert_eq(a->timeout_ms, 5000);
	cr_assert_eq(a->retries, 3);

	a = &r->actions[1];
	cr_assert_eq(a->type, ACTION_EXEC);
	cr_assert_eq(a->argc, 2);
	cr_assert_str_eq(a->argv[0], "deploy/rollback.sh");
	cr_assert_str_eq(a->argv[1], "{{labels.service}}");
	cr_assert_null(a->argv[2]);
	cr_assert_eq(a->timeout_ms, 120000);

	a = &r->actions[2]; /* defaults for http */
	cr_assert_eq(a->type, ACTION_HTTP);
	cr_assert_str_eq(a->method, "POST");
	cr_assert_str_eq(a->url, "{{secret.traffic_url}}/switch");
	cr_assert_eq(a->timeout_ms, 10000);
	cr_assert_eq(a->retries, 0);
	cr_assert_eq(a->n_expect_status, 0);
	cr_assert_null(a->expect_status);
	cr_assert_eq(a->n_headers, 0);
	cr_assert_null(a->body);

	a = &r->actions[3]; /* defaults for exec */
	cr_assert_eq(a->argc, 1);
	cr_assert_eq(a->timeout_ms, 60000);

	r = &rs.rules[1]; /* defaults for a rule */
	cr_assert_str_eq(r->name, "disk-full-notify");
	cr_assert_null(r->description);
	cr_assert_eq(r->n_matchers, 1);
	cr_assert_str_eq(r->matchers[0].value, "DiskFull");
	cr_assert_eq(r->firing_for_ms, 0);
	cr_assert(r->has_value);
	cr_assert_not(r->value.from_annotations);
	cr_assert_str_eq(r->value.key, "used");
	cr_assert_not(r->value.has_above);
	cr_assert(r->value.has_below);
	cr_assert_null(r->group_by);
	cr_assert_eq(r->n_group_by, 0);
	cr_assert_eq(r->mode, RULE_MODE_NOTIFY);
	cr_assert_eq(r->n_actions, 0);
	cr_assert_not(r->on_failure_continue);
	cr_assert_eq(r->cooldown_ms, 0);
	cr_assert_eq(r->verify_within_ms, 0);
	cr_assert_eq(r->dry_run, -1);
	cr_assert_eq(r->n_notify, 0);
	ruleset_release(&rs);
	cr_assert_eq(rs.n_rules, 0);
	cr_assert_null(rs.rules);
}

static void hash_file(crypto_generichash_state *h, const char *dir, const char *name)
{
	char path[1024];
	unsigned char len[8];
	char *data;
	long n;
	FILE *f;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rb");
	cr_assert_not_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	data = malloc((size_t)n + 1);
	cr_assert_eq(fread(data, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	for (int i = 0; i < 8; i++)
		len[i] = (unsigned char)((uint64_t)n >> (8 * i));
	crypto_generichash_update(h, (const unsigned char *)name, strlen(name) + 1);
	crypto_generichash_update(h, len, 8);
	crypto_generichash_update(h, (const unsigned char *)data, (size_t)n);
	free(data);
}

Test(rules, directory_in_lexical_order_with_digest)
{
	char dir[1024], want[65];
	unsigned char d[32];
	crypto_generichash_state h;
	struct ruleset rs, again;
	struct error err = {{0}};

	/* "10-b.json" < "2-a.json" in strcmp order; README.md, .hidden.json,
	 * notes.json.bak and the directory sub.json/ are skipped. */
	rpath(dir, sizeof(dir), "order");
	cr_assert_eq(rules_load(dir, &rs, &err), 0, "%s", err.msg);
	cr_assert_eq(rs.n_rules, 3);
	cr_assert_str_eq(rs.rules[0].name, "b");
	cr_assert_str_eq(rs.rules[1].name, "a1");
	cr_assert_str_eq(rs.rules[2].name, "a2");
	char f0[1100];
	snprintf(f0, sizeof(f0), "%s/10-b.json", dir);
	cr_assert_str_eq(rs.rules[0].file, f0);

	crypto_generichash_init(&h, NULL, 0, 32);
	hash_file(&h, dir, "10-b.json");
	hash_file(&h, dir, "2-a.json");
	crypto_generichash_final(&h, d, 32);
	sodium_bin2hex(want, sizeof(want), d, 32);
	cr_assert_str_eq(rs.digest, want);

	/* A trailing slash changes nothing but the shown paths. */
	strcat(dir, "/");
	cr_assert_eq(rules_load(dir, &again, &err), 0, "%s", err.msg);
	cr_assert_str_eq(again.digest, rs.digest);
	cr_assert_str_eq(again.rules[0].file, f0);
	ruleset_release(&again);
	ruleset_release(&rs);
}

Test(rules, single_file_digest_differs_from_directory)
{
	char path[1024];
	struct ruleset a, b;
	struct error err = {{0}};
	cr_assert_eq(rules_load(rpath(path, sizeof(path), "order"), &a, &err), 0);
	cr_assert_eq(rules_load(rpath(path, sizeof(path), "order/2-a.json"), &b, &err), 0);
	cr_assert_eq(b.n_rules, 2);
	cr_assert_str_neq(a.digest, b.digest);
	ruleset_release(&a);
	ruleset_release(&b);
}

/* ---- validation errors, exact ---------------------------------------------- */

Test(rules, json_syntax_error_has_line_and_column)
{
	assert_load_error("bad/syntax.json", ":3:28: string or '}' expected near ','");
}

Test(rules, unknown_key_with_suggestion)
{
	assert_load_error("bad/unknown_key.json",
			  ": rules[0].matcher: unknown key (did you mean 'matchers'?)");
}

Test(rules, duplicate_name_in_one_file)
{
	char path[1024], want[2200];
	rpath(path, sizeof(path), "bad/dup_same_file.json");
	snprintf(want, sizeof(want),
		 ": rules[2].name: duplicate rule name 'x' (first defined in %s)", path);
	assert_load_error("bad/dup_same_file.json", want);
}

Test(rules, duplicate_name_across_files)
{
	char dir[1024], path[1100], want[2400];
	struct ruleset rs;
	struct error err = {{0}};
	rpath(dir, sizeof(dir), "dup");
	cr_assert_eq(rules_load(dir, &rs, &err), -1);
	snprintf(path, sizeof(path), "%s/b.json", dir);
	snprintf(want, sizeof(want),
		 "%s: rules[2].name: duplicate rule name 'x' (first defined in %s/a.json)", path,
		 dir);
	cr_assert_str_eq(err.msg, want);
	cr_assert_eq(rs.n_rules, 0);
}

Test(rules, invalid_regex)
{
	assert_load_error("bad/regex.json",
			  ": rules[0].matchers[1]: invalid regex \"(\": Unmatched ( or \\(");
}

Test(rules, invalid_duration)
{
	assert_load_error(
	    "bad/duration.json",
	    ": rules[0].cooldown: invalid duration \"5 min\" (expected e.g. \"30s\", \"5m\", "
	    "\"1h30m\")");
}

Test(rules, template_with_unknown_root)
{
	assert_load_error("bad/template.json",
			  ": rules[0].actions[1].argv[1]: unknown template root 'lables' in "
			  "'{{lables.service}}'");
}

Test(rules, exec_action_without_argv)
{
	assert_load_error("bad/exec_no_argv.json",
			  ": rules[0].actions[0]: exec action needs 'argv'");
}

Test(rules, exec_action_with_empty_argv0)
{
	assert_load_error("bad/empty_argv0.json",
			  ": rules[0].actions[0].argv[0]: must not be empty");
}

Test(rules, http_action_without_url)
{
	assert_load_error("bad/http_no_url.json", ": rules[0].actions[0]: http action needs 'url'");
}

Test(rules, http_url_scheme)
{
	assert_load_error("bad/url.json", ": rules[0].actions[0].url: "
					  "\"ftp://flags/{{labels.service}}\" must start with "
					  "http:// or https://");
}

Test(rules, actions_required_unless_notify)
{
	assert_load_error("bad/no_actions.json",
			  ": rules[0]: needs 'actions' (or \"mode\": \"notify\")");
}

Test(rules, value_from_must_name_label_or_annotation)
{
	assert_load_error("bad/value_from.json",
			  ": rules[0].when.value.from: \"value\" must be labels.NAME or "
			  "annotations.NAME");
}

Test(rules, value_needs_a_bound)
{
	assert_load_error("bad/value_no_bound.json",
			  ": rules[0].when.value: needs 'above' or 'below'");
}

Test(rules, missing_path)
{
	assert_load_error("does-not-exist.json", ": cannot open: No such file or directory");
}

/* ---- rules_check: every error, one line each ------------------------------- */

/* Run rules_check with stderr captured into *out (malloc'd). */
static int check_capture(const char *const *paths, size_t n, char **out)
{
	fflush(stderr);
	FILE *tmp = tmpfile();
	cr_assert_not_null(tmp);
	int saved = dup(STDERR_FILENO);
	cr_assert_geq(saved, 0);
	cr_assert_geq(dup2(fileno(tmp), STDERR_FILENO), 0);
	int rc = rules_check(paths, n);
	fflush(stderr);
	cr_assert_geq(dup2(saved, STDERR_FILENO), 0);
	close(saved);
	fseek(tmp, 0, SEEK_END);
	long len = ftell(tmp);
	rewind(tmp);
	*out = calloc(1, (size_t)len + 1);
	cr_assert_eq(fread(*out, 1, (size_t)len, tmp), (size_t)len);
	fclose(tmp);
	return rc;
}

Test(rules, check_prints_every_error)
{
	char path[1024], want[8192];
	char *got = NULL;
	const char *paths[] = {path};
	rpath(path, sizeof(path), "bad/many.json");
	int n = check_capture(paths, 1, &got);
	snprintf(want, sizeof(want),
		 "%1$s: rules[0].matcher: unknown key (did you mean 'matchers'?)\n"
		 "%1$s: rules[0]: needs 'matchers'\n"
		 "%1$s: rules[1].matchers[0]: invalid regex \"(\": Unmatched ( or \\(\n"
		 "%1$s: rules[1].cooldown: invalid duration \"soon\" (expected e.g. \"30s\", "
		 "\"5m\", \"1h30m\")\n"
		 "%1$s: rules[2].actions[0]: exec action needs 'argv'\n"
		 "%1$s: rules[2].actions[1].url: template root 'labels' needs a name in "
		 "'{{labels}}'\n"
		 "%1$s: rules[2].actions[1].retries: expected an integer from 0 to 10\n",
		 path);
	cr_assert_str_eq(got, want);
	cr_assert_eq(n, 7);
	free(got);
}

Test(rules, check_names_unique_across_paths)
{
	char a[1024], b[1024], v[1024], want[4096];
	char *got = NULL;
	const char *paths[] = {v, a, b};
	rpath(v, sizeof(v), "valid");
	rpath(a, sizeof(a), "dup/a.json");
	rpath(b, sizeof(b), "dup/b.json");
	int n = check_capture(paths, 3, &got);
	snprintf(want, sizeof(want),
		 "%s: rules[2].name: duplicate rule name 'x' (first defined in %s)\n", b, a);
	cr_assert_str_eq(got, want);
	cr_assert_eq(n, 1);
	free(got);
}

Test(rules, check_clean_files)
{
	char v[1024], o[1024];
	char *got = NULL;
	const char *paths[] = {v, o};
	rpath(v, sizeof(v), "valid");
	rpath(o, sizeof(o), "order");
	cr_assert_eq(check_capture(paths, 2, &got), 0);
	cr_assert_str_eq(got, "");
	free(got);
}

/* ---- matchers -------------------------------------------------------------- */

static void parse_ok(const char *s, struct matcher *m)
{
	struct error err = {{0}};
	cr_assert_eq(matcher_parse(s, m, &err), 0, "%s: %s", s, err.msg);
}

static void parse_fails(const char *s, const char *want)
{
	struct matcher m;
	struct error err = {{0}};
	cr_assert_eq(matcher_parse(s, &m, &err), -1, "%s parsed", s);
	cr_assert_str_eq(err.msg, want);
	cr_assert_null(m.name);
	cr_assert_null(m.value);
	cr_assert_not(m.has_re);
}

Test(matchers, four_operators_and_whitespace)
{
	static const struct {
		const char *in, *name, *value;
		enum matcher_op op;
	} cases[] = {
	    {"alertname=\"X\"", "alertname", "X", MATCH_EQ},
	    {"severity!=\"info\"", "severity", "info", MATCH_NE},
	    {"service=~\"checkout|payments\"", "service", "checkout|payments", MATCH_RE},
	    {"env!~\"dev|qa\"", "env", "dev|qa", MATCH_NRE},
	    {"  service  =~  \"a\"  ", "service", "a", MATCH_RE},
	    {"_x9 != \"\"", "_x9", "", MATCH_NE},
	    {"alertname=DiskFull", "alertname", "DiskFull", MATCH_EQ},
	    {"alertname = Disk Full  ", "alertname", "Disk Full", MATCH_EQ},
	    {"a=", "a", "", MATCH_EQ},
	    {"a=\"x=y!~\\\"z\\\"\"", "a", "x=y!~\"z\"", MATCH_EQ},
	    {"a=\"back\\\\slash\"", "a", "back\\slash", MATCH_EQ},
	    {"a=\"line\\nbreak\"", "a", "line\nbreak", MATCH_EQ},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct matcher m;
		parse_ok(cases[i].in, &m);
		cr_assert_str_eq(m.name, cases[i].name, "%s", cases[i].in);
		cr_assert_str_eq(m.value, cases[i].value, "%s", cases[i].in);
		cr_assert_eq(m.op, cases[i].op, "%s", cases[i].in);
		cr_assert_eq(m.has_re, cases[i].op == MATCH_RE || cases[i].op == MATCH_NRE);
		matcher_release(&m);
		cr_assert_null(m.name);
	}
}

Test(matchers, parse_errors)
{
	parse_fails("", "empty matcher");
	parse_fails("   ", "empty matcher");
	parse_fails("9a=\"x\"", "expected a label name at the start of '9a=\"x\"'");
	parse_fails("=\"x\"", "expected a label name at the start of '=\"x\"'");
	parse_fails("a-b=\"x\"", "expected =, !=, =~ or !~ after the label name in 'a-b=\"x\"'");
}

Test(matchers, parse_errors_in_values)
{
	parse_fails("a=\"x", "unterminated quoted value in 'a=\"x'");
	parse_fails("a=\"x\\", "unterminated quoted value in 'a=\"x\\'");
	parse_fails("a=\"\\t\"", "invalid escape in 'a=\"\\t\"' (only \\\", \\\\ and \\n)");
	parse_fails("a=\"x\" y", "unexpected text after the quoted value in 'a=\"x\" y'");
	parse_fails("a=~\"(\"", "invalid regex \"(\": Unmatched ( or \\(");
	/* In a quoted value a regex backslash is written twice, as in
	 * Alertmanager; unquoted values take it as it is. */
	parse_fails("a=~\"5\\\\d\\\\d\"",
		    "invalid regex \"5\\d\\d\": '\\d' is RE2 syntax, not POSIX "
		    "ERE (use [[:digit:]] and friends)");
	parse_fails("a=~5\\d\\d", "invalid regex \"5\\d\\d\": '\\d' is RE2 syntax, not POSIX "
				  "ERE (use [[:digit:]] and friends)");
	parse_fails("a=~\"(?i)x\"",
		    "invalid regex \"(?i)x\": Invalid preceding regular expression");
	/* Would turn ^(a)|(b)$ into an unanchored alternation. */
	parse_fails("a=~\"a)|(b\"", "invalid regex \"a)|(b\": Unmatched ( or \\(");
}

static struct label svc_labels[] = {
    {"alertname", "RollbackErrorRate", 17},
    {"env", "prod", 4},
    {"service", "checkout", 8},
};
static const struct label_set svc = {svc_labels, 3};

static bool m_matches(const char *s, const struct label_set *ls)
{
	struct matcher m;
	parse_ok(s, &m);
	bool r = matcher_matches(&m, ls);
	matcher_release(&m);
	return r;
}

Test(matchers, matching_and_anchoring)
{
	cr_assert(m_matches("service=\"checkout\"", &svc));
	cr_assert_not(m_matches("service=\"check\"", &svc));
	cr_assert_not(m_matches("service!=\"checkout\"", &svc));
	cr_assert(m_matches("service!=\"payments\"", &svc));
	cr_assert(m_matches("service=~\"checkout|payments\"", &svc));
	cr_assert(m_matches("service=~\"check.*\"", &svc));
	/* Fully anchored: a prefix or a substring is no match. */
	cr_assert_not(m_matches("service=~\"check\"", &svc));
	cr_assert_not(m_matches("service=~\"heck\"", &svc));
	cr_assert_not(m_matches("service=~\"out\"", &svc));
	cr_assert_not(m_matches("service=~\"pay|check\"", &svc));
	cr_assert(m_matches("service!~\"check\"", &svc));
	cr_assert_not(m_matches("service!~\"checkout|payments\"", &svc));
	cr_assert(m_matches("service=~\"[[:alpha:]]+\"", &svc));
	cr_assert_not(m_matches("service=~\"[[:digit:]]+\"", &svc));
}

Test(matchers, missing_label_is_empty_string)
{
	cr_assert(m_matches("team=\"\"", &svc));
	cr_assert_not(m_matches("team!=\"\"", &svc));
	cr_assert(m_matches("team!=\"x\"", &svc));
	cr_assert_not(m_matches("team=\"x\"", &svc));
	cr_assert(m_matches("team=~\".*\"", &svc));
	cr_assert_not(m_matches("team=~\".+\"", &svc));
	cr_assert(m_matches("team!~\"x\"", &svc));
	cr_assert_not(m_matches("service=\"\"", &svc));
}

Test(matchers, escaped_values_match_literally)
{
	struct label l[] = {{"msg", "say \"hi\"\nnow \\o/", 16}};
	struct label_set ls = {l, 1};
	cr_assert(m_matches("msg=\"say \\\"hi\\\"\\nnow \\\\o/\"", &ls));
	cr_assert_not(m_matches("msg=\"say \\\"hi\\\" now \\\\o/\"", &ls));
}

/* ---- rules against alerts -------------------------------------------------- */

static struct rule *load_full(struct ruleset *rs)
{
	char path[1024];
	struct error err = {{0}};
	cr_assert_eq(rules_load(rpath(path, sizeof(path), "valid/full.json"), rs, &err), 0, "%s",
		     err.msg);
	return &rs->rules[0];
}

Test(rules, rule_matches_needs_every_matcher)
{
	struct ruleset rs;
	struct rule *r = load_full(&rs);
	struct alert a;
	memset(&a, 0, sizeof(a));
	a.labels = svc;
	cr_assert(rule_matches(r, &a));
	struct label dev[] = {
	    {"alertname", "RollbackErrorRate", 17},
	    {"env", "dev", 3},
	    {"service", "checkout", 8},
	};
	a.labels.items = dev;
	cr_assert_not(rule_matches(r, &a));
	struct label qa[] = {
	    {"alertname", "RollbackErrorRate", 17},
	    {"service", "payments", 8},
	    {"team", "qa", 2},
	};
	a.labels.items = qa;
	cr_assert_not(rule_matches(r, &a));
	qa[2].value = "qa2";
	qa[2].value_len = 3;
	cr_assert(rule_matches(r, &a));
	ruleset_release(&rs);
}

static int value_check(const char *value, const struct rule *r, char *reason, size_t sz)
{
	struct label ann[] = {{"value", value, value ? strlen(value) : 0}};
	struct alert a;
	memset(&a, 0, sizeof(a));
	a.labels = svc;
	a.annotations.items = ann;
	a.annotations.n = value ? 1 : 0;
	return rule_value_check(r, &a, reason, sz);
}

Test(rules, value_above)
{
	struct rule r;
	char reason[128];
	memset(&r, 0, sizeof(r));
	r.has_value = true;
	r.value.from_annotations = true;
	r.value.key = "value";
	r.value.has_above = true;
	r.value.above = 0.01;

	cr_assert_eq(value_check("0.05", &r, reason, sizeof(reason)), 1);
	cr_assert_str_eq(reason, "value 0.05 above 0.01");
	cr_assert_eq(value_check("  0.05\n", &r, reason, sizeof(reason)), 1);
	cr_assert_eq(value_check("5e-2", &r, reason, sizeof(reason)), 1);
	cr_assert_eq(value_check("0.005", &r, reason, sizeof(reason)), 0);
	cr_assert_str_eq(reason, "value 0.005 not above 0.01");
	cr_assert_eq(value_check("0.01", &r, reason, sizeof(reason)), 0);
	cr_assert_str_eq(reason, "value 0.01 not above 0.01");
	cr_assert_eq(value_check(NULL, &r, reason, sizeof(reason)), 0);
	cr_assert_str_eq(reason, "annotation 'value' missing");
	cr_assert_eq(value_check("n/a", &r, reason, sizeof(reason)), 0);
	cr_assert_str_eq(reason, "annotation 'value' is not a number: \"n/a\"");
	static const char *const not_numbers[] = {"",	  " ",	   "NaN", "inf",       "-Inf",
						  "0x10", "1e400", "1,5", "0.05 0.06", "1.2.3"};
	for (size_t i = 0; i < sizeof(not_numbers) / sizeof(not_numbers[0]); i++) {
		cr_assert_eq(value_check(not_numbers[i], &r, reason, sizeof(reason)), 0, "%s",
			     not_numbers[i]);
		cr_assert(strstr(reason, "is not a number"), "%s: %s", not_numbers[i], reason);
	}
	char long_value[200];
	memset(long_value, '9', sizeof(long_value) - 1);
	long_value[sizeof(long_value) - 1] = '\0';
	long_value[0] = 'x';
	cr_assert_eq(value_check(long_value, &r, reason, sizeof(reason)), 0);
	cr_assert_str_eq(reason, "annotation 'value' is not a number: "
				 "\"x99999999999999999999999999999999999...\"");
}

Test(rules, value_below_both_and_from_labels)
{
	struct rule r;
	char reason[128];
	memset(&r, 0, sizeof(r));
	r.has_value = true;
	r.value.key = "value"; /* labels.value: absent from svc */
	r.value.has_below = true;
	r.value.below = 5;
	cr_assert_eq(value_check("1", &r, reason, sizeof(reason)), 0);
	cr_assert_str_eq(reason, "label 'value' missing");

	struct label lab[] = {{"used", "3", 1}};
	struct alert a;
	memset(&a, 0, sizeof(a));
	a.labels.items = lab;
	a.labels.n = 1;
	r.value.key = "used";
	cr_assert_eq(rule_value_check(&r, &a, reason, sizeof(reason)), 1);
	cr_assert_str_eq(reason, "value 3 below 5");
	lab[0].value = "7";
	cr_assert_eq(rule_value_check(&r, &a, reason, sizeof(reason)), 0);
	cr_assert_str_eq(reason, "value 7 not below 5");

	r.value.has_above = true;
	r.value.above = 1;
	lab[0].value = "3";
	cr_assert_eq(rule_value_check(&r, &a, reason, sizeof(reason)), 1);
	cr_assert_str_eq(reason, "value 3 above 1 and below 5");
	lab[0].value = "0.5";
	lab[0].value_len = 3;
	cr_assert_eq(rule_value_check(&r, &a, reason, sizeof(reason)), 0);
	cr_assert_str_eq(reason, "value 0.5 not above 1");

	r.has_value = false; /* no condition: always holds */
	cr_assert_eq(rule_value_check(&r, &a, reason, sizeof(reason)), 1);
	cr_assert_str_eq(reason, "");
}
