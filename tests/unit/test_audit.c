/*
 * Unit tests for audit: relative times and durations, numbers, Markdown
 * fencing and escaping, one-line summaries, the --incident/--since filter,
 * and verify against journals written by journal_append itself.
 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rollbackd/audit.h"
#include "rollbackd/cmd.h"
#include "rollbackd/journal.h"
#include "rollbackd/log.h"
#include "rollbackd/metrics.h"

/* ---- helpers ---- */

static void assert_rel(int64_t ms, const char *want)
{
	char out[AUDIT_DURATION_STRLEN];
	size_t n = audit_format_rel(ms, out, sizeof(out));
	cr_assert_str_eq(out, want, "rel(%lld) = %s, want %s", (long long)ms, out, want);
	cr_assert_eq(n, strlen(want));
}

static void assert_duration(int64_t ms, const char *want)
{
	char out[AUDIT_DURATION_STRLEN];
	size_t n = audit_format_duration(ms, out, sizeof(out));
	cr_assert_str_eq(out, want, "duration(%lld) = %s, want %s", (long long)ms, out, want);
	cr_assert_eq(n, strlen(want));
}

static json_t *rec(const char *json)
{
	json_error_t e;
	json_t *o = json_loads(json, 0, &e);
	cr_assert_not_null(o, "bad test JSON: %s: %s", json, e.text);
	return o;
}

/* audit_format_line of a record given as JSON text; caller frees. */
static char *line_of(const char *json)
{
	struct buf b = BUF_INIT;
	json_t *o = rec(json);
	cr_assert_eq(audit_format_line(o, &b), 0);
	json_decref(o);
	return buf_detach(&b, NULL);
}

static char *fence_of(const char *s, size_t n, size_t max, size_t *shown)
{
	struct buf b = BUF_INIT;
	cr_assert_eq(audit_md_fence(s, n, max, shown, &b), 0);
	return buf_detach(&b, NULL);
}

static char *code_of(const char *s)
{
	struct buf b = BUF_INIT;
	cr_assert_eq(audit_md_code(s, strlen(s), &b), 0);
	return buf_detach(&b, NULL);
}

static char *text_of(const char *s)
{
	struct buf b = BUF_INIT;
	cr_assert_eq(audit_md_text(s, strlen(s), &b), 0);
	return buf_detach(&b, NULL);
}

#define ASSERT_STR_FREE(expr, want)                                                                \
	do {                                                                                       \
		char *got_ = (expr);                                                               \
		cr_assert_str_eq(got_, want);                                                      \
		free(got_);                                                                        \
	} while (0)

/* ---- relative times and durations ---- */

Test(audit_time, relative)
{
	assert_rel(0, "+0s");
	assert_rel(999, "+0s");
	assert_rel(1000, "+1s");
	assert_rel(45000, "+45s");
	assert_rel(62000, "+1m02s");
	assert_rel(90000, "+1m30s");
	assert_rel(90999, "+1m30s");
	assert_rel(3600000, "+1h00m00s");
	assert_rel(3723000, "+1h02m03s");
	assert_rel(86400000LL + 3723000, "+1d01h02m03s");
	assert_rel(-5000, "-5s");
	assert_rel(-500, "+0s"); /* not "-0s" */
	assert_rel(-62000, "-1m02s");
}

Test(audit_time, relative_extremes_and_truncation)
{
	char out[8];
	char big[AUDIT_DURATION_STRLEN];
	audit_format_rel(INT64_MIN, big, sizeof(big));
	cr_assert_eq(big[0], '-');
	audit_format_rel(INT64_MAX, big, sizeof(big));
	cr_assert_eq(big[0], '+');
	size_t n = audit_format_rel(3723000, out, sizeof(out));
	cr_assert_eq(n, sizeof(out) - 1);
	cr_assert_str_eq(out, "+1h02m0");
}

