/*
 * Unit tests for changes: body validation with exact messages, the default
 * target, and the store's bounds (latest CHANGES_PER_TARGET per target,
 * ordered by time, repeats kept once) and replay of journal records.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "rollbackd/changes.h"
#include "rollbackd/record.h"

static struct timestamp at(int64_t sec)
{
	return (struct timestamp){sec, 0};
}

static struct change mk(const char *target, const char *rev, int64_t sec)
{
	struct change c;
	memset(&c, 0, sizeof(c));
	snprintf(c.target, sizeof(c.target), "%s", target);
	snprintf(c.revision, sizeof(c.revision), "%s", rev);
	snprintf(c.source, sizeof(c.source), "ci");
	c.at = at(sec);
	return c;
}

Test(changes, parse_defaults_and_errors)
{
	struct change c;
	struct error err = {{0}};
	bool je;
	enum change_format fmt;
	const char *ok = "{\"target\":\"service=a\",\"revision\":\"2\"}";
	cr_assert_eq(changes_parse(ok, strlen(ok), at(1000), &c, &fmt, &je, &err), 0, "%s",
		     err.msg);
	cr_assert_str_eq(c.source, "unknown");
	cr_assert_str_eq(c.previous_revision, "");
	cr_assert_eq(c.at.sec, 1000);
	const char *bad = "{\"target\":\"service=a\"}";
	cr_assert_eq(changes_parse(bad, strlen(bad), at(1000), &c, &fmt, &je, &err), -1);
	cr_assert_not(je);
	cr_assert_str_eq(err.msg, "revision: missing (a non-empty string is required)");
	cr_assert_eq(changes_parse("{", 1, at(1000), &c, &fmt, &je, &err), -1);
	cr_assert(je);
}

Test(changes, default_target_sorted)
{
	struct label g[] = {{"service", "checkout", 8}, {"env", "prod", 4}, {"az", "b", 1}};
	struct buf b = BUF_INIT;
	cr_assert_eq(changes_default_target(g, 3, &b), 0);
	cr_assert_str_eq(b.data, "az=b,env=prod,service=checkout");
	buf_reset(&b);
	cr_assert_eq(changes_default_target(g, 0, &b), 0);
	cr_assert_str_eq(b.data, "");
	buf_release(&b);
}

Test(changes, keeps_latest_eight_by_time)
{
	struct changes *s = changes_new();
	struct change out;
	/* ten changes, out of order: times 100, 300, 200, ... */
	for (int i = 0; i < 10; i++) {
		char rev[8];
		snprintf(rev, sizeof(rev), "r%d", i);
		struct change c = mk("t", rev, 100 * (i % 2 ? 10 - i : i + 1));
		cr_assert_eq(changes_add(s, &c), 0);
	}
	cr_assert_eq(changes_count(s), CHANGES_PER_TARGET);
	cr_assert(changes_latest(s, "t", &out));
	/* times: i=0:100 1:900 2:300 3:700 4:500 5:500 6:700 7:300 8:900 9:100 */
	cr_assert_eq(out.at.sec, 900);
	/* the two at 100 fell out */
	cr_assert_not(changes_within(s, "t", at(0), at(150), NULL));
	cr_assert(changes_within(s, "t", at(250), at(350), &out));
	cr_assert_eq(out.at.sec, 300);
	cr_assert_not(changes_latest(s, "other", &out));
	/* a repeat is kept once */
	struct change c = mk("u", "1", 5);
	cr_assert_eq(changes_add(s, &c), 0);
	cr_assert_eq(changes_add(s, &c), 1);
	cr_assert(changes_has(s, &c));
	cr_assert_eq(changes_count(s), CHANGES_PER_TARGET + 1);
	changes_free(s);
}

static int seq_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

