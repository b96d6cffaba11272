"""PagerDuty Change Events (SPEC §9 change_url, issue 15).

Every rollback that runs is sent once to change_url, with payload.source
the incident's target (its group labels here), a summary, a timestamp and a
link to the incident; the alert events name the same source. A rule that
never acts sends none. Journaled and counted as channel "pagerduty_change".
"""

import json
import os
import time
import unittest

from harness import SCALE, Server, make_payload, metric
from test_ack import LINKS_KEY
from test_journal import read_journal, verify_chain
from test_notify import PD_KEY, Recorder


class ChangeEventTest(unittest.TestCase):
    def setUp(self):
        self.rec = Recorder()
        self.srv = None

    def tearDown(self):
        if self.srv:
            self.srv.cleanup()
        self.rec.close()

    def start(self, mode):
        port = self.rec.port
        self.srv = Server(config=lambda s: {
            "dry_run": False,
            "public_url": "https://rollbackd.example.com",
            "auth": {"links": {"secret": s.secret("links", LINKS_KEY), "ttl": "1h"}},
            "notify": {"pagerduty": {
                "routing_key": s.secret("pd", PD_KEY),
                "url": "http://127.0.0.1:%d/v2/enqueue" % port,
                "change_url": "http://127.0.0.1:%d/v2/change/enqueue" % port}},
        })
        rule = {"name": "change-rule", "matchers": ['alertname="RollbackErrorRate"'],
                "group_by": ["service"], "mode": mode, "notify": ["pagerduty"]}
        if mode != "notify":
            rule["actions"] = [{"type": "exec", "argv": ["/bin/true"], "timeout": "10s"}]
        with open(os.path.join(self.srv.rules_dir, "r.json"), "w") as f:
            json.dump({"rules": [rule]}, f)
        self.srv.start()
        return self.srv

    def wait_sent(self, channel, n):
        deadline = time.monotonic() + 10 * SCALE
        while time.monotonic() < deadline:
            if metric(self.srv.metrics(), "rollbackd_notifications_total", channel=channel,
                      result="sent") >= n:
                return
            time.sleep(0.05)
        self.fail("fewer than %d %s notices sent" % (n, channel))

    def test_every_rollback_that_runs_is_a_change_event(self):
        srv = self.start("auto")
        inc = srv.post_alerts(make_payload(n=1, service="checkout")).json()["decisions"][0][
            "incident"]
        got = self.rec.wait("/v2/change/enqueue", 1)
        self.rec.wait("/v2/enqueue", 2)  # acting, rolled_back
        self.wait_sent("pagerduty_change", 1)
        self.wait_sent("pagerduty", 2)
        time.sleep(0.3)
        self.assertEqual(len(self.rec.got("/v2/change/enqueue")), 1)
        ev = json.loads(got[0]["body"])
        self.assertEqual(set(ev), {"routing_key", "payload", "links"})
        self.assertEqual(ev["routing_key"], PD_KEY)
        p = ev["payload"]
        self.assertEqual(p["source"], "service=checkout")
        self.assertTrue(p["summary"].startswith("Rollback: change-rule on checkout: acting"),
                        p["summary"])
        self.assertLessEqual(len(p["summary"]), 1024)
        self.assertRegex(p["timestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
        self.assertEqual(p["custom_details"]["incident"], inc)
        self.assertEqual(p["custom_details"]["rule"], "change-rule")
        self.assertEqual(p["custom_details"]["state"], "acting")
        self.assertEqual(p["custom_details"]["labels"]["service"], "checkout")
        self.assertEqual(ev["links"][0]["text"], "Incident in rollbackd")
        self.assertTrue(ev["links"][0]["href"].startswith(
            "https://rollbackd.example.com/v1/ack/%s?action=ack&ep=1&exp=" % inc))
        # The alert events name the same source.
        for t in self.rec.got("/v2/enqueue"):
            self.assertEqual(json.loads(t["body"])["payload"]["source"], "service=checkout")
        srv.stop()
        recs = verify_chain(read_journal(srv.state_dir))
        intents = [r for r in recs if r["type"] == "notify_intent"
                   and r["channel"] == "pagerduty_change"]
        self.assertEqual([r["event"] for r in intents], ["trigger"])
        sent = [r for r in recs if r["type"] == "notify_sent" and r["channel"] == "pagerduty_change"]
        self.assertEqual(len(sent), 1)
        self.assertEqual(sent[0]["status_code"], 202)
        self.assertNotIn(PD_KEY, "\n".join(json.dumps(r) for r in recs))
        decision = [r for r in recs if r["type"] == "decision" and r["incident"] == inc][0]
        self.assertEqual(p["summary"],
                         "Rollback: change-rule on checkout: acting - " + decision["reason"])

    def test_nothing_runs_no_change_event(self):
        srv = self.start("notify")
        srv.post_alerts(make_payload(n=1, service="quiet"))
        self.rec.wait("/v2/enqueue", 1)
        self.wait_sent("pagerduty", 1)
        time.sleep(0.5)
        self.assertEqual(self.rec.got("/v2/change/enqueue"), [])
        self.assertEqual(metric(srv.metrics(), "rollbackd_notifications_total",
                                channel="pagerduty_change", result="sent"), 0)


if __name__ == "__main__":
    unittest.main()
