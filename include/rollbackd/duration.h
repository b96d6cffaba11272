/*
 * duration: Prometheus-style durations ("500ms", "30s", "1h30m", "2d").
 *
 * Units y, w, d, h, m, s, ms; each at most once and in that order, as
 * Prometheus' model.ParseDuration requires. "0" alone means zero.
 */
#ifndef ROLLBACKD_DURATION_H
#define ROLLBACKD_DURATION_H

#include <stddef.h>
#include <stdint.h>

/* Parse s into milliseconds. Returns 0, or -1 when s is not a duration or
 * does not fit in int64 milliseconds. */
int duration_parse(const char *s, int64_t *out_ms);

/* Write ms in the same syntax ("1h30m", "500ms", "0s"). Returns length. */
size_t duration_format(int64_t ms, char *out, size_t outsz);

#endif
