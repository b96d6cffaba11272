/*
 * rules: rollback rule files (SPEC §6) — loading, validation and matching.
 *
 * Pure: reads files, builds structs, never runs anything. A rule set is
 * immutable once loaded; a reload builds a new one. Errors are
 * "FILE:LINE:COL: message" for JSON syntax and "FILE: rules[3].matchers[0]:
 * message" for content (with a suggestion for near-miss keys).
 */
#ifndef ROLLBACKD_RULES_H
#define ROLLBACKD_RULES_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "rollbackd/alert.h"
#include "rollbackd/error.h"

enum matcher_op { MATCH_EQ, MATCH_NE, MATCH_RE, MATCH_NRE };

struct matcher {
	char *name;
	enum matcher_op op;
	char *value;   /* unquoted, unescaped */
	regex_t re;    /* compiled "^(value)$" for =~ and !~ */
	bool has_re;
};

enum rule_mode { RULE_MODE_AUTO, RULE_MODE_NOTIFY, RULE_MODE_APPROVE };

struct rule_value {
	bool from_annotations; /* "annotations.X" (else "labels.X") */
	char *key;
	bool has_above, has_below;
	double above, below;
};

enum action_type { ACTION_EXEC, ACTION_HTTP };

struct http_header_tpl {
	char *name;
	char *value; /* template */
};

struct action_tpl {
	enum action_type type;
	int64_t timeout_ms;   /* default exec 1m, http 10s */
	/* exec */
	char **argv;          /* templates; argv[argc] == NULL */
	size_t argc;
	/* http */
	char *method;         /* default POST */
	char *url;            /* template */
	struct http_header_tpl *headers;
	size_t n_headers;
	json_t *body;         /* JSON template (strings may hold {{...}}), or NULL; owned */
	int *expect_status;   /* default: any 2xx */
	size_t n_expect_status;
	int retries;          /* default 0 */
};

struct rule {
	char *name;
	char *description;
	char *file;                  /* where it was defined */
	struct matcher *matchers;
	size_t n_matchers;
	int64_t firing_for_ms;       /* 0 = none */
	int64_t changed_within_ms;   /* when.changed_within; 0 = no such condition */
	bool has_value;
	struct rule_value value;
	char **group_by;             /* NULL = every label (fingerprint) */
	size_t n_group_by;
	enum rule_mode mode;
	int64_t approve_timeout_ms;  /* 0 = wait forever */
	struct action_tpl *actions;
	size_t n_actions;
	bool on_failure_continue;    /* "on_failure": "continue" (default stop) */
	int64_t cooldown_ms;
	int64_t verify_within_ms;    /* 0 = no verification */
	char *verify_query;          /* verify.query (a template); NULL: the alert resolving verifies */
	bool verify_below;           /* verify.below (else verify.above) */
	double verify_threshold;
	int64_t verify_for_ms;       /* verify.for, default 1m */
	int64_t verify_interval_ms;  /* verify.interval, default 15s */
	int dry_run;                 /* -1 inherit global, 0 off, 1 on */
	char *target;                /* template naming what is rolled back (SPEC §6);
					NULL = the group labels, "name=value" sorted, ","-joined */
	char **notify;               /* channel names (channel.h): "slack", ... */
	size_t n_notify;
};

struct ruleset {
	struct rule *rules;
	size_t n_rules;
	char digest[65]; /* hex BLAKE2b-256 over each file in load order:
			    base name, NUL, 8-byte LE length, bytes */
};

/* Parse one matcher in Alertmanager syntax: name op "value" (quotes optional
 * for plain values), ops = != =~ !~. 0 or -1 with err. */
int matcher_parse(const char *s, struct matcher *out, struct error *err);
void matcher_release(struct matcher *m);
bool matcher_matches(const struct matcher *m, const struct label_set *labels);

/* Load every *.json file of path (a file, or a directory read in lexical
 * order). On failure out is empty and err holds the first error. */
int rules_load(const char *path, struct ruleset *out, struct error *err);

/* Validate paths (files or dirs), printing every error (not just the first)
 * to stderr as one line each; returns the number of errors. Rule names must
 * be unique across all paths. */
int rules_check(const char *const *paths, size_t n_paths);

void ruleset_release(struct ruleset *rs);

/* All matchers hold for the alert's labels. */
bool rule_matches(const struct rule *r, const struct alert *a);

/* Read rule->value from the alert. Returns 1 when the value is present,
 * numeric and passes the comparison, 0 when it does not match; *reason
 * (static or in buf reasonbuf) says why: "value 0.05 above 0.01",
 * "annotation 'value' missing", "annotation 'value' is not a number: \"n/a\"". */
int rule_value_check(const struct rule *r, const struct alert *a, char *reasonbuf,
		     size_t reasonsz);

#endif
