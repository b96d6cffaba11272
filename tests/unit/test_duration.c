/*
 * Unit tests for duration: Prometheus model.ParseDuration syntax, parsing
 * and formatting.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "rollbackd/duration.h"

#define SEC 1000LL
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

static int64_t parse_ok(const char *s)
{
	int64_t ms = -12345;
	cr_assert_eq(duration_parse(s, &ms), 0, "\"%s\" should parse", s);
	return ms;
}

static void parse_bad(const char *s)
{
	int64_t ms = -12345;
	cr_assert_eq(duration_parse(s, &ms), -1, "\"%s\" should be rejected", s);
	cr_assert_eq(ms, -12345, "\"%s\": out must be untouched on failure", s);
}

Test(duration, single_units)
{
	cr_assert_eq(parse_ok("500ms"), 500);
	cr_assert_eq(parse_ok("30s"), 30 * SEC);
	cr_assert_eq(parse_ok("5m"), 5 * MIN);
	cr_assert_eq(parse_ok("1h"), HOUR);
	cr_assert_eq(parse_ok("2d"), 2 * DAY);
	cr_assert_eq(parse_ok("1w"), 7 * DAY);
	cr_assert_eq(parse_ok("1y"), 365 * DAY);
}

Test(duration, zero)
{
	cr_assert_eq(parse_ok("0"), 0);
	cr_assert_eq(parse_ok("0s"), 0);
	cr_assert_eq(parse_ok("0ms"), 0);
	cr_assert_eq(parse_ok("0h0m"), 0);
}

Test(duration, combined_in_order)
{
	cr_assert_eq(parse_ok("1h30m"), HOUR + 30 * MIN);
	cr_assert_eq(parse_ok("1m1ms"), MIN + 1);
	cr_assert_eq(parse_ok("1y2w3d4h5m6s7ms"),
		     365 * DAY + 14 * DAY + 3 * DAY + 4 * HOUR + 5 * MIN + 6 * SEC + 7);
	cr_assert_eq(parse_ok("90m"), 90 * MIN); /* no carry limit, as in Prometheus */
	cr_assert_eq(parse_ok("05m"), 5 * MIN);
}

Test(duration, rejects_malformed)
{
	parse_bad("");
	parse_bad("1.5h");
	parse_bad("-1s");
	parse_bad("+1s");
	parse_bad("1x");
	parse_bad("1m1h"); /* wrong order */
	parse_bad("1s1s"); /* repeated unit */
	parse_bad("1ms1s");
	parse_bad("5"); /* a bare number other than "0" */
	parse_bad("00");
	parse_bad("h");
	parse_bad("1h ");
	parse_bad(" 1h");
	parse_bad("1 h");
	parse_bad("5 minutes");
	parse_bad("1H");
	parse_bad("1hm");
	parse_bad("1us");
	parse_bad("1ns");
}

Test(duration, rejects_null)
{
	int64_t ms = 7;
	cr_assert_eq(duration_parse(NULL, &ms), -1);
	cr_assert_eq(ms, 7);
}

Test(duration, overflow)
{
	/* INT64_MAX ms is 9223372036854775807ms; one more must fail. */
	cr_assert_eq(parse_ok("9223372036854775807ms"), INT64_MAX);
	parse_bad("9223372036854775808ms");
	parse_bad("99999999999999999999s");
	parse_bad("9223372036854776s"); /* fits as a number, not in ms */
	parse_bad("292471209y");	/* 292471209 years > INT64_MAX ms */
	/* each part fits but the sum does not */
	parse_bad("292471208y52w");
	cr_assert_eq(parse_ok("292471208y"), 292471208LL * 365 * DAY);
}

static void fmt_is(int64_t ms, const char *want)
{
	char out[64];
	size_t n = duration_format(ms, out, sizeof(out));
	cr_assert_str_eq(out, want);
	cr_assert_eq(n, strlen(want));
}

Test(duration, format)
{
	fmt_is(0, "0s");
	fmt_is(500, "500ms");
	fmt_is(30 * SEC, "30s");
	fmt_is(5 * MIN, "5m");
	fmt_is(HOUR + 30 * MIN, "1h30m");
	fmt_is(90 * MIN, "1h30m");
	fmt_is(DAY, "1d");
	fmt_is(14 * DAY, "2w");
	fmt_is(365 * DAY, "1y");
	fmt_is(366 * DAY + 1, "1y1d1ms");
	fmt_is(HOUR + 1, "1h1ms");
	fmt_is(-5 * MIN, "-5m");
	fmt_is(INT64_MAX, "292471208y35w2d7h12m55s807ms");
	fmt_is(INT64_MIN, "-292471208y35w2d7h12m55s808ms");
}

Test(duration, format_truncates_like_snprintf)
{
	char out[4];
	memset(out, 'X', sizeof(out));
	cr_assert_eq(duration_format(HOUR + 30 * MIN, out, sizeof(out)), 5);
	cr_assert_str_eq(out, "1h3");
	cr_assert_eq(duration_format(HOUR, NULL, 0), 2);
}

Test(duration, round_trip)
{
	static const char *const canon[] = {
	    "0s",    "1ms",
	    "999ms", "1s",
	    "59s",   "1m",
	    "1h30m", "23h59m59s999ms",
	    "1d",    "6d23h",
	    "1w",    "51w6d",
	    "1y",    "2y3w4d5h6m7s8ms",
	};
	for (size_t i = 0; i < sizeof(canon) / sizeof(canon[0]); i++) {
		int64_t ms = parse_ok(canon[i]);
		char out[64];
		duration_format(ms, out, sizeof(out));
		cr_assert_str_eq(out, canon[i]);
	}
	/* and every value formats to something that parses back to it */
	static const int64_t values[] = {1, 1001, 61 * SEC, 3 * DAY + 1, 400 * DAY, INT64_MAX};
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		char out[64];
		duration_format(values[i], out, sizeof(out));
		cr_assert_eq(parse_ok(out), values[i], "%s", out);
	}
}
