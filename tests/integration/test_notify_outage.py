"""Notifications under outage (issue 12, SPEC §9).

Slack is unreachable (a closed port), PagerDuty (a local recorder) is
healthy, and many incidents open: every PagerDuty trigger arrives, because
each channel has its own bounded queue; the Slack notices past its bound
are journaled as notify_failed with the reason and counted as dropped; and
the delivery errors are logged at a bounded rate (one line per channel per
interval, saying how many lines it held back).
"""

import json
import os
import time
import unittest

from harness import SCALE, Server, free_port, make_alert, make_payload, metric
from test_journal import read_journal, verify_chain
from test_notify import PD_KEY, Recorder

N_INCIDENTS = 300
BATCH = 20
MAX_QUEUED = 100
DROP_REASON = "the slack queue is full (100 notices waiting); notice dropped"


class SlackOutageTest(unittest.TestCase):
    def setUp(self):
        self.rec = Recorder()
        dead = free_port()  # nothing listens there: connection refused
        self.srv = Server(config=lambda s: {
            "dry_run": False,
            "notify": {
                "max_queued": MAX_QUEUED,
                "slack": {"webhook_url": s.secret(
                    "slack", "http://127.0.0.1:%d/services/T0/B0/DEAD" % dead)},
                "pagerduty": {"routing_key": s.secret("pd", PD_KEY),
                              "url": "http://127.0.0.1:%d/v2/enqueue" % self.rec.port},
            },
        })
        rule = {"name": "outage-rule", "matchers": ['alertname="RollbackErrorRate"'],
                "group_by": ["service"], "mode": "notify",
                "notify": ["slack", "pagerduty"]}
        with open(os.path.join(self.srv.rules_dir, "r.json"), "w") as f:
            json.dump({"rules": [rule]}, f)
        self.srv.start()
        self.t_start = time.monotonic()

    def tearDown(self):
        self.srv.cleanup()
        self.rec.close()

    def notify_lines(self):
        return [l for l in self.srv.logs
                if l.get("level") in ("warn", "error") and l.get("channel") == "slack"]

    def test_dead_slack_never_drops_pagerduty(self):
        srv = self.srv
        for b in range(N_INCIDENTS // BATCH):
            alerts = [make_alert(service="svc-%03d" % (b * BATCH + i))
                      for i in range(BATCH)]
            r = srv.post_alerts(make_payload(alerts=alerts))
            self.assertEqual(r.status, 200, r.text)
            # PagerDuty keeps up; Slack does not.
            self.rec.wait("/v2/enqueue", (b + 1) * BATCH, timeout=30)
        triggers = [json.loads(x["body"]) for x in self.rec.got("/v2/enqueue")]
        self.assertEqual(len(triggers), N_INCIDENTS)
        self.assertEqual({t["event_action"] for t in triggers}, {"trigger"})
        self.assertEqual(len({t["dedup_key"] for t in triggers}), N_INCIDENTS)

        deadline = time.monotonic() + 15 * SCALE
        while time.monotonic() < deadline:
            m = srv.metrics()
            if metric(m, "rollbackd_notifications_total", channel="pagerduty",
                      result="sent") == N_INCIDENTS:
                break
            time.sleep(0.1)
        m = srv.metrics()
        self.assertEqual(metric(m, "rollbackd_notifications_total", channel="pagerduty",
                                result="sent"), N_INCIDENTS)
        self.assertEqual(metric(m, "rollbackd_notifications_total", channel="pagerduty",
                                result="dropped"), 0)
        self.assertEqual(metric(m, "rollbackd_notifications_total", channel="slack",
                                result="dropped"), N_INCIDENTS - MAX_QUEUED)
        self.assertEqual(metric(m, "rollbackd_notify_pending"), MAX_QUEUED)

        # One line per channel per 10 s interval; the next says what it held back.
        t0 = time.monotonic()
        second = None
        while time.monotonic() - t0 < 30 * SCALE and second is None:
            lines = self.notify_lines()
            second = lines[1] if len(lines) > 1 else None
            time.sleep(0.2)
        self.assertIsNotNone(second, "no second delivery-error line: %r" % self.notify_lines())
        lines = self.notify_lines()
        self.assertEqual(lines[0]["suppressed"], "0")
        self.assertGreater(int(second["suppressed"]), 0)
        srv.stop()
        lines = self.notify_lines()
        elapsed = time.monotonic() - self.t_start
        self.assertLessEqual(len(lines), 1 + int(elapsed / 10), lines)
        # 200 drops and thousands of failed attempts, yet only a few lines in all.
        loud = [l for l in srv.logs if l.get("level") in ("warn", "error")]
        self.assertLessEqual(len(loud), len(lines) + 5, loud[:20])

        recs = verify_chain(read_journal(srv.state_dir))
        dropped = [r for r in recs if r["type"] == "notify_failed"]
        self.assertEqual(len(dropped), N_INCIDENTS - MAX_QUEUED)
        for r in dropped:
            self.assertEqual(r["channel"], "slack")
            self.assertEqual(r["error"], DROP_REASON)
            self.assertEqual(r["event"], "trigger")
            self.assertEqual(r["status_code"], 0)
            self.assertEqual(r["attempts"], 0)
            self.assertTrue(r["incident"].startswith("inc-"))
        intents = [r for r in recs if r["type"] == "notify_intent"]
        self.assertEqual(len([r for r in intents if r["channel"] == "pagerduty"]), N_INCIDENTS)
        self.assertEqual(len([r for r in intents if r["channel"] == "slack"]), MAX_QUEUED)
        pd_sent = [r for r in recs if r["type"] == "notify_sent" and r["channel"] == "pagerduty"]
        self.assertEqual(len(pd_sent), N_INCIDENTS)


if __name__ == "__main__":
    unittest.main()
