/*
 * Unit tests for config: defaults, a full config read back key by key, and
 * every error with its exact message. Secrets come from temporary files
 * (removed by the suite's fini) and environment variables; no message may
 * contain a secret's bytes.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rollbackd/config.h"

#define NAME "test.json"
#define SHAPE "a secret must be {\"file\": PATH} or {\"env\": NAME}"

/* Temporary files made by a test, removed by fini. Criterion runs each
 * test in its own process, so this list is per test. */
static char tmp_paths[32][64];
static size_t n_tmp;

static void cleanup(void)
{
	for (size_t i = 0; i < n_tmp; i++)
		unlink(tmp_paths[i]);
	n_tmp = 0;
}

TestSuite(config, .fini = cleanup);

/* Write content to a fresh file under /tmp; returns its path. */
static const char *tmp_file(const char *content)
{
	cr_assert_lt(n_tmp, sizeof(tmp_paths) / sizeof(tmp_paths[0]));
	char *path = tmp_paths[n_tmp];
	snprintf(path, sizeof(tmp_paths[0]), "/tmp/rollbackd-test-config-XXXXXX");
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0, "mkstemp: %s", strerror(errno));
	n_tmp++;
	size_t len = strlen(content);
	cr_assert_eq(write(fd, content, len), (ssize_t)len);
	close(fd);
	return path;
}

static char *fmt(char *out, size_t sz, const char *f, ...) __attribute__((format(printf, 3, 4)));
static char *fmt(char *out, size_t sz, const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	int n = vsnprintf(out, sz, f, ap);
	va_end(ap);
	cr_assert(n >= 0 && (size_t)n < sz, "test JSON too long");
	return out;
}

static int load(const char *json, struct config *cfg, struct error *err)
{
	memset(err, 0, sizeof(*err));
	return config_load_text(json, strlen(json), NAME, cfg, err);
}

static void assert_zeroed(const struct config *cfg)
{
	struct config zero;
	memset(&zero, 0, sizeof(zero));
	cr_assert(memcmp(cfg, &zero, sizeof(zero)) == 0, "cfg must be zeroed after a failure");
}

/* json must fail with exactly "test.json: " want, leaving cfg zeroed. */
static void expect_error(const char *json, const char *want)
{
	struct config cfg;
	struct error err;
	memset(&cfg, 0xa5, sizeof(cfg)); /* config_load_text must not read it */
	cr_assert_eq(load(json, &cfg, &err), -1, "should fail: %s", json);
	char full[600];
	snprintf(full, sizeof(full), NAME ": %s", want);
	cr_assert_str_eq(err.msg, full);
	assert_zeroed(&cfg);
	config_release(&cfg); /* safe, and a no-op, after a failure */
}

static void expect_ok(const char *json, struct config *cfg)
{
	struct error err;
	cr_assert_eq(load(json, cfg, &err), 0, "should load: %s\nerror: %s", json, err.msg);
}

static void assert_secret(const struct secret *s, const char *want)
{
	cr_assert(secret_is_set(s), "secret should be set to \"%s\"", want);
	cr_assert_eq(s->len, strlen(want));
	cr_assert(memcmp(s->data, want, s->len) == 0);
}

static void assert_defaults(const struct config *cfg)
{
	cr_assert_str_eq(cfg->listen, "127.0.0.1:9097");
	cr_assert_str_eq(cfg->public_url, "");
	cr_assert_str_eq(cfg->rules, "rules/");
	cr_assert_str_eq(cfg->state_dir, "var/");
	cr_assert(cfg->dry_run);
	cr_assert_str_eq(cfg->log_level, "info");
	cr_assert_eq(cfg->workers, config_auto_workers()); /* "auto" */
	cr_assert_eq(cfg->limits.max_body_bytes, 1048576);
	cr_assert_eq(cfg->limits.max_header_bytes, 16384);
	cr_assert_eq(cfg->limits.max_connections, 1024);
	cr_assert_eq(cfg->limits.request_timeout_ms, 10000);
	cr_assert_eq(cfg->limits.max_connections_per_peer, 512);
	cr_assert_eq(cfg->limits.header_timeout_ms, 5000);
	cr_assert_eq(cfg->limits.max_concurrent_actions, 4);
	cr_assert_eq(cfg->limits.max_rollbacks_per_hour, 10);
	cr_assert_eq(cfg->limits.max_incidents, 100000);
	cr_assert_eq(cfg->limits.max_alerts, 10000);
	cr_assert_eq(cfg->auth.n_hmac_secrets, 0);
	cr_assert_null(cfg->auth.hmac_secrets);
	cr_assert_eq(cfg->auth.max_skew_ms, 5 * 60 * 1000);
	cr_assert(!cfg->auth.allow_untimestamped);
	cr_assert(!secret_is_set(&cfg->auth.bearer_token));
	cr_assert_null(cfg->auth.basic_username);
	cr_assert(!secret_is_set(&cfg->auth.basic_password));
	cr_assert(auth_config_is_open(&cfg->auth));
	cr_assert(!secret_is_set(&cfg->api_token));
	cr_assert(!secret_is_set(&cfg->links_secret));
	cr_assert_eq(cfg->links_ttl_ms, 24LL * 60 * 60 * 1000);
	cr_assert(!secret_is_set(&cfg->slack_signing));
	cr_assert_eq(cfg->n_secrets, 0);
	cr_assert_eq(cfg->journal.segment_bytes, 268435456);
	cr_assert_eq(cfg->journal.snapshot_records, 100000);
	cr_assert(!secret_is_set(&cfg->notify.slack_webhook_url));
	cr_assert(!secret_is_set(&cfg->notify.slack_bot_token));
	cr_assert_str_eq(cfg->notify.slack_channel, "");
	cr_assert_str_eq(cfg->notify.slack_api_url, "https://slack.com/api");
	cr_assert(!secret_is_set(&cfg->notify.pagerduty_routing_key));
	cr_assert_str_eq(cfg->notify.pagerduty_url, "https://events.pagerduty.com/v2/enqueue");
}

/* ---- defaults ---------------------------------------------------------- */

Test(config, init_defaults)
{
	struct config cfg;
	cr_assert_eq(config_init(&cfg), 0);
	assert_defaults(&cfg);
	cr_assert_null(cfg.path);
	config_release(&cfg);
	assert_zeroed(&cfg);
	config_release(&cfg); /* twice is fine */
}

Test(config, empty_object_is_defaults)
{
	struct config cfg;
	expect_ok("{}", &cfg);
	assert_defaults(&cfg);
	cr_assert_str_eq(cfg.path, NAME);
	config_release(&cfg);
}

