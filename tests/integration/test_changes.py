"""Changes (SPEC §11, issue 15): POST /v1/changes, when.changed_within and
{{change.*}} against the real binary.

Every bad input gets its exact status, error code and message; a change is
answered 202 and journaled as a "change" record; rules that need a recent
change decide no_recent_change without one and run nothing; templates
expand the target's latest change (and fail the action without one); a
restart replays the changes from the journal.

Python 3 standard library only.
"""

import json
import os
import time
import unittest

import harness
from harness import ServerTestCase, Server, SCALE, rfc3339, rollbackd_signature
from test_engine import EngineCase, alert
from test_notify import NotifyTestCase, SLACK_URL_PATH

API_TOKEN = "api-S3CR3T-changes-token"
HMAC_KEY = "hmac-S3CR3T-changes-key"


def change_body(**over):
    c = {"target": "service=checkout", "revision": "42", "previous_revision": "41",
         "source": "argocd", "url": "https://argocd.example/applications/checkout",
         "author": "ci-bot"}
    c.update(over)
    for k in [k for k, v in c.items() if v is None]:
        del c[k]
    return json.dumps(c).encode()


class ChangesEndpointTest(ServerTestCase):
    CONFIG = staticmethod(lambda s: {
        "limits": {"max_body_bytes": 4096},
        "auth": {"api": {"token": s.secret("api", API_TOKEN)},
                 "hmac": {"secrets": [s.secret("hmac", HMAC_KEY)]}},
    })

    def send(self, body, headers=None, auth=True, method="POST"):
        h = {"Content-Type": "application/json"}
        if auth:
            h["Authorization"] = "Bearer " + API_TOKEN
        h.update(headers or {})
        r = self.server.request(method, "/v1/changes", body=body, headers=h)
        self.responses.append(r.text)
        return r

    def bad(self, body, message):
        r = self.send(body)
        obj = self.assertError(r, 400, "invalid_change")
        self.assertEqual(obj["message"], message)

    def test_recorded_202_and_journaled(self):
        body = change_body(target="service=journaled", at="2030-01-01T00:00:00Z")
        r = self.send(body, headers={})
        # "at" in the future beyond 5 minutes is refused first
        self.assertError(r, 400, "invalid_change")
        at = rfc3339(delta_s=-30)
        r = self.send(change_body(target="service=journaled", at=at))
        self.assertEqual(r.status, 202, r)
        obj = r.json()
        self.assertEqual(obj["status"], "recorded")
        self.assertEqual(obj["target"], "service=journaled")
        self.assertEqual(obj["revision"], "42")
        # the record is on disk before the answer
        with open(os.path.join(self.server.state_dir, "journal.jsonl")) as f:
            recs = [json.loads(l) for l in f if '"type":"change"' in l]
        mine = [x for x in recs if x["target"] == "service=journaled"]
        self.assertEqual(len(mine), 1, recs)
        self.assertEqual(mine[0]["revision"], "42")
        self.assertEqual(mine[0]["previous_revision"], "41")
        self.assertEqual(mine[0]["source"], "argocd")
        self.assertEqual(mine[0]["url"], "https://argocd.example/applications/checkout")
        self.assertEqual(mine[0]["author"], "ci-bot")
        self.assertEqual(mine[0]["incident"], "")
        # the same change again: answered, kept once
        r = self.send(change_body(target="service=journaled", at=at))
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json()["status"], "repeat")
        with open(os.path.join(self.server.state_dir, "journal.jsonl")) as f:
            n = sum(1 for l in f if '"target":"service=journaled"' in l)
        self.assertEqual(n, 1)

    def test_hmac_signed_202(self):
        body = change_body(target="service=signed", source="ci")
        r = self.send(body, auth=False,
                      headers={"X-Rollbackd-Signature": rollbackd_signature(HMAC_KEY, body)})
        self.assertEqual(r.status, 202, r)

    def test_metric_by_source(self):
        before = harness.metric(self.server.metrics(), "rollbackd_changes_total",
                                source="flux") or 0
        for i in range(3):
            r = self.send(change_body(target="service=metric", revision="r%d" % i,
                                      source="flux"))
            self.assertEqual(r.status, 202, r)
        after = harness.metric(self.server.metrics(), "rollbackd_changes_total", source="flux")
        self.assertEqual(after, before + 3)

    def test_401(self):
        r = self.send(change_body(), auth=False)
        obj = self.assertError(r, 401, "unauthorized")
        self.assertEqual(obj["message"], "no credentials presented")
        r = self.send(change_body(), auth=False, headers={"Authorization": "Bearer nope"})
        obj = self.assertError(r, 401, "unauthorized")
        self.assertEqual(obj["message"], "invalid credentials")
        body = change_body()
        r = self.send(body, auth=False,
                      headers={"X-Rollbackd-Signature": rollbackd_signature("wrong", body)})
        obj = self.assertError(r, 401, "unauthorized")
        self.assertEqual(obj["message"], "invalid credentials")
        # a good token does not rescue a wrong signature
        r = self.send(body, headers={"X-Rollbackd-Signature": rollbackd_signature("wrong", body)})
        self.assertError(r, 401, "unauthorized")
        r = self.send(body, auth=False, headers={
            "X-Rollbackd-Signature": rollbackd_signature(HMAC_KEY, body, t=int(time.time()) - 3600)})
        obj = self.assertError(r, 401, "unauthorized")
        self.assertEqual(obj["message"], "signature timestamp outside the allowed window")

    def test_415_413_405(self):
        r = self.send(change_body(), headers={"Content-Type": "text/plain"})
        obj = self.assertError(r, 415, "unsupported_media_type")
        self.assertEqual(obj["message"], "Content-Type must be application/json")
        r = self.send(b'{"target":"' + b"x" * 5000 + b'","revision":"1"}')
        self.assertError(r, 413, "body_too_large")
        r = self.send(None, method="GET")
        obj = self.assertError(r, 405, "method_not_allowed")
        self.assertEqual(obj["message"], "/v1/changes accepts only POST")

    def test_400_each_field(self):
        r = self.send(b"")
        obj = self.assertError(r, 400, "empty_body")
        self.assertEqual(obj["message"], "request body is empty")
        r = self.send(b'{"target": ')
        obj = self.assertError(r, 400, "malformed_json")
        self.assertTrue(obj["message"].startswith("invalid JSON at line 1, column"), obj)
        self.bad(b'[1]', "body: expected a JSON object, got an array")
        self.bad(change_body(target=None), "target: missing (a non-empty string is required)")
        self.bad(change_body(target=""), 'target: expected a non-empty string, got ""')
        self.bad(change_body(target=7), "target: expected a non-empty string, got a number")
        self.bad(change_body(target="a" * 513), "target: longer than 512 bytes")
        self.bad(change_body(target="a\nb"), "target: contains a control character")
        self.bad(change_body(revision=None), "revision: missing (a non-empty string is required)")
        self.bad(change_body(revision=True), "revision: expected a non-empty string, got a boolean")
        self.bad(change_body(revision=-1), "revision: expected a non-negative integer or a string")
        self.bad(change_body(previous_revision=[41]),
                 "previous_revision: expected a non-empty string, got an array")
        self.bad(change_body(at="yesterday"), "at: not an RFC 3339 time: 'yesterday'")
        self.bad(change_body(at=5), "at: expected an RFC 3339 time, got a number")
        self.bad(change_body(at=rfc3339(delta_s=3600)), "at: more than 300s in the future")
        self.bad(change_body(source="argo cd"),
                 "source: expected 1-64 characters of A-Z a-z 0-9 . _ -")
        self.bad(change_body(url="ftp://x"), "url: expected an http:// or https:// URL")
        self.bad(change_body(author=1), "author: expected a string, got a number")
        self.bad(change_body(revison="3"), "revison: unknown field (did you mean 'revision'?)")
        # numbers are revisions too (Argo CD history ids)
        r = self.send(change_body(target="service=numeric", revision=7, previous_revision=6))
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json()["revision"], "7")


