/*
 * incident: the engine's incident store (SPEC §7): incidents (rule +
 * group_by labels), their index by id, their firing fingerprints, label
 * copies, and the map of alerts already journaled.
 *
 * Must never: decide, journal, notify, or arm anything; it only keeps
 * state. Lock rules: every function runs under e->lock (engine_internal.h);
 * none takes a lock itself.
 */
#include "engine_internal.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "rollbackd/log.h"
#include "rollbackd/metrics.h"

static const char *const outcome_names[OUTCOME_COUNT] = {
    "acting",		"pending",	     "repeat",	 "held",     "dry_run",
    "notify_only",	"awaiting_approval", "resolved", "no_match", "coalesced",
    "no_recent_change", "invalid",
};

const char *outcome_name(enum outcome o)
{
	return o < OUTCOME_COUNT ? outcome_names[o] : "unknown";
}

const char *const incident_state_names[INC_STATE_COUNT] = {
    "pending",		 "acting",   "rolled_back", "action_failed", "dry_run",	    "held",
    "awaiting_approval", "resolved", "unknown",	    "effective",     "ineffective", "coalesced",
    "inconclusive",
};

int incident_state_parse(const char *s)
{
	for (int i = 0; i < INC_STATE_COUNT; i++)
		if (strcmp(incident_state_names[i], s) == 0)
			return i;
	return -1;
}

void owned_labels_release(struct owned_labels *l)
{
	free(l->items); /* the strings too (owned_labels_alloc) */
	l->items = NULL;
	l->n = 0;
}

char *owned_labels_alloc(struct owned_labels *dst, size_t n, size_t string_bytes)
{
	dst->items = NULL;
	dst->n = 0;
	if (!n)
		return NULL;
	if (string_bytes > SIZE_MAX / 2 || n > (SIZE_MAX / 2 - string_bytes) / sizeof(struct label))
		return NULL;
	dst->items = malloc(n * sizeof(*dst->items) + string_bytes);
	return dst->items ? (char *)(dst->items + n) : NULL;
}

/* An interned rule name: e->rule_names holds one per name in use. */
struct rule_name {
	struct hmap_node node; /* hash of name */
	size_t refs;
	struct engine *engine; /* whose e->rule_names (incident_engine) */
	char name[];
};

char *incident_rule_name(struct engine *e, const char *name)
{
	uint64_t h = hmap_hash_str(name);
	struct rule_name *r;
	HMAP_FOR_EACH_WITH_HASH(r, node, h, &e->rule_names)
	if (strcmp(r->name, name) == 0) {
		r->refs++;
		return r->name;
	}
	size_t len = strlen(name) + 1;
	if (!(r = malloc(sizeof(*r) + len)))
		return NULL;
	memcpy(r->name, name, len);
	r->refs = 1;
	r->engine = e;
	if (hmap_insert(&e->rule_names, &r->node, h) < 0) {
		free(r);
		return NULL;
	}
	return r->name;
}

static struct rule_name *rule_name_of(const struct incident *inc)
{
	return (struct rule_name *)(void *)(inc->rule_name - offsetof(struct rule_name, name));
}

struct engine *incident_engine(const struct incident *inc)
{
	return rule_name_of(inc)->engine;
}

/* Give inc's rule name back (under e->lock: e->rule_names is the engine's). */
static void rule_name_put(struct incident *inc)
{
	if (!inc->rule_name)
		return;
	struct rule_name *r = rule_name_of(inc);
	inc->rule_name = NULL;
	if (--r->refs == 0) {
		hmap_remove(&r->engine->rule_names, &r->node);
		free(r);
	}
}

struct incident_extra *incident_extra(struct incident *inc)
{
	if (!inc->x && (inc->x = calloc(1, sizeof(*inc->x)))) {
		inc->x->inc = inc;
		list_init(&inc->x->queued);
	}
	return inc->x;
}

int incident_set_hold(struct incident *inc, enum incident_hold h)
{
	if (h == HOLD_NONE && !inc->x)
		return 0;
	if (!incident_extra(inc))
		return -1;
	inc->x->hold = h;
	return 0;
}

void incident_clear_actions(struct incident *inc)
{
	struct incident_extra *x = inc->x;
	if (!x)
		return;
	for (size_t i = 0; i < x->n_actions; i++)
		free(x->actions[i].output);
	free(x->actions);
	x->actions = NULL;
	x->n_actions = 0;
	x->next_action = 0;
}

