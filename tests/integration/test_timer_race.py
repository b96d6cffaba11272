"""Timer races (issue 11 item 4): firing_for and approve_timeout timers racing
resolved notifications and approve-link POSTs, with workers 2 and 4.

Each round posts 24 alerts (24 services, one incident each) whose timers fall
10 ms apart, then sends each one's resolved notification (or approve link) so
that it lands between 2 ms before and 2 ms after that timer; rounds start
every 0.35 s (0.4 s), for ROUND_SECONDS. A watchdog asks /healthz every 100 ms: no
answer within 2 s (or any request of the test not answered within 2 s) is a
hang, and the test fails saying so, with the daemon's thread stacks when gdb
is there. After the rounds, the journal says, for each incident, exactly
what was decided and in what order:

- firing_for: resolved before its timer -> pending, resolved (no decision
  after it, nothing run); timer first -> pending, dry_run (trigger
  firing_for), resolved.
- approve_timeout: link first -> the link's 200, one approve by the link;
  timer first -> the link's 409, one approve by the timer; never both, and
  exactly one action run either way.

Python 3 standard library only.
"""

import heapq
import http.client
import json
import os
import shutil
import subprocess
import threading
import time
import unittest
import urllib.parse

import harness
from harness import SCALE, Server, am_fingerprint, make_payload, rfc3339
from test_ack import LINKS_KEY, link_query
from test_journal import read_journal, verify_chain

SERVICES = 24
ROUND_SECONDS = 10.0     # per test: 4 tests stay well within a minute
HANG_AFTER = 2.0         # /healthz (or any request) slower than this is a hang
DELTAS_MS = (-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0)


def race_alert(svc, status, starts):
    labels = {"alertname": "Race", "service": svc}
    return {"status": status, "labels": labels, "annotations": {"summary": "race"},
            "startsAt": starts, "endsAt": "0001-01-01T00:00:00Z" if status == "firing"
            else rfc3339(), "fingerprint": am_fingerprint(labels)}


class Hang(Exception):
    pass


