"""Secrets never leak (issue 12, "Secrets") through the whole daemon.

An exec action whose shell traces its argument (`set -x`), an exec action
that prints a secret raw, JSON-escaped, percent-encoded (upper and lower hex)
and form-encoded, and an HTTP action to a local stand-in whose error page
echoes the Authorization header and the request path. The secrets have
`+/=`, a space, `"` and `\\` in them. Neither the raw value nor any of its
encodings may appear in the journal, the Slack and PagerDuty bodies, the
incident API, the log or `test-rules` output; what was redacted is shown
as <redacted:NAME>, exactly.

Python 3 standard library only.
"""

import http.server
import json
import os
import re
import threading
import time
import unittest
import urllib.parse

import harness
from harness import SCALE, Server, make_payload, run_cli
from test_journal import read_journal
from test_notify import Recorder

M = harness.SECRET_MARK
TOK = M + '"tok\\en-0123456789'        # in a header: `"` and `\`
URLKEY = M + "+/=url key-0123"         # in a URL path: `+/=` and a space
EXECSEC = M + ' "x\\y" +/= exec-0123'  # printed in every encoding
SETX = M + "-set-x-arg-0123456789"     # traced by the shell
PD_KEY = M + "-pd-routing-key-0123"
LINKS_KEY = M + "-links-key-0123456789"

PRINT_ALL = ("import sys, json, re, urllib.parse as u\n"
             "s = sys.argv[1]\n"
             "q = u.quote(s, safe='')\n"
             "print(s)\n"
             "print(json.dumps(s))\n"
             "print(q)\n"
             "print(re.sub('%[0-9A-F]{2}', lambda m: m.group(0).lower(), q))\n"
             "print(u.quote_plus(s, safe=''))\n")


def encodings(s):
    """Every form a secret can leak in."""
    q = urllib.parse.quote(s, safe="")
    forms = {s, json.dumps(s)[1:-1], q, urllib.parse.quote_plus(s, safe=""),
             re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(), q)}
    return forms


class EchoServer:
    """Answers every request 500 with its Authorization header and path,
    raw, JSON-escaped and percent-encoded."""

    def __init__(self):
        self.hits = []

        echo = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_PATCH(self):
                n = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(n)
                auth = self.headers.get("Authorization", "")
                q = urllib.parse.quote(auth, safe="")
                out = ("auth=%s\njson=%s\npath=%s\nquoted=%s\nlower=%s\n" % (
                    auth, json.dumps(auth), self.path, q,
                    re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(), q))).encode()
                echo.hits.append(self.path)
                self.send_response(500)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def rules(echo_port):
    return [{
        "name": "leaky",
        "matchers": ['alertname="RollbackErrorRate"'],
        "group_by": ["service"],
        "mode": "auto",
        "on_failure": "continue",
        "notify": ["slack", "pagerduty"],
        "actions": [
            {"type": "exec", "argv": ["/bin/sh", "-c", 'set -x; : "$1"', "sh",
                                      "{{secret.setx}}"], "timeout": "10s"},
            {"type": "exec", "argv": ["/usr/bin/python3", "-c", PRINT_ALL,
                                      "{{secret.execsec}}"], "timeout": "10s"},
            {"type": "http", "method": "PATCH",
             "url": "http://127.0.0.1:%d/flags/{{secret.urlkey}}?x=1" % echo_port,
             "headers": {"Authorization": "Bearer {{secret.tok}}"},
             "body": {"enabled": False}, "retries": 0, "timeout": "10s"},
        ],
    }]


WANT_OUTPUTS = [
    "+ : <redacted:setx>\n",
    "<redacted:execsec>\n\"<redacted:execsec>\"\n<redacted:execsec>\n"
    "<redacted:execsec>\n<redacted:execsec>\n",
    "auth=Bearer <redacted:tok>\njson=\"Bearer <redacted:tok>\"\n"
    "path=/flags/<redacted:urlkey>?x=1\nquoted=Bearer%20<redacted:tok>\n"
    "lower=Bearer%20<redacted:tok>\n",
]


