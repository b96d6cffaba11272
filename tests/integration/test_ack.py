"""Acknowledge and approve (issue 5, SPEC §9) against the real binary.

Signed links: GET shows a confirm page and changes nothing; POST records
once (a second use says who and when); forged, altered and expired links
get 401/403 pages. Slack interactivity: v0 signatures good, forged, stale;
block_actions ack/approve. Approve mode runs the actions exactly once, by
link, by Slack or after approve_timeout. Everything lands in the journal.
"""

import hashlib
import hmac
import json
import os
import time
import unittest
import urllib.parse

import harness
from harness import SCALE, Server, make_payload
from test_journal import read_journal, verify_chain

LINKS_KEY = "links-S3CR3T-key-for-tests"
SLACK_KEY = "slack-S1GN1NG-secret-for-tests"


def link_sig(action, inc, exp, key=LINKS_KEY, ep=1):
    """Links are signed for an episode (issue 11): "<action>:<id>:<episode>:<exp>"."""
    return hmac.new(key.encode(), ("%s:%s:%d:%d" % (action, inc, ep, exp)).encode(),
                    hashlib.sha256).hexdigest()


def link_query(action, inc, exp=None, sig=None):
    exp = int(time.time()) + 3600 if exp is None else exp
    sig = sig or link_sig(action, inc, exp)
    return "action=%s&ep=1&exp=%d&sig=%s" % (action, exp, sig), exp, sig


def slack_headers(body, ts=None, key=SLACK_KEY):
    ts = str(int(time.time()) if ts is None else ts)
    mac = hmac.new(key.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256)
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": "v0=" + mac.hexdigest()}


def slack_body(action, inc, user="carol"):
    payload = {"type": "block_actions", "user": {"id": "U123", "username": user},
               "response_url": "http://127.0.0.1:9/hooks/unused",
               "actions": [{"action_id": action, "value": inc + ":1", "type": "button"}]}
    return ("payload=" + urllib.parse.quote(json.dumps(payload))).encode()


class AckTestCase(unittest.TestCase):
    MODE = "auto"
    RULE_EXTRA = {}

    def setUp(self):
        self.srv = Server(config=lambda s: {
            "dry_run": False,
            "public_url": "https://rollbackd.example.com",
            "auth": {"links": {"secret": s.secret("links", LINKS_KEY), "ttl": "1h"},
                     "slack_signing": {"secret": s.secret("slack", SLACK_KEY)}},
        })
        self.ran = os.path.join(self.srv.tmp, "ran.txt")
        rule = {"name": "ack-rule", "matchers": ['alertname="RollbackErrorRate"'],
                "group_by": ["service"], "mode": self.MODE,
                "actions": [{"type": "exec", "timeout": "10s",
                             "argv": ["/bin/sh", "-c", 'echo "$ROLLBACKD_INCIDENT" >> "$0"',
                                      self.ran]}]}
        rule.update(self.RULE_EXTRA)
        with open(os.path.join(self.srv.rules_dir, "r.json"), "w") as f:
            json.dump({"rules": [rule]}, f)
        self.srv.start()
        r = self.srv.post_alerts(make_payload(n=1))
        self.assertEqual(r.status, 200, r)
        self.inc = r.json()["decisions"][0]["incident"]

    def tearDown(self):
        self.srv.cleanup()

    def incident(self):
        return self.srv.request("GET", "/v1/incidents/" + self.inc).json()

    def form_post(self, action, by="alice", exp=None, sig=None, inc=None,
                  target="service=checkout"):
        q, exp, sig = link_query(action, inc or self.inc, exp, sig)
        body = q + "&by=" + urllib.parse.quote(by)
        if action == "approve":  # the approver types the target (issue 16)
            body += "&target=" + urllib.parse.quote(target)
        return self.srv.request("POST", "/v1/ack/" + (inc or self.inc), body=body.encode(),
                                content_type="application/x-www-form-urlencoded")

    def runs(self):
        if not os.path.exists(self.ran):
            return 0
        with open(self.ran) as f:
            return len(f.readlines())

    def journal(self):
        return verify_chain(read_journal(self.srv.state_dir))


