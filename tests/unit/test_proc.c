/*
 * Unit tests for proc: real children (small sh scripts under
 * tests/data/proc/) on a real event loop. Every test runs its own
 * event_base with a safety timer, so a bug ends in a failed assertion, not a
 * hung suite. The test process is a child subreaper, so grandchildren that
 * are orphaned come back to us and we can tell whether they died.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rollbackd/proc.h"

#define SAFETY_MS 10000

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN); /* as the daemon does */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
}

TestSuite(proc, .init = setup, .timeout = 20);

/* valgrind (3.19) runs glibc's posix_spawn clone(CLONE_VM|CLONE_VFORK) as
 * a plain fork, so an exec failure cannot be reported back: the spawn
 * "succeeds" and the child exits 127. Those checks are skipped there (ASan
 * covers those paths). */
static bool under_valgrind(void)
{
	const char *pre = getenv("LD_PRELOAD");
	return pre && strstr(pre, "vgpreload");
}

static char *const default_env[] = {"PATH=/usr/bin:/bin", "ROLLBACKD_RULE=checkout-error-rate",
				    "ROLLBACKD_DRY_RUN=0", NULL};

struct run {
	struct event_base *base;
	struct proc *proc;
	int calls; /* how many times done ran */
	bool hung; /* the safety timer fired */
	struct proc_result res;
	char *output;				    /* our copy of res.output */
	struct proc_killed killed[PROC_KILLED_MAX]; /* our copy of res.killed */
	int ticks;				    /* for the responsiveness test */
};

static char script_buf[8][512];
static int script_n;

/* Full path of a helper script. */
static char *script(const char *name)
{
	const char *dir = getenv("ROLLBACKD_TEST_DATA");
	cr_assert_not_null(dir, "set ROLLBACKD_TEST_DATA");
	char *path = script_buf[script_n++ % 8];
	snprintf(path, sizeof(script_buf[0]), "%s/proc/%s", dir, name);
	cr_assert_eq(access(path, X_OK), 0, "%s is not executable", path);
	return path;
}

static void on_done(const struct proc_result *res, void *arg)
{
	struct run *r = arg;
	r->calls++;
	r->res = *res;
	cr_assert_not_null(res->output);
	cr_assert_eq(res->output[res->output_len], '\0', "output must be NUL-terminated");
	free(r->output);
	r->output = malloc(res->output_len + 1);
	cr_assert_not_null(r->output);
	memcpy(r->output, res->output, res->output_len + 1);
	r->res.output = r->output;
	size_t shown = res->n_killed < PROC_KILLED_MAX ? res->n_killed : PROC_KILLED_MAX;
	cr_assert(shown == 0 || res->killed != NULL);
	memcpy(r->killed, res->killed, shown * sizeof(*r->killed));
	r->res.killed = r->killed;
	r->proc = NULL;
	/* Keep looping a little, so that a second call would be seen. */
	struct timeval tv = {0, 50 * 1000};
	event_base_loopexit(r->base, &tv);
}

static void on_safety(evutil_socket_t fd, short what, void *arg)
{
	struct run *r = arg;
	r->hung = true;
	event_base_loopbreak(r->base);
}

static void run_init(struct run *r)
{
	memset(r, 0, sizeof(*r));
	r->base = event_base_new();
	cr_assert_not_null(r->base);
}

static void run_release(struct run *r)
{
	free(r->output);
	r->output = NULL;
	event_base_free(r->base);
	r->base = NULL;
}

static struct proc_spec spec_for(char *const *argv, int64_t timeout_ms)
{
	struct proc_spec s = {
	    .argv = argv,
	    .envp = default_env,
	    .timeout_ms = timeout_ms,
	    .kill_grace_ms = 300,
	    .max_output = 65536,
	};
	return s;
}

