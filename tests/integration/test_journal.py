"""Journal faults (issue 4, SPEC §8) against the real binary.

- kill -9 while 16 clients send 400 notifications; restart; send them all
  again: every notification that got a 200 is in the journal, each
  incident's rollback ran exactly once (or, when the kill cut it off, it is
  journaled as unknown and not re-run), and the chain verifies.
- a full disk (state_dir on a small tmpfs) answers 503 journal_unavailable
  and /readyz 503; once space is freed, 200 again and the chain is whole.
- a torn last line is truncated at start and a journal_truncated record
  says so; a tampered middle line stops the daemon from starting, naming
  the record.

The chain is checked here with hashlib, exactly as SPEC §8 tells anyone to.
"""

import concurrent.futures
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

import harness
from harness import SCALE, Server, make_alert, make_payload

ZERO = "0" * 64


def read_journal(state_dir):
    """Every line of every segment, in order."""
    names = sorted(n for n in os.listdir(state_dir)
                   if n.startswith("journal.") and n.endswith(".jsonl") and n != "journal.jsonl")
    names.append("journal.jsonl")
    lines = []
    for n in names:
        p = os.path.join(state_dir, n)
        if os.path.exists(p):
            with open(p, "rb") as f:
                lines.extend(f.read().split(b"\n")[:-1])
    return lines


def verify_chain(lines):
    """SPEC §8 in a few lines: strip the hash, BLAKE2b-256 what is left,
    compare, and check prev and seq. Returns the parsed records."""
    prev, out = ZERO, []
    for i, line in enumerate(lines):
        head, sep, tail = line.rpartition(b',"hash":"')
        assert sep and tail.endswith(b'"}'), "line %d has no hash member" % (i + 1)
        want = tail[:-2].decode()
        got = hashlib.blake2b(head + b"}", digest_size=32).hexdigest()
        assert got == want, "line %d: hash %s != %s" % (i + 1, got, want)
        rec = json.loads(line)
        assert rec["seq"] == i + 1, "line %d has seq %r" % (i + 1, rec["seq"])
        assert rec["prev"] == prev, "line %d: prev does not chain" % (i + 1)
        assert list(rec.keys())[-2:] == ["prev", "hash"], "prev/hash are not last"
        prev = want
        out.append(rec)
    return out


def exec_rule(ran_file, name="crash-rule", **over):
    rule = {
        "name": name,
        "matchers": ['alertname="RollbackErrorRate"'],
        "group_by": ["service"],
        "mode": "auto",
        "actions": [{"type": "exec", "timeout": "30s",
                     "argv": ["/bin/sh", "-c", 'echo "$ROLLBACKD_INCIDENT" >> "$0"', ran_file]}],
        "cooldown": "1h",
    }
    rule.update(over)
    return {"rules": [rule]}


class JournalTestCase(unittest.TestCase):
    def setUp(self):
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.cleanup()

    def server(self, **kw):
        s = Server(**kw)
        self.servers.append(s)
        return s

    def write_rules(self, srv, rules):
        with open(os.path.join(srv.rules_dir, "rules.json"), "w") as f:
            json.dump(rules, f)

    def restart(self, srv):
        """A new process on the same config and state."""
        srv.stop()
        srv.proc = None
        srv.lines, srv.logs = [], []
        srv.start()
        return srv