Test(audit_time, durations)
{
	assert_duration(0, "0ms");
	assert_duration(850, "850ms");
	assert_duration(1000, "1s");
	assert_duration(1500, "1.5s");
	assert_duration(2500, "2.5s");
	assert_duration(12345, "12.345s");
	assert_duration(12340, "12.34s");
	assert_duration(59999, "59.999s");
	assert_duration(60000, "1m00s");
	assert_duration(90000, "1m30s");
	assert_duration(7205000, "2h00m05s");
	assert_duration(86400000, "1d00h00m00s");
	assert_duration(-1500, "-1.5s");
}

Test(audit_number, shortest_round_trip)
{
	char out[40];
	json_t *v = json_real(0.052);
	audit_format_number(v, out, sizeof(out));
	cr_assert_str_eq(out, "0.052");
	json_decref(v);
	v = json_real(0.1 + 0.2);
	audit_format_number(v, out, sizeof(out));
	cr_assert_str_eq(out, "0.30000000000000004");
	json_decref(v);
	v = json_real(1e100);
	audit_format_number(v, out, sizeof(out));
	cr_assert_str_eq(out, "1e+100");
	json_decref(v);
	v = json_integer(-3);
	audit_format_number(v, out, sizeof(out));
	cr_assert_str_eq(out, "-3");
	json_decref(v);
	v = json_string("0.5");
	audit_format_number(v, out, sizeof(out));
	cr_assert_str_eq(out, "?");
	json_decref(v);
}

/* ---- Markdown ---- */

Test(audit_md, fence_plain)
{
	size_t shown = 0;
	ASSERT_STR_FREE(fence_of("a\nb\n", 4, 100, &shown), "```text\na\nb\n```\n");
	cr_assert_eq(shown, 4);
	/* a missing final newline is added, so the fence stays on its own line */
	ASSERT_STR_FREE(fence_of("a\tb", 3, 100, &shown), "```text\na\tb\n```\n");
	ASSERT_STR_FREE(fence_of("", 0, 100, &shown), "```text\n```\n");
}

Test(audit_md, fence_outgrows_backticks_inside)
{
	const char *s = "x\n```\ny\n```\n";
	size_t shown;
	ASSERT_STR_FREE(fence_of(s, strlen(s), 100, &shown), "````text\nx\n```\ny\n```\n````\n");
	s = "`````";
	ASSERT_STR_FREE(fence_of(s, strlen(s), 100, &shown), "``````text\n`````\n``````\n");
	s = "a `b` c";
	ASSERT_STR_FREE(fence_of(s, strlen(s), 100, &shown), "```text\na `b` c\n```\n");
}

Test(audit_md, fence_escapes_controls)
{
	const char s[] = "red \x1b[31m\r\n\x7f \xc2\x85 \xff.";
	size_t shown;
	ASSERT_STR_FREE(fence_of(s, sizeof(s) - 1, 100, &shown),
			"```text\nred \\x1b[31m\\x0d\n\\x7f \\u0085 \\xff.\n```\n");
	cr_assert_eq(shown, sizeof(s) - 1);
	const char nul[] = "a\0b";
	ASSERT_STR_FREE(fence_of(nul, 3, 100, &shown), "```text\na\\x00b\n```\n");
}

Test(audit_md, fence_escapes_ill_formed_utf8)
{
	/* overlong '/', a surrogate, past U+10FFFF, a lone continuation, a cut sequence */
	const char s[] = "\xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80 \x80 \xe2\x82";
	size_t shown;
	ASSERT_STR_FREE(fence_of(s, sizeof(s) - 1, 200, &shown),
			"```text\n\\xc0\\xaf \\xed\\xa0\\x80 \\xf4\\x90\\x80\\x80 \\x80 "
			"\\xe2\\x82\n```\n");
	/* well-formed edges stay */
	const char ok[] = "\xe0\xa0\x80\xed\x9f\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf";
	ASSERT_STR_FREE(fence_of(ok, sizeof(ok) - 1, 200, &shown),
			"```text\n\xe0\xa0\x80\xed\x9f\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\n```\n");
}