/* Spawn and loop until done (or the safety timer). */
static void spawn_and_loop(struct run *r, const struct proc_spec *spec)
{
	struct error err = {{0}};
	int rc = proc_spawn(r->base, spec, on_done, r, &r->proc, &err);
	cr_assert_eq(rc, 0, "proc_spawn: %s", err.msg);
	cr_assert_not_null(r->proc);
	cr_assert_gt(proc_pid(r->proc), 0);
	struct event *safety = evtimer_new(r->base, on_safety, r);
	struct timeval tv = {SAFETY_MS / 1000, 0};
	evtimer_add(safety, &tv);
	event_base_dispatch(r->base);
	event_free(safety);
	cr_assert_not(r->hung, "the child never completed");
	cr_assert_eq(r->calls, 1, "done ran %d times", r->calls);
}

static void run_argv(struct run *r, char *const *argv, int64_t timeout_ms)
{
	struct proc_spec s = spec_for(argv, timeout_ms);
	spawn_and_loop(r, &s);
}

/* Wait (up to 3 s) until pid no longer exists, reaping it if it became our
 * child. Returns true when it is gone. */
static bool gone(pid_t pid)
{
	for (int i = 0; i < 300; i++) {
		waitpid(pid, NULL, WNOHANG);
		if (kill(pid, 0) < 0 && errno == ESRCH)
			return true;
		usleep(10 * 1000);
	}
	return false;
}

static pid_t first_line_pid(const struct run *r)
{
	long v = strtol(r->output, NULL, 10);
	cr_assert_gt(v, 1, "no pid in output '%s'", r->output);
	return (pid_t)v;
}

Test(proc, exit_zero)
{
	struct run r;
	run_init(&r);
	char *argv[] = {script("exit.sh"), "0", NULL};
	run_argv(&r, argv, 5000);
	cr_assert_eq(r.res.exit_code, 0);
	cr_assert_eq(r.res.term_signal, 0);
	cr_assert_not(r.res.timed_out);
	cr_assert_eq(r.res.output_len, 0);
	cr_assert_str_eq(r.res.output, "");
	cr_assert_not(r.res.output_truncated);
	cr_assert_geq(r.res.duration_ms, 0);
	cr_assert_lt(r.res.duration_ms, 3000);
	run_release(&r);
}

Test(proc, exit_three)
{
	struct run r;
	run_init(&r);
	char *argv[] = {script("exit.sh"), "3", NULL};
	run_argv(&r, argv, 5000);
	cr_assert_eq(r.res.exit_code, 3);
	cr_assert_eq(r.res.term_signal, 0);
	cr_assert_not(r.res.timed_out);
	run_release(&r);
}

Test(proc, path_is_searched)
{
	struct run r;
	run_init(&r);
	char *argv[] = {"true", NULL};
	run_argv(&r, argv, 5000);
	cr_assert_eq(r.res.exit_code, 0);
	run_release(&r);
}

Test(proc, stdout_and_stderr_merged)
{
	struct run r;
	run_init(&r);
	char *argv[] = {script("both.sh"), NULL};
	run_argv(&r, argv, 5000);
	cr_assert_eq(r.res.exit_code, 0);
	cr_assert_str_eq(r.res.output, "out\nerr\n");
	cr_assert_eq(r.res.output_len, 8);
	cr_assert_not(r.res.output_truncated);
	run_release(&r);
}

Test(proc, output_capped_child_not_blocked)
{
	struct run r;
	run_init(&r);
	char *argv[] = {script("big.sh"), NULL};
	run_argv(&r, argv, 8000);
	cr_assert_eq(r.res.exit_code, 0, "the child was blocked or failed");
	cr_assert_not(r.res.timed_out);
	cr_assert_eq(r.res.output_len, 65536);
	cr_assert(r.res.output_truncated);
	for (size_t i = 0; i < r.res.output_len; i++)
		cr_assert_eq(r.res.output[i], 'x', "byte %zu", i);
	cr_assert_eq(r.res.output[65536], '\0');
	run_release(&r);
}

