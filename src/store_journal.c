/*
 * store_journal: the state store (include/rollbackd/store.h) over today's
 * journal plus memory, for one process.
 *
 * Records go to the journal (journal_append / journal_wait); what the
 * store must answer quickly lives in memory and is rebuilt at start:
 * target claims (target -> holder, epoch, held_until) and pause from the
 * store's own records through observe; episode claims and rollback times
 * from the engine's replay, which claims and notes again what it reads;
 * the outbox from notify_* records when asked to track it. Timers are
 * memory only (the engine re-arms them from its incidents after replay).
 * Without a journal (test-rules, unit tests) records are accepted and
 * dropped, and count as durable at once.
 *
 * Must never: call back into its caller while holding its lock, block in
 * an operation other than replay and free, or keep a record's text past
 * the call. (About 800 lines: every operation of store.h in one place, so
 * that the PostgreSQL store can be written against one reference; split it
 * by operation group when the two show what they share.) Lock rules: one
 * mutex (s->lock) guards every field; it is
 * taken inside the caller's locks (the engine calls with e->lock held)
 * and the journal's lock is taken inside it (append under s->lock keeps
 * epochs in record order). journal_wait and event_base_once only queue.
 */
#include "rollbackd/store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <sodium.h>

#include "rollbackd/buf.h"
#include "rollbackd/hmap.h"
#include "rollbackd/journal.h"
#include "rollbackd/json.h"
#include "rollbackd/list.h"
#include "rollbackd/log.h"
#include "rollbackd/record.h"
#include "rollbackd/u64map.h"

#define ROLLBACK_KEEP_MS (3600 * 1000LL) /* count_rollbacks looks back this far */

/* The claim of an id the engine did not make (see engine_id_key). */
struct episode_claim {
	struct hmap_node node; /* hash: keyed_id_hash of the id */
	int episode;
	char incident[]; /* at most STORE_ID_MAX (id_fits), allocated to fit */
};

struct target_entry {
	struct hmap_node node;
	char target[STORE_TARGET_MAX + 1];
	struct store_target_claim claim;
};

struct timer_entry {
	struct hmap_node node;
	struct store_timer t;
};

struct outbox_item {
	struct hmap_node node;	/* by id */
	struct list_node order; /* oldest first */
	char *id, *incident, *channel, *event, *notice;
	size_t notice_len;
};

struct sj {
	struct store base;
	pthread_mutex_t lock;
	struct journal *journal; /* NULL: memory-only */
	char *state_dir;
	bool track_outbox;
	uint64_t mem_ticket; /* memory-only tickets */
	bool paused;
	/* Episode claims: an engine id ("inc-" + 16 lowercase hex) by its 64
	 * bits (12 bytes a slot, no allocation per claim); any other id, and
	 * "inc-0000000000000000" (key 0 is not a u64map key), by its string,
	 * so two ids never share a claim. */
	struct u64map episodes;	    /* engine id's 64 bits -> int episode */
	struct hmap other_episodes; /* of struct episode_claim */
	unsigned char id_key[16];   /* other_episodes' hash key */
	struct hmap targets;	    /* target -> target_entry */
	struct hmap timers;	    /* (incident, kind) -> timer_entry */
	struct hmap outbox_ids;	    /* id -> outbox_item */
	struct list_node outbox;
	int64_t *rollbacks; /* start times, ascending by insertion */
	size_t n_rollbacks, cap_rollbacks;
	struct record_toks toks; /* replay's token array */
};

static struct sj *sj_of(struct store *s)
{
	return (struct sj *)s;
}

static bool id_fits(const char *s)
{
	return s && strlen(s) <= STORE_ID_MAX;
}

static bool target_fits(const char *s)
{
	return s && strlen(s) <= STORE_TARGET_MAX;
}

/* ---- records ------------------------------------------------------------ */

/* Under s->lock. */
static int append_locked(struct sj *s, const char *type, const char *incident, const char *members,
			 size_t len, uint64_t *ticket)
{
	if (!s->journal) {
		s->mem_ticket++;
		if (ticket)
			*ticket = s->mem_ticket;
		return 0;
	}
	return journal_append(s->journal, type, incident, members ? members : "", len, ticket);
}

