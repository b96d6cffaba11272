"""Authentication of POST /v1/alerts (SPEC §5): rollbackd HMAC, GitHub HMAC,
bearer and basic auth; 401 messages; secrets never leak."""

import base64
import json
import re
import time

import harness
from harness import (ServerTestCase, github_signature, make_payload, metric,
                     rollbackd_signature)

HMAC1 = harness.SECRET_MARK + "-hmac-one-4f9a1c"
HMAC2 = harness.SECRET_MARK + "-hmac-two-b7e203"
BEARER = harness.SECRET_MARK + "-bearer-d41d8c"
BASIC_PW = harness.SECRET_MARK + "-basicpw-99aa01"
GH = harness.SECRET_MARK + "-github-5eed77"

NO_CREDS = "no credentials presented"
INVALID = "invalid credentials"
STALE = "signature timestamp outside the allowed window"
MALFORMED = "malformed signature header"


def basic(user, pw):
    return "Basic " + base64.b64encode(("%s:%s" % (user, pw)).encode()).decode()


class AuthMixin:
    def unauthorized(self, headers, message, payload=None, sign=None):
        """POST with exactly these headers; want 401 with message; then a good one."""
        body = harness.body_of(payload if payload is not None else make_payload(1))
        if callable(headers):
            headers = headers(body)
        before = self.server.metrics()
        r = self.post(body, headers=headers, auth=False)
        obj = self.assertError(r, 401, "unauthorized")
        if message is not None:
            self.assertEqual(obj["message"], message, obj)
        after = self.server.metrics()
        self.assertEqual(metric(after, "rollbackd_webhooks_total", result="unauthorized")
                         - metric(before, "rollbackd_webhooks_total", result="unauthorized"), 1)
        self.assertEqual(metric(after, "rollbackd_webhooks_total", result="accepted"),
                         metric(before, "rollbackd_webhooks_total", result="accepted"))
        self.assertStillServing()
        return obj

    def ok(self, headers, payload=None):
        body = harness.body_of(payload if payload is not None else make_payload(1))
        if callable(headers):
            headers = headers(body)
        r = self.post(body, headers=headers, auth=False)
        self.assertAccepted(r)

    def test_secrets_absent_from_metrics(self):
        text = self.server.metrics_text()
        harness.check_no_secrets(self.server, text, "/metrics")

    def test_probes_need_no_auth(self):
        self.assertEqual(self.get("/healthz").status, 200)
        self.assertEqual(self.get("/readyz").status, 200)
        self.assertEqual(self.get("/metrics").status, 200)

    def test_no_unauthenticated_warning(self):
        w = [l for l in self.server.logs if l.get("level") == "warn" and re.search(
             r"no auth|unauthenticated|without auth", str(l.get("msg", "")), re.I)]
        self.assertEqual(w, [], "auth is configured; no 'no authentication' warning expected")


