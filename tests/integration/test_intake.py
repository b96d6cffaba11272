"""POST /v1/alerts happy path, probes, routing, alert logging and /metrics.

No auth is configured here: loopback requests are accepted and rollbackd
warns at start (SPEC §4).
"""

import http.client
import json
import os
import re

import harness
from harness import ServerTestCase, make_alert, make_payload, metric


class IntakeOpenTest(ServerTestCase):
    CONFIG = {}

    def test_warns_that_no_auth_is_configured(self):
        warn = self.server.wait_log(
            lambda l: l.get("level") == "warn" and re.search(
                r"no auth|unauthenticated|authentication", str(l.get("msg", "")), re.I),
            timeout=1)
        self.assertIsNotNone(warn, "want a level=warn line saying no authentication is "
                             "configured; got:\n%s" % self.server.stderr_text())

    def test_listening_line(self):
        line = self.server.wait_log(lambda l: l.get("msg") == "listening", timeout=1)
        self.assertEqual(line.get("level"), "info", line)
        self.assertEqual(line.get("addr"), "127.0.0.1:%d" % self.server.port)

    def test_accepts_three_alerts(self):
        obj = self.assertAccepted(self.post(make_payload(3)), 3)
        for d in obj["decisions"]:  # no rules loaded: nothing can match
            self.assertEqual(d.get("outcome"), "no_match", obj)

    def test_accepts_charset_utf8(self):
        r = self.post(make_payload(1), headers={"Content-Type": "application/json; charset=utf-8"})
        self.assertAccepted(r, 1)

    def test_accepts_sample_file(self):
        path = os.path.join(harness.DATA, "am_firing_3.json")
        with open(path, "rb") as f:
            body = f.read()
        self.assertAccepted(self.post(body), 3)

    def test_accepts_utf8_labels_and_trailing_newline(self):
        p = make_payload(alerts=[make_alert(service="caf\u00e9-\u6f22\u5b57",
                                            extra_labels={"note": "quote\" back\\slash"})])
        self.assertAccepted(self.post(json.dumps(p, ensure_ascii=False).encode() + b"\n"), 1)

    def test_accepts_empty_alerts_array(self):
        # Alertmanager never sends it, but it is a well-formed v4 payload.
        r = self.post(make_payload(alerts=[]))
        obj = self.assertAccepted(r, 0)
        self.assertEqual(obj["decisions"], [], obj)
        self.assertStillServing()

    def test_one_log_line_per_alert(self):
        alerts = [make_alert(alertname="LogLineA", extra_labels={"pod": "p%d" % i})
                  for i in range(3)]
        alerts.append(make_alert(alertname="LogLineA", status="resolved",
                                 extra_labels={"pod": "gone"}))
        mark = self.server.log_mark()
        self.assertAccepted(self.post(make_payload(alerts=alerts)), 4)
        want = {a["fingerprint"]: a for a in alerts}
        seen = {}
        for _ in range(4):
            line = self.server.wait_log(
                lambda l: l.get("msg") == "alert" and l.get("fingerprint") in want
                and l.get("fingerprint") not in seen, start=mark)
            self.assertIsNotNone(line, "missing msg=alert lines; have %r, stderr:\n%s"
                                 % (sorted(seen), "\n".join(self.server.lines[-20:])))
            seen[line["fingerprint"]] = line
        for fp, line in seen.items():
            self.assertEqual(line.get("status"), want[fp]["status"], line)
            self.assertEqual(line.get("alertname"), "LogLineA", line)
        extra = [l for l in self.server.logs_since(mark)
                 if l.get("msg") == "alert" and l.get("fingerprint") in want]
        self.assertEqual(len(extra), 4, "exactly one line per alert: %r" % extra)

    def test_fingerprint_computed_when_absent(self):
        a = make_alert(alertname="NoFingerprint", with_fingerprint=False,
                       extra_labels={"instance": "10.0.0.1:8080"})
        want = harness.am_fingerprint(a["labels"])
        mark = self.server.log_mark()
        self.assertAccepted(self.post(make_payload(alerts=[a])), 1)
        line = self.server.wait_log(lambda l: l.get("msg") == "alert"
                                    and l.get("alertname") == "NoFingerprint", start=mark)
        self.assertIsNotNone(line)
        self.assertEqual(line.get("fingerprint"), want,
                         "fingerprint must equal Alertmanager's (FNV-1a 64 of sorted labels)")

    def test_alert_counters(self):
        before = self.server.metrics()
        alerts = [make_alert(alertname="Counted", extra_labels={"i": str(i)}) for i in range(2)]
        alerts.append(make_alert(alertname="Counted", status="resolved"))
        self.assertAccepted(self.post(make_payload(alerts=alerts)), 3)
        after = self.server.metrics()
        d = lambda name, **lb: metric(after, name, **lb) - metric(before, name, **lb)
        self.assertEqual(d("rollbackd_alerts_total", status="firing"), 2)
        self.assertEqual(d("rollbackd_alerts_total", status="resolved"), 1)
        self.assertEqual(d("rollbackd_webhooks_total", result="accepted"), 1)

    def test_keep_alive(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=harness.IO_TIMEOUT)
        try:
            for _ in range(5):
                conn.request("POST", "/v1/alerts", body=json.dumps(make_payload(1)),
                             headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                body = r.read()
                self.assertEqual(r.status, 200, body)
            conn.request("GET", "/healthz")
            r = conn.getresponse()
            self.assertEqual(r.status, 200, r.read())
        finally:
            conn.close()

    def test_healthz(self):
        r = self.get("/healthz")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json().get("status"), "ok", r)

    def test_readyz(self):
        r = self.get("/readyz")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json().get("status"), "ready", r)

    def test_not_found(self):
        for path in ("/nope", "/v1/alert", "/v1/alerts/extra"):
            with self.subTest(path=path):
                self.assertError(self.get(path), 404, "not_found")
        r = self.server.request("POST", "/v2/alerts", body=make_payload(1))
        self.assertError(r, 404, "not_found")
        self.assertStillServing()

    def test_get_alerts_is_405(self):
        r = self.get("/v1/alerts")
        self.assertError(r, 405, "method_not_allowed")
        allow = r.headers.get("allow")
        self.assertIsNotNone(allow, "405 needs an Allow header: %r" % r.headers)
        self.assertEqual([m.strip() for m in allow.split(",")], ["POST"])
        for method in ("PUT", "DELETE"):
            with self.subTest(method=method):
                r = self.server.request(method, "/v1/alerts", body=b"{}")
                self.assertError(r, 405, "method_not_allowed")
        self.assertStillServing()

    def test_query_string_ignored(self):
        r = self.server.request("POST", "/v1/alerts?source=am", body=make_payload(1))
        self.assertAccepted(r, 1)

    def test_metrics_exposition(self):
        self.assertAccepted(self.post(make_payload(1)))
        r = self.get("/metrics")
        self.assertEqual(r.status, 200, r)
        ct = r.headers.get("content-type", "")
        self.assertTrue(ct.startswith("text/plain"), ct)
        self.assertIn("version=0.0.4", ct)
        text = r.text
        m = harness.parse_metrics(text)
        names = {k[0] for k in m}
        for n in ("rollbackd_webhooks_total", "rollbackd_alerts_total",
                  "rollbackd_request_duration_seconds_bucket",
                  "rollbackd_request_duration_seconds_sum",
                  "rollbackd_request_duration_seconds_count", "rollbackd_build_info"):
            self.assertIn(n, names, "metric %s missing:\n%s" % (n, text))
        self.assertRegex(text, r"(?m)^# TYPE rollbackd_webhooks_total counter$")
        self.assertRegex(text, r"(?m)^# TYPE rollbackd_alerts_total counter$")
        self.assertRegex(text, r"(?m)^# TYPE rollbackd_request_duration_seconds histogram$")
        self.assertRegex(text, r"(?m)^# HELP rollbackd_webhooks_total \S")
        self.assertGreaterEqual(metric(m, "rollbackd_webhooks_total", result="accepted"), 1)
        # histogram: +Inf bucket == _count, buckets cumulative
        buckets = sorted(((float(dict(k[1])["le"].replace("+Inf", "inf")), v)
                          for k, v in m.items()
                          if k[0] == "rollbackd_request_duration_seconds_bucket"
                          and len(k[1]) == 1), key=lambda x: x[0])
        self.assertTrue(buckets, "unlabelled request_duration buckets expected:\n%s" % text)
        self.assertEqual(buckets[-1][0], float("inf"))
        counts = [v for _, v in buckets]
        self.assertEqual(counts, sorted(counts), "buckets must be cumulative")
        self.assertEqual(counts[-1], metric(m, "rollbackd_request_duration_seconds_count"))
        self.assertGreaterEqual(counts[-1], 1)
        # build_info{version="<--version>"} 1
        ver = harness.run_cli(["--version"]).stdout.decode().strip().split()[-1]
        self.assertEqual(metric(m, "rollbackd_build_info", version=ver), 1.0,
                         "rollbackd_build_info{version=%r} 1 expected:\n%s" % (ver, text))

    def test_no_secrets_configured_no_leak(self):
        # this class has no secrets; the check lives in tearDownClass for others
        self.assertEqual(self.server.secret_values, [])


if __name__ == "__main__":
    import unittest
    unittest.main()
