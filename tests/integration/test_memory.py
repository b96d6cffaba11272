"""Memory bounds (issue 12): GET /v1/incidents pages (limit, before, state,
the Link header, exact 400s) and limits.max_incidents (eviction order, the
held decision when nothing can go, tombstoned episodes, replay) against the
real binary.

Python 3 standard library only.
"""

import json
import os
import re
import urllib.parse

import harness
from harness import ServerTestCase, am_fingerprint, make_payload, rfc3339

LINK_RE = re.compile(r'^<(/v1/incidents\?[^>]*)>; rel="next"$')


def alert(service, alertname="Watch", status="firing", starts=None):
    labels = {"alertname": alertname, "service": service}
    return {
        "status": status,
        "labels": labels,
        "annotations": {"value": "0.5"},
        "startsAt": starts or rfc3339(delta_s=-60),
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else rfc3339(),
        "fingerprint": am_fingerprint(labels),
    }


def resolved_of(a):
    r = dict(a)
    r["status"] = "resolved"
    r["endsAt"] = rfc3339()
    return r


RULES = [
    {"name": "watch", "matchers": ["alertname=\"Watch\""], "mode": "notify",
     "group_by": ["service"]},
    {"name": "act", "matchers": ["alertname=\"Act\""], "group_by": ["service"],
     "cooldown": "1h", "actions": [{"type": "exec", "argv": ["/bin/true"]}]},
]


class MemoryCase(ServerTestCase):
    EXTRA = {"dry_run": False}

    @classmethod
    def setUpClass(cls):
        cls.CONFIG = lambda s: cls._config(s)
        super().setUpClass()

    @classmethod
    def _config(cls, s):
        with open(os.path.join(s.rules_dir, "rules.json"), "w") as f:
            json.dump({"rules": RULES}, f)
        return json.loads(json.dumps(cls.EXTRA))

    def decide(self, *alerts):
        p = make_payload(alerts=list(alerts))
        p["status"] = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
        obj = self.assertAccepted(self.post(p), len(alerts))
        return obj["decisions"]

    def ids(self, path):
        r = self.get(path)
        self.assertEqual(r.status, 200, r)
        return [x["id"] for x in r.json()], r.headers.get("link")


class PaginationTest(MemoryCase):
    def test_pages_cursor_and_filter(self):
        alerts = [alert("p%d" % i) for i in range(7)]
        ds = self.decide(*alerts)
        inc = [d["incident"] for d in ds]
        self.assertEqual([d["outcome"] for d in ds], ["notify_only"] * 7)
        newest = inc[::-1]
        got, link = self.ids("/v1/incidents")
        self.assertEqual(got, newest)
        self.assertIsNone(link, "one page: no Link")

        got, link = self.ids("/v1/incidents?limit=3")
        self.assertEqual(got, newest[0:3])
        self.assertEqual(link, '</v1/incidents?before=%s&limit=3>; rel="next"' % newest[2])
        got, link = self.ids(LINK_RE.match(link).group(1))
        self.assertEqual(got, newest[3:6])
        self.assertEqual(link, '</v1/incidents?before=%s&limit=3>; rel="next"' % newest[5])
        got, link = self.ids(LINK_RE.match(link).group(1))
        self.assertEqual(got, newest[6:7])
        self.assertIsNone(link)
        got, link = self.ids("/v1/incidents?limit=1000")
        self.assertEqual(got, newest)

        self.decide(resolved_of(alerts[1]), resolved_of(alerts[4]))
        got, link = self.ids("/v1/incidents?state=resolved&limit=1")
        self.assertEqual(got, [inc[4]])
        self.assertEqual(link, '</v1/incidents?before=%s&limit=1&state=resolved>; rel="next"'
                         % inc[4])
        got, link = self.ids(LINK_RE.match(link).group(1))
        self.assertEqual(got, [inc[1]])
        self.assertIsNone(link)
        r = self.get("/v1/incidents?state=notify_only")
        obj = self.assertError(r, 400, "invalid_parameter")
        self.assertEqual(obj["message"], "state: not an incident state (pending, acting, ...)",
                         "an outcome is not a state")
        got, _ = self.ids("/v1/incidents?state=held&before=" + inc[6])
        self.assertEqual(got, [i for i in newest[1:] if i not in (inc[1], inc[4])])

    def test_bad_parameters_are_400(self):
        limit_msg = "limit: expected an integer from 1 to 1000"
        for q in ("limit=0", "limit=1001", "limit=abc", "limit=", "limit=-1", "limit=10000",
                  "limit=1.5"):
            r = self.get("/v1/incidents?" + q)
            obj = self.assertError(r, 400, "invalid_parameter")
            self.assertEqual(obj["message"], limit_msg, q)
        r = self.get("/v1/incidents?before=xyz")
        obj = self.assertError(r, 400, "invalid_parameter")
        self.assertEqual(obj["message"],
                         "before: expected an incident id (inc- and 16 lowercase hex digits)")
        r = self.get("/v1/incidents?before=inc-0000000000000000")
        obj = self.assertError(r, 400, "invalid_parameter")
        self.assertEqual(obj["message"],
                         "before: no incident inc-0000000000000000 in memory (evicted, or "
                         "never seen); list again without before")
        r = self.get("/v1/incidents?state=bogus")
        obj = self.assertError(r, 400, "invalid_parameter")
        self.assertEqual(obj["message"], "state: not an incident state (pending, acting, ...)")


