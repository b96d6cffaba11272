/*
 * Unit tests for slack: the Block Kit structure of one incident and of a
 * burst, every Slack limit under oversized and hostile input (jansson's
 * json_loads rejects invalid UTF-8, so a bad cut fails the parse), mrkdwn
 * escaping, the Web API bodies and replies, the request signature (expected
 * MACs computed here with libsodium) and the interactivity payload parser.
 */
#include <criterion/criterion.h>
#include <jansson.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "rollbackd/slack.h"

#define ID "inc-0123456789abcdef"
#define ACK_URL "https://rb.example.com/v1/ack/" ID "?action=ack&exp=1&sig=ab"
#define APPROVE_URL "https://rb.example.com/v1/ack/" ID "?action=approve&exp=1&sig=cd"
#define GEN_URL "http://prom:9090/graph?g0.expr=rate%28x%29+%3E+0.01&g0.tab=1"
#define EXT_URL "http://am:9093"
#define GEN_URL_ESC "http://prom:9090/graph?g0.expr=rate%28x%29+%3E+0.01&amp;g0.tab=1"
#define ELL "\xe2\x80\xa6"

static void setup(void)
{
	cr_assert_geq(sodium_init(), 0);
}

TestSuite(slack, .init = setup);

/* ---- helpers ---- */

static json_t *load(const struct buf *b)
{
	json_error_t je;
	cr_assert_not_null(b->data);
	json_t *j = json_loads(b->data, JSON_REJECT_DUPLICATES, &je);
	cr_assert_not_null(j, "not JSON (%s): %.200s", je.text, b->data);
	return j;
}

static const char *str_at(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	cr_assert(json_is_string(v), "'%s' is not a string", key);
	return json_string_value(v);
}

static const char *block_type(json_t *blk)
{
	return str_at(blk, "type");
}

static const char *block_text(json_t *blk)
{
	return str_at(json_object_get(blk, "text"), "text");
}

static size_t ulen(const char *s)
{
	return strlen(s);
}

/* Every '&' starts an entity; every '<' a link "<http…|…>" with no '<' or
 * '>' inside; no '>' outside a link. */
static void assert_mrkdwn_escaped(const char *s)
{
	for (const char *p = s; *p; p++) {
		if (*p == '&') {
			cr_assert(strncmp(p, "&amp;", 5) == 0 || strncmp(p, "&lt;", 4) == 0 ||
				      strncmp(p, "&gt;", 4) == 0,
				  "raw '&' in: %.100s", p);
		} else if (*p == '<') {
			cr_assert(strncmp(p, "<http", 5) == 0, "raw '<' in: %.100s", p);
			const char *bar = strchr(p, '|'), *end = strchr(p, '>');
			cr_assert(bar && end && bar < end, "broken link: %.100s", p);
			for (const char *q = p + 1; q < end; q++)
				cr_assert_neq(*q, '<');
			p = end;
		} else {
			cr_assert_neq(*p, '>', "raw '>' in: %.100s", s);
		}
	}
}

static void assert_button(json_t *btn)
{
	cr_assert_str_eq(block_type(btn), "button");
	json_t *t = json_object_get(btn, "text");
	cr_assert_str_eq(str_at(t, "type"), "plain_text");
	cr_assert_leq(ulen(str_at(t, "text")), SLACK_BUTTON_TEXT_MAX);
	json_t *u = json_object_get(btn, "url"), *v = json_object_get(btn, "value");
	cr_assert(!u != !v, "a button either opens a page or acts through interactivity");
	if (u)
		cr_assert_leq(ulen(json_string_value(u)), SLACK_URL_MAX);
	if (v)
		cr_assert_leq(ulen(json_string_value(v)), SLACK_VALUE_MAX);
}

/* Every Slack limit, on any message we make. */
static void assert_limits(json_t *msg)
{
	const char *fb = str_at(msg, "text");
	cr_assert_gt(strlen(fb), 0);
	cr_assert_leq(ulen(fb), SLACK_TEXT_MAX);
	assert_mrkdwn_escaped(fb);
	json_t *blocks = json_object_get(msg, "blocks");
	cr_assert(json_is_array(blocks));
	cr_assert_gt(json_array_size(blocks), 0);
	cr_assert_leq(json_array_size(blocks), SLACK_MAX_BLOCKS);
	size_t i, j;
	json_t *blk, *el;
	json_array_foreach(blocks, i, blk)
	{
		const char *type = block_type(blk);
		if (strcmp(type, "header") == 0) {
			cr_assert_str_eq(str_at(json_object_get(blk, "text"), "type"),
					 "plain_text");
			cr_assert_leq(ulen(block_text(blk)), SLACK_HEADER_MAX);
		} else if (strcmp(type, "section") == 0) {
			cr_assert_str_eq(str_at(json_object_get(blk, "text"), "type"), "mrkdwn");
			cr_assert_leq(ulen(block_text(blk)), SLACK_TEXT_MAX);
			assert_mrkdwn_escaped(block_text(blk));
			if (json_object_get(blk, "accessory"))
				assert_button(json_object_get(blk, "accessory"));
		} else if (strcmp(type, "context") == 0) {
			json_t *els = json_object_get(blk, "elements");
			cr_assert_gt(json_array_size(els), 0);
			json_array_foreach(els, j, el)
			{
				cr_assert_leq(ulen(str_at(el, "text")), SLACK_TEXT_MAX);
				assert_mrkdwn_escaped(str_at(el, "text"));
			}
		} else if (strcmp(type, "actions") == 0) {
			json_t *els = json_object_get(blk, "elements");
			cr_assert_gt(json_array_size(els), 0);
			json_array_foreach(els, j, el) assert_button(el);
		} else {
			cr_assert_fail("unexpected block type '%s'", type);
		}
	}
}

static json_t *message(const struct slack_incident_view *v, size_t n)
{
	struct buf b = BUF_INIT;
	cr_assert_eq(slack_message(v, n, &b), 0);
	json_t *j = load(&b);
	buf_release(&b);
	assert_limits(j);
	return j;
}

static const struct slack_action_view two_actions[] = {
    {"exec", "ok", 0, 0, "deployment \"checkout\" rolled back\n"},
    {"http", "failed", -1, 503, "{\"error\":\"<unavailable>\"}"},
};

static struct slack_incident_view full_view(void)
{
	struct slack_incident_view v = {
	    .id = ID,
	    .rule = "HighErrorRate",
	    .service = "checkout",
	    .state = "rolled_back",
	    .value = "0.052",
	    .threshold = "above 0.01",
	    .actions = two_actions,
	    .n_actions = 2,
	    .alert_started = {1700000000, 0},
	    .now = {1700000192, 500000000},
	    .generator_url = GEN_URL,
	    .external_url = EXT_URL,
	    .ack_url = ACK_URL,
	    .approve_url = NULL,
	};
	return v;
}

