/* The shared containers: include/rollbackd/hmap.h (src/hmap.c) and
 * include/rollbackd/list.h. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollbackd/hmap.h"
#include "rollbackd/list.h"

struct item {
	struct hmap_node node;
	struct list_node link;
	char key[16];
	int value;
};

static struct item *find(struct hmap *m, const char *key)
{
	struct item *it;
	HMAP_FOR_EACH_WITH_HASH(it, node, hmap_hash_str(key), m)
	if (strcmp(it->key, key) == 0)
		return it;
	return NULL;
}

Test(hmap, empty_map_finds_nothing)
{
	struct hmap m = HMAP_INIT;
	cr_assert_null(find(&m, "a"));
	cr_assert_null(hmap_first(&m));
	cr_assert_eq(hmap_count(&m), 0);
	hmap_release(&m);
}

Test(hmap, insert_find_remove_through_growth)
{
	enum { N = 5000 };
	struct hmap m;
	hmap_init(&m);
	struct item *items = calloc(N, sizeof(*items));
	cr_assert_not_null(items);
	for (int i = 0; i < N; i++) {
		snprintf(items[i].key, sizeof(items[i].key), "k%d", i);
		items[i].value = i;
		cr_assert_eq(hmap_insert(&m, &items[i].node, hmap_hash_str(items[i].key)), 0);
	}
	cr_assert_eq(hmap_count(&m), N);
	for (int i = 0; i < N; i++) {
		char k[16];
		snprintf(k, sizeof(k), "k%d", i);
		struct item *it = find(&m, k);
		cr_assert_not_null(it, "%s", k);
		cr_assert_eq(it->value, i);
	}
	cr_assert_null(find(&m, "k5000"));
	/* every element exactly once */
	int seen = 0;
	long sum = 0;
	struct item *it;
	HMAP_FOR_EACH(it, node, &m)
	{
		seen++;
		sum += it->value;
	}
	cr_assert_eq(seen, N);
	cr_assert_eq(sum, (long)N * (N - 1) / 2);
	/* remove the even ones */
	for (int i = 0; i < N; i += 2)
		hmap_remove(&m, &items[i].node);
	cr_assert_eq(hmap_count(&m), N / 2);
	for (int i = 0; i < N; i++) {
		char k[16];
		snprintf(k, sizeof(k), "k%d", i);
		if (i % 2)
			cr_assert_not_null(find(&m, k), "%s", k);
		else
			cr_assert_null(find(&m, k), "%s", k);
	}
	hmap_release(&m);
	cr_assert_eq(hmap_count(&m), 0);
	cr_assert_null(hmap_first(&m));
	free(items);
}

Test(hmap, equal_hashes_are_all_visited)
{
	struct hmap m = HMAP_INIT;
	struct item a = {.key = "a"}, b = {.key = "b"}, c = {.key = "c"};
	/* a and b collide on purpose; c has another hash in the same bucket */
	cr_assert_eq(hmap_insert(&m, &a.node, 42), 0);
	cr_assert_eq(hmap_insert(&m, &b.node, 42), 0);
	cr_assert_eq(hmap_insert(&m, &c.node, 42 + 16), 0);
	int n = 0;
	struct item *it;
	HMAP_FOR_EACH_WITH_HASH(it, node, 42, &m)
	{
		cr_assert(it == &a || it == &b);
		n++;
	}
	cr_assert_eq(n, 2);
	hmap_remove(&m, &a.node);
	n = 0;
	HMAP_FOR_EACH_WITH_HASH(it, node, 42, &m)
	n++;
	cr_assert_eq(n, 1);
	cr_assert_eq(hmap_first_with_hash(&m, 42), &b.node);
	cr_assert_eq(hmap_first_with_hash(&m, 42 + 16), &c.node);
	cr_assert_null(hmap_first_with_hash(&m, 43));
	hmap_release(&m);
}

Test(hmap, removing_while_walking_with_next_fetched_first)
{
	struct hmap m = HMAP_INIT;
	struct item items[100];
	for (int i = 0; i < 100; i++) {
		snprintf(items[i].key, sizeof(items[i].key), "%d", i);
		cr_assert_eq(hmap_insert(&m, &items[i].node, hmap_hash_str(items[i].key)), 0);
	}
	struct hmap_node *n, *next;
	int removed = 0;
	for (n = hmap_first(&m); n; n = next) {
		next = hmap_next(&m, n);
		hmap_remove(&m, n);
		removed++;
	}
	cr_assert_eq(removed, 100);
	cr_assert_eq(hmap_count(&m), 0);
	hmap_release(&m);
}

Test(hmap, hashes_are_fnv1a)
{
	/* FNV-1a 64 test vectors */
	cr_assert_eq(hmap_hash_str(""), 0xcbf29ce484222325ULL);
	cr_assert_eq(hmap_hash_str("a"), 0xaf63dc4c8601ec8cULL);
	cr_assert_eq(hmap_hash_str("foobar"), 0x85944171f73967e8ULL);
	cr_assert_eq(hmap_hash_bytes("foobar", 6), hmap_hash_str("foobar"));
	/* bytes past a NUL count */
	cr_assert_neq(hmap_hash_bytes("a\0b", 3), hmap_hash_bytes("a", 1));
}

Test(list, push_pop_order_and_remove)
{
	struct list_node l;
	list_init(&l);
	cr_assert(list_empty(&l));
	cr_assert_null(list_front(&l));
	cr_assert_null(list_pop_front(&l));
	struct item a = {.value = 1}, b = {.value = 2}, c = {.value = 3};
	list_init(&a.link);
	cr_assert_not(list_linked(&a.link));
	list_push_back(&l, &a.link);
	list_push_back(&l, &b.link);
	list_push_front(&l, &c.link);
	cr_assert(list_linked(&a.link));
	cr_assert_eq(list_size(&l), 3);
	int order[3], k = 0;
	struct item *it;
	LIST_FOR_EACH(it, link, &l)
	order[k++] = it->value;
	cr_assert_eq(order[0], 3);
	cr_assert_eq(order[1], 1);
	cr_assert_eq(order[2], 2);
	k = 0;
	LIST_FOR_EACH_REVERSE(it, link, &l)
	order[k++] = it->value;
	cr_assert_eq(order[0], 2);
	cr_assert_eq(order[2], 3);
	list_remove(&a.link);
	cr_assert_not(list_linked(&a.link));
	cr_assert_eq(list_size(&l), 2);
	cr_assert_eq(LIST_ENTRY(list_back(&l), struct item, link), &b);
	cr_assert_eq(LIST_ENTRY(list_pop_front(&l), struct item, link), &c);
	cr_assert_eq(LIST_ENTRY(list_pop_front(&l), struct item, link), &b);
	cr_assert(list_empty(&l));
}

Test(list, safe_walk_may_free)
{
	struct list_node l;
	list_init(&l);
	for (int i = 0; i < 10; i++) {
		struct item *x = calloc(1, sizeof(*x));
		cr_assert_not_null(x);
		x->value = i;
		list_push_back(&l, &x->link);
	}
	struct item *it;
	struct list_node *tmp;
	int n = 0;
	LIST_FOR_EACH_SAFE(it, tmp, link, &l)
	{
		cr_assert_eq(it->value, n++);
		list_remove(&it->link);
		free(it);
	}
	cr_assert_eq(n, 10);
	cr_assert(list_empty(&l));
}
