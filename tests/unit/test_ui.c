/*
 * Unit tests for ui's pure parts: the target (SPEC §6 default and the
 * "target" member), what an approver must type, form fields, and the
 * incident page: escaping of hostile record text, the forms only when
 * signed in (with the CSRF token), the verification chart, and the
 * self-contained variant; the journal index across a segment rotation.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ui.c" /* the journal index is static */

static char *target_of(const char *json)
{
	json_t *inc = json_loads(json, 0, NULL);
	struct buf b = BUF_INIT;
	cr_assert(inc);
	cr_assert_eq(ui_incident_target(inc, &b), 0);
	json_decref(inc);
	char *s = strdup(b.data ? b.data : "");
	buf_release(&b);
	return s;
}

Test(ui, target_default_is_sorted_group_labels)
{
	char *t = target_of("{\"labels\":{\"service\":\"checkout\",\"namespace\":\"prod\"}}");
	cr_assert_str_eq(t, "namespace=prod,service=checkout");
	free(t);
	t = target_of("{\"labels\":{\"service\":\"checkout\"}}");
	cr_assert_str_eq(t, "service=checkout");
	free(t);
	t = target_of("{\"labels\":{}}");
	cr_assert_str_eq(t, "");
	free(t);
}

Test(ui, target_member_wins)
{
	char *t = target_of("{\"target\":\"prod/checkout\",\"labels\":{\"service\":\"checkout\"}}");
	cr_assert_str_eq(t, "prod/checkout");
	free(t);
}

Test(ui, target_matches)
{
	cr_assert(ui_target_matches("service=checkout", "service=checkout"));
	cr_assert(ui_target_matches("  service=checkout\t", "service=checkout"));
	cr_assert_not(ui_target_matches("service=Checkout", "service=checkout"));
	cr_assert_not(ui_target_matches("service=checkou", "service=checkout"));
	cr_assert_not(ui_target_matches("", "service=checkout"));
	cr_assert_not(ui_target_matches(NULL, "service=checkout"));
	cr_assert_not(ui_target_matches("", ""));
}

Test(ui, form_field)
{
	static const char body[] = "csrf=ab%20c&by=al+ice&target=service%3Dcheckout&bad=%zz";
	char out[32];
	cr_assert_eq(ui_form_field(body, strlen(body), "by", out, sizeof(out)), 1);
	cr_assert_str_eq(out, "al ice");
	cr_assert_eq(ui_form_field(body, strlen(body), "target", out, sizeof(out)), 1);
	cr_assert_str_eq(out, "service=checkout");
	cr_assert_eq(ui_form_field(body, strlen(body), "csrf", out, sizeof(out)), 1);
	cr_assert_str_eq(out, "ab c");
	cr_assert_eq(ui_form_field(body, strlen(body), "nope", out, sizeof(out)), 0);
	cr_assert_str_eq(out, "");
	cr_assert_eq(ui_form_field(body, strlen(body), "bad", out, sizeof(out)), -1);
	cr_assert_eq(ui_form_field(body, strlen(body), "by", out, 3), -1);
	cr_assert_eq(ui_form_field("a=%00", 5, "a", out, sizeof(out)), -1);
	cr_assert_eq(ui_form_field(NULL, 0, "a", out, sizeof(out)), 0);
}

static const char records_json[] =
    "[{\"seq\":1,\"ts\":\"2026-11-21T10:00:00Z\",\"type\":\"decision\",\"incident\":\"inc-1\","
    "\"rule\":\"r<script>\",\"outcome\":\"acting\",\"reason\":\"<b>why</b>\",\"state\":"
    "\"acting\",\"group\":{\"service\":\"a&b\"},\"value\":{\"value\":2,\"above\":1},"
    "\"labels\":{\"alertname\":\"A\",\"pod\":\"<i>p</i>\"},"
    "\"annotations\":{\"summary\":\"\\\"quoted\\\" & <u>\"}},"
    "{\"seq\":2,\"ts\":\"2026-11-21T10:00:01Z\",\"type\":\"action_started\",\"incident\":"
    "\"inc-1\",\"index\":0,\"action\":\"exec\",\"argv\":[\"echo\",\"it's <x>\"]},"
    "{\"seq\":3,\"ts\":\"2026-11-21T10:00:02Z\",\"type\":\"action_finished\",\"incident\":"
    "\"inc-1\",\"index\":0,\"action\":\"exec\",\"result\":\"ok\",\"exit_code\":0,"
    "\"duration_ms\":5,\"output\":\"</pre><script>alert(1)</script>\","
    "\"incident_state\":\"awaiting_approval\"},"
    "{\"seq\":4,\"ts\":\"2026-11-21T10:01:00Z\",\"type\":\"verify_sample\",\"incident\":"
    "\"inc-1\",\"value\":0.5,\"below\":1},"
    "{\"seq\":5,\"ts\":\"2026-11-21T10:02:00Z\",\"type\":\"verify_sample\",\"incident\":"
    "\"inc-1\",\"value\":0.25,\"below\":1}]";