class Client:
    """One kept-alive connection; every request answered within HANG_AFTER
    or Hang."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def request(self, method, path, body, content_type):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                       timeout=HANG_AFTER * SCALE)
            try:
                self.conn.request(method, path, body=body, headers={"Content-Type": content_type})
                r = self.conn.getresponse()
                data = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return r.status, data
            except TimeoutError:
                raise Hang("%s %s not answered within %.1f s"
                           % (method, path, HANG_AFTER * SCALE)) from None
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # the server closed an idle kept-alive connection: once more, fresh
                self.conn.close()
                self.conn = None
                if attempt:
                    raise

    def close(self):
        if self.conn is not None:
            self.conn.close()


class Sender(threading.Thread):
    """Runs fn(client) at its time on its own connection, so that a slow
    request elsewhere does not make these late."""

    def __init__(self, case):
        super().__init__(daemon=True)
        self.case = case
        self.client = Client(case.srv.port)
        self.heap = []
        self.seq = 0
        self.cv = threading.Condition()
        self.stopping = False
        self.error = None

    def at(self, when, fn):
        with self.cv:
            self.seq += 1
            heapq.heappush(self.heap, (when, self.seq, fn))
            self.cv.notify()

    def finish(self):
        """Run what is left, then stop."""
        with self.cv:
            self.stopping = True
            self.cv.notify()
        self.join(30 * SCALE)

    def run(self):
        try:
            while not self.case.hung:
                with self.cv:
                    if not self.heap:
                        if self.stopping:
                            return
                        self.cv.wait(0.1)
                        continue
                    when = self.heap[0][0]
                    left = when - time.time()
                    if left > 0.001:
                        self.cv.wait(left - 0.001)
                        continue
                    _, _, fn = heapq.heappop(self.heap)
                while time.time() < when:
                    pass
                fn(self.client)
        except Hang as e:
            self.case.hung = str(e)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e
        finally:
            self.client.close()


class TimerRaceCase(unittest.TestCase):
    WORKERS = 2
    SERVICES = SERVICES
    SPACING = 0.010      # between two timers of a round
    ROUND_EVERY = 0.35   # rounds overlap, but no request is due near another
    RULE = None
    DRY_RUN = True

    def setUp(self):
        self.srv = Server(config=lambda s: {
            "dry_run": self.DRY_RUN,
            "workers": self.WORKERS,
            "public_url": "https://rollbackd.example.com",
            "limits": {"max_rollbacks_per_hour": 1000000, "max_concurrent_actions": 8},
            "auth": {"links": {"secret": s.secret("links", LINKS_KEY), "ttl": "1h"}},
        }, log_level="info")
        with open(os.path.join(self.srv.rules_dir, "race.json"), "w") as f:
            json.dump({"rules": [self.RULE]}, f)
        self.srv.start()
        self.hung = None
        self.stop_watch = threading.Event()
        self.watch = threading.Thread(target=self.watchdog, daemon=True)
        self.watch.start()
        self.client = Client(self.srv.port)
        self.events = []   # heap of (time.time() when due, seq, fn)
        self.seq = 0

    def tearDown(self):
        self.stop_watch.set()
        self.watch.join(10)
        self.client.close()
        try:
            if self.hung is None and self.srv.proc.poll() is None:
                rc = self.srv.stop()
                self.assertEqual(rc, 0, "rollbackd exited %r after SIGTERM" % rc)
            elif self.srv.proc.poll() is None:
                self.srv.kill()
        finally:
            self.srv.cleanup()

    # -- hang detection

    def watchdog(self):
        while not self.stop_watch.wait(0.1):
            t0 = time.monotonic()
            try:
                r = harness.http_request(self.srv.port, "GET", "/healthz",
                                         timeout=HANG_AFTER * SCALE)
                if r.status != 200:
                    self.hung = "/healthz answered %d" % r.status
                    return
            except Exception as e:  # noqa: BLE001
                self.hung = "/healthz not answered within %.1f s (%s after %.2f s)" % (
                    HANG_AFTER * SCALE, type(e).__name__, time.monotonic() - t0)
                return

    def stacks(self):
        gdb = shutil.which("gdb")
        if not gdb or self.srv.proc.poll() is not None:
            return "(no gdb: no stacks)"
        try:
            p = subprocess.run([gdb, "-p", str(self.srv.proc.pid), "-batch", "-ex",
                                "thread apply all bt 12"], capture_output=True, timeout=60)
        except subprocess.TimeoutExpired:
            return "(gdb timed out)"
        # thread headers and the frames that name a function, without arguments
        lines = []
        for l in p.stdout.decode("utf-8", "replace").splitlines():
            if l.startswith("Thread "):
                lines.append(l)
            elif l.startswith("#") and " in " in l:
                fn, _, where = l.partition(" in ")[2].partition(" (")
                at = where.rpartition(" at ")[2] if " at " in where else ""
                lines.append("  %s %s" % (fn, at))
        return "\n".join(lines[:120])

    def fail_hang(self, what, rnd):
        self.fail("rollbackd hung (workers %d, round %d): %s\nthreads:\n%s"
                  % (self.WORKERS, rnd, what, self.stacks()))

    # -- scheduling

    def at(self, when, fn):
        self.seq += 1
        heapq.heappush(self.events, (when, self.seq, fn))

    def run_events(self, new_round):
        """Start a round every ROUND_EVERY for ROUND_SECONDS; run every event at
        its time (the last 1 ms spun, for precision). Returns rounds run."""
        t_end = time.time() + ROUND_SECONDS * SCALE
        rounds = 0
        next_round = time.time()
        while True:
            if next_round <= t_end and (not self.events or next_round <= self.events[0][0]):
                when, fn = next_round, lambda r=rounds: new_round(r)
                rounds += 1
                next_round += self.ROUND_EVERY
            elif self.events:
                when, _, fn = heapq.heappop(self.events)
            else:
                return rounds
            while True:
                left = when - time.time()
                if left <= 0:
                    break
                if left > 0.001:
                    time.sleep(left - 0.001)
            if self.hung:
                self.fail_hang(self.hung, rounds)
            try:
                fn()
            except Hang as e:
                self.hung = str(e)
            if self.hung:
                self.fail_hang(self.hung, rounds)

    def post_json(self, payload):
        status, data = self.client.request("POST", "/v1/alerts", json.dumps(payload).encode(),
                                           "application/json")
        self.assertEqual(status, 200, data[:300])
        return json.loads(data)

    def journal_by_incident(self):
        recs = verify_chain(read_journal(self.srv.state_dir))
        out = {}
        for r in recs:
            if r.get("incident"):
                out.setdefault(r["incident"], []).append(r)
        return out

    def settle(self, pred, what, timeout=10.0):
        end = time.monotonic() + timeout * SCALE
        while time.monotonic() < end:
            if self.hung:
                self.fail_hang(self.hung, -1)
            v = pred()
            if v:
                return v
            time.sleep(0.05)
        self.fail("not settled within %.0f s: %s" % (timeout * SCALE, what))


class FiringForRace(TimerRaceCase):
    RULE = {"name": "race", "matchers": ['alertname="Race"'], "group_by": ["service"],
            "mode": "auto", "when": {"firing_for": "1s"},
            "actions": [{"type": "exec", "argv": ["/bin/true"], "timeout": "5s"}]}

    def test_resolved_lands_on_the_firing_for_timer(self):
        sent = {}   # service -> (incident, resolve decision, lateness ms)

        def new_round(rnd):
            now = time.time()
            first = now + 0.1 - 1.0    # the first timer fires 100 ms from now
            alerts = []
            for k in range(self.SERVICES):
                svc = "r%d-s%d" % (rnd, k)
                starts_ms = int((first + k * self.SPACING) * 1000)
                starts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(starts_ms // 1000)) + \
                    ".%03dZ" % (starts_ms % 1000)
                alerts.append(race_alert(svc, "firing", starts))
                fire_at = starts_ms / 1000.0 + 1.0
                delta = DELTAS_MS[(rnd + k) % len(DELTAS_MS)] / 1000.0
                self.at(fire_at + delta, lambda svc=svc, starts=starts, fire_at=fire_at:
                        resolve(svc, starts, fire_at))
            obj = self.post_json(make_payload(alerts=alerts))
            for d in obj["decisions"]:
                self.assertEqual(d["outcome"], "pending", d)
            for a, d in zip(alerts, obj["decisions"]):
                sent[a["labels"]["service"]] = [d["incident"], None, None]

        def resolve(svc, starts, fire_at):
            offset = (time.time() - fire_at) * 1000   # ms after the timer's due time
            obj = self.post_json(make_payload(status="resolved",
                                              alerts=[race_alert(svc, "resolved", starts)]))
            (d,) = obj["decisions"]
            self.assertEqual((d["outcome"], d["reason"]), ("resolved", "episode 1 resolved"), d)
            sent[svc][1:] = [d, offset]

        rounds = self.run_events(new_round)
        self.assertGreater(rounds, 5)
        self.assertEqual(len(sent), rounds * self.SERVICES)
        self.assertTrue(all(v[1] for v in sent.values()), "every resolve answered")

        # Each incident ends resolved; the journal says which came first.
        def all_done():
            j = self.journal_by_incident()
            done = [inc for inc, _, _ in sent.values()
                    if any(r["type"] == "resolved" for r in j.get(inc, []))]
            return j if len(done) == len(sent) else None
        journal = self.settle(all_done, "a resolved record for every incident")
        first = {"resolve": 0, "timer": 0}
        by_offset = {}   # offset (0.5 ms buckets) -> [resolved first, timer first]
        for svc, (inc, d, offset) in sent.items():
            bucket = by_offset.setdefault(round(offset * 2) / 2, [0, 0])
            recs = journal[inc]
            decisions = [(r["outcome"], r.get("trigger"), r["state"]) for r in recs
                         if r["type"] == "decision"]
            # the incident's own records (the store's target_claimed /
            # target_released records are about its target, checked apart)
            kinds = [r["type"] for r in recs if not r["type"].startswith("target_")]
            if decisions == [("pending", None, "pending"), ("resolved", None, "resolved")]:
                # resolved before the timer: nothing decided after, nothing ran
                first["resolve"] += 1
                bucket[0] += 1
                self.assertEqual(kinds, ["decision", "decision", "resolved"], recs)
            else:
                first["timer"] += 1
                bucket[1] += 1
                self.assertEqual(decisions, [("pending", None, "pending"),
                                             ("dry_run", "firing_for", "dry_run"),
                                             ("resolved", None, "resolved")],
                                 "%s (%s): %s" % (svc, inc, json.dumps(recs)[:2000]))
                self.assertEqual(kinds, ["decision", "decision", "decision", "resolved"], recs)
            self.assertNotIn("action_started", kinds)
        states = {i["id"]: i["state"] for i in self.srv.all_incidents()}
        self.assertEqual({states[inc] for inc, _, _ in sent.values()}, {"resolved"})
        print("\ntimer race (firing_for, workers %d): %d rounds, %d incidents, resolved first "
              "%d, timer first %d; by ms from the timer's due time (resolved/timer first): %s"
              % (self.WORKERS, rounds, len(sent), first["resolve"], first["timer"],
                 " ".join("%+.1f:%d/%d" % (k, v[0], v[1]) for k, v in sorted(by_offset.items())
                          if -3 <= k <= 3)))


class FiringForRace4(FiringForRace):
    WORKERS = 4


class ApproveTimeoutRace(TimerRaceCase):
    # Each approval runs an action: 16 per round keeps this machine's load
    # sane. The links go out on their own connection and thread.
    SERVICES = 16
    SPACING = 0.010
    ROUND_EVERY = 0.4
    DRY_RUN = False
    RULE = {"name": "race", "matchers": ['alertname="Race"'], "group_by": ["service"],
            "mode": "approve", "approve_timeout": "1s",
            "actions": [{"type": "exec", "argv": ["/bin/true"], "timeout": "5s"}]}

    def test_approve_link_lands_on_the_approve_timeout(self):
        sent = {}   # incident -> [service, link status, ms after the timer's due time]

        # A link that wins runs the action before its answer: round-robin over
        # a few connections, so that one slow answer does not delay the next.
        approvers = [Sender(self) for _ in range(4)]
        for a in approvers:
            a.start()

        def new_round(rnd):
            base = time.time()
            for k in range(self.SERVICES):
                self.at(base + k * self.SPACING, lambda svc="r%d-s%d" % (rnd, k), k=k:
                        fire(svc, DELTAS_MS[(rnd + k) % len(DELTAS_MS)] / 1000.0))

        def fire(svc, delta):
            t0 = time.time()
            obj = self.post_json(make_payload(alerts=[race_alert(svc, "firing",
                                                                 rfc3339(delta_s=-60))]))
            t1 = time.time()
            (d,) = obj["decisions"]
            self.assertEqual(d["outcome"], "awaiting_approval", d)
            sent[d["incident"]] = [svc, None, None]
            # The timer is armed when the firing is decided, before the answer
            # waits for the journal's fsync: about when the request was sent.
            due = t0 + 1.0
            approvers[len(sent) % len(approvers)].at(
                due + delta, lambda client, inc=d["incident"], due=due: approve(client, inc, due))
            self.assertLess(t1 - t0, HANG_AFTER * SCALE)

        def approve(client, inc, due):
            sent[inc][2] = (time.time() - due) * 1000
            q, _, _ = link_query("approve", inc)
            # the approver types the target (issue 16): service=<svc>
            body = (q + "&by=" + urllib.parse.quote("race") + "&target=" +
                    urllib.parse.quote("service=" + sent[inc][0])).encode()
            status, data = client.request("POST", "/v1/ack/" + inc, body,
                                          "application/x-www-form-urlencoded")
            self.assertIn(status, (200, 409), data[:300])  # which one is the race's outcome:
            sent[inc][1] = status                           # checked against the journal below

        try:
            rounds = self.run_events(new_round)
        finally:
            for a in approvers:
                a.finish()
        if self.hung:
            self.fail_hang(self.hung, rounds)
        for a in approvers:
            if a.error:
                raise a.error
            self.assertFalse(a.is_alive(), "a link sender did not finish")
        self.assertGreater(rounds, 5)
        self.assertEqual(len(sent), rounds * self.SERVICES)
        self.assertTrue(all(v[1] for v in sent.values()), "every link answered")

        def all_done():
            j = self.journal_by_incident()
            done = [inc for inc in sent
                    if any(r["type"] == "action_finished" for r in j.get(inc, []))]
            return j if len(done) == len(sent) else None
        journal = self.settle(all_done, "one action_finished for every incident", 20.0)
        by = {"link": 0, "timer": 0}
        by_offset = {}   # offset (0.5 ms buckets) -> [link first, timer first]
        for inc, (svc, status, offset) in sent.items():
            bucket = by_offset.setdefault(round(offset * 2) / 2, [0, 0])
            bucket[0 if status == 200 else 1] += 1
            recs = journal[inc]
            approvals = [(r["by"], r["via"]) for r in recs if r["type"] == "approve"]
            decisions = [(r["outcome"], r.get("trigger")) for r in recs if r["type"] == "decision"]
            if status == 200:
                by["link"] += 1
                self.assertEqual(approvals, [("race", "link")], recs)
                self.assertEqual(decisions, [("awaiting_approval", None), ("acting", "approved")],
                                 recs)
            else:
                by["timer"] += 1
                self.assertEqual(status, 409)
                self.assertEqual(approvals, [("approve_timeout", "timer")], recs)
                self.assertEqual(decisions, [("awaiting_approval", None),
                                             ("acting", "approve_timeout")], recs)
            self.assertEqual([r["type"] for r in recs if r["type"].startswith("action_")],
                             ["action_started", "action_finished"], recs)
        print("\ntimer race (approve_timeout, workers %d): %d rounds, %d incidents, approved by "
              "the link %d, by the timer %d; by ms from the timer's due time (link/timer "
              "first): %s" % (self.WORKERS, rounds, len(sent), by["link"], by["timer"],
                              " ".join("%+.1f:%d/%d" % (k, v[0], v[1])
                                       for k, v in sorted(by_offset.items()) if -3 <= k <= 3)))


class ApproveTimeoutRace4(ApproveTimeoutRace):
    WORKERS = 4


if __name__ == "__main__":
    unittest.main()
