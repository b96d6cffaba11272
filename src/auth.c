/*
 * auth: verify the credentials of a POST /v1/alerts (SPEC §5).
 *
 * Pure functions over header values and the raw body. Every comparison
 * against a secret is constant-time: MACs with sodium_memcmp, tokens and
 * passwords by hashing both sides first so that their lengths do not leak
 * either. Every configured secret is tried against every presented value
 * without stopping at the first match, so timing does not say which secret
 * matched. Nothing here logs or returns a secret, or which secret was tried.
 */
#include "rollbackd/auth.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "rollbackd/text.h"

#define AUTH_MAX_HEADER 4096 /* longest header value we look at */
#define MAC_LEN crypto_auth_hmacsha256_BYTES

/* One presented credential's outcome. Higher values win when several
 * credentials were presented: a malformed header is reported before a wrong
 * credential, a wrong credential before a stale one, and any failure beats
 * a success. */
enum verdict {
	V_ABSENT = 0,
	V_OK,
	V_STALE,
	V_INVALID,
	V_DISABLED, /* the scheme is not configured or not enabled */
	V_MALFORMED,
};

static bool too_long(const char *s)
{
	return strnlen(s, AUTH_MAX_HEADER + 1) > AUTH_MAX_HEADER;
}

int auth_hex_decode(const char *hex, size_t hexlen, unsigned char *out, size_t n)
{
	if (n > SIZE_MAX / 2 || hexlen != 2 * n)
		return -1;
	/* Branch-free per digit (after libsodium's sodium_hex2bin), so that
	 * decoding a value does not time its contents. */
	unsigned int bad = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned int v = 0;
		for (int k = 0; k < 2; k++) {
			unsigned int c = (unsigned char)hex[2 * i + (size_t)k];
			unsigned int num = c ^ 48U;
			unsigned int num0 = (num - 10U) >> 8; /* 0xff.. if digit */
			unsigned int alpha = (c & ~32U) - 55U;
			unsigned int alpha0 = ((alpha - 10U) ^ (alpha - 16U)) >> 8;
			unsigned int ok = (num0 | alpha0) & 1U;
			bad |= ok ^ 1U;
			v = (v << 4) | (((num0 & num) | (alpha0 & alpha)) & 15U);
		}
		out[i] = (unsigned char)v;
	}
	return bad ? -1 : 0;
}

int auth_parse_signature(const char *s, size_t len, struct rollbackd_signature *out)
{
	struct rollbackd_signature sig;
	bool have_t = false;
	size_t i = 0;

	if (!s || len > AUTH_MAX_HEADER)
		return -1;
	memset(&sig, 0, sizeof(sig));
	for (;;) {
		/* One element: [OWS] key "=" value [OWS], up to a comma. */
		size_t start = i, end;
		while (i < len && s[i] != ',')
			i++;
		end = i;
		while (start < end && (s[start] == ' ' || s[start] == '\t'))
			start++;
		while (end > start && (s[end - 1] == ' ' || s[end - 1] == '\t'))
			end--;
		if (start == end)
			return -1; /* empty element, trailing or doubled comma */
		const char *el = s + start, *eq = memchr(el, '=', end - start);
		if (!eq || eq == el)
			return -1;
		size_t klen = (size_t)(eq - el);
		const char *val = eq + 1;
		size_t vlen = (size_t)(s + end - val);
		if (klen == 1 && el[0] == 't') {
			if (have_t || text_parse_digits(val, vlen, &sig.t) < 0)
				return -1;
			have_t = true;
		} else if (klen == 2 && el[0] == 'v' && el[1] == '1') {
			if (sig.n_v1 == AUTH_MAX_V1 ||
			    auth_hex_decode(val, vlen, sig.v1[sig.n_v1], MAC_LEN) < 0)
				return -1;
			sig.n_v1++;
		}
		/* Other keys (v0=, future schemes) are ignored. */
		if (i == len)
			break;
		i++; /* the comma */
	}
	if (!have_t || sig.n_v1 == 0)
		return -1;
	*out = sig;
	return 0;
}

