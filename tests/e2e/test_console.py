"""The operator console (SPEC §13, issue 16) in a real browser.

Debian's chromium + chromium-driver + python3-selenium drive /ui/ of the real
binary on loopback: sign in with the api token, see an incident that rolled
back (an exec action, dry_run off, in a temp state_dir), open it, read its
timeline, acknowledge it, approve another by typing its target, pause and
resume. Plain HTTP checks that a forged or missing cookie or CSRF token
changes nothing (exact statuses), that the approve link page asks for the
target too, and that `audit report --html` writes the page as one file
(with the verification chart for verify_sample records).

Screenshots of the list and the incident page are saved under
ROLLBACKD_ARTIFACTS (default: build/artifacts/console).

Runs under /usr/bin/python3 (where Debian's selenium lives) as its own ctest
entry, e2e/console, which sets ROLLBACKD_CONSOLE_TEST=1; the e2e discover
run (another interpreter, maybe without selenium) leaves this module out so
it does not run twice.
"""

import hashlib
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from harness import SCALE, Server, make_alert, make_payload  # noqa: E402
from recorder import Recorder  # noqa: E402

ENABLED = os.environ.get("ROLLBACKD_CONSOLE_TEST") == "1"

API_TOKEN = "console-S3CR3T-api-token"
LINKS_KEY = "links-S3CR3T-key-for-console"
ARTIFACTS = os.environ.get("ROLLBACKD_ARTIFACTS") or os.path.join(
    os.path.dirname(harness.BIN), "artifacts", "console")
CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'")


def load_tests(loader, tests, pattern):
    suite = unittest.TestSuite()
    if ENABLED:
        for case in (ConsoleBrowserTest, ConsoleHttpTest, TokenRotationTest, PaginationTest,
                     ReadOnlyConsoleTest, ApproveLinkTest, ReportHtmlTest):
            suite.addTests(loader.loadTestsFromTestCase(case))
    return suite


def journal_records(state_dir):
    out = []
    names = sorted(n for n in os.listdir(state_dir)
                   if n.startswith("journal.") and n.endswith(".jsonl") and n != "journal.jsonl")
    for n in names + ["journal.jsonl"]:
        p = os.path.join(state_dir, n)
        if os.path.exists(p):
            with open(p) as f:
                out.extend(json.loads(line) for line in f if line.strip())
    return out


def wait_for(pred, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout * SCALE
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def write_rules(srv, marker):
    rules = [
        {"name": "checkout-errors", "description": "error ratio above 1%",
         "matchers": ['alertname="RollbackErrorRate"'], "group_by": ["service"],
         "when": {"value": {"from": "annotations.value", "above": 0.01}}, "mode": "auto",
         "notify": ["slack"],
         "actions": [{"type": "exec", "timeout": "10s",
                      "argv": ["/bin/sh", "-c",
                               'echo "rolled back $0 <b>not bold</b>"; echo x >> "$1"',
                               "{{labels.service}}", marker]}]},
        {"name": "payments-approve", "matchers": ['alertname="PaymentsDown"'],
         "group_by": ["service"], "mode": "approve",
         "actions": [{"type": "exec", "timeout": "10s", "argv": ["true"]}]},
    ]
    with open(os.path.join(srv.rules_dir, "r.json"), "w") as f:
        json.dump({"rules": rules}, f)


def console_server():
    """A server with the api token, links and a Slack webhook (a Recorder,
    stopped when the server's tmp dir is cleaned: srv.slack)."""
    slack = Recorder().start()
    srv = Server(config=lambda s: {
        "dry_run": False,
        "public_url": "http://127.0.0.1",
        "auth": {"api": {"token": s.secret("api", API_TOKEN)},
                 "links": {"secret": s.secret("links", LINKS_KEY), "ttl": "1h"}},
        "notify": {"slack": {"webhook_url": s.secret("slack", slack.url + "/hook")}},
    })
    srv.slack = slack
    cleanup = srv.cleanup

    def cleanup_both():
        try:
            cleanup()
        finally:
            slack.stop()
    srv.cleanup = cleanup_both
    marker = os.path.join(srv.tmp, "ran.txt")
    write_rules(srv, marker)
    srv.start()
    return srv, marker


def fire(srv, alertname, service, value="0.05"):
    r = srv.post_alerts(make_payload(alerts=[make_alert(alertname=alertname, service=service,
                                                        value=value)]))
    assert r.status == 200, r
    return r.json()["decisions"][0]["incident"]


def api_incident(srv, inc):
    r = srv.request("GET", "/v1/incidents/" + inc,
                    headers={"Authorization": "Bearer " + API_TOKEN})
    assert r.status == 200, r
    return r.json()


def paused_metric(srv):
    return harness.metric(srv.metrics(), "rollbackd_paused")


def form(path_fields):
    return urllib.parse.urlencode(path_fields).encode()


class BrowserMixin:
    @classmethod
    def start_browser(cls):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        cls.profile = tempfile.mkdtemp(prefix="rollbackd-chromium-")
        opts = webdriver.ChromeOptions()
        opts.binary_location = "/usr/bin/chromium"
        for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1280,900",
                  "--user-data-dir=" + cls.profile):
            opts.add_argument(a)
        cls.driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
        cls.driver.set_page_load_timeout(30 * SCALE)

    @classmethod
    def stop_browser(cls):
        try:
            cls.driver.quit()
        finally:
            shutil.rmtree(cls.profile, ignore_errors=True)


