/*
 * Unit tests for journal: the chain checked independently of journal.c
 * (SPEC §8: strip ,"hash":"..." from a line, BLAKE2b-256 what is left with
 * libsodium, compare, and check "prev" against the line before), group
 * commit from several threads, a torn tail cut and journaled on reopen, a
 * failed write truncated back and retried (RLIMIT_FSIZE with SIGXFSZ
 * ignored: write(2) then fails with EFBIG, no root needed), and segment
 * rotation. Every test works in its own temporary state_dir.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <ftw.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rollbackd/buf.h"
#include "rollbackd/journal.h"
#include "rollbackd/metrics.h"

#define SAFETY_MS 5000

static char state_dir[64];

static void setup(void)
{
	cr_assert_geq(sodium_init(), 0);
	cr_assert_eq(evthread_use_pthreads(), 0);
	snprintf(state_dir, sizeof(state_dir), "/tmp/rbjournal.XXXXXX");
	cr_assert_not_null(mkdtemp(state_dir));
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void teardown(void)
{
	nftw(state_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	metrics_free_all();
}

TestSuite(journal, .init = setup, .fini = teardown, .timeout = 30);

/* ---- helpers ------------------------------------------------------------ */

static char *path_in(const char *name)
{
	static char p[8][128];
	static int n;
	char *s = p[n++ % 8];
	snprintf(s, sizeof(p[0]), "%s/%s", state_dir, name);
	return s;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	struct buf b = BUF_INIT;
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		cr_assert_eq(buf_add(&b, chunk, n), 0);
	fclose(f);
	if (!b.data)
		cr_assert_eq(buf_add(&b, "", 0), 0);
	*len = b.len;
	return b.data; /* NUL-terminated (buf keeps a terminator) */
}

static off_t file_size(const char *path)
{
	struct stat st;
	cr_assert_eq(stat(path, &st), 0, "%s: %s", path, strerror(errno));
	return st.st_size;
}

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* Lines of a file (each without its newline; the last one may be torn). */
struct lines {
	char **v;
	size_t n;
};

static void lines_add_file(struct lines *ls, const char *path)
{
	size_t len;
	char *data = slurp(path, &len);
	char *p = data;
	while (p < data + len) {
		char *nl = memchr(p, '\n', (size_t)(data + len - p));
		size_t l = nl ? (size_t)(nl - p) : (size_t)(data + len - p);
		ls->v = realloc(ls->v, (ls->n + 1) * sizeof(*ls->v));
		cr_assert_not_null(ls->v);
		ls->v[ls->n++] = strndup(p, l);
		p += l + (nl ? 1 : 0);
	}
	free(data);
}

static void lines_free(struct lines *ls)
{
	for (size_t i = 0; i < ls->n; i++)
		free(ls->v[i]);
	free(ls->v);
	ls->v = NULL;
	ls->n = 0;
}

/* SPEC §8, written out here without journal.c: returns the line's hash and
 * checks its hash, that "prev" is B's last member and equals prev, and that
 * "seq" is want_seq. */
static void check_spec_line(const char *line, const char *prev, json_int_t want_seq,
			    char hash_out[65])
{
	static const char hash_key[] = ",\"hash\":\"";
	size_t len = strlen(line);
	cr_assert_gt(len, 75, "line too short: %s", line);
	const char *h = line + len - 75; /* ,"hash":"<64 hex>"} */
	cr_assert_eq(memcmp(h, hash_key, sizeof(hash_key) - 1), 0, "no hash at the end: %s", line);
	cr_assert_eq(strcmp(line + len - 2, "\"}"), 0);

	/* B = the line without ,"hash":"..." (its final '}' put back). */
	size_t blen = (size_t)(h - line);
	char *b = malloc(blen + 2);
	cr_assert_not_null(b);
	memcpy(b, line, blen);
	b[blen] = '}';
	b[blen + 1] = '\0';
	unsigned char d[crypto_generichash_BYTES];
	cr_assert_eq(crypto_generichash_BYTES, 32);
	cr_assert_eq(crypto_generichash(d, sizeof(d), (unsigned char *)b, blen + 1, NULL, 0), 0);
	char hex[65];
	sodium_bin2hex(hex, sizeof(hex), d, sizeof(d));
	cr_assert_eq(memcmp(hex, h + 9, 64), 0, "hash mismatch on %s", line);

	/* B is a JSON object whose last member is "prev". */
	json_error_t jerr;
	json_t *o = json_loads(b, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	cr_assert_not_null(o, "B is not JSON: %s (%s)", jerr.text, b);
	const char *last_key = NULL;
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v) last_key = k;
	cr_assert_str_eq(last_key, "prev", "prev is not B's last member: %s", b);
	cr_assert_str_eq(json_string_value(json_object_get(o, "prev")), prev);
	cr_assert_eq(json_integer_value(json_object_get(o, "seq")), want_seq);
	cr_assert(json_is_string(json_object_get(o, "ts")));
	cr_assert(json_is_string(json_object_get(o, "type")));
	cr_assert(json_is_string(json_object_get(o, "incident")));
	json_decref(o);
	free(b);
	memcpy(hash_out, hex, 65);
}