class SecretsTest(unittest.TestCase):
    SECRETS = (TOK, URLKEY, EXECSEC, SETX, PD_KEY, LINKS_KEY)

    def setUp(self):
        self.echo = EchoServer()
        self.rec = Recorder()
        self.srv = None

    def tearDown(self):
        if self.srv:
            self.srv.cleanup()
        self.rec.close()
        self.echo.close()

    def config(self, s):
        return {
            "dry_run": False,
            "public_url": "https://rollbackd.example.com",
            "auth": {"links": {"secret": s.secret("links", LINKS_KEY), "ttl": "1h"}},
            "secrets": {"tok": s.secret("tok", TOK), "urlkey": s.secret("urlkey", URLKEY),
                        "execsec": s.secret("execsec", EXECSEC),
                        "setx": s.secret("setx", SETX)},
            "notify": {
                "slack": {"webhook_url": s.secret(
                    "slack", "http://127.0.0.1:%d/services/T/B/X" % self.rec.port)},
                "pagerduty": {"routing_key": s.secret("pd", PD_KEY),
                              "url": "http://127.0.0.1:%d/v2/enqueue" % self.rec.port},
            },
        }

    def assertClean(self, text, where):
        for s in self.SECRETS:
            for form in encodings(s):
                self.assertNotIn(form, text, "%r (a form of a secret) in %s" % (form, where))

    def incident(self, inc):
        deadline = time.monotonic() + 20 * SCALE
        while time.monotonic() < deadline:
            r = self.srv.request("GET", "/v1/incidents/" + inc)
            self.assertEqual(r.status, 200, r)
            obj = r.json()
            if obj["state"] not in ("acting", "pending"):
                return r
            time.sleep(0.05)
        self.fail("incident %s still acting" % inc)

    def test_outputs_and_expansions_are_redacted_everywhere(self):
        self.srv = Server(config=self.config)
        with open(os.path.join(self.srv.rules_dir, "r.json"), "w") as f:
            json.dump({"rules": rules(self.echo.port)}, f)
        self.srv.start()
        r = self.srv.post_alerts(make_payload(n=1, service="checkout"))
        self.assertEqual(r.status, 200, r)
        d = r.json()["decisions"][0]
        self.assertEqual(d["outcome"], "acting", d)
        inc = d["incident"]
        answer = self.incident(inc)
        obj = answer.json()
        self.assertEqual(obj["state"], "action_failed", obj)
        self.assertEqual([a["output"] for a in obj["actions"]], WANT_OUTPUTS)
        self.assertEqual([a["result"] for a in obj["actions"]], ["ok", "ok", "failed"])
        # the stand-in got the real secret, percent-encoded in the path
        self.assertEqual(self.echo.hits, ["/flags/" + urllib.parse.quote(URLKEY, safe="")
                                          + "?x=1"])
        self.assertClean(answer.text, "the incident API")
        self.assertClean(self.srv.request("GET", "/v1/incidents").text, "/v1/incidents")
        # notices: the one after the failure carries the outputs
        slack = self.rec.wait("/services", 2)
        pd = self.rec.wait("/v2/enqueue", 2)
        bodies = [x["body"].decode() for x in slack + pd]
        self.assertTrue(any("&lt;redacted:tok&gt;" in b for b in bodies), bodies)
        for b in bodies:
            self.assertClean(b.replace(PD_KEY, ""), "a notice body")  # PD needs its key
        self.assertEqual(self.srv.stop(), 0, self.srv.stderr_text()[-2000:])
        journal = b"\n".join(read_journal(self.srv.state_dir)).decode()
        self.assertClean(journal, "the journal")
        self.assertClean(self.srv.stderr_text(), "the log")
        recs = [json.loads(l) for l in journal.splitlines()]
        started = [x for x in recs if x["type"] == "action_started"]
        self.assertEqual(started[0]["argv"], ["/bin/sh", "-c", 'set -x; : "$1"', "sh",
                                              "<redacted:setx>"])
        self.assertEqual(started[2]["url"], "http://127.0.0.1:%d/flags/<redacted:urlkey>?x=1"
                         % self.echo.port)
        self.assertEqual(started[2]["headers"], {"Authorization": "Bearer <redacted:tok>"})
        finished = [x["output"] for x in recs if x["type"] == "action_finished"]
        self.assertEqual(finished, WANT_OUTPUTS)
        intents = [x for x in recs if x["type"] == "notify_intent"]
        self.assertTrue(intents)

    def test_test_rules_prints_no_encoded_secret(self):
        srv = Server(config=self.config)
        try:
            conf = os.path.join(srv.tmp, "c.json")
            with open(conf, "w") as f:
                json.dump(self.config(srv), f)
            rpath = os.path.join(srv.tmp, "rules.json")
            with open(rpath, "w") as f:
                json.dump({"rules": rules(self.echo.port)}, f)
            apath = os.path.join(srv.tmp, "alerts.json")
            with open(apath, "w") as f:
                json.dump(make_payload(n=1, service="checkout"), f)
            p = run_cli(["test-rules", "--rules", rpath, "--alerts", apath, "--config", conf])
            self.assertEqual(p.returncode, 0, p)
            out = p.stdout.decode()
            self.assertClean(out + p.stderr.decode(), "test-rules output")
            d = json.loads(out.splitlines()[0])
            a = d["actions"]
            self.assertEqual(a[0]["argv"][-1], "<redacted:setx>")
            self.assertEqual(a[1]["argv"][-1], "<redacted:execsec>")
            self.assertEqual(a[2]["url"], "http://127.0.0.1:%d/flags/<redacted:urlkey>?x=1"
                             % self.echo.port)
            self.assertEqual(a[2]["headers"], {"Authorization": "Bearer <redacted:tok>"})
            self.assertEqual(self.echo.hits, [])
        finally:
            srv.cleanup()


