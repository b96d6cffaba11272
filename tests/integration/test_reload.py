"""SIGHUP reload and SIGTERM (issue 6) against the real binary.

A valid set decides from the next notification on, without dropping
incidents or the action that is running; an invalid set is refused, logged
and journaled while the old set keeps working; what cannot change in a
running process (listen, state_dir, workers) is refused the same way.
SIGTERM lets a running action finish within the grace period.
"""

import json
import os
import re
import signal
import time
import unittest

from harness import SCALE, Server, make_payload
from test_journal import read_journal, verify_chain


def rule(name, alertname, argv, **over):
    r = {"name": name, "matchers": ['alertname="%s"' % alertname], "group_by": ["service"],
         "mode": "auto", "actions": [{"type": "exec", "timeout": "30s", "argv": argv}]}
    r.update(over)
    return r


class ReloadTest(unittest.TestCase):
    def setUp(self):
        self.srv = Server(config={"dry_run": False})
        self.ran = os.path.join(self.srv.tmp, "ran.txt")
        self.write([rule("first", "RollbackErrorRate", self.argv("first", sleep=1))])
        self.srv.start()

    def tearDown(self):
        self.srv.cleanup()

    def argv(self, tag, sleep=0):
        return ["/bin/sh", "-c", 'sleep %s; echo "%s $ROLLBACKD_INCIDENT" >> "$0"' % (sleep, tag),
                self.ran]

    def write(self, rules, raw=None):
        with open(os.path.join(self.srv.rules_dir, "rules.json"), "w") as f:
            f.write(raw if raw is not None else json.dumps({"rules": rules}))

    def hup_and_wait(self, msg):
        mark = self.srv.log_mark()
        self.srv.proc.send_signal(signal.SIGHUP)
        line = self.srv.wait_log(lambda l: l.get("msg") == msg, start=mark, timeout=10 * SCALE)
        self.assertIsNotNone(line, "no %r log line after SIGHUP:\n%s"
                             % (msg, self.srv.stderr_text()[-2000:]))
        return line

    def runs(self):
        if not os.path.exists(self.ran):
            return []
        with open(self.ran) as f:
            return [l.split()[0] for l in f if l.strip()]

    def test_valid_reload_keeps_incidents_and_running_action(self):
        r = self.srv.post_alerts(make_payload(n=1, service="a"))
        self.assertEqual(r.json()["decisions"][0]["outcome"], "acting")
        inc = r.json()["decisions"][0]["incident"]
        # While the first rule's action sleeps, replace the rule set.
        self.write([rule("second", "RollbackErrorRate", self.argv("second"))])
        self.hup_and_wait("reloaded")
        # The running action finishes; its incident is still there.
        deadline = time.monotonic() + 10 * SCALE
        while time.monotonic() < deadline and not self.runs():
            time.sleep(0.05)
        self.assertEqual(self.runs(), ["first"])
        got = self.srv.request("GET", "/v1/incidents/" + inc)
        self.assertEqual(got.status, 200)
        self.assertEqual(got.json()["rule"], "first")
        # New notifications are decided by the new set.
        r = self.srv.post_alerts(make_payload(n=1, service="b"))
        d = r.json()["decisions"][0]
        self.assertEqual((d["rule"], d["outcome"]), ("second", "acting"))
        self.srv.stop()
        recs = verify_chain(read_journal(self.srv.state_dir))
        loaded = [x for x in recs if x["type"] == "config_loaded"]
        self.assertEqual([x["reload"] for x in loaded], [False, True])
        self.assertNotEqual(loaded[0]["rules_digest"], loaded[1]["rules_digest"])

    def test_invalid_rules_are_refused_and_old_set_keeps_working(self):
        self.write(None, raw='{"rules": [{"name": "broken", "matchers": ["alertname=~\\"(\\""]}]}')
        line = self.hup_and_wait("reload refused; the running configuration stays")
        self.assertIn("rules.json", line["error"])
        r = self.srv.post_alerts(make_payload(n=1, service="c"))
        self.assertEqual(r.json()["decisions"][0]["rule"], "first")
        self.srv.stop()
        recs = verify_chain(read_journal(self.srv.state_dir))
        rejected = [x for x in recs if x["type"] == "config_rejected"]
        self.assertEqual(len(rejected), 1)
        self.assertIn("rules.json", rejected[0]["error"])

    def test_listen_change_is_refused(self):
        cfg = dict(self.srv.config)
        cfg["listen"] = "127.0.0.1:1"
        with open(self.srv.config_path, "w") as f:
            json.dump(cfg, f)
        line = self.hup_and_wait("reload refused; the running configuration stays")
        self.assertEqual(line["error"], "listen cannot change without a restart")
        self.assertEqual(self.srv.request("GET", "/healthz").status, 200)

    def test_keys_read_only_at_start_are_refused_by_name(self):
        for key, value, name in [("limits", {"max_body_bytes": 4096}, "limits.max_body_bytes"),
                                 ("log_level", "warn", "log_level"),
                                 ("journal", {"snapshot_records": 5},
                                  "journal.snapshot_records"),
                                 ("notify", {"pagerduty": {"routing_key": self.srv.secret(
                                     "pd", "pd-key-0123456789abcdef")}},
                                  "notify.pagerduty.routing_key")]:
            cfg = dict(self.srv.config)
            cfg[key] = value
            with open(self.srv.config_path, "w") as f:
                json.dump(cfg, f)
            line = self.hup_and_wait("reload refused; the running configuration stays")
            self.assertEqual(line["error"], "%s cannot change without a restart" % name)
        self.assertEqual(self.srv.request("GET", "/healthz").status, 200)

    def test_sigterm_lets_the_running_action_finish(self):
        r = self.srv.post_alerts(make_payload(n=1, service="d"))
        self.assertEqual(r.json()["decisions"][0]["outcome"], "acting")
        self.assertIsNotNone(self.srv.wait_log(lambda l: l.get("msg") == "action started"))
        self.assertEqual(self.srv.stop(), 0)
        self.assertEqual(self.runs(), ["first"])
        recs = verify_chain(read_journal(self.srv.state_dir))
        fin = [x for x in recs if x["type"] == "action_finished"]
        self.assertEqual([x["result"] for x in fin], ["ok"])