static char *repeat(const char *unit, size_t times)
{
	size_t u = strlen(unit);
	char *s = malloc(u * times + 1);
	cr_assert_not_null(s);
	for (size_t i = 0; i < times; i++)
		memcpy(s + i * u, unit, u);
	s[u * times] = '\0';
	return s;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* ---- one incident ---- */

Test(slack, one_incident_structure)
{
	struct slack_incident_view v = full_view();
	json_t *m = message(&v, 1);
	json_t *blocks = json_object_get(m, "blocks");

	cr_assert_str_eq(str_at(m, "text"), "Rolled back: HighErrorRate on checkout (" ID ")");
	cr_assert_eq(json_array_size(blocks), 6);

	json_t *h = json_array_get(blocks, 0);
	cr_assert_str_eq(block_type(h), "header");
	cr_assert_str_eq(block_text(h), "Rolled back: HighErrorRate");

	json_t *s = json_array_get(blocks, 1);
	cr_assert_str_eq(block_type(s), "section");
	cr_assert_str_eq(block_text(s), "*Rule:* HighErrorRate\n*Service:* checkout\n"
					"*State:* Rolled back\n*Value:* 0.052 (threshold: above "
					"0.01)\n*Firing for:* 3m12s\n*Incident:* " ID);

	json_t *a1 = json_array_get(blocks, 2);
	cr_assert_str_eq(block_type(a1), "section");
	cr_assert_str_eq(block_text(a1), "Action 1 of 2: *exec* ok (exit 0)\n```\n"
					 "deployment \"checkout\" rolled back\n```");
	json_t *a2 = json_array_get(blocks, 3);
	cr_assert_str_eq(block_text(a2), "Action 2 of 2: *http* failed (HTTP 503)\n```\n"
					 "{\"error\":\"&lt;unavailable&gt;\"}\n```");

	json_t *links = json_array_get(blocks, 4);
	cr_assert_str_eq(block_type(links), "context");
	cr_assert_str_eq(str_at(json_array_get(json_object_get(links, "elements"), 0), "text"),
			 "<http://prom:9090/graph?g0.expr=rate%28x%29+%3E+0.01&amp;g0.tab=1|"
			 "Prometheus> · <http://am:9093|Alertmanager>");

	json_t *act = json_array_get(blocks, 5);
	cr_assert_str_eq(block_type(act), "actions");
	json_t *els = json_object_get(act, "elements");
	cr_assert_eq(json_array_size(els), 1);
	json_t *ack = json_array_get(els, 0);
	cr_assert_str_eq(block_text(ack), "Acknowledge");
	cr_assert_str_eq(str_at(ack, "action_id"), "ack");
	cr_assert_str_eq(str_at(ack, "url"), ACK_URL);
	cr_assert_null(json_object_get(ack, "value"), "a link button carries no value");
	cr_assert_null(json_object_get(ack, "style"));
	json_decref(m);
}

Test(slack, interactive_buttons_carry_the_episode_and_no_url)
{
	struct slack_incident_view v = full_view();
	v.state = "awaiting_approval";
	v.approve_url = APPROVE_URL;
	v.interactive = true;
	v.episode = 3;
	json_t *m = message(&v, 1);
	json_t *blocks = json_object_get(m, "blocks");
	json_t *act = json_array_get(blocks, json_array_size(blocks) - 1);
	json_t *els = json_object_get(act, "elements");
	cr_assert_eq(json_array_size(els), 2);
	for (size_t i = 0; i < 2; i++) {
		json_t *b = json_array_get(els, i);
		cr_assert_str_eq(str_at(b, "value"), ID ":3");
		cr_assert_null(json_object_get(b, "url"), "an interactive button opens no page");
	}
	json_decref(m);
}

Test(slack, approve_button)
{
	struct slack_incident_view v = full_view();
	v.state = "awaiting_approval";
	v.approve_url = APPROVE_URL;
	v.actions = NULL;
	v.n_actions = 0;
	json_t *m = message(&v, 1);
	json_t *blocks = json_object_get(m, "blocks");
	cr_assert_str_eq(block_text(json_array_get(blocks, 0)), "Awaiting approval: HighErrorRate");
	json_t *act = json_array_get(blocks, json_array_size(blocks) - 1);
	cr_assert_str_eq(block_type(act), "actions");
	json_t *els = json_object_get(act, "elements");
	cr_assert_eq(json_array_size(els), 2);
	json_t *ap = json_array_get(els, 1);
	cr_assert_str_eq(block_text(ap), "Approve");
	cr_assert_str_eq(str_at(ap, "action_id"), "approve");
	cr_assert_str_eq(str_at(ap, "style"), "primary");
	cr_assert_str_eq(str_at(ap, "url"), APPROVE_URL);
	cr_assert_null(json_object_get(ap, "value"));
	json_decref(m);
}

Test(slack, acknowledged_hides_ack_button)
{
	struct slack_incident_view v = full_view();
	v.acknowledged_by = "alice <admin>";
	v.note = "The rollback did not fix it: still firing after 10m";
	json_t *m = message(&v, 1);
	json_t *blocks = json_object_get(m, "blocks");
	/* header, summary, 2 actions, note, links, acknowledgement; no buttons. */
	cr_assert_eq(json_array_size(blocks), 7);
	cr_assert_str_eq(block_text(json_array_get(blocks, 4)),
			 "The rollback did not fix it: still firing after 10m");
	json_t *ackd = json_array_get(blocks, 6);
	cr_assert_str_eq(block_type(ackd), "context");
	cr_assert_str_eq(str_at(json_array_get(json_object_get(ackd, "elements"), 0), "text"),
			 "Acknowledged by *alice &lt;admin&gt;*");
	json_decref(m);
}

Test(slack, minimal_view)
{
	struct slack_incident_view v = {.id = ID};
	json_t *m = message(&v, 1);
	json_t *blocks = json_object_get(m, "blocks");
	cr_assert_str_eq(str_at(m, "text"), "Incident: incident (" ID ")");
	cr_assert_eq(json_array_size(blocks), 2);
	cr_assert_str_eq(block_text(json_array_get(blocks, 0)), "Incident: " ID);
	cr_assert_str_eq(block_text(json_array_get(blocks, 1)),
			 "*State:* Incident\n*Incident:* " ID);
	json_decref(m);
}

Test(slack, rejects_bad_arguments)
{
	struct buf b = BUF_INIT;
	struct slack_incident_view v = full_view();
	cr_assert_eq(buf_adds(&b, "keep"), 0);
	cr_assert_eq(slack_message(&v, 0, &b), -1);
	cr_assert_eq(slack_message(NULL, 1, &b), -1);
	v.id = NULL;
	cr_assert_eq(slack_message(&v, 1, &b), -1);
	cr_assert_str_eq(b.data, "keep");
	buf_release(&b);
}

Test(slack, mrkdwn_escaping)
{
	struct slack_incident_view v = full_view();
	v.rule = "<!channel> & <@U123>";
	v.service = "a>b";
	v.actions = NULL;
	v.n_actions = 0;
	json_t *m = message(&v, 1);
	json_t *blocks = json_object_get(m, "blocks");
	cr_assert_str_eq(str_at(m, "text"),
			 "Rolled back: &lt;!channel&gt; &amp; &lt;@U123&gt; on a&gt;b (" ID ")");
	cr_assert_not_null(
	    strstr(block_text(json_array_get(blocks, 1)),
		   "*Rule:* &lt;!channel&gt; &amp; &lt;@U123&gt;\n*Service:* a&gt;b\n"));
	/* The header is plain_text: shown literally, so not escaped. */
	cr_assert_str_eq(block_text(json_array_get(blocks, 0)),
			 "Rolled back: <!channel> & <@U123>");
	json_decref(m);
}

Test(slack, urls_that_are_left_out)
{
	struct slack_incident_view v = full_view();
	char *long_url = repeat("a", SLACK_URL_MAX);
	memcpy(long_url, "https://", 8);
	v.ack_url = long_url; /* 3000 bytes: fits */
	v.approve_url = "javascript:alert(1)";
	v.generator_url = "ftp://x";
	v.external_url = "http://has space";
	json_t *m = message(&v, 1);
	json_t *blocks = json_object_get(m, "blocks");
	cr_assert_eq(json_array_size(blocks), 5); /* no links context */
	json_t *els = json_object_get(json_array_get(blocks, 4), "elements");
	cr_assert_eq(json_array_size(els), 1);
	cr_assert_str_eq(str_at(json_array_get(els, 0), "url"), long_url);
	json_decref(m);
	free(long_url);

	/* One byte more and the button goes. */
	long_url = repeat("a", SLACK_URL_MAX + 1);
	memcpy(long_url, "https://", 8);
	v.ack_url = long_url;
	m = message(&v, 1);
	blocks = json_object_get(m, "blocks");
	cr_assert_eq(json_array_size(blocks), 4);
	for (size_t i = 0; i < 4; i++)
		cr_assert_str_neq(block_type(json_array_get(blocks, i)), "actions");
	json_decref(m);
	free(long_url);
}

Test(slack, firing_for_formats)
{
	const struct {
		int64_t secs;
		const char *want;
	} cases[] = {
	    {0, "0s"},	    {45, "45s"},  {60, "1m"},	    {192, "3m12s"},
	    {7500, "2h5m"}, {7200, "2h"}, {273600, "3d4h"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct slack_incident_view v = {.id = ID};
		v.alert_started.sec = 1700000000;
		v.now.sec = 1700000000 + cases[i].secs;
		json_t *m = message(&v, 1);
		char want[64];
		snprintf(want, sizeof(want), "*Firing for:* %s\n", cases[i].want);
		cr_assert_not_null(
		    strstr(block_text(json_array_get(json_object_get(m, "blocks"), 1)), want), "%s",
		    want);
		json_decref(m);
	}
	/* Unknown start (zero, Go's zero) or a start in the future: no line. */
	int64_t starts[] = {0, TIMESTAMP_GO_ZERO_SEC, 1800000000};
	for (size_t i = 0; i < 3; i++) {
		struct slack_incident_view v = {.id = ID};
		v.alert_started.sec = starts[i];
		v.now.sec = 1700000000;
		json_t *m = message(&v, 1);
		cr_assert_null(strstr(block_text(json_array_get(json_object_get(m, "blocks"), 1)),
				      "Firing for"));
		json_decref(m);
	}
}

/* ---- limits ---- */

Test(slack, oversized_everything)
{
	char *big = repeat("x", 5000), *out10k = repeat("0123456789", 1000);
	char *note = repeat("n", 10000);
	struct slack_action_view acts[1] = {{"exec", "failed", 1, 0, out10k}};
	struct slack_incident_view v = full_view();
	v.rule = big;
	v.service = big;
	v.value = big;
	v.threshold = big;
	v.state = big;
	v.note = note;
	v.acknowledged_by = big;
	v.actions = acts;
	v.n_actions = 1;
	v.ack_url = NULL;
	v.approve_url = APPROVE_URL;
	json_t *m = message(&v, 1);
	json_t *blocks = json_object_get(m, "blocks");
	const char *hdr = block_text(json_array_get(blocks, 0));
	/* The state (here unknown, shown as is) takes at most 64 bytes, the
	 * rule the rest of the 150. */
	char *want = malloc(SLACK_HEADER_MAX + 1);
	cr_assert_not_null(want);
	memset(want, 'x', 61);
	memcpy(want + 61, ELL ": ", 5);
	memset(want + 66, 'x', 81);
	memcpy(want + 147, ELL, 4);
	cr_assert_str_eq(hdr, want);
	cr_assert_eq(strlen(hdr), SLACK_HEADER_MAX);
	free(want);
	const char *out = block_text(json_array_get(blocks, 2));
	cr_assert_leq(strlen(out), SLACK_TEXT_MAX);
	/* The tail of the output is kept. */
	cr_assert(ends_with(out, "0123456789\n```"));
	cr_assert_not_null(strstr(out, "```\n" ELL));
	const char *n = block_text(json_array_get(blocks, 3));
	cr_assert_eq(strlen(n), SLACK_TEXT_MAX);
	cr_assert(ends_with(n, ELL));
	json_decref(m);
	free(big);
	free(out10k);
	free(note);
}

Test(slack, escaping_never_passes_limits)
{
	/* Each '&' becomes 5 bytes: 5000 of them are far past 3000. */
	char *amps = repeat("&", 5000);
	struct slack_incident_view v = full_view();
	v.note = amps;
	v.rule = amps;
	json_t *m = message(&v, 1);
	json_t *blocks = json_object_get(m, "blocks");
	const char *note = block_text(json_array_get(blocks, 4));
	cr_assert_eq(strlen(note), 2995 + 3); /* 599 whole entities + "…" */
	cr_assert(ends_with(note, "&amp;" ELL));
	json_decref(m);
	free(amps);
}

Test(slack, multibyte_cut_stays_utf8)
{
	/* Two, three and four byte characters, with every alignment at the
	 * cut point; load() fails on any invalid UTF-8. */
	const char *units[] = {"\xc3\xa9",  "\xe2\x82\xac",	  "\xf0\x9f\x98\x80",
			       "a\xc3\xa9", "ab\xf0\x9f\x98\x80", "abc\xe2\x82\xac"};
	for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
		char *s = repeat(units[u], 2000);
		struct slack_action_view acts[1] = {{"exec", "failed", 2, 0, s}};
		struct slack_incident_view v = full_view();
		v.rule = s;
		v.note = s;
		v.service = s;
		v.acknowledged_by = s;
		v.actions = acts;
		v.n_actions = 1;
		json_t *m = message(&v, 1);
		const char *hdr = block_text(json_array_get(json_object_get(m, "blocks"), 0));
		cr_assert(ends_with(hdr, ELL));
		json_decref(m);
		/* And the burst layout. */
		struct slack_incident_view vs[3] = {v, v, v};
		m = message(vs, 3);
		json_decref(m);
		free(s);
	}
}

Test(slack, invalid_utf8_and_controls_are_replaced)
{
	struct slack_action_view acts[1] = {
	    {"exec", "failed", 1, 0, "\x1b[31mERROR\x1b[0m: bad \xff\xfe byte\r\n\x01"}};
	struct slack_incident_view v = full_view();
	v.rule = "rule\xc3";
	v.service = "svc\nwith\tbreaks";
	v.actions = acts;
	v.n_actions = 1;
	json_t *m = message(&v, 1);
	json_t *blocks = json_object_get(m, "blocks");
	cr_assert_str_eq(block_text(json_array_get(blocks, 0)), "Rolled back: rule\xef\xbf\xbd");
	cr_assert_not_null(
	    strstr(block_text(json_array_get(blocks, 1)), "*Service:* svc with breaks\n"));
	cr_assert_str_eq(block_text(json_array_get(blocks, 2)),
			 "Action: *exec* failed (exit 1)\n```\nERROR: bad \xef\xbf\xbd\xef\xbf\xbd"
			 " byte\n\xef\xbf\xbd\n```");
	json_decref(m);
}

Test(slack, code_block_cannot_be_closed_by_output)
{
	struct slack_action_view acts[1] = {{"exec", "ok", 0, 0, "a```b``c`d"}};
	struct slack_incident_view v = {.id = ID, .actions = acts, .n_actions = 1};
	json_t *m = message(&v, 1);
	const char *t = block_text(json_array_get(json_object_get(m, "blocks"), 2));
	cr_assert_str_eq(t, "Action: *exec* ok (exit 0)\n```\na`\xe2\x80\x8b`\xe2\x80\x8b`b`"
			    "\xe2\x80\x8b`c`d\n```");
	json_decref(m);
}

Test(slack, many_actions)
{
	struct slack_action_view acts[25];
	for (size_t i = 0; i < 25; i++)
		acts[i] = (struct slack_action_view){"exec", "ok", 0, 0, "fine"};
	struct slack_incident_view v = full_view();
	v.actions = acts;
	v.n_actions = 25;
	json_t *m = message(&v, 1);
	json_t *blocks = json_object_get(m, "blocks");
	/* header, summary, 10 actions, "more", links, buttons */
	cr_assert_eq(json_array_size(blocks), 15);
	cr_assert_str_eq(block_text(json_array_get(blocks, 11)),
			 "Action 10 of 25: *exec* ok (exit 0)\n```\nfine\n```");
	json_t *more = json_array_get(blocks, 12);
	cr_assert_str_eq(block_type(more), "context");
	cr_assert_str_eq(str_at(json_array_get(json_object_get(more, "elements"), 0), "text"),
			 "and 15 more actions");
	json_decref(m);
}

Test(slack, action_results)
{
	struct slack_action_view acts[] = {
	    {"exec", "timeout", -1, 0, NULL}, {"exec", "failed", -1, 0, ""},
	    {"http", "ok", -1, 204, "  \n "}, {"http", "error", -1, 0, NULL},
	    {NULL, NULL, 0, 0, NULL},
	};
	const char *want[] = {
	    "Action 1 of 5: *exec* timeout",	   "Action 2 of 5: *exec* failed",
	    "Action 3 of 5: *http* ok (HTTP 204)", "Action 4 of 5: *http* error",
	    "Action 5 of 5: *action* unknown",
	};
	struct slack_incident_view v = {.id = ID, .actions = acts, .n_actions = 5};
	json_t *m = message(&v, 1);
	for (size_t i = 0; i < 5; i++)
		cr_assert_str_eq(block_text(json_array_get(json_object_get(m, "blocks"), 2 + i)),
				 want[i]);
	json_decref(m);
}

/* ---- bursts ---- */

static struct slack_incident_view *burst(size_t n)
{
	struct slack_incident_view *vs = calloc(n, sizeof(*vs));
	cr_assert_not_null(vs);
	for (size_t i = 0; i < n; i++) {
		vs[i] = full_view();
		vs[i].approve_url = i % 2 ? APPROVE_URL : NULL;
	}
	return vs;
}

static void check_burst(size_t n, size_t want_blocks, size_t want_sections, size_t more)
{
	struct slack_incident_view *vs = burst(n);
	json_t *m = message(vs, n);
	json_t *blocks = json_object_get(m, "blocks");
	char want[64];

	cr_assert_eq(json_array_size(blocks), want_blocks, "n=%zu", n);
	snprintf(want, sizeof(want), "%zu rollbackd incidents", n);
	cr_assert_str_eq(block_text(json_array_get(blocks, 0)), want);
	snprintf(want, sizeof(want), "%zu incidents: Rolled back: HighErrorRate on checkout", n);
	cr_assert(strncmp(str_at(m, "text"), want, strlen(want)) == 0, "%s", str_at(m, "text"));
	for (size_t i = 0; i < want_sections; i++) {
		json_t *s = json_array_get(blocks, 1 + i);
		cr_assert_str_eq(block_type(s), "section");
		json_t *btn = json_object_get(s, "accessory");
		cr_assert_not_null(btn);
		cr_assert_null(json_object_get(btn, "value"));
		if (i % 2) {
			cr_assert_str_eq(str_at(btn, "action_id"), "approve");
			cr_assert_str_eq(str_at(btn, "url"), APPROVE_URL);
			cr_assert_not_null(strstr(block_text(s), "|Acknowledge>"));
		} else {
			cr_assert_str_eq(str_at(btn, "action_id"), "ack");
			cr_assert_str_eq(str_at(btn, "url"), ACK_URL);
		}
	}
	if (more) {
		json_t *last = json_array_get(blocks, json_array_size(blocks) - 1);
		cr_assert_str_eq(block_type(last), "context");
		snprintf(want, sizeof(want), "and %zu more incidents", more);
		cr_assert_str_eq(
		    str_at(json_array_get(json_object_get(last, "elements"), 0), "text"), want);
	}
	json_decref(m);
	free(vs);
}

Test(slack, burst_of_2)
{
	check_burst(2, 3, 2, 0);
	struct slack_incident_view *vs = burst(2);
	json_t *m = message(vs, 2);
	cr_assert_str_eq(
	    block_text(json_array_get(json_object_get(m, "blocks"), 1)),
	    "*Rolled back:* HighErrorRate on checkout\n0.052 (above 0.01) · for 3m12s · " ID
	    "\n*exec* ok (exit 0), *http* failed (HTTP 503)\n<" GEN_URL_ESC "|Prometheus>");
	json_decref(m);
	free(vs);
}

Test(slack, burst_of_49_fits)
{
	check_burst(49, 50, 49, 0);
}

Test(slack, burst_of_50)
{
	check_burst(50, 50, 48, 2);
}

Test(slack, burst_of_200)
{
	check_burst(200, 50, 48, 152);
}

Test(slack, burst_fallback_is_capped)
{
	struct slack_incident_view *vs = burst(200);
	char *big = repeat("r", 5000);
	for (size_t i = 0; i < 200; i++)
		vs[i].rule = big;
	json_t *m = message(vs, 200);
	const char *fb = str_at(m, "text");
	cr_assert_eq(strlen(fb), SLACK_TEXT_MAX);
	cr_assert(ends_with(fb, ELL));
	json_decref(m);
	free(big);
	free(vs);
}

/* ---- Web API bodies and replies ---- */

Test(slack, post_and_update_bodies)
{
	struct slack_incident_view v = full_view();
	struct buf b = BUF_INIT;
	cr_assert_eq(slack_post_message("#rollbacks", &v, &b), 0);
	json_t *j = load(&b);
	cr_assert_str_eq(str_at(j, "channel"), "#rollbacks");
	cr_assert_str_eq(str_at(j, "text"), "Rolled back: HighErrorRate on checkout (" ID ")");
	cr_assert_eq(json_array_size(json_object_get(j, "blocks")), 6);
	cr_assert(json_is_false(json_object_get(j, "unfurl_links")));
	cr_assert(strncmp(b.data, "{\"channel\":\"#rollbacks\",\"text\":", 31) == 0);
	json_decref(j);
	buf_release(&b);

	cr_assert_eq(slack_update_message("C0123", "1700000000.000100", &v, &b), 0);
	j = load(&b);
	cr_assert_str_eq(str_at(j, "channel"), "C0123");
	cr_assert_str_eq(str_at(j, "ts"), "1700000000.000100");
	cr_assert_eq(json_array_size(json_object_get(j, "blocks")), 6);
	json_decref(j);
	buf_release(&b);

	cr_assert_eq(slack_post_message(NULL, &v, &b), -1);
	cr_assert_eq(slack_post_message("", &v, &b), -1);
	cr_assert_eq(slack_update_message("C1", NULL, &v, &b), -1);
	cr_assert_eq(slack_update_message("C1", "\xff", &v, &b), -1);
	cr_assert_null(b.data);
}

/* A step in bot mode: a reply in the root's thread, mrkdwn-escaped, broadcast
 * only when asked; the exact body Slack gets. */
Test(slack, thread_reply)
{
	struct buf b = BUF_INIT;
	cr_assert_eq(slack_thread_reply("C0123", "1700000000.000100",
					"Action 1 of 2 failed: failed (exit 3, 0.1 s)\n<b> & co",
					true, &b),
		     0);
	cr_assert_str_eq(b.data,
			 "{\"channel\":\"C0123\",\"thread_ts\":\"1700000000.000100\","
			 "\"text\":\"Action 1 of 2 failed: failed (exit 3, 0.1 s)\\n&lt;b&gt; "
			 "&amp; co\",\"reply_broadcast\":true,\"unfurl_links\":false,"
			 "\"unfurl_media\":false}");
	buf_release(&b);
	cr_assert_eq(slack_thread_reply("C0123", "1.2", "acknowledged by alice", false, &b), 0);
	cr_assert_str_eq(b.data, "{\"channel\":\"C0123\",\"thread_ts\":\"1.2\",\"text\":"
				 "\"acknowledged by alice\",\"unfurl_links\":false,"
				 "\"unfurl_media\":false}");
	buf_release(&b);
	/* a long text is cut to Slack's section limit */
	char big[SLACK_TEXT_MAX * 2 + 1];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	cr_assert_eq(slack_thread_reply("C0123", "1.2", big, false, &b), 0);
	json_t *j = load(&b);
	cr_assert_leq(strlen(str_at(j, "text")), SLACK_TEXT_MAX);
	json_decref(j);
	buf_release(&b);
	cr_assert_eq(slack_thread_reply("C0123", NULL, "x", false, &b), -1);
	cr_assert_eq(slack_thread_reply("C0123", "1.2", "", false, &b), -1);
	cr_assert_eq(slack_thread_reply("C0123", "1.2", NULL, false, &b), -1);
	cr_assert_eq(slack_thread_reply("", "1.2", "x", false, &b), -1);
	cr_assert_null(b.data);
}

Test(slack, parse_post_reply)
{
	char ch[16], ts[32];
	const char *good = "{\"ok\":true,\"channel\":\"C0123\",\"ts\":\"1700000000.000100\","
			   "\"message\":{\"text\":\"x\"}}";
	cr_assert_eq(slack_parse_post_reply(good, strlen(good), ch, sizeof(ch), ts, sizeof(ts)), 0);
	cr_assert_str_eq(ch, "C0123");
	cr_assert_str_eq(ts, "1700000000.000100");

	const char *bad[] = {
	    "{\"ok\":false,\"error\":\"channel_not_found\"}",
	    "{\"ok\":true,\"channel\":\"C0123\"}",
	    "{\"ok\":true,\"ts\":\"1.2\"}",
	    "{\"ok\":\"true\",\"channel\":\"C0123\",\"ts\":\"1.2\"}",
	    "{\"ok\":true,\"channel\":5,\"ts\":\"1.2\"}",
	    "{\"ok\":true,\"channel\":\"\",\"ts\":\"1.2\"}",
	    "{\"ok\":true,\"channel\":\"C0123456789ABCDEF\",\"ts\":\"1.2\"}",
	    "[true]",
	    "ok",
	    "",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(
		    slack_parse_post_reply(bad[i], strlen(bad[i]), ch, sizeof(ch), ts, sizeof(ts)),
		    -1, "%s", bad[i]);
		cr_assert_str_eq(ch, "");
		cr_assert_str_eq(ts, "");
	}
	/* ts too long for its buffer. */
	cr_assert_eq(slack_parse_post_reply(good, strlen(good), ch, sizeof(ch), ts, 17), -1);
}

Test(slack, reply_error)
{
	char e[32];
	const char *r = "{\"ok\":false,\"error\":\"channel_not_found\"}";
	cr_assert_eq(slack_reply_error(r, strlen(r), e, sizeof(e)), 0);
	cr_assert_str_eq(e, "channel_not_found");
	r = "{\"ok\":false,\"error\":\"a\\nb\"}";
	cr_assert_eq(slack_reply_error(r, strlen(r), e, sizeof(e)), 0);
	cr_assert_str_eq(e, "a?b");
	r = "{\"ok\":true}";
	cr_assert_eq(slack_reply_error(r, strlen(r), e, sizeof(e)), -1);
	cr_assert_eq(slack_reply_error("x", 1, e, sizeof(e)), -1);
}

Test(slack, response_update_body)
{
	struct buf b = BUF_INIT;
	cr_assert_eq(slack_response_update("Acknowledged by <alice> & co", &b), 0);
	cr_assert_str_eq(b.data, "{\"replace_original\":false,\"response_type\":\"in_channel\","
				 "\"text\":\"Acknowledged by &lt;alice&gt; &amp; co\"}");
	buf_release(&b);

	char *big = repeat("\xe2\x82\xac", 2000); /* 6000 bytes */
	cr_assert_eq(slack_response_update(big, &b), 0);
	json_t *j = load(&b);
	const char *t = str_at(j, "text");
	cr_assert_eq(strlen(t), SLACK_TEXT_MAX); /* 999 euros + "…" */
	cr_assert(ends_with(t, ELL));
	json_decref(j);
	buf_release(&b);
	free(big);
	cr_assert_eq(slack_response_update(NULL, &b), -1);
}

Test(slack, response_replace_body)
{
	struct slack_incident_view v = full_view();
	v.acknowledged_by = "alice";
	struct buf b = BUF_INIT;
	cr_assert_eq(slack_response_replace(&v, &b), 0);
	json_t *j = load(&b);
	cr_assert(json_is_true(json_object_get(j, "replace_original")));
	assert_limits(j);
	cr_assert_eq(json_array_size(json_object_get(j, "blocks")), 6);
	json_decref(j);
	buf_release(&b);
}

/* ---- signatures ---- */

#define SECRET "8f742231b10e8888abcd99yyyzzz85a5"
#define TS "1531420618"
#define NOW 1531420618
#define BODY "payload=%7B%22type%22%3A%22block_actions%22%7D"

static void sign(const char *secret, const char *ts, const char *body, char out[68])
{
	unsigned char mac[32];
	crypto_auth_hmacsha256_state st;
	crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)"v0:", 3);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)ts, strlen(ts));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)":", 1);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, strlen(body));
	crypto_auth_hmacsha256_final(&st, mac);
	memcpy(out, "v0=", 3);
	sodium_bin2hex(out + 3, 65, mac, sizeof(mac));
}

