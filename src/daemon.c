/*
 * daemon: the wiring of `rollbackd serve` (include/rollbackd/daemon.h).
 *
 * Start: rules, engine, API, notify, journal replay, then the server's
 * loops. SIGHUP: a new generation of config and rules, validated, then
 * handed to every module that reads a setting or a secret (engine, API,
 * notify) in one step on the main loop; what cannot change in a running
 * process is refused, naming the key. SIGTERM/SIGINT: stop via the server.
 *
 * This module must never block the loop: no sleeping, no waiting on
 * children, no synchronous I/O beyond reading the configuration on SIGHUP.
 */
#include "rollbackd/daemon.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "rollbackd/api.h"
#include "rollbackd/buf.h"
#include "rollbackd/checkpoint.h"
#include "rollbackd/engine.h"
#include "rollbackd/journal.h"
#include "rollbackd/log.h"
#include "rollbackd/notify.h"
#include "rollbackd/proc.h"
#include "rollbackd/record.h"
#include "rollbackd/rules.h"
#include "rollbackd/server.h"
#include "rollbackd/snapshot.h"
#include "rollbackd/snapshotter.h"
#include "rollbackd/timestamp.h"

/* A configuration loaded by SIGHUP; kept until exit, since requests in
 * flight may still read the one before. */
struct generation {
	struct config cfg;
	struct ruleset rules;
	struct generation *prev;
};

struct daemon {
	const struct config *cfg;     /* the one the process started with */
	const struct config *current; /* the one deciding now */
	const char *config_path;      /* NULL: built-in defaults */
	struct generation *gens;
	struct ruleset rules;
	struct server *server;
	struct engine *engine;
	struct journal *journal;
	struct notify *notify;
	struct checkpointer *checkpoint; /* NULL without checkpoints */
	struct snapshotter *snapshots;	 /* NULL before the journal opened */
	uint64_t snap_seq, snap_lines;	 /* the snapshot the start replayed */
	struct api *api;
	struct event *sig_term, *sig_int, *sig_hup, *sig_pipe;
	struct record_toks replay_toks; /* replay's token array, freed after it */
};

/* config_loaded: the rules this process decides with from now on. */
static int journal_config_loaded(struct daemon *d, const struct config *cfg,
				 const struct ruleset *rules, bool reload)
{
	struct buf m = BUF_INIT;
	struct record_config_loaded v = {
	    .rules_path = cfg->rules,
	    .rules = rules->n_rules,
	    .rules_digest = rules->digest,
	    .dry_run = cfg->dry_run,
	    .reload = reload,
	};
	int bad = record_build_config_loaded(&m, &v);
	if (!bad)
		bad = journal_append(d->journal, "config_loaded", "", m.data, m.len, NULL);
	buf_release(&m);
	return bad ? -1 : 0;
}

static bool str_differs(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") != 0;
}

static bool secret_differs(const struct secret *a, const struct secret *b)
{
	if (secret_is_set(a) != secret_is_set(b))
		return true;
	return secret_is_set(a) && (a->len != b->len || memcmp(a->data, b->data, a->len) != 0);
}

int daemon_reload_check(const struct config *now, const struct config *next, bool on_loopback,
			struct error *err)
{
	/* Read once at start by the server, the journal or the logger. */
	static const char fmt[] = "%s cannot change without a restart";
	const char *key = NULL;
	if (str_differs(now->listen, next->listen))
		key = "listen";
	else if (str_differs(now->state_dir, next->state_dir))
		key = "state_dir";
	else if (now->workers != next->workers)
		key = "workers";
	else if (str_differs(now->log_level, next->log_level))
		key = "log_level";
	else if (now->limits.max_body_bytes != next->limits.max_body_bytes)
		key = "limits.max_body_bytes";
	else if (now->limits.max_header_bytes != next->limits.max_header_bytes)
		key = "limits.max_header_bytes";
	else if (now->limits.max_connections != next->limits.max_connections)
		key = "limits.max_connections";
	else if (now->limits.max_connections_per_peer != next->limits.max_connections_per_peer)
		key = "limits.max_connections_per_peer";
	else if (now->limits.request_timeout_ms != next->limits.request_timeout_ms)
		key = "limits.request_timeout";
	else if (now->limits.header_timeout_ms != next->limits.header_timeout_ms)
		key = "limits.header_timeout";
	else if (now->journal.segment_bytes != next->journal.segment_bytes)
		key = "journal.segment_bytes";
	else if (now->journal.snapshot_records != next->journal.snapshot_records)
		key = "journal.snapshot_records";
	/* notify's outbox and channel state are built for the channels it
	 * started with. */
	else if (secret_differs(&now->notify.slack_webhook_url, &next->notify.slack_webhook_url))
		key = "notify.slack.webhook_url";
	else if (secret_differs(&now->notify.slack_bot_token, &next->notify.slack_bot_token))
		key = "notify.slack.bot_token";
	else if (str_differs(now->notify.slack_channel, next->notify.slack_channel))
		key = "notify.slack.channel";
	else if (str_differs(now->notify.slack_api_url, next->notify.slack_api_url))
		key = "notify.slack.api_url";
	else if (secret_differs(&now->notify.pagerduty_routing_key,
				&next->notify.pagerduty_routing_key))
		key = "notify.pagerduty.routing_key";
	else if (str_differs(now->notify.pagerduty_url, next->notify.pagerduty_url))
		key = "notify.pagerduty.url";
	if (key)
		return error_set(err, fmt, key);
	if (auth_config_is_open(&next->auth) && !on_loopback)
		return error_set(err, "the new configuration has no authentication and rollbackd "
				      "listens on a non-loopback address");
	return 0;
}

