/*
 * Unit tests for timestamp: RFC 3339 parsing as Go writes it, the Go zero
 * time, formatting like time.RFC3339Nano, and millisecond differences.
 */
#include <criterion/criterion.h>
#include <event2/event.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "rollbackd/timestamp.h"

static struct timestamp must_parse(const char *s)
{
	struct timestamp t = {12345, 678};
	int rc = timestamp_parse(s, strlen(s), &t);
	cr_assert_eq(rc, 0, "timestamp_parse(\"%s\") failed", s);
	return t;
}

static void assert_rejects(const char *s)
{
	struct timestamp t = {0, 0};
	cr_assert_eq(timestamp_parse(s, strlen(s), &t), -1, "timestamp_parse(\"%s\") should fail",
		     s);
}

static void assert_instant(const char *s, int64_t sec, int32_t nsec)
{
	struct timestamp t = must_parse(s);
	cr_assert_eq(t.sec, sec, "%s: sec %lld, want %lld", s, (long long)t.sec, (long long)sec);
	cr_assert_eq(t.nsec, nsec, "%s: nsec %d, want %d", s, t.nsec, nsec);
}

static void assert_format(int64_t sec, int32_t nsec, const char *want)
{
	char out[TIMESTAMP_STRLEN];
	struct timestamp t = {sec, nsec};
	size_t n = timestamp_format(t, out, sizeof(out));
	cr_assert_str_eq(out, want);
	cr_assert_eq(n, strlen(want));
}

/* 2023-06-12T08:41:15Z, cross-checked with Python's calendar.timegm */
#define T_20230612_084115 1686559275LL

Test(timestamp, epoch_and_known_instants)
{
	assert_instant("1970-01-01T00:00:00Z", 0, 0);
	assert_instant("2023-06-12T08:41:15Z", T_20230612_084115, 0);
	assert_instant("2023-06-12T08:41:15.482Z", T_20230612_084115, 482000000);
	assert_instant("9999-12-31T23:59:59.999999999Z", 253402300799LL, 999999999);
	assert_instant("1969-12-31T23:59:59.5Z", -1, 500000000);
	assert_instant("2000-03-01T00:00:00Z", 951868800LL, 0);
}

Test(timestamp, go_zero_time)
{
	struct timestamp t = must_parse("0001-01-01T00:00:00Z");
	cr_assert_eq(t.sec, TIMESTAMP_GO_ZERO_SEC);
	cr_assert_eq(t.nsec, 0);
	cr_assert(timestamp_is_zero(t));

	/* the same instant written with an offset is still zero */
	cr_assert(timestamp_is_zero(must_parse("0000-12-31T23:00:00-01:00")));
	cr_assert_not(timestamp_is_zero(must_parse("0001-01-01T00:00:00.000000001Z")));
	cr_assert_not(timestamp_is_zero(must_parse("0001-01-01T00:00:01Z")));
	cr_assert_not(timestamp_is_zero(must_parse("1970-01-01T00:00:00Z")));
	assert_instant("0001-01-01T00:00:00+01:00", TIMESTAMP_GO_ZERO_SEC - 3600, 0);
	/* year 0 is a leap year in the proleptic Gregorian calendar */
	assert_instant("0000-01-01T00:00:00Z", TIMESTAMP_GO_ZERO_SEC - 366 * 86400LL, 0);
}

