"""Connections and file descriptors (issue 12) against the real binary.

Idle and slowloris connections beyond limits.max_connections do not delay
probes or webhooks; limits.max_connections_per_peer caps one address;
limits.header_timeout cuts a slow head apart from limits.request_timeout;
the open-file limit is raised at start for max_connections, or the start is
refused with the exact reason; accept() failing with EMFILE pauses the
listener instead of spinning, with a bounded number of log lines.
"""

import os
import resource
import socket
import stat
import threading
import time
import unittest

import harness
from harness import SCALE, Server, make_payload

# This process opens more than a thousand sockets.
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if _soft != resource.RLIM_INFINITY and _soft < 4096:
    resource.setrlimit(resource.RLIMIT_NOFILE,
                       (min(4096, _hard) if _hard != resource.RLIM_INFINITY else 4096, _hard))

HEAD = b"POST /v1/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"


def timed(fn):
    t0 = time.monotonic()
    r = fn()
    return r, time.monotonic() - t0


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def stopped(test, srv):
    """Stop srv: a clean exit with only JSON log lines (sanitizer reports are not)."""
    try:
        test.assertEqual(srv.stop(), 0, "\n".join(srv.lines[-30:]))
        harness.check_log_lines(srv)
    finally:
        srv.cleanup()


class Crowd:
    """n sockets to port; slow=True sends a head one byte per round."""

    def __init__(self, port, n, slow=False, source="127.0.0.1"):
        self.socks = []
        for _ in range(n):
            s = socket.socket()
            s.bind((source, 0))
            s.setblocking(True)
            s.connect(("127.0.0.1", port))
            s.setblocking(False)
            self.socks.append(s)
        self.stop = threading.Event()
        self.thread = None
        if slow:
            self.thread = threading.Thread(target=self.trickle, daemon=True)
            self.thread.start()

    def trickle(self):
        head = HEAD + b"X-Slow: " + b"z" * 4000
        i = 0
        while not self.stop.is_set():
            b = head[i % len(head):i % len(head) + 1]
            for s in self.socks:
                try:
                    s.send(b)
                except OSError:
                    pass
            i += 1
            self.stop.wait(0.5)

    def close(self):
        self.stop.set()
        if self.thread:
            self.thread.join(5)
        for s in self.socks:
            s.close()


class PressureTest(unittest.TestCase):
    """The default max_connections (1024), one worker, 1,100 clients."""

    WORKERS = 1

    def setUp(self):
        self.srv = Server(config={"workers": self.WORKERS,
                                  "limits": {"max_connections_per_peer": 2000}},
                          log_level="info")
        self.srv.start()
        self.crowd = None

    def tearDown(self):
        if self.crowd:
            self.crowd.close()
        stopped(self, self.srv)

    def test_idle_connections_do_not_delay_healthz(self):
        self.crowd = Crowd(self.srv.port, 1100)
        time.sleep(1.0 * SCALE)
        for _ in range(3):
            r, took = timed(lambda: self.srv.request("GET", "/healthz", timeout=5))
            self.assertEqual(r.status, 200)
            self.assertLess(took, 0.5 * SCALE, "/healthz took %.2fs behind 1,100 idle "
                            "connections" % took)

    def test_slowloris_does_not_delay_probes_or_webhooks(self):
        self.crowd = Crowd(self.srv.port, 1100, slow=True)
        time.sleep(1.5 * SCALE)
        for path in ("/healthz", "/readyz", "/metrics"):
            r, took = timed(lambda: self.srv.request("GET", path, timeout=5))
            self.assertEqual(r.status, 200, path)
            self.assertLess(took, 0.5 * SCALE, "%s took %.2fs under slowloris" % (path, took))
        r, took = timed(lambda: self.srv.post_alerts(make_payload(n=1), timeout=5))
        self.assertEqual(r.status, 200)
        self.assertLess(took, 1.0 * SCALE, "a webhook took %.2fs under slowloris" % took)


class PressureTwoWorkersTest(PressureTest):
    """The same with two loops: each makes room among its own connections."""

    WORKERS = 2


class PerPeerTest(unittest.TestCase):
    def setUp(self):
        self.srv = Server(config={"workers": 1, "limits": {"max_connections_per_peer": 3}})
        self.srv.start()

    def tearDown(self):
        stopped(self, self.srv)

    def test_fourth_connection_from_one_address_is_closed(self):
        crowd = Crowd(self.srv.port, 3, source="127.0.0.2")
        try:
            time.sleep(0.3 * SCALE)
            mark = self.srv.log_mark()
            s = socket.socket()
            s.bind(("127.0.0.2", 0))
            s.connect(("127.0.0.1", self.srv.port))
            s.settimeout(2 * SCALE)
            self.assertEqual(s.recv(100), b"", "the 4th connection from 127.0.0.2 must be "
                             "closed without an answer")
            s.close()
            line = self.srv.wait_log(lambda l: l.get("msg") == "too many connections from one "
                                     "address; closing the new one", start=mark)
            self.assertEqual(line["max_connections_per_peer"], "3")
            # the first three stay open, and other addresses are served
            for c in crowd.socks:
                c.setblocking(True)
                c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                c.settimeout(2 * SCALE)
                self.assertTrue(c.recv(100).startswith(b"HTTP/1.1 200"))
            self.assertEqual(self.srv.request("GET", "/healthz").status, 200)
        finally:
            crowd.close()