class FluxEventsTest(ServerTestCase):
    """A Flux notification-controller Provider of type generic posts its
    events as they are (fluxcd/pkg apis/event Event): only a new revision is a
    change, and the revision before it becomes previous_revision."""

    CONFIG = staticmethod(lambda s: {"auth": {"api": {"token": s.secret("api", API_TOKEN)}}})

    def event(self, revision=None, severity="info", target=None):
        ev = {"involvedObject": {"kind": "Kustomization", "namespace": "flux-system",
                                 "name": "podinfo", "uid": "7d0cdc51",
                                 "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
                                 "resourceVersion": "56921"},
              "severity": severity, "timestamp": rfc3339(delta_s=-5),
              "message": "Reconciliation finished in 1.2s",
              "reason": "ReconciliationSucceeded",
              "reportingController": "kustomize-controller",
              "reportingInstance": "kustomize-controller-7f5d6d7b9b-x"}
        if revision is not None:
            ev["metadata"] = {"revision": revision}
            if target:
                ev["metadata"]["target"] = target
        r = self.server.request("POST", "/v1/changes", body=json.dumps(ev).encode(),
                                headers={"Content-Type": "application/json",
                                         "Authorization": "Bearer " + API_TOKEN})
        self.responses.append(r.text)
        self.assertEqual(r.status, 202, r)
        return r.json()

    def records(self):
        with open(os.path.join(self.server.state_dir, "journal.jsonl")) as f:
            return [json.loads(l) for l in f if '"type":"change"' in l]

    def test_revisions_become_changes(self):
        self.assertEqual(self.event("main@sha1:aaa")["status"], "recorded")
        self.assertEqual(self.event("main@sha1:aaa")["status"], "repeat")
        self.assertEqual(self.event("main@sha1:bbb")["status"], "recorded")
        recs = [(r["target"], r["revision"], r.get("previous_revision"), r["source"])
                for r in self.records()]
        self.assertEqual(recs, [("service=podinfo", "main@sha1:aaa", None, "flux"),
                                ("service=podinfo", "main@sha1:bbb", "main@sha1:aaa", "flux")])
        self.assertEqual(self.event("v9", target="service=web")["target"], "service=web")

    def test_other_events_are_ignored(self):
        self.assertEqual(self.event("main@sha1:ccc", severity="error"),
                         {"status": "ignored",
                          "reason": "a Flux event of severity 'error' is not a change"})
        self.assertEqual(self.event(None),
                         {"status": "ignored",
                          "reason": "a Flux event without metadata.revision is not a change"})