Test(proc, output_exactly_at_cap_not_truncated)
{
	struct run r;
	run_init(&r);
	char *argv[] = {script("both.sh"), NULL};
	struct proc_spec s = spec_for(argv, 5000);
	s.max_output = 8;
	spawn_and_loop(&r, &s);
	cr_assert_str_eq(r.res.output, "out\nerr\n");
	cr_assert_not(r.res.output_truncated);
	run_release(&r);

	run_init(&r);
	s.max_output = 3;
	spawn_and_loop(&r, &s);
	cr_assert_str_eq(r.res.output, "out");
	cr_assert(r.res.output_truncated);
	run_release(&r);
}

Test(proc, stdin_delivered)
{
	struct run r;
	run_init(&r);
	/* Bigger than a pipe buffer: the write has to go round the loop. */
	size_t n = 300 * 1024;
	char *in = malloc(n);
	cr_assert_not_null(in);
	for (size_t i = 0; i < n; i++)
		in[i] = (char)('a' + i % 26);
	char *argv[] = {"cat", NULL};
	struct proc_spec s = spec_for(argv, 8000);
	s.stdin_data = in;
	s.stdin_len = n;
	s.max_output = 1024 * 1024;
	spawn_and_loop(&r, &s);
	cr_assert_eq(r.res.exit_code, 0);
	cr_assert_eq(r.res.output_len, n);
	cr_assert_not(r.res.output_truncated);
	cr_assert_eq(memcmp(r.res.output, in, n), 0);
	free(in);
	run_release(&r);
}

Test(proc, stdin_copied_at_spawn)
{
	struct run r;
	run_init(&r);
	char in[] = "{\"incident\":\"inc-1\"}";
	char *argv[] = {"cat", NULL};
	struct proc_spec s = spec_for(argv, 5000);
	s.stdin_data = in;
	s.stdin_len = strlen(in);
	struct error err = {{0}};
	cr_assert_eq(proc_spawn(r.base, &s, on_done, &r, &r.proc, &err), 0, "%s", err.msg);
	memset(in, 'Z', sizeof(in) - 1); /* the caller's buffer may go away */
	struct event *safety = evtimer_new(r.base, on_safety, &r);
	struct timeval tv = {SAFETY_MS / 1000, 0};
	evtimer_add(safety, &tv);
	event_base_dispatch(r.base);
	event_free(safety);
	cr_assert_eq(r.calls, 1);
	cr_assert_str_eq(r.res.output, "{\"incident\":\"inc-1\"}");
	run_release(&r);
}

Test(proc, stdin_not_read_is_fine)
{
	struct run r;
	run_init(&r);
	size_t n = 1024 * 1024;
	char *in = calloc(1, n);
	cr_assert_not_null(in);
	char *argv[] = {script("exit.sh"), "0", NULL};
	struct proc_spec s = spec_for(argv, 5000);
	s.stdin_data = in;
	s.stdin_len = n;
	spawn_and_loop(&r, &s);
	cr_assert_eq(r.res.exit_code, 0);
	cr_assert_not(r.res.timed_out);
	free(in);
	run_release(&r);
}

Test(proc, argv_reaches_child_verbatim)
{
	struct run r;
	run_init(&r);
	char *args[] = {
	    "plain",
	    "",
	    "two words",
	    "$(touch /tmp/rollbackd-pwned)",
	    "`id`",
	    "a;b|c&d>e<f",
	    "line1\nline2\n",
	    "'single' \"double\" \\back",
	    "*",
	    "$HOME ${PATH}",
	    "-n",
	};
	size_t nargs = sizeof(args) / sizeof(args[0]);
	char *argv[16] = {script("args.sh")};
	char expect[512];
	size_t len = 0;
	for (size_t i = 0; i < nargs; i++) {
		argv[i + 1] = args[i];
		size_t l = strlen(args[i]) + 1; /* with the NUL the script prints */
		memcpy(expect + len, args[i], l);
		len += l;
	}
	argv[nargs + 1] = NULL;
	unlink("/tmp/rollbackd-pwned");
	run_argv(&r, argv, 5000);
	cr_assert_eq(r.res.exit_code, 0);
	cr_assert_eq(r.res.output_len, len);
	cr_assert_eq(memcmp(r.res.output, expect, len), 0);
	cr_assert_neq(access("/tmp/rollbackd-pwned", F_OK), 0, "a shell ran the argument");
	run_release(&r);
}

