/*
 * Unit tests for record: every type's name, the one decoder (type, seq,
 * ts, incident and members by name) on lines as the daemon writes them,
 * and bad lines with their exact status.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "rollbackd/alert.h" /* struct label */
#include "rollbackd/buf.h"
#include "rollbackd/record.h"

static struct record_toks toks;

static enum record_status decode(const char *line, struct record *r)
{
	return record_decode(line, strlen(line), r, &toks);
}

static void teardown(void)
{
	record_toks_release(&toks);
}

TestSuite(record, .fini = teardown);

Test(record, every_type_round_trips_its_name)
{
	cr_assert_str_eq(record_type_name(RECORD_UNKNOWN), "");
	cr_assert_str_eq(record_type_name(RECORD_TYPE_COUNT), "");
	for (int t = RECORD_UNKNOWN + 1; t < RECORD_TYPE_COUNT; t++) {
		const char *n = record_type_name((enum record_type)t);
		cr_assert(n[0], "type %d has no name", t);
		cr_assert_eq((int)record_type_of(n, strlen(n)), t, "%s", n);
		char line[256];
		snprintf(line, sizeof(line),
			 "{\"seq\":%d,\"ts\":\"2026-01-02T03:04:05.000000006Z\",\"type\":\"%s\","
			 "\"incident\":\"\",\"prev\":\"00\",\"hash\":\"11\"}",
			 t, n);
		struct record r;
		cr_assert_eq(decode(line, &r), RECORD_OK, "%s", line);
		cr_assert_eq((int)r.type, t, "%s", n);
		cr_assert_eq(r.seq, (uint64_t)t);
		cr_assert(r.has_seq && r.has_ts && r.has_incident);
		cr_assert_eq(r.ts.sec, 1767323045);
		cr_assert_eq(r.ts.nsec, 6);
		cr_assert_str_eq(r.incident, "");
	}
	cr_assert_eq(record_type_of("decisio", 7), RECORD_UNKNOWN);
	cr_assert_eq(record_type_of("decisions", 9), RECORD_UNKNOWN);
}

Test(record, decision_members_by_name)
{
	const char *line =
	    "{\"seq\":7,\"ts\":\"2026-01-02T03:04:05.5Z\",\"type\":\"decision\","
	    "\"incident\":\"inc-0123456789abcdef\",\"rule\":\"r\\u00e9\",\"fingerprint\":\"fp1\","
	    "\"outcome\":\"acting\",\"episode\":3,\"state\":\"acting\",\"group\":{\"svc\":\"a\"},"
	    "\"dry\":false,\"ok\":true,\"value\":{\"from\":\"q\",\"value\":1.5},"
	    "\"prev\":\"00\",\"hash\":\"11\"}";
	struct record r;
	char buf[64];
	cr_assert_eq(decode(line, &r), RECORD_OK);
	cr_assert_eq(r.type, RECORD_DECISION);
	cr_assert_eq(r.seq, 7);
	cr_assert_eq(r.ts.nsec, 500000000);
	cr_assert_str_eq(r.incident, "inc-0123456789abcdef");
	cr_assert_str_eq(record_str(&r, "rule", buf, sizeof(buf)), "r\xc3\xa9");
	cr_assert_null(record_str(&r, "rule", buf, 3)); /* 3 bytes + NUL do not fit */
	cr_assert_not_null(record_str(&r, "rule", buf, 4));
	cr_assert_null(record_str(&r, "episode", buf, sizeof(buf)));
	cr_assert_null(record_str(&r, "absent", buf, sizeof(buf)));
	cr_assert(record_str_is(&r, "outcome", "acting"));
	cr_assert_not(record_str_is(&r, "outcome", "actin"));
	cr_assert_eq(record_int(&r, "episode", -1), 3);
	cr_assert_eq(record_int(&r, "rule", -1), -1);
	cr_assert_eq(record_bool(&r, "dry", true), false);
	cr_assert_eq(record_bool(&r, "ok", false), true);
	cr_assert_eq(record_bool(&r, "rule", true), true);
	size_t g = record_obj(&r, "group");
	cr_assert_neq(g, 0);
	cr_assert_eq(r.doc.toks[g].size, 1);
	cr_assert_eq(record_obj(&r, "rule"), 0);
	size_t n;
	const char *raw = record_raw(&r, "value", &n);
	cr_assert_eq(n, strlen("{\"from\":\"q\",\"value\":1.5}"));
	cr_assert_eq(memcmp(raw, "{\"from\":\"q\",\"value\":1.5}", n), 0);
	raw = record_raw(&r, "fingerprint", &n);
	cr_assert_eq(n, 5);
	cr_assert_eq(memcmp(raw, "\"fp1\"", 5), 0);
	cr_assert_null(record_raw(&r, "absent", &n));
}

