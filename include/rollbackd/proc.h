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
 *
 * Nothing the child started outlives it: once the child has exited and its
 * output reached EOF (or drain_ms passed, or the timeout path ended), every
 * process left in its group and every orphan reparented to us (the daemon
 * is a child subreaper, so a grandchild that escaped with setsid comes back
 * to us when its parent dies) gets SIGKILL, is reaped, and is named in the
 * result. Reaping waits for one pid at a time (waitpid(pid, WNOHANG)), never
 * for "any child", so it cannot take another proc's exit status. Orphans
 * are attributed to the proc whose child exited when they were found; one
 * that sits in the group of another running proc is left to that one.
 * Callbacks run on one event loop (the runner's); the list of running
 * children is shared under a lock, so procs on other loops stay correct.
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
	int64_t drain_ms;       /* after the child exits, wait this long for its
				 * output's EOF before killing what is left;
				 * 0: PROC_DRAIN_MS. Never past the timeout. */
};

#define PROC_DRAIN_MS 2000
#define PROC_KILLED_MAX 16

/* A process the child left behind, killed by us. */
struct proc_killed {
	int pid;
	char name[16]; /* its comm (/proc/PID/stat), e.g. "sleep" */
};

struct proc_result {
	int exit_code;       /* 0..255 when exited, -1 when killed by a signal */
	int term_signal;     /* the signal, when killed */
	bool timed_out;      /* we sent SIGTERM because of the timeout */
	const char *output;  /* merged stdout+stderr, NUL-terminated; valid in cb only */
	size_t output_len;
	bool output_truncated;
	int64_t duration_ms;
	/* Processes other than the child that we signalled (its group after a
	 * timeout, what was left after it exited, orphans reparented to us):
	 * n_killed of them, the first PROC_KILLED_MAX in killed[] (valid in cb
	 * only), in the order found. For the journal: "killed":[...]. */
	size_t n_killed;
	const struct proc_killed *killed;
};

typedef void (*proc_done_fn)(const struct proc_result *res, void *arg);

/* Make this process a child subreaper (PR_SET_CHILD_SUBREAPER), so that
 * orphans of its children are reparented to it and can be killed and
 * reaped. Process-wide: call once at start, before the first proc_spawn and
 * before any thread starts. 0, or -1 with err. */
int proc_become_subreaper(struct error *err);

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
