/* The open-addressed u64map (src/u64map.c): insert, find, replace, delete
 * along probe chains and across the array's end, growth, shrink and
 * iteration, checked slot by slot and against a plain model. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "rollbackd/u64map.h"

/* Every entry is reachable from its home slot without crossing an empty
 * one, n is the number of keys, and the array is at most 3/4 full. */
static void check_invariants(const struct u64map *m)
{
	size_t n = 0;
	for (size_t i = 0; i < m->cap; i++) {
		uint64_t k = u64map_slot_key(m, i);
		if (!k)
			continue;
		n++;
		for (size_t j = u64map_home(m, k); j != i; j = (j + 1) % m->cap)
			cr_assert_neq(u64map_slot_key(m, j), 0,
				      "slot %zu: key %llx hidden by the empty slot %zu", i,
				      (unsigned long long)k, j);
		cr_assert_eq(u64map_find(m, k), m->slots + i * (8 + m->vsize) + 8);
	}
	cr_assert_eq(n, m->n);
	cr_assert(m->n * 4 <= m->cap * 3, "%zu in %zu slots", m->n, m->cap);
}

static void put_u32(struct u64map *m, uint64_t key, uint32_t v)
{
	void *p = u64map_put(m, key, NULL);
	cr_assert_not_null(p);
	memcpy(p, &v, sizeof(v));
}

