/*
 * Unit tests for notify. The module's .c is included so that the notice
 * serialization, the backoff and the redaction can be tested directly.
 *
 * notify_pure: notices round-trip to the Slack and PagerDuty bodies, hold
 * no secret, stay bounded and valid UTF-8; backoff bounds; replay.
 * notify_http: delivery against a scripted evhttp server on 127.0.0.1:0 in
 * the test's own event base, with a real journal in a temporary directory:
 * PagerDuty order per incident, Retry-After, retries until delivered, a
 * final 4xx, Slack coalescing and pacing, the bot API, response_url, and an
 * outbox that survives a restart. Each test has a safety timer.
 */
#include "notify.c"

/* Channels whose state the tests look into. */
#include "channel_email.c"
#include "channel_slack_bot.c"
#include "rollbackd/pagerduty.h"
#include "rollbackd/record.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <dirent.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <jansson.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#define WEBHOOK_SECRET "T000/B000/WEBHOOKSECRETxyz"
#define BOT_TOKEN "xoxb-BOTTOKENSECRET-123"
#define ROUTING_KEY "R0UT1NGKEYabcdef0123456789abcdef"
#define LINKS_KEY "links-secret-key-0123456789"
#define INC1 "inc-0123456789abcdef"
#define INC2 "inc-1111111111111111"

/* ---- fixtures -------------------------------------------------------------- */

static struct config cfg;
static struct event_base *base;
static char dir[64];

static void set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = strdup(v);
	cr_assert_not_null(*dst);
}

static void set_secret(struct secret *s, const char *v)
{
	secret_release(s);
	cr_assert_eq(secret_from_bytes(v, strlen(v), s), 0);
}

static void base_setup(void)
{
	cr_assert_eq(evthread_use_pthreads(), 0);
	base = event_base_new();
	cr_assert_not_null(base);
	cr_assert_eq(config_init(&cfg), 0);
	set_str(&cfg.public_url, "https://rb.example.com");
	set_secret(&cfg.links_secret, LINKS_KEY);
	snprintf(dir, sizeof(dir), "/tmp/test_notify.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	/* journal.c qsorts a NULL segment list for an empty directory (UBSan
	 * reports it); an empty current segment avoids that. */
	char p[128];
	snprintf(p, sizeof(p), "%s/" JOURNAL_FILE, dir);
	FILE *f = fopen(p, "w");
	cr_assert_not_null(f);
	fclose(f);
}

static void rm_dir(void)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char p[512];
	if (!d)
		return;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

static void base_teardown(void)
{
	config_release(&cfg);
	event_base_free(base);
	rm_dir();
}

static const struct label labels[] = {
    {"alertname", "HighErrorRate", 13},
    {"service", "checkout", 8},
    {"severity", "page", 4},
};

static struct notify_action actions[] = {
    {"http", "ok", -1, 200, "{\"enabled\":false}"},
    {"exec", "failed", 3, 0, "rolling back checkout\nerror: no previous release\n"},
};

static const char *const both[] = {"slack", "pagerduty"};
static const char *const only_slack[] = {"slack"};
static const char *const only_pd[] = {"pagerduty"};

/* The rule's notify list. */
static void set_channels(struct notify_event *ev, bool slack, bool pagerduty)
{
	ev->channels = slack && pagerduty ? both : slack ? only_slack : only_pd;
	ev->n_channels = slack && pagerduty ? 2 : slack || pagerduty ? 1 : 0;
}

/* The bot channel's state, for its message table. */
static struct bot *bot_of(struct notify *n)
{
	for (size_t i = 0; i < n->n_ch; i++)
		if (n->ch[i].h == &channel_slack_bot)
			return n->ch[i].ctx.priv;
	cr_assert_fail("no bot channel");
	return NULL;
}

#define thread_find(n, inc) bot_thread_find(bot_of(n), inc)
#define thread_set(n, inc, ch, ts) bot_thread_set(bot_of(n), inc, ch, ts)

/* The outbox of the channel that gets name's notices. */
static struct entry_list *outbox_of(struct notify *n, const char *name)
{
	return &chan_for(n, name, false)->outbox;
}

static struct notify_event event(enum notify_kind k, const char *incident)
{
	struct notify_event ev = {
	    .kind = k,
	    .channels = both,
	    .n_channels = 2,
	    .incident = incident,
	    .rule = "checkout-error-rate",
	    .service = "checkout",
	    .state = k == NOTIFY_RESOLVE ? "resolved" : "rolled_back",
	    .value = "0.052",
	    .threshold = "above 0.01",
	    .severity = "page",
	    .reason = "error ratio 0.052 above 0.01 for 1m",
	    .alert_started = {1700000000, 0},
	    .generator_url = "http://prom:9090/graph?g0.expr=up",
	    .external_url = "http://am:9093",
	    .labels = labels,
	    .n_labels = 3,
	    .actions = actions,
	    .n_actions = 2,
	};
	return ev;
}

static struct notify *make(struct notify_options *extra)
{
	struct notify_options o = {.cfg = &cfg, .base = base};
	if (extra) {
		o.retry_base_ms = extra->retry_base_ms;
		o.retry_max_ms = extra->retry_max_ms;
		o.slack_interval_ms = extra->slack_interval_ms;
	}
	struct notify *n = notify_new(&o);
	cr_assert_not_null(n);
	return n;
}

static struct record_toks replay_toks;

/* journal_open's replay: decode the line, then notify_replay. */
static int replay_decoded(const struct journal_line *line, void *n)
{
	struct record rec;
	if (record_decode(line->text, line->len, &rec, &replay_toks) == RECORD_ENOMEM)
		return -1;
	return notify_replay(&rec, n);
}

static struct journal *jopen(struct notify *replay_into)
{
	struct journal_options jo = {.state_dir = dir};
	struct journal *j = NULL;
	struct error err = {{0}};
	if (replay_into) {
		jo.replay = replay_decoded;
		jo.replay_arg = replay_into;
	}
	cr_assert_eq(journal_open(&jo, &j, &err), 0, "journal_open: %s", err.msg);
	return j;
}

/* The journal's records, parsed (after journal_close). */
static json_t *records[256];
static size_t n_records;

static void read_journal(void)
{
	struct journal_reader *r = NULL;
	struct journal_line l;
	struct error err = {{0}};
	bool torn;
	n_records = 0;
	cr_assert_eq(journal_reader_open(dir, &r, &err), 0, "%s", err.msg);
	while (journal_reader_next(r, &l, &torn, &err) == 1 && n_records < 256) {
		json_error_t je;
		records[n_records] = json_loadb(l.text, l.len, 0, &je);
		cr_assert_not_null(records[n_records], "journal line is not JSON: %s", je.text);
		n_records++;
	}
	journal_reader_free(r);
}

static void free_records(void)
{
	for (size_t i = 0; i < n_records; i++)
		json_decref(records[i]);
	n_records = 0;
}

static size_t count_type(const char *type, const char *channel)
{
	size_t c = 0;
	for (size_t i = 0; i < n_records; i++) {
		const char *t = json_string_value(json_object_get(records[i], "type"));
		const char *ch = json_string_value(json_object_get(records[i], "channel"));
		if (t && strcmp(t, type) == 0 && (!channel || (ch && strcmp(ch, channel) == 0)))
			c++;
	}
	return c;
}

static json_t *find_type(const char *type, size_t nth)
{
	for (size_t i = 0; i < n_records; i++) {
		const char *t = json_string_value(json_object_get(records[i], "type"));
		if (t && strcmp(t, type) == 0 && nth-- == 0)
			return records[i];
	}
	return NULL;
}

