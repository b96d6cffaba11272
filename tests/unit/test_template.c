/*
 * Unit tests for template: syntax checks with exact messages, expansion in
 * the three escapings (raw argv bytes, percent-encoded URLs, JSON string
 * content), hostile label values that must come through verbatim, and
 * failures for anything the alert lacks (never an empty expansion).
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "rollbackd/template.h"

static void valid(const char *tpl)
{
	struct error err = {{0}};
	cr_assert_eq(template_validate(tpl, &err), 0, "%s: %s", tpl, err.msg);
}

static void invalid(const char *tpl, const char *want)
{
	struct error err = {{0}};
	cr_assert_eq(template_validate(tpl, &err), -1, "%s validated", tpl);
	cr_assert_str_eq(err.msg, want);
}

Test(template, validate_accepts)
{
	valid("");
	valid("deploy/rollback.sh");
	valid("{{labels.service}}");
	valid("{{ labels.service }}");
	valid("{{\tannotations.summary\t}}");
	valid("{{secret.flags_token}}");
	valid("{{incident.id}}");
	valid("{{rule.name}}");
	valid("http://h/{{labels.service}}-v2?i={{ incident.id }}&r={{rule.name}}");
	valid("{{labels._a9}}{{labels.B}}");
	valid("a } b }} c { d");
	valid("{\"json\": 1}");
}

Test(template, validate_rejects)
{
	invalid("{{lables.service}}", "unknown template root 'lables' in '{{lables.service}}'");
	invalid("x {{ label.service }} y",
		"unknown template root 'label' in '{{ label.service }}'");
	invalid("x {{labels.service", "unclosed '{{' in 'x {{labels.service'");
	invalid("{{labels.a}} {{", "unclosed '{{' in '{{labels.a}} {{'");
	invalid("{{labels}}", "template root 'labels' needs a name in '{{labels}}'");
	invalid("{{secret}}", "template root 'secret' needs a name in '{{secret}}'");
	invalid("{{labels.}}", "invalid name after 'labels.' in '{{labels.}}'");
	invalid("{{labels.foo-bar}}", "invalid name after 'labels.' in '{{labels.foo-bar}}'");
	invalid("{{labels.a.b}}", "invalid name after 'labels.' in '{{labels.a.b}}'");
	invalid("{{labels.9}}", "invalid name after 'labels.' in '{{labels.9}}'");
	invalid("{{labels service}}", "invalid template reference '{{labels service}}'");
	invalid("{{incident.name}}",
		"unknown field 'name' in '{{incident.name}}' (only 'incident.id')");
	invalid("{{rule.id}}", "unknown field 'id' in '{{rule.id}}' (only 'rule.name')");
	invalid("{{}}", "empty template reference '{{}}'");
	invalid("{{  }}", "empty template reference '{{  }}'");
	invalid("{{ $value }}", "invalid template reference '{{ $value }}' (expected labels.NAME, "
				"annotations.NAME, secret.NAME, incident.id or rule.name)");
	invalid("{{ .Labels.service }}",
		"invalid template reference '{{ .Labels.service }}' (expected labels.NAME, "
		"annotations.NAME, secret.NAME, incident.id or rule.name)");
}

/* ---- expansion ------------------------------------------------------------- */

static struct label labels[] = {
    {"alertname", "RollbackErrorRate", 17},
    {"empty", "", 0},
    {"evil", "x; rm -rf / `id` $(reboot) && echo \"$HOME\" | tee >/etc/x\n'q' *", 0},
    {"service", "checkout", 8},
    {"spaced", "a b/c?d=e&f#g%h+i~j_k.l-m", 0},
    {"utf8", "caf\xc3\xa9 \xe2\x9c\x93", 9},
};
static struct label annotations[] = {
    {"summary", "Error \"ratio\"\\high\n\ttab\x01", 0},
    {"value", "0.05", 4},
};

static const struct secret flags_token = {(unsigned char *)"s3cr3t/+=", 9};
static const struct secret base_url = {(unsigned char *)"https://flags.internal:8443/api", 31};

static const struct secret *lookup(void *arg, const char *name)
{
	int *calls = arg;
	(*calls)++;
	if (strcmp(name, "flags_token") == 0)
		return &flags_token;
	if (strcmp(name, "flags_url") == 0)
		return &base_url;
	return NULL;
}

static int lookups;