Test(config, dry_run)
{
	struct config cfg;
	expect_ok("{\"listen\": \"127.0.0.1:9999\"}", &cfg);
	cr_assert(cfg.dry_run, "a file that omits dry_run keeps dry-run on");
	config_release(&cfg);
	expect_ok("{\"dry_run\": false}", &cfg);
	cr_assert(!cfg.dry_run);
	config_release(&cfg);
	expect_ok("{\"dry_run\": true}", &cfg);
	cr_assert(cfg.dry_run);
	config_release(&cfg);
}

/* ---- a full config ----------------------------------------------------- */

Test(config, full)
{
	const char *hmac1 = tmp_file("hmac-one-key-for-tests\n");
	const char *hmac2 = tmp_file("hmac-two-key-for-tests");
	const char *bearer = tmp_file("bearer-tok-for-tests\r\n");
	const char *pass = tmp_file("basic-pw\n");
	const char *links = tmp_file("links-key-for-tests\n");
	const char *signing = tmp_file("slack-signing\n");
	const char *flags = tmp_file("flags-tok\n");
	const char *webhook = tmp_file("https://hooks.slack.com/services/T/B/X\n");
	const char *bot = tmp_file("xoxb-bot\n");
	const char *pd = tmp_file("pd-routing\n");
	cr_assert_eq(setenv("ROLLBACKD_TEST_API_TOKEN", "api-tok-for-tests", 1), 0);
	cr_assert_eq(setenv("ROLLBACKD_TEST_DEPLOY", "deploy-tok\n", 1), 0);

	char json[4096];
	fmt(json, sizeof(json),
	    "{\n"
	    "  \"listen\": \"[::1]:8080\",\n"
	    "  \"public_url\": \"https://rollbackd.example.com/\",\n"
	    "  \"rules\": \"/etc/rollbackd/rules\",\n"
	    "  \"state_dir\": \"/var/lib/rollbackd\",\n"
	    "  \"dry_run\": false,\n"
	    "  \"log_level\": \"debug\",\n"
	    "  \"workers\": 4,\n"
	    "  \"limits\": {\"max_body_bytes\": 2097152, \"max_header_bytes\": 8192,\n"
	    "     \"max_connections\": 512, \"request_timeout\": \"1m30s\",\n"
	    "     \"max_connections_per_peer\": 32, \"header_timeout\": \"2s\",\n"
	    "     \"max_concurrent_actions\": 2, \"max_rollbacks_per_hour\": 3,\n"
	    "     \"max_alerts\": 500, \"max_incidents\": 5},\n"
	    "  \"auth\": {\n"
	    "    \"hmac\": {\"secrets\": [{\"file\": \"%s\"}, {\"file\": \"%s\"}],\n"
	    "             \"max_skew\": \"2m\", \"allow_untimestamped\": true},\n"
	    "    \"bearer\": {\"token\": {\"file\": \"%s\"}},\n"
	    "    \"basic\": {\"username\": \"alertmanager\", \"password\": {\"file\": \"%s\"}},\n"
	    "    \"api\": {\"token\": {\"env\": \"ROLLBACKD_TEST_API_TOKEN\"}},\n"
	    "    \"links\": {\"secret\": {\"file\": \"%s\"}, \"ttl\": \"12h\"},\n"
	    "    \"slack_signing\": {\"secret\": {\"file\": \"%s\"}}\n"
	    "  },\n"
	    "  \"secrets\": {\"flags_token\": {\"file\": \"%s\"},\n"
	    "              \"_deploy2\": {\"env\": \"ROLLBACKD_TEST_DEPLOY\"}},\n"
	    "  \"journal\": {\"segment_bytes\": 1048576},\n"
	    "  \"notify\": {\n"
	    "    \"slack\": {\"webhook_url\": {\"file\": \"%s\"}, \"bot_token\": {\"file\": "
	    "\"%s\"},\n"
	    "              \"channel\": \"#rollbacks\", \"api_url\": "
	    "\"http://127.0.0.1:1234/api/\"},\n"
	    "    \"pagerduty\": {\"routing_key\": {\"file\": \"%s\"},\n"
	    "                  \"url\": \"http://127.0.0.1:1235/v2/enqueue\"}\n"
	    "  }\n"
	    "}\n",
	    hmac1, hmac2, bearer, pass, links, signing, flags, webhook, bot, pd);

	struct config cfg;
	expect_ok(json, &cfg);
	cr_assert_str_eq(cfg.path, NAME);
	cr_assert_str_eq(cfg.listen, "[::1]:8080");
	cr_assert_str_eq(cfg.public_url, "https://rollbackd.example.com", "trailing / dropped");
	cr_assert_str_eq(cfg.rules, "/etc/rollbackd/rules");
	cr_assert_str_eq(cfg.state_dir, "/var/lib/rollbackd");
	cr_assert(!cfg.dry_run);
	cr_assert_str_eq(cfg.log_level, "debug");
	cr_assert_eq(cfg.workers, 4);
	cr_assert_eq(cfg.limits.max_body_bytes, 2097152);
	cr_assert_eq(cfg.limits.max_header_bytes, 8192);
	cr_assert_eq(cfg.limits.max_connections, 512);
	cr_assert_eq(cfg.limits.request_timeout_ms, 90000);
	cr_assert_eq(cfg.limits.max_connections_per_peer, 32);
	cr_assert_eq(cfg.limits.header_timeout_ms, 2000);
	cr_assert_eq(cfg.limits.max_concurrent_actions, 2);
	cr_assert_eq(cfg.limits.max_rollbacks_per_hour, 3);
	cr_assert_eq(cfg.limits.max_alerts, 500);
	cr_assert_eq(cfg.limits.max_incidents, 5);
	cr_assert_eq(cfg.auth.n_hmac_secrets, 2);
	assert_secret(&cfg.auth.hmac_secrets[0], "hmac-one-key-for-tests");
	assert_secret(&cfg.auth.hmac_secrets[1], "hmac-two-key-for-tests");
	cr_assert_eq(cfg.auth.max_skew_ms, 120000);
	cr_assert(cfg.auth.allow_untimestamped);
	assert_secret(&cfg.auth.bearer_token, "bearer-tok-for-tests");
	cr_assert_str_eq(cfg.auth.basic_username, "alertmanager");
	assert_secret(&cfg.auth.basic_password, "basic-pw");
	cr_assert(!auth_config_is_open(&cfg.auth));
	assert_secret(&cfg.api_token, "api-tok-for-tests");
	assert_secret(&cfg.links_secret, "links-key-for-tests");
	cr_assert_eq(cfg.links_ttl_ms, 12LL * 3600 * 1000);
	assert_secret(&cfg.slack_signing, "slack-signing");
	cr_assert_eq(cfg.n_secrets, 2);
	assert_secret(config_secret(&cfg, "flags_token"), "flags-tok");
	assert_secret(config_secret(&cfg, "_deploy2"), "deploy-tok");
	cr_assert_null(config_secret(&cfg, "nope"));
	cr_assert_null(config_secret(&cfg, "FLAGS_TOKEN"));
	cr_assert_eq(cfg.journal.segment_bytes, 1048576);
	assert_secret(&cfg.notify.slack_webhook_url, "https://hooks.slack.com/services/T/B/X");
	assert_secret(&cfg.notify.slack_bot_token, "xoxb-bot");
	cr_assert_str_eq(cfg.notify.slack_channel, "#rollbacks");
	cr_assert_str_eq(cfg.notify.slack_api_url, "http://127.0.0.1:1234/api",
			 "trailing / dropped");
	assert_secret(&cfg.notify.pagerduty_routing_key, "pd-routing");
	cr_assert_str_eq(cfg.notify.pagerduty_url, "http://127.0.0.1:1235/v2/enqueue");

	char host[64];
	int port = -1;
	struct error err;
	cr_assert_eq(config_listen_addr(&cfg, host, sizeof(host), &port, &err), 0);
	cr_assert_str_eq(host, "::1");
	cr_assert_eq(port, 8080);
	config_release(&cfg);
	assert_zeroed(&cfg);
}