class LinkTest(AckTestCase):
    def test_get_shows_a_confirm_page_and_changes_nothing(self):
        q, exp, sig = link_query("ack", self.inc)
        for _ in range(3):  # Slack unfurls, mail scanners prefetch
            r = self.srv.request("GET", "/v1/ack/%s?%s" % (self.inc, q))
            self.assertEqual(r.status, 200)
            self.assertTrue(r.headers["content-type"].startswith("text/html"))
            self.assertIn('method="post"', r.text)
            self.assertIn('name="by"', r.text)
            self.assertIn(sig, r.text)
            self.assertNotIn("<script", r.text)
            self.assertIn("frame-ancestors 'none'", r.headers["content-security-policy"])
        self.assertIsNone(self.incident()["acknowledged_by"])
        self.assertFalse([x for x in self.journal() if x["type"] == "ack"])

    def test_post_records_once_then_says_who_and_when(self):
        r = self.form_post("ack", by="alice")
        self.assertEqual(r.status, 200, r)
        self.assertIn("acknowledged by alice", r.text)
        self.assertEqual(self.incident()["acknowledged_by"], "alice")
        r2 = self.form_post("ack", by="bob")
        self.assertEqual(r2.status, 409)
        self.assertIn("already acknowledged by alice at 20", r2.text)
        acks = [x for x in self.journal() if x["type"] == "ack"]
        self.assertEqual([(a["by"], a["via"], a["incident"]) for a in acks],
                         [("alice", "link", self.inc)])

    def test_anonymous_and_hostile_names(self):
        q, exp, sig = link_query("ack", self.inc)
        r = self.srv.request("POST", "/v1/ack/" + self.inc, body=q.encode(),
                             content_type="application/x-www-form-urlencoded")
        self.assertEqual(r.status, 200)
        self.assertEqual(self.incident()["acknowledged_by"], "anonymous")
        r = self.form_post("ack", by="<script>alert(1)</script>")
        self.assertEqual(r.status, 409)
        self.assertNotIn("<script>", r.text)

    def test_forged_altered_expired(self):
        cases = [
            ("forged sig", dict(sig="0" * 64), 401),
            ("other key", dict(sig=link_sig("ack", self.inc, int(time.time()) + 60,
                                            key="wrong")), 401),
        ]
        for name, kw, want in cases:
            r = self.form_post("ack", **kw)
            self.assertEqual(r.status, want, name)
            self.assertIn("not valid", r.text, name)
        # altered id: a valid link for another incident
        exp = int(time.time()) + 60
        other = "inc-0000000000000000"
        q = "action=ack&ep=1&exp=%d&sig=%s" % (exp, link_sig("ack", other, exp))
        r = self.srv.request("GET", "/v1/ack/%s?%s" % (self.inc, q))
        self.assertEqual(r.status, 401)
        # altered action: an ack link used to approve
        q = "action=approve&ep=1&exp=%d&sig=%s" % (exp, link_sig("ack", self.inc, exp))
        self.assertEqual(self.srv.request("GET", "/v1/ack/%s?%s" % (self.inc, q)).status, 401)
        # expired (validly signed)
        old = int(time.time()) - 10
        r = self.form_post("ack", exp=old, sig=link_sig("ack", self.inc, old))
        self.assertEqual(r.status, 403)
        self.assertIn("expired", r.text)
        # malformed
        r = self.srv.request("GET", "/v1/ack/%s?action=ack" % self.inc)
        self.assertEqual(r.status, 400)
        self.assertIsNone(self.incident()["acknowledged_by"])
        self.assertFalse([x for x in self.journal() if x["type"] == "ack"])


