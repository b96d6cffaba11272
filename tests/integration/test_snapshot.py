"""Journal snapshots (issue 12): a clean stop writes state_dir/snapshot.jsonl,
a start replays it and only the records after it, and what the daemon then
holds is what a replay of the whole journal gives - incidents, evicted
episodes (tombstones), the hourly cap, pause, changes. A snapshot that does
not match (its digest, the journal's files) is not used: the whole journal
is checked and replayed, as before.

Python 3 standard library only.
"""

import json
import os
import shutil
import signal
import time
import unittest

import harness
from harness import Server, make_payload, rfc3339
from test_memory import RULES, alert, resolved_of  # the same incidents as the memory bounds

CONFIG = {"dry_run": False, "limits": {"max_incidents": 6}}


def new_server(journal=None):
    def config(s):
        with open(os.path.join(s.rules_dir, "rules.json"), "w") as f:
            json.dump({"rules": RULES}, f)
        c = json.loads(json.dumps(CONFIG))
        if journal:
            c["journal"] = dict(journal)
        return c
    return Server(config=config)


class SnapshotCase(unittest.TestCase):
    def setUp(self):
        if not harness.binary_available():
            self.fail(harness.skip_reason())
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.cleanup()

    def server(self, journal=None):
        s = new_server(journal)
        self.servers.append(s)
        return s

    def decide(self, srv, *alerts):
        p = make_payload(alerts=list(alerts))
        p["status"] = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
        body = json.dumps(p).encode()
        r = srv.request("POST", "/v1/alerts", body=body,
                        headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 200, r.text)
        return r.json()["decisions"]

    def replayed(self, srv, mark=0):
        lines = [l for l in srv.logs_since(mark) if l.get("msg") == "journal replayed"]
        self.assertEqual(len(lines), 1, srv.lines[-20:])
        return lines[0]

    def written(self, srv, mark=0):
        lines = [l for l in srv.logs_since(mark) if l.get("msg") == "snapshot written"]
        self.assertEqual(len(lines), 1, srv.lines[-20:])
        return lines[0]

    def started_from(self, srv, trailer):
        """srv's start used the snapshot whose trailer this is, whole."""
        self.assertEqual([l for l in srv.logs if l.get("msg") ==
                          "snapshot not used; replaying the whole journal"], [])
        self.assertEqual(self.replayed(srv)["snapshot_lines"], str(trailer["lines"]))

    def restart(self, srv):
        srv.proc = None
        srv.lines, srv.logs = [], []
        srv.start()

    def view(self, srv):
        """What the daemon holds: every incident in full, pause, the gauges
        replay rebuilds."""
        out = {"incidents": {}}
        listing = srv.all_incidents()
        out["order"] = [i["id"] for i in listing]
        for inc in listing:
            r = srv.request("GET", "/v1/incidents/" + inc["id"])
            self.assertEqual(r.status, 200, r.text)
            out["incidents"][inc["id"]] = r.json()
        m = srv.metrics()
        for name in ("rollbackd_incidents_in_memory", "rollbackd_paused",
                     "rollbackd_incidents_open"):
            out[name] = harness.metric(m, name)
        return out

    def scenario(self, srv):
        """Incidents that go (evicted: tombstones), one that acts (the hourly
        cap, its claim, its cooldown), one that comes back after its
        eviction, pause, a change."""
        w = [alert("w%d" % i) for i in range(8)]
        ids = [d["incident"] for d in self.decide(srv, *w[0:5])]
        self.decide(srv, resolved_of(w[0]), resolved_of(w[1]))
        act = self.decide(srv, alert("a0", alertname="Act"))[0]
        self.assertEqual(act["outcome"], "acting", act)
        srv.wait_log(lambda l: l.get("msg") == "action finished")
        self.decide(srv, w[5], w[6])  # w0 and w1 go
        self.assertEqual(srv.request("GET", "/v1/incidents/" + ids[0]).status, 404)
        late = self.decide(srv, w[1])[0]  # back, as a repeat of its episode 1
        self.assertEqual(late["outcome"], "repeat", late)
        r = srv.request("POST", "/v1/pause", body=b"{}",
                        headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 200, r.text)
        change = {"target": "svc/checkout", "revision": "v2", "previous_revision": "v1",
                  "at": rfc3339(), "source": "test"}
        r = srv.request("POST", "/v1/changes", body=json.dumps(change).encode(),
                        headers={"Content-Type": "application/json"})
        self.assertIn(r.status, (200, 201, 202), r.text)
        return w, ids

    def journal_lines(self, srv):
        n = 0
        for name in os.listdir(srv.state_dir):
            if name.startswith("journal") and name.endswith(".jsonl"):
                with open(os.path.join(srv.state_dir, name)) as f:
                    n += sum(1 for _ in f)
        return n

    def twin(self, srv, keep_snapshot=False, journal=None):
        """A second daemon on a copy of srv's journal (without the snapshot
        unless told): what a replay of the whole journal gives."""
        b = self.server(journal)
        for name in os.listdir(srv.state_dir):
            if name == "snapshot.jsonl" and not keep_snapshot:
                continue
            src = os.path.join(srv.state_dir, name)
            if os.path.isfile(src):
                shutil.copy2(src, os.path.join(b.state_dir, name))
        return b


