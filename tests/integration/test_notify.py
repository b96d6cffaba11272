"""Slack and PagerDuty through the whole daemon (issue 5, SPEC §9).

A local recorder stands in for Slack's webhook and PagerDuty's Events API;
it can answer 200/202, 429 with Retry-After, 500, or sleep. Checks:
trigger -> acknowledge -> resolve on one dedup_key; Block Kit messages with
the Acknowledge link; 429 Retry-After: 2 waits at least 2 s; three 500s
then success delivers once; an outage that spans a restart is delivered
afterwards; intake answers fast while the recorder sleeps 10 s per request;
no secret reaches the journal.
"""

import http.server
import json
import os
import threading
import time
import unittest
import urllib.parse

from harness import SCALE, Server, make_payload
from test_ack import LINKS_KEY, SLACK_KEY, link_query, slack_headers
from test_journal import read_journal, verify_chain

PD_KEY = "pd-R0UT1NG-key-0123456789abcdef"
SLACK_URL_PATH = "/services/T000/B000/S3CR3T-webhook"


class Recorder:
    """Threaded HTTP server recording requests; `plan` answers by path prefix."""

    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        self.plan = {}  # path prefix -> list of (status, headers, sleep_s); last one repeats
        rec = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                with rec.lock:
                    rec.requests.append({"path": self.path, "body": body, "t": time.monotonic()})
                    steps = next((v for k, v in rec.plan.items() if self.path.startswith(k)),
                                 None)
                    step = (202, {}, 0)
                    if steps:
                        step = steps.pop(0) if len(steps) > 1 else steps[0]
                status, headers, sleep_s = step
                if sleep_s:
                    time.sleep(sleep_s)
                out = b"ok" if self.path.startswith("/services") else b'{"status":"success"}'
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except OSError:
                    pass

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def got(self, prefix):
        with self.lock:
            return [r for r in self.requests if r["path"].startswith(prefix)]

    def wait(self, prefix, n, timeout=15):
        deadline = time.monotonic() + timeout * SCALE
        while time.monotonic() < deadline:
            if len(self.got(prefix)) >= n:
                return self.got(prefix)
            time.sleep(0.05)
        raise AssertionError("recorder: %d requests to %s, want %d: %r"
                             % (len(self.got(prefix)), prefix, n,
                                [r["body"][:200] for r in self.got(prefix)]))


class NotifyTestCase(unittest.TestCase):
    def setUp(self):
        self.rec = Recorder()
        self.srv = None

    def tearDown(self):
        if self.srv:
            self.srv.cleanup()
        self.rec.close()

    def start(self, mode="auto", **rule_extra):
        rec = self.rec
        self.srv = Server(config=lambda s: {
            "dry_run": False,
            "public_url": "https://rollbackd.example.com",
            "auth": {"links": {"secret": s.secret("links", LINKS_KEY), "ttl": "1h"},
                     "slack_signing": {"secret": s.secret("slacksig", SLACK_KEY)}},
            "notify": {
                "slack": {"webhook_url": s.secret(
                    "slack", "http://127.0.0.1:%d%s" % (rec.port, SLACK_URL_PATH))},
                "pagerduty": {"routing_key": s.secret("pd", PD_KEY),
                              "url": "http://127.0.0.1:%d/v2/enqueue" % rec.port},
            },
        })
        rule = {"name": "notify-rule", "matchers": ['alertname="RollbackErrorRate"'],
                "group_by": ["service"], "mode": mode,
                "actions": [{"type": "exec", "argv": ["/bin/true"], "timeout": "10s"}],
                "notify": ["slack", "pagerduty"]}
        rule.update(rule_extra)
        with open(os.path.join(self.srv.rules_dir, "r.json"), "w") as f:
            json.dump({"rules": [rule]}, f)
        self.srv.start()
        return self.srv

    def wait_sent(self, channel, n):
        """Until the daemon has journaled n deliveries (the recorder sees a
        request before the daemon sees its answer)."""
        want = 'rollbackd_notifications_total{channel="%s",result="sent"} ' % channel
        deadline = time.monotonic() + 10 * SCALE
        while time.monotonic() < deadline:
            for line in self.srv.metrics_text().splitlines():
                if line.startswith(want) and float(line.split()[-1]) >= n:
                    return
            time.sleep(0.05)
        self.fail("fewer than %d %s notices sent" % (n, channel))

    def pd_events(self):
        return [json.loads(r["body"]) for r in self.rec.got("/v2/enqueue")]

    def journal(self):
        return verify_chain(read_journal(self.srv.state_dir))