void incident_clear_episode(struct incident *inc)
{
	struct incident_extra *x = inc->x;
	if (!x)
		return;
	incident_clear_actions(inc);
	free(x->acknowledged_by);
	x->acknowledged_by = NULL;
	free(x->approved_by);
	x->approved_by = NULL;
	x->coalesced_into[0] = '\0';
}

void incident_clear_firing(struct incident *inc)
{
	free(inc->firing);
	inc->firing = NULL;
	inc->n_firing = 0;
	if (inc->x)
		inc->x->n_untracked = 0;
}

/* ---- packed labels (struct inc_labels) --------------------------------- */

static size_t leb_len(size_t v)
{
	size_t n = 1;
	for (; v >= 0x80; v >>= 7)
		n++;
	return n;
}

static char *leb_put(char *p, size_t v)
{
	for (; v >= 0x80; v >>= 7)
		*p++ = (char)(0x80 | (v & 0x7f));
	*p++ = (char)v;
	return p;
}

/* The label packed at p into *l (its strings stay there); where the next
 * one starts. */
static const char *unpack_label(const char *p, struct label *l)
{
	size_t v = 0;
	unsigned shift = 0;
	l->name = p;
	p += strlen(p) + 1;
	for (;;) {
		unsigned char c = (unsigned char)*p++;
		v |= (size_t)(c & 0x7f) << shift;
		if (!(c & 0x80))
			break;
		shift += 7;
	}
	l->value = p;
	l->value_len = v;
	return p + v + 1;
}

static size_t packed_bytes(const struct label_set *set)
{
	size_t b = 0;
	for (size_t i = 0; i < set->n; i++) {
		size_t v = set->items[i].value_len;
		b += strlen(set->items[i].name) + 1 + leb_len(v) + v + 1;
	}
	return b;
}

static char *pack_set(char *p, const struct label_set *set)
{
	for (size_t i = 0; i < set->n; i++) {
		const struct label *l = &set->items[i];
		size_t nl = strlen(l->name) + 1;
		memcpy(p, l->name, nl);
		p = leb_put(p + nl, l->value_len);
		memcpy(p, l->value, l->value_len);
		p += l->value_len;
		*p++ = '\0';
	}
	return p;
}

/* lab's generator_url, and its external_url in *ext; both NULL when the
 * URLs were not given. */
static const char *lab_urls(const struct inc_labels *lab, const char **ext)
{
	if (!lab->urls) {
		*ext = NULL;
		return NULL;
	}
	const char *gen = lab->data + lab->at[SET_COUNT];
	*ext = gen + strlen(gen) + 1;
	return gen;
}

/* The bytes of the URLs part of lab (0 when none). */
static size_t urls_len(const struct inc_labels *lab)
{
	const char *ext, *gen = lab_urls(lab, &ext);
	return gen ? (size_t)(ext - gen) + strlen(ext) + 1 : 0;
}

/* A new block for inc: each set from sets[k] (NULL: inc's), the URLs given
 * (urls false: inc's), the target given (set_target false: inc's; NULL:
 * none). The old block goes after the copies (what is given may point into
 * it). 0, or -1 on OOM (nothing changed). */
static int repack(struct incident *inc, const struct label_set *const sets[SET_COUNT], bool urls,
		  const char *generator_url, const char *external_url, bool set_target,
		  const char *target)
{
	const struct inc_labels *old = inc->lab;
	size_t len[SET_COUNT], n[SET_COUNT], total = 0;
	for (int k = 0; k < SET_COUNT; k++) {
		if (sets[k]) {
			len[k] = packed_bytes(sets[k]);
			n[k] = sets[k]->n;
		} else {
			len[k] = old ? old->at[k + 1] - old->at[k] : 0;
			n[k] = old ? old->n[k] : 0;
		}
		if (n[k] > UINT32_MAX)
			return -1;
		total += len[k];
	}
	if (!urls && old && old->urls) { /* kept */
		urls = true;
		generator_url = lab_urls(old, &external_url);
	}
	if (!set_target)
		target = incident_target(inc);
	const char *gen = urls && generator_url ? generator_url : "";
	const char *ext = urls && external_url ? external_url : "";
	size_t gl = strlen(gen) + 1, el = strlen(ext) + 1, tl = target ? strlen(target) + 1 : 0;
	total += (urls ? gl + el : 0) + tl;
	if (total > UINT32_MAX)
		return -1;
	struct inc_labels *lab = NULL;
	if (total || urls) {
		if (!(lab = malloc(sizeof(*lab) + total)))
			return -1;
		char *p = lab->data;
		for (int k = 0; k < SET_COUNT; k++) {
			lab->at[k] = (uint32_t)(p - lab->data);
			lab->n[k] = (uint32_t)n[k];
			if (sets[k])
				p = pack_set(p, sets[k]);
			else if (len[k])
				p = (char *)memcpy(p, old->data + old->at[k], len[k]) + len[k];
		}
		lab->at[SET_COUNT] = (uint32_t)(p - lab->data);
		lab->urls = urls;
		if (urls) {
			memcpy(p, gen, gl);
			memcpy(p + gl, ext, el);
			p += gl + el;
		}
		lab->target = (uint32_t)(p - lab->data);
		lab->has_target = target != NULL;
		if (target)
			memcpy(p, target, tl);
	}
	free(inc->lab);
	inc->lab = lab;
	return 0;
}

