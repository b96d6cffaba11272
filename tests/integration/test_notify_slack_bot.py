"""Slack bot mode through the whole daemon (SPEC §9, issue 15): the
incident's living message is the thread root (chat.postMessage, then
chat.update); each step - an action started, finished with its exit, the
acknowledgement - is a reply in its thread (thread_ts = the root's ts), and
only failures are also broadcast to the channel (reply_broadcast). Replies
wait until the root's ts is known (a rate-limited root holds them), the
root is known again after a restart, and a step with no root to reply to is
journaled as notify_failed. The stand-in (slack_api.py) checks every body
against Slack's documented fields and limits.
"""

import json
import os
import re
import unittest
import urllib.parse

from harness import Server, make_payload
from slack_api import SlackAPI
from test_ack import LINKS_KEY, link_query
from test_journal import read_journal, verify_chain

BOT_TOKEN = "xoxb-1234-5678-R0LLBACKD-bot-token"


class SlackBotTest(unittest.TestCase):
    def setUp(self):
        self.api = SlackAPI(BOT_TOKEN)
        self.srv = None

    def tearDown(self):
        if self.srv:
            self.srv.cleanup()
        self.api.close()

    def start(self, actions, srv=None, prometheus=None, **rule_extra):
        api = self.api
        extra = {"prometheus": {"url": prometheus}} if prometheus else {}
        self.srv = srv or Server(config=lambda s: dict(extra, **{
            "dry_run": False,
            "public_url": "https://rollbackd.example.com",
            "auth": {"links": {"secret": s.secret("links", LINKS_KEY), "ttl": "1h"}},
            "notify": {"slack": {"bot_token": s.secret("bot", BOT_TOKEN),
                                 "channel": api.channel, "api_url": api.url}},
        }))
        if srv is None:
            rule = {"name": "bot-rule", "matchers": ['alertname="RollbackErrorRate"'],
                    "group_by": ["service"], "actions": actions, "notify": ["slack"]}
            rule.update(rule_extra)
            with open(os.path.join(self.srv.rules_dir, "r.json"), "w") as f:
                json.dump({"rules": [rule]}, f)
        self.srv.start()
        return self.srv

    def fire(self, service="checkout"):
        r = self.srv.post_alerts(make_payload(n=1, service=service))
        self.assertEqual(r.status, 200, r)
        return r.json()["decisions"][0]["incident"]

    def ack(self, inc, by="alice"):
        q, _, _ = link_query("ack", inc)
        r = self.srv.request("POST", "/v1/ack/" + inc,
                             body=(q + "&by=" + urllib.parse.quote(by)).encode(),
                             content_type="application/x-www-form-urlencoded")
        self.assertEqual(r.status, 200, r)

    def journal(self):
        return verify_chain(read_journal(self.srv.state_dir))

    def shape(self, replies):
        """Replies with their variable parts (durations) masked."""
        return [(re.sub(r", \d+\.\d s\)", ", N s)", t), b) for t, b in replies]

    def test_steps_are_replies_in_the_incident_thread(self):
        self.start([{"type": "exec", "argv": ["/bin/true"], "timeout": "10s"},
                    {"type": "exec", "argv": ["/bin/sh", "-c", "echo boom >&2; exit 3"],
                     "timeout": "10s"}])
        inc = self.fire()
        api = self.api
        api.wait(lambda: len(api.roots()) == 1 and len(api.replies(api.roots()[0])) >= 4,
                 "four replies under one root")
        root = api.roots()[0]
        first = api.got("chat.postMessage")[0]["body"]
        self.assertNotIn("thread_ts", first)
        self.assertIn(inc, json.dumps(first))
        api.wait(lambda: any(c["body"].get("ts") == root for c in api.got("chat.update")),
                 "the root updated to action_failed")
        self.ack(inc)
        api.wait(lambda: len(api.replies(root)) == 5, "the acknowledgement's reply")
        self.assertEqual(self.shape(api.replies(root)), [
            ("Action 1 of 2 started: exec /bin/true", False),
            ("Action 1 of 2 finished: ok (exit 0, N s)", False),
            ("Action 2 of 2 started: exec /bin/sh -c echo boom &gt;&amp;2; exit 3", False),
            ("Action 2 of 2 failed: failed (exit 3, N s)\nboom\n", True),
            ("acknowledged by alice", False),
        ])
        # one living message: every other call edits the root
        self.assertEqual(api.roots(), [root])
        self.assertEqual({c["body"]["ts"] for c in api.got("chat.update")}, {root})
        self.assertEqual(api.invalid, [])
        self.srv.stop()
        recs = self.journal()
        steps = [r for r in recs if r["type"] == "notify_intent" and r["event"] == "step"]
        self.assertEqual([r["notice"]["step"] for r in steps],
                         ["action_started", "action_finished", "action_started",
                          "action_failed", "acknowledged"])
        sent = {r["id"]: r for r in recs if r["type"] == "notify_sent"}
        self.assertEqual(sorted(sent[r["id"]]["slack_reply_ts"] for r in steps),
                         sorted(api.messages[root]["replies"]))
        self.assertNotIn(BOT_TOKEN, "\n".join(json.dumps(r) for r in recs))

    def test_replies_wait_for_the_root(self):
        # the root is rate-limited twice: no reply may go out before it
        self.api.plan["chat.postMessage"] = [("ratelimited", 1), ("ratelimited", 1)]
        self.start([{"type": "exec", "argv": ["/bin/true"], "timeout": "10s"}])
        self.fire()
        api = self.api
        api.wait(lambda: len(api.roots()) == 1 and len(api.replies(api.roots()[0])) == 2,
                 "two replies under the root")
        posts = api.got("chat.postMessage")
        self.assertEqual([c["answer"] for c in posts[:3]],
                         [("ratelimited", 1), ("ratelimited", 1), "ok"])
        self.assertTrue(all("thread_ts" not in c["body"] for c in posts[:3]))
        root = api.roots()[0]
        self.assertTrue(all(c["body"]["thread_ts"] == root for c in posts[3:]))
        self.assertEqual(self.shape(api.replies(root)), [
            ("Action 1 of 1 started: exec /bin/true", False),
            ("Action 1 of 1 finished: ok (exit 0, N s)", False)])
        self.assertEqual(api.invalid, [])

    def test_the_thread_is_known_after_a_restart(self):
        srv = self.start([{"type": "exec", "argv": ["/bin/true"], "timeout": "10s"}])
        inc = self.fire()
        api = self.api
        api.wait(lambda: len(api.roots()) == 1 and len(api.replies(api.roots()[0])) == 2,
                 "two replies under the root")
        root = api.roots()[0]
        api.wait(lambda: any(c["body"].get("ts") == root for c in api.got("chat.update")),
                 "the root updated to rolled_back")
        srv.stop()
        srv.lines, srv.logs = [], []
        self.start(None, srv=srv)
        n_updates = len(api.got("chat.update"))
        self.ack(inc, by="bob")
        api.wait(lambda: len(api.replies(root)) == 3, "the acknowledgement's reply")
        self.assertEqual(api.replies(root)[2], ("acknowledged by bob", False))
        api.wait(lambda: len(api.got("chat.update")) > n_updates, "the root updated")
        self.assertEqual(api.roots(), [root])
        self.assertEqual({c["body"]["ts"] for c in api.got("chat.update")}, {root})
        self.assertEqual(api.invalid, [])

    def test_a_step_without_a_root_is_journaled_failed(self):
        self.api.plan["chat.postMessage"] = [("error", "not_in_channel")]
        self.start([{"type": "exec", "argv": ["/bin/true"], "timeout": "10s"}])
        inc = self.fire()
        self.srv.wait_log(lambda l: l.get("msg") == "actions finished")
        api = self.api
        # the root failed for good; the failed action's steps are not sent
        # anywhere, and the rolled_back notice posts a new living message
        api.wait(lambda: len(api.roots()) == 1, "the rolled_back notice's message")
        self.srv.stop()
        recs = self.journal()
        steps = {r["id"] for r in recs if r["type"] == "notify_intent" and r["event"] == "step"}
        failed = [r for r in recs if r["type"] == "notify_failed" and r["id"] in steps]
        self.assertEqual(len(steps), 2)
        self.assertEqual([r["error"] for r in failed],
                         ["slack: no message to reply to (the incident's first notice was "
                          "not delivered)"] * 2)
        first = [r for r in recs if r["type"] == "notify_failed" and r["id"] not in steps]
        self.assertEqual([(r["incident"], r["error"]) for r in first],
                         [(inc, "slack: not_in_channel")])
        self.assertEqual(api.replies(api.roots()[0]), [])

    def verified(self, values):
        from test_verify import FakePrometheus, vector
        prom = FakePrometheus([(200, vector(v), 0) for v in values])
        self.addCleanup(prom.close)
        self.start([{"type": "exec", "argv": ["/bin/true"], "timeout": "10s"}],
                   prometheus="http://127.0.0.1:%d/" % prom.port,
                   verify={"within": "2s", "query": 'err_ratio{service="{{labels.service}}"}',
                           "below": 0.01, "for": "300ms", "interval": "100ms"})
        self.fire()
        api = self.api
        api.wait(lambda: len(api.roots()) == 1 and len(api.replies(api.roots()[0])) == 3,
                 "the verification's reply")
        return api.replies(api.roots()[0])[2]

    def test_an_effective_rollback_is_a_quiet_reply(self):
        text, broadcast = self.verified(["0.001"])
        self.assertFalse(broadcast)
        self.assertEqual(text, "verify.query: every series below 0.01 for 300ms")
        self.assertEqual(self.api.invalid, [])

    def test_an_ineffective_rollback_is_broadcast(self):
        text, broadcast = self.verified(["0.2"])
        self.assertTrue(broadcast)
        # how many evaluations fit in "within" depends on the timer's pace
        self.assertRegex(text, r"^The rollback did not fix it: verify\.query: the condition "
                               r"did not hold for 'for' \(\d+ evaluations\)$")
        self.assertEqual(self.api.invalid, [])

    def test_webhook_mode_gets_no_steps(self):
        # the same rule with a webhook: one message per state change, no steps
        from test_notify import Recorder
        rec = Recorder()
        self.addCleanup(rec.close)
        srv = Server(config=lambda s: {
            "dry_run": False,
            "notify": {"slack": {"webhook_url": s.secret(
                "hook", "http://127.0.0.1:%d/services/T0/B0/XYZ" % rec.port)}},
        })
        rule = {"name": "hook-rule", "matchers": ['alertname="RollbackErrorRate"'],
                "group_by": ["service"], "notify": ["slack"],
                "actions": [{"type": "exec", "argv": ["/bin/true"], "timeout": "10s"}]}
        with open(os.path.join(srv.rules_dir, "r.json"), "w") as f:
            json.dump({"rules": [rule]}, f)
        self.start(None, srv=srv)
        self.fire()
        srv.wait_log(lambda l: l.get("msg") == "actions finished")
        rec.wait("/services", 2)
        srv.stop()
        recs = self.journal()
        self.assertEqual([r["event"] for r in recs if r["type"] == "notify_intent"],
                         ["trigger", "rolled_back"])


if __name__ == "__main__":
    unittest.main()
