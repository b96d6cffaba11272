/*
 * alert: the Alertmanager webhook payload (version "4") as C structs, and
 * Grafana-managed alerting's webhook (version "1": Alertmanager's fields plus
 * orgId, state, title, message and per alert silenceURL, dashboardURL,
 * panelURL, imageURL, values, valueString), told apart by Grafana's own
 * fields rather than by the version string alone.
 *
 * A pure parser over the raw body. Every string of a parsed webhook lives in
 * the webhook's own arena and stays valid until webhook_release(). Errors
 * name the field with a path: `alerts[2].labels.severity: expected a string,
 * got a number`.
 */
#ifndef ROLLBACKD_ALERT_H
#define ROLLBACKD_ALERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollbackd/error.h"
#include "rollbackd/timestamp.h"

struct label {
	const char *name;
	const char *value;
	size_t value_len;
};

/* A string map (labels or annotations), sorted by name, names unique. */
struct label_set {
	struct label *items;
	size_t n;
};

enum alert_status { ALERT_FIRING, ALERT_RESOLVED };

struct alert {
	enum alert_status status;
	struct label_set labels;      /* at least one label */
	struct label_set annotations; /* may be empty */
	struct timestamp starts_at;
	struct timestamp ends_at;     /* Go zero time while firing */
	const char *generator_url;    /* "" when absent */
	const char *fingerprint;      /* as sent; computed from labels if absent */
	/* Grafana only ("" when absent or from Alertmanager): links for people */
	const char *silence_url;
	const char *dashboard_url;
	const char *panel_url;
	const char *image_url;
	const char *value_string;     /* Grafana 9's "[ metric='' labels={} value=… ]" */
	struct label_set values;      /* Grafana's values: name -> the number as sent */
};

enum webhook_sender {
	WEBHOOK_ALERTMANAGER, /* version "4" */
	WEBHOOK_GRAFANA,      /* version "1" with orgId and state/title/message */
};

struct webhook {
	const char *version;  /* "4" (Alertmanager) or "1" (Grafana) */
	enum webhook_sender sender;
	int64_t org_id;       /* Grafana's orgId; 0 from Alertmanager */
	const char *state;    /* Grafana: "alerting", "ok", ...; "" otherwise */
	const char *title;    /* Grafana: "[FIRING:2] ..."; "" otherwise */
	const char *message;  /* Grafana: its rendered text; "" otherwise */
	const char *group_key;
	int64_t truncated_alerts;
	enum alert_status status;
	const char *receiver;
	struct label_set group_labels;
	struct label_set common_labels;
	struct label_set common_annotations;
	const char *external_url;
	struct alert *alerts;
	size_t n_alerts;
	void *arena_; /* private: owns every string and array above */
};

struct alert_limits {
	size_t max_alerts; /* alerts per notification */
	size_t max_labels; /* entries per label set */
};

#define ALERT_LIMITS_DEFAULT {10000, 256}

enum alert_parse_result {
	ALERT_PARSE_OK = 0,
	ALERT_PARSE_EMPTY,   /* empty body (or only whitespace) */
	ALERT_PARSE_JSON,    /* not JSON: message has line and column */
	ALERT_PARSE_INVALID, /* JSON, but not a v4 (or Grafana) webhook: message has path */
	ALERT_PARSE_NOMEM,
};

/* Parse body (len bytes, need not be NUL-terminated; a trailing newline is
 * fine). On success *out owns its memory (webhook_release frees it); on
 * failure *out is zeroed and err says what and where. */
enum alert_parse_result alert_parse_webhook(const char *body, size_t len,
					    const struct alert_limits *lim,
					    struct webhook *out,
					    struct error *err);

/* Free everything a parsed webhook owns; *wh is zeroed. */
void webhook_release(struct webhook *wh);

/* Value of name in set, or NULL. */
const struct label *label_set_get(const struct label_set *set,
				  const char *name);

/* Alertmanager's fingerprint of a label set (FNV-1a 64 over sorted
 * name 0xff value 0xff ...), as 16 lowercase hex digits + NUL. */
void alert_fingerprint(const struct label_set *labels, char out[17]);

const char *alert_status_name(enum alert_status s);

#endif