int incident_pack(struct incident *inc, const struct label_set *group,
		  const struct label_set *labels, const struct label_set *annotations, bool urls,
		  const char *generator_url, const char *external_url)
{
	const struct label_set *const sets[SET_COUNT] = {group, labels, annotations};
	return repack(inc, sets, urls, generator_url, external_url, false, NULL);
}

int incident_set_target(struct incident *inc, const char *target)
{
	if (inc->lab) /* gone first, in place: a failure below never leaves an old one */
		inc->lab->has_target = false;
	if (!target)
		return 0;
	const struct label_set *const keep[SET_COUNT] = {NULL, NULL, NULL};
	return repack(inc, keep, false, NULL, NULL, true, target);
}

/* Drop the trigger's labels and annotations in place (no allocation: a cap
 * must hold on OOM too); the URLs and the target stay. */
static void drop_trigger_labels(struct incident *inc)
{
	struct inc_labels *lab = inc->lab;
	if (!lab)
		return;
	size_t from = lab->at[SET_COUNT], to = lab->at[SET_LABELS];
	size_t tail = urls_len(lab) + (lab->has_target ? strlen(lab->data + lab->target) + 1 : 0);
	memmove(lab->data + to, lab->data + from, tail);
	lab->target -= (uint32_t)(from - to);
	lab->at[SET_ANNOTATIONS] = lab->at[SET_COUNT] = (uint32_t)to;
	lab->n[SET_LABELS] = lab->n[SET_ANNOTATIONS] = 0;
	/* what was dropped is given back (replay packs a trigger before its
	 * cap is known); when realloc fails the block stays as large */
	struct inc_labels *small = realloc(lab, sizeof(*lab) + to + tail);
	if (small)
		inc->lab = small;
}

int incident_sets(const struct incident *inc, struct inc_sets *out)
{
	memset(out->set, 0, sizeof(out->set));
	out->generator_url = out->external_url = NULL;
	out->heap = NULL;
	const struct inc_labels *lab = inc->lab;
	if (!lab)
		return 0;
	size_t total = (size_t)lab->n[0] + lab->n[1] + lab->n[2];
	struct label *items = out->buf;
	if (total > INC_SETS_BUF && !(items = out->heap = malloc(total * sizeof(*items))))
		return -1;
	for (int k = 0; k < SET_COUNT; k++) {
		const char *p = lab->data + lab->at[k];
		out->set[k] = (struct label_set){lab->n[k] ? items : NULL, lab->n[k]};
		for (uint32_t i = 0; i < lab->n[k]; i++)
			p = unpack_label(p, items++);
	}
	out->generator_url = lab_urls(lab, &out->external_url);
	return 0;
}

void inc_sets_release(struct inc_sets *s)
{
	free(s->heap);
	s->heap = NULL;
}

const char *incident_label(const struct incident *inc, enum inc_set s, const char *name)
{
	const struct inc_labels *lab = inc->lab;
	if (!lab)
		return NULL;
	const char *p = lab->data + lab->at[s];
	struct label l;
	for (uint32_t i = 0; i < lab->n[s]; i++) {
		p = unpack_label(p, &l);
		if (strcmp(l.name, name) == 0)
			return l.value;
	}
	return NULL;
}

size_t incident_n_labels(const struct incident *inc, enum inc_set s)
{
	return inc->lab ? inc->lab->n[s] : 0;
}

/* label_bytes of inc's set s, read in place. */
static size_t set_bytes(const struct incident *inc, enum inc_set s)
{
	const struct inc_labels *lab = inc->lab;
	size_t n = 0;
	if (!lab)
		return 0;
	const char *p = lab->data + lab->at[s];
	struct label l;
	for (uint32_t i = 0; i < lab->n[s]; i++) {
		p = unpack_label(p, &l);
		n += strlen(l.name) + l.value_len;
	}
	return n;
}