static struct template_ctx ctx(void)
{
	for (size_t i = 0; i < sizeof(labels) / sizeof(labels[0]); i++)
		labels[i].value_len = strlen(labels[i].value);
	for (size_t i = 0; i < sizeof(annotations) / sizeof(annotations[0]); i++)
		annotations[i].value_len = strlen(annotations[i].value);
	static struct label_set ls, as;
	ls.items = labels;
	ls.n = sizeof(labels) / sizeof(labels[0]);
	as.items = annotations;
	as.n = sizeof(annotations) / sizeof(annotations[0]);
	struct template_ctx c = {&ls,	 &as,	   "inc-42", "checkout-error-rate",
				 lookup, &lookups, NULL,     NULL};
	return c;
}

static void expands(const char *tpl, enum template_escape esc, const char *want)
{
	struct template_ctx c = ctx();
	struct buf out = BUF_INIT;
	struct error err = {{0}};
	cr_assert_eq(template_expand(tpl, &c, esc, &out, &err), 0, "%s: %s", tpl, err.msg);
	cr_assert_not_null(out.data, "%s", tpl);
	cr_assert_eq(out.len, strlen(want), "%s: got %s", tpl, out.data);
	cr_assert_str_eq(out.data, want);
	buf_release(&out);
}

static void fails(const char *tpl, enum template_escape esc, const char *want)
{
	struct template_ctx c = ctx();
	struct buf out = BUF_INIT;
	struct error err = {{0}};
	cr_assert_eq(template_expand(tpl, &c, esc, &out, &err), -1, "%s expanded to %s", tpl,
		     out.data ? out.data : "(nothing)");
	cr_assert_str_eq(err.msg, want);
	buf_release(&out);
}

Test(template, raw_copies_bytes)
{
	expands("", TEMPLATE_RAW, "");
	expands("deploy/rollback.sh", TEMPLATE_RAW, "deploy/rollback.sh");
	expands("{{labels.service}}", TEMPLATE_RAW, "checkout");
	expands("{{ labels.service }}-v2 {{rule.name}} {{incident.id}}", TEMPLATE_RAW,
		"checkout-v2 checkout-error-rate inc-42");
	expands("Bearer {{secret.flags_token}}", TEMPLATE_RAW, "Bearer s3cr3t/+=");
	expands("{{annotations.value}}", TEMPLATE_RAW, "0.05");
	expands("[{{labels.empty}}]", TEMPLATE_RAW, "[]"); /* present but empty is fine */
	expands("a } b }} c { d", TEMPLATE_RAW, "a } b }} c { d");
}

Test(template, raw_keeps_hostile_values_verbatim)
{
	expands("{{labels.evil}}", TEMPLATE_RAW,
		"x; rm -rf / `id` $(reboot) && echo \"$HOME\" | tee >/etc/x\n'q' *");
	expands("{{annotations.summary}}", TEMPLATE_RAW, "Error \"ratio\"\\high\n\ttab\x01");
	/* A value that looks like a template is not expanded again. */
	static struct label meta[] = {{"service", "{{secret.flags_token}}", 22}};
	struct label_set ls = {meta, 1};
	struct template_ctx c = ctx();
	c.labels = &ls;
	struct buf out = BUF_INIT;
	struct error err = {{0}};
	cr_assert_eq(template_expand("{{labels.service}}", &c, TEMPLATE_RAW, &out, &err), 0);
	cr_assert_str_eq(out.data, "{{secret.flags_token}}");
	buf_release(&out);
}

Test(template, raw_long_value)
{
	size_t n = 10000;
	char *v = malloc(n + 1);
	memset(v, 'x', n);
	v[n / 2] = '\n';
	v[n] = '\0';
	struct label l[] = {{"service", v, n}};
	struct label_set ls = {l, 1};
	struct template_ctx c = ctx();
	c.labels = &ls;
	struct buf out = BUF_INIT;
	struct error err = {{0}};
	cr_assert_eq(template_expand("{{labels.service}}", &c, TEMPLATE_RAW, &out, &err), 0);
	cr_assert_eq(out.len, n);
	cr_assert_eq(memcmp(out.data, v, n), 0);
	buf_release(&out);

	/* A capped buffer fails instead of truncating. */
	buf_init(&out, 100);
	cr_assert_eq(template_expand("{{labels.service}}", &c, TEMPLATE_RAW, &out, &err), -1);
	cr_assert_str_eq(err.msg, "template '{{labels.service}}': out of memory or too long");
	buf_release(&out);
	free(v);
}