Test(proc, environment_passed_not_inherited)
{
	struct run r;
	run_init(&r);
	char *argv[] = {script("env.sh"), "ROLLBACKD_RULE", NULL};
	run_argv(&r, argv, 5000);
	cr_assert_str_eq(r.res.output, "checkout-error-rate");
	run_release(&r);

	/* Only envp reaches the child, not our own environment. */
	setenv("ROLLBACKD_TEST_LEAK", "1", 1);
	run_init(&r);
	char *argv2[] = {script("env.sh"), "ROLLBACKD_TEST_LEAK", NULL};
	run_argv(&r, argv2, 5000);
	cr_assert_str_eq(r.res.output, "unset");
	run_release(&r);
}

Test(proc, timeout_sends_sigterm)
{
	struct run r;
	run_init(&r);
	char *argv[] = {"sleep", "30", NULL};
	run_argv(&r, argv, 200);
	cr_assert(r.res.timed_out);
	cr_assert_eq(r.res.exit_code, -1);
	cr_assert_eq(r.res.term_signal, SIGTERM);
	cr_assert_geq(r.res.duration_ms, 190);
	cr_assert_lt(r.res.duration_ms, 3000);
	run_release(&r);
}

/* The daemon may block and ignore signals; the child must not inherit that. */
Test(proc, child_gets_clean_signal_state)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	struct run r;
	run_init(&r);
	char *argv[] = {"sleep", "30", NULL};
	run_argv(&r, argv, 200);
	cr_assert(r.res.timed_out);
	cr_assert_eq(r.res.term_signal, SIGTERM);
	cr_assert_lt(r.res.duration_ms, 3000);
	run_release(&r);
}

Test(proc, sigkill_after_grace)
{
	struct run r;
	run_init(&r);
	char *argv[] = {script("ignore_term.sh"), NULL};
	/* 1 s, not less: the shell must have run its trap before the SIGTERM
	 * comes (on a loaded machine, sh takes a few hundred ms to start) */
	run_argv(&r, argv, 1000); /* grace 300 ms */
	cr_assert(r.res.timed_out);
	cr_assert_eq(r.res.exit_code, -1);
	cr_assert_eq(r.res.term_signal, SIGKILL);
	cr_assert_geq(r.res.duration_ms, 1290);
	cr_assert_lt(r.res.duration_ms, 4000);
	cr_assert_str_eq(r.res.output, "ready\n");
	run_release(&r);
}

Test(proc, timeout_kills_grandchild)
{
	struct run r;
	run_init(&r);
	char *argv[] = {script("grandchild.sh"), NULL};
	/* 1 s: time for sh to start and fork its sleep on a loaded machine */
	run_argv(&r, argv, 1000);
	cr_assert(r.res.timed_out);
	cr_assert_eq(r.res.term_signal, SIGTERM);
	cr_assert_lt(r.res.duration_ms, 4000);
	pid_t g = first_line_pid(&r);
	cr_assert(gone(g), "grandchild %d survived", (int)g);
	/* The grandchild got the group's SIGTERM with it: named in the result. */
	cr_assert_eq(r.res.n_killed, 1);
	cr_assert_eq(r.res.killed[0].pid, g);
	cr_assert_str_eq(r.res.killed[0].name, "sleep");
	run_release(&r);
}

/* Nothing is reaped but by its pid: a pid is gone (ESRCH) right away,
 * without the test reaping it, once the callback has run. */
static bool reaped_already(pid_t pid)
{
	return kill(pid, 0) < 0 && errno == ESRCH;
}

/* The child exits 0 at once but a grandchild keeps the output pipe open:
 * the drain waits for it, never past the timeout; then it is killed and
 * named. The child finished in time: not a timeout. */
