/*
 * verify_run: verify.query evaluated against Prometheus (SPEC §6), the
 * engine's shell around the pure verify.c.
 *
 * From the end of the actions, every verify.interval, the rule's query
 * (expanded for the incident, values escaped for PromQL) goes to
 * prometheus.url's GET /api/v1/query through httpc (libcurl multi on the
 * engine's loop). Each answer is journaled as a verify_sample record and
 * folded: effective once every series held the condition for 'for';
 * at verify.within, ineffective or inconclusive, escalated.
 *
 * Lock rules: the functions declared in engine_internal.h run under
 * e->lock on the engine's loop (timer callbacks); the query's callback
 * takes the lock itself. Must never: block the loop, count a failed
 * query, no data or NaN as a pass, or act for another episode.
 */
#include "engine_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollbackd/duration.h"
#include "rollbackd/httpc.h"
#include "rollbackd/log.h"
#include "rollbackd/metrics.h"
#include "rollbackd/record.h"

#define QUERY_TIMEOUT_MS 10000
#define QUERY_TIMEOUT_MIN_MS 1000
#define MAX_ANSWER (1u << 20)

bool verify_run_active(const struct incident *inc)
{
	return inc->x && inc->x->verify_active && inc->x->verify_episode == inc->episode;
}

void verify_run_begin(struct engine *e, struct incident *inc)
{
	struct incident_extra *x = incident_extra(inc);
	if (!x || (!x->verify && !(x->verify = malloc(sizeof(*x->verify))))) {
		log_error("engine: out of memory starting verify.query; verify.within decides",
			  "incident", inc->id, NULL);
		return;
	}
	verify_progress_init(x->verify);
	x->verify_active = true;
	x->verify_episode = inc->episode;
	timers_arm(e, inc, STORE_TIMER_VERIFY_SAMPLE, 0);
}

int verify_run_init(struct engine *e)
{
	static const char *const labels[] = {"rule", "result", NULL};
	e->verify_total = metrics_register(METRIC_COUNTER, "verify_total",
					   "Verifications by rule and result.", labels, NULL, 0);
	return e->verify_total ? 0 : -1;
}

static void count(struct engine *e, const struct incident *inc, enum verify_result res)
{
	if (e->verify_total)
		metric_inc(metrics_child(e->verify_total, inc->rule_name, verify_result_name(res)));
}

/* The verification ends with res. */
static void finish(struct engine *e, struct incident *inc, enum verify_result res, const char *why)
{
	char note[512];
	bool settles = inc->state == INC_ROLLED_BACK; /* else the alert resolved meanwhile */
	inc->x->verify_active = false;		      /* it was active: x exists */
	timers_cancel(e, inc, STORE_TIMER_VERIFY_SAMPLE);
	timers_cancel(e, inc, STORE_TIMER_VERIFY);
	count(e, inc, res);
	if (res == VERIFY_EFFECTIVE)
		snprintf(note, sizeof(note), "verify.query: %s", why);
	else if (res == VERIFY_INEFFECTIVE)
		snprintf(note, sizeof(note), "The rollback did not fix it: verify.query: %s", why);
	else
		snprintf(note, sizeof(note),
			 "Verification inconclusive, the rollback is not known to have worked: "
			 "verify.query: %s",
			 why);
	if (settles) {
		inc->state = res == VERIFY_EFFECTIVE	 ? INC_EFFECTIVE
			     : res == VERIFY_INEFFECTIVE ? INC_INEFFECTIVE
							 : INC_INCONCLUSIVE;
		rec_state(e, inc, note);
	} else {
		/* the alert resolved meanwhile: the result is still journaled */
		struct record_verify_result v = {
		    .rule = inc->rule_name,
		    .episode = inc->episode,
		    .result = verify_result_name(res),
		    .reason = note,
		};
		struct buf m = BUF_INIT;
		if (record_build_verify_result(&m, &v) < 0 ||
		    rec_append(e, "verify_result", inc->id, &m) < 0)
			log_error("journal: cannot record a verification result", NULL);
		buf_release(&m);
	}
	/* A step of the thread, while there is one (a resolve closed it). */
	if (settles)
		rec_step(e, inc,
			 res == VERIFY_EFFECTIVE     ? NOTIFY_STEP_EFFECTIVE
			 : res == VERIFY_INEFFECTIVE ? NOTIFY_STEP_INEFFECTIVE
						     : NOTIFY_STEP_INCONCLUSIVE,
			 note);
	if (res == VERIFY_EFFECTIVE) {
		/* after the resolve, people were told already: nothing re-opens it */
		if (settles)
			rec_notify(e, inc, NOTIFY_UPDATE, note, NULL);
	} else {
		rec_notify(e, inc, NOTIFY_ESCALATE, note, note);
		engine_escalate_coalesced(e, inc, note);
	}
	log_info("verification", "incident", inc->id, "rule", inc->rule_name, "result",
		 verify_result_name(res), NULL);
}

