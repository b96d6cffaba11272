/* The journal state store (src/store_journal.c) through the store.h
 * interface: target claims and epochs (also under contention from many
 * threads), episode claims, the rollback window, pause, timers, the
 * outbox, durability callbacks, and the state rebuilt from the journal by
 * observe (journal_open's replay) and by store_replay. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rollbackd/buf.h"
#include "rollbackd/journal.h"
#include "rollbackd/record.h"
#include "rollbackd/store.h"

static char dir[64];
static struct event_base *base;

static void setup(void)
{
	cr_assert_eq(evthread_use_pthreads(), 0);
	base = event_base_new();
	cr_assert_not_null(base);
	snprintf(dir, sizeof(dir), "/tmp/test_store.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	/* an empty current segment (journal.c and an empty directory: see
	 * test_notify.c) */
	char p[128];
	snprintf(p, sizeof(p), "%s/" JOURNAL_FILE, dir);
	FILE *f = fopen(p, "w");
	cr_assert_not_null(f);
	fclose(f);
}

static void teardown(void)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char p[512];
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(dir);
	event_base_free(base);
}

TestSuite(store, .init = setup, .fini = teardown);

static struct store *memory_store(void)
{
	struct store_journal_options o = {.journal = NULL};
	struct store *s = store_journal_new(&o);
	cr_assert_not_null(s);
	return s;
}

static int observe_line(const struct journal_line *line, void *arg)
{
	static struct record_toks toks;
	struct record rec;
	if (record_decode(line->text, line->len, &rec, &toks) == RECORD_ENOMEM)
		return -1;
	return store_observe(arg, &rec);
}

/* Open the journal in dir; with observer, replay into it. */
static struct journal *jopen(struct store *observer)
{
	struct journal_options jo = {.state_dir = dir};
	if (observer) {
		jo.replay = observe_line;
		jo.replay_arg = observer;
	}
	struct journal *j = NULL;
	struct error err = {{0}};
	cr_assert_eq(journal_open(&jo, &j, &err), 0, "journal_open: %s", err.msg);
	return j;
}

Test(store, name_is_journal)
{
	struct store *s = memory_store();
	cr_assert_str_eq(s->ops->name, "journal");
	store_free(s);
}

Test(store, target_claim_grant_hold_extend_expire_release)
{
	struct store *s = memory_store();
	struct store_target_claim c;
	cr_assert_eq(store_target_claim(s, "checkout", &c), 1); /* never claimed */

	cr_assert_eq(store_claim_target(s, "checkout", "inc-a", 1000, 500, &c), 0);
	cr_assert_str_eq(c.holder, "inc-a");
	cr_assert_eq(c.epoch, 1);
	cr_assert_eq(c.held_until_ms, 1500);

	/* another incident: refused, told who holds it until when */
	memset(&c, 0, sizeof(c));
	cr_assert_eq(store_claim_target(s, "checkout", "inc-b", 1200, 500, &c), 1);
	cr_assert_str_eq(c.holder, "inc-a");
	cr_assert_eq(c.epoch, 1);
	cr_assert_eq(c.held_until_ms, 1500);

	/* the holder again: the hold is extended, the epoch kept */
	cr_assert_eq(store_claim_target(s, "checkout", "inc-a", 1400, 500, &c), 0);
	cr_assert_eq(c.epoch, 1);
	cr_assert_eq(c.held_until_ms, 1900);

	/* expired: the next incident takes it with a larger epoch */
	cr_assert_eq(store_claim_target(s, "checkout", "inc-b", 1900, 100, &c), 0);
	cr_assert_str_eq(c.holder, "inc-b");
	cr_assert_eq(c.epoch, 2);

	/* a stale epoch releases nothing */
	cr_assert_eq(store_release_target(s, "checkout", 1), 1);
	cr_assert_eq(store_target_claim(s, "checkout", &c), 0);
	cr_assert_str_eq(c.holder, "inc-b");

	cr_assert_eq(store_release_target(s, "checkout", 2), 0);
	cr_assert_eq(store_target_claim(s, "checkout", &c), 0);
	cr_assert_str_eq(c.holder, "");
	cr_assert_eq(store_release_target(s, "checkout", 2), 1); /* already released */

	/* released: anyone may claim before held_until, with a new epoch */
	cr_assert_eq(store_claim_target(s, "checkout", "inc-c", 1901, 100, &c), 0);
	cr_assert_str_eq(c.holder, "inc-c");
	cr_assert_eq(c.epoch, 3);

	/* targets are independent */
	cr_assert_eq(store_claim_target(s, "payments", "inc-b", 1901, 100, &c), 0);
	cr_assert_eq(c.epoch, 1);
	cr_assert_eq(store_release_target(s, "unknown-target", 1), 1);
	store_free(s);
}

