/*
 * pagerduty: PagerDuty Events API v2 bodies (SPEC §9).
 *
 * Pure functions that build the JSON to POST to the events URL; sending,
 * retrying and journaling are the caller's. dedup_key is the incident id,
 * so trigger, acknowledge and resolve of one incident land on one PagerDuty
 * alert. Never: put the routing key anywhere but the "routing_key" member
 * of the body to send; the journal gets pd_event_redacted.
 */
#ifndef ROLLBACKD_PAGERDUTY_H
#define ROLLBACKD_PAGERDUTY_H

#include <stdbool.h>
#include <stddef.h>

#include "rollbackd/alert.h"
#include "rollbackd/buf.h"
#include "rollbackd/secret.h"

#define PD_SUMMARY_MAX 1024	/* payload.summary, bytes (PagerDuty: characters) */
#define PD_DEDUP_KEY_MAX 255	/* dedup_key */
#define PD_FIELD_MAX 1024	/* source, component, group, decision, state, hrefs */
#define PD_LABELS_MAX 128	/* labels copied into custom_details */
#define PD_LABEL_NAME_MAX 256	/* bytes of a label name */
#define PD_LABEL_VALUE_MAX 1024 /* bytes of a label value */
#define PD_ROUTING_KEY_MAX 128	/* routing keys are 32 characters */
#define PD_REDACTED "<redacted>"

enum pd_action { PD_TRIGGER, PD_ACKNOWLEDGE, PD_RESOLVE };

/* An incident as PagerDuty sees it; every pointer is borrowed for the call,
 * NULL (or "") means absent except id. */
struct pd_view {
	const char *id; /* dedup_key: required, 1..PD_DEDUP_KEY_MAX bytes */
	const char *rule, *service, *state;
	const char *severity_label; /* the alert's severity label, or NULL */
	bool escalate;		    /* e.g. the rollback was ineffective: critical */
	const char *summary_extra;  /* the decision's reason, appended to the summary */
	const struct label *labels; /* the alert's labels (value_len bytes each) */
	size_t n_labels;
	const char *decision; /* outcome, e.g. "acting", "held" */
	const char *ack_url, *generator_url;
	const char *source;    /* "rollbackd" when NULL */
	const char *timestamp; /* change events: RFC 3339, left out when NULL */
};

/*
 * Append the Events API v2 body for action a to out:
 *   {"routing_key", "event_action": "trigger"|"acknowledge"|"resolve",
 *    "dedup_key": id, and for a trigger only:
 *    "payload": {"summary", "source", "severity", "component": service,
 *                "group": rule, "custom_details": {"incident", "state",
 *                "decision", "labels": {…}}},
 *    "links": [{"href": ack_url, "text": "Acknowledge in rollbackd"},
 *              {"href": generator_url, "text": "Prometheus"}]}
 * The summary is "<rule> on <service>: <state> - <summary_extra>" (state
 * with '_' as spaces, "incident <id>" without a rule), one line, cut to
 * PD_SUMMARY_MAX bytes on a UTF-8 boundary with "…". Members that are
 * absent are left out ("links" too when both are). Text that is not valid
 * UTF-8 is repaired with U+FFFD, fields are cut to the PD_*_MAX above, labels
 * past PD_LABELS_MAX are left out. Links are http(s) only.
 * routing_key must be set, printable ASCII, at most PD_ROUTING_KEY_MAX bytes.
 * out is grown once before the key is written, so no stale copy of the key
 * is left behind by a realloc. Returns 0, or -1 with out unchanged.
 */
int pd_event(const struct pd_view *v, enum pd_action a, const struct secret *routing_key,
	     struct buf *out);

/* The same event with "routing_key": "<redacted>", for the journal and logs. */
int pd_event_redacted(const struct pd_view *v, enum pd_action a, struct buf *out);

/* Append a Change Event body for the rollback of incident v to out (POST
 * it to change_url): {"routing_key", "payload": {"summary": "Rollback:
 * <rule> on <service>: <state> - <summary_extra>", "timestamp", "source",
 * "custom_details": {"incident", "rule", "service", "state", "labels"}},
 * "links": [{"href": ack_url, "text": "Incident in rollbackd"},
 * {"href": generator_url, "text": "Prometheus"}]}, bounded and repaired
 * like pd_event. Returns 0, or -1 with out unchanged. */
int pd_change_event(const struct pd_view *v, const struct secret *routing_key, struct buf *out);

/* Map an alert's severity label (case-insensitive) to PagerDuty's:
 * critical/crit/page/p1/fatal/emergency → "critical";
 * error/err/high/major/p2 → "error"; warning/warn/medium/minor/p3 →
 * "warning"; info/low/none/p4/p5/informational → "info"; anything else or
 * NULL → "error"; escalate → "critical". Static strings. */
const char *pd_severity(const char *label, bool escalate);

/* "trigger", "acknowledge", "resolve". */
const char *pd_action_name(enum pd_action a);

#endif
