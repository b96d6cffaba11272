/*
 * timestamp: RFC 3339 times as Alertmanager and Go write them.
 *
 * Pure functions over buffers. Go's zero time (0001-01-01T00:00:00Z) is what
 * Alertmanager puts in the endsAt of a firing alert, so the representation
 * reaches back to year 1 (seconds since the Unix epoch, possibly negative).
 */
#ifndef ROLLBACKD_TIMESTAMP_H
#define ROLLBACKD_TIMESTAMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>
#include <time.h>

struct timestamp {
	int64_t sec;  /* seconds since 1970-01-01T00:00:00Z, may be negative */
	int32_t nsec; /* 0 .. 999 999 999 */
};

#define TIMESTAMP_GO_ZERO_SEC (-62135596800LL) /* 0001-01-01T00:00:00Z */

/* Parse "YYYY-MM-DDTHH:MM:SS[.frac]Z|±HH:MM" (RFC 3339; 't'/'z' and a space
 * for 'T' are accepted as RFC 3339 allows; fraction 1..9 digits). The
 * calendar date must exist and the offset must be within ±23:59.
 * Returns 0, or -1 when s is not such a time. s need not be NUL-terminated. */
int timestamp_parse(const char *s, size_t len, struct timestamp *out);

/* True for Go's zero time. */
bool timestamp_is_zero(struct timestamp t);

/* Format as UTC RFC 3339 with the fraction trimmed of trailing zeros, like
 * Go's time.RFC3339Nano. out needs TIMESTAMP_STRLEN bytes. Returns length. */
#define TIMESTAMP_STRLEN 40
size_t timestamp_format(struct timestamp t, char *out, size_t outsz);

/* Wall-clock now. */
struct timestamp timestamp_now(void);

/* Milliseconds on the monotonic clock (for durations and deadlines, never
 * for wall time). */
int64_t timestamp_mono_ms(void);

struct event_base;

/* A libevent base whose timers run on CLOCK_MONOTONIC rather than libevent's
 * default CLOCK_MONOTONIC_COARSE (a tick of up to 4 ms, so a timer could fire
 * before its time: a Retry-After or a firing_for is a "not before"). NULL on
 * failure. Every loop of the daemon is made with it. */
struct event_base *timestamp_event_base_new(void);

/* ms as a struct timeval for libevent timers; negative counts as 0. */
struct timeval timestamp_tv(int64_t ms);

/* The time ms (>= 0) from now on clock: a pthread_cond_timedwait deadline
 * (its clock: the cond's, CLOCK_REALTIME unless set otherwise). */
struct timespec timestamp_deadline(clockid_t clock, int64_t ms);

/* a - b in milliseconds (saturating at INT64 bounds is not needed for the
 * range of years 1..9999). */
int64_t timestamp_diff_ms(struct timestamp a, struct timestamp b);

#endif