class DeliveryTest(NotifyTestCase):
    def test_trigger_ack_resolve_on_one_dedup_key(self):
        srv = self.start()
        r = srv.post_alerts(make_payload(n=1, service="checkout"))
        inc = r.json()["decisions"][0]["incident"]
        # acting, then the rollback succeeded: the alert is updated (issue 12)
        self.rec.wait("/v2/enqueue", 2)
        q, _, _ = link_query("ack", inc)
        body = (q + "&by=alice").encode()
        self.assertEqual(srv.request("POST", "/v1/ack/" + inc, body=body,
                                     content_type="application/x-www-form-urlencoded").status, 200)
        self.rec.wait("/v2/enqueue", 3)
        srv.post_alerts(make_payload(n=1, service="checkout", status="resolved"))
        self.rec.wait("/v2/enqueue", 4)
        ev = self.pd_events()
        self.assertEqual([e["event_action"] for e in ev],
                         ["trigger", "trigger", "acknowledge", "resolve"])
        self.assertEqual([e["payload"]["custom_details"]["state"] for e in ev[:2]],
                         ["acting", "rolled_back"])
        self.assertIn("rolled back - the rollback actions succeeded", ev[1]["payload"]["summary"])
        self.assertEqual({e["dedup_key"] for e in ev}, {inc})
        self.assertEqual(ev[0]["routing_key"], PD_KEY)
        self.assertLessEqual(len(ev[0]["payload"]["summary"]), 1024)
        self.assertEqual(ev[0]["payload"]["severity"], "critical")
        # Slack: a Block Kit message with the incident and an Acknowledge button;
        # with interactivity configured (auth.slack_signing) the button acts
        # through it, bound to the episode, and opens no page (issue 11).
        msgs = [json.loads(r["body"]) for r in self.rec.wait(SLACK_URL_PATH, 1)]
        self.assertTrue(msgs[0]["text"])
        blob = json.dumps(msgs)
        self.assertIn(inc, blob)
        buttons = [e for b in msgs[0]["blocks"] if b["type"] == "actions" for e in b["elements"]]
        self.assertEqual([(b["action_id"], b.get("value"), b.get("url")) for b in buttons],
                         [("ack", inc + ":1", None)])
        self.wait_sent("pagerduty", 4)
        srv.stop()
        recs = self.journal()
        text = "\n".join(json.dumps(r) for r in recs)
        for secret in (PD_KEY, SLACK_URL_PATH, LINKS_KEY, "sig="):
            self.assertNotIn(secret, text)
        intents = [r for r in recs if r["type"] == "notify_intent"]
        sent = {r["id"] for r in recs if r["type"] == "notify_sent"}
        self.assertTrue(intents)
        self.assertEqual({r["id"] for r in intents if r["channel"] == "pagerduty"} - sent, set())

    def test_retry_after_and_500s(self):
        self.rec.plan["/v2/enqueue"] = [(429, {"Retry-After": "2"}, 0), (500, {}, 0),
                                        (500, {}, 0), (500, {}, 0), (202, {}, 0)]
        srv = self.start(mode="notify")  # one notice: nothing runs, nothing to update
        srv.post_alerts(make_payload(n=1, service="retry"))
        got = self.rec.wait("/v2/enqueue", 5, timeout=40)
        self.assertGreaterEqual(got[1]["t"] - got[0]["t"], 2.0, "Retry-After: 2 not honoured")
        self.wait_sent("pagerduty", 1)
        time.sleep(0.5)
        self.assertEqual(len(self.rec.got("/v2/enqueue")), 5, "delivered once, then stopped")
        srv.stop()
        sent = [r for r in self.journal() if r["type"] == "notify_sent"
                and r["channel"] == "pagerduty"]
        self.assertEqual(len(sent), 1)
        self.assertEqual(sent[0]["attempts"], 5)

    def test_outage_spanning_a_restart_is_delivered_after(self):
        self.rec.plan["/v2/enqueue"] = [(503, {}, 0)]
        srv = self.start(mode="notify")  # one notice: nothing runs, nothing to update
        r = srv.post_alerts(make_payload(n=1, service="outage"))
        inc = r.json()["decisions"][0]["incident"]
        self.rec.wait("/v2/enqueue", 1)
        srv.stop()
        self.rec.plan["/v2/enqueue"] = [(202, {}, 0)]
        n_before = len(self.rec.got("/v2/enqueue"))
        srv.proc = None
        srv.lines, srv.logs = [], []
        srv.start()
        got = self.rec.wait("/v2/enqueue", n_before + 1)
        self.assertEqual(json.loads(got[-1]["body"])["dedup_key"], inc)
        deadline = time.monotonic() + 10 * SCALE
        while time.monotonic() < deadline:
            m = srv.metrics_text()
            if 'rollbackd_notifications_total{channel="pagerduty",result="sent"}' in m:
                break
            time.sleep(0.1)
        srv.stop()
        recs = self.journal()
        sent = [r for r in recs if r["type"] == "notify_sent" and r["channel"] == "pagerduty"]
        self.assertEqual(len(sent), 1)
        starts = [r["seq"] for r in recs if r["type"] == "started"]
        self.assertGreater(sent[0]["seq"], starts[-1], "delivered by the second process")

    def test_a_sleeping_receiver_never_delays_intake(self):
        self.rec.plan["/v2/enqueue"] = [(202, {}, 10)]
        self.rec.plan[SLACK_URL_PATH] = [(200, {}, 10)]
        srv = self.start()
        worst = 0.0
        for i in range(20):
            t0 = time.monotonic()
            r = srv.post_alerts(make_payload(n=1, service="slow-%d" % i))
            worst = max(worst, time.monotonic() - t0)
            self.assertEqual(r.status, 200)
        self.assertLess(worst, 0.5, "intake waited for a slow receiver")
        self.assertEqual(srv.request("GET", "/readyz").status, 200)


