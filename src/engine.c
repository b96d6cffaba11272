/*
 * engine: rules -> incidents -> decisions -> actions.
 *
 * Safety first: an incident acts at most once per firing episode; repeats
 * change nothing; resolved ends the episode; cooldown, the hourly cap,
 * pause (API or PAUSED file) and dry-run hold instead of acting. Decisions
 * are taken under one mutex and are cheap; actions run on the event base's
 * thread, one step at a time, through proc (exec) and httpc (http), so the
 * loop never blocks. A template that names something the alert lacks fails
 * the action before anything runs.
 */
#include "rollbackd/engine.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <event2/event.h>
#include <jansson.h>
#include <sodium.h>

#include "rollbackd/changes.h"
#include "rollbackd/httpc.h"
#include "rollbackd/journal.h"
#include "rollbackd/json.h"
#include "rollbackd/log.h"
#include "rollbackd/metrics.h"
#include "rollbackd/notify.h"
#include "rollbackd/proc.h"
#include "rollbackd/template.h"

#define INCIDENT_ID_LEN 20     /* "inc-" + 16 hex */
#define HOURLY_WINDOW_MS (3600 * 1000LL)
#define MAX_OUTPUT 65536
#define KILL_GRACE_MS 5000

static const char *const outcome_names[OUTCOME_COUNT] = {
	"acting", "pending", "repeat", "held", "dry_run", "notify_only",
	"awaiting_approval", "resolved", "no_match", "no_recent_change",
};

const char *outcome_name(enum outcome o)
{
	return o < OUTCOME_COUNT ? outcome_names[o] : "unknown";
}

enum incident_state {
	INC_PENDING,
	INC_ACTING,
	INC_ROLLED_BACK,
	INC_ACTION_FAILED,
	INC_DRY_RUN,
	INC_HELD,
	INC_AWAITING_APPROVAL,
	INC_RESOLVED,
	INC_UNKNOWN, /* an action was cut off by a crash: never re-run */
	INC_EFFECTIVE,   /* resolved within verify.within after the rollback */
	INC_INEFFECTIVE, /* still firing when verify.within ended */
	INC_STATE_COUNT
};

static const char *const state_names[INC_STATE_COUNT] = {
	"pending", "acting", "rolled_back", "action_failed", "dry_run", "held",
	"awaiting_approval", "resolved", "unknown", "effective", "ineffective",
};

static int state_parse(const char *s)
{
	for (int i = 0; i < INC_STATE_COUNT; i++)
		if (strcmp(state_names[i], s) == 0)
			return i;
	return -1;
}

/* A private copy of a label set (names and values owned). */
struct owned_labels {
	struct label *items;
	size_t n;
};

struct action_record {
	enum action_type type;
	struct timestamp started, finished;
	bool begun;         /* action_started is journaled */
	bool done;
	const char *result; /* static: "ok", "failed", "timeout", "error" */
	int exit_code;      /* exec; -1 when killed or not run */
	int status_code;    /* http; 0 when none */
	char *output;       /* captured output / response body / error text */
};

struct incident {
	char id[INCIDENT_ID_LEN + 1];
	char *rule_name;
	struct owned_labels group;    /* the group_by labels */
	struct owned_labels trigger_labels;      /* the alert that decided */
	struct owned_labels trigger_annotations;
	enum incident_state state;
	int episode;
	bool decided;                 /* this episode has been decided */
	struct timestamp first_seen, last_seen, episode_start;
	struct timestamp last_acted;
	bool has_acted;
	char *acknowledged_by;
	struct timestamp acknowledged_at;
	char *approved_by;
	struct timestamp approved_at;
	char *generator_url, *external_url; /* of the triggering alert */
	uint64_t *firing;             /* fp_key of the alerts firing in this episode */
	size_t n_firing;
	struct event *timer;          /* firing_for */
	struct event *retry;          /* action_started waits for a failing journal */
	struct event *approve_timer;  /* approve_timeout */
	struct event *verify_timer;   /* verify.within */
	json_t *ready;                /* the expanded action waiting for its record */
	struct action_record *actions;
	size_t n_actions;
	size_t next_action;
	bool queued;
	bool running;                 /* actions queued or in progress */
	struct incident *next;        /* creation order list */
	struct engine *engine;
};

/* Which alerts were journaled, and as what: fingerprint hash -> digest of
 * the alert's content, so an exact repeat is only counted. */
struct seen_entry {
	uint64_t key; /* 0 = empty */
	unsigned char digest[16];
};

struct seen_map {
	struct seen_entry *slots;
	size_t cap, n;
};

struct engine {
	pthread_mutex_t lock;
	const struct config *cfg;
	const struct ruleset *rules;
	struct event_base *base;
	bool plan_only;
	bool paused;
	struct incident *incidents;   /* newest first */
	size_t n_incidents;
	struct incident **index;      /* by id, index_cap slots (a power of two) */
	size_t index_cap;
	size_t n_open;                /* incidents not in INC_RESOLVED */
	int64_t *acted_ms;            /* ring of action start times (hourly cap) */
	size_t n_acted;
	struct incident **queue;      /* waiting for an action slot */
	size_t n_queue, alloc_queue;
	int running;
	struct event *kick;           /* activated to start queued work */
	struct httpc *http;
	struct metric_family *decisions_total;
	struct metric_child **decision_children; /* (n_rules + 1) x OUTCOME_COUNT */
	struct metric_family *actions_total;
	struct metric_child *action_duration;
	struct metric_child *incidents_open;
	struct metric_child *paused_gauge;
	struct journal *journal;      /* NULL: nothing is journaled (test-rules) */
	struct notify *notify;        /* NULL: nobody is told */
	struct seen_map seen;         /* fingerprint -> digest of what was journaled */
	struct json_tok *rtoks;       /* replay's token array */
	size_t rtoks_cap;
	struct changes *changes;      /* POST /v1/changes, replayed (changes.h) */
};

static void kick_cb(evutil_socket_t fd, short what, void *arg);

struct engine *engine_new(const struct engine_options *opt, const struct ruleset *rules)
{
	static const char *const dlabels[] = {"rule", "outcome", NULL};
	static const char *const alabels[] = {"rule", "type", "result", NULL};
	static const double bounds[] = {0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300};
	struct engine *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	pthread_mutex_init(&e->lock, NULL);
	e->cfg = opt->cfg;
	e->rules = rules;
	e->base = opt->base;
	e->plan_only = opt->plan_only;
	e->acted_ms = calloc((size_t)(opt->cfg->limits.max_rollbacks_per_hour + 1), sizeof(int64_t));
	e->decision_children = calloc((rules->n_rules + 1) * OUTCOME_COUNT,
				      sizeof(*e->decision_children));
	e->changes = changes_new();
	if (!e->acted_ms || !e->decision_children || !e->changes)
		goto fail;
	if (e->base) {
		e->kick = event_new(e->base, -1, 0, kick_cb, e);
		if (!e->kick)
			goto fail;
	}
	e->decisions_total = metrics_register(METRIC_COUNTER, "decisions_total",
					      "Decisions by rule and outcome.", dlabels, NULL, 0);
	e->actions_total = metrics_register(METRIC_COUNTER, "actions_total",
					    "Actions run by rule, type and result.", alabels,
					    NULL, 0);
	struct metric_family *dur = metrics_register(
		METRIC_HISTOGRAM, "action_duration_seconds", "Time an action took.", NULL, bounds,
		sizeof(bounds) / sizeof(bounds[0]));
	struct metric_family *open = metrics_register(
		METRIC_GAUGE, "incidents_open", "Incidents not resolved.", NULL, NULL, 0);
	struct metric_family *paused = metrics_register(
		METRIC_GAUGE, "paused", "1 when automatic actions are paused.", NULL, NULL, 0);
	if (!e->decisions_total || !e->actions_total || !dur || !open || !paused)
		goto fail;
	e->action_duration = metrics_child(dur);
	e->incidents_open = metrics_child(open);
	e->paused_gauge = metrics_child(paused);
	return e;
fail:
	engine_free(e);
	return NULL;
}

static void labels_free(struct owned_labels *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free((char *)l->items[i].name);
		free((char *)l->items[i].value);
	}
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

static int labels_copy(struct owned_labels *dst, const struct label *src, size_t n)
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
			labels_free(dst);
			return -1;
		}
		memcpy(value, src[i].value, src[i].value_len);
		value[src[i].value_len] = '\0';
		dst->items[i] = (struct label){name, value, src[i].value_len};
		dst->n++;
	}
	return 0;
}

static void incident_clear_actions(struct incident *inc)
{
	for (size_t i = 0; i < inc->n_actions; i++)
		free(inc->actions[i].output);
	free(inc->actions);
	inc->actions = NULL;
	inc->n_actions = 0;
	inc->next_action = 0;
}

static void incident_clear_firing(struct incident *inc)
{
	free(inc->firing);
	inc->firing = NULL;
	inc->n_firing = 0;
}

static void incident_free(struct incident *inc)
{
	if (inc->timer)
		event_free(inc->timer);
	if (inc->retry)
		event_free(inc->retry);
	if (inc->approve_timer)
		event_free(inc->approve_timer);
	if (inc->verify_timer)
		event_free(inc->verify_timer);
	free(inc->approved_by);
	free(inc->generator_url);
	free(inc->external_url);
	json_decref(inc->ready);
	free(inc->rule_name);
	labels_free(&inc->group);
	labels_free(&inc->trigger_labels);
	labels_free(&inc->trigger_annotations);
	free(inc->acknowledged_by);
	incident_clear_firing(inc);
	incident_clear_actions(inc);
	free(inc);
}

void engine_free(struct engine *e)
{
	if (!e)
		return;
	if (e->http)
		httpc_free(e->http);
	struct incident *inc = e->incidents;
	while (inc) {
		struct incident *next = inc->next;
		incident_free(inc);
		inc = next;
	}
	if (e->kick)
		event_free(e->kick);
	free(e->queue);
	free(e->acted_ms);
	free(e->decision_children);
	free(e->seen.slots);
	free(e->rtoks);
	free(e->index);
	changes_free(e->changes);
	pthread_mutex_destroy(&e->lock);
	free(e);
}

static const struct rule *find_rule(const struct engine *e, const char *name)
{
	for (size_t i = 0; i < e->rules->n_rules; i++)
		if (strcmp(e->rules->rules[i].name, name) == 0)
			return &e->rules->rules[i];
	return NULL;
}

/* Incident id: "inc-" + hex of BLAKE2b-64 over the rule name and the group
 * labels, so the same group always maps to the same incident. */
