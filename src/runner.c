/*
 * runner: the action queue (limits.max_concurrent_actions), launching each
 * step (exec through proc, http through httpc), their completion
 * callbacks, and the child's environment and stdin.
 *
 * Must never: block the loop (proc and httpc are asynchronous), run an
 * action before its action_started record is durable, or run a step twice.
 * Lock rules: runner_enqueue_* run under e->lock; the callbacks (kick,
 * proc, httpc, journal wait, retry timer) run on the engine's loop and take
 * e->lock themselves. proc_spawn and httpc_send are called under the lock:
 * they only register work on the loop.
 */
#include "engine_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollbackd/httpc.h"
#include "rollbackd/log.h"
#include "rollbackd/metrics.h"
#include "rollbackd/proc.h"
#include "rollbackd/record.h"

static void run_next_action(struct engine *e, struct incident *inc);
static void launch_action(struct engine *e, struct incident *inc);
static void on_started_durable(bool ok, void *arg);
static void on_started_retry(evutil_socket_t fd, short what, void *arg);

void runner_enqueue_run(struct engine *e, struct incident *inc)
{
	if (!e->base || incident_queued(inc))
		return;
	struct incident_extra *x = incident_extra(inc);
	if (!x) {
		log_error("engine: out of memory queueing actions", "incident", inc->id, NULL);
		return;
	}
	const struct rule *r = engine_find_rule(e, inc->rule_name);
	incident_clear_actions(inc);
	x->actions = r && r->n_actions ? calloc(r->n_actions, sizeof(*x->actions)) : NULL;
	x->n_actions = x->actions ? r->n_actions : 0;
	runner_enqueue_resume(e, inc);
}

/* Queue inc's actions from inc->x->next_action on. */
void runner_enqueue_resume(struct engine *e, struct incident *inc)
{
	if (!e->base || incident_queued(inc))
		return;
	if (!incident_extra(inc)) {
		log_error("engine: out of memory queueing actions", "incident", inc->id, NULL);
		return;
	}
	inc->running = true;
	list_push_back(&e->queue, &inc->x->queued);
	e->n_queue++;
	event_active(e->kick, EV_READ, 0);
}

/* Runs on the loop thread: start queued incidents while slots are free. */
void runner_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct engine *e = arg;
	pthread_mutex_lock(&e->lock);
	while (e->n_queue > 0 && e->running < e->cfg->limits.max_concurrent_actions) {
		struct incident *inc =
		    CONTAINER_OF(list_pop_front(&e->queue), struct incident_extra, queued)->inc;
		e->n_queue--;
		e->running++;
		run_next_action(e, inc);
	}
	pthread_mutex_unlock(&e->lock);
}

static void finish_incident(struct engine *e, struct incident *inc, bool ok)
{
	bool resolved_meanwhile = inc->n_firing == 0;
	inc->running = false;
	targets_finish(e, inc, ts_ms(timestamp_now()));
	inc->state = resolved_meanwhile ? INC_RESOLVED : ok ? INC_ROLLED_BACK : INC_ACTION_FAILED;
	if (resolved_meanwhile) {
		e->n_open--;
		incident_resolved(e, inc);
		rec_resolved(e, inc);
		rec_notify(e, inc, NOTIFY_RESOLVE, "resolved while the actions ran", NULL);
	} else if (ok) {
		rec_notify(e, inc, NOTIFY_ROLLED_BACK, "the rollback actions succeeded", NULL);
		engine_arm_verify(e, inc);
	} else {
		rec_notify(e, inc, NOTIFY_TRIGGER, "a rollback action failed", NULL);
		engine_escalate_coalesced(e, inc, "a rollback action failed");
	}
	e->running--;
	log_info("actions finished", "incident", inc->id, "rule", inc->rule_name, "result",
		 ok ? "rolled_back" : "action_failed", NULL);
	if (e->n_queue > 0)
		event_active(e->kick, EV_READ, 0);
	engine_open_count(e);
}

#define STEP_TEXT_MAX 600    /* bytes of what a step says about an action */
#define STEP_OUTPUT_TAIL 300 /* bytes of a failed action's output in its step */

/* "Action 1 of 2 started: exec deploy/rollback.sh checkout" from the
 * redacted expansion (shown), cut to STEP_TEXT_MAX. */