static const char zeros[65] = "0000000000000000000000000000000000000000000000000000000000000000";

/* Check a whole chain from seq 1; returns the last hash in last. */
static void check_chain(const struct lines *ls, char last[65])
{
	char prev[65];
	memcpy(prev, zeros, sizeof(prev));
	for (size_t i = 0; i < ls->n; i++)
		check_spec_line(ls->v[i], prev, (json_int_t)i + 1, prev);
	if (last)
		memcpy(last, prev, 65);
}

static json_t *parse(const char *line)
{
	json_error_t jerr;
	json_t *o = json_loads(line, JSON_ALLOW_NUL, &jerr);
	cr_assert_not_null(o, "%s: %s", jerr.text, line);
	return o;
}

static const char *str_of(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	cr_assert_not_null(s, "no string %s", key);
	return s;
}

/* Waiting for a ticket on our own event base. */
struct waited {
	struct event_base *base;
	int calls;
	bool ok;
	bool hung;
};

static void on_durable(bool ok, void *arg)
{
	struct waited *w = arg;
	w->calls++;
	w->ok = ok;
	event_base_loopbreak(w->base);
}

static void on_safety(evutil_socket_t fd, short what, void *arg)
{
	struct waited *w = arg;
	w->hung = true;
	event_base_loopbreak(w->base);
}

/* Wait for ticket on base; returns 1 (durable), 0 (failed) or -1 (no
 * answer within SAFETY_MS). */
static int wait_on(struct journal *j, uint64_t ticket, struct event_base *base)
{
	struct waited w = {.base = base};
	if (journal_wait(j, ticket, base, on_durable, &w) < 0)
		return -1;
	struct event *safety = evtimer_new(base, on_safety, &w);
	struct timeval tv = {SAFETY_MS / 1000, 0};
	evtimer_add(safety, &tv);
	while (w.calls == 0 && !w.hung)
		event_base_loop(base, 0);
	event_free(safety);
	if (w.calls != 1) {
		/* Never answered: the waiter still points at base, so keep it. */
		return -1;
	}
	return w.ok ? 1 : 0;
}

static int wait_ticket(struct journal *j, uint64_t ticket)
{
	struct event_base *base = event_base_new();
	cr_assert_not_null(base);
	int r = wait_on(j, ticket, base);
	if (r >= 0) /* else the journal may still call back on it: leave it */
		event_base_free(base);
	return r;
}

static struct journal *open_journal(uint64_t segment_bytes,
				    int (*replay)(const struct journal_line *, void *), void *arg)
{
	struct journal_options o = {.state_dir = state_dir,
				    .segment_bytes = segment_bytes,
				    .replay = replay,
				    .replay_arg = arg};
	struct journal *j = NULL;
	struct error err = {{0}};
	cr_assert_eq(journal_open(&o, &j, &err), 0, "journal_open: %s", err.msg);
	cr_assert_not_null(j);
	return j;
}

static uint64_t append(struct journal *j, const char *type, const char *incident,
		       const char *members)
{
	uint64_t t = 0;
	cr_assert_eq(journal_append(j, type, incident, members, strlen(members), &t), 0,
		     "journal_append %s", type);
	return t;
}

/* A metric value from the registry's text, e.g. "journal_records_total". */
static long metric(const char *name)
{
	struct buf m = BUF_INIT;
	cr_assert_eq(metrics_render(&m), 0);
	char key[128];
	snprintf(key, sizeof(key), "\nrollbackd_%s ", name);
	const char *p = strstr(m.data, key);
	cr_assert_not_null(p, "no %s in metrics", name);
	long v = atol(p + strlen(key));
	buf_release(&m);
	return v;
}

/* ---- chain -------------------------------------------------------------- */