Test(audit_md, fence_trims_on_utf8_boundary)
{
	const char *s = "\xc3\xa9\xc3\xa9\xc3\xa9"; /* "ééé", 6 bytes */
	size_t shown;
	ASSERT_STR_FREE(fence_of(s, 6, 3, &shown), "```text\n\xc3\xa9\n```\n");
	cr_assert_eq(shown, 2);
	ASSERT_STR_FREE(fence_of("0123456789abcdef", 16, 10, &shown), "```text\n0123456789\n```\n");
	cr_assert_eq(shown, 10);
	/* an escape counts for what it prints */
	ASSERT_STR_FREE(fence_of("ab\x01", 3, 5, &shown), "```text\nab\n```\n");
	cr_assert_eq(shown, 2);
}

Test(audit_md, code_spans)
{
	ASSERT_STR_FREE(code_of("deploy/rollback.sh checkout"), "`deploy/rollback.sh checkout`");
	ASSERT_STR_FREE(code_of("a`b"), "``a`b``");
	ASSERT_STR_FREE(code_of("`x"), "`` `x ``");
	ASSERT_STR_FREE(code_of("a``b"), "```a``b```");
	ASSERT_STR_FREE(code_of("two\nlines"), "`two\\x0alines`");
	ASSERT_STR_FREE(code_of(""), "` `");
}

Test(audit_md, text_escapes)
{
	ASSERT_STR_FREE(text_of("rolled_back"), "rolled_back");
	ASSERT_STR_FREE(text_of("_x_ *y*"), "\\_x\\_ \\*y\\*");
	ASSERT_STR_FREE(text_of("a|b"), "a\\|b");
	ASSERT_STR_FREE(text_of("<script>alert(1)</script>"), "\\<script>alert(1)\\</script>");
	ASSERT_STR_FREE(text_of("[x](http://e)"), "\\[x\\](http://e)");
	ASSERT_STR_FREE(text_of("`code`"), "\\`code\\`");
	ASSERT_STR_FREE(text_of("one\ntwo\r"), "one two ");
	ASSERT_STR_FREE(text_of("0.052 > 0.01 — ok"), "0.052 > 0.01 — ok");
}

/* ---- summaries and timeline lines ---- */

Test(audit_line, decision_like_the_example)
{
	ASSERT_STR_FREE(
	    line_of("{\"seq\":12,\"ts\":\"2026-11-21T10:00:01.234Z\",\"type\":\"decision\","
		    "\"incident\":\"inc-1\",\"rule\":\"r\",\"fingerprint\":\"f\","
		    "\"outcome\":\"acting\",\"reason\":\"running 2 action(s)\",\"episode\":1,"
		    "\"state\":\"acting\",\"labels\":{\"alertname\":\"RollbackErrorRate\"}}"),
	    "2026-11-21T10:00:01.234Z  #12  decision  inc-1  RollbackErrorRate: acting — "
	    "running 2 action(s)");
}

Test(audit_line, decision_value_and_trigger)
{
	ASSERT_STR_FREE(
	    line_of("{\"seq\":3,\"ts\":\"t\",\"type\":\"decision\",\"incident\":\"i\","
		    "\"rule\":\"low-traffic\",\"outcome\":\"held\",\"reason\":\"paused\","
		    "\"trigger\":\"approved\","
		    "\"value\":{\"from\":\"labels.rps\",\"value\":5,\"below\":10}}"),
	    "t  #3  decision  i  low-traffic: held — paused (value 5 < 10) (trigger: approved)");
	ASSERT_STR_FREE(
	    line_of("{\"seq\":3,\"ts\":\"t\",\"type\":\"decision\",\"incident\":\"i\","
		    "\"rule\":\"r\",\"outcome\":\"no_match\","
		    "\"value\":{\"from\":\"annotations.value\",\"value\":0.005,\"above\":0.01}}"),
	    "t  #3  decision  i  r: no_match (value 0.005 <= 0.01)");
	ASSERT_STR_FREE(
	    line_of("{\"seq\":3,\"ts\":\"t\",\"type\":\"decision\",\"incident\":\"i\","
		    "\"rule\":\"r\",\"outcome\":\"no_match\","
		    "\"value\":{\"from\":\"annotations.value\",\"above\":0.01}}"),
	    "t  #3  decision  i  r: no_match (value no numeric value in annotations.value)");
}