static void incident_id(const struct rule *r, const struct label *group, size_t n,
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

/* The index over incidents: open addressing on the id's hash (the id
 * already is a hash, so its hex digits are the slot). */
static size_t id_slot(const char *id, size_t cap)
{
	uint64_t h = 1469598103934665603ULL;
	for (const char *p = id; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return (size_t)(h & (cap - 1));
}

static struct incident *find_incident(struct engine *e, const char *id)
{
	if (!e->index_cap)
		return NULL;
	for (size_t i = id_slot(id, e->index_cap);; i = (i + 1) & (e->index_cap - 1)) {
		struct incident *inc = e->index[i];
		if (!inc || strcmp(inc->id, id) == 0)
			return inc;
	}
}

static int index_add(struct engine *e, struct incident *inc)
{
	if ((e->n_incidents + 1) * 2 > e->index_cap) {
		size_t cap = e->index_cap ? e->index_cap * 2 : 256;
		struct incident **idx = calloc(cap, sizeof(*idx));
		if (!idx)
			return -1;
		for (struct incident *x = e->incidents; x; x = x->next) {
			size_t i = id_slot(x->id, cap);
			while (idx[i])
				i = (i + 1) & (cap - 1);
			idx[i] = x;
		}
		free(e->index);
		e->index = idx;
		e->index_cap = cap;
	}
	size_t i = id_slot(inc->id, e->index_cap);
	while (e->index[i])
		i = (i + 1) & (e->index_cap - 1);
	e->index[i] = inc;
	return 0;
}

/* The group labels of alert a for rule r: group_by names (a missing label
 * counts as ""), or every label when group_by is empty. */
static int group_labels(const struct rule *r, const struct alert *a, struct label **out,
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

static uint64_t fp_key(const char *fp);

static bool is_firing_fp(const struct incident *inc, const char *fp)
{
	uint64_t k = fp_key(fp);
	for (size_t i = 0; i < inc->n_firing; i++)
		if (inc->firing[i] == k)
			return true;
	return false;
}

static int add_firing_fp(struct incident *inc, const char *fp)
{
	if (is_firing_fp(inc, fp))
		return 0;
	uint64_t *p = realloc(inc->firing, (inc->n_firing + 1) * sizeof(*p));
	if (!p)
		return -1;
	inc->firing = p;
	p[inc->n_firing++] = fp_key(fp);
	return 0;
}

static void remove_firing_fp(struct incident *inc, const char *fp)
{
	uint64_t k = fp_key(fp);
	for (size_t i = 0; i < inc->n_firing; i++) {
		if (inc->firing[i] == k) {
			inc->firing[i] = inc->firing[--inc->n_firing];
			return;
		}
	}
}

static int64_t ts_ms(struct timestamp t)
{
	return t.sec * 1000 + t.nsec / 1000000;
}

static bool paused_now(struct engine *e)
{
	if (e->paused)
		return true;
	char path[4096];
	struct stat st;
	snprintf(path, sizeof(path), "%s/PAUSED", e->cfg->state_dir);
	return stat(path, &st) == 0;
}

static size_t acted_in_last_hour(struct engine *e, int64_t now_ms)
{
	size_t n = 0;
	for (size_t i = 0; i < e->n_acted; i++)
		if (now_ms - e->acted_ms[i] < HOURLY_WINDOW_MS)
			n++;
	return n;
}

static void note_acted(struct engine *e, int64_t now_ms)
{
	size_t cap = (size_t)e->cfg->limits.max_rollbacks_per_hour + 1;
	size_t oldest = 0;
	if (e->n_acted < cap) {
		e->acted_ms[e->n_acted++] = now_ms;
		return;
	}
	for (size_t i = 1; i < e->n_acted; i++)
		if (e->acted_ms[i] < e->acted_ms[oldest])
			oldest = i;
	e->acted_ms[oldest] = now_ms;
}

static bool rule_dry_run(const struct engine *e, const struct rule *r)
{
	return r->dry_run == 1 || (r->dry_run == -1 && e->cfg->dry_run);
}

/* decisions_total{rule,outcome}; the children are looked up once per
 * (rule, outcome) and cached, since this runs for every decision. */
static void count_decision(struct engine *e, const struct rule *r, enum outcome o)
{
	size_t row = r ? (size_t)(r - e->rules->rules) + 1 : 0; /* row 0: no rule */
	struct metric_child **slot = &e->decision_children[row * OUTCOME_COUNT + o];
	if (!*slot)
		*slot = metrics_child(e->decisions_total, r ? r->name : "", outcome_name(o));
	metric_inc(*slot);
}

/* ---- journal records ---------------------------------------------------- */

static uint64_t fp_key(const char *fp)
{
	uint64_t k;
	crypto_generichash((unsigned char *)&k, sizeof(k), (const unsigned char *)fp, strlen(fp),
			   NULL, 0);
	return k ? k : 1;
}

static int seen_grow(struct seen_map *m)
{
	size_t cap = m->cap ? m->cap * 2 : 1024;
	struct seen_entry *slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return -1;
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->slots[i].key)
			continue;
		size_t j = m->slots[i].key & (cap - 1);
		while (slots[j].key)
			j = (j + 1) & (cap - 1);
		slots[j] = m->slots[i];
	}
	free(m->slots);
	m->slots = slots;
	m->cap = cap;
	return 0;
}

/* Record digest for key. 1 when it is new or differs, 0 when it is an exact
 * repeat, -1 on OOM. */
static int seen_put(struct seen_map *m, uint64_t key, const unsigned char digest[16])
{
	if ((m->n + 1) * 2 > m->cap && seen_grow(m) < 0)
		return -1;
	size_t j = key & (m->cap - 1);
	while (m->slots[j].key && m->slots[j].key != key)
		j = (j + 1) & (m->cap - 1);
	if (m->slots[j].key == key && memcmp(m->slots[j].digest, digest, 16) == 0)
		return 0;
	if (!m->slots[j].key)
		m->n++;
	m->slots[j].key = key;
	memcpy(m->slots[j].digest, digest, 16);
	return 1;
}

static int labels_json(struct buf *b, const struct label *items, size_t n)
{
	int bad = buf_addc(b, '{');
	for (size_t i = 0; i < n; i++)
		bad |= (i ? buf_addc(b, ',') : 0) |
		       buf_add_json_str(b, items[i].name, strlen(items[i].name)) | buf_addc(b, ':') |
		       buf_add_json_str(b, items[i].value, items[i].value_len);
	return bad | buf_addc(b, '}');
}

static int add_member_str(struct buf *b, const char *name, const char *v)
{
	return buf_addf(b, ",\"%s\":", name) | buf_add_json_str(b, v ? v : "", v ? strlen(v) : 0);
}

static int add_member_ts(struct buf *b, const char *name, struct timestamp t)
{
	char ts[TIMESTAMP_STRLEN];
	timestamp_format(t, ts, sizeof(ts));
	return add_member_str(b, name, ts);
}

/* The alert as a notification record holds it (members, leading comma). */
static int alert_members(struct buf *b, const struct alert *a)
{
	return add_member_str(b, "status", alert_status_name(a->status)) |
	       add_member_str(b, "fingerprint", a->fingerprint) |
	       add_member_ts(b, "startsAt", a->starts_at) | add_member_ts(b, "endsAt", a->ends_at) |
	       buf_adds(b, ",\"labels\":") | labels_json(b, a->labels.items, a->labels.n) |
	       buf_adds(b, ",\"annotations\":") |
	       labels_json(b, a->annotations.items, a->annotations.n) |
	       add_member_str(b, "generatorURL", a->generator_url);
}

static int jappend(struct engine *e, const char *type, const char *incident, const struct buf *m)
{
	if (!e->journal)
		return 0;
	return journal_append(e->journal, type, incident, m->data ? m->data : "", m->len, NULL);
}

/* Members of a secret-bearing text with every configured secret's value
 * replaced by <redacted:NAME>: what runs may hold secrets, the journal never. */
static char *redact_secrets(const struct config *cfg, const char *s);

static int jappend_redacted(struct engine *e, const char *type, const char *incident,
			    const struct buf *m, uint64_t *ticket)
{
	if (!e->journal)
		return 0;
	char *clean = redact_secrets(e->cfg, m->data ? m->data : "");
	if (!clean)
		return -1;
	int rc = journal_append(e->journal, type, incident, clean, strlen(clean), ticket);
	free(clean);
	return rc;
}

/* ,"value":{"from":"annotations.value","value":0.052,"above":0.01}: the
 * number a decision was taken on, against its threshold (null when the
 * alert did not carry a number). */
static int value_member(struct buf *m, const struct rule *r, const struct label_set *labels,
			const struct label_set *annotations)
{
	const struct rule_value *rv = &r->value;
	const struct label *l = label_set_get(rv->from_annotations ? annotations : labels, rv->key);
	char from[256];
	snprintf(from, sizeof(from), "%s.%s", rv->from_annotations ? "annotations" : "labels",
		 rv->key);
	int bad = buf_adds(m, ",\"value\":{\"from\":") | buf_add_json_str(m, from, strlen(from));
	char *end = NULL;
	double v = l ? strtod(l->value, &end) : 0;
	if (l && end == l->value + l->value_len && l->value_len > 0 && isfinite(v))
		bad |= buf_addf(m, ",\"value\":%.17g", v);
	else
		bad |= buf_adds(m, ",\"value\":null");
	if (rv->has_above)
		bad |= buf_addf(m, ",\"above\":%.17g", rv->above);
	if (rv->has_below)
		bad |= buf_addf(m, ",\"below\":%.17g", rv->below);
	return bad | buf_addc(m, '}');
}

static void journal_decision(struct engine *e, const struct incident *inc, const struct rule *r,
			     const char *fp, enum outcome o, const char *reason,
			     const struct alert *trigger, const char *trigger_kind)
{
	if (!e->journal)
		return;
	struct buf m = BUF_INIT;
	int bad = add_member_str(&m, "rule", r ? r->name : "") | add_member_str(&m, "fingerprint", fp) |
		  add_member_str(&m, "outcome", outcome_name(o)) | add_member_str(&m, "reason", reason);
	if (inc)
		bad |= buf_addf(&m, ",\"episode\":%d", inc->episode) |
		       add_member_str(&m, "state", state_names[inc->state]) |
		       buf_adds(&m, ",\"group\":") | labels_json(&m, inc->group.items, inc->group.n);
	/* What it decided on: the alert at hand, or (a timer, an approval) the
	 * alert that opened the episode. */
	struct label_set ls = {0}, as = {0};
	bool what = trigger || (inc && trigger_kind);
	if (trigger) {
		ls = trigger->labels;
		as = trigger->annotations;
	} else if (what) {
		ls = (struct label_set){inc->trigger_labels.items, inc->trigger_labels.n};
		as = (struct label_set){inc->trigger_annotations.items, inc->trigger_annotations.n};
	}
	if (what)
		bad |= buf_adds(&m, ",\"labels\":") | labels_json(&m, ls.items, ls.n) |
		       buf_adds(&m, ",\"annotations\":") | labels_json(&m, as.items, as.n);
	if (what && r && r->has_value)
		bad |= value_member(&m, r, &ls, &as);
	if (trigger_kind)
		bad |= add_member_str(&m, "trigger", trigger_kind);
	if (bad || jappend(e, "decision", inc ? inc->id : "", &m) < 0)
		log_error("journal: cannot record a decision", NULL);
	buf_release(&m);
}

static void journal_resolved(struct engine *e, const struct incident *inc)
{
	struct buf m = BUF_INIT;
	if (!e->journal)
		return;
	if ((add_member_str(&m, "rule", inc->rule_name) |
	     buf_addf(&m, ",\"episode\":%d", inc->episode)) ||
	    jappend(e, "resolved", inc->id, &m) < 0)
		log_error("journal: cannot record a resolve", NULL);
	buf_release(&m);
}

static void journal_action_finished(struct engine *e, const struct incident *inc, size_t index,
				    const struct action_record *rec, const char *final_state)
{
	struct buf m = BUF_INIT;
	if (!e->journal)
		return;
	bool exec = rec->type == ACTION_EXEC;
	const char *out = rec->output ? rec->output : "";
	int bad = add_member_str(&m, "rule", inc->rule_name) |
		  buf_addf(&m, ",\"episode\":%d,\"index\":%zu", inc->episode, index) |
		  add_member_str(&m, "action", exec ? "exec" : "http") |
		  add_member_str(&m, "result", rec->result) |
		  (exec ? buf_addf(&m, ",\"exit_code\":%d", rec->exit_code)
			: buf_addf(&m, ",\"status_code\":%d", rec->status_code)) |
		  buf_addf(&m, ",\"duration_ms\":%lld",
			   (long long)timestamp_diff_ms(rec->finished, rec->started)) |
		  buf_adds(&m, ",\"output\":") | buf_add_json_str(&m, out, strlen(out));
	if (final_state)
		bad |= add_member_str(&m, "incident_state", final_state);
	if (bad || jappend_redacted(e, "action_finished", inc->id, &m, NULL) < 0)
		log_error("journal: cannot record an action's end", NULL);
	buf_release(&m);
}

/* ---- notices ------------------------------------------------------------ */

static bool rule_notifies(const struct rule *r, const char *channel)
{
	for (size_t i = 0; r && i < r->n_notify; i++)
		if (strcmp(r->notify[i], channel) == 0)
			return true;
	return false;
}

static const char *owned_get(const struct owned_labels *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->items[i].name, name) == 0)
			return l->items[i].value;
	return NULL;
}

