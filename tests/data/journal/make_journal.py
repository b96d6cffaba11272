#!/usr/bin/env python3
"""Write rollbackd journals (SPEC §8) for the audit tests, intact or broken.

A line is B with its final '}' replaced by ,"hash":"<hex>"}, where B is the
record's compact JSON object {"seq":N,"ts":..,"type":..,"incident":..,
<members>,"prev":"<hex>"} and hex = BLAKE2b-256(B) (hashlib.blake2b with
digest_size=32, no key). The first record's prev is 64 zeros; seq starts at 1.

As a module (the tests import it):

    lines = build(records, tamper=7)            # [(seq, line text)]
    where = write(dir, lines, segments=[5, 6])  # [{"seq","file","offset","line"}]

As a command:

    make_journal.py OUT_DIR [--scenario incident|simple] [--records N]
                    [--tamper K] [--break-prev K] [--skip-seq K]
                    [--tear cut|nonl] [--segments 5,6] [--segment-start 1]

K counts records from 1 (the K-th record written). Python 3 standard library only.
"""

import argparse
import datetime
import hashlib
import json
import os
import sys

ZERO_HASH = "0" * 64
INCIDENT = "inc-7f3a9c"
OTHER_INCIDENT = "inc-00aa11"
FINGERPRINT = "3c5b6a1d2e4f7a8b"
OTHER_FINGERPRINT = "9d8c7b6a5f4e3d2c"
RULE = "checkout-error-rate"

ACTION_OUTPUT = ("rolling back checkout to v1.4.2\n"
                 "```\ninjected fence: this must stay inside the output block\n```\n"
                 "done\n")


