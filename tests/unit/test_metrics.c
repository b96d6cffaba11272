#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "rollbackd/metrics.h"

static void fini(void)
{
	metrics_free_all();
}

TestSuite(metrics, .fini = fini);

static char *render(void)
{
	struct buf b = BUF_INIT;
	cr_assert_eq(metrics_render(&b), 0);
	return buf_detach(&b, NULL);
}

Test(metrics, counter_with_labels_renders_and_escapes)
{
	static const char *const labels[] = {"rule", "outcome", NULL};
	struct metric_family *f =
		metrics_register(METRIC_COUNTER, "decisions_total", "Decisions.", labels, NULL, 0);
	cr_assert_not_null(f);
	struct metric_child *a = metrics_child(f, "r1", "acting");
	struct metric_child *b = metrics_child(f, "we\"ird\\\n", "held");
	cr_assert_eq(metrics_child(f, "r1", "acting"), a, "same labels give the same child");
	metric_inc(a);
	metric_add(a, 2);
	metric_inc(b);
	char *text = render();
	cr_assert(strstr(text, "# TYPE rollbackd_decisions_total counter\n"));
	cr_assert(strstr(text, "rollbackd_decisions_total{rule=\"r1\",outcome=\"acting\"} 3\n"));
	cr_assert(strstr(text,
			 "rollbackd_decisions_total{rule=\"we\\\"ird\\\\\\n\",outcome=\"held\"} 1\n"),
		  "%s", text);
	free(text);
}

Test(metrics, histogram_buckets_are_cumulative)
{
	static const double bounds[] = {0.1, 1};
	struct metric_family *f =
		metrics_register(METRIC_HISTOGRAM, "d_seconds", "D.", NULL, bounds, 2);
	struct metric_child *c = metrics_child(f);
	metric_observe(c, 0.05);
	metric_observe(c, 0.5);
	metric_observe(c, 5);
	char *text = render();
	cr_assert(strstr(text, "rollbackd_d_seconds_bucket{le=\"0.1\"} 1\n"), "%s", text);
	cr_assert(strstr(text, "rollbackd_d_seconds_bucket{le=\"1\"} 2\n"));
	cr_assert(strstr(text, "rollbackd_d_seconds_bucket{le=\"+Inf\"} 3\n"));
	cr_assert(strstr(text, "rollbackd_d_seconds_sum 5.55\n"));
	cr_assert(strstr(text, "rollbackd_d_seconds_count 3\n"));
	free(text);
}

Test(metrics, children_are_capped)
{
	static const char *const labels[] = {"k", NULL};
	struct metric_family *f = metrics_register(METRIC_GAUGE, "g", "G.", labels, NULL, 0);
	char v[32];
	for (int i = 0; i < METRICS_MAX_CHILDREN; i++) {
		snprintf(v, sizeof(v), "%d", i);
		cr_assert_not_null(metrics_child(f, v));
	}
	cr_assert_null(metrics_child(f, "one-too-many"));
	cr_assert_not_null(metrics_child(f, "0"), "existing children stay reachable");
}