static void step_started(struct engine *e, const struct incident *inc, size_t index,
			 const json_t *shown)
{
	struct buf t;
	buf_init(&t, STEP_TEXT_MAX);
	int bad = buf_addf(&t, "Action %zu of %zu started:", index + 1, inc->x->n_actions);
	const json_t *argv = json_object_get(shown, "argv");
	if (argv) {
		bad |= buf_adds(&t, " exec");
		for (size_t i = 0; i < json_array_size(argv) && !bad; i++) {
			const char *a = json_string_value(json_array_get(argv, i));
			bad |= buf_addc(&t, ' ') | buf_adds(&t, a ? a : "");
		}
	} else {
		const char *m = json_string_value(json_object_get(shown, "method"));
		const char *u = json_string_value(json_object_get(shown, "url"));
		bad |= buf_addf(&t, " http %s %s", m ? m : "POST", u ? u : "");
	}
	(void)bad; /* over the cap: what fitted */
	if (t.data)
		rec_step(e, inc, NOTIFY_STEP_ACTION_STARTED, t.data);
	buf_release(&t);
}

/* "Action 1 of 2 finished: ok (exit 0, 1.2 s)", a failure with its
 * output's tail (already redacted). */
static void step_finished(struct engine *e, const struct incident *inc, size_t index,
			  const struct action_record *rec)
{
	char text[STEP_TEXT_MAX + STEP_OUTPUT_TAIL + 64];
	bool ok = strcmp(rec->result, "ok") == 0;
	double secs = (double)timestamp_diff_ms(rec->finished, rec->started) / 1000.0;
	int n;
	if (rec->type == ACTION_EXEC)
		n = snprintf(text, sizeof(text), "Action %zu of %zu %s: %s (exit %d, %.1f s)",
			     index + 1, inc->x->n_actions, ok ? "finished" : "failed", rec->result,
			     rec->exit_code, secs);
	else
		n = snprintf(text, sizeof(text), "Action %zu of %zu %s: %s (HTTP %d, %.1f s)",
			     index + 1, inc->x->n_actions, ok ? "finished" : "failed", rec->result,
			     rec->status_code, secs);
	if (!ok && rec->output && rec->output[0] && n > 0 && (size_t)n < sizeof(text)) {
		size_t len = strlen(rec->output);
		const char *tail =
		    rec->output + (len > STEP_OUTPUT_TAIL ? len - STEP_OUTPUT_TAIL : 0);
		while (((unsigned char)*tail & 0xc0) == 0x80) /* a character's start */
			tail++;
		snprintf(text + n, sizeof(text) - (size_t)n, "\n%s%s",
			 len > STEP_OUTPUT_TAIL ? "…" : "", tail);
	}
	rec_step(e, inc, ok ? NOTIFY_STEP_ACTION_FINISHED : NOTIFY_STEP_ACTION_FAILED, text);
}

static void action_done(struct engine *e, struct incident *inc, struct action_record *rec,
			const char *result, const char *output, size_t output_len)
{
	const struct rule *r = engine_find_rule(e, inc->rule_name);
	rec->finished = timestamp_now();
	rec->done = true;
	rec->result = result;
	/* Redacted where it is captured: the journal, notices, the API and the
	 * log only ever see this. Output at the cap was cut: a secret's head
	 * at its end goes too. */
	struct buf clean = BUF_INIT;
	if (actions_redact_text(e->cfg, output, output_len, output_len >= MAX_OUTPUT, &clean) < 0)
		buf_release(&clean);
	else
		rec->output = buf_detach(&clean, NULL);
	double secs = (double)timestamp_diff_ms(rec->finished, rec->started) / 1000.0;
	metric_observe(e->action_duration, secs);
	metric_inc(metrics_child(e->actions_total, inc->rule_name,
				 rec->type == ACTION_EXEC ? "exec" : "http", result));
	bool ok = strcmp(result, "ok") == 0;
	size_t index = inc->x->next_action++;
	/* before the notice of the incident's new state: the thread tells the
	 * step, then the living message changes */
	step_finished(e, inc, index, rec);
	if ((!ok && !(r && r->on_failure_continue)) || inc->x->next_action >= inc->x->n_actions) {
		bool all_ok = true;
		for (size_t i = 0; i < inc->x->next_action; i++)
			all_ok = all_ok && strcmp(inc->x->actions[i].result, "ok") == 0;
		all_ok = all_ok && inc->x->next_action >= inc->x->n_actions;
		rec_action_finished(e, inc, index, rec,
				    inc->n_firing == 0 ? "resolved"
				    : all_ok	       ? "rolled_back"
						       : "action_failed");
		finish_incident(e, inc, all_ok);
		return;
	}
	rec_action_finished(e, inc, index, rec, NULL);
	run_next_action(e, inc);
}

