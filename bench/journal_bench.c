/*
 * journal_bench: group-commit append throughput and replay time.
 *
 *   journal_bench append DIR THREADS SECONDS
 *       THREADS writers each append a notification-sized record and wait
 *       until it is durable, again and again (what POST /v1/alerts does):
 *       prints records/s, group commits (fdatasync) per second and records
 *       per commit.
 *   journal_bench replay DIR RECORDS RULES_DIR
 *       Writes RECORDS real records through the engine (a notification and
 *       a decision per alert; 1000 services x 10 pods whose alerts fire
 *       and resolve in rounds, so incidents open and close episodes), then
 *       times opening the journal: read, verify the whole chain and replay
 *       it into a fresh engine.
 *   journal_bench open DIR RULES_DIR
 *       On an existing journal (DIR: a state_dir): times reading every line,
 *       opening it without a replay (read and verify the whole chain), and
 *       opening it with the engine's replay, so a start can be split into
 *       its reading, chain-checking and replaying parts.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <sodium.h>

#include "rollbackd/alert.h"
#include "rollbackd/config.h"
#include "rollbackd/engine.h"
#include "rollbackd/journal.h"
#include "rollbackd/log.h"
#include "rollbackd/metrics.h"
#include "rollbackd/record.h"
#include "rollbackd/rules.h"
#include "rollbackd/timestamp.h"

static struct journal *J;
static _Atomic bool stop;
static _Atomic long appended;

struct writer {
	struct event_base *base;
	long n;
};

static void durable(bool ok, void *arg)
{
	struct writer *w = arg;
	if (!ok) {
		fprintf(stderr, "journal write failed\n");
		exit(1);
	}
	w->n++;
	event_base_loopbreak(w->base);
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	/* keeps the loop waiting for the journal's callback */
	struct event *keep = evtimer_new(w->base, (event_callback_fn)abort, NULL);
	struct timeval hour = {3600, 0};
	evtimer_add(keep, &hour);
	static const char members[] =
		",\"receiver\":\"rollbackd\",\"group_key\":\"{}:{alertname=\\\"RollbackErrorRate\\\"}\""
		",\"status\":\"firing\",\"fingerprint\":\"9cb0727b60cb065b\",\"startsAt\":"
		"\"2026-11-21T10:00:00Z\",\"endsAt\":\"0001-01-01T00:00:00Z\",\"labels\":{\"alertname\":"
		"\"RollbackErrorRate\",\"pod\":\"checkout-1\",\"service\":\"checkout\",\"severity\":"
		"\"critical\"},\"annotations\":{\"summary\":\"error ratio above 1%\",\"value\":"
		"\"0.05\"},\"generatorURL\":\"http://prometheus:9090/graph\",\"digest\":"
		"\"00112233445566778899aabbccddeeff\"";
	while (!atomic_load(&stop)) {
		uint64_t t;
		if (journal_append(J, "notification", "", members, sizeof(members) - 1, &t) < 0 ||
		    journal_wait(J, t, w->base, durable, w) < 0)
			exit(1);
		event_base_dispatch(w->base);
		atomic_fetch_add(&appended, 1);
	}
	event_free(keep);
	return NULL;
}

static struct record_toks replay_toks;

/* journal_open's replay: each line decoded once, then the engine's replay
 * (as the daemon does). */
static int replay_decoded(const struct journal_line *line, void *engine)
{
	struct record rec;
	if (record_decode(line->text, line->len, &rec, &replay_toks) == RECORD_ENOMEM)
		return -1;
	rec.where = line->segment;
	rec.offset = line->offset;
	return engine_replay_record(&rec, engine);
}

