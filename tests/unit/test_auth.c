/*
 * Unit tests for auth: every scheme of SPEC §5, the "one passes and none is
 * wrong" rule, open mode, and the signature header parser. Expected MACs
 * come from the published GitHub vector and from Python's hmac module, not
 * from our own code.
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "rollbackd/auth.h"

#define NOW 1700000000
#define BODY "{\"status\":\"firing\"}"
#define KEY "topsecret"
/* python3: hmac.new(b"topsecret", b"1700000000." + BODY, sha256) */
#define RB_HEX "cc94fd497f49f3955fe70059f98188b67df57f1dc73dfc83497495f23a538b2c"
/* ... over BODY alone, and over b"1700000000:" + BODY */
#define GRAF_HEX "c0ed7b75ec2effcc728cd97441e27464212977a23fe119df7243d52467431892"
#define GRAF_TS_HEX "a0a16ad78376e6d37e212628c5a0953e007251492afdb553bd9a6b57b0b1642d"
#define ZERO_HEX "0000000000000000000000000000000000000000000000000000000000000000"

static void setup(void)
{
	cr_assert_geq(sodium_init(), 0);
}

TestSuite(auth, .init = setup);

/* A config with the given HMAC secrets (NULL-terminated list). */
static void cfg_hmac(struct auth_config *ac, const char *const *keys)
{
	size_t n = 0;
	while (keys[n])
		n++;
	ac->hmac_secrets = calloc(n, sizeof(*ac->hmac_secrets));
	cr_assert(ac->hmac_secrets);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(secret_from_bytes(keys[i], strlen(keys[i]), &ac->hmac_secrets[i]), 0);
	ac->n_hmac_secrets = n;
	ac->max_skew_ms = 300000;
}

static void cfg_bearer(struct auth_config *ac, const char *token)
{
	cr_assert_eq(secret_from_bytes(token, strlen(token), &ac->bearer_token), 0);
}

static void cfg_basic(struct auth_config *ac, const char *user, const char *pass)
{
	ac->basic_username = strdup(user);
	cr_assert(ac->basic_username);
	cr_assert_eq(secret_from_bytes(pass, strlen(pass), &ac->basic_password), 0);
}

static struct auth_input input(const char *body)
{
	struct auth_input in = {0};
	in.body = (const unsigned char *)body;
	in.body_len = strlen(body);
	in.now = NOW;
	return in;
}

/* "Basic base64(user:pass)" into out. */
static void basic_header(char *out, size_t cap, const char *userpass)
{
	size_t n = strlen(userpass);
	cr_assert_lt(6 + sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL), cap);
	memcpy(out, "Basic ", 6);
	sodium_bin2base64(out + 6, cap - 6, (const unsigned char *)userpass, n,
			  sodium_base64_VARIANT_ORIGINAL);
}

/* Sign BODY-like input with key at t; header text into out (caller frees). */
static char *sign(const char *key, int64_t t, const char *body)
{
	struct secret s = {0};
	struct buf b = BUF_INIT;
	cr_assert_eq(secret_from_bytes(key, strlen(key), &s), 0);
	cr_assert_eq(auth_sign(&s, t, body, strlen(body), &b), 0);
	secret_release(&s);
	return buf_detach(&b, NULL);
}

static enum auth_result verify(const struct auth_config *ac, const struct auth_input *in,
			       const char **scheme)
{
	*scheme = "unset";
	return auth_verify(ac, in, scheme);
}

/* ---- messages ---- */

Test(auth, result_messages)
{
	cr_assert_str_eq(auth_result_message(AUTH_OK), "ok");
	cr_assert_str_eq(auth_result_message(AUTH_MISSING), "no credentials presented");
	cr_assert_str_eq(auth_result_message(AUTH_INVALID), "invalid credentials");
	cr_assert_str_eq(auth_result_message(AUTH_STALE),
			 "signature timestamp outside the allowed window");
	cr_assert_str_eq(auth_result_message(AUTH_MALFORMED), "malformed signature header");
}

/* ---- GitHub ---- */

Test(auth, github_published_vector)
{
	struct auth_config ac = {0};
	const char *keys[] = {"It's a Secret to Everybody", NULL};
	const char *scheme;
	cfg_hmac(&ac, keys);
	ac.allow_untimestamped = true;
	struct auth_input in = input("Hello, World!");
	in.hub_signature_256 =
	    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_OK);
	cr_assert_str_eq(scheme, "github");

	/* Upper-case hex is the same value. */
	in.hub_signature_256 =
	    "sha256=757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4379C8B043E17";
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_OK);

	/* Body changed by one byte. */
	in = input("Hello, World?");
	in.hub_signature_256 =
	    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_INVALID);
	auth_config_release(&ac);
}

Test(auth, github_off_unless_allow_untimestamped)
{
	struct auth_config ac = {0};
	const char *keys[] = {"It's a Secret to Everybody", NULL};
	const char *scheme;
	cfg_hmac(&ac, keys);
	struct auth_input in = input("Hello, World!");
	in.hub_signature_256 =
	    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_DISABLED);
	cr_assert_str_eq(scheme, "github");
	auth_config_release(&ac);
}