class SnapshotTest(SnapshotCase):
    def test_restart_from_snapshot_equals_full_replay(self):
        a = self.server()
        a.start()
        w, ids = self.scenario(a)
        before = self.view(a)
        self.assertEqual(a.stop(), 0)
        info = self.written(a)
        path = os.path.join(a.state_dir, "snapshot.jsonl")
        with open(path) as f:
            lines = f.read().splitlines()
        trailer = json.loads(lines[-1])
        self.assertEqual(trailer["snapshot"], 1)
        self.assertEqual(trailer["lines"], len(lines) - 1)
        self.assertEqual(int(info["records_kept"]) + int(info["state_lines"]), len(lines) - 1)
        self.assertEqual(trailer["seq"], self.journal_lines(a))
        kinds = [json.loads(l)["type"] for l in lines[:-1]]
        self.assertEqual(kinds.count("snapshot_tomb"), 2, "w0 and w1 were evicted")
        self.assertEqual(kinds.count("snapshot_rollback"), 1, "a0 acted")
        self.assertEqual(kinds.count("change"), 1)
        self.assertEqual(kinds.count("pause"), 1)
        # the evicted w0's records are not kept; the kept ones are verbatim
        with open(os.path.join(a.state_dir, "journal.jsonl")) as f:
            journal = f.read().splitlines()
        for l in lines[:-1]:
            if not json.loads(l)["type"].startswith("snapshot_"):
                self.assertIn(l, journal)
        self.assertFalse(any(json.loads(l).get("incident") == ids[0] for l in lines[:-1]))
        self.assertLess(len(lines) - 1, len(journal))

        b = self.twin(a)
        self.restart(a)
        self.assertEqual(self.replayed(a)["snapshot_lines"], str(len(lines) - 1))
        b.start()
        self.assertEqual(self.replayed(b)["snapshot_lines"], "0")
        va, vb = self.view(a), self.view(b)
        self.assertEqual(va, vb)
        self.assertEqual(va["order"], before["order"])
        self.assertEqual(va["rollbackd_paused"], 1)

        # an evicted episode is still known: w0's very firing is a repeat
        for srv in (a, b):
            d = self.decide(srv, w[0])[0]
            self.assertEqual((d["outcome"], d["reason"]),
                             ("repeat", "episode 1 already resolved: a late or replayed "
                              "firing of it"), srv.state_dir)

    def test_snapshot_keeps_only_the_changes_the_store_holds(self):
        """The change store keeps the latest 8 changes (by `at`) of each
        target: the snapshot keeps those records, not every deploy ever."""
        a = self.server()
        a.start()
        changes = [{"target": "svc/checkout", "revision": "v%d" % i, "source": "test",
                    "at": rfc3339(delta_s=-60 * (20 - i))} for i in range(11)]
        changes += [{"target": "svc/cart", "revision": "c%d" % i, "source": "test",
                     "at": rfc3339(delta_s=-60 * (5 - i))} for i in range(2)]

        def post(srv, c):
            r = srv.request("POST", "/v1/changes", body=json.dumps(c).encode(),
                            headers={"Content-Type": "application/json"})
            self.assertEqual(r.status, 202, r.text)
            return r.json()["status"]

        for c in changes:
            self.assertEqual(post(a, c), "recorded")
        self.assertEqual(a.stop(), 0)
        with open(os.path.join(a.state_dir, "snapshot.jsonl")) as f:
            kept = [json.loads(l) for l in f.read().splitlines()[:-1]]
        revs = [r["revision"] for r in kept if r["type"] == "change"]
        self.assertEqual(revs, ["v%d" % i for i in range(3, 11)] + ["c0", "c1"])
        b = self.twin(a)
        self.restart(a)
        b.start()
        # what each store holds: a held change sent again is a repeat
        want = ["recorded"] * 3 + ["repeat"] * 10
        self.assertEqual([post(a, c) for c in changes], want)
        self.assertEqual([post(b, c) for c in changes], want)

    def test_second_snapshot_builds_on_the_first(self):
        a = self.server()
        a.start()
        w, ids = self.scenario(a)
        self.assertEqual(a.stop(), 0)
        first = self.written(a)
        self.assertEqual(first["records_read"], str(self.journal_lines(a)))
        self.restart(a)
        self.decide(a, alert("x1"))
        self.assertEqual(a.stop(), 0)
        second = self.written(a)
        # only the records since the first snapshot were read
        self.assertLess(int(second["records_read"]), int(first["records_read"]))
        self.assertEqual(int(second["seq"]), self.journal_lines(a))
        b = self.twin(a)
        self.restart(a)
        self.assertNotEqual(self.replayed(a)["snapshot_lines"], "0")
        b.start()
        self.assertEqual(self.view(a), self.view(b))

    def test_unclean_stop_replays_snapshot_and_tail(self):
        a = self.server()
        a.start()
        self.scenario(a)
        self.assertEqual(a.stop(), 0)
        self.restart(a)
        after = self.decide(a, alert("after-snapshot"))[0]
        a.kill()  # SIGKILL: no new snapshot
        self.assertEqual(a.proc.returncode, -signal.SIGKILL)
        b = self.twin(a)
        self.restart(a)
        self.assertNotEqual(self.replayed(a)["snapshot_lines"], "0")
        self.assertEqual(a.request("GET", "/v1/incidents/" + after["incident"]).status, 200)
        b.start()
        self.assertEqual(self.view(a), self.view(b))