class VerifyWithinTest(NotifyTestCase):
    def wait_state(self, inc, state):
        deadline = time.monotonic() + 10 * SCALE
        got = None
        while time.monotonic() < deadline:
            got = self.srv.request("GET", "/v1/incidents/" + inc).json()["state"]
            if got == state:
                return
            time.sleep(0.05)
        self.fail("incident %s is %s, want %s" % (inc, got, state))

    def test_still_firing_after_the_window_is_ineffective(self):
        srv = self.start(verify={"within": "1s"})
        r = srv.post_alerts(make_payload(n=1, service="stubborn"))
        inc = r.json()["decisions"][0]["incident"]
        self.wait_state(inc, "ineffective")
        deadline = time.monotonic() + 10 * SCALE
        while time.monotonic() < deadline:
            ev = [e for e in self.pd_events() if e["event_action"] == "trigger"]
            if len(ev) >= 3:  # acting, rolled_back, then the escalation
                break
            time.sleep(0.05)
        self.assertEqual(ev[-1]["payload"]["severity"], "critical")
        self.assertEqual(ev[-1]["dedup_key"], inc)
        deadline = time.monotonic() + 10 * SCALE
        while time.monotonic() < deadline and "did not fix" not in json.dumps(
                [json.loads(x["body"]) for x in self.rec.got(SLACK_URL_PATH)]):
            time.sleep(0.1)
        self.assertIn("did not fix", json.dumps(
            [json.loads(x["body"]) for x in self.rec.got(SLACK_URL_PATH)]))
        srv.stop()
        states = [x["state"] for x in self.journal() if x["type"] == "incident_state"]
        self.assertEqual(states, ["ineffective"])

    def test_resolved_within_the_window_is_effective(self):
        srv = self.start(verify={"within": "5s"})
        r = srv.post_alerts(make_payload(n=1, service="fixed"))
        inc = r.json()["decisions"][0]["incident"]
        self.wait_state(inc, "rolled_back")
        srv.post_alerts(make_payload(n=1, service="fixed", status="resolved"))
        self.wait_state(inc, "resolved")
        srv.stop()
        states = [x["state"] for x in self.journal() if x["type"] == "incident_state"]
        self.assertEqual(states, ["effective"])


class SlackResponseTest(NotifyTestCase):
    def test_button_click_updates_the_message(self):
        srv = self.start()
        inc = srv.post_alerts(make_payload(n=1, service="click")).json()["decisions"][0][
            "incident"]
        payload = {"type": "block_actions", "user": {"id": "U1", "username": "gina"},
                   "response_url": "http://127.0.0.1:%d/actions/T1/resp" % self.rec.port,
                   "actions": [{"action_id": "ack", "value": inc + ":1"}]}
        body = ("payload=" + urllib.parse.quote(json.dumps(payload))).encode()
        r = srv.request("POST", "/v1/slack/actions", body=body, headers=slack_headers(body),
                        content_type="application/x-www-form-urlencoded")
        self.assertEqual(r.status, 200)
        got = self.rec.wait("/actions/T1/resp", 1)
        self.assertIn("acknowledged by gina (Slack)", json.loads(got[0]["body"])["text"])
        ack = [e for e in self.rec.wait("/v2/enqueue", 3) if
               json.loads(e["body"])["event_action"] == "acknowledge"]
        self.assertEqual(len(ack), 1)


if __name__ == "__main__":
    unittest.main()
