"""A journal written before the alert digest changed (issue 13) still replays.

tests/data/journal/pre_v2_digest/journal.jsonl was written by rollbackd
before the exact-repeat digest of a notification record became a hash of
the alert's fields (it used to be BLAKE2b-128 of the record's JSON): one
notification of tests/data/am_firing_3.json, its three notification records
and three no_match decisions, then the same notification again (an exact
repeat, journaled as nothing).

Started on that journal, today's binary verifies and replays it; the old
digests never equal the new ones, so the first repeat after the upgrade is
journaled once more (three notification records with new digests and their
decisions), and from then on, across a restart too, a repeat journals
nothing.
"""

import json
import os
import shutil
import unittest

import harness
from harness import Server
from test_journal import read_journal, verify_chain

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLE = os.path.join(HERE, "..", "data", "journal", "pre_v2_digest", "journal.jsonl")
PAYLOAD = os.path.join(HERE, "..", "data", "am_firing_3.json")

OLD_DIGESTS = {
    "a7c5d3acfbe8752b": "44244d25028601718db243700b0a40c5",
    "147ce63e86b8ca89": "f87190ed2cc8218d4313d9fd54534ab4",
    "06366056a743ab9a": "f0859e1d21872e898d5777d967156baf",
}


class DigestUpgrade(unittest.TestCase):
    def setUp(self):
        self.srv = Server()
        shutil.copy(SAMPLE, os.path.join(self.srv.state_dir, "journal.jsonl"))
        with open(PAYLOAD, "rb") as f:
            self.body = f.read()

    def tearDown(self):
        self.srv.cleanup()

    def post(self, srv=None):
        r = (srv or self.srv).request("POST", "/v1/alerts", self.body)
        self.assertEqual(r.status, 200, r.text)
        got = r.json()
        self.assertEqual(got["status"], "accepted")
        self.assertEqual([(d["fingerprint"], d["outcome"]) for d in got["decisions"]],
                         [(fp, "no_match") for fp in OLD_DIGESTS])

    def records(self):
        return verify_chain(read_journal(self.srv.state_dir))

    def test_old_journal_replays_and_first_repeat_is_journaled_once(self):
        old = self.records()
        self.assertEqual(len(old), 8)
        self.assertEqual({r["fingerprint"]: r["digest"] for r in old
                          if r["type"] == "notification"}, OLD_DIGESTS)

        self.srv.start()
        self.post()
        recs = self.records()
        added = [r for r in recs[len(old):] if r["type"] in ("notification", "decision")]
        self.assertEqual([(r["type"], r["fingerprint"]) for r in added],
                         [(t, fp) for fp in OLD_DIGESTS for t in ("notification", "decision")])
        new = {r["fingerprint"]: r["digest"] for r in added if r["type"] == "notification"}
        for fp, d in new.items():
            self.assertRegex(d, "^[0-9a-f]{32}$")
            self.assertNotEqual(d, OLD_DIGESTS[fp])
        # The record itself still holds the alert as before.
        first = next(r for r in added if r["type"] == "notification")
        with open(PAYLOAD) as f:
            sent = json.load(f)["alerts"][0]
        self.assertEqual(first["labels"], sent["labels"])
        self.assertEqual(first["annotations"], sent["annotations"])
        self.assertEqual(first["status"], "firing")

        # An exact repeat now journals nothing ...
        n = len(self.records())
        self.post()
        self.assertEqual(len(self.records()), n)
        self.assertEqual(self.srv.stop(), 0)

        # ... and after a restart that replays both definitions, neither.
        again = Server(config={"state_dir": self.srv.state_dir})
        self.addCleanup(again.cleanup)
        again.start()
        n = len(self.records())
        self.post(again)
        recs = self.records()
        self.assertEqual([r["type"] for r in recs[n:]
                          if r["type"] in ("notification", "decision")], [])


if __name__ == "__main__":
    unittest.main()