Test(timestamp, fractions_of_every_length)
{
	static const struct {
		const char *s;
		int32_t nsec;
	} cases[] = {
	    {"2023-06-12T08:41:15.1Z", 100000000},
	    {"2023-06-12T08:41:15.12Z", 120000000},
	    {"2023-06-12T08:41:15.123Z", 123000000},
	    {"2023-06-12T08:41:15.1234Z", 123400000},
	    {"2023-06-12T08:41:15.12345Z", 123450000},
	    {"2023-06-12T08:41:15.123456Z", 123456000},
	    {"2023-06-12T08:41:15.1234567Z", 123456700},
	    {"2023-06-12T08:41:15.12345678Z", 123456780},
	    {"2023-06-12T08:41:15.123456789Z", 123456789},
	    {"2023-06-12T08:41:15.000000001Z", 1},
	    {"2023-06-12T08:41:15.0Z", 0},
	    {"2023-06-12T08:41:15.900Z", 900000000},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_instant(cases[i].s, T_20230612_084115, cases[i].nsec);
	assert_rejects("2023-06-12T08:41:15.1234567891Z"); /* 10 digits */
	assert_rejects("2023-06-12T08:41:15.Z");
	assert_rejects("2023-06-12T08:41:15.");
	assert_rejects("2023-06-12T08:41:15,5Z");
	assert_rejects("2023-06-12T08:41:15.5x");
}

Test(timestamp, offsets_give_the_same_instant)
{
	assert_instant("2023-06-12T10:41:15+02:00", T_20230612_084115, 0);
	assert_instant("2023-06-12T03:11:15.5-05:30", T_20230612_084115, 500000000);
	assert_instant("2023-06-12T08:41:15+00:00", T_20230612_084115, 0);
	assert_instant("2023-06-12T08:41:15-00:00", T_20230612_084115, 0);
	assert_instant("2023-06-13T08:40:15+23:59", T_20230612_084115, 0);
	assert_instant("2023-06-11T08:42:15-23:59", T_20230612_084115, 0);
	/* crossing a year boundary */
	assert_instant("2023-12-31T23:30:00-01:00", 1704069000LL, 0);
	assert_rejects("2023-06-12T08:41:15+24:00");
	assert_rejects("2023-06-12T08:41:15+02:60");
	assert_rejects("2023-06-12T08:41:15+0200");
	assert_rejects("2023-06-12T08:41:15+02");
	assert_rejects("2023-06-12T08:41:15+02:00:00");
	assert_rejects("2023-06-12T08:41:15 +02:00");
}

Test(timestamp, lowercase_and_space_separators)
{
	assert_instant("2023-06-12t08:41:15z", T_20230612_084115, 0);
	assert_instant("2023-06-12 08:41:15Z", T_20230612_084115, 0);
	assert_rejects("2023-06-12_08:41:15Z");
	assert_rejects("2023-06-12T08:41:15");
	assert_rejects("2023-06-12T08:41:15UTC");
}

Test(timestamp, calendar_validation)
{
	must_parse("2024-02-29T00:00:00Z");
	must_parse("2000-02-29T00:00:00Z");
	must_parse("2023-01-31T00:00:00Z");
	must_parse("2023-04-30T23:59:59Z");
	assert_rejects("2023-02-29T00:00:00Z");
	assert_rejects("1900-02-29T00:00:00Z");
	assert_rejects("2100-02-29T00:00:00Z");
	assert_rejects("2023-04-31T00:00:00Z");
	assert_rejects("2023-13-01T00:00:00Z");
	assert_rejects("2023-00-01T00:00:00Z");
	assert_rejects("2023-01-00T00:00:00Z");
	assert_rejects("2023-01-32T00:00:00Z");
	assert_rejects("2023-01-01T24:00:00Z");
	assert_rejects("2023-01-01T23:60:00Z");
	assert_rejects("2016-12-31T23:59:60Z"); /* Go refuses leap seconds */
}

Test(timestamp, malformed)
{
	static const char *bad[] = {
	    "",
	    "yesterday",
	    "2023-06-12",
	    "2023-06-12T08:41Z",
	    "2023-6-12T08:41:15Z",
	    "2023-06-12T8:41:15Z",
	    "+023-06-12T08:41:15Z",
	    "-023-06-12T08:41:15Z",
	    "20230-06-12T08:41:15Z",
	    "2023/06/12T08:41:15Z",
	    "2023-06-12T08-41-15Z",
	    "2023-06-12T08:41:15ZZ",
	    "2023-06-12T08:41:15Z ",
	    " 2023-06-12T08:41:15Z",
	    "２023-06-12T08:41:15Z",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_rejects(bad[i]);
	struct timestamp t;
	cr_assert_eq(timestamp_parse(NULL, 0, &t), -1);
}

Test(timestamp, input_need_not_be_nul_terminated)
{
	const char *s = "2023-06-12T08:41:15.123ZGARBAGE";
	struct timestamp t;
	cr_assert_eq(timestamp_parse(s, 24, &t), 0);
	cr_assert_eq(t.sec, T_20230612_084115);
	cr_assert_eq(t.nsec, 123000000);
	/* cut inside the fraction or the zone: no zone, so not a time */
	cr_assert_eq(timestamp_parse(s, 22, &t), -1);
	cr_assert_eq(timestamp_parse("2023-06-12T08:41:15+02:00", 24, &t), -1);
	cr_assert_eq(timestamp_parse(s, 19, &t), -1);
	/* exactly-sized heap copy so ASan catches any read past len */
	char *exact = malloc(20);
	memcpy(exact, "2023-06-12T08:41:15Z", 20);
	cr_assert_eq(timestamp_parse(exact, 20, &t), 0);
	memcpy(exact, "2023-06-12T08:41:15.", 20);
	cr_assert_eq(timestamp_parse(exact, 20, &t), -1);
	memcpy(exact, "2023-06-12T08:41:15+", 20);
	cr_assert_eq(timestamp_parse(exact, 20, &t), -1);
	free(exact);
}

static bool leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Walk every day from 0001-01-01 to 9999-12-31 with a naive calendar and
 * check that the arithmetic agrees in both directions. */
Test(timestamp, every_day_of_years_1_to_9999)
{
	static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int64_t sec = TIMESTAMP_GO_ZERO_SEC;
	char s[32], out[TIMESTAMP_STRLEN];
	for (int y = 1; y <= 9999; y++) {
		for (int m = 1; m <= 12; m++) {
			int days = dim[m - 1] + (m == 2 && leap(y));
			for (int d = 1; d <= days; d++, sec += 86400) {
				snprintf(s, sizeof(s), "%04d-%02d-%02dT00:00:00Z", y, m, d);
				struct timestamp t = {0, 0};
				/* plain ifs: 3.65M cr_asserts are slow */
				if (timestamp_parse(s, strlen(s), &t) != 0 || t.sec != sec)
					cr_assert_fail("%s: parsed to %lld, want %lld", s,
						       (long long)t.sec, (long long)sec);
				timestamp_format(t, out, sizeof(out));
				if (strcmp(out, s) != 0)
					cr_assert_fail("%s formatted as %s", s, out);
			}
		}
	}
	cr_assert_eq(sec - 86400, 253402214400LL); /* 9999-12-31 */
}

Test(timestamp, agrees_with_timegm)
{
	unsigned seed = 42;
	for (int i = 0; i < 20000; i++) {
		seed = seed * 1103515245 + 12345;
		time_t when = (time_t)(seed % 4102444800U); /* 1970..2100 */
		struct tm tm;
		gmtime_r(&when, &tm);
		char s[32];
		strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%SZ", &tm);
		struct timestamp t = must_parse(s);
		cr_assert_eq(t.sec, (int64_t)when, "%s", s);
		cr_assert_eq(timegm(&tm), when);
	}
}

Test(timestamp, format_like_go_rfc3339nano)
{
	assert_format(TIMESTAMP_GO_ZERO_SEC, 0, "0001-01-01T00:00:00Z");
	assert_format(0, 0, "1970-01-01T00:00:00Z");
	assert_format(T_20230612_084115, 482000000, "2023-06-12T08:41:15.482Z");
	assert_format(T_20230612_084115, 480000000, "2023-06-12T08:41:15.48Z");
	assert_format(T_20230612_084115, 100000000, "2023-06-12T08:41:15.1Z");
	assert_format(T_20230612_084115, 123456789, "2023-06-12T08:41:15.123456789Z");
	assert_format(T_20230612_084115, 1, "2023-06-12T08:41:15.000000001Z");
	assert_format(-1, 500000000, "1969-12-31T23:59:59.5Z");
	assert_format(253402300799LL, 999999999, "9999-12-31T23:59:59.999999999Z");
	/* out of Go's JSON range, but still well formed */
	assert_format(TIMESTAMP_GO_ZERO_SEC - 366 * 86400LL - 1, 0, "-0001-12-31T23:59:59Z");
	assert_format(253402300800LL, 0, "10000-01-01T00:00:00Z");
}

Test(timestamp, format_truncates_to_the_buffer)
{
	char out[8];
	struct timestamp t = {0, 0};
	size_t n = timestamp_format(t, out, sizeof(out));
	cr_assert_eq(n, 7);
	cr_assert_str_eq(out, "1970-01");
	cr_assert_eq(timestamp_format(t, out, 0), 0);
	cr_assert_eq(timestamp_format(t, NULL, 0), 0);
}

Test(timestamp, format_then_parse_round_trips)
{
	static const char *in[] = {
	    "2023-06-12T10:41:15.482+02:00",
	    "0001-01-01T00:00:00Z",
	    "1999-12-31T23:59:59.999999999-00:01",
	    "2024-02-29T12:00:00.5Z",
	};
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		struct timestamp t = must_parse(in[i]), u;
		char out[TIMESTAMP_STRLEN];
		size_t n = timestamp_format(t, out, sizeof(out));
		cr_assert_eq(timestamp_parse(out, n, &u), 0, "%s", out);
		cr_assert_eq(u.sec, t.sec);
		cr_assert_eq(u.nsec, t.nsec);
	}
	struct timestamp t = must_parse("2023-06-12T10:41:15.482+02:00");
	char out[TIMESTAMP_STRLEN];
	timestamp_format(t, out, sizeof(out));
	cr_assert_str_eq(out, "2023-06-12T08:41:15.482Z");
}

Test(timestamp, diff_ms_truncates_toward_zero)
{
	struct timestamp a = {10, 0}, b = {9, 999500000};
	cr_assert_eq(timestamp_diff_ms(a, b), 0); /* 0.5 ms */
	cr_assert_eq(timestamp_diff_ms(b, a), 0);
	struct timestamp c = {2, 500000}, z = {0, 0};
	cr_assert_eq(timestamp_diff_ms(c, z), 2000);
	cr_assert_eq(timestamp_diff_ms(z, c), -2000);
	struct timestamp d = {5, 250000000}, e = {3, 750000000};
	cr_assert_eq(timestamp_diff_ms(d, e), 1500);
	cr_assert_eq(timestamp_diff_ms(e, d), -1500);
	cr_assert_eq(timestamp_diff_ms(a, a), 0);

	struct timestamp start = must_parse("2023-06-12T08:41:15.482Z");
	struct timestamp end = must_parse("2023-06-12T09:03:45.482Z");
	cr_assert_eq(timestamp_diff_ms(end, start), 1350000);

	/* the whole range fits */
	struct timestamp lo = must_parse("0001-01-01T00:00:00Z");
	struct timestamp hi = must_parse("9999-12-31T23:59:59.999999999Z");
	cr_assert_eq(timestamp_diff_ms(hi, lo), 315537897599999LL);
	cr_assert_eq(timestamp_diff_ms(lo, hi), -315537897599999LL);
}

Test(timestamp, now_is_plausible)
{
	struct timestamp t = timestamp_now();
	cr_assert_gt(t.sec, 1686559275LL); /* after this code was written */
	cr_assert_lt(t.sec, 253402300799LL);
	cr_assert_geq(t.nsec, 0);
	cr_assert_lt(t.nsec, 1000000000);
	cr_assert_not(timestamp_is_zero(t));
}

struct fired {
	struct timespec at;
};

static void on_fire(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	clock_gettime(CLOCK_MONOTONIC, &((struct fired *)arg)->at);
}

/* A timer of N ms on the daemon's loops never fires before N ms have passed
 * on CLOCK_MONOTONIC (libevent's default coarse clock let a 2 s Retry-After
 * retry 2 ms early). */
Test(timestamp, loop_timers_never_fire_early)
{
	struct event_base *base = timestamp_event_base_new();
	cr_assert_not_null(base);
	for (int i = 0; i < 40; i++) {
		struct fired f;
		struct event *ev = evtimer_new(base, on_fire, &f);
		struct timespec t0;
		struct timeval tv = timestamp_tv(7);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		event_base_update_cache_time(base);
		cr_assert_eq(evtimer_add(ev, &tv), 0);
		cr_assert_eq(event_base_loop(base, EVLOOP_ONCE), 0);
		int64_t ns = (f.at.tv_sec - t0.tv_sec) * 1000000000LL + (f.at.tv_nsec - t0.tv_nsec);
		cr_assert_geq(ns, 7000000LL, "round %d: fired after %lld ns", i, (long long)ns);
		event_free(ev);
	}
	event_base_free(base);
}

Test(timestamp, deadline_is_ms_later_on_that_clock)
{
	int64_t cases[] = {0, 1, 999, 1000, 1500, 61999};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct timespec before, after;
		clock_gettime(CLOCK_MONOTONIC, &before);
		struct timespec d = timestamp_deadline(CLOCK_MONOTONIC, cases[i]);
		clock_gettime(CLOCK_MONOTONIC, &after);
		cr_assert(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L, "nsec %ld", d.tv_nsec);
		int64_t lo = (before.tv_sec * 1000000000LL + before.tv_nsec) + cases[i] * 1000000LL;
		int64_t hi = (after.tv_sec * 1000000000LL + after.tv_nsec) + cases[i] * 1000000LL;
		int64_t got = d.tv_sec * 1000000000LL + d.tv_nsec;
		cr_assert(got >= lo && got <= hi, "%lld ms: %lld not in [%lld, %lld]",
			  (long long)cases[i], (long long)got, (long long)lo, (long long)hi);
	}
}
