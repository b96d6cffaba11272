/*
 * hmap: one intrusive hash map with chained buckets (the OVS hmap shape).
 * An element embeds a struct hmap_node; the caller computes the hash
 * (hmap_hash_str / hmap_hash_bytes, or a key that already is a hash) and
 * compares keys itself while walking HMAP_FOR_EACH_WITH_HASH, so one map
 * serves string ids, 64-bit keys and anything else.
 *
 * Must never: own or free elements, or compare keys (it only knows
 * hashes). Grows (doubling, at load factor 1) on insert; never shrinks.
 * Lock rules: none inside; the map is guarded by whatever guards its
 * owner.
 *
 *	struct incident { ...; struct hmap_node by_id; };
 *	hmap_insert(&m, &inc->by_id, hmap_hash_str(inc->id));
 *	HMAP_FOR_EACH_WITH_HASH (inc, by_id, hmap_hash_str(id), &m)
 *		if (strcmp(inc->id, id) == 0) break;
 *	(inc is NULL after the loop when nothing matched)
 */
#ifndef ROLLBACKD_HMAP_H
#define ROLLBACKD_HMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollbackd/list.h" /* CONTAINER_OF */

struct hmap_node {
	struct hmap_node *next; /* in its bucket */
	uint64_t hash;
};

struct hmap {
	struct hmap_node **buckets; /* mask + 1 of them; NULL while empty */
	size_t mask;
	size_t n;
};

#define HMAP_INIT                                                                                  \
	{                                                                                          \
		NULL, 0, 0                                                                         \
	}

void hmap_init(struct hmap *m);
/* Free the buckets (not the elements); m is empty and reusable after. */
void hmap_release(struct hmap *m);

/* Insert node with hash (a node must be in at most one map at a time;
 * equal keys are the caller's business). 0, or -1 on OOM: node is then
 * not inserted and m is unchanged. */
int hmap_insert(struct hmap *m, struct hmap_node *node, uint64_t hash);
/* Remove a node that is in m. */
void hmap_remove(struct hmap *m, struct hmap_node *node);

static inline size_t hmap_count(const struct hmap *m)
{
	return m->n;
}

/* The first node with hash (then hmap_next_with_hash), or NULL. */
struct hmap_node *hmap_first_with_hash(const struct hmap *m, uint64_t hash);
struct hmap_node *hmap_next_with_hash(const struct hmap_node *node);
/* Every node in no particular order (then hmap_next); NULL at the end.
 * Removing the current node is allowed if the next is fetched first. */
struct hmap_node *hmap_first(const struct hmap *m);
struct hmap_node *hmap_next(const struct hmap *m, const struct hmap_node *node);

/* FNV-1a 64 over a NUL-terminated string / over bytes. */
uint64_t hmap_hash_str(const char *s);
uint64_t hmap_hash_bytes(const void *p, size_t n);

#define HMAP_ENTRY_OR_NULL(node, type, member) ((node) ? CONTAINER_OF(node, type, member) : NULL)

/* Every element whose node has hash; obj is NULL after a full loop. */
#define HMAP_FOR_EACH_WITH_HASH(obj, member, hash, m)                                              \
	for ((obj) =                                                                               \
		 HMAP_ENTRY_OR_NULL(hmap_first_with_hash(m, hash), __typeof__(*(obj)), member);    \
	     (obj); (obj) = HMAP_ENTRY_OR_NULL(hmap_next_with_hash(&(obj)->member),                \
					       __typeof__(*(obj)), member))

/* Every element; obj must not be removed inside (collect, then remove). */
#define HMAP_FOR_EACH(obj, member, m)                                                              \
	for ((obj) = HMAP_ENTRY_OR_NULL(hmap_first(m), __typeof__(*(obj)), member); (obj);         \
	     (obj) = HMAP_ENTRY_OR_NULL(hmap_next(m, &(obj)->member), __typeof__(*(obj)), member))

#endif