Test(changes, held_seqs_are_the_records_still_kept)
{
	struct changes *s = changes_new();
	/* ten changes of t with seqs 11..20, times 100..1000: 11 and 12 fall out */
	for (int i = 0; i < 10; i++) {
		char rev[8];
		snprintf(rev, sizeof(rev), "r%d", i);
		struct change c = mk("t", rev, 100 * (i + 1));
		cr_assert_eq(changes_add_seq(s, &c, 11 + (uint64_t)i), 0);
	}
	struct change u = mk("u", "1", 5);
	cr_assert_eq(changes_add_seq(s, &u, 30), 0);
	cr_assert_eq(changes_add_seq(s, &u, 31), 1); /* a repeat: not held */
	struct change v = mk("v", "1", 5);
	cr_assert_eq(changes_add(s, &v), 0); /* no seq: not listed */
	uint64_t *seqs = NULL;
	size_t n = 0;
	cr_assert_eq(changes_held_seqs(s, &seqs, &n), 0);
	qsort(seqs, n, sizeof(*seqs), seq_cmp);
	uint64_t want[] = {13, 14, 15, 16, 17, 18, 19, 20, 30};
	cr_assert_eq(n, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(seqs[i], want[i], "seqs[%zu] = %llu", i, (unsigned long long)seqs[i]);
	free(seqs);
	changes_free(s);
}

Test(changes, bounded_targets)
{
	struct changes *s = changes_new();
	for (int i = 0; i < CHANGES_MAX_TARGETS + 10; i++) {
		char t[32];
		snprintf(t, sizeof(t), "service=s%d", i);
		struct change c = mk(t, "1", i);
		cr_assert_eq(changes_add(s, &c), 0);
	}
	struct change out;
	cr_assert_eq(changes_count(s), CHANGES_MAX_TARGETS);
	cr_assert_not(changes_latest(s, "service=s0", &out)); /* least recently changed */
	cr_assert(changes_latest(s, "service=s4105", &out));
	changes_free(s);
}

Test(changes, replay_record)
{
	struct changes *s = changes_new();
	const char *rec = "{\"seq\":3,\"ts\":\"2026-01-01T00:00:00Z\",\"type\":\"change\","
			  "\"incident\":\"\",\"target\":\"service=a\",\"revision\":\"42\","
			  "\"previous_revision\":\"41\",\"at\":\"2026-01-01T00:00:00Z\","
			  "\"source\":\"argocd\",\"prev\":\"00\",\"hash\":\"00\"}";
	const char *other = "{\"seq\":4,\"ts\":\"2026-01-01T00:00:00Z\",\"type\":\"decision\"}";
	struct record_toks toks = {0};
	struct record r;
	cr_assert_eq(record_decode(rec, strlen(rec), &r, &toks), RECORD_OK);
	cr_assert_eq(changes_replay_record(s, &r), 1);
	cr_assert_eq(record_decode(other, strlen(other), &r, &toks), RECORD_OK);
	cr_assert_eq(changes_replay_record(s, &r), 0);
	record_toks_release(&toks);
	struct change out;
	cr_assert(changes_latest(s, "service=a", &out));
	cr_assert_str_eq(out.revision, "42");
	cr_assert_str_eq(out.previous_revision, "41");
	cr_assert_str_eq(out.source, "argocd");
	changes_free(s);
}

Test(changes, flux_events)
{
	struct change c;
	struct error err = {{0}};
	bool je;
	enum change_format fmt;
	const char *ev = "{\"involvedObject\":{\"kind\":\"Kustomization\",\"namespace\":"
			 "\"flux-system\",\"name\":\"podinfo\"},\"severity\":\"info\","
			 "\"timestamp\":\"2026-01-01T00:00:00Z\",\"message\":\"Reconciliation "
			 "finished\",\"reason\":\"ReconciliationSucceeded\",\"metadata\":"
			 "{\"revision\":\"main@sha1:abc\"},\"reportingController\":"
			 "\"kustomize-controller\"}";
	cr_assert_eq(changes_parse(ev, strlen(ev), at(1767225600), &c, &fmt, &je, &err), 0, "%s",
		     err.msg);
	cr_assert_eq(fmt, CHANGE_FORMAT_FLUX);
	cr_assert_str_eq(c.target, "service=podinfo");
	cr_assert_str_eq(c.revision, "main@sha1:abc");
	cr_assert_str_eq(c.source, "flux");
	cr_assert_eq(c.at.sec, 1767225600);
	const char *tg = "{\"involvedObject\":{\"name\":\"podinfo\"},\"severity\":\"info\","
			 "\"metadata\":{\"revision\":\"v2\",\"target\":\"service=web\"}}";
	cr_assert_eq(changes_parse(tg, strlen(tg), at(1000), &c, &fmt, &je, &err), 0, "%s",
		     err.msg);
	cr_assert_str_eq(c.target, "service=web");
	const char *bad = "{\"involvedObject\":{\"name\":\"podinfo\"},\"severity\":\"error\","
			  "\"metadata\":{\"revision\":\"v2\"}}";
	cr_assert_eq(changes_parse(bad, strlen(bad), at(1000), &c, &fmt, &je, &err), 0);
	cr_assert_eq(fmt, CHANGE_FORMAT_IGNORED);
	cr_assert_str_eq(err.msg, "a Flux event of severity 'error' is not a change");
	const char *norev = "{\"involvedObject\":{\"name\":\"podinfo\"},\"severity\":\"info\"}";
	cr_assert_eq(changes_parse(norev, strlen(norev), at(1000), &c, &fmt, &je, &err), 0);
	cr_assert_eq(fmt, CHANGE_FORMAT_IGNORED);
	cr_assert_str_eq(err.msg, "a Flux event without metadata.revision is not a change");
	const char *numrev =
	    "{\"involvedObject\":{\"name\":\"p\"},\"metadata\":{\"revision\":true}}";
	cr_assert_eq(changes_parse(numrev, strlen(numrev), at(1000), &c, &fmt, &je, &err), -1);
	cr_assert_str_eq(err.msg, "metadata.revision: expected a non-empty string, got a boolean");
}