class ConsoleBrowserTest(unittest.TestCase, BrowserMixin):
    @classmethod
    def setUpClass(cls):
        os.makedirs(ARTIFACTS, exist_ok=True)
        cls.srv, cls.marker = console_server()
        try:
            cls.rolled = fire(cls.srv, "RollbackErrorRate", "checkout")
            cls.awaiting = fire(cls.srv, "PaymentsDown", "payments")
            wait_for(lambda: api_incident(cls.srv, cls.rolled)["state"] == "rolled_back",
                     what="the rollback")
            wait_for(lambda: [r for r in journal_records(cls.srv.state_dir)
                              if r["type"] == "notify_sent" and r["incident"] == cls.rolled],
                     what="the Slack notice")
            cls.start_browser()
        except Exception:
            cls.srv.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.stop_browser()
        finally:
            rc = cls.srv.stop()
            text = cls.srv.stderr_text()
            cls.srv.cleanup()
            assert rc == 0, rc
            assert API_TOKEN not in text, "the api token leaked into the log"

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.srv.port, path)

    def by_css(self, css):
        from selenium.webdriver.common.by import By
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all_css(self, css):
        from selenium.webdriver.common.by import By
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def click(self, css):
        """Click and wait for the next page: form posts and links navigate,
        and Selenium's click does not wait for that."""
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.support.ui import WebDriverWait
        old = self.by_css("html")
        self.by_css(css).click()

        def gone(_):
            # the old page's root is stale once the next page has replaced
            # it; ChromeDriver says so either as StaleElementReference or,
            # mid-navigation, as "Node with given id does not belong to the
            # document" (a plain WebDriverException): both mean gone
            try:
                old.is_enabled()
                return False
            except WebDriverException:
                return True
        WebDriverWait(self.driver, 15 * SCALE).until(gone)

    def sign_in(self, token):
        self.driver.get(self.url("/ui/"))
        self.assertTrue(self.driver.current_url.endswith("/ui/login"), self.driver.current_url)
        box = self.by_css("input[name=token]")
        box.clear()
        box.send_keys(token)
        self.click("form.act button[type=submit]")

    def test_console_end_to_end(self):
        d = self.driver
        # a wrong token: refused, still on the sign-in page, no session cookie
        self.sign_in("not-the-token")
        self.assertIn("That is not the api token.", self.by_css("p.error").text)
        self.assertIsNone(d.get_cookie("rollbackd_session"))
        self.sign_in(API_TOKEN)
        self.assertEqual(d.current_url, self.url("/ui/"))
        cookie = d.get_cookie("rollbackd_session")
        self.assertTrue(cookie["httpOnly"])
        self.assertEqual(cookie["sameSite"], "Strict")
        self.assertEqual(cookie["path"], "/ui/")
        self.assertRegex(cookie["value"], r"^[0-9a-f]{64}$")
        self.assertFalse(cookie["secure"])  # public_url is http here
        self.assertGreater(cookie["expiry"], time.time() + 7 * 3600)

        # the list: newest first, state, target, rule, value vs threshold, ack
        rows = self.all_css("table.incidents tbody tr")
        self.assertEqual(len(rows), 2)
        first, second = [r.find_elements("css selector", "td") for r in rows]
        self.assertEqual(first[0].text, self.awaiting)
        self.assertEqual(second[0].text, self.rolled)
        self.assertEqual(
            [c.text for c in second[1:5]] + [second[6].text],
            ["rolled_back", "service=checkout", "checkout-errors", "0.05 > 0.01", "—"])
        self.assertRegex(second[5].text, r"^\d+s$")
        self.assertEqual(first[1].text, "awaiting_approval")
        self.assertEqual(self.by_css(".banner span").text, "Automatic actions are on.")
        self.assertFalse(self.all_css("script"))
        d.save_screenshot(os.path.join(ARTIFACTS, "console-list.png"))

        # filter by state
        self.click('nav.filter a[href="/ui/?state=rolled_back"]')
        rows = self.all_css("table.incidents tbody tr")
        self.assertEqual([r.find_element("css selector", "td").text for r in rows], [self.rolled])
        self.assertEqual(self.by_css("nav.filter a.on").text, "rolled_back")

        # the incident page and its timeline from the journal
        self.click('a[href="/ui/incidents/%s"]' % self.rolled)
        self.assertEqual(d.current_url, self.url("/ui/incidents/" + self.rolled))
        self.assertEqual(self.by_css("h1 .state").text, "rolled_back")
        facts = dict(zip([e.text for e in self.all_css("dl.facts dt")],
                         [e.text for e in self.all_css("dl.facts dd")]))
        self.assertEqual(facts["Rule"], "checkout-errors")
        self.assertEqual(facts["Target"], "service=checkout")
        self.assertEqual(facts["Value vs threshold"], "0.05 > 0.01")
        self.assertEqual(facts["Acknowledged by"], "—")
        all_items = self.all_css("ol.timeline li")
        items = [i for i in all_items
                 if not i.find_element("css selector", ".type").text.startswith("notify_")]
        types = [i.find_element("css selector", ".type").text for i in items]
        # the target is claimed before the decision, and held for the
        # cooldown once the rollback has run (SPEC §7)
        self.assertEqual(types, ["target_claimed", "decision", "action_started",
                                 "action_finished", "target_claimed"])
        claims = [items[0], items[4]]
        for c in claims:
            self.assertRegex(c.find_element("css selector", ".what").text,
                             r"^target service=checkout held until "
                             r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z \(epoch 1\)$")
        items = items[1:4]
        sent = [i.find_element("css selector", ".what").text for i in all_items
                if i.find_element("css selector", ".type").text == "notify_sent"]
        self.assertTrue(sent, "the Slack delivery is on the timeline")
        self.assertRegex(sent[0], r"^slack sent \(id \S+, HTTP 200, 1 attempt\(s\)\)$")
        self.assertTrue([i for i in all_items
                         if i.find_element("css selector", ".type").text == "notify_intent"])
        self.assertIn("acting — running 1 action(s) (value 0.05 > 0.01)",
                      items[0].find_element("css selector", ".what").text)
        self.assertEqual(
            items[1].find_element("css selector", "pre.cmd").text,
            "/bin/sh -c 'echo \"rolled back $0 <b>not bold</b>\"; echo x >> \"$1\"' "
            "checkout " + self.marker)
        what = items[2].find_element("css selector", ".what").text
        self.assertRegex(what, r"^action 1 \(exec\) ok: exit code 0, \d+(\.\d+)?m?s; "
                               r"incident rolled_back$")
        self.assertEqual(items[2].find_element("css selector", "pre.out").text,
                         "rolled back checkout <b>not bold</b>")
        self.assertFalse(self.all_css("pre.out b"), "action output must be escaped")
        d.save_screenshot(os.path.join(ARTIFACTS, "console-incident.png"))

        # acknowledge it
        self.by_css('input[name=by]').send_keys("alice")
        self.click('form[action$="/ack"] button')
        self.assertEqual(d.current_url, self.url("/ui/incidents/%s?done=ack" % self.rolled))
        self.assertEqual(self.by_css("p.notice").text, "Acknowledged.")
        facts = dict(zip([e.text for e in self.all_css("dl.facts dt")],
                         [e.text for e in self.all_css("dl.facts dd")]))
        self.assertEqual(facts["Acknowledged by"], "alice")
        self.assertFalse(self.all_css('form[action$="/ack"]'))
        self.assertEqual(api_incident(self.srv, self.rolled)["acknowledged_by"], "alice")
        acked = [i.find_element("css selector", ".what").text
                 for i in self.all_css("ol.timeline li")
                 if i.find_element("css selector", ".type").text == "ack"]
        self.assertEqual(acked, ["acknowledged by alice via console"])
        acks = [r for r in journal_records(self.srv.state_dir) if r["type"] == "ack"]
        self.assertEqual([(a["incident"], a["by"], a["via"]) for a in acks],
                         [(self.rolled, "alice", "console")])

        # approve the other one: a wrong target changes nothing and says so
        d.get(self.url("/ui/incidents/" + self.awaiting))
        self.by_css('form[action$="/approve"] input[name=target]').send_keys("service=checkout")
        self.click('form[action$="/approve"] button')
        self.assertEqual(self.by_css("p.error").text,
                         "The target you typed does not match service=payments: nothing was "
                         "approved.")
        self.assertEqual(api_incident(self.srv, self.awaiting)["state"], "awaiting_approval")
        self.assertFalse([r for r in journal_records(self.srv.state_dir)
                          if r["type"] == "approve"])
        box = self.by_css('form[action$="/approve"] input[name=target]')
        box.clear()
        box.send_keys("service=payments")
        self.by_css('form[action$="/approve"] input[name=by]').send_keys("dana")
        self.click('form[action$="/approve"] button')
        self.assertEqual(self.by_css("p.notice").text, "Approved: the rollback actions run now.")
        wait_for(lambda: api_incident(self.srv, self.awaiting)["state"] == "rolled_back",
                 what="the approved rollback")
        approvals = [r for r in journal_records(self.srv.state_dir) if r["type"] == "approve"]
        self.assertEqual([(a["incident"], a["by"], a["via"]) for a in approvals],
                         [(self.awaiting, "dana", "console")])

        # pause and resume
        d.get(self.url("/ui/"))
        self.click(".banner button")
        self.assertEqual(d.current_url, self.url("/ui/?done=pause"))
        self.assertEqual(self.by_css(".banner span").text,
                         "Automatic actions are PAUSED: incidents are held, nothing runs.")
        self.assertEqual(self.by_css(".banner button").text, "Resume")
        self.assertEqual(paused_metric(self.srv), 1)
        self.click(".banner button")
        self.assertEqual(d.current_url, self.url("/ui/?done=resume"))
        self.assertEqual(self.by_css(".banner span").text, "Automatic actions are on.")
        self.assertEqual(paused_metric(self.srv), 0)
        kinds = [(r["type"], r["by"]) for r in journal_records(self.srv.state_dir)
                 if r["type"] in ("pause", "resume")]
        self.assertEqual(kinds, [("pause", "console"), ("resume", "console")])

        # readable on a phone: the table becomes blocks, nothing overflows
        d.set_window_size(390, 844)
        d.get(self.url("/ui/"))
        width = d.execute_script("return document.documentElement.scrollWidth")
        self.assertLessEqual(width, 390)
        d.save_screenshot(os.path.join(ARTIFACTS, "console-list-phone.png"))
        d.set_window_size(1280, 900)

        # sign out: the old cookie no longer works
        old = d.get_cookie("rollbackd_session")["value"]
        self.click('form[action="/ui/logout"] button')
        self.assertTrue(d.current_url.endswith("/ui/login"))
        r = self.srv.request("GET", "/ui/", headers={"Cookie": "rollbackd_session=" + old})
        self.assertEqual(r.status, 303)
        self.assertEqual(r.headers["location"], "/ui/login")


class ConsoleHttpTest(unittest.TestCase):
    """Sessions and CSRF without a browser: exact statuses, nothing changes."""

    @classmethod
    def setUpClass(cls):
        cls.srv, cls.marker = console_server()
        cls.inc = fire(cls.srv, "RollbackErrorRate", "checkout")

    @classmethod
    def tearDownClass(cls):
        rc = cls.srv.stop()
        cls.srv.cleanup()
        assert rc == 0, rc

    def sign_in(self):
        r = self.srv.request("GET", "/ui/login")
        self.assertEqual(r.status, 200)
        nonce = re.search(r"rollbackd_login=([0-9a-f]{64});", r.headers["set-cookie"]).group(1)
        csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', r.text).group(1)
        conn = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=10 * SCALE)
        try:
            conn.request("POST", "/ui/login", body=form({"csrf": csrf, "token": API_TOKEN}),
                         headers={"Cookie": "rollbackd_login=" + nonce,
                                  "Content-Type": "application/x-www-form-urlencoded"})
            r = conn.getresponse()
            r.read()
            self.assertEqual(r.status, 303)
            self.assertEqual(r.getheader("Location"), "/ui/")
            cookies = r.msg.get_all("Set-Cookie")
        finally:
            conn.close()
        session = [c for c in cookies if c.startswith("rollbackd_session=")]
        self.assertEqual(len(session), 1, cookies)
        self.assertRegex(session[0], r"^rollbackd_session=[0-9a-f]{64}; Path=/ui/; "
                                     r"Max-Age=28800; HttpOnly; SameSite=Strict$")
        sid = session[0][len("rollbackd_session="):][:64]
        page = self.srv.request("GET", "/ui/", headers={"Cookie": "rollbackd_session=" + sid})
        self.assertEqual(page.status, 200)
        csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text).group(1)
        return sid, csrf

    def post(self, path, fields, cookie=None):
        h = {"Cookie": "rollbackd_session=" + cookie} if cookie else {}
        return self.srv.request("POST", path, body=form(fields), headers=h,
                                content_type="application/x-www-form-urlencoded")

    def nothing_changed(self):
        recs = journal_records(self.srv.state_dir)
        self.assertFalse([r for r in recs if r["type"] in ("pause", "resume", "ack", "approve")])
        self.assertEqual(paused_metric(self.srv), 0)
        self.assertIsNone(api_incident(self.srv, self.inc)["acknowledged_by"])

    def test_pages_need_a_session(self):
        for path in ("/ui/", "/ui/incidents/" + self.inc):
            for cookie in (None, "rollbackd_session=" + "ab" * 32, "rollbackd_session=short"):
                r = self.srv.request("GET", path, headers={"Cookie": cookie} if cookie else {})
                self.assertEqual(r.status, 303, (path, cookie))
                self.assertEqual(r.headers["location"], "/ui/login")
                self.assertNotIn(self.inc, r.text)
        r = self.srv.request("GET", "/ui/style.css")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers["content-type"], "text/css; charset=utf-8")

    def test_forged_or_missing_cookie_or_csrf_changes_nothing(self):
        sid, csrf = self.sign_in()
        forged_sid = secrets.token_hex(32)
        forged_csrf = secrets.token_hex(32)
        targets = [("/ui/pause", {}), ("/ui/incidents/%s/ack" % self.inc, {"by": "mallory"})]
        for path, fields in targets:
            # no cookie, forged cookie (with the real CSRF token): 401
            for cookie in (None, forged_sid):
                r = self.post(path, dict(fields, csrf=csrf), cookie)
                self.assertEqual(r.status, 401, (path, cookie))
                self.assertIn("Sign in first", r.text)
            # the real session, CSRF token missing or forged: 403
            for c in (None, forged_csrf, ""):
                f = dict(fields) if c is None else dict(fields, csrf=c)
                r = self.post(path, f, sid)
                self.assertEqual(r.status, 403, (path, c))
                self.assertIn("CSRF token is missing or wrong", r.text)
        # a GET never changes anything
        r = self.srv.request("GET", "/ui/pause", headers={"Cookie": "rollbackd_session=" + sid})
        self.assertEqual(r.status, 405)
        self.nothing_changed()
        # and with both right, it does
        r = self.post("/ui/pause", {"csrf": csrf}, sid)
        self.assertEqual(r.status, 303)
        self.assertEqual(r.headers["location"], "/ui/?done=pause")
        self.assertEqual(paused_metric(self.srv), 1)
        r = self.post("/ui/resume", {"csrf": csrf}, sid)
        self.assertEqual(r.status, 303)
        self.assertEqual(paused_metric(self.srv), 0)

    def test_login_form_needs_its_csrf(self):
        r = self.srv.request("POST", "/ui/login", body=form({"token": API_TOKEN}),
                             content_type="application/x-www-form-urlencoded")
        self.assertEqual(r.status, 403)
        self.assertNotIn("rollbackd_session=", r.headers.get("set-cookie", ""))

    def test_headers(self):
        sid, _ = self.sign_in()
        for path in ("/ui/", "/ui/incidents/" + self.inc, "/ui/login"):
            r = self.srv.request("GET", path, headers={"Cookie": "rollbackd_session=" + sid})
            self.assertEqual(r.status, 200, path)
            self.assertEqual(r.headers["content-security-policy"], CSP)
            self.assertEqual(r.headers["x-frame-options"], "DENY")
            self.assertEqual(r.headers["cache-control"], "no-store")
            self.assertIn('<meta name="viewport"', r.text)
            self.assertNotIn("<script", r.text)
        r = self.srv.request("GET", "/ui/incidents/inc-0000000000000000",
                             headers={"Cookie": "rollbackd_session=" + sid})
        self.assertEqual(r.status, 404)