void incident_free(struct incident *inc)
{
	struct incident_extra *x = inc->x;
	if (x) {
		timers_free_incident(inc);
		free(x->verify);
		if (x->retry)
			event_free(x->retry);
		json_decref(x->ready);
		free(x->target_err);
		incident_clear_episode(inc);
	}
	rule_name_put(inc);
	free(inc->lab);
	free(inc->keys);
	incident_clear_firing(inc);
	free(x);
	free(inc);
}

uint64_t incident_episode_key(const char *fp, struct timestamp starts_at)
{
	uint64_t v[2] = {incident_fp_key(fp), (uint64_t)ts_ms(starts_at)};
	unsigned char h[8];
	crypto_generichash(h, sizeof(h), (const unsigned char *)v, sizeof(v), NULL, 0);
	uint64_t k;
	memcpy(&k, h, sizeof(k));
	return k ? k : 1;
}

int incident_key_episode(const struct incident *inc, uint64_t key)
{
	for (uint16_t i = 0; i < inc->n_keys; i++)
		if (inc->keys[i].key == key)
			return inc->keys[i].episode;
	return 0;
}

int incident_late_episode(const struct incident *inc, const char *fp, struct timestamp starts_at)
{
	int ep = incident_key_episode(inc, incident_episode_key(fp, starts_at));
	if (ep > 0)
		return ep;
	/* A firing that started no later than the latest firing of an evicted
	 * predecessor belongs to one of its episodes: a new episode's alerts
	 * start after the last one resolved. */
	if (inc->tomb_episode > 0 && ts_ms(starts_at) <= inc->tomb_starts_ms)
		return inc->tomb_episode;
	return 0;
}

int incident_add_key(struct incident *inc, const char *fp, struct timestamp starts_at, int episode)
{
	uint64_t key = incident_episode_key(fp, starts_at), fk = incident_fp_key(fp);
	if (ts_ms(starts_at) > inc->max_starts_ms)
		inc->max_starts_ms = ts_ms(starts_at);
	for (uint16_t i = 0; i < inc->n_keys; i++)
		if (inc->keys[i].key == key) {
			inc->keys[i].episode = episode;
			return 0;
		}
	if (inc->n_keys == inc->cap_keys && inc->cap_keys < EPISODE_KEYS_MAX) {
		/* most incidents only ever see one firing: room for one first */
		uint8_t cap = inc->cap_keys ? (uint8_t)(inc->cap_keys * 2) : 1;
		if (cap > EPISODE_KEYS_MAX)
			cap = EPISODE_KEYS_MAX;
		struct episode_key *k = realloc(inc->keys, cap * sizeof(*k));
		if (!k)
			return -1;
		inc->keys = k;
		inc->cap_keys = cap;
	}
	if (inc->n_keys < inc->cap_keys) {
		inc->keys[inc->n_keys++] = (struct episode_key){key, fk, episode};
		return 0;
	}
	/* full: the oldest goes (keys_head walks the ring) */
	inc->keys[inc->keys_head] = (struct episode_key){key, fk, episode};
	inc->keys_head = (uint8_t)((inc->keys_head + 1) % inc->n_keys);
	return 0;
}

const struct rule *engine_find_rule(const struct engine *e, const char *name)
{
	for (size_t i = 0; i < e->rules->n_rules; i++)
		if (strcmp(e->rules->rules[i].name, name) == 0)
			return &e->rules->rules[i];
	return NULL;
}

/* Incident id: "inc-" + hex of BLAKE2b-64 over the rule name and the group
 * labels, so the same group always maps to the same incident. */
void incident_id_for(const struct rule *r, const struct label *group, size_t n,
		     char out[INCIDENT_ID_LEN + 1])
{
	unsigned char h[8];
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, sizeof(h));
	crypto_generichash_update(&st, (const unsigned char *)r->name, strlen(r->name) + 1);
	for (size_t i = 0; i < n; i++) {
		crypto_generichash_update(&st, (const unsigned char *)group[i].name,
					  strlen(group[i].name) + 1);
		crypto_generichash_update(&st, (const unsigned char *)group[i].value,
					  group[i].value_len);
		crypto_generichash_update(&st, (const unsigned char *)"\xff", 1);
	}
	crypto_generichash_final(&st, h, sizeof(h));
	memcpy(out, "inc-", 4);
	sodium_bin2hex(out + 4, INCIDENT_ID_LEN + 1 - 4, h, sizeof(h));
}

