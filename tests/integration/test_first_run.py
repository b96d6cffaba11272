"""The README's first run: `make run` (the built-in defaults, the shipped rules)
and the four commands of its "First alert" block, run exactly as written, in a
fresh directory laid out like the repository (rules/, tests/data/,
build/rollbackd), with the outcome the README shows.

The built-in defaults listen on 127.0.0.1:9097, so this test needs that port
free; it fails (it does not skip) when something else holds it.
"""

import errno
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import harness

README = os.path.join(harness.SRC, "README.md")
MAKEFILE = os.path.join(harness.SRC, "Makefile")
MARK = "<!-- first-run:"
PORT = 9097

ALERT_LABELS = {"alertname": "RollbackServiceDown", "service": "checkout",
                "severity": "critical"}


def readme_commands():
    """The lines of the first ```sh block after the first-run marker."""
    with open(README) as f:
        text = f.read()
    at = text.index(MARK)
    m = re.compile(r"```sh\n(.*?)```", re.S).search(text, at)
    return [l for l in m.group(1).splitlines() if l.strip() and not l.lstrip().startswith("#")]


def make_var(name):
    with open(MAKEFILE) as f:
        m = re.search(r"(?m)^%s\s*[:?]?=\s*(\S+)\s*$" % re.escape(name), f.read())
    return m.group(1)


def make_recipe(target):
    """The recipe lines of a Makefile target (tab-indented lines after `target:`)."""
    with open(MAKEFILE) as f:
        lines = f.read().splitlines()
    for i, l in enumerate(lines):
        if re.match(r"^%s:" % re.escape(target), l):
            out = []
            for r in lines[i + 1:]:
                if not r.startswith("\t"):
                    break
                out.append(r[1:])
            return l, out
    raise AssertionError("no target %r in the Makefile" % target)


def expand_make(s):
    """The Makefile's variables as `make run` expands them (echo lines)."""
    s = s.replace("$(FIRST_ALERT)", make_var("FIRST_ALERT")).replace("$(BUILD)", "build")
    return s.replace("$$", "$")