static char *slurp_journal(void)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/" JOURNAL_FILE, dir);
	FILE *f = fopen(p, "r");
	cr_assert_not_null(f);
	static char text[1 << 20];
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	return text;
}

/* ---- notify_pure ----------------------------------------------------------- */

TestSuite(notify_pure, .init = base_setup, .fini = base_teardown, .timeout = 30);

static json_t *load_buf(const struct buf *b)
{
	json_error_t je;
	json_t *v = json_loadb(b->data, b->len, 0, &je);
	cr_assert_not_null(v, "not JSON: %s", je.text);
	return v;
}

Test(notify_pure, notice_round_trip)
{
	struct buf b = BUF_INIT, slack = BUF_INIT, pd = BUF_INIT, links[2] = {BUF_INIT, BUF_INIT};
	struct notify_event ev = event(NOTIFY_TRIGGER, INC1);
	struct notice nt;
	struct notify *n;

	ev.awaiting_approval = true;
	ev.note = "waiting for approval";
	cr_assert_eq(notice_write(&b, &ev, false), 0);
	json_t *j = load_buf(&b);
	cr_assert_str_eq(json_string_value(json_object_get(j, "kind")), "trigger");
	cr_assert_str_eq(json_string_value(json_object_get(j, "incident")), INC1);
	cr_assert_str_eq(json_string_value(json_object_get(j, "alert_started")),
			 "2023-11-14T22:13:20Z");
	cr_assert_str_eq(
	    json_string_value(json_object_get(json_object_get(j, "labels"), "service")),
	    "checkout");
	cr_assert_eq(json_array_size(json_object_get(j, "actions")), 2);
	cr_assert(json_is_true(json_object_get(j, "awaiting_approval")));
	cr_assert_null(json_object_get(j, "acknowledged_by"));
	json_decref(j);

	cr_assert_eq(notice_parse(b.data, b.len, &nt), 0);
	cr_assert_eq(nt.kind, NOTIFY_TRIGGER);
	cr_assert_str_eq(nt.rule, "checkout-error-rate");
	cr_assert_str_eq(nt.value, "0.052");
	cr_assert_str_eq(nt.threshold, "above 0.01");
	cr_assert_str_eq(nt.severity, "page");
	cr_assert_str_eq(nt.note, "waiting for approval");
	cr_assert_eq(nt.alert_started.sec, 1700000000);
	cr_assert_eq(nt.n_labels, 3);
	cr_assert_str_eq(nt.labels[2].name, "severity");
	cr_assert_eq(nt.labels[2].value_len, 4);
	cr_assert_eq(nt.n_actions, 2);
	cr_assert_str_eq(nt.actions[1].type, "exec");
	cr_assert_eq(nt.actions[1].exit_code, 3);
	cr_assert_eq(nt.actions[0].status_code, 200);
	cr_assert_str_eq(nt.actions[1].output, actions[1].output);
	cr_assert(nt.awaiting_approval);

	/* The messages, built from the notice as at send time. */
	n = make(NULL);
	struct slack_incident_view v;
	notice_slack_view(n, &nt, links, &v);
	cr_assert_not_null(v.ack_url);
	cr_assert_not_null(v.approve_url);
	cr_assert(strncmp(v.ack_url, "https://rb.example.com/v1/ack/" INC1 "?action=ack&ep=1&exp=",
			  strlen("https://rb.example.com/v1/ack/" INC1 "?action=ack&ep=1&exp=")) ==
		  0);
	cr_assert_not_null(strstr(v.approve_url, "action=approve"));
	cr_assert_eq(slack_message(&v, 1, &slack), 0);
	cr_assert_not_null(strstr(slack.data, "checkout-error-rate"));
	cr_assert_not_null(strstr(slack.data, "action=approve"));
	cr_assert_not_null(strstr(slack.data, "no previous release"));
	json_decref(load_buf(&slack));

	struct pd_view pv = {.id = nt.incident,
			     .rule = nt.rule,
			     .service = nt.service,
			     .state = nt.state,
			     .severity_label = nt.severity,
			     .summary_extra = nt.reason,
			     .labels = nt.labels,
			     .n_labels = nt.n_labels};
	cr_assert_eq(pd_event_redacted(&pv, PD_TRIGGER, &pd), 0);
	json_t *p = load_buf(&pd);
	cr_assert_str_eq(json_string_value(json_object_get(p, "dedup_key")), INC1);
	cr_assert_str_eq(
	    json_string_value(json_object_get(
		json_object_get(json_object_get(json_object_get(p, "payload"), "custom_details"),
				"labels"),
		"alertname")),
	    "HighErrorRate");
	cr_assert_str_eq(
	    json_string_value(json_object_get(json_object_get(p, "payload"), "severity")),
	    "critical");
	json_decref(p);

	/* Without public_url: no link at all. */
	buf_release(&links[0]);
	buf_release(&links[1]);
	set_str(&cfg.public_url, "");
	notice_slack_view(n, &nt, links, &v);
	cr_assert_null(v.ack_url);
	cr_assert_null(v.approve_url);

	notify_free(n);
	notice_release(&nt);
	buf_release(&b);
	buf_release(&slack);
	buf_release(&pd);
	buf_release(&links[0]);
	buf_release(&links[1]);
}

Test(notify_pure, notice_is_bounded_and_valid_utf8)
{
	struct buf b = BUF_INIT;
	struct notify_event ev = event(NOTIFY_UPDATE, INC1);
	struct notice nt;
	size_t big = 100000;
	char *out = malloc(big + 1);
	cr_assert_not_null(out);
	memset(out, 'a', big);
	memcpy(out + big - 10,
	       "\xff\xfe"
	       "tail\xc3",
	       7); /* invalid bytes at the end */
	out[big - 3] = 'Z';
	out[big - 2] = 'Z';
	out[big - 1] = 'Z';
	out[big] = '\0';
	struct notify_action acts[NOTICE_MAX_ACTIONS + 20];
	for (size_t i = 0; i < sizeof(acts) / sizeof(acts[0]); i++)
		acts[i] = (struct notify_action){"exec", "ok", 0, 0, out};
	ev.actions = acts;
	ev.n_actions = sizeof(acts) / sizeof(acts[0]);
	ev.reason = "bad \xc0\xaf utf-8";

	cr_assert_eq(notice_write(&b, &ev, false), 0);
	cr_assert_lt(b.len, 64 * 1024, "notice is %zu bytes", b.len);
	cr_assert_eq(notice_parse(b.data, b.len, &nt), 0, "the strict tokenizer refuses it");
	cr_assert_eq(nt.n_actions, NOTICE_MAX_ACTIONS);
	cr_assert_not_null(nt.actions[0].output);
	cr_assert_leq(strlen(nt.actions[0].output), SLACK_OUTPUT_MAX + 8);
	size_t ol = strlen(nt.actions[0].output);
	cr_assert_str_eq(nt.actions[0].output + ol - 3, "ZZZ", "the tail is kept");
	cr_assert_null(nt.actions[SLACK_MAX_ACTIONS_SHOWN].output, "only shown outputs kept");
	cr_assert_not_null(strstr(nt.reason, "\xef\xbf\xbd"));
	notice_release(&nt);
	buf_release(&b);
	free(out);
}