struct incident *incident_find(struct engine *e, const char *id)
{
	struct incident *inc;
	HMAP_FOR_EACH_WITH_HASH(inc, by_id, hmap_hash_str(id), &e->by_id)
	if (strcmp(inc->id, id) == 0)
		return inc;
	return NULL;
}

void incident_init_links(struct incident *inc)
{
	list_init(&inc->link);
	list_init(&inc->lru);
}

/* ---- tombstones: id -> last episode of an evicted incident -------------- */

static uint64_t tomb_id(const char *id)
{
	unsigned char b[8];
	uint64_t k = 0;
	if (sodium_hex2bin(b, sizeof(b), id + 4, strlen(id + 4), NULL, NULL, NULL) == 0)
		memcpy(&k, b, sizeof(k));
	return k ? k : 1;
}

/* The table's size need not be a power of two (the ids are hashes: id %
 * cap spreads them), so that it can stop at the ring's size and a third:
 * a power of two would be up to 2.7 times the ring to stay under 3/4. */
static size_t tomb_next(const struct tomb_map *m, size_t j)
{
	return j + 1 == m->cap ? 0 : j + 1;
}

static struct tombstone *tomb_slot(const struct tomb_map *m, uint64_t id)
{
	size_t j = (size_t)(id % m->cap);
	while (m->slots[j].id && m->slots[j].id != id)
		j = tomb_next(m, j);
	return &m->slots[j];
}

static void tomb_del(struct tomb_map *m, uint64_t id)
{
	size_t cap = m->cap, i = (size_t)(id % cap);
	while (m->slots[i].id != id) {
		if (!m->slots[i].id)
			return;
		i = tomb_next(m, i);
	}
	for (size_t j = tomb_next(m, i); m->slots[j].id; j = tomb_next(m, j)) {
		size_t home = (size_t)(m->slots[j].id % cap);
		/* j's entry may move to the hole at i when its home is not in
		 * (i, j] (cyclic distances back from j) */
		if ((j + cap - home) % cap >= (j + cap - i) % cap) {
			m->slots[i] = m->slots[j];
			i = j;
		}
	}
	m->slots[i].id = 0;
	m->n--;
}

/* Keep at most max (the first call's max sizes the ring). The table is at
 * most 3/4 full: it doubles, up to ring_cap + ring_cap / 3 + 2 slots. */
static int tomb_put(struct tomb_map *m, uint64_t id, int episode, int64_t max_starts_ms, size_t max)
{
	if (!m->ring) {
		m->ring_cap = max ? max : 1;
		if (!(m->ring = calloc(m->ring_cap, sizeof(*m->ring))))
			return -1;
	}
	size_t most = m->ring_cap + m->ring_cap / 3 + 2;
	if ((m->n + 1) * 4 > m->cap * 3 && m->cap < most) {
		size_t cap = m->cap ? m->cap * 2 : 1024;
		if (cap > most)
			cap = most;
		struct tombstone *slots = calloc(cap, sizeof(*slots));
		if (!slots)
			return -1;
		struct tomb_map nm = {.slots = slots, .cap = cap};
		for (size_t i = 0; i < m->cap; i++)
			if (m->slots[i].id)
				*tomb_slot(&nm, m->slots[i].id) = m->slots[i];
		free(m->slots);
		m->slots = slots;
		m->cap = cap;
	}
	struct tombstone *t = tomb_slot(m, id);
	if (!t->id) { /* a new id: it takes the ring's next place */
		size_t at = (m->head + m->n) % m->ring_cap;
		if (m->n == m->ring_cap) { /* full: the oldest goes */
			tomb_del(m, m->ring[m->head]);
			at = m->head;
			m->head = (m->head + 1) % m->ring_cap;
			t = tomb_slot(m, id);
		}
		m->ring[at] = id;
		m->n++;
	}
	*t = (struct tombstone){id, max_starts_ms, episode};
	return 0;
}

static const struct tombstone *tomb_get(const struct tomb_map *m, uint64_t id)
{
	if (!m->cap)
		return NULL;
	const struct tombstone *t = tomb_slot(m, id);
	return t->id ? t : NULL;
}

int tomb_map_each(const struct tomb_map *m,
		  int (*fn)(uint64_t id, int episode, int64_t max_starts_ms, void *arg), void *arg)
{
	for (size_t i = 0; i < m->n; i++) {
		const struct tombstone *t = tomb_get(m, m->ring[(m->head + i) % m->ring_cap]);
		int rc = t ? fn(t->id, t->episode, t->max_starts_ms, arg) : 0;
		if (rc)
			return rc;
	}
	return 0;
}

