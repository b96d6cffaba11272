/*
 * config: load rollbackd's JSON configuration (SPEC §4) over built-in defaults.
 *
 * Strict on purpose: every block must be an object, an unknown key is an
 * error naming its full path (with a suggestion for a near miss), and every
 * value is checked for type and range here so that the rest of the daemon
 * can trust it. Secrets are read from their files or variables while
 * loading. This module must never put a secret's bytes into a message:
 * messages name where a secret comes from, never what it is, and the shape
 * error for an inline secret does not echo the value.
 *
 * Over 800 lines because every config block of SPEC §4 is parsed here against
 * one set of typed getters and one error style; split by block, each file
 * would repeat the getters.
 */
#include "rollbackd/config.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>

#include "rollbackd/checkpoint.h"
#include "rollbackd/duration.h"
#include "rollbackd/text.h"

#define CONFIG_MAX_FILE_BYTES (1u << 20) /* a real config is a few KiB */
#define WORKERS_MAX 64
#define SHOW_MAX 80 /* longest user string quoted back in a message */

/* json_int_t is long long; on 32-bit hosts size_t is the smaller one. */
#define SIZE_CAP ((uintmax_t)SIZE_MAX < (uintmax_t)LLONG_MAX ? (json_int_t)SIZE_MAX : LLONG_MAX)

static const char secret_shape[] = "a secret must be {\"file\": PATH} or {\"env\": NAME}";

/* "BLOCK.KEY: message" (or "KEY: message" at the top level). */
__attribute__((format(printf, 4, 5))) static int path_error(struct error *err, const char *block,
							    const char *key, const char *fmt, ...)
{
	char what[sizeof(err->msg)];
	char k[SHOW_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	text_shows(key, k, sizeof(k));
	if (*block)
		return error_set(err, "%s.%s: %s", block, k, what);
	return error_set(err, "%s: %s", k, what);
}

/* Reject any key of obj that is not in known (NULL-terminated). */
static int check_keys(json_t *obj, const char *block, const char *const *known, struct error *err)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v)
	{
		bool found = false;
		for (const char *const *k = known; *k && !found; k++)
			found = strcmp(key, *k) == 0;
		if (found)
			continue;
		const char *best = text_suggest(key, known);
		if (best)
			return path_error(err, block, key, "unknown key (did you mean '%s'?)",
					  best);
		return path_error(err, block, key, "unknown key");
	}
	return 0;
}

/* *out = obj[key] when it is an object, NULL when absent; -1 otherwise. */
static int opt_object(json_t *obj, const char *block, const char *key, json_t **out,
		      struct error *err)
{
	json_t *v = json_object_get(obj, key);
	*out = NULL;
	if (!v)
		return 0;
	if (!json_is_object(v))
		return path_error(err, block, key, "expected an object");
	*out = v;
	return 0;
}

/* Replace *dst with a copy of obj[key] when present. */
static int opt_string(json_t *obj, const char *block, const char *key, char **dst,
		      struct error *err)
{
	json_t *v = json_object_get(obj, key);
	if (!v)
		return 0;
	if (!json_is_string(v))
		return path_error(err, block, key, "expected a string");
	char *s = strdup(json_string_value(v));
	if (!s)
		return path_error(err, block, key, "out of memory");
	free(*dst);
	*dst = s;
	return 0;
}

static int opt_bool(json_t *obj, const char *block, const char *key, bool *dst, struct error *err)
{
	json_t *v = json_object_get(obj, key);
	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return path_error(err, block, key, "expected true or false");
	*dst = json_is_true(v);
	return 0;
}

/* An integer in [min, max]; *dst is left alone when the key is absent. */
static int opt_int(json_t *obj, const char *block, const char *key, json_int_t min, json_int_t max,
		   json_int_t *dst, struct error *err)
{
	json_t *v = json_object_get(obj, key);
	if (!v)
		return 0;
	if (json_is_integer(v)) {
		json_int_t n = json_integer_value(v);
		if (n >= min && n <= max) {
			*dst = n;
			return 0;
		}
		if (n > max)
			return path_error(err, block, key, "must be at most %" JSON_INTEGER_FORMAT,
					  max);
	}
	if (min == 1)
		return path_error(err, block, key, "expected a positive integer");
	return path_error(
	    err, block, key,
	    "expected an integer from %" JSON_INTEGER_FORMAT " to %" JSON_INTEGER_FORMAT, min, max);
}

static int opt_size(json_t *obj, const char *block, const char *key, size_t *dst, struct error *err)
{
	json_int_t n = (json_int_t)*dst;
	if (opt_int(obj, block, key, 1, SIZE_CAP, &n, err))
		return -1;
	*dst = (size_t)n;
	return 0;
}

static int opt_count(json_t *obj, const char *block, const char *key, int *dst, struct error *err)
{
	json_int_t n = *dst;
	if (opt_int(obj, block, key, 1, INT_MAX, &n, err))
		return -1;
	*dst = (int)n;
	return 0;
}