Test(config, optional_blocks_may_be_partial)
{
	const char *hook = tmp_file("https://hooks.slack.com/services/T/B/X\n");
	char json[512];
	struct config cfg;
	/* slack with only a webhook; hmac keeps its default skew */
	const char *key = tmp_file("k-0123456789abcdef\n");
	fmt(json, sizeof(json),
	    "{\"notify\": {\"slack\": {\"webhook_url\": {\"file\": \"%s\"}}},"
	    " \"auth\": {\"hmac\": {\"secrets\": [{\"file\": \"%s\"}]}}}",
	    hook, key);
	expect_ok(json, &cfg);
	cr_assert(!secret_is_set(&cfg.notify.slack_bot_token));
	cr_assert_str_eq(cfg.notify.slack_api_url, "https://slack.com/api");
	cr_assert_eq(cfg.auth.n_hmac_secrets, 1);
	cr_assert_eq(cfg.auth.max_skew_ms, 300000);
	cr_assert(!cfg.auth.allow_untimestamped);
	config_release(&cfg);
}

/* ---- loading files ----------------------------------------------------- */

Test(config, load_file)
{
	const char *path = tmp_file("{\"listen\": \"0.0.0.0:0\", \"workers\": 64}\n");
	struct config cfg;
	struct error err;
	cr_assert_eq(config_load(path, &cfg, &err), 0, "%s", err.msg);
	cr_assert_str_eq(cfg.path, path);
	cr_assert_eq(cfg.workers, 64);
	char host[64];
	int port = -1;
	cr_assert_eq(config_listen_addr(&cfg, host, sizeof(host), &port, &err), 0);
	cr_assert_str_eq(host, "0.0.0.0");
	cr_assert_eq(port, 0);
	config_release(&cfg);
}

Test(config, load_file_errors)
{
	struct config cfg;
	struct error err;
	cr_assert_eq(config_load("/nonexistent/rollbackd.json", &cfg, &err), -1);
	cr_assert_str_eq(err.msg,
			 "/nonexistent/rollbackd.json: cannot read: No such file or directory");
	assert_zeroed(&cfg);
	cr_assert_eq(config_load("/tmp", &cfg, &err), -1);
	cr_assert_str_eq(err.msg, "/tmp: cannot read: Is a directory");
	assert_zeroed(&cfg);

	/* messages from the file carry its name */
	const char *path = tmp_file("{\n  \"limits\": {\"max_conections\": 5}\n}\n");
	char want[256];
	cr_assert_eq(config_load(path, &cfg, &err), -1);
	fmt(want, sizeof(want),
	    "%s: limits.max_conections: unknown key (did you mean 'max_connections'?)", path);
	cr_assert_str_eq(err.msg, want);
	path = tmp_file("{\n  \"listen\": \"x\",\n}\n");
	cr_assert_eq(config_load(path, &cfg, &err), -1);
	fmt(want, sizeof(want), "%s:3:1: string or '}' expected near '}'", path);
	cr_assert_str_eq(err.msg, want);
	assert_zeroed(&cfg);
}

/* ---- JSON-level errors ------------------------------------------------- */

/* expect_error prefixes "test.json: "; JSON errors use "test.json:L:C: ". */
static void expect_json_error(const char *json, const char *want)
{
	struct config cfg;
	struct error err;
	cr_assert_eq(load(json, &cfg, &err), -1);
	cr_assert_str_eq(err.msg, want);
	assert_zeroed(&cfg);
}

Test(config, json_errors)
{
	expect_json_error("{\n  \"a\": 1,\n  \"b\": tru\n}",
			  NAME ":3:10: invalid token near 'tru'");
	expect_json_error("{\"listen\": \"a\",}", NAME ":1:16: string or '}' expected near '}'");
	expect_json_error("", NAME ":1:0: '[' or '{' expected near end of file");
	expect_json_error("\"abc\"", NAME ":1:5: '[' or '{' expected near '\"abc\"'");
	expect_json_error("{\"a\": 99999999999999999999}",
			  NAME ":1:26: too big integer near '99999999999999999999'");
}

Test(config, duplicate_key)
{
	expect_json_error("{\n  \"listen\": \"127.0.0.1:1\",\n  \"listen\": \"127.0.0.1:2\"\n}",
			  NAME ":3:10: duplicate object key near '\"listen\"'");
	expect_json_error("{\"limits\": {\"max_alerts\": 1, \"max_alerts\": 2}}",
			  NAME ":1:41: duplicate object key near '\"max_alerts\"'");
}

Test(config, top_level_must_be_object)
{
	expect_error("[1]", "expected a JSON object at the top level");
	expect_error("[]", "expected a JSON object at the top level");
}

/* ---- unknown keys ------------------------------------------------------ */

Test(config, unknown_keys)
{
	expect_error("{\"listn\": \"x\"}", "listn: unknown key (did you mean 'listen'?)");
	expect_error("{\"frobnicate\": 1}", "frobnicate: unknown key");
	expect_error("{\"dryrun\": true}", "dryrun: unknown key (did you mean 'dry_run'?)");
	expect_error("{\"limits\": {\"max_body_byte\": 1}}",
		     "limits.max_body_byte: unknown key (did you mean 'max_body_bytes'?)");
	expect_error("{\"limits\": {\"max_bdoy_bytes\": 1}}",
		     "limits.max_bdoy_bytes: unknown key (did you mean 'max_body_bytes'?)");
	expect_error("{\"limits\": {\"timeout\": \"1s\"}}", "limits.timeout: unknown key");
	expect_error("{\"auth\": {\"hmac\": {\"max_skw\": \"1m\"}}}",
		     "auth.hmac.max_skw: unknown key (did you mean 'max_skew'?)");
	expect_error("{\"auth\": {\"bearer\": {\"tokens\": {\"env\": \"X\"}}}}",
		     "auth.bearer.tokens: unknown key (did you mean 'token'?)");
	expect_error("{\"auth\": {\"oauth\": {}}}", "auth.oauth: unknown key");
	expect_error("{\"notify\": {\"slack\": {\"chanel\": \"#x\"}}}",
		     "notify.slack.chanel: unknown key (did you mean 'channel'?)");
	expect_error("{\"notify\": {\"pagerduty\": {\"routing\": \"x\"}}}",
		     "notify.pagerduty.routing: unknown key");
	expect_error("{\"journal\": {\"segment_size\": 1}}", "journal.segment_size: unknown key");
	expect_error("{\"auth\": {\"links\": {\"tll\": \"1h\"}}}",
		     "auth.links.tll: unknown key (did you mean 'ttl'?)");
	/* a control character in a key does not break the one-line message */
	expect_error("{\"a\\nb\": 1}", "a?b: unknown key");
}

