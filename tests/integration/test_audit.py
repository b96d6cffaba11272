"""rollbackd audit verify | show | report (SPEC §3, §8), without the daemon.

Journals come from tests/data/journal/make_journal.py: an incident scenario
(alert at 10:00:00, pending at +30s, acting at +1m, two actions from
+1m30s, Slack sent, PagerDuty failed, ack at +3m, resolved at +5m) with
another incident and daemon records in between, intact or broken on
purpose (a tampered line, a broken prev, a seq gap, a torn last line,
segments).
"""

import hashlib
import json
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import run_cli  # noqa: E402

sys.path.insert(0, os.path.join(harness.DATA, "journal"))
import make_journal as mj  # noqa: E402

INC = mj.INCIDENT


def seqs_of(text):
    """The #seq column of show's human lines."""
    return [int(line.split("  ")[1].lstrip("#")) for line in text.splitlines() if line]


@unittest.skipUnless(harness.binary_available(), harness.skip_reason())
class AuditTestCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="rollbackd-audit-")
        self.state = os.path.join(self.tmp, "state")
        self.path = os.path.join(self.state, "journal.jsonl")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def journal(self, records=None, segments=None, tear=None, segment_start=1, **breakage):
        lines = mj.build(records if records is not None else mj.incident_scenario(),
                         **breakage)
        return mj.write(self.state, lines, segments=segments, tear=tear,
                        segment_start=segment_start)

    def audit(self, *args):
        return run_cli(["audit"] + list(args))

    def out(self, p):
        return p.stdout.decode("utf-8")

    def one_error_line(self, p):
        err = p.stderr.decode("utf-8")
        lines = [l for l in err.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, "want one error line on stderr, got %r" % err)
        return lines[0]

    def assertBroken(self, p, where, seq, what):
        """Exit 1 and the one-line message naming the file, offset and seq."""
        self.assertEqual(p.returncode, 1, p)
        w = [x for x in where if x["seq"] >= seq or x is where[-1]][0] if where else None
        line = self.one_error_line(p)
        want = "rollbackd: audit: %s: offset %d: record seq %d: %s" % (
            w["file"], w["offset"], seq, what)
        self.assertTrue(line.startswith(want), "\n got: %s\nwant: %s..." % (line, want))
        return line