/* A Prometheus duration string greater than zero. */
static int opt_duration(json_t *obj, const char *block, const char *key, int64_t *dst,
			struct error *err)
{
	json_t *v = json_object_get(obj, key);
	char shown[SHOW_MAX];
	int64_t ms;
	if (!v)
		return 0;
	if (!json_is_string(v))
		return path_error(err, block, key, "expected a duration string such as \"5m\"");
	if (duration_parse(json_string_value(v), &ms) != 0)
		return path_error(err, block, key, "invalid duration \"%s\"",
				  text_shows(json_string_value(v), shown, sizeof(shown)));
	if (ms <= 0)
		return path_error(err, block, key, "must be greater than zero");
	*dst = ms;
	return 0;
}

/* Load the secret described by v ({"file": PATH} or {"env": NAME}) into
 * *dst, replacing what was there. Never echoes v: it may be an inline
 * secret that someone pasted by mistake. */
static int load_secret(json_t *v, const char *block, const char *key, struct secret *dst,
		       struct error *err)
{
	struct secret s = {NULL, 0};
	json_t *file = NULL, *env = NULL, *src;
	int rc;

	if (json_is_object(v) && json_object_size(v) == 1) {
		file = json_object_get(v, "file");
		env = json_object_get(v, "env");
	}
	src = file ? file : env;
	if (!src || !json_is_string(src) || json_string_length(src) == 0)
		return path_error(err, block, key, "%s", secret_shape);
	if (file)
		rc = secret_from_file(json_string_value(src), &s, err);
	else
		rc = secret_from_env(json_string_value(src), &s, err);
	if (rc != 0) {
		char k[SHOW_MAX];
		text_shows(key, k, sizeof(k));
		return *block ? error_prefix(err, "%s.%s", block, k) : error_prefix(err, "%s", k);
	}
	secret_release(dst);
	*dst = s;
	return 0;
}

/* A key that authenticates (HMAC, links, api, bearer) must be guessable by
 * no one: at least SECRET_MIN_KEY_BYTES, and not only whitespace. */
#define SECRET_MIN_KEY_BYTES 16

static int check_key_strength(const struct secret *s, const char *block, const char *key,
			      struct error *err)
{
	if (!secret_is_set(s))
		return 0;
	bool blank = true;
	for (size_t i = 0; i < s->len && blank; i++) {
		unsigned char c = s->data[i];
		blank = c == ' ' || (c >= '\t' && c <= '\r'); /* \t \n \v \f \r */
	}
	if (blank)
		return path_error(err, block, key, "must not be all whitespace");
	if (s->len < SECRET_MIN_KEY_BYTES)
		return path_error(err, block, key, "must be at least %d bytes",
				  SECRET_MIN_KEY_BYTES);
	return 0;
}

static int opt_secret(json_t *obj, const char *block, const char *key, struct secret *dst,
		      struct error *err)
{
	json_t *v = json_object_get(obj, key);
	if (!v)
		return 0;
	return load_secret(v, block, key, dst, err);
}

/* For blocks that mean nothing without one of their keys. */
static int require(json_t *obj, const char *block, const char *key, struct error *err)
{
	if (json_object_get(obj, key))
		return 0;
	return error_set(err, "%s: missing key '%s'", block, key);
}

static bool is_http_url(const char *s)
{
	return strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0;
}

/* A base URL that we append paths to: "https://x/" and "https://x" mean the
 * same, so keep the form without the trailing slash. */
static void strip_trailing_slashes(char *s)
{
	size_t n = strlen(s);
	while (n > 0 && s[n - 1] == '/' && !(n >= 3 && s[n - 2] == '/' && s[n - 3] == ':'))
		s[--n] = '\0';
}

static int check_url(const char *block, const char *key, const char *s, bool allow_empty,
		     struct error *err)
{
	if (allow_empty && *s == '\0')
		return 0;
	bool ok = is_http_url(s) && s[s[4] == ':' ? 7 : 8] != '\0'; /* a host after "//" */
	for (const char *c = s; ok && *c; c++)
		ok = (unsigned char)*c > ' ' && *c != 0x7f;
	if (!ok)
		return path_error(err, block, key, "expected an http:// or https:// URL");
	return 0;
}

static bool valid_secret_name(const char *s)
{
	if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
		return false;
	for (s++; *s; s++) {
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	}
	return true;
}

/* A duration that may be zero ("0s" switches a wait off). */
static int opt_duration0(json_t *obj, const char *block, const char *key, int64_t *dst,
			 struct error *err)
{
	json_t *v = json_object_get(obj, key);
	int64_t ms;
	if (v && json_is_string(v) && duration_parse(json_string_value(v), &ms) == 0 && ms == 0) {
		*dst = 0;
		return 0;
	}
	return opt_duration(obj, block, key, dst, err);
}

/* limits.blast_radius: {"targets": N, "window": "10m"}; targets 0 = off. */
static int parse_blast_radius(json_t *o, struct config *cfg, struct error *err)
{
	static const char *const known[] = {"targets", "window", NULL};
	const char *b = "limits.blast_radius";
	json_int_t n = cfg->limits.blast_targets;
	if (check_keys(o, b, known, err) || opt_int(o, b, "targets", 0, 100000, &n, err) ||
	    opt_duration(o, b, "window", &cfg->limits.blast_window_ms, err))
		return -1;
	cfg->limits.blast_targets = (int)n;
	return 0;
}