class TokenRotationTest(unittest.TestCase):
    """A reload with another auth.api.token ends the old token's sessions."""

    setUpClass = classmethod(ConsoleHttpTest.setUpClass.__func__)
    tearDownClass = classmethod(ConsoleHttpTest.tearDownClass.__func__)
    sign_in = ConsoleHttpTest.sign_in
    post = ConsoleHttpTest.post

    def test_reload_with_a_new_token_signs_everyone_out(self):
        sid, csrf = self.sign_in()
        with open(os.path.join(self.srv.secrets_dir, "api"), "w") as f:
            f.write("another-S3CR3T-token\n")
        mark = self.srv.log_mark()
        self.srv.proc.send_signal(signal.SIGHUP)
        self.assertIsNotNone(self.srv.wait_log(lambda l: l.get("msg") == "reloaded",
                                               start=mark))
        r = self.srv.request("GET", "/ui/", headers={"Cookie": "rollbackd_session=" + sid})
        self.assertEqual(r.status, 303)
        r = self.post("/ui/pause", {"csrf": csrf}, sid)
        self.assertEqual(r.status, 401)
        self.assertEqual(paused_metric(self.srv), 0)


class PaginationTest(unittest.TestCase):
    """55 incidents: pages of 50, newest first, links between them."""

    sign_in = ConsoleHttpTest.sign_in

    def test_pages(self):
        self.srv = Server(config=lambda s: {"auth": {"api": {"token": s.secret("api", API_TOKEN)}}})
        rule = {"name": "watch", "matchers": ['alertname="Watch"'], "group_by": ["service"],
                "mode": "notify", "actions": []}
        with open(os.path.join(self.srv.rules_dir, "r.json"), "w") as f:
            json.dump({"rules": [rule]}, f)
        try:
            self.srv.start()
            ids = [fire(self.srv, "Watch", "svc-%02d" % i) for i in range(55)]
            sid, _ = self.sign_in()
            h = {"Cookie": "rollbackd_session=" + sid}
            rows = lambda html: re.findall(r'<tr><td><a href="/ui/incidents/([^"]+)"', html)  # noqa
            r = self.srv.request("GET", "/ui/", headers=h)
            self.assertEqual(r.status, 200)
            self.assertEqual(rows(r.text), ids[::-1][:50])
            self.assertIn('<a rel="next" href="/ui/?page=2">Older</a>', r.text)
            self.assertNotIn('rel="prev"', r.text)
            self.assertIn("55 incident(s)", r.text)
            r = self.srv.request("GET", "/ui/?page=2", headers=h)
            self.assertEqual(rows(r.text), ids[::-1][50:])
            self.assertIn('<a rel="prev" href="/ui/?page=1">Newer</a>', r.text)
            self.assertNotIn('rel="next"', r.text)
            states = set(re.findall(r'<span class="state ([a-z_]+)">', r.text))
            self.assertEqual(len(states), 1, states)
            st = states.pop()
            r = self.srv.request("GET", "/ui/?state=" + st + "&page=2", headers=h)
            self.assertEqual(rows(r.text), ids[::-1][50:])
            self.assertIn('href="/ui/?state=%s&amp;page=1">Newer</a>' % st, r.text)
            r = self.srv.request("GET", "/ui/?state=resolved", headers=h)
            self.assertEqual(rows(r.text), [])
            self.assertIn("No incidents.", r.text)
            for bad in ("/ui/?page=0", "/ui/?page=x", "/ui/?state=%3Cscript%3E"):
                self.assertEqual(self.srv.request("GET", bad, headers=h).status, 400, bad)
            self.assertEqual(self.srv.stop(), 0)
        finally:
            self.srv.cleanup()