/* ---- types and ranges -------------------------------------------------- */

Test(config, blocks_must_be_objects)
{
	expect_error("{\"limits\": []}", "limits: expected an object");
	expect_error("{\"auth\": null}", "auth: expected an object");
	expect_error("{\"secrets\": [1]}", "secrets: expected an object");
	expect_error("{\"journal\": 5}", "journal: expected an object");
	expect_error("{\"notify\": \"slack\"}", "notify: expected an object");
	expect_error("{\"auth\": {\"hmac\": \"x\"}}", "auth.hmac: expected an object");
	expect_error("{\"auth\": {\"links\": true}}", "auth.links: expected an object");
	expect_error("{\"notify\": {\"slack\": []}}", "notify.slack: expected an object");
}

Test(config, wrong_types)
{
	expect_error("{\"listen\": 9097}", "listen: expected a string");
	expect_error("{\"public_url\": null}", "public_url: expected a string");
	expect_error("{\"rules\": [\"a\"]}", "rules: expected a string");
	expect_error("{\"state_dir\": 1}", "state_dir: expected a string");
	expect_error("{\"log_level\": 3}", "log_level: expected a string");
	expect_error("{\"dry_run\": \"yes\"}", "dry_run: expected true or false");
	expect_error("{\"dry_run\": 0}", "dry_run: expected true or false");
	expect_error("{\"workers\": \"2\"}", "workers: expected a positive integer or \"auto\"");
	expect_error("{\"limits\": {\"max_connections\": \"1024\"}}",
		     "limits.max_connections: expected a positive integer");
	expect_error("{\"limits\": {\"max_body_bytes\": 1.5}}",
		     "limits.max_body_bytes: expected a positive integer");
	expect_error("{\"limits\": {\"max_body_bytes\": 1048576.0}}",
		     "limits.max_body_bytes: expected a positive integer");
	expect_error("{\"limits\": {\"max_connections_per_peer\": 0}}",
		     "limits.max_connections_per_peer: expected a positive integer");
	expect_error("{\"limits\": {\"header_timeout\": 5}}",
		     "limits.header_timeout: expected a duration string such as \"5m\"");
	expect_error("{\"limits\": {\"request_timeout\": 10}}",
		     "limits.request_timeout: expected a duration string such as \"5m\"");
	expect_error("{\"auth\": {\"hmac\": {\"secrets\": [{\"env\": \"HOME\"}],"
		     " \"allow_untimestamped\": \"no\"}}}",
		     "auth.hmac.allow_untimestamped: expected true or false");
	expect_error(
	    "{\"auth\": {\"basic\": {\"username\": 1, \"password\": {\"env\": \"HOME\"}}}}",
	    "auth.basic.username: expected a string");
	expect_error(
	    "{\"notify\": {\"slack\": {\"bot_token\": {\"env\": \"HOME\"}, \"channel\": 1}}}",
	    "notify.slack.channel: expected a string");
}

Test(config, ranges)
{
	expect_error("{\"workers\": 0}", "workers: expected a positive integer");
	expect_error("{\"workers\": \"Auto\"}", "workers: expected a positive integer or \"auto\"");
	expect_error("{\"workers\": 65}", "workers: must be at most 64");
	expect_error("{\"limits\": {\"max_connections\": 0}}",
		     "limits.max_connections: expected a positive integer");
	expect_error("{\"limits\": {\"max_connections\": -1}}",
		     "limits.max_connections: expected a positive integer");
	expect_error("{\"limits\": {\"max_connections\": 2147483648}}",
		     "limits.max_connections: must be at most 2147483647");
	expect_error("{\"limits\": {\"max_incidents\": 0}}",
		     "limits.max_incidents: expected a positive integer");
	expect_error("{\"limits\": {\"max_body_bytes\": 0}}",
		     "limits.max_body_bytes: expected a positive integer");
	expect_error("{\"limits\": {\"max_header_bytes\": -16384}}",
		     "limits.max_header_bytes: expected a positive integer");
	expect_error("{\"limits\": {\"max_concurrent_actions\": 0}}",
		     "limits.max_concurrent_actions: expected a positive integer");
	expect_error("{\"limits\": {\"max_rollbacks_per_hour\": 0}}",
		     "limits.max_rollbacks_per_hour: expected a positive integer");
	expect_error("{\"limits\": {\"max_alerts\": 0}}",
		     "limits.max_alerts: expected a positive integer");
	expect_error("{\"journal\": {\"segment_bytes\": 0}}",
		     "journal.segment_bytes: expected a positive integer");
	expect_error("{\"journal\": {\"snapshot_records\": -1}}",
		     "journal.snapshot_records: expected an integer from 0 to 9223372036854775807");
	expect_error("{\"journal\": {\"snapshot_records\": \"1000\"}}",
		     "journal.snapshot_records: expected an integer from 0 to 9223372036854775807");
	expect_error("{\"rules\": \"\"}", "rules: must not be empty");
	expect_error("{\"state_dir\": \"\"}", "state_dir: must not be empty");
	expect_error("{\"log_level\": \"verbose\"}",
		     "log_level: expected \"debug\", \"info\", \"warn\" or \"error\"");
	expect_error("{\"public_url\": \"rollbackd.example.com\"}",
		     "public_url: expected an http:// or https:// URL");
	expect_error("{\"public_url\": \"https://\"}",
		     "public_url: expected an http:// or https:// URL");
	expect_error("{\"public_url\": \"https://a b\"}",
		     "public_url: expected an http:// or https:// URL");
	expect_error("{\"notify\": {\"pagerduty\": {\"routing_key\": {\"env\": \"HOME\"},"
		     " \"url\": \"events.pagerduty.com\"}}}",
		     "notify.pagerduty.url: expected an http:// or https:// URL");
	expect_error("{\"notify\": {\"slack\": {\"bot_token\": {\"env\": \"HOME\"},"
		     " \"channel\": \"#x\", \"api_url\": \"ftp://slack.com\"}}}",
		     "notify.slack.api_url: expected an http:// or https:// URL");

	struct config cfg;
	expect_ok("{\"workers\": 1, \"limits\": {\"max_connections\": 1,"
		  " \"request_timeout\": \"1ms\"}, \"journal\": {\"segment_bytes\": 1}}",
		  &cfg);
	cr_assert_eq(cfg.limits.max_connections, 1);
	cr_assert_eq(cfg.limits.request_timeout_ms, 1);
	config_release(&cfg);
}

