/*
 * metrics: the process-wide Prometheus registry.
 *
 * Families are few and registered at start. Children are appended under a
 * lock and never removed, so a pointer to one stays valid until
 * metrics_free_all(); updates are lock-free atomics. Label values are
 * escaped as the text format asks; the number of children per family is
 * capped so that a label fed by input cannot grow without bound.
 */
#include "rollbackd/metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FAMILIES 64
#define MAX_LABELS 4
#define MAX_BOUNDS 24

struct metric_child {
	const struct metric_family *family;
	char *labels;            /* rendered `a="x",b="y"`, "" without labels */
	_Atomic int64_t value;   /* counter/gauge */
	_Atomic uint64_t *buckets; /* histogram: n_bounds + 1 cumulative later */
	_Atomic uint64_t count;
	_Atomic uint64_t sum_bits; /* double, updated by CAS */
};

struct metric_family {
	enum metric_type type;
	const char *name;
	const char *help;
	const char *label_names[MAX_LABELS];
	size_t n_labels;
	double bounds[MAX_BOUNDS];
	size_t n_bounds;
	struct metric_child **children;
	size_t n_children;
	size_t alloc_children;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct metric_family *families[MAX_FAMILIES];
static size_t n_families;

struct metric_family *metrics_register(enum metric_type type, const char *name,
				       const char *help,
				       const char *const *label_names,
				       const double *bounds, size_t n_bounds)
{
	if (n_bounds > MAX_BOUNDS)
		return NULL;
	struct metric_family *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->type = type;
	f->name = name;
	f->help = help;
	for (size_t i = 0; label_names && label_names[i]; i++) {
		if (i == MAX_LABELS) {
			free(f);
			return NULL;
		}
		f->label_names[f->n_labels++] = label_names[i];
	}
	if (n_bounds)
		memcpy(f->bounds, bounds, n_bounds * sizeof(double));
	f->n_bounds = n_bounds;
	pthread_mutex_lock(&registry_lock);
	if (n_families == MAX_FAMILIES) {
		pthread_mutex_unlock(&registry_lock);
		free(f);
		return NULL;
	}
	families[n_families++] = f;
	pthread_mutex_unlock(&registry_lock);
	return f;
}

/* Escape a label value: backslash, double quote and newline. */
static int add_label_value(struct buf *b, const char *v)
{
	for (; *v; v++) {
		int r;
		if (*v == '\\')
			r = buf_adds(b, "\\\\");
		else if (*v == '"')
			r = buf_adds(b, "\\\"");
		else if (*v == '\n')
			r = buf_adds(b, "\\n");
		else
			r = buf_addc(b, *v);
		if (r < 0)
			return -1;
	}
	return 0;
}

static void child_free(struct metric_child *c)
{
	if (!c)
		return;
	free(c->labels);
	free((void *)c->buckets);
	free(c);
}

struct metric_child *metrics_child(struct metric_family *f, ...)
{
	struct buf key;
	buf_init(&key, 4096);
	va_list ap;
	va_start(ap, f);
	int bad = buf_add(&key, "", 0);
	for (size_t i = 0; i < f->n_labels; i++) {
		const char *v = va_arg(ap, const char *);
		bad |= (i ? buf_addc(&key, ',') : 0) | buf_adds(&key, f->label_names[i]) |
		       buf_adds(&key, "=\"") | add_label_value(&key, v ? v : "") |
		       buf_addc(&key, '"');
	}
	va_end(ap);
	if (bad) {
		buf_release(&key);
		return NULL;
	}
	struct metric_child *found = NULL;
	pthread_mutex_lock(&registry_lock);
	for (size_t i = 0; i < f->n_children; i++) {
		if (strcmp(f->children[i]->labels, key.data) == 0) {
			found = f->children[i];
			break;
		}
	}
	if (!found && f->n_children < METRICS_MAX_CHILDREN) {
		struct metric_child *c = calloc(1, sizeof(*c));
		if (c)
			c->family = f;
		if (c && f->type == METRIC_HISTOGRAM)
			c->buckets = calloc(f->n_bounds + 1, sizeof(*c->buckets));
		if (c && f->n_children == f->alloc_children) {
			size_t n = f->alloc_children ? f->alloc_children * 2 : 8;
			void *p = realloc(f->children, n * sizeof(*f->children));
			if (p) {
				f->children = p;
				f->alloc_children = n;
			}
		}
		if (c && (f->type != METRIC_HISTOGRAM || c->buckets) &&
		    f->n_children < f->alloc_children) {
			c->labels = buf_detach(&key, NULL);
			if (c->labels) {
				f->children[f->n_children++] = c;
				found = c;
				c = NULL;
			}
		}
		child_free(c);
	}
	pthread_mutex_unlock(&registry_lock);
	buf_release(&key);
	return found;
}

void metric_inc(struct metric_child *c)
{
	if (c)
		atomic_fetch_add_explicit(&c->value, 1, memory_order_relaxed);
}

void metric_add(struct metric_child *c, int64_t n)
{
	if (c)
		atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

void metric_set(struct metric_child *c, int64_t v)
{
	if (c)
		atomic_store_explicit(&c->value, v, memory_order_relaxed);
}

void metric_observe(struct metric_child *c, double v)
{
	if (!c || !c->buckets)
		return;
	const struct metric_family *f = c->family;
	size_t i = 0;
	while (i < f->n_bounds && v > f->bounds[i])
		i++;
	atomic_fetch_add_explicit(&c->buckets[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->count, 1, memory_order_relaxed);
	uint64_t old = atomic_load_explicit(&c->sum_bits, memory_order_relaxed), neu;
	do {
		double d;
		memcpy(&d, &old, sizeof(d));
		d += v;
		memcpy(&neu, &d, sizeof(neu));
	} while (!atomic_compare_exchange_weak_explicit(&c->sum_bits, &old, neu,
							memory_order_relaxed,
							memory_order_relaxed));
}

static int render_sample(struct buf *out, const char *name, const char *suffix,
			 const char *labels, const char *extra, const char *value)
{
	int bad = buf_addf(out, "rollbackd_%s%s", name, suffix);
	if (labels[0] || extra) {
		bad |= buf_addc(out, '{') | buf_adds(out, labels);
		if (extra)
			bad |= buf_adds(out, labels[0] ? "," : "") | buf_adds(out, extra);
		bad |= buf_addc(out, '}');
	}
	bad |= buf_addc(out, ' ') | buf_adds(out, value) | buf_addc(out, '\n');
	return bad ? -1 : 0;
}

int metrics_render(struct buf *out)
{
	static const char *const type_names[] = {"counter", "gauge", "histogram"};
	int bad = 0;
	char num[64], le[80];
	pthread_mutex_lock(&registry_lock);
	for (size_t i = 0; i < n_families; i++) {
		const struct metric_family *f = families[i];
		bad |= buf_addf(out, "# HELP rollbackd_%s %s\n# TYPE rollbackd_%s %s\n",
				f->name, f->help, f->name, type_names[f->type]);
		for (size_t j = 0; j < f->n_children; j++) {
			struct metric_child *c = f->children[j];
			if (f->type != METRIC_HISTOGRAM) {
				snprintf(num, sizeof(num), "%lld",
					 (long long)atomic_load(&c->value));
				bad |= render_sample(out, f->name, "", c->labels, NULL, num);
				continue;
			}
			uint64_t cum = 0;
			for (size_t k = 0; k <= f->n_bounds; k++) {
				cum += atomic_load(&c->buckets[k]);
				if (k < f->n_bounds)
					snprintf(le, sizeof(le), "le=\"%g\"", f->bounds[k]);
				else
					snprintf(le, sizeof(le), "le=\"+Inf\"");
				snprintf(num, sizeof(num), "%llu", (unsigned long long)cum);
				bad |= render_sample(out, f->name, "_bucket", c->labels, le, num);
			}
			uint64_t bits = atomic_load(&c->sum_bits);
			double sum;
			memcpy(&sum, &bits, sizeof(sum));
			snprintf(num, sizeof(num), "%.9g", sum);
			bad |= render_sample(out, f->name, "_sum", c->labels, NULL, num);
			snprintf(num, sizeof(num), "%llu",
				 (unsigned long long)atomic_load(&c->count));
			bad |= render_sample(out, f->name, "_count", c->labels, NULL, num);
		}
	}
	pthread_mutex_unlock(&registry_lock);
	return bad ? -1 : 0;
}

void metrics_free_all(void)
{
	pthread_mutex_lock(&registry_lock);
	for (size_t i = 0; i < n_families; i++) {
		for (size_t j = 0; j < families[i]->n_children; j++)
			child_free(families[i]->children[j]);
		free(families[i]->children);
		free(families[i]);
		families[i] = NULL;
	}
	n_families = 0;
	pthread_mutex_unlock(&registry_lock);
}