class VerifyTest(AuditTestCase):
    def test_intact(self):
        where = self.journal()
        last_hash = json.loads(where[-1]["line"])["hash"]
        for path in (self.path, self.state, self.state + "/"):
            p = self.audit("verify", "--journal", path)
            self.assertEqual(p.returncode, 0, p)
            self.assertEqual(self.out(p),
                             "ok: 21 records, last seq 21, last hash %s\n" % last_hash)
            self.assertEqual(p.stderr, b"")

    def test_tampered_middle_line(self):
        where = self.journal(tamper=7)
        self.assertGreater(where[6]["offset"], 0)
        p = self.audit("verify", "--journal", self.path)
        self.assertEqual(p.stdout, b"")
        self.assertBroken(p, where, 7, "hash mismatch")

    def test_tampered_first_line(self):
        where = self.journal(tamper=1)
        p = self.audit("verify", "--journal", self.path)
        self.assertBroken(p, where, 1, "hash mismatch")
        self.assertIn("offset 0:", self.one_error_line(p))

    def test_torn_last_line_cut(self):
        where = self.journal(tear="cut")
        p = self.audit("verify", "--journal", self.path)
        self.assertBroken(p, where, 21, "torn last line without newline")

    def test_torn_last_line_complete_but_no_newline(self):
        where = self.journal(tear="nonl")
        p = self.audit("verify", "--journal", self.path)
        self.assertBroken(p, where, 21, "torn last line without newline")

    def test_prev_broken(self):
        where = self.journal(break_prev=9)
        p = self.audit("verify", "--journal", self.path)
        self.assertBroken(p, where, 9, 'prev mismatch: "prev" is not the hash of seq 8')

    def test_first_prev_not_zero(self):
        where = self.journal(break_prev=1)
        p = self.audit("verify", "--journal", self.path)
        self.assertBroken(p, where, 1, "prev mismatch")

    def test_seq_gap(self):
        where = self.journal(skip_seq=7)
        p = self.audit("verify", "--journal", self.path)
        self.assertBroken(p, where, 7, "seq gap: the line has seq 8, expected 7")

    def test_deleted_line(self):
        lines = mj.build(mj.incident_scenario())
        del lines[4]  # seq 5
        where = mj.write(self.state, lines)
        p = self.audit("verify", "--journal", self.path)
        line = self.one_error_line(p)
        self.assertEqual(p.returncode, 1)
        self.assertIn("offset %d: record seq 5: seq gap: the line has seq 6, expected 5"
                      % where[4]["offset"], line)

    def test_not_a_record(self):
        lines = mj.build(mj.incident_scenario())
        lines[9] = (10, "this is not a record")
        where = mj.write(self.state, lines)
        p = self.audit("verify", "--journal", self.path)
        self.assertBroken(p, where, 10, "not a record")

    def test_chained_but_not_json(self):
        # A line that hashes right and chains right but is no JSON object.
        good = mj.build(mj.incident_scenario())[:2]
        prev = json.loads(good[-1][1])["hash"]
        b = '{"seq":3,"ts":"2026-11-21T10:00:00.000Z" "type":"x","prev":"%s"}' % prev
        h = hashlib.blake2b(b.encode(), digest_size=32).hexdigest()
        where = mj.write(self.state, good + [(3, b[:-1] + ',"hash":"%s"}' % h)])
        p = self.audit("verify", "--journal", self.path)
        self.assertBroken(p, where, 3, "not a record: not JSON")

    def test_segments_in_order(self):
        where = self.journal(segments=[5, 6])
        names = sorted(os.listdir(self.state))
        self.assertEqual(names, ["journal.000001.jsonl", "journal.000002.jsonl",
                                 "journal.jsonl"])
        p = self.audit("verify", "--journal", self.path)
        self.assertEqual(p.returncode, 0, p)
        self.assertTrue(self.out(p).startswith("ok: 21 records, last seq 21, "))
        self.assertEqual(where[5]["offset"], 0)

    def test_segments_numeric_not_lexical_order(self):
        # journal.1000000.jsonl sorts before journal.999999.jsonl as text.
        self.journal(segments=[2, 3], segment_start=999999)
        self.assertIn("journal.1000000.jsonl", os.listdir(self.state))
        p = self.audit("verify", "--journal", self.state)
        self.assertEqual(p.returncode, 0, p)

    def test_broken_across_segment_boundary(self):
        where = self.journal(segments=[5, 6], break_prev=6)
        p = self.audit("verify", "--journal", self.path)
        line = self.assertBroken(p, where, 6, "prev mismatch")
        self.assertIn("journal.000002.jsonl: offset 0:", line)

    def test_tampered_in_closed_segment(self):
        where = self.journal(segments=[5, 6], tamper=8)
        p = self.audit("verify", "--journal", self.path)
        line = self.assertBroken(p, where, 8, "hash mismatch")
        self.assertIn("journal.000002.jsonl", line)

    def test_missing_segment(self):
        self.journal(segments=[5, 6])
        os.unlink(os.path.join(self.state, "journal.000002.jsonl"))
        p = self.audit("verify", "--journal", self.path)
        self.assertEqual(p.returncode, 1)
        self.assertIn("journal.jsonl: offset 0: record seq 6: seq gap: the line has seq 12",
                      self.one_error_line(p))

    def test_missing_file(self):
        p = self.audit("verify", "--journal", self.path)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(self.one_error_line(p),
                         "rollbackd: audit: cannot open %s: No such file or directory" % self.path)

    def test_directory_without_journal(self):
        os.makedirs(self.state)
        p = self.audit("verify", "--journal", self.state)
        self.assertEqual(p.returncode, 1)
        self.assertIn("cannot open %s: no journal in it" % self.state, self.one_error_line(p))

    def test_empty_file(self):
        os.makedirs(self.state)
        open(self.path, "w").close()
        p = self.audit("verify", "--journal", self.path)
        self.assertEqual(p.returncode, 0, p)
        self.assertEqual(self.out(p), "ok: 0 records\n")

    def test_other_file_name_is_refused(self):
        # The reader reads a directory's journal.jsonl: a copy under another
        # name must not silently verify something else.
        self.journal(tamper=3)
        other = os.path.join(self.tmp, "copy.jsonl")
        shutil.copy(self.path, other)
        open(os.path.join(self.tmp, "journal.jsonl"), "w").close()
        p = self.audit("verify", "--journal", other)
        self.assertEqual(p.returncode, 1)
        self.assertIn("not a journal file name", self.one_error_line(p))

    def test_long_record(self):
        recs = mj.simple_scenario(3)
        recs.append({"ts": mj.ts("09:10:00"), "type": "action_finished", "incident": "i",
                     "output": "x" * 900000})
        self.journal(recs)
        p = self.audit("verify", "--journal", self.path)
        self.assertEqual(p.returncode, 0, p)
        self.assertTrue(self.out(p).startswith("ok: 4 records"))

    def test_many_records(self):
        self.journal(mj.simple_scenario(5000), segments=[1000, 2000])
        p = self.audit("verify", "--journal", self.state)
        self.assertEqual(p.returncode, 0, p)
        self.assertTrue(self.out(p).startswith("ok: 5000 records, last seq 5000, "))