Test(store, target_claim_rejects_bad_arguments)
{
	struct store *s = memory_store();
	struct store_target_claim c;
	char longname[STORE_TARGET_MAX + 2], longid[STORE_ID_MAX + 2];
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	memset(longid, 'i', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	cr_assert_eq(store_claim_target(s, longname, "inc-a", 0, 1, &c), -1);
	cr_assert_eq(store_claim_target(s, longname + 1, "inc-a", 0, 1, &c), 0,
		     "a target name of STORE_TARGET_MAX bytes fits");
	cr_assert_eq(store_targets_held(s, 0), 1);
	cr_assert_eq(store_targets_held(s, 1), 0, "expired");
	cr_assert_eq(store_claim_target(s, "t2", longid, 0, 1, &c), -1);
	cr_assert_eq(store_claim_target(s, "", "inc-a", 0, 1, &c), -1);
	cr_assert_eq(store_claim_target(s, "t", "", 0, 1, &c), -1);
	cr_assert_eq(store_claim_target(s, "t", "inc-a", 0, -1, &c), -1);
	cr_assert_eq(store_target_claim(s, "t", &c), 1);
	store_free(s);
}

struct racer {
	struct store *s;
	char incident[32];
	int rc;
	struct store_target_claim c;
	pthread_barrier_t *go;
};

static void *race(void *arg)
{
	struct racer *r = arg;
	pthread_barrier_wait(r->go);
	r->rc = store_claim_target(r->s, "checkout", r->incident, 5000, 60000, &r->c);
	return NULL;
}

Test(store, one_winner_when_threads_race_for_a_target)
{
	enum { N = 16 };
	for (int round = 0; round < 20; round++) {
		struct store *s = memory_store();
		struct racer r[N];
		pthread_t t[N];
		pthread_barrier_t go;
		pthread_barrier_init(&go, NULL, N);
		for (int i = 0; i < N; i++) {
			r[i] = (struct racer){.s = s, .go = &go};
			snprintf(r[i].incident, sizeof(r[i].incident), "inc-%02d", i);
			cr_assert_eq(pthread_create(&t[i], NULL, race, &r[i]), 0);
		}
		int winners = 0, winner = -1;
		for (int i = 0; i < N; i++)
			pthread_join(t[i], NULL);
		for (int i = 0; i < N; i++) {
			if (r[i].rc == 0) {
				winners++;
				winner = i;
			} else {
				cr_assert_eq(r[i].rc, 1);
			}
		}
		cr_assert_eq(winners, 1);
		cr_assert_eq(r[winner].c.epoch, 1);
		for (int i = 0; i < N; i++)
			if (i != winner)
				cr_assert_str_eq(r[i].c.holder, r[winner].incident);
		pthread_barrier_destroy(&go);
		store_free(s);
	}
}

Test(store, episode_claims_increase)
{
	struct store *s = memory_store();
	cr_assert_eq(store_claim_episode(s, "inc-a", 1), 0);
	cr_assert_eq(store_claim_episode(s, "inc-a", 1), 1);
	cr_assert_eq(store_claim_episode(s, "inc-b", 1), 0);
	cr_assert_eq(store_claim_episode(s, "inc-a", 3), 0);
	cr_assert_eq(store_claim_episode(s, "inc-a", 2), 1);
	cr_assert_eq(store_claim_episode(s, "inc-a", 4), 0);
	store_free(s);
}

Test(store, forgotten_episode_claim)
{
	struct store *s = memory_store();
	cr_assert_eq(store_claim_episode(s, "inc-a", 3), 0);
	cr_assert_eq(store_claim_episode(s, "inc-b", 1), 0);
	store_forget_episode(s, "inc-a");
	store_forget_episode(s, "inc-never");
	cr_assert_eq(store_claim_episode(s, "inc-a", 1), 0, "forgotten: any episode is new");
	cr_assert_eq(store_claim_episode(s, "inc-b", 1), 1, "the others stay");
	store_free(s);
}

/* Engine ids ("inc-" + 16 lowercase hex) are kept by their 64 bits, any
 * other id by its string: ids that look alike never share a claim. */
Test(store, episode_claims_of_ids_that_look_alike)
{
	struct store *s = memory_store();
	static const char *const ids[] = {
	    "inc-00000000000000ab",  /* an engine id */
	    "inc-00000000000000AB",  /* upper case: another id */
	    "inc-0000000000000000",  /* an engine id whose 64 bits are 0 */
	    "inc-000000000000000",   /* 15 digits */
	    "inc-00000000000000ab0", /* 17 */
	    "inc-00000000000000ag",  "INC-00000000000000ab", "inc-ab", "00000000000000ab", "",
	    "inc-ffffffffffffffff",  "x-ffffffffffffffff",
	};
	enum { N = sizeof(ids) / sizeof(ids[0]) };
	for (int i = 0; i < N; i++)
		cr_assert_eq(store_claim_episode(s, ids[i], 2 + i), 0, "%s", ids[i]);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(store_claim_episode(s, ids[i], 2 + i), 1, "%s", ids[i]);
		cr_assert_eq(store_claim_episode(s, ids[i], 1 + i), 1, "%s", ids[i]);
	}
	for (int i = 0; i < N; i += 2)
		store_forget_episode(s, ids[i]);
	for (int i = 0; i < N; i++)
		cr_assert_eq(store_claim_episode(s, ids[i], 1), i % 2 ? 1 : 0, "%s", ids[i]);
	cr_assert_eq(store_claim_episode(s, "inc-00000000000000ab", 50), 0);
	cr_assert_eq(store_claim_episode(s, "inc-00000000000000AB", 50), 0, "its own claim");
	char big[STORE_ID_MAX + 2];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	cr_assert_eq(store_claim_episode(s, big, 1), -1, "over STORE_ID_MAX");
	store_forget_episode(s, big);
	store_free(s);
}