Test(auth, github_malformed)
{
	struct auth_config ac = {0};
	const char *keys[] = {KEY, NULL};
	const char *scheme;
	cfg_hmac(&ac, keys);
	ac.allow_untimestamped = true;
	const char *bad[] = {
	    "",
	    "sha256=",
	    "sha1=757107ea0eb2509fc211221cce984b8a37570b6d",
	    "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
	    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1",
	    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e177",
	    "sha256=z57107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
	    "sha256= 757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct auth_input in = input(BODY);
		in.hub_signature_256 = bad[i];
		cr_assert_eq(verify(&ac, &in, &scheme), AUTH_MALFORMED, "header '%s'", bad[i]);
	}
	auth_config_release(&ac);
}

/* ---- rollbackd scheme ---- */

Test(auth, sign_known_answer)
{
	char *h = sign(KEY, NOW, BODY);
	cr_assert_str_eq(h, "t=1700000000,v1=" RB_HEX);
	free(h);
}

Test(auth, sign_appends_and_rejects_bad_input)
{
	struct secret s = {0}, unset = {0};
	struct buf b = BUF_INIT;
	cr_assert_eq(secret_from_bytes(KEY, strlen(KEY), &s), 0);
	cr_assert_eq(buf_adds(&b, "X-Rollbackd-Signature: "), 0);
	cr_assert_eq(auth_sign(&s, NOW, BODY, strlen(BODY), &b), 0);
	cr_assert_str_eq(b.data, "X-Rollbackd-Signature: t=1700000000,v1=" RB_HEX);
	size_t len = b.len;
	cr_assert_eq(auth_sign(&s, -1, BODY, strlen(BODY), &b), -1);
	cr_assert_eq(auth_sign(&unset, NOW, BODY, strlen(BODY), &b), -1);
	cr_assert_eq(b.len, len);

	/* A cap that the header would pass leaves the buffer unchanged. */
	struct buf small;
	buf_init(&small, 20);
	cr_assert_eq(buf_adds(&small, "abc"), 0);
	cr_assert_eq(auth_sign(&s, NOW, BODY, strlen(BODY), &small), -1);
	cr_assert_str_eq(small.data, "abc");

	/* Empty body and t = 0 are fine. */
	buf_reset(&b);
	cr_assert_eq(auth_sign(&s, 0, "", 0, &b), 0);
	cr_assert_eq(strncmp(b.data, "t=0,v1=", 7), 0);
	cr_assert_eq(b.len, 7 + 64);
	buf_release(&small);
	buf_release(&b);
	secret_release(&s);
}

Test(auth, rollbackd_round_trip)
{
	struct auth_config ac = {0};
	const char *keys[] = {KEY, NULL};
	const char *scheme;
	cfg_hmac(&ac, keys);
	char *h = sign(KEY, NOW, BODY);
	struct auth_input in = input(BODY);
	in.rollbackd_signature = h;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_OK);
	cr_assert_str_eq(scheme, "hmac");

	/* The known-answer header, written by hand, verifies too. */
	in.rollbackd_signature = "t=1700000000,v1=" RB_HEX;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_OK);
	/* NULL scheme pointer is allowed. */
	cr_assert_eq(auth_verify(&ac, &in, NULL), AUTH_OK);
	free(h);
	auth_config_release(&ac);
}

Test(auth, rollbackd_empty_body_and_long_key)
{
	static const char longkey[] =
	    "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
	    "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"; /* 100 bytes > block size */
	struct auth_config ac = {0};
	const char *keys[] = {longkey, NULL};
	const char *scheme;
	cr_assert_eq(strlen(longkey), 100);
	cfg_hmac(&ac, keys);
	struct auth_input in = input(BODY);
	/* python3: hmac.new(b"k"*100, b"1700000000." + BODY, sha256) */
	in.rollbackd_signature =
	    "t=1700000000,v1=34624c952376ec0befa27937676d7b3d4e3a28322058c97653533f2e79ae55c3";
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_OK);

	char *h = sign(longkey, NOW, "");
	in = input("");
	in.body = NULL;
	in.rollbackd_signature = h;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_OK);
	free(h);
	auth_config_release(&ac);
}

Test(auth, rollbackd_several_v1_values)
{
	struct auth_config ac = {0};
	const char *keys[] = {KEY, NULL};
	const char *scheme;
	cfg_hmac(&ac, keys);
	struct auth_input in = input(BODY);
	in.rollbackd_signature = "t=1700000000,v1=" ZERO_HEX ",v1=" RB_HEX;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_OK);
	in.rollbackd_signature = "t=1700000000, v1=" RB_HEX ", v1=" ZERO_HEX;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_OK);
	in.rollbackd_signature = "v1=" ZERO_HEX ",v0=abc,t=1700000000,v1=" RB_HEX;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_OK);
	in.rollbackd_signature = "t=1700000000,v1=" ZERO_HEX ",v1=" ZERO_HEX;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_INVALID);
	auth_config_release(&ac);
}

