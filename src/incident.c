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

static const char *const outcome_names[OUTCOME_COUNT] = {
	"acting", "pending", "repeat", "held", "dry_run", "notify_only",
	"awaiting_approval", "resolved", "no_match", "coalesced", "no_recent_change",
};

const char *outcome_name(enum outcome o)
{
	return o < OUTCOME_COUNT ? outcome_names[o] : "unknown";
}

const char *const incident_state_names[INC_STATE_COUNT] = {
	"pending", "acting", "rolled_back", "action_failed", "dry_run", "held",
	"awaiting_approval", "resolved", "unknown", "effective", "ineffective", "coalesced",
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
	for (size_t i = 0; i < l->n; i++) {
		free((char *)l->items[i].name);
		free((char *)l->items[i].value);
	}
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

int owned_labels_copy(struct owned_labels *dst, const struct label *src, size_t n)
{
	dst->items = n ? calloc(n, sizeof(*dst->items)) : NULL;
	dst->n = 0;
	if (n && !dst->items)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char *name = strdup(src[i].name);
		char *value = malloc(src[i].value_len + 1);
		if (!name || !value) {
			free(name);
			free(value);
			owned_labels_release(dst);
			return -1;
		}
		memcpy(value, src[i].value, src[i].value_len);
		value[src[i].value_len] = '\0';
		dst->items[i] = (struct label){name, value, src[i].value_len};
		dst->n++;
	}
	return 0;
}

void incident_clear_actions(struct incident *inc)
{
	for (size_t i = 0; i < inc->n_actions; i++)
		free(inc->actions[i].output);
	free(inc->actions);
	inc->actions = NULL;
	inc->n_actions = 0;
	inc->next_action = 0;
}

void incident_clear_firing(struct incident *inc)
{
	free(inc->firing);
	inc->firing = NULL;
	inc->n_firing = 0;
}

void incident_free(struct incident *inc)
{
	timers_free_incident(inc);
	if (inc->retry)
		event_free(inc->retry);
	free(inc->approved_by);
	free(inc->generator_url);
	free(inc->external_url);
	json_decref(inc->ready);
	free(inc->rule_name);
	owned_labels_release(&inc->group);
	owned_labels_release(&inc->trigger_labels);
	owned_labels_release(&inc->trigger_annotations);
	free(inc->acknowledged_by);
	free(inc->target);
	free(inc->target_err);
	free(inc->keys);
	incident_clear_firing(inc);
	incident_clear_actions(inc);
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

int incident_add_key(struct incident *inc, uint64_t key, int episode)
{
	for (uint16_t i = 0; i < inc->n_keys; i++)
		if (inc->keys[i].key == key) {
			inc->keys[i].episode = episode;
			return 0;
		}
	if (inc->n_keys == inc->cap_keys && inc->cap_keys < EPISODE_KEYS_MAX) {
		uint16_t cap = inc->cap_keys ? (uint16_t)(inc->cap_keys * 2) : 2;
		if (cap > EPISODE_KEYS_MAX)
			cap = EPISODE_KEYS_MAX;
		struct episode_key *k = realloc(inc->keys, cap * sizeof(*k));
		if (!k)
			return -1;
		inc->keys = k;
		inc->cap_keys = cap;
	}
	if (inc->n_keys < inc->cap_keys) {
		inc->keys[inc->n_keys++] = (struct episode_key){key, episode};
		return 0;
	}
	/* full: the oldest goes (keys_head walks the ring) */
	inc->keys[inc->keys_head] = (struct episode_key){key, episode};
	inc->keys_head = (uint16_t)((inc->keys_head + 1) % inc->n_keys);
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
	HMAP_FOR_EACH_WITH_HASH (inc, by_id, hmap_hash_str(id), &e->by_id)
		if (strcmp(inc->id, id) == 0)
			return inc;
	return NULL;
}

void incident_init_links(struct incident *inc)
{
	list_init(&inc->link);
	list_init(&inc->queued);
}

int incident_link(struct engine *e, struct incident *inc)
{
	if (hmap_insert(&e->by_id, &inc->by_id, hmap_hash_str(inc->id)) < 0)
		return -1;
	list_push_front(&e->incidents, &inc->link);
	e->n_incidents++;
	return 0;
}

void incident_free_all(struct engine *e)
{
	struct incident *inc;
	struct list_node *tmp;
	LIST_FOR_EACH_SAFE (inc, tmp, link, &e->incidents) {
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
	uint64_t *p = realloc(inc->firing, (inc->n_firing + 1) * sizeof(*p));
	if (!p)
		return -1;
	inc->firing = p;
	p[inc->n_firing++] = incident_fp_key(fp);
	return 0;
}

void incident_remove_firing(struct incident *inc, const char *fp)
{
	uint64_t k = incident_fp_key(fp);
	for (size_t i = 0; i < inc->n_firing; i++) {
		if (inc->firing[i] == k) {
			inc->firing[i] = inc->firing[--inc->n_firing];
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

/* Record digest for key. 1 when it is new or differs, 0 when it is an exact
 * repeat, -1 on OOM. */
int seen_map_put(struct seen_map *m, uint64_t key, const unsigned char digest[16])
{
	struct seen_entry *x;
	HMAP_FOR_EACH_WITH_HASH (x, node, key, &m->entries)
		break; /* the key is the fingerprint's hash: one entry per key */
	if (x && memcmp(x->digest, digest, 16) == 0)
		return 0;
	if (!x) {
		if (!(x = malloc(sizeof(*x))))
			return -1;
		if (hmap_insert(&m->entries, &x->node, key) < 0) {
			free(x);
			return -1;
		}
	}
	memcpy(x->digest, digest, 16);
	return 1;
}

const char *owned_labels_get(const struct owned_labels *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->items[i].name, name) == 0)
			return l->items[i].value;
	return NULL;
}

struct incident *incident_new(struct engine *e, const struct rule *r, const char *id,
				     const struct label *group, size_t n, struct timestamp now)
{
	struct incident *inc = calloc(1, sizeof(*inc));
	if (!inc)
		return NULL;
	incident_init_links(inc);
	memcpy(inc->id, id, sizeof(inc->id));
	inc->engine = e;
	inc->rule_name = strdup(r->name);
	if (!inc->rule_name || owned_labels_copy(&inc->group, group, n) < 0) {
		incident_free(inc);
		return NULL;
	}
	inc->first_seen = now;
	inc->episode = 0;
	inc->state = INC_RESOLVED; /* no episode yet */
	if (incident_link(e, inc) < 0) {
		incident_free(inc);
		return NULL;
	}
	return inc;
}

int incident_set_trigger(struct incident *inc, const struct alert *a, const char *external_url)
{
	free(inc->generator_url);
	free(inc->external_url);
	inc->generator_url = strdup(a->generator_url ? a->generator_url : "");
	inc->external_url = strdup(external_url ? external_url : "");
	owned_labels_release(&inc->trigger_labels);
	owned_labels_release(&inc->trigger_annotations);
	if (owned_labels_copy(&inc->trigger_labels, a->labels.items, a->labels.n) < 0 ||
	    owned_labels_copy(&inc->trigger_annotations, a->annotations.items, a->annotations.n) < 0)
		return -1;
	return 0;
}

void seen_map_release(struct seen_map *m)
{
	struct hmap_node *n, *next;
	for (n = hmap_first(&m->entries); n; n = next) {
		next = hmap_next(&m->entries, n);
		hmap_remove(&m->entries, n);
		free(CONTAINER_OF(n, struct seen_entry, node));
	}
	hmap_release(&m->entries);
}