static enum slack_sig verify(const struct secret *key, const char *ts, const char *sig,
			     const char *body, int64_t now)
{
	return slack_verify(key, ts, sig, (const unsigned char *)body, strlen(body), now);
}

Test(slack, signature_outcomes)
{
	struct secret key, other;
	char sig[68], upper[68];
	cr_assert_eq(secret_from_bytes(SECRET, strlen(SECRET), &key), 0);
	cr_assert_eq(secret_from_bytes("other", 5, &other), 0);
	sign(SECRET, TS, BODY, sig);

	cr_assert_eq(verify(&key, TS, sig, BODY, NOW), SLACK_SIG_OK);
	cr_assert_eq(verify(&key, TS, sig, BODY, NOW + 300), SLACK_SIG_OK);
	cr_assert_eq(verify(&key, TS, sig, BODY, NOW - 300), SLACK_SIG_OK);
	cr_assert_eq(verify(&key, TS, sig, BODY, NOW + 301), SLACK_SIG_STALE);
	cr_assert_eq(verify(&key, TS, sig, BODY, NOW - 301), SLACK_SIG_STALE);
	cr_assert_eq(verify(&key, TS, sig, BODY, INT64_MAX), SLACK_SIG_STALE);
	/* Forged: other key, altered body, another timestamp. Stale and
	 * forged is forged. */
	cr_assert_eq(verify(&other, TS, sig, BODY, NOW), SLACK_SIG_BAD);
	cr_assert_eq(verify(&key, TS, sig, BODY "x", NOW), SLACK_SIG_BAD);
	cr_assert_eq(verify(&key, "1531420619", sig, BODY, NOW), SLACK_SIG_BAD);
	cr_assert_eq(verify(&key, "01531420618", sig, BODY, NOW), SLACK_SIG_BAD);
	cr_assert_eq(verify(&other, TS, sig, BODY, NOW + 10000), SLACK_SIG_BAD);
	/* Uppercase hex is the same signature. */
	memcpy(upper, sig, sizeof(upper));
	for (size_t i = 3; i < 67; i++)
		if (upper[i] >= 'a' && upper[i] <= 'f')
			upper[i] = (char)(upper[i] - 32);
	cr_assert_eq(verify(&key, TS, upper, BODY, NOW), SLACK_SIG_OK);
	/* An empty body is signed too. */
	sign(SECRET, TS, "", sig);
	cr_assert_eq(slack_verify(&key, TS, sig, NULL, 0, NOW), SLACK_SIG_OK);
	/* No secret configured: fail closed. */
	struct secret unset = {NULL, 0};
	cr_assert_eq(slack_verify(&unset, TS, sig, NULL, 0, NOW), SLACK_SIG_BAD);
	secret_release(&key);
	secret_release(&other);
}

