/* The engine's seen map (src/incident.c over u64map): fingerprint key ->
 * digest of what was journaled; new, repeat, changed, forgotten, walked,
 * and its memory back after a burst. */
#include <criterion/criterion.h>
#include <string.h>

#include "engine_internal.h"

static void digest_of(uint64_t n, unsigned char d[16])
{
	for (int i = 0; i < 16; i++)
		d[i] = (unsigned char)(n >> (i % 8 * 8)) ^ (unsigned char)i;
}

Test(seen_map, new_repeat_changed_forgotten)
{
	struct seen_map m;
	seen_map_init(&m);
	unsigned char a[16], b[16];
	digest_of(1, a);
	digest_of(2, b);
	uint64_t k = incident_fp_key("fp-1");
	cr_assert_not(seen_map_holds(&m, k, a));
	cr_assert_eq(seen_map_put(&m, k, a), 1, "new");
	cr_assert(seen_map_holds(&m, k, a));
	cr_assert_not(seen_map_holds(&m, k, b));
	cr_assert_eq(seen_map_put(&m, k, a), 0, "an exact repeat");
	cr_assert_eq(seen_map_put(&m, k, b), 1, "changed");
	cr_assert(seen_map_holds(&m, k, b));
	cr_assert_not(seen_map_holds(&m, k, a));
	cr_assert_eq(seen_map_count(&m), 1);
	seen_map_del(&m, k);
	cr_assert_not(seen_map_holds(&m, k, b));
	cr_assert_eq(seen_map_count(&m), 0);
	seen_map_del(&m, k); /* twice: nothing */
	cr_assert_eq(seen_map_put(&m, k, b), 1, "new again once forgotten");
	seen_map_release(&m);
}

/* A burst of fingerprints, most forgotten again (evicted incidents): the
 * rest stay exact, the walk sees each once, and the array shrinks. */
Test(seen_map, burst_walk_and_shrink)
{
	struct seen_map m;
	seen_map_init(&m);
	enum { N = 50000 };
	unsigned char d[16];
	char fp[32];
	for (uint64_t i = 0; i < N; i++) {
		snprintf(fp, sizeof(fp), "fp-%llu", (unsigned long long)i);
		digest_of(i, d);
		cr_assert_eq(seen_map_put(&m, incident_fp_key(fp), d), 1);
	}
	cr_assert_eq(seen_map_count(&m), N);
	size_t big = m.entries.cap;
	cr_assert(big * 3 >= (size_t)N * 4 && big <= (size_t)N * 2 + 2, "%zu slots", big);
	for (uint64_t i = 0; i < N; i++) {
		if (i % 1000 == 0)
			continue;
		snprintf(fp, sizeof(fp), "fp-%llu", (unsigned long long)i);
		seen_map_del(&m, incident_fp_key(fp));
	}
	cr_assert_eq(seen_map_count(&m), N / 1000);
	/* at least 1/8 full: it shrinks below that */
	cr_assert(m.entries.cap <= 8 * (N / 1000), "%zu slots for %d", m.entries.cap, N / 1000);
	for (uint64_t i = 0; i < N; i++) {
		snprintf(fp, sizeof(fp), "fp-%llu", (unsigned long long)i);
		digest_of(i, d);
		cr_assert_eq(seen_map_holds(&m, incident_fp_key(fp), d), i % 1000 == 0, "%s", fp);
	}
	size_t pos = 0, visits = 0;
	uint64_t key;
	const unsigned char *got;
	while (seen_map_next(&m, &pos, &key, &got)) {
		bool found = false;
		for (uint64_t i = 0; i < N && !found; i += 1000) {
			snprintf(fp, sizeof(fp), "fp-%llu", (unsigned long long)i);
			if (incident_fp_key(fp) == key) {
				digest_of(i, d);
				cr_assert_eq(memcmp(got, d, 16), 0, "%s", fp);
				found = true;
			}
		}
		cr_assert(found, "key %llx", (unsigned long long)key);
		visits++;
	}
	cr_assert_eq(visits, N / 1000);
	seen_map_release(&m);
	cr_assert_eq(seen_map_count(&m), 0);
}
