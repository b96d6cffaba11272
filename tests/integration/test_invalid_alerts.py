"""Well-formed but unusable alerts (issue 12, "HTTP details").

A NUL inside a label or annotation value, a firing alert whose startsAt is
Go's zero time or more than an hour ahead: the notification is accepted
(a 4xx would make Alertmanager drop the whole group), the alert is
journaled and decided `invalid` with a reason naming it (index and
fingerprint) and the field, and the other alerts of the same notification
are decided as usual. No action ever sees a value cut at a NUL.

Python 3 standard library only.
"""

import datetime
import json
import os
import time
import unittest

from test_engine import EngineCase, alert, notification, deadline
from test_journal import read_journal


def labels(service, **extra):
    d = {"alertname": "RollbackErrorRate", "service": service, "severity": "critical"}
    d.update(extra)
    return d


class InvalidAlertsTest(EngineCase):
    RULES = [{
        "name": "r-invalid",
        "matchers": ['alertname="RollbackErrorRate"'],
        "group_by": ["service"],
        "mode": "auto",
        "when": {"firing_for": "1m"},
        "actions": [{"type": "exec",
                     "argv": ["@REC@", "@OUT@", "{{incident.id}}", "{{labels.pod}}"],
                     "timeout": "10s"}],
    }]
    EXTRA = {"dry_run": False}

    def journal_decisions(self):
        recs = [json.loads(l) for l in read_journal(self.server.state_dir)]
        return [r for r in recs if r["type"] == "decision"]

    def wait_decision(self, fp, outcome):
        end = deadline(10)
        while time.monotonic() < end:
            ds = [d for d in self.journal_decisions()
                  if d["fingerprint"] == fp and d["outcome"] == outcome]
            if ds:
                return ds
            time.sleep(0.05)
        self.fail("no %s decision journaled for %s" % (outcome, fp))

    def test_unusable_alerts_are_invalid_and_the_others_go_on(self):
        nul = alert(labels("svc-nul", pod="pod\x00evil"))
        good = alert(labels("svc-good", pod="pod-1"))
        zero = alert(labels("svc-zero", pod="pod-2"), starts="0001-01-01T00:00:00Z")
        ahead = alert(labels("svc-ahead", pod="pod-3"), starts="2099-01-01T00:00:00Z")
        note = alert(labels("svc-note", pod="pod-4"), annotations={"summary": "a\x00b"})
        ds = self.decide(nul, good, zero, ahead, note)
        got = [(d["fingerprint"], d["outcome"], d["reason"]) for d in ds]
        fp = [a["fingerprint"] for a in (nul, good, zero, ahead, note)]
        self.assertEqual(got[0], (fp[0], "invalid", "alerts[0] (fingerprint %s): labels.pod "
                                  "contains a NUL byte" % fp[0]))
        self.assertEqual(got[1], (fp[1], "acting", "running 1 action(s)"))
        self.assertEqual(got[2], (fp[2], "invalid", "alerts[2] (fingerprint %s): startsAt is "
                                  "Go's zero time 0001-01-01T00:00:00Z" % fp[2]))
        self.assertEqual(got[3], (fp[3], "invalid", "alerts[3] (fingerprint %s): startsAt "
                                  "2099-01-01T00:00:00Z is more than 1h in the future" % fp[3]))
        self.assertEqual(got[4], (fp[4], "invalid", "alerts[4] (fingerprint %s): "
                                  "annotations.summary contains a NUL byte" % fp[4]))
        self.assertEqual([d["incident"] for d in ds if d["outcome"] == "invalid"], [""] * 4)
        self.assertEqual([d["rule"] for d in ds if d["outcome"] == "invalid"], [""] * 4)
        # the valid alert ran, with its own value
        inc = ds[1]["incident"]
        runs = self.wait_runs(inc, 1)
        argv, _, _ = self.recorded(inc, runs[0])
        self.assertEqual(argv[-1], "pod-1")
        # nothing ran for the others, nothing with a value cut at the NUL
        seen = set()
        for d in os.listdir(self.out):
            for pid in self.runs(d):
                seen.add(self.recorded(d, pid)[0][-1])
        self.assertEqual(seen & {"pod", "pod-2", "pod-3", "pod-4"}, set(), seen)
        # journaled: one decision each, with the reason
        for i in (0, 2, 3, 4):
            recs = self.wait_decision(fp[i], "invalid")
            self.assertEqual([r["reason"] for r in recs], [got[i][2]])
            self.assertEqual(recs[0]["incident"], "")
        self.assertIn("pod\x00evil", [r["labels"].get("pod") for r in
                                     [json.loads(l) for l in read_journal(self.server.state_dir)]
                                     if r["type"] == "notification" and
                                     r["fingerprint"] == fp[0]])
        # decided the same when sent again (not journaled twice)
        ds2 = self.decide(nul)
        self.assertEqual([(d["outcome"], d["reason"]) for d in ds2],
                         [("invalid", got[0][2])])
        self.assertEqual(len([d for d in self.journal_decisions() if d["fingerprint"] == fp[0]]),
                         1)

    def test_resolved_alert_with_zero_start_still_resolves(self):
        a = alert(labels("svc-res", pod="pod-9"))
        ds = self.decide(a)
        self.assertEqual(ds[0]["outcome"], "acting", ds)
        r = dict(a, status="resolved", startsAt="0001-01-01T00:00:00Z")
        ds = self.decide(r)
        self.assertEqual([d["outcome"] for d in ds], ["resolved"], ds)

    def test_an_hour_ahead_is_not_invalid(self):
        t = (datetime.datetime.now(datetime.timezone.utc)
             + datetime.timedelta(minutes=50)).strftime("%Y-%m-%dT%H:%M:%SZ")
        ds = self.decide(alert(labels("svc-skew", pod="pod-8"), starts=t))
        self.assertEqual(ds[0]["outcome"], "pending", ds)


if __name__ == "__main__":
    unittest.main()