/* HMAC-SHA256(key, prefix || body). Keys of any length, as RFC 2104 says. */
static void hmac(const struct secret *key, const void *prefix, size_t prefix_len, const void *body,
		 size_t body_len, unsigned char mac[MAC_LEN])
{
	crypto_auth_hmacsha256_state st;
	crypto_auth_hmacsha256_init(&st, key->data, key->len);
	if (prefix_len)
		crypto_auth_hmacsha256_update(&st, prefix, prefix_len);
	if (body_len)
		crypto_auth_hmacsha256_update(&st, body, body_len);
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_memzero(&st, sizeof(st));
}

int auth_sign(const struct secret *key, int64_t t, const void *body, size_t body_len,
	      struct buf *out)
{
	char prefix[32];
	unsigned char mac[MAC_LEN];
	size_t old = out->len;

	if (!secret_is_set(key) || t < 0 || sodium_init() < 0)
		return -1;
	int n = snprintf(prefix, sizeof(prefix), "%" PRId64 ".", t);
	if (n < 0 || (size_t)n >= sizeof(prefix))
		return -1;
	hmac(key, prefix, (size_t)n, body, body_len, mac);
	if (buf_addf(out, "t=%" PRId64 ",v1=", t) < 0 || buf_add_hex(out, mac, sizeof(mac)) < 0) {
		if (out->data) {
			out->len = old;
			out->data[old] = '\0';
		}
		return -1;
	}
	return 0;
}

/* True when |now - t| seconds is more than max_skew_ms allows. */
static bool is_stale(int64_t t, int64_t now, int64_t max_skew_ms)
{
	/* The distance of two int64 always fits in a uint64. */
	uint64_t d = t >= now ? (uint64_t)t - (uint64_t)now : (uint64_t)now - (uint64_t)t;
	uint64_t allowed = max_skew_ms > 0 ? (uint64_t)max_skew_ms / 1000 : 0;
	return d > allowed;
}

/* Does any configured secret's MAC over prefix || body equal any of the
 * presented macs? Always does the full secrets × values work. */
static bool any_mac_matches(const struct auth_config *ac, const char *prefix, size_t prefix_len,
			    const unsigned char *body, size_t body_len,
			    const unsigned char (*macs)[MAC_LEN], size_t n_macs)
{
	unsigned int match = 0;
	unsigned char mac[MAC_LEN];
	for (size_t k = 0; k < ac->n_hmac_secrets; k++) {
		const struct secret *key = &ac->hmac_secrets[k];
		if (!secret_is_set(key))
			continue;
		hmac(key, prefix, prefix_len, body, body_len, mac);
		for (size_t j = 0; j < n_macs; j++)
			match |= (unsigned int)(sodium_memcmp(mac, macs[j], MAC_LEN) == 0);
	}
	sodium_memzero(mac, sizeof(mac));
	return match != 0;
}

static bool hmac_configured(const struct auth_config *ac)
{
	for (size_t k = 0; k < ac->n_hmac_secrets; k++)
		if (secret_is_set(&ac->hmac_secrets[k]))
			return true;
	return false;
}

static enum verdict verify_rollbackd(const struct auth_config *ac, const struct auth_input *in)
{
	struct rollbackd_signature sig;
	const char *h = in->rollbackd_signature;
	char prefix[32];

