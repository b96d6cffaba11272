"""A stand-in for Slack's Web API (chat.postMessage, chat.update), strict
about what Slack documents: a bot token in `Authorization: Bearer`, a JSON
body, a channel, text or blocks within Slack's limits, `thread_ts` naming a
message of that channel, `reply_broadcast` only in a thread, `ts` of an
existing message for chat.update. Errors are answered the way Slack answers
them: HTTP 200 with {"ok": false, "error": "..."}; `ratelimited` is HTTP
429 with Retry-After. A request the stand-in finds malformed is also kept
in `invalid`, so a test can assert there was none.

`plan[method]` is a list of answers for the next calls of that method (the
last one does not repeat): "ok", ("error", name), ("ratelimited", secs) or
("sleep", secs).
"""

import http.server
import json
import threading
import time

from harness import SCALE

TEXT_MAX = 40000        # chat.postMessage: text is truncated past this
BLOCKS_MAX = 50         # blocks in one message
SECTION_TEXT_MAX = 3000
HEADER_TEXT_MAX = 150


class SlackAPI:
    def __init__(self, token, channel="C0ROLLBACK"):
        self.token = token
        self.channel = channel
        self.lock = threading.RLock()
        self.calls = []        # {"method", "body" (parsed), "t", "answer"}
        self.invalid = []      # (method, why)
        self.messages = {}     # ts -> {"text", "blocks", "thread_ts", "replies": [ts]}
        self.plan = {}
        self.seq = 0
        api = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                method = self.path.rsplit("/", 1)[-1]
                status, headers, out = api.handle(method, self.headers, raw)
                data = json.dumps(out).encode()
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = "http://127.0.0.1:%d/api" % self.port
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- the API

    def _bad(self, method, why):
        self.invalid.append((method, why))
        return 200, {}, {"ok": False, "error": why}

    def _check_message(self, method, b):
        text, blocks = b.get("text"), b.get("blocks")
        if text is None and blocks is None:
            return "no_text"
        if text is not None and (not isinstance(text, str) or len(text) > TEXT_MAX):
            return "msg_too_long"
        if blocks is not None:
            if not isinstance(blocks, list) or len(blocks) > BLOCKS_MAX:
                return "invalid_blocks"
            for blk in blocks:
                t = blk.get("text")
                if blk.get("type") == "section" and t and len(t.get("text", "")) > SECTION_TEXT_MAX:
                    return "invalid_blocks"
                if blk.get("type") == "header" and t and len(t.get("text", "")) > HEADER_TEXT_MAX:
                    return "invalid_blocks"
        return None

    def handle(self, method, headers, raw):
        with self.lock:
            step = "ok"
            steps = self.plan.get(method)
            if steps:
                step = steps.pop(0)
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            self.calls.append({"method": method, "body": body, "t": time.monotonic(),
                               "answer": step})
        if isinstance(step, tuple) and step[0] == "sleep":
            time.sleep(step[1])
            step = "ok"
        if isinstance(step, tuple) and step[0] == "ratelimited":
            return 429, {"Retry-After": str(step[1])}, {"ok": False, "error": "ratelimited"}
        with self.lock:
            if headers.get("Authorization") != "Bearer " + self.token:
                return self._bad(method, "invalid_auth")
            if not (headers.get("Content-Type") or "").startswith("application/json"):
                return self._bad(method, "invalid_form_data")
            if not isinstance(body, dict):
                return self._bad(method, "invalid_json")
            if isinstance(step, tuple) and step[0] == "error":
                return 200, {}, {"ok": False, "error": step[1]}
            if method not in ("chat.postMessage", "chat.update"):
                return self._bad(method, "unknown_method")
            if body.get("channel") != self.channel:
                return self._bad(method, "channel_not_found")
            why = self._check_message(method, body)
            if why:
                return self._bad(method, why)
            if method == "chat.update":
                ts = body.get("ts")
                if ts not in self.messages or self.messages[ts]["thread_ts"]:
                    return self._bad(method, "message_not_found")
                self.messages[ts].update(text=body.get("text"), blocks=body.get("blocks"))
                return 200, {}, {"ok": True, "channel": self.channel, "ts": ts,
                                 "text": body.get("text")}
            thread = body.get("thread_ts")
            if "reply_broadcast" in body and (not thread or
                                              not isinstance(body["reply_broadcast"], bool)):
                return self._bad(method, "invalid_arguments")
            if thread is not None and (thread not in self.messages or
                                       self.messages[thread]["thread_ts"]):
                return self._bad(method, "thread_not_found")
            self.seq += 1
            ts = "1700000000.%06d" % self.seq
            self.messages[ts] = {"text": body.get("text"), "blocks": body.get("blocks"),
                                 "thread_ts": thread, "replies": []}
            if thread:
                self.messages[thread]["replies"].append(ts)
            return 200, {}, {"ok": True, "channel": self.channel, "ts": ts,
                             "message": {"text": body.get("text"), "ts": ts}}

    # -- for tests

    def got(self, method=None):
        with self.lock:
            return [c for c in self.calls if method is None or c["method"] == method]

    def roots(self):
        with self.lock:
            return [ts for ts, m in sorted(self.messages.items()) if not m["thread_ts"]]

    def replies(self, root):
        """[(text, broadcast)] of the thread of root, in order."""
        with self.lock:
            out = []
            for c in self.calls:
                b = c["body"] or {}
                if c["method"] == "chat.postMessage" and b.get("thread_ts") == root \
                        and c["answer"] == "ok":
                    out.append((b.get("text"), b.get("reply_broadcast", False)))
            return out

    def wait(self, pred, what, timeout=15):
        deadline = time.monotonic() + timeout * SCALE
        while time.monotonic() < deadline:
            with self.lock:
                if pred():
                    return
            time.sleep(0.05)
        raise AssertionError("slack stand-in: %s; calls: %r"
                             % (what, [(c["method"], c["body"]) for c in self.got()][-12:]))