class SlackActionsTest(AckTestCase):
    def post(self, body, headers):
        return self.srv.request("POST", "/v1/slack/actions", body=body, headers=headers,
                                content_type="application/x-www-form-urlencoded")

    def test_good_signature_acknowledges(self):
        body = slack_body("ack", self.inc)
        t0 = time.monotonic()
        r = self.post(body, slack_headers(body))
        self.assertEqual(r.status, 200, r)
        self.assertLess(time.monotonic() - t0, 3)
        self.assertEqual(self.incident()["acknowledged_by"], "carol (Slack)")
        acks = [x for x in self.journal() if x["type"] == "ack"]
        self.assertEqual([(a["by"], a["via"]) for a in acks], [("carol (Slack)", "slack")])

    def test_forged_and_stale(self):
        body = slack_body("ack", self.inc)
        r = self.post(body, slack_headers(body, key="not-the-key"))
        self.assertEqual(r.status, 401)
        self.assertEqual(r.json()["error"], "unauthorized")
        r = self.post(body, slack_headers(body, ts=int(time.time()) - 301))
        self.assertEqual(r.status, 401)
        h = slack_headers(body)
        r = self.post(body.replace(b"carol", b"mallory"), h)  # body altered after signing
        self.assertEqual(r.status, 401)
        self.assertEqual(self.post(body, {}).status, 401)
        self.assertIsNone(self.incident()["acknowledged_by"])

    def test_bad_payload(self):
        body = b"payload=" + urllib.parse.quote(json.dumps({"type": "view_submission"})).encode()
        r = self.post(body, slack_headers(body))
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json()["error"], "invalid_payload")


class ApproveTest(AckTestCase):
    MODE = "approve"

    def test_approve_runs_exactly_once(self):
        self.assertEqual(self.incident()["state"], "awaiting_approval")
        time.sleep(0.3)
        self.assertEqual(self.runs(), 0, "nothing runs before approval")
        r = self.form_post("approve", by="dana")
        self.assertEqual(r.status, 200, r)
        # a second approval, by link and by Slack, changes nothing
        self.assertEqual(self.form_post("approve", by="erin").status, 409)
        body = slack_body("approve", self.inc)
        self.assertEqual(self.srv.request("POST", "/v1/slack/actions", body=body,
                                          headers=slack_headers(body),
                                          content_type="application/x-www-form-urlencoded"
                                          ).status, 200)
        deadline = time.monotonic() + 10 * SCALE
        while time.monotonic() < deadline and self.incident()["state"] != "rolled_back":
            time.sleep(0.05)
        self.assertEqual(self.incident()["state"], "rolled_back")
        self.assertEqual(self.runs(), 1)
        recs = self.journal()
        approvals = [x for x in recs if x["type"] == "approve"]
        self.assertEqual([(a["by"], a["via"]) for a in approvals], [("dana", "link")])
        started = [x for x in recs if x["type"] == "action_started"]
        self.assertEqual(len(started), 1)
        self.assertGreater(started[0]["seq"], approvals[0]["seq"])

    def test_ack_link_does_not_approve(self):
        self.assertEqual(self.form_post("ack", by="frank").status, 200)
        time.sleep(0.3)
        self.assertEqual(self.runs(), 0)
        self.assertEqual(self.incident()["state"], "awaiting_approval")


class ApproveTimeoutTest(AckTestCase):
    MODE = "approve"
    RULE_EXTRA = {"approve_timeout": "1s"}

    def test_runs_after_approve_timeout(self):
        self.assertEqual(self.incident()["state"], "awaiting_approval")
        deadline = time.monotonic() + 10 * SCALE
        while time.monotonic() < deadline and self.runs() == 0:
            time.sleep(0.05)
        self.assertEqual(self.runs(), 1)
        recs = self.journal()
        self.assertEqual([(a["by"], a["via"]) for a in recs if a["type"] == "approve"],
                         [("approve_timeout", "timer")])
        self.assertEqual(self.form_post("approve", by="late").status, 409)


class ApproveTimeoutRestartTest(AckTestCase):
    MODE = "approve"
    RULE_EXTRA = {"approve_timeout": "2s"}

    def test_approve_timeout_survives_a_restart(self):
        self.srv.stop()
        self.srv.proc = None
        self.srv.lines, self.srv.logs = [], []
        self.srv.start()
        self.assertEqual(self.incident()["state"], "awaiting_approval")
        deadline = time.monotonic() + 15 * SCALE
        while time.monotonic() < deadline and self.runs() == 0:
            time.sleep(0.05)
        self.assertEqual(self.runs(), 1)


if __name__ == "__main__":
    unittest.main()