class PeriodicSnapshotTest(SnapshotCase):
    """A running daemon writes snapshots (journal.snapshot_records): after a
    crash the start replays the newest one and the records after it, and
    holds what a replay of the whole journal gives."""

    def trailer(self, srv):
        with open(os.path.join(srv.state_dir, "snapshot.jsonl")) as f:
            return json.loads(f.read().splitlines()[-1])

    def periodic(self, srv, mark=0):
        line = srv.wait_log(lambda l: l.get("msg") == "snapshot written", start=mark)
        self.assertIsNotNone(line, srv.lines[-20:])
        self.assertEqual(line["why"], "periodic", line)
        return line

    def test_crash_after_periodic_snapshot_replays_it_and_the_tail(self):
        a = self.server({"snapshot_records": 10})
        a.start()
        w, ids = self.scenario(a)
        info = self.periodic(a)
        # the freeze's seq is durable and the snapshot stops there, even
        # with records appended after it
        self.assertLessEqual(int(info["seq"]), self.journal_lines(a))
        mark = a.log_mark()
        n = self.journal_lines(a)
        # enough records for the next one: as many as the last one holds
        need = max(10, int(info["records_kept"]) + int(info["state_lines"]))
        k = 0
        while self.journal_lines(a) < n + need:
            self.decide(a, alert("more%d" % k))
            k += 1
        second = self.periodic(a, mark)
        self.assertGreater(int(second["seq"]), int(info["seq"]))
        self.assertEqual(second["records_read"], str(int(second["seq"]) - int(info["seq"])),
                         "built on the first: only the records since it were read")
        tail = self.decide(a, alert("after-snapshot"))[0]
        before = self.view(a)
        a.kill()  # SIGKILL: no snapshot at stop
        self.assertEqual(a.proc.returncode, -signal.SIGKILL)
        trailer = self.trailer(a)
        self.assertEqual(trailer["seq"], int(second["seq"]))
        self.assertLess(trailer["seq"], self.journal_lines(a), "a tail after the snapshot")
        b = self.twin(a)
        self.restart(a)
        self.started_from(a, trailer)
        self.assertEqual(a.request("GET", "/v1/incidents/" + tail["incident"]).status, 200)
        b.start()
        self.assertEqual(self.replayed(b)["snapshot_lines"], "0")
        va, vb = self.view(a), self.view(b)
        self.assertEqual(va, vb)
        self.assertEqual(va["order"], before["order"])
        d = self.decide(a, w[0])[0]  # evicted before the snapshot: still a repeat
        self.assertEqual(d["outcome"], "repeat", d)

    def test_crash_that_cuts_the_unsynced_tail_keeps_the_snapshot(self):
        """The trailer holds the journal's size up to the last covered
        record: a power loss that takes what followed it (never synced)
        still finds the snapshot usable."""
        a = self.server({"snapshot_records": 10})
        a.start()
        self.scenario(a)
        self.periodic(a)
        for k in range(3):
            self.decide(a, alert("tail%d" % k))
        a.kill()
        t = self.trailer(a)
        self.assertEqual(t["segment"], "journal.jsonl")
        self.assertEqual(t["current_size"], t["offset"] + t["len"] + 1)
        self.assertEqual(t["current_mtime_ns"], -1)
        j = os.path.join(a.state_dir, "journal.jsonl")
        self.assertGreater(os.path.getsize(j), t["current_size"])
        os.truncate(j, t["current_size"])  # what a power loss may leave
        b = self.twin(a)
        self.restart(a)
        self.started_from(a, t)
        b.start()
        self.assertEqual(self.view(a), self.view(b))

    def test_failed_periodic_write_waits_for_the_next_threshold(self):
        a = self.server({"snapshot_records": 10})
        tmp = os.path.join(a.state_dir, "snapshot.jsonl.tmp")
        os.makedirs(tmp)  # the write cannot open its file
        a.start()
        self.scenario(a)
        failed = a.wait_log(lambda l: l.get("msg") == "snapshot not written; the next start "
                            "replays more of the journal")
        self.assertIsNotNone(failed, a.lines[-20:])
        self.assertEqual(failed["why"], "periodic")
        self.assertIn("snapshot.jsonl.tmp", failed["error"])
        mark = a.log_mark()
        time.sleep(3.5)  # no new records: no new try (it used to retry every second)
        self.assertEqual([l["msg"] for l in a.logs_since(mark) if "snapshot" in l["msg"]], [])
        os.rmdir(tmp)
        n = self.journal_lines(a)
        k = 0
        while self.journal_lines(a) < n + 10:
            self.decide(a, alert("again%d" % k))
            k += 1
        self.periodic(a, mark)

    def test_snapshot_still_used_after_the_journal_rotated(self):
        seg = {"segment_bytes": 2048, "snapshot_records": 0}
        a = self.server(seg)
        a.start()
        self.scenario(a)
        self.assertEqual(a.stop(), 0)
        self.written(a)
        first = self.trailer(a)
        closed_then = sorted(n for n in os.listdir(a.state_dir)
                             if n.startswith("journal.") and n != "journal.jsonl")
        self.restart(a)
        k = 0
        while len([n for n in os.listdir(a.state_dir) if n.startswith("journal.0")]) \
                < len(closed_then) + 2:
            self.decide(a, alert("rot%d" % k))
            k += 1
        a.kill()
        b = self.twin(a, journal=seg)
        self.restart(a)
        self.started_from(a, first)
        b.start()
        self.assertEqual(self.view(a), self.view(b))

    def test_periodic_snapshots_off(self):
        a = self.server({"snapshot_records": 0})
        a.start()
        self.scenario(a)
        for k in range(10):
            self.decide(a, alert("off%d" % k))
        self.assertIsNone(a.wait_log(lambda l: l.get("msg") == "snapshot written",
                                     timeout=2.5))
        self.assertFalse(os.path.exists(os.path.join(a.state_dir, "snapshot.jsonl")))
        self.assertEqual(a.stop(), 0)
        self.assertEqual(self.written(a)["why"], "stop")