class HmacAuthTest(AuthMixin, ServerTestCase):
    """Two HMAC secrets (rotation), max_skew 5m, github scheme off."""

    CONFIG = staticmethod(lambda s: {"auth": {"hmac": {
        "secrets": [s.secret("hmac1", HMAC1), s.secret("hmac2", HMAC2)],
        "max_skew": "5m", "allow_untimestamped": False}}})

    def auth_headers(self, body):
        return {"X-Rollbackd-Signature": rollbackd_signature(HMAC1, body)}

    def test_signed_first_secret(self):
        self.ok(lambda b: {"X-Rollbackd-Signature": rollbackd_signature(HMAC1, b)})

    def test_signed_second_secret(self):
        self.ok(lambda b: {"X-Rollbackd-Signature": rollbackd_signature(HMAC2, b)})

    def test_several_v1_one_good(self):
        self.ok(lambda b: {"X-Rollbackd-Signature": rollbackd_signature(
            HMAC1, b, extra_v1=["00" * 32, "ab" * 32])})

    def test_several_v1_spaces_and_unknown_keys(self):
        def h(b):
            t = int(time.time())
            good = rollbackd_signature(HMAC2, b, t=t).split(",")[1]
            return {"X-Rollbackd-Signature": "t=%d, v0=deadbeef, v1=%s, %s" % (t, "11" * 32, good)}
        self.ok(h)

    def test_uppercase_hex(self):
        def h(b):
            t, v = rollbackd_signature(HMAC1, b).split(",")
            return {"X-Rollbackd-Signature": t + "," + v.upper().replace("V1=", "v1=")}
        self.ok(h)

    def test_within_skew(self):
        self.ok(lambda b: {"X-Rollbackd-Signature": rollbackd_signature(
            HMAC1, b, t=int(time.time()) - 240)})

    def test_missing(self):
        self.unauthorized({}, NO_CREDS)

    def test_wrong_secret(self):
        self.unauthorized(lambda b: {"X-Rollbackd-Signature": rollbackd_signature(
            "not-the-secret", b)}, INVALID)

    def test_signature_of_other_body(self):
        self.unauthorized(lambda b: {"X-Rollbackd-Signature": rollbackd_signature(
            HMAC1, b + b" ")}, INVALID)

    def test_signature_other_timestamp(self):
        def h(b):
            t = int(time.time())
            sig = rollbackd_signature(HMAC1, b, t=t).split(",")[1]
            return {"X-Rollbackd-Signature": "t=%d,%s" % (t - 1, sig)}
        self.unauthorized(h, INVALID)

    def test_stale_past(self):
        self.unauthorized(lambda b: {"X-Rollbackd-Signature": rollbackd_signature(
            HMAC1, b, t=int(time.time()) - 400)}, STALE)

    def test_stale_future(self):
        self.unauthorized(lambda b: {"X-Rollbackd-Signature": rollbackd_signature(
            HMAC1, b, t=int(time.time()) + 400)}, STALE)

    def test_malformed_headers(self):
        good_mac = "ab" * 32
        now = int(time.time())
        for value in ("garbage", "t=abc,v1=" + good_mac, "v1=" + good_mac, "t=%d" % now,
                      "t=%d,v1=zz" % now, "t=%d,v1=%s" % (now, good_mac[:-2]),
                      "t=%d,t=%d,v1=%s" % (now, now, good_mac), ""):
            with self.subTest(value=value):
                self.unauthorized({"X-Rollbackd-Signature": value},
                                  MALFORMED if value else None)

    def test_github_scheme_disabled(self):
        self.unauthorized(lambda b: {"X-Hub-Signature-256": github_signature(HMAC1, b)}, None)

    def test_bearer_not_configured(self):
        # a bearer token is not a configured scheme here: it cannot authenticate
        self.unauthorized({"Authorization": "Bearer " + HMAC1}, None)

    def test_good_signature_plus_wrong_github(self):
        self.unauthorized(lambda b: {
            "X-Rollbackd-Signature": rollbackd_signature(HMAC1, b),
            "X-Hub-Signature-256": "sha256=" + "00" * 32}, None)

    def test_signature_checked_before_payload(self):
        # a validly signed malformed body is a 400, an unsigned one a 401
        body = b'{"version": "4", "alerts": ['
        r = self.post(body, headers={"X-Rollbackd-Signature": rollbackd_signature(HMAC1, body)},
                      auth=False)
        self.assertError(r, 400, "malformed_json")
        r = self.post(body, auth=False)
        self.assertError(r, 401, "unauthorized", NO_CREDS)
        self.assertStillServing()

    def test_sign_cli_matches_and_is_accepted(self):
        body = json.dumps(make_payload(2)).encode()
        t = int(time.time())
        p = harness.run_cli(["sign", "--secret-file", self.server.secrets_dir + "/hmac2",
                             "--timestamp", str(t)], stdin=body)
        self.assertEqual(p.returncode, 0, p.stderr)
        value = p.stdout.decode().strip()
        self.assertEqual(value, rollbackd_signature(HMAC2, body, t=t))
        self.assertNotIn(HMAC2, p.stdout.decode() + p.stderr.decode())
        r = self.post(body, headers={"X-Rollbackd-Signature": value}, auth=False)
        self.assertAccepted(r, 2)


class GithubAuthTest(AuthMixin, ServerTestCase):
    """allow_untimestamped: X-Hub-Signature-256 over the raw body is accepted."""

    CONFIG = staticmethod(lambda s: {"auth": {"hmac": {
        "secrets": [s.secret("gh", GH)], "allow_untimestamped": True}}})

    def auth_headers(self, body):
        return {"X-Hub-Signature-256": github_signature(GH, body)}

    def test_github_ok(self):
        self.ok(lambda b: {"X-Hub-Signature-256": github_signature(GH, b)})

    def test_rollbackd_scheme_still_ok(self):
        self.ok(lambda b: {"X-Rollbackd-Signature": rollbackd_signature(GH, b)})

    def test_github_wrong(self):
        self.unauthorized(lambda b: {"X-Hub-Signature-256": github_signature("nope", b)}, INVALID)

    def test_github_missing_prefix(self):
        self.unauthorized(lambda b: {"X-Hub-Signature-256": github_signature(GH, b)[7:]}, None)

    def test_github_sha1_prefix(self):
        self.unauthorized(lambda b: {"X-Hub-Signature-256": "sha1=" + "00" * 20}, None)

    def test_missing(self):
        self.unauthorized({}, NO_CREDS)


