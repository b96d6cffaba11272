"""Recipes under rules/examples/ (issue 15), each run by rollbackd against
the real tool or a stand-in that follows the vendor's documented API:

- HAProxy runtime API, against Debian's real haproxy with two local
  backends: after the action every request reaches the old colour.

Each test loads the recipe's rule file (check-rules must pass it as
shipped), points it at the local server, fires the alert it matches and
asserts exactly what reached the tool.

Python 3 standard library only.
"""

import http.client
import http.server
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import harness
from harness import SCALE, Server
from test_engine import alert

EXAMPLES = os.path.join(harness.SRC, "rules", "examples")


def load_recipe(name):
    with open(os.path.join(EXAMPLES, name)) as f:
        return json.load(f)


def wait_for(pred, timeout, what):
    end = time.monotonic() + timeout * SCALE
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("%s not reached within %.1fs" % (what, timeout * SCALE))


class Colour(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = self.server.colour.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def backend(case, colour):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Colour)
    srv.colour = colour
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    case.cleanups.append(srv.server_close)
    case.cleanups.append(srv.shutdown)
    return srv


class RecipeCase(unittest.TestCase):
    def setUp(self):
        if not harness.binary_available():
            self.fail(harness.skip_reason())
        self.tmp = tempfile.mkdtemp(prefix="recipe-")
        self.cleanups = []

    def tearDown(self):
        for c in reversed(self.cleanups):
            c()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def rollbackd(self, rules, config=None):
        srv = Server(config=dict({"dry_run": False}, **(config or {})))
        with open(os.path.join(srv.rules_dir, "recipe.json"), "w") as f:
            json.dump(rules, f)
        srv.start()
        self.cleanups.append(srv.cleanup)
        self.cleanups.append(lambda: srv.proc and srv.proc.poll() is None and srv.stop())
        return srv

    def fire(self, srv, labels, value="0.05"):
        p = harness.make_payload(alerts=[alert(labels, value=value)])
        r = srv.post_alerts(p)
        self.assertEqual(r.status, 200, r)
        return r.json()["decisions"][0]

    def wait_done(self, srv, inc_id, timeout=20):
        def done():
            r = srv.request("GET", "/v1/incidents/" + inc_id)
            i = r.json()
            if i.get("actions") and all(a.get("result") != "running" for a in i["actions"]) \
                    and i.get("state") not in ("acting", "pending"):
                return i
            return None
        return wait_for(done, timeout, "actions of %s finished" % inc_id)


class HAProxyTest(RecipeCase):
    def start_haproxy(self, blue_port, green_port):
        self.sock = os.path.join(self.tmp, "admin.sock")
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        cfg = os.path.join(self.tmp, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write("""global
    stats socket %s mode 600 level admin
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
frontend fe
    bind 127.0.0.1:%d
    default_backend checkout
backend checkout
    balance roundrobin
    server blue 127.0.0.1:%d
    server green 127.0.0.1:%d
""" % (self.sock, self.port, blue_port, green_port))
        self.haproxy_log = open(os.path.join(self.tmp, "haproxy.log"), "wb")
        self.cleanups.append(self.haproxy_log.close)
        proc = subprocess.Popen(["haproxy", "-db", "-f", cfg], stdout=self.haproxy_log,
                                stderr=subprocess.STDOUT)

        def stop():
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.cleanups.append(stop)
        wait_for(lambda: os.path.exists(self.sock) and self.get_colour(), 10, "haproxy up")

    def get_colour(self):
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            c.request("GET", "/", headers={"Connection": "close"})
            r = c.getresponse()
            body = r.read().decode()
            c.close()
            return body if r.status == 200 else None
        except OSError:
            return None

    def colours(self, n=20):
        return [self.get_colour() for _ in range(n)]

    def test_traffic_goes_only_to_the_old_colour(self):
        blue, green = backend(self, "blue"), backend(self, "green")
        self.start_haproxy(blue.server_address[1], green.server_address[1])
        before = self.colours()
        self.assertEqual(sorted(set(before)), ["blue", "green"], before)

        rules = load_recipe("haproxy.json")
        r = harness.run_cli(["check-rules", os.path.join(EXAMPLES, "haproxy.json")])
        self.assertEqual(r.returncode, 0, r)
        argv = rules["rules"][0]["actions"][0]["argv"]
        self.assertEqual(argv[0], "rules/examples/haproxy-switch.sh")
        argv[0] = os.path.join(EXAMPLES, "haproxy-switch.sh")
        argv.append(self.sock)
        srv = self.rollbackd(rules)
        d = self.fire(srv, {"alertname": "RollbackErrorRate", "balancer": "haproxy",
                            "service": "checkout", "old_colour": "blue",
                            "new_colour": "green"})
        self.assertEqual(d["outcome"], "acting", d)
        inc = self.wait_done(srv, d["incident"])
        self.assertEqual(inc["state"], "rolled_back", inc)
        self.assertEqual(inc["actions"][0]["exit_code"], 0)
        self.assertEqual(inc["actions"][0]["output"],
                         "haproxy-switch.sh: checkout: traffic back to blue, green in "
                         "maintenance\n")
        self.assertEqual(self.colours(), ["blue"] * 20)
        # HAProxy itself says so
        out = subprocess.run(["socat", "-t", "5", "stdio", "unix-connect:" + self.sock],
                             input=b"show servers state checkout\n", capture_output=True,
                             timeout=10).stdout.decode()
        rows = {l.split()[3]: l.split() for l in out.splitlines()
                if l and l[0].isdigit() and len(l.split()) > 6}
        # srv_admin_state (column 7): 1 = forced maintenance
        self.assertEqual(rows["green"][6], "1", out)
        self.assertEqual(rows["blue"][6], "0", out)

    def test_unknown_server_fails_the_action(self):
        blue, green = backend(self, "blue"), backend(self, "green")
        self.start_haproxy(blue.server_address[1], green.server_address[1])
        r = subprocess.run([os.path.join(EXAMPLES, "haproxy-switch.sh"), "checkout", "blue",
                            "purple", self.sock], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1, r)
        self.assertEqual(r.stderr.strip(), "haproxy-switch.sh: HAProxy refused: No such server.")
        r = subprocess.run([os.path.join(EXAMPLES, "haproxy-switch.sh"), "checkout", "blue",
                            "green;x", self.sock], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2, r)
        self.assertEqual(r.stderr.strip(),
                         "haproxy-switch.sh: refusing name 'green;x' (expected [A-Za-z0-9._-]+)")
        self.assertEqual(sorted(set(self.colours())), ["blue", "green"])


if __name__ == "__main__":
    unittest.main()