int config_auto_workers(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > WORKERS_MAX ? WORKERS_MAX : (int)n;
}

static int parse_limits(json_t *o, struct config *cfg, struct error *err)
{
	static const char *const known[] = {
	    "target_cooldown",
	    "blast_radius",
	    "max_body_bytes",
	    "max_header_bytes",
	    "max_connections",
	    "request_timeout",
	    "max_concurrent_actions",
	    "max_rollbacks_per_hour",
	    "max_alerts",
	    "max_connections_per_peer",
	    "header_timeout",
	    "max_incidents",
	    NULL,
	};
	const char *b = "limits";
	if (check_keys(o, b, known, err) ||
	    opt_size(o, b, "max_body_bytes", &cfg->limits.max_body_bytes, err) ||
	    opt_size(o, b, "max_header_bytes", &cfg->limits.max_header_bytes, err) ||
	    opt_count(o, b, "max_connections", &cfg->limits.max_connections, err) ||
	    opt_duration(o, b, "request_timeout", &cfg->limits.request_timeout_ms, err) ||
	    opt_count(o, b, "max_concurrent_actions", &cfg->limits.max_concurrent_actions, err) ||
	    opt_count(o, b, "max_rollbacks_per_hour", &cfg->limits.max_rollbacks_per_hour, err) ||
	    opt_size(o, b, "max_alerts", &cfg->limits.max_alerts, err) ||
	    opt_count(o, b, "max_connections_per_peer", &cfg->limits.max_connections_per_peer,
		      err) ||
	    opt_duration(o, b, "header_timeout", &cfg->limits.header_timeout_ms, err) ||
	    opt_size(o, b, "max_incidents", &cfg->limits.max_incidents, err) ||
	    opt_duration0(o, b, "target_cooldown", &cfg->limits.target_cooldown_ms, err))
		return -1;
	json_t *br;
	if (opt_object(o, b, "blast_radius", &br, err) || (br && parse_blast_radius(br, cfg, err)))
		return -1;
	return 0;
}

/* An HTTP header name (RFC 9110 token), at most 64 bytes. */
static bool valid_header_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64)
		return false;
	for (; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= '0' && *s <= '9') || strchr("!#$%&'*+-.^_`|~", *s)))
			return false;
	return true;
}

/* auth.hmac.grafana_headers: the names Grafana's contact point was told to
 * put its signature and timestamp in. */
static int parse_grafana_headers(json_t *o, struct auth_config *ac, struct error *err)
{
	static const char *const known[] = {"signature", "timestamp", NULL};
	const char *b = "auth.hmac.grafana_headers";
	char *sig = NULL, *ts = NULL;
	if (check_keys(o, b, known, err) || opt_string(o, b, "signature", &sig, err) ||
	    opt_string(o, b, "timestamp", &ts, err))
		goto fail;
	if (sig && !valid_header_name(sig)) {
		path_error(err, b, "signature", "expected an HTTP header name");
		goto fail;
	}
	if (ts && !valid_header_name(ts)) {
		path_error(err, b, "timestamp", "expected an HTTP header name");
		goto fail;
	}
	if (sig && ts && strcasecmp(sig, ts) == 0) {
		path_error(err, b, "timestamp", "must differ from the signature header");
		goto fail;
	}
	free(ac->grafana_signature_header);
	free(ac->grafana_timestamp_header);
	ac->grafana_signature_header = sig;
	ac->grafana_timestamp_header = ts;
	return 0;
fail:
	free(sig);
	free(ts);
	return -1;
}

