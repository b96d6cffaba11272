"""At most once, for real (issue 11, SPEC §6 `target`, §7 "One remediation
per target", "Blast radius") against the real binary.

Each test asserts the exact decisions, what the incident API says and how
many times the recorder ran: three rules firing for one service run one
rollback (two `coalesced`), two services run two, a replayed firing +
resolved pair runs once, an old episode's link answers 409, a replayed
Slack click changes nothing, an append failure before an action makes it
`action_failed` with nothing run, a truncated notification never resolves
an incident.
"""

import hashlib
import hmac
import json
import os
import time
import unittest
import urllib.parse

import harness
from harness import SCALE, am_fingerprint, make_payload, rfc3339
from test_engine import EngineCase, alert, notification, rec_rule, resolved_of, deadline
from test_journal import read_journal, verify_chain

LINKS_KEY = "links-S3CR3T-key-for-safety-tests"
SLACK_KEY = "slack-S1GN1NG-secret-for-safety"
HMAC_KEY = "hmac-S3CR3T-key-for-safety-tests"


def link_sig(action, inc, ep, exp, key=LINKS_KEY):
    return hmac.new(key.encode(), ("%s:%s:%d:%d" % (action, inc, ep, exp)).encode(),
                    hashlib.sha256).hexdigest()


def slack_headers(body, ts=None, key=SLACK_KEY):
    ts = str(int(time.time()) if ts is None else ts)
    mac = hmac.new(key.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256)
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": "v0=" + mac.hexdigest()}


def slack_body(action, value, user="carol"):
    payload = {"type": "block_actions", "user": {"id": "U123", "username": user},
               "response_url": "http://127.0.0.1:9/hooks/unused",
               "actions": [{"action_id": action, "value": value, "type": "button"}]}
    return ("payload=" + urllib.parse.quote(json.dumps(payload))).encode()


def three_rules():
    """The shipped trio: error ratio, latency, down; each grouped by service."""
    return [rec_rule("error-ratio", "RollbackErrorRate"),
            rec_rule("latency", "RollbackLatencyP95"),
            rec_rule("down", "RollbackServiceDown")]


class OneRemediationPerTargetTest(EngineCase):
    RULES = three_rules() + [
        rec_rule("templated", "Templated", target="{{labels.namespace}}/{{labels.service}}"),
    ]
    EXTRA = {"dry_run": False, "limits": {"target_cooldown": "30m"}}

    def total_runs(self):
        n = 0
        for d in os.listdir(self.out):
            n += len(self.runs(d))
        return n

    def test_three_rules_one_service_one_run(self):
        locked_before = harness.metric(self.server.metrics(), "rollbackd_targets_locked")
        alerts = [alert({"alertname": n, "service": "checkout"})
                  for n in ("RollbackErrorRate", "RollbackLatencyP95", "RollbackServiceDown")]
        ds = self.decide(*alerts)
        self.assertEqual([d["outcome"] for d in ds], ["acting", "coalesced", "coalesced"], ds)
        acting = ds[0]["incident"]
        for d in ds[1:]:
            self.assertEqual(d["reason"],
                             "target service=checkout is being rolled back by incident %s"
                             % acting, d)
            inc = self.incident(d["incident"])
            self.assertEqual(inc["state"], "coalesced")
            self.assertEqual(inc["coalesced_into"], acting)
            self.assertEqual(inc["target"], "service=checkout")
        self.wait_runs(acting, 1)
        self.wait_state(acting, "rolled_back")
        time.sleep(0.3 * SCALE)
        self.assertEqual(len(self.runs(acting)), 1)
        for d in ds[1:]:
            self.assertEqual(self.runs(d["incident"]), [])
        self.assertEqual(self.incident(acting)["target"], "service=checkout")
        self.assertIsNone(self.incident(acting)["coalesced_into"])
        # after it finished, target_cooldown still keeps a fourth rule off the target
        # (a new episode of the latency incident)
        lat = alerts[1]
        self.decide(resolved_of(lat))
        again = dict(lat, startsAt=rfc3339(delta_s=-10))
        d = self.decide_one(again)
        self.assertEqual(d["outcome"], "coalesced", d)
        self.assertRegex(d["reason"], r"^target service=checkout is in target_cooldown after "
                                      r"incident %s until \d{4}-\d\d-\d\dT" % acting)
        metrics = self.server.metrics()
        self.assertEqual(harness.metric(metrics, "rollbackd_targets_locked"), locked_before + 1)

    def test_two_services_two_runs(self):
        a = alert({"alertname": "RollbackErrorRate", "service": "svc-a2"})
        b = alert({"alertname": "RollbackLatencyP95", "service": "svc-b2"})
        ds = self.decide(a, b)
        self.assertEqual([d["outcome"] for d in ds], ["acting", "acting"], ds)
        self.wait_runs(ds[0]["incident"], 1)
        self.wait_runs(ds[1]["incident"], 1)
        self.assertEqual(self.incident(ds[0]["incident"])["target"], "service=svc-a2")
        self.assertEqual(self.incident(ds[1]["incident"])["target"], "service=svc-b2")

    def test_target_template_and_missing_label(self):
        d = self.decide_one(alert({"alertname": "Templated", "service": "tpl",
                                   "namespace": "shop"}))
        self.assertEqual(d["outcome"], "acting", d)
        self.assertEqual(self.incident(d["incident"])["target"], "shop/tpl")
        d = self.decide_one(alert({"alertname": "Templated", "service": "tpl-nons"}))
        self.assertEqual(d["outcome"], "held", d)
        self.assertEqual(d["reason"], "target: template '{{labels.namespace}}': the alert has "
                                      "no label 'namespace'", d)
        self.assertEqual(self.incident(d["incident"])["state"], "held")
        time.sleep(0.2 * SCALE)
        self.assertEqual(self.runs(d["incident"]), [])