Test(auth, rollbackd_key_rotation)
{
	struct auth_config ac = {0};
	const char *keys[] = {"old-key", KEY, "next-key", NULL};
	const char *scheme;
	cfg_hmac(&ac, keys);
	struct auth_input in = input(BODY);
	for (size_t i = 0; keys[i]; i++) {
		char *h = sign(keys[i], NOW, BODY);
		in.rollbackd_signature = h;
		cr_assert_eq(verify(&ac, &in, &scheme), AUTH_OK, "key %zu", i);
		cr_assert_str_eq(scheme, "hmac");
		free(h);
	}
	/* A key that is not (or no longer) configured. */
	char *h = sign("retired-key", NOW, BODY);
	in.rollbackd_signature = h;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_INVALID);
	free(h);

	/* Two signatures in one header, one per key, during a rotation. */
	char *a = sign("retired-key", NOW, BODY), *b = sign("next-key", NOW, BODY);
	char both[256];
	snprintf(both, sizeof(both), "%s,%s", a, strchr(b, ',') + 1);
	in.rollbackd_signature = both;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_OK);
	free(a);
	free(b);
	auth_config_release(&ac);
}

Test(auth, rollbackd_wrong_mac)
{
	struct auth_config ac = {0};
	const char *keys[] = {KEY, NULL};
	const char *scheme;
	cfg_hmac(&ac, keys);
	struct auth_input in = input(BODY);
	in.rollbackd_signature = "t=1700000000,v1=" ZERO_HEX;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_INVALID);
	cr_assert_str_eq(scheme, "unset");
	/* Signed with the wrong key. */
	char *h = sign("not" KEY, NOW, BODY);
	in.rollbackd_signature = h;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_INVALID);
	free(h);
	/* Right MAC for another timestamp. */
	in.rollbackd_signature = "t=1700000001,v1=" RB_HEX;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_INVALID);
	/* The MAC covers the value of t, not its spelling. */
	in.rollbackd_signature = "t=01700000000,v1=" RB_HEX;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_OK);
	auth_config_release(&ac);
}

Test(auth, rollbackd_body_changed_after_signing)
{
	struct auth_config ac = {0};
	const char *keys[] = {KEY, NULL};
	const char *scheme;
	cfg_hmac(&ac, keys);
	char *h = sign(KEY, NOW, BODY);
	struct auth_input in = input("{\"status\":\"resolved\"}");
	in.rollbackd_signature = h;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_INVALID);
	/* Truncated by one byte. */
	in = input(BODY);
	in.body_len--;
	in.rollbackd_signature = h;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_INVALID);
	free(h);
	auth_config_release(&ac);
}

Test(auth, rollbackd_stale)
{
	struct auth_config ac = {0};
	const char *keys[] = {KEY, NULL};
	const char *scheme;
	cfg_hmac(&ac, keys);
	struct auth_input in = input(BODY);
	int64_t ts[] = {NOW - 3600, NOW + 3600, NOW - 301, NOW + 301, 0};
	for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
		char *h = sign(KEY, ts[i], BODY);
		in.rollbackd_signature = h;
		cr_assert_eq(verify(&ac, &in, &scheme), AUTH_STALE, "t %lld", (long long)ts[i]);
		cr_assert_str_eq(scheme, "unset");
		free(h);
	}
	/* Stale and wrong: the MAC decides, not the clock. */
	in.rollbackd_signature = "t=1699996400,v1=" ZERO_HEX;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_INVALID);
	/* A timestamp at the far end of int64 does not overflow the check. */
	char *h = sign(KEY, INT64_MAX, BODY);
	in.rollbackd_signature = h;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_STALE);
	in.now = INT64_MIN;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_STALE);
	free(h);
	auth_config_release(&ac);
}

Test(auth, rollbackd_within_skew)
{
	struct auth_config ac = {0};
	const char *keys[] = {KEY, NULL};
	const char *scheme;
	cfg_hmac(&ac, keys);
	struct auth_input in = input(BODY);
	int64_t ts[] = {NOW, NOW - 1, NOW + 1, NOW - 300, NOW + 300, NOW - 299};
	for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
		char *h = sign(KEY, ts[i], BODY);
		in.rollbackd_signature = h;
		cr_assert_eq(verify(&ac, &in, &scheme), AUTH_OK, "t %lld", (long long)ts[i]);
		free(h);
	}
	/* Sub-second skew settings round down: 1500 ms allows 1 s. */
	ac.max_skew_ms = 1500;
	char *h1 = sign(KEY, NOW - 1, BODY), *h2 = sign(KEY, NOW - 2, BODY);
	in.rollbackd_signature = h1;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_OK);
	in.rollbackd_signature = h2;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_STALE);
	/* Zero skew: only the same second. */
	ac.max_skew_ms = 0;
	in.rollbackd_signature = h1;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_STALE);
	in.rollbackd_signature = "t=1700000000,v1=" RB_HEX;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_OK);
	free(h1);
	free(h2);
	auth_config_release(&ac);
}

