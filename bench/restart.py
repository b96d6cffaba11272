#!/usr/bin/env python3
"""Restart time against the journal's size: how long a start takes to answer /healthz 200.

    bench/restart.py [BINARY] [RECORDS] [RUNS]
        BINARY   default build/rollbackd
        RECORDS  stop feeding once the journal holds this many records (default 1000000)
        RUNS     restarts timed on that journal (default 3)
    BATCH=1000 (alerts per notification)  MAX_INCIDENTS=100000 (limits.max_incidents)
    KEEP=DIR (use DIR, which must not exist, as the state dir and leave it there)
    KILL=1 (stop with SIGKILL, as a crash: no snapshot at stop; the starts replay the
            newest periodic snapshot, journal.snapshot_records, and the records after it)
    SNAPSHOT_RECORDS=N (journal.snapshot_records; default the daemon's)

Starts the daemon on a temp state dir with the same rule as bench/memory.py (one notify-mode
rule grouping by service: every alert is its own incident, nothing runs) and sends distinct
firing alerts, each batch followed by the same alerts resolved, until the journal's seq reaches
RECORDS. It then stops the daemon (SIGTERM) and RUNS times starts it again on that journal,
timing from exec to the first /healthz 200, and reads the daemon's own "journal replayed" log
line (records and ms spent in journal_open: read, verify, replay). Prints one line per run and
the median. After each, it times a start on the same journal with snapshot.jsonl moved aside
(the whole chain replayed), side by side. Python 3 standard library only.
"""

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from memory import body, free_port  # noqa: E402  (same alerts as the memory benchmark)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "rollbackd")
RECORDS = int(sys.argv[2]) if len(sys.argv) > 2 else 1000000
RUNS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
BATCH = int(os.environ.get("BATCH", "1000"))
MAX = int(os.environ.get("MAX_INCIDENTS", "100000"))


def start(cfg_path, port, log_path):
    t0 = time.monotonic()
    log = open(log_path, "w")
    p = subprocess.Popen([BIN, "serve", "--config", cfg_path], stdin=subprocess.DEVNULL,
                         stdout=log, stderr=log)
    log.close()
    while True:
        if p.poll() is not None:
            sys.exit("rollbackd exited %r at start; see %s" % (p.returncode, log_path))
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/healthz")
            if c.getresponse().status == 200:
                c.close()
                return p, time.monotonic() - t0
        except OSError:
            pass
        time.sleep(0.005)


def log_lines(log_path):
    """The daemon's JSON log lines (anything else skipped)."""
    with open(log_path) as f:
        for line in f:
            try:
                yield json.loads(line)
            except ValueError:
                continue


def replayed(log_path):
    for rec in log_lines(log_path):
        if rec.get("msg") == "journal replayed":
            return int(rec["records"]), int(rec["ms"])
    sys.exit("no 'journal replayed' line in %s" % log_path)


def journal_seq(state):
    """The seq of the last complete line of the journal being written."""
    with open(os.path.join(state, "journal.jsonl"), "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - (1 << 16)))
        lines = f.read().split(b"\n")
    for line in reversed(lines[1:-1] if len(lines) > 2 else lines[:-1]):
        if line.startswith(b'{"seq":'):
            return int(line[7:line.index(b",")])
    return 0


KILL = os.environ.get("KILL") == "1"


def stop(p):
    p.send_signal(signal.SIGKILL if KILL else signal.SIGTERM)
    p.wait(120)


def periodic(log_path):
    """The periodic snapshots the feeding run wrote: (count, max ms, max freeze ms,
    last seq)."""
    n, worst, fworst, seq = 0, 0, 0, 0
    for rec in log_lines(log_path):
        if rec.get("msg") == "snapshot written" and rec.get("why") == "periodic":
            n, worst, seq = n + 1, max(worst, int(rec["ms"])), int(rec["seq"])
            fworst = max(fworst, int(rec["freeze_ms"]))
    return n, worst, fworst, seq


def main():
    tmp = tempfile.mkdtemp(prefix="rollbackd-restartbench.")
    try:
        rules = os.path.join(tmp, "rules.json")
        with open(rules, "w") as f:
            json.dump({"rules": [{"name": "bench", "matchers": ["alertname=\"Bench\""],
                                  "mode": "notify", "group_by": ["service"]}]}, f)
        port = free_port()
        state = os.environ.get("KEEP") or os.path.join(tmp, "state")
        cfg = {"listen": "127.0.0.1:%d" % port, "rules": rules, "state_dir": state,
               "log_level": "info", "workers": 1,
               "journal": {"segment_bytes": 1 << 32},
               "limits": {"max_incidents": MAX, "max_alerts": max(BATCH, 10000),
                          "max_body_bytes": 16 << 20}}
        if os.environ.get("SNAPSHOT_RECORDS"):
            cfg["journal"]["snapshot_records"] = int(os.environ["SNAPSHOT_RECORDS"])
        os.makedirs(state)
        cfg_path = os.path.join(tmp, "rollbackd.json")
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        log_path = os.path.join(tmp, "rollbackd.log")
        p, first = start(cfg_path, port, log_path)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        hdr = {"Content-Type": "application/json"}
        starts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
        sent, t0, seq = 0, time.monotonic(), 0
        while True:
            for st in ("firing", "resolved"):
                c.request("POST", "/v1/alerts", body=body(sent, BATCH, st, starts), headers=hdr)
                r = c.getresponse()
                r.read()
                if r.status != 200:
                    sys.exit("POST answered %d" % r.status)
            sent += BATCH
            if sent % (10 * BATCH) == 0:
                seq = journal_seq(state)
                if seq >= RECORDS:
                    break
        c.close()
        fed = time.monotonic() - t0
        stop(p)
        jbytes = sum(os.path.getsize(os.path.join(state, f))
                     for f in os.listdir(state) if f.startswith("journal"))
        print("binary %s; fed %d incidents (fired and resolved) in %.1f s: journal seq %d, "
              "%.0f MB; stopped with %s" % (BIN, sent, fed, seq, jbytes / 1e6,
                                             "SIGKILL" if KILL else "SIGTERM"))
        n, worst, fworst, last = periodic(log_path)
        print("periodic snapshots while feeding: %d (slowest %d ms, the longest freeze on "
              "the main loop %d ms), the last at seq %d" % (n, worst, fworst, last))
        times, full = [], []
        snap = os.path.join(state, "snapshot.jsonl")
        if not os.path.exists(snap):
            sys.exit("no snapshot.jsonl to start from")
        for i in range(RUNS):
            p, took = start(cfg_path, port, log_path)
            records, ms = replayed(log_path)
            stop(p)
            times.append(took)
            print("restart %d: /healthz 200 after %.2f s (journal_open: %d records in %d ms)"
                  % (i + 1, took, records, ms))
            # The floor beside it: the same journal without the snapshot (the
            # whole chain replayed); its clean stop writes the next snapshot.
            os.rename(snap, snap + ".aside")
            p, took = start(cfg_path, port, log_path)
            records, ms = replayed(log_path)
            stop(p)
            if KILL:  # no snapshot at that stop: the periodic one again
                os.rename(snap + ".aside", snap)
            else:
                os.unlink(snap + ".aside")
            full.append(took)
            print("  without the snapshot: /healthz 200 after %.2f s "
                  "(journal_open: %d records in %d ms)" % (took, records, ms))
        times.sort()
        full.sort()
        print("median restart: %.2f s over %d runs (without the snapshot: %.2f s)"
              % (times[len(times) // 2], RUNS, full[len(full) // 2]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
