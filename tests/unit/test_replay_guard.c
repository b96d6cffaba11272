/*
 * Unit tests for replay_guard: the first answer is returned for the same
 * key until it expires, the oldest entries go first when the guard is full
 * (by count and by bytes), keys depend on scheme, signature and body, and
 * concurrent puts of one key keep exactly one answer.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "rollbackd/replay_guard.h"

static void key_of(int i, unsigned char k[REPLAY_GUARD_KEY_LEN])
{
	char sig[32];
	snprintf(sig, sizeof(sig), "t=1,v1=%d", i);
	replay_guard_key("rollbackd", sig, "body", 4, k);
}

Test(replay_guard, first_answer_until_expiry)
{
	struct replay_guard *g = replay_guard_new(8, 1024);
	unsigned char k[REPLAY_GUARD_KEY_LEN];
	struct buf b = BUF_INIT;
	int status = 0;
	key_of(1, k);
	cr_assert_eq(replay_guard_get(g, k, 0, &status, &b), 0);
	cr_assert_eq(replay_guard_put(g, k, 1000, 200, "{\"a\":1}", 7), 0);
	cr_assert_eq(replay_guard_put(g, k, 5000, 503, "second", 6), 0); /* first wins */
	cr_assert_eq(replay_guard_get(g, k, 1000, &status, &b), 1);
	cr_assert_eq(status, 200);
	cr_assert_str_eq(b.data, "{\"a\":1}");
	buf_release(&b);
	cr_assert_eq(replay_guard_get(g, k, 1001, &status, &b), 0, "expired");
	cr_assert_eq(b.len, 0);
	cr_assert_eq(replay_guard_size(g), 1);
	replay_guard_free(g);
}

Test(replay_guard, keys_cover_scheme_signature_and_body)
{
	unsigned char a[32], b[32], c[32], d[32];
	replay_guard_key("rollbackd", "t=1,v1=ab", "x", 1, a);
	replay_guard_key("github", "t=1,v1=ab", "x", 1, b);
	replay_guard_key("rollbackd", "t=1,v1=ac", "x", 1, c);
	replay_guard_key("rollbackd", "t=1,v1=ab", "y", 1, d);
	cr_assert_neq(memcmp(a, b, 32), 0);
	cr_assert_neq(memcmp(a, c, 32), 0);
	cr_assert_neq(memcmp(a, d, 32), 0);
	replay_guard_key("rollbackd", "t=1,v1=ab", "x", 1, b);
	cr_assert_eq(memcmp(a, b, 32), 0);
}

Test(replay_guard, bounded_by_count_oldest_first)
{
	struct replay_guard *g = replay_guard_new(4, 1 << 20);
	unsigned char k[REPLAY_GUARD_KEY_LEN];
	struct buf b = BUF_INIT;
	int status;
	for (int i = 0; i < 10; i++) {
		key_of(i, k);
		cr_assert_eq(replay_guard_put(g, k, 1000, 200 + i, "x", 1), 0);
		cr_assert_leq(replay_guard_size(g), 4);
	}
	for (int i = 0; i < 10; i++) {
		key_of(i, k);
		int rc = replay_guard_get(g, k, 0, &status, &b);
		cr_assert_eq(rc, i >= 6 ? 1 : 0, "entry %d", i);
		if (rc == 1)
			cr_assert_eq(status, 200 + i);
		buf_release(&b);
	}
	replay_guard_free(g);
}

Test(replay_guard, bounded_by_bytes)
{
	struct replay_guard *g = replay_guard_new(100, 10);
	unsigned char k[REPLAY_GUARD_KEY_LEN];
	struct buf b = BUF_INIT;
	int status;
	key_of(1, k);
	cr_assert_eq(replay_guard_put(g, k, 1000, 200, "123456", 6), 0);
	key_of(2, k);
	cr_assert_eq(replay_guard_put(g, k, 1000, 200, "abcdef", 6), 0); /* pushes 1 out */
	key_of(3, k);
	cr_assert_eq(replay_guard_put(g, k, 1000, 200, "too long!!!", 11), 1);
	cr_assert_eq(replay_guard_size(g), 1);
	key_of(1, k);
	cr_assert_eq(replay_guard_get(g, k, 0, &status, &b), 0);
	key_of(2, k);
	cr_assert_eq(replay_guard_get(g, k, 0, &status, &b), 1);
	cr_assert_str_eq(b.data, "abcdef");
	buf_release(&b);
	replay_guard_free(g);
}

static struct replay_guard *shared;

static void *racer(void *arg)
{
	unsigned char k[REPLAY_GUARD_KEY_LEN];
	key_of(7, k);
	for (int i = 0; i < 1000; i++) {
		replay_guard_put(shared, k, 1000, (int)(intptr_t)arg, "r", 1);
		unsigned char o[REPLAY_GUARD_KEY_LEN];
		key_of(1000 + i, o);
		replay_guard_put(shared, o, 1000, 1, "o", 1);
	}
	return NULL;
}

Test(replay_guard, threads)
{
	shared = replay_guard_new(64, 4096);
	pthread_t t[4];
	for (intptr_t i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, racer, (void *)(i + 1));
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	cr_assert_leq(replay_guard_size(shared), 64);
	replay_guard_free(shared);
}