Test(auth, rollbackd_malformed_headers)
{
	struct auth_config ac = {0};
	const char *keys[] = {KEY, NULL};
	const char *scheme;
	cfg_hmac(&ac, keys);
	const char *bad[] = {
	    "",
	    " ",
	    ",",
	    "t=1700000000",
	    "v1=" RB_HEX,
	    "t=1700000000,",
	    ",t=1700000000,v1=" RB_HEX,
	    "t=1700000000,,v1=" RB_HEX,
	    "t=1700000000,v1=" RB_HEX ",",
	    "t=,v1=" RB_HEX,
	    "t=-1,v1=" RB_HEX,
	    "t=+1700000000,v1=" RB_HEX,
	    "t=1.5,v1=" RB_HEX,
	    "t=0x10,v1=" RB_HEX,
	    "t=99999999999999999999,v1=" RB_HEX,
	    "t=9223372036854775808,v1=" RB_HEX,
	    "t=1700000000,t=1700000000,v1=" RB_HEX,
	    "t=1700000000,v1=",
	    "t=1700000000,v1=abc",
	    "t=1700000000,v1=" RB_HEX "0",
	    "t=1700000000,v1=g" RB_HEX "",
	    "t=1700000000;v1=" RB_HEX,
	    "t 1700000000,v1=" RB_HEX,
	    "=1,t=1700000000,v1=" RB_HEX,
	    "t=1700000000,v1=" RB_HEX ",garbage",
	    "T=1700000000,v1=" RB_HEX,
	    "sha256=" RB_HEX,
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct auth_input in = input(BODY);
		in.rollbackd_signature = bad[i];
		cr_assert_eq(verify(&ac, &in, &scheme), AUTH_MALFORMED, "header '%s'", bad[i]);
		cr_assert_str_eq(scheme, "unset");
	}
	auth_config_release(&ac);
}

Test(auth, rollbackd_too_many_v1_and_too_long)
{
	struct auth_config ac = {0};
	const char *keys[] = {KEY, NULL};
	const char *scheme;
	cfg_hmac(&ac, keys);
	struct buf b = BUF_INIT;
	cr_assert_eq(buf_adds(&b, "t=1700000000"), 0);
	for (int i = 0; i < AUTH_MAX_V1 - 1; i++)
		cr_assert_eq(buf_adds(&b, ",v1=" ZERO_HEX), 0);
	cr_assert_eq(buf_adds(&b, ",v1=" RB_HEX), 0);
	struct auth_input in = input(BODY);
	in.rollbackd_signature = b.data;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_OK); /* exactly the max */
	cr_assert_eq(buf_adds(&b, ",v1=" ZERO_HEX), 0);
	in.rollbackd_signature = b.data;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_MALFORMED);

	/* Over 4096 bytes, even if made only of ignored elements. */
	buf_reset(&b);
	cr_assert_eq(buf_adds(&b, "t=1700000000,v1=" RB_HEX), 0);
	while (b.len <= 4096)
		cr_assert_eq(buf_adds(&b, ",x=yyyyyyyyyyyyyyyy"), 0);
	in.rollbackd_signature = b.data;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_MALFORMED);
	buf_release(&b);
	auth_config_release(&ac);
}

/* ---- Grafana ---- */

Test(auth, grafana_without_timestamp)
{
	struct auth_config ac = {0};
	const char *keys[] = {KEY, NULL};
	const char *scheme;
	cfg_hmac(&ac, keys);
	struct auth_input in = input(BODY);
	in.grafana_signature = GRAF_HEX;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_DISABLED);
	cr_assert_str_eq(scheme, "grafana");
	ac.allow_untimestamped = true;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_OK);
	cr_assert_str_eq(scheme, "grafana");
	in.grafana_signature = ZERO_HEX;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_INVALID);
	auth_config_release(&ac);
}

Test(auth, grafana_with_timestamp)
{
	struct auth_config ac = {0};
	const char *keys[] = {"other", KEY, NULL};
	const char *scheme;
	cfg_hmac(&ac, keys);
	struct auth_input in = input(BODY);
	in.grafana_signature = GRAF_TS_HEX;
	in.grafana_timestamp = "1700000000";
	/* Timestamped: allowed without allow_untimestamped. */
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_OK);
	cr_assert_str_eq(scheme, "grafana");
	/* The untimestamped MAC does not pass once a timestamp is sent. */
	in.grafana_signature = GRAF_HEX;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_INVALID);
	/* Stale: right MAC, clock an hour away either side. */
	in.grafana_signature = GRAF_TS_HEX;
	in.now = NOW + 3600;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_STALE);
	in.now = NOW - 3600;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_STALE);
	in.now = NOW + 120;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_OK);
	/* A different timestamp invalidates the MAC. */
	in.grafana_timestamp = "1700000001";
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_INVALID);
	auth_config_release(&ac);
}

Test(auth, grafana_malformed)
{
	struct auth_config ac = {0};
	const char *keys[] = {KEY, NULL};
	const char *scheme;
	cfg_hmac(&ac, keys);
	ac.allow_untimestamped = true;
	struct auth_input in = input(BODY);
	const char *bad_sig[] = {"", "sha256=" GRAF_HEX, GRAF_HEX "0", "xyz"};
	for (size_t i = 0; i < sizeof(bad_sig) / sizeof(bad_sig[0]); i++) {
		in.grafana_signature = bad_sig[i];
		cr_assert_eq(verify(&ac, &in, &scheme), AUTH_MALFORMED, "'%s'", bad_sig[i]);
	}
	const char *bad_ts[] = {"",	      "-1", "17e8", "1700000000.5", "99999999999999999999",
				" 1700000000"};
	in.grafana_signature = GRAF_TS_HEX;
	for (size_t i = 0; i < sizeof(bad_ts) / sizeof(bad_ts[0]); i++) {
		in.grafana_timestamp = bad_ts[i];
		cr_assert_eq(verify(&ac, &in, &scheme), AUTH_MALFORMED, "'%s'", bad_ts[i]);
	}
	auth_config_release(&ac);
}