	if (too_long(h) || auth_parse_signature(h, strlen(h), &sig) < 0)
		return V_MALFORMED;
	if (!hmac_configured(ac))
		return V_DISABLED;
	/* The MAC covers the canonical decimal of t (what auth_sign writes),
	 * the same value the skew check uses: leading zeros in the header
	 * change neither. */
	int n = snprintf(prefix, sizeof(prefix), "%" PRId64 ".", sig.t);
	if (n < 0 || (size_t)n >= sizeof(prefix))
		return V_MALFORMED;
	bool match = any_mac_matches(ac, prefix, (size_t)n, in->body, in->body_len,
				     (const unsigned char(*)[MAC_LEN])sig.v1, sig.n_v1);
	bool stale = is_stale(sig.t, in->now, ac->max_skew_ms);
	if (!match)
		return V_INVALID;
	return stale ? V_STALE : V_OK;
}

static enum verdict verify_github(const struct auth_config *ac, const struct auth_input *in)
{
	static const char pfx[] = "sha256=";
	const char *h = in->hub_signature_256;
	unsigned char mac[1][MAC_LEN];

	if (too_long(h))
		return V_MALFORMED;
	size_t len = strlen(h);
	if (len < sizeof(pfx) - 1 || memcmp(h, pfx, sizeof(pfx) - 1) != 0 ||
	    auth_hex_decode(h + sizeof(pfx) - 1, len - (sizeof(pfx) - 1), mac[0], MAC_LEN) < 0)
		return V_MALFORMED;
	if (!ac->allow_untimestamped || !hmac_configured(ac))
		return V_DISABLED;
	if (!any_mac_matches(ac, NULL, 0, in->body, in->body_len,
			     (const unsigned char(*)[MAC_LEN])mac, 1))
		return V_INVALID;
	return V_OK;
}

static enum verdict verify_grafana(const struct auth_config *ac, const struct auth_input *in)
{
	const char *h = in->grafana_signature, *ts = in->grafana_timestamp;
	unsigned char mac[1][MAC_LEN];
	char prefix[32];
	size_t prefix_len = 0;
	int64_t t = 0;

	if (too_long(h) || auth_hex_decode(h, strlen(h), mac[0], MAC_LEN) < 0)
		return V_MALFORMED;
	if (ts) {
		size_t tlen = strnlen(ts, sizeof(prefix));
		/* Sign over the timestamp exactly as sent. */
		if (tlen >= sizeof(prefix) - 1 || text_parse_digits(ts, tlen, &t) < 0)
			return V_MALFORMED;
		memcpy(prefix, ts, tlen);
		prefix[tlen] = ':';
		prefix_len = tlen + 1;
	} else if (!ac->allow_untimestamped) {
		return V_DISABLED;
	}
	if (!hmac_configured(ac))
		return V_DISABLED;
	bool match = any_mac_matches(ac, prefix, prefix_len, in->body, in->body_len,
				     (const unsigned char(*)[MAC_LEN])mac, 1);
	bool stale = ts && is_stale(t, in->now, ac->max_skew_ms);
	if (!match)
		return V_INVALID;
	return stale ? V_STALE : V_OK;
}

/* Constant-time, length-hiding equality: compare fixed-size digests. */
static bool secret_equal(const void *p, size_t n, const unsigned char *want, size_t want_len)
{
	unsigned char a[crypto_generichash_BYTES], b[crypto_generichash_BYTES];
	crypto_generichash(a, sizeof(a), p, n, NULL, 0);
	crypto_generichash(b, sizeof(b), want, want_len, NULL, 0);
	bool eq = sodium_memcmp(a, b, sizeof(a)) == 0;
	sodium_memzero(a, sizeof(a));
	sodium_memzero(b, sizeof(b));
	return eq;
}

static enum verdict verify_bearer(const struct auth_config *ac, const char *token)
{
	size_t n = strlen(token);
	if (!secret_is_set(&ac->bearer_token))
		return V_DISABLED;
	if (n == 0)
		return V_INVALID;
	return secret_equal(token, n, ac->bearer_token.data, ac->bearer_token.len) ? V_OK
										   : V_INVALID;
}

