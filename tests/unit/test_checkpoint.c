/*
 * Unit tests for checkpoint's pure half: the signed message and published
 * line, strict parsing, signature and key checks, key file parsing, and the
 * durable head a checkpoint signs.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "rollbackd/checkpoint.h"
#include "rollbackd/journal.h"
#include "rollbackd/log.h"
#include "rollbackd/metrics.h"

static const char hash_a[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
static const char ts_a[] = "2026-12-02T05:39:51.880593809Z";

static unsigned char pk[CHECKPOINT_PK_BYTES], sk[CHECKPOINT_SK_BYTES];

static void setup(void)
{
	cr_assert(sodium_init() >= 0);
	crypto_sign_keypair(pk, sk);
}

TestSuite(checkpoint, .init = setup);

static void signed_line(struct buf *b, uint64_t seq, const char *hash, const char *ts)
{
	buf_reset(b);
	cr_assert_eq(checkpoint_sign(seq, hash, ts, sk, b, NULL), 0);
}

Test(checkpoint, message_and_line_have_the_exact_shape)
{
	struct buf m = BUF_INIT, line = BUF_INIT;
	char id[CHECKPOINT_KEY_ID_HEX + 1], sig[CHECKPOINT_SIG_BYTES * 2 + 1], want[512];
	unsigned char bin[CHECKPOINT_SIG_BYTES];
	cr_assert_eq(checkpoint_message(42, hash_a, ts_a, &m), 0);
	cr_assert_str_eq(m.data,
			 "{\"seq\":42,\"hash\":\"00112233445566778899aabbccddeeff00112233445"
			 "566778899aabbccddeeff\",\"ts\":\"2026-12-02T05:39:51.880593809Z\"}");
	cr_assert_eq(checkpoint_sign(42, hash_a, ts_a, sk, &line, sig), 0);
	checkpoint_key_id(pk, id);
	cr_assert_eq(strlen(id), 16);
	snprintf(want, sizeof(want), "%.*s,\"key_id\":\"%s\",\"sig\":\"%s\"}", (int)m.len - 1,
		 m.data, id, sig);
	cr_assert_str_eq(line.data, want);
	/* The signature is over the message, checked by libsodium itself. */
	cr_assert_eq(sodium_hex2bin(bin, sizeof(bin), sig, strlen(sig), NULL, NULL, NULL), 0);
	cr_assert_eq(crypto_sign_verify_detached(bin, (const unsigned char *)m.data, m.len, pk), 0);
	buf_release(&m);
	buf_release(&line);
}

Test(checkpoint, parse_and_verify_round_trip)
{
	struct buf line = BUF_INIT;
	struct checkpoint c;
	struct error err = {{0}};
	signed_line(&line, 7, hash_a, ts_a);
	cr_assert_eq(checkpoint_parse(line.data, line.len, &c, &err), 0, "%s", err.msg);
	cr_assert_eq(c.seq, 7);
	cr_assert_str_eq(c.hash, hash_a);
	cr_assert_str_eq(c.ts, ts_a);
	cr_assert_eq(checkpoint_verify(&c, pk, &err), 0, "%s", err.msg);
	buf_release(&line);
}

Test(checkpoint, a_changed_line_or_another_key_is_refused)
{
	struct buf line = BUF_INIT;
	struct checkpoint c;
	struct error err = {{0}};
	unsigned char pk2[CHECKPOINT_PK_BYTES], sk2[CHECKPOINT_SK_BYTES];
	char id[CHECKPOINT_KEY_ID_HEX + 1], id2[CHECKPOINT_KEY_ID_HEX + 1], want[200];
	signed_line(&line, 7, hash_a, ts_a);
	/* seq 7 -> 8: still well-formed, no longer what was signed */
	char *p = strstr(line.data, "\"seq\":7");
	p[6] = '8';
	cr_assert_eq(checkpoint_parse(line.data, line.len, &c, &err), 0, "%s", err.msg);
	cr_assert_eq(checkpoint_verify(&c, pk, &err), -1);
	cr_assert_str_eq(err.msg, "bad signature: the line was not signed by the --pubkey key as "
				  "it reads (changed or forged)");

	crypto_sign_keypair(pk2, sk2);
	checkpoint_key_id(pk, id);
	checkpoint_key_id(pk2, id2);
	signed_line(&line, 7, hash_a, ts_a);
	cr_assert_eq(checkpoint_parse(line.data, line.len, &c, &err), 0);
	cr_assert_eq(checkpoint_verify(&c, pk2, &err), -1);
	snprintf(want, sizeof(want), "signed by key_id %s, not by the --pubkey key (key_id %s)", id,
		 id2);
	cr_assert_str_eq(err.msg, want);

	/* Same key_id, other key: the signature decides. */
	memcpy(c.key_id, id2, sizeof(id2));
	cr_assert_eq(checkpoint_verify(&c, pk2, &err), -1);
	cr_assert(strncmp(err.msg, "bad signature", 13) == 0);
	buf_release(&line);
}

