/*
 * replay_guard: answers to signed requests kept for the skew window
 * (include/rollbackd/replay_guard.h says what for).
 *
 * Entries live in a ring in arrival order (the oldest is pushed out first)
 * and are found through a chained hash index on the first 8 bytes of the
 * key; the full 32 bytes are compared. One mutex guards both.
 */
#include "rollbackd/replay_guard.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

struct entry {
	unsigned char key[REPLAY_GUARD_KEY_LEN];
	int64_t expires_ms;
	int status;
	char *body; /* owned; NULL when the slot is free */
	size_t len;
	size_t next; /* next entry in the same bucket, or NONE */
	bool used;
};

#define NONE ((size_t)-1)

struct replay_guard {
	pthread_mutex_t lock;
	struct entry *ring; /* max_entries slots */
	size_t max_entries, max_bytes;
	size_t head, n; /* oldest slot, entries held */
	size_t bytes;
	size_t *buckets; /* n_buckets heads, a power of two */
	size_t n_buckets;
};

struct replay_guard *replay_guard_new(size_t max_entries, size_t max_bytes)
{
	if (max_entries == 0 || max_bytes == 0)
		return NULL;
	struct replay_guard *g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	g->max_entries = max_entries;
	g->max_bytes = max_bytes;
	g->n_buckets = 16;
	while (g->n_buckets < max_entries && g->n_buckets < ((size_t)1 << 30))
		g->n_buckets <<= 1;
	g->ring = calloc(max_entries, sizeof(*g->ring));
	g->buckets = malloc(g->n_buckets * sizeof(*g->buckets));
	if (!g->ring || !g->buckets || pthread_mutex_init(&g->lock, NULL) != 0) {
		free(g->ring);
		free(g->buckets);
		free(g);
		return NULL;
	}
	for (size_t i = 0; i < g->n_buckets; i++)
		g->buckets[i] = NONE;
	return g;
}

void replay_guard_free(struct replay_guard *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->max_entries; i++)
		free(g->ring[i].body);
	free(g->ring);
	free(g->buckets);
	pthread_mutex_destroy(&g->lock);
	free(g);
}

void replay_guard_key(const char *scheme, const char *signature, const void *body, size_t len,
		      unsigned char key[REPLAY_GUARD_KEY_LEN])
{
	crypto_generichash_state st;
	static const unsigned char nul = 0;
	crypto_generichash_init(&st, NULL, 0, REPLAY_GUARD_KEY_LEN);
	crypto_generichash_update(&st, (const unsigned char *)scheme, strlen(scheme));
	crypto_generichash_update(&st, &nul, 1);
	crypto_generichash_update(&st, (const unsigned char *)signature, strlen(signature));
	crypto_generichash_update(&st, &nul, 1);
	if (len)
		crypto_generichash_update(&st, body, len);
	crypto_generichash_final(&st, key, REPLAY_GUARD_KEY_LEN);
}

static size_t bucket_of(const struct replay_guard *g, const unsigned char *key)
{
	uint64_t h;
	memcpy(&h, key, sizeof(h)); /* a BLAKE2b digest: already uniform */
	return (size_t)(h & (g->n_buckets - 1));
}

static size_t find(const struct replay_guard *g, const unsigned char *key)
{
	for (size_t i = g->buckets[bucket_of(g, key)]; i != NONE; i = g->ring[i].next)
		if (memcmp(g->ring[i].key, key, REPLAY_GUARD_KEY_LEN) == 0)
			return i;
	return NONE;
}

/* Push out the oldest entry. */
static void evict_oldest(struct replay_guard *g)
{
	struct entry *e = &g->ring[g->head];
	size_t *p = &g->buckets[bucket_of(g, e->key)];
	while (*p != NONE && *p != g->head)
		p = &g->ring[*p].next;
	if (*p == g->head)
		*p = e->next;
	g->bytes -= e->len;
	free(e->body);
	memset(e, 0, sizeof(*e));
	g->head = (g->head + 1) % g->max_entries;
	g->n--;
}

int replay_guard_get(struct replay_guard *g, const unsigned char key[REPLAY_GUARD_KEY_LEN],
		     int64_t now_ms, int *status, struct buf *out)
{
	int rc = 0;
	pthread_mutex_lock(&g->lock);
	size_t i = find(g, key);
	if (i != NONE && g->ring[i].expires_ms >= now_ms) {
		if (buf_add(out, g->ring[i].body, g->ring[i].len) < 0) {
			rc = -1;
		} else {
			*status = g->ring[i].status;
			rc = 1;
		}
	}
	pthread_mutex_unlock(&g->lock);
	return rc;
}

int replay_guard_put(struct replay_guard *g, const unsigned char key[REPLAY_GUARD_KEY_LEN],
		     int64_t expires_ms, int status, const char *body, size_t len)
{
	if (len > REPLAY_GUARD_ANSWER_MAX || len > g->max_bytes)
		return 1;
	char *copy = malloc(len ? len : 1); /* copied before the lock */
	if (!copy)
		return -1;
	if (len)
		memcpy(copy, body, len);
	pthread_mutex_lock(&g->lock);
	if (find(g, key) != NONE) {
		pthread_mutex_unlock(&g->lock);
		free(copy);
		return 0;
	}
	while (g->n > 0 && (g->n == g->max_entries || g->bytes + len > g->max_bytes))
		evict_oldest(g);
	size_t slot = (g->head + g->n) % g->max_entries;
	struct entry *e = &g->ring[slot];
	memcpy(e->key, key, REPLAY_GUARD_KEY_LEN);
	e->expires_ms = expires_ms;
	e->status = status;
	e->body = copy;
	e->len = len;
	e->used = true;
	size_t b = bucket_of(g, key);
	e->next = g->buckets[b];
	g->buckets[b] = slot;
	g->n++;
	g->bytes += len;
	pthread_mutex_unlock(&g->lock);
	return 0;
}

size_t replay_guard_size(struct replay_guard *g)
{
	pthread_mutex_lock(&g->lock);
	size_t n = g->n;
	pthread_mutex_unlock(&g->lock);
	return n;
}