Test(slack, signature_missing_and_malformed)
{
	struct secret key;
	char sig[68];
	cr_assert_eq(secret_from_bytes(SECRET, strlen(SECRET), &key), 0);
	sign(SECRET, TS, BODY, sig);

	cr_assert_eq(verify(&key, NULL, sig, BODY, NOW), SLACK_SIG_MISSING);
	cr_assert_eq(verify(&key, TS, NULL, BODY, NOW), SLACK_SIG_MISSING);
	cr_assert_eq(verify(&key, "", sig, BODY, NOW), SLACK_SIG_MISSING);
	cr_assert_eq(verify(&key, TS, "", BODY, NOW), SLACK_SIG_MISSING);
	const char *bad_ts[] = {"+1531420618",	      "-1",  "1531420618 ",
				"15314e0618",	      "0x1", "12345678901234567890",
				"9223372036854775808"};
	for (size_t i = 0; i < sizeof(bad_ts) / sizeof(bad_ts[0]); i++)
		cr_assert_eq(verify(&key, bad_ts[i], sig, BODY, NOW), SLACK_SIG_MALFORMED, "%s",
			     bad_ts[i]);
	char s2[80];
	const char *bad_sig[] = {"v1=", "v0=", sig + 3, "V0=", "v0=zz"};
	for (size_t i = 0; i < sizeof(bad_sig) / sizeof(bad_sig[0]); i++) {
		snprintf(s2, sizeof(s2), "%s%s", bad_sig[i], i < 2 ? sig + 3 : "");
		if (i == 2 || i == 4)
			snprintf(s2, sizeof(s2), "%s", bad_sig[i]);
		if (i == 3)
			snprintf(s2, sizeof(s2), "V0=%s", sig + 3);
		enum slack_sig want = SLACK_SIG_MALFORMED;
		if (i == 1)
			want = SLACK_SIG_OK; /* "v0=" + the hex is the signature itself */
		cr_assert_eq(verify(&key, TS, s2, BODY, NOW), want, "%s", s2);
	}
	snprintf(s2, sizeof(s2), "%s0", sig);
	cr_assert_eq(verify(&key, TS, s2, BODY, NOW), SLACK_SIG_MALFORMED);
	snprintf(s2, sizeof(s2), "%s", sig);
	s2[66] = 'g';
	cr_assert_eq(verify(&key, TS, s2, BODY, NOW), SLACK_SIG_MALFORMED);
	s2[66] = '\0';
	cr_assert_eq(verify(&key, TS, s2, BODY, NOW), SLACK_SIG_MALFORMED);
	cr_assert_str_eq(slack_sig_message(SLACK_SIG_STALE),
			 "Slack request timestamp outside the 5-minute window");
	cr_assert_str_eq(slack_sig_message(SLACK_SIG_BAD), "invalid Slack signature");
	secret_release(&key);
}