Test(template, url_percent_encodes_values)
{
	expands("http://flags.internal/api/flags/{{labels.service}}-v2", TEMPLATE_URL,
		"http://flags.internal/api/flags/checkout-v2");
	expands("https://h/x?q={{labels.spaced}}", TEMPLATE_URL,
		"https://h/x?q=a%20b%2Fc%3Fd%3De%26f%23g%25h%2Bi~j_k.l-m");
	expands("https://h/{{labels.utf8}}", TEMPLATE_URL, "https://h/caf%C3%A9%20%E2%9C%93");
	expands(
	    "https://h/{{labels.evil}}", TEMPLATE_URL,
	    "https://h/x%3B%20rm%20-rf%20%2F%20%60id%60%20%24%28reboot%29%20%26%26%20echo%20%22%"
	    "24HOME%22%20%7C%20tee%20%3E%2Fetc%2Fx%0A%27q%27%20%2A");
	expands("https://h/?t={{secret.flags_token}}", TEMPLATE_URL,
		"https://h/?t=s3cr3t%2F%2B%3D");
	/* A secret that opens the URL is its base and is kept as written. */
	expands("{{secret.flags_url}}/flags/{{labels.service}}", TEMPLATE_URL,
		"https://flags.internal:8443/api/flags/checkout");
	fails("{{labels.service}}/x", TEMPLATE_URL,
	      "template '{{labels.service}}/x': the URL does not start with http:// or https://");
	fails("ftp://h/{{labels.service}}", TEMPLATE_URL,
	      "template 'ftp://h/{{labels.service}}': the URL does not start with http:// or "
	      "https://");
}

Test(template, json_escapes_string_content)
{
	expands("{{labels.service}}", TEMPLATE_JSON, "checkout");
	expands("{{annotations.summary}}", TEMPLATE_JSON,
		"Error \\\"ratio\\\"\\\\high\\n\\ttab\\u0001");
	expands("{{labels.evil}}", TEMPLATE_JSON,
		"x; rm -rf / `id` $(reboot) && echo \\\"$HOME\\\" | tee >/etc/x\\n'q' *");
	expands("{{labels.utf8}}", TEMPLATE_JSON, "caf\xc3\xa9 \xe2\x9c\x93");
	/* Literal text is part of the same JSON string and escaped too. */
	expands("say \"{{labels.service}}\"\n", TEMPLATE_JSON, "say \\\"checkout\\\"\\n");
	expands("", TEMPLATE_JSON, "");
}

Test(template, missing_references_fail)
{
	fails("deploy {{labels.service2}}", TEMPLATE_RAW,
	      "template '{{labels.service2}}': the alert has no label 'service2'");
	fails("{{ labels.missing }}", TEMPLATE_URL,
	      "template '{{ labels.missing }}': the alert has no label 'missing'");
	fails("{{annotations.runbook}}", TEMPLATE_JSON,
	      "template '{{annotations.runbook}}': the alert has no annotation 'runbook'");
	fails("{{secret.nope}}", TEMPLATE_RAW,
	      "template '{{secret.nope}}': no secret 'nope' is configured");
	fails("{{lables.service}}", TEMPLATE_RAW,
	      "unknown template root 'lables' in '{{lables.service}}'");
	fails("{{labels.service", TEMPLATE_RAW, "unclosed '{{' in '{{labels.service'");

	struct template_ctx c = ctx();
	struct buf out = BUF_INIT;
	struct error err = {{0}};
	c.incident_id = NULL;
	cr_assert_eq(template_expand("{{incident.id}}", &c, TEMPLATE_RAW, &out, &err), -1);
	cr_assert_str_eq(err.msg, "template '{{incident.id}}': no incident id here");
	c.rule_name = NULL;
	cr_assert_eq(template_expand("{{rule.name}}", &c, TEMPLATE_RAW, &out, &err), -1);
	cr_assert_str_eq(err.msg, "template '{{rule.name}}': no rule name here");
	c.labels = NULL;
	cr_assert_eq(template_expand("{{labels.service}}", &c, TEMPLATE_RAW, &out, &err), -1);
	cr_assert_str_eq(err.msg,
			 "template '{{labels.service}}': the alert has no label 'service'");
	buf_release(&out);
}

