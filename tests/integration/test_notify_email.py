"""Email (SPEC §9 notify.email, issue 16) against a real SMTP server.

Debian's aiosmtpd (tests/integration/smtp_server.py, run under
/usr/bin/python3) listens on loopback with STARTTLS (a certificate this
test makes with openssl) and AUTH. Checks: a rolled-back incident and its
resolution arrive as two multipart/alternative messages (plain text and
HTML) threaded by Message-ID / In-Reply-To, over TLS, logged in, to every
recipient, journaled; a refused login is journaled as notify_failed with
the server's reason and not retried; a server that goes away in the middle
of a delivery is retried, and the message is delivered once it is back.
"""

import email
import email.policy
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from harness import SCALE, Server, free_port, make_payload, metric
from test_journal import read_journal, verify_chain

SMTP_PY = "/usr/bin/python3"
HERE = os.path.dirname(os.path.abspath(__file__))
SMTP_PASSWORD = "smtp-pass-0123456789abcdef"
TO = ["oncall@example.com", "changes@example.org"]


class SmtpServer:
    def __init__(self, tmp, port, stall=False, password=SMTP_PASSWORD):
        self.out = os.path.join(tmp, "mail")
        os.makedirs(self.out, exist_ok=True)
        args = [SMTP_PY, os.path.join(HERE, "smtp_server.py"), "--port", str(port),
                "--out", self.out, "--cert", os.path.join(tmp, "cert.pem"),
                "--key", os.path.join(tmp, "key.pem"), "--user", "rollbackd",
                "--password", password]
        if stall:
            args.append("--stall-first-data")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        line = self.proc.stdout.readline()
        if line.strip() != b"ready":
            self.proc.kill()
            raise AssertionError("smtp_server.py did not start: %r" % line)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc.stdout.close()

    def messages(self):
        out = []
        for name in sorted(os.listdir(self.out)):
            if name.endswith(".eml"):
                with open(os.path.join(self.out, name), "rb") as f:
                    msg = email.message_from_binary_file(f, policy=email.policy.default)
                with open(os.path.join(self.out, name[:-4] + ".json")) as f:
                    env = json.load(f)
                out.append((msg, env))
        return out

    def wait(self, n, timeout=20):
        deadline = time.monotonic() + timeout * SCALE
        while time.monotonic() < deadline:
            got = self.messages()
            if len(got) >= n:
                return got
            time.sleep(0.1)
        raise AssertionError("%d messages, want %d" % (len(self.messages()), n))


class EmailTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="rollbackd-smtp-")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", os.path.join(self.tmp, "key.pem"),
                        "-out", os.path.join(self.tmp, "cert.pem"), "-days", "1",
                        "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                       check=True, capture_output=True)
        self.port = free_port()
        self.smtp = None
        self.srv = None

    def tearDown(self):
        if self.srv:
            self.srv.cleanup()
        if self.smtp:
            self.smtp.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start(self, password=SMTP_PASSWORD):
        tmp, port = self.tmp, self.port
        self.srv = Server(config=lambda s: {
            "dry_run": False,
            "public_url": "https://rollbackd.example.com",
            "auth": {"links": {"secret": s.secret("links", "links-key-0123456789abcdef")}},
            "notify": {"email": {
                "smtp_url": "smtp://127.0.0.1:%d" % port, "from": "rollbackd@example.net",
                "to": TO, "username": "rollbackd", "password": s.secret("smtp", password),
                "starttls": True, "ca_file": os.path.join(tmp, "cert.pem")}},
        })
        rule = {"name": "mail-rule", "matchers": ['alertname="RollbackErrorRate"'],
                "group_by": ["service"],
                "actions": [{"type": "exec", "argv": ["/bin/echo", "rolled <back> & done"],
                             "timeout": "10s"}],
                "notify": ["email"]}
        with open(os.path.join(self.srv.rules_dir, "r.json"), "w") as f:
            json.dump({"rules": [rule]}, f)
        self.srv.start()
        return self.srv

    def wait_metric(self, result, n):
        deadline = time.monotonic() + 20 * SCALE
        while time.monotonic() < deadline:
            if metric(self.srv.metrics(), "rollbackd_notifications_total", channel="email",
                      result=result) >= n:
                return
            time.sleep(0.1)
        self.fail("fewer than %d email notices %s" % (n, result))

    def journal(self):
        return verify_chain(read_journal(self.srv.state_dir))

    def test_threaded_multipart_over_starttls(self):
        self.smtp = SmtpServer(self.tmp, self.port)
        srv = self.start()
        inc = srv.post_alerts(make_payload(n=1, service="mail")).json()["decisions"][0][
            "incident"]
        self.smtp.wait(1)
        srv.post_alerts(make_payload(n=1, service="mail", status="resolved"))
        got = self.smtp.wait(2)
        self.wait_metric("sent", 2)
        self.assertEqual(len(got), 2)
        (first, env1), (second, env2) = got
        for msg, env in got:
            self.assertEqual(env, {"from": "rollbackd@example.net", "to": TO, "tls": True,
                                   "login": "rollbackd"})
            self.assertEqual(msg["From"], "rollbackd <rollbackd@example.net>")
            self.assertEqual(msg["To"], ", ".join(TO))
            self.assertEqual(msg.get_content_type(), "multipart/alternative")
            parts = [p.get_content_type() for p in msg.iter_parts()]
            self.assertEqual(parts, ["text/plain", "text/html"])
            self.assertEqual(msg["Auto-Submitted"], "auto-generated")
        self.assertEqual(first["Subject"],
                         "[rollbackd] rolled_back: mail-rule on mail (%s)" % inc)
        self.assertEqual(second["Subject"], "[rollbackd] resolved: mail-rule on mail (%s)" % inc)
        mid = first["Message-ID"]
        self.assertRegex(mid, r"^<n-[0-9a-f]{16}\.%s@example\.net>$" % inc)
        self.assertIsNone(first["In-Reply-To"])
        self.assertNotEqual(second["Message-ID"], mid)
        self.assertEqual(second["In-Reply-To"], mid)
        self.assertEqual(second["References"], mid)
        text = first.get_body(("plain",)).get_content()
        html = first.get_body(("html",)).get_content()
        self.assertIn("Incident %s: rolled_back" % inc, text)
        self.assertIn("Action 1 (exec): ok, exit 0", text)
        self.assertIn("rolled <back> & done", text)
        self.assertIn("https://rollbackd.example.com/v1/ack/%s?action=ack" % inc, text)
        self.assertIn("<pre>rolled &lt;back&gt; &amp; done\n</pre>", html)
        self.assertNotIn("<back>", html)
        srv.stop()
        recs = self.journal()
        intents = [r for r in recs if r["type"] == "notify_intent" and r["channel"] == "email"]
        self.assertEqual([r["event"] for r in intents], ["rolled_back", "resolve"])
        sent = [r for r in recs if r["type"] == "notify_sent" and r["channel"] == "email"]
        self.assertEqual(len(sent), 2)
        self.assertEqual(sent[0]["email_message_id"], mid)
        self.assertEqual(sent[0]["status_code"], 250)
        self.assertNotIn("email_message_id", sent[1])
        self.assertNotIn(SMTP_PASSWORD, "\n".join(json.dumps(r) for r in recs))

    def test_refused_login_fails_for_good(self):
        self.smtp = SmtpServer(self.tmp, self.port, password="another-password-0123456")
        srv = self.start()
        srv.post_alerts(make_payload(n=1, service="denied"))
        self.wait_metric("failed", 1)
        time.sleep(1.5)  # no retry follows
        m = srv.metrics()
        self.assertEqual(metric(m, "rollbackd_notifications_total", channel="email",
                                result="retried"), 0)
        self.assertEqual(metric(m, "rollbackd_notifications_total", channel="email",
                                result="sent"), 0)
        self.assertEqual(self.smtp.messages(), [])
        srv.stop()
        failed = [r for r in self.journal() if r["type"] == "notify_failed"]
        self.assertEqual(len(failed), 1)
        self.assertEqual(failed[0]["channel"], "email")
        self.assertEqual(failed[0]["status_code"], 535)
        self.assertEqual(failed[0]["error"], "Login denied")
        self.assertEqual(failed[0]["attempts"], 1)
        logs = "\n".join(srv.lines)
        self.assertNotIn(SMTP_PASSWORD, logs)

    def test_server_gone_mid_delivery_is_retried_then_delivered(self):
        self.smtp = SmtpServer(self.tmp, self.port, stall=True)
        srv = self.start()
        inc = srv.post_alerts(make_payload(n=1, service="flaky")).json()["decisions"][0][
            "incident"]
        marker = os.path.join(self.smtp.out, "in-data")
        deadline = time.monotonic() + 20 * SCALE
        while not os.path.exists(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(os.path.exists(marker), "the delivery never reached DATA")
        self.smtp.kill()  # gone in the middle of the message
        self.wait_metric("retried", 1)
        self.assertEqual(self.smtp.messages(), [])
        self.smtp = SmtpServer(self.tmp, self.port)
        got = self.smtp.wait(1, timeout=30)
        self.wait_metric("sent", 1)
        time.sleep(0.5)
        self.assertEqual(len(self.smtp.messages()), 1, "delivered once")
        self.assertIn(inc, got[0][0]["Subject"])
        srv.stop()
        recs = self.journal()
        self.assertEqual([r for r in recs if r["type"] == "notify_failed"], [])
        sent = [r for r in recs if r["type"] == "notify_sent" and r["channel"] == "email"]
        self.assertEqual(len(sent), 1)
        self.assertGreaterEqual(sent[0]["attempts"], 2)


if __name__ == "__main__":
    unittest.main()