/* ---- Bearer and Basic ---- */

Test(auth, bearer)
{
	struct auth_config ac = {0};
	const char *scheme;
	cfg_bearer(&ac, "s3cr3t-token");
	struct auth_input in = input(BODY);
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_MISSING);
	const char *good[] = {"Bearer s3cr3t-token", "bearer s3cr3t-token", "BEARER s3cr3t-token",
			      "Bearer   s3cr3t-token"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		in.authorization = good[i];
		cr_assert_eq(verify(&ac, &in, &scheme), AUTH_OK, "'%s'", good[i]);
		cr_assert_str_eq(scheme, "bearer");
	}
	const char *bad[] = {"Bearer s3cr3t-tokeN",
			     "Bearer s3cr3t-toke",
			     "Bearer s3cr3t-token2",
			     "Bearer",
			     "Bearer ",
			     "Bearers3cr3t-token",
			     "s3cr3t-token",
			     "",
			     "Token s3cr3t-token",
			     "Bearer s3cr3t-token "};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		in.authorization = bad[i];
		cr_assert_eq(verify(&ac, &in, &scheme), AUTH_INVALID, "'%s'", bad[i]);
		cr_assert_str_eq(scheme, "unset");
	}
	auth_config_release(&ac);
}

Test(auth, basic)
{
	struct auth_config ac = {0};
	const char *scheme;
	char h[128];
	cfg_basic(&ac, "alertmanager", "pa:ss");
	struct auth_input in = input(BODY);
	/* python3: base64.b64encode(b"alertmanager:pa:ss") */
	in.authorization = "Basic YWxlcnRtYW5hZ2VyOnBhOnNz";
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_OK);
	cr_assert_str_eq(scheme, "basic");
	in.authorization = "basic YWxlcnRtYW5hZ2VyOnBhOnNz";
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_OK);

	const char *wrong[] = {"alertmanager:pa:sS", "alertmanager:pa:",    "alertmanager:",
			       "Alertmanager:pa:ss", "alertmanage:pa:ss",   ":pa:ss",
			       "alertmanager",	     "alertmanager:pa:ss:", "alertmanagerpa:ss"};
	for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
		basic_header(h, sizeof(h), wrong[i]);
		in.authorization = h;
		cr_assert_eq(verify(&ac, &in, &scheme), AUTH_INVALID, "'%s'", wrong[i]);
	}
	const char *garbled[] = {"Basic",
				 "Basic ",
				 "Basic !!!!",
				 "Basic YWxlcnRtYW5hZ2VyOnBhOnNz=",
				 "Basic YWxlcnRtYW5hZ2VyOnBhOnN", /* unpadded */
				 "Basic YWxlcnRtYW5hZ2VyOnBhOnNz extra",
				 "Basic YWxlcnRtYW5hZ2VyOnBhOnNz\n"};
	for (size_t i = 0; i < sizeof(garbled) / sizeof(garbled[0]); i++) {
		in.authorization = garbled[i];
		cr_assert_eq(verify(&ac, &in, &scheme), AUTH_INVALID, "'%s'", garbled[i]);
	}
	/* Bearer with the password is not basic. */
	in.authorization = "Bearer pa:ss";
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_DISABLED);
	cr_assert_str_eq(scheme, "bearer");
	auth_config_release(&ac);
}

/* ---- combinations: one passes and none is wrong ---- */

Test(auth, wrong_bearer_right_hmac)
{
	struct auth_config ac = {0};
	const char *keys[] = {KEY, NULL};
	const char *scheme;
	cfg_hmac(&ac, keys);
	cfg_bearer(&ac, "tok");
	struct auth_input in = input(BODY);
	in.rollbackd_signature = "t=1700000000,v1=" RB_HEX;
	in.authorization = "Bearer nope";
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_INVALID);
	cr_assert_str_eq(scheme, "unset");
	in.authorization = "Bearer tok";
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_OK);
	cr_assert_str_eq(scheme, "hmac"); /* the signature names the scheme */
	auth_config_release(&ac);
}

Test(auth, right_bearer_wrong_hmac)
{
	struct auth_config ac = {0};
	const char *keys[] = {KEY, NULL};
	const char *scheme;
	cfg_hmac(&ac, keys);
	cfg_bearer(&ac, "tok");
	struct auth_input in = input(BODY);
	in.authorization = "Bearer tok";
	in.rollbackd_signature = "t=1700000000,v1=" ZERO_HEX;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_INVALID);
	/* ... a stale one, a malformed one, an unenabled github one. */
	char *h = sign(KEY, NOW - 3600, BODY);
	in.rollbackd_signature = h;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_STALE);
	in.rollbackd_signature = "t=1700000000";
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_MALFORMED);
	in.rollbackd_signature = NULL;
	in.hub_signature_256 = "sha256=" RB_HEX;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_DISABLED);
	cr_assert_str_eq(scheme, "github");
	free(h);
	auth_config_release(&ac);
}

Test(auth, failure_precedence)
{
	struct auth_config ac = {0};
	const char *keys[] = {KEY, NULL};
	const char *scheme;
	cfg_hmac(&ac, keys);
	cfg_bearer(&ac, "tok");
	struct auth_input in = input(BODY);
	char *stale = sign(KEY, NOW - 3600, BODY);
	/* malformed > invalid > stale */
	in.rollbackd_signature = stale;
	in.authorization = "Bearer nope";
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_INVALID);
	in.rollbackd_signature = "garbage";
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_MALFORMED);
	free(stale);
	auth_config_release(&ac);
}