Test(proc, grandchild_holding_pipe_is_bounded)
{
	struct run r;
	run_init(&r);
	char *argv[] = {script("orphan.sh"), NULL};
	/* shorter than the drain: the timeout bounds it; 1 s so that sh has
	 * started its grandchild first on a loaded machine */
	run_argv(&r, argv, 1000);
	cr_assert_eq(r.res.exit_code, 0);
	cr_assert_eq(r.res.term_signal, 0);
	cr_assert_not(r.res.timed_out);
	cr_assert_geq(r.res.duration_ms, 990);
	cr_assert_lt(r.res.duration_ms, 4000);
	pid_t g = first_line_pid(&r);
	cr_assert_eq(r.res.n_killed, 1);
	cr_assert_eq(r.res.killed[0].pid, g);
	cr_assert_str_eq(r.res.killed[0].name, "sleep");
	cr_assert(reaped_already(g), "grandchild %d was not reaped", (int)g);
	run_release(&r);
}

/* A grandchild outside the group (its own session) holds the pipe: the
 * group kill cannot reach it, but it is our orphan (subreaper) once the
 * child exits, so the cleanup kills and reaps it too. */
Test(proc, escaped_grandchild_cannot_hang_completion)
{
	struct run r;
	run_init(&r);
	char *argv[] = {script("escape.sh"), NULL};
	run_argv(&r, argv, 1000); /* 1 s: see timeout_kills_grandchild */
	cr_assert_eq(r.res.exit_code, 0);
	cr_assert_not(r.res.timed_out);
	cr_assert_geq(r.res.duration_ms, 990);
	cr_assert_lt(r.res.duration_ms, 4000);
	pid_t g = first_line_pid(&r);
	cr_assert_eq(r.res.n_killed, 1);
	cr_assert_eq(r.res.killed[0].pid, g);
	cr_assert_str_eq(r.res.killed[0].name, "sleep");
	cr_assert(reaped_already(g), "escaped grandchild %d is still there", (int)g);
	run_release(&r);
}

/* Exit 0 with a background grandchild that does not hold stdout: done at
 * once (EOF comes with the child's exit), the grandchild killed, reaped
 * and named. */
Test(proc, background_grandchild_killed_and_reported)
{
	struct run r;
	run_init(&r);
	char *argv[] = {script("background.sh"), NULL};
	run_argv(&r, argv, 10000);
	cr_assert_eq(r.res.exit_code, 0);
	cr_assert_eq(r.res.term_signal, 0);
	cr_assert_not(r.res.timed_out);
	cr_assert_lt(r.res.duration_ms, 1500, "no drain without an open pipe (%lld ms)",
		     (long long)r.res.duration_ms);
	pid_t g = first_line_pid(&r);
	cr_assert_eq(r.res.n_killed, 1);
	cr_assert_eq(r.res.killed[0].pid, g);
	cr_assert_str_eq(r.res.killed[0].name, "sleep");
	cr_assert(reaped_already(g), "grandchild %d survived or was not reaped", (int)g);
	run_release(&r);
}

/* setsid takes the grandchild out of the group (the group kill misses it);
 * the subreaper gets it back when the child exits, and it is killed. */
Test(proc, setsid_grandchild_killed_via_subreaper)
{
	struct run r;
	run_init(&r);
	char *argv[] = {script("setsid_bg.sh"), NULL};
	run_argv(&r, argv, 10000);
	cr_assert_eq(r.res.exit_code, 0);
	cr_assert_not(r.res.timed_out);
	cr_assert_lt(r.res.duration_ms, 1500);
	pid_t g = first_line_pid(&r);
	cr_assert_eq(r.res.n_killed, 1);
	cr_assert_eq(r.res.killed[0].pid, g);
	cr_assert_str_eq(r.res.killed[0].name, "sleep");
	cr_assert(reaped_already(g), "setsid grandchild %d survived or was not reaped", (int)g);
	run_release(&r);
}

/* Exit 0 while a grandchild holds stdout: "ok" after the default drain
 * (PROC_DRAIN_MS), not a timeout. */
