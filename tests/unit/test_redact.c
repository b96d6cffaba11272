/* Redaction (src/actions.c): every secret a config holds, in every form it
 * can leave in (raw, JSON-escaped, percent- and form-encoded in either hex
 * case), is replaced by <redacted:NAME>; the longer of two overlapping
 * secrets wins; a secret's head at the end of cut output goes too; an
 * expanded action (a JSON value) is redacted string by string. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "rollbackd/config.h"

static struct config cfg;

static void add_named(const char *name, const char *value)
{
	cfg.secrets = realloc(cfg.secrets, (cfg.n_secrets + 1) * sizeof(*cfg.secrets));
	cr_assert_not_null(cfg.secrets);
	struct named_secret *ns = &cfg.secrets[cfg.n_secrets++];
	ns->name = strdup(name);
	cr_assert_eq(secret_from_bytes(value, strlen(value), &ns->value), 0);
}

static void setup(void)
{
	cr_assert_eq(config_init(&cfg), 0);
	add_named("tok", "S3\"cr\\et +/=x");
	add_named("short", "abc");
	add_named("longer", "abcdef-0123");
	cr_assert_eq(secret_from_bytes("bearer-token-0123456789", 23, &cfg.auth.bearer_token), 0);
	cr_assert_eq(secret_from_bytes("pd-key-0123456789", 17, &cfg.notify.pagerduty_routing_key),
		     0);
}

static void teardown(void)
{
	config_release(&cfg);
}

TestSuite(redact, .init = setup, .fini = teardown);

static void redacts(const char *in, bool cut, const char *want)
{
	struct buf out = BUF_INIT;
	cr_assert_eq(actions_redact_text(&cfg, in, strlen(in), cut, &out), 0);
	cr_assert_str_eq(out.data, want, "in: %s", in);
	buf_release(&out);
}

Test(redact, every_form)
{
	redacts("[S3\"cr\\et +/=x]", false, "[<redacted:tok>]");
	redacts("[S3\\\"cr\\\\et +/=x]", false, "[<redacted:tok>]");	   /* JSON */
	redacts("[S3\\\"cr\\\\et +\\/=x]", false, "[<redacted:tok>]");	   /* JSON, \/ */
	redacts("[S3%22cr%5Cet%20%2B%2F%3Dx]", false, "[<redacted:tok>]"); /* %XX */
	redacts("[S3%22cr%5cet%20%2b%2f%3dx]", false, "[<redacted:tok>]"); /* %xx */
	redacts("[S3%22cr%5Cet+%2B%2F%3Dx]", false, "[<redacted:tok>]");   /* form */
	redacts("[S3%22cr%5cet+%2b%2f%3dx]", false, "[<redacted:tok>]");
	redacts("Bearer bearer-token-0123456789!", false, "Bearer <redacted:auth.bearer.token>!");
	redacts("k=pd-key-0123456789", false, "k=<redacted:notify.pagerduty.routing_key>");
	redacts("nothing here", false, "nothing here");
	redacts("", false, "");
}

Test(redact, longest_match_wins_and_every_occurrence)
{
	redacts("abcdef-0123 abc abcdef-0123", false,
		"<redacted:longer> <redacted:short> <redacted:longer>");
	redacts("abcabc", false, "<redacted:short><redacted:short>");
}

Test(redact, head_of_a_secret_at_a_cut)
{
	redacts("out: bearer-tok", true, "out: <redacted:auth.bearer.token>");
	redacts("out: bearer-tok", false, "out: bearer-tok");
	redacts("out: S3%22c", true, "out: <redacted:tok>");
}

Test(redact, expanded_action_json)
{
	json_t *x = json_pack(
	    "{s:s, s:[s, s], s:{s:s}}", "url", "http://h/S3%22cr%5Cet%20%2B%2F%3Dx?a=1", "argv",
	    "sh", "S3\"cr\\et +/=x", "headers", "Authorization", "Bearer bearer-token-0123456789");
	cr_assert_not_null(x);
	json_t *y = actions_redact_json(&cfg, x);
	cr_assert_not_null(y);
	char *s = json_dumps(y, JSON_COMPACT | JSON_SORT_KEYS);
	cr_assert_str_eq(s, "{\"argv\":[\"sh\",\"<redacted:tok>\"],\"headers\":{\"Authorization\":"
			    "\"Bearer <redacted:auth.bearer.token>\"},\"url\":"
			    "\"http://h/<redacted:tok>?a=1\"}");
	free(s);
	json_decref(x);
	json_decref(y);
}