static int parse_hmac(json_t *o, struct auth_config *ac, struct error *err)
{
	static const char *const known[] = {"secrets", "max_skew", "allow_untimestamped",
					    "grafana_headers", NULL};
	json_t *gh = NULL;
	const char *b = "auth.hmac";
	json_t *arr;
	struct secret *keys = NULL;
	size_t n = 0;
	int rc = -1;

	if (check_keys(o, b, known, err) || require(o, b, "secrets", err))
		goto out;
	arr = json_object_get(o, "secrets");
	if (!json_is_array(arr) || json_array_size(arr) == 0) {
		path_error(err, b, "secrets", "expected a non-empty array of secrets");
		goto out;
	}
	n = json_array_size(arr);
	keys = calloc(n, sizeof(*keys));
	if (!keys) {
		path_error(err, b, "secrets", "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		char key[32];
		snprintf(key, sizeof(key), "secrets[%zu]", i);
		if (load_secret(json_array_get(arr, i), b, key, &keys[i], err))
			goto out;
	}
	if (opt_duration(o, b, "max_skew", &ac->max_skew_ms, err) ||
	    opt_bool(o, b, "allow_untimestamped", &ac->allow_untimestamped, err) ||
	    opt_object(o, b, "grafana_headers", &gh, err) ||
	    (gh && parse_grafana_headers(gh, ac, err)))
		goto out;
	for (size_t i = 0; i < n; i++) {
		char key[32];
		snprintf(key, sizeof(key), "secrets[%zu]", i);
		if (check_key_strength(&keys[i], b, key, err))
			goto out;
	}

	for (size_t i = 0; i < ac->n_hmac_secrets; i++)
		secret_release(&ac->hmac_secrets[i]);
	free(ac->hmac_secrets);
	ac->hmac_secrets = keys;
	ac->n_hmac_secrets = n;
	keys = NULL;
	rc = 0;
out:
	if (keys) {
		for (size_t i = 0; i < n; i++)
			secret_release(&keys[i]);
		free(keys);
	}
	return rc;
}

static int parse_basic(json_t *o, struct auth_config *ac, struct error *err)
{
	static const char *const known[] = {"username", "password", NULL};
	const char *b = "auth.basic";
	if (check_keys(o, b, known, err) || require(o, b, "username", err) ||
	    require(o, b, "password", err) ||
	    opt_string(o, b, "username", &ac->basic_username, err))
		return -1;
	/* RFC 7617: the user-id cannot contain a colon. */
	if (ac->basic_username[0] == '\0' || strchr(ac->basic_username, ':'))
		return path_error(err, b, "username", "must be non-empty and contain no ':'");
	return opt_secret(o, b, "password", &ac->basic_password, err);
}

/* A block whose only job is to hold one secret, e.g. auth.bearer.token. */
static int parse_secret_block(json_t *o, const char *block, const char *key, struct secret *dst,
			      struct error *err)
{
	const char *const known[] = {key, NULL};
	if (check_keys(o, block, known, err) || require(o, block, key, err))
		return -1;
	return opt_secret(o, block, key, dst, err);
}

static int parse_auth(json_t *o, struct config *cfg, struct error *err)
{
	static const char *const known[] = {"hmac",  "bearer",	      "basic", "api",
					    "links", "slack_signing", NULL};
	static const char *const links_known[] = {"secret", "ttl", NULL};
	const char *b = "auth";
	json_t *hmac, *bearer, *basic, *api, *links, *slack;

	if (check_keys(o, b, known, err) || opt_object(o, b, "hmac", &hmac, err) ||
	    opt_object(o, b, "bearer", &bearer, err) || opt_object(o, b, "basic", &basic, err) ||
	    opt_object(o, b, "api", &api, err) || opt_object(o, b, "links", &links, err) ||
	    opt_object(o, b, "slack_signing", &slack, err))
		return -1;
	if (hmac && parse_hmac(hmac, &cfg->auth, err))
		return -1;
	if (bearer &&
	    (parse_secret_block(bearer, "auth.bearer", "token", &cfg->auth.bearer_token, err) ||
	     check_key_strength(&cfg->auth.bearer_token, "auth.bearer", "token", err)))
		return -1;
	if (basic && parse_basic(basic, &cfg->auth, err))
		return -1;
	if (api && (parse_secret_block(api, "auth.api", "token", &cfg->api_token, err) ||
		    check_key_strength(&cfg->api_token, "auth.api", "token", err)))
		return -1;
	if (links) {
		if (check_keys(links, "auth.links", links_known, err) ||
		    require(links, "auth.links", "secret", err) ||
		    opt_secret(links, "auth.links", "secret", &cfg->links_secret, err) ||
		    check_key_strength(&cfg->links_secret, "auth.links", "secret", err) ||
		    opt_duration(links, "auth.links", "ttl", &cfg->links_ttl_ms, err))
			return -1;
	}
	if (slack &&
	    parse_secret_block(slack, "auth.slack_signing", "secret", &cfg->slack_signing, err))
		return -1;
	return 0;
}

static int parse_secrets(json_t *o, struct config *cfg, struct error *err)
{
	const char *name;
	json_t *v;
	size_t n = json_object_size(o);

	if (n == 0)
		return 0;
	struct named_secret *arr = realloc(cfg->secrets, (cfg->n_secrets + n) * sizeof(*arr));
	if (!arr)
		return error_set(err, "secrets: out of memory");
	cfg->secrets = arr;
	json_object_foreach(o, name, v)
	{
		char shown[SHOW_MAX];
		if (!valid_secret_name(name))
			return error_set(err,
					 "secrets: invalid secret name \"%s\" (must match "
					 "[A-Za-z_][A-Za-z0-9_]*)",
					 text_shows(name, shown, sizeof(shown)));
		struct named_secret *ns = &cfg->secrets[cfg->n_secrets];
		ns->value.data = NULL;
		ns->value.len = 0;
		if (load_secret(v, "secrets", name, &ns->value, err))
			return -1;
		ns->name = strdup(name);
		if (!ns->name) {
			secret_release(&ns->value);
			return error_set(err, "secrets: out of memory");
		}
		cfg->n_secrets++; /* only complete entries are counted, so release is exact */
	}
	return 0;
}

/* An address as SMTP and a header take it: local@domain, printable ASCII,
 * none of the characters that would end or break a header or an envelope. */
static bool mail_address_ok(const char *s)
{
	const char *at = strchr(s, '@');
	if (!at || at == s || !at[1] || strchr(at + 1, '@') || strlen(s) > 254)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f ||
		    strchr("<>()[],;:\\\"", *s))
			return false;
	return true;
}

