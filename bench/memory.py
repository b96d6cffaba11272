#!/usr/bin/env python3
"""Memory after many distinct incidents, and restart time with that journal.

    bench/memory.py [BINARY] [N] [MAX_INCIDENTS]
        BINARY         default build/rollbackd
        N              distinct incidents fired then resolved (default 1000000)
        MAX_INCIDENTS  limits.max_incidents (default 100000)
    BATCH=1000 (alerts per notification)  BUDGET_S=180 (stop sending after this)
    SETTLE_S=30 (RSS again this long after the restart)
    QUIET_S=5 (RSS again this long after the last notification)

Starts the daemon on a temp state dir (one notify-mode rule grouping by
service, so every alert is its own incident; nothing runs), sends N distinct
firing alerts in notifications of BATCH, each followed by the same alerts
resolved, over one keep-alive connection, and stops early after BUDGET_S
(it says how many it sent). Then prints VmRSS and VmHWM from
/proc/PID/status (right after the last notification and QUIET_S later),
GET /v1/incidents?limit=1000 time, the incidents_in_memory gauge, the
journal's size, and - after SIGTERM - the time a restart on that journal
takes to answer /healthz (replay included) and its RSS.
Python 3 standard library only.
"""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "rollbackd")
N = int(sys.argv[2]) if len(sys.argv) > 2 else 1000000
MAX = int(sys.argv[3]) if len(sys.argv) > 3 else 100000
BATCH = int(os.environ.get("BATCH", "1000"))
BUDGET = float(os.environ.get("BUDGET_S", "180"))
SETTLE = float(os.environ.get("SETTLE_S", "30"))
QUIET = float(os.environ.get("QUIET_S", "5"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) / 1024.0
    return out


def start(cfg_path, port):
    t0 = time.monotonic()
    p = subprocess.Popen([BIN, "serve", "--config", cfg_path], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        if p.poll() is not None:
            sys.exit("rollbackd exited %r at start" % p.returncode)
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/healthz")
            if c.getresponse().status == 200:
                c.close()
                return p, time.monotonic() - t0
        except OSError:
            pass
        time.sleep(0.01)


def body(i0, n, status_, starts):
    alerts = []
    for i in range(i0, i0 + n):
        alerts.append('{"status":"%s","labels":{"alertname":"Bench","service":"s%d"},'
                      '"annotations":{"value":"1"},"startsAt":"%s","fingerprint":"%016x"}'
                      % (status_, i, starts, i + 1))
    return ('{"version":"4","groupKey":"g","status":"%s","receiver":"r","alerts":[%s]}'
            % (status_, ",".join(alerts))).encode()


def main():
    tmp = tempfile.mkdtemp(prefix="rollbackd-membench.")
    try:
        rules = os.path.join(tmp, "rules.json")
        with open(rules, "w") as f:
            json.dump({"rules": [{"name": "bench", "matchers": ["alertname=\"Bench\""],
                                  "mode": "notify", "group_by": ["service"]}]}, f)
        port = free_port()
        cfg = {"listen": "127.0.0.1:%d" % port, "rules": rules,
               "state_dir": os.path.join(tmp, "state"), "log_level": "error", "workers": 1,
               "journal": {"segment_bytes": 1 << 30},
               "limits": {"max_incidents": MAX, "max_alerts": max(BATCH, 10000),
                          "max_body_bytes": 16 << 20}}
        os.makedirs(cfg["state_dir"])
        cfg_path = os.path.join(tmp, "rollbackd.json")
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        p, _ = start(cfg_path, port)
        idle = status(p.pid)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        hdr = {"Content-Type": "application/json"}
        starts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
        sent, t0 = 0, time.monotonic()
        while sent < N and time.monotonic() - t0 < BUDGET:
            n = min(BATCH, N - sent)
            for st in ("firing", "resolved"):
                c.request("POST", "/v1/alerts", body=body(sent, n, st, starts), headers=hdr)
                r = c.getresponse()
                r.read()
                if r.status != 200:
                    sys.exit("POST answered %d" % r.status)
            sent += n
        took = time.monotonic() - t0
        after = status(p.pid)
        t1 = time.monotonic()
        c.request("GET", "/v1/incidents?limit=1000")
        r = c.getresponse()
        page = r.read()
        list_ms = (time.monotonic() - t1) * 1000
        c.request("GET", "/metrics")
        gauge = [l for l in c.getresponse().read().decode().splitlines()
                 if l.startswith("rollbackd_incidents_in_memory ")]
        c.close()
        time.sleep(QUIET)
        quiet = status(p.pid)
        p.send_signal(signal.SIGTERM)
        p.wait(60)
        jsize = sum(os.path.getsize(os.path.join(cfg["state_dir"], f))
                    for f in os.listdir(cfg["state_dir"]) if f.startswith("journal"))
        p2, restart_s = start(cfg_path, port)
        again = status(p2.pid)
        time.sleep(SETTLE)
        settled = status(p2.pid)
        p2.send_signal(signal.SIGTERM)
        p2.wait(60)
        print("binary %s, max_incidents %d, %d alerts per notification" % (BIN, MAX, BATCH))
        print("sent %d distinct incidents (of %d asked), fired and resolved, in %.1f s "
              "(%.0f incidents/s)" % (sent, N, took, sent / took))
        print("RSS idle %.1f MiB; after: VmRSS %.1f MiB, VmHWM %.1f MiB"
              % (idle["VmRSS"], after["VmRSS"], after["VmHWM"]))
        print("%.0f s later (the burst of evictions over): VmRSS %.1f MiB, VmHWM %.1f MiB"
              % (QUIET, quiet["VmRSS"], quiet["VmHWM"]))
        print("%s; GET /v1/incidents?limit=1000: %d items, %d bytes, %.1f ms"
              % (gauge[0] if gauge else "no incidents_in_memory gauge",
                 len(json.loads(page)), len(page), list_ms))
        print("journal %.0f MB; restart to /healthz 200: %.2f s; RSS after restart: "
              "VmRSS %.1f MiB, VmHWM %.1f MiB"
              % (jsize / 1e6, restart_s, again["VmRSS"], again["VmHWM"]))
        print("%.0f s later (the console's journal index catches up in its own thread): "
              "VmRSS %.1f MiB, VmHWM %.1f MiB" % (SETTLE, settled["VmRSS"], settled["VmHWM"]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