Test(proc, exit_zero_holding_stdout_ok_after_drain)
{
	struct run r;
	run_init(&r);
	char *argv[] = {script("orphan.sh"), NULL};
	run_argv(&r, argv, 10000);
	cr_assert_eq(r.res.exit_code, 0);
	cr_assert_eq(r.res.term_signal, 0);
	cr_assert_not(r.res.timed_out);
	cr_assert_geq(r.res.duration_ms, PROC_DRAIN_MS - 10);
	cr_assert_lt(r.res.duration_ms, PROC_DRAIN_MS + 1500);
	pid_t g = first_line_pid(&r);
	char want[32];
	snprintf(want, sizeof(want), "%d\n", (int)g);
	cr_assert_str_eq(r.res.output, want);
	cr_assert_eq(r.res.n_killed, 1);
	cr_assert_eq(r.res.killed[0].pid, g);
	cr_assert(reaped_already(g));
	run_release(&r);
}

/* What a grandchild writes during the drain is kept; one that ends by
 * itself is not "killed". */
Test(proc, drain_keeps_late_output)
{
	struct run r;
	run_init(&r);
	char *argv[] = {script("late_writer.sh"), NULL};
	struct proc_spec s = spec_for(argv, 10000);
	s.drain_ms = 3000;
	spawn_and_loop(&r, &s);
	cr_assert_eq(r.res.exit_code, 0);
	cr_assert_not(r.res.timed_out);
	cr_assert_str_eq(r.res.output, "early\nlate\n");
	cr_assert_eq(r.res.n_killed, 0);
	cr_assert_geq(r.res.duration_ms, 250);
	cr_assert_lt(r.res.duration_ms, 2500);
	run_release(&r);
}

/* Two procs at once: one leaves a setsid orphan behind, the other is still
 * running when that one cleans up. The running one is neither killed nor
 * robbed of its exit status. */
Test(proc, cleanup_leaves_other_procs_alone)
{
	struct run a, b;
	run_init(&a);
	memset(&b, 0, sizeof(b));
	b.base = a.base;
	char *argv_a[] = {script("setsid_bg.sh"), NULL};
	char *argv_b[] = {"/bin/sh", "-c", "sleep 0.6; exit 7", NULL};
	struct proc_spec sa = spec_for(argv_a, 10000), sb = spec_for(argv_b, 10000);
	struct error err = {{0}};
	cr_assert_eq(proc_spawn(b.base, &sb, on_done, &b, &b.proc, &err), 0, "%s", err.msg);
	pid_t pb = proc_pid(b.proc);
	spawn_and_loop(&a, &sa);
	cr_assert_eq(a.res.exit_code, 0);
	cr_assert_eq(a.res.n_killed, 1, "killed %zu", a.res.n_killed);
	cr_assert_neq(a.res.killed[0].pid, pb);
	cr_assert_eq(b.calls, 0, "the other proc is still running");
	cr_assert_eq(kill(pb, 0), 0, "the other proc's child was killed");
	/* Now the other one. */
	struct event *safety = evtimer_new(b.base, on_safety, &b);
	struct timeval tv = {SAFETY_MS / 1000, 0};
	evtimer_add(safety, &tv);
	while (b.calls == 0 && !b.hung)
		event_base_loop(b.base, EVLOOP_ONCE);
	event_free(safety);
	cr_assert_eq(b.calls, 1);
	cr_assert_eq(b.res.exit_code, 7, "its status must not be taken by the other cleanup");
	cr_assert_eq(b.res.n_killed, 0);
	free(b.output);
	run_release(&a);
}

static void on_fail_done(const struct proc_result *res, void *arg)
{
	int *calls = arg;
	(*calls)++;
}

