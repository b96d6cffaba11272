"""Rules engine and actions (issue 3, SPEC §6-§7) against the real binary.

Every test asserts what was decided (the decisions in the 200 answer), what
the incident API says afterwards and what actually ran (an exec recorder
script writes its argv, environment and stdin to files; an HTTP recorder
server counts requests). Waits poll with deadlines scaled by
ROLLBACKD_TEST_TIMEOUT_SCALE, never fixed sleeps on the happy path.

Python 3 standard library only.
"""

import http.server
import json
import os
import re
import stat
import subprocess
import tempfile
import threading
import time
import unittest

import harness
from harness import ServerTestCase, SCALE, am_fingerprint, make_payload, rfc3339

ENGINE_DATA = os.path.join(harness.DATA, "engine")

RFC3339_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
INC_RE = re.compile(r"^inc-[0-9a-f]{16}$")

API_TOKEN = "api-S3CR3T-engine-token"

# Writes argv (NUL separated), env (NUL separated) and stdin for every run
# into OUT/<incident>/, then appends its pid to OUT/<incident>/runs - the last
# step, so a line in "runs" means the files are complete.
RECORDER_SH = r"""#!/bin/sh
d="$1/$2"
mkdir -p "$d"
n=$$
printf '%s\0' "$@" > "$d/argv.$n"
env -0 > "$d/env.$n"
cat > "$d/stdin.$n"
echo "$n" >> "$d/runs"
exit 0
"""


def alert(labels, status="firing", starts=None, value="0.05", annotations=None,
          started_ago_s=120):
    ann = {"summary": "test alert"}
    if value is not None:
        ann["value"] = value
    ann.update(annotations or {})
    return {
        "status": status,
        "labels": dict(labels),
        "annotations": ann,
        "startsAt": starts or rfc3339(delta_s=-started_ago_s),
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else rfc3339(),
        "generatorURL": "http://prometheus.example:9090/graph",
        "fingerprint": am_fingerprint(labels),
    }


def notification(*alerts, status=None):
    p = make_payload(alerts=list(alerts))
    if status is None:
        status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    p["status"] = status
    return p


def resolved_of(a):
    r = dict(a)
    r["status"] = "resolved"
    r["endsAt"] = rfc3339()
    return r


def deadline(seconds):
    return time.monotonic() + seconds * SCALE


class EngineCase(ServerTestCase):
    """ServerTestCase whose config is built from RULES (list of rule dicts,
    or a callable(cls, server) -> list) plus EXTRA (config overrides).
    Rules can use the placeholders REC (recorder script) and OUT (its output
    dir) in argv strings."""

    RULES = []
    EXTRA = {"dry_run": False}
    API_TOKEN = None

    @classmethod
    def setUpClass(cls):
        cls.CONFIG = lambda s: cls._config(s)
        super().setUpClass()

    @classmethod
    def _config(cls, s):
        cls.rec = os.path.join(s.tmp, "record.sh")
        cls.out = os.path.join(s.tmp, "out")
        os.makedirs(cls.out)
        with open(cls.rec, "w") as f:
            f.write(RECORDER_SH)
        os.chmod(cls.rec, 0o755)
        rules = cls.RULES(cls, s) if callable(cls.RULES) else cls.RULES
        rules = json.loads(json.dumps(rules).replace("@REC@", cls.rec).replace("@OUT@", cls.out))
        with open(os.path.join(s.rules_dir, "rules.json"), "w") as f:
            json.dump({"rules": rules}, f, indent=1)
        conf = json.loads(json.dumps(cls.EXTRA))
        if cls.API_TOKEN:
            conf.setdefault("auth", {})["api"] = {"token": s.secret("api_token", cls.API_TOKEN)}
        return conf

    # -- helpers

    def api_headers(self):
        return {"Authorization": "Bearer " + self.API_TOKEN} if self.API_TOKEN else {}

    def decide(self, *alerts, status=None, payload=None):
        """POST a notification; returns the decisions list (asserting 200)."""
        p = payload if payload is not None else notification(*alerts, status=status)
        r = self.post(p)
        obj = self.assertAccepted(r, len(p["alerts"]))
        return obj["decisions"]

    def decide_one(self, *alerts, **kw):
        ds = self.decide(*alerts, **kw)
        self.assertEqual(len(ds), 1, ds)
        return ds[0]

    def incident(self, inc_id):
        r = self.get("/v1/incidents/" + inc_id, headers=self.api_headers())
        self.assertEqual(r.status, 200, r)
        return r.json()

    def wait_incident(self, inc_id, pred, timeout=10.0, what="condition"):
        end = deadline(timeout)
        last = None
        while time.monotonic() < end:
            last = self.incident(inc_id)
            if pred(last):
                return last
            time.sleep(0.05)
        self.fail("incident %s: %s not reached within %.1fs; last: %s"
                  % (inc_id, what, timeout * SCALE, json.dumps(last)[:2000]))

    def wait_state(self, inc_id, states, timeout=10.0):
        if isinstance(states, str):
            states = (states,)
        return self.wait_incident(inc_id, lambda i: i.get("state") in states, timeout,
                                  "state in %r" % (states,))

    def wait_actions_done(self, inc_id, timeout=10.0):
        return self.wait_incident(
            inc_id,
            lambda i: i.get("actions") and all(a.get("result") != "running"
                                               for a in i["actions"])
            and i.get("state") not in ("acting", "pending"),
            timeout, "all actions finished")

    def runs(self, inc_id):
        p = os.path.join(self.out, inc_id, "runs")
        if not os.path.exists(p):
            return []
        with open(p) as f:
            return [l for l in f.read().splitlines() if l]

    def wait_runs(self, inc_id, n, timeout=10.0):
        end = deadline(timeout)
        while time.monotonic() < end:
            if len(self.runs(inc_id)) >= n:
                return self.runs(inc_id)
            time.sleep(0.05)
        self.fail("recorder for %s ran %d time(s), want %d" % (inc_id, len(self.runs(inc_id)), n))

    def recorded(self, inc_id, pid):
        d = os.path.join(self.out, inc_id)
        with open(os.path.join(d, "argv." + pid), "rb") as f:
            argv = f.read().split(b"\0")[:-1]
        with open(os.path.join(d, "env." + pid), "rb") as f:
            env = {}
            for item in f.read().split(b"\0"):
                if b"=" in item:
                    k, _, v = item.partition(b"=")
                    env[k.decode()] = v.decode("utf-8", "replace")
        with open(os.path.join(d, "stdin." + pid), "rb") as f:
            stdin = f.read()
        return [a.decode("utf-8", "replace") for a in argv], env, stdin

    def assertOutcome(self, d, outcome, rule=None, reason_has=None):
        self.assertEqual(d.get("outcome"), outcome, d)
        if rule is not None:
            self.assertEqual(d.get("rule"), rule, d)
        if reason_has is not None:
            self.assertIn(reason_has, d.get("reason", ""), d)
        for k in ("fingerprint", "rule", "incident", "outcome", "reason"):
            self.assertIn(k, d, d)