Test(audit_line, actions)
{
	ASSERT_STR_FREE(
	    line_of("{\"seq\":5,\"ts\":\"t\",\"type\":\"action_started\",\"incident\":\"i\","
		    "\"index\":0,\"action\":\"exec\",\"argv\":[\"x.sh\",\"a b\",\"it's\",\"\"]}"),
	    "t  #5  action_started  i  action 1 (exec) started: x.sh 'a b' 'it'\\''s' ''");
	ASSERT_STR_FREE(
	    line_of("{\"seq\":6,\"ts\":\"t\",\"type\":\"action_finished\",\"incident\":\"i\","
		    "\"index\":1,\"action\":\"http\",\"result\":\"failed\",\"status_code\":500,"
		    "\"duration_ms\":61000,\"output\":\"x\",\"error\":\"HTTP 500\","
		    "\"incident_state\":\"action_failed\"}"),
	    "t  #6  action_finished  i  action 2 (http) failed: HTTP 500, 1m01s; error: HTTP "
	    "500; incident action_failed");
	/* every optional member missing */
	ASSERT_STR_FREE(line_of("{\"seq\":7,\"ts\":\"t\",\"type\":\"action_finished\","
				"\"incident\":\"i\"}"),
			"t  #7  action_finished  i  action (?) ?");
}

Test(audit_line, other_types)
{
	ASSERT_STR_FREE(
	    line_of("{\"seq\":1,\"ts\":\"t\",\"type\":\"config_loaded\",\"incident\":\"\","
		    "\"rules_path\":\"rules/\",\"rules\":3,\"rules_digest\":\"0123456789abcdef\","
		    "\"dry_run\":true,\"reload\":true}"),
	    "t  #1  config_loaded  -  reloaded 3 rule(s) from rules/ (digest 0123456789ab), "
	    "dry-run");
	ASSERT_STR_FREE(
	    line_of("{\"seq\":2,\"ts\":\"t\",\"type\":\"notify_failed\",\"incident\":\"i\","
		    "\"channel\":\"slack\",\"id\":\"n1\",\"status_code\":429,"
		    "\"error\":\"rate limited\",\"attempts\":4}"),
	    "t  #2  notify_failed  i  slack failed (id n1, HTTP 429, 4 attempt(s)): rate "
	    "limited");
	ASSERT_STR_FREE(line_of("{\"seq\":3,\"ts\":\"t\",\"type\":\"approve\",\"incident\":\"i\","
				"\"by\":\"bob\",\"via\":\"slack\"}"),
			"t  #3  approve  i  approved by bob via slack");
	ASSERT_STR_FREE(
	    line_of("{\"seq\":4,\"ts\":\"t\",\"type\":\"journal_truncated\","
		    "\"incident\":\"\",\"segment\":\"journal.jsonl\",\"offset\":10,"
		    "\"bytes\":7}"),
	    "t  #4  journal_truncated  -  truncated a torn last line of journal.jsonl: 7 "
	    "bytes at offset 10");
	/* unknown types show their own members; the envelope is left out */
	ASSERT_STR_FREE(line_of("{\"seq\":5,\"ts\":\"t\",\"type\":\"future\",\"incident\":\"\","
				"\"x\":1,\"prev\":\"p\",\"hash\":\"h\"}"),
			"t  #5  future  -  {\"x\":1}");
	ASSERT_STR_FREE(line_of("{\"seq\":6,\"ts\":\"t\",\"type\":\"future\",\"incident\":\"\"}"),
			"t  #6  future  -");
}

Test(audit_line, controls_never_reach_the_terminal)
{
	/* ESC, newline, C1 CSI (U+009B) in a label value */
	char *got = line_of("{\"seq\":9,\"ts\":\"t\",\"type\":\"notification\",\"incident\":\"\","
			    "\"status\":\"firing\",\"labels\":{\"alertname\":\"A\\u001b[2J\","
			    "\"pod\":\"p\\nq\\u009b1m\"}}");
	cr_assert_str_eq(got, "t  #9  notification  -  A?[2J firing {pod=\"p\\nq?1m\"}");
	free(got);
}

