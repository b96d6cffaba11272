"""verify.query against a stand-in Prometheus (issue 15, SPEC §6).

A local HTTP server answers GET /api/v1/query like Prometheus' HTTP API:
vector results, errors (400 bad_data), empty results, NaN, or slowly. Each
test runs one rollback and asserts the exact outcome (effective,
ineffective, inconclusive), the verify_sample records, the escalation
(PagerDuty critical, the Slack note) and rollbackd_verify_total.
"""

import http.server
import json
import os
import threading
import time
import unittest
import urllib.parse

from harness import SCALE, Server, make_payload
from test_ack import LINKS_KEY, SLACK_KEY
from test_notify import PD_KEY, SLACK_URL_PATH, NotifyTestCase


def vector(*values):
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"service": "s%d" % i}, "value": [time.time(), v]}
        for i, v in enumerate(values)]}}


class FakePrometheus:
    """plan: a list of (status, body_dict_or_bytes, sleep_s); the last repeats."""

    def __init__(self, plan):
        self.plan = list(plan)
        self.queries = []
        self.lock = threading.Lock()
        fp = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                u = urllib.parse.urlsplit(self.path)
                q = urllib.parse.parse_qs(u.query)
                with fp.lock:
                    fp.queries.append((u.path, q.get("query", [None])[0]))
                    step = fp.plan.pop(0) if len(fp.plan) > 1 else fp.plan[0]
                status, body, sleep_s = step
                if sleep_s:
                    time.sleep(sleep_s)
                out = body if isinstance(body, bytes) else json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
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