class OpenChangesTest(ServerTestCase):
    """No api token and no HMAC: loopback peers only, like intake."""

    def test_loopback_without_credentials(self):
        r = self.server.request("POST", "/v1/changes", body=change_body(),
                                headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 202, r)


class ChangedWithinTest(EngineCase):
    API_TOKEN = API_TOKEN
    RULES = [
        {"name": "needs-change",
         "matchers": ['alertname="NeedsChange"'],
         "group_by": ["service"],
         "when": {"changed_within": "10m"},
         "actions": [{"type": "exec", "timeout": "10s",
                      "argv": ["@REC@", "@OUT@", "{{incident.id}}", "{{change.revision}}",
                               "{{change.previous_revision}}", "{{change.source}}"]}]},
        {"name": "uses-change",
         "matchers": ['alertname="UsesChange"'],
         "group_by": ["service"],
         "actions": [{"type": "exec", "timeout": "10s",
                      "argv": ["@REC@", "@OUT@", "{{incident.id}}",
                               "{{change.previous_revision}}"]}]},
        {"name": "env-change",
         "matchers": ['alertname="EnvChange"'],
         "group_by": ["service"],
         "actions": [{"type": "exec", "timeout": "10s",
                      "argv": ["@REC@", "@OUT@", "{{incident.id}}"]}]},
    ]

    def change(self, **kw):
        r = self.server.request("POST", "/v1/changes", body=change_body(**kw),
                                headers={"Content-Type": "application/json",
                                         "Authorization": "Bearer " + API_TOKEN})
        self.assertEqual(r.status, 202, r)

    def test_no_change_no_recent_change(self):
        d = self.decide_one(alert({"alertname": "NeedsChange", "service": "nochange"}))
        self.assertOutcome(d, "no_recent_change", rule="needs-change")
        self.assertEqual(d["reason"],
                         "no change to 'service=nochange' recorded in the 600s before startsAt")
        inc = self.incident(d["incident"])
        self.assertEqual(inc["state"], "held")
        self.assertEqual(inc["actions"], [])
        time.sleep(0.3 * SCALE)
        self.assertEqual(self.runs(d["incident"]), [])
        m = harness.metric(self.server.metrics(), "rollbackd_decisions_total",
                           rule="needs-change", outcome="no_recent_change")
        self.assertGreaterEqual(m, 1)

    def test_old_change_is_outside_the_window(self):
        self.change(target="service=oldchange", at=rfc3339(delta_s=-3600))
        d = self.decide_one(alert({"alertname": "NeedsChange", "service": "oldchange"}))
        self.assertOutcome(d, "no_recent_change")

    def test_recent_change_acts_with_its_revisions(self):
        self.change(target="service=fresh", revision="41", previous_revision="40",
                    at=rfc3339(delta_s=-500))
        self.change(target="service=fresh", revision="42", previous_revision="41",
                    source="argocd", at=rfc3339(delta_s=-300))
        d = self.decide_one(alert({"alertname": "NeedsChange", "service": "fresh"},
                                  started_ago_s=120))
        self.assertOutcome(d, "acting")
        pid = self.wait_runs(d["incident"], 1)[0]
        argv, env, _ = self.recorded(d["incident"], pid)
        self.assertEqual(argv, [self.out, d["incident"], "42", "41", "argocd"])
        self.assertEqual(env["ROLLBACKD_CHANGE_REVISION"], "42")
        self.assertEqual(env["ROLLBACKD_CHANGE_PREVIOUS_REVISION"], "41")
        self.assertEqual(env["ROLLBACKD_CHANGE_SOURCE"], "argocd")

    def test_template_without_change_fails_the_action(self):
        d = self.decide_one(alert({"alertname": "UsesChange", "service": "unknown"}))
        self.assertOutcome(d, "acting")
        inc = self.wait_actions_done(d["incident"])
        self.assertEqual(inc["state"], "action_failed")
        self.assertEqual(inc["actions"][0]["result"], "error")
        self.assertEqual(inc["actions"][0]["output"],
                         "template '{{change.previous_revision}}': no change to "
                         "'service=unknown' is known (POST /v1/changes)")
        self.assertEqual(self.runs(d["incident"]), [])

    def test_template_without_previous_revision_fails(self):
        self.change(target="service=noprev", revision="9", previous_revision=None)
        d = self.decide_one(alert({"alertname": "UsesChange", "service": "noprev"}))
        inc = self.wait_actions_done(d["incident"])
        self.assertEqual(inc["state"], "action_failed")
        self.assertEqual(inc["actions"][0]["output"],
                         "template '{{change.previous_revision}}': the latest change to "
                         "'service=noprev' (revision '9') has no previous_revision")

    def test_env_only_when_known(self):
        d = self.decide_one(alert({"alertname": "EnvChange", "service": "envless"}))
        pid = self.wait_runs(d["incident"], 1)[0]
        _, env, _ = self.recorded(d["incident"], pid)
        for k in ("ROLLBACKD_CHANGE_REVISION", "ROLLBACKD_CHANGE_PREVIOUS_REVISION",
                  "ROLLBACKD_CHANGE_SOURCE"):
            self.assertNotIn(k, env)
        self.change(target="service=envfull", revision="5", previous_revision=None, source="ci")
        d = self.decide_one(alert({"alertname": "EnvChange", "service": "envfull"}))
        pid = self.wait_runs(d["incident"], 1)[0]
        _, env, _ = self.recorded(d["incident"], pid)
        self.assertEqual(env["ROLLBACKD_CHANGE_REVISION"], "5")
        self.assertEqual(env["ROLLBACKD_CHANGE_SOURCE"], "ci")
        self.assertNotIn("ROLLBACKD_CHANGE_PREVIOUS_REVISION", env)