Test(audit_line, long_lines_are_cut_on_a_character_boundary)
{
	struct buf j = BUF_INIT;
	cr_assert_eq(buf_adds(&j, "{\"seq\":1,\"ts\":\"t\",\"type\":\"config_rejected\","
				  "\"incident\":\"\",\"error\":\""),
		     0);
	for (int i = 0; i < 3000; i++)
		cr_assert_eq(buf_adds(&j, "\xc3\xa9"), 0); /* é */
	cr_assert_eq(buf_adds(&j, "\"}"), 0);
	char *got = line_of(j.data);
	size_t n = strlen(got);
	cr_assert_leq(n, AUDIT_LINE_MAX);
	cr_assert_str_eq(got + n - 3, "...");
	cr_assert_eq((unsigned char)got[n - 4], 0xa9, "cut inside a character");
	free(got);
	buf_release(&j);
}

/* ---- filter ---- */

static const char *decision_a =
    "{\"seq\":2,\"ts\":\"2026-11-21T10:00:30Z\",\"type\":\"decision\",\"incident\":\"A\","
    "\"fingerprint\":\"fa\"}";
static const char *decision_b =
    "{\"seq\":3,\"ts\":\"2026-11-21T10:00:31Z\",\"type\":\"decision\",\"incident\":\"B\","
    "\"fingerprint\":\"fb\"}";
static const char *timer_a =
    "{\"seq\":4,\"ts\":\"2026-11-21T10:01:00Z\",\"type\":\"decision\",\"incident\":\"A\","
    "\"fingerprint\":\"\"}";
static const char *notif_a =
    "{\"seq\":1,\"ts\":\"2026-11-21T10:00:29Z\",\"type\":\"notification\",\"incident\":\"\","
    "\"fingerprint\":\"fa\"}";
static const char *notif_b =
    "{\"seq\":5,\"ts\":\"2026-11-21T10:00:29Z\",\"type\":\"notification\",\"incident\":\"\","
    "\"fingerprint\":\"fb\"}";
static const char *ack_a =
    "{\"seq\":6,\"ts\":\"2026-11-21T10:03:00.000Z\",\"type\":\"ack\",\"incident\":\"A\"}";
static const char *no_ts = "{\"seq\":7,\"type\":\"ack\",\"incident\":\"A\"}";

static bool matches(const struct audit_filter *f, const char *json)
{
	json_t *o = rec(json);
	bool m = audit_filter_match(f, o);
	json_decref(o);
	return m;
}

static void learn(struct audit_filter *f, const char *json)
{
	json_t *o = rec(json);
	cr_assert_eq(audit_filter_learn(f, o), 0);
	json_decref(o);
}

Test(audit_filter, incident_and_its_alerts)
{
	struct audit_filter f = {.incident = "A"};
	learn(&f, notif_a);
	learn(&f, decision_a);
	learn(&f, decision_b);
	learn(&f, timer_a);
	cr_assert_eq(json_object_size(f.fingerprints), 1, "only A's non-empty fingerprints");
	cr_assert(matches(&f, decision_a));
	cr_assert(matches(&f, timer_a));
	cr_assert(matches(&f, ack_a));
	cr_assert(matches(&f, notif_a), "a notification A's decision names");
	cr_assert_not(matches(&f, notif_b));
	cr_assert_not(matches(&f, decision_b));
	audit_filter_release(&f);
	cr_assert_null(f.fingerprints);
}

Test(audit_filter, since)
{
	struct audit_filter f = {0};
	const char *since = "2026-11-21T10:00:30Z";
	cr_assert_eq(timestamp_parse(since, strlen(since), &f.since), 0);
	f.has_since = true;
	cr_assert(matches(&f, decision_a), "a record at exactly --since is kept");
	cr_assert_not(matches(&f, notif_a));
	cr_assert(matches(&f, ack_a));
	cr_assert_not(matches(&f, no_ts));
	f.has_since = false;
	cr_assert(matches(&f, no_ts));
	cr_assert(matches(&f, notif_b));
}