Test(auth, unconfigured_scheme_presented)
{
	const char *scheme;
	/* Only bearer configured: a signature is a wrong credential. */
	struct auth_config ac = {0};
	cfg_bearer(&ac, "tok");
	struct auth_input in = input(BODY);
	in.rollbackd_signature = "t=1700000000,v1=" RB_HEX;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_DISABLED);
	cr_assert_str_eq(scheme, "hmac");
	in.authorization = "Bearer tok";
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_DISABLED);
	cr_assert_str_eq(scheme, "hmac");
	in.rollbackd_signature = NULL;
	in.grafana_signature = GRAF_TS_HEX;
	in.grafana_timestamp = "1700000000";
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_DISABLED);
	cr_assert_str_eq(scheme, "grafana");
	in.grafana_signature = NULL;
	in.grafana_timestamp = NULL;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_OK);
	/* ... basic is not configured. */
	in.authorization = "Basic YWxlcnRtYW5hZ2VyOnBhOnNz";
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_DISABLED);
	cr_assert_str_eq(scheme, "basic");
	/* ... an unknown Authorization scheme. */
	in.authorization = "Digest username=\"x\"";
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_INVALID);
	auth_config_release(&ac);

	/* Only HMAC configured: bearer and basic are wrong credentials. */
	const char *keys[] = {KEY, NULL};
	cfg_hmac(&ac, keys);
	in = input(BODY);
	in.authorization = "Bearer tok";
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_DISABLED);
	cr_assert_str_eq(scheme, "bearer");
	in.rollbackd_signature = "t=1700000000,v1=" RB_HEX;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_DISABLED);
	cr_assert_str_eq(scheme, "bearer");
	in.authorization = NULL;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_OK);
	auth_config_release(&ac);
}

Test(auth, grafana_timestamp_alone_is_not_a_credential)
{
	struct auth_config ac = {0};
	const char *keys[] = {KEY, NULL};
	const char *scheme;
	cfg_hmac(&ac, keys);
	struct auth_input in = input(BODY);
	in.grafana_timestamp = "1700000000";
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_MISSING);
	auth_config_release(&ac);
}

/* ---- open mode ---- */

Test(auth, open_mode)
{
	struct auth_config ac = {0};
	const char *scheme;
	cr_assert(auth_config_is_open(&ac));
	struct auth_input in = input(BODY);
	in.from_loopback = true;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_OK);
	cr_assert_str_eq(scheme, "loopback");
	/* Credentials are ignored on loopback... */
	in.authorization = "Bearer whatever";
	in.rollbackd_signature = "garbage";
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_OK);
	cr_assert_str_eq(scheme, "loopback");
	/* ... and do not help from elsewhere. */
	in.from_loopback = false;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_MISSING);
	cr_assert_str_eq(scheme, "unset");
	in = input(BODY);
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_MISSING);
}

Test(auth, configured_is_not_open)
{
	struct auth_config ac = {0};
	const char *keys[] = {KEY, NULL};
	const char *scheme;
	cfg_hmac(&ac, keys);
	cr_assert_not(auth_config_is_open(&ac));
	struct auth_input in = input(BODY);
	in.from_loopback = true;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_MISSING);
	auth_config_release(&ac);

	cfg_bearer(&ac, "tok");
	cr_assert_not(auth_config_is_open(&ac));
	auth_config_release(&ac);
	cfg_basic(&ac, "u", "p");
	cr_assert_not(auth_config_is_open(&ac));
	auth_config_release(&ac);
	/* Half-configured basic still closes the door. */
	ac.basic_username = strdup("u");
	cr_assert_not(auth_config_is_open(&ac));
	in.authorization = "Basic dTo="; /* "u:" */
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_DISABLED);
	cr_assert_str_eq(scheme, "basic");
	auth_config_release(&ac);
}

Test(auth, config_release_zeroes)
{
	struct auth_config ac = {0};
	const char *keys[] = {"a", "b", NULL};
	cfg_hmac(&ac, keys);
	cfg_bearer(&ac, "tok");
	cfg_basic(&ac, "u", "p");
	ac.allow_untimestamped = true;
	auth_config_release(&ac);
	struct auth_config zero;
	memset(&zero, 0, sizeof(zero));
	cr_assert_eq(memcmp(&ac, &zero, sizeof(ac)), 0);
	auth_config_release(&ac); /* twice is harmless */
	cr_assert(auth_config_is_open(&ac));
}

Test(auth, authorization_too_long)
{
	struct auth_config ac = {0};
	const char *scheme;
	static char h[5000];
	cfg_bearer(&ac, "tok");
	memcpy(h, "Bearer ", 7);
	memset(h + 7, 'a', sizeof(h) - 8);
	struct auth_input in = input(BODY);
	in.authorization = h;
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_INVALID);
	memcpy(h, "Basic  ", 7);
	cr_assert_eq(verify(&ac, &in, &scheme), AUTH_INVALID);
	auth_config_release(&ac);
}

/* ---- the parser ---- */

static int parse(const char *s, struct rollbackd_signature *out)
{
	return auth_parse_signature(s, strlen(s), out);
}