/*
 * SIGHUP: load and validate the configuration and every rule file; a valid
 * set decides from now on (incidents, episodes and running actions carry
 * over) in the engine, the API (auth, api token, links, Slack signing) and
 * notify (public_url and the links secret its messages are signed with);
 * an invalid one, or one changing a key that cannot change live, is
 * refused, logged and journaled, and the running set goes on.
 */
static void daemon_reload(struct daemon *d)
{
	struct generation *g = calloc(1, sizeof(*g));
	struct error err = {{0}};
	struct buf m = BUF_INIT;
	bool have_cfg = false, have_rules = false;
	log_info("SIGHUP: reloading", "config", d->config_path ? d->config_path : "(built-in)",
		 NULL);
	if (!g) {
		error_set(&err, "out of memory");
		goto refuse;
	}
	if ((d->config_path ? config_load(d->config_path, &g->cfg, &err) : config_init(&g->cfg)) <
	    0)
		goto refuse;
	have_cfg = true;
	if (rules_load(g->cfg.rules, &g->rules, &err) < 0)
		goto refuse;
	have_rules = true;
	if (daemon_reload_check(d->current, &g->cfg, server_on_loopback(d->server), &err) < 0 ||
	    engine_reload(d->engine, &g->cfg, &g->rules) < 0) {
		if (!err.msg[0])
			error_set(&err, "out of memory");
		goto refuse;
	}
	api_set_config(d->api, &g->cfg);
	notify_set_config(d->notify, &g->cfg);
	d->current = &g->cfg;
	g->prev = d->gens;
	d->gens = g;
	char n[16];
	snprintf(n, sizeof(n), "%zu", g->rules.n_rules);
	log_info("reloaded", "rules", n, "digest", g->rules.digest, NULL);
	if (journal_config_loaded(d, &g->cfg, &g->rules, true) < 0)
		log_error("journal: cannot record the reload", NULL);
	return;
refuse:
	log_error("reload refused; the running configuration stays", "error", err.msg, NULL);
	if (record_build_config_rejected(&m, &(struct record_config_rejected){.error = err.msg}) ||
	    journal_append(d->journal, "config_rejected", "", m.data, m.len, NULL) < 0)
		log_error("journal: cannot record the refused reload", NULL);
	buf_release(&m);
	if (g) {
		if (have_rules)
			ruleset_release(&g->rules);
		if (have_cfg)
			config_release(&g->cfg);
		free(g);
	}
}

static void daemon_stop(struct daemon *d, const char *why)
{
	api_set_ready(d->api, false);
	server_stop(d->server, why);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	switch (sig) {
	case SIGTERM:
		daemon_stop(d, "SIGTERM");
		break;
	case SIGINT:
		daemon_stop(d, "SIGINT");
		break;
	case SIGHUP:
		daemon_reload(d);
		break;
	default:
		break; /* SIGPIPE: a peer went away; the write fails with EPIPE instead */
	}
}

/* Each line is decoded once; the store, the change store, the engine and
 * notify all read the same decoded record. */
static int replay_line(const struct journal_line *line, void *arg)
{
	struct daemon *d = arg;
	struct record rec;
	if (record_decode(line->text, line->len, &rec, &d->replay_toks) == RECORD_ENOMEM)
		return -1;
	rec.where = line->segment;
	rec.offset = line->offset;
	if (engine_replay_record(&rec, d->engine) < 0 || notify_replay(&rec, d->notify) < 0)
		return -1;
	return 0;
}

/* Replay the journal into the engine and the outbox, then journal from
 * here on: the start, and the rules this process decides with. */
