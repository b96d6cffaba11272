/*
 * auth: who may post to /v1/alerts (SPEC §5).
 *
 * Pure functions over header values and the raw body; no HTTP here. Every
 * MAC or token comparison is constant-time. A request passes when one
 * configured scheme verifies and no presented credential is wrong. Results
 * never say which secret was tried.
 */
#ifndef ROLLBACKD_AUTH_H
#define ROLLBACKD_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollbackd/buf.h"
#include "rollbackd/secret.h"

struct auth_config {
	struct secret *hmac_secrets; /* rollbackd/github/grafana HMAC keys */
	size_t n_hmac_secrets;
	int64_t max_skew_ms;         /* |now - t| allowed for timestamped HMAC */
	bool allow_untimestamped;    /* accept github / untimestamped grafana */
	struct secret bearer_token;  /* unset = bearer not configured */
	char *basic_username;        /* NULL = basic not configured */
	struct secret basic_password;
	char *grafana_signature_header; /* auth.hmac.grafana_headers.signature; NULL = default */
	char *grafana_timestamp_header; /* auth.hmac.grafana_headers.timestamp; NULL = default */
};

#define AUTH_GRAFANA_SIGNATURE_HEADER "X-Grafana-Alerting-Signature"
#define AUTH_GRAFANA_TIMESTAMP_HEADER "X-Grafana-Alerting-Timestamp"

/* The header names Grafana's signature and timestamp arrive in (Grafana
 * lets the user name them; auth.hmac.grafana_headers). Never NULL. */
const char *auth_grafana_signature_header(const struct auth_config *ac);
const char *auth_grafana_timestamp_header(const struct auth_config *ac);

/* True when no scheme is configured: only loopback peers may post then. */
bool auth_config_is_open(const struct auth_config *ac);
/* Free every secret and string; ac is zeroed. */
void auth_config_release(struct auth_config *ac);

enum auth_result {
	AUTH_OK = 0,
	AUTH_MISSING,   /* no credential presented */
	AUTH_INVALID,   /* a presented credential did not verify */
	AUTH_STALE,     /* signature timestamp outside max_skew */
	AUTH_MALFORMED, /* a signature header that cannot be parsed */
	AUTH_DISABLED,  /* a credential of a scheme that is not configured or
			   not enabled: *scheme of auth_verify names it */
};

/* The request as auth sees it: header values (NULL when absent) and the raw
 * body exactly as received. */
struct auth_input {
	const char *authorization;       /* Authorization */
	const char *rollbackd_signature; /* X-Rollbackd-Signature */
	const char *hub_signature_256;   /* X-Hub-Signature-256 */
	const char *grafana_signature;   /* X-Grafana-Alerting-Signature */
	const char *grafana_timestamp;   /* X-Grafana-Alerting-Timestamp */
	const unsigned char *body;
	size_t body_len;
	int64_t now;        /* unix seconds */
	bool from_loopback; /* peer address is 127.0.0.0/8 or ::1 */
};

/* Verify. On AUTH_OK *scheme (if non-NULL) names the scheme that passed
 * ("hmac", "github", "grafana", "bearer", "basic", "loopback"); on
 * AUTH_DISABLED the disabled scheme whose header was presented ("hmac",
 * "github", "grafana" for an untimestamped Grafana signature or one with no
 * HMAC secret, "bearer", "basic"). A malformed header outranks a disabled
 * scheme, which outranks a wrong or stale credential. */
enum auth_result auth_verify(const struct auth_config *ac,
			     const struct auth_input *in, const char **scheme);

/* Check "Authorization: Bearer <token>" against one token (the API token),
 * constant-time: AUTH_OK, AUTH_MISSING (no header) or AUTH_INVALID. */
enum auth_result auth_check_bearer(const struct secret *token, const char *authorization);

/* A short, secret-free sentence for an auth failure, for the 401 body. */
const char *auth_result_message(enum auth_result r);

/* The 401 sentence for r; for AUTH_DISABLED it says which scheme is
 * disabled and which config key turns it on (scheme as auth_verify gave
 * it). Written into out (NUL-terminated, truncated to outsz). */
void auth_failure_message(enum auth_result r, const char *scheme, const struct auth_config *ac,
			  char *out, size_t outsz);

#define AUTH_MAX_V1 8 /* most v1= values accepted in one header */

struct rollbackd_signature {
	int64_t t;                          /* unix seconds */
	size_t n_v1;                        /* 1 .. AUTH_MAX_V1 */
	unsigned char v1[AUTH_MAX_V1][32];  /* decoded HMAC-SHA256 values */
};

/* Parse "t=<unix>,v1=<64 hex>[,v1=<64 hex>...]". Elements are separated by
 * commas with optional spaces; unknown keys (e.g. v0=) are ignored; t must
 * appear exactly once and at least one v1 is required. 0 or -1. */
int auth_parse_signature(const char *s, size_t len,
			 struct rollbackd_signature *out);

/* Append the header value "t=<t>,v1=<hex>" for body signed with key. */
int auth_sign(const struct secret *key, int64_t t, const void *body,
	      size_t body_len, struct buf *out);

/* Decode exactly 2*n hex digits (either case) into n bytes. 0 or -1. */
int auth_hex_decode(const char *hex, size_t hexlen, unsigned char *out,
		    size_t n);

#endif