Test(notify_pure, oversized_notice_says_less)
{
	static char values[PD_LABELS_MAX][PD_LABEL_VALUE_MAX + 1];
	static char names[PD_LABELS_MAX][16];
	struct label ls[PD_LABELS_MAX];
	for (size_t i = 0; i < PD_LABELS_MAX; i++) {
		memset(values[i], 0x01, PD_LABEL_VALUE_MAX); /* each escapes to \u0001 */
		snprintf(names[i], sizeof(names[i]), "l%03zu", i);
		ls[i] = (struct label){names[i], values[i], PD_LABEL_VALUE_MAX};
	}
	set_secret(&cfg.notify.pagerduty_routing_key, ROUTING_KEY);
	struct notify *n = make(NULL);
	struct notify_event ev = event(NOTIFY_TRIGGER, INC1);
	ev.labels = ls;
	ev.n_labels = PD_LABELS_MAX;
	notify_incident(n, &ev);
	cr_assert_eq(notify_pending(n), 1, "the notice is kept, smaller");
	struct notify_entry *e = n->queue.head;
	cr_assert_leq(e->notice_len, NOTICE_MAX);
	cr_assert_null(strstr(e->notice, "\"labels\""));
	cr_assert_not_null(strstr(e->notice, "\"actions\""));
	notify_free(n);
}

Test(notify_pure, backoff_bounds)
{
	for (int round = 1; round <= 30; round++) {
		int64_t cap = 1000;
		for (int i = 1; i < round && cap < 300000; i++)
			cap *= 2;
		if (cap > 300000)
			cap = 300000;
		int64_t lo = INT64_MAX, hi = 0;
		for (int i = 0; i < 2000; i++) {
			int64_t d = round_delay_ms(round, 1000, 300000);
			cr_assert_geq(d, 1000);
			cr_assert_leq(d, cap, "round %d: %" PRId64 " > %" PRId64, round, d, cap);
			lo = d < lo ? d : lo;
			hi = d > hi ? d : hi;
		}
		if (round >= 4) { /* full jitter: the whole range is used */
			cr_assert_lt(lo, cap / 3, "round %d: lowest %" PRId64, round, lo);
			cr_assert_gt(hi, cap * 2 / 3, "round %d: highest %" PRId64, round, hi);
		}
	}
	cr_assert_eq(round_delay_ms(1, 1000, 300000), 1000);
}

Test(notify_pure, pagerduty_update_makes_no_entry)
{
	set_secret(&cfg.notify.pagerduty_routing_key, ROUTING_KEY);
	struct notify *n = make(NULL);
	struct notify_event ev = event(NOTIFY_UPDATE, INC1);
	notify_incident(n, &ev);
	cr_assert_eq(notify_pending(n), 0, "PagerDuty has no update");
	ev.kind = NOTIFY_TRIGGER;
	notify_incident(n, &ev);
	cr_assert_eq(notify_pending(n), 1);
	/* Slack configured too: an update goes to Slack only. */
	set_secret(&cfg.notify.slack_webhook_url, "http://127.0.0.1:1/" WEBHOOK_SECRET);
	ev.kind = NOTIFY_UPDATE;
	notify_incident(n, &ev);
	cr_assert_eq(notify_pending(n), 2);
	cr_assert_str_eq(chan_name(n, n->queue.tail->ch), "slack");
	/* Not asked for by the rule: nothing. */
	ev.kind = NOTIFY_TRIGGER;
	set_channels(&ev, false, false);
	notify_incident(n, &ev);
	cr_assert_eq(notify_pending(n), 2);
	notify_free(n);
}

Test(notify_pure, nothing_configured_is_a_noop)
{
	struct notify *n = make(NULL);
	struct notify_event ev = event(NOTIFY_TRIGGER, INC1);
	notify_incident(n, &ev);
	notify_slack_response(n, "ftp://nope", "{}");
	cr_assert_eq(notify_pending(n), 0);
	notify_start(n, NULL);
	notify_free(n);
}

Test(notify_pure, intent_holds_no_secret)
{
	set_secret(&cfg.notify.slack_webhook_url, "http://127.0.0.1:1/" WEBHOOK_SECRET);
	set_secret(&cfg.notify.pagerduty_routing_key, ROUTING_KEY);
	struct notify *n = make(NULL);
	struct journal *j = jopen(NULL);
	struct notify_event ev = event(NOTIFY_TRIGGER, INC1);
	ev.awaiting_approval = true;
	notify_incident(n, &ev); /* before start: journaled by notify_start */
	cr_assert_eq(notify_pending(n), 2);
	notify_start(n, j);
	ev = event(NOTIFY_ACK, INC1);
	ev.acknowledged_by = "alice";
	notify_incident(n, &ev);
	cr_assert_eq(notify_pending(n), 4);
	notify_free(n);
	journal_close(j, 1000);

	const char *text = slurp_journal();
	cr_assert_null(strstr(text, WEBHOOK_SECRET));
	cr_assert_null(strstr(text, ROUTING_KEY));
	cr_assert_null(strstr(text, LINKS_KEY));
	cr_assert_null(strstr(text, "sig="));
	cr_assert_null(strstr(text, "127.0.0.1:1"));

	read_journal();
	cr_assert_eq(count_type("notify_intent", "slack"), 2);
	cr_assert_eq(count_type("notify_intent", "pagerduty"), 2);
	json_t *r = find_type("notify_intent", 0);
	cr_assert_str_eq(json_string_value(json_object_get(r, "incident")), INC1);
	cr_assert_str_eq(json_string_value(json_object_get(r, "event")), "trigger");
	const char *id = json_string_value(json_object_get(r, "id"));
	cr_assert_eq(strlen(id), 18);
	cr_assert(strncmp(id, "n-", 2) == 0);
	cr_assert(json_is_object(json_object_get(r, "notice")));
	r = find_type("notify_intent", 3);
	cr_assert_str_eq(json_string_value(json_object_get(r, "event")), "acknowledge");
	cr_assert_str_eq(
	    json_string_value(json_object_get(json_object_get(r, "notice"), "acknowledged_by")),
	    "alice");
	free_records();
}

/* As the daemon's replay does: decode once, hand the record over whatever
 * its status (a line that is not a record is skipped by every consumer). */
static void replay_text(struct notify *n, const char *text)
{
	struct record rec;
	int st = record_decode(text, strlen(text), &rec, &replay_toks);
	cr_assert_neq(st, RECORD_ENOMEM);
	cr_assert_eq(st == RECORD_OK, text[0] == '{', "%s", text);
	cr_assert_eq(notify_replay(&rec, n), 0);
}

#define NOTICE "{\"kind\":\"trigger\",\"incident\":\"" INC1 "\",\"rule\":\"r\"}"

