/*
 * timestamp: RFC 3339 parsing and formatting, as Go's time package does it.
 *
 * Pure arithmetic over the proleptic Gregorian calendar (days-from-civil,
 * after Howard Hinnant's algorithms): no timegm, no TZ, no locale, so the
 * result never depends on the host's time zone. Must never read past len.
 */
#include "rollbackd/timestamp.h"

#include <event2/event.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define SECS_PER_DAY 86400LL
#define NSEC_PER_SEC 1000000000LL

/* Days since 1970-01-01 of y-m-d (m 1..12, d 1..31), any year. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static bool is_leap(unsigned y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(unsigned y, unsigned m)
{
	static const unsigned char dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* n decimal digits at s into *v; -1 unless all n are digits. */
static int digits(const char *s, size_t n, unsigned *v)
{
	unsigned x = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned c = (unsigned char)s[i] - '0';
		if (c > 9)
			return -1;
		x = x * 10 + c;
	}
	*v = x;
	return 0;
}

int timestamp_parse(const char *s, size_t len, struct timestamp *out)
{
	unsigned year, mon, day, hour, min, sec, oh = 0, om = 0;
	int32_t nsec = 0;
	int sign = 0;
	size_t i;

	/* "YYYY-MM-DDTHH:MM:SS" is 19 bytes, the shortest zone "Z" one more */
	if (!s || len < 20)
		return -1;
	if (digits(s, 4, &year) || s[4] != '-' || digits(s + 5, 2, &mon) || s[7] != '-' ||
	    digits(s + 8, 2, &day) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
	    digits(s + 11, 2, &hour) || s[13] != ':' || digits(s + 14, 2, &min) || s[16] != ':' ||
	    digits(s + 17, 2, &sec))
		return -1;
	i = 19;
	if (s[i] == '.') {
		size_t start = ++i;
		while (i < len && i - start < 9 && s[i] >= '0' && s[i] <= '9')
			nsec = nsec * 10 + (s[i++] - '0');
		size_t n = i - start;
		/* a tenth digit is as wrong as none */
		if (n == 0 || (i < len && s[i] >= '0' && s[i] <= '9'))
			return -1;
		for (; n < 9; n++)
			nsec *= 10;
	}
	if (i >= len)
		return -1;
	if (s[i] == 'Z' || s[i] == 'z') {
		i++;
	} else if (s[i] == '+' || s[i] == '-') {
		sign = s[i] == '-' ? -1 : 1;
		if (len - i < 6 || digits(s + i + 1, 2, &oh) || s[i + 3] != ':' ||
		    digits(s + i + 4, 2, &om))
			return -1;
		i += 6;
	} else {
		return -1;
	}
	if (i != len)
		return -1;
	/* Go rejects a leap second (":60") and so do we */
	if (mon < 1 || mon > 12 || day < 1 || day > days_in_month(year, mon) || hour > 23 ||
	    min > 59 || sec > 59 || oh > 23 || om > 59)
		return -1;

	int64_t t = days_from_civil(year, mon, day) * SECS_PER_DAY + hour * 3600 + min * 60 + sec;
	/* local time = UTC + offset, so UTC = local - offset */
	t -= sign * (int64_t)(oh * 3600 + om * 60);
	out->sec = t;
	out->nsec = nsec;
	return 0;
}

bool timestamp_is_zero(struct timestamp t)
{
	return t.sec == TIMESTAMP_GO_ZERO_SEC && t.nsec == 0;
}

size_t timestamp_format(struct timestamp t, char *out, size_t outsz)
{
	char tmp[TIMESTAMP_STRLEN + 24];
	int64_t days = t.sec / SECS_PER_DAY, rem = t.sec % SECS_PER_DAY;
	if (rem < 0) {
		rem += SECS_PER_DAY;
		days--;
	}
	int64_t y;
	unsigned m, d;
	civil_from_days(days, &y, &m, &d);

	int n = snprintf(tmp, sizeof(tmp), "%s%04lld-%02u-%02uT%02d:%02d:%02d", y < 0 ? "-" : "",
			 (long long)(y < 0 ? -y : y), m, d, (int)(rem / 3600), (int)(rem / 60 % 60),
			 (int)(rem % 60));
	if (n < 0)
		n = 0;
	size_t len = (size_t)n;
	int32_t ns = t.nsec;
	if (ns > 0 && ns < NSEC_PER_SEC) {
		char frac[10];
		int nd = 9;
		for (int k = 8; k >= 0; k--, ns /= 10)
			frac[k] = (char)('0' + ns % 10);
		while (nd > 0 && frac[nd - 1] == '0')
			nd--;
		tmp[len++] = '.';
		memcpy(tmp + len, frac, (size_t)nd);
		len += (size_t)nd;
	}
	tmp[len++] = 'Z';
	tmp[len] = '\0';

	if (!out || outsz == 0)
		return 0;
	if (len >= outsz)
		len = outsz - 1;
	memcpy(out, tmp, len);
	out[len] = '\0';
	return len;
}

struct timestamp timestamp_now(void)
{
	struct timespec ts;
	struct timestamp t = {0, 0};
	if (clock_gettime(CLOCK_REALTIME, &ts) == 0) {
		t.sec = (int64_t)ts.tv_sec;
		t.nsec = (int32_t)ts.tv_nsec;
	}
	return t;
}

int64_t timestamp_diff_ms(struct timestamp a, struct timestamp b)
{
	int64_t dsec = a.sec - b.sec;
	int64_t dns = (int64_t)a.nsec - b.nsec;
	/* give both parts the same sign so the division truncates the exact
	 * difference toward zero */
	if (dsec > 0 && dns < 0) {
		dsec--;
		dns += NSEC_PER_SEC;
	} else if (dsec < 0 && dns > 0) {
		dsec++;
		dns -= NSEC_PER_SEC;
	}
	return dsec * 1000 + dns / 1000000;
}

int64_t timestamp_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct timespec timestamp_deadline(clockid_t clock, int64_t ms)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

struct timeval timestamp_tv(int64_t ms)
{
	if (ms < 0)
		ms = 0;
	struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
			     .tv_usec = (suseconds_t)(ms % 1000) * 1000};
	return tv;
}

struct event_base *timestamp_event_base_new(void)
{
	struct event_config *cfg = event_config_new();
	if (!cfg)
		return NULL;
	event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
	struct event_base *base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return base;
}