Test(auth, parse_basic_shape)
{
	struct rollbackd_signature sig;
	unsigned char want[32];
	cr_assert_eq(auth_hex_decode(RB_HEX, 64, want, 32), 0);
	cr_assert_eq(parse("t=1700000000,v1=" RB_HEX, &sig), 0);
	cr_assert_eq(sig.t, 1700000000);
	cr_assert_eq(sig.n_v1, 1);
	cr_assert_eq(memcmp(sig.v1[0], want, 32), 0);
	/* Order does not matter; v1 values keep theirs. */
	cr_assert_eq(parse("v1=" ZERO_HEX ",v1=" RB_HEX ",t=0", &sig), 0);
	cr_assert_eq(sig.t, 0);
	cr_assert_eq(sig.n_v1, 2);
	cr_assert_eq(memcmp(sig.v1[1], want, 32), 0);
}

Test(auth, parse_spaces_and_unknown_keys)
{
	struct rollbackd_signature sig;
	cr_assert_eq(parse("t=1, v1=" RB_HEX, &sig), 0);
	cr_assert_eq(parse("t=1,  \tv1=" RB_HEX, &sig), 0);
	cr_assert_eq(parse("t=1 , v1=" RB_HEX " ", &sig), 0);
	cr_assert_eq(parse("t=1,v0=" ZERO_HEX ",v1=" RB_HEX, &sig), 0);
	cr_assert_eq(sig.n_v1, 1);
	cr_assert_eq(parse("t=1,v2=,scheme=x=y,v1=" RB_HEX, &sig), 0);
	cr_assert_eq(parse("t=1,v1=" RB_HEX ",V1=nothex", &sig), 0);
	cr_assert_eq(sig.n_v1, 1);
	/* Spaces inside a value are not tolerated. */
	cr_assert_eq(parse("t= 1,v1=" RB_HEX, &sig), -1);
	cr_assert_eq(parse("t=1,v1= " RB_HEX, &sig), -1);
	cr_assert_eq(parse("t =1,v1=" RB_HEX, &sig), -1);
}

Test(auth, parse_timestamp_edges)
{
	struct rollbackd_signature sig;
	cr_assert_eq(parse("t=9223372036854775807,v1=" RB_HEX, &sig), 0);
	cr_assert_eq(sig.t, INT64_MAX);
	cr_assert_eq(parse("t=0009,v1=" RB_HEX, &sig), 0);
	cr_assert_eq(sig.t, 9);
	cr_assert_eq(parse("t=9223372036854775808,v1=" RB_HEX, &sig), -1);
	cr_assert_eq(parse("t=18446744073709551616,v1=" RB_HEX, &sig), -1);
	cr_assert_eq(parse("t=-0,v1=" RB_HEX, &sig), -1);
	cr_assert_eq(parse("t=1a,v1=" RB_HEX, &sig), -1);
	cr_assert_eq(parse("t=,v1=" RB_HEX, &sig), -1);
	cr_assert_eq(parse("t=1,t=1,v1=" RB_HEX, &sig), -1);
	cr_assert_eq(parse("t=1,v1=" RB_HEX ",t=2", &sig), -1);
}

Test(auth, parse_hex_edges)
{
	struct rollbackd_signature sig;
	cr_assert_eq(
	    parse("t=1,v1=CC94FD497F49F3955FE70059F98188B67DF57F1DC73DFC83497495F23A538B2C", &sig),
	    0);
	unsigned char want[32];
	cr_assert_eq(auth_hex_decode(RB_HEX, 64, want, 32), 0);
	cr_assert_eq(memcmp(sig.v1[0], want, 32), 0);
	cr_assert_eq(parse("t=1,v1=" RB_HEX "a", &sig), -1);
	cr_assert_eq(
	    parse("t=1,v1=cc94fd497f49f3955fe70059f98188b67df57f1dc73dfc83497495f23a538b2", &sig),
	    -1);
	cr_assert_eq(
	    parse("t=1,v1=cc94fd497f49f3955fe70059f98188b67df57f1dc73dfc83497495f23a538b2g", &sig),
	    -1);
	cr_assert_eq(
	    parse("t=1,v1=0x94fd497f49f3955fe70059f98188b67df57f1dc73dfc83497495f23a538b2c", &sig),
	    -1);
	cr_assert_eq(parse("t=1,v1=", &sig), -1);
}

Test(auth, parse_structure_edges)
{
	struct rollbackd_signature sig;
	const char *bad[] = {"",
			     ",",
			     ",,",
			     " ",
			     "t=1",
			     "v1=" RB_HEX,
			     "t=1,",
			     ",t=1,v1=" RB_HEX,
			     "t=1,,v1=" RB_HEX,
			     "t=1, ,v1=" RB_HEX,
			     "t=1,v1=" RB_HEX ",",
			     "t=1,=x,v1=" RB_HEX,
			     "t=1,novalue,v1=" RB_HEX,
			     "t",
			     "="};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(parse(bad[i], &sig), -1, "'%s'", bad[i]);
	cr_assert_eq(auth_parse_signature(NULL, 0, &sig), -1);
}

