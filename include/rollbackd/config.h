/*
 * config: rollbackd's configuration file (SPEC §4), strict JSON.
 *
 * Every key has a default; config_init() gives the built-in defaults that
 * `rollbackd serve` runs on without a file. Unknown keys are errors that name
 * their path ("limits.max_body_byte: unknown key (did you mean
 * 'max_body_bytes'?)"). Secrets are loaded here, from files or the
 * environment, and never appear in messages.
 */
#ifndef ROLLBACKD_CONFIG_H
#define ROLLBACKD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollbackd/auth.h"
#include "rollbackd/error.h"
#include "rollbackd/secret.h"

struct named_secret {
	char *name;
	struct secret value;
};

struct config {
	char *path;        /* file it came from, NULL for built-in defaults */
	char *listen;      /* "host:port", "[v6]:port" */
	char *public_url;  /* base of ack links; "" when unset */
	char *rules;       /* file or directory of rule files */
	char *state_dir;
	bool dry_run;
	bool recover;      /* serve --recover (from the command line, never the file) */
	char *log_level;   /* "debug" | "info" | "warn" | "error" */
	int workers;       /* HTTP event loops (SO_REUSEPORT); >= 1; "auto" = online CPUs */

	struct {
		size_t max_body_bytes;
		size_t max_header_bytes;
		int max_connections;
		int64_t request_timeout_ms;
		int max_concurrent_actions;
		int max_rollbacks_per_hour;
		size_t max_alerts;      /* alerts per notification */
		size_t max_incidents;   /* kept in memory; resolved ones are evicted */
		int64_t target_cooldown_ms; /* after a target's actions, others wait (30m) */
		int blast_targets;          /* 0 = off; else this many targets in... */
		int64_t blast_window_ms;    /* ...this window need approval (10m) */
		int max_connections_per_peer; /* open connections from one address */
		int64_t header_timeout_ms;    /* to read a request's head */
	} limits;

	struct auth_config auth;        /* schemes for POST /v1/alerts */
	struct secret api_token;        /* /v1/incidents, pause, resume */
	struct secret links_secret;     /* signs ack/approve links */
	int64_t links_ttl_ms;
	struct secret slack_signing;    /* Slack interactivity */

	struct named_secret *secrets;   /* {{secret.NAME}} in templates */
	size_t n_secrets;

	struct {
		uint64_t segment_bytes;
		uint64_t snapshot_records; /* a snapshot after this many more (0: at stop only) */
	} journal;

	struct {
		struct secret key;  /* Ed25519 secret key (rollbackd keygen); unset: off */
		int64_t every_ms;   /* sign the journal head this often (and at exit) */
		char *publish_file; /* append each signed line here; "" when unset */
		char *publish_url;  /* POST each signed line here; "" when unset */
	} checkpoints;

	char *prometheus_url; /* prometheus.url, for verify.query; "" when unset */

	struct {
		struct secret slack_webhook_url;
		struct secret slack_bot_token;
		char *slack_channel;
		char *slack_api_url;
		struct secret pagerduty_routing_key;
		char *pagerduty_url;
		char *pagerduty_change_url; /* Change Events for every rollback that runs; "" = none */
		size_t max_queued; /* notices queued or waiting, per channel */
		struct email_config {
			char *smtp_url;	      /* smtp:// or smtps://; NULL = no email */
			char *from;	      /* envelope and From: address */
			char **to;	      /* recipients, n_to >= 1 when smtp_url is set */
			size_t n_to;
			char *username;	      /* NULL = no auth */
			struct secret password;
			bool starttls;	      /* smtp://: require STARTTLS (default true) */
			char *ca_file;	      /* CA bundle for the server's certificate, NULL = system */
		} email;
	} notify;
};

/* Fill cfg with the built-in defaults (dry-run on, no secrets). 0 or -1 on
 * OOM. Release with config_release(). */
int config_init(struct config *cfg);

/* Load path over the defaults. On failure cfg is released and err says
 * "PATH: KEY.PATH: what" or "PATH:LINE:COL: json error". cfg is output
 * only (it is overwritten, not released first): to reload, load into a
 * fresh struct and swap on success. */
int config_load(const char *path, struct config *cfg, struct error *err);

/* Load from a JSON text (for tests); name is used in messages. */
int config_load_text(const char *text, size_t len, const char *name,
		     struct config *cfg, struct error *err);

/* Free everything cfg owns; secrets are wiped. */
void config_release(struct config *cfg);

/* Split cfg->listen into host and port (host without brackets). */
int config_listen_addr(const struct config *cfg, char *host, size_t hostsz,
		       int *port, struct error *err);

/* Look up {{secret.NAME}}; NULL when not configured. */
const struct secret *config_secret(const struct config *cfg, const char *name);

/* "workers": "auto": one event loop per online CPU (1..64). */
int config_auto_workers(void);

#endif