bool tomb_map_has(const struct tomb_map *m, const char *incident_id)
{
	return tomb_get(m, tomb_id(incident_id)) != NULL;
}

int tomb_restore(struct engine *e, uint64_t id, int episode, int64_t max_starts_ms)
{
	if (!id || episode <= 0)
		return 0;
	return tomb_put(&e->tombs, id, episode, max_starts_ms, e->cfg->limits.max_incidents);
}

uint64_t tomb_key(const char *incident_id)
{
	return tomb_id(incident_id);
}

void tomb_map_release(struct tomb_map *m)
{
	free(m->slots);
	free(m->ring);
	memset(m, 0, sizeof(*m));
}

/* ---- eviction (SPEC §4 limits.max_incidents) ---------------------------- */

static void in_memory_gauge(struct engine *e)
{
	if (e->in_memory)
		metric_set(e->in_memory, (int64_t)e->n_incidents);
}

void incident_resolved(struct engine *e, struct incident *inc)
{
	if (list_linked(&inc->lru))
		list_remove(&inc->lru);
	list_push_back(&e->resolved, &inc->lru);
}

/* 1 evictable now, 0 not yet (cooling or holding its target), -1 never
 * from this list (no longer resolved, or busy). */
static int evictable(struct engine *e, const struct incident *inc, int64_t now_ms)
{
	if (inc->state != INC_RESOLVED || inc->running || incident_queued(inc))
		return -1;
	const struct rule *r = engine_find_rule(e, inc->rule_name);
	if (r && inc->has_acted && now_ms - ts_ms(inc->x->last_acted) < r->cooldown_ms)
		return 0;
	if (targets_holding(e, inc, now_ms))
		return 0;
	return 1;
}

static void evict(struct engine *e, struct incident *inc)
{
	list_remove(&inc->lru);
	hmap_remove(&e->by_id, &inc->by_id);
	list_remove(&inc->link);
	e->n_incidents--;
	e->n_evicted++;
	int64_t starts =
	    inc->max_starts_ms > inc->tomb_starts_ms ? inc->max_starts_ms : inc->tomb_starts_ms;
	if (inc->episode > 0 && tomb_put(&e->tombs, tomb_id(inc->id), inc->episode, starts,
					 e->cfg->limits.max_incidents) < 0)
		log_warn("out of memory keeping an evicted incident's episode", "incident", inc->id,
			 NULL);
	store_forget_episode(e->store, inc->id);
	for (uint16_t i = 0; i < inc->n_keys; i++)
		seen_map_del(&e->seen, inc->keys[i].fp);
	/* Its timers are cancelled and taken off e->timer_ops here (under the
	 * lock); their events, like retry, are only ever freed on the loop
	 * (timers.c): nothing else points at it (not running, not queued), so
	 * without events it goes now (replay evicts many). */
	bool has_events = timers_forget_incident(e, inc) || (inc->x && inc->x->retry);
	in_memory_gauge(e);
	if (has_events && e->base && e->reap) {
		list_push_back(&e->graveyard, &inc->link);
		event_active(e->reap, EV_READ, 0);
	} else {
		incident_free(inc);
	}
}

int incident_evict_one(struct engine *e, int64_t now_ms)
{
	/* Dropping an entry that reopened is paid for by the push that put it
	 * there; only the cooling ones moved to the back are bounded here. */
	for (int rotated = 0; rotated < EVICT_SCAN && !list_empty(&e->resolved);) {
		struct incident *inc = CONTAINER_OF(list_front(&e->resolved), struct incident, lru);
		switch (evictable(e, inc, now_ms)) {
		case 1:
			evict(e, inc);
			return 1;
		case 0: /* still cooling: the next one may not be */
			list_remove(&inc->lru);
			list_push_back(&e->resolved, &inc->lru);
			rotated++;
			break;
		default: /* reopened: it comes back when it resolves again */
			list_remove(&inc->lru);
			break;
		}
	}
	return 0;
}

static void reap_list(struct list_node *dead)
{
	struct list_node *n;
	while ((n = list_pop_front(dead)))
		incident_free(CONTAINER_OF(n, struct incident, link));
}

void incident_reap(struct engine *e)
{
	if (e->graveyard.next)
		reap_list(&e->graveyard);
}

