"""End to end: the real Alertmanager (Debian's prometheus-alertmanager) posts
its webhook to rollbackd with bearer auth from a credentials file.

Skipped only when the alertmanager / amtool binaries are missing.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402
from harness import Server, metric  # noqa: E402

AM_BIN = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
AMTOOL = shutil.which("amtool")
TOKEN = harness.SECRET_MARK + "-am-bearer-1a2b3c"
WAIT = 30.0 * harness.SCALE

AM_CONFIG = """\
global:
  resolve_timeout: 5m
route:
  receiver: rollbackd
  group_by: ['alertname', 'service']
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
  routes:
    - receiver: rollbackd-wrong-token
      matchers: ['case="wrong-token"']
      group_wait: 0s
      group_interval: 1s
receivers:
  - name: rollbackd
    webhook_configs:
      - url: http://127.0.0.1:{port}/v1/alerts
        send_resolved: true
        max_alerts: 0
        http_config:
          authorization:
            type: Bearer
            credentials_file: {token_file}
  - name: rollbackd-wrong-token
    webhook_configs:
      - url: http://127.0.0.1:{port}/v1/alerts
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials_file: {wrong_token_file}
"""


def wait_until(pred, timeout, step=0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


@unittest.skipUnless(AM_BIN and AMTOOL, "prometheus-alertmanager/amtool not installed "
                     "(apt-get install prometheus-alertmanager)")
@unittest.skipUnless(harness.binary_available(), harness.skip_reason())
class AlertmanagerE2E(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="rollbackd-e2e-")
        cls.srv = Server(config=lambda s: {"auth": {"bearer": {"token": s.secret("am.token", TOKEN)}}})
        try:
            cls.srv.start()
        except Exception:
            cls.srv.cleanup()
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise
        token_file = os.path.join(cls.srv.secrets_dir, "am.token")
        wrong = os.path.join(cls.tmp, "wrong.token")
        with open(wrong, "w") as f:
            f.write("definitely-not-the-token\n")
        cls.am_port = harness.free_port()
        cls.am_url = "http://127.0.0.1:%d" % cls.am_port
        cfg = os.path.join(cls.tmp, "alertmanager.yml")
        with open(cfg, "w") as f:
            f.write(AM_CONFIG.format(port=cls.srv.port, token_file=token_file,
                                     wrong_token_file=wrong))
        cls.am_log = open(os.path.join(cls.tmp, "alertmanager.log"), "wb")
        cls.am = subprocess.Popen(
            [AM_BIN, "--config.file=" + cfg, "--storage.path=" + os.path.join(cls.tmp, "data"),
             "--web.listen-address=127.0.0.1:%d" % cls.am_port, "--cluster.listen-address=",
             "--log.level=debug"],
            stdout=cls.am_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        ok = wait_until(lambda: cls._am_ready(), 30)
        if not ok:
            cls._teardown()
            raise AssertionError("alertmanager did not become ready:\n" + cls.am_log_text())

    @classmethod
    def _am_ready(cls):
        if cls.am.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(cls.am_url + "/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    @classmethod
    def am_log_text(cls):
        try:
            with open(os.path.join(cls.tmp, "alertmanager.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")[-4000:]
        except OSError:
            return ""

    @classmethod
    def _teardown(cls):
        if cls.am.poll() is None:
            cls.am.terminate()
            try:
                cls.am.wait(10)
            except subprocess.TimeoutExpired:
                cls.am.kill()
                cls.am.wait()
        cls.am_log.close()
        rc = None
        try:
            if cls.srv.proc and cls.srv.proc.poll() is None:
                rc = cls.srv.stop()
        finally:
            text = cls.srv.stderr_text()
            cls.srv.cleanup()
            shutil.rmtree(cls.tmp, ignore_errors=True)
        return rc, text

    @classmethod
    def tearDownClass(cls):
        rc, text = cls._teardown()
        if rc not in (0, None):
            raise AssertionError("rollbackd exited %r after SIGTERM" % rc)
        if TOKEN in text:
            raise AssertionError("the bearer token appears in rollbackd's log")

    def amtool(self, *args):
        p = subprocess.run([AMTOOL, "--alertmanager.url=" + self.am_url] + list(args),
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p)
        return p.stdout.decode()

    def am_alerts(self):
        with urllib.request.urlopen(self.am_url + "/api/v2/alerts", timeout=5) as r:
            return json.loads(r.read())

    def test_1_alert_delivered_with_bearer(self):
        self.amtool("alert", "add", "alertname=RollbackErrorRate", "service=checkout",
                    "severity=critical", "--annotation=value=0.05",
                    "--annotation=summary=e2e error ratio")
        line = self.srv.wait_log(lambda l: l.get("msg") == "alert"
                                 and l.get("alertname") == "RollbackErrorRate", timeout=WAIT)
        self.assertIsNotNone(line, "rollbackd logged no msg=alert for RollbackErrorRate within "
                             "%.0fs.\nrollbackd:\n%s\nalertmanager:\n%s"
                             % (WAIT, "\n".join(self.srv.lines[-20:]), self.am_log_text()))
        self.assertEqual(line.get("status"), "firing", line)
        # rollbackd's fingerprint is Alertmanager's own
        fps = {a["fingerprint"] for a in self.am_alerts()
               if a["labels"].get("alertname") == "RollbackErrorRate"}
        self.assertIn(line.get("fingerprint"), fps)
        self.assertEqual(line.get("fingerprint"), harness.am_fingerprint(
            {"alertname": "RollbackErrorRate", "service": "checkout", "severity": "critical"}))
        m = wait_until(lambda: (lambda mm: mm if metric(mm, "rollbackd_webhooks_total",
                                                        result="accepted") > 0 else None)(
            self.srv.metrics()), WAIT)
        self.assertIsNotNone(m, "rollbackd_webhooks_total{result=\"accepted\"} stayed 0")
        self.assertGreaterEqual(metric(m, "rollbackd_alerts_total", status="firing"), 1)
        self.assertEqual(metric(m, "rollbackd_webhooks_total", result="unauthorized"), 0,
                         "the correct-token receiver must never be refused")

    def test_2_wrong_token_is_401(self):
        self.amtool("alert", "add", "alertname=WrongTokenProbe", "service=checkout",
                    "case=wrong-token", "severity=critical")
        m = wait_until(lambda: (lambda mm: mm if metric(mm, "rollbackd_webhooks_total",
                                                        result="unauthorized") > 0 else None)(
            self.srv.metrics()), WAIT)
        self.assertIsNotNone(m, "a wrong-token Alertmanager receiver was not counted as "
                             "unauthorized within %.0fs.\nalertmanager:\n%s"
                             % (WAIT, self.am_log_text()))
        # Alertmanager treats 4xx as final and logs the status it got
        log = wait_until(lambda: "401" in self.am_log_text() and self.am_log_text(), 10)
        self.assertTrue(log, "alertmanager log should show the 401:\n" + self.am_log_text())
        self.assertFalse([l for l in self.srv.logs if l.get("msg") == "alert"
                          and l.get("alertname") == "WrongTokenProbe"],
                         "an unauthenticated notification must not be processed")


if __name__ == "__main__":
    unittest.main()