static enum verdict verify_basic(const struct auth_config *ac, const char *b64)
{
	/* A header of at most AUTH_MAX_HEADER bytes decodes to fewer. */
	unsigned char plain[AUTH_MAX_HEADER];
	size_t plain_len = 0;
	const char *b64_end = NULL;
	enum verdict v = V_INVALID;
	size_t b64_len = strlen(b64);

	if (!ac->basic_username || !secret_is_set(&ac->basic_password))
		return V_DISABLED;
	if (b64_len == 0)
		return V_INVALID;
	if (sodium_base642bin(plain, sizeof(plain), b64, b64_len, NULL, &plain_len, &b64_end,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    b64_end != b64 + b64_len)
		goto out;
	const unsigned char *colon = memchr(plain, ':', plain_len);
	if (!colon)
		goto out;
	size_t ulen = (size_t)(colon - plain);
	/* Both comparisons always run, so timing does not say which failed. */
	bool user_ok = secret_equal(plain, ulen, (const unsigned char *)ac->basic_username,
				    strlen(ac->basic_username));
	bool pass_ok = secret_equal(colon + 1, plain_len - ulen - 1, ac->basic_password.data,
				    ac->basic_password.len);
	if (user_ok & pass_ok)
		v = V_OK;
out:
	sodium_memzero(plain, sizeof(plain));
	return v;
}

/* Authorization: <scheme> <credentials>, scheme case-insensitive. A scheme
 * we do not speak is a presented credential that does not verify. */
static enum verdict verify_authorization(const struct auth_config *ac, const char *h,
					 const char **scheme)
{
	if (too_long(h))
		return V_INVALID;
	size_t slen = strcspn(h, " \t");
	const char *cred = h + slen;
	while (*cred == ' ' || *cred == '\t')
		cred++;
	if (slen == 6 && strncasecmp(h, "bearer", 6) == 0) {
		*scheme = "bearer";
		return verify_bearer(ac, cred);
	}
	if (slen == 5 && strncasecmp(h, "basic", 5) == 0) {
		*scheme = "basic";
		return verify_basic(ac, cred);
	}
	return V_INVALID;
}

bool auth_config_is_open(const struct auth_config *ac)
{
	/* Anything half-configured counts as configured: fail closed. */
	return ac->n_hmac_secrets == 0 && !secret_is_set(&ac->bearer_token) &&
	       ac->basic_username == NULL && !secret_is_set(&ac->basic_password);
}

void auth_config_release(struct auth_config *ac)
{
	for (size_t k = 0; k < ac->n_hmac_secrets; k++)
		secret_release(&ac->hmac_secrets[k]);
	free(ac->hmac_secrets);
	secret_release(&ac->bearer_token);
	free(ac->basic_username);
	secret_release(&ac->basic_password);
	free(ac->grafana_signature_header);
	free(ac->grafana_timestamp_header);
	memset(ac, 0, sizeof(*ac));
}

enum auth_result auth_verify(const struct auth_config *ac, const struct auth_input *in,
			     const char **scheme)
{
	enum verdict worst = V_ABSENT, v;
	const char *passed = NULL, *name, *disabled = NULL;

	if (auth_config_is_open(ac)) {
		if (!in->from_loopback)
			return AUTH_MISSING;
		if (scheme)
			*scheme = "loopback";
		return AUTH_OK;
	}
	if (sodium_init() < 0)
		return AUTH_INVALID;

	/* Every presented credential is checked, in a fixed order; the first
	 * that passes names the scheme, the worst outcome decides. */
	struct {
		const char *value;
		enum verdict (*verify)(const struct auth_config *, const struct auth_input *);
		const char *name;
	} sigs[] = {
	    {in->rollbackd_signature, verify_rollbackd, "hmac"},
	    {in->grafana_signature, verify_grafana, "grafana"},
	    {in->hub_signature_256, verify_github, "github"},
	};
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		if (!sigs[i].value)
			continue;
		v = sigs[i].verify(ac, in);
		if (v == V_OK && !passed)
			passed = sigs[i].name;
		if (v == V_DISABLED && !disabled)
			disabled = sigs[i].name;
		if (v > worst)
			worst = v;
	}
	if (in->authorization) {
		name = NULL;
		v = verify_authorization(ac, in->authorization, &name);
		if (v == V_OK && !passed)
			passed = name;
		if (v == V_DISABLED && !disabled)
			disabled = name;
		if (v > worst)
			worst = v;
	}

