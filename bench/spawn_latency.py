#!/usr/bin/env python3
"""Latency from a request's arrival to its rollback action starting, under load.

Starts rollbackd (dry_run off) with one rule whose exec action is /bin/true,
keeps wrk busy on the repeated-notification path in the background, and sends
N notifications that each open a new incident (a distinct `service`). For
each, the latency is the daemon's "action started" log time (logged right
before posix_spawn) minus the wall-clock time the client sent the request.
Prints p50/p90/p99/max.

    bench/spawn_latency.py [path/to/rollbackd] [N]
"""
import json, os, shutil, signal, socket, subprocess, sys, tempfile, threading, time
from datetime import datetime

BIN = sys.argv[1] if len(sys.argv) > 1 else "build/rollbackd"
N = int(sys.argv[2]) if len(sys.argv) > 2 else 300
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def parse_ts(s):
    # RFC 3339 with up to 9 fraction digits, Z
    date, frac = s.rstrip("Z").split(".") if "." in s else (s.rstrip("Z"), "0")
    base = datetime.strptime(date, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=None)
    epoch = (base - datetime(1970, 1, 1)).total_seconds()
    return epoch + float("0." + frac)


def payload(service):
    return json.dumps({"version": "4", "groupKey": "bench", "status": "firing", "receiver": "r",
                       "alerts": [{"status": "firing",
                                   "labels": {"alertname": "SpawnBench", "service": service},
                                   "annotations": {"value": "1"},
                                   "startsAt": "2026-01-01T00:00:00Z"}]}).encode()


def main():
    tmp = tempfile.mkdtemp(prefix="rollbackd-spawn.")
    port = free_port()
    os.makedirs(f"{tmp}/rules")
    with open(f"{tmp}/rules/r.json", "w") as f:
        json.dump({"rules": [{"name": "spawn", "matchers": ['alertname="SpawnBench"'],
                              "group_by": ["service"],
                              "actions": [{"type": "exec", "argv": ["/bin/true"]}]}]}, f)
    with open(f"{tmp}/c.json", "w") as f:
        json.dump({"listen": f"127.0.0.1:{port}", "rules": f"{tmp}/rules", "state_dir": tmp,
                   "dry_run": False, "workers": 2,
                   "limits": {"max_rollbacks_per_hour": 100000, "max_concurrent_actions": 64}}, f)
    log = open(f"{tmp}/log", "w")
    srv = subprocess.Popen([BIN, "serve", "--config", f"{tmp}/c.json"], stderr=log)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        # background load: the same notification again and again (repeats)
        lua = f"{tmp}/load.lua"
        with open(lua, "w") as f:
            f.write('wrk.method="POST"\nwrk.headers["Content-Type"]="application/json"\n'
                    'wrk.body=[[%s]]\n' % payload("load").decode())
        load = None
        if shutil.which("wrk"):
            load = subprocess.Popen(["wrk", "-t1", "-c8", "-d60s", "-s", lua,
                                     f"http://127.0.0.1:{port}/v1/alerts"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
        sent = {}
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for i in range(N):
            body = payload(f"svc-{i}")
            t = time.time()
            conn.request("POST", "/v1/alerts", body, {"Content-Type": "application/json"})
            d = json.loads(conn.getresponse().read())["decisions"][0]
            sent[d["incident"]] = t
            time.sleep(0.01)
        time.sleep(1)
        if load:
            load.send_signal(signal.SIGINT)
            load.wait()
    finally:
        srv.send_signal(signal.SIGTERM)
        srv.wait()
        log.close()
    lat = []
    with open(f"{tmp}/log") as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("msg") == "action started" and rec.get("incident") in sent:
                lat.append((parse_ts(rec["ts"]) - sent[rec["incident"]]) * 1000)
    shutil.rmtree(tmp)
    lat.sort()
    if len(lat) != N:
        sys.exit(f"spawn_latency: {len(lat)} of {N} actions started")
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
    print(f"arrival -> action start, {N} incidents, wrk load on the repeat path: "
          f"p50 {q(0.5):.2f} ms  p90 {q(0.9):.2f} ms  p99 {q(0.99):.2f} ms  max {lat[-1]:.2f} ms")


if __name__ == "__main__":
    main()