class ChangesReplayTest(unittest.TestCase):
    def setUp(self):
        if not harness.binary_available():
            self.fail(harness.skip_reason())
        self.srv = Server(config={"dry_run": False})
        rules = {"rules": [{
            "name": "needs-change", "matchers": ['alertname="NeedsChange"'],
            "group_by": ["service"], "when": {"changed_within": "10m"},
            "actions": [{"type": "exec", "argv": ["/bin/true"], "timeout": "5s"}]}]}
        with open(os.path.join(self.srv.rules_dir, "rules.json"), "w") as f:
            json.dump(rules, f)

    def tearDown(self):
        self.srv.cleanup()

    def test_changes_survive_a_restart(self):
        srv = self.srv
        srv.start()
        r = srv.request("POST", "/v1/changes",
                        body=change_body(target="service=replayed", at=rfc3339(delta_s=-300)),
                        headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 202, r)
        self.assertEqual(srv.stop(), 0)
        srv.proc = None
        srv.lines, srv.logs = [], []
        srv.start()
        p = harness.make_payload(alerts=[alert({"alertname": "NeedsChange",
                                                "service": "replayed"})])
        r = srv.post_alerts(p)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["decisions"][0]["outcome"], "acting", r.json())
        p = harness.make_payload(alerts=[alert({"alertname": "NeedsChange",
                                                "service": "never"})])
        r = srv.post_alerts(p)
        self.assertEqual(r.json()["decisions"][0]["outcome"], "no_recent_change")
        self.assertEqual(srv.stop(), 0)


