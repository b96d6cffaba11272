/*
 * fuzz_sighdr: the X-Rollbackd-Signature parser, and auth_verify with the
 * input as every header it reads.
 *
 * Invariants (abort() when broken): a parsed header has 1..AUTH_MAX_V1 v1
 * values and t >= 0, and parses again to the same thing once re-serialised;
 * auth_verify agrees with the parser (unparsable = AUTH_MALFORMED) and
 * returns a known result. Plain C, so tests/fuzz/replay.c can drive it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "rollbackd/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct auth_config *config(void)
{
	static struct auth_config ac;
	static struct secret keys[2];
	static int ready;
	if (!ready) {
		if (sodium_init() < 0 || secret_from_bytes("fuzz-key-1", 10, &keys[0]) < 0 ||
		    secret_from_bytes("fuzz-key-2", 10, &keys[1]) < 0 ||
		    secret_from_bytes("fuzz-token", 10, &ac.bearer_token) < 0 ||
		    secret_from_bytes("pw", 2, &ac.basic_password) < 0)
			abort();
		ac.hmac_secrets = keys;
		ac.n_hmac_secrets = 2;
		ac.max_skew_ms = 300000;
		ac.allow_untimestamped = true;
		ac.basic_username = (char *)"user";
		ready = 1;
	}
	return &ac;
}

static void check_result(enum auth_result r)
{
	if (r != AUTH_OK && r != AUTH_MISSING && r != AUTH_INVALID && r != AUTH_STALE &&
	    r != AUTH_MALFORMED && r != AUTH_DISABLED)
		abort();
	if (!auth_result_message(r)[0])
		abort();
}

/* Write sig back as a header and parse it again: same t, same values. */
static void check_round_trip(const struct rollbackd_signature *sig)
{
	struct buf b = BUF_INIT;
	struct rollbackd_signature again;
	if (buf_addf(&b, "t=%lld", (long long)sig->t) < 0)
		abort();
	for (size_t i = 0; i < sig->n_v1; i++)
		if (buf_adds(&b, ", v1=") < 0 ||
		    buf_add_hex(&b, sig->v1[i], sizeof(sig->v1[i])) < 0)
			abort();
	if (auth_parse_signature(b.data, b.len, &again) < 0 || again.t != sig->t ||
	    again.n_v1 != sig->n_v1 ||
	    memcmp(again.v1, sig->v1, sig->n_v1 * sizeof(sig->v1[0])) != 0)
		abort();
	buf_release(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rollbackd_signature sig;
	const struct auth_config *ac = config();
	int parsed = auth_parse_signature((const char *)data, size, &sig);
	if (parsed == 0) {
		if (sig.n_v1 < 1 || sig.n_v1 > AUTH_MAX_V1 || sig.t < 0)
			abort();
		check_round_trip(&sig);
	} else if (parsed != -1) {
		abort();
	}

	/* auth_verify sees C strings: only inputs without a NUL compare. */
	if (memchr(data, '\0', size))
		return 0;
	char *hdr = malloc(size + 1);
	if (!hdr)
		return 0;
	memcpy(hdr, data, size);
	hdr[size] = '\0';

	static const char body[] = "{\"status\":\"firing\"}";
	struct auth_input in = {0};
	in.body = (const unsigned char *)body;
	in.body_len = sizeof(body) - 1;
	in.now = 1700000000;
	const char *scheme = NULL;

	in.rollbackd_signature = hdr;
	enum auth_result r = auth_verify(ac, &in, &scheme);
	check_result(r);
	if (parsed < 0 && r != AUTH_MALFORMED)
		abort();
	if (parsed == 0 && r == AUTH_MALFORMED)
		abort();

	in.rollbackd_signature = NULL;
	in.authorization = hdr;
	check_result(auth_verify(ac, &in, &scheme));
	in.authorization = NULL;
	in.hub_signature_256 = hdr;
	check_result(auth_verify(ac, &in, &scheme));
	in.hub_signature_256 = NULL;
	in.grafana_signature = hdr;
	check_result(auth_verify(ac, &in, &scheme));
	in.grafana_timestamp = hdr;
	check_result(auth_verify(ac, &in, &scheme));

	free(hdr);
	return 0;
}
