/*
 * metrics: a small Prometheus registry (text exposition format 0.0.4).
 *
 * Families are registered once at start; children (one per label-value
 * tuple) are created on first use and live until exit. Updates are atomic
 * and lock-free, so any thread may count; creating a child takes a lock.
 * Every name is prefixed "rollbackd_" here.
 */
#ifndef ROLLBACKD_METRICS_H
#define ROLLBACKD_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "rollbackd/buf.h"

struct metric_family;
struct metric_child;

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

/* Register a family. label_names: NULL-terminated list (may be just NULL).
 * bounds/n_bounds only for histograms (ascending upper bounds, +Inf is
 * implicit). Returns NULL on OOM. The strings must be static. */
struct metric_family *metrics_register(enum metric_type type, const char *name,
				       const char *help,
				       const char *const *label_names,
				       const double *bounds, size_t n_bounds);

/* Get or create the child for these label values (as many as the family
 * has label names). Returns NULL on OOM or when the family already has
 * METRICS_MAX_CHILDREN children (so an unbounded label cannot eat memory). */
#define METRICS_MAX_CHILDREN 4096
struct metric_child *metrics_child(struct metric_family *f, ...);

void metric_inc(struct metric_child *c);          /* counter/gauge += 1 */
void metric_add(struct metric_child *c, int64_t n); /* counter/gauge += n */
void metric_set(struct metric_child *c, int64_t v); /* gauge = v */
void metric_observe(struct metric_child *c, double v); /* histogram */

/* Render every family. 0 or -1 on OOM. */
int metrics_render(struct buf *out);

/* Free the registry (for leak-checked tests and a clean exit). */
void metrics_free_all(void);

#endif