void incident_reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct engine *e = arg;
	(void)fd;
	(void)what;
	struct list_node dead;
	list_init(&dead);
	pthread_mutex_lock(&e->lock);
	struct list_node *n;
	while ((n = list_pop_front(&e->graveyard))) {
		rule_name_put(CONTAINER_OF(n, struct incident, link)); /* the engine's */
		list_push_back(&dead, n);
	}
	pthread_mutex_unlock(&e->lock);
	reap_list(&dead); /* on the loop: its events may be freed here */
}

int incident_link(struct engine *e, struct incident *inc)
{
	size_t max = e->cfg ? e->cfg->limits.max_incidents : 0;
	if (!list_linked(&inc->lru))
		list_init(&inc->lru);
	if (max && e->n_incidents >= max) {
		/* Up to two go per new one, so that a lowered limit (a reload) or
		 * an earlier overflow comes back under it. */
		int evicted = 0;
		while (evicted < 2 && e->n_incidents >= max &&
		       incident_evict_one(e, inc->first_seen_ns / 1000000))
			evicted++;
		if (!evicted) {
			inc->over_limit = true;
			e->n_over_limit++;
			if (e->over_limit)
				metric_inc(e->over_limit);
		}
	}
	const struct tombstone *t = tomb_get(&e->tombs, tomb_id(inc->id));
	if (t && inc->episode < t->episode) {
		inc->episode = inc->tomb_episode = t->episode;
		inc->tomb_starts_ms = t->max_starts_ms;
	}
	if (hmap_insert(&e->by_id, &inc->by_id, hmap_hash_str(inc->id)) < 0)
		return -1;
	list_push_front(&e->incidents, &inc->link);
	e->n_incidents++;
	/* No episode yet: a candidate too (one that only saw a late firing of
	 * an evicted predecessor's episode stays so); an episode takes it out. */
	if (inc->state == INC_RESOLVED)
		list_push_back(&e->resolved, &inc->lru);
	in_memory_gauge(e);
	return 0;
}

void incident_free_all(struct engine *e)
{
	struct incident *inc;
	struct list_node *tmp;
	LIST_FOR_EACH_SAFE(inc, tmp, link, &e->incidents)
	{
		list_remove(&inc->link);
		hmap_remove(&e->by_id, &inc->by_id);
		incident_free(inc);
	}
	hmap_release(&e->by_id);
	e->n_incidents = 0;
}

/* The group labels of alert a for rule r: group_by names (a missing label
 * counts as ""), or every label when group_by is empty. */
int incident_group_labels(const struct rule *r, const struct alert *a, struct label **out,
			  size_t *n)
{
	if (r->n_group_by == 0) {
		*out = a->labels.items;
		*n = a->labels.n;
		return 0;
	}
	struct label *g = calloc(r->n_group_by, sizeof(*g));
	if (!g)
		return -1;
	for (size_t i = 0; i < r->n_group_by; i++) {
		const struct label *l = label_set_get(&a->labels, r->group_by[i]);
		g[i].name = r->group_by[i];
		g[i].value = l ? l->value : "";
		g[i].value_len = l ? l->value_len : 0;
	}
	*out = g;
	*n = r->n_group_by;
	return 1; /* caller frees */
}

bool incident_is_firing(const struct incident *inc, const char *fp)
{
	uint64_t k = incident_fp_key(fp);
	for (size_t i = 0; i < inc->n_firing; i++)
		if (inc->firing[i] == k)
			return true;
	return false;
}

int incident_add_firing(struct incident *inc, const char *fp)
{
	if (incident_is_firing(inc, fp))
		return 0;
	if (inc->n_firing >= FIRING_MAX) {
		if (!incident_extra(inc))
			return -1;
		inc->x->n_untracked++;
		return 1;
	}
	uint64_t *p = realloc(inc->firing, (inc->n_firing + 1) * sizeof(*p));
	if (!p)
		return -1;
	inc->firing = p;
	p[inc->n_firing++] = incident_fp_key(fp);
	return 0;
}

void incident_untracked_note(const struct incident *inc, char *reason, size_t rsz)
{
	size_t len = strlen(reason);
	if (inc->x && inc->x->n_untracked && len < rsz)
		snprintf(reason + len, rsz - len,
			 "; %zu alert(s) beyond the %d followed per incident are counted, not "
			 "followed (they do not keep it open)",
			 inc->x->n_untracked, FIRING_MAX);
}

