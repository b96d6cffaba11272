/*
 * msgmap: see msgmap.h. A chained hash table (FNV-1a) plus a list in the
 * order entries were last set, for eviction. Never: grow past max.
 */
#include "rollbackd/msgmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MSGMAP_BUCKETS 1024

struct item {
	struct item *hnext;	    /* bucket chain */
	struct item *older, *newer; /* eviction order */
	char *value;
	char key[]; /* NUL-terminated */
};

struct msgmap {
	struct item *buckets[MSGMAP_BUCKETS];
	struct item *oldest, *newest;
	size_t n, max;
};

static uint32_t hash_str(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static struct item **slot(struct msgmap *m, const char *key)
{
	struct item **p = &m->buckets[hash_str(key) % MSGMAP_BUCKETS];
	while (*p && strcmp((*p)->key, key) != 0)
		p = &(*p)->hnext;
	return p;
}

static void unlink_order(struct msgmap *m, struct item *t)
{
	if (t->older)
		t->older->newer = t->newer;
	else
		m->oldest = t->newer;
	if (t->newer)
		t->newer->older = t->older;
	else
		m->newest = t->older;
	t->older = t->newer = NULL;
}

struct msgmap *msgmap_new(size_t max)
{
	struct msgmap *m = calloc(1, sizeof(*m));
	if (m)
		m->max = max ? max : 1;
	return m;
}

void msgmap_forget(struct msgmap *m, const char *key)
{
	struct item **p = slot(m, key), *t = *p;
	if (!t)
		return;
	*p = t->hnext;
	unlink_order(m, t);
	m->n--;
	free(t->value);
	free(t);
}

void msgmap_free(struct msgmap *m)
{
	while (m && m->oldest)
		msgmap_forget(m, m->oldest->key);
	free(m);
}

const char *msgmap_get(struct msgmap *m, const char *key)
{
	struct item *t = *slot(m, key);
	return t ? t->value : NULL;
}

int msgmap_set(struct msgmap *m, const char *key, const char *value)
{
	struct item **p = slot(m, key), *t = *p;
	char *v = strdup(value);

	if (!v)
		return -1;
	if (!t) {
		size_t len = strlen(key);
		t = calloc(1, sizeof(*t) + len + 1);
		if (!t) {
			free(v);
			return -1;
		}
		memcpy(t->key, key, len + 1);
		*p = t;
		m->n++;
	} else {
		unlink_order(m, t);
		free(t->value);
	}
	t->value = v;
	t->older = m->newest;
	if (m->newest)
		m->newest->newer = t;
	else
		m->oldest = t;
	m->newest = t;
	if (m->n > m->max)
		msgmap_forget(m, m->oldest->key);
	return 0;
}

size_t msgmap_count(const struct msgmap *m)
{
	return m ? m->n : 0;
}