class BearerBasicAuthTest(AuthMixin, ServerTestCase):
    """Bearer (token from the environment), basic and HMAC all configured."""

    CONFIG = staticmethod(lambda s: {"auth": {
        "hmac": {"secrets": [s.secret("hmac1", HMAC1)]},
        "bearer": {"token": s.env_secret("RBD_TEST_BEARER", BEARER)},
        "basic": {"username": "alertmanager", "password": s.secret("basic.pass", BASIC_PW)}}})

    def auth_headers(self, body):
        return {"Authorization": "Bearer " + BEARER}

    def test_bearer_ok(self):
        self.ok({"Authorization": "Bearer " + BEARER})

    def test_bearer_scheme_case_insensitive(self):
        self.ok({"Authorization": "bearer " + BEARER})

    def test_bearer_wrong(self):
        self.unauthorized({"Authorization": "Bearer " + BEARER + "x"}, INVALID)

    def test_bearer_prefix_of_token(self):
        self.unauthorized({"Authorization": "Bearer " + BEARER[:-1]}, INVALID)

    def test_bearer_empty(self):
        self.unauthorized({"Authorization": "Bearer "}, None)

    def test_basic_ok(self):
        self.ok({"Authorization": basic("alertmanager", BASIC_PW)})

    def test_basic_wrong_password(self):
        self.unauthorized({"Authorization": basic("alertmanager", "wrong")}, INVALID)

    def test_basic_wrong_user(self):
        self.unauthorized({"Authorization": basic("root", BASIC_PW)}, INVALID)

    def test_basic_not_base64(self):
        self.unauthorized({"Authorization": "Basic !!!notbase64"}, None)

    def test_hmac_ok(self):
        self.ok(lambda b: {"X-Rollbackd-Signature": rollbackd_signature(HMAC1, b)})

    def test_unknown_scheme(self):
        self.unauthorized({"Authorization": "Digest username=x"}, None)

    def test_missing(self):
        self.unauthorized({}, NO_CREDS)

    def test_right_bearer_wrong_signature(self):
        self.unauthorized(lambda b: {"Authorization": "Bearer " + BEARER,
                                     "X-Rollbackd-Signature": rollbackd_signature("bad", b)},
                          INVALID)

    def test_right_signature_wrong_bearer(self):
        self.unauthorized(lambda b: {"Authorization": "Bearer nope",
                                     "X-Rollbackd-Signature": rollbackd_signature(HMAC1, b)},
                          INVALID)

    def test_right_bearer_stale_signature(self):
        obj = self.unauthorized(lambda b: {
            "Authorization": "Bearer " + BEARER,
            "X-Rollbackd-Signature": rollbackd_signature(HMAC1, b, t=int(time.time()) - 3600)},
            None)
        self.assertIn(obj["message"], (STALE, INVALID))

    def test_right_bearer_malformed_signature(self):
        obj = self.unauthorized({"Authorization": "Bearer " + BEARER,
                                 "X-Rollbackd-Signature": "t=x"}, None)
        self.assertIn(obj["message"], (MALFORMED, INVALID))

    def test_right_bearer_and_right_signature(self):
        self.ok(lambda b: {"Authorization": "Bearer " + BEARER,
                           "X-Rollbackd-Signature": rollbackd_signature(HMAC1, b)})

    def test_401_messages_do_not_echo_credentials(self):
        r = self.post(make_payload(1), headers={"Authorization": "Bearer " + BEARER + "zz"},
                      auth=False)
        self.assertEqual(r.status, 401)
        self.assertNotIn(BEARER, r.text)


class SecretFileTrailingNewlineTest(AuthMixin, ServerTestCase):
    """A secret file without a trailing newline works the same (and with one,
    the newline is not part of the secret - covered by every other class)."""

    CONFIG = staticmethod(lambda s: {"auth": {"bearer": {
        "token": s.secret("tok", BEARER + "-nonl", newline=False)}}})

    def auth_headers(self, body):
        return {"Authorization": "Bearer " + BEARER + "-nonl"}

    def test_ok(self):
        self.ok(self.auth_headers(b""))

    def test_token_with_newline_rejected(self):
        self.unauthorized({"Authorization": "Bearer " + BEARER + "-nonlx"}, INVALID)


if __name__ == "__main__":
    import unittest
    unittest.main()
