/*
 * proc: run one child process (an exec action) on the event loop.
 *
 * Spawned with posix_spawnp into its own process group, with a clean signal
 * mask and default dispositions, stdin fed from a copy of the caller's bytes
 * through a non-blocking pipe, stdout+stderr merged into one non-blocking
 * pipe, and reaped through a pidfd (where pidfd_open is missing, a
 * waitpid(WNOHANG) poll every REAP_POLL_MS). This module must never block
 * the loop (no blocking read/write, no blocking wait; the one exception is
 * reaping a child we just SIGKILLed on a failed proc_spawn), never install a
 * SIGCHLD handler and never wait for anything but its own pid and, each by
 * its pid, the leftovers it killed (never waitpid(-1)).
 *
 * The daemon calls proc_become_subreaper() once at start, so that orphans
 * of an action come back to it and the cleanup below can reach them.
 *
 * The daemon must ignore SIGPIPE: a child that exits without reading stdin
 * makes our write fail with EPIPE, which we ignore. It must also not set
 * SIGCHLD to SIG_IGN (children would be auto-reaped and the exit status
 * lost; we then report exit_code -1 and term_signal 0).
 *
 * Completion (the callback, exactly once) needs the child reaped and the
 * output pipe at EOF. A grandchild that keeps the pipe open after the child
 * exited is waited for during the drain (drain_ms, never past the timeout);
 * a timed-out child only until the timeout path ends (SIGTERM, then SIGKILL
 * of the group after kill_grace_ms). Then comes the cleanup: every process
 * left in the group and every orphan reparented to us (found in /proc: its
 * ppid is us, and it is neither another proc's child nor in another proc's
 * group) gets SIGKILL and is recorded; each is then reaped by its own pid
 * (waitpid(pid, WNOHANG) on a short poll, bounded by REAP_MAX_MS), so no
 * other child's status is ever taken. Zombie orphans found on the way
 * (leftovers that died on their own) are reaped too, silently. Reading
 * /proc is procfs, never disk or network: it does not block the loop.
 */
#include "rollbackd/proc.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rollbackd/buf.h"
#include "rollbackd/timestamp.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

/* Reads per callback, so that a child writing as fast as it can does not
 * keep the loop in one callback forever (the event is level-triggered). */
#define READS_PER_CB 16
#define READ_CHUNK 65536
/* Reaping by polling, only where pidfd_open is missing. */
#define REAP_POLL_MS 20
/* Reaping what the cleanup killed: poll this often, give up after. */
#define LEFTOVER_POLL_MS 10
#define REAP_MAX_MS 1000
/* Before the cleanup kills anything: time for a process that closed the
 * pipe on its way out to finish exiting (it is not "left behind"). */
#define SETTLE_MS 50

enum proc_phase {
	PHASE_RUN,    /* timeout timer armed */
	PHASE_DRAIN,  /* child exited, output still open; drain timer armed */
	PHASE_TERM,   /* group got SIGTERM; grace timer armed */
	PHASE_KILLED, /* group got SIGKILL; clean up as soon as reaped */
	PHASE_SETTLE, /* cleanup: leftovers seen; settle timer armed */
	PHASE_REAP,   /* leftovers got SIGKILL; reaping them, then finish */
};

struct proc {
	struct event_base *base;
	pid_t pid;		/* also the process group id */
	int pidfd;		/* -1 once closed */
	int in_fd;		/* our end of the child's stdin; -1 once closed */
	int out_fd;		/* our end of stdout+stderr; -1 once closed */
	struct event *ev_in;	/* EV_WRITE on in_fd */
	struct event *ev_out;	/* EV_READ on out_fd */
	struct event *ev_pid;	/* EV_READ on pidfd: the child exited */
	struct event *ev_timer; /* timeout, then grace, then deferred finish */
	char *stdin_data;	/* our copy; NULL when there is none */
	size_t stdin_len;
	size_t stdin_off; /* bytes written so far */
	struct buf out;	  /* the first max_output bytes */
	size_t max_output;
	int64_t kill_grace_ms;
	bool truncated;
	bool reaped;	   /* waitpid returned the child */
	bool status_known; /* false when the child was reaped by someone else */
	int status;
	bool timed_out;
	enum proc_phase phase;
	int64_t start_ms;    /* timestamp_mono_ms() at spawn */
	int64_t deadline_ms; /* start_ms + timeout */
	int64_t drain_ms;
	int64_t reap_until_ms;
	struct proc_killed killed[PROC_KILLED_MAX];
	size_t n_killed;
	pid_t *leftovers; /* signalled or zombie pids not reaped (or gone) yet */
	size_t n_leftovers, cap_leftovers;
	proc_done_fn done;
	void *arg;
};

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

