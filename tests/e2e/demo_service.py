#!/usr/bin/env python3
"""A small HTTP service that Prometheus scrapes, for rollbackd's end-to-end test
and the docker/compose.yml demo stack. Python 3 standard library only.

It exposes exactly what rules/prometheus/rollback.rules.yml reads:

    http_requests_total{method="GET",handler="/api",code="200"|"500"}   counter
    http_request_duration_seconds_bucket{method="GET",handler="/api",le="..."}
    http_request_duration_seconds_sum / _count                            histogram

It carries no `service` label of its own: the scrape config attaches
`service` to the target (static_configs labels), so the error-ratio and
latency expressions (`sum by (service)`) and `up == 0` all see the same
label.

Traffic is synthetic and steady: the counters grow at `rate` requests per
second computed from wall time (default 100 req/s), split by the current
error ratio and latency, so rate() over a short scrape interval is smooth and
exact. Real requests to /api are counted too (and really fail / really sleep).

Control (JSON):
    GET  /control                 current state, scrape statistics
    POST /control  {"error_ratio": 0.05, "latency": 0.8, "rate": 100,
                    "down": true|false, "down_mode": "close"|"hang"|"503"}
        any subset; answers the new state. Every change is timestamped and
        the time of the first scrape after it is recorded
        ("first_scrape_after_change"), so a test can say "the first bad
        scrape happened at ...".
When down, /metrics stops answering: "close" (default) closes the
connection without a response, "hang" holds it until the scraper gives up,
"503" answers 503 - in all three Prometheus records up == 0. /control and
/healthz keep answering.

    python3 demo_service.py --listen 127.0.0.1:8080 [--rate 100]
        [--error-ratio 0] [--latency 0.05]
prints one JSON line {"msg":"listening","addr":"HOST:PORT"} on stdout.
"""

import argparse
import json
import math
import random
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Prometheus client defaults
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LABELS = 'method="GET",handler="/api"'


def latency_mix(latency):
    """The latency distribution of the synthetic requests for a nominal
    latency L: half at L/2, 40 % at L, 10 % at 1.5 L. Returns [(share, seconds)]."""
    return [(0.5, latency * 0.5), (0.4, latency), (0.1, latency * 1.5)]