static char *render(const struct ui_page *page)
{
	json_t *recs = json_loads(records_json, 0, NULL);
	struct buf b = BUF_INIT;
	cr_assert(recs);
	cr_assert_eq(ui_render_incident(&b, "inc-1", NULL, recs, page), 0);
	json_decref(recs);
	char *s = strdup(b.data);
	buf_release(&b);
	return s;
}

Test(ui, page_escapes_everything)
{
	struct ui_page page = {.standalone = false};
	char *html = render(&page);
	cr_assert_null(strstr(html, "<script"));
	cr_assert_null(strstr(html, "<b>"));
	cr_assert_not_null(strstr(html, "r&lt;script&gt;"));
	cr_assert_not_null(strstr(html, "&lt;b&gt;why&lt;/b&gt;"));
	cr_assert_not_null(strstr(html, "service=a&amp;b"));
	cr_assert_not_null(strstr(html, "&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;"));
	cr_assert_not_null(
	    strstr(html, "<pre class=\"cmd\">echo &#39;it&#39;\\&#39;&#39;s &lt;x&gt;&#39;</pre>"));
	cr_assert_not_null(strstr(html, "<dt>Value vs threshold</dt><dd>2 &gt; 1</dd>"));
	cr_assert_not_null(strstr(html, "<link rel=\"stylesheet\" href=\"/ui/style.css\">"));
	cr_assert_null(strstr(html, "<form"), "no forms when not signed in");
	cr_assert_not_null(strstr(html, "<dt>labels.pod</dt><dd>&lt;i&gt;p&lt;/i&gt;</dd>"));
	cr_assert_not_null(strstr(
	    html, "<dt>annotations.summary</dt><dd>&quot;quoted&quot; &amp; &lt;u&gt;</dd>"));
	cr_assert_null(strstr(html, "<i>"));
	cr_assert_null(strstr(html, "<u>"));
	free(html);
}

Test(ui, forms_carry_the_csrf_token)
{
	struct ui_page page = {.can_act = true, .csrf = "c0ffee"};
	char *html = render(&page);
	cr_assert_not_null(strstr(html, "action=\"/ui/incidents/inc-1/ack\"><input type=\"hidden\" "
					"name=\"csrf\" value=\"c0ffee\">"));
	cr_assert_not_null(strstr(html, "action=\"/ui/incidents/inc-1/approve\"><input "
					"type=\"hidden\" name=\"csrf\" value=\"c0ffee\">"));
	cr_assert_not_null(
	    strstr(html, "Type the target, <code>service=a&amp;b</code>, to approve"));
	free(html);
}

Test(ui, chart_and_standalone)
{
	struct ui_page page = {.standalone = true, .can_act = true, .csrf = "x", .footer = "f<"};
	char *html = render(&page);
	cr_assert_not_null(strstr(html, "<svg class=\"chart\""));
	cr_assert_eq(strstr(html, "<circle ") != NULL, 1);
	cr_assert_not_null(strstr(html, "2 sample(s) over 60s; dashed: the threshold"));
	cr_assert_not_null(strstr(html, "value 0.25 (below 1)"));
	cr_assert_not_null(strstr(html, "<style>"));
	cr_assert_null(strstr(html, "<link"));
	cr_assert_null(strstr(html, "<form"), "a report has no forms");
	cr_assert_not_null(strstr(html, "<p class=\"mute\">f&lt;</p>"));
	free(html);
}

/* ---- the journal index ------------------------------------------------ */

/* cfg with its state_dir a new temporary directory (dir: its mkdtemp
 * template, filled in). */
