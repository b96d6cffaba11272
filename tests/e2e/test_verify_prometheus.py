"""verify.query end to end with the real Prometheus (issue 15, SPEC §6).

    demo services --scrape 1s--> Prometheus
    rollbackd (one rule: the shipped RollbackErrorRate's verify.query, with a
    short within/for/interval) --GET /api/v1/query--> Prometheus

Three services start with a 5 % error ratio; an alert for each is posted to
rollbackd directly, its exec action succeeds at once, and then:

    e2e-v-heal   heals right after the rollback      -> effective
    e2e-v-bad    stays bad                            -> ineffective, escalated
    e2e-v-gone   /metrics stops answering (the series  -> inconclusive, escalated
                 go stale: the query has no data)

PagerDuty and Slack are a recorder (tests/integration/test_notify.py's).
Skipped only when /usr/bin/prometheus is missing (deploy/install-deps.sh
installs it).
"""

import json
import os
import shutil
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from test_notify import PD_KEY, SLACK_URL_PATH, Recorder  # noqa: E402
from test_pipeline import PROM_BIN, SCALE, Demo, Proc, http_json, wait_until  # noqa: E402

HEAL, BAD, GONE = "e2e-v-heal", "e2e-v-bad", "e2e-v-gone"
WITHIN_S = 100  # rate()[1m] needs ~50 s to fall below 1 % after the heal

PROMETHEUS_YML = """\
global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
scrape_configs:
  - job_name: demo
    static_configs:
{targets}
"""


def shipped_verify():
    with open(os.path.join(harness.SRC, "rules", "rollback.json")) as f:
        rules = json.load(f)["rules"]
    return next(r for r in rules if r["name"] == "RollbackErrorRate")["verify"]