void incident_remove_firing(struct incident *inc, const char *fp)
{
	uint64_t k = incident_fp_key(fp);
	for (size_t i = 0; i < inc->n_firing; i++) {
		if (inc->firing[i] == k) {
			inc->firing[i] = inc->firing[--inc->n_firing];
			if (!inc->n_firing) { /* most episodes: one alert, resolved */
				free(inc->firing);
				inc->firing = NULL;
			}
			return;
		}
	}
}

uint64_t incident_fp_key(const char *fp)
{
	uint64_t k;
	crypto_generichash((unsigned char *)&k, sizeof(k), (const unsigned char *)fp, strlen(fp),
			   NULL, 0);
	return k ? k : 1;
}

bool seen_map_holds(const struct seen_map *m, uint64_t key, const unsigned char digest[16])
{
	const unsigned char *d = u64map_find(&m->entries, key);
	return d && memcmp(d, digest, 16) == 0;
}

int seen_map_put(struct seen_map *m, uint64_t key, const unsigned char digest[16])
{
	bool added;
	unsigned char *d = u64map_put(&m->entries, key, &added);
	if (!d)
		return -1;
	if (!added && memcmp(d, digest, 16) == 0)
		return 0;
	memcpy(d, digest, 16);
	return 1;
}

void seen_map_del(struct seen_map *m, uint64_t key)
{
	u64map_del(&m->entries, key);
}

bool seen_map_next(const struct seen_map *m, size_t *pos, uint64_t *key,
		   const unsigned char **digest)
{
	void *d;
	if (!u64map_next(&m->entries, pos, key, &d))
		return false;
	*digest = d;
	return true;
}

struct incident *incident_new(struct engine *e, const struct rule *r, const char *id,
			      const struct label *group, size_t n, struct timestamp now)
{
	struct incident *inc = calloc(1, sizeof(*inc));
	if (!inc)
		return NULL;
	incident_init_links(inc);
	memcpy(inc->id, id, sizeof(inc->id));
	inc->rule_name = incident_rule_name(e, r->name);
	struct label_set g = {(struct label *)group, n};
	if (!inc->rule_name || incident_pack(inc, &g, NULL, NULL, false, NULL, NULL) < 0) {
		incident_free(inc);
		return NULL;
	}
	inc->first_seen_ns = ts_ns(now);
	/* what is journaled for this id from now on is this incident's */
	inc->born_after = store_journal_seq(e->store);
	inc->episode = 0;
	inc->state = INC_RESOLVED; /* no episode yet */
	if (incident_link(e, inc) < 0) {
		incident_free(inc);
		return NULL;
	}
	return inc;
}

/* Remember that bytes of trigger are over the cap (in inc->x: rare). */
static int set_trigger_over(struct incident *inc, size_t bytes)
{
	if (bytes <= TRIGGER_BYTES_MAX) {
		if (inc->x)
			inc->x->trigger_over = 0;
		return 0;
	}
	if (!incident_extra(inc))
		return -1;
	inc->x->trigger_over = bytes;
	return 0;
}

/* The bytes of a set's names and values (what TRIGGER_BYTES_MAX counts). */
static size_t label_bytes(const struct label_set *set)
{
	size_t n = 0;
	for (size_t i = 0; i < set->n; i++)
		n += strlen(set->items[i].name) + set->items[i].value_len;
	return n;
}

int incident_set_trigger(struct incident *inc, const struct alert *a, const char *external_url)
{
	size_t bytes = label_bytes(&a->labels) + label_bytes(&a->annotations);
	if (set_trigger_over(inc, bytes) < 0)
		return -1;
	const struct label_set none = {0};
	bool over = incident_trigger_over(inc) != 0;
	return incident_pack(inc, NULL, over ? &none : &a->labels, over ? &none : &a->annotations,
			     true, a->generator_url, external_url);
}

void incident_cap_trigger(struct incident *inc)
{
	size_t bytes = set_bytes(inc, SET_LABELS) + set_bytes(inc, SET_ANNOTATIONS);
	/* on OOM (no room to say so) the labels go all the same: never cut */
	if (set_trigger_over(inc, bytes) < 0 || incident_trigger_over(inc))
		drop_trigger_labels(inc);
}

void incident_trigger_reason(const struct incident *inc, char *out, size_t outsz)
{
	snprintf(out, outsz,
		 "the alert's labels and annotations are %zu bytes, over the %d kept per incident: "
		 "not acting on values that cannot be kept whole",
		 incident_trigger_over(inc), TRIGGER_BYTES_MAX);
}

void seen_map_init(struct seen_map *m)
{
	u64map_init(&m->entries, 16);
}

void seen_map_release(struct seen_map *m)
{
	u64map_release(&m->entries);
}