static int sj_append(struct store *st, const char *type, const char *incident, const char *members,
		     size_t len, uint64_t *ticket)
{
	struct sj *s = sj_of(st);
	pthread_mutex_lock(&s->lock);
	int rc = append_locked(s, type, incident, members, len, ticket);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

struct durable_now {
	store_durable_fn cb;
	void *arg;
};

static void durable_now_cb(evutil_socket_t fd, short what, void *arg)
{
	struct durable_now d = *(struct durable_now *)arg;
	free(arg);
	d.cb(true, d.arg);
}

static int sj_when_durable(struct store *st, uint64_t ticket, struct event_base *base,
			   store_durable_fn cb, void *arg)
{
	struct sj *s = sj_of(st);
	pthread_mutex_lock(&s->lock);
	struct journal *j = s->journal;
	pthread_mutex_unlock(&s->lock);
	if (j)
		return journal_wait(j, ticket, base, cb, arg);
	/* memory-only: accepted is all there is; still never on the caller's stack */
	struct durable_now *d = malloc(sizeof(*d));
	if (!d)
		return -1;
	*d = (struct durable_now){cb, arg};
	if (event_base_once(base, -1, EV_TIMEOUT, durable_now_cb, d, NULL) < 0) {
		free(d);
		return -1;
	}
	return 0;
}

static uint64_t sj_last_ticket(struct store *st)
{
	struct sj *s = sj_of(st);
	pthread_mutex_lock(&s->lock);
	uint64_t t = s->journal ? journal_last_ticket(s->journal) : s->mem_ticket;
	pthread_mutex_unlock(&s->lock);
	return t;
}

/* ---- observe: the store's own records ------------------------------------ */

static bool rec_str(const struct json_doc *d, const char *name, char *dst, size_t dsz)
{
	size_t t = json_obj_get(d, 0, name);
	if (!t || d->toks[t].kind != JSON_KIND_STRING || d->toks[t].size >= dsz)
		return false;
	json_str_decode(d, &d->toks[t], dst);
	return strlen(dst) == d->toks[t].size;
}

static bool rec_int(const struct json_doc *d, const char *name, int64_t *v)
{
	size_t t = json_obj_get(d, 0, name);
	if (!t || d->toks[t].kind != JSON_KIND_NUMBER || !(d->toks[t].flags & JSON_TOK_INT))
		return false;
	*v = json_int_value(d, &d->toks[t]);
	return true;
}

static struct target_entry *target_find(struct sj *s, const char *target)
{
	struct target_entry *t;
	HMAP_FOR_EACH_WITH_HASH(t, node, hmap_hash_str(target), &s->targets)
	if (strcmp(t->target, target) == 0)
		return t;
	return NULL;
}

static struct target_entry *target_get(struct sj *s, const char *target)
{
	struct target_entry *t = target_find(s, target);
	if (t)
		return t;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	snprintf(t->target, sizeof(t->target), "%s", target);
	if (hmap_insert(&s->targets, &t->node, hmap_hash_str(target)) < 0) {
		free(t);
		return NULL;
	}
	return t;
}

static struct outbox_item *outbox_find(struct sj *s, const char *id)
{
	struct outbox_item *o;
	HMAP_FOR_EACH_WITH_HASH(o, node, hmap_hash_str(id), &s->outbox_ids)
	if (strcmp(o->id, id) == 0)
		return o;
	return NULL;
}

static void outbox_item_free(struct outbox_item *o)
{
	free(o->id);
	free(o->incident);
	free(o->channel);
	free(o->event);
	free(o->notice);
	free(o);
}

static void outbox_drop(struct sj *s, struct outbox_item *o)
{
	hmap_remove(&s->outbox_ids, &o->node);
	list_remove(&o->order);
	outbox_item_free(o);
}

/* Under s->lock. 0, 1 when id is already pending, -1 on OOM. */
static int outbox_track(struct sj *s, const struct store_outbox_entry *e)
{
	if (outbox_find(s, e->id))
		return 1;
	struct outbox_item *o = calloc(1, sizeof(*o));
	if (!o)
		return -1;
	list_init(&o->order);
	o->id = strdup(e->id);
	o->incident = strdup(e->incident ? e->incident : "");
	o->channel = strdup(e->channel);
	o->event = strdup(e->event);
	o->notice = malloc(e->notice_len + 1);
	if (!o->id || !o->incident || !o->channel || !o->event || !o->notice ||
	    hmap_insert(&s->outbox_ids, &o->node, hmap_hash_str(e->id)) < 0) {
		outbox_item_free(o);
		return -1;
	}
	memcpy(o->notice, e->notice, e->notice_len);
	o->notice[e->notice_len] = '\0';
	o->notice_len = e->notice_len;
	list_push_back(&s->outbox, &o->order);
	return 0;
}

/* A parsed record of a type the store owns. Under s->lock. */
static int observe_doc(struct sj *s, enum record_type type, const struct json_doc *d)
{
	char target[STORE_TARGET_MAX + 1], holder[STORE_ID_MAX + 1], id[STORE_ID_MAX + 1];
	int64_t epoch, until;
	if (type == RECORD_PAUSE || type == RECORD_RESUME) {
		s->paused = type == RECORD_PAUSE;
		return 0;
	}
	if (type == RECORD_TARGET_CLAIMED) {
		if (!rec_str(d, "target", target, sizeof(target)) ||
		    !rec_str(d, "incident", holder, sizeof(holder)) ||
		    !rec_int(d, "epoch", &epoch) || !rec_int(d, "held_until_ms", &until) ||
		    epoch < 0)
			return 0;
		struct target_entry *t = target_get(s, target);
		if (!t)
			return -1;
		snprintf(t->claim.holder, sizeof(t->claim.holder), "%s", holder);
		t->claim.epoch = (uint64_t)epoch;
		t->claim.held_until_ms = until;
		return 0;
	}
	if (type == RECORD_TARGET_RELEASED) {
		struct target_entry *t;
		if (rec_str(d, "target", target, sizeof(target)) && rec_int(d, "epoch", &epoch) &&
		    (t = target_find(s, target)) && t->claim.epoch == (uint64_t)epoch)
			t->claim.holder[0] = '\0';
		return 0;
	}
	if (!s->track_outbox || !rec_str(d, "id", id, sizeof(id)))
		return 0;
	if (type == RECORD_NOTIFY_INTENT) {
		char channel[32], event[32], incident[STORE_ID_MAX + 1];
		size_t t = json_obj_get(d, 0, "notice");
		if (!rec_str(d, "channel", channel, sizeof(channel)) ||
		    !rec_str(d, "event", event, sizeof(event)) || !t ||
		    d->toks[t].kind != JSON_KIND_OBJECT)
			return 0;
		if (!rec_str(d, "incident", incident, sizeof(incident)))
			incident[0] = '\0';
		struct store_outbox_entry e = {
		    .id = id,
		    .incident = incident,
		    .channel = channel,
		    .event = event,
		    .notice = d->text + d->toks[t].start,
		    .notice_len = d->toks[t].end - d->toks[t].start,
		};
		return outbox_track(s, &e) < 0 ? -1 : 0;
	}
	if (type == RECORD_NOTIFY_SENT || type == RECORD_NOTIFY_FAILED) {
		struct outbox_item *o = outbox_find(s, id);
		if (o)
			outbox_drop(s, o);
	}
	return 0;
}

static int sj_observe(struct store *st, const struct record *rec)
{
	struct sj *s = sj_of(st);
	enum record_type type = rec->type;
	bool mine = type == RECORD_PAUSE || type == RECORD_RESUME ||
		    type == RECORD_TARGET_CLAIMED || type == RECORD_TARGET_RELEASED;
	bool outbox = type == RECORD_NOTIFY_INTENT || type == RECORD_NOTIFY_SENT ||
		      type == RECORD_NOTIFY_FAILED;
	if (!mine && !outbox)
		return 0;
	pthread_mutex_lock(&s->lock);
	int rc = 0;
	if (mine || s->track_outbox)
		rc = observe_doc(s, type, &rec->doc);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static int sj_replay(struct store *st, store_replay_fn fn, void *arg, struct error *err)
{
	struct sj *s = sj_of(st);
	struct journal_reader *r = NULL;
	struct journal_line line;
	bool torn = false;
	int rc;
	if (!s->state_dir)
		return 0; /* memory-only: nothing was kept */
	if (journal_reader_open(s->state_dir, &r, err) < 0)
		return -1;
	while ((rc = journal_reader_next(r, &line, &torn, err)) == 1) {
		if (torn)
			break; /* a write cut short is not a record */
		struct record rec;
		enum record_status ds = record_decode(line.text, line.len, &rec, &s->toks);
		rec.where = line.segment;
		rec.offset = line.offset;
		if (ds == RECORD_ENOMEM || sj_observe(st, &rec) < 0) {
			rc = error_set(err, "%s: out of memory at offset %llu", line.segment,
				       (unsigned long long)line.offset);
			break;
		}
		if (fn && fn(&rec, arg) < 0) {
			rc = error_set(err, "%s: replay stopped at offset %llu", line.segment,
				       (unsigned long long)line.offset);
			break;
		}
	}
	journal_reader_free(r);
	return rc < 0 ? -1 : 0;
}

/* ---- episodes and targets ------------------------------------------------ */

/* An id as the engine makes them ("inc-" + 16 lowercase hex, nonzero):
 * true with its 64 bits, one key per id and one id per key. */
static bool engine_id_key(const char *id, uint64_t *key)
{
	if (strncmp(id, "inc-", 4) != 0)
		return false;
	uint64_t k = 0;
	size_t i = 4;
	for (; id[i]; i++) {
		char c = id[i];
		if (i == 20 || !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
		k = k << 4 | (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
	}
	*key = k;
	return i == 20 && k != 0;
}

static uint64_t keyed_id_hash(const struct sj *s, const char *id)
{
	unsigned char h[crypto_shorthash_BYTES];
	uint64_t x;
	crypto_shorthash(h, (const unsigned char *)id, strlen(id), s->id_key);
	memcpy(&x, h, sizeof(x));
	return x;
}

/* Under s->lock. */
static struct episode_claim *other_claim(const struct sj *s, const char *id, uint64_t h)
{
	struct episode_claim *c;
	HMAP_FOR_EACH_WITH_HASH(c, node, h, &s->other_episodes)
	if (strcmp(c->incident, id) == 0)
		break;
	return c;
}

static void sj_forget_episode(struct store *st, const char *incident)
{
	struct sj *s = sj_of(st);
	uint64_t key;
	if (!id_fits(incident))
		return; /* never claimed */
	bool engine_id = engine_id_key(incident, &key);
	uint64_t h = engine_id ? 0 : keyed_id_hash(s, incident);
	pthread_mutex_lock(&s->lock);
	if (engine_id) {
		u64map_del(&s->episodes, key);
	} else {
		struct episode_claim *c = other_claim(s, incident, h);
		if (c) {
			hmap_remove(&s->other_episodes, &c->node);
			free(c);
		}
	}
	pthread_mutex_unlock(&s->lock);
}

static int sj_claim_episode(struct store *st, const char *incident, int episode)
{
	struct sj *s = sj_of(st);
	if (!id_fits(incident))
		return -1;
	uint64_t key;
	bool engine_id = engine_id_key(incident, &key);
	uint64_t h = engine_id ? 0 : keyed_id_hash(s, incident);
	int rc = 0;
	pthread_mutex_lock(&s->lock);
	if (engine_id) {
		bool added;
		unsigned char *v = u64map_put(&s->episodes, key, &added);
		int held = 0;
		if (v && !added)
			memcpy(&held, v, sizeof(held)); /* 4-aligned at best */
		if (!v)
			rc = -1;
		else if (!added && episode <= held)
			rc = 1;
		else
			memcpy(v, &episode, sizeof(episode));
	} else {
		struct episode_claim *c = other_claim(s, incident, h);
		if (c) {
			if (episode <= c->episode)
				rc = 1;
			else
				c->episode = episode;
		} else if (!(c = calloc(1, sizeof(*c) + strlen(incident) + 1))) {
			rc = -1;
		} else {
			memcpy(c->incident, incident, strlen(incident) + 1);
			c->episode = episode;
			if (hmap_insert(&s->other_episodes, &c->node, h) < 0) {
				free(c);
				rc = -1;
			}
		}
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static int sj_claim_target(struct store *st, const char *target, const char *incident,
			   int64_t now_ms, int64_t hold_ms, struct store_target_claim *out)
{
	struct sj *s = sj_of(st);
	if (!target_fits(target) || !id_fits(incident) || !target[0] || !incident[0] || hold_ms < 0)
		return -1;
	int rc = -1;
	pthread_mutex_lock(&s->lock);
	struct target_entry *t = target_get(s, target);
	if (!t)
		goto out;
	struct store_target_claim c = t->claim;
	bool mine = strcmp(c.holder, incident) == 0;
	if (c.holder[0] && !mine && c.held_until_ms > now_ms) {
		*out = c;
		rc = 1;
		goto out;
	}
	if (!mine) {
		snprintf(c.holder, sizeof(c.holder), "%s", incident);
		c.epoch++;
	}
	c.held_until_ms = now_ms + hold_ms;
	struct buf m = BUF_INIT;
	struct record_target_claimed v = {
	    .target = target, .epoch = c.epoch, .held_until_ms = c.held_until_ms};
	int bad = record_build_target_claimed(&m, &v);
	if (!bad && append_locked(s, "target_claimed", incident, m.data, m.len, NULL) == 0) {
		t->claim = c; /* granted only once its record is accepted */
		*out = c;
		rc = 0;
	}
	buf_release(&m);
out:
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static int sj_release_target(struct store *st, const char *target, uint64_t epoch)
{
	struct sj *s = sj_of(st);
	if (!target_fits(target))
		return 1;
	int rc = 1;
	pthread_mutex_lock(&s->lock);
	struct target_entry *t = target_find(s, target);
	if (t && t->claim.holder[0] && t->claim.epoch == epoch) {
		struct buf m = BUF_INIT;
		struct record_target_released v = {.target = target, .epoch = epoch};
		int bad = record_build_target_released(&m, &v);
		rc = -1;
		if (!bad && append_locked(s, "target_released", t->claim.holder, m.data, m.len,
					  NULL) == 0) {
			t->claim.holder[0] = '\0';
			rc = 0;
		}
		buf_release(&m);
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static size_t sj_targets_held(struct store *st, int64_t now_ms)
{
	struct sj *s = sj_of(st);
	struct target_entry *t;
	size_t n = 0;
	pthread_mutex_lock(&s->lock);
	HMAP_FOR_EACH(t, node, &s->targets)
	n += t->claim.holder[0] && t->claim.held_until_ms > now_ms;
	pthread_mutex_unlock(&s->lock);
	return n;
}

static int sj_target_claim(struct store *st, const char *target, struct store_target_claim *out)
{
	struct sj *s = sj_of(st);
	if (!target_fits(target))
		return 1;
	pthread_mutex_lock(&s->lock);
	struct target_entry *t = target_find(s, target);
	if (t)
		*out = t->claim;
	pthread_mutex_unlock(&s->lock);
	return t ? 0 : 1;
}

/* ---- limits and pause ---------------------------------------------------- */

static int sj_note_rollback(struct store *st, const char *incident, int64_t at_ms)
{
	struct sj *s = sj_of(st);
	int rc = 0;
	pthread_mutex_lock(&s->lock);
	/* forget what count_rollbacks can no longer ask about */
	size_t keep = 0;
	for (size_t i = 0; i < s->n_rollbacks; i++)
		if (at_ms - s->rollbacks[i] < ROLLBACK_KEEP_MS)
			s->rollbacks[keep++] = s->rollbacks[i];
	s->n_rollbacks = keep;
	if (s->n_rollbacks == s->cap_rollbacks) {
		size_t cap = s->cap_rollbacks ? s->cap_rollbacks * 2 : 16;
		int64_t *r = realloc(s->rollbacks, cap * sizeof(*r));
		if (!r) {
			rc = -1;
			goto out;
		}
		s->rollbacks = r;
		s->cap_rollbacks = cap;
	}
	s->rollbacks[s->n_rollbacks++] = at_ms;
out:
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static size_t sj_count_rollbacks(struct store *st, int64_t now_ms, int64_t window_ms)
{
	struct sj *s = sj_of(st);
	size_t n = 0;
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->n_rollbacks; i++)
		if (now_ms - s->rollbacks[i] < window_ms)
			n++;
	pthread_mutex_unlock(&s->lock);
	return n;
}

static int sj_set_paused(struct store *st, bool paused, const char *by)
{
	struct sj *s = sj_of(st);
	int rc = 0;
	pthread_mutex_lock(&s->lock);
	if (s->paused != paused) {
		struct buf m = BUF_INIT;
		if (record_build_pause(&m, &(struct record_pause){.by = by}) < 0 ||
		    append_locked(s, paused ? "pause" : "resume", "", m.data, m.len, NULL) < 0)
			rc = -1;
		buf_release(&m);
	}
	s->paused = paused;
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static bool sj_paused(struct store *st)
{
	struct sj *s = sj_of(st);
	pthread_mutex_lock(&s->lock);
	bool p = s->paused;
	pthread_mutex_unlock(&s->lock);
	return p;
}

/* ---- timers ---------------------------------------------------------------- */

static uint64_t timer_hash(const char *incident, enum store_timer_kind kind)
{
	return hmap_hash_str(incident) ^ ((uint64_t)kind * 0x9e3779b97f4a7c15ULL);
}

static struct timer_entry *timer_find(struct sj *s, const char *incident,
				      enum store_timer_kind kind)
{
	struct timer_entry *t;
	HMAP_FOR_EACH_WITH_HASH(t, node, timer_hash(incident, kind), &s->timers)
	if (t->t.kind == kind && strcmp(t->t.incident, incident) == 0)
		return t;
	return NULL;
}

static int sj_set_timer(struct store *st, const struct store_timer *tm)
{
	struct sj *s = sj_of(st);
	if (!id_fits(tm->incident) || tm->kind < 0 || tm->kind >= STORE_TIMER_KINDS)
		return -1;
	int rc = 0;
	pthread_mutex_lock(&s->lock);
	struct timer_entry *t = timer_find(s, tm->incident, tm->kind);
	if (t) {
		t->t = *tm;
	} else if (!(t = calloc(1, sizeof(*t)))) {
		rc = -1;
	} else {
		t->t = *tm;
		if (hmap_insert(&s->timers, &t->node, timer_hash(tm->incident, tm->kind)) < 0) {
			free(t);
			rc = -1;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static void sj_cancel_timer(struct store *st, const char *incident, enum store_timer_kind kind)
{
	struct sj *s = sj_of(st);
	if (!id_fits(incident))
		return;
	pthread_mutex_lock(&s->lock);
	struct timer_entry *t = timer_find(s, incident, kind);
	if (t) {
		hmap_remove(&s->timers, &t->node);
		free(t);
	}
	pthread_mutex_unlock(&s->lock);
}

static size_t sj_timers_due(struct store *st, int64_t now_ms, struct store_timer *out, size_t max)
{
	struct sj *s = sj_of(st);
	size_t n = 0;
	pthread_mutex_lock(&s->lock);
	struct timer_entry *t;
	HMAP_FOR_EACH(t, node, &s->timers)
	{
		if (t->t.due_ms > now_ms)
			continue;
		/* keep out[] sorted by due_ms, the earliest max of them */
		size_t i = n;
		if (n == max) {
			if (max == 0 || out[max - 1].due_ms <= t->t.due_ms)
				continue;
			i = --n;
		}
		while (i > 0 && out[i - 1].due_ms > t->t.due_ms) {
			out[i] = out[i - 1];
			i--;
		}
		out[i] = t->t;
		n++;
	}
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* ---- outbox ---------------------------------------------------------------- */

static bool outbox_id_ok(const char *id)
{
	if (!id || !id[0] || strlen(id) > STORE_ID_MAX)
		return false;
	for (; *id; id++)
		if (!((*id >= 'a' && *id <= 'z') || (*id >= 'A' && *id <= 'Z') ||
		      (*id >= '0' && *id <= '9') || *id == '-' || *id == '_'))
			return false;
	return true;
}

static int sj_outbox_put(struct store *st, const struct store_outbox_entry *e)
{
	struct sj *s = sj_of(st);
	if (!outbox_id_ok(e->id) || !e->channel || !e->event || !e->notice ||
	    (e->incident && !id_fits(e->incident)))
		return -1;
	int rc = -1;
	struct buf m = BUF_INIT;
	struct record_notify_intent v = {
	    .id = e->id,
	    .channel = e->channel,
	    .event = e->event,
	    .notice = e->notice,
	    .notice_len = e->notice_len,
	};
	int bad = record_build_notify_intent(&m, &v);
	pthread_mutex_lock(&s->lock);
	if (!bad && !outbox_find(s, e->id) && outbox_track(s, e) == 0) {
		if (append_locked(s, "notify_intent", e->incident ? e->incident : "", m.data, m.len,
				  NULL) == 0)
			rc = 0;
		else
			outbox_drop(s, outbox_find(s, e->id));
	}
	pthread_mutex_unlock(&s->lock);
	buf_release(&m);
	return rc;
}

static int sj_outbox_done(struct store *st, const char *id, bool delivered, const char *members,
			  size_t members_len)
{
	struct sj *s = sj_of(st);
	if (!outbox_id_ok(id))
		return 1;
	int rc = 1;
	pthread_mutex_lock(&s->lock);
	struct outbox_item *o = outbox_find(s, id);
	if (o) {
		struct buf m = BUF_INIT;
		rc = -1;
		if (record_build_notify_done(&m, id, members, members_len) == 0 &&
		    append_locked(s, delivered ? "notify_sent" : "notify_failed", o->incident,
				  m.data, m.len, NULL) == 0) {
			outbox_drop(s, o);
			rc = 0;
		}
		buf_release(&m);
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static int sj_outbox_pending(struct store *st, store_outbox_fn fn, void *arg)
{
	struct sj *s = sj_of(st);
	int rc = 0;
	pthread_mutex_lock(&s->lock);
	struct outbox_item *o;
	LIST_FOR_EACH(o, order, &s->outbox)
	{
		struct store_outbox_entry e = {o->id,	 o->incident, o->channel,
					       o->event, o->notice,   o->notice_len};
		if (fn(&e, arg) < 0) {
			rc = -1;
			break;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/* ---- lifetime -------------------------------------------------------------- */

/* Free every element of a map whose node is the first member at offset. */
#define FREE_ALL(map, type)                                                                        \
	do {                                                                                       \
		struct hmap_node *n_, *next_;                                                      \
		for (n_ = hmap_first(map); n_; n_ = next_) {                                       \
			next_ = hmap_next(map, n_);                                                \
			hmap_remove(map, n_);                                                      \
			free(CONTAINER_OF(n_, type, node));                                        \
		}                                                                                  \
		hmap_release(map);                                                                 \
	} while (0)

static void sj_free(struct store *st)
{
	struct sj *s = sj_of(st);
	u64map_release(&s->episodes);
	FREE_ALL(&s->other_episodes, struct episode_claim);
	sodium_memzero(s->id_key, sizeof(s->id_key));
	FREE_ALL(&s->targets, struct target_entry);
	FREE_ALL(&s->timers, struct timer_entry);
	struct outbox_item *o;
	struct list_node *tmp;
	LIST_FOR_EACH_SAFE(o, tmp, order, &s->outbox)
	outbox_drop(s, o);
	hmap_release(&s->outbox_ids);
	free(s->rollbacks);
	record_toks_release(&s->toks);
	free(s->state_dir);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static const struct store_ops journal_ops;

bool store_journal_snapshot_keep(struct store *st, const struct record *rec)
{
	if (!st || st->ops != &journal_ops)
		return false;
	struct sj *s = sj_of(st);
	const struct json_doc *d = &rec->doc;
	char key[STORE_TARGET_MAX + 1];
	int64_t epoch;
	bool keep = false;
	pthread_mutex_lock(&s->lock);
	switch (rec->type) {
	case RECORD_PAUSE:
	case RECORD_RESUME:
		keep = s->paused == (rec->type == RECORD_PAUSE);
		break;
	case RECORD_TARGET_CLAIMED:
	case RECORD_TARGET_RELEASED: {
		struct target_entry *t;
		keep = rec_str(d, "target", key, sizeof(key)) && rec_int(d, "epoch", &epoch) &&
		       (t = target_find(s, key)) && t->claim.epoch == (uint64_t)epoch;
		break;
	}
	case RECORD_NOTIFY_INTENT:
	case RECORD_NOTIFY_SENT:
	case RECORD_NOTIFY_FAILED:
		keep = rec_str(d, "id", key, sizeof(key)) && outbox_find(s, key);
		break;
	default:
		break;
	}
	pthread_mutex_unlock(&s->lock);
	return keep;
}

uint64_t store_journal_seq(struct store *st)
{
	if (!st || st->ops != &journal_ops)
		return 0;
	struct sj *s = sj_of(st);
	pthread_mutex_lock(&s->lock);
	uint64_t seq = s->journal ? journal_seq(s->journal) : 0;
	pthread_mutex_unlock(&s->lock);
	return seq;
}

int store_journal_each_rollback(struct store *st, int (*fn)(int64_t at_ms, void *arg), void *arg)
{
	if (!st || st->ops != &journal_ops)
		return 0;
	struct sj *s = sj_of(st);
	int rc = 0;
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->n_rollbacks && rc == 0; i++)
		rc = fn(s->rollbacks[i], arg);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static const struct store_ops journal_ops = {
    .name = "journal",
    .append = sj_append,
    .when_durable = sj_when_durable,
    .last_ticket = sj_last_ticket,
    .replay = sj_replay,
    .observe = sj_observe,
    .claim_episode = sj_claim_episode,
    .forget_episode = sj_forget_episode,
    .claim_target = sj_claim_target,
    .release_target = sj_release_target,
    .targets_held = sj_targets_held,
    .target_claim = sj_target_claim,
    .note_rollback = sj_note_rollback,
    .count_rollbacks = sj_count_rollbacks,
    .set_paused = sj_set_paused,
    .paused = sj_paused,
    .set_timer = sj_set_timer,
    .cancel_timer = sj_cancel_timer,
    .timers_due = sj_timers_due,
    .outbox_put = sj_outbox_put,
    .outbox_done = sj_outbox_done,
    .outbox_pending = sj_outbox_pending,
    .free = sj_free,
};

struct store *store_journal_new(const struct store_journal_options *opt)
{
	struct sj *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->base.ops = &journal_ops;
	pthread_mutex_init(&s->lock, NULL);
	s->journal = opt ? opt->journal : NULL;
	s->track_outbox = opt && opt->outbox;
	u64map_init(&s->episodes, sizeof(int));
	hmap_init(&s->other_episodes);
	randombytes_buf(s->id_key, sizeof(s->id_key));
	hmap_init(&s->targets);
	hmap_init(&s->timers);
	hmap_init(&s->outbox_ids);
	list_init(&s->outbox);
	if (opt && opt->state_dir && !(s->state_dir = strdup(opt->state_dir))) {
		sj_free(&s->base);
		return NULL;
	}
	return &s->base;
}

void store_journal_attach(struct store *st, struct journal *j)
{
	if (st->ops != &journal_ops)
		return;
	struct sj *s = sj_of(st);
	pthread_mutex_lock(&s->lock);
	s->journal = j;
	pthread_mutex_unlock(&s->lock);
}