def rec_rule(name, alertname, extra_argv=(), **kw):
    r = {"name": name, "matchers": ['alertname="%s"' % alertname], "group_by": ["service"],
         "mode": "auto",
         "actions": [{"type": "exec", "argv": ["@REC@", "@OUT@", "{{incident.id}}"]
                      + list(extra_argv), "timeout": "30s"}]}
    r.update(kw)
    return r


# --------------------------------------------------------------------------
# 1, 2, 3, 7: exec actions, exactly once, cooldown, missing label


EVIL = "; rm -rf / && echo $(id) `uname` | >x"
NL = "first line\nsecond line"
BIG = ("0123456789abcdef" * 700)[:10000]


class ExecActionTest(EngineCase):
    RULES = [
        rec_rule("exec-argv", "ExecArgv",
                 ["{{labels.evil}}", "{{labels.nl}}", "{{labels.big}}", "{{rule.name}}",
                  "{{annotations.value}}", "literal {{labels.service}} tail"]),
        rec_rule("once", "Once"),
        rec_rule("missing-label", "MissingLabel", ["{{labels.nosuch}}"]),
        rec_rule("cool", "Cool", cooldown="1h"),
        rec_rule("nocool", "NoCool"),
    ]

    def test_01_exec_argv_env_stdin_verbatim(self):
        labels = {"alertname": "ExecArgv", "service": "svc-argv", "evil": EVIL, "nl": NL,
                  "big": BIG}
        d = self.decide_one(alert(labels, value="0.25"))
        self.assertOutcome(d, "acting", rule="exec-argv")
        inc = d["incident"]
        self.assertRegex(inc, INC_RE)
        pid = self.wait_runs(inc, 1)[0]
        argv, env, stdin = self.recorded(inc, pid)
        # $0 is not in "$@": argv = OUT, incident, evil, nl, big, rule, value, literal
        self.assertEqual(argv[0], self.out)
        self.assertEqual(argv[1], inc)
        self.assertEqual(argv[2], EVIL, "shell metacharacters must reach argv verbatim")
        self.assertEqual(argv[3], NL, "a newline stays inside one argument")
        self.assertEqual(len(argv[4]), 10000)
        self.assertEqual(argv[4], BIG)
        self.assertEqual(argv[5], "exec-argv")
        self.assertEqual(argv[6], "0.25")
        self.assertEqual(argv[7], "literal svc-argv tail")
        self.assertEqual(len(argv), 8, "each template is exactly one argument: %r"
                         % [a[:40] for a in argv])
        self.assertFalse(os.path.exists(os.path.join(self.server.tmp, "x")),
                         "'>x' must not have been interpreted by a shell")
        # environment
        self.assertEqual(env.get("ROLLBACKD_INCIDENT"), inc)
        self.assertEqual(env.get("ROLLBACKD_RULE"), "exec-argv")
        self.assertEqual(env.get("ROLLBACKD_DRY_RUN"), "0")
        self.assertEqual(env.get("ROLLBACKD_LABEL_SERVICE"), "svc-argv")
        self.assertEqual(env.get("ROLLBACKD_LABEL_ALERTNAME"), "ExecArgv")
        self.assertEqual(env.get("ROLLBACKD_LABEL_EVIL"), EVIL)
        self.assertEqual(env.get("ROLLBACKD_LABEL_NL"), NL)
        self.assertEqual(env.get("ROLLBACKD_ANNOTATION_VALUE"), "0.25")
        # stdin: the incident as JSON
        obj = json.loads(stdin.decode("utf-8"))
        self.assertEqual(obj.get("id"), inc, obj)
        self.assertEqual(obj.get("rule"), "exec-argv", obj)
        # the journaled result
        i = self.wait_state(inc, "rolled_back")
        self.assertEqual(len(i["actions"]), 1, i)
        a = i["actions"][0]
        self.assertEqual((a["type"], a["result"], a["exit_code"]), ("exec", "ok", 0), a)

    def test_02_exactly_once_sequential_and_concurrent(self):
        a = alert({"alertname": "Once", "service": "svc-once"})
        body = harness.body_of(notification(a))
        decisions = []
        for _ in range(5):
            r = self.post(body)
            decisions += self.assertAccepted(r, 1)["decisions"]
        errors = []
        lock = threading.Lock()

        def worker():
            try:
                r = harness.http_request(self.server.port, "POST", "/v1/alerts", body=body)
                obj = json.loads(r.body)
                with lock:
                    if r.status != 200:
                        errors.append(r)
                    decisions.extend(obj["decisions"])
            except Exception as e:  # noqa: BLE001
                with lock:
                    errors.append(e)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30 * SCALE)
        self.assertEqual(errors, [])
        self.assertEqual(len(decisions), 13, decisions)
        outcomes = sorted(d["outcome"] for d in decisions)
        self.assertEqual(outcomes, ["acting"] + ["repeat"] * 12, outcomes)
        self.assertEqual(decisions[0]["outcome"], "acting", "the first notification acts")
        incs = {d["incident"] for d in decisions}
        self.assertEqual(len(incs), 1, incs)
        inc = incs.pop()
        i = self.wait_state(inc, "rolled_back")
        self.assertEqual(len(i["actions"]), 1, i)
        self.wait_runs(inc, 1)
        # a late duplicate run would show up here
        time.sleep(0.5 * SCALE)
        self.assertEqual(len(self.runs(inc)), 1, "the action ran more than once")
        # and yet another repeat afterwards changes nothing
        d = self.decide_one(payload=json.loads(body))
        self.assertOutcome(d, "repeat")
        self.assertEqual(self.incident(inc)["state"], "rolled_back")

    def test_03a_cooldown_holds_next_episode(self):
        a1 = alert({"alertname": "Cool", "service": "svc-cool"}, started_ago_s=300)
        d = self.decide_one(a1)
        self.assertOutcome(d, "acting", rule="cool")
        inc = d["incident"]
        self.wait_state(inc, "rolled_back")
        d = self.decide_one(resolved_of(a1))
        self.assertOutcome(d, "resolved")
        self.assertEqual(d["incident"], inc)
        self.assertEqual(self.wait_state(inc, "resolved")["state"], "resolved")
        a2 = alert({"alertname": "Cool", "service": "svc-cool"}, started_ago_s=5)
        d = self.decide_one(a2)
        self.assertOutcome(d, "held", reason_has="in cooldown until")
        self.assertEqual(d["incident"], inc, "same rule + group labels = same incident")
        i = self.wait_state(inc, "held")
        self.assertEqual(i["episode"], 2, i)
        time.sleep(0.3 * SCALE)
        self.assertEqual(len(self.runs(inc)), 1, "held must not run the action")

    def test_03b_no_cooldown_acts_again(self):
        a1 = alert({"alertname": "NoCool", "service": "svc-nocool"}, started_ago_s=300)
        d = self.decide_one(a1)
        self.assertOutcome(d, "acting", rule="nocool")
        inc = d["incident"]
        i = self.wait_state(inc, "rolled_back")
        self.assertEqual(i["episode"], 1, i)
        self.assertOutcome(self.decide_one(resolved_of(a1)), "resolved")
        self.wait_state(inc, "resolved")
        a2 = alert({"alertname": "NoCool", "service": "svc-nocool"}, started_ago_s=5)
        d = self.decide_one(a2)
        self.assertOutcome(d, "acting")
        self.assertEqual(d["incident"], inc)
        i = self.wait_state(inc, "rolled_back")
        self.assertEqual(i["episode"], 2, i)
        self.wait_runs(inc, 2)

    def test_07_missing_label_fails_action_runs_nothing(self):
        d = self.decide_one(alert({"alertname": "MissingLabel", "service": "svc-miss"}))
        self.assertOutcome(d, "acting", rule="missing-label")
        inc = d["incident"]
        i = self.wait_state(inc, ("action_failed",), timeout=10)
        self.assertEqual(len(i["actions"]), 1, i)
        a = i["actions"][0]
        self.assertEqual(a["result"], "error", a)
        self.assertIn("nosuch", a.get("output") or "", "the error names the missing label")
        time.sleep(0.3 * SCALE)
        self.assertEqual(self.runs(inc), [], "the script must not have run")
        self.assertFalse(os.path.exists(os.path.join(self.out, inc)))
        m = self.server.metrics()
        self.assertGreaterEqual(harness.metric(m, "rollbackd_actions_total",
                                               rule="missing-label", type="exec",
                                               result="error"), 1, m)