/* Tell Slack / PagerDuty (under e->lock; notify only queues). */
static void notify_state(struct engine *e, struct incident *inc, enum notify_kind kind,
			 const char *reason, const char *note)
{
	const struct rule *r = find_rule(e, inc->rule_name);
	if (!e->notify || !r)
		return;
	struct notify_event ev = {
		.kind = kind,
		.slack = rule_notifies(r, "slack"),
		.pagerduty = rule_notifies(r, "pagerduty"),
		.incident = inc->id,
		.rule = inc->rule_name,
		.state = state_names[inc->state],
		.reason = reason,
		.alert_started = inc->episode_start,
		.generator_url = inc->generator_url,
		.external_url = inc->external_url,
		.labels = inc->trigger_labels.items,
		.n_labels = inc->trigger_labels.n,
		.acknowledged_by = inc->acknowledged_by,
		.awaiting_approval = inc->state == INC_AWAITING_APPROVAL,
		.note = note,
	};
	if (!ev.slack && !ev.pagerduty)
		return;
	ev.service = owned_get(&inc->trigger_labels, "service");
	if (!ev.service)
		ev.service = owned_get(&inc->group, "service");
	ev.severity = owned_get(&inc->trigger_labels, "severity");
	char value[64] = "", threshold[64] = "";
	if (r->has_value) {
		const struct owned_labels *src =
			r->value.from_annotations ? &inc->trigger_annotations : &inc->trigger_labels;
		const char *v = owned_get(src, r->value.key);
		if (v) {
			snprintf(value, sizeof(value), "%s", v);
			ev.value = value;
		}
		if (r->value.has_above)
			snprintf(threshold, sizeof(threshold), "above %g", r->value.above);
		else if (r->value.has_below)
			snprintf(threshold, sizeof(threshold), "below %g", r->value.below);
		ev.threshold = threshold[0] ? threshold : NULL;
	}
	struct notify_action acts[16];
	size_t n = 0;
	for (size_t i = 0; i < inc->n_actions && n < 16; i++) {
		const struct action_record *a = &inc->actions[i];
		if (!a->begun && !a->done)
			continue;
		acts[n++] = (struct notify_action){
			.type = a->type == ACTION_EXEC ? "exec" : "http",
			.result = a->done ? a->result : "running",
			.exit_code = a->exit_code,
			.status_code = a->status_code,
			.output = a->output,
		};
	}
	ev.actions = acts;
	ev.n_actions = n;
	notify_incident(e->notify, &ev);
}

static void journal_state(struct engine *e, const struct incident *inc, const char *reason)
{
	struct buf m = BUF_INIT;
	if ((add_member_str(&m, "rule", inc->rule_name) |
	     buf_addf(&m, ",\"episode\":%d", inc->episode) |
	     add_member_str(&m, "state", state_names[inc->state]) |
	     add_member_str(&m, "reason", reason)) ||
	    jappend(e, "incident_state", inc->id, &m) < 0)
		log_error("journal: cannot record an incident state", NULL);
	buf_release(&m);
}

static void approve_timeout_cb(evutil_socket_t fd, short what, void *arg);
static void verify_cb(evutil_socket_t fd, short what, void *arg);

static void arm_ms(struct engine *e, struct event **ev, event_callback_fn cb, void *arg,
		   int64_t ms)
{
	if (!e->base)
		return;
	if (!*ev && !(*ev = evtimer_new(e->base, cb, arg)))
		return;
	struct timeval tv = timestamp_tv(ms);
	evtimer_add(*ev, &tv);
}

/* After a decision that changed the incident: tell people; an approval
 * that may time out starts its clock. */
static void after_decision(struct engine *e, struct incident *inc, const struct rule *r,
			   enum outcome o, const char *reason)
{
	notify_state(e, inc, NOTIFY_TRIGGER, reason, NULL);
	if (o == OUTCOME_AWAITING_APPROVAL && r->approve_timeout_ms > 0)
		arm_ms(e, &inc->approve_timer, approve_timeout_cb, inc, r->approve_timeout_ms);
}

/* verify.within: the rollback should make the alert resolve in time. */
static void arm_verify(struct engine *e, struct incident *inc)
{
	const struct rule *r = find_rule(e, inc->rule_name);
	if (r && r->verify_within_ms > 0)
		arm_ms(e, &inc->verify_timer, verify_cb, inc, r->verify_within_ms);
}

/* The episode resolves: a rollback still being verified was effective. */
static void settle_verify(struct engine *e, struct incident *inc, bool resolved)
{
	if (!inc->verify_timer || !evtimer_pending(inc->verify_timer, NULL))
		return;
	evtimer_del(inc->verify_timer);
	if (resolved && inc->state == INC_ROLLED_BACK) {
		inc->state = INC_EFFECTIVE;
		journal_state(e, inc, "resolved within verify.within after the rollback");
	}
}

static void verify_cb(evutil_socket_t fd, short what, void *arg)
{
	struct incident *inc = arg;
	struct engine *e = inc->engine;
	pthread_mutex_lock(&e->lock);
	if (inc->state == INC_ROLLED_BACK && inc->n_firing > 0) {
		const struct rule *r = find_rule(e, inc->rule_name);
		char note[160];
		snprintf(note, sizeof(note),
			 "The rollback did not fix it: still firing %llds after the actions finished",
			 (long long)(r ? r->verify_within_ms / 1000 : 0));
		inc->state = INC_INEFFECTIVE;
		journal_state(e, inc, note);
		notify_state(e, inc, NOTIFY_ESCALATE, note, note);
		log_warn("rollback ineffective", "incident", inc->id, "rule", inc->rule_name, NULL);
	}
	pthread_mutex_unlock(&e->lock);
}

static void enqueue_run(struct engine *e, struct incident *inc);

/* The target a rollback of inc changes (SPEC §6): for now always the
 * default, the group labels (changes_default_target). */
static int incident_target(const struct incident *inc, struct buf *out)
{
	return changes_default_target(inc->group.items, inc->group.n, out);
}

/* when.changed_within: a change to the target in the window before the
 * episode's startsAt. False with the reason written when there was none. */
static bool changed_recently(struct engine *e, const struct incident *inc, const struct rule *r,
			     char *reason, size_t rsz)
{
	struct buf t = BUF_INIT;
	struct timestamp from = inc->episode_start;
	from.sec -= r->changed_within_ms / 1000;
	bool ok = incident_target(inc, &t) == 0 &&
		  changes_within(e->changes, t.data, from, inc->episode_start, NULL);
	if (!ok)
		snprintf(reason, rsz, "no change to '%s' recorded in the %llds before startsAt",
			 t.data ? t.data : "", (long long)(r->changed_within_ms / 1000));
	buf_release(&t);
	return ok;
}

/* Decide an incident whose episode has not been decided yet. Sets the state
 * and writes the reason. Never runs anything itself: acting enqueues. */
static enum outcome decide(struct engine *e, struct incident *inc, const struct rule *r,
			   struct timestamp now, char *reason, size_t rsz)
{
	int64_t now_ms = ts_ms(now);
	inc->decided = true;
	if (r->mode == RULE_MODE_NOTIFY) {
		inc->state = INC_HELD;
		snprintf(reason, rsz, "mode notify: rollbackd never acts on this rule");
		return OUTCOME_NOTIFY_ONLY;
	}
	if (r->changed_within_ms > 0 && !changed_recently(e, inc, r, reason, rsz)) {
		inc->state = INC_HELD;
		return OUTCOME_NO_RECENT_CHANGE;
	}
	if (paused_now(e)) {
		inc->state = INC_HELD;
		snprintf(reason, rsz, "paused: automatic actions are switched off");
		return OUTCOME_HELD;
	}
	if (r->cooldown_ms > 0 && inc->has_acted &&
	    now_ms - ts_ms(inc->last_acted) < r->cooldown_ms) {
		char until[TIMESTAMP_STRLEN];
		struct timestamp u = inc->last_acted;
		u.sec += r->cooldown_ms / 1000;
		timestamp_format(u, until, sizeof(until));
		inc->state = INC_HELD;
		snprintf(reason, rsz, "in cooldown until %s", until);
		return OUTCOME_HELD;
	}
	if (acted_in_last_hour(e, now_ms) >= (size_t)e->cfg->limits.max_rollbacks_per_hour) {
		inc->state = INC_HELD;
		snprintf(reason, rsz, "limits.max_rollbacks_per_hour (%d) reached",
			 e->cfg->limits.max_rollbacks_per_hour);
		return OUTCOME_HELD;
	}
	if (rule_dry_run(e, r)) {
		inc->state = INC_DRY_RUN;
		snprintf(reason, rsz, "dry-run: would run %zu action(s)", r->n_actions);
		return OUTCOME_DRY_RUN;
	}
	if (r->mode == RULE_MODE_APPROVE) {
		inc->state = INC_AWAITING_APPROVAL;
		snprintf(reason, rsz, "mode approve: waiting for an engineer to approve");
		return OUTCOME_AWAITING_APPROVAL;
	}
	inc->state = INC_ACTING;
	inc->has_acted = true;
	inc->last_acted = now;
	note_acted(e, now_ms);
	snprintf(reason, rsz, "running %zu action(s)", r->n_actions);
	enqueue_run(e, inc);
	return OUTCOME_ACTING;
}

static void timer_cb(evutil_socket_t fd, short what, void *arg);

static struct incident *incident_new(struct engine *e, const struct rule *r, const char *id,
				     const struct label *group, size_t n, struct timestamp now)
{
	struct incident *inc = calloc(1, sizeof(*inc));
	if (!inc)
		return NULL;
	memcpy(inc->id, id, sizeof(inc->id));
	inc->engine = e;
	inc->rule_name = strdup(r->name);
	if (!inc->rule_name || labels_copy(&inc->group, group, n) < 0) {
		incident_free(inc);
		return NULL;
	}
	inc->first_seen = now;
	inc->episode = 0;
	inc->state = INC_RESOLVED; /* no episode yet */
	if (index_add(e, inc) < 0) {
		incident_free(inc);
		return NULL;
	}
	inc->next = e->incidents;
	e->incidents = inc;
	e->n_incidents++;
	return inc;
}

static int set_trigger(struct incident *inc, const struct alert *a, const char *external_url)
{
	free(inc->generator_url);
	free(inc->external_url);
	inc->generator_url = strdup(a->generator_url ? a->generator_url : "");
	inc->external_url = strdup(external_url ? external_url : "");
	labels_free(&inc->trigger_labels);
	labels_free(&inc->trigger_annotations);
	if (labels_copy(&inc->trigger_labels, a->labels.items, a->labels.n) < 0 ||
	    labels_copy(&inc->trigger_annotations, a->annotations.items, a->annotations.n) < 0)
		return -1;
	return 0;
}

/* Publish the number of incidents not resolved (kept in e->n_open at the
 * transitions into and out of INC_RESOLVED, not recounted per request). */
static void open_count(struct engine *e)
{
	metric_set(e->incidents_open, (int64_t)e->n_open);
}

static int plan_actions_json(struct engine *e, const struct rule *r, const struct incident *inc,
			     struct buf *out);

struct decision_out {
	struct buf *out;
	bool first;
	bool alert_new; /* the alert carries something not yet journaled */
	const char *external_url;
};

static int emit(struct engine *e, struct decision_out *d, const char *fp, const struct rule *r,
		const struct incident *inc, enum outcome o, const char *reason)
{
	const char *rule = r ? r->name : "", *id = inc ? inc->id : "", *out = outcome_name(o);
	struct buf *b = d->out;
	int bad = buf_adds(b, d->first ? "{\"fingerprint\":" : ",{\"fingerprint\":") |
		  buf_add_json_str(b, fp, strlen(fp)) | buf_adds(b, ",\"rule\":") |
		  buf_add_json_str(b, rule, strlen(rule)) | buf_adds(b, ",\"incident\":") |
		  buf_add_json_str(b, id, strlen(id)) | buf_adds(b, ",\"outcome\":") |
		  buf_add_json_str(b, out, strlen(out)) | buf_adds(b, ",\"reason\":") |
		  buf_add_json_str(b, reason, strlen(reason));
	if (!bad && e->plan_only && r && inc && o != OUTCOME_NO_MATCH && o != OUTCOME_RESOLVED)
		bad |= plan_actions_json(e, r, inc, b);
	bad |= buf_addc(b, '}');
	d->first = false;
	count_decision(e, r, o);
	return bad ? -1 : 0;
}

static void arm_timer(struct engine *e, struct incident *inc, struct timestamp at,
		      struct timestamp now)
{
	if (!e->base)
		return;
	if (!inc->timer && !(inc->timer = evtimer_new(e->base, timer_cb, inc)))
		return;
	int64_t ms = ts_ms(at) - ts_ms(now);
	struct timeval tv = timestamp_tv(ms);
	evtimer_add(inc->timer, &tv);
}