class UnusableSnapshotTest(SnapshotCase):
    def prepared(self):
        a = self.server()
        a.start()
        self.scenario(a)
        self.assertEqual(a.stop(), 0)
        return a

    def start_without(self, a, why):
        b = self.twin(a)
        self.restart(a)
        warn = [l for l in a.logs if l.get("msg") ==
                "snapshot not used; replaying the whole journal"]
        self.assertEqual(len(warn), 1, a.lines[-20:])
        self.assertIn(why, warn[0]["error"])
        self.assertEqual(self.replayed(a)["snapshot_lines"], "0")
        b.start()
        self.assertEqual(self.view(a), self.view(b))

    def test_edited_body_is_not_used(self):
        a = self.prepared()
        path = os.path.join(a.state_dir, "snapshot.jsonl")
        with open(path, "rb") as f:
            data = bytearray(f.read())
        i = data.index(b'"episode":1')
        data[i + 10] = ord("7")
        with open(path, "wb") as f:
            f.write(bytes(data))
        self.start_without(a, "its body does not match its digest")

    def test_cut_snapshot_is_not_used(self):
        a = self.prepared()
        path = os.path.join(a.state_dir, "snapshot.jsonl")
        size = os.path.getsize(path)
        os.truncate(path, size - 10)
        self.start_without(a, "no trailer line")

    def test_replaced_journal_is_not_trusted(self):
        a = self.prepared()
        j = os.path.join(a.state_dir, "journal.jsonl")
        tmp = j + ".copy"
        shutil.copy2(j, tmp)
        os.rename(tmp, j)  # same bytes, another file: checked whole
        self.start_without(a, "journal.jsonl changed since it was written")

    def test_edited_journal_refuses_to_start(self):
        a = self.prepared()
        j = os.path.join(a.state_dir, "journal.jsonl")
        with open(j, "r+b") as f:
            data = f.read()
            i = data.index(b'"outcome":"notify_only"')
            f.seek(i + 11)
            f.write(b"X")
        a.proc = None
        a.lines, a.logs = [], []
        p = harness.run_cli(["serve", "--config", a.config_path], timeout=20)
        err = p.stderr.decode()
        self.assertEqual(p.returncode, 1, err)
        self.assertIn("hash does not match", err)
        self.assertIn("rollbackd serve --recover", err)


if __name__ == "__main__":
    unittest.main()
