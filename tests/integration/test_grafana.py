"""Grafana-managed alerts (issue 15): Grafana's documented webhook payloads
are accepted, signed the way Grafana signs (HMAC-SHA256 over "<ts>:" + body
in headers whose names the config sets), and a 401 names the scheme that is
disabled when its header is presented.

Python 3 standard library only.
"""

import hashlib
import hmac
import json
import os
import time
import unittest

import harness
from harness import ServerTestCase

KEY = "grafana-S3CR3T-key"
TOKEN = "api-S3CR3T-grafana"


def grafana_sig(key, body, ts=None):
    msg = (ts.encode() + b":" + body) if ts is not None else body
    return hmac.new(key.encode(), msg, hashlib.sha256).hexdigest()


def data(name):
    with open(os.path.join(harness.DATA, name), "rb") as f:
        return f.read()


class GrafanaCustomHeadersTest(ServerTestCase):
    CONFIG = staticmethod(lambda s: {
        "auth": {"hmac": {"secrets": [s.secret("hmac", KEY)],
                          "grafana_headers": {"signature": "X-Sig", "timestamp": "X-Sig-Time"}}},
    })

    def send(self, body, headers):
        h = {"Content-Type": "application/json"}
        h.update(headers)
        r = self.server.post_alerts(body, headers=h)
        self.responses.append(r.text)
        return r

    def signed(self, body):
        ts = str(int(time.time()))
        return {"X-Sig": grafana_sig(KEY, body, ts), "X-Sig-Time": ts}

    def test_documented_payloads_accepted(self):
        for name in ("grafana_webhook.json", "grafana_webhook_v9.json"):
            body = data(name)
            r = self.send(body, self.signed(body))
            obj = self.assertAccepted(r, 2)
            self.assertEqual([d["fingerprint"] for d in obj["decisions"]],
                             ["c6eadffa33fcdf37", "bc97ff14869b13e3"], obj)
            self.assertEqual([d["outcome"] for d in obj["decisions"]], ["no_match", "no_match"])

    def test_default_header_names_are_not_read(self):
        body = data("grafana_webhook.json")
        ts = str(int(time.time()))
        r = self.send(body, {"X-Grafana-Alerting-Signature": grafana_sig(KEY, body, ts),
                             "X-Grafana-Alerting-Timestamp": ts})
        obj = self.assertError(r, 401, "unauthorized")
        self.assertEqual(obj["message"], "no credentials presented")

    def test_wrong_and_stale_signatures(self):
        body = data("grafana_webhook.json")
        ts = str(int(time.time()))
        r = self.send(body, {"X-Sig": grafana_sig("wrong", body, ts), "X-Sig-Time": ts})
        self.assertEqual(self.assertError(r, 401, "unauthorized")["message"],
                         "invalid credentials")
        old = str(int(time.time()) - 3600)
        r = self.send(body, {"X-Sig": grafana_sig(KEY, body, old), "X-Sig-Time": old})
        self.assertEqual(self.assertError(r, 401, "unauthorized")["message"],
                         "signature timestamp outside the allowed window")

    def test_401_names_the_disabled_scheme(self):
        body = data("grafana_webhook.json")
        r = self.send(body, {"X-Sig": grafana_sig(KEY, body)})
        self.assertEqual(self.assertError(r, 401, "unauthorized")["message"],
                         "the untimestamped grafana scheme is disabled: send X-Sig-Time "
                         "(Grafana's timestamp header) or set auth.hmac.allow_untimestamped")
        r = self.send(body, {"X-Hub-Signature-256": "sha256=" + grafana_sig(KEY, body)})
        self.assertEqual(self.assertError(r, 401, "unauthorized")["message"],
                         "the github scheme (X-Hub-Signature-256) is disabled: it has no "
                         "replay protection; set auth.hmac.allow_untimestamped to accept it")
        r = self.send(body, {"Authorization": "Bearer x"})
        self.assertEqual(self.assertError(r, 401, "unauthorized")["message"],
                         "the bearer scheme is disabled: auth.bearer.token is not configured")
        r = self.send(body, {"Authorization": "Basic dTpw"})
        self.assertEqual(self.assertError(r, 401, "unauthorized")["message"],
                         "the basic scheme is disabled: auth.basic is not configured")

    def test_version_1_without_grafana_fields(self):
        p = json.loads(data("grafana_webhook.json"))
        for k in ("orgId",):
            del p[k]
        body = json.dumps(p).encode()
        r = self.send(body, self.signed(body))
        obj = self.assertError(r, 400, "invalid_payload")
        self.assertEqual(obj["message"], 'version: expected "4", got "1"')


class BearerOnlyTest(ServerTestCase):
    CONFIG = staticmethod(lambda s: {"auth": {"bearer": {"token": s.secret("tok", TOKEN)},
                                              "api": {"token": s.secret("api", TOKEN + "2")}}})

    def test_hmac_header_without_hmac_secrets(self):
        body = data("grafana_webhook.json")
        ts = str(int(time.time()))
        r = self.server.post_alerts(body, headers={
            "Content-Type": "application/json",
            "X-Grafana-Alerting-Signature": grafana_sig(KEY, body, ts),
            "X-Grafana-Alerting-Timestamp": ts})
        self.responses.append(r.text)
        self.assertEqual(self.assertError(r, 401, "unauthorized")["message"],
                         "the grafana scheme is disabled: auth.hmac.secrets is not configured")
        r = self.server.post_alerts(body, headers={"Content-Type": "application/json",
                                                   "Authorization": "Bearer " + TOKEN})
        self.assertAccepted(r, 2)
        # /v1/changes: a signature without HMAC secrets names the scheme too
        r = self.server.request("POST", "/v1/changes", body=b'{"target":"a","revision":"1"}',
                                headers={"Content-Type": "application/json",
                                         "X-Rollbackd-Signature": "t=1,v1=" + "0" * 64})
        self.assertEqual(self.assertError(r, 401, "unauthorized")["message"],
                         "the hmac scheme is disabled: auth.hmac.secrets is not configured")


if __name__ == "__main__":
    unittest.main()