class TestRulesCoalesceTest(unittest.TestCase):
    """test-rules shows the same thing without running anything."""

    def test_three_alerts_one_acting(self):
        tmp = harness.tempfile.mkdtemp(prefix="rbd-safety-")
        try:
            payload = notification(*[alert({"alertname": n, "service": "checkout"}, value=v)
                                     for n, v in (("RollbackErrorRate", "0.05"),
                                                  ("RollbackLatencyP95", "0.9"),
                                                  ("RollbackServiceDown", "0"))])
            p = os.path.join(tmp, "alerts.json")
            with open(p, "w") as f:
                json.dump(payload, f)
            res = harness.run_cli(["test-rules", "--rules", os.path.join(harness.SRC, "rules"),
                                   "--alerts", p])
            self.assertEqual(res.returncode, 0, res.stderr)
            ds = [json.loads(l) for l in res.stdout.splitlines() if l.strip()]
            outs = [d["outcome"] for d in ds]
            self.assertEqual(outs.count("acting") + outs.count("dry_run"), 1, ds)
            self.assertEqual(outs.count("coalesced"), 2, ds)
            expanded = [d for d in ds if d.get("actions")]
            self.assertEqual(len(expanded), 1, ds)
        finally:
            harness.shutil.rmtree(tmp)



