/*
 * u64map: an open-addressed map from a nonzero 64-bit key to a value of a
 * fixed size, for the tables kept per incident or per alert that must stay
 * small (the engine's seen map, the journal store's episode claims). One
 * array of slots, each the key (0 = empty) then the value: 8 + vsize bytes
 * a slot, no allocation per entry.
 *
 * Linear probing from a keyed hash of the key (SipHash, its random key
 * drawn when the array is first made), so keys someone can steer (hashes
 * of alert fingerprints) cannot be chosen to pile into one probe chain.
 * Deletion shifts the entries after the hole back (no tombstones). At most
 * 3/4 full: past that it grows by half (half full after); under 1/8 full it
 * shrinks to half full (never under U64MAP_MIN_CAP slots), so memory comes
 * back after a burst; u64map_release frees it all.
 *
 * Must never: hold key 0, allocate in find or iteration, fail in del (its
 * shrink allocates; when that fails the array stays as it is). A value
 * pointer is valid until the next put or del (both may move entries).
 * Lock rules: none inside; guarded by whatever guards its owner.
 *
 *	struct u64map m;
 *	u64map_init(&m, 16);
 *	unsigned char *v = u64map_put(&m, key, &added);	(NULL: OOM)
 *	memcpy(v, digest, 16);
 */
#ifndef ROLLBACKD_U64MAP_H
#define ROLLBACKD_U64MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define U64MAP_MIN_CAP 16 /* slots of the smallest array */

struct u64map {
	unsigned char *slots; /* cap slots of 8 + vsize bytes; NULL while empty */
	size_t cap, n;
	size_t vsize;		/* bytes of a value (set by u64map_init) */
	unsigned char hkey[16]; /* the hash's key, drawn with the first array */
};

/* An empty map of values of vsize bytes (no allocation). */
void u64map_init(struct u64map *m, size_t vsize);
/* Free the array; m is empty and reusable (same vsize) after. */
void u64map_release(struct u64map *m);

static inline size_t u64map_count(const struct u64map *m)
{
	return m->n;
}

/* key's value (vsize bytes, writable), or NULL when key is not held. */
void *u64map_find(const struct u64map *m, uint64_t key);
/* key's value, made (zeroed) when key was not held; *added (may be NULL)
 * says which. NULL for key 0 or on OOM (m is then unchanged). */
void *u64map_put(struct u64map *m, uint64_t key, bool *added);
/* Forget key; whether it was held. Never fails (a shrink that cannot
 * allocate keeps the larger array). */
bool u64map_del(struct u64map *m, uint64_t key);

/* Every entry, in no particular order: *pos starts at 0; true with the
 * next entry's key and value, false at the end. No put or del between the
 * calls of one walk. */
bool u64map_next(const struct u64map *m, size_t *pos, uint64_t *key, void **value);

/* For tests and checks: the slot where key's probe starts (cap > 0), and
 * the key in slot i < cap (0: empty). */
size_t u64map_home(const struct u64map *m, uint64_t key);
uint64_t u64map_slot_key(const struct u64map *m, size_t i);

#endif