class HeaderTimeoutTest(unittest.TestCase):
    def setUp(self):
        self.srv = Server(config={"limits": {"header_timeout": "1s", "request_timeout": "6s"}})
        self.srv.start()

    def tearDown(self):
        stopped(self, self.srv)

    def test_slow_head_cut_at_header_timeout_slow_body_at_request_timeout(self):
        head = socket.create_connection(("127.0.0.1", self.srv.port))
        body = socket.create_connection(("127.0.0.1", self.srv.port))
        try:
            head.sendall(HEAD[:30])
            body.sendall(HEAD + b"Content-Length: 100\r\n\r\n{")
            head.settimeout(5 * SCALE)
            t0 = time.monotonic()
            self.assertEqual(head.recv(100), b"")
            took = time.monotonic() - t0
            self.assertGreater(took, 0.9)
            self.assertLess(took, 2.5 * SCALE)
            # the one whose head is complete is still open
            body.settimeout(0.5)
            with self.assertRaises(socket.timeout):
                body.recv(100)
            body.settimeout(10 * SCALE)
            self.assertEqual(body.recv(100), b"")
            self.assertGreater(time.monotonic() - t0, 4.5)
        finally:
            head.close()
            body.close()


class FdLimitTest(unittest.TestCase):
    """`ulimit -n 256` with the default max_connections (1024)."""

    def test_soft_limit_raised(self):
        srv = Server(config={"workers": 1})
        try:
            wrapper = os.path.join(srv.tmp, "ulimit.sh")
            with open(wrapper, "w") as f:
                f.write('#!/bin/sh\nulimit -Sn 256 && ulimit -Hn 4096 && exec "%s" "$@"\n'
                        % harness.BIN)
            os.chmod(wrapper, stat.S_IRWXU)
            real, harness.BIN = harness.BIN, wrapper
            try:
                srv.start()
            finally:
                harness.BIN = real
            line = srv.wait_log(lambda l: l.get("msg") ==
                                "raised the open-file limit for limits.max_connections")
            self.assertEqual((line["from"], line["to"]), ("256", "1224"))
            self.assertEqual(resource.prlimit(srv.proc.pid, resource.RLIMIT_NOFILE),
                             (1224, 4096))
            self.assertEqual(srv.request("GET", "/healthz").status, 200)
        finally:
            srv.cleanup()

    def test_hard_limit_too_low_refuses_to_start(self):
        srv = Server(config={"workers": 1})
        try:
            wrapper = os.path.join(srv.tmp, "ulimit.sh")
            with open(wrapper, "w") as f:
                f.write('#!/bin/sh\nulimit -Sn 256 && ulimit -Hn 256 && exec "%s" "$@"\n'
                        % harness.BIN)
            os.chmod(wrapper, stat.S_IRWXU)
            real, harness.BIN = harness.BIN, wrapper
            try:
                with self.assertRaises(AssertionError):
                    srv.start(timeout=5 * SCALE)
            finally:
                harness.BIN = real
            srv.proc.wait(10)
            self.assertEqual(srv.proc.returncode, 1)
            line = srv.wait_log(lambda l: l.get("msg") == "cannot serve", timeout=5)
            self.assertEqual(line["error"],
                             "limits.max_connections is 1024, which needs 1224 open files, but "
                             "the hard limit on open files (RLIMIT_NOFILE) is 256: raise it "
                             "(ulimit -Hn, LimitNOFILE= in the systemd unit) or lower "
                             "limits.max_connections")
        finally:
            srv.cleanup()


class EmfileTest(unittest.TestCase):
    def setUp(self):
        self.srv = Server(config={"workers": 1, "limits": {"max_connections": 64}})
        self.srv.start()

    def tearDown(self):
        stopped(self, self.srv)

    def test_emfile_pauses_accept_without_spinning(self):
        pid = self.srv.proc.pid
        before = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (open_fds(pid) + 3, before[1]))
        mark = self.srv.log_mark()
        crowd = Crowd(self.srv.port, 30)
        try:
            time.sleep(0.5 * SCALE)
            cpu0, t0 = cpu_seconds(pid), time.monotonic()
            time.sleep(3)
            used = cpu_seconds(pid) - cpu0
            self.assertLess(used, 0.3 * (time.monotonic() - t0),
                            "%.2fs of CPU in %.1fs while accept() fails with EMFILE"
                            % (used, time.monotonic() - t0))
            lines = self.srv.logs_since(mark)
            pauses = [l for l in lines if l.get("msg") ==
                      "cannot accept connections; the listener pauses"]
            self.assertEqual(len(pauses), 1, lines[-20:])
            self.assertTrue(pauses[0]["error"].startswith("Too many open files; retrying in "),
                            pauses[0])
            self.assertEqual([l for l in lines if "_raw" in l], [], "non-JSON log lines")
            self.assertLess(len(lines), 10, lines[-20:])
        finally:
            crowd.close()
        resource.prlimit(pid, resource.RLIMIT_NOFILE, before)
        deadline = time.monotonic() + 5 * SCALE
        while True:
            try:
                r = self.srv.request("GET", "/healthz", timeout=2)
                break
            except OSError:
                self.assertLess(time.monotonic(), deadline, "not serving after the limit rose")
        self.assertEqual(r.status, 200)


if __name__ == "__main__":
    unittest.main()