Test(record, frame_members_out_of_shape)
{
	struct record r;
	/* an unknown type still decodes: readers skip it */
	cr_assert_eq(decode("{\"type\":\"later_kind\",\"x\":1}", &r), RECORD_OK);
	cr_assert_eq(r.type, RECORD_UNKNOWN);
	cr_assert_eq(record_int(&r, "x", 0), 1);
	cr_assert_not(r.has_seq || r.has_ts || r.has_incident);
	/* an escaped type name is decoded */
	cr_assert_eq(decode("{\"type\":\"pa\\u0075se\"}", &r), RECORD_OK);
	cr_assert_eq(r.type, RECORD_PAUSE);
	/* negative or fractional seq, bad ts, long or non-string incident */
	cr_assert_eq(
	    decode("{\"seq\":-1,\"ts\":\"yesterday\",\"type\":\"ack\",\"incident\":1}", &r),
	    RECORD_OK);
	cr_assert_eq(r.type, RECORD_ACK);
	cr_assert_not(r.has_seq || r.has_ts || r.has_incident);
	cr_assert_str_eq(r.incident, "");
	cr_assert_eq(decode("{\"seq\":1.0,\"type\":\"ack\",\"incident\":\"aaaaaaaaaaaaaaaaaaaaaaaa"
			    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
			    &r),
		     RECORD_OK);
	cr_assert_not(r.has_seq || r.has_incident);
}

Test(record, bad_lines)
{
	struct record r;
	char buf[8];
	cr_assert_eq(decode("not json", &r), RECORD_ENOTJSON);
	cr_assert_eq(r.type, RECORD_UNKNOWN);
	cr_assert_eq(record_member(&r, "type"), 0);
	cr_assert_null(record_str(&r, "type", buf, sizeof(buf)));
	cr_assert_eq(decode("{\"seq\":1,\"type\":\"ack\"", &r), RECORD_ENOTJSON);
	cr_assert_eq(decode("", &r), RECORD_ENOTJSON);
	cr_assert_eq(decode("[\"type\",\"ack\"]", &r), RECORD_ENOTOBJECT);
	cr_assert_eq(decode("\"decision\"", &r), RECORD_ENOTOBJECT);
	cr_assert_eq(decode("{\"seq\":1,\"incident\":\"x\"}", &r), RECORD_ENOTYPE);
	cr_assert_eq(r.type, RECORD_UNKNOWN);
	cr_assert_eq(record_member(&r, "seq"), 0);
	cr_assert_eq(decode("{\"type\":7}", &r), RECORD_ENOTYPE);
	cr_assert_eq(decode("{\"type\":\"ack\",\"type\":\"pause\"}", &r), RECORD_ENOTJSON);
	cr_assert_eq(decode("{\"type\":\"ack\",\"by\":\"a\",\"by\":\"b\"}", &r), RECORD_ENOTJSON);
	cr_assert_eq(decode("{\"type\":\"ack\",\"o\":{\"k\":1,\"k\":2}}", &r), RECORD_ENOTJSON);
}

/* ---- builders: the exact members each type writes ------------------------ */

/* The members built, as a string (the test owns the buffer). */
static struct buf built;

static void built_reset(void)
{
	buf_release(&built);
	built = (struct buf)BUF_INIT;
}

#define assert_built(call, want)                                                                   \
	do {                                                                                       \
		built_reset();                                                                     \
		cr_assert_eq((call), 0);                                                           \
		cr_assert_str_eq(built.data ? built.data : "", (want));                            \
	} while (0)