class KillNineTest(JournalTestCase):
    N_NOTIFICATIONS = 400
    N_CLIENTS = 16
    N_SERVICES = 40

    def payloads(self):
        out = []
        for i in range(self.N_NOTIFICATIONS):
            svc = "svc-%02d" % (i % self.N_SERVICES)
            a = make_alert(service=svc, extra_labels={"pod": "pod-%03d" % i})
            out.append(make_payload(alerts=[a]))
        return out

    def send_all(self, srv, payloads, stop_after=None, on_count=None):
        """Post every payload from N_CLIENTS threads; returns {index: status}."""
        results = {}
        lock = threading.Lock()

        def one(i):
            try:
                r = srv.post_alerts(payloads[i], timeout=10 * SCALE)
                st = r.status
            except OSError:
                st = None
            with lock:
                results[i] = st
                if on_count and sum(1 for v in results.values() if v == 200) == on_count[0]:
                    on_count[1]()
            return st

        with concurrent.futures.ThreadPoolExecutor(self.N_CLIENTS) as pool:
            list(pool.map(one, range(len(payloads))))
        return results

    def test_kill_nine_then_resend(self):
        srv = self.server(config={"dry_run": False,
                                  "limits": {"max_rollbacks_per_hour": 1000,
                                             "max_concurrent_actions": 8}})
        ran = os.path.join(srv.tmp, "ran.txt")
        self.write_rules(srv, exec_rule(ran))
        srv.start()
        payloads = self.payloads()

        killed = threading.Event()

        def kill():
            if not killed.is_set():
                killed.set()
                srv.proc.send_signal(signal.SIGKILL)

        first = self.send_all(srv, payloads, on_count=(self.N_NOTIFICATIONS // 2, kill))
        kill()
        srv.proc.wait()
        srv._join()
        ok_first = {i for i, st in first.items() if st == 200}
        self.assertGreater(len(ok_first), 0)

        # Every notification that got a 200 is in the journal, and the chain
        # is whole (a torn last line is cut at start; check after restart).
        srv.proc = None
        srv.lines, srv.logs = [], []
        srv.start()
        second = self.send_all(srv, payloads)
        self.assertEqual(sorted(st for st in second.values() if st != 200), [],
                         "every resend must be accepted")
        # Let the actions decided by the resend finish.
        deadline = time.monotonic() + 30 * SCALE
        while time.monotonic() < deadline:
            incs = srv.request("GET", "/v1/incidents").json()
            if len(incs) == self.N_SERVICES and all(i["state"] != "acting" for i in incs):
                break
            time.sleep(0.1)
        srv.stop()

        recs = verify_chain(read_journal(srv.state_dir))
        journaled = {r["fingerprint"] for r in recs if r["type"] == "notification"}
        for i in ok_first:
            fp = payloads[i]["alerts"][0]["fingerprint"]
            self.assertIn(fp, journaled, "notification %d got a 200 but is not journaled" % i)
        self.assertTrue(any(r["type"] == "started" for r in recs[1:]), "no second start")

        with open(ran) as f:
            runs = [l.strip() for l in f if l.strip()]
        counts = {}
        for inc in runs:
            counts[inc] = counts.get(inc, 0) + 1
        unknown = {r["incident"] for r in recs
                   if r["type"] == "action_finished" and r["result"] == "unknown"}
        incs = {r["incident"] for r in recs if r["type"] == "decision" and r["incident"]}
        self.assertEqual(len(incs), self.N_SERVICES)
        for inc in incs:
            n = counts.get(inc, 0)
            if inc in unknown:
                self.assertLessEqual(n, 1, "%s ran %d times" % (inc, n))
            else:
                self.assertEqual(n, 1, "%s ran %d times" % (inc, n))
        started = [r for r in recs if r["type"] == "action_started"]
        self.assertEqual(len(started), self.N_SERVICES,
                         "one action_started per incident, never a second")


class TornAndTamperedTest(JournalTestCase):
    def first_run(self):
        srv = self.server(config={"dry_run": False})
        ran = os.path.join(srv.tmp, "ran.txt")
        self.write_rules(srv, exec_rule(ran))
        srv.start()
        r = srv.post_alerts(make_payload(n=2))
        self.assertEqual(r.status, 200, r)
        self.assertTrue(srv.wait_log(lambda l: l.get("msg") == "actions finished"))
        srv.stop()
        return srv

    def test_torn_last_line_is_truncated_and_journaled(self):
        srv = self.first_run()
        path = os.path.join(srv.state_dir, "journal.jsonl")
        good = os.path.getsize(path)
        torn = b'{"seq":99,"ts":"2026-11-21T00:00:00Z","type":"notif'
        with open(path, "ab") as f:
            f.write(torn)
        self.restart(srv)
        self.assertTrue(srv.wait_log(lambda l: "torn" in l.get("msg", "")))
        r = srv.post_alerts(make_payload(n=2))
        self.assertEqual(r.status, 200)
        self.assertTrue(all(d["outcome"] == "repeat" for d in r.json()["decisions"]),
                        "a restart must not decide the same episode again")
        srv.stop()
        recs = verify_chain(read_journal(srv.state_dir))
        cut = [r for r in recs if r["type"] == "journal_truncated"]
        self.assertEqual(len(cut), 1)
        self.assertEqual(cut[0]["offset"], good)
        self.assertEqual(cut[0]["bytes"], len(torn))
        with open(os.path.join(srv.tmp, "ran.txt")) as f:
            self.assertEqual(len(f.readlines()), 1, "the rollback ran once")

    def test_tampered_middle_line_refuses_to_start(self):
        srv = self.first_run()
        path = os.path.join(srv.state_dir, "journal.jsonl")
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")
        offset = sum(len(l) + 1 for l in lines[:2])
        lines[2] = lines[2].replace(b'"firing"', b'"resolv"', 1)
        with open(path, "wb") as f:
            f.write(b"\n".join(lines))
        srv.proc = None
        srv.lines, srv.logs = [], []
        cmd = [harness.BIN, "serve", "--config", srv.config_path]
        p = subprocess.run(cmd, capture_output=True, timeout=20 * SCALE, cwd=srv.tmp)
        self.assertEqual(p.returncode, 1)
        err = p.stderr.decode()
        self.assertIn("offset %d" % offset, err)
        self.assertIn("record seq 3 is bad", err)
        self.assertIn("hash does not match", err)


class SegmentTest(JournalTestCase):
    def test_segments_chain_and_replay(self):
        srv = self.server(config={"dry_run": False, "journal": {"segment_bytes": 4096},
                                  "limits": {"max_rollbacks_per_hour": 100}})
        ran = os.path.join(srv.tmp, "ran.txt")
        self.write_rules(srv, exec_rule(ran))
        srv.start()
        for i in range(12):
            r = srv.post_alerts(make_payload(n=2, service="svc-%d" % i))
            self.assertEqual(r.status, 200, r)
        self.restart(srv)
        for i in range(12):
            r = srv.post_alerts(make_payload(n=2, service="svc-%d" % i))
            self.assertEqual([d["outcome"] for d in r.json()["decisions"]], ["repeat"] * 2)
        srv.stop()
        names = sorted(os.listdir(srv.state_dir))
        segs = [n for n in names if n.startswith("journal.0")]
        self.assertGreaterEqual(len(segs), 3, names)
        self.assertEqual(segs[0], "journal.000001.jsonl")
        for n in segs:  # each closed segment passed the size, then stopped
            self.assertGreaterEqual(os.path.getsize(os.path.join(srv.state_dir, n)), 4096)
        recs = verify_chain(read_journal(srv.state_dir))
        with open(ran) as f:
            self.assertEqual(len(f.readlines()), 12)
        self.assertEqual(len([r for r in recs if r["type"] == "action_started"]), 12)


def can_mount_tmpfs():
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    d = tempfile.mkdtemp(prefix="rollbackd-tmpfs-probe-")
    try:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", d],
                            capture_output=True).returncode == 0
        if ok:
            subprocess.run(["umount", d], capture_output=True)
        return ok
    finally:
        os.rmdir(d)


@unittest.skipUnless(can_mount_tmpfs(), "cannot mount a tmpfs here (needs root and mount); "
                     "the full-disk test is skipped")
class FullDiskTest(JournalTestCase):
    def setUp(self):
        super().setUp()
        self.mnt = tempfile.mkdtemp(prefix="rollbackd-full-")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", self.mnt],
                       check=True)

    def tearDown(self):
        super().tearDown()
        subprocess.run(["umount", "-l", self.mnt], capture_output=True)
        os.rmdir(self.mnt)

    def fill(self):
        filler = os.path.join(self.mnt, "filler")
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 512)
        except OSError:
            pass
        finally:
            os.close(fd)
        return filler

    def test_full_disk_503_then_200(self):
        state = os.path.join(self.mnt, "state")
        srv = self.server(config={"state_dir": state, "dry_run": True})
        self.write_rules(srv, exec_rule(os.path.join(srv.tmp, "ran.txt")))
        srv.start()
        self.assertEqual(srv.post_alerts(make_payload(n=1, service="before")).status, 200)
        filler = self.fill()

        big = make_payload(n=20, service="during", value="0.5")
        r = srv.post_alerts(big)
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.json()["error"], "journal_unavailable")
        self.assertIn("No space left on device", r.json()["message"])
        self.assertEqual(r.headers.get("retry-after"), "1")
        rz = srv.request("GET", "/readyz")
        self.assertEqual(rz.status, 503)
        self.assertEqual(rz.json()["reason"], "journal unavailable")
        # While failing, new work is refused before it changes anything.
        r2 = srv.post_alerts(make_payload(n=1, service="refused"))
        self.assertEqual(r2.status, 503)
        m = srv.metrics()
        self.assertGreaterEqual(harness.metric(m, "rollbackd_webhooks_total",
                                               result="journal_unavailable"), 2)

        os.unlink(filler)
        deadline = time.monotonic() + 10 * SCALE
        while time.monotonic() < deadline:
            if srv.request("GET", "/readyz").status == 200:
                break
            time.sleep(0.1)
        self.assertEqual(srv.request("GET", "/readyz").status, 200)
        r = srv.post_alerts(big)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(srv.post_alerts(make_payload(n=1, service="refused")).status, 200)
        srv.stop()

        recs = verify_chain(read_journal(state))
        fps = {r["fingerprint"] for r in recs if r["type"] == "notification"}
        for a in big["alerts"]:
            self.assertIn(a["fingerprint"], fps)
        services = {r["labels"]["service"] for r in recs if r["type"] == "notification"}
        self.assertEqual(services, {"before", "during", "refused"})


if __name__ == "__main__":
    unittest.main()
