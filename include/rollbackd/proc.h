/*
 * proc: run one command as a child process without ever blocking the event
 * loop (SPEC §6 exec actions).
 *
 * The child gets its own process group, the given argv (never a shell) and
 * environment, and stdin fed from memory. stdout and stderr are merged and
 * the first max_output bytes kept (the rest drained and dropped). On
 * timeout the whole group gets SIGTERM, then SIGKILL after kill_grace_ms.
 * The child is reaped through a pidfd watched by libevent: no blocking
 * wait, no SIGCHLD handler. The callback runs exactly once, on the loop.
 */
#ifndef ROLLBACKD_PROC_H
#define ROLLBACKD_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollbackd/error.h"

struct event_base;
struct proc;

struct proc_spec {
	char *const *argv;      /* argv[0] is the program (PATH is searched) */
	char *const *envp;      /* full environment of the child */
	const char *stdin_data; /* may be NULL */
	size_t stdin_len;
	int64_t timeout_ms;     /* > 0 */
	int64_t kill_grace_ms;  /* SIGTERM -> SIGKILL; 5000 in production */
	size_t max_output;      /* 65536 in production */
};

struct proc_result {
	int exit_code;       /* 0..255 when exited, -1 when killed by a signal */
	int term_signal;     /* the signal, when killed */
	bool timed_out;      /* we sent SIGTERM because of the timeout */
	const char *output;  /* merged stdout+stderr, NUL-terminated; valid in cb only */
	size_t output_len;
	bool output_truncated;
	int64_t duration_ms;
};

typedef void (*proc_done_fn)(const struct proc_result *res, void *arg);

/* Start the child. On success *out (may be NULL) identifies it until done
 * runs; after done returns the proc is freed. On failure nothing runs, done
 * is never called, and err says why (e.g. "cannot run 'x': No such file"). */
int proc_spawn(struct event_base *base, const struct proc_spec *spec, proc_done_fn done,
	       void *arg, struct proc **out, struct error *err);

/* pid of a running child (for logs). */
int proc_pid(const struct proc *p);

/* Kill the group now (SIGKILL) and reap it; done still runs, once. Used at
 * shutdown after the grace period. */
void proc_kill(struct proc *p);

#endif