static void assert_bad(const char *text, const char *msg)
{
	struct checkpoint c;
	struct error err = {{0}};
	cr_assert_eq(checkpoint_parse(text, strlen(text), &c, &err), -1, "%s", text);
	cr_assert_str_eq(err.msg, msg, "%s", text);
}

Test(checkpoint, parse_is_strict)
{
	const char *sig = "0000000000000000000000000000000000000000000000000000000000000000"
			  "0000000000000000000000000000000000000000000000000000000000000000";
	char text[600];
	assert_bad("[]", "not a JSON object");
	assert_bad("{\"seq\":1", "not a JSON object");
	assert_bad("{\"seq\":1}", "no \"hash\"");
#define LINE(seq, hash, ts, id, extra)                                                             \
	snprintf(text, sizeof(text),                                                               \
		 "{\"seq\":%s,\"hash\":\"%s\",\"ts\":\"%s\",\"key_id\":\"%s\",\"sig\":\"%s\"%s}",  \
		 seq, hash, ts, id, sig, extra)
	LINE("1", hash_a, ts_a, "0011223344556677", "");
	struct checkpoint c;
	struct error err = {{0}};
	cr_assert_eq(checkpoint_parse(text, strlen(text), &c, &err), 0, "%s", err.msg);
	LINE("0", hash_a, ts_a, "0011223344556677", "");
	assert_bad(text, "\"seq\" is not a positive integer");
	LINE("\"1\"", hash_a, ts_a, "0011223344556677", "");
	assert_bad(text, "\"seq\" is not a positive integer");
	LINE("1", "00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff", ts_a,
	     "0011223344556677", "");
	assert_bad(text, "\"hash\" is not 64 lowercase hex digits");
	LINE("1", hash_a, "yesterday", "0011223344556677", "");
	assert_bad(text, "\"ts\" is not an RFC 3339 time");
	LINE("1", hash_a, ts_a, "00112233", "");
	assert_bad(text, "\"key_id\" is not 16 lowercase hex digits");
	LINE("1", hash_a, ts_a, "0011223344556677", ",\"extra\":1");
	assert_bad(text, "members other than seq, hash, ts, key_id and sig");
	snprintf(text, sizeof(text),
		 "{\"seq\":1,\"hash\":\"%s\",\"ts\":\"%s\",\"key_id\":\"0011223344556677\","
		 "\"sig\":\"abc\"}",
		 hash_a, ts_a);
	assert_bad(text, "\"sig\" is not 128 lowercase hex digits");
#undef LINE
}

Test(checkpoint, key_parse)
{
	char hex[CHECKPOINT_SK_BYTES * 2 + 1];
	unsigned char out[CHECKPOINT_SK_BYTES];
	struct error err = {{0}};
	sodium_bin2hex(hex, sizeof(hex), sk, sizeof(sk));
	cr_assert_eq(checkpoint_key_parse((unsigned char *)hex, strlen(hex), out, &err), 0, "%s",
		     err.msg);
	cr_assert_eq(memcmp(out, sk, sizeof(sk)), 0);
	cr_assert_eq(checkpoint_key_parse((unsigned char *)hex, 64, NULL, &err), -1);
	cr_assert_str_eq(err.msg, "not an Ed25519 secret key (expected 128 lowercase hex digits, "
				  "as 'rollbackd keygen' writes)");
	hex[127] = hex[127] == '0' ? '1' : '0'; /* the public half no longer the seed's */
	cr_assert_eq(checkpoint_key_parse((unsigned char *)hex, strlen(hex), NULL, &err), -1);
	cr_assert_str_eq(err.msg,
			 "not an Ed25519 secret key (its public half does not match its seed)");
	cr_assert_eq(checkpoint_key_parse(NULL, 0, NULL, &err), -1);
}

