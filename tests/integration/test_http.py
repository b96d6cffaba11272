"""HTTP details and the open operator API (issue 12) against the real binary.

Every refusal is the JSON error of SPEC §5 with an exact status: conflicting
Content-Length 400, several Authorization headers 401 unless all verify, an
Authorization holding a NUL 401, a head over limits.max_header_bytes 431, a
body over limits.max_body_bytes 413 at once (sent slowly, chunked, or after
`Expect: 100-continue`), a method other than GET/HEAD/POST 405. Without an
api token the operator API checks Host, Origin and the content type.
"""

import re
import socket
import time

import harness
from harness import SCALE, ServerTestCase, make_payload

BEARER = harness.SECRET_MARK + "-bearer-http-0123456789"


def raw(port, data, timeout=5):
    """Send data (bytes or a list of chunks), read the answer to its end."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout * SCALE)
    try:
        for c in data if isinstance(data, list) else [data]:
            s.sendall(c)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def response(data):
    status, headers, body = harness.parse_raw_response(data)
    return harness.Response(status, headers, body)


class HttpDetailsTest(ServerTestCase):
    CONFIG = staticmethod(lambda s: {
        "limits": {"max_header_bytes": 8192, "max_body_bytes": 65536, "request_timeout": "20s"},
        "auth": {"bearer": {"token": s.env_secret("RBD_HTTP_BEARER", BEARER)}}})

    def auth_headers(self, body):
        return {"Authorization": "Bearer " + BEARER}

    def alerts(self, extra_headers=b"", body=None):
        body = harness.body_of(make_payload(1)) if body is None else body
        return (b"POST /v1/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\n" + extra_headers +
                b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def test_two_different_content_lengths(self):
        body = harness.body_of(make_payload(1))
        r = response(raw(self.server.port, self.alerts(
            b"Authorization: Bearer " + BEARER.encode() + b"\r\nContent-Length: 7\r\n", body)))
        self.assertError(r, 400, "bad_request")
        self.assertEqual(r.json()["message"], "conflicting Content-Length headers")
        self.assertEqual(r.headers.get("connection"), "close")
        self.assertStillServing()

    def test_same_content_length_twice_is_fine(self):
        body = harness.body_of(make_payload(1))
        r = response(raw(self.server.port, self.alerts(
            b"Authorization: Bearer " + BEARER.encode() + b"\r\n"
            b"Content-Length: %d\r\n" % len(body), body)))
        self.assertAccepted(r, 1)

    def test_several_authorization_headers(self):
        good = b"Authorization: Bearer " + BEARER.encode() + b"\r\n"
        bad = b"Authorization: Bearer wrong-token\r\n"
        for name, hdrs, status in [("good+bad", good + bad, 401), ("bad+good", bad + good, 401),
                                   ("good+good", good + good, 200)]:
            r = response(raw(self.server.port, self.alerts(hdrs)))
            if status == 401:
                self.assertError(r, 401, "unauthorized")
                self.assertEqual(r.json()["message"], "invalid credentials", name)
            else:
                self.assertAccepted(r, 1)

    def test_authorization_with_nul(self):
        hdr = b"Authorization: Bearer " + BEARER.encode() + b"\x00garbage\r\n"
        r = response(raw(self.server.port, self.alerts(hdr)))
        self.assertError(r, 401, "unauthorized")
        self.assertEqual(r.json()["message"],
                         "invalid credentials: the Authorization header holds a NUL byte")
        self.assertEqual(r.headers.get("www-authenticate"), 'Bearer realm="rollbackd"')
        self.assertStillServing()

    def test_header_block_over_the_limit(self):
        r = response(raw(self.server.port, self.alerts(b"X-Pad: " + b"a" * 9000 + b"\r\n")))
        self.assertError(r, 431, "headers_too_large")
        self.assertEqual(r.json()["message"],
                         "request headers over limits.max_header_bytes (8192 bytes)")
        self.assertStillServing()

    def test_unfinished_head_over_the_limit_answered_at_once(self):
        s = socket.create_connection(("127.0.0.1", self.server.port), timeout=5 * SCALE)
        try:
            t0 = time.monotonic()
            s.sendall(b"GET /healthz HTTP/1.1\r\nX-Pad: " + b"a" * 9000)
            data = b""
            while b"\r\n\r\n" not in data or not data.endswith(b"}\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            self.assertLess(time.monotonic() - t0, 2 * SCALE)
        finally:
            s.close()
        self.assertError(response(data), 431, "headers_too_large")

    def body_too_large(self, r):
        self.assertError(r, 413, "body_too_large")
        self.assertEqual(r.json()["message"],
                         "request too large: body over limits.max_body_bytes (65536 bytes)")

    def test_oversized_body_sent_slowly_answered_at_once(self):
        s = socket.create_connection(("127.0.0.1", self.server.port), timeout=5 * SCALE)
        try:
            t0 = time.monotonic()
            s.sendall(b"POST /v1/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                      b"application/json\r\nContent-Length: 200000\r\n\r\n{\"a\":")
            data = b""
            while not data.endswith(b"}\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            took = time.monotonic() - t0
        finally:
            s.close()
        self.assertLess(took, 1 * SCALE, "413 after %.1fs" % took)
        self.body_too_large(response(data))

    def test_oversized_body_after_expect_100_continue(self):
        s = socket.create_connection(("127.0.0.1", self.server.port), timeout=5 * SCALE)
        try:
            s.sendall(b"POST /v1/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                      b"application/json\r\nExpect: 100-continue\r\nContent-Length: 200000\r\n\r\n")
            data = b""
            while not data.endswith(b"}\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        finally:
            s.close()
        self.assertFalse(data.startswith(b"HTTP/1.1 100"), data[:100])
        self.body_too_large(response(data))

    def test_expect_100_continue_within_limit(self):
        body = harness.body_of(make_payload(1))
        s = socket.create_connection(("127.0.0.1", self.server.port), timeout=5 * SCALE)
        try:
            s.sendall(b"POST /v1/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                      b"application/json\r\nAuthorization: Bearer " + BEARER.encode() +
                      b"\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
            self.assertEqual(s.recv(100), b"HTTP/1.1 100 Continue\r\n\r\n")
            s.sendall(body)
            data = b""
            while not data.endswith(b"}\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        finally:
            s.close()
        self.assertAccepted(response(data), 1)

    def test_chunked_over_the_limit_answered_before_the_rest(self):
        s = socket.create_connection(("127.0.0.1", self.server.port), timeout=5 * SCALE)
        try:
            s.sendall(b"POST /v1/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                      b"application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"20000\r\n" + b"x" * 100)
            data = b""
            while not data.endswith(b"}\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        finally:
            s.close()
        self.body_too_large(response(data))

    def test_chunked_within_limit_accepted(self):
        body = harness.body_of(make_payload(2))
        chunks = b"".join(b"%x\r\n" % len(body[i:i + 100]) + body[i:i + 100] + b"\r\n"
                          for i in range(0, len(body), 100))
        r = response(raw(self.server.port, [
            b"POST /v1/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + BEARER.encode() + b"\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n", chunks, b"0\r\n\r\n"]))
        self.assertAccepted(r, 2)

    def test_pipelined_requests_each_checked_and_answered_in_order(self):
        data = raw(self.server.port, [
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /v1/alerts HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
            b"Content-Type: application/json\r\n\r\n{}"
            b"GET /readyz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"])
        self.assertEqual(re.findall(rb"HTTP/1\.1 (\d{3}) ", data), [b"200", b"401", b"400"])
        self.assertTrue(data.endswith(b'{"error":"bad_request","message":"conflicting '
                                      b'Content-Length headers"}\n'), data[-200:])

    def test_content_length_and_transfer_encoding(self):
        r = response(raw(self.server.port, self.alerts(b"Transfer-Encoding: chunked\r\n")))
        self.assertError(r, 400, "bad_request")
        self.assertEqual(r.json()["message"], "both Content-Length and Transfer-Encoding")

    def test_other_methods(self):
        for method in (b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"BREW"):
            r = response(raw(self.server.port, method + b" /v1/alerts HTTP/1.1\r\nHost: x\r\n"
                             b"Content-Length: 0\r\n\r\n"))
            self.assertError(r, 405, "method_not_allowed")
            self.assertEqual(r.json()["message"],
                             "method not allowed; rollbackd accepts GET, HEAD and POST")
            self.assertEqual(r.headers.get("allow"), "GET, HEAD, POST")


class OpenOperatorApiTest(ServerTestCase):
    """The built-in defaults: no api token, so loopback only, and then only
    for requests naming this rollbackd."""

    CONFIG = {"public_url": "https://rollbackd.example.com"}

    def call(self, method, path, headers, body=b"{}"):
        head = "%s %s HTTP/1.1\r\n" % (method, path)
        for k, v in headers.items():
            head += "%s: %s\r\n" % (k, v)
        head += "Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
        return response(raw(self.server.port, head.encode() + body))

    def host(self):
        return "127.0.0.1:%d" % self.server.port

    def test_pause_from_a_browser_page_is_refused(self):
        r = self.call("POST", "/v1/pause", {"Host": self.host(), "Content-Type": "text/plain",
                                            "Origin": "http://evil.example"})
        self.assertError(r, 403, "cross_origin")
        self.assertEqual(r.json()["message"],
                         "cross-origin request refused: Origin is not this rollbackd; set "
                         "auth.api.token to use the operator API from elsewhere")
        self.assertIn("\nrollbackd_paused 0\n", "\n" + self.server.metrics_text())

    def test_text_plain_pause_is_refused(self):
        r = self.call("POST", "/v1/pause", {"Host": self.host(), "Content-Type": "text/plain"})
        self.assertError(r, 415, "unsupported_media_type")
        self.assertEqual(r.json()["message"], "Content-Type must be application/json")
        r = self.call("POST", "/v1/resume", {"Host": self.host()})
        self.assertError(r, 415, "unsupported_media_type")
        self.assertEqual(r.json()["message"],
                         "Content-Type is missing; expected application/json")

    def test_dns_rebinding_host_is_refused(self):
        for host in ("evil.example:%d" % self.server.port, None):
            hdrs = {"Host": host} if host else {}
            r = self.call("GET", "/v1/incidents", hdrs, body=b"")
            self.assertError(r, 403, "forbidden_host")
            self.assertEqual(r.json()["message"],
                             "the Host header does not name this rollbackd (its listen address "
                             "or public_url); without auth.api.token the operator API answers "
                             "only requests for its own address")

    def test_own_host_and_origin_pass(self):
        for host, origin in [(self.host(), "http://" + self.host()),
                             ("localhost:%d" % self.server.port, None),
                             ("rollbackd.example.com", "https://rollbackd.example.com")]:
            hdrs = {"Host": host, "Content-Type": "application/json"}
            if origin:
                hdrs["Origin"] = origin
            self.assertEqual(self.call("GET", "/v1/incidents", hdrs, body=b"").status, 200, host)
            r = self.call("POST", "/v1/pause", hdrs)
            self.assertEqual((r.status, r.json()), (200, {"paused": True}), host)
            r = self.call("POST", "/v1/resume", hdrs)
            self.assertEqual((r.status, r.json()), (200, {"paused": False}), host)


if __name__ == "__main__":
    import unittest
    unittest.main()