Test(journal, chain_matches_spec)
{
	struct journal *j = open_journal(0, NULL, NULL);
	cr_assert_eq(journal_seq(j), 0);
	cr_assert_eq(journal_last_ticket(j), 0);
	uint64_t t1 = append(j, "started", "", ",\"version\":\"test\"");
	uint64_t t2 = append(j, "notification", "inc-1", ",\"alerts\":[{\"status\":\"firing\"}]");
	uint64_t t3 = append(j, "decision", "inc-1", "");
	/* A type and an incident that need escaping stay one valid line. */
	uint64_t t4 = append(j, "note", "in\"c\\2\n", ",\"text\":\"a\\u0000b\"");
	cr_assert_eq(t1, 1);
	cr_assert_eq(t4, 4);
	cr_assert_eq(journal_seq(j), 4);
	cr_assert_eq(wait_ticket(j, t4), 1);
	cr_assert(journal_durable(j, t2));
	cr_assert(journal_durable(j, t3));
	cr_assert(journal_available(j));
	char e[64];
	journal_last_error(j, e, sizeof(e));
	cr_assert_str_eq(e, "");
	journal_close(j, 1000);

	struct lines ls = {0};
	lines_add_file(&ls, path_in(JOURNAL_FILE));
	cr_assert_eq(ls.n, 4);
	char last[65];
	check_chain(&ls, last);
	json_t *o = parse(ls.v[1]);
	cr_assert_str_eq(str_of(o, "type"), "notification");
	cr_assert_str_eq(str_of(o, "incident"), "inc-1");
	cr_assert_str_eq(str_of(json_array_get(json_object_get(o, "alerts"), 0), "status"),
			 "firing");
	json_decref(o);
	o = parse(ls.v[3]);
	cr_assert_str_eq(str_of(o, "incident"), "in\"c\\2\n");
	json_decref(o);
	/* The member order of B is the one SPEC §8 gives. */
	cr_assert_eq(strncmp(ls.v[0], "{\"seq\":1,\"ts\":\"", 15), 0, "%s", ls.v[0]);
	cr_assert_not_null(strstr(ls.v[0], "\",\"type\":\"started\",\"incident\":\"\","
					   "\"version\":\"test\",\"prev\":\""));

	/* journal.c's own check agrees, and the chain continues after reopen. */
	uint64_t seq;
	char h[JOURNAL_HASH_HEX + 1];
	struct error err = {{0}};
	cr_assert_eq(journal_check_line(ls.v[3], strlen(ls.v[3]), NULL, 4, &seq, h, &err), 0, "%s",
		     err.msg);
	cr_assert_str_eq(h, last);
	j = open_journal(0, NULL, NULL);
	cr_assert_eq(journal_seq(j), 4);
	cr_assert_eq(wait_ticket(j, append(j, "resume", "", ",\"by\":\"t\"")), 1);
	journal_close(j, 1000);
	lines_free(&ls);
	lines_add_file(&ls, path_in(JOURNAL_FILE));
	cr_assert_eq(ls.n, 5);
	check_chain(&ls, NULL);
	lines_free(&ls);
}

Test(journal, check_line_names_what_is_wrong)
{
	struct journal *j = open_journal(0, NULL, NULL);
	cr_assert_eq(wait_ticket(j, append(j, "started", "", ",\"k\":1")), 1);
	journal_close(j, 1000);
	struct lines ls = {0};
	lines_add_file(&ls, path_in(JOURNAL_FILE));
	cr_assert_eq(ls.n, 1);
	char *l = ls.v[0];
	size_t len = strlen(l);
	uint64_t seq;
	char h[JOURNAL_HASH_HEX + 1];
	struct error err = {{0}};
	cr_assert_eq(journal_check_line(l, len, zeros, 2, &seq, h, &err), -1);
	cr_assert_str_eq(err.msg, "seq 1: expected seq 2");
	char other[65];
	memcpy(other, zeros, 65);
	other[0] = '1';
	cr_assert_eq(journal_check_line(l, len, other, 1, &seq, h, &err), -1);
	cr_assert_str_eq(err.msg, "seq 1: \"prev\" is not the previous record's hash");
	char *colon = strstr(l, "\"k\":1");
	cr_assert_not_null(colon);
	colon[4] = '2'; /* one edited byte */
	cr_assert_eq(journal_check_line(l, len, zeros, 1, &seq, h, &err), -1);
	cr_assert_str_eq(err.msg, "seq 1: hash does not match the record");
	cr_assert_eq(journal_check_line("{\"seq\":1}", 9, NULL, 0, &seq, h, &err), -1);
	cr_assert_str_eq(err.msg, "too short to be a record");
	lines_free(&ls);
}

/* ---- group commit ------------------------------------------------------- */

#define THREADS 8
#define PER_THREAD 150