class ShippedTestPassRateRuleTest(unittest.TestCase):
    """The fourth shipped rule: test_pass_rate < 0.95 for 2m turns the
    service's newest feature flags off (one http action, no deploy undo)."""

    def test_alert_matches_and_expands_to_the_flag_call(self):
        tmp = harness.tempfile.mkdtemp(prefix="rbd-passrate-")
        try:
            for name, value in (("flags_url", "http://flags.invalid"),
                                ("flags_token", "S3CR3T-pass-rate-token")):
                with open(os.path.join(tmp, name), "w") as f:
                    f.write(value + "\n")
                os.chmod(os.path.join(tmp, name), 0o600)
            conf = os.path.join(tmp, "c.json")
            with open(conf, "w") as f:
                json.dump({"dry_run": False, "secrets": {
                    "flags_url": {"file": os.path.join(tmp, "flags_url")},
                    "flags_token": {"file": os.path.join(tmp, "flags_token")}}}, f)
            low = alert({"alertname": "RollbackTestPassRate", "service": "checkout"},
                        value="0.9")
            ok = alert({"alertname": "RollbackTestPassRate", "service": "payments"},
                       value="0.97")
            p = os.path.join(tmp, "alerts.json")
            with open(p, "w") as f:
                json.dump(notification(low, ok), f)
            res = harness.run_cli(["test-rules", "--rules", os.path.join(harness.SRC, "rules"),
                                   "--alerts", p, "--config", conf])
            self.assertEqual(res.returncode, 0, res.stderr)
            out = res.stdout.decode()
            self.assertNotIn("S3CR3T", out + res.stderr.decode())
            self.assertNotIn("flags.invalid", out + res.stderr.decode())
            ds = [json.loads(l) for l in out.splitlines() if l.strip()]
            self.assertEqual(len(ds), 2, ds)
            d = ds[0]
            self.assertEqual(d["rule"], "RollbackTestPassRate", d)
            self.assertEqual(d["outcome"], "acting", d)
            self.assertEqual(d["reason"], "running 1 action(s)", d)
            self.assertEqual(d["actions"], [{
                "type": "http", "method": "POST",
                # every secret is redacted in the output, the URL's too
                "url": "<redacted:flags_url>/api/flags/checkout/newest/disable",
                "headers": {"Authorization": "Bearer <redacted:flags_token>"},
                "body": {"enabled": False,
                         "reason": "rollbackd %s: RollbackTestPassRate" % d["incident"]}}],
                d)
            self.assertEqual(ds[1]["rule"], "RollbackTestPassRate", ds[1])
            self.assertEqual(ds[1]["outcome"], "no_match", ds[1])
            self.assertEqual(ds[1]["reason"], "value 0.97 not below 0.95", ds[1])
        finally:
            harness.shutil.rmtree(tmp)


class BlastRadiusTest(EngineCase):
    RULES = [rec_rule("er", "RollbackErrorRate")]
    EXTRA = {"dry_run": False, "limits": {"blast_radius": {"targets": 2, "window": "10m"}}}

    def test_third_target_waits_for_approval(self):
        ds = self.decide(*[alert({"alertname": "RollbackErrorRate", "service": "br-%d" % i})
                           for i in range(3)])
        self.assertEqual([d["outcome"] for d in ds], ["acting", "acting", "awaiting_approval"],
                         ds)
        self.assertEqual(ds[2]["reason"], "blast radius: 2 targets rolled back in the last 10m")
        time.sleep(0.3 * SCALE)
        self.assertEqual(self.runs(ds[2]["incident"]), [])
        self.assertEqual(self.incident(ds[2]["incident"])["state"], "awaiting_approval")


class ReplayedEpisodeTest(EngineCase):
    RULES = [rec_rule("replay", "Replay")]
    EXTRA = {"dry_run": False, "limits": {"target_cooldown": "0s"},
             "auth": {"hmac": {"secrets": [], "max_skew": "5m"}}}

    @classmethod
    def _config(cls, s):
        conf = super()._config(s)
        conf["auth"]["hmac"]["secrets"] = [s.secret("hmac", HMAC_KEY)]
        return conf

    def auth_headers(self, body):
        return {"X-Rollbackd-Signature": harness.rollbackd_signature(HMAC_KEY, body)}

    def test_replayed_pair_runs_once(self):
        fire = alert({"alertname": "Replay", "service": "rp"})
        firing = json.dumps(notification(fire)).encode()
        resolved = json.dumps(notification(resolved_of(fire))).encode()
        sig_f = harness.rollbackd_signature(HMAC_KEY, firing)
        sig_r = harness.rollbackd_signature(HMAC_KEY, resolved)
        first = None
        for round_ in range(4):
            r = self.server.post_alerts(firing, headers={"X-Rollbackd-Signature": sig_f})
            self.assertEqual(r.status, 200, r)
            d = r.json()["decisions"][0]
            if first is None:
                first = d
                self.assertEqual(d["outcome"], "acting", d)
                self.wait_runs(d["incident"], 1)
                self.wait_state(d["incident"], "rolled_back")
            else:
                self.assertEqual(r.json(), first_answer, "round %d" % round_)
            if round_ == 0:
                first_answer = r.json()
            r = self.server.post_alerts(resolved, headers={"X-Rollbackd-Signature": sig_r})
            self.assertEqual(r.status, 200, r)
            self.assertEqual(self.incident(first["incident"])["state"], "resolved")
        time.sleep(0.3 * SCALE)
        self.assertEqual(len(self.runs(first["incident"])), 1)
        self.assertEqual(self.incident(first["incident"])["episode"], 1)
        # the same firing re-signed (a late HA duplicate, not a byte replay) is a
        # repeat of the resolved episode, never a new one; another timestamp, so
        # that it is not the same signature as the first
        t0 = int(sig_f.split(",")[0][2:])
        r = self.server.post_alerts(firing, headers={
            "X-Rollbackd-Signature": harness.rollbackd_signature(HMAC_KEY, firing, t=t0 - 2)})
        self.assertEqual(r.status, 200, r)
        d = r.json()["decisions"][0]
        self.assertEqual(d["outcome"], "repeat", d)
        self.assertEqual(d["reason"], "episode 1 already resolved: a late or replayed "
                                      "firing of it", d)
        # a genuinely new firing (new startsAt) is episode 2
        d = self.decide_one(dict(fire, startsAt=rfc3339(delta_s=-5)))
        self.assertEqual(d["outcome"], "acting", d)
        self.wait_runs(first["incident"], 2)
        self.assertEqual(self.incident(first["incident"])["episode"], 2)

    def test_replay_survives_restart(self):
        fire = alert({"alertname": "Replay", "service": "rp-restart"})
        d = self.decide_one(fire)
        self.assertEqual(d["outcome"], "acting", d)
        self.wait_state(d["incident"], "rolled_back")
        self.decide(resolved_of(fire))
        srv = self.server
        self.assertEqual(srv.stop(), 0)
        srv.proc = None
        srv.lines, srv.logs = [], []
        srv.start()
        d2 = self.decide_one(fire)
        self.assertEqual(d2["outcome"], "repeat", d2)
        self.assertEqual(len(self.runs(d["incident"])), 1)


