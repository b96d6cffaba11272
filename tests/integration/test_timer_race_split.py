"""Timer races (issue 11 item 4, STYLE.md "Threads and locks") against the real binary.

With workers >= 2 the HTTP workers decide on their own threads while the
engine's timers (firing_for, approve_timeout) fire on the main loop. Before
the fix a worker cancelled the main loop's timer with evtimer_del while
holding the engine lock, and libevent waited there for the timer's running
callback, which waited for the lock: the daemon hung. These tests race
resolved notifications and approve-link POSTs against the timers, round
after round, with a deadline on every exchange: a hang fails the test
(it never waits forever), and what each incident ends as is checked.

The firing_for race hung the daemon before the fix (workers 2 and 4, in the
first rounds, on the machine this was written on); the approve race checks
that approvals and approve_timeout still act exactly once. A stale-timer
test checks the other half of the fix: a cancelled firing_for timer never
decides the next episode.

Python 3 standard library only.
"""

import json
import os
import threading
import time
import unittest
import urllib.parse

import harness
from harness import SCALE, Server, make_alert, make_payload, rfc3339
from test_ack import LINKS_KEY, link_query
from test_journal import read_journal, verify_chain

SERVICES = 24
HANG_S = 10.0 * SCALE  # no exchange takes this long unless the daemon hangs


def payload_of(alerts):
    p = make_payload(alerts=alerts)
    p["status"] = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return p


def resolved(a):
    r = dict(a)
    r["status"] = "resolved"
    r["endsAt"] = rfc3339()
    return r


