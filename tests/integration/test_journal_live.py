"""The journal under a running daemon (issue 12).

- journal.jsonl removed, replaced by another file, or truncated while the
  daemon runs: /readyz answers 503 with the reason, webhooks get 503
  journal_unavailable (Alertmanager retries), and no action starts.
- A bad record refuses the start, saying how to recover; `serve --recover`
  moves the damaged part aside (byte for byte), starts a new segment whose
  first record names the moved file and the last good hash, and starts
  paused; the chain verifies.
"""

import json
import os
import subprocess
import time
import unittest

import harness
from harness import SCALE, Server, make_payload, run_cli
from test_journal import exec_rule, read_journal, verify_chain

SUFFIX = ("; nothing more is written, no action starts and webhooks get 503 until rollbackd "
          "is restarted (see 'rollbackd serve --recover')")


class LiveJournalTest(unittest.TestCase):
    def setUp(self):
        if not harness.binary_available():
            self.skipTest(harness.skip_reason())

    def start(self, rules=None):
        srv = Server(config={"dry_run": False})
        self.addCleanup(srv.cleanup)
        self.ran = os.path.join(srv.tmp, "ran.txt")
        with open(os.path.join(srv.rules_dir, "rules.json"), "w") as f:
            json.dump(rules or exec_rule(self.ran, when={"firing_for": "2s"}), f)
        srv.start()
        self.path = os.path.join(srv.state_dir, "journal.jsonl")
        return srv

    def wait_not_ready(self, srv):
        deadline = time.monotonic() + 5 * SCALE
        while time.monotonic() < deadline:
            r = srv.request("GET", "/readyz")
            if r.status == 503:
                return r
            time.sleep(0.05)
        self.fail("/readyz stayed %d" % r.status)

    def assert_refusing(self, srv, why):
        r = self.wait_not_ready(srv)
        self.assertEqual(r.json(), {"status": "not_ready", "reason": "journal unavailable",
                                    "error": why + SUFFIX})
        r = srv.post_alerts(make_payload(n=1, service="after"))
        self.assertEqual(r.status, 503)
        self.assertEqual(r.json()["error"], "journal_unavailable")
        self.assertEqual(r.json()["message"], "the journal cannot be written (%s); nothing was "
                         "lost, retry later" % (why + SUFFIX))
        self.assertEqual(r.headers.get("retry-after"), "1")
        self.assertIsNotNone(srv.wait_log(
            lambda l: l.get("msg") == "journal: the journal file is damaged; acting stopped"
            and l.get("error") == why))

    def test_removed_while_running_stops_acting(self):
        srv = self.start()
        # Pending for 2s: the decision to act comes from a timer, after the rm.
        r = srv.post_alerts(make_payload(n=1, service="checkout", started_ago_s=0))
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual([d["outcome"] for d in r.json()["decisions"]], ["pending"])
        os.unlink(self.path)
        self.assert_refusing(srv, "%s was removed while rollbackd was running" % self.path)
        time.sleep(3.5 * SCALE)  # past firing_for
        self.assertFalse(os.path.exists(self.ran), "an action ran without a journal")
        self.assertEqual(srv.request("GET", "/readyz").status, 503)
        # The action that waits for its record holds the shutdown for the
        # grace period of running actions (30 s), then is abandoned unrun.
        self.assertEqual(srv.stop(timeout=60 * SCALE), 0)
        self.assertFalse(os.path.exists(self.ran), "an action ran without a journal")
        self.assertIsNotNone(srv.wait_log(
            lambda l: l.get("msg") == "shutdown grace period over; actions still running are "
                                      "abandoned"))
        self.assertIsNotNone(srv.wait_log(
            lambda l: l.get("msg") == "journal: records could not be written before exit"))

    def test_replaced_while_running(self):
        srv = self.start()
        other = self.path + ".new"
        with open(other, "wb") as f:
            f.write(b"")
        os.replace(other, self.path)
        self.assert_refusing(srv, "%s was replaced by another file while rollbackd was running"
                             % self.path)
        self.assertEqual(os.path.getsize(self.path), 0, "nothing is written into the new file")
        self.assertEqual(srv.stop(), 0)

    def test_truncated_while_running(self):
        srv = self.start()
        self.assertEqual(srv.post_alerts(make_payload(n=1, service="a")).status, 200)
        size = os.path.getsize(self.path)
        os.truncate(self.path, 0)
        self.assert_refusing(srv, "%s was truncated to 0 bytes while rollbackd was running (it "
                             "had written %d)" % (self.path, size))
        self.assertEqual(srv.stop(), 0)
        self.assertEqual(os.path.getsize(self.path), 0)


