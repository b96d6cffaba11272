"""Process lifecycle: SIGTERM with a request in flight, concurrency with
several workers, stderr log format."""

import signal
import socket
import threading
import time
import unittest

import harness
from harness import Server, ServerTestCase, make_payload, metric

HEAD = ("POST /v1/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n")


def read_response(sock, timeout):
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            status, headers, body = harness.parse_raw_response(data)
            if status and "content-length" in headers and len(body) >= int(headers["content-length"]):
                break
    except (socket.timeout, ConnectionResetError):
        pass
    return data


@unittest.skipUnless(harness.binary_available(), harness.skip_reason())
class ShutdownTest(unittest.TestCase):
    def setUp(self):
        self.srv = Server(config={})
        self.addCleanup(self.srv.cleanup)
        self.srv.start()

    def test_sigterm_idle_exits_zero(self):
        self.assertEqual(self.srv.stop(), 0, "\n".join(self.srv.lines[-20:]))
        harness.check_log_lines(self.srv)

    def test_sigterm_answers_received_request(self):
        """The whole request is on an accepted connection when SIGTERM is sent:
        it is answered (a drain must read what is already buffered)."""
        body = harness.body_of(make_payload(3))
        s = socket.create_connection(("127.0.0.1", self.srv.port))
        try:
            time.sleep(0.3 * harness.SCALE)  # accepted, not in the listen backlog
            s.sendall((HEAD % len(body)).encode() + body)
            self.srv.proc.send_signal(signal.SIGTERM)
            data = read_response(s, 15 * harness.SCALE)
        finally:
            s.close()
        status, _, rbody = harness.parse_raw_response(data)
        self.assertEqual(status, 200, "request sent before SIGTERM must be answered; got %r"
                         % data[:300])
        self.assertIn(b'"accepted"', rbody)
        self.assertEqual(self.srv.stop(), 0, "\n".join(self.srv.lines[-20:]))

    def test_sigterm_mid_request_completes(self):
        """Headers and half the body are in when SIGTERM arrives; the rest follows
        100 ms later. A graceful shutdown finishes that request, then exits 0."""
        body = harness.body_of(make_payload(3))
        s = socket.create_connection(("127.0.0.1", self.srv.port))
        try:
            s.sendall((HEAD % len(body)).encode() + body[: len(body) // 2])
            time.sleep(0.3 * harness.SCALE)
            self.srv.proc.send_signal(signal.SIGTERM)
            time.sleep(0.1)
            try:
                s.sendall(body[len(body) // 2:])
            except (BrokenPipeError, ConnectionResetError):
                pass
            data = read_response(s, 15 * harness.SCALE)
        finally:
            s.close()
        status, _, _ = harness.parse_raw_response(data)
        self.assertEqual(status, 200, "in-flight request should complete after SIGTERM; got %r"
                         % data[:300])
        self.assertEqual(self.srv.stop(), 0, "\n".join(self.srv.lines[-20:]))

    def test_sigterm_with_idle_keepalive_connection(self):
        # An idle keep-alive connection must not hold the shutdown forever.
        s = socket.create_connection(("127.0.0.1", self.srv.port))
        try:
            body = harness.body_of(make_payload(1))
            s.sendall((HEAD % len(body)).encode() + body)
            data = read_response(s, 10 * harness.SCALE)
            self.assertEqual(harness.parse_raw_response(data)[0], 200, data[:200])
            t0 = time.monotonic()
            self.assertEqual(self.srv.stop(timeout=15 * harness.SCALE), 0)
            self.assertLess(time.monotonic() - t0, 15 * harness.SCALE)
        finally:
            s.close()

    def test_sigint_exits_zero(self):
        self.assertEqual(self.srv.stop(sig=signal.SIGINT), 0)

    def test_new_connections_refused_after_exit(self):
        port = self.srv.port
        self.assertEqual(self.srv.stop(), 0)
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()


class WorkersTest(ServerTestCase):
    CONFIG = {"workers": 2}

    def test_parallel_posts_all_counted(self):
        before = self.server.metrics()
        n_threads, per = 8, 10
        errors = []

        def run():
            for _ in range(per):
                try:
                    r = self.server.post_alerts(make_payload(2))
                    if r.status != 200:
                        errors.append(r)
                except Exception as e:  # noqa: BLE001
                    errors.append(e)

        ts = [threading.Thread(target=run) for _ in range(n_threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
        self.assertEqual(errors, [])
        after = self.server.metrics()
        self.assertEqual(metric(after, "rollbackd_webhooks_total", result="accepted")
                         - metric(before, "rollbackd_webhooks_total", result="accepted"),
                         n_threads * per)
        self.assertEqual(metric(after, "rollbackd_alerts_total", status="firing")
                         - metric(before, "rollbackd_alerts_total", status="firing"),
                         2 * n_threads * per)

    def test_single_listening_line(self):
        lines = [l for l in self.server.logs if l.get("msg") == "listening"]
        self.assertGreaterEqual(len(lines), 1)
        self.assertEqual({l.get("addr") for l in lines}, {"127.0.0.1:%d" % self.server.port})


@unittest.skipUnless(harness.binary_available(), harness.skip_reason())
class LogLevelTest(unittest.TestCase):
    def test_log_level_warn_hides_info(self):
        srv = Server(config={}, log_level="warn")
        try:
            srv.start(probe_port=harness.free_port())
            self.assertEqual(srv.post_alerts(make_payload(1)).status, 200)
            self.assertEqual(srv.stop(), 0)
            levels = {l.get("level") for l in srv.logs}
            self.assertFalse(levels & {"debug", "info"},
                             "log_level warn must hide info/debug lines:\n%s" % srv.stderr_text())
            harness.check_log_lines(srv)
        finally:
            srv.cleanup()


if __name__ == "__main__":
    unittest.main()