Test(config, bad_durations)
{
	const char *key = tmp_file("k-0123456789abcdef\n");
	char json[512];
	fmt(json, sizeof(json),
	    "{\"auth\": {\"hmac\": {\"secrets\": [{\"file\": \"%s\"}], \"max_skew\": \"5 "
	    "minutes\"}}}",
	    key);
	expect_error(json, "auth.hmac.max_skew: invalid duration \"5 minutes\"");
	fmt(json, sizeof(json),
	    "{\"auth\": {\"hmac\": {\"secrets\": [{\"file\": \"%s\"}], \"max_skew\": \"0s\"}}}",
	    key);
	expect_error(json, "auth.hmac.max_skew: must be greater than zero");
	expect_error("{\"limits\": {\"request_timeout\": \"1.5s\"}}",
		     "limits.request_timeout: invalid duration \"1.5s\"");
	expect_error("{\"limits\": {\"request_timeout\": \"0\"}}",
		     "limits.request_timeout: must be greater than zero");
	expect_error("{\"limits\": {\"request_timeout\": \"\"}}",
		     "limits.request_timeout: invalid duration \"\"");
	expect_error("{\"limits\": {\"request_timeout\": \"1m1h\"}}",
		     "limits.request_timeout: invalid duration \"1m1h\"");
	expect_error("{\"limits\": {\"request_timeout\": \"-1s\"}}",
		     "limits.request_timeout: invalid duration \"-1s\"");
	fmt(json, sizeof(json),
	    "{\"auth\": {\"links\": {\"secret\": {\"file\": \"%s\"}, \"ttl\": \"1d2\"}}}", key);
	expect_error(json, "auth.links.ttl: invalid duration \"1d2\"");
}

/* ---- listen ------------------------------------------------------------ */

Test(config, listen)
{
	static const char *const bad[] = {"localhost", "::1:9097", ":9097",  "[::1]9097",
					  "[::1",      "[]:80",	   "a b:80", "127.0.0.1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char json[128], want[192];
		fmt(json, sizeof(json), "{\"listen\": \"%s\"}", bad[i]);
		fmt(want, sizeof(want),
		    "listen: expected \"HOST:PORT\" or \"[IPV6]:PORT\", got \"%s\"", bad[i]);
		expect_error(json, want);
	}
	static const char *const bad_port[] = {"127.0.0.1:70000", "127.0.0.1:", "127.0.0.1:http",
					       "127.0.0.1:-1",	  "[::1]:",	"127.0.0.1:123456"};
	for (size_t i = 0; i < sizeof(bad_port) / sizeof(bad_port[0]); i++) {
		char json[128], want[192];
		fmt(json, sizeof(json), "{\"listen\": \"%s\"}", bad_port[i]);
		fmt(want, sizeof(want), "listen: invalid port in \"%s\" (expected 0 to 65535)",
		    bad_port[i]);
		expect_error(json, want);
	}

	static const struct {
		const char *listen, *host;
		int port;
	} good[] = {
	    {"127.0.0.1:9097", "127.0.0.1", 9097},
	    {"[::1]:9097", "::1", 9097},
	    {"[::]:65535", "::", 65535},
	    {"0.0.0.0:0", "0.0.0.0", 0},
	    {"rollbackd.internal:80", "rollbackd.internal", 80},
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		char json[128], host[64];
		int port = -1;
		struct config cfg;
		struct error err;
		fmt(json, sizeof(json), "{\"listen\": \"%s\"}", good[i].listen);
		expect_ok(json, &cfg);
		cr_assert_eq(config_listen_addr(&cfg, host, sizeof(host), &port, &err), 0, "%s",
			     err.msg);
		cr_assert_str_eq(host, good[i].host);
		cr_assert_eq(port, good[i].port);
		config_release(&cfg);
	}
}

Test(config, listen_addr_host_buffer_too_small)
{
	struct config cfg;
	struct error err;
	char host[4];
	int port = -1;
	cr_assert_eq(config_init(&cfg), 0);
	cr_assert_eq(config_listen_addr(&cfg, host, sizeof(host), &port, &err), -1);
	cr_assert_str_eq(err.msg, "listen: host too long in \"127.0.0.1:9097\"");
	cr_assert_eq(port, -1);
	config_release(&cfg);
}

/* ---- secrets ----------------------------------------------------------- */

Test(config, secret_shapes)
{
	static const char *const shapes[] = {
	    "\"hunter2\"",
	    "{\"file\": \"/a\", \"env\": \"B\"}",
	    "{\"value\": \"hunter2\"}",
	    "{\"file\": \"\"}",
	    "{\"env\": \"\"}",
	    "{\"file\": 5}",
	    "{\"env\": null}",
	    "{}",
	    "null",
	    "[\"hunter2\"]",
	    "{\"file\": \"/a\", \"value\": \"hunter2\"}",
	};
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		char json[256];
		fmt(json, sizeof(json), "{\"auth\": {\"bearer\": {\"token\": %s}}}", shapes[i]);
		expect_error(json, "auth.bearer.token: " SHAPE);
	}
	expect_error("{\"auth\": {\"api\": {\"token\": \"hunter2\"}}}", "auth.api.token: " SHAPE);
	expect_error("{\"auth\": {\"links\": {\"secret\": \"hunter2\"}}}",
		     "auth.links.secret: " SHAPE);
	expect_error("{\"auth\": {\"slack_signing\": {\"secret\": \"hunter2\"}}}",
		     "auth.slack_signing.secret: " SHAPE);
	expect_error("{\"auth\": {\"basic\": {\"username\": \"am\", \"password\": \"hunter2\"}}}",
		     "auth.basic.password: " SHAPE);
	expect_error("{\"secrets\": {\"flags_token\": \"hunter2\"}}",
		     "secrets.flags_token: " SHAPE);
	expect_error("{\"notify\": {\"slack\": {\"webhook_url\": \"https://hooks.slack.com/x\"}}}",
		     "notify.slack.webhook_url: " SHAPE);
	expect_error("{\"notify\": {\"pagerduty\": {\"routing_key\": \"hunter2\"}}}",
		     "notify.pagerduty.routing_key: " SHAPE);
}