class CheckRulesTest(unittest.TestCase):
    def test_changed_within_and_change_templates_are_validated(self):
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "r.json")
            with open(path, "w") as f:
                json.dump({"rules": [{
                    "name": "x", "matchers": ['a="b"'],
                    "when": {"changed_within": "soon"},
                    "actions": [{"type": "exec", "argv": ["true", "{{change.revison}}"]}]}]}, f)
            r = harness.run_cli(["check-rules", path])
            self.assertEqual(r.returncode, 1, r)
            self.assertEqual(r.stderr.decode().splitlines(), [
                path + ': rules[0].when.changed_within: invalid duration "soon" '
                '(expected e.g. "30s", "5m", "1h30m")',
                path + ": rules[0].actions[0].argv[1]: unknown field 'revison' in "
                "'{{change.revison}}' (only 'change.revision', 'change.previous_revision' "
                "or 'change.source')",
            ])


if __name__ == "__main__":
    unittest.main()


class NoRecentChangeNotifiedTest(NotifyTestCase):
    def test_slack_and_pagerduty_are_told(self):
        srv = self.start(when={"changed_within": "10m"})
        r = srv.post_alerts(harness.make_payload(n=1, service="checkout"))
        d = r.json()["decisions"][0]
        self.assertEqual(d["outcome"], "no_recent_change", d)
        reason = "no change to 'service=checkout' recorded in the 600s before startsAt"
        self.assertEqual(d["reason"], reason)
        ev = [json.loads(x["body"]) for x in self.rec.wait("/v2/enqueue", 1)]
        self.assertEqual(ev[0]["event_action"], "trigger")
        self.assertEqual(ev[0]["dedup_key"], d["incident"])
        msgs = [json.loads(x["body"]) for x in self.rec.wait(SLACK_URL_PATH, 1)]
        self.assertIn(reason, json.dumps(msgs))
        inc = srv.request("GET", "/v1/incidents/" + d["incident"]).json()
        self.assertEqual((inc["state"], inc["actions"]), ("held", []))
        self.assertEqual(srv.stop(), 0)