static int bench_append(const char *dir, int threads, int seconds)
{
	struct journal_options jo = {.state_dir = dir};
	struct error err = {{0}};
	if (journal_open(&jo, &J, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	struct writer *w = calloc((size_t)threads, sizeof(*w));
	pthread_t *th = calloc((size_t)threads, sizeof(*th));
	for (int i = 0; i < threads; i++) {
		w[i].base = event_base_new();
		pthread_create(&th[i], NULL, writer_main, &w[i]);
	}
	int64_t t0 = timestamp_mono_ms();
	struct timespec ts = {seconds, 0};
	nanosleep(&ts, NULL);
	atomic_store(&stop, true);
	for (int i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	double secs = (double)(timestamp_mono_ms() - t0) / 1000.0;
	journal_close(J, 1000);
	struct buf m = BUF_INIT;
	metrics_render(&m);
	const char *c = strstr(m.data, "rollbackd_journal_fsync_seconds_count ");
	long commits = c ? atol(c + strlen("rollbackd_journal_fsync_seconds_count ")) : 0;
	long n = atomic_load(&appended);
	printf("append: %d writers, %.1f s: %.0f records/s durable, %.0f group commits/s, "
	       "%.1f records per commit\n",
	       threads, secs, (double)n / secs, (double)commits / secs,
	       commits ? (double)n / (double)commits : 0.0);
	buf_release(&m);
	for (int i = 0; i < threads; i++)
		event_base_free(w[i].base);
	free(w);
	free(th);
	return 0;
}

static int bench_replay(const char *dir, long records, const char *rules_dir)
{
	struct config cfg;
	struct ruleset rules;
	struct error err = {{0}};
	config_init(&cfg);
	cfg.dry_run = true;
	if (rules_load(rules_dir, &rules, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	struct engine_options eo = {.cfg = &cfg};
	struct engine *e = engine_new(&eo, &rules);
	struct journal_options jo = {.state_dir = dir, .replay = replay_decoded, .replay_arg = e};
	if (journal_open(&jo, &J, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	engine_attach_journal(e, J);
	/* Each alert: one notification and one decision record. */
	char body[2048];
	long alerts = records / 2;
	int64_t t0 = timestamp_mono_ms();
	for (long i = 0; i < alerts; i++) {
		/* 1000 services x 10 pods; rounds of 10 000 alerts alternate
		 * firing and resolved, so incidents open and close episodes. */
		long round = i / 10000;
		bool firing = round % 2 == 0;
		int n = snprintf(body, sizeof(body),
				 "{\"version\":\"4\",\"groupKey\":\"g\",\"status\":\"%s\","
				 "\"receiver\":\"rollbackd\",\"groupLabels\":{},\"commonLabels\":{},"
				 "\"commonAnnotations\":{},\"externalURL\":\"http://am:9093\","
				 "\"alerts\":[{\"status\":\"%s\",\"labels\":{\"alertname\":"
				 "\"RollbackErrorRate\",\"service\":\"svc-%ld\",\"pod\":\"pod-%ld\","
				 "\"severity\":\"critical\"},\"annotations\":{\"summary\":\"error "
				 "ratio above 1%%\",\"value\":\"0.05\"},\"startsAt\":"
				 "\"2026-11-21T10:%02ld:00Z\",\"endsAt\":\"%s\","
				 "\"generatorURL\":\"http://prometheus:9090/graph?g0.expr=x\"}]}",
				 firing ? "firing" : "resolved", firing ? "firing" : "resolved",
				 i % 1000, (i / 1000) % 10, (round / 2) % 60,
				 firing ? "0001-01-01T00:00:00Z" : "2026-11-21T11:00:00Z");
		struct webhook wh;
		struct alert_limits lim = ALERT_LIMITS_DEFAULT;
		struct buf out = BUF_INIT;
		if (alert_parse_webhook(body, (size_t)n, &lim, &wh, &err) != ALERT_PARSE_OK ||
		    engine_process(e, &wh, timestamp_now(), &out) < 0) {
			fprintf(stderr, "engine: %s\n", err.msg);
			return 1;
		}
		webhook_release(&wh);
		buf_release(&out);
	}
	uint64_t seq = journal_seq(J);
	journal_close(J, 1000);
	engine_free(e);
	fprintf(stderr, "wrote %llu records in %.1f s\n", (unsigned long long)seq,
		(double)(timestamp_mono_ms() - t0) / 1000.0);

	e = engine_new(&eo, &rules);
	jo.replay_arg = e;
	t0 = timestamp_mono_ms();
	if (journal_open(&jo, &J, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	engine_attach_journal(e, J);
	int64_t ms = timestamp_mono_ms() - t0;
	struct buf inc = BUF_INIT;
	engine_incidents_json(e, &inc);
	size_t n_inc = 0;
	for (const char *p = inc.data; (p = strstr(p, "\"id\":")); p++)
		n_inc++;
	printf("replay: %llu records verified and replayed in %.3f s (%zu incidents rebuilt)\n",
	       (unsigned long long)journal_seq(J), (double)ms / 1000.0, n_inc);
	buf_release(&inc);
	journal_close(J, 1000);
	engine_free(e);
	ruleset_release(&rules);
	config_release(&cfg);
	return 0;
}

static int bench_open(const char *dir, const char *rules_dir)
{
	struct config cfg;
	struct ruleset rules;
	struct error err = {{0}};
	struct journal_reader *r;
	struct journal_line line;
	bool torn;
	config_init(&cfg);
	cfg.dry_run = true;
	if (rules_load(rules_dir, &rules, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	int64_t t0 = timestamp_mono_ms();
	long lines = 0;
	if (journal_reader_open(dir, &r, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	int got;
	while ((got = journal_reader_next(r, &line, &torn, &err)) == 1)
		lines++;
	journal_reader_free(r);
	if (got < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	printf("read: %ld lines in %.3f s\n", lines, (double)(timestamp_mono_ms() - t0) / 1000.0);

	struct journal_options jo = {.state_dir = dir};
	t0 = timestamp_mono_ms();
	if (journal_open(&jo, &J, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	printf("read and verify the chain: %llu records in %.3f s\n",
	       (unsigned long long)journal_seq(J), (double)(timestamp_mono_ms() - t0) / 1000.0);
	journal_close(J, 1000);

	struct engine_options eo = {.cfg = &cfg};
	struct engine *e = engine_new(&eo, &rules);
	jo.replay = replay_decoded;
	jo.replay_arg = e;
	t0 = timestamp_mono_ms();
	if (journal_open(&jo, &J, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	engine_attach_journal(e, J);
	printf("read, verify and replay into the engine: %llu records in %.3f s\n",
	       (unsigned long long)journal_seq(J), (double)(timestamp_mono_ms() - t0) / 1000.0);
	journal_close(J, 1000);
	engine_free(e);
	ruleset_release(&rules);
	config_release(&cfg);
	return 0;
}

int main(int argc, char **argv)
{
	if (sodium_init() < 0 || evthread_use_pthreads() < 0)
		return 1;
	log_set_level(LOG_WARN);
	if (argc == 5 && strcmp(argv[1], "append") == 0)
		return bench_append(argv[2], atoi(argv[3]), atoi(argv[4]));
	if (argc == 5 && strcmp(argv[1], "replay") == 0)
		return bench_replay(argv[2], atol(argv[3]), argv[4]);
	if (argc == 4 && strcmp(argv[1], "open") == 0)
		return bench_open(argv[2], argv[3]);
	fprintf(stderr, "usage: journal_bench append DIR THREADS SECONDS\n"
			"       journal_bench replay DIR RECORDS RULES_DIR\n"
			"       journal_bench open DIR RULES_DIR\n");
	return 2;
}