/* 2026-01-02T03:04:05.5Z */
static const struct timestamp t0 = {1767323045, 500000000};

static const struct label group[] = {{"service", "checkout", 8}};
static const struct label labels[] = {{"alertname", "HighErrorRate", 13},
				      {"service", "check\"out", 9}};
static const struct label annotations[] = {{"value", "0.052", 5}};

Test(record, build_decision_with_incident_alert_and_value)
{
	struct record_value value = {.from = "annotations.value",
				     .has_number = true,
				     .number = 0.052,
				     .has_above = true,
				     .above = 0.01};
	struct record_decision d = {
	    .rule = "errors",
	    .fingerprint = "fp1",
	    .outcome = "act",
	    .reason = "error ratio above 0.01",
	    .has_starts_at = true,
	    .starts_at = t0,
	    .has_incident = true,
	    .episode = 2,
	    .state = "acting",
	    .target = "deploy/checkout",
	    .coalesced_into = "",
	    .group = group,
	    .n_group = 1,
	    .has_alert = true,
	    .labels = labels,
	    .n_labels = 2,
	    .annotations = annotations,
	    .n_annotations = 1,
	    .value = &value,
	    .trigger = "timer",
	};
	assert_built(
	    record_build_decision(&built, &d),
	    ",\"rule\":\"errors\",\"fingerprint\":\"fp1\",\"outcome\":\"act\","
	    "\"reason\":\"error ratio above 0.01\",\"startsAt\":\"2026-01-02T03:04:05.5Z\","
	    "\"episode\":2,\"state\":\"acting\",\"target\":\"deploy/checkout\","
	    "\"group\":{\"service\":\"checkout\"},"
	    "\"labels\":{\"alertname\":\"HighErrorRate\",\"service\":\"check\\\"out\"},"
	    "\"annotations\":{\"value\":\"0.052\"},"
	    "\"value\":{\"from\":\"annotations.value\",\"value\":0.051999999999999998,"
	    "\"above\":0.01},\"trigger\":\"timer\"");
}

Test(record, build_decision_bare_and_value_null)
{
	struct record_decision d = {
	    .rule = "", .fingerprint = "", .outcome = "invalid", .reason = "no rule"};
	assert_built(record_build_decision(&built, &d),
		     ",\"rule\":\"\",\"fingerprint\":\"\",\"outcome\":\"invalid\","
		     "\"reason\":\"no rule\"");
	struct record_value value = {.from = "labels.x", .has_below = true, .below = 3};
	d.has_alert = true;
	d.value = &value;
	d.coalesced_into = "inc-1";
	assert_built(record_build_decision(&built, &d),
		     ",\"rule\":\"\",\"fingerprint\":\"\",\"outcome\":\"invalid\","
		     "\"reason\":\"no rule\",\"coalesced_into\":\"inc-1\",\"labels\":{},"
		     "\"annotations\":{},\"value\":{\"from\":\"labels.x\",\"value\":null,"
		     "\"below\":3}");
}

Test(record, build_notification_whole_and_cut)
{
	struct record_notification v = {
	    .receiver = "rb",
	    .group_key = "{}:{}",
	    .external_url = "http://am",
	    .status = "firing",
	    .fingerprint = "fp1",
	    .starts_at = t0,
	    .ends_at = {0, 0},
	    .labels = labels,
	    .n_labels = 1,
	    .annotations = annotations,
	    .n_annotations = 1,
	    .generator_url = "http://prom/g",
	    .truncated_alerts = 3,
	    .digest = "00ff",
	};
	assert_built(record_build_notification(&built, &v),
		     ",\"receiver\":\"rb\",\"group_key\":\"{}:{}\",\"external_url\":\"http://am\","
		     "\"status\":\"firing\",\"fingerprint\":\"fp1\","
		     "\"startsAt\":\"2026-01-02T03:04:05.5Z\",\"endsAt\":\"1970-01-01T00:00:00Z\","
		     "\"labels\":{\"alertname\":\"HighErrorRate\"},"
		     "\"annotations\":{\"value\":\"0.052\"},\"generatorURL\":\"http://prom/g\","
		     "\"truncated_alerts\":3,\"digest\":\"00ff\"");
	v.alert_max = 40; /* the alert's members are longer: cut */
	v.truncated_alerts = 0;
	assert_built(record_build_notification(&built, &v),
		     ",\"receiver\":\"rb\",\"group_key\":\"{}:{}\",\"external_url\":\"http://am\","
		     "\"status\":\"firing\",\"fingerprint\":\"fp1\","
		     "\"startsAt\":\"2026-01-02T03:04:05.5Z\",\"endsAt\":\"1970-01-01T00:00:00Z\","
		     "\"truncated\":true,\"digest\":\"00ff\"");
}