Test(notify_pure, replay_synthetic_lines)
{
	set_secret(&cfg.notify.slack_webhook_url, "http://127.0.0.1:1/" WEBHOOK_SECRET);
	set_secret(&cfg.notify.pagerduty_routing_key, ROUTING_KEY);
	struct notify *n = make(NULL);

	replay_text(n, "{\"seq\":1,\"ts\":\"2026-01-01T00:00:00Z\",\"type\":\"decision\","
		       "\"incident\":\"" INC1 "\",\"prev\":\"00\",\"hash\":\"00\"}");
	replay_text(n, "not json at all");
	replay_text(n, "{\"seq\":2,\"ts\":\"2026-01-01T00:00:00Z\",\"type\":\"notify_intent\","
		       "\"incident\":\"" INC1 "\",\"id\":\"n-0000000000000001\",\"channel\":"
		       "\"pagerduty\",\"event\":\"trigger\",\"notice\":" NOTICE
		       ",\"prev\":\"00\",\"hash\":\"00\"}");
	replay_text(n, "{\"seq\":3,\"ts\":\"2026-01-01T00:00:00Z\",\"type\":\"notify_intent\","
		       "\"incident\":\"" INC1 "\",\"id\":\"n-0000000000000002\",\"channel\":"
		       "\"slack\",\"event\":\"trigger\",\"notice\":" NOTICE
		       ",\"prev\":\"00\",\"hash\":\"00\"}");
	cr_assert_eq(notify_pending(n), 2);
	replay_text(n, "{\"seq\":4,\"ts\":\"2026-01-01T00:00:00Z\",\"type\":\"notify_sent\","
		       "\"incident\":\"" INC1 "\",\"id\":\"n-0000000000000001\",\"channel\":"
		       "\"pagerduty\",\"status_code\":202,\"attempts\":1,\"prev\":\"00\","
		       "\"hash\":\"00\"}");
	cr_assert_eq(notify_pending(n), 1);
	cr_assert_str_eq(outbox_of(n, "slack")->head->id, "n-0000000000000002");
	cr_assert_str_eq(chan_name(n, outbox_of(n, "slack")->head->ch), "slack");
	cr_assert_str_eq(outbox_of(n, "slack")->head->notice, NOTICE,
			 "the notice is kept as journaled");
	/* A sent record for an id we never saw (a slack_response) changes nothing. */
	replay_text(n, "{\"seq\":5,\"ts\":\"2026-01-01T00:00:00Z\",\"type\":\"notify_sent\","
		       "\"incident\":\"\",\"id\":\"n-00000000000000ff\",\"channel\":"
		       "\"slack_response\",\"status_code\":200,\"attempts\":1,\"prev\":\"00\","
		       "\"hash\":\"00\"}");
	cr_assert_eq(notify_pending(n), 1);
	/* Bot mode: a sent record with a message remembers it. */
	replay_text(n, "{\"seq\":6,\"ts\":\"2026-01-01T00:00:00Z\",\"type\":\"notify_sent\","
		       "\"incident\":\"" INC2 "\",\"id\":\"n-0000000000000003\",\"channel\":"
		       "\"slack\",\"status_code\":200,\"attempts\":1,\"slack_channel\":\"C1\","
		       "\"slack_ts\":\"17.5\",\"prev\":\"00\",\"hash\":\"00\"}");
	const struct thread *t = thread_find(n, INC2);
	cr_assert_not_null(t);
	cr_assert_str_eq(t->ts, "17.5");
	replay_text(n, "{\"seq\":7,\"ts\":\"2026-01-01T00:00:00Z\",\"type\":\"notify_failed\","
		       "\"incident\":\"" INC1 "\",\"id\":\"n-0000000000000002\",\"channel\":"
		       "\"slack\",\"status_code\":400,\"error\":\"x\",\"attempts\":1,"
		       "\"prev\":\"00\",\"hash\":\"00\"}");
	cr_assert_eq(notify_pending(n), 0);
	notify_free(n);
}

Test(notify_pure, replay_real_journal)
{
	set_secret(&cfg.notify.slack_webhook_url, "http://127.0.0.1:1/" WEBHOOK_SECRET);
	set_secret(&cfg.notify.pagerduty_routing_key, ROUTING_KEY);
	struct notify *n = make(NULL);
	struct journal *j = jopen(NULL);
	notify_start(n, j);
	struct notify_event ev = event(NOTIFY_TRIGGER, INC1);
	notify_incident(n, &ev);
	ev = event(NOTIFY_UPDATE, INC2);
	notify_incident(n, &ev);
	cr_assert_eq(notify_pending(n), 3);
	notify_free(n);
	journal_close(j, 1000);

	/* PagerDuty is gone from the config: its notice fails on start. */
	secret_release(&cfg.notify.pagerduty_routing_key);
	n = make(NULL);
	j = jopen(n);
	cr_assert_eq(notify_pending(n), 3);
	notify_start(n, j);
	cr_assert_eq(notify_pending(n), 2);
	notify_free(n);
	journal_close(j, 1000);
	read_journal();
	json_t *f = find_type("notify_failed", 0);
	cr_assert_not_null(f);
	cr_assert_str_eq(json_string_value(json_object_get(f, "channel")), "pagerduty");
	free_records();
}

Test(notify_pure, errors_are_redacted)
{
	set_secret(&cfg.notify.slack_webhook_url,
		   "https://hooks.slack.com/services/" WEBHOOK_SECRET);
	set_secret(&cfg.notify.slack_bot_token, BOT_TOKEN);
	set_secret(&cfg.notify.pagerduty_routing_key, ROUTING_KEY);
	struct notify *n = make(NULL);
	char out[CHANNEL_ERROR_MAX + 1];
	notify_error_text(n, "https://hooks.slack.com/actions/RESP",
			  "url 'https://hooks.slack.com/services/" WEBHOOK_SECRET
			  "': bad; key " ROUTING_KEY " token " BOT_TOKEN
			  "\n resp https://hooks.slack.com/actions/RESP",
			  out);
	cr_assert_null(strstr(out, WEBHOOK_SECRET), "%s", out);
	cr_assert_null(strstr(out, ROUTING_KEY), "%s", out);
	cr_assert_null(strstr(out, BOT_TOKEN), "%s", out);
	cr_assert_null(strstr(out, "RESP"), "%s", out);
	cr_assert_null(strchr(out, '\n'));
	cr_assert_not_null(strstr(out, "<redacted>"));
	/* A secret across the cut: redacted before cutting, no head left. */
	char in[400];
	memset(in, 'a', 295);
	snprintf(in + 295, sizeof(in) - 295, "%s", ROUTING_KEY);
	notify_error_text(n, NULL, in, out);
	cr_assert_eq(strlen(out), CHANNEL_ERROR_MAX);
	cr_assert_null(strstr(out, "R0UT"), "%s", out);
	notify_free(n);
}

/* ---- notify_http: a scripted server ------------------------------------------ */

struct step {
	int status;
	int retry_after; /* seconds, 0 = no header */
	const char *body;
};

struct seen {
	char path[128];
	char auth[128];
	char ctype[64];
	char *body;
	int64_t at_ms;
};

static struct evhttp *server;
static int port;
static struct event *poll_ev;
static bool (*until)(void);
static int64_t deadline;
static const struct step *script;
static size_t n_script, script_at;
static struct seen seen[64];
static size_t n_seen;
static struct notify *nt_;
static struct journal *jr;
static bool ratelimit_once;

static void handler(struct evhttp_request *req, void *arg)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct evbuffer *body = evhttp_request_get_input_buffer(req);
	struct seen *s = &seen[n_seen < 63 ? n_seen++ : 63];
	const char *a = evhttp_find_header(in, "Authorization");
	const char *ct = evhttp_find_header(in, "Content-Type");
	size_t len = evbuffer_get_length(body);

	snprintf(s->path, sizeof(s->path), "%s", evhttp_request_get_uri(req));
	snprintf(s->auth, sizeof(s->auth), "%s", a ? a : "");
	snprintf(s->ctype, sizeof(s->ctype), "%s", ct ? ct : "");
	free(s->body);
	s->body = calloc(1, len + 1);
	evbuffer_copyout(body, s->body, len);
	s->at_ms = timestamp_mono_ms();

	struct evbuffer *out = evbuffer_new();
	struct step st = {.status = 200, .body = "ok"};
	if (strncmp(s->path, "/pd", 3) == 0)
		st = (struct step){.status = 202, .body = "{\"status\":\"success\"}"};
	if (strncmp(s->path, "/api/", 5) == 0) {
		/* Slack echoes the message, before the ts here: a cut reply loses it. */
		static char ok[64 * 1024];
		if (!ok[0]) {
			int at =
			    snprintf(ok, sizeof(ok),
				     "{\"ok\":true,\"channel\":\"C42\",\"message\":{\"text\":\"");
			memset(ok + at, 'x', 40000);
			snprintf(ok + at + 40000, sizeof(ok) - (size_t)at - 40000,
				 "\"},\"ts\":\"1700.0001\"}");
		}
		st = (struct step){.status = 200, .body = ok};
		if (ratelimit_once) {
			ratelimit_once = false;
			st.body = "{\"ok\":false,\"error\":\"ratelimited\"}";
		}
	}
	if (script_at < n_script && strncmp(s->path, "/resp", 5) != 0)
		st = script[script_at++];
	if (st.retry_after) {
		char v[16];
		snprintf(v, sizeof(v), "%d", st.retry_after);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", v);
	}
	evbuffer_add(out, st.body ? st.body : "", st.body ? strlen(st.body) : 0);
	evhttp_send_reply(req, st.status, "Scripted", out);
	evbuffer_free(out);
}