class VerifyQueryTest(NotifyTestCase):
    def tearDown(self):
        super().tearDown()
        if getattr(self, "prom", None):
            self.prom.close()

    def run_rollback(self, plan, service="checkout", below=0.01, within="3s", for_="400ms",
                     interval="100ms", query=None):
        self.prom = FakePrometheus(plan)
        rec, prom = self.rec, self.prom
        self.srv = Server(config=lambda s: {
            "dry_run": False,
            "prometheus": {"url": "http://127.0.0.1:%d/" % prom.port},
            "auth": {"links": {"secret": s.secret("links", LINKS_KEY), "ttl": "1h"},
                     "slack_signing": {"secret": s.secret("slacksig", SLACK_KEY)}},
            "notify": {
                "slack": {"webhook_url": s.secret(
                    "slack", "http://127.0.0.1:%d%s" % (rec.port, SLACK_URL_PATH))},
                "pagerduty": {"routing_key": s.secret("pd", PD_KEY),
                              "url": "http://127.0.0.1:%d/v2/enqueue" % rec.port},
            },
        })
        rule = {"name": "verify-rule", "matchers": ['alertname="RollbackErrorRate"'],
                "group_by": ["service"], "mode": "auto",
                "actions": [{"type": "exec", "argv": ["/bin/true"], "timeout": "10s"}],
                "verify": {"within": within,
                           "query": query or 'err_ratio{service="{{labels.service}}"}',
                           "below": below, "for": for_, "interval": interval},
                "notify": ["slack", "pagerduty"]}
        with open(os.path.join(self.srv.rules_dir, "r.json"), "w") as f:
            json.dump({"rules": [rule]}, f)
        self.srv.start()
        r = self.srv.post_alerts(make_payload(n=1, service=service))
        self.assertEqual(r.status, 200)
        return r.json()["decisions"][0]["incident"]

    def wait_state(self, inc, state, timeout=15):
        deadline = time.monotonic() + timeout * SCALE
        got = None
        while time.monotonic() < deadline:
            got = self.srv.request("GET", "/v1/incidents/" + inc).json()["state"]
            if got == state:
                return
            time.sleep(0.05)
        self.fail("incident %s is %s, want %s" % (inc, got, state))

    def verify_total(self, result):
        want = 'rollbackd_verify_total{rule="verify-rule",result="%s"} ' % result
        for line in self.srv.metrics_text().splitlines():
            if line.startswith(want):
                return float(line.split()[-1])
        return 0

    def wait_slack(self, words):
        deadline = time.monotonic() + 10 * SCALE
        while time.monotonic() < deadline:
            blob = json.dumps([json.loads(x["body"]) for x in self.rec.got(SLACK_URL_PATH)])
            if words in blob:
                return
            time.sleep(0.1)
        self.fail("no Slack message says %r" % words)

    def wait_pd_escalation(self, inc):
        deadline = time.monotonic() + 10 * SCALE
        while time.monotonic() < deadline:
            ev = [e for e in self.pd_events() if e["event_action"] == "trigger"]
            if len(ev) >= 3:  # acting, rolled_back, then the escalation
                self.assertEqual(ev[-1]["payload"]["severity"], "critical")
                self.assertEqual(ev[-1]["dedup_key"], inc)
                return ev[-1]
            time.sleep(0.05)
        self.fail("no escalation sent to PagerDuty")

    def finish(self):
        self.srv.stop()
        recs = self.journal()
        states = [(x["state"], x["reason"]) for x in recs if x["type"] == "incident_state"]
        samples = [x for x in recs if x["type"] == "verify_sample"]
        return states, samples

    def test_heals_effective(self):
        inc = self.run_rollback([(200, vector("0.05"), 0), (200, vector("0.05"), 0),
                                 (200, vector("0.001", "0.002"), 0)])
        self.wait_state(inc, "effective")
        self.assertEqual(self.verify_total("effective"), 1)
        self.assertEqual(self.verify_total("ineffective"), 0)
        states, samples = self.finish()
        self.assertEqual(states, [("effective",
                                   "verify.query: every series below 0.01 for 400ms")])
        self.assertEqual(self.prom.queries[0],
                         ("/api/v1/query", 'err_ratio{service="checkout"}'))
        first = samples[0]
        self.assertEqual(first["incident"], inc)
        self.assertEqual(first["query"], 'err_ratio{service="checkout"}')
        self.assertEqual(first["value"], 0.05)
        self.assertEqual(first["below"], 0.01)
        self.assertEqual(first["series"], 1)
        self.assertIs(first["holds"], False)
        self.assertNotIn("error", first)
        self.assertEqual(samples[2]["value"], 0.002)  # the worst series
        self.assertEqual(samples[2]["series"], 2)
        self.assertTrue(all(s["holds"] for s in samples[2:]))
        self.assertGreaterEqual(len(samples), 7)  # 400ms of holding at 100ms

    def test_stays_bad_ineffective_and_escalated(self):
        inc = self.run_rollback([(200, vector("0.05"), 0)], within="1500ms")
        self.wait_state(inc, "ineffective")
        self.wait_pd_escalation(inc)
        self.wait_slack("did not fix it")
        self.assertEqual(self.verify_total("ineffective"), 1)
        states, samples = self.finish()
        self.assertEqual(len(states), 1)
        self.assertEqual(states[0][0], "ineffective")
        self.assertRegex(states[0][1], r"^The rollback did not fix it: verify\.query: the "
                         r"condition did not hold for 'for' \(\d+ evaluations\)$")
        self.assertTrue(samples)
        self.assertTrue(all(s["value"] == 0.05 and s["holds"] is False for s in samples))

    def test_no_data_inconclusive_and_escalated(self):
        inc = self.run_rollback([(200, vector("0.05"), 0), (200, vector(), 0)],
                                within="1500ms")
        self.wait_state(inc, "inconclusive")
        self.wait_pd_escalation(inc)
        self.wait_slack("Verification inconclusive")
        self.assertEqual(self.verify_total("inconclusive"), 1)
        states, samples = self.finish()
        self.assertEqual(len(states), 1)
        self.assertEqual(states[0][0], "inconclusive")
        self.assertRegex(states[0][1],
                         r"^Verification inconclusive, the rollback is not known to have "
                         r"worked: verify\.query: no data: the query returned no series "
                         r"\((\d+) of (\d+) evaluations failed\)$")
        self.assertEqual(samples[0]["value"], 0.05)
        self.assertEqual(samples[1]["error"], "no data: the query returned no series")
        self.assertNotIn("value", samples[1])
        self.assertEqual(samples[1]["series"], 0)

    def test_nan_inconclusive(self):
        inc = self.run_rollback([(200, vector("NaN"), 0)], within="1s")
        self.wait_state(inc, "inconclusive")
        self.assertEqual(self.verify_total("inconclusive"), 1)
        states, samples = self.finish()
        self.assertIn("verify.query: the query returned NaN (", states[0][1])
        self.assertTrue(all(s["error"] == "the query returned NaN" for s in samples))

    def test_query_errors_inconclusive(self):
        err = {"status": "error", "errorType": "bad_data",
               "error": "1:10: parse error: unexpected character"}
        inc = self.run_rollback([(400, err, 0)], within="1s")
        self.wait_state(inc, "inconclusive")
        states, samples = self.finish()
        self.assertTrue(samples)
        self.assertTrue(all(s["error"] == "prometheus answered 400: 1:10: parse error: "
                            "unexpected character" for s in samples))

    def test_slow_prometheus_times_out_inconclusive_and_intake_stays_fast(self):
        inc = self.run_rollback([(200, vector("0.001"), 5)], within="1500ms",
                                interval="300ms")
        t0 = time.monotonic()
        r = self.srv.post_alerts(make_payload(n=1, service="other"))
        self.assertEqual(r.status, 200)
        self.assertLess(time.monotonic() - t0, 0.5 * SCALE, "intake waited for Prometheus")
        self.wait_state(inc, "inconclusive")
        states, samples = self.finish()
        mine = [s for s in samples if s["incident"] == inc]
        self.assertTrue(mine)
        self.assertTrue(all(s["error"].startswith("prometheus unreachable: ") for s in mine),
                        mine)

    def test_label_values_are_escaped_for_promql(self):
        inc = self.run_rollback([(200, vector("0.001"), 0)], service='we"ird\\svc',
                                for_="0s")
        self.wait_state(inc, "effective")
        states, samples = self.finish()
        self.assertEqual(self.prom.queries[0][1], 'err_ratio{service="we\\"ird\\\\svc"}')
        self.assertEqual(samples[0]["query"], 'err_ratio{service="we\\"ird\\\\svc"}')

    def test_resolving_alert_is_not_a_pass(self):
        inc = self.run_rollback([(200, vector(), 0)], within="1500ms", service="gone")
        self.wait_state(inc, "rolled_back")
        self.srv.post_alerts(make_payload(n=1, service="gone", status="resolved"))
        self.wait_state(inc, "resolved")
        deadline = time.monotonic() + 10 * SCALE
        while time.monotonic() < deadline and not self.verify_total("inconclusive"):
            time.sleep(0.05)
        self.assertEqual(self.verify_total("inconclusive"), 1)
        self.assertEqual(self.verify_total("effective"), 0)
        self.wait_slack("Verification inconclusive")
        self.srv.stop()
        recs = self.journal()
        res = [x for x in recs if x["type"] == "verify_result"]
        self.assertEqual(len(res), 1)
        self.assertEqual(res[0]["result"], "inconclusive")
        self.assertNotIn("effective", [x["state"] for x in recs
                                       if x["type"] == "incident_state"])


if __name__ == "__main__":
    unittest.main()