static int parse_email(json_t *o, struct config *cfg, struct error *err)
{
	static const char *const known[] = {"smtp_url", "from",	    "to",      "username",
					    "password", "starttls", "ca_file", NULL};
	const char *b = "notify.email";
	struct email_config *m = &cfg->notify.email;
	json_t *to;

	if (check_keys(o, b, known, err) || require(o, b, "smtp_url", err) ||
	    require(o, b, "from", err) || require(o, b, "to", err) ||
	    opt_string(o, b, "smtp_url", &m->smtp_url, err) ||
	    opt_string(o, b, "from", &m->from, err) ||
	    opt_string(o, b, "username", &m->username, err) ||
	    opt_secret(o, b, "password", &m->password, err) ||
	    opt_bool(o, b, "starttls", &m->starttls, err) ||
	    opt_string(o, b, "ca_file", &m->ca_file, err))
		return -1;
	if (strncmp(m->smtp_url, "smtp://", 7) != 0 && strncmp(m->smtp_url, "smtps://", 8) != 0)
		return path_error(err, b, "smtp_url", "expected an smtp:// or smtps:// URL");
	for (const char *c = m->smtp_url; *c; c++)
		if ((unsigned char)*c <= ' ' || *c == 0x7f)
			return path_error(err, b, "smtp_url",
					  "expected an smtp:// or smtps:// URL");
	if (!mail_address_ok(m->from))
		return path_error(err, b, "from", "expected an address like rollbackd@example.com");
	if (secret_is_set(&m->password) && !m->username)
		return path_error(err, b, "password", "needs 'username'");
	to = json_object_get(o, "to");
	if (!json_is_array(to) || json_array_size(to) == 0 || json_array_size(to) > 100)
		return path_error(err, b, "to", "expected an array of 1 to 100 addresses");
	m->to = calloc(json_array_size(to), sizeof(*m->to));
	if (!m->to)
		return path_error(err, b, "to", "out of memory");
	for (size_t i = 0; i < json_array_size(to); i++) {
		json_t *v = json_array_get(to, i);
		char key[32];
		snprintf(key, sizeof(key), "to[%zu]", i);
		if (!json_is_string(v) || !mail_address_ok(json_string_value(v)))
			return path_error(err, b, key,
					  "expected an address like oncall@example.com");
		if (!(m->to[m->n_to] = strdup(json_string_value(v))))
			return path_error(err, b, key, "out of memory");
		m->n_to++;
	}
	return 0;
}

static int parse_notify(json_t *o, struct config *cfg, struct error *err)
{
	static const char *const known[] = {"slack", "pagerduty", "email", "max_queued", NULL};
	static const char *const slack_known[] = {"webhook_url", "bot_token", "channel", "api_url",
						  NULL};
	static const char *const pd_known[] = {"routing_key", "url", "change_url", NULL};
	json_t *slack, *pd, *email;

	if (check_keys(o, "notify", known, err) || opt_object(o, "notify", "slack", &slack, err) ||
	    opt_object(o, "notify", "pagerduty", &pd, err) ||
	    opt_object(o, "notify", "email", &email, err) ||
	    (email && parse_email(email, cfg, err)) ||
	    opt_size(o, "notify", "max_queued", &cfg->notify.max_queued, err))
		return -1;
	if (slack) {
		const char *b = "notify.slack";
		if (check_keys(slack, b, slack_known, err))
			return -1;
		if (!json_object_get(slack, "webhook_url") && !json_object_get(slack, "bot_token"))
			return error_set(err, "%s: needs 'webhook_url' or 'bot_token'", b);
		if (opt_secret(slack, b, "webhook_url", &cfg->notify.slack_webhook_url, err) ||
		    opt_secret(slack, b, "bot_token", &cfg->notify.slack_bot_token, err) ||
		    opt_string(slack, b, "channel", &cfg->notify.slack_channel, err) ||
		    opt_string(slack, b, "api_url", &cfg->notify.slack_api_url, err))
			return -1;
		/* Checked without quoting it: a webhook URL is itself a credential. */
		const struct secret *url = &cfg->notify.slack_webhook_url;
		if (secret_is_set(url) && !is_http_url((const char *)url->data))
			return path_error(err, b, "webhook_url",
					  "the secret is not an http:// or https:// URL");
		if (secret_is_set(&cfg->notify.slack_bot_token) &&
		    cfg->notify.slack_channel[0] == '\0')
			return path_error(err, b, "channel", "required with 'bot_token'");
		if (check_url(b, "api_url", cfg->notify.slack_api_url, false, err))
			return -1;
		strip_trailing_slashes(cfg->notify.slack_api_url);
	}
	if (pd) {
		const char *b = "notify.pagerduty";
		if (check_keys(pd, b, pd_known, err) || require(pd, b, "routing_key", err) ||
		    opt_secret(pd, b, "routing_key", &cfg->notify.pagerduty_routing_key, err) ||
		    opt_string(pd, b, "url", &cfg->notify.pagerduty_url, err) ||
		    check_url(b, "url", cfg->notify.pagerduty_url, false, err) ||
		    opt_string(pd, b, "change_url", &cfg->notify.pagerduty_change_url, err) ||
		    check_url(b, "change_url", cfg->notify.pagerduty_change_url, true, err))
			return -1;
	}
	return 0;
}