# --------------------------------------------------------------------------
# 4 and 13: pause / resume and the incidents API (api token)


class ApiTest(EngineCase):
    API_TOKEN = API_TOKEN
    RULES = [rec_rule("paused-rule", "Pausable"), rec_rule("file-paused", "FilePaused"),
             rec_rule("listed", "Listed")]

    def _pause(self, path, token=API_TOKEN):
        h = {"Authorization": "Bearer " + token} if token else {}
        return self.server.request("POST", path, body=b"", headers=h)

    def test_04a_pause_api_then_resume(self):
        r = self._pause("/v1/pause", token=None)
        self.assertEqual(r.status, 401, "pause needs the api token: %r" % r)
        r = self._pause("/v1/pause", token="wrong")
        self.assertEqual(r.status, 401, r)
        r = self._pause("/v1/pause")
        self.assertEqual(r.status, 200, r)
        try:
            self.assertEqual(harness.metric(self.server.metrics(), "rollbackd_paused"), 1.0)
            a1 = alert({"alertname": "Pausable", "service": "svc-p"}, started_ago_s=300)
            d = self.decide_one(a1)
            self.assertOutcome(d, "held", rule="paused-rule", reason_has="paused")
            self.assertTrue(d["reason"].startswith("paused"), d)
            inc = d["incident"]
            self.assertEqual(self.wait_state(inc, "held")["state"], "held")
        finally:
            r = self._pause("/v1/resume")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(harness.metric(self.server.metrics(), "rollbackd_paused"), 0.0)
        time.sleep(0.2 * SCALE)
        self.assertEqual(self.runs(inc), [], "nothing runs while paused")
        self.assertOutcome(self.decide_one(resolved_of(a1)), "resolved")
        a2 = alert({"alertname": "Pausable", "service": "svc-p"}, started_ago_s=5)
        d = self.decide_one(a2)
        self.assertOutcome(d, "acting")
        self.assertEqual(d["incident"], inc)
        i = self.wait_state(inc, "rolled_back")
        self.assertEqual(i["episode"], 2, i)
        self.wait_runs(inc, 1)

    def test_04b_paused_file(self):
        paused = os.path.join(self.server.state_dir, "PAUSED")
        with open(paused, "w") as f:
            f.write("maintenance window\n")
        try:
            d = self.decide_one(alert({"alertname": "FilePaused", "service": "svc-f"}))
            self.assertOutcome(d, "held", rule="file-paused", reason_has="paused")
            inc = d["incident"]
            self.wait_state(inc, "held")
        finally:
            os.unlink(paused)
        time.sleep(0.2 * SCALE)
        self.assertEqual(self.runs(inc), [])

    def test_13_incidents_list_detail_404_401(self):
        a1 = alert({"alertname": "Listed", "service": "svc-l1"})
        d1 = self.decide_one(a1)
        self.assertOutcome(d1, "acting")
        self.wait_state(d1["incident"], "rolled_back")
        time.sleep(0.01)
        d2 = self.decide_one(alert({"alertname": "Listed", "service": "svc-l2"}))
        self.assertOutcome(d2, "acting")
        self.assertNotEqual(d1["incident"], d2["incident"])
        self.wait_state(d2["incident"], "rolled_back")

        r = self.get("/v1/incidents", headers=self.api_headers())
        self.assertEqual(r.status, 200, r)
        self.assertIn("application/json", r.headers.get("content-type", ""))
        lst = r.json()
        self.assertIsInstance(lst, list, lst)
        ids = [x["id"] for x in lst]
        self.assertIn(d1["incident"], ids)
        self.assertIn(d2["incident"], ids)
        self.assertLess(ids.index(d2["incident"]), ids.index(d1["incident"]),
                        "newest first: %r" % ids)
        for x in lst:
            self.assertEqual(set(x), {"id", "rule", "state", "labels", "target",
                                      "coalesced_into", "episode", "first_seen",
                                      "last_seen", "acknowledged_by", "approved_by"}, x)
            self.assertNotIn("actions", x)
        item = lst[ids.index(d1["incident"])]
        self.assertEqual(item["rule"], "listed")
        self.assertEqual(item["state"], "rolled_back")
        self.assertEqual(item["labels"], {"service": "svc-l1"}, "group_by labels: %r" % item)
        self.assertEqual(item["episode"], 1)
        self.assertRegex(item["first_seen"], RFC3339_RE)
        self.assertRegex(item["last_seen"], RFC3339_RE)
        self.assertIsNone(item["acknowledged_by"])

        det = self.incident(d1["incident"])
        for k in ("id", "rule", "state", "labels", "episode", "first_seen", "last_seen",
                  "acknowledged_by", "actions"):
            self.assertIn(k, det, det)
        self.assertEqual(det["id"], d1["incident"])
        self.assertEqual(len(det["actions"]), 1, det)
        act = det["actions"][0]
        self.assertEqual(set(act), {"type", "started", "finished", "result", "exit_code",
                                    "status_code", "output"}, act)
        self.assertEqual(act["type"], "exec")
        self.assertEqual(act["result"], "ok")
        self.assertEqual(act["exit_code"], 0)
        self.assertIn(act["status_code"], (None, 0), "exec actions have no HTTP status")
        self.assertRegex(act["started"], RFC3339_RE)
        self.assertRegex(act["finished"], RFC3339_RE)
        self.assertLessEqual(act["started"], act["finished"])

        r = self.get("/v1/incidents/inc-0000000000000000", headers=self.api_headers())
        self.assertEqual(r.status, 404, r)
        self.assertEqual(r.json().get("error"), "not_found", r)
        for path in ("/v1/incidents", "/v1/incidents/" + d1["incident"]):
            r = self.get(path, headers={"Authorization": "Bearer wrong-token"})
            self.assertEqual(r.status, 401, r)
            self.assertEqual(r.json().get("error"), "unauthorized", r)
            r = self.get(path)
            self.assertEqual(r.status, 401, "no token, even from loopback, when one is set")