class MaxIncidentsTest(MemoryCase):
    EXTRA = {"dry_run": False, "limits": {"max_incidents": 5}}

    def gauge(self, name):
        return harness.metric(self.server.metrics(), name)

    def test_eviction_held_tombstone_and_replay(self):
        w = [alert("w%d" % i) for i in range(7)]
        ids = [d["incident"] for d in self.decide(*w[0:5])]
        self.decide(resolved_of(w[0]))
        self.decide(resolved_of(w[1]))
        self.assertEqual(self.gauge("rollbackd_incidents_in_memory"), 5)
        d5 = self.decide(w[5])[0]
        self.assertEqual(d5["outcome"], "notify_only")
        got, _ = self.ids("/v1/incidents")
        self.assertEqual(got, [d5["incident"]] + ids[4:0:-1], "w0 resolved first: it went")
        d6 = self.decide(w[6])[0]
        got, _ = self.ids("/v1/incidents")
        self.assertEqual(got, [d6["incident"], d5["incident"]] + ids[4:1:-1])
        self.assertEqual(self.get("/v1/incidents/" + ids[0]).status, 404)
        self.assertEqual(self.gauge("rollbackd_incidents_in_memory"), 5)

        # all five open: nothing can go, the new incident is held and kept
        a0 = self.decide(alert("a0", alertname="Act"))[0]
        self.assertEqual(a0["outcome"], "held")
        self.assertEqual(a0["reason"], "limits.max_incidents (5) reached and no resolved "
                         "incident is past its cooldown to make room: held")
        self.assertEqual(self.gauge("rollbackd_incidents_over_limit_total"), 1)
        self.assertEqual(self.gauge("rollbackd_incidents_in_memory"), 6)

        # w0's very firing again: a repeat of its evicted episode 1
        late = self.decide(w[0])[0]
        self.assertEqual(late["incident"], ids[0])
        self.assertEqual(late["outcome"], "repeat")
        self.assertEqual(late["reason"], "episode 1 already resolved: a late or replayed "
                         "firing of it")
        self.assertEqual(self.get("/v1/incidents/" + ids[0]).json()["episode"], 1)
        before, _ = self.ids("/v1/incidents")
        self.assertEqual(len(before), 7)

        # a restart replays the journal with the same limit: the same incidents
        srv = self.server
        self.assertEqual(srv.stop(), 0)
        srv.proc = None
        srv.lines, srv.logs = [], []
        srv.start()
        after, _ = self.ids("/v1/incidents")
        self.assertEqual(after, before)
        self.assertEqual(self.gauge("rollbackd_incidents_in_memory"), 7)

        # a new firing of w0 is its episode 2; one held incident resolving
        # makes room again
        self.decide(resolved_of(w[2]))
        again = dict(w[0])
        again["startsAt"] = rfc3339()
        d = self.decide(again)[0]
        self.assertEqual(d["outcome"], "notify_only", d)
        self.assertEqual(self.get("/v1/incidents/" + ids[0]).json()["episode"], 2)


class ConsoleIndexTest(MemoryCase):
    """The console's journal index keeps the records of limits.max_incidents
    incidents, like the engine: a page whose records left it says so."""
    EXTRA = {"dry_run": False, "limits": {"max_incidents": 3}}

    def page(self, inc, status):
        r = self.get("/ui/incidents/" + inc)
        self.assertEqual(r.status, status, r.text)
        return r.text

    def test_index_keeps_max_incidents(self):
        a = [alert("ci-a%d" % i) for i in range(3)]
        old = [d["incident"] for d in self.decide(*a)]
        self.decide(*[resolved_of(x) for x in a])
        b = [alert("ci-b%d" % i) for i in range(3)]
        new = [d["incident"] for d in self.decide(*b)]
        # the engine evicted the resolved a's for the b's; the index keeps the b's
        html = self.page(old[0], 404)
        self.assertIn("rollbackd knows no incident with that id in memory, and the console&#39;s "
                      "journal index, which keeps the newest 3 incidents at most, does not hold it: "
                      "its records, if it had any, are older than the index. rollbackd audit "
                      "show --incident %s reads the whole journal." % old[0], html)
        for inc in new:
            html = self.page(inc, 200)
            self.assertIn('<li class="decision">', html)
            self.assertNotIn("older than", html)
        # one more, over the limit in the engine (the b's still fire): the
        # engine keeps b0, the index no longer has its records
        c = [d["incident"] for d in self.decide(alert("ci-c0"))]
        html = self.page(c[0], 200)
        self.assertIn('<li class="decision">', html)
        html = self.page(new[0], 200)
        self.assertIn("This incident's timeline is older than the console's journal index, "
                      "which keeps the records of the newest 3 incidents at most; <code>"
                      "rollbackd audit show --incident</code> reads the whole journal.", html)
        self.assertNotIn('<li class="decision">', html)
        self.assertNotIn("indexed (yet)", html)
        for inc in new[1:]:
            self.assertIn('<li class="decision">', self.page(inc, 200))