class ShowTest(AuditTestCase):
    EXPECTED = {
        3: "2026-11-21T10:00:30.000Z  #3  notification  -  RollbackErrorRate firing "
           '{service="checkout", severity="critical"} (fingerprint 3c5b6a1d2e4f7a8b)',
        4: "2026-11-21T10:00:30.001Z  #4  decision  inc-7f3a9c  RollbackErrorRate: pending"
           " — firing for 30s of 1m (value 0.052 > 0.01)",
        7: "2026-11-21T10:01:00.000Z  #7  decision  inc-7f3a9c  RollbackErrorRate: acting"
           " — running 2 action(s) (value 0.061 > 0.01) (trigger: firing_for)",
        10: "2026-11-21T10:01:30.260Z  #10  action_started  inc-7f3a9c  action 2 (exec) "
            "started: deploy/rollback.sh checkout --reason 'error rate'",
        11: "2026-11-21T10:01:32.760Z  #11  action_finished  inc-7f3a9c  action 2 (exec) ok:"
            " exit code 0, 2.5s; incident rolled_back",
        15: "2026-11-21T10:01:34.000Z  #15  notify_failed  inc-7f3a9c  pagerduty failed "
            "(id n-2, HTTP 503, 3 attempt(s)): service unavailable",
        16: "2026-11-21T10:03:00.000Z  #16  ack  inc-7f3a9c  acknowledged by alice via link",
        20: "2026-11-21T10:06:00.000Z  #20  pause  -  automatic actions paused by bob",
    }
    INCIDENT_SEQS = [3, 4, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]

    def test_all_records(self):
        self.journal()
        p = self.audit("show", "--journal", self.path)
        self.assertEqual(p.returncode, 0, p)
        self.assertEqual(p.stderr, b"")
        lines = self.out(p).splitlines()
        self.assertEqual(seqs_of(self.out(p)), list(range(1, 22)))
        for seq, want in self.EXPECTED.items():
            self.assertEqual(lines[seq - 1], want)

    def test_incident(self):
        self.journal()
        p = self.audit("show", "--journal", self.path, "--incident", INC)
        self.assertEqual(p.returncode, 0, p)
        # its records, plus the alert notifications its decisions name (3, 17)
        self.assertEqual(seqs_of(self.out(p)), self.INCIDENT_SEQS)
        lines = self.out(p).splitlines()
        self.assertEqual(lines[0], self.EXPECTED[3])
        self.assertEqual(lines[2], self.EXPECTED[7])

    def test_other_incident(self):
        self.journal()
        p = self.audit("show", "--journal", self.path, "--incident", mj.OTHER_INCIDENT)
        self.assertEqual(seqs_of(self.out(p)), [5, 6])

    def test_unknown_incident_prints_nothing(self):
        self.journal()
        p = self.audit("show", "--journal", self.path, "--incident", "inc-none")
        self.assertEqual(p.returncode, 0, p)
        self.assertEqual(p.stdout, b"")

    def test_since(self):
        self.journal()
        p = self.audit("show", "--journal", self.path, "--since", "2026-11-21T10:05:00Z")
        self.assertEqual(p.returncode, 0, p)
        self.assertEqual(seqs_of(self.out(p)), [17, 18, 19, 20, 21])
        # another offset, same instant
        p = self.audit("show", "--journal", self.path, "--since", "2026-11-21T11:05:00+01:00")
        self.assertEqual(seqs_of(self.out(p)), [17, 18, 19, 20, 21])

    def test_incident_and_since(self):
        self.journal()
        p = self.audit("show", "--journal", self.path, "--incident", INC,
                       "--since", "2026-11-21T10:03:00.000Z")
        self.assertEqual(seqs_of(self.out(p)), [16, 17, 18, 19])
        self.assertEqual(self.out(p).splitlines()[0], self.EXPECTED[16])

    def test_json_prints_lines_unchanged(self):
        where = self.journal(segments=[5, 6])
        p = self.audit("show", "--journal", self.path, "--json")
        self.assertEqual(p.returncode, 0, p)
        self.assertEqual(self.out(p), "".join(w["line"] + "\n" for w in where))
        p = self.audit("show", "--journal", self.path, "--json", "--incident", INC,
                       "--since", "2026-11-21T10:03:00Z")
        self.assertEqual(self.out(p), "".join(w["line"] + "\n" for w in where
                                              if w["seq"] in (16, 17, 18, 19)))

    def test_broken_chain_prints_what_it_can(self):
        where = self.journal(tamper=18, tear="cut")
        p = self.audit("show", "--journal", self.path)
        self.assertBroken(p, where, 18, "hash mismatch")
        lines = self.out(p).splitlines()
        # 1..20 parse (18 was changed, 21 is cut in half and is no JSON)
        self.assertEqual(seqs_of(self.out(p)), list(range(1, 21)))
        for line in lines[:17]:
            self.assertNotIn("[unverified]", line)
        for line in lines[17:]:
            self.assertTrue(line.endswith("  [unverified]"), line)
        self.assertEqual(lines[15], self.EXPECTED[16])

    def test_broken_chain_json(self):
        where = self.journal(break_prev=5)
        p = self.audit("show", "--journal", self.path, "--json")
        self.assertBroken(p, where, 5, "prev mismatch")
        self.assertEqual(len(self.out(p).splitlines()), 21)

    def test_missing_file(self):
        p = self.audit("show", "--journal", self.path)
        self.assertEqual(p.returncode, 1)
        self.assertIn("cannot open", self.one_error_line(p))

    def test_controls_are_neutralised(self):
        recs = mj.simple_scenario(2)
        recs.append(mj.notification(mj.ts("09:05:00"), "firing",
                                    labels={"alertname": "X\x1b[2J", "pod": "a\nb\u009b"}))
        recs.append({"ts": mj.ts("09:06:00"), "type": "config_rejected", "incident": "",
                     "error": "line one\nline two\r\x07"})
        self.journal(recs)
        p = self.audit("show", "--journal", self.path)
        self.assertEqual(p.returncode, 0, p)
        out = self.out(p)
        self.assertEqual(len(out.splitlines()), 4)
        for bad in ("\x1b", "\r", "\x07", "\u009b"):
            self.assertNotIn(bad, out)
        self.assertIn("X?[2J firing", out)
        self.assertIn("configuration rejected: line one?line two??", out)

    def test_bad_since_is_a_usage_error(self):
        self.journal()
        p = self.audit("show", "--journal", self.path, "--since", "yesterday")
        self.assertEqual(p.returncode, 2)
        self.assertIn("--since 'yesterday' is not an RFC 3339 time", self.one_error_line(p))