@unittest.skipUnless(PROM_BIN, "prometheus not installed (deploy/install-deps.sh)")
class VerifyPrometheusE2E(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not harness.binary_available():
            raise AssertionError(harness.skip_reason() + " - build it first")
        cls.tmp = tempfile.mkdtemp(prefix="rollbackd-e2e-verify-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.demos = {}
        for svc in (HEAL, BAD, GONE):
            cls.demos[svc] = Demo(svc, cls.tmp)
            cls.addClassCleanup(cls.demos[svc].stop)
            cls.demos[svc].set(error_ratio=0.05)
        cls.rec = Recorder()
        cls.addClassCleanup(cls.rec.close)
        cls.prom_port = harness.free_port()
        cls.prom_url = "http://127.0.0.1:%d" % cls.prom_port
        targets = "\n".join("      - targets: ['%s']\n        labels: {service: %s}"
                            % (d.target, s) for s, d in cls.demos.items())
        cfg = os.path.join(cls.tmp, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write(PROMETHEUS_YML.format(targets=targets))
        cls.prom = Proc("prometheus", [
            PROM_BIN, "--config.file=" + cfg,
            "--storage.tsdb.path=" + os.path.join(cls.tmp, "prom-data"),
            "--web.listen-address=127.0.0.1:%d" % cls.prom_port, "--log.level=warn"], cls.tmp)
        cls.addClassCleanup(cls.prom.stop)

        def ready():
            try:
                return len(http_json(cls.prom_url + "/api/v1/query?query=up%3D%3D1")
                           ["data"]["result"]) == 3
            except OSError:
                return False
        if not wait_until(ready, 60 * SCALE):
            raise AssertionError("Prometheus did not scrape the demos:\n" + cls.prom.tail())

        verify = dict(shipped_verify(), within="%ds" % WITHIN_S, interval="2s")
        verify["for"] = "10s"
        cls.query_tpl = verify["query"]
        rec = cls.rec
        cls.srv = harness.Server(config=lambda s: {
            "dry_run": False,
            "prometheus": {"url": cls.prom_url},
            "notify": {
                "slack": {"webhook_url": s.secret(
                    "slack", "http://127.0.0.1:%d%s" % (rec.port, SLACK_URL_PATH))},
                "pagerduty": {"routing_key": s.secret("pd", PD_KEY),
                              "url": "http://127.0.0.1:%d/v2/enqueue" % rec.port},
            }})
        cls.addClassCleanup(cls.srv.cleanup)
        rule = {"name": "verify-e2e", "matchers": ['alertname="VerifyE2E"'],
                "group_by": ["service"], "mode": "auto",
                "actions": [{"type": "exec", "argv": ["/bin/true"], "timeout": "10s"}],
                "verify": verify, "notify": ["slack", "pagerduty"]}
        with open(os.path.join(cls.srv.rules_dir, "r.json"), "w") as f:
            json.dump({"rules": [rule]}, f)
        cls.srv.start()
        time.sleep(15)  # a rate() history of the bad release
        cls.inc = {}
        for svc in (HEAL, BAD, GONE):
            r = cls.srv.post_alerts(harness.make_payload(n=1, alertname="VerifyE2E",
                                                         service=svc))
            assert r.status == 200, r
            cls.inc[svc] = r.json()["decisions"][0]["incident"]
        cls.demos[HEAL].set(error_ratio=0.0)
        cls.demos[GONE].set(down=True)

    def state(self, svc):
        return self.srv.request("GET", "/v1/incidents/" + self.inc[svc]).json()["state"]

    def wait_state(self, svc, want):
        got = wait_until(lambda: self.state(svc) == want, (WITHIN_S + 60) * SCALE, 1)
        self.assertTrue(got, "%s is %s, want %s" % (svc, self.state(svc), want))

    def total(self, result):
        return harness.metric(self.srv.metrics(), "rollbackd_verify_total",
                              rule="verify-e2e", result=result)

    def journal(self, svc):
        out = []
        with open(os.path.join(self.srv.state_dir, "journal.jsonl")) as f:
            for line in f:
                if line.endswith("\n"):
                    r = json.loads(line)
                    if r.get("incident") == self.inc[svc]:
                        out.append(r)
        return out

    def escalated(self, svc, words):
        inc = self.inc[svc]

        def pd():
            ev = [json.loads(r["body"]) for r in self.rec.got("/v2/enqueue")]
            return [e for e in ev if e.get("dedup_key") == inc and e["event_action"] == "trigger"
                    and e["payload"]["severity"] == "critical" and words in json.dumps(e)]
        self.assertTrue(wait_until(pd, 30 * SCALE, 0.5), "no PagerDuty escalation for %s" % svc)

        def slack():
            return [r for r in self.rec.got(SLACK_URL_PATH)
                    if inc in r["body"].decode() and words in r["body"].decode()]
        self.assertTrue(wait_until(slack, 30 * SCALE, 0.5), "no Slack note for %s" % svc)

    def test_heals_effective(self):
        self.wait_state(HEAL, "effective")
        recs = self.journal(HEAL)
        samples = [r for r in recs if r["type"] == "verify_sample"]
        self.assertEqual(samples[0]["query"],
                         self.query_tpl.replace("{{labels.service}}", HEAL))
        self.assertTrue(samples[-1]["holds"])
        self.assertLess(samples[-1]["value"], 0.01)
        self.assertGreaterEqual(self.total("effective"), 1)
        st = [r for r in recs if r["type"] == "incident_state"]
        self.assertEqual([r["state"] for r in st], ["effective"])

    def test_stays_bad_ineffective_and_escalated(self):
        self.wait_state(BAD, "ineffective")
        samples = [r for r in self.journal(BAD) if r["type"] == "verify_sample"]
        self.assertTrue(samples)
        for r in samples[3:]:  # past the first scrapes: 5 % errors, never holding
            self.assertAlmostEqual(r["value"], 0.05, delta=0.02)
            self.assertFalse(r["holds"])
        self.escalated(BAD, "did not fix it")
        self.assertGreaterEqual(self.total("ineffective"), 1)

    def test_metric_disappears_inconclusive_and_escalated(self):
        self.wait_state(GONE, "inconclusive")
        samples = [r for r in self.journal(GONE) if r["type"] == "verify_sample"]
        self.assertEqual(samples[-1]["error"], "no data: the query returned no series")
        self.assertFalse(any(r["holds"] for r in samples))
        self.escalated(GONE, "Verification inconclusive")
        self.assertGreaterEqual(self.total("inconclusive"), 1)


if __name__ == "__main__":
    unittest.main()