def encode(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def record_line(seq, rec, prev):
    """The journal line (no newline) of rec ({"ts","type","incident", members...})
    at seq after prev, and its hash."""
    obj = {"seq": seq, "ts": rec["ts"], "type": rec["type"], "incident": rec.get("incident", "")}
    for k, v in rec.items():
        if k not in ("ts", "type", "incident"):
            obj[k] = v
    obj["prev"] = prev
    b = encode(obj)
    h = hashlib.blake2b(b.encode("utf-8"), digest_size=32).hexdigest()
    return b[:-1] + ',"hash":"' + h + '"}', h


def tamper_line(line):
    """Change a record after it was hashed: another digit in its ts
    (the line stays valid JSON, only the hash no longer matches)."""
    at = line.index('"ts":"') + len('"ts":"')
    z = line.index('Z"', at)
    d = line[z - 1]
    return line[:z - 1] + ("1" if d != "1" else "2") + line[z:]


def build(records, tamper=None, break_prev=None, skip_seq=None):
    """Chain records; returns [(seq, line)]. tamper=K changes the K-th
    record after hashing; break_prev=K gives the K-th a wrong prev (its own
    hash is right); skip_seq=K numbers the K-th record one too high (and
    the chain goes on from there)."""
    out = []
    prev = ZERO_HASH
    seq = 0
    for k, rec in enumerate(records, start=1):
        seq += 2 if k == skip_seq else 1
        p = ("f" * 64) if k == break_prev else prev
        line, h = record_line(seq, rec, p)
        if k == tamper:
            line = tamper_line(line)
        out.append((seq, line))
        prev = h
    return out


def write(directory, lines, segments=None, tear=None, segment_start=1):
    """Write lines into directory: the first segments[0] lines into
    journal.<segment_start>.jsonl, the next segments[1] into the next
    segment, ..., the rest into journal.jsonl. tear="nonl" leaves out the
    last newline, tear="cut" also cuts the last line in half. Returns one
    {"seq", "file", "offset", "line"} per line, offset in bytes within file."""
    os.makedirs(directory, exist_ok=True)
    where = []
    chunks = []
    i = 0
    for n, count in enumerate(segments or []):
        name = "journal.%06d.jsonl" % (segment_start + n)
        chunks.append((name, lines[i:i + count]))
        i += count
    chunks.append(("journal.jsonl", lines[i:]))
    for name, chunk in chunks:
        path = os.path.join(directory, name)
        off = 0
        with open(path, "wb") as f:
            for j, (seq, line) in enumerate(chunk):
                data = line.encode("utf-8")
                last = name == "journal.jsonl" and j == len(chunk) - 1
                if last and tear == "cut":
                    data = data[:len(data) // 2]
                if not (last and tear in ("cut", "nonl")):
                    data += b"\n"
                f.write(data)
                where.append({"seq": seq, "file": path, "offset": off, "line": line})
                off += len(data)
    return where


# --------------------------------------------------------------------------
# Scenarios


def ts(hms, ms=0):
    return "2026-11-21T%s.%03dZ" % (hms, ms)


def alert_labels(alertname="RollbackErrorRate", service="checkout"):
    return {"alertname": alertname, "service": service, "severity": "critical"}


def notification(at, status, fingerprint=FINGERPRINT, labels=None, ends="0001-01-01T00:00:00Z",
                 starts=None):
    return {"ts": at, "type": "notification", "incident": "", "receiver": "rollbackd",
            "group_key": '{}:{alertname="RollbackErrorRate"}',
            "external_url": "http://alertmanager.example:9093", "status": status,
            "fingerprint": fingerprint, "startsAt": starts or ts("10:00:00"), "endsAt": ends,
            "labels": labels or alert_labels(),
            "annotations": {"summary": "error ratio above 1%", "value": "0.052"},
            "generatorURL": "http://prometheus.example:9090/graph?g0.expr=x",
            "digest": "d1" * 16}


def incident_scenario():
    """Incident INCIDENT: the alert starts firing at 10:00:00, a decision at
    +30s waits (pending), the timer acts at +1m, two actions run from
    +1m30s, Slack is told and PagerDuty fails, alice acknowledges at +3m,
    it resolves at +5m. Another incident and daemon records interleave."""
    value = {"from": "annotations.value", "value": 0.052, "above": 0.01}
    inc = {"incident": INCIDENT, "rule": RULE}
    return [
        {"ts": ts("09:58:00"), "type": "started", "version": "0.1.0", "pid": 4242},
        {"ts": ts("09:58:00", 100), "type": "config_loaded", "rules_path": "rules/",
         "rules": 3, "rules_digest": "ab" * 32, "dry_run": False, "reload": False},
        notification(ts("10:00:30"), "firing"),
        dict(inc, ts=ts("10:00:30", 1), type="decision", fingerprint=FINGERPRINT,
             outcome="pending", reason="firing for 30s of 1m", episode=1, state="pending",
             group={"service": "checkout"}, labels=alert_labels(),
             annotations={"value": "0.052"}, value=value),
        notification(ts("10:00:45"), "firing", fingerprint=OTHER_FINGERPRINT,
                     labels=alert_labels("LatencyHigh", "search")),
        {"ts": ts("10:00:45", 1), "type": "decision", "incident": OTHER_INCIDENT,
         "rule": "latency-p95", "fingerprint": OTHER_FINGERPRINT, "outcome": "notify_only",
         "reason": "mode notify", "episode": 1, "state": "notify_only",
         "group": {"service": "search"}},
        dict(inc, ts=ts("10:01:00"), type="decision", fingerprint="", outcome="acting",
             reason="running 2 action(s)", episode=1, state="acting",
             group={"service": "checkout"}, labels=alert_labels(), trigger="firing_for",
             value=dict(value, value=0.061)),
        dict(inc, ts=ts("10:01:30"), type="action_started", episode=1, index=0,
             action="http", method="PATCH",
             url="http://flags.internal/api/flags/checkout-v2"),
        dict(inc, ts=ts("10:01:30", 250), type="action_finished", episode=1, index=0,
             action="http", result="ok", status_code=200, duration_ms=250,
             output='{"enabled":false}'),
        dict(inc, ts=ts("10:01:30", 260), type="action_started", episode=1, index=1,
             action="exec", argv=["deploy/rollback.sh", "checkout", "--reason", "error rate"]),
        dict(inc, ts=ts("10:01:32", 760), type="action_finished", episode=1, index=1,
             action="exec", result="ok", exit_code=0, duration_ms=2500,
             output=ACTION_OUTPUT, incident_state="rolled_back"),
        {"ts": ts("10:01:33"), "type": "notify_intent", "incident": INCIDENT,
         "channel": "slack", "event": "rolled_back", "id": "n-1"},
        {"ts": ts("10:01:33", 500), "type": "notify_sent", "incident": INCIDENT,
         "channel": "slack", "id": "n-1", "status_code": 200, "attempts": 1},
        {"ts": ts("10:01:33", 600), "type": "notify_intent", "incident": INCIDENT,
         "channel": "pagerduty", "event": "trigger", "id": "n-2"},
        {"ts": ts("10:01:34"), "type": "notify_failed", "incident": INCIDENT,
         "channel": "pagerduty", "id": "n-2", "status_code": 503,
         "error": "service unavailable", "attempts": 3},
        {"ts": ts("10:03:00"), "type": "ack", "incident": INCIDENT, "by": "alice",
         "via": "link"},
        notification(ts("10:05:00"), "resolved", ends=ts("10:04:50")),
        dict(inc, ts=ts("10:05:00", 1), type="resolved", episode=1, fingerprint=FINGERPRINT),
        {"ts": ts("10:05:00", 2), "type": "incident_state", "incident": INCIDENT,
         "state": "effective", "reason": "resolved within 10m of the rollback"},
        {"ts": ts("10:06:00"), "type": "pause", "incident": "", "by": "bob"},
        {"ts": ts("10:06:10"), "type": "resume", "incident": "", "by": "bob"},
    ]


def simple_scenario(n=10):
    """n small records, one second apart."""
    start = datetime.datetime(2026, 11, 21, 9, 0, 0, tzinfo=datetime.timezone.utc)
    recs = [{"ts": ts("09:00:00"), "type": "started", "version": "0.1.0", "pid": 1}]
    for i in range(1, n):
        t = start + datetime.timedelta(seconds=i)
        recs.append({"ts": t.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "type": "pause",
                     "incident": "", "by": "user-%d" % i})
    return recs[:n]


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--scenario", choices=("incident", "simple"), default="incident")
    ap.add_argument("--records", type=int, default=10, help="for --scenario simple")
    ap.add_argument("--tamper", type=int)
    ap.add_argument("--break-prev", type=int)
    ap.add_argument("--skip-seq", type=int)
    ap.add_argument("--tear", choices=("cut", "nonl"))
    ap.add_argument("--segments", help="records per closed segment, e.g. 5,6")
    ap.add_argument("--segment-start", type=int, default=1)
    a = ap.parse_args(argv)
    recs = incident_scenario() if a.scenario == "incident" else simple_scenario(a.records)
    lines = build(recs, tamper=a.tamper, break_prev=a.break_prev, skip_seq=a.skip_seq)
    segs = [int(x) for x in a.segments.split(",")] if a.segments else None
    for w in write(a.out_dir, lines, segments=segs, tear=a.tear,
                   segment_start=a.segment_start):
        print("%s\t%d\t%d" % (w["file"], w["offset"], w["seq"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