Test(audit_filter, since_and_incident_together)
{
	struct audit_filter f = {.incident = "A"};
	const char *since = "2026-11-21T10:01:00+00:00";
	cr_assert_eq(timestamp_parse(since, strlen(since), &f.since), 0);
	f.has_since = true;
	learn(&f, decision_a);
	cr_assert_not(matches(&f, decision_a));
	cr_assert_not(matches(&f, notif_a));
	cr_assert(matches(&f, timer_a));
	cr_assert(matches(&f, ack_a));
	audit_filter_release(&f);
}

/* ---- verify against what journal_append writes ---- */

static char dir[64];

static void quiet_setup(void)
{
	log_set_level(LOG_ERROR);
	snprintf(dir, sizeof(dir), "/tmp/rollbackd-audit-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void cleanup(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(WEXITSTATUS(system(cmd)), 0);
	metrics_free_all();
}

/* n records through the real writer, rotating every segment_bytes. */
static void write_journal(int n, uint64_t segment_bytes)
{
	struct journal_options opt = {.state_dir = dir, .segment_bytes = segment_bytes};
	struct journal *j = NULL;
	struct error err = {{0}};
	char path[128];
	/* journal_open on a directory without any journal file trips UBSan
	 * (qsort(NULL, 0) in journal.c list_segments; see journal_bugs below),
	 * so start from an empty journal.jsonl. */
	snprintf(path, sizeof(path), "%s/journal.jsonl", dir);
	FILE *f = fopen(path, "a");
	cr_assert_not_null(f);
	fclose(f);
	cr_assert_eq(journal_open(&opt, &j, &err), 0, "%s", err.msg);
	for (int i = 0; i < n; i++) {
		char m[128];
		int len =
		    snprintf(m, sizeof(m), ",\"by\":\"user-%d\",\"note\":\"a\\nb \\u001b\"", i);
		cr_assert_eq(
		    journal_append(j, i % 2 ? "pause" : "resume", "", m, (size_t)len, NULL), 0);
		if (segment_bytes) /* let the writer see each batch, so it rotates */
			usleep(2000);
	}
	journal_close(j, 5000);
}

static void assert_stdout_starts(const char *want)
{
	char got[256] = "";
	fflush(stdout);
	FILE *f = cr_get_redirected_stdout();
	cr_assert_not_null(fgets(got, sizeof(got), f));
	cr_assert_eq(strncmp(got, want, strlen(want)), 0, "stdout: %s, want %s...", got, want);
}

static void flip_byte(const char *name, off_t at)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_RDWR);
	cr_assert_geq(fd, 0, "%s", path);
	char c;
	cr_assert_eq(pread(fd, &c, 1, at), 1);
	c ^= 0x01;
	cr_assert_eq(pwrite(fd, &c, 1, at), 1);
	close(fd);
}

Test(audit_verify, accepts_journal_append, .init = quiet_setup, .fini = cleanup)
{
	write_journal(20, 0);
	cr_redirect_stdout();
	cr_assert_eq(audit_verify(dir), EXIT_OK);
	assert_stdout_starts("ok: 20 records, last seq 20, last hash ");
}

Test(audit_verify, accepts_rotated_segments, .init = quiet_setup, .fini = cleanup)
{
	char path[128];
	struct stat st;
	write_journal(30, 600);
	snprintf(path, sizeof(path), "%s/journal.000002.jsonl", dir);
	cr_assert_eq(stat(path, &st), 0, "the writer should have rotated at least twice");
	snprintf(path, sizeof(path), "%s/journal.jsonl", dir);
	cr_redirect_stdout();
	cr_assert_eq(audit_verify(path), EXIT_OK);
	assert_stdout_starts("ok: 30 records, last seq 30, last hash ");
}

Test(audit_verify, rejects_a_flipped_byte, .init = quiet_setup, .fini = cleanup)
{
	write_journal(5, 0);
	flip_byte("journal.jsonl", 40); /* inside the first record's members */
	cr_redirect_stderr();
	cr_assert_eq(audit_verify(dir), EXIT_INVALID);
}