static void state_dir_config(char *dir, struct config *cfg)
{
	cr_assert(mkdtemp(dir));
	cr_assert_eq(config_init(cfg), 0);
	free(cfg->state_dir);
	cfg->state_dir = strdup(dir);
}

/* Remove dir's journal.jsonl, then dir (both must be there). */
static void remove_journal_dir(const char *dir)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/%s", dir, JOURNAL_FILE);
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(rmdir(dir), 0);
}

static void append_line(const char *dir, const char *file, int seq, const char *inc,
			const char *type)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	FILE *f = fopen(path, "a");
	cr_assert(f);
	fprintf(f,
		"{\"seq\":%d,\"ts\":\"2026-11-21T10:00:%02dZ\",\"type\":\"%s\",\"incident\":"
		"\"%s\",\"prev\":\"x\",\"hash\":\"y\"}\n",
		seq, seq % 60, type, inc);
	fclose(f);
}

/* Catch up with the journal; a loaded machine may take longer than one
 * page's wait, so ask again until a whole scan ran after the request. */
static json_t *records_of(struct ui *ui, const char *id, size_t *dropped)
{
	for (int i = 0;; i++) {
		bool done, ready = index_catch_up(&ui->ix, &done);
		if (ready && done)
			break;
		cr_assert(i < 100, "the index did not catch up in 20 s");
	}
	json_t *r = index_records(&ui->ix, id, dropped);
	cr_assert(r);
	return r;
}

Test(ui, index_follows_rotation)
{
	char dir[] = "/tmp/rollbackd-ui-test-XXXXXX", path[600];
	struct config cfg;
	state_dir_config(dir, &cfg);
	append_line(dir, "journal.000001.jsonl", 1, "inc-a", "decision");
	append_line(dir, JOURNAL_FILE, 2, "inc-a", "action_started");
	append_line(dir, JOURNAL_FILE, 3, "", "pause");
	append_line(dir, JOURNAL_FILE, 4, "inc-b", "decision");
	struct ui *ui = ui_new(&cfg, NULL);
	cr_assert(ui);
	ui_set_journal(ui, NULL);
	size_t dropped = 9;
	json_t *r = records_of(ui, "inc-a", &dropped);
	cr_assert_eq(json_array_size(r), 2);
	cr_assert_eq(dropped, 0);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(r, 1), "type")),
			 "action_started");
	json_decref(r);
	/* a line being written (no newline yet) is not a record */
	snprintf(path, sizeof(path), "%s/%s", dir, JOURNAL_FILE);
	FILE *f = fopen(path, "a");
	fputs("{\"seq\":5,\"ts\":\"2026-11-21T10:00:05Z\",\"type\":\"ack\",\"incident\":\"inc-a\"",
	      f);
	fclose(f);
	r = records_of(ui, "inc-a", &dropped);
	cr_assert_eq(json_array_size(r), 2);
	json_decref(r);
	f = fopen(path, "a");
	fputs(",\"prev\":\"x\",\"hash\":\"y\"}\n", f);
	fclose(f);
	/* rotate: journal.jsonl becomes journal.000002.jsonl, a new one starts */
	char to[600];
	snprintf(to, sizeof(to), "%s/journal.000002.jsonl", dir);
	cr_assert_eq(rename(path, to), 0);
	append_line(dir, JOURNAL_FILE, 6, "inc-a", "resolved");
	r = records_of(ui, "inc-a", &dropped);
	cr_assert_eq(json_array_size(r), 4);
	static const char *const want[] = {"decision", "action_started", "ack", "resolved"};
	for (size_t i = 0; i < 4; i++)
		cr_assert_str_eq(json_string_value(json_object_get(json_array_get(r, i), "type")),
				 want[i]);
	json_decref(r);
	r = records_of(ui, "inc-b", &dropped);
	cr_assert_eq(json_array_size(r), 1);
	json_decref(r);
	r = records_of(ui, "inc-none", &dropped);
	cr_assert_eq(json_array_size(r), 0);
	json_decref(r);
	ui_free(ui);
	config_release(&cfg);
	cr_assert_eq(unlink(to), 0);
	snprintf(path, sizeof(path), "%s/%s", dir, JOURNAL_FILE);
	unlink(path);
	snprintf(path, sizeof(path), "%s/journal.000001.jsonl", dir);
	unlink(path);
	cr_assert_eq(rmdir(dir), 0);
}