struct appender {
	struct journal *j;
	int id;
	uint64_t tickets[PER_THREAD];
	int failures; /* appends refused, waits not durable or never answered */
};

static void *appender_main(void *arg)
{
	struct appender *a = arg;
	struct event_base *base = event_base_new();
	if (!base) {
		a->failures++;
		return NULL;
	}
	for (int i = 0; i < PER_THREAD; i++) {
		char m[64];
		int n = snprintf(m, sizeof(m), ",\"thread\":%d,\"i\":%d", a->id, i);
		if (journal_append(a->j, "notification", "", m, (size_t)n, &a->tickets[i]) < 0 ||
		    wait_on(a->j, a->tickets[i], base) != 1) {
			a->failures++;
			return NULL; /* base may still be called back: leave it */
		}
	}
	event_base_free(base);
	return NULL;
}

Test(journal, group_commit_from_threads)
{
	struct journal *j = open_journal(0, NULL, NULL);
	struct appender a[THREADS];
	pthread_t th[THREADS];
	for (int t = 0; t < THREADS; t++) {
		memset(&a[t], 0, sizeof(a[t]));
		a[t].j = j;
		a[t].id = t;
		cr_assert_eq(pthread_create(&th[t], NULL, appender_main, &a[t]), 0);
	}
	for (int t = 0; t < THREADS; t++)
		pthread_join(th[t], NULL);
	const size_t total = THREADS * PER_THREAD;
	for (int t = 0; t < THREADS; t++)
		cr_assert_eq(a[t].failures, 0, "thread %d: %d failures", t, a[t].failures);
	cr_assert_eq(journal_seq(j), total);
	cr_assert(journal_durable(j, total));
	cr_assert_eq(metric("journal_records_total"), (long)total);
	long commits = metric("journal_fsync_seconds_count");
	cr_assert_geq(commits, 1);
	cr_assert_leq(commits, (long)total);
	cr_assert_eq(metric("journal_errors_total"), 0);
	journal_close(j, 1000);

	struct lines ls = {0};
	lines_add_file(&ls, path_in(JOURNAL_FILE));
	cr_assert_eq(ls.n, total);
	check_chain(&ls, NULL);
	/* Each thread's records are in its order, each at the seq of its
	 * ticket, and every (thread, i) appears exactly once. */
	int next[THREADS] = {0};
	for (size_t s = 0; s < ls.n; s++) {
		json_t *o = parse(ls.v[s]);
		int t = (int)json_integer_value(json_object_get(o, "thread"));
		int i = (int)json_integer_value(json_object_get(o, "i"));
		cr_assert(t >= 0 && t < THREADS);
		cr_assert_eq(i, next[t], "thread %d: record %d where %d was due", t, i, next[t]);
		cr_assert_eq(a[t].tickets[i], s + 1, "ticket %" PRIu64 " at seq %zu",
			     a[t].tickets[i], s + 1);
		next[t]++;
		json_decref(o);
	}
	for (int t = 0; t < THREADS; t++)
		cr_assert_eq(next[t], PER_THREAD);
	lines_free(&ls);
}

/* ---- failed write: truncated back, retried, one commit for the backlog ---- */

