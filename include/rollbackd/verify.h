/*
 * verify: the pure core of verify.query (SPEC §6): the query's template
 * expanded with every value escaped for a PromQL string literal, an answer
 * of Prometheus' GET /api/v1/query classified into one sample, and the
 * samples folded into a result (effective, ineffective, inconclusive).
 *
 * Pure: no I/O, no clock, no lock. The engine (verify_run.c) sends the
 * queries on its loop and journals the samples. Must never count a failed
 * query, an empty result or NaN as a pass.
 */
#ifndef ROLLBACKD_VERIFY_H
#define ROLLBACKD_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollbackd/buf.h"
#include "rollbackd/error.h"
#include "rollbackd/template.h"

#define VERIFY_ERROR_MAX 256

enum verify_result {
	VERIFY_PENDING,	     /* not decided yet: sample again */
	VERIFY_EFFECTIVE,    /* every series held the condition for 'for' */
	VERIFY_INEFFECTIVE,  /* the query answered, the condition did not hold long enough */
	VERIFY_INCONCLUSIVE, /* the query kept failing, had no data or NaN until 'within' */
};

/* "pending", "effective", "ineffective", "inconclusive". */
const char *verify_result_name(enum verify_result r);

/* Append s[0..n) escaped for the inside of a PromQL double-quoted string:
 * \ " and the control characters as \\ \" \n \r \t \xHH (so a label value
 * can never end the literal or the expression). 0 or -1 on OOM. */
int verify_promql_escape(struct buf *out, const char *s, size_t n);

/* Expand the query template tpl with every label, annotation and change
 * value escaped by verify_promql_escape (the literal text is kept).
 * Appends to out; -1 with err as template_expand (a missing label). */
int verify_expand_query(const char *tpl, const struct template_ctx *ctx, struct buf *out,
			struct error *err);

/* The condition: every series below (or above) threshold. */
struct verify_cond {
	bool below; /* false: above */
	double threshold;
};

/* One evaluation. */
struct verify_sample {
	bool ok;    /* a vector (or scalar) with numbers in every series */
	bool holds; /* ok and every series meets the condition */
	size_t n_series;
	double value;		      /* ok: the series farthest from passing (the highest
					 for below, the lowest for above) */
	char error[VERIFY_ERROR_MAX]; /* !ok: why ("no data: ...", "NaN ...", ...) */
};

/* Classify one answer. status: the HTTP status (0 when none came);
 * transport_error: curl's message or NULL; body/len the answer (may be
 * NULL). Never fails: anything but a success vector/scalar of numbers is a
 * sample with ok false and the reason in error. */
void verify_sample_classify(int status, const char *transport_error, const char *body, size_t len,
			    const struct verify_cond *cond, struct verify_sample *out);

/* The samples so far. */
struct verify_progress {
	int64_t held_since_ms; /* first sample of the current holding run; -1: none */
	size_t n_samples;
	size_t n_failed;		   /* samples with ok false */
	bool last_ok;			   /* the last sample answered with data */
	char last_error[VERIFY_ERROR_MAX]; /* of the last failed sample */
};

void verify_progress_init(struct verify_progress *p);

/* Fold sample s taken at now_ms: VERIFY_EFFECTIVE once samples have held
 * the condition without a break for at least for_ms (a failed sample or one
 * that does not hold breaks the run), else VERIFY_PENDING. */
enum verify_result verify_step(struct verify_progress *p, const struct verify_sample *s,
			       int64_t now_ms, int64_t for_ms);

/* 'within' ended without VERIFY_EFFECTIVE: VERIFY_INCONCLUSIVE when no
 * sample was taken or the last one failed (why says the error), else
 * VERIFY_INEFFECTIVE. why gets a sentence for the escalation. */
enum verify_result verify_deadline(const struct verify_progress *p, char *why, size_t whysz);

#endif