/* One firing alert against one matching rule. */
static int on_firing(struct engine *e, struct decision_out *d, const struct rule *r,
		     const struct alert *a, struct timestamp now)
{
	char reason[512];
	struct label *group = NULL;
	size_t n_group = 0;
	char id[INCIDENT_ID_LEN + 1];
	int rc = -1;

	if (r->has_value && !rule_value_check(r, a, reason, sizeof(reason))) {
		if (d->alert_new)
			journal_decision(e, NULL, r, a->fingerprint, OUTCOME_NO_MATCH, reason, NULL,
					 NULL);
		return emit(e, d, a->fingerprint, r, NULL, OUTCOME_NO_MATCH, reason);
	}

	int owned = group_labels(r, a, &group, &n_group);
	if (owned < 0)
		return -1;
	incident_id(r, group, n_group, id);
	struct incident *inc = find_incident(e, id);
	if (!inc && !(inc = incident_new(e, r, id, group, n_group, now)))
		goto out;
	inc->last_seen = now;

	bool episode_started = false;
	if (inc->state == INC_RESOLVED) { /* a new episode starts */
		episode_started = true;
		inc->episode++;
		inc->decided = false;
		inc->episode_start = a->starts_at;
		inc->state = INC_PENDING;
		e->n_open++;
		free(inc->acknowledged_by);
		inc->acknowledged_by = NULL;
		free(inc->approved_by);
		inc->approved_by = NULL;
		incident_clear_actions(inc);
		incident_clear_firing(inc);
	}
	if (add_firing_fp(inc, a->fingerprint) < 0)
		goto out;

	enum outcome o;
	if (inc->decided) {
		o = OUTCOME_REPEAT;
		snprintf(reason, sizeof(reason), "episode %d already decided: %s", inc->episode,
			 state_names[inc->state]);
	} else {
		if (set_trigger(inc, a, d->external_url) < 0)
			goto out;
		int64_t firing_ms = ts_ms(now) - ts_ms(a->starts_at);
		if (r->firing_for_ms > 0 && firing_ms < r->firing_for_ms) {
			struct timestamp at = a->starts_at;
			at.sec += r->firing_for_ms / 1000;
			at.nsec += (int32_t)((r->firing_for_ms % 1000) * 1000000);
			if (at.nsec >= 1000000000) {
				at.sec++;
				at.nsec -= 1000000000;
			}
			char when[TIMESTAMP_STRLEN];
			timestamp_format(at, when, sizeof(when));
			o = OUTCOME_PENDING;
			snprintf(reason, sizeof(reason), "firing for %llds of %llds; deciding at %s",
				 (long long)(firing_ms > 0 ? firing_ms / 1000 : 0),
				 (long long)(r->firing_for_ms / 1000), when);
			arm_timer(e, inc, at, now);
		} else {
			o = decide(e, inc, r, now, reason, sizeof(reason));
		}
	}
	if (d->alert_new || episode_started || (o != OUTCOME_REPEAT && o != OUTCOME_PENDING))
		journal_decision(e, inc, r, a->fingerprint, o, reason,
				 o == OUTCOME_REPEAT ? NULL : a, NULL);
	rc = emit(e, d, a->fingerprint, r, inc, o, reason);
	if (o != OUTCOME_REPEAT && o != OUTCOME_PENDING)
		after_decision(e, inc, r, o, reason);
	if (o != OUTCOME_REPEAT && o != OUTCOME_PENDING)
		log_info("decision", "rule", r->name, "incident", inc->id, "outcome",
			 outcome_name(o), "reason", reason, NULL);
out:
	if (owned > 0)
		free(group);
	return rc;
}

static int on_resolved(struct engine *e, struct decision_out *d, const struct rule *r,
		       const struct alert *a, struct timestamp now)
{
	struct label *group = NULL;
	size_t n_group = 0;
	char id[INCIDENT_ID_LEN + 1], reason[256];
	int owned = group_labels(r, a, &group, &n_group);
	if (owned < 0)
		return -1;
	incident_id(r, group, n_group, id);
	if (owned > 0)
		free(group);
	struct incident *inc = find_incident(e, id);
	if (!inc || inc->state == INC_RESOLVED) {
		snprintf(reason, sizeof(reason), "no open incident for this alert");
		if (d->alert_new)
			journal_decision(e, inc, r, a->fingerprint, OUTCOME_RESOLVED, reason, NULL,
					 NULL);
		return emit(e, d, a->fingerprint, r, inc, OUTCOME_RESOLVED, reason);
	}
	inc->last_seen = now;
	bool was_firing = is_firing_fp(inc, a->fingerprint);
	bool resolved_now = false;
	remove_firing_fp(inc, a->fingerprint);
	if (inc->n_firing > 0) {
		snprintf(reason, sizeof(reason), "%zu alert(s) of the incident still firing",
			 inc->n_firing);
	} else {
		if (inc->timer)
			evtimer_del(inc->timer); /* a pending firing_for is cancelled */
		if (!inc->running) { /* running actions finish their records first */
			settle_verify(e, inc, true);
			inc->state = INC_RESOLVED;
			e->n_open--;
			resolved_now = true;
		}
		snprintf(reason, sizeof(reason), "episode %d resolved", inc->episode);
		log_info("resolved", "rule", r->name, "incident", inc->id, NULL);
	}
	if (d->alert_new || was_firing)
		journal_decision(e, inc, r, a->fingerprint, OUTCOME_RESOLVED, reason, NULL, NULL);
	if (resolved_now) {
		journal_resolved(e, inc);
		notify_state(e, inc, NOTIFY_RESOLVE, reason, NULL);
	}
	return emit(e, d, a->fingerprint, r, inc, OUTCOME_RESOLVED, reason);
}

/* The notification record of each alert and the digest of its content,
 * computed before taking the lock: offs[i]..offs[i+1] in b. */
struct alert_notes {
	struct buf b;
	size_t *offs;
	unsigned char (*digest)[16];
};

static int notes_build(const struct webhook *wh, struct alert_notes *n)
{
	buf_init(&n->b, 0);
	n->offs = calloc(wh->n_alerts + 1, sizeof(*n->offs));
	n->digest = calloc(wh->n_alerts ? wh->n_alerts : 1, sizeof(*n->digest));
	if (!n->offs || !n->digest)
		return -1;
	for (size_t i = 0; i < wh->n_alerts; i++) {
		size_t mark = n->b.len;
		if (alert_members(&n->b, &wh->alerts[i]) < 0)
			return -1;
		crypto_generichash(n->digest[i], 16, (const unsigned char *)n->b.data + mark,
				   n->b.len - mark, NULL, 0);
		n->offs[i + 1] = n->b.len;
	}
	return 0;
}

static void notes_release(struct alert_notes *n)
{
	buf_release(&n->b);
	free(n->offs);
	free(n->digest);
}

/* Journal alert i of wh unless it is an exact repeat. 1 new, 0 repeat. */
static int note_alert(struct engine *e, const struct webhook *wh, size_t i,
		      const struct alert_notes *n)
{
	const struct alert *a = &wh->alerts[i];
	int fresh = seen_put(&e->seen, fp_key(a->fingerprint), n->digest[i]);
	if (fresh <= 0 || !e->journal)
		return fresh < 0 ? 1 : fresh; /* without memory, journal it again */
	struct buf m = BUF_INIT;
	char hex[33];
	sodium_bin2hex(hex, sizeof(hex), n->digest[i], 16);
	size_t len = n->offs[i + 1] - n->offs[i];
	int bad = add_member_str(&m, "receiver", wh->receiver) |
		  add_member_str(&m, "group_key", wh->group_key) |
		  add_member_str(&m, "external_url", wh->external_url);
	if (len > JOURNAL_MAX_LINE / 2) /* keep the line readable: say it was cut */
		bad |= add_member_str(&m, "status", alert_status_name(a->status)) |
		       add_member_str(&m, "fingerprint", a->fingerprint) |
		       add_member_ts(&m, "startsAt", a->starts_at) |
		       add_member_ts(&m, "endsAt", a->ends_at) | buf_adds(&m, ",\"truncated\":true");
	else
		bad |= buf_add(&m, n->b.data + n->offs[i], len);
	bad |= add_member_str(&m, "digest", hex);
	if (bad || jappend(e, "notification", "", &m) < 0)
		log_error("journal: cannot record a notification", NULL);
	buf_release(&m);
	return 1;
}

int engine_process(struct engine *e, const struct webhook *wh, struct timestamp now,
		   struct buf *out)
{
	struct decision_out d = {out, true, false, wh->external_url};
	struct alert_notes notes = {BUF_INIT, NULL, NULL};
	int rc = 0;
	if (buf_addc(out, '[') < 0 || notes_build(wh, &notes) < 0) {
		notes_release(&notes);
		return -1;
	}
	pthread_mutex_lock(&e->lock);
	for (size_t i = 0; i < wh->n_alerts && rc == 0; i++) {
		const struct alert *a = &wh->alerts[i];
		bool matched = false;
		d.alert_new = note_alert(e, wh, i, &notes) > 0;
		for (size_t j = 0; j < e->rules->n_rules && rc == 0; j++) {
			const struct rule *r = &e->rules->rules[j];
			if (!rule_matches(r, a))
				continue;
			matched = true;
			rc = a->status == ALERT_FIRING ? on_firing(e, &d, r, a, now)
						       : on_resolved(e, &d, r, a, now);
		}
		if (!matched && rc == 0) {
			static const char why[] = "no rule matches the alert's labels";
			if (d.alert_new)
				journal_decision(e, NULL, NULL, a->fingerprint, OUTCOME_NO_MATCH, why,
						 NULL, NULL);
			rc = emit(e, &d, a->fingerprint, NULL, NULL, OUTCOME_NO_MATCH, why);
		}
	}
	open_count(e);
	pthread_mutex_unlock(&e->lock);
	notes_release(&notes);
	if (rc == 0 && buf_addc(out, ']') < 0)
		rc = -1;
	return rc;
}

/* firing_for elapsed without a resolve: decide now. */
static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct incident *inc = arg;
	struct engine *e = inc->engine;
	char reason[512];
	pthread_mutex_lock(&e->lock);
	const struct rule *r = find_rule(e, inc->rule_name);
	if (r && inc->state == INC_PENDING && !inc->decided) {
		enum outcome o = decide(e, inc, r, timestamp_now(), reason, sizeof(reason));
		journal_decision(e, inc, r, "", o, reason, NULL, "firing_for");
		after_decision(e, inc, r, o, reason);
		count_decision(e, r, o);
		log_info("decision", "rule", r->name, "incident", inc->id, "outcome",
			 outcome_name(o), "reason", reason, "trigger", "firing_for elapsed", NULL);
	}
	open_count(e);
	pthread_mutex_unlock(&e->lock);
}

/* ---- actions ---------------------------------------------------------- */

struct secret_ctx {
	const struct config *cfg;
};

static const struct secret *lookup_secret(void *arg, const char *name)
{
	struct secret_ctx *sc = arg;
	return config_secret(sc->cfg, name);
}

static void template_ctx_for(const struct incident *inc, struct secret_ctx *sc,
			     struct template_ctx *ctx, struct label_set *labels,
			     struct label_set *annotations, struct change *chg)
{
	struct buf t = BUF_INIT;
	bool known = incident_target(inc, &t) == 0 &&
		     changes_latest(inc->engine->changes, t.data, chg);
	if (!known) {
		memset(chg, 0, sizeof(*chg));
		snprintf(chg->target, sizeof(chg->target), "%s", t.data ? t.data : "");
	}
	buf_release(&t);
	ctx->change = known ? chg : NULL;
	ctx->change_target = chg->target;
	labels->items = inc->trigger_labels.items;
	labels->n = inc->trigger_labels.n;
	annotations->items = inc->trigger_annotations.items;
	annotations->n = inc->trigger_annotations.n;
	ctx->labels = labels;
	ctx->annotations = annotations;
	ctx->incident_id = inc->id;
	ctx->rule_name = inc->rule_name;
	ctx->secret_lookup = lookup_secret;
	ctx->secret_arg = sc;
}

/* Expand a JSON body template: every string value (and key) is a template
 * whose expansion stays a JSON string. Returns a new reference or NULL. */