class EpisodeLinksTest(EngineCase):
    RULES = [rec_rule("ep-approve", "EpApprove", mode="approve")]
    EXTRA = {"dry_run": False, "public_url": "https://rollbackd.example.com",
             "limits": {"target_cooldown": "0s"}}

    @classmethod
    def _config(cls, s):
        conf = super()._config(s)
        conf["auth"] = {"links": {"secret": s.secret("links", LINKS_KEY), "ttl": "1h"},
                        "slack_signing": {"secret": s.secret("slack", SLACK_KEY)}}
        return conf

    def form_post(self, inc, ep, action="approve", by="dana"):
        exp = int(time.time()) + 600
        body = "action=%s&ep=%d&exp=%d&sig=%s&by=%s&target=%s" % (
            action, ep, exp, link_sig(action, inc, ep, exp), by,
            urllib.parse.quote(self.incident(inc)["target"]))
        return self.server.request("POST", "/v1/ack/" + inc, body=body.encode(),
                                   content_type="application/x-www-form-urlencoded")

    def test_old_episode_link_is_409(self):
        fire = alert({"alertname": "EpApprove", "service": "eplink"})
        d = self.decide_one(fire)
        self.assertEqual(d["outcome"], "awaiting_approval", d)
        inc = d["incident"]
        self.decide(resolved_of(fire))
        d = self.decide_one(dict(fire, startsAt=rfc3339(delta_s=-5)))
        self.assertEqual(d["outcome"], "awaiting_approval", d)
        self.assertEqual(self.incident(inc)["episode"], 2)
        r = self.form_post(inc, 1)
        self.assertEqual(r.status, 409, r)
        self.assertIn("this link was for episode 1 of %s; it is now in episode 2" % inc, r.text)
        time.sleep(0.2 * SCALE)
        self.assertEqual(self.runs(inc), [])
        self.assertEqual(self.incident(inc)["state"], "awaiting_approval")
        r = self.form_post(inc, 2)
        self.assertEqual(r.status, 200, r)
        self.wait_runs(inc, 1)
        self.assertEqual(self.incident(inc)["approved_by"], "dana")

    def test_approve_page_shows_what_will_run(self):
        fire = alert({"alertname": "EpApprove", "service": "eppage"}, value="0.07")
        d = self.decide_one(fire)
        inc = d["incident"]
        exp = int(time.time()) + 600
        q = "action=approve&ep=1&exp=%d&sig=%s" % (exp, link_sig("approve", inc, 1, exp))
        r = self.server.request("GET", "/v1/ack/%s?%s" % (inc, q))
        self.assertEqual(r.status, 200, r)
        self.assertRegex(r.text, r"ep-approve on eppage, awaiting_approval; firing since "
                                 r"\d{4}-\d\d-\d\dT[0-9:.]+Z \(2m0\ds\); will run: "
                                 r"\[\{&quot;type&quot;:&quot;exec&quot;,&quot;argv&quot;:\[")
        self.assertIn(inc, r.text)
        self.assertIn("Type the target, <code>service=eppage</code>, to approve", r.text)
        self.assertEqual(self.runs(inc), [], "a GET changes nothing")

    def test_replayed_slack_click_changes_nothing(self):
        fire = alert({"alertname": "EpApprove", "service": "epslack"})
        d = self.decide_one(fire)
        inc = d["incident"]
        body = slack_body("ack", "%s:1" % inc, user="carol")
        hdrs = slack_headers(body)
        r = self.server.request("POST", "/v1/slack/actions", body=body, headers=hdrs,
                                content_type="application/x-www-form-urlencoded")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.incident(inc)["acknowledged_by"], "carol (Slack)")
        recs = verify_chain(read_journal(self.server.state_dir))
        n_ack = len([x for x in recs if x["type"] == "ack"])
        for _ in range(3):
            r = self.server.request("POST", "/v1/slack/actions", body=body, headers=hdrs,
                                    content_type="application/x-www-form-urlencoded")
            self.assertEqual(r.status, 200, r)
        recs = verify_chain(read_journal(self.server.state_dir))
        self.assertEqual(len([x for x in recs if x["type"] == "ack"]), n_ack)