class ReadOnlyConsoleTest(unittest.TestCase):
    """No api token configured: read-only, loopback only, nothing changes."""

    def test_read_only(self):
        srv = Server(config={"dry_run": False})
        write_rules(srv, os.path.join(srv.tmp, "ran.txt"))
        try:
            srv.start()
            inc = fire(srv, "RollbackErrorRate", "checkout")
            r = srv.request("GET", "/ui/")
            self.assertEqual(r.status, 200)
            self.assertIn("Read-only: no api token is configured", r.text)
            self.assertIn(inc, r.text)
            self.assertNotIn("<form", r.text)
            r = srv.request("GET", "/ui/incidents/" + inc)
            self.assertEqual(r.status, 200)
            self.assertNotIn("<form", r.text)
            # a DNS-rebinding page: loopback peer, foreign Host
            r = srv.request("GET", "/ui/", headers={"Host": "attacker.example"})
            self.assertEqual(r.status, 403)
            self.assertNotIn(inc, r.text)
            for host in ("localhost:%d" % srv.port, "[::1]:%d" % srv.port, "127.0.0.1"):
                self.assertEqual(srv.request("GET", "/ui/", headers={"Host": host}).status,
                                 200, host)
            r = srv.request("POST", "/ui/pause", body=b"csrf=x",
                            content_type="application/x-www-form-urlencoded")
            self.assertEqual(r.status, 403)
            self.assertIn("the console is read-only", r.text)
            self.assertEqual(srv.request("GET", "/ui/login").status, 404)
            self.assertFalse([x for x in journal_records(srv.state_dir) if x["type"] == "pause"])
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()