Test(ui, index_caps_one_incident)
{
	char dir[] = "/tmp/rollbackd-ui-test-XXXXXX";
	struct config cfg;
	state_dir_config(dir, &cfg);
	for (int i = 1; i <= UI_TIMELINE_MAX + 5; i++)
		append_line(dir, JOURNAL_FILE, i, "inc-big", "notify_sent");
	struct ui *ui = ui_new(&cfg, NULL);
	ui_set_journal(ui, NULL);
	size_t dropped = 0;
	json_t *r = records_of(ui, "inc-big", &dropped);
	cr_assert_eq(json_array_size(r), UI_TIMELINE_MAX);
	cr_assert_eq(dropped, 5);
	json_decref(r);
	ui_free(ui);
	config_release(&cfg);
	remove_journal_dir(dir);
}

static void append_raw(const char *dir, const char *line)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, JOURNAL_FILE);
	FILE *f = fopen(path, "a");
	cr_assert(f);
	fprintf(f, "%s\n", line);
	fclose(f);
}

static size_t index_count(struct ui *ui)
{
	pthread_mutex_lock(&ui->ix.lock);
	size_t n = ui->ix.count;
	pthread_mutex_unlock(&ui->ix.lock);
	return n;
}

static size_t n_records(struct ui *ui, const char *id)
{
	size_t dropped = 0;
	json_t *r = records_of(ui, id, &dropped);
	size_t n = json_array_size(r);
	json_decref(r);
	cr_assert_eq(dropped, 0);
	return n;
}

/* limits.max_incidents bounds the index like the engine: the newest stay. */
Test(ui, index_keeps_max_incidents)
{
	char dir[] = "/tmp/rollbackd-ui-test-XXXXXX", id[32];
	struct config cfg;
	state_dir_config(dir, &cfg);
	cfg.limits.max_incidents = 1000;
	int seq = 1;
	/* 5000 engine-style ids, then one of another form, 2 records each */
	for (int i = 0; i < 5000; i++) {
		snprintf(id, sizeof(id), "inc-%016x", (unsigned)i * 2654435761u);
		append_line(dir, JOURNAL_FILE, seq++, id, "decision");
		append_line(dir, JOURNAL_FILE, seq++, id, "resolved");
	}
	append_line(dir, JOURNAL_FILE, seq++, "other-id", "decision");
	append_line(dir, JOURNAL_FILE, seq++, "other-id", "resolved");
	struct ui *ui = ui_new(&cfg, NULL);
	cr_assert(ui);
	ui_set_journal(ui, NULL);
	cr_assert_eq(n_records(ui, "other-id"), 2);
	cr_assert_eq(index_count(ui), 1000);
	pthread_mutex_lock(&ui->ix.lock);
	size_t evicted = ui->ix.evicted, refs = ui->ix.total_refs;
	pthread_mutex_unlock(&ui->ix.lock);
	cr_assert_eq(evicted, 4001);
	cr_assert_eq(refs, 2000);
	for (int i = 0; i < 5000; i++) {
		snprintf(id, sizeof(id), "inc-%016x", (unsigned)i * 2654435761u);
		cr_assert_eq(n_records(ui, id), i < 4001 ? 0 : 2, "%s (the %dth)", id, i);
	}
	/* a reload lowers the limit: the next record applies it */
	struct config small = cfg;
	small.limits.max_incidents = 2;
	ui_set_config(ui, &small);
	append_line(dir, JOURNAL_FILE, seq++, "last-id", "decision");
	cr_assert_eq(n_records(ui, "last-id"), 1);
	size_t max = 0;
	cr_assert_eq(index_count(ui), 2);
	cr_assert_eq(index_evicted(&ui->ix, &max), 5000);
	cr_assert_eq(max, 2);
	cr_assert_eq(n_records(ui, "other-id"), 2);
	snprintf(id, sizeof(id), "inc-%016x", 4999u * 2654435761u);
	cr_assert_eq(n_records(ui, id), 0);
	ui_set_config(ui, &cfg);
	ui_free(ui);
	config_release(&cfg);
	remove_journal_dir(dir);
}

/* The list's "value vs threshold" comes from the index (the last decision
 * with a value), refs span blocks, and a page whose records left the
 * index says so. */