Test(audit_verify, empty_and_missing, .init = quiet_setup, .fini = cleanup)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/journal.jsonl", dir);
	cr_redirect_stderr();
	cr_assert_eq(audit_verify(path), EXIT_INVALID, "missing file");
	cr_assert_eq(audit_verify(dir), EXIT_INVALID, "directory without a journal");
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fclose(f);
	cr_redirect_stdout();
	cr_assert_eq(audit_verify(path), EXIT_OK, "empty file: 0 records");
	assert_stdout_starts("ok: 0 records\n");
}

/* ---- findings in journal.c ---------------------------------------------------------------
 * What audit's tests found in the journal reader/writer; each failed before its fix in
 * journal.c and guards it now. */

static void put_file(const char *name, const char *data, size_t n)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(data, 1, n, f), n);
	fclose(f);
}

/* list_segments calls qsort(NULL, 0, ...) when the directory holds no journal file: UBSan
 * (-fno-sanitize-recover) aborts the first start of the daemon on a fresh state_dir. */
Test(journal_findings, open_fresh_state_dir, .init = quiet_setup, .fini = cleanup)
{
	struct journal_options opt = {.state_dir = dir};
	struct journal *j = NULL;
	struct error err = {{0}};
	cr_assert_eq(journal_open(&opt, &j, &err), 0, "%s", err.msg);
	journal_close(j, 1000);
}

/* journal_reader_next promises -1 for a line over JOURNAL_MAX_LINE, but returns one of up to
 * READ_CHUNK + JOURNAL_MAX_LINE bytes when its newline is already in the buffer. */
Test(journal_findings, reader_refuses_long_lines, .init = quiet_setup, .fini = cleanup)
{
	size_t n = JOURNAL_MAX_LINE + JOURNAL_MAX_LINE / 2;
	char *big = malloc(n + 1);
	struct journal_reader *r;
	struct journal_line l;
	struct error err = {{0}};
	bool torn;
	cr_assert_not_null(big);
	memset(big, 'x', n);
	big[n] = '\n';
	put_file("journal.jsonl", big, n + 1);
	free(big);
	cr_assert_eq(journal_reader_open(dir, &r, &err), 0);
	int got = journal_reader_next(r, &l, &torn, &err);
	journal_reader_free(r);
	cr_assert_eq(got, -1, "a %zu-byte line was returned", n);
}

/* replay_all cuts any bad last line of journal.jsonl, not only a torn one: a complete last
 * record whose hash does not match (tampering, not a cut write) is truncated away on start
 * and the evidence is gone; SPEC §8 only allows cutting a torn line. */
Test(journal_findings, open_refuses_a_tampered_last_record, .init = quiet_setup, .fini = cleanup)
{
	struct journal_options opt = {.state_dir = dir};
	struct journal *j = NULL;
	struct error err = {{0}};
	write_journal(2, 0);
	metrics_free_all();
	char path[128], text[4096];
	snprintf(path, sizeof(path), "%s/journal.jsonl", dir);
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f);
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	char *last = strstr(text, "user-1"); /* the second record's "by" */
	cr_assert_not_null(last);
	flip_byte("journal.jsonl", last - text);
	int rc = journal_open(&opt, &j, &err);
	if (rc == 0)
		journal_close(j, 1000);
	cr_assert_eq(rc, -1, "a complete but tampered last record was truncated on open");
}

/* A torn last line of a closed segment is refused (right), but the message says
 * "record seq 1 is bad ()": the reason is empty because lerr is only set by
 * journal_check_line, which is not called for a torn line. */
Test(journal_findings, torn_closed_segment_says_why, .init = quiet_setup, .fini = cleanup)
{
	struct journal_options opt = {.state_dir = dir};
	struct journal *j = NULL;
	struct error err = {{0}};
	put_file("journal.000001.jsonl", "{\"seq\":1", 8);
	put_file("journal.jsonl", "", 0);
	cr_assert_eq(journal_open(&opt, &j, &err), -1);
	cr_assert_null(strstr(err.msg, "()"), "%s", err.msg);
}