/* Many engine ids, claimed, raised, forgotten and claimed again: the
 * claims table grows, shrinks and keeps every claim apart. */
Test(store, many_episode_claims)
{
	struct store *s = memory_store();
	enum { N = 20000 };
	char id[32];
	for (int i = 0; i < N; i++) {
		snprintf(id, sizeof(id), "inc-%016llx",
			 (unsigned long long)i * 0x9e3779b97f4a7c15ULL);
		cr_assert_eq(store_claim_episode(s, id, 1 + i % 7), 0, "%s", id);
	}
	for (int i = 0; i < N; i++) {
		snprintf(id, sizeof(id), "inc-%016llx",
			 (unsigned long long)i * 0x9e3779b97f4a7c15ULL);
		cr_assert_eq(store_claim_episode(s, id, 1 + i % 7), 1, "%s", id);
		if (i % 3 == 0)
			cr_assert_eq(store_claim_episode(s, id, 8), 0, "%s", id);
	}
	for (int i = 0; i < N; i++)
		if (i % 100) {
			snprintf(id, sizeof(id), "inc-%016llx",
				 (unsigned long long)i * 0x9e3779b97f4a7c15ULL);
			store_forget_episode(s, id);
		}
	for (int i = 0; i < N; i++) {
		snprintf(id, sizeof(id), "inc-%016llx",
			 (unsigned long long)i * 0x9e3779b97f4a7c15ULL);
		int held = i % 3 == 0 ? 8 : 1 + i % 7;
		cr_assert_eq(store_claim_episode(s, id, held), i % 100 ? 0 : 1, "%s", id);
	}
	store_free(s);
}

Test(store, rollbacks_counted_in_their_window)
{
	struct store *s = memory_store();
	const int64_t h = 3600 * 1000LL;
	cr_assert_eq(store_count_rollbacks(s, 0, h), 0);
	cr_assert_eq(store_note_rollback(s, "inc-a", 1000), 0);
	cr_assert_eq(store_note_rollback(s, "inc-b", 2000), 0);
	cr_assert_eq(store_count_rollbacks(s, 2000, h), 2);
	/* the first leaves exactly one window after it started */
	cr_assert_eq(store_count_rollbacks(s, 1000 + h, h), 1);
	cr_assert_eq(store_count_rollbacks(s, 2000 + h, h), 0);
	cr_assert_eq(store_count_rollbacks(s, 2500, 1000), 1);
	/* many, then an hour later only the new one counts */
	for (int i = 0; i < 100; i++)
		cr_assert_eq(store_note_rollback(s, "inc-c", 3000 + i), 0);
	cr_assert_eq(store_count_rollbacks(s, 4000, h), 102);
	cr_assert_eq(store_note_rollback(s, "inc-d", 4000 + h), 0);
	cr_assert_eq(store_count_rollbacks(s, 4000 + h, h), 1);
	store_free(s);
}