class Traffic:
    """Counters that grow at a steady synthetic rate from wall time."""

    def __init__(self, rate=100.0, error_ratio=0.0, latency=0.05):
        self.lock = threading.Lock()
        self.rate = float(rate)
        self.error_ratio = float(error_ratio)
        self.latency = float(latency)
        self.down = False
        self.down_mode = "close"
        self.last = time.time()
        self.ok = 0.0
        self.errors = 0.0
        self.buckets = [0.0] * len(BUCKETS)   # per bucket, not cumulative
        self.over = 0.0                       # above the largest bound
        self.sum = 0.0
        self.changed_at = time.time()
        self.first_scrape_after_change = None
        self.scrapes = 0
        self.last_scrape = None
        self.changes = []

    def _advance(self, now):
        """Integrate the current settings up to now (lock held)."""
        dt = now - self.last
        if dt <= 0:
            return
        self.last = now
        n = self.rate * dt
        self.errors += n * self.error_ratio
        self.ok += n * (1.0 - self.error_ratio)
        for share, secs in latency_mix(self.latency):
            self._observe(secs, n * share)

    def _observe(self, secs, count):
        for i, le in enumerate(BUCKETS):
            if secs <= le:
                self.buckets[i] += count
                break
        else:
            self.over += count
        self.sum += secs * count

    def real_request(self, failed, secs):
        with self.lock:
            self._advance(time.time())
            if failed:
                self.errors += 1
            else:
                self.ok += 1
            self._observe(secs, 1)

    def set(self, **kw):
        with self.lock:
            now = time.time()
            self._advance(now)
            for k in ("rate", "error_ratio", "latency"):
                if kw.get(k) is not None:
                    v = float(kw[k])
                    if not math.isfinite(v) or v < 0 or (k == "error_ratio" and v > 1):
                        raise ValueError("%s: out of range: %r" % (k, kw[k]))
                    setattr(self, k, v)
            if kw.get("down") is not None:
                self.down = bool(kw["down"])
            if kw.get("down_mode") is not None:
                if kw["down_mode"] not in ("close", "hang", "503"):
                    raise ValueError("down_mode: expected close, hang or 503")
                self.down_mode = kw["down_mode"]
            self.changed_at = now
            self.first_scrape_after_change = None
            self.changes.append({"at": now, "set": {k: v for k, v in kw.items()
                                                    if v is not None}})
            return self._state()

    def scraped(self):
        """Record a scrape attempt (answered or not); returns whether down."""
        with self.lock:
            now = time.time()
            self.scrapes += 1
            self.last_scrape = now
            if self.first_scrape_after_change is None:
                self.first_scrape_after_change = now
            return self.down, self.down_mode

    def _state(self):
        return {
            "rate": self.rate, "error_ratio": self.error_ratio, "latency": self.latency,
            "down": self.down, "down_mode": self.down_mode,
            "changed_at": self.changed_at,
            "first_scrape_after_change": self.first_scrape_after_change,
            "scrapes": self.scrapes, "last_scrape": self.last_scrape,
            "requests": {"200": math.floor(self.ok), "500": math.floor(self.errors)},
        }

    def state(self):
        with self.lock:
            self._advance(time.time())
            return self._state()

    def exposition(self):
        with self.lock:
            self._advance(time.time())
            ok, errors = math.floor(self.ok), math.floor(self.errors)
            cum, lines = 0.0, []
            for le, c in zip(BUCKETS, self.buckets):
                cum += c
                lines.append('http_request_duration_seconds_bucket{%s,le="%s"} %d'
                             % (LABELS, repr(le), math.floor(cum)))
            total = math.floor(cum + self.over)
            s = self.sum
        lines.append('http_request_duration_seconds_bucket{%s,le="+Inf"} %d' % (LABELS, total))
        lines.append('http_request_duration_seconds_sum{%s} %.6f' % (LABELS, s))
        lines.append('http_request_duration_seconds_count{%s} %d' % (LABELS, total))
        return (
            "# HELP http_requests_total Requests served, by status code.\n"
            "# TYPE http_requests_total counter\n"
            'http_requests_total{%s,code="200"} %d\n'
            'http_requests_total{%s,code="500"} %d\n'
            "# HELP http_request_duration_seconds Request latency.\n"
            "# TYPE http_request_duration_seconds histogram\n"
            % (LABELS, ok, LABELS, errors)
            + "\n".join(lines) + "\n"
        )


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "demo-service/1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def _send(self, status, body, ctype="application/json"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _json(self, status, obj):
        self._send(status, json.dumps(obj) + "\n")

    def do_GET(self):
        t = self.server.traffic
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            down, mode = t.scraped()
            if down:
                if mode == "503":
                    self._send(503, "down\n", "text/plain")
                    return
                if mode == "hang":
                    self.server.stopping.wait(30)
                # close without an answer: the scraper sees EOF / reset
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            self._send(200, t.exposition(), "text/plain; version=0.0.4; charset=utf-8")
        elif path == "/control":
            self._json(200, t.state())
        elif path in ("/healthz", "/"):
            self._json(200, {"status": "ok"})
        elif path == "/api":
            st = t.state()
            secs = st["latency"]
            time.sleep(min(secs, 10))
            failed = random.random() < st["error_ratio"]
            t.real_request(failed, secs)
            self._json(500 if failed else 200, {"ok": not failed})
        else:
            self._json(404, {"error": "not_found"})

    do_HEAD = do_GET

    def do_POST(self):
        if self.path.split("?", 1)[0] != "/control":
            self._json(404, {"error": "not_found"})
            return
        n = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(n) or b"{}")
            if not isinstance(body, dict):
                raise ValueError("expected a JSON object")
            unknown = set(body) - {"rate", "error_ratio", "latency", "down", "down_mode"}
            if unknown:
                raise ValueError("unknown keys: %s" % ", ".join(sorted(unknown)))
            st = self.server.traffic.set(**body)
        except ValueError as e:
            self._json(400, {"error": "bad_request", "message": str(e)})
            return
        self._json(200, st)


class DemoService:
    """In-process use: DemoService(port=0).start(); .url; .set(...); .stop()."""

    def __init__(self, host="127.0.0.1", port=0, **traffic):
        self.traffic = Traffic(**traffic)
        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.httpd.traffic = self.traffic
        self.httpd.stopping = threading.Event()
        self.port = self.httpd.server_address[1]
        self.url = "http://%s:%d" % (host, self.port)
        self.thread = None

    def start(self):
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def set(self, **kw):
        return self.traffic.set(**kw)

    def stop(self):
        self.httpd.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT (port 0 picks one)")
    p.add_argument("--rate", type=float, default=100.0, help="synthetic requests per second")
    p.add_argument("--error-ratio", type=float, default=0.0)
    p.add_argument("--latency", type=float, default=0.05, help="nominal latency, seconds")
    a = p.parse_args(argv)
    host, _, port = a.listen.rpartition(":")
    svc = DemoService(host or "0.0.0.0", int(port), rate=a.rate, error_ratio=a.error_ratio,
                      latency=a.latency)
    print(json.dumps({"msg": "listening", "addr": "%s:%d" % (host, svc.port)}), flush=True)
    try:
        svc.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