static void journal_sample(struct engine *e, const struct incident *inc, const struct rule *r,
			   const char *query, const struct verify_sample *s)
{
	struct record_verify_sample v = {
	    .rule = inc->rule_name,
	    .episode = inc->episode,
	    .query = query,
	    .has_value = s->ok,
	    .value = s->value,
	    .below = r->verify_below,
	    .threshold = r->verify_threshold,
	    .for_s = r->verify_for_ms / 1000,
	    .series = s->n_series,
	    .holds = s->holds,
	    .error = s->ok ? NULL : s->error,
	};
	struct buf m = BUF_INIT;
	int bad = record_build_verify_sample(&m, &v);
	if (bad || rec_append(e, "verify_sample", inc->id, &m) < 0)
		log_error("journal: cannot record a verify_sample", NULL);
	buf_release(&m);
}

/* What a failed query is journaled and folded as. */
static void sample_failed(struct engine *e, struct incident *inc, const struct rule *r,
			  const char *query, const char *msg)
{
	struct verify_sample s;
	memset(&s, 0, sizeof(s));
	snprintf(s.error, sizeof(s.error), "%s", msg);
	journal_sample(e, inc, r, query, &s);
	verify_step(inc->x->verify, &s, timestamp_mono_ms(), r->verify_for_ms);
}

/* One query on its way: the incident (by id: it is looked up again, never
 * kept as a pointer across the wait), its episode and the query as sent. */
struct verify_call {
	struct engine *e;
	char id[INCIDENT_ID_LEN + 1];
	int episode;
	char query[];
};

static void on_query_done(const struct httpc_result *res, void *arg)
{
	struct verify_call *call = arg;
	struct engine *e = call->e;
	pthread_mutex_lock(&e->lock);
	struct incident *inc = incident_find(e, call->id);
	if (!inc)
		goto out;
	if (inc->x) /* else an incident made anew since, with the same id */
		inc->x->verify_inflight = false;
	const struct rule *r = engine_find_rule(e, inc->rule_name);
	/* httpc_free at shutdown cancels what is in flight: not a sample */
	bool cancelled = res->status == 0 && res->error && strcmp(res->error, "cancelled") == 0;
	if (r && r->verify_query && verify_run_active(inc) && inc->episode == call->episode &&
	    !cancelled) {
		struct verify_cond cond = {r->verify_below, r->verify_threshold};
		struct verify_sample s;
		verify_sample_classify(res->status, res->error, res->body, res->body_len, &cond,
				       &s);
		journal_sample(e, inc, r, call->query, &s);
		if (verify_step(inc->x->verify, &s, timestamp_mono_ms(), r->verify_for_ms) ==
		    VERIFY_EFFECTIVE) {
			char why[160], fb[32];
			duration_format(r->verify_for_ms, fb, sizeof(fb));
			snprintf(why, sizeof(why), "every series %s %g for %s",
				 r->verify_below ? "below" : "above", r->verify_threshold, fb);
			finish(e, inc, VERIFY_EFFECTIVE, why);
		}
	}
	engine_open_count(e);
out:
	pthread_mutex_unlock(&e->lock);
	free(call);
}