# --------------------------------------------------------------------------
# 5: max_rollbacks_per_hour across rules


class RateLimitTest(EngineCase):
    EXTRA = {"dry_run": False, "limits": {"max_rollbacks_per_hour": 1}}
    RULES = [rec_rule("first", "First"), rec_rule("second", "Second")]

    def test_05_max_rollbacks_per_hour_across_rules(self):
        d1 = self.decide_one(alert({"alertname": "First", "service": "a"}))
        self.assertOutcome(d1, "acting", rule="first")
        d2 = self.decide_one(alert({"alertname": "Second", "service": "b"}))
        self.assertOutcome(d2, "held", rule="second", reason_has="max_rollbacks_per_hour")
        self.wait_state(d1["incident"], "rolled_back")
        self.wait_state(d2["incident"], "held")
        time.sleep(0.2 * SCALE)
        self.assertEqual(len(self.runs(d1["incident"])), 1)
        self.assertEqual(self.runs(d2["incident"]), [])
        m = self.server.metrics()
        self.assertEqual(harness.metric(m, "rollbackd_decisions_total", rule="second",
                                        outcome="held"), 1.0)


# --------------------------------------------------------------------------
# 6, 10, 12: dry run (global default), 1000 alerts, when.value


class GlobalDryRunTest(EngineCase):
    EXTRA = {}   # dry_run defaults to true
    RULES = [
        rec_rule("dry", "Dry"),
        rec_rule("valued", "Valued", when={"value": {"from": "annotations.value",
                                                      "above": 0.01}}),
    ]

    def test_06a_global_dry_run_runs_nothing(self):
        d = self.decide_one(alert({"alertname": "Dry", "service": "svc-dry"}))
        self.assertOutcome(d, "dry_run", rule="dry")
        inc = d["incident"]
        i = self.wait_state(inc, "dry_run")
        time.sleep(0.3 * SCALE)
        self.assertEqual(self.runs(inc), [], "dry run must not run the action")
        self.assertEqual(self.incident(inc)["state"], "dry_run", i)

    def test_10_thousand_alerts(self):
        alerts = [alert({"alertname": "Dry", "service": "svc-big", "pod": "p-%04d" % i})
                  for i in range(1000)]
        p = notification(*alerts)
        r = self.post(p, timeout=60 * SCALE)
        obj = self.assertAccepted(r, 1000)
        ds = obj["decisions"]
        self.assertEqual(len(ds), 1000)
        self.assertEqual({d["fingerprint"] for d in ds}, {a["fingerprint"] for a in alerts})
        self.assertEqual(len({d["incident"] for d in ds}), 1, "group_by service: one incident")
        outcomes = sorted(d["outcome"] for d in ds)
        self.assertEqual(outcomes, ["dry_run"] + ["repeat"] * 999)

    def test_12_value_conditions(self):
        base = {"alertname": "Valued", "service": "svc-v"}
        # A no_match from a condition names the rule whose condition failed
        # (or "" - the contract only fixes rule "" for "no rule matches");
        # it never opens an incident.
        d = self.decide_one(alert(base, value="not-a-number"))
        self.assertOutcome(d, "no_match", reason_has="annotation 'value' is not a number")
        self.assertIn(d["rule"], ("", "valued"), d)
        self.assertEqual(d["incident"], "", d)
        self.assertIn("not-a-number", d["reason"])
        d = self.decide_one(alert(base, value=None))
        self.assertOutcome(d, "no_match", reason_has="annotation 'value' missing")
        self.assertEqual(d["incident"], "", d)
        d = self.decide_one(alert(base, value="0.004"))
        self.assertOutcome(d, "no_match", reason_has="value 0.004 not above 0.01")
        self.assertEqual(d["incident"], "", d)
        # an alert no rule matches at all: one decision with rule ""
        d = self.decide_one(alert({"alertname": "NobodyCares", "service": "x"}))
        self.assertOutcome(d, "no_match", rule="")
        self.assertEqual(d["incident"], "", d)
        d = self.decide_one(alert(base, value="0.5"))
        self.assertOutcome(d, "dry_run", rule="valued")


