"""Test harness: run the real rollbackd binary over loopback.

Importable from tests/integration and (via sys.path) from tests/e2e:

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
    import harness

Python 3 standard library only.

Environment:
  ROLLBACKD_BIN   path to the binary (default: <repo>/build/rollbackd)
  ROLLBACKD_SRC   repository root (default: two levels above this file)
  ROLLBACKD_TEST_TIMEOUT_SCALE  multiply every wait by this (e.g. 3 under ASan/valgrind)
  ROLLBACKD_TEST_WORKERS  "workers" in every config Server writes, unless the test
                  sets it (`make test-tsan` runs the suite with 4 event loops)
"""

import copy
import datetime
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.environ.get("ROLLBACKD_SRC") or os.path.join(HERE, "..", ".."))
BIN = os.path.abspath(os.environ.get("ROLLBACKD_BIN") or os.path.join(SRC, "build", "rollbackd"))
DATA = os.path.join(SRC, "tests", "data")
SCALE = float(os.environ.get("ROLLBACKD_TEST_TIMEOUT_SCALE", "1") or "1")
WORKERS = int(os.environ["ROLLBACKD_TEST_WORKERS"]) if os.environ.get("ROLLBACKD_TEST_WORKERS") else None

START_TIMEOUT = 20.0 * SCALE   # until "listening"
STOP_TIMEOUT = 20.0 * SCALE    # SIGTERM -> exit
IO_TIMEOUT = 15.0 * SCALE      # one HTTP exchange

# Recognisable secret values: the tests assert none of them ever shows up in
# logs, /metrics or any response body.
SECRET_MARK = "S3CR3T"


def binary_available():
    return os.path.isfile(BIN) and os.access(BIN, os.X_OK)


def skip_reason():
    return "rollbackd binary not found at %s (set ROLLBACKD_BIN)" % BIN


# --------------------------------------------------------------------------
# Payloads and signatures