class WeakKeysTest(unittest.TestCase):
    def check(self, auth, key, what):
        srv = Server()
        try:
            conf = os.path.join(srv.tmp, "c.json")
            with open(conf, "w") as f:
                json.dump({"auth": auth(srv)}, f)
            p = run_cli(["check-config", "--config", conf])
            self.assertEqual(p.returncode, 1, p)
            self.assertEqual(p.stderr.decode(), "rollbackd: %s: %s: %s\n" % (conf, key, what))
            self.assertEqual(p.stdout, b"")
        finally:
            srv.cleanup()

    def test_short_and_blank_keys_refused(self):
        short = "0123456789abcde"  # 15 bytes
        self.check(lambda s: {"links": {"secret": s.secret("l", short)}},
                   "auth.links.secret", "must be at least 16 bytes")
        self.check(lambda s: {"bearer": {"token": s.secret("b", short)}},
                   "auth.bearer.token", "must be at least 16 bytes")
        self.check(lambda s: {"api": {"token": s.secret("a", " " * 20)}},
                   "auth.api.token", "must not be all whitespace")
        self.check(lambda s: {"hmac": {"secrets": [s.secret("h1", "0123456789abcdef"),
                                                   s.secret("h2", "k")]}},
                   "auth.hmac.secrets[1]", "must be at least 16 bytes")

    def test_sixteen_bytes_pass(self):
        srv = Server()
        try:
            conf = os.path.join(srv.tmp, "c.json")
            k = "0123456789abcdef"
            with open(conf, "w") as f:
                json.dump({"rules": srv.rules_dir,
                           "auth": {"links": {"secret": srv.secret("l", k)},
                                    "bearer": {"token": srv.secret("b", k)},
                                    "api": {"token": srv.secret("a", k)},
                                    "hmac": {"secrets": [srv.secret("h", k)]}}}, f)
            p = run_cli(["check-config", "--config", conf])
            self.assertEqual(p.returncode, 0, p)
            self.assertEqual(p.stdout.decode(), "%s: ok\n" % conf)
        finally:
            srv.cleanup()


if __name__ == "__main__":
    unittest.main()