Test(config, missing_secret_file)
{
	expect_error("{\"auth\": {\"bearer\": {\"token\": {\"file\": \"/nonexistent/x\"}}}}",
		     "auth.bearer.token: cannot open secret file '/nonexistent/x': "
		     "No such file or directory");
	expect_error(
	    "{\"secrets\": {\"t\": {\"file\": \"/nonexistent/t\"}}}",
	    "secrets.t: cannot open secret file '/nonexistent/t': No such file or directory");
	const char *empty = tmp_file("\n");
	char json[256], want[256];
	fmt(json, sizeof(json), "{\"auth\": {\"api\": {\"token\": {\"file\": \"%s\"}}}}", empty);
	fmt(want, sizeof(want), "auth.api.token: secret file '%s' is empty", empty);
	expect_error(json, want);
}

Test(config, env_secret)
{
	struct config cfg;
	cr_assert_eq(setenv("ROLLBACKD_TEST_TOKEN", "from-env-token-for-tests", 1), 0);
	expect_ok("{\"auth\": {\"bearer\": {\"token\": {\"env\": \"ROLLBACKD_TEST_TOKEN\"}}}}",
		  &cfg);
	assert_secret(&cfg.auth.bearer_token, "from-env-token-for-tests");
	config_release(&cfg);

	cr_assert_eq(unsetenv("ROLLBACKD_TEST_UNSET"), 0);
	expect_error("{\"auth\": {\"bearer\": {\"token\": {\"env\": \"ROLLBACKD_TEST_UNSET\"}}}}",
		     "auth.bearer.token: environment variable 'ROLLBACKD_TEST_UNSET' is not set");
	cr_assert_eq(setenv("ROLLBACKD_TEST_EMPTY", "", 1), 0);
	expect_error("{\"auth\": {\"api\": {\"token\": {\"env\": \"ROLLBACKD_TEST_EMPTY\"}}}}",
		     "auth.api.token: environment variable 'ROLLBACKD_TEST_EMPTY' is empty");
}

Test(config, hmac_secrets)
{
	const char *key = tmp_file("k-0123456789abcdef\n");
	char json[512];
	expect_error("{\"auth\": {\"hmac\": {\"max_skew\": \"1m\"}}}",
		     "auth.hmac: missing key 'secrets'");
	expect_error("{\"auth\": {\"hmac\": {\"secrets\": []}}}",
		     "auth.hmac.secrets: expected a non-empty array of secrets");
	expect_error("{\"auth\": {\"hmac\": {\"secrets\": {\"file\": \"/a\"}}}}",
		     "auth.hmac.secrets: expected a non-empty array of secrets");
	fmt(json, sizeof(json),
	    "{\"auth\": {\"hmac\": {\"secrets\": [{\"file\": \"%s\"}, \"hunter2\"]}}}", key);
	expect_error(json, "auth.hmac.secrets[1]: " SHAPE);
	fmt(json, sizeof(json),
	    "{\"auth\": {\"hmac\": {\"secrets\": [{\"file\": \"%s\"}, {\"file\": "
	    "\"/nonexistent/k\"}]}}}",
	    key);
	expect_error(json, "auth.hmac.secrets[1]: cannot open secret file '/nonexistent/k': "
			   "No such file or directory");
}

Test(config, required_keys_of_blocks)
{
	expect_error("{\"auth\": {\"basic\": {\"username\": \"am\"}}}",
		     "auth.basic: missing key 'password'");
	expect_error("{\"auth\": {\"basic\": {\"password\": {\"env\": \"HOME\"}}}}",
		     "auth.basic: missing key 'username'");
	expect_error(
	    "{\"auth\": {\"basic\": {\"username\": \"a:m\", \"password\": {\"env\": \"HOME\"}}}}",
	    "auth.basic.username: must be non-empty and contain no ':'");
	expect_error(
	    "{\"auth\": {\"basic\": {\"username\": \"\", \"password\": {\"env\": \"HOME\"}}}}",
	    "auth.basic.username: must be non-empty and contain no ':'");
	expect_error("{\"auth\": {\"bearer\": {}}}", "auth.bearer: missing key 'token'");
	expect_error("{\"auth\": {\"api\": {}}}", "auth.api: missing key 'token'");
	expect_error("{\"auth\": {\"links\": {\"ttl\": \"1h\"}}}",
		     "auth.links: missing key 'secret'");
	expect_error("{\"auth\": {\"slack_signing\": {}}}",
		     "auth.slack_signing: missing key 'secret'");
	expect_error("{\"notify\": {\"slack\": {\"channel\": \"#x\"}}}",
		     "notify.slack: needs 'webhook_url' or 'bot_token'");
	expect_error("{\"notify\": {\"slack\": {\"bot_token\": {\"env\": \"HOME\"}}}}",
		     "notify.slack.channel: required with 'bot_token'");
	expect_error("{\"notify\": {\"pagerduty\": {\"url\": \"https://x\"}}}",
		     "notify.pagerduty: missing key 'routing_key'");
}

Test(config, secret_names)
{
	static const char *const bad[] = {"bad-name", "1abc", "", "a.b", "caf\\u00e9"};
	static const char *const shown[] = {"bad-name", "1abc", "", "a.b", "caf\xc3\xa9"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char json[128], want[192];
		fmt(json, sizeof(json), "{\"secrets\": {\"%s\": {\"env\": \"HOME\"}}}", bad[i]);
		fmt(want, sizeof(want),
		    "secrets: invalid secret name \"%s\" (must match [A-Za-z_][A-Za-z0-9_]*)",
		    shown[i]);
		expect_error(json, want);
	}
	struct config cfg;
	expect_ok("{\"secrets\": {}}", &cfg);
	cr_assert_eq(cfg.n_secrets, 0);
	cr_assert_null(config_secret(&cfg, "x"));
	config_release(&cfg);
}

/* Keys that authenticate are at least 16 bytes and not only whitespace;
 * the message names the key and never the value. */