class RuleDryRunTest(EngineCase):
    EXTRA = {"dry_run": False}
    RULES = [rec_rule("rule-dry", "RuleDry", dry_run=True), rec_rule("wet", "Wet")]

    def test_06b_per_rule_dry_run(self):
        d = self.decide_one(alert({"alertname": "RuleDry", "service": "s"}))
        self.assertOutcome(d, "dry_run", rule="rule-dry")
        inc = d["incident"]
        self.wait_state(inc, "dry_run")
        # the other rule really acts (global dry_run is false); another service,
        # since one target is rolled back by one incident at a time (issue 11)
        d2 = self.decide_one(alert({"alertname": "Wet", "service": "s-wet"}))
        self.assertOutcome(d2, "acting", rule="wet")
        self.wait_state(d2["incident"], "rolled_back")
        self.wait_runs(d2["incident"], 1)
        self.assertEqual(self.runs(inc), [])


# --------------------------------------------------------------------------
# 8: timeouts (SIGTERM ignored -> SIGKILL), /healthz while an action runs


class TimeoutTest(EngineCase):
    RULES = staticmethod(lambda cls, s: [
        {"name": "stubborn", "matchers": ['alertname="Stubborn"'], "group_by": ["service"],
         "actions": [{"type": "exec", "timeout": "1s", "argv": [
             "/bin/sh", "-c",
             "trap '' TERM; sleep 60 & echo $! > %s/gpid; "
             "while :; do sleep 0.1; done" % s.tmp]}]},
        {"name": "slow", "matchers": ['alertname="Slow"'], "group_by": ["service"],
         "actions": [{"type": "exec", "timeout": "1m", "argv": ["sleep", "3"]}]},
    ])

    def test_08a_sigterm_ignored_killed_after_grace(self):
        t0 = time.monotonic()
        d = self.decide_one(alert({"alertname": "Stubborn", "service": "s"}))
        self.assertOutcome(d, "acting", rule="stubborn")
        inc = d["incident"]
        i = self.wait_state(inc, ("action_failed", "rolled_back"), timeout=15)
        elapsed = time.monotonic() - t0
        self.assertEqual(i["state"], "action_failed", i)
        a = i["actions"][0]
        self.assertEqual(a["result"], "timeout", a)
        self.assertGreaterEqual(elapsed, 5.5,
                                "SIGKILL only 5 s after SIGTERM (child ignores TERM)")
        self.assertLess(elapsed, 1 + 5 + 3 * SCALE, "timeout 1s + 5s grace")
        # the whole process group died, grandchild included
        with open(os.path.join(self.server.tmp, "gpid")) as f:
            gpid = int(f.read().strip())
        end = deadline(3)
        while time.monotonic() < end and _alive(gpid):
            time.sleep(0.05)
        self.assertFalse(_alive(gpid), "grandchild %d survived the timeout" % gpid)

    def test_08b_healthz_fast_while_action_runs(self):
        # its own service: the timeout test's target is in target_cooldown (issue 11)
        d = self.decide_one(alert({"alertname": "Slow", "service": "s-healthz"}))
        self.assertOutcome(d, "acting", rule="slow")
        inc = d["incident"]
        self.wait_incident(inc, lambda i: i.get("actions") and
                           i["actions"][0]["result"] == "running", 5, "action running")
        worst = 0.0
        for _ in range(10):
            t = time.monotonic()
            r = self.server.request("GET", "/healthz", timeout=5)
            worst = max(worst, time.monotonic() - t)
            self.assertEqual(r.status, 200, r)
            time.sleep(0.05)
        self.assertLess(worst, 0.5, "/healthz took %.3fs while an action ran" % worst)
        self.assertEqual(self.incident(inc)["actions"][0]["result"], "running",
                         "the sleep 3 should still be running during the probes")
        i = self.wait_state(inc, "rolled_back", timeout=10)
        self.assertEqual(i["actions"][0]["result"], "ok", i)
        self.assertEqual(i["actions"][0]["exit_code"], 0, i)


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read().rsplit(")", 1)[1].split()[0]
        return st not in ("Z", "X")
    except (OSError, IndexError):
        return False