class ApproveLinkTest(unittest.TestCase):
    """The signed approve link (/v1/ack/{id}) asks for the target too."""

    def test_approve_link_needs_the_target(self):
        import hmac
        srv, marker = console_server()
        try:
            inc = fire(srv, "PaymentsDown", "payments")
            exp = int(time.time()) + 600
            sig = hmac.new(LINKS_KEY.encode(), ("approve:%s:1:%d" % (inc, exp)).encode(),
                           hashlib.sha256).hexdigest()
            q = "action=approve&ep=1&exp=%d&sig=%s" % (exp, sig)
            r = srv.request("GET", "/v1/ack/%s?%s" % (inc, q))
            self.assertEqual(r.status, 200)
            self.assertIn("Type the target, <code>service=payments</code>, to approve", r.text)
            self.assertIn('name="target"', r.text)
            for typed in (None, "service=checkout", "service=Payments"):
                body = q + "&by=eve" + ("" if typed is None else
                                        "&target=" + urllib.parse.quote(typed))
                r = srv.request("POST", "/v1/ack/" + inc, body=body.encode(),
                                content_type="application/x-www-form-urlencoded")
                self.assertEqual(r.status, 400, typed)
                self.assertIn("type the target&#39;s name exactly: service=payments", r.text)
                self.assertIn("nothing was approved", r.text)
            self.assertEqual(api_incident(srv, inc)["state"], "awaiting_approval")
            body = q + "&by=eve&target=" + urllib.parse.quote(" service=payments ")
            r = srv.request("POST", "/v1/ack/" + inc, body=body.encode(),
                            content_type="application/x-www-form-urlencoded")
            self.assertEqual(r.status, 200)
            wait_for(lambda: api_incident(srv, inc)["state"] == "rolled_back", what="rollback")
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()