#define SCRIPT(...)                                                                                \
	do {                                                                                       \
		static const struct step steps_[] = {__VA_ARGS__};                                 \
		script = steps_;                                                                   \
		n_script = sizeof(steps_) / sizeof(steps_[0]);                                     \
		script_at = 0;                                                                     \
	} while (0)

static void poll_cb(evutil_socket_t fd, short what, void *arg)
{
	if ((until && until()) || timestamp_mono_ms() > deadline)
		event_base_loopbreak(base);
}

/* Run the loop until cond() holds; false when timeout_ms passed first. */
static bool run_until(bool (*cond)(void), int64_t timeout_ms)
{
	until = cond;
	deadline = timestamp_mono_ms() + timeout_ms;
	event_base_dispatch(base);
	return cond ? cond() : true;
}

static void run_for(int64_t ms)
{
	run_until(NULL, ms);
}

static bool drained(void)
{
	return notify_pending(nt_) == 0;
}

static char url_buf[256];

static const char *url(const char *path)
{
	snprintf(url_buf, sizeof(url_buf), "http://127.0.0.1:%d%s", port, path);
	return url_buf;
}

static void http_setup(void)
{
	base_setup();
	cr_assert_eq(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
	static const char *proxies[] = {"http_proxy", "https_proxy", "HTTPS_PROXY",
					"ALL_PROXY",  "all_proxy",   NULL};
	for (const char **p = proxies; *p; p++)
		unsetenv(*p);
	server = evhttp_new(base);
	evhttp_set_allowed_methods(server, EVHTTP_REQ_POST | EVHTTP_REQ_GET);
	evhttp_set_gencb(server, handler, NULL);
	struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(server, "127.0.0.1", 0);
	cr_assert_not_null(bs);
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	cr_assert_eq(getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sin, &len), 0);
	port = ntohs(sin.sin_port);
	poll_ev = event_new(base, -1, EV_PERSIST, poll_cb, NULL);
	struct timeval tv = {0, 10000};
	event_add(poll_ev, &tv);
	set_str(&cfg.notify.pagerduty_url, url("/pd"));
	set_str(&cfg.notify.slack_api_url, url("/api"));
	n_seen = 0;
	n_script = script_at = 0;
	ratelimit_once = false;
	jr = jopen(NULL);
}

/* Stop notify and the journal, then read what was journaled. */
static void finish(void)
{
	notify_free(nt_);
	nt_ = NULL;
	journal_close(jr, 1000);
	jr = NULL;
	read_journal();
}

static void http_teardown(void)
{
	notify_free(nt_);
	nt_ = NULL;
	if (jr)
		journal_close(jr, 1000);
	free_records();
	for (size_t i = 0; i < 64; i++) {
		free(seen[i].body);
		seen[i].body = NULL;
	}
	event_free(poll_ev);
	evhttp_free(server);
	base_teardown();
	curl_global_cleanup();
}

TestSuite(notify_http, .init = http_setup, .fini = http_teardown, .timeout = 30);

static struct notify *start_notify(int64_t retry_base_ms, int64_t slack_interval_ms)
{
	struct notify_options o = {.retry_base_ms = retry_base_ms,
				   .retry_max_ms = retry_base_ms * 4,
				   .slack_interval_ms = slack_interval_ms};
	nt_ = make(&o);
	notify_start(nt_, jr);
	return nt_;
}

static json_t *seen_json(size_t i)
{
	json_error_t je;
	json_t *v = json_loads(seen[i].body, 0, &je);
	cr_assert_not_null(v, "request %zu is not JSON: %s", i, je.text);
	return v;
}

Test(notify_http, pagerduty_trigger_ack_resolve_in_order)
{
	set_secret(&cfg.notify.pagerduty_routing_key, ROUTING_KEY);
	start_notify(100, 0);
	struct notify_event ev = event(NOTIFY_TRIGGER, INC1);
	set_channels(&ev, false, true);
	notify_incident(nt_, &ev);
	ev.kind = NOTIFY_ACK;
	ev.acknowledged_by = "alice";
	notify_incident(nt_, &ev);
	ev.kind = NOTIFY_RESOLVE;
	notify_incident(nt_, &ev);
	cr_assert(run_until(drained, 5000));
	cr_assert_eq(n_seen, 3);
	static const char *const want[] = {"trigger", "acknowledge", "resolve"};
	for (size_t i = 0; i < 3; i++) {
		json_t *b = seen_json(i);
		cr_assert_str_eq(seen[i].path, "/pd");
		cr_assert_str_eq(seen[i].ctype, "application/json");
		cr_assert_str_eq(json_string_value(json_object_get(b, "event_action")), want[i]);
		cr_assert_str_eq(json_string_value(json_object_get(b, "dedup_key")), INC1);
		cr_assert_str_eq(json_string_value(json_object_get(b, "routing_key")), ROUTING_KEY);
		json_decref(b);
	}
	/* The trigger carries the signed Acknowledge link; the journal does not. */
	cr_assert_not_null(strstr(seen[0].body, "sig="));
	finish();
	cr_assert_eq(count_type("notify_intent", "pagerduty"), 3);
	cr_assert_eq(count_type("notify_sent", "pagerduty"), 3);
	json_t *s = find_type("notify_sent", 0);
	cr_assert_eq(json_integer_value(json_object_get(s, "status_code")), 202);
	cr_assert_eq(json_integer_value(json_object_get(s, "attempts")), 1);
	cr_assert_str_eq(json_string_value(json_object_get(s, "incident")), INC1);
	cr_assert_str_eq(json_string_value(json_object_get(s, "id")),
			 json_string_value(json_object_get(find_type("notify_intent", 0), "id")));
	const char *text = slurp_journal();
	cr_assert_null(strstr(text, ROUTING_KEY));
	cr_assert_null(strstr(text, "sig="));
}

Test(notify_http, retry_after_is_honoured)
{
	set_secret(&cfg.notify.pagerduty_routing_key, ROUTING_KEY);
	SCRIPT({429, 2, "slow down"});
	start_notify(100, 0);
	struct notify_event ev = event(NOTIFY_TRIGGER, INC1);
	set_channels(&ev, false, true);
	notify_incident(nt_, &ev);
	cr_assert(run_until(drained, 8000));
	cr_assert_eq(n_seen, 2);
	/* 10 ms for the clocks: libevent times from its cached "now". */
	cr_assert_geq(seen[1].at_ms - seen[0].at_ms, 1990, "waited only %" PRId64 " ms",
		      seen[1].at_ms - seen[0].at_ms);
	finish();
	json_t *s = find_type("notify_sent", 0);
	cr_assert_not_null(s);
	cr_assert_eq(json_integer_value(json_object_get(s, "attempts")), 2);
}

