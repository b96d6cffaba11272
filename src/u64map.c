/*
 * u64map: one array of slots, linear probing, backward-shift deletion
 * (include/rollbackd/u64map.h).
 *
 * Must never: leave a hole inside a probe chain (every entry is reachable
 * from its home slot without crossing an empty one), or let the array fill
 * past 3/4 (a probe for a missing key must meet an empty slot soon).
 */
#include "rollbackd/u64map.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

static size_t stride(const struct u64map *m)
{
	return sizeof(uint64_t) + m->vsize;
}

static unsigned char *slot(const struct u64map *m, size_t i)
{
	return m->slots + i * stride(m);
}

/* Keys are read and written with memcpy: a slot of 8 + 4 bytes leaves every
 * other key off an 8-byte boundary. */
static uint64_t key_at(const struct u64map *m, size_t i)
{
	uint64_t k;
	memcpy(&k, slot(m, i), sizeof(k));
	return k;
}

static size_t next(const struct u64map *m, size_t i)
{
	return i + 1 == m->cap ? 0 : i + 1;
}

size_t u64map_home(const struct u64map *m, uint64_t key)
{
	unsigned char h[crypto_shorthash_BYTES];
	uint64_t x;
	crypto_shorthash(h, (const unsigned char *)&key, sizeof(key), m->hkey);
	memcpy(&x, h, sizeof(x));
	return (size_t)(x % m->cap);
}

uint64_t u64map_slot_key(const struct u64map *m, size_t i)
{
	return key_at(m, i);
}

void u64map_init(struct u64map *m, size_t vsize)
{
	memset(m, 0, sizeof(*m));
	m->vsize = vsize;
}

void u64map_release(struct u64map *m)
{
	free(m->slots);
	size_t vsize = m->vsize;
	sodium_memzero(m, sizeof(*m));
	m->vsize = vsize;
}

/* The slot holding key, or the empty slot ending its probe. cap > 0. */
static size_t probe(const struct u64map *m, uint64_t key)
{
	size_t i = u64map_home(m, key);
	for (;;) {
		uint64_t k = key_at(m, i);
		if (k == key || k == 0)
			return i;
		i = next(m, i);
	}
}

/* Move every entry into a new array of cap slots (cap > 4/3 n). */
static int rebuild(struct u64map *m, size_t cap)
{
	unsigned char *slots = calloc(cap, stride(m));
	if (!slots)
		return -1;
	if (!m->slots)
		randombytes_buf(m->hkey, sizeof(m->hkey));
	struct u64map nm = *m;
	nm.slots = slots;
	nm.cap = cap;
	for (size_t i = 0; i < m->cap; i++) {
		uint64_t k = key_at(m, i);
		if (k)
			memcpy(slot(&nm, probe(&nm, k)), slot(m, i), stride(m));
	}
	free(m->slots);
	m->slots = slots;
	m->cap = cap;
	return 0;
}

void *u64map_find(const struct u64map *m, uint64_t key)
{
	if (!key || !m->n)
		return NULL;
	size_t i = probe(m, key);
	return key_at(m, i) ? slot(m, i) + sizeof(uint64_t) : NULL;
}

void *u64map_put(struct u64map *m, uint64_t key, bool *added)
{
	if (!key)
		return NULL;
	size_t i;
	if (m->cap && key_at(m, i = probe(m, key)) == key) {
		if (added)
			*added = false;
		return slot(m, i) + sizeof(uint64_t);
	}
	if ((m->n + 1) * 4 > m->cap * 3) {
		size_t cap = m->cap ? m->cap + m->cap / 2 : U64MAP_MIN_CAP;
		if (cap < m->cap || rebuild(m, cap) < 0)
			return NULL;
	}
	i = probe(m, key);
	unsigned char *s = slot(m, i);
	memcpy(s, &key, sizeof(key));
	memset(s + sizeof(key), 0, m->vsize);
	m->n++;
	if (added)
		*added = true;
	return s + sizeof(key);
}

bool u64map_del(struct u64map *m, uint64_t key)
{
	if (!key || !m->n)
		return false;
	size_t i = probe(m, key), cap = m->cap;
	if (!key_at(m, i))
		return false;
	/* The entry at j may fill the hole at i unless its home lies in (i, j]
	 * (cyclically): then moving it before its home would hide it. */
	for (size_t j = next(m, i);; j = next(m, j)) {
		uint64_t k = key_at(m, j);
		if (!k)
			break;
		size_t home = u64map_home(m, k);
		if ((j + cap - home) % cap >= (j + cap - i) % cap) {
			memcpy(slot(m, i), slot(m, j), stride(m));
			i = j;
		}
	}
	memset(slot(m, i), 0, sizeof(uint64_t));
	m->n--;
	if (cap > U64MAP_MIN_CAP && m->n * 8 < cap) {
		size_t want = m->n * 2 > U64MAP_MIN_CAP ? m->n * 2 : U64MAP_MIN_CAP;
		(void)rebuild(m, want); /* no memory: stay larger, still correct */
	}
	return true;
}

bool u64map_next(const struct u64map *m, size_t *pos, uint64_t *key, void **value)
{
	for (size_t i = *pos; i < m->cap; i++) {
		uint64_t k = key_at(m, i);
		if (k) {
			*pos = i + 1;
			*key = k;
			*value = slot(m, i) + sizeof(uint64_t);
			return true;
		}
	}
	*pos = m->cap;
	return false;
}
