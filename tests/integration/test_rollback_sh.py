"""deploy/rollback.sh against tests/e2e/fake_kubectl.sh (issue 15).

The fake keeps a deployment's revision history like a cluster does
(`rollout undo --to-revision=N` renumbers N to the top), so these tests
assert the exact kubectl calls and the history afterwards: a known previous
revision is used as is, otherwise the revision before the current one is
pinned first, and a second run changes nothing. Also through rollbackd: a
recorded change's previous_revision reaches the script as
ROLLBACKD_CHANGE_PREVIOUS_REVISION.

Python 3 standard library only.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

import harness
from harness import SCALE, Server, rfc3339
from test_engine import alert

SCRIPT = os.path.join(harness.SRC, "deploy", "rollback.sh")
FAKE = os.path.join(harness.SRC, "tests", "e2e", "fake_kubectl.sh")


class RollbackScriptTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="rollback-sh-")
        self.bin = os.path.join(self.tmp, "bin")
        os.makedirs(os.path.join(self.bin, "kubectl.state"))
        shutil.copy2(FAKE, os.path.join(self.bin, "kubectl"))
        self.log = os.path.join(self.bin, "kubectl.log")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def history(self, name, revs, ns="default"):
        with open(os.path.join(self.bin, "kubectl.state", "%s_%s.revisions" % (ns, name)), "w") as f:
            f.write(" ".join(str(r) for r in revs) + "\n")

    def revs(self, name, ns="default"):
        with open(os.path.join(self.bin, "kubectl.state", "%s_%s.revisions" % (ns, name))) as f:
            return [int(x) for x in f.read().split()]

    def run_script(self, *args, env=None):
        e = {"PATH": self.bin + ":/usr/bin:/bin", "ROLLBACKD_INCIDENT": "inc-test"}
        e.update(env or {})
        return subprocess.run([SCRIPT] + list(args), capture_output=True, text=True, env=e,
                              timeout=30 * SCALE)

    def calls(self):
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return [l.rstrip("\n").split("\t")[2] for l in f if l.strip()]

    def undo_calls(self):
        return [c for c in self.calls() if " rollout undo " in " " + c + " "]

    def test_pinned_previous_revision_and_second_run_is_harmless(self):
        self.history("checkout", [3, 4, 5])
        r = self.run_script("checkout")
        self.assertEqual(r.returncode, 0, r)
        self.assertIn("deployment/checkout in default: revision 5 -> 4", r.stdout)
        self.assertEqual(self.undo_calls(),
                         ["-n default rollout undo deployment/checkout --to-revision=4"])
        self.assertEqual(self.revs("checkout"), [3, 5, 6])
        self.assertIn("-n default annotate deployment/checkout --overwrite "
                      "rollbackd.io/rolled-back-revision=6 rollbackd.io/rolled-back-to=4 "
                      "rollbackd.io/incident=inc-test", self.calls())
        r = self.run_script("checkout")
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.stdout.strip(),
                         "rollback.sh: deployment/checkout is still at revision 6, which an "
                         "earlier rollback produced; nothing to do")
        self.assertEqual(len(self.undo_calls()), 1)
        self.assertEqual(self.revs("checkout"), [3, 5, 6])

    def test_previous_revision_from_the_change(self):
        self.history("pay", [1, 2, 3, 4], ns="shop")
        r = self.run_script("pay", env={"ROLLBACKD_CHANGE_PREVIOUS_REVISION": "2",
                                        "ROLLBACKD_LABEL_NAMESPACE": "shop"})
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(self.undo_calls(), ["-n shop rollout undo deployment/pay --to-revision=2"])
        self.assertEqual(self.revs("pay", ns="shop"), [1, 3, 4, 5])
        # the argument wins over the environment
        self.history("cart", [1, 2, 3])
        r = self.run_script("cart", "1", env={"ROLLBACKD_CHANGE_PREVIOUS_REVISION": "2"})
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(self.undo_calls()[-1],
                         "-n default rollout undo deployment/cart --to-revision=1")

    def test_refusals(self):
        r = self.run_script("checkout", env={"ROLLBACKD_NAMESPACE": "a b"})
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stderr.strip(),
                         "rollback.sh: refusing namespace 'a b' (expected [A-Za-z0-9._-]+)")
        r = self.run_script("checkout", env={"ROLLBACKD_NAMESPACE": "-x"})
        self.assertEqual(r.returncode, 2)
        r = self.run_script("-rf")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stderr.strip(),
                         "rollback.sh: refusing service name '-rf' (expected [A-Za-z0-9._-]+)")
        r = self.run_script("checkout", "4; rm")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stderr.strip(),
                         "rollback.sh: refusing revision '4; rm' (expected a deployment "
                         "revision number)")
        self.history("gone", [5, 6])
        r = self.run_script("gone", "2")
        self.assertEqual(r.returncode, 4)
        self.assertEqual(r.stderr.strip(),
                         "rollback.sh: revision 2 is not in the history of deployment/gone "
                         "(revisions: 5 6)")
        self.history("single", [1])
        r = self.run_script("single")
        self.assertEqual(r.returncode, 4)
        self.assertEqual(r.stderr.strip(),
                         "rollback.sh: deployment/single has only revision 1; nothing to roll "
                         "back to")
        self.assertEqual(self.undo_calls(), [])
        before = len(self.calls())
        r = self.run_script("checkout", "3", env={"ROLLBACKD_DRY_RUN": "1"})
        self.assertEqual(r.returncode, 0)
        self.assertEqual(r.stdout.strip(), "rollback.sh: dry-run: would run: kubectl -n default "
                         "rollout undo deployment/checkout --to-revision=3")
        self.assertEqual(len(self.calls()), before, "a dry run calls no kubectl")

    def test_through_rollbackd_with_a_recorded_change(self):
        self.history("web", [7, 8, 9])
        srv = Server(config={"dry_run": False}, env={"PATH": self.bin + ":/usr/bin:/bin"})
        try:
            with open(os.path.join(srv.rules_dir, "r.json"), "w") as f:
                json.dump({"rules": [{
                    "name": "undo", "matchers": ['alertname="Bad"'], "group_by": ["service"],
                    "actions": [{"type": "exec", "argv": [SCRIPT, "{{labels.service}}"],
                                 "timeout": "30s"}]}]}, f)
            srv.start()
            r = srv.request("POST", "/v1/changes", headers={"Content-Type": "application/json"},
                            body=json.dumps({"target": "service=web", "revision": "9",
                                             "previous_revision": "7", "source": "ci",
                                             "at": rfc3339(delta_s=-300)}).encode())
            self.assertEqual(r.status, 202, r)
            r = srv.post_alerts(harness.make_payload(alerts=[alert({"alertname": "Bad",
                                                                     "service": "web"})]))
            self.assertEqual(r.json()["decisions"][0]["outcome"], "acting", r.json())
            end = time.monotonic() + 20 * SCALE
            while time.monotonic() < end and not any("rollout status" in c for c in self.calls()):
                time.sleep(0.05)
            self.assertEqual(self.undo_calls(),
                             ["-n default rollout undo deployment/web --to-revision=7"])
            self.assertEqual(self.revs("web"), [8, 9, 10])
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()


if __name__ == "__main__":
    unittest.main()
