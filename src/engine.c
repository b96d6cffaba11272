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

#include "rollbackd/httpc.h"
#include "rollbackd/log.h"
#include "rollbackd/metrics.h"
#include "rollbackd/proc.h"
#include "rollbackd/template.h"

#define INCIDENT_ID_LEN 20     /* "inc-" + 16 hex */
#define HOURLY_WINDOW_MS (3600 * 1000LL)
#define MAX_OUTPUT 65536
#define KILL_GRACE_MS 5000

static const char *const outcome_names[OUTCOME_COUNT] = {
	"acting", "pending", "repeat", "held", "dry_run", "notify_only",
	"awaiting_approval", "resolved", "no_match",
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
};

static const char *const state_names[] = {
	"pending", "acting", "rolled_back", "action_failed", "dry_run", "held",
	"awaiting_approval", "resolved",
};

/* A private copy of a label set (names and values owned). */
struct owned_labels {
	struct label *items;
	size_t n;
};

struct action_record {
	enum action_type type;
	struct timestamp started, finished;
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
	char **firing;                /* fingerprints firing in this episode */
	size_t n_firing;
	struct event *timer;          /* firing_for */
	struct action_record *actions;
	size_t n_actions;
	size_t next_action;
	bool queued;
	bool running;                 /* actions queued or in progress */
	struct incident *next;        /* creation order list */
	struct engine *engine;
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
	if (!e->acted_ms || !e->decision_children)
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
	for (size_t i = 0; i < inc->n_firing; i++)
		free(inc->firing[i]);
	free(inc->firing);
	inc->firing = NULL;
	inc->n_firing = 0;
}

static void incident_free(struct incident *inc)
{
	if (inc->timer)
		event_free(inc->timer);
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
	static const char hex[] = "0123456789abcdef";
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
	for (size_t i = 0; i < sizeof(h); i++) {
		out[4 + 2 * i] = hex[h[i] >> 4];
		out[5 + 2 * i] = hex[h[i] & 15];
	}
	out[INCIDENT_ID_LEN] = '\0';
}