def at(t):
    """RFC 3339 with milliseconds for the epoch time t."""
    ms = round(t * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def sleep_until(t):
    d = t - time.time()
    if d > 0:
        time.sleep(d)


class RaceCase(unittest.TestCase):
    WORKERS = 2
    MODE = "notify"
    RULE_EXTRA = {}

    def setUp(self):
        if not harness.binary_available():
            raise unittest.SkipTest(harness.skip_reason())
        self.srv = Server(config=lambda s: {
            "dry_run": False,
            "workers": self.WORKERS,
            "log_level": "warn",
            "public_url": "https://rollbackd.example.com",
            "limits": {"max_rollbacks_per_hour": 100000, "max_concurrent_actions": 64},
            "auth": {"links": {"secret": s.secret("links", LINKS_KEY), "ttl": "1h"}},
        }, log_level="warn")
        self.ran = os.path.join(self.srv.tmp, "ran.txt")
        rule = {"name": "race", "matchers": ['alertname="Race"'], "group_by": ["service"],
                "mode": self.MODE,
                "actions": [{"type": "exec", "timeout": "10s",
                             "argv": ["/bin/sh", "-c",
                                      'echo "$ROLLBACKD_INCIDENT" >> "$0"', self.ran]}]}
        rule.update(self.RULE_EXTRA)
        with open(os.path.join(self.srv.rules_dir, "r.json"), "w") as f:
            json.dump({"rules": [rule]}, f)
        self.srv.start(probe_port=harness.free_port())

    def tearDown(self):
        try:
            # a clean SIGTERM exit, and only JSON log lines on stderr: a
            # sanitizer report (ASan, TSan) fails the test here
            self.assertEqual(self.srv.stop(), 0, "\n".join(self.srv.lines[-30:]))
            harness.check_log_lines(self.srv)
        finally:
            self.srv.cleanup()

    def call(self, method, path, body=None, **kw):
        """One exchange; a timeout here means the daemon hung."""
        try:
            return self.srv.request(method, path, body=body, timeout=HANG_S, **kw)
        except OSError as e:  # socket.timeout is an OSError
            self.fail("rollbackd stopped answering (%s %s: %r): the timer race hung it"
                      % (method, path, e))

    def post(self, alerts):
        body = json.dumps(payload_of(alerts)).encode()
        r = self.call("POST", "/v1/alerts", body=body, content_type="application/json")
        self.assertEqual(r.status, 200, r)
        return r.json()["decisions"]

    def incident(self, inc):
        r = self.call("GET", "/v1/incidents/" + inc)
        self.assertEqual(r.status, 200, r)
        return r.json()

    def run_threads(self, jobs):
        """Run each job on its own thread; fail (never block) past HANG_S."""
        errors = []

        def wrap(job):
            try:
                job()
            except BaseException as e:  # noqa: B902 - reported below
                errors.append(e)

        threads = [threading.Thread(target=wrap, args=(j,), daemon=True) for j in jobs]
        for t in threads:
            t.start()
        end = time.monotonic() + HANG_S + 5.0 * SCALE
        for t in threads:
            t.join(max(0.0, end - time.monotonic()))
            if t.is_alive():
                self.fail("a request thread is still waiting after %.0fs: rollbackd hung"
                          % HANG_S)
        if errors:
            raise errors[0]

    def assertHealthy(self):
        r = self.call("GET", "/healthz")
        self.assertEqual(r.status, 200, r)


class FiringForRace(RaceCase):
    """Resolved notifications land within a few ms of each firing_for timer."""
    RULE_EXTRA = {"when": {"firing_for": "1s"}}
    ROUNDS = 16
    STEP_S = 0.02  # between two services' timers

    def test_resolves_racing_firing_for_never_hang(self):
        for rnd in range(self.ROUNDS):
            # whole milliseconds, so the daemon's deadline is exactly known
            t0 = round(time.time() + 0.05, 3)
            alerts = [make_alert(alertname="Race", service="svc-%d-%d" % (rnd, i))
                      for i in range(SERVICES)]
            for i, a in enumerate(alerts):
                a["startsAt"] = at(t0 + i * self.STEP_S)
            ds = self.post(alerts)
            self.assertEqual([d["outcome"] for d in ds], ["pending"] * SERVICES, ds)
            incs = [d["incident"] for d in ds]

            # each resolved lands near its own timer: -2 .. +2 ms around it,
            # a different offset for every service and round
            def sender(i):
                def job():
                    off = (((rnd * 7 + i * 5) % 17) - 8) * 0.00025
                    sleep_until(t0 + i * self.STEP_S + 1.0 + off)
                    d = self.post([resolved(alerts[i])])
                    self.assertEqual(d[0]["outcome"], "resolved", d)
                return job

            self.run_threads([sender(i) for i in range(SERVICES)])
            self.assertHealthy()
            for inc in incs:
                self.assertEqual(self.incident(inc)["state"], "resolved", inc)


class FiringForRace4(FiringForRace):
    WORKERS = 4


class ApproveRace(RaceCase):
    """Approve-link POSTs land within a few ms of each approve_timeout."""
    MODE = "approve"
    RULE_EXTRA = {"approve_timeout": "1s"}
    WORKERS = 4

    def approve(self, inc, by, service):
        q, _, _ = link_query("approve", inc)
        # the approver types the target (issue 16)
        body = (q + "&by=" + urllib.parse.quote(by) + "&target=" +
                urllib.parse.quote("service=" + service)).encode()
        return self.call("POST", "/v1/ack/" + inc, body=body,
                         content_type="application/x-www-form-urlencoded")

    def runs(self):
        if not os.path.exists(self.ran):
            return []
        with open(self.ran) as f:
            return [x.strip() for x in f]

    def test_approvals_racing_approve_timeout_never_hang_and_run_once(self):
        incs = []
        by_link = []
        n = SERVICES // 2
        for rnd in range(8):
            # one incident every STEP_S, so each has its own approve_timeout
            t0 = time.time() + 0.05
            sent = []
            for i in range(n):
                sleep_until(t0 + i * 0.04)
                t = time.time()
                d = self.post([make_alert(alertname="Race", service="svc-%d-%d" % (rnd, i))])
                self.assertEqual(d[0]["outcome"], "awaiting_approval", d)
                sent.append(((t + time.time()) / 2, d[0]["incident"], "svc-%d-%d" % (rnd, i)))
            incs += [inc for _, inc, _ in sent]

            def approver(i, t, inc, svc):
                def job():
                    off = (((rnd * 7 + i * 5) % 17) - 8) * 0.00025
                    sleep_until(t + 1.0 + off)
                    r = self.approve(inc, "alice", svc)
                    # the link came first (200), or the timer did: then the
                    # link is told who approved it (409); the journal says which
                    if r.status == 200:
                        by_link.append(inc)
                    else:
                        self.assertEqual(r.status, 409, r)
                        self.assertIn("already approved by approve_timeout", r.text)
                return job

            self.run_threads([approver(i, t, inc, svc) for i, (t, inc, svc) in enumerate(sent)])
            self.assertHealthy()
        # every incident approved exactly once and its action run exactly once
        end = time.monotonic() + 20 * SCALE
        while time.monotonic() < end and len(self.runs()) < len(incs):
            time.sleep(0.05)
        time.sleep(0.3 * SCALE)  # a second run would show up by now
        runs = self.runs()
        self.assertEqual(sorted(runs), sorted(incs))
        for inc in incs:
            i = self.incident(inc)
            self.assertEqual(i["state"], "rolled_back", i)
        # one approve record per incident: by the link exactly where it got 200
        approvals = {}
        for rec in verify_chain(read_journal(self.srv.state_dir)):
            if rec["type"] == "approve":
                self.assertNotIn(rec["incident"], approvals, rec)
                approvals[rec["incident"]] = rec["via"]
        self.assertEqual(sorted(approvals), sorted(incs))
        self.assertEqual(sorted(i for i, via in approvals.items() if via == "link"),
                         sorted(by_link))
        self.assertEqual(sorted(i for i, via in approvals.items() if via == "timer"),
                         sorted(set(incs) - set(by_link)))


class StaleTimer(RaceCase):
    """A cancelled firing_for never decides the next episode early."""
    RULE_EXTRA = {"when": {"firing_for": "1s"}}
    WORKERS = 2

    def test_cancelled_firing_for_does_not_decide_the_next_episode(self):
        a = make_alert(alertname="Race", service="stale", started_ago_s=0)
        t0 = time.time()
        a["startsAt"] = rfc3339()
        d = self.post([a])[0]
        self.assertEqual(d["outcome"], "pending", d)
        inc = d["incident"]
        sleep_until(t0 + 0.4)
        self.assertEqual(self.post([resolved(a)])[0]["outcome"], "resolved")
        # a new episode whose own firing_for ends 1 s after it started
        b = make_alert(alertname="Race", service="stale", started_ago_s=0)
        t1 = time.time()
        b["startsAt"] = rfc3339()
        d = self.post([b])[0]
        self.assertEqual(d["outcome"], "pending", d)
        # past the first episode's deadline, before the second's
        sleep_until(t0 + 1.0 + 0.3)
        self.assertLess(time.time(), t1 + 0.95, "the machine is too slow for this check")
        i = self.incident(inc)
        self.assertEqual((i["state"], i["episode"]), ("pending", 2), i)
        end = time.monotonic() + 5 * SCALE
        while time.monotonic() < end and self.incident(inc)["state"] == "pending":
            time.sleep(0.02)
        i = self.incident(inc)
        self.assertEqual((i["state"], i["episode"]), ("held", 2), i)


if __name__ == "__main__":
    unittest.main()