Test(record, build_action_records)
{
	struct record_action_started s = {.rule = "r",
					  .episode = 1,
					  .index = 0,
					  .exec = true,
					  .action_json =
					      "{\"type\":\"exec\",\"command\":[\"/bin/true\"]}"};
	assert_built(record_build_action_started(&built, &s),
		     ",\"rule\":\"r\",\"episode\":1,\"index\":0,\"action\":\"exec\","
		     "\"command\":[\"/bin/true\"]");
	s.exec = false;
	s.index = 1;
	s.action_json = "{\"type\":\"http\",\"url\":\"http://x/\"}";
	assert_built(record_build_action_started(&built, &s),
		     ",\"rule\":\"r\",\"episode\":1,\"index\":1,\"action\":\"http\","
		     "\"url\":\"http://x/\"");
	s.action_json = "{}"; /* not an action object */
	built_reset();
	cr_assert_eq(record_build_action_started(&built, &s), -1);

	struct record_action_finished f = {.rule = "r",
					   .episode = 1,
					   .index = 0,
					   .exec = true,
					   .result = "ok",
					   .exit_code = 0,
					   .status_code = 502,
					   .duration_ms = 12,
					   .output = "line\n"};
	assert_built(record_build_action_finished(&built, &f),
		     ",\"rule\":\"r\",\"episode\":1,\"index\":0,\"action\":\"exec\","
		     "\"result\":\"ok\",\"exit_code\":0,\"duration_ms\":12,\"output\":\"line\\n\"");
	f.exec = false;
	f.result = "failed";
	f.incident_state = "failed";
	assert_built(record_build_action_finished(&built, &f),
		     ",\"rule\":\"r\",\"episode\":1,\"index\":0,\"action\":\"http\","
		     "\"result\":\"failed\",\"status_code\":502,\"duration_ms\":12,"
		     "\"output\":\"line\\n\",\"incident_state\":\"failed\"");
}

Test(record, build_incident_records)
{
	struct record_resolved r = {.rule = "r", .episode = 3};
	assert_built(record_build_resolved(&built, &r), ",\"rule\":\"r\",\"episode\":3");
	struct record_incident_state st = {
	    .rule = "r", .episode = 3, .state = "effective", .reason = "held"};
	assert_built(record_build_incident_state(&built, &st),
		     ",\"rule\":\"r\",\"episode\":3,\"state\":\"effective\",\"reason\":\"held\"");
	struct record_verify_result vr = {
	    .rule = "r", .episode = 3, .result = "inconclusive", .reason = "no data"};
	assert_built(record_build_verify_result(&built, &vr),
		     ",\"rule\":\"r\",\"episode\":3,\"result\":\"inconclusive\","
		     "\"reason\":\"no data\"");
	struct record_use u = {.by = "alice", .via = "link"};
	assert_built(record_build_ack(&built, &u), ",\"by\":\"alice\",\"via\":\"link\"");
	assert_built(record_build_approve(&built, &u), ",\"by\":\"alice\",\"via\":\"link\"");
}