/* Every byte outside RFC 3986's unreserved set percent-encoded. */
static int url_encode(struct buf *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	int bad = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p && !bad; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
			bad = buf_addc(out, (char)*p);
		} else {
			char enc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
			bad = buf_add(out, enc, 3);
		}
	}
	return bad ? -1 : 0;
}

void verify_run_sample(struct engine *e, struct incident *inc)
{
	const struct rule *r = engine_find_rule(e, inc->rule_name);
	if (!verify_run_active(inc))
		return;
	if (!r || !r->verify_query) { /* a reload took the query away */
		finish(e, inc, VERIFY_INCONCLUSIVE, "the rule no longer has a query");
		return;
	}
	timers_arm(e, inc, STORE_TIMER_VERIFY_SAMPLE, r->verify_interval_ms);
	if (inc->x->verify_inflight) /* a slow Prometheus: one query at a time */
		return;
	struct secret_ctx sc = {e->cfg};
	struct template_ctx ctx;
	struct inc_sets sets;
	struct change chg;
	struct buf q = BUF_INIT, url = BUF_INIT;
	struct error err = {""};
	struct verify_call *call = NULL;
	if (actions_template_ctx(inc, &sc, &ctx, &sets, &chg) < 0) {
		inc_sets_release(&sets);
		sample_failed(e, inc, r, r->verify_query, "out of memory");
		goto out;
	}
	int bad = verify_expand_query(r->verify_query, &ctx, &q, &err);
	inc_sets_release(&sets);
	if (bad < 0) {
		sample_failed(e, inc, r, r->verify_query, err.msg);
		goto out;
	}
	if (!e->cfg->prometheus_url || !e->cfg->prometheus_url[0]) {
		sample_failed(e, inc, r, q.data, "prometheus.url is not set in the config");
		goto out;
	}
	if (buf_adds(&url, e->cfg->prometheus_url) < 0 ||
	    buf_adds(&url, "/api/v1/query?query=") < 0 || url_encode(&url, q.data) < 0 ||
	    !(call = malloc(sizeof(*call) + q.len + 1))) {
		sample_failed(e, inc, r, q.data, "out of memory");
		goto out;
	}
	call->e = e;
	memcpy(call->id, inc->id, sizeof(call->id));
	call->episode = inc->episode;
	memcpy(call->query, q.data, q.len + 1);
	/* one interval, but at least 1 s (a busy host) and at most 10 s */
	int64_t timeout = r->verify_interval_ms < QUERY_TIMEOUT_MIN_MS ? QUERY_TIMEOUT_MIN_MS
			  : r->verify_interval_ms > QUERY_TIMEOUT_MS   ? QUERY_TIMEOUT_MS
								       : r->verify_interval_ms;
	static const char *const headers[] = {"Accept: application/json", NULL};
	struct httpc_request req = {
	    .method = "GET",
	    .url = url.data,
	    .headers = headers,
	    .timeout_ms = timeout,
	    .retries = 0,
	    .max_response = MAX_ANSWER,
	    .backoff_base_ms = 500,
	    .backoff_max_ms = 30000,
	};
	/* any status is an answer: verify.c reads Prometheus' error body */
	static const int any[] = {200, 400, 422, 503};
	req.expect_status = any;
	req.n_expect_status = sizeof(any) / sizeof(any[0]);
	if (!e->http && !(e->http = httpc_new(e->base))) {
		sample_failed(e, inc, r, q.data,
			      "cannot start the HTTP client (is libcurl.so.4 installed?)");
	} else if (httpc_send(e->http, &req, on_query_done, call, &err) < 0) {
		sample_failed(e, inc, r, q.data, err.msg);
	} else {
		inc->x->verify_inflight = true;
		call = NULL;
	}
out:
	free(call);
	buf_release(&q);
	buf_release(&url);
}

bool verify_run_deadline(struct engine *e, struct incident *inc)
{
	char why[VERIFY_ERROR_MAX + 64];
	if (!verify_run_active(inc))
		return false;
	enum verify_result res = verify_deadline(inc->x->verify, why, sizeof(why));
	finish(e, inc, res, why);
	return true;
}