static void on_proc_done(const struct proc_result *res, void *arg)
{
	struct incident *inc = arg;
	struct engine *e = incident_engine(inc);
	pthread_mutex_lock(&e->lock);
	struct action_record *rec = &inc->x->actions[inc->x->next_action];
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
	struct engine *e = incident_engine(inc);
	pthread_mutex_lock(&e->lock);
	struct action_record *rec = &inc->x->actions[inc->x->next_action];
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

/* The first label or annotation of inc whose value holds a NUL: it cannot
 * be passed (an environment value, a C string, would end there). */
static const char *runner_nul_field(const struct inc_sets *sets, const char **set)
{
	for (int pass = 0; pass < 2; pass++) {
		const struct label_set *l = &sets->set[pass ? SET_ANNOTATIONS : SET_LABELS];
		for (size_t i = 0; i < l->n; i++)
			if (memchr(l->items[i].value, '\0', l->items[i].value_len)) {
				*set = pass ? "annotation" : "label";
				return l->items[i].name;
			}
	}
	return NULL;
}

/* Build the exec environment: a minimal PATH/HOME/LANG plus SPEC's vars. */
static char **runner_exec_env(struct engine *e, const struct incident *inc)
{
	struct inc_sets sets;
	if (incident_sets(inc, &sets) < 0)
		return NULL;
	size_t n = 9 + sets.set[SET_LABELS].n + sets.set[SET_ANNOTATIONS].n, k = 0;
	char **env = calloc(n + 1, sizeof(*env));
	if (!env) {
		inc_sets_release(&sets);
		return NULL;
	}
	const char *path = getenv("PATH");
	const char *home = getenv("HOME");
	struct buf b = BUF_INIT;
#define ADD_ENV(...)                                                                               \
	do {                                                                                       \
		buf_reset(&b);                                                                     \
		if (buf_addf(&b, __VA_ARGS__) == 0 && (env[k] = strdup(b.data)) != NULL)           \
			k++;                                                                       \
	} while (0)
	ADD_ENV("PATH=%s", path ? path : "/usr/local/bin:/usr/bin:/bin");
	ADD_ENV("HOME=%s", home ? home : "/");
	ADD_ENV("ROLLBACKD_INCIDENT=%s", inc->id);
	ADD_ENV("ROLLBACKD_RULE=%s", inc->rule_name);
	ADD_ENV("ROLLBACKD_DRY_RUN=%s", "0");
	struct change *chg = calloc(1, sizeof(*chg));
	buf_reset(&b);
	if (chg && incident_target_name(inc, &b) == 0 && changes_latest(e->changes, b.data, chg)) {
		/* only when known, so a script can fall back without a template error */
		ADD_ENV("ROLLBACKD_CHANGE_REVISION=%s", chg->revision);
		if (chg->previous_revision[0])
			ADD_ENV("ROLLBACKD_CHANGE_PREVIOUS_REVISION=%s", chg->previous_revision);
		ADD_ENV("ROLLBACKD_CHANGE_SOURCE=%s", chg->source);
	}
	free(chg);
	for (int pass = 0; pass < 2; pass++) {
		const struct label_set *set = &sets.set[pass ? SET_ANNOTATIONS : SET_LABELS];
		for (size_t i = 0; i < set->n; i++) {
			buf_reset(&b);
			buf_adds(&b, pass ? "ROLLBACKD_ANNOTATION_" : "ROLLBACKD_LABEL_");
			for (const char *c = set->items[i].name; *c; c++) {
				char u = (*c >= 'a' && *c <= 'z') ? (char)(*c - 32) : *c;
				buf_addc(
				    &b, (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') ? u : '_');
			}
			buf_addc(&b, '=');
			/* a value with a NUL never gets here (runner_nul_field) */
			buf_add(&b, set->items[i].value, set->items[i].value_len);
			if (b.data && (env[k] = strdup(b.data)) != NULL)
				k++;
		}
	}
#undef ADD_ENV
	buf_release(&b);
	inc_sets_release(&sets);
	return env;
}

static void runner_free_strv(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

static char *runner_stdin_json(const struct incident *inc)
{
	struct inc_sets sets;
	if (incident_sets(inc, &sets) < 0)
		return NULL;
	json_t *labels = json_object(), *ann = json_object();
	const struct label_set *l = &sets.set[SET_LABELS], *a = &sets.set[SET_ANNOTATIONS];
	for (size_t i = 0; i < l->n; i++)
		json_object_set_new(labels, l->items[i].name, json_string(l->items[i].value));
	for (size_t i = 0; i < a->n; i++)
		json_object_set_new(ann, a->items[i].name, json_string(a->items[i].value));
	inc_sets_release(&sets);
	json_t *obj = json_pack("{s:s, s:s, s:i, s:o, s:o}", "id", inc->id, "rule", inc->rule_name,
				"episode", inc->episode, "labels", labels, "annotations", ann);
	char *s = obj ? json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(obj);
	return s;
}

static void run_next_action(struct engine *e, struct incident *inc)
{
	const struct rule *r = engine_find_rule(e, inc->rule_name);
	if (!r || inc->x->next_action >= inc->x->n_actions || inc->x->next_action >= r->n_actions) {
		/* done, or a reload removed the rule or its remaining actions */
		finish_incident(e, inc, r != NULL && inc->x->next_action >= inc->x->n_actions);
		return;
	}
	const struct action_tpl *at = &r->actions[inc->x->next_action];
	struct action_record *rec = &inc->x->actions[inc->x->next_action];
	struct secret_ctx sc = {e->cfg};
	struct template_ctx ctx;
	struct inc_sets sets;
	struct error err = {{0}};
	struct change chg;
	bool no_mem = actions_template_ctx(inc, &sc, &ctx, &sets, &chg) < 0;
	rec->type = at->type;
	rec->started = timestamp_now();
	rec->exit_code = -1;

	const char *set = NULL,
		   *nul = !no_mem && at->type == ACTION_EXEC ? runner_nul_field(&sets, &set) : NULL;
	if (no_mem)
		error_set(&err, "out of memory expanding the action; the action did not run");
	else if (nul)
		error_set(&err,
			  "the %s '%s' contains a NUL byte: it cannot be passed in the "
			  "environment; the action did not run",
			  set, nul);
	json_t *x = no_mem || nul ? NULL : actions_expand(at, &ctx, &err);
	inc_sets_release(&sets);
	if (!x) {
		log_warn("action not run", "incident", inc->id, "error", err.msg, NULL);
		action_done(e, inc, rec, "error", err.msg, strlen(err.msg));
		return;
	}
	/* action_started is durable before anything leaves: after a crash the
	 * journal tells what may have run, and nothing runs twice. */
	inc->x->ready = x;
	inc->x->ready_tpl = at;
	rec->begun = true;
	uint64_t ticket = 0;
	{
		struct buf m = BUF_INIT;
		/* Redacted once, where expanded: x runs, shown is journaled. */
		json_t *shown = actions_redact_json(e->cfg, x);
		char *desc = shown ? json_dumps(shown, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
		struct record_action_started v = {
		    .rule = inc->rule_name,
		    .episode = inc->episode,
		    .index = inc->x->next_action,
		    .exec = at->type == ACTION_EXEC,
		    .action_json = desc,
		};
		int bad = !desc || record_build_action_started(&m, &v) < 0 ||
			  rec_append_ticket(e, "action_started", inc->id, &m, &ticket) < 0;
		if (!bad)
			step_started(e, inc, inc->x->next_action, shown);
		json_decref(shown);
		free(desc);
		buf_release(&m);
		/* Without a durable action_started nothing runs: a crash would
		 * leave no trace of what may have run. The action fails instead. */
		if (bad) {
			static const char why[] =
			    "action_started could not be journaled (over the journal's line limit, "
			    "or out of memory); the action did not run";
			log_error("journal: cannot record an action's start; not run", "incident",
				  inc->id, NULL);
			json_decref(inc->x->ready);
			inc->x->ready = NULL;
			rec->begun = false;
			action_done(e, inc, rec, "error", why, sizeof(why) - 1);
			return;
		}
		if (store_when_durable(e->store, ticket, e->base, on_started_durable, inc) == 0)
			return;
		static const char oom[] =
		    "out of memory waiting for the action_started record; the action did not run";
		log_error("journal: out of memory waiting for a record; not run", "incident",
			  inc->id, NULL);
		json_decref(inc->x->ready);
		inc->x->ready = NULL;
		rec->begun = false;
		action_done(e, inc, rec, "error", oom, sizeof(oom) - 1);
		return;
	}
	launch_action(e, inc);
}

/* The action_started record is on disk (or the disk failed: retry). */
static void on_started_durable(bool ok, void *arg)
{
	struct incident *inc = arg;
	struct engine *e = incident_engine(inc);
	pthread_mutex_lock(&e->lock);
	if (ok) {
		launch_action(e, inc);
	} else {
		log_warn("journal unavailable; the action waits for its record", "incident",
			 inc->id, NULL);
		struct timeval tv = timestamp_tv(1000);
		if (!inc->x->retry)
			inc->x->retry = evtimer_new(e->base, on_started_retry, inc);
		if (inc->x->retry)
			evtimer_add(inc->x->retry, &tv);
	}
	pthread_mutex_unlock(&e->lock);
}

static void on_started_retry(evutil_socket_t fd, short what, void *arg)
{
	struct incident *inc = arg;
	struct engine *e = incident_engine(inc);
	if (store_when_durable(e->store, store_last_ticket(e->store), e->base, on_started_durable,
			       inc) < 0) {
		struct timeval tv = timestamp_tv(1000);
		evtimer_add(inc->x->retry, &tv);
	}
}

/* Start the action prepared in inc->x->ready (under e->lock, on the loop). */
static void launch_action(struct engine *e, struct incident *inc)
{
	/* The action whose action_started is on disk runs as it was expanded,
	 * with the template of the rule set it was decided with, even when a
	 * SIGHUP replaced the rules meanwhile (the old set lives until exit). */
	json_t *x = inc->x->ready;
	const struct action_tpl *at = inc->x->ready_tpl;
	inc->x->ready = NULL;
	inc->x->ready_tpl = NULL;
	struct action_record *rec = &inc->x->actions[inc->x->next_action];
	struct error err = {{0}};
	if (!at || !x) {
		action_done(e, inc, rec, "error", "the action was not prepared",
			    strlen("the action was not prepared"));
		json_decref(x);
		return;
	}
	log_info("action started", "incident", inc->id, "rule", inc->rule_name, "type",
		 at->type == ACTION_EXEC ? "exec" : "http", NULL);
	if (at->type == ACTION_EXEC) {
		json_t *jargv = json_object_get(x, "argv");
		size_t argc = json_array_size(jargv);
		char **argv = calloc(argc + 1, sizeof(*argv));
		char **env = runner_exec_env(e, inc);
		char *in = runner_stdin_json(inc);
		int rc = -1;
		if (argv && env) {
			for (size_t i = 0; i < argc; i++)
				argv[i] = (char *)json_string_value(json_array_get(jargv, i));
			struct proc_spec spec = {
			    .argv = argv,
			    .envp = env,
			    .stdin_data = in,
			    .stdin_len = in ? strlen(in) : 0,
			    .timeout_ms = at->timeout_ms,
			    .kill_grace_ms = KILL_GRACE_MS,
			    .max_output = MAX_OUTPUT,
			};
			rc = proc_spawn(e->base, &spec, on_proc_done, inc, NULL, &err);
		} else {
			error_set(&err, "out of memory");
		}
		free(argv);
		runner_free_strv(env);
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
	char *body = json_object_get(x, "body") ? json_dumps(json_object_get(x, "body"),
							     JSON_COMPACT | JSON_PRESERVE_ORDER)
						: NULL;
	int rc = -1;
	if (headers) {
		const char *hk;
		json_t *hv;
		struct buf hb = BUF_INIT;
		json_object_foreach(jh, hk, hv)
		{
			buf_reset(&hb);
			if (buf_addf(&hb, "%s: %s", hk, json_string_value(hv)) == 0)
				headers[k++] = strdup(hb.data);
		}
		buf_release(&hb);
		if (body && !json_object_get(jh, "Content-Type"))
			headers[k++] = strdup("Content-Type: application/json");
		struct httpc_request req = {
		    .method = at->method,
		    .url = json_string_value(json_object_get(x, "url")),
		    .headers = (const char *const *)headers,
		    .body = body,
		    .body_len = body ? strlen(body) : 0,
		    .timeout_ms = at->timeout_ms,
		    .retries = at->retries,
		    .expect_status = at->expect_status,
		    .n_expect_status = at->n_expect_status,
		    .max_response = MAX_OUTPUT,
		    .backoff_base_ms = 500,
		    .backoff_max_ms = 30000,
		};
		/* The HTTP client (and libcurl) is created on first use. */
		if (!e->http && !(e->http = httpc_new(e->base)))
			error_set(&err,
				  "cannot start the HTTP client (is libcurl.so.4 installed?)");
		else
			rc = httpc_send(e->http, &req, on_http_done, inc, &err);
	} else {
		error_set(&err, "out of memory");
	}
	runner_free_strv(headers);
	free(body);
	json_decref(x);
	if (rc < 0)
		action_done(e, inc, rec, "error", err.msg, strlen(err.msg));
}
