/*
 * Unit tests for record: every type's name, the one decoder (type, seq,
 * ts, incident and members by name) on lines as the daemon writes them,
 * and bad lines with their exact status.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

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