Test(record, build_verify_sample)
{
	struct record_verify_sample v = {.rule = "r",
					 .episode = 1,
					 .query = "up",
					 .has_value = true,
					 .value = 0.25,
					 .threshold = 0.5,
					 .below = true,
					 .for_s = 60,
					 .series = 2,
					 .holds = true};
	assert_built(record_build_verify_sample(&built, &v),
		     ",\"rule\":\"r\",\"episode\":1,\"query\":\"up\",\"value\":0.25,"
		     "\"below\":0.5,\"for\":60,\"series\":2,\"holds\":true");
	v.value = -INFINITY;
	v.below = false;
	v.holds = false;
	assert_built(record_build_verify_sample(&built, &v),
		     ",\"rule\":\"r\",\"episode\":1,\"query\":\"up\",\"value\":\"-Inf\","
		     "\"above\":0.5,\"for\":60,\"series\":2,\"holds\":false");
	v.has_value = false;
	v.series = 0;
	v.error = "no data";
	assert_built(record_build_verify_sample(&built, &v),
		     ",\"rule\":\"r\",\"episode\":1,\"query\":\"up\",\"above\":0.5,\"for\":60,"
		     "\"series\":0,\"holds\":false,\"error\":\"no data\"");
}

Test(record, build_notify_records)
{
	struct record_notify_intent i = {.id = "n-1",
					 .channel = "slack",
					 .event = "open",
					 .notice = "{\"a\":1}",
					 .notice_len = 7};
	assert_built(
	    record_build_notify_intent(&built, &i),
	    ",\"id\":\"n-1\",\"channel\":\"slack\",\"event\":\"open\",\"notice\":{\"a\":1}");
	struct record_notify_sent s = {.id = "n-1",
				       .channel = "slack",
				       .status_code = 200,
				       .attempts = 2,
				       .extra = ",\"ts\":\"1.2\""};
	assert_built(record_build_notify_sent(&built, &s),
		     ",\"id\":\"n-1\",\"channel\":\"slack\",\"status_code\":200,\"attempts\":2,"
		     "\"ts\":\"1.2\"");
	struct record_notify_failed f = {.id = "n-1",
					 .channel = "pagerduty",
					 .status_code = 0,
					 .error = "the pagerduty queue is full",
					 .error_max = 12,
					 .attempts = 0,
					 .event = "open"};
	built_reset();
	cr_assert_eq(record_build_notify_failed(&built, &f), 0);
	/* the error is cut to error_max bytes, the rest as in the journal */
	const char *head = ",\"id\":\"n-1\",\"channel\":\"pagerduty\",\"status_code\":0,"
			   "\"error\":\"the pagerdut";
	cr_assert(strncmp(built.data, head, strlen(head)) == 0, "%s", built.data);
	const char *tail = ",\"attempts\":0,\"event\":\"open\"";
	cr_assert_str_eq(built.data + built.len - strlen(tail), tail);
	f.error_max = 100; /* longer than the error: not cut */
	f.event = NULL;
	assert_built(record_build_notify_failed(&built, &f),
		     ",\"id\":\"n-1\",\"channel\":\"pagerduty\",\"status_code\":0,"
		     "\"error\":\"the pagerduty queue is full\",\"attempts\":0");
}

Test(record, build_checkpoint_signs_what_it_writes)
{
	struct record_checkpoint c = {
	    .seq = 42, .hash = "ab", .ts = "2026-01-02T03:04:05.5Z", .key_id = "k1", .sig = "5e"};
	assert_built(record_build_checkpoint(&built, &c),
		     ",\"signed\":{\"seq\":42,\"hash\":\"ab\",\"ts\":\"2026-01-02T03:04:05.5Z\"},"
		     "\"key_id\":\"k1\",\"sig\":\"5e\"");
	assert_built(record_checkpoint_signed(&built, 42, "ab", "2026-01-02T03:04:05.5Z"),
		     "{\"seq\":42,\"hash\":\"ab\",\"ts\":\"2026-01-02T03:04:05.5Z\"}");
	built_reset();
}

Test(record, build_notify_done_frames_the_members_given)
{
	assert_built(record_build_notify_done(&built, "n-1", ",\"status_code\":200", 18),
		     ",\"id\":\"n-1\",\"status_code\":200");
	assert_built(record_build_notify_done(&built, "n-2", NULL, 0), ",\"id\":\"n-2\"");
	built_reset();
}