Test(journal, failed_write_is_truncated_and_retried)
{
	struct journal *j = open_journal(0, NULL, NULL);
	cr_assert_eq(wait_ticket(j, append(j, "started", "", ",\"n\":1")), 1);
	cr_assert_eq(wait_ticket(j, append(j, "started", "", ",\"n\":2")), 1);
	size_t len0;
	char *before = slurp(path_in(JOURNAL_FILE), &len0);
	cr_assert_eq(file_size(path_in(JOURNAL_FILE)), (off_t)len0);

	/* Let 40 more bytes in: the next write is cut short, then fails. */
	struct rlimit old, low;
	cr_assert_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_IGN);
	low = old;
	low.rlim_cur = (rlim_t)len0 + 40;
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &low), 0);

	char pad[300];
	memset(pad, 'x', sizeof(pad));
	char m[400];
	snprintf(m, sizeof(m), ",\"n\":3,\"pad\":\"%.*s\"", (int)sizeof(pad), pad);
	uint64_t t3 = append(j, "notification", "inc-3", m);
	cr_assert_eq(wait_ticket(j, t3), 0, "a failed write must answer not durable");
	cr_assert_not(journal_available(j));
	cr_assert_not(journal_durable(j, t3));
	char e[600], want[600];
	journal_last_error(j, e, sizeof(e));
	snprintf(want, sizeof(want), "%s: File too large", path_in(JOURNAL_FILE));
	cr_assert_str_eq(e, want);
	/* Nothing half-written stays behind. */
	size_t len1;
	char *after = slurp(path_in(JOURNAL_FILE), &len1);
	cr_assert_eq(len1, len0);
	cr_assert_eq(memcmp(before, after, len0), 0);
	free(after);

	/* More records while failing: accepted, answered "not durable" at once. */
	uint64_t t4 = append(j, "notification", "inc-4", ",\"n\":4");
	uint64_t t5 = append(j, "notification", "inc-5", ",\"n\":5");
	cr_assert_eq(t5, 5);
	cr_assert_eq(wait_ticket(j, t4), 0);
	cr_assert_eq(journal_seq(j), 5);
	long commits = metric("journal_fsync_seconds_count");
	cr_assert_eq(commits, 2);
	cr_assert_geq(metric("journal_errors_total"), 1);
	cr_assert_eq(metric("journal_records_total"), 2);

	/* The disk works again: the retry (every second) writes the backlog. */
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	for (int i = 0; i < 300 && !journal_available(j); i++)
		usleep(10 * 1000);
	cr_assert(journal_available(j), "never retried");
	cr_assert(journal_durable(j, t5));
	cr_assert_eq(wait_ticket(j, t5), 1);
	journal_last_error(j, e, sizeof(e));
	cr_assert_str_eq(e, "");
	/* The three buffered records went in one write and one sync. */
	cr_assert_eq(metric("journal_fsync_seconds_count"), commits + 1);
	cr_assert_eq(metric("journal_records_total"), 5);
	journal_close(j, 1000);

	struct lines ls = {0};
	lines_add_file(&ls, path_in(JOURNAL_FILE));
	cr_assert_eq(ls.n, 5);
	check_chain(&ls, NULL);
	for (size_t i = 0; i < ls.n; i++) {
		json_t *o = parse(ls.v[i]);
		cr_assert_eq(json_integer_value(json_object_get(o, "n")), (json_int_t)i + 1);
		json_decref(o);
	}
	json_t *o = parse(ls.v[2]);
	cr_assert_str_eq(str_of(o, "incident"), "inc-3");
	cr_assert_eq(strlen(str_of(o, "pad")), sizeof(pad));
	json_decref(o);
	lines_free(&ls);
	free(before);
}

/* ---- torn tail ------------------------------------------------------------ */

struct replayed {
	int n;
	char types[16][32];
	char segments[16][128];
	uint64_t offsets[16];
};

static int count_replay(const struct journal_line *line, void *arg)
{
	struct replayed *r = arg;
	if (r->n < 16) {
		char *l = strndup(line->text, line->len);
		json_t *o = json_loads(l, 0, NULL);
		snprintf(r->types[r->n], sizeof(r->types[0]), "%s",
			 o ? json_string_value(json_object_get(o, "type")) : "?");
		json_decref(o);
		free(l);
		snprintf(r->segments[r->n], sizeof(r->segments[0]), "%s", line->segment);
		r->offsets[r->n] = line->offset;
	}
	r->n++;
	return 0;
}

static void write_three(void)
{
	struct journal *j = open_journal(0, NULL, NULL);
	append(j, "started", "", "");
	append(j, "notification", "inc-1", ",\"a\":1");
	uint64_t t = append(j, "decision", "inc-1", ",\"outcome\":\"acting\"");
	cr_assert_eq(wait_ticket(j, t), 1);
	journal_close(j, 1000);
}

static void append_bytes(const char *path, const char *s, size_t n)
{
	FILE *f = fopen(path, "ab");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(s, 1, n, f), n);
	cr_assert_eq(fclose(f), 0);
}