/* ---- interactivity payloads ---- */

/* Form-encode "payload=" + json. */
static char *form(const char *json)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(json);
	char *s = malloc(8 + 3 * n + 1), *o = s;
	cr_assert_not_null(s);
	memcpy(o, "payload=", 8);
	o += 8;
	for (const unsigned char *p = (const unsigned char *)json; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9'))
			*o++ = (char)*p;
		else if (*p == ' ')
			*o++ = '+';
		else
			*o++ = '%', *o++ = hex[*p >> 4], *o++ = hex[*p & 15];
	}
	*o = '\0';
	return s;
}

static int parse_json_payload(const char *json, struct slack_action *a, struct error *err)
{
	char *body = form(json);
	int r = slack_parse_action(body, strlen(body), a, err);
	free(body);
	return r;
}

#define USER_OK "\"user\":{\"id\":\"U123\",\"username\":\"alice\",\"name\":\"Alice A\"}"
#define RESP_OK "\"response_url\":\"https://hooks.slack.com/actions/T1/2/abc\""
#define ACTION_OK                                                                                  \
	"\"actions\":[{\"action_id\":\"ack\",\"value\":\"" ID ":2\",\"type\":\"button\"},"         \
	"{\"action_id\":\"approve\",\"value\":\"x\"}]"