Test(notify_http, server_errors_are_retried_until_delivered_once)
{
	set_secret(&cfg.notify.pagerduty_routing_key, ROUTING_KEY);
	SCRIPT({500, 0, "oops"}, {500, 0, "oops"}, {500, 0, "oops"});
	start_notify(100, 0);
	struct notify_event ev = event(NOTIFY_TRIGGER, INC1);
	set_channels(&ev, false, true);
	notify_incident(nt_, &ev);
	cr_assert(run_until(drained, 8000));
	run_for(300); /* nothing more comes */
	cr_assert_eq(n_seen, 4);
	finish();
	cr_assert_eq(count_type("notify_sent", NULL), 1);
	cr_assert_eq(count_type("notify_failed", NULL), 0);
	json_t *s = find_type("notify_sent", 0);
	cr_assert_eq(json_integer_value(json_object_get(s, "attempts")), 4);
	cr_assert_eq(json_integer_value(json_object_get(s, "status_code")), 202);
}

Test(notify_http, client_error_fails_for_good)
{
	set_secret(&cfg.notify.pagerduty_routing_key, ROUTING_KEY);
	SCRIPT({400, 0, "{\"status\":\"invalid event\"}"});
	start_notify(100, 0);
	struct notify_event ev = event(NOTIFY_TRIGGER, INC1);
	set_channels(&ev, false, true);
	notify_incident(nt_, &ev);
	cr_assert(run_until(drained, 5000));
	run_for(400);
	cr_assert_eq(n_seen, 1);
	finish();
	cr_assert_eq(count_type("notify_sent", NULL), 0);
	json_t *f = find_type("notify_failed", 0);
	cr_assert_not_null(f);
	cr_assert_eq(json_integer_value(json_object_get(f, "status_code")), 400);
	cr_assert_eq(json_integer_value(json_object_get(f, "attempts")), 1);
	cr_assert_str_eq(json_string_value(json_object_get(f, "channel")), "pagerduty");
	cr_assert_not_null(strstr(json_string_value(json_object_get(f, "error")), "invalid event"));
	cr_assert_null(strstr(slurp_journal(), ROUTING_KEY));
}

static const char *const burst_ids[] = {"inc-000000000000000a", "inc-000000000000000b",
					"inc-000000000000000c", "inc-000000000000000d",
					"inc-000000000000000e"};

static void burst_cb(evutil_socket_t fd, short what, void *arg)
{
	struct notify_event ev = event(NOTIFY_TRIGGER, burst_ids[(intptr_t)arg]);
	set_channels(&ev, true, false);
	notify_incident(nt_, &ev);
}

Test(notify_http, slack_burst_is_coalesced)
{
	char wh[256];
	snprintf(wh, sizeof(wh), "%s", url("/slack/" WEBHOOK_SECRET));
	set_secret(&cfg.notify.slack_webhook_url, wh);
	start_notify(100, 0);
	struct event *t[5];
	for (intptr_t i = 0; i < 5; i++) {
		struct timeval tv = {0, (suseconds_t)(i * 150000)};
		t[i] = evtimer_new(base, burst_cb, (void *)i);
		evtimer_add(t[i], &tv);
	}
	run_for(700); /* all five are in */
	cr_assert(run_until(drained, 5000));
	cr_assert_leq(n_seen, 2, "%zu posts", n_seen);
	size_t most = 0;
	for (size_t i = 0; i < n_seen; i++) {
		size_t c = 0;
		cr_assert_str_eq(seen[i].path, "/slack/" WEBHOOK_SECRET);
		for (size_t k = 0; k < 5; k++)
			c += strstr(seen[i].body, burst_ids[k]) != NULL;
		most = c > most ? c : most;
		json_decref(seen_json(i));
	}
	cr_assert_geq(most, 2, "no message lists several incidents");
	if (n_seen == 2)
		cr_assert_geq(seen[1].at_ms - seen[0].at_ms, 990);
	finish();
	cr_assert_eq(count_type("notify_sent", "slack"), 5);
	cr_assert_null(strstr(slurp_journal(), WEBHOOK_SECRET));
	for (size_t i = 0; i < 5; i++)
		event_free(t[i]);
}

Test(notify_http, slack_bot_posts_then_updates)
{
	set_secret(&cfg.notify.slack_bot_token, BOT_TOKEN);
	set_str(&cfg.notify.slack_channel, "#rollbacks");
	ratelimit_once = true;
	start_notify(100, 100);
	struct notify_event ev = event(NOTIFY_TRIGGER, INC1);
	set_channels(&ev, true, false);
	notify_incident(nt_, &ev);
	ev.kind = NOTIFY_UPDATE;
	notify_incident(nt_, &ev);
	ev.kind = NOTIFY_RESOLVE;
	notify_incident(nt_, &ev);
	cr_assert(run_until(drained, 8000));
	cr_assert_eq(n_seen, 4, "%zu requests", n_seen); /* ratelimited, post, update, update */
	cr_assert_str_eq(seen[0].path, "/api/chat.postMessage");
	cr_assert_str_eq(seen[1].path, "/api/chat.postMessage");
	cr_assert_str_eq(seen[2].path, "/api/chat.update");
	cr_assert_str_eq(seen[3].path, "/api/chat.update");
	cr_assert_str_eq(seen[0].auth, "Bearer " BOT_TOKEN);
	json_t *b = seen_json(1);
	cr_assert_str_eq(json_string_value(json_object_get(b, "channel")), "#rollbacks");
	json_decref(b);
	b = seen_json(2);
	cr_assert_str_eq(json_string_value(json_object_get(b, "channel")), "C42");
	cr_assert_str_eq(json_string_value(json_object_get(b, "ts")), "1700.0001");
	json_decref(b);
	cr_assert_null(thread_find(nt_, INC1), "a resolved incident's message is forgotten");
	finish();
	cr_assert_eq(count_type("notify_sent", "slack"), 3);
	json_t *s = find_type("notify_sent", 0);
	cr_assert_str_eq(json_string_value(json_object_get(s, "slack_ts")), "1700.0001");
	cr_assert_str_eq(json_string_value(json_object_get(s, "slack_channel")), "C42");
	cr_assert_eq(json_integer_value(json_object_get(s, "attempts")), 2);
	cr_assert_null(strstr(slurp_journal(), BOT_TOKEN));
}

Test(notify_http, slack_bot_posts_anew_when_the_message_is_gone)
{
	set_secret(&cfg.notify.slack_bot_token, BOT_TOKEN);
	set_str(&cfg.notify.slack_channel, "#rollbacks");
	SCRIPT({200, 0, "{\"ok\":false,\"error\":\"message_not_found\"}"});
	start_notify(100, 50);
	cr_assert_eq(thread_set(nt_, INC1, "C9", "9.9"), 0);
	struct notify_event ev = event(NOTIFY_ACK, INC1);
	set_channels(&ev, true, false);
	notify_incident(nt_, &ev);
	cr_assert(run_until(drained, 5000));
	cr_assert_eq(n_seen, 2);
	cr_assert_str_eq(seen[0].path, "/api/chat.update");
	cr_assert_str_eq(seen[1].path, "/api/chat.postMessage");
	cr_assert_str_eq(thread_find(nt_, INC1)->ts, "1700.0001");
	finish();
	cr_assert_eq(count_type("notify_sent", "slack"), 1);
	cr_assert_eq(count_type("notify_failed", NULL), 0);
}

Test(notify_http, slack_bot_error_fails_for_good)
{
	set_secret(&cfg.notify.slack_bot_token, BOT_TOKEN);
	set_str(&cfg.notify.slack_channel, "#rollbacks");
	SCRIPT({200, 0, "{\"ok\":false,\"error\":\"channel_not_found\"}"});
	start_notify(100, 50);
	struct notify_event ev = event(NOTIFY_TRIGGER, INC1);
	set_channels(&ev, true, false);
	notify_incident(nt_, &ev);
	cr_assert(run_until(drained, 5000));
	run_for(200);
	cr_assert_eq(n_seen, 1);
	finish();
	json_t *f = find_type("notify_failed", 0);
	cr_assert_not_null(f);
	cr_assert_str_eq(json_string_value(json_object_get(f, "error")),
			 "slack: channel_not_found");
	cr_assert_eq(json_integer_value(json_object_get(f, "status_code")), 200);
}