Test(proc, missing_program)
{
	if (under_valgrind())
		cr_skip_test("valgrind cannot report exec failures from posix_spawn");
	struct event_base *base = event_base_new();
	char *argv[] = {"rollbackd-no-such-program", "x", NULL};
	struct proc_spec s = spec_for(argv, 1000);
	struct error err = {{0}};
	struct proc *p = (struct proc *)&err; /* must be reset */
	int calls = 0;
	cr_assert_eq(proc_spawn(base, &s, on_fail_done, &calls, &p, &err), -1);
	cr_assert_str_eq(err.msg,
			 "cannot run 'rollbackd-no-such-program': No such file or directory");
	cr_assert_null(p);
	event_base_loop(base, EVLOOP_NONBLOCK);
	cr_assert_eq(calls, 0);
	cr_assert_eq(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED), 0);

	char *argv2[] = {"/nonexistent/dir/tool", NULL};
	s.argv = argv2;
	cr_assert_eq(proc_spawn(base, &s, on_fail_done, &calls, NULL, &err), -1);
	cr_assert_str_eq(err.msg, "cannot run '/nonexistent/dir/tool': No such file or directory");
	cr_assert_eq(calls, 0);
	event_base_free(base);
}

Test(proc, not_executable)
{
	if (under_valgrind())
		cr_skip_test("valgrind cannot report exec failures from posix_spawn");
	struct event_base *base = event_base_new();
	const char *dir = getenv("ROLLBACKD_TEST_DATA");
	cr_assert_not_null(dir);
	char path[512];
	snprintf(path, sizeof(path), "%s/am_minimal.json", dir);
	char *argv[] = {path, NULL};
	struct proc_spec s = spec_for(argv, 1000);
	struct error err = {{0}};
	int calls = 0;
	cr_assert_eq(proc_spawn(base, &s, on_fail_done, &calls, NULL, &err), -1);
	char want[600];
	snprintf(want, sizeof(want), "cannot run '%s': Permission denied", path);
	cr_assert_str_eq(err.msg, want);
	cr_assert_eq(calls, 0);
	event_base_free(base);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct run *r = arg;
	r->ticks++;
}

Test(proc, loop_stays_responsive)
{
	struct run r;
	run_init(&r);
	struct event *tick = event_new(r.base, -1, EV_PERSIST, on_tick, &r);
	struct timeval tv = {0, 10 * 1000};
	event_add(tick, &tv);
	char *argv[] = {"sleep", "1", NULL};
	run_argv(&r, argv, 5000);
	event_free(tick);
	cr_assert_eq(r.res.exit_code, 0);
	cr_assert_geq(r.res.duration_ms, 990);
	cr_assert_geq(r.ticks, 50, "only %d ticks while the child ran", r.ticks);
	run_release(&r);
}

static void on_kill_timer(evutil_socket_t fd, short what, void *arg)
{
	struct run *r = arg;
	cr_assert_not_null(r->proc);
	proc_kill(r->proc);
	cr_assert_eq(r->calls, 0, "done must not run inside proc_kill");
}

static void run_with_kill(struct run *r, char *const *argv, int64_t timeout_ms, int kill_at_ms)
{
	struct event *t = evtimer_new(r->base, on_kill_timer, r);
	struct timeval tv = {0, kill_at_ms * 1000};
	evtimer_add(t, &tv);
	run_argv(r, argv, timeout_ms);
	event_free(t);
}

Test(proc, proc_kill_completes_once)
{
	struct run r;
	run_init(&r);
	char *argv[] = {"sleep", "30", NULL};
	run_with_kill(&r, argv, 10000, 100);
	cr_assert_not(r.res.timed_out);
	cr_assert_eq(r.res.exit_code, -1);
	cr_assert_eq(r.res.term_signal, SIGKILL);
	cr_assert_lt(r.res.duration_ms, 3000);
	run_release(&r);
}

Test(proc, proc_kill_during_grace)
{
	struct run r;
	run_init(&r);
	char *argv[] = {script("ignore_term.sh"), NULL};
	/* the SIGTERM at 1 s, after the shell's trap (see sigkill_after_grace);
	 * proc_kill at 1.3 s, inside the 5 s grace */
	struct proc_spec s = spec_for(argv, 1000);
	s.kill_grace_ms = 5000;
	struct event *t = evtimer_new(r.base, on_kill_timer, &r);
	struct timeval tv = {1, 300 * 1000};
	evtimer_add(t, &tv);
	spawn_and_loop(&r, &s);
	event_free(t);
	cr_assert(r.res.timed_out);
	cr_assert_eq(r.res.term_signal, SIGKILL);
	cr_assert_geq(r.res.duration_ms, 1290);
	cr_assert_lt(r.res.duration_ms, 4000);
	run_release(&r);
}