Test(ui, index_value_and_older_page)
{
	char dir[] = "/tmp/rollbackd-ui-test-XXXXXX", value[UI_VALUE_MAX];
	struct config cfg;
	state_dir_config(dir, &cfg);
	cfg.limits.max_incidents = 3;
	append_raw(dir, "{\"seq\":1,\"type\":\"decision\",\"incident\":\"inc-00000000000000a1\","
			"\"value\":{\"value\":0.05,\"above\":0.01}}");
	append_raw(dir, "{\"seq\":2,\"type\":\"decision\",\"incident\":\"inc-00000000000000a2\","
			"\"value\":{\"value\":3,\"below\":5}}");
	append_raw(dir, "{\"seq\":3,\"type\":\"decision\",\"incident\":\"inc-00000000000000a3\","
			"\"value\":{\"value\":\"x\"}}");
	for (int i = 4; i < 4 + 12; i++)
		append_line(dir, JOURNAL_FILE, i, "inc-00000000000000a3", "notify_sent");
	struct ui *ui = ui_new(&cfg, NULL);
	cr_assert(ui);
	ui_set_journal(ui, NULL);
	cr_assert_eq(n_records(ui, "inc-00000000000000a3"), 13);
	index_value(&ui->ix, "inc-00000000000000a1", value, sizeof(value));
	cr_assert_str_eq(value, "0.05 > 0.01");
	index_value(&ui->ix, "inc-00000000000000a2", value, sizeof(value));
	cr_assert_str_eq(value, "3 < 5");
	index_value(&ui->ix, "inc-00000000000000a3", value, sizeof(value));
	cr_assert_str_eq(value, "no numeric value");
	append_line(dir, JOURNAL_FILE, 16, "inc-00000000000000a4", "decision");
	cr_assert_eq(n_records(ui, "inc-00000000000000a4"), 1);
	cr_assert_eq(n_records(ui, "inc-00000000000000a1"), 0);
	index_value(&ui->ix, "inc-00000000000000a1", value, sizeof(value));
	cr_assert_str_eq(value, "");
	size_t max = 0;
	cr_assert_eq(index_evicted(&ui->ix, &max), 1);
	cr_assert_eq(max, 3);
	ui_free(ui);
	config_release(&cfg);

	json_t *none = json_array();
	json_t *inc = json_pack("{s:s,s:s,s:s}", "id", "inc-00000000000000a1", "state", "resolved",
				"rule", "r");
	struct buf b = BUF_INIT;
	struct ui_page page = {.older_than_index = 3};
	cr_assert_eq(ui_render_incident(&b, "inc-00000000000000a1", inc, none, &page), 0);
	cr_assert_not_null(strstr(b.data, "This incident's timeline is older than the console's "
					  "journal index, which keeps the records of the newest 3 "
					  "incidents at most"));
	cr_assert_null(strstr(b.data, "indexed (yet)"));
	buf_release(&b);
	page.older_than_index = 0;
	cr_assert_eq(ui_render_incident(&b, "inc-00000000000000a1", inc, none, &page), 0);
	cr_assert_not_null(
	    strstr(b.data, "No journal records for this incident are indexed (yet)"));
	cr_assert_null(strstr(b.data, "older than"));
	buf_release(&b);
	json_decref(inc);
	json_decref(none);
	remove_journal_dir(dir);
}

/* An incident's first refs live in its entry, the rest spill into blocks
 * (all of them, in order); an evicted incident's blocks serve the next
 * ones instead of growing the pool. */