Test(slack, parse_action_good)
{
	struct slack_action a;
	struct error err = {""};
	const char *json = "{\"type\":\"block_actions\"," USER_OK "," ACTION_OK "," RESP_OK
			   ",\"container\":{\"type\":\"message\"}}";
	cr_assert_eq(parse_json_payload(json, &a, &err), 0, "%s", err.msg);
	cr_assert_str_eq(a.action, "ack");
	cr_assert_str_eq(a.incident, ID);
	cr_assert_eq(a.episode, 2);
	cr_assert_str_eq(a.user, "alice");
	cr_assert_str_eq(a.user_id, "U123");
	cr_assert_str_eq(a.response_url, "https://hooks.slack.com/actions/T1/2/abc");

	/* Other form fields are ignored; '+' is a space. */
	char *body = form("{\"type\":\"block_actions\",\"user\":{\"id\":\"U9\",\"name\":\"Bob "
			  "B\"},\"actions\":[{\"action_id\":\"approve\",\"value\":\"" ID ":1\"}],"
			  "\"response_url\":\"http://localhost/r\"}");
	char *body2 = malloc(strlen(body) + 16);
	cr_assert_not_null(body2);
	snprintf(body2, strlen(body) + 16, "x=1&%s&y=", body);
	cr_assert_eq(slack_parse_action(body2, strlen(body2), &a, &err), 0, "%s", err.msg);
	cr_assert_str_eq(a.action, "approve");
	cr_assert_str_eq(a.user, "Bob B");
	cr_assert_str_eq(a.user_id, "U9");
	free(body);
	free(body2);

	/* Neither username nor name: the id. */
	json = "{\"type\":\"block_actions\",\"user\":{\"id\":\"U77\",\"username\":\"\"}," ACTION_OK
	       "," RESP_OK "}";
	cr_assert_eq(parse_json_payload(json, &a, &err), 0, "%s", err.msg);
	cr_assert_str_eq(a.user, "U77");
}