class LinkSecretReloadTest(unittest.TestCase):
    """SIGHUP with a new auth.links secret: the links rollbackd sends in Slack
    from then on verify (notify signs with the secret the API checks)."""

    OLD_KEY = "links-0LD-secret-before-reload"
    NEW_KEY = "links-N3W-secret-after-reload"

    def setUp(self):
        from test_notify import SLACK_URL_PATH, Recorder
        self.slack_path = SLACK_URL_PATH
        self.rec = Recorder()
        rec = self.rec
        self.srv = Server(config=lambda s: {
            "dry_run": False,
            "public_url": "https://rollbackd.example.com",
            "auth": {"links": {"secret": s.secret("links", self.OLD_KEY), "ttl": "1h"}},
            "notify": {"slack": {"webhook_url": s.secret(
                "slack", "http://127.0.0.1:%d%s" % (rec.port, SLACK_URL_PATH))}},
        })
        with open(os.path.join(self.srv.rules_dir, "rules.json"), "w") as f:
            json.dump({"rules": [dict(rule("links", "RollbackErrorRate", ["/bin/true"]),
                                      notify=["slack"])]}, f)
        self.srv.start()

    def tearDown(self):
        self.srv.cleanup()
        self.rec.close()

    def slack_link(self, inc, n):
        """The ack link for inc in the n-th Slack message, as a local path."""
        msgs = self.rec.wait(self.slack_path, n)
        found = re.findall(r"https://rollbackd\.example\.com(/v1/ack/%s\?[^\"\s>|]+)" % inc,
                           json.dumps([json.loads(m["body"]) for m in msgs]))
        self.assertTrue(found, "no ack link for %s in Slack messages" % inc)
        return found[-1].replace("\\u0026", "&")

    def test_links_sent_after_the_reload_verify(self):
        r = self.srv.post_alerts(make_payload(n=1, service="before"))
        before = r.json()["decisions"][0]["incident"]
        old_link = self.slack_link(before, 1)
        self.assertEqual(self.srv.request("GET", old_link).status, 200)

        self.srv.secret("links", self.NEW_KEY)
        mark = self.srv.log_mark()
        self.srv.proc.send_signal(signal.SIGHUP)
        self.assertIsNotNone(self.srv.wait_log(lambda l: l.get("msg") == "reloaded",
                                               start=mark, timeout=10 * SCALE))

        r = self.srv.post_alerts(make_payload(n=1, service="after"))
        after = r.json()["decisions"][0]["incident"]
        link = self.slack_link(after, 2)
        page = self.srv.request("GET", link)
        self.assertEqual(page.status, 200, page.text)
        self.assertIn('<button type="submit">Acknowledge</button>', page.text)
        path, query = link.split("?", 1)
        done = self.srv.request("POST", path, body=(query + "&by=alice").encode(),
                                content_type="application/x-www-form-urlencoded")
        self.assertEqual(done.status, 200, done.text)
        self.assertIn("acknowledged by alice", done.text)
        # A link signed with the old secret no longer verifies.
        self.assertEqual(self.srv.request("GET", old_link).status, 401)


if __name__ == "__main__":
    unittest.main()