Test(store, timers_due_earliest_first_until_cancelled)
{
	struct store *s = memory_store();
	struct store_timer t = {
	    .incident = "inc-a", .kind = STORE_TIMER_FIRING_FOR, .episode = 1, .due_ms = 300};
	cr_assert_eq(store_set_timer(s, &t), 0);
	t = (struct store_timer){"inc-b", STORE_TIMER_APPROVE, 2, 100};
	cr_assert_eq(store_set_timer(s, &t), 0);
	t = (struct store_timer){"inc-a", STORE_TIMER_VERIFY, 1, 200};
	cr_assert_eq(store_set_timer(s, &t), 0);
	t = (struct store_timer){"inc-c", STORE_TIMER_VERIFY, 1, 900};
	cr_assert_eq(store_set_timer(s, &t), 0);

	struct store_timer out[8];
	cr_assert_eq(store_timers_due(s, 50, out, 8), 0);
	size_t n = store_timers_due(s, 300, out, 8);
	cr_assert_eq(n, 3);
	cr_assert_str_eq(out[0].incident, "inc-b");
	cr_assert_eq(out[0].kind, STORE_TIMER_APPROVE);
	cr_assert_eq(out[0].episode, 2);
	cr_assert_eq(out[1].due_ms, 200);
	cr_assert_eq(out[2].due_ms, 300);
	/* max keeps the earliest */
	cr_assert_eq(store_timers_due(s, 1000, out, 2), 2);
	cr_assert_eq(out[0].due_ms, 100);
	cr_assert_eq(out[1].due_ms, 200);

	/* replacing (same incident and kind) moves it; cancel forgets it */
	t = (struct store_timer){"inc-b", STORE_TIMER_APPROVE, 3, 950};
	cr_assert_eq(store_set_timer(s, &t), 0);
	store_cancel_timer(s, "inc-a", STORE_TIMER_VERIFY);
	store_cancel_timer(s, "inc-z", STORE_TIMER_VERIFY); /* nothing to cancel */
	n = store_timers_due(s, 1000, out, 8);
	cr_assert_eq(n, 3);
	cr_assert_eq(out[0].due_ms, 300);
	cr_assert_eq(out[1].due_ms, 900);
	cr_assert_eq(out[2].due_ms, 950);
	cr_assert_eq(out[2].episode, 3);
	t.kind = STORE_TIMER_KINDS;
	cr_assert_eq(store_set_timer(s, &t), -1);
	store_free(s);
}

static int collect(const struct store_outbox_entry *e, void *arg)
{
	struct buf *b = arg;
	return buf_addf(b, "%s/%s/%s/%s/%.*s;", e->id, e->incident, e->channel, e->event,
			(int)e->notice_len, e->notice);
}

Test(store, outbox_put_pending_done)
{
	struct store *s = memory_store();
	struct store_outbox_entry a = {"n-1", "inc-a", "slack", "trigger", "{\"x\":1}", 7};
	struct store_outbox_entry b = {"n-2", "inc-b", "pagerduty", "resolve", "{}", 2};
	cr_assert_eq(store_outbox_put(s, &a), 0);
	cr_assert_eq(store_outbox_put(s, &b), 0);
	cr_assert_eq(store_outbox_put(s, &a), -1); /* the same id twice */
	struct store_outbox_entry bad = {"n 3", "inc-a", "slack", "trigger", "{}", 2};
	cr_assert_eq(store_outbox_put(s, &bad), -1);
	struct buf out = BUF_INIT;
	cr_assert_eq(store_outbox_pending(s, collect, &out), 0);
	cr_assert_str_eq(out.data,
			 "n-1/inc-a/slack/trigger/{\"x\":1};n-2/inc-b/pagerduty/resolve/{};");
	cr_assert_eq(store_outbox_done(s, "n-1", true, ",\"status_code\":200", 18), 0);
	cr_assert_eq(store_outbox_done(s, "n-1", true, "", 0), 1);
	buf_reset(&out);
	cr_assert_eq(store_outbox_pending(s, collect, &out), 0);
	cr_assert_str_eq(out.data, "n-2/inc-b/pagerduty/resolve/{};");
	buf_release(&out);
	store_free(s);
}