class ReportTest(AuditTestCase):
    def report(self, incident=INC):
        return self.audit("report", "--journal", self.path, "--incident", incident)

    def section(self, md, title):
        """The text of section '## title' up to the next '## '."""
        start = md.index("\n## %s\n" % title) + len(title) + 5
        end = md.find("\n## ", start)
        return md[start:end if end >= 0 else len(md)]

    def test_report(self):
        self.journal()
        p = self.report()
        self.assertEqual(p.returncode, 0, p)
        self.assertEqual(p.stderr, b"")
        md = self.out(p)
        self.assertTrue(md.startswith("# Incident inc-7f3a9c — checkout-error-rate\n"), md[:80])
        heads = [l for l in md.splitlines() if l.startswith("## ")]
        self.assertEqual(heads, ["## Summary", "## Timeline", "## Alert values", "## Decisions",
                                 "## Actions", "## Notifications",
                                 "## Acknowledgements and approvals", "## Change record"])
        self.assertTrue(md.endswith(
            "\nJournal: 15 records for this incident, chain verified (seq 3..19)\n"), md[-200:])

    def test_summary(self):
        self.journal()
        s = self.section(self.out(self.report()), "Summary")
        for want in ("- **Rule:** `checkout-error-rate`",
                     "- **Alert:** RollbackErrorRate",
                     '- **Group:** `{service="checkout"}`',
                     "- **State at the end:** `resolved`",
                     "- **Rollback verdict:** `effective` — resolved within 10m of the rollback",
                     "- **First alert:** 2026-11-21T10:00:00.000Z (startsAt of the first "
                     "firing alert)",
                     "- **Time to rollback:** 1m30s (first alert → first action started)",
                     "- **Time to resolve:** 5m00s (first alert → resolved)",
                     "- **Acknowledged:** alice via link at `+3m00s` 2026-11-21T10:03:00.000Z",
                     "- **Approved:** no",
                     "- **Episodes:** 1"):
            self.assertIn(want + "\n", s)

    def test_timeline(self):
        self.journal()
        t = self.section(self.out(self.report()), "Timeline")
        rows = [l for l in t.splitlines() if l.startswith("| ")]
        self.assertEqual(rows[0], "| Time | Timestamp (UTC) | Seq | Type | What |")
        self.assertEqual(len(rows), 1 + 15)
        self.assertEqual(rows[1], "| +30s | 2026-11-21T10:00:30.000Z | 3 | notification | "
                                  'RollbackErrorRate firing {service="checkout", '
                                  'severity="critical"} (fingerprint 3c5b6a1d2e4f7a8b) |')
        self.assertIn("| +1m00s | 2026-11-21T10:01:00.000Z | 7 | decision |", t)
        self.assertIn("| +1m30s | 2026-11-21T10:01:30.000Z | 8 | action_started | action 1 "
                      "(http) started: PATCH http://flags.internal/api/flags/checkout-v2 |", t)
        self.assertIn("| +1m32s | 2026-11-21T10:01:32.760Z | 11 | action_finished |", t)
        self.assertIn("| +3m00s | 2026-11-21T10:03:00.000Z | 16 | ack | acknowledged by alice "
                      "via link |", t)
        self.assertIn("| +5m00s | 2026-11-21T10:05:00.001Z | 18 | resolved |", t)

    def test_values_and_decisions(self):
        self.journal()
        md = self.out(self.report())
        v = self.section(md, "Alert values")
        self.assertIn("- `+30s` 2026-11-21T10:00:30.001Z — `0.052 > 0.01` (annotations.value "
                      "must be above 0.01 to act), decision `pending`\n", v)
        self.assertIn("`0.061 > 0.01`", v)
        d = self.section(md, "Decisions")
        self.assertIn("- `+1m00s` 2026-11-21T10:01:00.000Z — `acting` (episode 1, state "
                      "`acting`, trigger `firing_for`): running 2 action(s)\n", d)

    def test_actions_and_output(self):
        self.journal()
        a = self.section(self.out(self.report()), "Actions")
        self.assertIn("### Action 1 (http), episode 1\n\n"
                      "- Request: `PATCH http://flags.internal/api/flags/checkout-v2`\n"
                      "- Started: `+1m30s` 2026-11-21T10:01:30.000Z\n"
                      "- Finished: `+1m30s` 2026-11-21T10:01:30.250Z, after 250ms\n"
                      "- Result: `ok`, HTTP status 200\n", a)
        self.assertIn("### Action 2 (exec), episode 1\n\n"
                      "- Command: `deploy/rollback.sh checkout --reason 'error rate'`\n"
                      "- Started: `+1m30s` 2026-11-21T10:01:30.260Z\n"
                      "- Finished: `+1m32s` 2026-11-21T10:01:32.760Z, after 2.5s\n"
                      "- Result: `ok`, exit code 0\n"
                      "- Incident state after: `rolled_back`\n"
                      "- Output (100 bytes):\n\n", a)
        # The ``` inside the output cannot close the block: the fence is longer.
        self.assertIn("````text\n" + mj.ACTION_OUTPUT + "````\n", a)

    def test_notifications_and_acks(self):
        self.journal()
        md = self.out(self.report())
        n = self.section(md, "Notifications")
        self.assertIn("- `+1m33s` 2026-11-21T10:01:33.500Z — slack sent (id n-1, HTTP 200, 1 "
                      "attempt(s))\n", n)
        self.assertIn("pagerduty failed (id n-2, HTTP 503, 3 attempt(s)): service unavailable",
                      n)
        a = self.section(md, "Acknowledgements and approvals")
        self.assertIn("- `+3m00s` 2026-11-21T10:03:00.000Z — acknowledged by alice via link\n",
                      a)

    def test_change_record(self):
        # What an auditor samples, from the records that carry it: the
        # rules digest from config_loaded, the value and threshold from the
        # decision, generatorURL from the notification, the rule and its
        # mode from the acting decision, the verdict from incident_state.
        self.journal()
        c = self.section(self.out(self.report()), "Change record")
        self.assertEqual(c, (
            "\nPer episode, what the journal holds for change management: the rule set that "
            "decided, the alert evidence, who or what authorised the action, and how it was "
            "verified.\n\n"
            "### Episode 1\n\n"
            "- **Change:** rule `checkout-error-rate`, group `{service=\"checkout\"}`: 2 "
            "action(s) started, results `ok`, `ok`\n"
            "- **Rule file digest:** `%s` (rules `rules/`, 3 rule(s), loaded at `-1m59s` "
            "2026-11-21T09:58:00.100Z, seq 2, dry-run off)\n"
            "- **Alert evidence:** `0.061 > 0.01` (annotations.value, threshold: above 0.01); "
            "alert RollbackErrorRate, fingerprint `3c5b6a1d2e4f7a8b`, firing since "
            "2026-11-21T10:00:00.000Z, generatorURL "
            "`http://prometheus.example:9090/graph?g0.expr=x`\n"
            "- **Authorised by:** the rule `checkout-error-rate` in mode `auto` (acts without a "
            "human): decision `acting` at `+1m00s` 2026-11-21T10:01:00.000Z, seq 7, trigger "
            "`firing_for`\n"
            "- **Verification:** `effective` — resolved within 10m of the rollback (at "
            "`+5m00s` 2026-11-21T10:05:00.002Z, seq 19)\n\n"
            "---\n\nJournal: 15 records for this incident, chain verified (seq 3..19)\n")
            % ("ab" * 32))

    def test_change_record_approved_and_held(self):
        fp = "fp-pay-1"
        labels = {"alertname": "PayErrors", "service": "pay"}
        inc = {"incident": "inc-pay", "rule": "pay-errors"}
        value = {"from": "labels.ratio", "value": 0.2, "above": 0.1}
        ts = mj.ts
        records = [
            {"ts": ts("09:00:00"), "type": "config_loaded", "rules_path": "rules/", "rules": 3,
             "rules_digest": "cd" * 32, "dry_run": False, "reload": False},
            {"ts": ts("09:30:00"), "type": "config_loaded", "rules_path": "rules/", "rules": 4,
             "rules_digest": "ef" * 32, "dry_run": False, "reload": True},
            mj.notification(ts("10:00:10"), "firing", fingerprint=fp, labels=labels),
            dict(inc, ts=ts("10:00:10", 1), type="decision", fingerprint=fp,
                 outcome="awaiting_approval", reason="mode approve", episode=1,
                 state="awaiting_approval", group={"service": "pay"}, labels=labels,
                 value=value),
            dict(inc, ts=ts("10:02:00"), type="approve", by="carol", via="slack"),
            dict(inc, ts=ts("10:02:00", 1), type="decision", fingerprint="", outcome="acting",
                 reason="approved by carol: running the actions", episode=1, state="acting",
                 group={"service": "pay"}, trigger="approved"),
            dict(inc, ts=ts("10:02:01"), type="action_started", episode=1, index=0,
                 action="exec", argv=["undo"]),
            dict(inc, ts=ts("10:02:02"), type="action_finished", episode=1, index=0,
                 action="exec", result="error", exit_code=3, duration_ms=1000, output=""),
            {"ts": ts("10:03:00"), "type": "config_loaded", "rules_path": "other/",
             "rules": 1, "rules_digest": "99" * 32, "dry_run": True, "reload": True},
            mj.notification(ts("10:20:00"), "firing", fingerprint=fp, labels=labels,
                            starts=ts("10:19:00")),
            dict(inc, ts=ts("10:20:00", 1), type="decision", fingerprint=fp, outcome="held",
                 reason="target in cooldown", episode=2, state="held",
                 group={"service": "pay"}, labels=labels, value=dict(value, value=0.3)),
        ]
        self.journal(records)
        p = self.report("inc-pay")
        self.assertEqual(p.returncode, 0, p)
        c = self.section(self.out(p), "Change record")
        self.assertIn(
            "### Episode 1\n\n"
            "- **Change:** rule `pay-errors`, group `{service=\"pay\"}`: 1 action(s) started, "
            "results `error`\n"
            "- **Rule file digest:** `%s` (rules `rules/`, 4 rule(s), reloaded at `-30m00s` "
            "2026-11-21T09:30:00.000Z, seq 2, dry-run off)\n"
            "- **Alert evidence:** `0.2 > 0.1` (labels.ratio, threshold: above 0.1); alert "
            "PayErrors, fingerprint `fp-pay-1`, firing since 2026-11-21T10:00:00.000Z, "
            "generatorURL `http://prometheus.example:9090/graph?g0.expr=x`\n"
            "- **Authorised by:** approver carol via slack at `+2m00s` "
            "2026-11-21T10:02:00.000Z, seq 5\n"
            "- **Verification:** none journaled (the rule has no verify.within, or it had not "
            "ended)\n\n" % ("ef" * 32), c)
        self.assertIn(
            "### Episode 2\n\n"
            "- **Change:** rule `pay-errors`, group `{service=\"pay\"}`: no action ran\n"
            "- **Rule file digest:** `%s` (rules `other/`, 1 rule(s), reloaded at `+3m00s` "
            "2026-11-21T10:03:00.000Z, seq 9, dry-run on)\n"
            "- **Alert evidence:** `0.3 > 0.1` (labels.ratio, threshold: above 0.1); alert "
            "PayErrors, fingerprint `fp-pay-1`, firing since 2026-11-21T10:19:00.000Z, "
            "generatorURL `http://prometheus.example:9090/graph?g0.expr=x`\n"
            "- **Authorised by:** nobody: no action was decided (last decision `held` at "
            "`+20m00s` 2026-11-21T10:20:00.001Z, seq 11)\n"
            "- **Verification:** nothing to verify: no action ran\n\n" % ("99" * 32), c)

    def test_unknown_incident(self):
        self.journal()
        p = self.report("inc-nope")
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stdout, b"")
        self.assertEqual(self.one_error_line(p),
                         "rollbackd: audit: %s: no records for incident 'inc-nope'" % self.path)

    def test_broken_chain(self):
        where = self.journal(tamper=18)
        p = self.report()
        self.assertBroken(p, where, 18, "hash mismatch")
        md = self.out(p)
        self.assertIn("| 17 | notification |", md)
        self.assertNotIn("*(unverified)*", md.split("| 17 | notification |")[1].split("\n")[0])
        self.assertIn("*(unverified)* |\n", md.split("| 18 | resolved |")[1].split("\n")[0]
                      + "\n")
        last = md.rstrip("\n").splitlines()[-1]
        self.assertTrue(last.startswith("**Warning:** Journal: 15 records for this incident "
                                        "(seq 3..19), but the chain is NOT verified: "), last)
        self.assertIn("record seq 18: hash mismatch", last)

    def test_second_episode_approval_and_unfinished_action(self):
        inc = {"incident": INC, "rule": mj.RULE}
        recs = mj.incident_scenario() + [
            mj.notification(mj.ts("11:00:00"), "firing", starts=mj.ts("10:59:00")),
            dict(inc, ts=mj.ts("11:00:00", 1), type="decision", fingerprint=mj.FINGERPRINT,
                 outcome="awaiting_approval", reason="mode approve", episode=2,
                 state="awaiting_approval"),
            {"ts": mj.ts("11:02:00"), "type": "approve", "incident": INC, "by": "carol",
             "via": "slack"},
            dict(inc, ts=mj.ts("11:02:00", 5), type="decision", fingerprint="",
                 outcome="acting", reason="approved", episode=2, state="acting",
                 trigger="approved"),
            dict(inc, ts=mj.ts("11:02:01"), type="action_started", episode=2, index=0,
                 action="exec", argv=["deploy/rollback.sh", "checkout"]),
        ]
        self.journal(recs)
        p = self.report()
        self.assertEqual(p.returncode, 0, p)
        md = self.out(p)
        s = self.section(md, "Summary")
        self.assertIn("- **Episodes:** 2\n", s)
        self.assertIn("- **Approved:** carol via slack at `+1h02m00s` 2026-11-21T11:02:00.000Z\n",
                      s)
        self.assertIn("- **State at the end:** `acting`\n", s)
        a = self.section(md, "Actions")
        self.assertIn("### Action 1 (exec), episode 2\n", a)
        self.assertIn("- Result: not journaled as finished", a)
        self.assertIn("approved by carol via slack", self.section(md, "Acknowledgements and "
                                                                     "approvals"))

    def test_big_output_is_trimmed_and_escaped(self):
        out = "\x1b[31mred\x1b[0m\n" + "y" * (100 * 1024) + "\n"
        recs = [
            {"ts": mj.ts("10:00:00"), "type": "action_started", "incident": "i", "rule": "r",
             "episode": 1, "index": 0, "action": "exec", "argv": ["x"]},
            {"ts": mj.ts("10:00:05"), "type": "action_finished", "incident": "i", "rule": "r",
             "episode": 1, "index": 0, "action": "exec", "result": "failed", "exit_code": 3,
             "duration_ms": 5000, "output": out, "error": "exit status 3"},
        ]
        self.journal(recs)
        p = self.report("i")
        self.assertEqual(p.returncode, 0, p)
        md = self.out(p)
        self.assertNotIn("\x1b", md)
        self.assertIn("```text\n\\x1b[31mred\\x1b[0m\nyyy", md)
        self.assertIn("- Result: `failed`, exit code 3\n- Error: exit status 3\n", md)
        # two ESC bytes print as four characters each: 6 more output bytes
        shown = 64 * 1024 - 2 * 3
        self.assertTrue("*(output trimmed: the first %d of %d bytes are shown)*"
                        % (shown, len(out)) in md, md[-300:])
        self.assertIn("- **First alert:** 2026-11-21T10:00:00.000Z (no alert recorded: first "
                      "record)", md)
        block = md.split("```text\n")[1].split("\n```\n")[0]
        self.assertLessEqual(len(block.encode()), 64 * 1024)

    def test_markdown_in_records_is_escaped(self):
        recs = [{"ts": mj.ts("10:00:00"), "type": "decision", "incident": "i", "rule": "r|x",
                 "outcome": "held", "reason": "<img src=x> | *bold* [l](http://e)",
                 "state": "held"}]
        self.journal(recs)
        md = self.out(self.report("i"))
        self.assertIn("\\<img src=x> \\| \\*bold\\* \\[l\\](http://e)", md)
        self.assertNotIn("<img", md.replace("\\<img", ""))