Test(journal, torn_tail_is_cut_and_journaled)
{
	write_three();
	size_t len0;
	char *before = slurp(path_in(JOURNAL_FILE), &len0);
	struct lines ls = {0};
	lines_add_file(&ls, path_in(JOURNAL_FILE));
	char h3[65];
	check_chain(&ls, h3);
	/* A fourth record whose write stopped after 57 bytes. */
	static const char torn[] = "{\"seq\":4,\"ts\":\"2026-12-02T05:00:00.000Z\",\"type\":\"no";
	append_bytes(path_in(JOURNAL_FILE), torn, sizeof(torn) - 1);

	struct replayed r = {0};
	struct journal *j = open_journal(0, count_replay, &r);
	cr_assert_eq(r.n, 3, "replayed %d records", r.n);
	cr_assert_str_eq(r.types[0], "started");
	cr_assert_str_eq(r.types[2], "decision");
	cr_assert_str_eq(r.segments[2], path_in(JOURNAL_FILE));
	cr_assert_eq(r.offsets[0], 0);
	cr_assert_eq(r.offsets[1], strlen(ls.v[0]) + 1);
	cr_assert_eq(journal_seq(j), 4, "the journal_truncated record is seq 4");
	cr_assert_eq(journal_last_ticket(j), 1);
	cr_assert_eq(wait_ticket(j, 1), 1);
	journal_close(j, 1000);

	size_t len1;
	char *after = slurp(path_in(JOURNAL_FILE), &len1);
	cr_assert_gt(len1, len0);
	cr_assert_eq(memcmp(before, after, len0), 0, "the good records changed");
	lines_free(&ls);
	lines_add_file(&ls, path_in(JOURNAL_FILE));
	cr_assert_eq(ls.n, 4);
	check_chain(&ls, NULL);
	json_t *o = parse(ls.v[3]);
	cr_assert_str_eq(str_of(o, "type"), "journal_truncated");
	cr_assert_str_eq(str_of(o, "incident"), "");
	cr_assert_str_eq(str_of(o, "segment"), "journal.jsonl");
	cr_assert_eq(json_integer_value(json_object_get(o, "offset")), (json_int_t)len0);
	cr_assert_eq(json_integer_value(json_object_get(o, "bytes")),
		     (json_int_t)(sizeof(torn) - 1));
	cr_assert_str_eq(str_of(o, "prev"), h3);
	json_decref(o);

	/* Reopened again: nothing more to cut, nothing more journaled. */
	memset(&r, 0, sizeof(r));
	j = open_journal(0, count_replay, &r);
	cr_assert_eq(r.n, 4);
	cr_assert_str_eq(r.types[3], "journal_truncated");
	cr_assert_eq(journal_last_ticket(j), 0);
	journal_close(j, 1000);
	cr_assert_eq(file_size(path_in(JOURNAL_FILE)), (off_t)len1);
	lines_free(&ls);
	free(before);
	free(after);
}

Test(journal, complete_bad_last_line_refuses)
{
	write_three();
	size_t len0;
	char *before = slurp(path_in(JOURNAL_FILE), &len0);
	append_bytes(path_in(JOURNAL_FILE), "{\"seq\":4}\n", 10);
	struct journal_options o = {.state_dir = state_dir};
	struct journal *j = NULL;
	struct error err = {{0}};
	cr_assert_eq(journal_open(&o, &j, &err), -1);
	char want[1024];
	snprintf(want, sizeof(want),
		 "%s: offset %zu: record seq 4 is bad (too short to be a record); nothing was "
		 "changed: 'rollbackd audit verify --journal %s' shows it, and 'rollbackd serve "
		 "--recover' moves the damaged part aside (kept), starts a new segment and starts "
		 "paused",
		 path_in(JOURNAL_FILE), len0, state_dir);
	cr_assert_str_eq(err.msg, want);
	/* The evidence stays as it was. */
	size_t len1;
	char *after = slurp(path_in(JOURNAL_FILE), &len1);
	cr_assert_eq(len1, len0 + 10);
	cr_assert_eq(memcmp(before, after, len0), 0);
	free(before);
	free(after);
}

Test(journal, edited_middle_line_refuses)
{
	write_three();
	size_t len;
	char *data = slurp(path_in(JOURNAL_FILE), &len);
	char *a = strstr(data, "\"a\":1");
	cr_assert_not_null(a);
	a[4] = '7';
	size_t off2 = (size_t)(strchr(data, '\n') - data) + 1;
	FILE *f = fopen(path_in(JOURNAL_FILE), "wb");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(data, 1, len, f), len);
	fclose(f);
	struct journal_options o = {.state_dir = state_dir};
	struct journal *j = NULL;
	struct error err = {{0}};
	cr_assert_eq(journal_open(&o, &j, &err), -1);
	char want[1024];
	snprintf(want, sizeof(want),
		 "%s: offset %zu: record seq 2 is bad (seq 2: hash does not match the record); "
		 "nothing was changed: 'rollbackd audit verify --journal %s' shows it, and "
		 "'rollbackd serve --recover' moves the damaged part aside (kept), starts a new "
		 "segment and starts paused",
		 path_in(JOURNAL_FILE), off2, state_dir);
	cr_assert_str_eq(err.msg, want);
	free(data);
}

/* ---- segment rotation ------------------------------------------------------ */

#define SEG_BYTES 1024