/* checkpoints: {"key": SECRET, "every": DURATION, "publish": {"file", "url"}} */
static int parse_checkpoints(json_t *o, struct config *cfg, struct error *err)
{
	static const char *const known[] = {"key", "every", "publish", NULL};
	static const char *const publish_known[] = {"file", "url", NULL};
	const char *b = "checkpoints";
	const char *pb = "checkpoints.publish";
	json_t *publish;
	struct error kerr = {{0}};

	if (check_keys(o, b, known, err) || require(o, b, "key", err) ||
	    require(o, b, "publish", err) || opt_secret(o, b, "key", &cfg->checkpoints.key, err) ||
	    opt_duration(o, b, "every", &cfg->checkpoints.every_ms, err) ||
	    opt_object(o, b, "publish", &publish, err))
		return -1;
	if (!publish)
		return path_error(err, b, "publish", "expected an object");
	if (checkpoint_key_parse(cfg->checkpoints.key.data, cfg->checkpoints.key.len, NULL, &kerr) <
	    0)
		return path_error(err, b, "key", "%s", kerr.msg);
	if (check_keys(publish, pb, publish_known, err) ||
	    opt_string(publish, pb, "file", &cfg->checkpoints.publish_file, err) ||
	    opt_string(publish, pb, "url", &cfg->checkpoints.publish_url, err) ||
	    check_url(pb, "url", cfg->checkpoints.publish_url, true, err))
		return -1;
	if (json_object_get(publish, "file") && cfg->checkpoints.publish_file[0] == '\0')
		return path_error(err, pb, "file", "must not be empty");
	if (!cfg->checkpoints.publish_file[0] && !cfg->checkpoints.publish_url[0])
		return error_set(err,
				 "%s: needs 'file' or 'url' (a checkpoint kept only in the "
				 "journal protects nothing)",
				 pb);
	return 0;
}

static int parse_top(json_t *o, struct config *cfg, struct error *err)
{
	static const char *const known[] = {
	    "listen",	 "public_url", "rules",	      "state_dir",  "dry_run",
	    "log_level", "workers",    "limits",      "auth",	    "secrets",
	    "journal",	 "notify",     "checkpoints", "prometheus", NULL,
	};
	static const char *const prometheus_known[] = {"url", NULL};
	static const char *const journal_known[] = {"segment_bytes", "snapshot_records", NULL};
	static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
	json_t *limits, *auth, *secrets, *journal, *notify, *checkpoints, *prometheus;
	json_int_t n;
	char host[256];
	int port;

	if (check_keys(o, "", known, err))
		return -1;

	if (opt_string(o, "", "listen", &cfg->listen, err) ||
	    config_listen_addr(cfg, host, sizeof(host), &port, err))
		return -1;

	if (opt_string(o, "", "public_url", &cfg->public_url, err) ||
	    check_url("", "public_url", cfg->public_url, true, err))
		return -1;
	strip_trailing_slashes(cfg->public_url);

	if (opt_string(o, "", "rules", &cfg->rules, err))
		return -1;
	if (cfg->rules[0] == '\0')
		return error_set(err, "rules: must not be empty");
	if (opt_string(o, "", "state_dir", &cfg->state_dir, err))
		return -1;
	if (cfg->state_dir[0] == '\0')
		return error_set(err, "state_dir: must not be empty");

	if (opt_bool(o, "", "dry_run", &cfg->dry_run, err))
		return -1;

	if (opt_string(o, "", "log_level", &cfg->log_level, err))
		return -1;
	bool level_ok = false;
	for (const char *const *l = levels; *l; l++)
		level_ok = level_ok || strcmp(cfg->log_level, *l) == 0;
	if (!level_ok)
		return error_set(err,
				 "log_level: expected \"debug\", \"info\", \"warn\" or \"error\"");

	json_t *w = json_object_get(o, "workers");
	if (w && json_is_string(w)) {
		if (strcmp(json_string_value(w), "auto") != 0)
			return error_set(err, "workers: expected a positive integer or \"auto\"");
		cfg->workers = config_auto_workers();
	} else {
		n = cfg->workers;
		if (opt_int(o, "", "workers", 1, WORKERS_MAX, &n, err))
			return -1;
		cfg->workers = (int)n;
	}

	if (opt_object(o, "", "limits", &limits, err) || opt_object(o, "", "auth", &auth, err) ||
	    opt_object(o, "", "secrets", &secrets, err) ||
	    opt_object(o, "", "journal", &journal, err) ||
	    opt_object(o, "", "notify", &notify, err) ||
	    opt_object(o, "", "checkpoints", &checkpoints, err) ||
	    opt_object(o, "", "prometheus", &prometheus, err))
		return -1;
	/* verify.query's Prometheus (SPEC §6): a base URL, /api/v1/query is appended */
	if (prometheus && (check_keys(prometheus, "prometheus", prometheus_known, err) ||
			   require(prometheus, "prometheus", "url", err) ||
			   opt_string(prometheus, "prometheus", "url", &cfg->prometheus_url, err) ||
			   check_url("prometheus", "url", cfg->prometheus_url, false, err)))
		return -1;
	strip_trailing_slashes(cfg->prometheus_url);
	if (limits && parse_limits(limits, cfg, err))
		return -1;
	if (auth && parse_auth(auth, cfg, err))
		return -1;
	if (secrets && parse_secrets(secrets, cfg, err))
		return -1;
	if (journal) {
		json_int_t seg = (json_int_t)cfg->journal.segment_bytes;
		json_int_t snap = (json_int_t)cfg->journal.snapshot_records;
		if (check_keys(journal, "journal", journal_known, err) ||
		    opt_int(journal, "journal", "segment_bytes", 1, LLONG_MAX, &seg, err) ||
		    opt_int(journal, "journal", "snapshot_records", 0, LLONG_MAX, &snap, err))
			return -1;
		cfg->journal.segment_bytes = (uint64_t)seg;
		cfg->journal.snapshot_records = (uint64_t)snap;
	}
	if (notify && parse_notify(notify, cfg, err))
		return -1;
	if (checkpoints && parse_checkpoints(checkpoints, cfg, err))
		return -1;
	return 0;
}