Test(store, pause_changes_once)
{
	struct store *s = memory_store();
	cr_assert_not(store_paused(s));
	uint64_t t0 = store_last_ticket(s);
	cr_assert_eq(store_set_paused(s, true, "api"), 0);
	cr_assert(store_paused(s));
	cr_assert_eq(store_last_ticket(s), t0 + 1);
	cr_assert_eq(store_set_paused(s, true, "api"), 0); /* no change, no record */
	cr_assert_eq(store_last_ticket(s), t0 + 1);
	cr_assert_eq(store_set_paused(s, false, "api"), 0);
	cr_assert_not(store_paused(s));
	store_free(s);
}

static int durable_calls;
static bool durable_ok;

static void on_durable(bool ok, void *arg)
{
	durable_calls++;
	durable_ok = ok;
	event_base_loopbreak(arg);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(arg);
}

/* Run the loop until on_durable (or 5 s: the test then fails on the count). */
static void run_until_durable(void)
{
	struct event *deadline = evtimer_new(base, on_deadline, base);
	struct timeval tv = {5, 0};
	cr_assert_not_null(deadline);
	evtimer_add(deadline, &tv);
	event_base_dispatch(base);
	event_free(deadline);
}

Test(store, memory_only_records_are_durable_on_the_next_loop_turn)
{
	struct store *s = memory_store();
	uint64_t ticket = 0;
	cr_assert_eq(store_append(s, "decision", "inc-a", "", 0, &ticket), 0);
	cr_assert_eq(ticket, 1);
	cr_assert_eq(store_last_ticket(s), 1);
	durable_calls = 0;
	cr_assert_eq(store_when_durable(s, ticket, base, on_durable, base), 0);
	cr_assert_eq(durable_calls, 0); /* never on the caller's stack */
	run_until_durable();
	cr_assert_eq(durable_calls, 1);
	cr_assert(durable_ok);
	store_free(s);
}

/* Read the journal's records of type (after journal_close). */
static size_t count_records(const char *type, json_t **last)
{
	struct journal_reader *r = NULL;
	struct journal_line l;
	struct error err = {{0}};
	bool torn;
	size_t n = 0;
	cr_assert_eq(journal_reader_open(dir, &r, &err), 0, "%s", err.msg);
	while (journal_reader_next(r, &l, &torn, &err) == 1) {
		json_error_t je;
		json_t *rec = json_loadb(l.text, l.len, 0, &je);
		cr_assert_not_null(rec);
		if (strcmp(json_string_value(json_object_get(rec, "type")), type) == 0) {
			n++;
			if (last) {
				json_decref(*last);
				*last = json_incref(rec);
			}
		}
		json_decref(rec);
	}
	journal_reader_free(r);
	return n;
}