static json_t *expand_json(const json_t *tpl, const struct template_ctx *ctx,
			   struct error *err)
{
	if (json_is_string(tpl)) {
		struct buf b = BUF_INIT;
		if (template_expand(json_string_value(tpl), ctx, TEMPLATE_RAW, &b, err) < 0) {
			buf_release(&b);
			return NULL;
		}
		json_t *s = json_stringn(b.data ? b.data : "", b.len);
		buf_release(&b);
		if (!s)
			error_set(err, "body: expanded value is not valid UTF-8");
		return s;
	}
	if (json_is_array(tpl)) {
		json_t *arr = json_array();
		size_t i;
		const json_t *v;
		json_array_foreach(tpl, i, v) {
			json_t *x = expand_json(v, ctx, err);
			if (!x || json_array_append_new(arr, x) < 0) {
				json_decref(arr);
				return NULL;
			}
		}
		return arr;
	}
	if (json_is_object(tpl)) {
		json_t *obj = json_object();
		const char *k;
		const json_t *v;
		json_object_foreach((json_t *)tpl, k, v) {
			json_t *x = expand_json(v, ctx, err);
			if (!x || json_object_set_new(obj, k, x) < 0) {
				json_decref(obj);
				return NULL;
			}
		}
		return obj;
	}
	return json_deep_copy(tpl);
}

/* The fully expanded form of one action, as test-rules prints it and as the
 * runner uses it. NULL with err when a template cannot be expanded. */
static json_t *expand_action(const struct action_tpl *at, const struct template_ctx *ctx,
			     struct error *err)
{
	json_t *out = json_object();
	struct buf b = BUF_INIT;
	if (!out)
		return NULL;
	if (at->type == ACTION_EXEC) {
		json_t *argv = json_array();
		json_object_set_new(out, "type", json_string("exec"));
		json_object_set_new(out, "argv", argv);
		for (size_t i = 0; i < at->argc; i++) {
			buf_reset(&b);
			if (template_expand(at->argv[i], ctx, TEMPLATE_RAW, &b, err) < 0)
				goto fail;
			json_t *arg = json_stringn(b.data ? b.data : "", b.len);
			if (!arg) {
				error_set(err, "argv[%zu]: expanded value is not valid UTF-8", i);
				goto fail;
			}
			json_array_append_new(argv, arg);
		}
	} else {
		json_object_set_new(out, "type", json_string("http"));
		json_object_set_new(out, "method", json_string(at->method));
		buf_reset(&b);
		if (template_expand(at->url, ctx, TEMPLATE_URL, &b, err) < 0)
			goto fail;
		json_object_set_new(out, "url", json_stringn(b.data ? b.data : "", b.len));
		json_t *headers = json_object();
		json_object_set_new(out, "headers", headers);
		for (size_t i = 0; i < at->n_headers; i++) {
			buf_reset(&b);
			if (template_expand(at->headers[i].value, ctx, TEMPLATE_RAW, &b, err) < 0)
				goto fail;
			if (memchr(b.data ? b.data : "", '\n', b.len) ||
			    memchr(b.data ? b.data : "", '\r', b.len)) {
				error_set(err, "header '%s': expanded value contains a line break",
					  at->headers[i].name);
				goto fail;
			}
			json_object_set_new(headers, at->headers[i].name,
					    json_stringn(b.data ? b.data : "", b.len));
		}
		if (at->body) {
			json_t *body = expand_json(at->body, ctx, err);
			if (!body)
				goto fail;
			json_object_set_new(out, "body", body);
		}
	}
	buf_release(&b);
	return out;
fail:
	buf_release(&b);
	json_decref(out);
	return NULL;
}

/* Replace every occurrence of each configured secret's value in s (a JSON
 * text) by <redacted:NAME>, so test-rules shows real expansions without
 * printing a secret. Returns a new string or NULL. */
static char *redact_secrets(const struct config *cfg, const char *s)
{
	struct buf out = BUF_INIT;
	char *cur = strdup(s);
	for (size_t i = 0; cur && i < cfg->n_secrets; i++) {
		const char *v = (const char *)cfg->secrets[i].value.data;
		size_t vlen = cfg->secrets[i].value.len;
		if (!v || vlen == 0)
			continue;
		buf_reset(&out);
		const char *p = cur, *hit;
		int bad = 0;
		while ((hit = memmem(p, strlen(p), v, vlen)) != NULL) {
			bad |= buf_add(&out, p, (size_t)(hit - p)) |
			       buf_addf(&out, "<redacted:%s>", cfg->secrets[i].name);
			p = hit + vlen;
		}
		bad |= buf_adds(&out, p);
		free(cur);
		cur = bad ? NULL : buf_detach(&out, NULL);
	}
	buf_release(&out);
	return cur;
}

/* Append ,"actions":[...] with every action of r expanded for inc. */
static int plan_actions_json(struct engine *e, const struct rule *r, const struct incident *inc,
			     struct buf *out)
{
	struct secret_ctx sc = {e->cfg};
	struct template_ctx ctx;
	struct label_set labels, annotations;
	struct change chg;
	template_ctx_for(inc, &sc, &ctx, &labels, &annotations, &chg);
	json_t *actions = json_array();
	if (!actions)
		return -1;
	for (size_t i = 0; i < r->n_actions; i++) {
		struct error err = {{0}};
		json_t *a = expand_action(&r->actions[i], &ctx, &err);
		if (!a) {
			a = json_pack("{s:s, s:s}", "type",
				      r->actions[i].type == ACTION_EXEC ? "exec" : "http", "error",
				      err.msg);
		}
		json_array_append_new(actions, a);
	}
	char *text = json_dumps(actions, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(actions);
	char *clean = text ? redact_secrets(e->cfg, text) : NULL;
	free(text);
	int rc = clean ? buf_adds(out, ",\"actions\":") | buf_adds(out, clean) : -1;
	free(clean);
	return rc ? -1 : 0;
}

static void run_next_action(struct engine *e, struct incident *inc);
static void launch_action(struct engine *e, struct incident *inc);
static void on_started_durable(bool ok, void *arg);
static void on_started_retry(evutil_socket_t fd, short what, void *arg);

static void enqueue_resume(struct engine *e, struct incident *inc);

static void enqueue_run(struct engine *e, struct incident *inc)
{
	if (!e->base || inc->queued)
		return;
	const struct rule *r = find_rule(e, inc->rule_name);
	incident_clear_actions(inc);
	inc->actions = r && r->n_actions ? calloc(r->n_actions, sizeof(*inc->actions)) : NULL;
	inc->n_actions = inc->actions ? r->n_actions : 0;
	enqueue_resume(e, inc);
}

/* Queue inc's actions from inc->next_action on. */
static void enqueue_resume(struct engine *e, struct incident *inc)
{
	if (!e->base || inc->queued)
		return;
	if (e->n_queue == e->alloc_queue) {
		size_t n = e->alloc_queue ? e->alloc_queue * 2 : 8;
		struct incident **q = realloc(e->queue, n * sizeof(*q));
		if (!q) {
			inc->state = INC_ACTION_FAILED;
			return;
		}
		e->queue = q;
		e->alloc_queue = n;
	}
	inc->queued = true;
	inc->running = true;
	e->queue[e->n_queue++] = inc;
	event_active(e->kick, EV_READ, 0);
}

/* Runs on the loop thread: start queued incidents while slots are free. */
static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct engine *e = arg;
	pthread_mutex_lock(&e->lock);
	while (e->n_queue > 0 && e->running < e->cfg->limits.max_concurrent_actions) {
		struct incident *inc = e->queue[0];
		memmove(e->queue, e->queue + 1, (e->n_queue - 1) * sizeof(*e->queue));
		e->n_queue--;
		inc->queued = false;
		e->running++;
		run_next_action(e, inc);
	}
	pthread_mutex_unlock(&e->lock);
}

static void finish_incident(struct engine *e, struct incident *inc, bool ok)
{
	bool resolved_meanwhile = inc->n_firing == 0;
	inc->running = false;
	inc->state = resolved_meanwhile ? INC_RESOLVED : ok ? INC_ROLLED_BACK : INC_ACTION_FAILED;
	if (resolved_meanwhile) {
		e->n_open--;
		journal_resolved(e, inc);
		notify_state(e, inc, NOTIFY_RESOLVE, "resolved while the actions ran", NULL);
	} else if (ok) {
		notify_state(e, inc, NOTIFY_UPDATE, "the rollback actions succeeded", NULL);
		arm_verify(e, inc);
	} else {
		notify_state(e, inc, NOTIFY_TRIGGER, "a rollback action failed", NULL);
	}
	e->running--;
	log_info("actions finished", "incident", inc->id, "rule", inc->rule_name, "result",
		 ok ? "rolled_back" : "action_failed", NULL);
	if (e->n_queue > 0)
		event_active(e->kick, EV_READ, 0);
	open_count(e);
}

static void action_done(struct engine *e, struct incident *inc, struct action_record *rec,
			const char *result, const char *output, size_t output_len)
{
	const struct rule *r = find_rule(e, inc->rule_name);
	rec->finished = timestamp_now();
	rec->done = true;
	rec->result = result;
	rec->output = malloc(output_len + 1);
	if (rec->output) {
		memcpy(rec->output, output, output_len);
		rec->output[output_len] = '\0';
	}
	double secs = (double)timestamp_diff_ms(rec->finished, rec->started) / 1000.0;
	metric_observe(e->action_duration, secs);
	metric_inc(metrics_child(e->actions_total, inc->rule_name,
				 rec->type == ACTION_EXEC ? "exec" : "http", result));
	bool ok = strcmp(result, "ok") == 0;
	size_t index = inc->next_action++;
	if ((!ok && !(r && r->on_failure_continue)) || inc->next_action >= inc->n_actions) {
		bool all_ok = true;
		for (size_t i = 0; i < inc->next_action; i++)
			all_ok = all_ok && strcmp(inc->actions[i].result, "ok") == 0;
		all_ok = all_ok && inc->next_action >= inc->n_actions;
		journal_action_finished(e, inc, index, rec,
					inc->n_firing == 0 ? "resolved"
					: all_ok	   ? "rolled_back"
							   : "action_failed");
		finish_incident(e, inc, all_ok);
		return;
	}
	journal_action_finished(e, inc, index, rec, NULL);
	run_next_action(e, inc);
}

static void on_proc_done(const struct proc_result *res, void *arg)
{
	struct incident *inc = arg;
	struct engine *e = inc->engine;
	pthread_mutex_lock(&e->lock);
	struct action_record *rec = &inc->actions[inc->next_action];
	rec->exit_code = res->exit_code;
	const char *result = res->timed_out ? "timeout" : res->exit_code == 0 ? "ok" : "failed";
	char code[16];
	snprintf(code, sizeof(code), "%d", res->exit_code);
	log_info("action finished", "incident", inc->id, "type", "exec", "result", result,
		 "exit_code", code, NULL);
	action_done(e, inc, rec, result, res->output, res->output_len);
	pthread_mutex_unlock(&e->lock);
}

static void on_http_done(const struct httpc_result *res, void *arg)
{
	struct incident *inc = arg;
	struct engine *e = inc->engine;
	pthread_mutex_lock(&e->lock);
	struct action_record *rec = &inc->actions[inc->next_action];
	rec->status_code = res->status;
	const char *text = res->error ? res->error : res->body ? res->body : "";
	size_t len = res->error ? strlen(res->error) : res->body_len;
	char code[16];
	snprintf(code, sizeof(code), "%d", res->status);
	log_info("action finished", "incident", inc->id, "type", "http", "result",
		 res->ok ? "ok" : "failed", "status", code, NULL);
	action_done(e, inc, rec, res->ok ? "ok" : "failed", text, len);
	pthread_mutex_unlock(&e->lock);
}