def chained_journal(path, records):
    """Write records as a journal with a valid hash chain (SPEC §8)."""
    prev = "0" * 64
    with open(path, "w") as f:
        for i, rec in enumerate(records):
            body = {"seq": i + 1}
            body.update(rec)
            body["prev"] = prev
            b = json.dumps(body, separators=(",", ":"))
            h = hashlib.blake2b(b.encode(), digest_size=32).hexdigest()
            f.write(b[:-1] + ',"hash":"%s"}\n' % h)
            prev = h


class ReportHtmlTest(unittest.TestCase, BrowserMixin):
    INC = "inc-00c0ffee00c0ffee"

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="rollbackd-html-")
        ts = lambda s: "2026-11-21T10:%s.000Z" % s  # noqa: E731
        recs = [
            {"ts": ts("00:00"), "type": "decision", "incident": self.INC, "rule": "latency",
             "fingerprint": "f1", "outcome": "acting", "reason": "running 1 action(s)",
             "episode": 1, "state": "acting", "group": {"service": "search<img src=x>"},
             "value": {"from": "annotations.value", "value": 0.9, "above": 0.5}},
            {"ts": ts("00:01"), "type": "action_started", "incident": self.INC,
             "rule": "latency", "episode": 1, "index": 0, "action": "http", "method": "PATCH",
             "url": "http://flags.internal/api/flags/search-v2"},
            {"ts": ts("00:02"), "type": "action_finished", "incident": self.INC,
             "rule": "latency", "episode": 1, "index": 0, "action": "http", "result": "ok",
             "status_code": 204, "duration_ms": 850, "output": "</pre><script>x</script>",
             "incident_state": "rolled_back"},
        ]
        for k, v in enumerate([0.8, 0.6, 0.4, 0.3]):
            recs.append({"ts": ts("%02d:00" % (k + 1)), "type": "verify_sample",
                         "incident": self.INC, "value": v, "below": 0.5})
        recs.append({"ts": ts("06:00"), "type": "incident_state", "incident": self.INC,
                     "state": "effective", "reason": "held below 0.5 for 1m"})
        recs.append({"ts": ts("07:00"), "type": "ack", "incident": self.INC, "by": "bob",
                     "via": "slack"})
        chained_journal(os.path.join(self.tmp, "journal.jsonl"), recs)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_self_contained_page(self):
        r = harness.run_cli(["audit", "report", "--html", "--journal",
                             os.path.join(self.tmp, "journal.jsonl"), "--incident", self.INC])
        self.assertEqual(r.returncode, 0, r.stderr)
        html = r.stdout.decode()
        self.assertTrue(html.startswith("<!DOCTYPE html>"))
        self.assertNotIn("<script", html)
        self.assertNotIn("<img", html)
        self.assertNotIn("<link", html)
        self.assertNotIn("<form", html)
        self.assertNotIn("http-equiv=\"refresh\"", html)
        self.assertIn("<style>", html)
        self.assertIn("&lt;/pre&gt;&lt;script&gt;x&lt;/script&gt;", html)
        self.assertIn("service=search&lt;img src=x&gt;", html)
        self.assertIn("Journal: 9 records for this incident, chain verified (seq 1..9).", html)
        self.assertEqual(html.count("<circle "), 4)
        self.assertIn("<svg class=\"chart\"", html)
        self.assertIn("4 sample(s) over 180s; dashed: the threshold", html)
        path = os.path.join(self.tmp, "report.html")
        with open(path, "w") as f:
            f.write(html)
        # and it renders offline in the browser, chart included
        self.start_browser()
        try:
            from selenium.webdriver.common.by import By
            self.driver.get("file://" + path)
            self.assertEqual(self.driver.find_element(By.CSS_SELECTOR, "h1 .state").text,
                             "effective")
            self.assertEqual(len(self.driver.find_elements(By.CSS_SELECTOR,
                                                           "svg.chart circle")), 4)
            pre = self.driver.find_elements(By.CSS_SELECTOR, "pre.cmd")
            self.assertEqual([p.text for p in pre],
                             ["PATCH http://flags.internal/api/flags/search-v2"])
            self.assertEqual(self.driver.find_element(By.CSS_SELECTOR, "pre.out").text,
                             "</pre><script>x</script>")
            os.makedirs(ARTIFACTS, exist_ok=True)
            self.driver.save_screenshot(os.path.join(ARTIFACTS, "report-html.png"))
        finally:
            self.stop_browser()
        r = harness.run_cli(["audit", "report", "--html", "--journal",
                             os.path.join(self.tmp, "journal.jsonl"), "--incident", "inc-none"])
        self.assertEqual(r.returncode, 1)


if __name__ == "__main__":
    unittest.main()