static void free_event(struct event **ev)
{
	if (*ev) {
		event_free(*ev); /* also deletes it */
		*ev = NULL;
	}
}

static void signal_group(struct proc *p, int sig)
{
	/* ESRCH: the group is already empty. */
	kill(-p->pid, sig);
}

/* ---- the children that are running, for every proc -------------------- */

static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t *live;
static size_t n_live, cap_live;

static int live_add(pid_t pid)
{
	int rc = 0;
	pthread_mutex_lock(&live_lock);
	if (n_live == cap_live) {
		size_t cap = cap_live ? cap_live * 2 : 16;
		pid_t *v = realloc(live, cap * sizeof(*v));
		if (!v)
			rc = -1;
		else {
			live = v;
			cap_live = cap;
		}
	}
	if (rc == 0)
		live[n_live++] = pid;
	pthread_mutex_unlock(&live_lock);
	return rc;
}

static void live_remove(pid_t pid)
{
	pthread_mutex_lock(&live_lock);
	for (size_t i = 0; i < n_live; i++)
		if (live[i] == pid) {
			live[i] = live[--n_live];
			break;
		}
	if (n_live == 0) {
		free(live);
		live = NULL;
		cap_live = 0;
	}
	pthread_mutex_unlock(&live_lock);
}

/* Under live_lock. */
static bool live_has(pid_t pid)
{
	for (size_t i = 0; i < n_live; i++)
		if (live[i] == pid)
			return true;
	return false;
}

int proc_become_subreaper(struct error *err)
{
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		return error_set(err, "cannot become a child subreaper: %s", strerror(errno));
	return 0;
}

/* ---- what a child leaves behind ---------------------------------------- */

struct pstat {
	pid_t pid, ppid, pgrp;
	char state;
	char name[16];
};

/* /proc/PID/stat: "pid (comm) state ppid pgrp ..."; comm may hold spaces
 * and parentheses, so it ends at the last ')'. */
static int read_pstat(pid_t pid, struct pstat *ps)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n;
	do {
		n = read(fd, buf, sizeof(buf) - 1);
	} while (n < 0 && errno == EINTR);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	char *l = strchr(buf, '('), *r = strrchr(buf, ')');
	int ppid, pgrp;
	if (!l || !r || r < l || sscanf(r + 1, " %c %d %d", &ps->state, &ppid, &pgrp) != 3)
		return -1;
	size_t nl = (size_t)(r - l - 1);
	if (nl >= sizeof(ps->name))
		nl = sizeof(ps->name) - 1;
	memcpy(ps->name, l + 1, nl);
	ps->name[nl] = '\0';
	ps->pid = pid;
	ps->ppid = ppid;
	ps->pgrp = pgrp;
	return 0;
}

static void add_leftover(struct proc *p, pid_t pid)
{
	for (size_t i = 0; i < p->n_leftovers; i++)
		if (p->leftovers[i] == pid)
			return;
	if (p->n_leftovers == p->cap_leftovers) {
		size_t cap = p->cap_leftovers ? p->cap_leftovers * 2 : 8;
		pid_t *v = realloc(p->leftovers, cap * sizeof(*v));
		if (!v)
			return; /* not reaped by us: a later cleanup's scan reaps it */
		p->leftovers = v;
		p->cap_leftovers = cap;
	}
	p->leftovers[p->n_leftovers++] = pid;
}

static void record_killed(struct proc *p, const struct pstat *ps)
{
	size_t shown = p->n_killed < PROC_KILLED_MAX ? p->n_killed : PROC_KILLED_MAX;
	for (size_t i = 0; i < shown; i++)
		if (p->killed[i].pid == ps->pid)
			return;
	if (p->n_killed < PROC_KILLED_MAX) {
		p->killed[p->n_killed].pid = ps->pid;
		memcpy(p->killed[p->n_killed].name, ps->name, sizeof(ps->name));
	}
	p->n_killed++;
}

