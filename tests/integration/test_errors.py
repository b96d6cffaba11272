"""Bad requests to POST /v1/alerts: exact status, JSON error code and a message
that names the field; after each one the server still serves a good request."""

import json
import socket

import harness
from harness import ServerTestCase, make_alert, make_payload, metric


def with_alert(mutate, n=1):
    p = make_payload(n)
    mutate(p)
    return p


class PayloadErrorsTest(ServerTestCase):
    CONFIG = {"limits": {"max_alerts": 5}}

    def bad(self, body, status, code, *words, prefix=None, result=None, **kw):
        before = self.server.metrics()
        r = self.post(body, **kw)
        obj = self.assertError(r, status, code, *words, prefix=prefix)
        if result is not None:
            after = self.server.metrics()
            self.assertEqual(metric(after, "rollbackd_webhooks_total", result=result)
                             - metric(before, "rollbackd_webhooks_total", result=result), 1,
                             "rollbackd_webhooks_total{result=%r} should grow by 1" % result)
            self.assertEqual(metric(after, "rollbackd_webhooks_total", result="accepted"),
                             metric(before, "rollbackd_webhooks_total", result="accepted"))
        self.assertStillServing()
        return obj

    # ---- 400 empty / malformed

    def test_empty_body(self):
        self.bad(b"", 400, "empty_body", result="bad_request")

    def test_whitespace_body(self):
        self.bad(b" \r\n\t\n", 400, "empty_body")

    def test_malformed_json(self):
        self.bad(b'{"version": "4", "alerts": [', 400, "malformed_json",
                 prefix="invalid JSON at line", result="bad_request")

    def test_malformed_json_line_number(self):
        body = b'{\n  "version": "4",\n  "alerts": [}\n}'
        obj = self.bad(body, 400, "malformed_json", prefix="invalid JSON at line 3")
        self.assertRegex(obj["message"], r"^invalid JSON at line 3\b")

    def test_trailing_garbage(self):
        self.bad(json.dumps(make_payload(1)).encode() + b" xyz", 400, "malformed_json",
                 prefix="invalid JSON at line")

    def test_not_utf8(self):
        body = json.dumps(make_payload(1)).encode().replace(b"checkout", b"check\xff\xfeout", 1)
        obj = self.bad(body, 400, "malformed_json", result="bad_request")
        # jansson's column is the offset of the undecodable byte.
        self.assertEqual(obj["message"], "invalid JSON at line 1, column %d: unable to decode "
                         "byte 0xff near '\"check'" % body.index(b"\xff"))

    def test_nul_in_string(self):
        p = make_payload(1)
        fp = p["alerts"][0]["fingerprint"]
        body = json.dumps(p).replace("checkout", "check\\u0000out", 1).encode()
        # issue 12: a NUL inside a label value is accepted (a 4xx would drop the
        # whole group), journaled and decided `invalid`, naming the alert and the field.
        r = self.post(body)
        obj = self.assertAccepted(r, 1)
        self.assertEqual([(d["outcome"], d["reason"]) for d in obj["decisions"]],
                         [("invalid", "alerts[0] (fingerprint %s): labels.service contains "
                           "a NUL byte" % fp)], obj)
        self.assertStillServing()

    def test_deep_nesting(self):
        head = b'{"version":"4","alerts":'
        body = head + b"[" * 100000 + b"]" * 100000 + b"}"
        obj = self.bad(body, 400, "malformed_json", result="bad_request")
        # The 65th '[' is refused (the 64th opens the deepest level allowed).
        self.assertEqual(obj["message"], "invalid JSON at line 1, column %d: nesting deeper "
                         "than 64 near '['" % (len(head) + 64))

    # ---- 400 invalid_payload, naming the field

    def test_body_is_array(self):
        self.bad(b"[]", 400, "invalid_payload", "body", "object", "array", result="bad_request")

    def test_body_is_string(self):
        self.bad(b'"hello"', 400, "invalid_payload", "body", "object")

    def test_version_3(self):
        self.bad(with_alert(lambda p: p.update(version="3")), 400, "invalid_payload",
                 "version", '"4"', '"3"')

    def test_version_number(self):
        self.bad(with_alert(lambda p: p.update(version=4)), 400, "invalid_payload",
                 "version", "string", "number")

    def test_version_missing(self):
        self.bad(with_alert(lambda p: p.pop("version")), 400, "invalid_payload",
                 "version", "missing")

    def test_alerts_object(self):
        self.bad(with_alert(lambda p: p.update(alerts={"0": {}})), 400, "invalid_payload",
                 "alerts", "array", "object")

    def test_alerts_missing(self):
        self.bad(with_alert(lambda p: p.pop("alerts")), 400, "invalid_payload",
                 "alerts", "missing")

    def test_alert_not_object(self):
        self.bad(with_alert(lambda p: p["alerts"].append(42), 2), 400, "invalid_payload",
                 "alerts[2]", "object", "number")

    def test_label_value_number(self):
        self.bad(with_alert(lambda p: p["alerts"][0]["labels"].update(severity=3)), 400,
                 "invalid_payload", "alerts[0].labels.severity", "string", "number")

    def test_label_value_in_second_alert(self):
        self.bad(with_alert(lambda p: p["alerts"][1]["labels"].update(team=None), 3), 400,
                 "invalid_payload", "alerts[1].labels.team", "string")

    def test_labels_array(self):
        self.bad(with_alert(lambda p: p["alerts"][0].update(labels=["a"])), 400,
                 "invalid_payload", "alerts[0].labels", "object", "array")

    def test_annotation_value_object(self):
        self.bad(with_alert(lambda p: p["alerts"][0]["annotations"].update(value={"x": 1})),
                 400, "invalid_payload", "alerts[0].annotations.value", "string")

    def test_starts_at_not_rfc3339(self):
        self.bad(with_alert(lambda p: p["alerts"][0].update(startsAt="yesterday")), 400,
                 "invalid_payload", "alerts[0].startsAt", "RFC 3339", '"yesterday"')

    def test_ends_at_not_rfc3339(self):
        self.bad(with_alert(lambda p: p["alerts"][0].update(endsAt="2024-13-45T99:00:00Z")), 400,
                 "invalid_payload", "alerts[0].endsAt", "RFC 3339")

    def test_status_missing(self):
        self.bad(with_alert(lambda p: p["alerts"][0].pop("status")), 400, "invalid_payload",
                 "alerts[0].status", "missing")

    def test_status_unknown(self):
        self.bad(with_alert(lambda p: p["alerts"][1].update(status="exploded"), 2), 400,
                 "invalid_payload", "alerts[1].status", "exploded")

    def test_group_status_unknown(self):
        self.bad(with_alert(lambda p: p.update(status="pending")), 400, "invalid_payload",
                 "status")

    def test_too_many_alerts(self):
        # limits.max_alerts = 5 in this class
        obj = self.bad(make_payload(6), 400, "invalid_payload", result="bad_request")
        self.assertEqual(obj["message"], "alerts: 6 alerts exceed the limit of 5")
        self.assertAccepted(self.post(make_payload(5)), 5)

    # ---- 413, 415

    def test_body_too_large_content_length(self):
        before = self.server.metrics()
        body = json.dumps(make_payload(1)).encode()
        body = body[:-1] + b',"pad":"' + b"x" * (2 * 1024 * 1024) + b'"}'
        head = ("POST /v1/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\n\r\n" % len(body)).encode()
        data, end = harness.raw_exchange(self.server.port, head + body)
        status, headers, rbody = harness.parse_raw_response(data)
        self.assertEqual(status, 413, "want 413 for a 2 MiB body, got %r (%s)" % (data[:300], end))
        r = harness.Response(status, headers, rbody)
        self.responses.append(r.text)
        self.assertError(r, 413, "body_too_large")
        after = self.server.metrics()
        self.assertEqual(metric(after, "rollbackd_webhooks_total", result="too_large")
                         - metric(before, "rollbackd_webhooks_total", result="too_large"), 1)
        self.assertStillServing()

    def test_body_too_large_chunked(self):
        head = (b"POST /v1/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 65536
        chunks = [head] + [b"%x\r\n" % len(chunk) + chunk + b"\r\n"] * 32 + [b"0\r\n\r\n"]
        data, end = harness.raw_exchange(self.server.port, None, chunks=chunks)
        status, headers, rbody = harness.parse_raw_response(data)
        self.assertEqual(status, 413, "want 413 for a 2 MiB chunked body, got %r (%s)"
                         % (data[:300], end))
        self.assertError(harness.Response(status, headers, rbody), 413, "body_too_large")
        self.assertStillServing()

    def test_body_at_limit_minus_padding_ok(self):
        # ~900 KiB of valid payload is under the 1 MiB default
        a = make_alert(extra_labels={"blob": "y" * (900 * 1024)})
        self.assertAccepted(self.post(make_payload(alerts=[a])), 1)

    def test_text_plain(self):
        self.bad(make_payload(1), 415, "unsupported_media_type",
                 headers={"Content-Type": "text/plain"}, result="unsupported_media_type")

    def test_form_urlencoded(self):
        self.bad(make_payload(1), 415, "unsupported_media_type",
                 headers={"Content-Type": "application/x-www-form-urlencoded"})

    def test_json_prefix_lookalike(self):
        self.bad(make_payload(1), 415, "unsupported_media_type",
                 headers={"Content-Type": "application/jsonp"})

    def test_content_type_case_insensitive(self):
        r = self.post(make_payload(1), headers={"Content-Type": "Application/JSON; Charset=UTF-8"})
        self.assertAccepted(r, 1)

    # ---- HTTP-level garbage

    def test_garbage_request_line(self):
        data, end = harness.raw_exchange(self.server.port, b"HELLO\r\n\r\n", timeout=5 * harness.SCALE)
        r = harness.Response(*harness.parse_raw_response(data))
        self.assertError(r, 400, "bad_request")
        self.assertEqual(r.json()["message"],
                         "malformed request line (expected 'METHOD /path HTTP/1.1')")
        self.assertEqual(end, "eof")
        self.assertStillServing()

    def test_bad_content_length(self):
        data, end = harness.raw_exchange(
            self.server.port, b"POST /v1/alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: -5\r\n\r\n{}", timeout=5 * harness.SCALE)
        r = harness.Response(*harness.parse_raw_response(data))
        self.assertError(r, 400, "bad_request")
        self.assertEqual(r.json()["message"], "invalid Content-Length")
        self.assertEqual(end, "eof")
        self.assertStillServing()

    def test_client_closes_mid_body(self):
        s = socket.create_connection(("127.0.0.1", self.server.port))
        s.sendall(b"POST /v1/alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000\r\n\r\n{\"version\":")
        s.close()
        self.assertStillServing()


if __name__ == "__main__":
    import unittest
    unittest.main()