static int open_journal(struct daemon *d, struct error *err)
{
	const struct config *cfg = d->cfg;
	struct journal_options jo = {
	    .state_dir = cfg->state_dir,
	    .segment_bytes = cfg->journal.segment_bytes,
	    .replay = replay_line,
	    .replay_arg = d,
	    .recover = cfg->recover,
	};
	int64_t t0 = timestamp_mono_ms();
	/* The snapshot first (snapshot.h), then only the records after it;
	 * without a usable one (or with --recover), the whole journal. */
	struct snapshot *snap = NULL;
	struct error serr = {{0}};
	int loaded = cfg->recover ? 0 : snapshot_load(cfg->state_dir, &snap, &serr);
	char lines[24] = "0";
	if (loaded < 0)
		log_warn("snapshot not used; replaying the whole journal", "error", serr.msg, NULL);
	if (loaded > 0) {
		const struct snapshot_point *pt = snapshot_point(snap);
		jo.from_segment = pt->segment;
		jo.from_offset = pt->offset;
		jo.from_seq = pt->seq;
		jo.from_hash = pt->hash;
		snprintf(lines, sizeof(lines), "%llu", (unsigned long long)pt->lines);
		d->snap_seq = pt->seq;
		d->snap_lines = pt->lines;
		engine_replay_snapshot(d->engine, true);
		int replayed = snapshot_replay(snap, replay_line, d, err);
		engine_replay_snapshot(d->engine, false);
		if (replayed < 0) {
			snapshot_free(snap);
			record_toks_release(&d->replay_toks);
			return error_prefix(err, "snapshot: ");
		}
	}
	int opened = journal_open(&jo, &d->journal, err);
	snapshot_free(snap);
	record_toks_release(&d->replay_toks);
	if (opened < 0)
		return error_prefix(err, "journal: ");
	char ms[24], seq[24];
	snprintf(ms, sizeof(ms), "%lld", (long long)(timestamp_mono_ms() - t0));
	snprintf(seq, sizeof(seq), "%llu", (unsigned long long)journal_seq(d->journal));
	log_info("journal replayed", "state_dir", cfg->state_dir, "records", seq, "ms", ms,
		 "snapshot_lines", lines, NULL);
	struct buf m = BUF_INIT;
	int bad = record_build_started(
	    &m, &(struct record_started){.version = ROLLBACKD_VERSION, .pid = (int)getpid()});
	if (!bad)
		bad = journal_append(d->journal, "started", "", m.data, m.len, NULL);
	buf_release(&m);
	if (bad || journal_config_loaded(d, cfg, &d->rules, false) < 0)
		return error_set(err, "journal: cannot record the start");
	notify_start(d->notify, d->journal);
	engine_set_notify(d->engine, d->notify);
	engine_attach_journal(d->engine, d->journal);
	char recovered[1200];
	if (journal_recovered(d->journal, recovered, sizeof(recovered))) {
		log_error("journal recovered: starting PAUSED; read the moved file, then POST "
			  "/v1/resume",
			  "what", recovered, NULL);
		engine_set_paused(d->engine, true, "recover");
	}
	api_set_journal(d->api, d->journal);
	api_set_notify(d->api, d->notify);
	return 0;
}

static int running_actions(void *arg)
{
	struct daemon *d = arg;
	return d->engine ? engine_running_actions(d->engine) : 0;
}

static int install_signals(struct daemon *d, struct event_base *base)
{
	d->sig_term = evsignal_new(base, SIGTERM, on_signal, d);
	d->sig_int = evsignal_new(base, SIGINT, on_signal, d);
	d->sig_hup = evsignal_new(base, SIGHUP, on_signal, d);
	d->sig_pipe = evsignal_new(base, SIGPIPE, on_signal, d);
	if (!d->sig_term || !d->sig_int || !d->sig_hup || !d->sig_pipe ||
	    evsignal_add(d->sig_term, NULL) || evsignal_add(d->sig_int, NULL) ||
	    evsignal_add(d->sig_hup, NULL) || evsignal_add(d->sig_pipe, NULL))
		return -1;
	return 0;
}