Test(notify_http, slack_response_is_posted_and_journaled)
{
	start_notify(100, 0);
	notify_slack_response(nt_, url("/resp/T1/SECRETRESPONSE"), "{\"text\":\"done\"}");
	cr_assert(run_until(drained, 5000));
	cr_assert_eq(n_seen, 1);
	cr_assert_str_eq(seen[0].body, "{\"text\":\"done\"}");
	finish();
	json_t *s = find_type("notify_sent", 0);
	cr_assert_not_null(s);
	cr_assert_str_eq(json_string_value(json_object_get(s, "channel")), "slack_response");
	cr_assert_null(strstr(slurp_journal(), "SECRETRESPONSE"));
}

Test(notify_http, outbox_survives_a_restart)
{
	set_secret(&cfg.notify.pagerduty_routing_key, ROUTING_KEY);
	/* First run: the notice is journaled, never delivered. */
	struct notify *n = make(NULL);
	notify_start(n, jr);
	struct notify_event ev = event(NOTIFY_ESCALATE, INC1);
	set_channels(&ev, false, true);
	ev.note = "the rollback did not fix it";
	notify_incident(n, &ev);
	notify_free(n);
	journal_close(jr, 1000);

	/* Second run: replay finds it, start delivers it. */
	nt_ = make(NULL);
	jr = jopen(nt_);
	cr_assert_eq(notify_pending(nt_), 1);
	notify_start(nt_, jr);
	cr_assert(run_until(drained, 5000));
	cr_assert_eq(n_seen, 1);
	json_t *b = seen_json(0);
	cr_assert_str_eq(json_string_value(json_object_get(b, "event_action")), "trigger");
	json_t *p = json_object_get(b, "payload");
	cr_assert_str_eq(json_string_value(json_object_get(p, "severity")), "critical");
	cr_assert_not_null(
	    strstr(json_string_value(json_object_get(p, "summary")), "did not fix it"));
	json_decref(b);
	finish();
	cr_assert_eq(count_type("notify_sent", "pagerduty"), 1);
	cr_assert_str_eq(json_string_value(json_object_get(find_type("notify_sent", 0), "id")),
			 json_string_value(json_object_get(find_type("notify_intent", 0), "id")));
}

static void *burst_thread(void *arg)
{
	char id[32];
	for (int i = 0; i < 10; i++) {
		snprintf(id, sizeof(id), "inc-%08x%08x", (unsigned)(intptr_t)arg, (unsigned)i);
		struct notify_event ev = event(NOTIFY_TRIGGER, id);
		set_channels(&ev, false, true);
		notify_incident(nt_, &ev);
	}
	return NULL;
}

static bool forty_seen(void)
{
	return n_seen >= 40 && notify_pending(nt_) == 0;
}

Test(notify_http, notices_from_other_threads)
{
	set_secret(&cfg.notify.pagerduty_routing_key, ROUTING_KEY);
	start_notify(100, 0);
	pthread_t th[4];
	for (intptr_t i = 0; i < 4; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, burst_thread, (void *)i), 0);
	/* The loop runs while they queue. */
	run_for(50);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	cr_assert(run_until(forty_seen, 8000), "%zu requests", n_seen);
	cr_assert_eq(n_seen, 40);
	finish();
	cr_assert_eq(count_type("notify_intent", "pagerduty"), 40);
	cr_assert_eq(count_type("notify_sent", "pagerduty"), 40);
}

Test(notify_http, delivers_without_a_journal)
{
	set_secret(&cfg.notify.pagerduty_routing_key, ROUTING_KEY);
	nt_ = make(NULL);
	notify_start(nt_, NULL);
	struct notify_event ev = event(NOTIFY_RESOLVE, INC1);
	notify_incident(nt_, &ev);
	cr_assert(run_until(drained, 5000));
	cr_assert_eq(n_seen, 1);
	json_t *b = seen_json(0);
	cr_assert_str_eq(json_string_value(json_object_get(b, "event_action")), "resolve");
	json_decref(b);
}

/* ---- issue 12: notifications under outage ----------------------------------- */

Test(notify_pure, log_gate_one_line_per_interval)
{
	struct notify_options o = {.cfg = &cfg, .base = base, .log_interval_ms = 200};
	struct notify *n = notify_new(&o);
	cr_assert_not_null(n);
	struct chan *c = chan_for(n, "pagerduty", false);
	char supp[24];
	cr_assert(log_gate(n, c, supp));
	cr_assert_str_eq(supp, "0");
	for (int i = 0; i < 7; i++)
		cr_assert_not(log_gate(n, c, supp), "line %d was let through", i);
	/* Another channel has its own gate. */
	cr_assert(log_gate(n, chan_for(n, "slack_response", false), supp));
	usleep(250 * 1000);
	cr_assert(log_gate(n, c, supp));
	cr_assert_str_eq(supp, "7");
	cr_assert_not(log_gate(n, c, supp));
	notify_free(n);
}

static bool drained_pd_ok(void)
{
	return atomic_load(&chan_for(nt_, "pagerduty", false)->pending) == 0;
}

static bool metric_says(const char *series)
{
	struct buf b = BUF_INIT;
	cr_assert_eq(metrics_render(&b), 0);
	bool found = b.data && strstr(b.data, series);
	buf_release(&b);
	return found;
}

static bool pd_five_sent(void)
{
	size_t sent = 0;
	for (size_t i = 0; i < n_seen; i++)
		sent += strncmp(seen[i].path, "/pd", 3) == 0;
	return sent >= 5 && atomic_load(&chan_for(nt_, "pagerduty", false)->pending) == 0;
}

Test(notify_http, a_dead_channel_drops_only_its_own)
{
	set_secret(&cfg.notify.pagerduty_routing_key, ROUTING_KEY);
	set_secret(&cfg.notify.slack_webhook_url, "http://127.0.0.1:1/" WEBHOOK_SECRET);
	struct notify_options o = {.cfg = &cfg,
				   .base = base,
				   .retry_base_ms = 100,
				   .retry_max_ms = 400,
				   .slack_interval_ms = 50,
				   .queue_max = 2};
	nt_ = notify_new(&o);
	cr_assert_not_null(nt_);
	notify_start(nt_, jr);
	for (int i = 0; i < 5; i++) {
		struct notify_event ev = event(NOTIFY_TRIGGER, burst_ids[i]);
		notify_incident(nt_, &ev);
		/* PagerDuty keeps up; Slack never does. */
		cr_assert(run_until(drained_pd_ok, 5000));
	}
	cr_assert(run_until(pd_five_sent, 5000));
	cr_assert_eq(atomic_load(&chan_for(nt_, "slack", false)->pending), 2);
	cr_assert(metric_says("notifications_total{channel=\"slack\",result=\"dropped\"} 3\n"));
	cr_assert(metric_says("notifications_total{channel=\"pagerduty\",result=\"dropped\"} 0\n"));
	cr_assert(metric_says("notifications_total{channel=\"pagerduty\",result=\"sent\"} 5\n"));
	finish();
	cr_assert_eq(count_type("notify_sent", "pagerduty"), 5);
	cr_assert_eq(count_type("notify_intent", "slack"), 2);
	cr_assert_eq(count_type("notify_failed", "slack"), 3);
	cr_assert_eq(count_type("notify_failed", "pagerduty"), 0);
	json_t *f = find_type("notify_failed", 0);
	cr_assert_str_eq(json_string_value(json_object_get(f, "error")),
			 "the slack queue is full (2 notices waiting); notice dropped");
	cr_assert_str_eq(json_string_value(json_object_get(f, "event")), "trigger");
	cr_assert_str_eq(json_string_value(json_object_get(f, "incident")), burst_ids[2]);
	cr_assert_eq(json_integer_value(json_object_get(f, "attempts")), 0);
	cr_assert_null(strstr(slurp_journal(), WEBHOOK_SECRET));
}