# --------------------------------------------------------------------------
# 9: http action, retries on 5xx, final 4xx


class Recorder(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _handle(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        srv = self.server
        with srv.lock:
            srv.requests.append({"method": self.command, "path": self.path,
                                 "headers": dict(self.headers), "body": body})
            seq = srv.plan.get(self.path.split("/")[1], [204])
            count = sum(1 for r in srv.requests if r["path"] == self.path)
            status = seq[min(count, len(seq)) - 1]
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_PATCH = do_GET = _handle

    def log_message(self, *a):
        pass


class HttpActionTest(EngineCase):
    LABEL = "check out/v2?x=1&y"
    RULES = staticmethod(lambda cls, s: [
        {"name": "flaky", "matchers": ['alertname="Flaky"'], "group_by": ["service"],
         "actions": [{"type": "http", "method": "PATCH",
                      "url": "http://127.0.0.1:%d/flaky/{{labels.service}}" % cls.rec_port,
                      "headers": {"X-Incident": "{{incident.id}}"},
                      "body": {"enabled": False, "service": "{{labels.service}}",
                               "incident": "{{incident.id}}"},
                      "expect_status": [200, 204], "timeout": "5s", "retries": 3}]},
        {"name": "gone", "matchers": ['alertname="Gone"'], "group_by": ["service"],
         "actions": [{"type": "http", "method": "POST",
                      "url": "http://127.0.0.1:%d/gone/{{labels.service}}" % cls.rec_port,
                      "body": {"x": 1}, "expect_status": [200], "timeout": "5s",
                      "retries": 3}]},
    ])

    @classmethod
    def setUpClass(cls):
        cls.recorder = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
        cls.recorder.lock = threading.Lock()
        cls.recorder.requests = []
        cls.recorder.plan = {"flaky": [500, 503, 204], "gone": [404]}
        cls.rec_port = cls.recorder.server_address[1]
        cls.rec_thread = threading.Thread(target=cls.recorder.serve_forever, daemon=True)
        cls.rec_thread.start()
        try:
            super().setUpClass()
        except Exception:
            cls.recorder.shutdown()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.recorder.shutdown()
            cls.recorder.server_close()

    def reqs(self, prefix):
        with self.recorder.lock:
            return [r for r in self.recorder.requests if r["path"].startswith(prefix)]

    def test_09a_retries_500_503_then_204(self):
        d = self.decide_one(alert({"alertname": "Flaky", "service": self.LABEL}))
        self.assertOutcome(d, "acting", rule="flaky")
        inc = d["incident"]
        i = self.wait_state(inc, ("rolled_back", "action_failed"), timeout=15)
        self.assertEqual(i["state"], "rolled_back", i)
        a = i["actions"][0]
        self.assertEqual((a["type"], a["result"], a["status_code"]), ("http", "ok", 204), a)
        got = self.reqs("/flaky/")
        self.assertEqual(len(got), 3, [r["path"] for r in got])
        want_path = "/flaky/check%20out%2Fv2%3Fx%3D1%26y"
        for r in got:
            self.assertEqual(r["method"], "PATCH")
            self.assertEqual(r["path"], want_path)
            self.assertEqual(r["headers"].get("X-Incident"), inc)
            self.assertEqual(json.loads(r["body"]),
                             {"enabled": False, "service": self.LABEL, "incident": inc})

    def test_09b_404_is_final(self):
        d = self.decide_one(alert({"alertname": "Gone", "service": "svc"}))
        self.assertOutcome(d, "acting", rule="gone")
        inc = d["incident"]
        i = self.wait_state(inc, ("rolled_back", "action_failed"), timeout=15)
        self.assertEqual(i["state"], "action_failed", i)
        a = i["actions"][0]
        self.assertEqual((a["result"], a["status_code"]), ("failed", 404), a)
        time.sleep(1.5 * SCALE)   # longer than the first back-off would be
        self.assertEqual(len(self.reqs("/gone/")), 1, "404 must not be retried")


# --------------------------------------------------------------------------
# 11: firing_for timer


class FiringForTest(EngineCase):
    RULES = [rec_rule("wait2s", "Waiting", when={"firing_for": "2s"})]

    def test_11_timer_acts_without_resend_and_resolve_cancels(self):
        now = rfc3339()
        a1 = alert({"alertname": "Waiting", "service": "svc-a"}, starts=now)
        a2 = alert({"alertname": "Waiting", "service": "svc-b"}, starts=now)
        d1 = self.decide_one(a1)
        self.assertOutcome(d1, "pending", rule="wait2s")
        d2 = self.decide_one(a2)
        self.assertOutcome(d2, "pending", rule="wait2s")
        self.assertNotEqual(d1["incident"], d2["incident"])
        self.assertEqual(self.incident(d1["incident"])["state"], "pending")
        # resolve the second before its timer fires
        d = self.decide_one(resolved_of(a2))
        self.assertOutcome(d, "resolved")
        self.assertEqual(self.incident(d2["incident"])["state"], "resolved")
        t0 = time.monotonic()
        i = self.wait_state(d1["incident"], ("acting", "rolled_back"), timeout=8)
        self.assertIn(i["state"], ("acting", "rolled_back"))
        self.wait_state(d1["incident"], "rolled_back")
        self.wait_runs(d1["incident"], 1)
        # give the cancelled timer time to (wrongly) fire
        time.sleep(max(0.0, 1.0 * SCALE - (time.monotonic() - t0)))
        self.assertEqual(self.incident(d2["incident"])["state"], "resolved")
        self.assertEqual(self.runs(d2["incident"]), [], "resolved before the timer: never acts")
        self.assertEqual(self.incident(d2["incident"])["actions"], [])


# --------------------------------------------------------------------------
# 14: check-rules and test-rules


class CliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not harness.binary_available():
            raise unittest.SkipTest(harness.skip_reason())

    def test_14a_check_rules_bad_file(self):
        bad = os.path.join(ENGINE_DATA, "check_bad.json")
        r = harness.run_cli(["check-rules", bad])
        self.assertEqual(r.returncode, 1, r)
        err = r.stderr.decode()
        lines = [l for l in err.splitlines() if l.strip()]
        self.assertGreaterEqual(len(lines), 1, err)
        for l in lines:
            self.assertTrue(l.startswith(bad + ":"), "not FILE-prefixed: %r" % l)
        self.assertIn("firing_fro", err, "unknown key is named")
        syn = os.path.join(ENGINE_DATA, "check_syntax.json")
        r = harness.run_cli(["check-rules", syn])
        self.assertEqual(r.returncode, 1, r)
        self.assertRegex(r.stderr.decode(), r"^%s:\d+:\d+: " % re.escape(syn))
        good = os.path.join(ENGINE_DATA, "test_rules.json")
        r = harness.run_cli(["check-rules", good])
        self.assertEqual(r.returncode, 0, r)

    def test_14b_test_rules_expands_and_redacts(self):
        tmp = tempfile.mkdtemp(prefix="rollbackd-testrules-")
        try:
            marker = os.path.join(tmp, "ran")
            tok = os.path.join(tmp, "tok")
            with open(tok, "w") as f:
                f.write("S3CR3T-flags-token\n")
            os.chmod(tok, 0o600)
            conf = os.path.join(tmp, "c.json")
            with open(conf, "w") as f:
                json.dump({"dry_run": False, "secrets": {"flags_token": {"file": tok}}}, f)
            # the exec action would create the marker if anything ran
            rules = os.path.join(tmp, "rules.json")
            with open(os.path.join(ENGINE_DATA, "test_rules.json")) as f:
                text = f.read().replace("@MARKER@", marker)
            with open(rules, "w") as f:
                f.write(text)
            alerts = os.path.join(ENGINE_DATA, "test_rules_alerts.json")
            r = harness.run_cli(["test-rules", "--rules", rules, "--alerts", alerts,
                                 "--now", "2026-01-01T00:10:00Z", "--config", conf])
            self.assertEqual(r.returncode, 0, r)
            out = r.stdout.decode()
            self.assertNotIn("S3CR3T", out + r.stderr.decode())
            ds = [json.loads(l) for l in out.splitlines() if l.strip()]
            self.assertEqual(len(ds), 2, out)
            by_fp = {d["fingerprint"]: d for d in ds}
            act = by_fp["aaaaaaaaaaaaaaaa"]
            self.assertEqual(act["rule"], "flag-off")
            self.assertEqual(act["outcome"], "acting", act)
            self.assertRegex(act["incident"], INC_RE)
            http_a, exec_a = act["actions"]
            self.assertEqual(http_a["type"], "http")
            self.assertEqual(http_a["method"], "PATCH")
            self.assertEqual(http_a["url"], "http://flags.invalid/api/flags/check%20out-v2")
            self.assertEqual(http_a["headers"]["Authorization"], "Bearer <redacted:flags_token>")
            self.assertEqual(http_a["body"], {"enabled": False, "service": "check out",
                                              "incident": act["incident"]})
            self.assertEqual(exec_a["type"], "exec")
            self.assertEqual(exec_a["argv"], ["/usr/bin/touch", marker, "check out",
                                              "flag-off"])
            nomatch = by_fp["bbbbbbbbbbbbbbbb"]
            self.assertEqual(nomatch["outcome"], "no_match", nomatch)
            self.assertIn("value 0.001 not above 0.01", nomatch["reason"])
            self.assertFalse(os.path.exists(marker), "test-rules must run nothing")
        finally:
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