int daemon_run(const struct config *cfg, const char *config_path, struct error *err)
{
	struct daemon d = {.cfg = cfg, .current = cfg, .config_path = config_path};
	int rc = -1;
	char addr[128];

	if (evthread_use_pthreads() < 0)
		return error_set(err, "cannot enable libevent threading");
	if (server_check_fd_limit(cfg, err) < 0)
		return -1;
	/* What an action starts stays ours to reap and kill, even after a
	 * double fork (issue 12). */
	if (proc_become_subreaper(err) < 0)
		return -1;
	struct server_options so = {.cfg = cfg, .busy = running_actions, .busy_arg = &d};
	d.server = server_new(&so, err);
	if (!d.server)
		return -1;
	if (auth_config_is_open(&cfg->auth) && !server_on_loopback(d.server)) {
		error_set(err,
			  "listen: '%s' is not a loopback address and no authentication "
			  "is configured (set auth.hmac, auth.bearer or auth.basic)",
			  cfg->listen);
		server_free(d.server);
		return -1;
	}
	if (rules_load(cfg->rules, &d.rules, err) < 0) {
		server_free(d.server);
		return -1;
	}

	struct event_base *main_base = server_main_base(d.server);
	struct engine_options eo = {.cfg = cfg, .base = main_base, .plan_only = false};
	d.engine = engine_new(&eo, &d.rules);
	d.api = d.engine ? api_new(cfg, d.engine) : NULL;
	struct notify_options no = {.cfg = cfg, .base = main_base};
	d.notify = notify_new(&no);
	if (!d.engine || !d.api || !d.notify) {
		error_set(err, "out of memory");
		goto out;
	}
	if (open_journal(&d, err) < 0 || checkpoint_start(cfg, d.journal, &d.checkpoint, err) < 0)
		goto out;
	struct snapshotter_options sno = {
	    .state_dir = cfg->state_dir,
	    .engine = d.engine,
	    .notify = d.notify,
	    .journal = d.journal,
	    .base = main_base,
	    .every_records = cfg->journal.snapshot_records,
	    .last_seq = d.snap_seq,
	    .last_lines = d.snap_lines,
	};
	if (snapshotter_start(&sno, &d.snapshots, err) < 0)
		goto out;
	server_addr(d.server, addr, sizeof(addr));
	api_set_listen_addr(d.api, addr);
	server_set_api(d.server, d.api);
	char nrules[16];
	snprintf(nrules, sizeof(nrules), "%zu", d.rules.n_rules);
	log_info("rules loaded", "path", cfg->rules, "rules", nrules, "digest", d.rules.digest,
		 NULL);
	if (install_signals(&d, main_base) < 0) {
		error_set(err, "cannot install signal handlers");
		goto out;
	}

	server_addr(d.server, addr, sizeof(addr));
	if (auth_config_is_open(&cfg->auth))
		log_warn(
		    "no authentication configured: accepting unauthenticated webhooks from "
		    "loopback only; configure auth.hmac or auth.bearer before exposing rollbackd",
		    "addr", addr, NULL);
	if (cfg->dry_run)
		log_warn("dry-run is on: rules decide but no rollback action runs", NULL);
	char workers[16];
	snprintf(workers, sizeof(workers), "%d", cfg->workers > 0 ? cfg->workers : 1);
	log_info("listening", "addr", addr, "workers", workers, "version", ROLLBACKD_VERSION, NULL);

	rc = server_run(d.server, err);
	log_info("stopped", NULL);
out:
	if (d.sig_term)
		event_free(d.sig_term);
	if (d.sig_int)
		event_free(d.sig_int);
	if (d.sig_hup)
		event_free(d.sig_hup);
	if (d.sig_pipe)
		event_free(d.sig_pipe);
	if (d.engine && d.journal)
		engine_interrupt(d.engine);
	checkpoint_stop(d.checkpoint); /* the last checkpoint: after the last record */
	snapshotter_stop(d.snapshots); /* a periodic one being written finishes */
	char **pending = NULL;
	size_t n_pending = 0;
	bool can_snapshot =
	    d.snapshots && d.notify && notify_pending_ids(d.notify, &pending, &n_pending) == 0;
	notify_free(d.notify); /* what is undelivered is in the journal for next time */
	/* nothing appends any more: this instant's state, of every record */
	can_snapshot =
	    can_snapshot && snapshotter_freeze_final(d.snapshots, pending, n_pending) == 0;
	/* the loops are over: flush what is left; a snapshot only of a whole journal */
	if (journal_close(d.journal, 5000) && can_snapshot)
		snapshotter_write_final(d.snapshots);
	snapshotter_free(d.snapshots);
	notify_pending_free(pending, n_pending);
	server_set_api(d.server, NULL);
	api_free(d.api);
	engine_free(d.engine); /* before the base its events live on */
	server_free(d.server);
	ruleset_release(&d.rules);
	while (d.gens) {
		struct generation *g = d.gens;
		d.gens = g->prev;
		ruleset_release(&g->rules);
		config_release(&g->cfg);
		free(g);
	}
	return rc;
}
