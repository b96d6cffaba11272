/*
 * duration: Prometheus-style durations, parsed and formatted.
 *
 * Accepts exactly what Prometheus' model.ParseDuration accepts, so a value
 * copied from an alerting rule means the same here: units y (365d), w, d,
 * h, m, s, ms, each at most once and largest first, with "0" alone as zero.
 * Pure: no allocation, no locale, no floating point. Never accepts a sign,
 * a fraction or spaces.
 */
#include "rollbackd/duration.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

struct unit {
	const char *name;
	int64_t ms;
};

/* Largest first: parsing requires this order and formatting emits it. */
static const struct unit units[] = {
    {"y", 365LL * 24 * 60 * 60 * 1000},
    {"w", 7LL * 24 * 60 * 60 * 1000},
    {"d", 24LL * 60 * 60 * 1000},
    {"h", 60LL * 60 * 1000},
    {"m", 60LL * 1000},
    {"s", 1000},
    {"ms", 1},
};
#define N_UNITS (sizeof(units) / sizeof(units[0]))

/* Index of the unit that starts at p ("ms" before "m"), or -1. */
static int unit_at(const char *p, size_t *len)
{
	if (p[0] == 'm' && p[1] == 's') {
		*len = 2;
		return 6;
	}
	for (size_t i = 0; i < N_UNITS; i++) {
		if (units[i].name[1] == '\0' && p[0] == units[i].name[0]) {
			*len = 1;
			return (int)i;
		}
	}
	return -1;
}

int duration_parse(const char *s, int64_t *out_ms)
{
	if (!s || !*s)
		return -1;
	if (strcmp(s, "0") == 0) {
		*out_ms = 0;
		return 0;
	}
	int64_t total = 0;
	int last = -1; /* index of the previous unit; each must be smaller */
	const char *p = s;
	while (*p) {
		if (*p < '0' || *p > '9')
			return -1;
		int64_t n = 0;
		while (*p >= '0' && *p <= '9') {
			int d = *p - '0';
			if (n > (INT64_MAX - d) / 10)
				return -1;
			n = n * 10 + d;
			p++;
		}
		size_t ulen = 0;
		int u = unit_at(p, &ulen);
		if (u < 0 || u <= last)
			return -1;
		last = u;
		p += ulen;
		if (n > INT64_MAX / units[u].ms)
			return -1;
		int64_t part = n * units[u].ms;
		if (part > INT64_MAX - total)
			return -1;
		total += part;
	}
	*out_ms = total;
	return 0;
}

size_t duration_format(int64_t ms, char *out, size_t outsz)
{
	char tmp[64]; /* "-" + seven units of at most 19 digits fits easily */
	size_t at = 0;
	uint64_t rest;

	if (ms < 0) {
		tmp[at++] = '-';
		rest = (uint64_t)(-(ms + 1)) + 1; /* INT64_MIN has no positive twin */
	} else {
		rest = (uint64_t)ms;
	}
	if (rest == 0) {
		memcpy(tmp + at, "0s", 2);
		at += 2;
	}
	for (size_t i = 0; i < N_UNITS && rest > 0; i++) {
		uint64_t size = (uint64_t)units[i].ms;
		uint64_t n = rest / size;
		if (n == 0)
			continue;
		rest -= n * size;
		int w = snprintf(tmp + at, sizeof(tmp) - at, "%llu%s", (unsigned long long)n,
				 units[i].name);
		if (w < 0 || (size_t)w >= sizeof(tmp) - at)
			break; /* cannot happen with a 64-byte buffer */
		at += (size_t)w;
	}
	tmp[at] = '\0';

	if (outsz > 0) {
		size_t n = at < outsz - 1 ? at : outsz - 1;
		memcpy(out, tmp, n);
		out[n] = '\0';
	}
	return at; /* like snprintf: the full length, even when out was too small */
}