Test(config, weak_keys_refused)
{
	const char *shorter = tmp_file("0123456789abcde\n"); /* 15 bytes */
	const char *exact = tmp_file("0123456789abcdef\n");  /* 16 bytes */
	const char *blank = tmp_file("                    \n");
	const char *tabs = tmp_file(" \t \t \t \t \t \t \t \t \t\n");
	char json[512];
	struct config cfg;
	fmt(json, sizeof(json), "{\"auth\": {\"links\": {\"secret\": {\"file\": \"%s\"}}}}",
	    shorter);
	expect_error(json, "auth.links.secret: must be at least 16 bytes");
	fmt(json, sizeof(json), "{\"auth\": {\"bearer\": {\"token\": {\"file\": \"%s\"}}}}",
	    shorter);
	expect_error(json, "auth.bearer.token: must be at least 16 bytes");
	fmt(json, sizeof(json), "{\"auth\": {\"api\": {\"token\": {\"file\": \"%s\"}}}}", blank);
	expect_error(json, "auth.api.token: must not be all whitespace");
	fmt(json, sizeof(json),
	    "{\"auth\": {\"hmac\": {\"secrets\": [{\"file\": \"%s\"}, {\"file\": \"%s\"}]}}}",
	    exact, tabs);
	expect_error(json, "auth.hmac.secrets[1]: must not be all whitespace");
	fmt(json, sizeof(json),
	    "{\"auth\": {\"hmac\": {\"secrets\": [{\"file\": \"%s\"}, {\"file\": \"%s\"}]}}}",
	    exact, shorter);
	expect_error(json, "auth.hmac.secrets[1]: must be at least 16 bytes");
	/* 16 bytes pass everywhere; template secrets and Slack's have no minimum */
	fmt(json, sizeof(json),
	    "{\"auth\": {\"links\": {\"secret\": {\"file\": \"%s\"}},"
	    " \"bearer\": {\"token\": {\"file\": \"%s\"}},"
	    " \"api\": {\"token\": {\"file\": \"%s\"}},"
	    " \"hmac\": {\"secrets\": [{\"file\": \"%s\"}]},"
	    " \"slack_signing\": {\"secret\": {\"file\": \"%s\"}}},"
	    " \"secrets\": {\"t\": {\"file\": \"%s\"}}}",
	    exact, exact, exact, exact, shorter, shorter);
	expect_ok(json, &cfg);
	config_release(&cfg);
}

/* No error path may quote a loaded secret or an inline one. */
Test(config, no_secret_in_messages)
{
	const char *path = tmp_file("s3cr3t-VALUE-4242\n");
	cr_assert_eq(setenv("ROLLBACKD_TEST_SECRET", "s3cr3t-VALUE-4242", 1), 0);
	const char *const tail[] = {
	    /* errors after secrets were loaded */
	    "\"limits\": {\"max_body_byte\": 1}",
	    "\"notify\": {\"pagerduty\": {\"routing_key\": {\"file\": \"/nonexistent\"}}}",
	    /* the secret is not a URL: say so without quoting it */
	    "\"notify\": {\"slack\": {\"webhook_url\": {\"env\": \"ROLLBACKD_TEST_SECRET\"}}}",
	    /* inline secrets are not echoed */
	    "\"secrets\": {\"x\": \"s3cr3t-VALUE-4242\"}",
	    "\"secrets\": {\"x\": {\"value\": \"s3cr3t-VALUE-4242\"}}",
	    "\"secrets\": {\"x\": {\"file\": \"/a\", \"env\": \"s3cr3t-VALUE-4242\"}}",
	};
	for (size_t i = 0; i < sizeof(tail) / sizeof(tail[0]); i++) {
		char json[1024];
		struct config cfg;
		struct error err;
		fmt(json, sizeof(json),
		    "{\"auth\": {\"bearer\": {\"token\": {\"file\": \"%s\"}},"
		    " \"api\": {\"token\": {\"env\": \"ROLLBACKD_TEST_SECRET\"}}}, %s}",
		    path, tail[i]);
		cr_assert_eq(load(json, &cfg, &err), -1, "%s", json);
		cr_assert(strstr(err.msg, "s3cr3t") == NULL, "secret leaked: %s", err.msg);
		assert_zeroed(&cfg);
	}
	expect_error("{\"auth\": {\"hmac\": {\"secrets\": [\"s3cr3t-VALUE-4242\"]}}}",
		     "auth.hmac.secrets[0]: " SHAPE);
	char json[512];
	fmt(json, sizeof(json), "{\"notify\": {\"slack\": {\"webhook_url\": {\"file\": \"%s\"}}}}",
	    path);
	expect_error(json,
		     "notify.slack.webhook_url: the secret is not an http:// or https:// URL");
}

/* ---- the shipped example ---------------------------------------------- */

static char *read_example(size_t *len)
{
	const char *data = getenv("ROLLBACKD_TEST_DATA");
	char path[1024];
	fmt(path, sizeof(path), "%s/../../deploy/rollbackd.json", data ? data : "tests/data");
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	char *text = malloc(1 << 16);
	cr_assert_not_null(text);
	*len = fread(text, 1, (1 << 16) - 1, f);
	text[*len] = '\0';
	fclose(f);
	return text;
}

/* Point every {"file": ...} at a fresh temporary file and set every
 * {"env": ...} variable, so that the example loads on any machine. */
static void redirect_secrets(json_t *v)
{
	if (json_is_array(v)) {
		size_t i;
		json_t *e;
		json_array_foreach(v, i, e) redirect_secrets(e);
		return;
	}
	if (!json_is_object(v))
		return;
	json_t *file = json_object_get(v, "file");
	json_t *env = json_object_get(v, "env");
	if (json_object_size(v) == 1 && json_is_string(file)) {
		/* URLs where a URL is expected, tokens elsewhere */
		bool url = strstr(json_string_value(file), ".url") != NULL;
		const char *path = tmp_file(url ? "https://hooks.slack.com/services/T/B/X\n"
						: "example-secret-value\n");
		json_object_set_new(v, "file", json_string(path));
		return;
	}
	if (json_object_size(v) == 1 && json_is_string(env)) {
		cr_assert_eq(setenv(json_string_value(env), "example-env-secret-value", 1), 0);
		return;
	}
	const char *k;
	json_t *e;
	json_object_foreach(v, k, e) redirect_secrets(e);
}

