#!/usr/bin/env python3
"""A recording HTTP server: stands in for the feature-flag / traffic service
that the shipped rules call, and for PagerDuty and Slack. Python 3 standard
library only; reusable from any test:

    rec = Recorder().start()                  # 127.0.0.1, free port
    rec.url                                   # http://127.0.0.1:PORT
    rec.respond("/api/flags/", status=429, retry_after=1, times=1)   # then default
    rec.respond("/slow", delay=5)             # answer after 5 s
    rec.respond("/v2/enqueue", status=202, json={"status": "success"})
    reqs = rec.wait_for(lambda r: r.path.startswith("/api/flags/"), timeout=60)
    rec.requests(method="PATCH", prefix="/api/flags/")
    rec.stop()

Every request (method, path with query, headers, body, receive time) is
recorded before it is answered. Responses come from the first matching rule
(path prefix and optional method; a rule with `times` is used that many times
and then drops out) or the default: 200 with body "ok" (what a Slack incoming
webhook answers).

The same controls over HTTP, for a process started on its own (this is how
docker/compose.yml uses it as the flags service):

    GET  /_recorder/requests            every recorded request as JSON
    POST /_recorder/respond   {"prefix": "/api/", "method": "PATCH", "status": 500,
                               "retry_after": 2, "delay": 0, "times": 1,
                               "body": "...", "json": {...}, "headers": {...}}
    POST /_recorder/reset               forget requests and rules

    python3 recorder.py --listen 0.0.0.0:8081 [--log] [--respond JSON]...
"""

import argparse
import json
import json as _jsonmod  # Rule takes a parameter named json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CONTROL = "/_recorder/"


class Request:
    __slots__ = ("method", "path", "headers", "body", "time", "mono", "status")

    def __init__(self, method, path, headers, body, t, mono):
        self.method = method
        self.path = path
        self.headers = headers      # list of (name, value) as received
        self.body = body            # bytes
        self.time = t               # time.time() at receipt (headers and body read)
        self.mono = mono            # time.monotonic() at receipt
        self.status = None          # what we answered

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def to_dict(self):
        return {"method": self.method, "path": self.path, "headers": self.headers,
                "body": self.body.decode("utf-8", "replace"), "time": self.time,
                "status": self.status}

    def __repr__(self):
        return "<%s %s %.3f %r>" % (self.method, self.path, self.time, self.body[:200])


class Rule:
    def __init__(self, prefix="/", method=None, status=200, retry_after=None, delay=0.0,
                 times=None, body=None, json=None, headers=None):
        self.prefix = prefix
        self.method = method.upper() if method else None
        self.status = int(status)
        self.retry_after = retry_after
        self.delay = float(delay or 0)
        self.times = times
        self.headers = dict(headers or {})
        if json is not None:
            self.body = (_jsonmod.dumps(json) + "\n").encode()
            self.headers.setdefault("Content-Type", "application/json")
        elif body is not None:
            self.body = body.encode() if isinstance(body, str) else body
        else:
            self.body = b"ok"

    def matches(self, method, path):
        return path.startswith(self.prefix) and (self.method is None or self.method == method)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "recorder/1"

    def log_message(self, fmt, *args):
        pass

    def _read_body(self):
        n = self.headers.get("Content-Length")
        if n is not None:
            return self.rfile.read(int(n))
        if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return b""

    def _answer(self, status, body, headers=None):
        self.send_response(status)
        hdrs = {"Content-Type": "text/plain; charset=utf-8"}
        hdrs.update(headers or {})
        for k, v in hdrs.items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self):
        body = self._read_body()
        rec = self.server.recorder
        if self.path.startswith(CONTROL):
            rec._control(self, body)
            return
        req = Request(self.command, self.path, list(self.headers.items()), body,
                      time.time(), time.monotonic())
        rule = rec._take_rule(req)
        status = rule.status if rule else 200
        req.status = status
        rec._record(req)
        if rule and rule.delay:
            rec._stopping.wait(rule.delay)
        headers = dict(rule.headers) if rule else {}
        if rule and rule.retry_after is not None:
            headers["Retry-After"] = rule.retry_after
        self._answer(status, rule.body if rule else b"ok", headers)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle


class Recorder:
    def __init__(self, host="127.0.0.1", port=0):
        self.httpd = ThreadingHTTPServer((host, port), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.recorder = self
        self.port = self.httpd.server_address[1]
        self.url = "http://%s:%d" % (host if host not in ("0.0.0.0", "") else "127.0.0.1",
                                     self.port)
        self._cond = threading.Condition()
        self._reqs = []
        self._rules = []
        self._stopping = threading.Event()
        self._thread = None

    # -- lifecycle
    def start(self):
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- behaviour
    def respond(self, prefix="/", **kw):
        """Add a response rule (see Rule); earlier rules win."""
        with self._cond:
            self._rules.append(Rule(prefix, **kw))

    def reset(self):
        with self._cond:
            self._rules.clear()
            self._reqs.clear()

    def _take_rule(self, req):
        with self._cond:
            for r in self._rules:
                if r.matches(req.method, req.path.split("?", 1)[0]):
                    if r.times is not None:
                        r.times -= 1
                        if r.times <= 0:
                            self._rules.remove(r)
                    return r
        return None

    def _record(self, req):
        with self._cond:
            self._reqs.append(req)
            self._cond.notify_all()

    # -- inspection
    def requests(self, method=None, prefix=None, pred=None):
        with self._cond:
            out = list(self._reqs)
        return [r for r in out if (method is None or r.method == method)
                and (prefix is None or r.path.startswith(prefix))
                and (pred is None or pred(r))]

    def wait_for(self, pred, timeout, count=1):
        """Wait until at least count recorded requests satisfy pred; returns
        them (possibly fewer on timeout)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [r for r in self._reqs if pred(r)]
                left = deadline - time.monotonic()
                if len(got) >= count or left <= 0:
                    return got
                self._cond.wait(min(left, 0.5))

    def _control(self, h, body):
        path = h.path[len(CONTROL):].split("?", 1)[0]
        try:
            if h.command == "GET" and path == "requests":
                out = json.dumps([r.to_dict() for r in self.requests()]).encode()
                h._answer(200, out, {"Content-Type": "application/json"})
            elif h.command == "POST" and path == "respond":
                spec = json.loads(body or b"{}")
                self.respond(spec.pop("prefix", "/"), **spec)
                h._answer(200, b'{"ok":true}\n', {"Content-Type": "application/json"})
            elif h.command == "POST" and path == "reset":
                self.reset()
                h._answer(200, b'{"ok":true}\n', {"Content-Type": "application/json"})
            else:
                h._answer(404, b'{"error":"not_found"}\n', {"Content-Type": "application/json"})
        except (ValueError, TypeError) as e:
            h._answer(400, json.dumps({"error": "bad_request", "message": str(e)}).encode(),
                      {"Content-Type": "application/json"})


def main(argv=None):
    p = argparse.ArgumentParser(description="recording HTTP server")
    p.add_argument("--listen", default="127.0.0.1:8081", help="HOST:PORT (port 0 picks one)")
    p.add_argument("--log", action="store_true", help="print each request as a JSON line")
    p.add_argument("--respond", action="append", default=[], metavar="JSON",
                   help='a response rule, as for POST /_recorder/respond, e.g. '
                        '\'{"prefix": "/v2/enqueue", "status": 202, "json": {"status": "success"}}\'')
    a = p.parse_args(argv)
    host, _, port = a.listen.rpartition(":")
    rec = Recorder(host or "0.0.0.0", int(port))
    for spec in a.respond:
        spec = json.loads(spec)
        rec.respond(spec.pop("prefix", "/"), **spec)
    if a.log:
        orig = rec._record

        def logged(req):
            orig(req)
            print(json.dumps(req.to_dict()), flush=True)
        rec._record = logged
    print(json.dumps({"msg": "listening", "addr": "%s:%d" % (host, rec.port)}), flush=True)
    try:
        rec.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