class UsageTest(AuditTestCase):
    def test_usage_errors(self):
        cases = [
            [],
            ["frobnicate", "--journal", "x"],
            ["verify"],
            ["verify", "--journal"],
            ["verify", "--journal", "x", "--json"],
            ["verify", "--journal", "x", "--incident", "i"],
            ["verify", "--journal", "x", "extra"],
            ["show", "--journal", "x", "--no-such-flag"],
            ["report", "--journal", "x"],
            ["report", "--journal", "x", "--incident", ""],
            ["report", "--journal", "x", "--incident", "i", "--since", "2026-01-01T00:00:00Z"],
        ]
        for args in cases:
            p = self.audit(*args)
            self.assertEqual(p.returncode, 2, (args, p))
            self.assertEqual(p.stdout, b"", args)
            self.assertTrue(p.stderr.decode().startswith("rollbackd: audit: "), (args, p))

    def test_help(self):
        for args in (["--help"], ["verify", "--help"], ["report", "-h"]):
            p = self.audit(*args)
            self.assertEqual(p.returncode, 0, (args, p))
            self.assertIn("rollbackd audit verify --journal FILE", self.out(p))
        p = run_cli(["--help"])
        self.assertIn("audit verify --journal FILE", self.out(p))
        self.assertIn("audit report --journal FILE --incident ID", self.out(p))


if __name__ == "__main__":
    unittest.main()
