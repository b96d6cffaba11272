/*
 * views: the JSON views of incidents (GET /v1/incidents, /v1/incidents/{id},
 * the ack page's summary, the running-actions count).
 *
 * Must never: change state. Lock rules: each function takes e->lock for
 * the copy into JSON and serializes after releasing it.
 */
#include "engine_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *views_incident(const struct incident *inc, bool with_actions)
{
	char first[TIMESTAMP_STRLEN], last[TIMESTAMP_STRLEN];
	timestamp_format(ts_of_ns(inc->first_seen_ns), first, sizeof(first));
	timestamp_format(ts_of_ns(inc->last_seen_ns), last, sizeof(last));
	json_t *labels = json_object();
	struct inc_sets sets;
	if (incident_sets(inc, &sets) < 0) {
		json_decref(labels);
		return NULL;
	}
	const struct label_set *g = &sets.set[SET_GROUP];
	for (size_t i = 0; i < g->n; i++)
		json_object_set_new(labels, g->items[i].name, json_string(g->items[i].value));
	inc_sets_release(&sets);
	json_t *obj = json_pack(
	    "{s:s, s:s, s:s, s:o, s:s?, s:s?, s:i, s:s, s:s, s:s?, s:s?}", "id", inc->id, "rule",
	    inc->rule_name, "state", incident_state_names[inc->state], "labels", labels, "target",
	    incident_target(inc), "coalesced_into",
	    incident_coalesced_into(inc)[0] ? incident_coalesced_into(inc) : NULL, "episode",
	    inc->episode, "first_seen", first, "last_seen", last, "acknowledged_by",
	    incident_acknowledged_by(inc), "approved_by", incident_approved_by(inc));
	if (!obj || !with_actions)
		return obj;
	json_t *actions = json_array();
	for (size_t i = 0; i < incident_n_actions(inc); i++) {
		const struct action_record *a = &inc->x->actions[i];
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
			      exec ? "exec" : "http", "started", s, "finished", a->done ? f : NULL,
			      "result", a->done ? a->result : "running", "exit_code",
			      exec && a->done ? json_integer(a->exit_code) : json_null(),
			      "status_code",
			      !exec && a->done ? json_integer(a->status_code) : json_null(),
			      "output", a->output));
	}
	json_object_set_new(obj, "actions", actions);
	return obj;
}

static int views_dump(json_t *j, struct buf *out)
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
	const struct incident *inc;
	LIST_FOR_EACH(inc, link, &e->incidents)
	if (arr)
		json_array_append_new(arr, views_incident(inc, false));
	pthread_mutex_unlock(&e->lock);
	return views_dump(arr, out);
}

_Static_assert(ENGINE_STATES == INC_STATE_COUNT, "engine.h ENGINE_STATES");
_Static_assert(sizeof(((struct engine_page *)0)->next) > INCIDENT_ID_LEN, "engine_page.next");

const char *engine_state_name(int i)
{
	return i >= 0 && i < INC_STATE_COUNT ? incident_state_names[i] : "";
}

int engine_incidents_page(struct engine *e, struct engine_page *p, struct buf *out)
{
	int st = -1;
	if (p->state && (st = incident_state_parse(p->state)) < 0)
		return ENGINE_PAGE_BAD_STATE;
	json_t *arr = json_array();
	if (!arr)
		return -1;
	size_t skipped = 0, n = 0;
	const struct incident *last = NULL;
	p->next[0] = '\0';
	p->matched = 0;
	memset(p->state_counts, 0, sizeof(p->state_counts));
	pthread_mutex_lock(&e->lock);
	const struct list_node *from = &e->incidents; /* newest first */
	if (p->before) {
		const struct incident *b = incident_find(e, p->before);
		if (!b) {
			pthread_mutex_unlock(&e->lock);
			json_decref(arr);
			return ENGINE_PAGE_BAD_CURSOR;
		}
		from = &b->link;
	}
	for (const struct list_node *l = from->next; l != &e->incidents; l = l->next) {
		const struct incident *inc = CONTAINER_OF(l, struct incident, link);
		if (p->count)
			p->state_counts[inc->state]++;
		if (st >= 0 && (int)inc->state != st)
			continue;
		p->matched++;
		if (skipped < p->skip) {
			skipped++;
			continue;
		}
		if (n == p->limit) { /* one more matches: there is a next page */
			if (last && !p->next[0])
				memcpy(p->next, last->id, sizeof(last->id));
			if (!p->count)
				break;
			continue;
		}
		json_array_append_new(arr, views_incident(inc, false));
		n++;
		last = inc;
	}
	pthread_mutex_unlock(&e->lock);
	return views_dump(arr, out);
}

int engine_incident_json(struct engine *e, const char *id, struct buf *out)
{
	pthread_mutex_lock(&e->lock);
	struct incident *inc = incident_find(e, id);
	json_t *j = inc ? views_incident(inc, true) : NULL;
	pthread_mutex_unlock(&e->lock);
	if (!inc)
		return 1;
	return views_dump(j, out);
}

int engine_incident_summary(struct engine *e, const char *id, char *out, size_t outsz)
{
	pthread_mutex_lock(&e->lock);
	struct incident *inc = incident_find(e, id);
	if (inc) {
		const char *svc = incident_label(inc, SET_GROUP, "service");
		snprintf(out, outsz, "%s%s%s, %s", inc->rule_name, svc ? " on " : "",
			 svc ? svc : "", incident_state_names[inc->state]);
	}
	pthread_mutex_unlock(&e->lock);
	return inc ? 0 : -1;
}

int engine_approve_preview(struct engine *e, const char *id, struct buf *out)
{
	int rc = -1;
	pthread_mutex_lock(&e->lock);
	struct incident *inc = incident_find(e, id);
	const struct rule *r = inc ? engine_find_rule(e, inc->rule_name) : NULL;
	if (!inc || !r)
		goto out;
	int bad = 0;
	if (r->has_value) {
		const struct rule_value *rv = &r->value;
		const char *v = incident_label(
		    inc, rv->from_annotations ? SET_ANNOTATIONS : SET_LABELS, rv->key);
		bad |= buf_addf(out, "value %s", v ? v : "(none)");
		if (rv->has_above)
			bad |= buf_addf(out, " above %g", rv->above);
		if (rv->has_below)
			bad |= buf_addf(out, " below %g", rv->below);
		bad |= buf_adds(out, "; ");
	}
	char since[TIMESTAMP_STRLEN];
	timestamp_format(inc->episode_start, since, sizeof(since));
	int64_t secs = (ts_ms(timestamp_now()) - ts_ms(inc->episode_start)) / 1000;
	bad |=
	    buf_addf(out, "firing since %s (%lldm%02llds); will run: ", since,
		     (long long)(secs > 0 ? secs / 60 : 0), (long long)(secs > 0 ? secs % 60 : 0));
	struct buf plan = BUF_INIT;
	bad |= actions_plan_json(e, r, inc, &plan); /* redacted where expanded */
	static const char pre[] = ",\"actions\":";
	if (!bad && plan.len >= sizeof(pre) - 1)
		bad |= buf_add(out, plan.data + sizeof(pre) - 1, plan.len - (sizeof(pre) - 1));
	buf_release(&plan);
	rc = bad ? -1 : 0;
out:
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
