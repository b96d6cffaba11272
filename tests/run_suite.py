#!/usr/bin/env python3
"""Run a directory of unittest modules, several modules at a time.

    tests/run_suite.py DIR [--jobs N] [--pattern GLOB]

The integration and e2e suites spend most of their time waiting (timers of
a second, Prometheus' `for:`, Alertmanager's group_wait): the whole
integration suite takes about 5 minutes of wall time for about 20 seconds
of CPU. Each module runs in its own interpreter (`python -m unittest -v
MODULE`, working directory DIR, the environment inherited), up to N at a
time (--jobs, else ROLLBACKD_TEST_JOBS, else 4). Every test starts its own
daemon on a free loopback port in its own temporary directory, so modules
do not share state.

DIR/SERIAL names the modules that must run alone, one line each
("name  # why"): tests whose assertions measure latency under load they
make themselves (1,100 sockets, thousands of incidents) and that a
neighbour's load would turn flaky. They run first, one at a time, before
the pool. A line "long NAME" starts that module first in the pool (the
longest ones, so that they do not end the run alone). A line "elsewhere
NAME" leaves a module out (it runs as its own ctest entry).

Each module's output is printed whole when it ends, under a header with its
status and duration; a summary follows. A module running longer than
ROLLBACKD_TEST_MODULE_TIMEOUT seconds (default 900) is killed with its
process group and counts as failed. Exit status 0 when every module
passed, 1 otherwise, 2 on bad usage.
"""

import argparse
import fnmatch
import os
import re
import signal
import subprocess
import sys
import tempfile
import time


def read_lists(d):
    serial, longest, elsewhere = [], [], []
    path = os.path.join(d, "SERIAL")
    if not os.path.exists(path):
        return serial, longest, elsewhere
    with open(path) as f:
        for raw in f:
            line = raw.split("#", 1)[0].split()
            if not line:
                continue
            if line[0] == "long" and len(line) == 2:
                longest.append(line[1])
            elif line[0] == "elsewhere" and len(line) == 2:
                elsewhere.append(line[1])
            elif len(line) == 1:
                serial.append(line[0])
            else:
                sys.exit("%s: cannot read %r" % (path, raw.rstrip("\n")))
    return serial, longest, elsewhere


class Run:
    def __init__(self, d, module, timeout):
        self.module = module
        self.out = tempfile.TemporaryFile()
        self.t0 = time.monotonic()
        self.deadline = self.t0 + timeout
        self.timed_out = False
        self.proc = subprocess.Popen([sys.executable, "-m", "unittest", "-v", module], cwd=d,
                                     stdin=subprocess.DEVNULL, stdout=self.out,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def poll(self):
        rc = self.proc.poll()
        if rc is None and time.monotonic() > self.deadline:
            self.timed_out = True
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            rc = self.proc.wait()
        return rc

    def report(self, rc):
        self.seconds = time.monotonic() - self.t0
        self.out.seek(0)
        text = self.out.read().decode("utf-8", "replace")
        self.out.close()
        # a module that ran nothing (an import that found no test, a
        # load_tests that left everything out) is a failure, not a pass
        empty = re.search(r"(?m)^Ran 0 tests", text) is not None
        self.ok = rc == 0 and not self.timed_out and not empty
        what = "ok" if self.ok else ("TIMED OUT" if self.timed_out else "RAN NO TEST" if empty
                                     else "FAILED (exit %d)" % rc)
        sys.stdout.write("\n===== %s: %s in %.1f s\n%s" % (self.module, what, self.seconds, text))
        sys.stdout.flush()


def run(d, modules, jobs, timeout):
    """Run modules, at most jobs at a time, in order; return the Runs."""
    pending, running, done = list(modules), [], []
    while pending or running:
        while pending and len(running) < jobs:
            running.append(Run(d, pending.pop(0), timeout))
        time.sleep(0.05)
        for r in list(running):
            rc = r.poll()
            if rc is not None:
                running.remove(r)
                r.report(rc)
                done.append(r)
    return done


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("ROLLBACKD_TEST_JOBS", "4")))
    ap.add_argument("--pattern", default="test_*.py")
    a = ap.parse_args()
    d = os.path.abspath(a.dir)
    if a.jobs < 1 or not os.path.isdir(d):
        ap.error("need a directory and --jobs >= 1")
    timeout = float(os.environ.get("ROLLBACKD_TEST_MODULE_TIMEOUT", "900"))
    modules = sorted(f[:-3] for f in os.listdir(d) if fnmatch.fnmatch(f, a.pattern)
                     and f.endswith(".py"))
    serial, longest, elsewhere = read_lists(d)
    for name in serial + longest + elsewhere:
        if name not in modules:
            sys.exit("%s/SERIAL names %s, which is not a module here" % (d, name))
    modules = [m for m in modules if m not in elsewhere]
    pool = [m for m in longest if m not in serial] + \
        [m for m in modules if m not in serial and m not in longest]
    t0 = time.monotonic()
    done = run(d, [m for m in modules if m in serial], 1, timeout)
    done += run(d, pool, a.jobs, timeout)
    failed = [r for r in done if not r.ok]
    sys.stdout.write("\n===== %s: %d modules in %.1f s (jobs %d; %d alone first), %s\n" % (
        d, len(done), time.monotonic() - t0, a.jobs, len(serial),
        "all passed" if not failed else "FAILED: " + ", ".join(r.module for r in failed)))
    for r in sorted(done, key=lambda r: -r.seconds)[:8]:
        sys.stdout.write("  %7.1f s  %s\n" % (r.seconds, r.module))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