Test(ui, index_spills_and_reuses_blocks)
{
	char dir[] = "/tmp/rollbackd-ui-test-XXXXXX", id[32];
	struct config cfg;
	state_dir_config(dir, &cfg);
	cfg.limits.max_incidents = 10;
	int seq = 1;
	/* 200 incidents of 1..24 records (inline, a spill, several blocks) */
	for (int i = 0; i < 200; i++) {
		snprintf(id, sizeof(id), "inc-%016x", (unsigned)i);
		for (int k = 0; k <= i % 24; k++)
			append_line(dir, JOURNAL_FILE, seq++, id, k ? "notify_sent" : "decision");
	}
	struct ui *ui = ui_new(&cfg, NULL);
	cr_assert(ui);
	ui_set_journal(ui, NULL);
	size_t want_refs = 0;
	for (int i = 190; i < 200; i++) {
		size_t dropped = 9;
		want_refs += (size_t)(i % 24 + 1);
		snprintf(id, sizeof(id), "inc-%016x", (unsigned)i);
		json_t *r = records_of(ui, id, &dropped);
		cr_assert_eq(json_array_size(r), (size_t)(i % 24 + 1), "%s", id);
		cr_assert_eq(dropped, 0);
		json_int_t last = 0;
		for (size_t k = 0; k < json_array_size(r); k++) {
			json_t *rec = json_array_get(r, k);
			json_int_t s = json_integer_value(json_object_get(rec, "seq"));
			cr_assert_gt(s, last, "%s: journal order", id);
			last = s;
			cr_assert_str_eq(json_string_value(json_object_get(rec, "incident")), id);
		}
		json_decref(r);
	}
	snprintf(id, sizeof(id), "inc-%016x", 189u);
	cr_assert_eq(n_records(ui, id), 0);
	pthread_mutex_lock(&ui->ix.lock);
	size_t evicted = ui->ix.evicted, used = ui->ix.used_blocks, chunks = ui->ix.n_chunks;
	size_t refs = ui->ix.total_refs;
	pthread_mutex_unlock(&ui->ix.lock);
	cr_assert_eq(evicted, 190);
	cr_assert_eq(refs, want_refs);
	/* 10 incidents of at most 24 refs hold at most 4 blocks each; one
	 * more incident while the oldest leaves */
	cr_assert_leq(used, 11 * 4, "%zu blocks for 10 incidents", used);
	cr_assert_eq(chunks, 1);
	ui_free(ui);
	config_release(&cfg);
	remove_journal_dir(dir);
}

/* A record at 4 GiB or more into a file (a large journal.segment_bytes)
 * is read back from where it is: its ref's span holds the offset's high
 * bits. Once every span is taken, a record past the last one's 4 GiB is
 * counted as not shown. The lines are indexed here directly (no thread:
 * its scan of a sparse file's GiBs of zeros would take seconds). */
Test(ui, index_offsets_past_4gib)
{
	char dir[] = "/tmp/rollbackd-ui-test-XXXXXX", path[600], line[256];
	static const uint64_t offs[] = {0, (5ull << 32) + 3, (5ull << 32) + 1000, 9ull << 32};
	struct config cfg;
	state_dir_config(dir, &cfg);
	snprintf(path, sizeof(path), "%s/%s", dir, JOURNAL_FILE);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(fd, 0);
	struct ui *ui = ui_new(&cfg, NULL);
	cr_assert(ui);
	struct ui_index *ix = &ui->ix;
	ix->dir = strdup(dir);
	cr_assert_eq(open_file(ix, JOURNAL_FILE), 0);
	for (size_t i = 0; i < 4; i++) {
		int n = snprintf(line, sizeof(line),
				 "{\"seq\":%zu,\"type\":\"notify_sent\",\"incident\":\"inc-big\"}",
				 i + 1);
		cr_assert_eq(pwrite(fd, line, (size_t)n, (off_t)offs[i]), n);
		index_line(ix, 0, offs[i], line, (size_t)n);
	}
	cr_assert_eq(ix->n_spans, 3, "spans for 0, 5 and 9 GiB");
	ix->started = true; /* index_records looks the id up */
	size_t dropped = 9;
	json_t *r = index_records(ix, "inc-big", &dropped);
	cr_assert_eq(json_array_size(r), 4);
	cr_assert_eq(dropped, 0);
	for (size_t i = 0; i < 4; i++)
		cr_assert_eq(json_integer_value(json_object_get(json_array_get(r, i), "seq")),
			     (json_int_t)i + 1);
	json_decref(r);
	/* no span left: the record is counted, not indexed */
	ix->n_spans = UI_MAX_SPANS;
	index_line(ix, 0, 13ull << 32, line, strlen(line));
	r = index_records(ix, "inc-big", &dropped);
	cr_assert_eq(json_array_size(r), 4);
	cr_assert_eq(dropped, 1);
	json_decref(r);
	ix->started = false; /* no thread to join */
	close(fd);
	ui_free(ui);
	config_release(&cfg);
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(rmdir(dir), 0);
}