/* Signal every process of the child's group but the child itself, and with
 * orphans also every orphan of ours that belongs to no running proc;
 * record them. Zombie orphans are only noted for reaping. With sig 0 only
 * count the live ones (nothing recorded or signalled). Returns that count. */
static size_t signal_leftovers(struct proc *p, int sig, bool orphans)
{
	size_t n = 0;
	pid_t self = getpid();
	DIR *d = opendir("/proc");
	if (d) {
		struct dirent *de;
		while ((de = readdir(d)) != NULL) {
			char *end;
			long v = strtol(de->d_name, &end, 10);
			struct pstat ps;
			if (*end || v <= 0 || (pid_t)v == p->pid || read_pstat((pid_t)v, &ps) < 0)
				continue;
			bool member = ps.pgrp == p->pid, orphan = false;
			if (!member && orphans && ps.ppid == self) {
				pthread_mutex_lock(&live_lock);
				orphan = !live_has(ps.pid) && !live_has(ps.pgrp);
				pthread_mutex_unlock(&live_lock);
			}
			if (!member && !orphan)
				continue;
			if (ps.state == 'Z') { /* dead already; ours to reap when ours */
				if (sig && ps.ppid == self)
					add_leftover(p, ps.pid);
				continue;
			}
			n++;
			if (!sig)
				continue;
			record_killed(p, &ps);
			add_leftover(p, ps.pid);
			kill(ps.pid, sig);
		}
		closedir(d);
	}
	if (sig)
		signal_group(p, sig); /* whatever joined the group since */
	return n;
}
/* Stop every event and close every descriptor of p. */
static void proc_unwatch(struct proc *p)
{
	free_event(&p->ev_in);
	free_event(&p->ev_out);
	free_event(&p->ev_pid);
	free_event(&p->ev_timer);
	close_fd(&p->in_fd);
	close_fd(&p->out_fd);
	close_fd(&p->pidfd);
}

/* Frees everything; the child must already be reaped (or never started). */
static void proc_free(struct proc *p)
{
	proc_unwatch(p);
	free(p->leftovers);
	free(p->stdin_data);
	buf_release(&p->out);
	free(p);
}

static void keep_output(struct proc *p, const char *data, size_t n)
{
	size_t room = p->max_output > p->out.len ? p->max_output - p->out.len : 0;
	size_t keep = n < room ? n : room;
	if (keep < n)
		p->truncated = true;
	if (keep && buf_add(&p->out, data, keep) < 0)
		p->truncated = true; /* OOM: drop it, keep draining */
}

/* Read up to max_reads chunks. Returns 1 at EOF (or a read error, which we
 * treat the same), 0 when the pipe is empty for now. */