Test(checkpoint, pubkey_load)
{
	char path[] = "/tmp/rollbackd-pk-XXXXXX", hex[CHECKPOINT_PK_BYTES * 2 + 1];
	unsigned char got[CHECKPOINT_PK_BYTES];
	struct error err = {{0}};
	int fd = mkstemp(path);
	cr_assert(fd >= 0);
	sodium_bin2hex(hex, sizeof(hex), pk, sizeof(pk));
	cr_assert_eq(write(fd, hex, strlen(hex)), (ssize_t)strlen(hex));
	cr_assert_eq(write(fd, "\n", 1), 1);
	close(fd);
	cr_assert_eq(checkpoint_pubkey_load(path, got, &err), 0, "%s", err.msg);
	cr_assert_eq(memcmp(got, pk, sizeof(pk)), 0);
	FILE *f = fopen(path, "w");
	fputs("not a key\n", f);
	fclose(f);
	cr_assert_eq(checkpoint_pubkey_load(path, got, &err), -1);
	char want[300];
	snprintf(want, sizeof(want),
		 "%s: not an Ed25519 public key (expected 64 lowercase hex digits, as 'rollbackd "
		 "keygen' writes to FILE.pub)",
		 path);
	cr_assert_str_eq(err.msg, want);
	unlink(path);
}

/* The head a checkpoint signs is the durable one, with its hash. */
Test(checkpoint, durable_head_follows_the_writer)
{
	char dir[] = "/tmp/rollbackd-ckj-XXXXXX", hash[JOURNAL_HASH_HEX + 1];
	cr_assert(mkdtemp(dir));
	log_set_level(LOG_ERROR);
	struct journal_options jo = {.state_dir = dir};
	struct journal *j;
	struct error err = {{0}};
	cr_assert_eq(journal_open(&jo, &j, &err), 0, "%s", err.msg);
	cr_assert_eq(journal_durable_head(j, hash), 0);
	cr_assert_str_eq(hash, "0000000000000000000000000000000000000000000000000000000000000000");
	uint64_t ticket = 0, seq = 0;
	cr_assert_eq(journal_append_seq(j, "test", "", NULL, 0, &ticket, &seq), 0);
	cr_assert_eq(seq, 1);
	cr_assert_eq(journal_append_seq(j, "test", "", NULL, 0, &ticket, &seq), 0);
	cr_assert_eq(seq, 2);
	for (int i = 0; i < 500 && !journal_durable(j, ticket); i++)
		usleep(10000);
	cr_assert(journal_durable(j, ticket));
	cr_assert_eq(journal_durable_head(j, hash), 2);
	journal_close(j, 1000);

	/* The file's second line carries that hash. */
	char path[300], text[4096];
	snprintf(path, sizeof(path), "%s/journal.jsonl", dir);
	FILE *f = fopen(path, "r");
	cr_assert(f);
	cr_assert(fgets(text, sizeof(text), f));
	cr_assert(fgets(text, sizeof(text), f));
	fclose(f);
	char want[100];
	snprintf(want, sizeof(want), "\"hash\":\"%s\"}\n", hash);
	cr_assert(strstr(text, want), "%s", text);

	/* Reopened, the head on disk is known before anything is written. */
	char again[JOURNAL_HASH_HEX + 1];
	cr_assert_eq(journal_open(&jo, &j, &err), 0, "%s", err.msg);
	cr_assert_eq(journal_durable_head(j, again), 2);
	cr_assert_str_eq(again, hash);
	journal_close(j, 1000);
	unlink(path);
	rmdir(dir);
	metrics_free_all();
}
