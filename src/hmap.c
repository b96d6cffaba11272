/*
 * hmap: the intrusive hash map of include/rollbackd/hmap.h.
 *
 * Must never: touch an element beyond its hmap_node. No locks.
 */
#include "rollbackd/hmap.h"

#include <stdlib.h>

#define HMAP_MIN_BUCKETS 16

void hmap_init(struct hmap *m)
{
	m->buckets = NULL;
	m->mask = 0;
	m->n = 0;
}

void hmap_release(struct hmap *m)
{
	free(m->buckets);
	hmap_init(m);
}

static int hmap_grow(struct hmap *m)
{
	size_t cap = m->buckets ? (m->mask + 1) * 2 : HMAP_MIN_BUCKETS;
	struct hmap_node **b = calloc(cap, sizeof(*b));
	if (!b)
		return -1;
	for (size_t i = 0; m->buckets && i <= m->mask; i++) {
		struct hmap_node *n = m->buckets[i];
		while (n) {
			struct hmap_node *next = n->next;
			size_t j = (size_t)n->hash & (cap - 1);
			n->next = b[j];
			b[j] = n;
			n = next;
		}
	}
	free(m->buckets);
	m->buckets = b;
	m->mask = cap - 1;
	return 0;
}

int hmap_insert(struct hmap *m, struct hmap_node *node, uint64_t hash)
{
	if ((!m->buckets || m->n >= m->mask + 1) && hmap_grow(m) < 0)
		return -1;
	size_t i = (size_t)hash & m->mask;
	node->hash = hash;
	node->next = m->buckets[i];
	m->buckets[i] = node;
	m->n++;
	return 0;
}

void hmap_remove(struct hmap *m, struct hmap_node *node)
{
	struct hmap_node **p = &m->buckets[(size_t)node->hash & m->mask];
	while (*p != node)
		p = &(*p)->next;
	*p = node->next;
	node->next = NULL;
	m->n--;
}

struct hmap_node *hmap_first_with_hash(const struct hmap *m, uint64_t hash)
{
	if (!m->buckets)
		return NULL;
	for (struct hmap_node *n = m->buckets[(size_t)hash & m->mask]; n; n = n->next)
		if (n->hash == hash)
			return n;
	return NULL;
}

struct hmap_node *hmap_next_with_hash(const struct hmap_node *node)
{
	for (struct hmap_node *n = node->next; n; n = n->next)
		if (n->hash == node->hash)
			return n;
	return NULL;
}

static struct hmap_node *hmap_scan(const struct hmap *m, size_t from)
{
	for (size_t i = from; m->buckets && i <= m->mask; i++)
		if (m->buckets[i])
			return m->buckets[i];
	return NULL;
}

struct hmap_node *hmap_first(const struct hmap *m)
{
	return hmap_scan(m, 0);
}

struct hmap_node *hmap_next(const struct hmap *m, const struct hmap_node *node)
{
	if (node->next)
		return node->next;
	return hmap_scan(m, ((size_t)node->hash & m->mask) + 1);
}

uint64_t hmap_hash_bytes(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = 14695981039346656037ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 1099511628211ULL;
	return h;
}

uint64_t hmap_hash_str(const char *s)
{
	uint64_t h = 14695981039346656037ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}