static int drain_output(struct proc *p, int max_reads)
{
	char chunk[READ_CHUNK];
	for (int i = 0; max_reads <= 0 || i < max_reads; i++) {
		ssize_t n = read(p->out_fd, chunk, sizeof(chunk));
		if (n > 0) {
			keep_output(p, chunk, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		return 1;
	}
	return 0;
}

static void finish(struct proc *p)
{
	if (p->out_fd >= 0) {
		/* Completing without EOF (the group was killed, or a process
		 * outside it holds the pipe): take what is already there. The
		 * bound keeps a writer outside the group from holding us. */
		drain_output(p, READS_PER_CB);
	}
	struct proc_result res = {0};
	res.exit_code = -1;
	if (p->status_known && WIFEXITED(p->status)) {
		res.exit_code = WEXITSTATUS(p->status);
	} else if (p->status_known && WIFSIGNALED(p->status)) {
		res.term_signal = WTERMSIG(p->status);
	}
	res.timed_out = p->timed_out;
	res.output = p->out.data ? p->out.data : "";
	res.output_len = p->out.len;
	res.output_truncated = p->truncated;
	res.duration_ms = timestamp_mono_ms() - p->start_ms;
	res.n_killed = p->n_killed;
	res.killed = p->killed;
	proc_done_fn done = p->done;
	void *arg = p->arg;
	/* Stop watching before the callback, so that nothing of ours fires
	 * while it runs; the output buffer stays valid until it returns. */
	proc_unwatch(p);
	done(&res, arg);
	proc_free(p);
}

/* Reap what the cleanup signalled, each by its pid; finish when none is
 * left or REAP_MAX_MS has passed (a later cleanup reaps a straggler). */
static void reap_leftovers(struct proc *p)
{
	size_t i = 0;
	while (i < p->n_leftovers) {
		pid_t pid = p->leftovers[i], r;
		do {
			r = waitpid(pid, NULL, WNOHANG);
		} while (r < 0 && errno == EINTR);
		/* ECHILD: not ours (its parent in the group reaps it, or it is
		 * reparented to us once that parent dies); gone once ESRCH. */
		if (r == pid || (r < 0 && kill(pid, 0) < 0 && errno == ESRCH))
			p->leftovers[i] = p->leftovers[--p->n_leftovers];
		else
			i++;
	}
	if (p->n_leftovers == 0 || timestamp_mono_ms() >= p->reap_until_ms) {
		finish(p);
		return;
	}
	struct timeval tv = timestamp_tv(LEFTOVER_POLL_MS);
	evtimer_add(p->ev_timer, &tv);
}

static void kill_leftovers(struct proc *p)
{
	p->phase = PHASE_REAP;
	signal_leftovers(p, SIGKILL, true);
	p->reap_until_ms = timestamp_mono_ms() + REAP_MAX_MS;
	reap_leftovers(p);
}

static void cleanup(struct proc *p)
{
	event_del(p->ev_timer);
	if (signal_leftovers(p, 0, true) == 0) {
		kill_leftovers(p); /* only zombies to reap, if any */
		return;
	}
	p->phase = PHASE_SETTLE;
	struct timeval tv = timestamp_tv(SETTLE_MS);
	evtimer_add(p->ev_timer, &tv);
}

/* Move on once the child is reaped: drain its output for a while if it is
 * still open (never past the timeout), else clean up and finish. */
static void progress(struct proc *p)
{
	if (!p->reaped || p->phase == PHASE_REAP || p->phase == PHASE_DRAIN ||
	    p->phase == PHASE_SETTLE)
		return;
	if (p->out_fd >= 0 && p->phase == PHASE_RUN) {
		int64_t left = p->deadline_ms - timestamp_mono_ms();
		int64_t ms = p->drain_ms < left ? p->drain_ms : left;
		p->phase = PHASE_DRAIN;
		struct timeval tv = timestamp_tv(ms > 0 ? ms : 0);
		evtimer_add(p->ev_timer, &tv); /* replaces the timeout */
		return;
	}
	cleanup(p);
}

static void on_stdin(evutil_socket_t fd, short what, void *arg)
{
	struct proc *p = arg;
	while (p->stdin_off < p->stdin_len) {
		ssize_t n =
		    write(p->in_fd, p->stdin_data + p->stdin_off, p->stdin_len - p->stdin_off);
		if (n > 0) {
			p->stdin_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		break; /* EPIPE: the child does not want it; anything else: give up */
	}
	free_event(&p->ev_in);
	close_fd(&p->in_fd); /* the child sees EOF */
}

static void on_output(evutil_socket_t fd, short what, void *arg)
{
	struct proc *p = arg;
	if (!drain_output(p, READS_PER_CB))
		return;
	free_event(&p->ev_out);
	close_fd(&p->out_fd);
	if (p->phase == PHASE_DRAIN)
		cleanup(p);
	else
		progress(p);
}

static void on_exit_ready(evutil_socket_t fd, short what, void *arg)
{
	struct proc *p = arg;
	int status = 0;
	pid_t r;
	do {
		r = waitpid(p->pid, &status, WNOHANG);
	} while (r < 0 && errno == EINTR);
	if (r == 0)
		return; /* not yet (polling), or a spurious wakeup */
	p->reaped = true;
	p->status_known = r == p->pid;
	p->status = status;
	live_remove(p->pid);
	free_event(&p->ev_pid);
	close_fd(&p->pidfd);
	progress(p);
}

/* A timed-out child and its group get sig: the leader first (not reaped,
 * its pid is still its own). Were its children signalled first, it could
 * reap them and exit with their status (a shell waiting on its child:
 * 143, 137) before its own signal came, and the timeout would read as an
 * exit. */
static void signal_timed_out(struct proc *p, int sig)
{
	if (!p->reaped)
		kill(p->pid, sig);
	signal_leftovers(p, sig, false);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct proc *p = arg;
	switch (p->phase) {
	case PHASE_RUN: {
		p->timed_out = true;
		p->phase = PHASE_TERM;
		signal_timed_out(p, SIGTERM);
		struct timeval tv = timestamp_tv(p->kill_grace_ms);
		evtimer_add(p->ev_timer, &tv);
		return;
	}
	case PHASE_DRAIN:
		cleanup(p);
		return;
	case PHASE_TERM:
		p->phase = PHASE_KILLED;
		signal_timed_out(p, SIGKILL);
		progress(p);
		return;
	case PHASE_KILLED:
		progress(p); /* deferred from proc_kill */
		return;
	case PHASE_SETTLE:
		kill_leftovers(p);
		return;
	case PHASE_REAP:
		reap_leftovers(p);
		return;
	}
}

/* Make fd non-blocking (our ends only; the child's ends stay blocking). */
static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -1;
	return fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int proc_spawn(struct event_base *base, const struct proc_spec *spec, proc_done_fn done, void *arg,
	       struct proc **out, struct error *err)
{
	const char *name = spec && spec->argv && spec->argv[0] ? spec->argv[0] : "";
	int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	bool fa_ok = false, attr_ok = false;
	struct proc *p = NULL;
	int rc = -1, e;

	if (out)
		*out = NULL;
	if (!base || !spec || !spec->argv || !spec->argv[0] || !done) {
		error_set(err, "cannot run '%s': invalid arguments", name);
		goto out;
	}
	if (spec->timeout_ms <= 0) {
		error_set(err, "cannot run '%s': timeout must be positive", name);
		goto out;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		error_set(err, "cannot run '%s': out of memory", name);
		goto out;
	}
	p->base = base;
	p->pid = -1;
	p->pidfd = p->in_fd = p->out_fd = -1;
	p->max_output = spec->max_output;
	p->kill_grace_ms = spec->kill_grace_ms;
	p->done = done;
	p->arg = arg;
	p->phase = PHASE_RUN;
	p->drain_ms = spec->drain_ms > 0 ? spec->drain_ms : PROC_DRAIN_MS;
	buf_init(&p->out, 0);
	if (spec->stdin_data && spec->stdin_len) {
		p->stdin_data = malloc(spec->stdin_len);
		if (!p->stdin_data) {
			error_set(err, "cannot run '%s': out of memory", name);
			goto out;
		}
		memcpy(p->stdin_data, spec->stdin_data, spec->stdin_len);
		p->stdin_len = spec->stdin_len;
	}

	if (pipe2(in_pipe, O_CLOEXEC) < 0 || pipe2(out_pipe, O_CLOEXEC) < 0 ||
	    set_nonblock(in_pipe[1]) < 0 || set_nonblock(out_pipe[0]) < 0) {
		error_set(err, "cannot run '%s': pipe: %s", name, strerror(errno));
		goto out;
	}
	p->ev_out = event_new(base, out_pipe[0], EV_READ | EV_PERSIST, on_output, p);
	p->ev_timer = evtimer_new(base, on_timer, p);
	if (p->stdin_len)
		p->ev_in = event_new(base, in_pipe[1], EV_WRITE | EV_PERSIST, on_stdin, p);
	if (!p->ev_out || !p->ev_timer || (p->stdin_len && !p->ev_in)) {
		error_set(err, "cannot run '%s': out of memory", name);
		goto out;
	}

	if ((e = posix_spawn_file_actions_init(&fa)) != 0) {
		error_set(err, "cannot run '%s': %s", name, strerror(e));
		goto out;
	}
	fa_ok = true;
	/* dup2 clears FD_CLOEXEC on the target; the originals close on exec. */
	if ((e = posix_spawn_file_actions_adddup2(&fa, in_pipe[0], 0)) != 0 ||
	    (e = posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1)) != 0 ||
	    (e = posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 2)) != 0) {
		error_set(err, "cannot run '%s': %s", name, strerror(e));
		goto out;
	}
#if defined(__GLIBC__) && __GLIBC_PREREQ(2, 34)
	/* Belt and braces: no descriptor of the daemon leaks into the child,
	 * even one somebody opened without O_CLOEXEC. */
	if ((e = posix_spawn_file_actions_addclosefrom_np(&fa, 3)) != 0) {
		error_set(err, "cannot run '%s': %s", name, strerror(e));
		goto out;
	}
#endif
	if ((e = posix_spawnattr_init(&attr)) != 0) {
		error_set(err, "cannot run '%s': %s", name, strerror(e));
		goto out;
	}
	attr_ok = true;
	sigset_t none, all;
	sigemptyset(&none);
	sigfillset(&all);
	if ((e = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
						     POSIX_SPAWN_SETSIGDEF)) != 0 ||
	    (e = posix_spawnattr_setpgroup(&attr, 0)) != 0 ||
	    (e = posix_spawnattr_setsigmask(&attr, &none)) != 0 ||
	    (e = posix_spawnattr_setsigdefault(&attr, &all)) != 0) {
		error_set(err, "cannot run '%s': %s", name, strerror(e));
		goto out;
	}

	p->start_ms = timestamp_mono_ms();
	pid_t pid;
	e = posix_spawnp(&pid, spec->argv[0], &fa, &attr, spec->argv, spec->envp);
	if (e != 0) {
		error_set(err, "cannot run '%s': %s", name, strerror(e));
		goto out;
	}
	p->pid = pid;
	p->deadline_ms = p->start_ms + spec->timeout_ms;
	if (live_add(pid) < 0) {
		error_set(err, "cannot run '%s': out of memory", name);
		goto out;
	}
	close_fd(&in_pipe[0]);
	close_fd(&out_pipe[1]);
	p->in_fd = in_pipe[1];
	p->out_fd = out_pipe[0];
	in_pipe[1] = out_pipe[0] = -1;
	if (!p->stdin_len)
		close_fd(&p->in_fd); /* nothing to say: EOF right away */

	p->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (p->pidfd < 0 && errno != ENOSYS) {
		error_set(err, "cannot run '%s': pidfd_open: %s", name, strerror(errno));
		goto out;
	}
	/* Without pidfd_open (kernel < 5.3, valgrind < 3.20) poll with
	 * waitpid(WNOHANG) on a short timer instead: still never blocks. */
	p->ev_pid = event_new(base, p->pidfd, p->pidfd >= 0 ? EV_READ | EV_PERSIST : EV_PERSIST,
			      on_exit_ready, p);
	if (!p->ev_pid) {
		error_set(err, "cannot run '%s': out of memory", name);
		goto out;
	}
	struct timeval poll_tv = timestamp_tv(REAP_POLL_MS);
	struct timeval tv = timestamp_tv(spec->timeout_ms);
	if (event_add(p->ev_pid, p->pidfd >= 0 ? NULL : &poll_tv) < 0 ||
	    event_add(p->ev_out, NULL) < 0 || (p->ev_in && event_add(p->ev_in, NULL) < 0) ||
	    evtimer_add(p->ev_timer, &tv) < 0) {
		error_set(err, "cannot run '%s': cannot watch the child", name);
		goto out;
	}
	if (out)
		*out = p;
	p = NULL;
	rc = 0;
out:
	if (p && p->pid > 0) {
		/* Started but cannot be watched: kill it and reap it here. It
		 * got SIGKILL, so this wait is short. */
		signal_group(p, SIGKILL);
		while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR)
			;
		live_remove(p->pid);
	}
	if (p)
		proc_free(p);
	if (attr_ok)
		posix_spawnattr_destroy(&attr);
	if (fa_ok)
		posix_spawn_file_actions_destroy(&fa);
	close_fd(&in_pipe[0]);
	close_fd(&in_pipe[1]);
	close_fd(&out_pipe[0]);
	close_fd(&out_pipe[1]);
	return rc;
}

int proc_pid(const struct proc *p)
{
	return p->pid;
}

void proc_kill(struct proc *p)
{
	if (p->phase == PHASE_REAP || p->phase == PHASE_SETTLE)
		return; /* already cleaning up; finishes on its own, soon */
	signal_leftovers(p, SIGKILL, false);
	signal_group(p, SIGKILL);
	p->phase = PHASE_KILLED;
	/* Complete from the loop, never from inside our caller. */
	event_del(p->ev_timer);
	event_active(p->ev_timer, EV_TIMEOUT, 1);
}