/* Build the exec environment: a minimal PATH/HOME/LANG plus SPEC's vars. */
static char **exec_env(struct engine *e, const struct incident *inc)
{
	size_t n = 9 + inc->trigger_labels.n + inc->trigger_annotations.n, k = 0;
	char **env = calloc(n + 1, sizeof(*env));
	if (!env)
		return NULL;
	const char *path = getenv("PATH");
	const char *home = getenv("HOME");
	struct buf b = BUF_INIT;
#define ADD_ENV(...)                                                                  \
	do {                                                                          \
		buf_reset(&b);                                                        \
		if (buf_addf(&b, __VA_ARGS__) == 0 && (env[k] = strdup(b.data)) != NULL) \
			k++;                                                          \
	} while (0)
	ADD_ENV("PATH=%s", path ? path : "/usr/local/bin:/usr/bin:/bin");
	ADD_ENV("HOME=%s", home ? home : "/");
	ADD_ENV("ROLLBACKD_INCIDENT=%s", inc->id);
	ADD_ENV("ROLLBACKD_RULE=%s", inc->rule_name);
	ADD_ENV("ROLLBACKD_DRY_RUN=%s", "0");
	struct change *chg = calloc(1, sizeof(*chg));
	buf_reset(&b);
	if (chg && incident_target(inc, &b) == 0 && changes_latest(e->changes, b.data, chg)) {
		/* only when known, so a script can fall back without a template error */
		ADD_ENV("ROLLBACKD_CHANGE_REVISION=%s", chg->revision);
		if (chg->previous_revision[0])
			ADD_ENV("ROLLBACKD_CHANGE_PREVIOUS_REVISION=%s", chg->previous_revision);
		ADD_ENV("ROLLBACKD_CHANGE_SOURCE=%s", chg->source);
	}
	free(chg);
	for (int pass = 0; pass < 2; pass++) {
		const struct owned_labels *set = pass ? &inc->trigger_annotations : &inc->trigger_labels;
		for (size_t i = 0; i < set->n; i++) {
			buf_reset(&b);
			buf_adds(&b, pass ? "ROLLBACKD_ANNOTATION_" : "ROLLBACKD_LABEL_");
			for (const char *c = set->items[i].name; *c; c++) {
				char u = (*c >= 'a' && *c <= 'z') ? (char)(*c - 32) : *c;
				buf_addc(&b, (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') ? u : '_');
			}
			buf_addc(&b, '=');
			/* environment values end at NUL; a value with NUL is cut there */
			buf_add(&b, set->items[i].value, strlen(set->items[i].value));
			if (b.data && (env[k] = strdup(b.data)) != NULL)
				k++;
		}
	}
#undef ADD_ENV
	buf_release(&b);
	return env;
}

static void free_strv(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

static char *incident_stdin_json(const struct incident *inc)
{
	json_t *labels = json_object(), *ann = json_object();
	for (size_t i = 0; i < inc->trigger_labels.n; i++)
		json_object_set_new(labels, inc->trigger_labels.items[i].name,
				    json_string(inc->trigger_labels.items[i].value));
	for (size_t i = 0; i < inc->trigger_annotations.n; i++)
		json_object_set_new(ann, inc->trigger_annotations.items[i].name,
				    json_string(inc->trigger_annotations.items[i].value));
	json_t *obj = json_pack("{s:s, s:s, s:i, s:o, s:o}", "id", inc->id, "rule",
				inc->rule_name, "episode", inc->episode, "labels", labels,
				"annotations", ann);
	char *s = obj ? json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(obj);
	return s;
}

static void run_next_action(struct engine *e, struct incident *inc)
{
	const struct rule *r = find_rule(e, inc->rule_name);
	if (!r || inc->next_action >= inc->n_actions || inc->next_action >= r->n_actions) {
		/* done, or a reload removed the rule or its remaining actions */
		finish_incident(e, inc, r != NULL && inc->next_action >= inc->n_actions);
		return;
	}
	const struct action_tpl *at = &r->actions[inc->next_action];
	struct action_record *rec = &inc->actions[inc->next_action];
	struct secret_ctx sc = {e->cfg};
	struct template_ctx ctx;
	struct label_set labels, annotations;
	struct change chg;
	struct error err = {{0}};
	template_ctx_for(inc, &sc, &ctx, &labels, &annotations, &chg);
	rec->type = at->type;
	rec->started = timestamp_now();
	rec->exit_code = -1;

	json_t *x = expand_action(at, &ctx, &err);
	if (!x) {
		log_warn("action not run", "incident", inc->id, "error", err.msg, NULL);
		action_done(e, inc, rec, "error", err.msg, strlen(err.msg));
		return;
	}
	/* action_started is durable before anything leaves: after a crash the
	 * journal tells what may have run, and nothing runs twice. */
	inc->ready = x;
	rec->begun = true;
	uint64_t ticket = 0;
	if (e->journal) {
		struct buf m = BUF_INIT;
		char *desc = json_dumps(x, JSON_COMPACT | JSON_PRESERVE_ORDER);
		int bad = !desc || add_member_str(&m, "rule", inc->rule_name) ||
			  buf_addf(&m, ",\"episode\":%d,\"index\":%zu", inc->episode,
				   inc->next_action) ||
			  add_member_str(&m, "action", at->type == ACTION_EXEC ? "exec" : "http") ||
			  buf_add(&m, desc + 1 + strlen("\"type\":\"exec\""),
				  strlen(desc) - 2 - strlen("\"type\":\"exec\"")) ||
			  jappend_redacted(e, "action_started", inc->id, &m, &ticket) < 0;
		free(desc);
		buf_release(&m);
		if (bad)
			log_error("journal: cannot record an action's start; waiting", NULL);
		if (journal_wait(e->journal, ticket, e->base, on_started_durable, inc) == 0)
			return;
		log_error("journal: out of memory waiting for a record; running anyway", NULL);
	}
	launch_action(e, inc);
}

/* The action_started record is on disk (or the disk failed: retry). */
static void on_started_durable(bool ok, void *arg)
{
	struct incident *inc = arg;
	struct engine *e = inc->engine;
	pthread_mutex_lock(&e->lock);
	if (ok) {
		launch_action(e, inc);
	} else {
		log_warn("journal unavailable; the action waits for its record", "incident",
			 inc->id, NULL);
		struct timeval tv = timestamp_tv(1000);
		if (!inc->retry)
			inc->retry = evtimer_new(e->base, on_started_retry, inc);
		if (inc->retry)
			evtimer_add(inc->retry, &tv);
	}
	pthread_mutex_unlock(&e->lock);
}

static void on_started_retry(evutil_socket_t fd, short what, void *arg)
{
	struct incident *inc = arg;
	struct engine *e = inc->engine;
	if (journal_wait(e->journal, journal_last_ticket(e->journal), e->base, on_started_durable,
			 inc) < 0) {
		struct timeval tv = timestamp_tv(1000);
		evtimer_add(inc->retry, &tv);
	}
}

/* Start the action prepared in inc->ready (under e->lock, on the loop). */
static void launch_action(struct engine *e, struct incident *inc)
{
	const struct rule *r = find_rule(e, inc->rule_name);
	json_t *x = inc->ready;
	inc->ready = NULL;
	struct action_record *rec = &inc->actions[inc->next_action];
	struct error err = {{0}};
	if (!r || !x) {
		action_done(e, inc, rec, "error", "the rule is gone", strlen("the rule is gone"));
		json_decref(x);
		return;
	}
	if (inc->next_action >= r->n_actions) {
		json_decref(x);
		action_done(e, inc, rec, "error", "the reloaded rule has no such action",
			    strlen("the reloaded rule has no such action"));
		return;
	}
	const struct action_tpl *at = &r->actions[inc->next_action];
	log_info("action started", "incident", inc->id, "rule", inc->rule_name, "type",
		 at->type == ACTION_EXEC ? "exec" : "http", NULL);
	if (at->type == ACTION_EXEC) {
		json_t *jargv = json_object_get(x, "argv");
		size_t argc = json_array_size(jargv);
		char **argv = calloc(argc + 1, sizeof(*argv));
		char **env = exec_env(e, inc);
		char *in = incident_stdin_json(inc);
		int rc = -1;
		if (argv && env) {
			for (size_t i = 0; i < argc; i++)
				argv[i] = (char *)json_string_value(json_array_get(jargv, i));
			struct proc_spec spec = {
				.argv = argv, .envp = env, .stdin_data = in,
				.stdin_len = in ? strlen(in) : 0, .timeout_ms = at->timeout_ms,
				.kill_grace_ms = KILL_GRACE_MS, .max_output = MAX_OUTPUT,
			};
			rc = proc_spawn(e->base, &spec, on_proc_done, inc, NULL, &err);
		} else {
			error_set(&err, "out of memory");
		}
		free(argv);
		free_strv(env);
		free(in);
		json_decref(x);
		if (rc < 0)
			action_done(e, inc, rec, "error", err.msg, strlen(err.msg));
		return;
	}
	/* http */
	json_t *jh = json_object_get(x, "headers");
	size_t nh = json_object_size(jh), k = 0;
	char **headers = calloc(nh + 2, sizeof(*headers));
	char *body = json_object_get(x, "body")
			     ? json_dumps(json_object_get(x, "body"), JSON_COMPACT | JSON_PRESERVE_ORDER)
			     : NULL;
	int rc = -1;
	if (headers) {
		const char *hk;
		json_t *hv;
		struct buf hb = BUF_INIT;
		json_object_foreach(jh, hk, hv) {
			buf_reset(&hb);
			if (buf_addf(&hb, "%s: %s", hk, json_string_value(hv)) == 0)
				headers[k++] = strdup(hb.data);
		}
		buf_release(&hb);
		if (body && !json_object_get(jh, "Content-Type"))
			headers[k++] = strdup("Content-Type: application/json");
		struct httpc_request req = {
			.method = at->method, .url = json_string_value(json_object_get(x, "url")),
			.headers = (const char *const *)headers, .body = body,
			.body_len = body ? strlen(body) : 0, .timeout_ms = at->timeout_ms,
			.retries = at->retries, .expect_status = at->expect_status,
			.n_expect_status = at->n_expect_status, .max_response = MAX_OUTPUT,
			.backoff_base_ms = 500, .backoff_max_ms = 30000,
		};
		/* The HTTP client (and libcurl) is created on first use. */
		if (!e->http && !(e->http = httpc_new(e->base)))
			error_set(&err, "cannot start the HTTP client (is libcurl.so.4 installed?)");
		else
			rc = httpc_send(e->http, &req, on_http_done, inc, &err);
	} else {
		error_set(&err, "out of memory");
	}
	free_strv(headers);
	free(body);
	json_decref(x);
	if (rc < 0)
		action_done(e, inc, rec, "error", err.msg, strlen(err.msg));
}

/* ---- replay ------------------------------------------------------------- */

/* One parsed journal line: tokens and a scratch area for decoded strings. */
struct rline {
	struct engine *e;
	struct json_doc doc;
	struct timestamp ts;
};

static const char *rstr(struct rline *rl, size_t tok, char *dst, size_t dstsz)
{
	const struct json_tok *t = &rl->doc.toks[tok];
	if (!tok || t->kind != JSON_KIND_STRING || t->size + 1 > dstsz)
		return NULL;
	json_str_decode(&rl->doc, t, dst);
	return dst;
}

static const char *rget(struct rline *rl, const char *name, char *dst, size_t dstsz)
{
	return rstr(rl, json_obj_get(&rl->doc, 0, name), dst, dstsz);
}

static int64_t rgetint(struct rline *rl, const char *name, int64_t dflt)
{
	size_t t = json_obj_get(&rl->doc, 0, name);
	if (!t || rl->doc.toks[t].kind != JSON_KIND_NUMBER || !(rl->doc.toks[t].flags & JSON_TOK_INT))
		return dflt;
	return json_int_value(&rl->doc, &rl->doc.toks[t]);
}

/* An object of strings into owned labels, in record order. */
static int rlabels(struct rline *rl, const char *name, struct owned_labels *out)
{
	size_t o = json_obj_get(&rl->doc, 0, name);
	labels_free(out);
	if (!o || rl->doc.toks[o].kind != JSON_KIND_OBJECT)
		return 0;
	size_t n = rl->doc.toks[o].size;
	out->items = n ? calloc(n, sizeof(*out->items)) : NULL;
	if (n && !out->items)
		return -1;
	for (size_t k = json_obj_first(&rl->doc, o); k < json_obj_end(&rl->doc, o);
	     k = json_obj_nextkey(&rl->doc, k)) {
		const struct json_tok *kt = &rl->doc.toks[k], *vt = &rl->doc.toks[k + 1];
		if (vt->kind != JSON_KIND_STRING)
			continue;
		char *kn = malloc(kt->size + 1), *vv = malloc(vt->size + 1);
		if (!kn || !vv) {
			free(kn);
			free(vv);
			return -1;
		}
		json_str_decode(&rl->doc, kt, kn);
		json_str_decode(&rl->doc, vt, vv);
		out->items[out->n++] = (struct label){kn, vv, vt->size};
	}
	return 0;
}

static struct incident *replay_incident(struct rline *rl, const char *id, const char *rule)
{
	struct engine *e = rl->e;
	struct incident *inc = find_incident(e, id);
	if (inc)
		return inc;
	if (strlen(id) != INCIDENT_ID_LEN || !rule)
		return NULL;
	inc = calloc(1, sizeof(*inc));
	if (!inc)
		return NULL;
	memcpy(inc->id, id, sizeof(inc->id));
	inc->engine = e;
	inc->state = INC_RESOLVED;
	inc->first_seen = inc->last_seen = rl->ts;
	if (!(inc->rule_name = strdup(rule)) || rlabels(rl, "group", &inc->group) < 0 ||
	    index_add(e, inc) < 0) {
		incident_free(inc);
		return NULL;
	}
	inc->next = e->incidents;
	e->incidents = inc;
	e->n_incidents++;
	return inc;
}

static int replay_decision(struct rline *rl, const char *id)
{
	struct engine *e = rl->e;
	char rule[512], fp[256], outcome[32], state[32], trigger[32];
	if (!id[0] || !rget(rl, "rule", rule, sizeof(rule)) ||
	    !rget(rl, "outcome", outcome, sizeof(outcome)) || !rget(rl, "state", state, sizeof(state)))
		return 0; /* no incident: nothing to rebuild */
	if (!rget(rl, "fingerprint", fp, sizeof(fp)))
		fp[0] = '\0';
	struct incident *inc = replay_incident(rl, id, rule);
	int st = state_parse(state);
	if (!inc || st < 0)
		return inc ? 0 : -1;
	int episode = (int)rgetint(rl, "episode", inc->episode);
	inc->last_seen = rl->ts;
	if (episode != inc->episode) { /* a new episode */
		inc->episode = episode;
		inc->episode_start = rl->ts;
		incident_clear_actions(inc);
		incident_clear_firing(inc);
		free(inc->acknowledged_by);
		inc->acknowledged_by = NULL;
		free(inc->approved_by);
		inc->approved_by = NULL;
	}
	if (strcmp(outcome, "resolved") == 0)
		remove_firing_fp(inc, fp);
	else if (fp[0] && strcmp(outcome, "no_match") != 0 && add_firing_fp(inc, fp) < 0)
		return -1;
	inc->state = (enum incident_state)st;
	inc->decided = st != INC_PENDING && st != INC_RESOLVED;
	if (json_obj_get(&rl->doc, 0, "labels") &&
	    (rlabels(rl, "labels", &inc->trigger_labels) < 0 ||
	     rlabels(rl, "annotations", &inc->trigger_annotations) < 0))
		return -1;
	if (strcmp(outcome, "acting") == 0) {
		inc->has_acted = true;
		inc->last_acted = rl->ts;
		note_acted(e, ts_ms(rl->ts));
		const struct rule *r = find_rule(e, rule);
		incident_clear_actions(inc);
		inc->actions = r && r->n_actions ? calloc(r->n_actions, sizeof(*inc->actions)) : NULL;
		inc->n_actions = inc->actions ? r->n_actions : 0;
	}
	(void)rget(rl, "trigger", trigger, sizeof(trigger));
	return 0;
}

static struct action_record *replay_action(struct rline *rl, struct incident *inc)
{
	int64_t index = rgetint(rl, "index", -1);
	if (!inc || index < 0 || (size_t)index >= inc->n_actions ||
	    rgetint(rl, "episode", -1) != inc->episode)
		return NULL;
	return &inc->actions[index];
}

static int replay_line(struct rline *rl)
{
	struct engine *e = rl->e;
	char type[40], id[64], buf[64];
	if (!rget(rl, "type", type, sizeof(type)) || !rget(rl, "incident", id, sizeof(id)))
		return 0;
	if (rget(rl, "ts", buf, sizeof(buf)))
		timestamp_parse(buf, strlen(buf), &rl->ts);
	if (strcmp(type, "notification") == 0) {
		char fp[256], hex[40];
		unsigned char d[16];
		if (rget(rl, "fingerprint", fp, sizeof(fp)) && rget(rl, "digest", hex, sizeof(hex)) &&
		    sodium_hex2bin(d, sizeof(d), hex, strlen(hex), NULL, NULL, NULL) == 0)
			return seen_put(&e->seen, fp_key(fp), d) < 0 ? -1 : 0;
		return 0;
	}
	if (strcmp(type, "decision") == 0)
		return replay_decision(rl, id);
	if (strcmp(type, "pause") == 0 || strcmp(type, "resume") == 0) {
		e->paused = type[0] == 'p';
		return 0;
	}
	struct incident *inc = id[0] ? find_incident(e, id) : NULL;
	if (!inc)
		return 0;
	if (strcmp(type, "action_started") == 0) {
		struct action_record *a = replay_action(rl, inc);
		char action[8];
		if (a) {
			a->begun = true;
			a->started = rl->ts;
			a->type = rget(rl, "action", action, sizeof(action)) &&
					  strcmp(action, "http") == 0
				  ? ACTION_HTTP
				  : ACTION_EXEC;
		}
	} else if (strcmp(type, "action_finished") == 0) {
		struct action_record *a = replay_action(rl, inc);
		char result[16], state[32];
		if (a) {
			static const char *const results[] = {"ok",      "failed",      "timeout",
							      "error",   "unknown",     "interrupted"};
			a->done = true;
			a->finished = rl->ts;
			a->result = "error";
			if (rget(rl, "result", result, sizeof(result)))
				for (size_t i = 0; i < sizeof(results) / sizeof(results[0]); i++)
					if (strcmp(result, results[i]) == 0)
						a->result = results[i];
			a->exit_code = (int)rgetint(rl, "exit_code", -1);
			a->status_code = (int)rgetint(rl, "status_code", 0);
			size_t t = json_obj_get(&rl->doc, 0, "output");
			if (t && rl->doc.toks[t].kind == JSON_KIND_STRING &&
			    (a->output = malloc(rl->doc.toks[t].size + 1)))
				json_str_decode(&rl->doc, &rl->doc.toks[t], a->output);
			inc->next_action = (size_t)(a - inc->actions) + 1;
		}
		int st;
		if (rget(rl, "incident_state", state, sizeof(state)) && (st = state_parse(state)) >= 0)
			inc->state = (enum incident_state)st;
	} else if (strcmp(type, "resolved") == 0) {
		inc->state = INC_RESOLVED;
		incident_clear_firing(inc);
	} else if (strcmp(type, "incident_state") == 0) {
		int st;
		if (rget(rl, "state", buf, sizeof(buf)) && (st = state_parse(buf)) >= 0)
			inc->state = (enum incident_state)st;
	} else if (strcmp(type, "ack") == 0 || strcmp(type, "approve") == 0) {
		char by[256];
		bool ack = type[1] == 'c';
		if (rget(rl, "by", by, sizeof(by))) {
			char **who = ack ? &inc->acknowledged_by : &inc->approved_by;
			free(*who);
			*who = strdup(by);
			*(ack ? &inc->acknowledged_at : &inc->approved_at) = rl->ts;
		}
	}
	return 0;
}

/*
 * Fast paths for the two records that make up most of a journal. The
 * writer puts top-level members in a fixed order before any nested object,
 * and a '"' inside a JSON string is always escaped, so the first
 * ,"name": in the text is the top-level member. Values with escapes take
 * the full parse.
 */
static bool fast_str(const char *text, size_t len, const char *name, const char **val,
		     size_t *vlen)
{
	char pat[40];
	int n = snprintf(pat, sizeof(pat), ",\"%s\":\"", name);
	const char *p = memmem(text, len, pat, (size_t)n);
	if (!p)
		return false;
	p += n;
	const char *q = memchr(p, '"', len - (size_t)(p - text));
	if (!q || memchr(p, '\\', (size_t)(q - p)))
		return false;
	*val = p;
	*vlen = (size_t)(q - p);
	return true;
}

static bool fast_eq(const char *v, size_t n, const char *s)
{
	return n == strlen(s) && memcmp(v, s, n) == 0;
}

/* A record the fast path did not take: tokenize it and replay. 1 done (or
 * skipped), -1 OOM. Under e->lock. */
static int replay_parsed(struct engine *e, const struct journal_line *line)
{
	size_t need = JSON_TOKENS_ENOUGH(line->len);
	if (need > e->rtoks_cap) {
		struct json_tok *t = realloc(e->rtoks, need * sizeof(*t));
		if (!t)
			return -1;
		e->rtoks = t;
		e->rtoks_cap = need;
	}
	struct rline rl = {.e = e};
	if (json_doc_parse(&rl.doc, line->text, line->len, e->rtoks, e->rtoks_cap) != JSON_OK ||
	    e->rtoks[0].kind != JSON_KIND_OBJECT) {
		log_warn("journal: a record is not JSON; skipped on replay", "segment", line->segment,
			 NULL);
		return 1;
	}
	return replay_line(&rl) < 0 ? -1 : 1;
}

/* 1 handled, 0 take the full parse, -1 OOM. Under e->lock. */
static int replay_fast(struct engine *e, const char *text, size_t len)
{
	const char *type, *fp, *v;
	size_t tn, fn, vn;
	char buf[INCIDENT_ID_LEN + 1], fpz[128];
	if (!fast_str(text, len < 120 ? len : 120, "type", &type, &tn) ||
	    !fast_str(text, len, "fingerprint", &fp, &fn) || fn >= sizeof(fpz))
		return 0;
	memcpy(fpz, fp, fn);
	fpz[fn] = '\0';
	if (fast_eq(type, tn, "notification")) {
		unsigned char d[16];
		/* the last member before prev and hash: ,"digest":"<32 hex>" */
		static const char dm[] = ",\"digest\":\"";
		size_t at = 75 + 74 + 44; /* hash, prev and digest members */
		if (len < at || memcmp(text + len - at, dm, sizeof(dm) - 1) != 0)
			return 0;
		v = text + len - at + sizeof(dm) - 1;
		vn = 32;
		if (sodium_hex2bin(d, sizeof(d), v, vn, NULL, NULL, NULL) != 0)
			return 0;
		return seen_put(&e->seen, fp_key(fpz), d) < 0 ? -1 : 1;
	}
	if (!fast_eq(type, tn, "decision") || !fast_str(text, len, "outcome", &v, &vn))
		return 0;
	bool repeat = fast_eq(v, vn, "repeat"), resolved = fast_eq(v, vn, "resolved");
	if (!repeat && !resolved)
		return 0;
	const char *id, *st, *ep;
	size_t idn, stn;
	if (!fast_str(text, len, "incident", &id, &idn) || idn != INCIDENT_ID_LEN ||
	    !fast_str(text, len, "state", &st, &stn) || !(ep = memmem(text, len, ",\"episode\":", 11)))
		return 0;
	memcpy(buf, id, idn);
	buf[idn] = '\0';
	struct incident *inc = find_incident(e, buf);
	if (!inc || atoi(ep + 11) != inc->episode)
		return 0; /* a new incident or episode: the full parse sets it up */
	char stz[32];
	if (stn >= sizeof(stz))
		return 0;
	memcpy(stz, st, stn);
	stz[stn] = '\0';
	int state = state_parse(stz);
	if (state < 0)
		return 0;
	if (resolved)
		remove_firing_fp(inc, fpz);
	else if (add_firing_fp(inc, fpz) < 0)
		return -1;
	inc->state = (enum incident_state)state;
	return 1;
}

int engine_replay(const struct journal_line *line, void *arg)
{
	struct engine *e = arg;
	int rc = changes_replay_record(e->changes, line->text, line->len);
	if (rc != 0)
		return rc < 0 ? -1 : 0;
	pthread_mutex_lock(&e->lock);
	rc = replay_fast(e, line->text, line->len);
	if (rc == 0)
		rc = replay_parsed(e, line);
	pthread_mutex_unlock(&e->lock);
	return rc < 0 ? -1 : 0;
}

/* After replay: what a crash cut off becomes unknown (never re-run); what
 * was decided but never started runs now; pending incidents get their
 * firing_for timers back. */
int engine_attach_journal(struct engine *e, struct journal *j)
{
	struct timestamp now = timestamp_now();
	free(e->rtoks);
	e->rtoks = NULL;
	e->rtoks_cap = 0;
	pthread_mutex_lock(&e->lock);
	e->journal = j;
	e->n_open = 0;
	for (struct incident *inc = e->incidents; inc; inc = inc->next) {
		if (inc->state != INC_RESOLVED)
			e->n_open++;
		if (inc->state == INC_PENDING) {
			const struct rule *r = find_rule(e, inc->rule_name);
			if (r) {
				struct timestamp at = inc->episode_start;
				at.sec += r->firing_for_ms / 1000;
				arm_timer(e, inc, at, now);
			}
			continue;
		}
		const struct rule *rr = find_rule(e, inc->rule_name);
		/* Timers do not survive a restart: give them a full window from now
		 * (later rather than earlier). */
		if (inc->state == INC_AWAITING_APPROVAL && rr && rr->approve_timeout_ms > 0)
			arm_ms(e, &inc->approve_timer, approve_timeout_cb, inc, rr->approve_timeout_ms);
		if (inc->state == INC_ROLLED_BACK)
			arm_verify(e, inc);
		if (inc->state != INC_ACTING)
			continue;
		bool cut = false;
		for (size_t i = 0; i < inc->n_actions; i++) {
			struct action_record *a = &inc->actions[i];
			if (!a->begun || a->done)
				continue;
			static const char msg[] =
				"rollbackd stopped before this action finished; it is not run again";
			a->done = true;
			a->result = "unknown";
			a->finished = now;
			a->output = strdup(msg);
			cut = true;
			inc->state = INC_UNKNOWN;
			journal_action_finished(e, inc, i, a, "unknown");
			notify_state(e, inc, NOTIFY_TRIGGER, msg, msg);
			log_warn("action cut off by a restart; not re-run", "incident", inc->id,
				 "rule", inc->rule_name, NULL);
		}
		if (!cut && e->base && inc->next_action < inc->n_actions) {
			log_info("resuming actions decided before the restart", "incident", inc->id,
				 NULL);
			enqueue_resume(e, inc);
		}
	}
	metric_set(e->paused_gauge, e->paused);
	open_count(e);
	pthread_mutex_unlock(&e->lock);
	return 0;
}

/* ---- queries and controls ---------------------------------------------- */

static json_t *incident_to_json(const struct incident *inc, bool with_actions)
{
	char first[TIMESTAMP_STRLEN], last[TIMESTAMP_STRLEN];
	timestamp_format(inc->first_seen, first, sizeof(first));
	timestamp_format(inc->last_seen, last, sizeof(last));
	json_t *labels = json_object();
	for (size_t i = 0; i < inc->group.n; i++)
		json_object_set_new(labels, inc->group.items[i].name,
				    json_string(inc->group.items[i].value));
	json_t *obj = json_pack("{s:s, s:s, s:s, s:o, s:i, s:s, s:s, s:s?}", "id", inc->id,
				"rule", inc->rule_name, "state", state_names[inc->state], "labels",
				labels, "episode", inc->episode, "first_seen", first, "last_seen",
				last, "acknowledged_by", inc->acknowledged_by);
	if (!obj || !with_actions)
		return obj;
	json_t *actions = json_array();
	for (size_t i = 0; i < inc->n_actions; i++) {
		const struct action_record *a = &inc->actions[i];
		if (a->started.sec == 0 && !a->done)
			continue;
		char s[TIMESTAMP_STRLEN], f[TIMESTAMP_STRLEN];
		timestamp_format(a->started, s, sizeof(s));
		timestamp_format(a->finished, f, sizeof(f));
		bool exec = a->type == ACTION_EXEC;
		/* exit_code for exec, status_code for http; the other is null */
		json_array_append_new(
			actions,
			json_pack("{s:s, s:s, s:s?, s:s?, s:o, s:o, s:s?}", "type",
				  exec ? "exec" : "http", "started", s, "finished",
				  a->done ? f : NULL, "result", a->done ? a->result : "running",
				  "exit_code",
				  exec && a->done ? json_integer(a->exit_code) : json_null(),
				  "status_code",
				  !exec && a->done ? json_integer(a->status_code) : json_null(),
				  "output", a->output));
	}
	json_object_set_new(obj, "actions", actions);
	return obj;
}

static int dump_into(json_t *j, struct buf *out)
{
	char *s = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(j);
	if (!s)
		return -1;
	int rc = buf_adds(out, s);
	free(s);
	return rc;
}

int engine_incidents_json(struct engine *e, struct buf *out)
{
	json_t *arr = json_array();
	pthread_mutex_lock(&e->lock);
	for (const struct incident *inc = e->incidents; inc && arr; inc = inc->next)
		json_array_append_new(arr, incident_to_json(inc, false));
	pthread_mutex_unlock(&e->lock);
	return dump_into(arr, out);
}

int engine_incident_json(struct engine *e, const char *id, struct buf *out)
{
	pthread_mutex_lock(&e->lock);
	struct incident *inc = find_incident(e, id);
	json_t *j = inc ? incident_to_json(inc, true) : NULL;
	pthread_mutex_unlock(&e->lock);
	if (!inc)
		return 1;
	return dump_into(j, out);
}

void engine_set_paused(struct engine *e, bool paused)
{
	pthread_mutex_lock(&e->lock);
	if (e->paused != paused) {
		struct buf m = BUF_INIT;
		if (add_member_str(&m, "by", "api") || jappend(e, paused ? "pause" : "resume", "", &m) < 0)
			log_error("journal: cannot record pause/resume", NULL);
		buf_release(&m);
	}
	e->paused = paused;
	metric_set(e->paused_gauge, paused);
	pthread_mutex_unlock(&e->lock);
	log_warn(paused ? "paused: automatic actions are off" : "resumed: automatic actions are on",
		 NULL);
}

bool engine_paused(struct engine *e)
{
	pthread_mutex_lock(&e->lock);
	bool p = paused_now(e);
	pthread_mutex_unlock(&e->lock);
	return p;
}

/* An ack or approve record: who, and through what (link, slack, timer). */
static void journal_use(struct engine *e, const char *type, const struct incident *inc,
			const char *by, const char *via)
{
	struct buf m = BUF_INIT;
	if ((add_member_str(&m, "by", by) | add_member_str(&m, "via", via)) ||
	    jappend(e, type, inc->id, &m) < 0)
		log_error("journal: cannot record who acted", "type", type, NULL);
	buf_release(&m);
}

/* Act on an incident awaiting approval (under e->lock). */
static void approve_locked(struct engine *e, struct incident *inc, const char *by,
			   const char *via, const char *trigger)
{
	journal_use(e, "approve", inc, by, via);
	free(inc->approved_by);
	inc->approved_by = strdup(by);
	inc->approved_at = timestamp_now();
	if (inc->approve_timer)
		evtimer_del(inc->approve_timer);
	inc->state = INC_ACTING;
	inc->has_acted = true;
	inc->last_acted = inc->approved_at;
	note_acted(e, ts_ms(inc->last_acted));
	char reason[160];
	snprintf(reason, sizeof(reason), "approved by %s: running the actions", by);
	journal_decision(e, inc, find_rule(e, inc->rule_name), "", OUTCOME_ACTING, reason, NULL,
			 trigger);
	notify_state(e, inc, NOTIFY_UPDATE, reason, NULL);
	log_info("approved", "incident", inc->id, "by", by, "via", via, NULL);
	enqueue_run(e, inc);
}

static void approve_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct incident *inc = arg;
	struct engine *e = inc->engine;
	pthread_mutex_lock(&e->lock);
	if (inc->state == INC_AWAITING_APPROVAL)
		approve_locked(e, inc, "approve_timeout", "timer", "approve_timeout");
	open_count(e);
	pthread_mutex_unlock(&e->lock);
}

static void fill_prev(const char *who, struct timestamp at, struct engine_use *prev)
{
	if (!prev)
		return;
	snprintf(prev->by, sizeof(prev->by), "%s", who ? who : "");
	prev->at = at;
}

int engine_approve(struct engine *e, const char *id, const char *by, const char *via,
		   struct engine_use *prev)
{
	int rc;
	pthread_mutex_lock(&e->lock);
	struct incident *inc = find_incident(e, id);
	if (!inc) {
		rc = ENGINE_USE_NOT_FOUND;
	} else if (inc->state == INC_AWAITING_APPROVAL) {
		approve_locked(e, inc, by, via, "approved");
		rc = ENGINE_USE_DONE;
	} else if (inc->approved_by) {
		fill_prev(inc->approved_by, inc->approved_at, prev);
		rc = ENGINE_USE_ALREADY;
	} else {
		rc = ENGINE_USE_NOT_APPLICABLE;
	}
	pthread_mutex_unlock(&e->lock);
	return rc;
}

int engine_ack(struct engine *e, const char *id, const char *by, const char *via,
	       struct engine_use *prev)
{
	int rc;
	pthread_mutex_lock(&e->lock);
	struct incident *inc = find_incident(e, id);
	if (!inc) {
		rc = ENGINE_USE_NOT_FOUND;
	} else if (inc->acknowledged_by) {
		fill_prev(inc->acknowledged_by, inc->acknowledged_at, prev);
		rc = ENGINE_USE_ALREADY;
	} else if (inc->state == INC_RESOLVED) {
		rc = ENGINE_USE_NOT_APPLICABLE;
	} else {
		journal_use(e, "ack", inc, by, via);
		inc->acknowledged_by = strdup(by);
		inc->acknowledged_at = timestamp_now();
		char reason[160];
		snprintf(reason, sizeof(reason), "acknowledged by %s", by);
		notify_state(e, inc, NOTIFY_ACK, reason, NULL);
		log_info("acknowledged", "incident", inc->id, "by", by, "via", via, NULL);
		rc = ENGINE_USE_DONE;
	}
	pthread_mutex_unlock(&e->lock);
	return rc;
}

int engine_reload(struct engine *e, const struct config *cfg, const struct ruleset *rules)
{
	size_t cap = (size_t)cfg->limits.max_rollbacks_per_hour + 1;
	int64_t *acted = calloc(cap, sizeof(*acted));
	struct metric_child **children =
		calloc((rules->n_rules + 1) * OUTCOME_COUNT, sizeof(*children));
	if (!acted || !children) {
		free(acted);
		free(children);
		return -1;
	}
	pthread_mutex_lock(&e->lock);
	/* keep the newest action times that fit (the hourly cap goes on) */
	size_t keep = e->n_acted < cap ? e->n_acted : cap, k = 0;
	for (size_t pass = 0; pass < keep; pass++) {
		size_t best = SIZE_MAX;
		for (size_t i = 0; i < e->n_acted; i++)
			if (e->acted_ms[i] != INT64_MIN &&
			    (best == SIZE_MAX || e->acted_ms[i] > e->acted_ms[best]))
				best = i;
		acted[k++] = e->acted_ms[best];
		e->acted_ms[best] = INT64_MIN;
	}
	free(e->acted_ms);
	e->acted_ms = acted;
	e->n_acted = k;
	free(e->decision_children);
	e->decision_children = children;
	e->cfg = cfg;
	e->rules = rules;
	pthread_mutex_unlock(&e->lock);
	return 0;
}

struct changes *engine_changes(struct engine *e)
{
	return e->changes;
}

int engine_interrupt(struct engine *e)
{
	static const char msg[] = "rollbackd stopped before this action finished "
				  "(shutdown grace period over); it is not run again";
	int n = 0;
	pthread_mutex_lock(&e->lock);
	for (struct incident *inc = e->incidents; inc; inc = inc->next) {
		for (size_t i = 0; i < inc->n_actions; i++) {
			struct action_record *a = &inc->actions[i];
			if (!a->begun || a->done)
				continue;
			a->done = true;
			a->result = "interrupted";
			a->finished = timestamp_now();
			free(a->output);
			a->output = strdup(msg);
			inc->state = INC_UNKNOWN;
			journal_action_finished(e, inc, i, a, "unknown");
			log_warn("action interrupted by shutdown", "incident", inc->id, NULL);
			n++;
		}
	}
	pthread_mutex_unlock(&e->lock);
	return n;
}

void engine_set_notify(struct engine *e, struct notify *n)
{
	pthread_mutex_lock(&e->lock);
	e->notify = n;
	pthread_mutex_unlock(&e->lock);
}

int engine_incident_summary(struct engine *e, const char *id, char *out, size_t outsz)
{
	pthread_mutex_lock(&e->lock);
	struct incident *inc = find_incident(e, id);
	if (inc) {
		const char *svc = owned_get(&inc->group, "service");
		snprintf(out, outsz, "%s%s%s, %s", inc->rule_name, svc ? " on " : "", svc ? svc : "",
			 state_names[inc->state]);
	}
	pthread_mutex_unlock(&e->lock);
	return inc ? 0 : -1;
}

int engine_running_actions(struct engine *e)
{
	pthread_mutex_lock(&e->lock);
	int n = e->running + (int)e->n_queue;
	pthread_mutex_unlock(&e->lock);
	return n;
}