class FirstRun(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not harness.binary_available():
            raise unittest.SkipTest(harness.skip_reason())
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", PORT))
        except OSError as e:
            raise AssertionError("127.0.0.1:%d (the built-in default) is in use (%s): stop "
                                 "whatever holds it to run this test"
                                 % (PORT, errno.errorcode.get(e.errno, e)))
        finally:
            s.close()
        cls.tmp = tempfile.mkdtemp(prefix="rollbackd-first-run-")
        os.symlink(os.path.join(harness.SRC, "rules"), os.path.join(cls.tmp, "rules"))
        os.makedirs(os.path.join(cls.tmp, "tests"))
        os.symlink(harness.DATA, os.path.join(cls.tmp, "tests", "data"))
        os.makedirs(os.path.join(cls.tmp, "build"))
        os.symlink(harness.BIN, os.path.join(cls.tmp, "build", "rollbackd"))
        # what `make run` runs: ./$(BUILD)/rollbackd serve, no config
        cls.proc = subprocess.Popen(["./build/rollbackd", "serve"], cwd=cls.tmp,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE)
        cls.lines = []
        cls.cond = threading.Condition()
        cls.reader = threading.Thread(target=cls._read, daemon=True)
        cls.reader.start()
        deadline = time.monotonic() + harness.START_TIMEOUT
        with cls.cond:
            while not any('"msg":"listening"' in l for l in cls.lines):
                left = deadline - time.monotonic()
                if left <= 0 or cls.proc.poll() is not None:
                    cls.proc.kill()
                    cls.proc.wait()
                    shutil.rmtree(cls.tmp, ignore_errors=True)
                    raise AssertionError("rollbackd serve (built-in defaults) did not start: "
                                         "exit %r\n%s" % (cls.proc.poll(), "\n".join(cls.lines)))
                cls.cond.wait(min(left, 0.2))
        # the README's commands, in order, each as the shell runs it
        cls.outputs = []
        for cmd in readme_commands():
            p = subprocess.run(["sh", "-c", cmd], cwd=cls.tmp, capture_output=True,
                               timeout=harness.IO_TIMEOUT)
            cls.outputs.append((cmd, p))

    @classmethod
    def _read(cls):
        for raw in iter(cls.proc.stderr.readline, b""):
            with cls.cond:
                cls.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                cls.cond.notify_all()

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.proc.poll() is None:
                cls.proc.send_signal(signal.SIGTERM)
                cls.rc = cls.proc.wait(timeout=harness.STOP_TIMEOUT)
            cls.reader.join(5)
            if cls.rc != 0:
                raise AssertionError("rollbackd exited %r after SIGTERM:\n%s"
                                     % (cls.rc, "\n".join(cls.lines[-20:])))
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def out(self, i, what):
        cmd, p = self.outputs[i]
        self.assertTrue(cmd.startswith(what), "README command %d is %r, want %s..." % (i, cmd, what))
        self.assertEqual(p.returncode, 0, "%s: exit %d\n%s" % (cmd, p.returncode, p.stderr.decode()))
        self.assertEqual(p.stderr, b"", cmd)
        return p.stdout.decode()

    def incident_id(self):
        return json.loads(self.out(0, "curl"))["decisions"][0]["incident"]

    def test_the_readme_block_is_four_commands(self):
        self.assertEqual(len(self.outputs), 4, [c for c, _ in self.outputs])

    def test_1_webhook_answers_the_decision(self):
        body = json.loads(self.out(0, "curl -sS -H 'Content-Type: application/json' "
                                      "--data-binary @tests/data/am_first_alert.json "
                                      "http://127.0.0.1:9097/v1/alerts"))
        inc = body["decisions"][0]["incident"]
        self.assertRegex(inc, r"^inc-[0-9a-f]{16}$")
        self.assertEqual(body, {
            "status": "accepted", "alerts": 1,
            "decisions": [{"fingerprint": harness.am_fingerprint(ALERT_LABELS),
                           "rule": "RollbackServiceDown", "incident": inc,
                           "outcome": "dry_run", "reason": "dry-run: would run 1 action(s)"}]})

    def test_2_incident_listed(self):
        incs = json.loads(self.out(1, "curl -sS http://127.0.0.1:9097/v1/incidents"))
        self.assertEqual(len(incs), 1, incs)
        (inc,) = incs
        self.assertEqual(inc["id"], self.incident_id())
        self.assertEqual(inc["rule"], "RollbackServiceDown")
        self.assertEqual(inc["state"], "dry_run")
        self.assertEqual(inc["labels"], {"service": "checkout"})
        self.assertEqual(inc["episode"], 1)
        self.assertIsNone(inc["acknowledged_by"])

    def test_3_test_rules_expands_the_actions(self):
        lines = self.out(2, "./build/rollbackd test-rules").splitlines()
        self.assertEqual(len(lines), 1, lines)
        d = json.loads(lines[0])
        self.assertEqual(d["incident"], self.incident_id())
        self.assertEqual(d["rule"], "RollbackServiceDown")
        self.assertEqual(d["fingerprint"], harness.am_fingerprint(ALERT_LABELS))
        self.assertEqual(d["actions"], [{"type": "exec",
                                         "argv": ["deploy/rollback.sh", "checkout"]}])

    def test_4_audit_show_is_the_timeline(self):
        lines = self.out(3, "./build/rollbackd audit show --journal var/journal.jsonl").splitlines()
        inc = self.incident_id()
        self.assertEqual(len(lines), 5, lines)
        want = [r"  #1  started  -  rollbackd \S+ started \(pid %d\)$" % self.proc.pid,
                r"  #2  config_loaded  -  loaded 4 rule\(s\) from rules/ \(digest [0-9a-f]{12}\), "
                r"dry-run$",
                r"  #3  notification  -  RollbackServiceDown firing \{service=\"checkout\", "
                r"severity=\"critical\"\} \(fingerprint %s\)$" % harness.am_fingerprint(ALERT_LABELS),
                r"  #4  target_claimed  %s  target service=checkout held until "
                r"\d{4}-\d\d-\d\dT[0-9:.]+Z \(epoch 1\)$" % inc,
                r"  #5  decision  %s  RollbackServiceDown: dry_run — dry-run: would run 1 "
                r"action\(s\) \(value 0 < 0\.5\)$" % inc]
        for line, w in zip(lines, want):
            self.assertRegex(line, r"^\d{4}-\d\d-\d\dT[0-9:.]+Z" + w)

    def test_make_run_builds_only_the_daemon_and_prints_these_commands(self):
        head, recipe = make_recipe("run")
        self.assertEqual(head.split(":", 1)[1].split(), ["build-daemon"])
        _, build = make_recipe("build-daemon")
        self.assertIn("@cmake --build $(BUILD) -j$(JOBS) --target rollbackd", build)
        self.assertEqual(recipe[-1], "./$(BUILD)/rollbackd serve $(if $(CONFIG),--config $(CONFIG))")
        banner = [expand_make(re.match(r'^@echo "(.*)"$', l).group(1)).replace('\\"', '"')
                  for l in recipe[:-1]]
        for cmd in readme_commands():
            self.assertIn("    " + cmd, banner, "make run's banner should print %r" % cmd)


if __name__ == "__main__":
    unittest.main()