static struct incident *find_incident(struct engine *e, const char *id)
{
	for (struct incident *inc = e->incidents; inc; inc = inc->next)
		if (strcmp(inc->id, id) == 0)
			return inc;
	return NULL;
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

static bool is_firing_fp(const struct incident *inc, const char *fp)
{
	for (size_t i = 0; i < inc->n_firing; i++)
		if (strcmp(inc->firing[i], fp) == 0)
			return true;
	return false;
}

static int add_firing_fp(struct incident *inc, const char *fp)
{
	if (is_firing_fp(inc, fp))
		return 0;
	char **p = realloc(inc->firing, (inc->n_firing + 1) * sizeof(*p));
	if (!p)
		return -1;
	inc->firing = p;
	if (!(p[inc->n_firing] = strdup(fp)))
		return -1;
	inc->n_firing++;
	return 0;
}

static void remove_firing_fp(struct incident *inc, const char *fp)
{
	for (size_t i = 0; i < inc->n_firing; i++) {
		if (strcmp(inc->firing[i], fp) == 0) {
			free(inc->firing[i]);
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

static void enqueue_run(struct engine *e, struct incident *inc);

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
	inc->next = e->incidents;
	e->incidents = inc;
	e->n_incidents++;
	return inc;
}

static int set_trigger(struct incident *inc, const struct alert *a)
{
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

	if (r->has_value && !rule_value_check(r, a, reason, sizeof(reason)))
		return emit(e, d, a->fingerprint, r, NULL, OUTCOME_NO_MATCH, reason);

	int owned = group_labels(r, a, &group, &n_group);
	if (owned < 0)
		return -1;
	incident_id(r, group, n_group, id);
	struct incident *inc = find_incident(e, id);
	if (!inc && !(inc = incident_new(e, r, id, group, n_group, now)))
		goto out;
	inc->last_seen = now;

	if (inc->state == INC_RESOLVED) { /* a new episode starts */
		inc->episode++;
		inc->decided = false;
		inc->episode_start = a->starts_at;
		inc->state = INC_PENDING;
		e->n_open++;
		free(inc->acknowledged_by);
		inc->acknowledged_by = NULL;
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
		if (set_trigger(inc, a) < 0)
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
	rc = emit(e, d, a->fingerprint, r, inc, o, reason);
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
		return emit(e, d, a->fingerprint, r, inc, OUTCOME_RESOLVED, reason);
	}
	inc->last_seen = now;
	remove_firing_fp(inc, a->fingerprint);
	if (inc->n_firing > 0) {
		snprintf(reason, sizeof(reason), "%zu alert(s) of the incident still firing",
			 inc->n_firing);
	} else {
		if (inc->timer)
			evtimer_del(inc->timer); /* a pending firing_for is cancelled */
		if (!inc->running) { /* running actions finish their records first */
			inc->state = INC_RESOLVED;
			e->n_open--;
		}
		snprintf(reason, sizeof(reason), "episode %d resolved", inc->episode);
		log_info("resolved", "rule", r->name, "incident", inc->id, NULL);
	}
	return emit(e, d, a->fingerprint, r, inc, OUTCOME_RESOLVED, reason);
}

int engine_process(struct engine *e, const struct webhook *wh, struct timestamp now,
		   struct buf *out)
{
	struct decision_out d = {out, true};
	int rc = 0;
	if (buf_addc(out, '[') < 0)
		return -1;
	pthread_mutex_lock(&e->lock);
	for (size_t i = 0; i < wh->n_alerts && rc == 0; i++) {
		const struct alert *a = &wh->alerts[i];
		bool matched = false;
		for (size_t j = 0; j < e->rules->n_rules && rc == 0; j++) {
			const struct rule *r = &e->rules->rules[j];
			if (!rule_matches(r, a))
				continue;
			matched = true;
			rc = a->status == ALERT_FIRING ? on_firing(e, &d, r, a, now)
						       : on_resolved(e, &d, r, a, now);
		}
		if (!matched && rc == 0)
			rc = emit(e, &d, a->fingerprint, NULL, NULL, OUTCOME_NO_MATCH,
				  "no rule matches the alert's labels");
	}
	open_count(e);
	pthread_mutex_unlock(&e->lock);
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
			     struct label_set *annotations)
{
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
	template_ctx_for(inc, &sc, &ctx, &labels, &annotations);
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

static void enqueue_run(struct engine *e, struct incident *inc)
{
	if (!e->base || inc->queued)
		return;
	const struct rule *r = find_rule(e, inc->rule_name);
	incident_clear_actions(inc);
	inc->actions = r && r->n_actions ? calloc(r->n_actions, sizeof(*inc->actions)) : NULL;
	inc->n_actions = inc->actions ? r->n_actions : 0;
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
	if (resolved_meanwhile)
		e->n_open--;
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
	inc->next_action++;
	if ((!ok && !(r && r->on_failure_continue)) || inc->next_action >= inc->n_actions) {
		bool all_ok = true;
		for (size_t i = 0; i < inc->next_action; i++)
			all_ok = all_ok && strcmp(inc->actions[i].result, "ok") == 0;
		finish_incident(e, inc, all_ok && inc->next_action >= inc->n_actions);
		return;
	}
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
	size_t n = 6 + inc->trigger_labels.n + inc->trigger_annotations.n, k = 0;
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
	if (!r || inc->next_action >= inc->n_actions) {
		finish_incident(e, inc, r != NULL);
		return;
	}
	const struct action_tpl *at = &r->actions[inc->next_action];
	struct action_record *rec = &inc->actions[inc->next_action];
	struct secret_ctx sc = {e->cfg};
	struct template_ctx ctx;
	struct label_set labels, annotations;
	struct error err = {{0}};
	template_ctx_for(inc, &sc, &ctx, &labels, &annotations);
	rec->type = at->type;
	rec->started = timestamp_now();
	rec->exit_code = -1;

	json_t *x = expand_action(at, &ctx, &err);
	if (!x) {
		log_warn("action not run", "incident", inc->id, "error", err.msg, NULL);
		action_done(e, inc, rec, "error", err.msg, strlen(err.msg));
		return;
	}
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

int engine_approve(struct engine *e, const char *id, const char *by)
{
	int rc = 1;
	pthread_mutex_lock(&e->lock);
	struct incident *inc = find_incident(e, id);
	if (inc && inc->state == INC_AWAITING_APPROVAL) {
		inc->state = INC_ACTING;
		inc->has_acted = true;
		inc->last_acted = timestamp_now();
		note_acted(e, ts_ms(inc->last_acted));
		log_info("approved", "incident", id, "by", by, NULL);
		enqueue_run(e, inc);
		rc = 0;
	}
	pthread_mutex_unlock(&e->lock);
	return rc;
}

int engine_running_actions(struct engine *e)
{
	pthread_mutex_lock(&e->lock);
	int n = e->running + (int)e->n_queue;
	pthread_mutex_unlock(&e->lock);
	return n;
}