Test(store, journal_records_are_durable_and_rebuild_the_state)
{
	struct store *s = memory_store();
	struct journal *j = jopen(s);
	store_journal_attach(s, j);
	struct store_target_claim c;
	cr_assert_eq(store_claim_target(s, "checkout", "inc-a", 1000, 500, &c), 0);
	cr_assert_eq(store_claim_target(s, "checkout", "inc-b", 2000, 500, &c), 0);
	cr_assert_eq(c.epoch, 2);
	cr_assert_eq(store_claim_target(s, "payments", "inc-c", 2000, 500, &c), 0);
	cr_assert_eq(store_release_target(s, "payments", 1), 0);
	cr_assert_eq(store_set_paused(s, true, "api"), 0);
	struct store_outbox_entry a = {"n-1", "inc-a", "slack", "trigger", "{\"x\":1}", 7};
	struct store_outbox_entry b = {"n-2", "inc-b", "slack", "update", "{\"y\":[2]}", 9};
	cr_assert_eq(store_outbox_put(s, &a), 0);
	cr_assert_eq(store_outbox_put(s, &b), 0);
	cr_assert_eq(store_outbox_done(s, "n-1", false, ",\"error\":\"gone\"", 15), 0);

	uint64_t ticket = store_last_ticket(s);
	cr_assert_gt(ticket, 0);
	durable_calls = 0;
	cr_assert_eq(store_when_durable(s, ticket, base, on_durable, base), 0);
	run_until_durable();
	cr_assert_eq(durable_calls, 1);
	cr_assert(durable_ok);
	cr_assert(journal_durable(j, ticket));
	journal_close(j, 1000);
	store_free(s);

	json_t *last = NULL;
	cr_assert_eq(count_records("target_claimed", &last), 3);
	cr_assert_str_eq(json_string_value(json_object_get(last, "target")), "payments");
	cr_assert_str_eq(json_string_value(json_object_get(last, "incident")), "inc-c");
	cr_assert_eq(json_integer_value(json_object_get(last, "epoch")), 1);
	cr_assert_eq(json_integer_value(json_object_get(last, "held_until_ms")), 2500);
	cr_assert_eq(count_records("target_released", NULL), 1);
	cr_assert_eq(count_records("pause", NULL), 1);
	cr_assert_eq(count_records("notify_intent", NULL), 2);
	cr_assert_eq(count_records("notify_failed", &last), 1);
	cr_assert_str_eq(json_string_value(json_object_get(last, "id")), "n-1");
	cr_assert_str_eq(json_string_value(json_object_get(last, "error")), "gone");
	json_decref(last);

	/* rebuilt through journal_open's replay (observe), outbox tracked */
	struct store_journal_options o = {.outbox = true};
	struct store *r = store_journal_new(&o);
	cr_assert_not_null(r);
	j = jopen(r);
	cr_assert(store_paused(r));
	cr_assert_eq(store_target_claim(r, "checkout", &c), 0);
	cr_assert_str_eq(c.holder, "inc-b");
	cr_assert_eq(c.epoch, 2);
	cr_assert_eq(c.held_until_ms, 2500);
	cr_assert_eq(store_target_claim(r, "payments", &c), 0);
	cr_assert_str_eq(c.holder, "");
	cr_assert_eq(c.epoch, 1);
	struct buf out = BUF_INIT;
	cr_assert_eq(store_outbox_pending(r, collect, &out), 0);
	cr_assert_str_eq(out.data, "n-2/inc-b/slack/update/{\"y\":[2]};");
	/* epochs go on from what the journal says */
	store_journal_attach(r, j);
	cr_assert_eq(store_claim_target(r, "checkout", "inc-d", 3000, 500, &c), 0);
	cr_assert_eq(c.epoch, 3);
	cr_assert_eq(store_claim_target(r, "payments", "inc-d", 3000, 500, &c), 0);
	cr_assert_eq(c.epoch, 2);
	journal_close(j, 1000);
	store_free(r);

	/* without outbox tracking, notify_* records are left to notify */
	struct store *q = memory_store();
	j = jopen(q);
	buf_reset(&out);
	cr_assert_eq(store_outbox_pending(q, collect, &out), 0);
	cr_assert_eq(out.len, 0);
	cr_assert(store_paused(q));
	journal_close(j, 1000);
	store_free(q);
	buf_release(&out);
}

static int count_lines(const struct record *rec, void *arg)
{
	(*(int *)arg)++;
	return rec->len > 0 ? 0 : -1;
}

Test(store, store_replay_reads_the_journal_itself)
{
	struct store *s = memory_store();
	struct journal *j = jopen(NULL);
	store_journal_attach(s, j);
	struct store_target_claim c;
	cr_assert_eq(store_claim_target(s, "checkout", "inc-a", 1000, 500, &c), 0);
	cr_assert_eq(store_set_paused(s, true, "api"), 0);
	cr_assert_eq(store_set_paused(s, false, "api"), 0);
	journal_close(j, 1000);
	store_free(s);

	struct store_journal_options o = {.state_dir = dir};
	struct store *r = store_journal_new(&o);
	cr_assert_not_null(r);
	int lines = 0;
	struct error err = {{0}};
	cr_assert_eq(store_replay(r, count_lines, &lines, &err), 0, "%s", err.msg);
	cr_assert_eq(lines, 3);
	cr_assert_not(store_paused(r));
	cr_assert_eq(store_target_claim(r, "checkout", &c), 0);
	cr_assert_str_eq(c.holder, "inc-a");
	cr_assert_eq(c.epoch, 1);
	store_free(r);

	/* memory-only without a state_dir: nothing to read */
	struct store *m = memory_store();
	lines = 0;
	cr_assert_eq(store_replay(m, count_lines, &lines, &err), 0);
	cr_assert_eq(lines, 0);
	store_free(m);
}