Test(proc, proc_kill_reaches_grandchild)
{
	struct run r;
	run_init(&r);
	char *argv[] = {script("orphan.sh"), NULL};
	run_with_kill(&r, argv, 10000, 200);
	cr_assert_eq(r.res.exit_code, 0);
	cr_assert_not(r.res.timed_out);
	cr_assert_lt(r.res.duration_ms, 3000);
	pid_t g = first_line_pid(&r);
	cr_assert(gone(g), "grandchild %d survived", (int)g);
	cr_assert_eq(r.res.n_killed, 1);
	cr_assert_eq(r.res.killed[0].pid, g);
	run_release(&r);
}

Test(proc, invalid_spec)
{
	struct event_base *base = event_base_new();
	char *argv[] = {"true", NULL};
	struct proc_spec s = spec_for(argv, 0);
	struct error err = {{0}};
	int calls = 0;
	cr_assert_eq(proc_spawn(base, &s, on_fail_done, &calls, NULL, &err), -1);
	cr_assert_str_eq(err.msg, "cannot run 'true': timeout must be positive");
	event_base_free(base);
}

/* Many children at once, none of them waits for another. */
static int many_left;
static void on_many_done(const struct proc_result *res, void *arg)
{
	struct event_base *base = arg;
	cr_assert_eq(res->exit_code, 0);
	if (--many_left == 0)
		event_base_loopexit(base, NULL);
}

Test(proc, many_concurrent)
{
	struct event_base *base = event_base_new();
	char *argv[] = {"sleep", "0.3", NULL};
	struct proc_spec s = spec_for(argv, 5000);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	many_left = 20;
	for (int i = 0; i < 20; i++) {
		struct error err = {{0}};
		cr_assert_eq(proc_spawn(base, &s, on_many_done, base, NULL, &err), 0, "%s",
			     err.msg);
	}
	struct run guard = {.base = base};
	struct event *safety = evtimer_new(base, on_safety, &guard);
	struct timeval tv = {SAFETY_MS / 1000, 0};
	evtimer_add(safety, &tv);
	event_base_dispatch(base);
	event_free(safety);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	cr_assert_not(guard.hung);
	cr_assert_eq(many_left, 0);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	cr_assert_lt(ms, 3000, "took %ld ms: children ran one after another", ms);
	event_base_free(base);
}

static int count_fds(void)
{
	int n = 0;
	for (int fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			n++;
	return n;
}

/* Our descriptors (even one without O_CLOEXEC) do not reach the child, and
 * every path gives back every descriptor it took. */
Test(proc, no_fd_leaks)
{
	int stray = dup(2); /* no O_CLOEXEC */
	cr_assert_geq(stray, 3);
	char num[16];
	snprintf(num, sizeof(num), "%d", stray);
	int before = count_fds();

	struct run r;
	run_init(&r);
	int with_base = count_fds();
	char *argv[] = {script("fd_open.sh"), num, NULL};
	run_argv(&r, argv, 5000);
	cr_assert_str_eq(r.res.output, "closed\n");
	cr_assert_eq(count_fds(), with_base);

	r.calls = 0;
	char *argv2[] = {"sleep", "30", NULL};
	run_argv(&r, argv2, 100);
	cr_assert(r.res.timed_out);
	cr_assert_eq(count_fds(), with_base);

	if (!under_valgrind()) {
		char *argv3[] = {"rollbackd-no-such-program", NULL};
		struct proc_spec s = spec_for(argv3, 100);
		s.stdin_data = "x";
		s.stdin_len = 1;
		struct error err = {{0}};
		cr_assert_eq(proc_spawn(r.base, &s, on_done, &r, NULL, &err), -1);
		cr_assert_eq(count_fds(), with_base);
	}
	run_release(&r);
	cr_assert_eq(count_fds(), before);
	close(stray);
}