Test(slack, parse_action_long_name_cut_on_boundary)
{
	struct slack_action a;
	struct error err = {""};
	char *name = repeat("\xe2\x82\xac", 100); /* 300 bytes */
	char json[1024];
	snprintf(
	    json, sizeof(json),
	    "{\"type\":\"block_actions\",\"user\":{\"id\":\"U1\",\"username\":\"%s\"}," ACTION_OK
	    "," RESP_OK "}",
	    name);
	cr_assert_eq(parse_json_payload(json, &a, &err), 0, "%s", err.msg);
	cr_assert_eq(strlen(a.user), 126); /* 42 whole euros of 3 bytes in 127 */
	cr_assert_eq(strncmp(a.user, name, 126), 0);
	free(name);
}

Test(slack, parse_action_errors)
{
	struct slack_action a;
	struct error err;
	char *long_url = repeat("a", 3001);
	memcpy(long_url, "https://", 8);
	char long_json[4096];
	snprintf(long_json, sizeof(long_json),
		 "{\"type\":\"block_actions\"," USER_OK "," ACTION_OK ",\"response_url\":\"%s\"}",
		 long_url);
	free(long_url);
	const struct {
		const char *json, *error;
	} cases[] = {
	    {"{\"type\":\"view_submission\"," USER_OK "," ACTION_OK "," RESP_OK "}",
	     "payload.type: expected 'block_actions', got 'view_submission'"},
	    {"{" USER_OK "," ACTION_OK "," RESP_OK "}", "payload.type: missing"},
	    {"{\"type\":\"block_actions\"," USER_OK "," RESP_OK "}",
	     "payload.actions: missing or empty"},
	    {"{\"type\":\"block_actions\"," USER_OK ",\"actions\":[]," RESP_OK "}",
	     "payload.actions: missing or empty"},
	    {"{\"type\":\"block_actions\"," USER_OK ",\"actions\":[{\"value\":\"" ID "\"}]," RESP_OK
	     "}",
	     "payload.actions[0].action_id: missing"},
	    {"{\"type\":\"block_actions\"," USER_OK
	     ",\"actions\":[{\"action_id\":\"delete\",\"value\":\"" ID "\"}]," RESP_OK "}",
	     "payload.actions[0].action_id: unknown action 'delete'"},
	    {"{\"type\":\"block_actions\"," USER_OK
	     ",\"actions\":[{\"action_id\":\"ack\"}]," RESP_OK "}",
	     "payload.actions[0].value: missing"},
	    {"{\"type\":\"block_actions\"," USER_OK
	     ",\"actions\":[{\"action_id\":\"ack\",\"value\":\"inc-0123456789ABCDEF\"}]," RESP_OK
	     "}",
	     "payload.actions[0].value: expected '<incident id>:<episode>', got "
	     "'inc-0123456789ABCDEF'"},
	    {"{\"type\":\"block_actions\"," USER_OK
	     ",\"actions\":[{\"action_id\":\"ack\",\"value\":\"inc-0123\"}]," RESP_OK "}",
	     "payload.actions[0].value: expected '<incident id>:<episode>', got 'inc-0123'"},
	    {"{\"type\":\"block_actions\"," USER_OK
	     ",\"actions\":[{\"action_id\":\"ack\",\"value\":\"" ID "0\"}]," RESP_OK "}",
	     "payload.actions[0].value: expected '<incident id>:<episode>', got '" ID "0'"},
	    {"{\"type\":\"block_actions\"," USER_OK
	     ",\"actions\":[{\"action_id\":\"ack\",\"value\":\"" ID "\"}]," RESP_OK "}",
	     "payload.actions[0].value: expected '<incident id>:<episode>', got '" ID "'"},
	    {"{\"type\":\"block_actions\"," USER_OK
	     ",\"actions\":[{\"action_id\":\"ack\",\"value\":\"" ID ":0\"}]," RESP_OK "}",
	     "payload.actions[0].value: expected '<incident id>:<episode>', got '" ID ":0'"},
	    {"{\"type\":\"block_actions\"," USER_OK
	     ",\"actions\":[{\"action_id\":\"ack\",\"value\":\"" ID ":1x\"}]," RESP_OK "}",
	     "payload.actions[0].value: expected '<incident id>:<episode>', got '" ID ":1x'"},
	    {"{\"type\":\"block_actions\"," ACTION_OK "," RESP_OK "}", "payload.user: missing"},
	    {"{\"type\":\"block_actions\",\"user\":{\"username\":\"a\"}," ACTION_OK "," RESP_OK "}",
	     "payload.user.id: missing"},
	    {"{\"type\":\"block_actions\",\"user\":{\"id\":\"U1\",\"username\":\"a\\u202eb\"}"
	     "," ACTION_OK "," RESP_OK "}",
	     "payload.user.username: contains a control character"},
	    {"{\"type\":\"block_actions\",\"user\":{\"id\":\"U1\",\"name\":\"a\\nb\"}," ACTION_OK
	     "," RESP_OK "}",
	     "payload.user.name: contains a control character"},
	    {"{\"type\":\"block_actions\"," USER_OK "," ACTION_OK "}",
	     "payload.response_url: missing"},
	    {"{\"type\":\"block_actions\"," USER_OK "," ACTION_OK ",\"response_url\":\"ftp://x\"}",
	     "payload.response_url: not an http(s) URL: 'ftp://x'"},
	    {long_json, "payload.response_url: longer than 3000 bytes"},
	    {"[1]", "payload: expected a JSON object"},
	    {"{\"type\":\"block_actions\",\"type\":\"block_actions\"}",
	     "payload: invalid JSON at line 1 column 30: duplicate object key near '\"type\"'"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&err, 0, sizeof(err));
		memset(&a, 'x', sizeof(a));
		cr_assert_eq(parse_json_payload(cases[i].json, &a, &err), -1, "%s", cases[i].json);
		cr_assert_str_eq(err.msg, cases[i].error, "%s", cases[i].json);
		cr_assert_str_eq(a.incident, "");
		cr_assert_str_eq(a.response_url, "");
	}
}