static uint32_t get_u32(const struct u64map *m, uint64_t key)
{
	void *p = u64map_find(m, key);
	cr_assert_not_null(p, "key %llx not found", (unsigned long long)key);
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

/* The first n keys, counting up from *from, whose probe starts at home. */
static void keys_at(const struct u64map *m, size_t home, uint64_t *out, size_t n, uint64_t *from)
{
	for (size_t got = 0; got < n; (*from)++)
		if (u64map_home(m, *from) == home && !u64map_find(m, *from))
			out[got++] = (*from);
}

/* An array of U64MAP_MIN_CAP slots with nothing in it. */
static void empty_array(struct u64map *m, size_t vsize)
{
	u64map_init(m, vsize);
	cr_assert_not_null(u64map_put(m, 1, NULL));
	cr_assert(u64map_del(m, 1));
	cr_assert_eq(m->cap, U64MAP_MIN_CAP);
	cr_assert_eq(m->n, 0);
}

Test(u64map, empty_map_allocates_nothing)
{
	struct u64map m;
	u64map_init(&m, 16);
	cr_assert_null(m.slots);
	cr_assert_null(u64map_find(&m, 5));
	cr_assert_not(u64map_del(&m, 5));
	size_t pos = 0;
	uint64_t k;
	void *v;
	cr_assert_not(u64map_next(&m, &pos, &k, &v));
	u64map_release(&m);
}

Test(u64map, key_zero_is_no_key)
{
	struct u64map m;
	u64map_init(&m, 4);
	cr_assert_null(u64map_put(&m, 0, NULL));
	cr_assert_eq(m.n, 0);
	put_u32(&m, 7, 1);
	cr_assert_null(u64map_find(&m, 0));
	cr_assert_not(u64map_del(&m, 0));
	cr_assert_eq(m.n, 1);
	u64map_release(&m);
}

Test(u64map, insert_find_replace)
{
	struct u64map m;
	u64map_init(&m, 4);
	bool added = false;
	void *p = u64map_put(&m, 42, &added);
	cr_assert_not_null(p);
	cr_assert(added);
	uint32_t zero;
	memcpy(&zero, p, sizeof(zero));
	cr_assert_eq(zero, 0, "a new value starts zeroed");
	memcpy(p, &(uint32_t){9}, 4);
	p = u64map_put(&m, 42, &added);
	cr_assert_not(added);
	cr_assert_eq(get_u32(&m, 42), 9, "put of a held key keeps its value");
	memcpy(p, &(uint32_t){10}, 4);
	cr_assert_eq(get_u32(&m, 42), 10);
	cr_assert_eq(m.n, 1);
	cr_assert_null(u64map_find(&m, 43));
	for (uint64_t k = 1; k <= 1000; k++)
		put_u32(&m, k * 0x9e3779b97f4a7c15ULL, (uint32_t)k);
	for (uint64_t k = 1; k <= 1000; k++)
		cr_assert_eq(get_u32(&m, k * 0x9e3779b97f4a7c15ULL), k);
	cr_assert_eq(m.n, 1001);
	check_invariants(&m);
	u64map_release(&m);
	cr_assert_null(m.slots);
	cr_assert_eq(m.n, 0);
	put_u32(&m, 5, 5); /* reusable after release */
	cr_assert_eq(get_u32(&m, 5), 5);
	u64map_release(&m);
}

/* Three keys homed at the last slot wrap to 0 and 1; a key homed at 0
 * sits at 2, one homed at 1 at 3. Deleting the first shifts all of them
 * back by one, across the end of the array. */
Test(u64map, delete_shifts_back_across_the_end)
{
	struct u64map m;
	empty_array(&m, 4);
	size_t last = m.cap - 1;
	uint64_t from = 2, w[3], a, b;
	keys_at(&m, last, w, 3, &from);
	keys_at(&m, 0, &a, 1, &from);
	keys_at(&m, 1, &b, 1, &from);
	put_u32(&m, w[0], 10);
	put_u32(&m, w[1], 11);
	put_u32(&m, w[2], 12);
	put_u32(&m, a, 20);
	put_u32(&m, b, 30);
	cr_assert_eq(u64map_slot_key(&m, last), w[0]);
	cr_assert_eq(u64map_slot_key(&m, 0), w[1]);
	cr_assert_eq(u64map_slot_key(&m, 1), w[2]);
	cr_assert_eq(u64map_slot_key(&m, 2), a);
	cr_assert_eq(u64map_slot_key(&m, 3), b);

	cr_assert(u64map_del(&m, w[0]));
	cr_assert_eq(u64map_slot_key(&m, last), w[1]);
	cr_assert_eq(u64map_slot_key(&m, 0), w[2]);
	cr_assert_eq(u64map_slot_key(&m, 1), a);
	cr_assert_eq(u64map_slot_key(&m, 2), b);
	cr_assert_eq(u64map_slot_key(&m, 3), 0);
	cr_assert_null(u64map_find(&m, w[0]));
	cr_assert_eq(get_u32(&m, w[1]), 11);
	cr_assert_eq(get_u32(&m, w[2]), 12);
	cr_assert_eq(get_u32(&m, a), 20);
	cr_assert_eq(get_u32(&m, b), 30);
	check_invariants(&m);

	cr_assert(u64map_del(&m, w[2])); /* from the middle, after the wrap */
	cr_assert_eq(u64map_slot_key(&m, 0), a);
	cr_assert_eq(u64map_slot_key(&m, 1), b);
	cr_assert_eq(u64map_slot_key(&m, 2), 0);
	cr_assert_eq(get_u32(&m, w[1]), 11);
	check_invariants(&m);
	cr_assert_not(u64map_del(&m, w[2]));
	cr_assert_eq(m.n, 3);
	u64map_release(&m);
}

/* x and z are homed at 5, y at 6: x@5 y@6 z@7. Deleting x may move z to
 * 5 but not y (y would sit before its home and be lost). */
Test(u64map, delete_leaves_an_entry_at_its_home)
{
	struct u64map m;
	empty_array(&m, 4);
	uint64_t from = 2, xz[2], y;
	keys_at(&m, 5, xz, 2, &from);
	keys_at(&m, 6, &y, 1, &from);
	put_u32(&m, xz[0], 1);
	put_u32(&m, y, 2);
	put_u32(&m, xz[1], 3);
	cr_assert_eq(u64map_slot_key(&m, 5), xz[0]);
	cr_assert_eq(u64map_slot_key(&m, 6), y);
	cr_assert_eq(u64map_slot_key(&m, 7), xz[1]);
	cr_assert(u64map_del(&m, xz[0]));
	cr_assert_eq(u64map_slot_key(&m, 5), xz[1]);
	cr_assert_eq(u64map_slot_key(&m, 6), y);
	cr_assert_eq(u64map_slot_key(&m, 7), 0);
	cr_assert_eq(get_u32(&m, y), 2);
	cr_assert_eq(get_u32(&m, xz[1]), 3);
	check_invariants(&m);
	u64map_release(&m);
}

/* A missing key whose home is inside a chain is not found, and deleting
 * it moves nothing. */
Test(u64map, missing_key_in_a_chain)
{
	struct u64map m;
	empty_array(&m, 4);
	uint64_t from = 2, k[4];
	keys_at(&m, 9, k, 4, &from);
	for (int i = 0; i < 3; i++)
		put_u32(&m, k[i], (uint32_t)i);
	cr_assert_null(u64map_find(&m, k[3]));
	cr_assert_not(u64map_del(&m, k[3]));
	for (int i = 0; i < 3; i++)
		cr_assert_eq(u64map_slot_key(&m, 9 + (size_t)i), k[i]);
	u64map_release(&m);
}

Test(u64map, grows_and_shrinks)
{
	struct u64map m;
	u64map_init(&m, 16);
	const uint64_t n = 100000;
	size_t cap_seen = 0;
	for (uint64_t k = 1; k <= n; k++) {
		unsigned char *d = u64map_put(&m, k, NULL);
		cr_assert_not_null(d);
		memset(d, (int)(k & 0xff), 16);
		cr_assert(m.n * 4 <= m.cap * 3);
		if (m.cap != cap_seen) { /* each growth: half full or so after */
			cr_assert(m.cap == U64MAP_MIN_CAP || m.n * 2 <= m.cap + 2, "%zu in %zu",
				  m.n, m.cap);
			cap_seen = m.cap;
		}
	}
	cr_assert_eq(m.n, n);
	cr_assert(m.cap <= n * 2 + 2, "%zu slots for %llu", m.cap, (unsigned long long)n);
	check_invariants(&m);
	for (uint64_t k = 1; k <= n; k++) {
		unsigned char *d = u64map_find(&m, k);
		cr_assert_not_null(d);
		cr_assert_eq(d[0], k & 0xff);
		cr_assert_eq(d[15], k & 0xff);
	}
	/* a burst over: memory comes back */
	for (uint64_t k = 1; k <= n - 10; k++) {
		cr_assert(u64map_del(&m, k));
		cr_assert(m.cap <= U64MAP_MIN_CAP || m.n * 8 >= m.cap, "%zu in %zu", m.n, m.cap);
	}
	cr_assert_eq(m.n, 10);
	cr_assert(m.cap <= 80, "%zu slots for 10", m.cap);
	check_invariants(&m);
	for (uint64_t k = n - 9; k <= n; k++)
		cr_assert_eq(((unsigned char *)u64map_find(&m, k))[7], k & 0xff);
	for (uint64_t k = n - 9; k <= n; k++)
		cr_assert(u64map_del(&m, k));
	cr_assert_eq(m.n, 0);
	cr_assert_eq(m.cap, U64MAP_MIN_CAP);
	u64map_release(&m);
}

Test(u64map, iteration_visits_each_entry_once)
{
	struct u64map m;
	u64map_init(&m, 4);
	enum { N = 5000 };
	static bool seen[N + 1];
	for (uint32_t k = 1; k <= N; k++)
		put_u32(&m, k, k * 3);
	for (uint32_t k = 1; k <= N; k += 2)
		cr_assert(u64map_del(&m, k));
	size_t pos = 0, visits = 0;
	uint64_t k;
	void *v;
	while (u64map_next(&m, &pos, &k, &v)) {
		cr_assert(k >= 1 && k <= N && k % 2 == 0, "key %llu", (unsigned long long)k);
		cr_assert_not(seen[k], "key %llu twice", (unsigned long long)k);
		seen[k] = true;
		uint32_t x;
		memcpy(&x, v, 4);
		cr_assert_eq(x, k * 3);
		visits++;
	}
	cr_assert_eq(visits, N / 2);
	cr_assert_not(u64map_next(&m, &pos, &k, &v), "stays at the end");
	u64map_release(&m);
}

/* Random puts and deletes over a small set of keys (so chains, wraps,
 * growths and shrinks all happen), against a plain array. */
Test(u64map, random_operations_match_a_model)
{
	struct u64map m;
	u64map_init(&m, 4);
	enum { KEYS = 3000 };
	static uint32_t model[KEYS]; /* 0: absent, else the value */
	uint64_t keyof[KEYS];
	uint64_t rng = 0x2545f4914f6cdd1dULL;
	for (size_t i = 0; i < KEYS; i++)
		keyof[i] = (i + 1) * 0xbf58476d1ce4e5b9ULL | 1;
	size_t held = 0, cap = 0, grew = 0, shrank = 0;
	for (int step = 0; step < 300000; step++) {
		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		size_t i = (size_t)(rng % KEYS);
		/* phases: mostly puts, then mostly deletes */
		bool put = ((rng >> 32) % 100) < ((step / 20000) % 2 ? 5u : 90u);
		if (put) {
			uint32_t v = (uint32_t)(rng >> 40) | 1;
			put_u32(&m, keyof[i], v);
			held += !model[i];
			model[i] = v;
		} else {
			cr_assert_eq(u64map_del(&m, keyof[i]), model[i] != 0);
			held -= model[i] != 0;
			model[i] = 0;
		}
		cr_assert_eq(m.n, held);
		grew += m.cap > cap;
		shrank += m.cap < cap;
		cap = m.cap;
		if (step % 5000 == 0 || (rng >> 20) % 64 == 0) {
			check_invariants(&m);
			for (size_t j = 0; j < KEYS; j++) {
				if (model[j])
					cr_assert_eq(get_u32(&m, keyof[j]), model[j]);
				else
					cr_assert_null(u64map_find(&m, keyof[j]));
			}
		}
	}
	cr_assert(grew > 3 && shrank > 3, "grew %zu times, shrank %zu", grew, shrank);
	u64map_release(&m);
}