int config_init(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->listen = strdup("127.0.0.1:9097");
	cfg->public_url = strdup("");
	cfg->rules = strdup("rules/");
	cfg->state_dir = strdup("var/");
	cfg->log_level = strdup("info");
	cfg->notify.slack_channel = strdup("");
	cfg->notify.slack_api_url = strdup("https://slack.com/api");
	cfg->notify.pagerduty_url = strdup("https://events.pagerduty.com/v2/enqueue");
	cfg->notify.pagerduty_change_url = strdup(""); /* Change Events are opt-in */
	cfg->checkpoints.publish_file = strdup("");
	cfg->checkpoints.publish_url = strdup("");
	cfg->prometheus_url = strdup(""); /* verify.query needs it */
	if (!cfg->prometheus_url || !cfg->checkpoints.publish_file ||
	    !cfg->checkpoints.publish_url || !cfg->listen || !cfg->public_url || !cfg->rules ||
	    !cfg->state_dir || !cfg->log_level || !cfg->notify.slack_channel ||
	    !cfg->notify.slack_api_url || !cfg->notify.pagerduty_url ||
	    !cfg->notify.pagerduty_change_url) {
		config_release(cfg);
		return -1;
	}
	cfg->dry_run = true;
	cfg->workers = config_auto_workers(); /* "auto" (SPEC §4) */
	cfg->limits.max_body_bytes = 1048576;
	cfg->limits.max_header_bytes = 16384;
	cfg->limits.max_connections = 1024;
	cfg->limits.max_connections_per_peer = 512;
	cfg->limits.header_timeout_ms = 5 * 1000;
	cfg->limits.request_timeout_ms = 10 * 1000;
	cfg->limits.max_concurrent_actions = 4;
	cfg->limits.max_rollbacks_per_hour = 10;
	cfg->limits.max_alerts = 10000;
	cfg->limits.max_incidents = 100000;
	cfg->limits.target_cooldown_ms = 30 * 60 * 1000;
	cfg->limits.blast_targets = 0; /* off unless configured */
	cfg->limits.blast_window_ms = 10 * 60 * 1000;
	cfg->notify.max_queued = 10000;
	cfg->notify.email.starttls = true;
	cfg->auth.max_skew_ms = 5 * 60 * 1000;
	cfg->auth.allow_untimestamped = false;
	cfg->links_ttl_ms = 24LL * 60 * 60 * 1000;
	cfg->journal.segment_bytes = 268435456;
	cfg->journal.snapshot_records = 100000;
	cfg->checkpoints.every_ms = 60 * 1000;
	return 0;
}

int config_load_text(const char *text, size_t len, const char *name, struct config *cfg,
		     struct error *err)
{
	struct config tmp;
	json_t *root = NULL;
	json_error_t jerr;
	int rc = -1;

	if (config_init(&tmp) != 0) {
		error_set(err, "%s: out of memory", name);
		goto out;
	}
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		error_set(err, "%s:%d:%d: %s", name, jerr.line, jerr.column, jerr.text);
		goto out;
	}
	if (!json_is_object(root)) {
		error_set(err, "%s: expected a JSON object at the top level", name);
		goto out;
	}
	if (parse_top(root, &tmp, err) != 0) {
		error_prefix(err, "%s", name);
		goto out;
	}
	tmp.path = strdup(name);
	if (!tmp.path) {
		error_set(err, "%s: out of memory", name);
		goto out;
	}
	*cfg = tmp;
	memset(&tmp, 0, sizeof(tmp));
	rc = 0;
