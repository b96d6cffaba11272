/*
 * daemon: the wiring of `rollbackd serve`.
 *
 * Loads the rules, creates the engine, the API, notify and the journal,
 * replays the journal, hands the HTTP side to server.c, and owns the
 * process-level events on the main loop: SIGTERM/SIGINT (stop after the
 * requests in flight are answered and running actions finish, up to a
 * grace period), SIGHUP (reload: every module switches to the same new
 * configuration generation, or the reload is refused naming the key that
 * cannot change live), SIGPIPE (ignored). It must never block the loop.
 *
 * Threads: every function here runs on the main thread (worker 0's loop).
 * Reloaded generations are kept until exit, since requests in flight on
 * other workers may still read the one before.
 */
#ifndef ROLLBACKD_DAEMON_H
#define ROLLBACKD_DAEMON_H

#include "rollbackd/config.h"
#include "rollbackd/error.h"

/* Run until SIGTERM/SIGINT. cfg stays owned by the caller and must outlive
 * the call; config_path (NULL: built-in defaults) is read again on SIGHUP.
 * 0 after a clean stop, -1 when start-up failed (err says why). */
int daemon_run(const struct config *cfg, const char *config_path, struct error *err);

/* What a reload cannot change in a running process: 0 when next may
 * replace now, else -1 with err naming the first such key
 * ("KEY cannot change without a restart"). on_loopback: whether the
 * listener is on a loopback address (an open auth is refused otherwise). */
int daemon_reload_check(const struct config *now, const struct config *next, bool on_loopback,
			struct error *err);

#endif