Test(template, secret_lookup_through_callback)
{
	struct template_ctx c = ctx();
	struct buf out = BUF_INIT;
	struct error err = {{0}};
	lookups = 0;
	cr_assert_eq(template_expand("{{secret.flags_token}}:{{secret.flags_token}}", &c,
				     TEMPLATE_RAW, &out, &err),
		     0);
	cr_assert_str_eq(out.data, "s3cr3t/+=:s3cr3t/+=");
	cr_assert_eq(lookups, 2);

	/* No callback, or a secret that is not set: an error, never "". */
	c.secret_lookup = NULL;
	buf_reset(&out);
	cr_assert_eq(template_expand("{{secret.flags_token}}", &c, TEMPLATE_RAW, &out, &err), -1);
	cr_assert_str_eq(err.msg, "template '{{secret.flags_token}}': no secret 'flags_token' is "
				  "configured");
	buf_release(&out);
}

Test(template, appends_to_existing_content)
{
	struct template_ctx c = ctx();
	struct buf out = BUF_INIT;
	struct error err = {{0}};
	cr_assert_eq(buf_adds(&out, "{\"service\":\""), 0);
	cr_assert_eq(template_expand("{{labels.evil}}", &c, TEMPLATE_JSON, &out, &err), 0);
	cr_assert_eq(buf_adds(&out, "\"}"), 0);
	json_error_t jerr;
	json_t *j = json_loads(out.data, 0, &jerr);
	cr_assert_not_null(j, "%s: %s", out.data, jerr.text);
	cr_assert_str_eq(json_string_value(json_object_get(j, "service")), labels[2].value);
	json_decref(j);
	buf_release(&out);
}

Test(template, change_references)
{
	valid("{{change.revision}}");
	valid("{{ change.previous_revision }}");
	valid("{{change.source}}");
	invalid("{{change.url}}",
		"unknown field 'url' in '{{change.url}}' (only 'change.revision', "
		"'change.previous_revision' or 'change.source')");
	struct label_set ls = {0}, as = {0};
	struct change chg;
	memset(&chg, 0, sizeof(chg));
	strcpy(chg.target, "service=a");
	strcpy(chg.revision, "42");
	strcpy(chg.source, "argocd");
	struct template_ctx c = {&ls, &as, "inc-1", "r", NULL, NULL, NULL, "service=a"};
	struct buf b = BUF_INIT;
	struct error err = {{0}};
	cr_assert_eq(template_expand("{{change.revision}}", &c, TEMPLATE_RAW, &b, &err), -1);
	cr_assert_str_eq(err.msg, "template '{{change.revision}}': no change to 'service=a' is "
				  "known (POST /v1/changes)");
	c.change = &chg;
	buf_reset(&b);
	cr_assert_eq(template_expand("--to-revision={{change.revision}} {{change.source}}", &c,
				     TEMPLATE_RAW, &b, &err),
		     0, "%s", err.msg);
	cr_assert_str_eq(b.data, "--to-revision=42 argocd");
	buf_reset(&b);
	cr_assert_eq(template_expand("{{change.previous_revision}}", &c, TEMPLATE_RAW, &b, &err),
		     -1);
	cr_assert_str_eq(err.msg, "template '{{change.previous_revision}}': the latest change to "
				  "'service=a' (revision '42') has no previous_revision");
	buf_release(&b);
}

/* A value with a NUL inside is refused: what runs would see it cut. */
Test(template, nul_in_value_refused)
{
	static struct label l[] = {{"pod", "pod\0evil", 8}};
	static struct label a[] = {{"summary", "a\0b", 3}};
	struct label_set ls = {l, 1}, as = {a, 1};
	struct template_ctx c = ctx();
	c.labels = &ls;
	c.annotations = &as;
	struct buf out = BUF_INIT;
	struct error err = {{0}};
	for (int esc = TEMPLATE_RAW; esc <= TEMPLATE_JSON; esc++) {
		cr_assert_eq(
		    template_expand("x-{{labels.pod}}", &c, (enum template_escape)esc, &out, &err),
		    -1);
		cr_assert_str_eq(err.msg,
				 "template '{{labels.pod}}': the label 'pod' contains a NUL byte");
		buf_reset(&out);
	}
	cr_assert_eq(template_expand("{{annotations.summary}}", &c, TEMPLATE_RAW, &out, &err), -1);
	cr_assert_str_eq(err.msg, "template '{{annotations.summary}}': the annotation 'summary' "
				  "contains a NUL byte");
	buf_release(&out);
}