class RecoverTest(unittest.TestCase):
    def setUp(self):
        if not harness.binary_available():
            self.skipTest(harness.skip_reason())

    def test_refuse_then_recover(self):
        srv = Server(config={"dry_run": True})
        self.addCleanup(srv.cleanup)
        srv.start()
        for svc in ("one", "two", "three"):
            self.assertEqual(srv.post_alerts(make_payload(n=1, service=svc)).status, 200)
        self.assertEqual(srv.stop(), 0)
        state = srv.state_dir
        path = os.path.join(state, "journal.jsonl")
        with open(path, "rb") as f:
            data = f.read()
        lines = data.split(b"\n")[:-1]
        bad = next(i for i, l in enumerate(lines) if b'"two"' in l)
        offset = sum(len(l) + 1 for l in lines[:bad])
        lines[bad] = lines[bad].replace(b'"two"', b'"TWO"', 1)
        tampered = b"".join(l + b"\n" for l in lines)
        with open(path, "wb") as f:
            f.write(tampered)
        good = verify_chain([l for l in lines[:bad]])
        last_good = good[-1]

        cmd = [harness.BIN, "serve", "--config", srv.config_path]
        p = subprocess.run(cmd, capture_output=True, timeout=20 * SCALE, cwd=srv.tmp)
        self.assertEqual(p.returncode, 1)
        err = p.stderr.decode()
        self.assertIn("%s: offset %d: record seq %d is bad (seq %d: hash does not match the "
                      "record); nothing was changed: 'rollbackd audit verify --journal %s' "
                      "shows it, and 'rollbackd serve --recover' moves the damaged part aside "
                      "(kept), starts a new segment and starts paused"
                      % (path, offset, bad + 1, bad + 1, state), err)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), tampered, "a refused start changes nothing")

        srv.args = ["--recover"]
        srv.proc = None
        srv.lines, srv.logs = [], []
        srv.start()
        line = srv.wait_log(lambda l: l.get("msg", "").startswith("journal recovered: starting "
                                                                    "PAUSED"))
        self.assertIsNotNone(line)
        m = srv.metrics()
        self.assertEqual(harness.metric(m, "rollbackd_paused"), 1)
        self.assertEqual(srv.post_alerts(make_payload(n=1, service="four")).status, 200)
        self.assertEqual(srv.stop(), 0)

        names = sorted(os.listdir(state))
        moved = [n for n in names if n.startswith("journal.jsonl.damaged-")]
        self.assertEqual(len(moved), 1, names)
        self.assertIn("journal.000001.jsonl", names)
        with open(os.path.join(state, moved[0]), "rb") as f:
            self.assertEqual(f.read(), tampered[offset:], "the damaged part is kept as it was")
        with open(os.path.join(state, "journal.000001.jsonl"), "rb") as f:
            self.assertEqual(f.read(), tampered[:offset])

        recs = verify_chain(read_journal(state))
        self.assertEqual(len(recs), bad + len(read_journal(state)) - bad)
        rec = recs[bad]
        self.assertEqual(rec["type"], "journal_recovered")
        self.assertEqual(rec["seq"], bad + 1)
        self.assertEqual(rec["prev"], last_good["hash"])
        for k, v in {"moved": moved, "segment": "journal.jsonl", "offset": offset,
                     "bad_seq": bad + 1, "error": "seq %d: hash does not match the record"
                     % (bad + 1), "last_good_seq": bad,
                     "last_good_hash": last_good["hash"]}.items():
            self.assertEqual(rec[k], v, k)
        self.assertEqual(line["what"],
                         "record seq %d at journal.jsonl offset %d was bad (seq %d: hash does "
                         "not match the record); it and everything after it were moved to "
                         "[\"%s\"]; the chain goes on from seq %d (hash %s)"
                         % (bad + 1, offset, bad + 1, moved[0], bad, last_good["hash"]))
        self.assertIn(("pause", "recover"), [(r["type"], r.get("by")) for r in recs[bad:]])
        r = run_cli(["audit", "verify", "--journal", state])
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    unittest.main()