	switch (worst) {
	case V_ABSENT:
		return AUTH_MISSING;
	case V_OK:
		if (scheme)
			*scheme = passed;
		return AUTH_OK;
	case V_STALE:
		return AUTH_STALE;
	case V_INVALID:
		return AUTH_INVALID;
	case V_DISABLED:
		if (scheme)
			*scheme = disabled;
		return AUTH_DISABLED;
	case V_MALFORMED:
		return AUTH_MALFORMED;
	}
	return AUTH_INVALID;
}

const char *auth_grafana_signature_header(const struct auth_config *ac)
{
	return ac && ac->grafana_signature_header ? ac->grafana_signature_header
						  : AUTH_GRAFANA_SIGNATURE_HEADER;
}

const char *auth_grafana_timestamp_header(const struct auth_config *ac)
{
	return ac && ac->grafana_timestamp_header ? ac->grafana_timestamp_header
						  : AUTH_GRAFANA_TIMESTAMP_HEADER;
}

void auth_failure_message(enum auth_result r, const char *scheme, const struct auth_config *ac,
			  char *out, size_t outsz)
{
	const char *s = scheme ? scheme : "";
	bool hmac_on = ac && hmac_configured(ac);
	if (r != AUTH_DISABLED) {
		snprintf(out, outsz, "%s", auth_result_message(r));
	} else if (strcmp(s, "bearer") == 0) {
		snprintf(out, outsz,
			 "the bearer scheme is disabled: auth.bearer.token is not configured");
	} else if (strcmp(s, "basic") == 0) {
		snprintf(out, outsz, "the basic scheme is disabled: auth.basic is not configured");
	} else if (!hmac_on) {
		snprintf(out, outsz,
			 "the %s scheme is disabled: auth.hmac.secrets is not configured",
			 s[0] ? s : "hmac");
	} else if (strcmp(s, "github") == 0) {
		snprintf(out, outsz,
			 "the github scheme (X-Hub-Signature-256) is disabled: it has no replay "
			 "protection; set auth.hmac.allow_untimestamped to accept it");
	} else {
		snprintf(out, outsz,
			 "the untimestamped grafana scheme is disabled: send %s (Grafana's "
			 "timestamp header) or set auth.hmac.allow_untimestamped",
			 auth_grafana_timestamp_header(ac));
	}
}

const char *auth_result_message(enum auth_result r)
{
	switch (r) {
	case AUTH_OK:
		return "ok";
	case AUTH_MISSING:
		return "no credentials presented";
	case AUTH_INVALID:
		return "invalid credentials";
	case AUTH_STALE:
		return "signature timestamp outside the allowed window";
	case AUTH_MALFORMED:
		return "malformed signature header";
	case AUTH_DISABLED:
		return "the presented credential's scheme is disabled";
	}
	return "invalid credentials";
}

enum auth_result auth_check_bearer(const struct secret *token, const char *authorization)
{
	if (!authorization)
		return AUTH_MISSING;
	if (too_long(authorization) || !secret_is_set(token))
		return AUTH_INVALID;
	size_t slen = strcspn(authorization, " \t");
	const char *cred = authorization + slen;
	while (*cred == ' ' || *cred == '\t')
		cred++;
	if (slen != 6 || strncasecmp(authorization, "bearer", 6) != 0 || *cred == '\0')
		return AUTH_INVALID;
	return secret_equal(cred, strlen(cred), token->data, token->len) ? AUTH_OK : AUTH_INVALID;
}