def rfc3339(dt=None, delta_s=0):
    dt = dt or datetime.datetime.now(datetime.timezone.utc)
    dt = dt + datetime.timedelta(seconds=delta_s)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (dt.microsecond // 1000)


def am_fingerprint(labels):
    """Alertmanager's (prometheus/common model) label-set fingerprint:
    FNV-1a 64 over sorted names: name 0xff value 0xff ..., as %016x."""
    h = 14695981039346656037
    for name in sorted(labels):
        for chunk in (name.encode(), b"\xff", labels[name].encode(), b"\xff"):
            for b in chunk:
                h ^= b
                h = (h * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def make_alert(alertname="RollbackErrorRate", status="firing", service="checkout",
               severity="critical", value="0.05", extra_labels=None,
               with_fingerprint=True, started_ago_s=120):
    labels = {"alertname": alertname, "service": service, "severity": severity}
    if extra_labels:
        labels.update(extra_labels)
    a = {
        "status": status,
        "labels": labels,
        "annotations": {"summary": "%s on %s" % (alertname, service), "value": value},
        "startsAt": rfc3339(delta_s=-started_ago_s),
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else rfc3339(),
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=up",
    }
    if with_fingerprint:
        a["fingerprint"] = am_fingerprint(labels)
    return a


def make_payload(n=3, status="firing", alerts=None, **alert_kw):
    """An Alertmanager webhook_config payload, version "4"."""
    if alerts is None:
        alerts = [make_alert(status=status, extra_labels={"pod": "checkout-%d" % i},
                             **alert_kw) for i in range(n)]
    common = {"alertname": alerts[0]["labels"]["alertname"]} if alerts else {}
    return {
        "receiver": "rollbackd",
        "status": status,
        "alerts": alerts,
        "groupLabels": dict(common),
        "commonLabels": dict(common),
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "version": "4",
        "groupKey": '{}:{alertname="%s"}' % common.get("alertname", ""),
        "truncatedAlerts": 0,
    }


def body_of(payload):
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode()
    return json.dumps(payload).encode()


def rollbackd_signature(secret, body, t=None, extra_v1=()):
    """X-Rollbackd-Signature value: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>."""
    if t is None:
        t = int(time.time())
    key = secret.encode() if isinstance(secret, str) else secret
    mac = hmac.new(key, b"%d." % t + body_of(body), hashlib.sha256).hexdigest()
    parts = ["t=%d" % t]
    parts += ["v1=%s" % v for v in extra_v1]
    parts.append("v1=%s" % mac)
    return ",".join(parts)


def github_signature(secret, body):
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body_of(body), hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------
# HTTP helpers


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # dict, lower-case names
        self.body = body        # bytes

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<Response %s %r>" % (self.status, self.body[:300])


def http_request(port, method, path, body=None, headers=None, timeout=None,
                 content_type="application/json"):
    """One request on a fresh connection; returns a Response."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout or IO_TIMEOUT)
    try:
        hdrs = {}
        if body is not None and content_type is not None:
            hdrs["Content-Type"] = content_type
        hdrs.update(headers or {})
        conn.request(method, path, body=body_of(body) if body is not None else None,
                     headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        conn.close()


def raw_exchange(port, data, timeout=None, read_until_close=True, chunks=None):
    """Send raw bytes, then read until the peer closes (or timeout).

    Send errors (EPIPE / ECONNRESET when the server answers early and closes)
    are swallowed; returns (bytes received, how it ended: "eof", "reset",
    "timeout")."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout or IO_TIMEOUT)
    try:
        try:
            if chunks:
                for c in chunks:
                    s.sendall(c)
            else:
                s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        got = b""
        end = "timeout"
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                end = "timeout"
                break
            except ConnectionResetError:
                end = "reset"
                break
            if not chunk:
                end = "eof"
                break
            got += chunk
            if not read_until_close and b"\r\n\r\n" in got:
                break
        return got, end
    finally:
        s.close()


def parse_raw_response(data):
    """(status, headers dict lower-case, body bytes) from a raw HTTP/1.x response;
    status None when there is no status line."""
    m = re.match(rb"HTTP/1\.[01] (\d{3})[^\r\n]*\r\n", data)
    if not m:
        return None, {}, b""
    head, _, body = data.partition(b"\r\n\r\n")
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        headers[k.decode().strip().lower()] = v.decode().strip()
    return int(m.group(1)), headers, body


def parse_metrics(text):
    """{(name, frozenset(labels.items())): float} from text exposition format."""
    out = {}
    line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)(\s+\d+)?$')
    label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = line_re.match(line)
        if not m:
            raise ValueError("unparseable metrics line: %r" % line)
        labels = frozenset(label_re.findall(m.group(2) or ""))
        v = m.group(3)
        out[(m.group(1), labels)] = float(v.replace("+Inf", "inf"))
    return out


def metric(metrics, name, **labels):
    """Value of one series, 0.0 when absent."""
    return metrics.get((name, frozenset(labels.items())), 0.0)


# --------------------------------------------------------------------------
# The server


def deep_merge(base, over):
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        elif v is None:
            out.pop(k, None)
        else:
            out[k] = copy.deepcopy(v)
    return out


class Server:
    """A rollbackd process with its own temp config, secrets and state.

        srv = Server(config={"auth": {"bearer": {"token": srv_secret}}})

    Use Server.secret(name, value) *before* start (or the secrets= argument)
    to get {"file": PATH} objects for the config. Build configs with a
    callable when they need secret paths:

        srv = Server(config=lambda s: {"auth": {"bearer": {"token": s.secret("tok", "...")}}})
    """

    def __init__(self, config=None, env=None, args=None, log_level="debug"):
        self.tmp = tempfile.mkdtemp(prefix="rollbackd-it-")
        self.rules_dir = os.path.join(self.tmp, "rules")
        self.state_dir = os.path.join(self.tmp, "state")
        self.secrets_dir = os.path.join(self.tmp, "secrets")
        for d in (self.rules_dir, self.state_dir, self.secrets_dir):
            os.makedirs(d)
        os.chmod(self.secrets_dir, 0o700)
        self.secret_values = []
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.args = list(args or [])
        base = {
            "listen": "127.0.0.1:0",
            "rules": self.rules_dir,
            "state_dir": self.state_dir,
            "log_level": log_level,
        }
        if WORKERS is not None:
            base["workers"] = WORKERS
        over = config(self) if callable(config) else config
        self.config = deep_merge(base, over)
        self.config_path = os.path.join(self.tmp, "rollbackd.json")
        with open(self.config_path, "w") as f:
            json.dump(self.config, f, indent=2)
        self.proc = None
        self.port = None
        self.addr = None
        self.lines = []        # raw stderr lines (str)
        self.logs = []         # parsed JSON objects (non-JSON lines kept as {"_raw": ...})
        self.stdout = b""
        self._cond = threading.Condition()
        self._reader = None
        self._out_reader = None
        self.returncode = None

    # -- secrets

    def secret(self, name, value, newline=True):
        """Write value to a 0600 file and return {"file": path}."""
        path = os.path.join(self.secrets_dir, name)
        with open(path, "w") as f:
            f.write(value + ("\n" if newline else ""))
        os.chmod(path, 0o600)
        self.secret_values.append(value)
        return {"file": path}

    def env_secret(self, name, value):
        self.env[name] = value
        self.secret_values.append(value)
        return {"env": name}

    # -- lifecycle

    def start(self, timeout=None, probe_port=None):
        """Start and wait until ready: by the "listening" log line, or - when
        probe_port is given (e.g. with log_level warn, which hides that line) -
        by polling GET /healthz on that fixed port."""
        if probe_port is not None:
            self.config["listen"] = "127.0.0.1:%d" % probe_port
            with open(self.config_path, "w") as f:
                json.dump(self.config, f, indent=2)
        cmd = [BIN, "serve", "--config", self.config_path] + self.args
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=self.env, cwd=self.tmp)
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        self._out_reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._out_reader.start()
        if probe_port is not None:
            self.port = probe_port
            self.addr = "127.0.0.1:%d" % probe_port
            deadline = time.monotonic() + (timeout or START_TIMEOUT)
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    if http_request(probe_port, "GET", "/healthz", timeout=2).status == 200:
                        return self
                except OSError:
                    pass
                time.sleep(0.05)
            self.kill()
            raise AssertionError("rollbackd did not answer /healthz on port %d; exit=%r; "
                                 "stderr:\n%s" % (probe_port, self.proc.poll(),
                                                  "\n".join(self.lines[-40:])))
        line = self.wait_log(lambda l: l.get("msg") == "listening",
                             timeout=timeout or START_TIMEOUT)
        if line is None:
            self.kill()
            raise AssertionError("rollbackd did not log \"listening\" within %.0fs; exit=%r; "
                                 "stderr:\n%s" % (timeout or START_TIMEOUT, self.proc.poll(),
                                                  "\n".join(self.lines[-40:])))
        self.addr = line.get("addr")
        m = re.match(r"^127\.0\.0\.1:(\d+)$", str(self.addr))
        if not m or int(m.group(1)) == 0:
            self.kill()
            raise AssertionError("\"listening\" line has addr=%r, want 127.0.0.1:<real port>"
                                 % (self.addr,))
        self.port = int(m.group(1))
        return self

    def _read_stderr(self):
        for raw in iter(self.proc.stderr.readline, b""):
            s = raw.decode("utf-8", "replace").rstrip("\n")
            try:
                obj = json.loads(s)
                if not isinstance(obj, dict):
                    obj = {"_raw": s}
            except ValueError:
                obj = {"_raw": s}
            with self._cond:
                self.lines.append(s)
                self.logs.append(obj)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _read_stdout(self):
        data = self.proc.stdout.read()
        self.stdout = data or b""

    def wait_log(self, pred, timeout=None, start=0):
        """First parsed log line (from index start) matching pred, or None."""
        deadline = time.monotonic() + (timeout if timeout is not None else IO_TIMEOUT)
        i = start
        with self._cond:
            while True:
                while i < len(self.logs):
                    if pred(self.logs[i]):
                        return self.logs[i]
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    return None
                self._cond.wait(min(left, 0.2))

    def log_mark(self):
        with self._cond:
            return len(self.logs)

    def logs_since(self, mark):
        with self._cond:
            return list(self.logs[mark:])

    def stop(self, sig=signal.SIGTERM, timeout=None):
        """Signal the server and wait; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.returncode = self.proc.wait(timeout=timeout or STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.returncode = self.proc.wait()
            self._join()
            raise AssertionError("rollbackd did not exit within %.0fs of signal %d; stderr tail:\n%s"
                                 % (timeout or STOP_TIMEOUT, sig, "\n".join(self.lines[-20:])))
        self._join()
        return self.returncode

    def _join(self):
        if self._reader:
            self._reader.join(5)
        if self._out_reader:
            self._out_reader.join(5)
        if self.proc is not None and self.proc.poll() is not None:
            for f in (self.proc.stdout, self.proc.stderr):
                if f and not f.closed and not (self._reader and self._reader.is_alive()):
                    f.close()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._join()

    def cleanup(self):
        self.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- HTTP

    def request(self, method, path, body=None, headers=None, **kw):
        return http_request(self.port, method, path, body=body, headers=headers, **kw)

    def all_incidents(self):
        """Every incident of GET /v1/incidents, following its rel="next"
        pages (the list is paginated)."""
        out, path = [], "/v1/incidents?limit=1000"
        while path:
            r = self.request("GET", path)
            if r.status != 200:
                raise AssertionError("GET %s: %d %r" % (path, r.status, r.body))
            out.extend(r.json())
            link = r.headers.get("link")
            path = re.match(r'^<([^>]+)>; rel="next"$', link).group(1) if link else None
        return out

    def post_alerts(self, payload=None, headers=None, **kw):
        if payload is None:
            payload = make_payload()
        return self.request("POST", "/v1/alerts", body=body_of(payload), headers=headers, **kw)

    def metrics_text(self):
        r = self.request("GET", "/metrics")
        if r.status != 200:
            raise AssertionError("GET /metrics: %r" % r)
        return r.text

    def metrics(self):
        return parse_metrics(self.metrics_text())

    def stderr_text(self):
        with self._cond:
            return "\n".join(self.lines)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run_cli(args, stdin=None, timeout=None, env=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([BIN] + list(args), input=stdin, capture_output=True,
                          timeout=timeout or IO_TIMEOUT, env=e)


# --------------------------------------------------------------------------
# unittest glue

import unittest  # noqa: E402


class ServerTestCase(unittest.TestCase):
    """One server per test class.

    Subclasses set CONFIG (dict or callable(server) -> dict) and may override
    auth_headers(body) to sign "good" requests. tearDownClass stops the
    server with SIGTERM and checks exit code 0, that every stderr line is a
    JSON log object and that no secret leaked into the logs.
    """

    CONFIG = None
    ENV = None
    LOG_LEVEL = "debug"
    server = None

    @classmethod
    def setUpClass(cls):
        if not binary_available():
            raise unittest.SkipTest(skip_reason())
        cls.server = Server(config=cls.CONFIG, env=cls.ENV, log_level=cls.LOG_LEVEL)
        cls.responses = []   # every body we received, for the secret-leak check
        try:
            cls.server.start()
        except Exception:
            cls.server.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        srv = cls.server
        if srv is None:
            return
        try:
            if srv.proc is not None and srv.proc.poll() is None:
                rc = srv.stop()
                if rc != 0:
                    raise AssertionError("%s: rollbackd exited %r after SIGTERM, want 0; "
                                         "stderr tail:\n%s" % (cls.__name__, rc,
                                                               "\n".join(srv.lines[-30:])))
            check_log_lines(srv)
            check_no_secrets(srv, srv.stderr_text(), "stderr")
            for b in cls.responses:
                check_no_secrets(srv, b, "a response body")
        finally:
            srv.cleanup()
            cls.server = None

    # -- helpers for tests

    def auth_headers(self, body):
        return {}

    def post(self, payload=None, headers=None, auth=True, **kw):
        body = body_of(payload if payload is not None else make_payload())
        h = dict(self.auth_headers(body)) if auth else {}
        h.update(headers or {})
        r = self.server.post_alerts(body, headers=h, **kw)
        self.responses.append(r.text)
        return r

    def get(self, path, **kw):
        r = self.server.request("GET", path, **kw)
        self.responses.append(r.text)
        return r

    def assertError(self, r, status, code, *words, prefix=None):
        """Exact status and error code; message mentions every word."""
        self.assertEqual(r.status, status, "want %d %s, got %r" % (status, code, r))
        self.assertIn("application/json", r.headers.get("content-type", ""),
                      "error bodies are JSON: %r" % r)
        try:
            obj = r.json()
        except ValueError:
            self.fail("error body is not JSON: %r" % r)
        self.assertIsInstance(obj, dict, r)
        self.assertEqual(obj.get("error"), code, "error code: %r" % obj)
        msg = obj.get("message")
        self.assertIsInstance(msg, str, "message must be a string: %r" % obj)
        for w in words:
            self.assertIn(w, msg, "message %r should mention %r" % (msg, w))
        if prefix is not None:
            self.assertTrue(msg.startswith(prefix), "message %r should start with %r"
                            % (msg, prefix))
        return obj

    def assertAccepted(self, r, n_alerts=None):
        self.assertEqual(r.status, 200, r)
        self.assertIn("application/json", r.headers.get("content-type", ""), r)
        obj = r.json()
        self.assertEqual(obj.get("status"), "accepted", obj)
        if n_alerts is not None:
            self.assertEqual(obj.get("alerts"), n_alerts, obj)
        self.assertIsInstance(obj.get("decisions"), list, obj)
        return obj

    def assertStillServing(self, n=1):
        """A good request after a bad one still succeeds."""
        r = self.post(make_payload(n))
        self.assertAccepted(r, n)


def check_log_lines(srv):
    bad = [l for l in srv.logs if "_raw" in l]
    if bad:
        raise AssertionError("stderr lines that are not JSON objects:\n%s"
                             % "\n".join(l["_raw"] for l in bad[:10]))
    for l in srv.logs:
        for k in ("ts", "level", "msg"):
            if k not in l:
                raise AssertionError("log line without %r: %r" % (k, l))
        if l["level"] not in ("debug", "info", "warn", "error"):
            raise AssertionError("log line with level %r: %r" % (l["level"], l))
        if not re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$", str(l["ts"])):
            raise AssertionError("ts is not RFC 3339: %r" % l)


def check_no_secrets(srv, text, where):
    for s in srv.secret_values:
        if s and s in text:
            raise AssertionError("secret value %r appears in %s" % (s, where))