Test(journal, segments_rotate_and_chain_across)
{
	struct journal *j = open_journal(SEG_BYTES, NULL, NULL);
	char pad[130];
	memset(pad, 'p', sizeof(pad));
	char m[400];
	for (int i = 1; i <= 10; i++) {
		snprintf(m, sizeof(m), ",\"i\":%d,\"pad\":\"%.*s\"", i, (int)sizeof(pad), pad);
		/* One record per commit, so each rotation point is known. */
		cr_assert_eq(wait_ticket(j, append(j, "notification", "", m)), 1);
	}
	journal_close(j, 1000);

	/* Every line is 380-390 bytes (the ts has a varying number of digits):
	 * a segment closes after the commit that takes it to SEG_BYTES or
	 * more, i.e. after 3 records. */
	const char *seg[] = {"journal.000001.jsonl", "journal.000002.jsonl", "journal.000003.jsonl",
			     JOURNAL_FILE};
	const size_t per[] = {3, 3, 3, 1};
	cr_assert_not(exists(path_in("journal.000004.jsonl")));
	struct lines all = {0};
	size_t total = 0;
	for (int s = 0; s < 4; s++) {
		struct lines ls = {0};
		lines_add_file(&ls, path_in(seg[s]));
		cr_assert_eq(ls.n, per[s], "%s has %zu records", seg[s], ls.n);
		size_t bytes = 0;
		for (size_t i = 0; i < ls.n; i++) {
			bytes += strlen(ls.v[i]) + 1;
			all.v = realloc(all.v, (all.n + 1) * sizeof(*all.v));
			all.v[all.n++] = strdup(ls.v[i]);
		}
		if (s < 3) {
			cr_assert_geq(bytes, SEG_BYTES, "%s closed early", seg[s]);
			cr_assert_lt(bytes - strlen(ls.v[ls.n - 1]) - 1, SEG_BYTES,
				     "%s closed late", seg[s]);
		}
		cr_assert_eq(file_size(path_in(seg[s])), (off_t)bytes);
		total += ls.n;
		lines_free(&ls);
	}
	cr_assert_eq(total, 10);
	/* One chain across the segments, seq 1..10 in order. */
	check_chain(&all, NULL);
	for (size_t i = 0; i < all.n; i++) {
		json_t *o = parse(all.v[i]);
		cr_assert_eq(json_integer_value(json_object_get(o, "i")), (json_int_t)i + 1);
		json_decref(o);
	}

	/* The reader takes them in numeric order, then journal.jsonl. */
	struct journal_reader *rd;
	struct error err = {{0}};
	cr_assert_eq(journal_reader_open(state_dir, &rd, &err), 0, "%s", err.msg);
	struct journal_line line;
	bool torn;
	for (size_t i = 0; i < all.n; i++) {
		cr_assert_eq(journal_reader_next(rd, &line, &torn, &err), 1, "%s", err.msg);
		cr_assert_not(torn);
		cr_assert_eq(line.len, strlen(all.v[i]));
		cr_assert_eq(memcmp(line.text, all.v[i], line.len), 0);
		cr_assert_str_eq(line.segment, path_in(seg[i < 9 ? i / 3 : 3]));
	}
	cr_assert_eq(journal_reader_next(rd, &line, &torn, &err), 0);
	journal_reader_free(rd);

	/* Reopened: everything replays, and numbering continues at 000004. */
	struct replayed r = {0};
	j = open_journal(SEG_BYTES, count_replay, &r);
	cr_assert_eq(r.n, 10);
	cr_assert_str_eq(r.segments[0], path_in(seg[0]));
	cr_assert_str_eq(r.segments[9], path_in(JOURNAL_FILE));
	cr_assert_eq(journal_seq(j), 10);
	for (int i = 11; i <= 13; i++) {
		snprintf(m, sizeof(m), ",\"i\":%d,\"pad\":\"%.*s\"", i, (int)sizeof(pad), pad);
		cr_assert_eq(wait_ticket(j, append(j, "notification", "", m)), 1);
	}
	journal_close(j, 1000);
	cr_assert(exists(path_in("journal.000004.jsonl")));
	cr_assert_not(exists(path_in("journal.000005.jsonl")));
	lines_free(&all);
	/* Record 10 was in journal.jsonl: 10..12 closed 000004, 13 is current. */
	const char *seg2[] = {"journal.000001.jsonl", "journal.000002.jsonl",
			      "journal.000003.jsonl", "journal.000004.jsonl", JOURNAL_FILE};
	const size_t per2[] = {3, 3, 3, 3, 1};
	for (int s = 0; s < 5; s++) {
		size_t before_n = all.n;
		lines_add_file(&all, path_in(seg2[s]));
		cr_assert_eq(all.n - before_n, per2[s], "%s", seg2[s]);
	}
	cr_assert_eq(all.n, 13);
	check_chain(&all, NULL);
	lines_free(&all);
}