Test(auth, parse_v1_count)
{
	struct rollbackd_signature sig;
	struct buf b = BUF_INIT;
	cr_assert_eq(buf_adds(&b, "t=5"), 0);
	for (int i = 1; i <= AUTH_MAX_V1; i++) {
		cr_assert_eq(buf_adds(&b, ",v1=" RB_HEX), 0);
		cr_assert_eq(auth_parse_signature(b.data, b.len, &sig), 0);
		cr_assert_eq(sig.n_v1, (size_t)i);
	}
	cr_assert_eq(buf_adds(&b, ",v1=" RB_HEX), 0);
	cr_assert_eq(auth_parse_signature(b.data, b.len, &sig), -1);
	buf_release(&b);
}

Test(auth, parse_respects_len_and_leaves_out_on_failure)
{
	struct rollbackd_signature sig;
	const char *s = "t=7,v1=" RB_HEX "GARBAGE";
	cr_assert_eq(auth_parse_signature(s, strlen(s) - 7, &sig), 0);
	cr_assert_eq(sig.t, 7);
	/* An embedded NUL is just a bad byte. */
	static const char nul[] = "t=7\0,v1=" RB_HEX;
	cr_assert_eq(auth_parse_signature(nul, sizeof(nul) - 1, &sig), -1);
	memset(&sig, 0xAB, sizeof(sig));
	cr_assert_eq(parse("t=1,t=2,v1=" RB_HEX, &sig), -1);
	cr_assert_eq(sig.n_v1, (size_t)0xABABABABABABABABULL);
	/* Over the 4096-byte cap. */
	struct buf b = BUF_INIT;
	cr_assert_eq(buf_adds(&b, "t=1,v1=" RB_HEX ","), 0);
	while (b.len < 4097)
		cr_assert_eq(buf_adds(&b, "k=v,"), 0);
	cr_assert_eq(buf_adds(&b, "k=v"), 0);
	cr_assert_eq(auth_parse_signature(b.data, b.len, &sig), -1);
	buf_release(&b);
}

Test(auth, hex_decode)
{
	unsigned char out[4];
	cr_assert_eq(auth_hex_decode("00fFa9Z0", 6, out, 3), 0);
	cr_assert_eq(out[0], 0x00);
	cr_assert_eq(out[1], 0xff);
	cr_assert_eq(out[2], 0xa9);
	cr_assert_eq(auth_hex_decode("0123456789abcdef", 8, out, 4), 0);
	cr_assert_eq(out[3], 0x67);
	cr_assert_eq(auth_hex_decode("abcdef", 6, out, 4), -1); /* short */
	cr_assert_eq(auth_hex_decode("abcdef", 5, out, 3), -1);
	const char *bad[] = {"0g", "g0", "0 ", "/0", ":0", "@0", "G0", "`0", "0x", "-1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(auth_hex_decode(bad[i], 2, out, 1), -1, "'%s'", bad[i]);
	/* Every byte value: exactly [0-9a-fA-F] are digits. */
	for (int c = 0; c < 256; c++) {
		char in[2] = {(char)c, '0'};
		int want =
		    (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ? 0
											       : -1;
		cr_assert_eq(auth_hex_decode(in, 2, out, 1), want, "byte %d", c);
	}
	cr_assert_eq(auth_hex_decode("", 0, out, 0), 0);
}

Test(auth, failure_messages_name_the_disabled_scheme)
{
	char m[256];
	struct auth_config ac = {0};
	auth_failure_message(AUTH_DISABLED, "bearer", &ac, m, sizeof(m));
	cr_assert_str_eq(m, "the bearer scheme is disabled: auth.bearer.token is not configured");
	auth_failure_message(AUTH_DISABLED, "basic", &ac, m, sizeof(m));
	cr_assert_str_eq(m, "the basic scheme is disabled: auth.basic is not configured");
	auth_failure_message(AUTH_DISABLED, "grafana", &ac, m, sizeof(m));
	cr_assert_str_eq(m, "the grafana scheme is disabled: auth.hmac.secrets is not configured");
	const char *keys[] = {KEY, NULL};
	cfg_hmac(&ac, keys);
	auth_failure_message(AUTH_DISABLED, "github", &ac, m, sizeof(m));
	cr_assert_str_eq(m, "the github scheme (X-Hub-Signature-256) is disabled: it has no "
			    "replay protection; set auth.hmac.allow_untimestamped to accept it");
	auth_failure_message(AUTH_DISABLED, "grafana", &ac, m, sizeof(m));
	cr_assert_str_eq(m, "the untimestamped grafana scheme is disabled: send "
			    "X-Grafana-Alerting-Timestamp (Grafana's timestamp header) or set "
			    "auth.hmac.allow_untimestamped");
	cr_assert_str_eq(auth_grafana_signature_header(&ac), "X-Grafana-Alerting-Signature");
	ac.grafana_timestamp_header = strdup("X-Ts");
	auth_failure_message(AUTH_DISABLED, "grafana", &ac, m, sizeof(m));
	cr_assert_str_eq(m, "the untimestamped grafana scheme is disabled: send X-Ts (Grafana's "
			    "timestamp header) or set auth.hmac.allow_untimestamped");
	cr_assert_str_eq(auth_grafana_timestamp_header(&ac), "X-Ts");
	auth_failure_message(AUTH_INVALID, NULL, &ac, m, sizeof(m));
	cr_assert_str_eq(m, "invalid credentials");
	auth_config_release(&ac);
}