Test(config, deploy_example_only_lacks_secret_files)
{
	size_t len;
	char *text = read_example(&len);
	struct config cfg;
	struct error err;

	/* As shipped, it names files under /etc/rollbackd that this machine
	 * lacks: that must be the first and only complaint. */
	if (access("/etc/rollbackd/hmac.key", F_OK) != 0) {
		cr_assert_eq(config_load_text(text, len, "rollbackd.json", &cfg, &err), -1);
		cr_assert_str_eq(err.msg,
				 "rollbackd.json: auth.hmac.secrets[0]: cannot open secret "
				 "file '/etc/rollbackd/hmac.key': No such file or directory");
		assert_zeroed(&cfg);
	}

	/* With its secrets pointed at real files, every key is valid. */
	json_error_t jerr;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	cr_assert_not_null(root, "%d:%d: %s", jerr.line, jerr.column, jerr.text);
	redirect_secrets(root);
	char *redirected = json_dumps(root, 0);
	cr_assert_not_null(redirected);
	cr_assert_eq(config_load_text(redirected, strlen(redirected), "rollbackd.json", &cfg, &err),
		     0, "%s", err.msg);

	cr_assert_str_eq(cfg.public_url, "https://rollbackd.example.com");
	cr_assert_eq(cfg.auth.n_hmac_secrets, 1);
	assert_secret(&cfg.auth.hmac_secrets[0], "example-secret-value");
	assert_secret(&cfg.auth.bearer_token, "example-secret-value");
	cr_assert_str_eq(cfg.auth.basic_username, "alertmanager");
	assert_secret(&cfg.api_token, "example-env-secret-value");
	assert_secret(&cfg.links_secret, "example-secret-value");
	assert_secret(&cfg.slack_signing, "example-secret-value");
	assert_secret(config_secret(&cfg, "flags_token"), "example-secret-value");
	assert_secret(&cfg.notify.slack_webhook_url, "https://hooks.slack.com/services/T/B/X");
	assert_secret(&cfg.notify.slack_bot_token, "example-secret-value");
	assert_secret(&cfg.notify.pagerduty_routing_key, "example-secret-value");
	cr_assert_str_eq(cfg.notify.slack_channel, "#rollbacks");

	/* every documented key is present in the example */
	static const char *const paths[][3] = {
	    {"listen"},
	    {"public_url"},
	    {"rules"},
	    {"state_dir"},
	    {"dry_run"},
	    {"log_level"},
	    {"workers"},
	    {"limits", "max_body_bytes"},
	    {"limits", "max_header_bytes"},
	    {"limits", "max_connections"},
	    {"limits", "request_timeout"},
	    {"limits", "max_concurrent_actions"},
	    {"limits", "max_rollbacks_per_hour"},
	    {"limits", "max_alerts"},
	    {"auth", "hmac", "secrets"},
	    {"auth", "hmac", "max_skew"},
	    {"auth", "hmac", "allow_untimestamped"},
	    {"auth", "bearer", "token"},
	    {"auth", "basic", "username"},
	    {"auth", "basic", "password"},
	    {"auth", "api", "token"},
	    {"auth", "links", "secret"},
	    {"auth", "links", "ttl"},
	    {"auth", "slack_signing", "secret"},
	    {"secrets"},
	    {"journal", "segment_bytes"},
	    {"notify", "slack", "webhook_url"},
	    {"notify", "slack", "bot_token"},
	    {"notify", "slack", "channel"},
	    {"notify", "slack", "api_url"},
	    {"notify", "pagerduty", "routing_key"},
	    {"notify", "pagerduty", "url"},
	};
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		json_t *v = root;
		for (size_t j = 0; j < 3 && paths[i][j]; j++)
			v = json_object_get(v, paths[i][j]);
		cr_assert_not_null(v, "deploy/rollbackd.json lacks %s.%s.%s", paths[i][0],
				   paths[i][1] ? paths[i][1] : "", paths[i][2] ? paths[i][2] : "");
	}

	config_release(&cfg);
	free(redirected);
	json_decref(root);
	free(text);
}

Test(config, workers_auto_and_safety_limits)
{
	const char *path =
	    tmp_file("{\"workers\": \"auto\", \"limits\": {\"target_cooldown\": \"0s\","
		     " \"blast_radius\": {\"targets\": 3, \"window\": \"10m\"}}}\n");
	struct config cfg;
	struct error err;
	cr_assert_eq(config_load(path, &cfg, &err), 0, "%s", err.msg);
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	cr_assert_eq(cfg.workers, cpus < 1 ? 1 : cpus > 64 ? 64 : cpus);
	cr_assert_eq(cfg.limits.target_cooldown_ms, 0);
	cr_assert_eq(cfg.limits.blast_targets, 3);
	cr_assert_eq(cfg.limits.blast_window_ms, 600000);
	config_release(&cfg);
	path = tmp_file("{}\n");
	cr_assert_eq(config_load(path, &cfg, &err), 0, "%s", err.msg);
	cr_assert_eq(cfg.limits.target_cooldown_ms, 30 * 60 * 1000);
	cr_assert_eq(cfg.limits.blast_targets, 0);
	config_release(&cfg);
	path = tmp_file("{\"limits\": {\"blast_radius\": {\"targets\": -1}}}\n");
	cr_assert_eq(config_load(path, &cfg, &err), -1);
	cr_assert_not_null(strstr(err.msg,
				  "limits.blast_radius.targets: expected an integer from 0 "
				  "to 100000"),
			   "%s", err.msg);
	path = tmp_file("{\"limits\": {\"blast_radius\": {\"window\": \"0s\"}}}\n");
	cr_assert_eq(config_load(path, &cfg, &err), -1);
	cr_assert_not_null(strstr(err.msg, "limits.blast_radius.window: must be greater than zero"),
			   "%s", err.msg);
	path = tmp_file("{\"limits\": {\"blast_radius\": {\"target\": 3}}}\n");
	cr_assert_eq(config_load(path, &cfg, &err), -1);
	cr_assert_not_null(strstr(err.msg, "limits.blast_radius.target: unknown key"), "%s",
			   err.msg);
}

Test(config, hmac_grafana_headers)
{
	char json[512];
	const char *key = tmp_file("grafana-hmac-key-16+");
	struct config cfg;
	fmt(json, sizeof(json),
	    "{\"auth\":{\"hmac\":{\"secrets\":[{\"file\":\"%s\"}],\"grafana_headers\":"
	    "{\"signature\":\"X-Sig\",\"timestamp\":\"X-Sig-Time\"}}}}",
	    key);
	expect_ok(json, &cfg);
	cr_assert_str_eq(auth_grafana_signature_header(&cfg.auth), "X-Sig");
	cr_assert_str_eq(auth_grafana_timestamp_header(&cfg.auth), "X-Sig-Time");
	config_release(&cfg);
	fmt(json, sizeof(json), "{\"auth\":{\"hmac\":{\"secrets\":[{\"file\":\"%s\"}]}}}", key);
	expect_ok(json, &cfg);
	cr_assert_str_eq(auth_grafana_signature_header(&cfg.auth), "X-Grafana-Alerting-Signature");
	cr_assert_str_eq(auth_grafana_timestamp_header(&cfg.auth), "X-Grafana-Alerting-Timestamp");
	config_release(&cfg);
	fmt(json, sizeof(json),
	    "{\"auth\":{\"hmac\":{\"secrets\":[{\"file\":\"%s\"}],\"grafana_headers\":"
	    "{\"signature\":\"X Sig\"}}}}",
	    key);
	expect_error(json, "auth.hmac.grafana_headers.signature: expected an HTTP header name");
	fmt(json, sizeof(json),
	    "{\"auth\":{\"hmac\":{\"secrets\":[{\"file\":\"%s\"}],\"grafana_headers\":"
	    "{\"signature\":\"X-A\",\"timestamp\":\"x-a\"}}}}",
	    key);
	expect_error(json, "auth.hmac.grafana_headers.timestamp: must differ from the signature "
			   "header");
	fmt(json, sizeof(json),
	    "{\"auth\":{\"hmac\":{\"secrets\":[{\"file\":\"%s\"}],\"grafana_headers\":"
	    "{\"signatur\":\"X-A\"}}}}",
	    key);
	expect_error(json, "auth.hmac.grafana_headers.signatur: unknown key (did you mean "
			   "'signature'?)");
}