out:
	json_decref(root);
	config_release(&tmp);
	if (rc != 0)
		memset(cfg, 0, sizeof(*cfg));
	return rc;
}

int config_load(const char *path, struct config *cfg, struct error *err)
{
	FILE *f = NULL;
	char *text = NULL;
	size_t len = 0;
	int rc = -1;

	memset(cfg, 0, sizeof(*cfg));
	f = fopen(path, "rb");
	if (!f) {
		error_set(err, "%s: cannot read: %s", path, strerror(errno));
		goto out;
	}
	/* One byte over the cap tells "too big" from "exactly at the cap". */
	text = malloc(CONFIG_MAX_FILE_BYTES + 1);
	if (!text) {
		error_set(err, "%s: out of memory", path);
		goto out;
	}
	len = fread(text, 1, CONFIG_MAX_FILE_BYTES + 1, f);
	if (ferror(f)) {
		error_set(err, "%s: cannot read: %s", path, strerror(errno));
		goto out;
	}
	if (len > CONFIG_MAX_FILE_BYTES) {
		error_set(err, "%s: larger than %u bytes", path, CONFIG_MAX_FILE_BYTES);
		goto out;
	}
	rc = config_load_text(text, len, path, cfg, err);
out:
	if (f)
		fclose(f);
	free(text);
	return rc;
}

void config_release(struct config *cfg)
{
	if (!cfg)
		return;
	free(cfg->path);
	free(cfg->listen);
	free(cfg->public_url);
	free(cfg->rules);
	free(cfg->state_dir);
	free(cfg->log_level);
	auth_config_release(&cfg->auth);
	secret_release(&cfg->api_token);
	secret_release(&cfg->links_secret);
	secret_release(&cfg->slack_signing);
	for (size_t i = 0; i < cfg->n_secrets; i++) {
		free(cfg->secrets[i].name);
		secret_release(&cfg->secrets[i].value);
	}
	free(cfg->secrets);
	secret_release(&cfg->notify.slack_webhook_url);
	secret_release(&cfg->notify.slack_bot_token);
	free(cfg->notify.slack_channel);
	free(cfg->notify.slack_api_url);
	secret_release(&cfg->notify.pagerduty_routing_key);
	free(cfg->notify.pagerduty_url);
	free(cfg->notify.pagerduty_change_url);
	free(cfg->notify.email.smtp_url);
	free(cfg->notify.email.from);
	for (size_t i = 0; i < cfg->notify.email.n_to; i++)
		free(cfg->notify.email.to[i]);
	free(cfg->notify.email.to);
	free(cfg->notify.email.username);
	secret_release(&cfg->notify.email.password);
	free(cfg->notify.email.ca_file);
	secret_release(&cfg->checkpoints.key);
	free(cfg->checkpoints.publish_file);
	free(cfg->checkpoints.publish_url);
	free(cfg->prometheus_url);
	memset(cfg, 0, sizeof(*cfg));
}

int config_listen_addr(const struct config *cfg, char *host, size_t hostsz, int *port,
		       struct error *err)
{
	const char *s = cfg->listen ? cfg->listen : "";
	const char *h, *hend, *p;
	char shown[SHOW_MAX];

	if (s[0] == '[') {
		h = s + 1;
		hend = strchr(h, ']');
		if (!hend || hend[1] != ':')
			goto bad;
		p = hend + 2;
	} else {
		hend = strrchr(s, ':');
		if (!hend || memchr(s, ':', (size_t)(hend - s)))
			goto bad; /* no port, or an IPv6 address without brackets */
		h = s;
		p = hend + 1;
	}
	size_t hlen = (size_t)(hend - h);
	if (hlen == 0)
		goto bad;
	for (const char *c = h; c < hend; c++) {
		if ((unsigned char)*c <= ' ' || *c == '[' || *c == ']' || *c == '/' || *c == 0x7f)
			goto bad;
	}
	size_t plen = strlen(p);
	long v = 0;
	if (plen == 0 || plen > 5)
		goto bad_port;
	for (size_t i = 0; i < plen; i++) {
		if (p[i] < '0' || p[i] > '9')
			goto bad_port;
		v = v * 10 + (p[i] - '0');
	}
	if (v > 65535)
		goto bad_port;
	if (hlen >= hostsz)
		return error_set(err, "listen: host too long in \"%s\"",
				 text_shows(s, shown, sizeof(shown)));
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	*port = (int)v;
	return 0;
bad:
	return error_set(err, "listen: expected \"HOST:PORT\" or \"[IPV6]:PORT\", got \"%s\"",
			 text_shows(s, shown, sizeof(shown)));
bad_port:
	return error_set(err, "listen: invalid port in \"%s\" (expected 0 to 65535)",
			 text_shows(s, shown, sizeof(shown)));
}

const struct secret *config_secret(const struct config *cfg, const char *name)
{
	if (!cfg || !name)
		return NULL;
	for (size_t i = 0; i < cfg->n_secrets; i++) {
		if (strcmp(cfg->secrets[i].name, name) == 0)
			return &cfg->secrets[i].value;
	}
	return NULL;
}