Test(slack, parse_action_form_errors)
{
	struct slack_action a;
	struct error err;
	const struct {
		const char *body, *error;
	} cases[] = {
	    {"", "payload: missing form field 'payload'"},
	    {"token=x", "payload: missing form field 'payload'"},
	    {"payload=%7B&payload=%7D", "payload: given more than once"},
	    {"payload=%7", "payload: malformed %-escape"},
	    {"payload=%zz", "payload: malformed %-escape"},
	    {"payload=", "payload: invalid JSON at line 1 column 0: '[' or '{' expected near end "
			 "of file"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&err, 0, sizeof(err));
		cr_assert_eq(slack_parse_action(cases[i].body, strlen(cases[i].body), &a, &err), -1,
			     "%s", cases[i].body);
		cr_assert_str_eq(err.msg, cases[i].error, "%s", cases[i].body);
	}
	cr_assert_eq(slack_parse_action("payload=x", SLACK_ACTION_BODY_MAX + 1, &a, &err), -1);
	cr_assert_str_eq(err.msg, "payload: body over 1048576 bytes");
}

/* ---- arbitrary input ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
	/* xorshift64: deterministic, so a failure reproduces. */
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* A random NUL-terminated string: mostly the bytes that matter here
 * (markup, UTF-8 lead and continuation bytes, controls), any length up to
 * max. */
static char *random_text(size_t max)
{
	static const char interesting[] =
	    "&<>|`*_~\n\r\t\x1b[m \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
	size_t n = (size_t)(rng() % (max + 1));
	char *s = malloc(n + 1);
	cr_assert_not_null(s);
	for (size_t i = 0; i < n; i++) {
		uint64_t r = rng();
		char c = (r & 1) ? interesting[(r >> 1) % (sizeof(interesting) - 1)]
				 : (char)((r >> 8) % 255 + 1);
		s[i] = c;
	}
	s[n] = '\0';
	return s;
}

Test(slack, random_inputs_hold_every_limit)
{
	enum { FIELDS = 12, ROUNDS = 150 };
	for (int round = 0; round < ROUNDS; round++) {
		char *f[FIELDS];
		for (int i = 0; i < FIELDS; i++)
			f[i] = random_text(i < 4 ? 400 : 6000);
		struct slack_action_view acts[3] = {
		    {f[4], f[5], (int)(rng() % 300) - 10, (int)(rng() % 600), f[6]},
		    {"exec", "failed", 1, 0, f[7]},
		    {"http", "ok", 0, 200, NULL},
		};
		struct slack_incident_view v = {
		    .id = f[0],
		    .rule = f[1],
		    .service = f[2],
		    .state = f[3],
		    .value = f[8],
		    .threshold = f[9],
		    .actions = acts,
		    .n_actions = (size_t)(rng() % 4),
		    .alert_started = {1700000000, 0},
		    .now = {1700000000 + (int64_t)(rng() % 1000000), 0},
		    .generator_url = GEN_URL,
		    .ack_url = ACK_URL,
		    .approve_url = round % 2 ? APPROVE_URL : NULL,
		    .acknowledged_by = round % 3 ? NULL : f[10],
		    .note = f[11],
		};
		json_t *m = message(&v, 1);
		json_decref(m);
		struct slack_incident_view vs[5] = {v, v, v, v, v};
		m = message(vs, 1 + (size_t)(rng() % 5));
		json_decref(m);
		struct buf b = BUF_INIT;
		cr_assert_eq(slack_response_update(f[11], &b), 0);
		json_t *j = load(&b);
		cr_assert_leq(strlen(str_at(j, "text")), SLACK_TEXT_MAX);
		json_decref(j);
		buf_release(&b);
		for (int i = 0; i < FIELDS; i++)
			free(f[i]);
	}
}