Test(notify_http, pagerduty_is_updated_when_the_rollback_succeeds)
{
	set_secret(&cfg.notify.pagerduty_routing_key, ROUTING_KEY);
	start_notify(100, 0);
	struct notify_event ev = event(NOTIFY_TRIGGER, INC1);
	set_channels(&ev, false, true);
	ev.state = "acting";
	notify_incident(nt_, &ev);
	ev.kind = NOTIFY_ROLLED_BACK;
	ev.state = "rolled_back";
	ev.reason = "the rollback actions succeeded";
	notify_incident(nt_, &ev);
	cr_assert(run_until(drained, 5000));
	cr_assert_eq(n_seen, 2);
	json_t *b = seen_json(1);
	cr_assert_str_eq(json_string_value(json_object_get(b, "event_action")), "trigger");
	cr_assert_str_eq(json_string_value(json_object_get(b, "dedup_key")), INC1);
	json_t *p = json_object_get(b, "payload");
	cr_assert_str_eq(
	    json_string_value(json_object_get(json_object_get(p, "custom_details"), "state")),
	    "rolled_back");
	cr_assert_not_null(strstr(json_string_value(json_object_get(p, "summary")),
				  "rolled back - the rollback actions succeeded"));
	json_decref(b);
	finish();
	json_t *i = find_type("notify_intent", 1);
	cr_assert_str_eq(json_string_value(json_object_get(i, "event")), "rolled_back");
}

/* ---- email ------------------------------------------------------------------ */

static const char *header_of(const char *msg, const char *name)
{
	static char v[512];
	char key[64];
	snprintf(key, sizeof(key), "\r\n%s: ", name);
	const char *p = strstr(msg, key);
	if (!p && strncmp(msg, key + 2, strlen(key + 2)) == 0)
		p = msg - 2;
	if (!p)
		return NULL;
	p += strlen(key);
	snprintf(v, sizeof(v), "%.*s", (int)strcspn(p, "\r"), p);
	return v;
}

Test(notify_pure, email_message_is_threaded_multipart)
{
	static const char *config =
	    "{\"notify\": {\"email\": {\"smtp_url\": \"smtp://127.0.0.1:1\","
	    "\"from\": \"rb@example.net\", \"to\": [\"a@example.com\", "
	    "\"b@example.org\"]}}}";
	struct config c;
	struct error err = {{0}};
	cr_assert_eq(config_load_text(config, strlen(config), "t.json", &c, &err), 0, "%s",
		     err.msg);
	cr_assert(email_configured(&c));
	cr_assert(c.notify.email.starttls, "STARTTLS by default");

	struct buf b = BUF_INIT, m1 = BUF_INIT, m2 = BUF_INIT;
	struct notify_event ev = event(NOTIFY_ROLLED_BACK, INC1);
	struct notice nt;
	char id1[EMAIL_MSGID_MAX], id2[EMAIL_MSGID_MAX];
	cr_assert(email_wants(&ev));
	ev.kind = NOTIFY_TRIGGER;
	ev.state = "acting";
	cr_assert_not(email_wants(&ev), "acting is not mailed");
	ev.state = "action_failed";
	cr_assert(email_wants(&ev));
	ev.kind = NOTIFY_UPDATE;
	cr_assert_not(email_wants(&ev));
	ev = event(NOTIFY_ROLLED_BACK, INC1);
	ev.rule = "rule \r\nBcc: evil@example.com";
	cr_assert_eq(notice_write(&b, &ev, false), 0);
	cr_assert_eq(notice_parse(b.data, b.len, &nt), 0);
	cr_assert_eq(
	    email_message(&c.notify.email, "n-0000000000000001", &nt, NULL, NULL, 0, &m1, id1), 0);
	cr_assert_str_eq(id1, "<n-0000000000000001." INC1 "@example.net>");
	cr_assert_eq(email_message(&c.notify.email, "n-0000000000000002", &nt,
				   "https://rb/v1/ack/x", id1, 0, &m2, id2),
		     0);
	cr_assert_str_eq(header_of(m1.data, "Message-ID"), id1);
	cr_assert_null(header_of(m1.data, "In-Reply-To"));
	cr_assert_str_eq(header_of(m2.data, "In-Reply-To"), id1);
	cr_assert_str_eq(header_of(m2.data, "References"), id1);
	cr_assert_str_eq(header_of(m1.data, "To"), "a@example.com, b@example.org");
	cr_assert_str_eq(header_of(m1.data, "Date"), "Thu, 01 Jan 1970 00:00:00 +0000");
	cr_assert_null(strstr(m1.data, "\r\nBcc:"), "a header injected through the rule name");
	cr_assert_not_null(strstr(
	    m1.data, "Content-Type: multipart/alternative; boundary=\"=_n-0000000000000001\""));
	cr_assert_not_null(strstr(m1.data, "Content-Type: text/plain; charset=utf-8"));
	cr_assert_not_null(strstr(m1.data, "Content-Type: text/html; charset=utf-8"));
	cr_assert_not_null(strstr(m1.data, "\r\n--=_n-0000000000000001--\r\n"));
	/* No line over 998 bytes, every line ends in CRLF. */
	for (const char *p = m2.data, *nl; *p; p = nl + 1) {
		nl = strchr(p, '\n');
		cr_assert_not_null(nl);
		cr_assert_gt(nl, p);
		cr_assert_eq(nl[-1], '\r');
		cr_assert_leq(nl - p, 998);
	}
	notice_release(&nt);
	buf_release(&b);
	buf_release(&m1);
	buf_release(&m2);
	config_release(&c);
}

Test(notify_pure, email_config_errors_name_the_key)
{
	static const struct {
		const char *json, *msg;
	} cases[] = {
	    {"{\"notify\":{\"email\":{\"smtp_url\":\"http://"
	     "x\",\"from\":\"a@b.c\",\"to\":[\"d@e.f\"]}}}",
	     "t.json: notify.email.smtp_url: expected an smtp:// or smtps:// URL"},
	    {"{\"notify\":{\"email\":{\"smtp_url\":\"smtp://"
	     "x\",\"from\":\"nobody\",\"to\":[\"d@e.f\"]}}}",
	     "t.json: notify.email.from: expected an address like rollbackd@example.com"},
	    {"{\"notify\":{\"email\":{\"smtp_url\":\"smtp://x\",\"from\":\"a@b.c\",\"to\":[]}}}",
	     "t.json: notify.email.to: expected an array of 1 to 100 addresses"},
	    {"{\"notify\":{\"email\":{\"smtp_url\":\"smtp://"
	     "x\",\"from\":\"a@b.c\",\"to\":[\"d@e.f\",\"x\\r\\n@y\"]}}}",
	     "t.json: notify.email.to[1]: expected an address like oncall@example.com"},
	    {"{\"notify\":{\"email\":{\"smtp_url\":\"smtp://x\",\"to\":[\"d@e.f\"]}}}",
	     "t.json: notify.email: missing key 'from'"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config c;
		struct error err = {{0}};
		cr_assert_eq(
		    config_load_text(cases[i].json, strlen(cases[i].json), "t.json", &c, &err), -1,
		    "case %zu loaded", i);
		cr_assert_str_eq(err.msg, cases[i].msg, "case %zu", i);
	}
}