class AppendFailureTest(EngineCase):
    # 120 copies of a 10 kB label: the action_started record is over the
    # journal's 1 MiB line limit, so it cannot be made durable.
    RULES = [rec_rule("huge", "Huge", ["{{labels.big}}"] * 120)]
    EXTRA = {"dry_run": False}

    def test_action_not_started_without_its_record(self):
        big = "x" * 10000
        d = self.decide_one(alert({"alertname": "Huge", "service": "huge", "big": big}))
        self.assertEqual(d["outcome"], "acting", d)
        inc = self.wait_state(d["incident"], "action_failed")
        self.assertEqual(inc["actions"][0]["result"], "error", inc)
        self.assertIn("action_started could not be journaled", inc["actions"][0]["output"])
        time.sleep(0.3 * SCALE)
        self.assertEqual(self.runs(d["incident"]), [])
        recs = verify_chain(read_journal(self.server.state_dir))
        self.assertEqual([x for x in recs if x["type"] == "action_started"], [])
        fin = [x for x in recs if x["type"] == "action_finished"]
        self.assertEqual(len(fin), 1, fin)
        self.assertEqual(fin[0]["result"], "error")


class TruncatedAlertsTest(EngineCase):
    RULES = [rec_rule("trunc", "Trunc", group_by=["service"])]
    EXTRA = {"dry_run": True}

    def test_truncated_notification_does_not_resolve(self):
        a = alert({"alertname": "Trunc", "service": "tr", "pod": "p1"})
        p = notification(a)
        p["truncatedAlerts"] = 3
        d = self.decide_one(payload=p)
        self.assertEqual(d["outcome"], "dry_run", d)
        inc = d["incident"]
        p = notification(resolved_of(a), status="resolved")
        p["truncatedAlerts"] = 2
        d = self.decide_one(payload=p)
        self.assertEqual(d["outcome"], "resolved", d)
        self.assertEqual(d["reason"], "2 alert(s) were truncated by Alertmanager; "
                                      "the incident stays open", d)
        self.assertEqual(self.incident(inc)["state"], "dry_run")
        recs = verify_chain(read_journal(self.server.state_dir))
        tr = [x.get("truncated_alerts") for x in recs if x["type"] == "notification"]
        self.assertIn(3, tr)
        self.assertIn(2, tr)
        p = notification(resolved_of(a), status="resolved")
        d = self.decide_one(payload=p)
        self.assertEqual(self.incident(inc)["state"], "resolved")


if __name__ == "__main__":
    unittest.main()