/* ---- replay across many batches (the verifier hands lines over) ------- */

struct ordered {
	uint64_t n;	   /* records seen */
	uint64_t fail_at;  /* return -1 at this record (1-based), 0 never */
	uint64_t next_off; /* where the next line must start */
	bool in_order;
};

static int ordered_replay(const struct journal_line *line, void *arg)
{
	struct ordered *o = arg;
	o->n++;
	char want[32];
	int k = snprintf(want, sizeof(want), "{\"seq\":%" PRIu64 ",", o->n);
	if (line->offset != o->next_off || line->len < (size_t)k || memcmp(line->text, want, k))
		o->in_order = false;
	o->next_off = line->offset + line->len + 1;
	return o->fail_at && o->n == o->fail_at ? -1 : 0;
}

/* 6000 records of ~1.2 KB: more than the verifier's batches hold at once,
 * so it has to wait for the replayer; every record is replayed once, in
 * order, with its offset. */
static void write_many(int n)
{
	struct journal *j = open_journal(0, NULL, NULL);
	char pad[1200];
	memset(pad, 'x', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	char members[1300];
	snprintf(members, sizeof(members), ",\"pad\":\"%s\"", pad);
	uint64_t t = 0;
	for (int i = 0; i < n; i++)
		t = append(j, "notification", "inc-1", members);
	cr_assert_eq(wait_ticket(j, t), 1);
	journal_close(j, 1000);
}

Test(journal, replay_of_many_batches_is_whole_and_in_order)
{
	write_many(6000);
	struct ordered o = {.in_order = true};
	struct journal *j = open_journal(0, ordered_replay, &o);
	cr_assert_eq(o.n, 6000);
	cr_assert(o.in_order);
	cr_assert_eq(journal_seq(j), 6000);
	journal_close(j, 1000);
}

Test(journal, replay_stops_where_the_callback_fails)
{
	write_many(6000);
	struct ordered o = {.in_order = true, .fail_at = 4321};
	struct journal_options opt = {
	    .state_dir = state_dir, .replay = ordered_replay, .replay_arg = &o};
	struct journal *j = NULL;
	struct error err = {{0}};
	cr_assert_eq(journal_open(&opt, &j, &err), -1);
	cr_assert_null(j);
	cr_assert_eq(o.n, 4321, "replayed %" PRIu64 " records", o.n);
	cr_assert(o.in_order);
	/* "<file>: offset <of record 4321>: cannot replay seq 4321" */
	char want[256];
	size_t len;
	char *text = slurp(path_in(JOURNAL_FILE), &len), *p = text;
	for (int i = 1; i < 4321; i++)
		p = strchr(p, '\n') + 1;
	snprintf(want, sizeof(want), "%s: offset %zu: cannot replay seq 4321",
		 path_in(JOURNAL_FILE), (size_t)(p - text));
	free(text);
	cr_assert_str_eq(err.msg, want);
}

Test(journal, replay_stops_before_a_damaged_record)
{
	write_many(6000);
	/* damage record 5000 in place: a byte of its padding */
	size_t len;
	char *text = slurp(path_in(JOURNAL_FILE), &len);
	char *p = text;
	for (int i = 1; i < 5000; i++)
		p = strchr(p, '\n') + 1;
	uint64_t off = (uint64_t)(p - text);
	char *x = strstr(p, "xxxx");
	*x = 'y';
	FILE *f = fopen(path_in(JOURNAL_FILE), "wb");
	cr_assert_eq(fwrite(text, 1, len, f), len);
	fclose(f);
	free(text);
	struct ordered o = {.in_order = true};
	struct journal_options opt = {
	    .state_dir = state_dir, .replay = ordered_replay, .replay_arg = &o};
	struct journal *j = NULL;
	struct error err = {{0}};
	cr_assert_eq(journal_open(&opt, &j, &err), -1);
	cr_assert_eq(o.n, 4999, "only the good records before it are replayed");
	cr_assert(o.in_order);
	char want[512];
	snprintf(want, sizeof(want),
		 "%s: offset %" PRIu64 ": record seq 5000 is bad (seq 5000: hash does not match "
		 "the record)",
		 path_in(JOURNAL_FILE), off);
	cr_assert(strncmp(err.msg, want, strlen(want)) == 0, "%s\nwant %s", err.msg, want);
}
