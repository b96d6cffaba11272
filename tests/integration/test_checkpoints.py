"""Signed checkpoints of the journal (issue 16, SPEC §8 "Checkpoints").

- `rollbackd keygen --out FILE` writes FILE (0600) and FILE.pub, and never
  overwrites either.
- The daemon signs the durable journal head every `checkpoints.every` and at
  shutdown, journals a `checkpoint` record and appends the signed line to
  `publish.file`; `audit verify --checkpoints --pubkey` accepts the result.
- Truncating the journal below a checkpoint, rewriting a record before one
  and re-chaining everything after it (which the plain chain check passes),
  and a forked history are each detected, naming the checkpoint; a line with
  a wrong signature, or signed by another key, is refused, naming it.
- `publish.url` down: intake is not delayed, the POST is retried with
  backoff, and once the witness is up it receives every line, in order.
"""

import hashlib
import http.server
import json
import os
import re
import shutil
import socket
import stat
import threading
import time
import unittest

import harness
from harness import SCALE, Server, make_payload, run_cli

ZERO = "0" * 64
KEYS = ["seq", "hash", "ts", "key_id", "sig"]


def journal_lines(state_dir):
    with open(os.path.join(state_dir, "journal.jsonl"), "rb") as f:
        return f.read().split(b"\n")[:-1]


def rechain(lines, start_index):
    """Recompute hash and prev of every line from start_index on, as SPEC §8
    says a line is made: what someone who can write the file can do."""
    out = list(lines[:start_index])
    prev = json.loads(out[-1])["hash"] if out else ZERO
    for line in lines[start_index:]:
        head, sep, _ = line.rpartition(b',"hash":"')
        body, psep, _ = head.rpartition(b',"prev":"')
        assert sep and psep
        b = body + b',"prev":"' + prev.encode() + b'"}'
        h = hashlib.blake2b(b, digest_size=32).hexdigest()
        out.append(b[:-1] + b',"hash":"' + h.encode() + b'"}')
        prev = h
    return out


def write_lines(path, lines):
    with open(path, "wb") as f:
        f.write(b"".join(l + b"\n" for l in lines))


def read_published(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data.endswith(b"\n"), "published file does not end with a newline"
    return [json.loads(l) for l in data.split(b"\n")[:-1]]


def verify(state, ckpts, pub):
    return run_cli(["audit", "verify", "--journal", state, "--checkpoints", ckpts,
                    "--pubkey", pub])


class KeygenTest(unittest.TestCase):
    def setUp(self):
        if not harness.binary_available():
            self.skipTest(harness.skip_reason())
        self.tmp = harness.tempfile.mkdtemp(prefix="rollbackd-keygen-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def test_writes_a_key_pair_with_modes_and_refuses_to_overwrite(self):
        key = os.path.join(self.tmp, "ck.key")
        r = run_cli(["keygen", "--out", key])
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(key + ".pub") as f:
            pub = f.read()
        with open(key) as f:
            sk = f.read()
        self.assertRegex(pub, r"^[0-9a-f]{64}\n$")
        self.assertRegex(sk, r"^[0-9a-f]{128}\n$")
        self.assertEqual(sk[64:128], pub[:64], "the secret key ends with the public key")
        self.assertEqual(r.stdout.decode(),
                         "wrote %s (secret key, mode 0600) and %s.pub (public key); key_id %s\n"
                         % (key, key, pub[:16]))
        self.assertEqual(stat.S_IMODE(os.stat(key).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(key + ".pub").st_mode), 0o644)

        r = run_cli(["keygen", "--out", key])
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.decode(),
                         "rollbackd: keygen: %s: already exists; not overwritten\n" % key)
        with open(key) as f:
            self.assertEqual(f.read(), sk)

        # FILE.pub alone existing refuses too, and writes no secret key.
        other = os.path.join(self.tmp, "other.key")
        with open(other + ".pub", "w") as f:
            f.write("x\n")
        r = run_cli(["keygen", "--out", other])
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.decode(),
                         "rollbackd: keygen: %s.pub: already exists; not overwritten\n" % other)
        self.assertFalse(os.path.exists(other))

    def test_usage(self):
        r = run_cli(["keygen"])
        self.assertEqual(r.returncode, 2)
        self.assertTrue(r.stderr.decode().startswith(
            "rollbackd: keygen: --out FILE is required\n"), r.stderr)

    def test_config_is_checked(self):
        key = os.path.join(self.tmp, "ck.key")
        self.assertEqual(run_cli(["keygen", "--out", key]).returncode, 0)
        bad = os.path.join(self.tmp, "bad.key")
        with open(bad, "w") as f:
            f.write("00" * 64 + "\n")  # 128 hex digits, but not a key pair
        cases = [
            ({"key": {"file": bad}, "publish": {"file": "p"}},
             "checkpoints.key: not an Ed25519 secret key (its public half does not match "
             "its seed)"),
            ({"key": {"file": key + ".pub"}, "publish": {"file": "p"}},
             "checkpoints.key: not an Ed25519 secret key (expected 128 lowercase hex digits, "
             "as 'rollbackd keygen' writes)"),
            ({"key": {"file": key}}, "checkpoints: missing key 'publish'"),
            ({"key": {"file": key}, "publish": {}},
             "checkpoints.publish: needs 'file' or 'url' (a checkpoint kept only in the "
             "journal protects nothing)"),
            ({"key": {"file": key}, "publish": {"url": "ftp://x"}},
             "checkpoints.publish.url: expected an http:// or https:// URL"),
            ({"key": {"file": key}, "every": "0s", "publish": {"file": "p"}},
             "checkpoints.every: must be greater than zero"),
            ({"key": {"file": key}, "publish": {"file": "p"}, "evrey": "1m"},
             "checkpoints.evrey: unknown key (did you mean 'every'?)"),
        ]
        cfg = os.path.join(self.tmp, "c.json")
        rules = os.path.join(self.tmp, "rules")
        os.makedirs(rules)
        for block, msg in cases:
            with open(cfg, "w") as f:
                json.dump({"rules": rules, "checkpoints": block}, f)
            r = run_cli(["check-config", "--config", cfg])
            self.assertEqual(r.returncode, 1, block)
            self.assertIn("%s: %s" % (cfg, msg), r.stderr.decode(), block)
            self.assertNotIn("00" * 64, r.stderr.decode())
        with open(cfg, "w") as f:
            json.dump({"rules": rules, "checkpoints": {"key": {"file": key}, "every": "1m",
                                       "publish": {"file": "p", "url": "http://127.0.0.1:1/"}}},
                      f)
        r = run_cli(["check-config", "--config", cfg, ])
        self.assertEqual(r.returncode, 0, r.stderr)


class CheckpointTestBase(unittest.TestCase):
    EVERY = "200ms"

    def setUp(self):
        if not harness.binary_available():
            self.skipTest(harness.skip_reason())
        self.tmp = harness.tempfile.mkdtemp(prefix="rollbackd-ckpt-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.key = os.path.join(self.tmp, "ck.key")
        self.pub = self.key + ".pub"
        r = run_cli(["keygen", "--out", self.key])
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(self.pub) as f:
            self.key_id = f.read()[:16]
        self.published = os.path.join(self.tmp, "witness", "checkpoints.jsonl")
        os.makedirs(os.path.dirname(self.published))

    def server(self, publish, state_dir=None, every=None):
        cfg = {"checkpoints": {"key": {"file": self.key}, "every": every or self.EVERY,
                               "publish": publish}}
        srv = Server(config=cfg)
        if state_dir:
            srv.state_dir = state_dir
            srv.config["state_dir"] = state_dir
            with open(srv.config_path, "w") as f:
                json.dump(srv.config, f)
        self.addCleanup(srv.cleanup)
        return srv

    def run_daemon(self, alerts, state_dir=None, service="checkout"):
        """Start, post alerts (each a new notification), wait for a periodic
        checkpoint, post one more, stop with SIGTERM. Returns the state dir."""
        srv = self.server({"file": self.published}, state_dir)
        srv.start()
        for i in range(alerts):
            p = make_payload(n=1, service="%s-%d" % (service, i))
            r = srv.post_alerts(p)
            self.assertEqual(r.status, 200, r.text)
        mark = srv.log_mark()
        self.assertIsNotNone(srv.wait_log(lambda l: l.get("msg") == "checkpoint signed",
                                          timeout=10 * SCALE, start=mark))
        r = srv.post_alerts(make_payload(n=1, service="%s-last" % service))
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(srv.stop(), 0, srv.stderr_text()[-2000:])
        return srv.state_dir


class CheckpointJournalTest(CheckpointTestBase):
    def test_signed_journaled_published_and_verified(self):
        state = self.run_daemon(alerts=3)
        lines = journal_lines(state)
        recs = [json.loads(l) for l in lines]
        published = read_published(self.published)
        self.assertGreaterEqual(len(published), 2, "periodic checkpoints and a final one")
        with open(self.published, "rb") as f:
            raw = f.read().split(b"\n")[:-1]
        ckrecs = [r for r in recs if r["type"] == "checkpoint"]
        self.assertEqual(len(ckrecs), len(published))
        for line, p, cr in zip(raw, published, ckrecs):
            self.assertEqual(list(p.keys()), KEYS)
            self.assertRegex(line.decode(),
                             r'^\{"seq":\d+,"hash":"[0-9a-f]{64}","ts":"[^"]+","key_id":'
                             r'"[0-9a-f]{16}","sig":"[0-9a-f]{128}"\}$')
            self.assertEqual(p["key_id"], self.key_id)
            # The checkpoint signs a record that is in the journal, before
            # the checkpoint record itself.
            self.assertEqual(recs[p["seq"] - 1]["hash"], p["hash"])
            self.assertLess(p["seq"], cr["seq"])
            self.assertEqual(cr["signed"], {"seq": p["seq"], "hash": p["hash"], "ts": p["ts"]})
            self.assertEqual(cr["key_id"], p["key_id"])
            self.assertEqual(cr["sig"], p["sig"])
        # The last one is taken at shutdown: it covers every record before it.
        self.assertEqual(recs[-1]["type"], "checkpoint")
        self.assertEqual(published[-1]["seq"], recs[-2]["seq"])

        r = verify(state, self.published, self.pub)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.decode(),
                         "ok: %d records, last seq %d, last hash %s; %d checkpoints match "
                         "(key_id %s, last at seq %d)\n"
                         % (len(recs), len(recs), recs[-1]["hash"], len(published),
                            self.key_id, published[-1]["seq"]))

        # A restart replays checkpoint records like any other. With a long
        # `every`, the one checkpoint it takes is the one at shutdown.
        srv = self.server({"file": self.published}, state, every="1h")
        srv.start()
        self.assertEqual(srv.post_alerts(make_payload(n=1, service="again")).status, 200)
        self.assertEqual(srv.stop(), 0)
        recs = [json.loads(l) for l in journal_lines(state)]
        again = read_published(self.published)
        self.assertEqual(len(again), len(published) + 1)
        self.assertEqual(again[-1]["seq"], recs[-2]["seq"])
        self.assertEqual(recs[-1]["type"], "checkpoint")
        self.assertNotEqual(recs[-2]["type"], "checkpoint")
        r = verify(state, self.published, self.pub)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_truncation_rewrite_and_signature(self):
        state = self.run_daemon(alerts=4)
        lines = journal_lines(state)
        published = read_published(self.published)
        n = len(published)
        numbered = sorted(((p["seq"], i + 1), p) for i, p in enumerate(published))

        # 1. Truncated to 4 records, below a checkpoint: the chain is fine.
        t = os.path.join(self.tmp, "truncated")
        os.makedirs(t)
        keep = 4
        write_lines(os.path.join(t, "journal.jsonl"), lines[:keep])
        r = run_cli(["audit", "verify", "--journal", t])
        self.assertEqual(r.returncode, 0, "the chain check alone cannot see a truncation")
        r = verify(t, self.published, self.pub)
        self.assertEqual(r.returncode, 1)
        err = r.stderr.decode().splitlines()
        beyond = [(k, p) for k, p in numbered if p["seq"] > keep]
        self.assertTrue(beyond)
        self.assertEqual(err, ["rollbackd: audit: %s:%d: checkpoint seq %d: the journal ends at "
                               "seq %d (truncated: records up to seq %d are missing)"
                               % (self.published, k[1], p["seq"], keep, p["seq"])
                               for k, p in beyond] +
                         ["rollbackd: audit: %s: %d of %d checkpoints do not match the journal, "
                          "0 refused" % (self.published, len(beyond), n)])

        # 2. A record before a checkpoint rewritten, everything after it
        #    re-chained: the plain check passes, the checkpoints do not.
        w = os.path.join(self.tmp, "rewritten")
        os.makedirs(w)
        victim = next(i for i, l in enumerate(lines) if b'"checkout-0"' in l)
        changed = lines[victim].replace(b'"checkout-0"', b'"checkout-X"')
        fake = rechain(lines[:victim] + [changed] + lines[victim + 1:], victim)
        write_lines(os.path.join(w, "journal.jsonl"), fake)
        r = run_cli(["audit", "verify", "--journal", w])
        self.assertEqual(r.returncode, 0, r.stderr)
        r = verify(w, self.published, self.pub)
        self.assertEqual(r.returncode, 1)
        err = r.stderr.decode().splitlines()
        after = [(k, p) for k, p in numbered if p["seq"] > victim]
        self.assertTrue(after)
        self.assertEqual(err, ["rollbackd: audit: %s:%d: checkpoint seq %d: the journal's record "
                               "seq %d has hash %s, the checkpoint signed %s (the journal was "
                               "rewritten up to there, or is another history)"
                               % (self.published, k[1], p["seq"], p["seq"],
                                  json.loads(fake[p["seq"] - 1])["hash"], p["hash"])
                               for k, p in after] +
                         ["rollbackd: audit: %s: %d of %d checkpoints do not match the journal, "
                          "0 refused" % (self.published, len(after), n)])
        got = json.loads(fake[after[0][1]["seq"] - 1])["hash"]
        first = published[0]

        # 3. A checkpoint line with a wrong signature (or one made to match
        #    the rewritten journal) is refused, naming it; so is one signed
        #    by another key.
        bad = os.path.join(self.tmp, "bad.jsonl")
        with open(self.published, "rb") as f:
            raw = f.read().split(b"\n")[:-1]
        sig = published[0]["sig"]
        flipped = ("0" if sig[0] != "0" else "1") + sig[1:]
        forged = dict(published[1], hash=got)  # made to match the rewrite: not signed
        raw[0] = raw[0].replace(sig.encode(), flipped.encode())
        raw[1] = json.dumps(forged, separators=(",", ":")).encode()
        write_lines(bad, raw)
        r = verify(state, bad, self.pub)
        self.assertEqual(r.returncode, 1)
        err = r.stderr.decode().splitlines()
        why = ("bad signature: the line was not signed by the --pubkey key as it reads "
               "(changed or forged)")
        self.assertEqual(err[0], "rollbackd: audit: %s:1: checkpoint seq %d refused: %s"
                         % (bad, published[0]["seq"], why))
        self.assertEqual(err[1], "rollbackd: audit: %s:2: checkpoint seq %d refused: %s"
                         % (bad, published[1]["seq"], why))
        self.assertEqual(err[-1], "rollbackd: audit: %s: 0 of %d checkpoints do not match "
                         "the journal, 2 refused" % (bad, n - 2))

        other = os.path.join(self.tmp, "other.key")
        self.assertEqual(run_cli(["keygen", "--out", other]).returncode, 0)
        with open(other + ".pub") as f:
            other_id = f.read()[:16]
        r = verify(state, self.published, other + ".pub")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.decode().splitlines()[0],
                         "rollbackd: audit: %s:1: checkpoint seq %d refused: signed by key_id "
                         "%s, not by the --pubkey key (key_id %s)"
                         % (self.published, first["seq"], self.key_id, other_id))

        # Not a checkpoint at all; no checkpoint in the file; usage.
        junk = os.path.join(self.tmp, "junk.jsonl")
        write_lines(junk, [b'{"seq":1}'])
        r = verify(state, junk, self.pub)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.decode().splitlines()[0],
                         "rollbackd: audit: %s:1: not a checkpoint: no \"hash\"" % junk)
        empty = os.path.join(self.tmp, "empty.jsonl")
        open(empty, "w").close()
        r = verify(state, empty, self.pub)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.decode(),
                         "rollbackd: audit: %s: no checkpoint in it: nothing to check the "
                         "journal against\n" % empty)
        r = run_cli(["audit", "verify", "--journal", state, "--checkpoints", self.published])
        self.assertEqual(r.returncode, 2)
        self.assertTrue(r.stderr.decode().startswith(
            "rollbackd: audit: verify: --checkpoints FILE and --pubkey FILE go together\n"))

    def test_forked_history(self):
        # A common start, then two daemons each go on from a copy of it,
        # publishing to the same witness file.
        state = self.run_daemon(alerts=1, service="common")
        common = len(journal_lines(state))
        fork = os.path.join(self.tmp, "fork-state")
        shutil.copytree(state, fork)
        self.run_daemon(alerts=2, state_dir=state, service="left")
        n_left = len(read_published(self.published))
        self.run_daemon(alerts=3, state_dir=fork, service="right")
        published = read_published(self.published)
        left_after = [(i + 1, p) for i, p in enumerate(published[:n_left]) if p["seq"] > common]
        right_after = [(i + 1, p) for i, p in enumerate(published[n_left:], n_left)
                       if p["seq"] > common]
        self.assertTrue(left_after and right_after)

        # Each chain alone is intact.
        for s in (state, fork):
            self.assertEqual(run_cli(["audit", "verify", "--journal", s]).returncode, 0)
        # Against the witness, each history is caught by the other's first
        # checkpoint past the fork.
        for s, other in ((fork, left_after), (state, right_after)):
            r = verify(s, self.published, self.pub)
            self.assertEqual(r.returncode, 1, s)
            lines = journal_lines(s)
            line, p = min(other, key=lambda x: (x[1]["seq"], x[0]))
            if p["seq"] <= len(lines):
                want = ("rollbackd: audit: %s:%d: checkpoint seq %d: the journal's record seq "
                        "%d has hash %s, the checkpoint signed %s (the journal was rewritten "
                        "up to there, or is another history)"
                        % (self.published, line, p["seq"], p["seq"],
                           json.loads(lines[p["seq"] - 1])["hash"], p["hash"]))
            else:
                want = ("rollbackd: audit: %s:%d: checkpoint seq %d: the journal ends at seq %d "
                        "(truncated: records up to seq %d are missing)"
                        % (self.published, line, p["seq"], len(lines), p["seq"]))
            self.assertEqual(r.stderr.decode().splitlines()[0], want)


class Witness(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        with self.server.lock:
            self.server.got.append((self.path, self.headers.get("Content-Type"), body))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


class CheckpointUrlTest(CheckpointTestBase):
    EVERY = "300ms"

    def test_retries_while_the_witness_is_down_then_delivers_in_order(self):
        port = harness.free_port()  # nothing listens there yet: connection refused
        srv = self.server({"url": "http://127.0.0.1:%d/v1/checkpoints" % port})
        srv.start()
        self.assertIsNotNone(srv.wait_log(
            lambda l: l.get("msg") == "checkpoint: cannot POST to publish.url; retrying "
                                      "with backoff", timeout=10 * SCALE))
        # Intake is not held up by the dead witness.
        for i in range(5):
            t0 = time.monotonic()
            r = srv.post_alerts(make_payload(n=1, service="svc-%d" % i))
            self.assertEqual(r.status, 200)
            self.assertLess(time.monotonic() - t0, 1.0 * SCALE)
        time.sleep(1.0)
        m = srv.metrics()
        self.assertGreaterEqual(harness.metric(m, "rollbackd_checkpoints_total",
                                               result="publish_failed"), 2)
        self.assertEqual(harness.metric(m, "rollbackd_checkpoints_total", result="published"),
                         0)

        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Witness)
        httpd.daemon_threads = True
        httpd.lock = threading.Lock()
        httpd.got = []
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        self.addCleanup(httpd.server_close)
        self.addCleanup(httpd.shutdown)
        self.assertIsNotNone(srv.wait_log(
            lambda l: l.get("msg") == "checkpoint: publish.url reachable again",
            timeout=40 * SCALE))
        self.assertEqual(srv.stop(), 0)

        recs = [json.loads(l) for l in journal_lines(srv.state_dir)]
        signed = [r["signed"]["seq"] for r in recs if r["type"] == "checkpoint"]
        with httpd.lock:
            got = list(httpd.got)
        self.assertEqual([g[0] for g in got], ["/v1/checkpoints"] * len(got))
        self.assertEqual({g[1] for g in got}, {"application/json"})
        bodies = [g[2] for g in got]
        for b in bodies:
            self.assertTrue(b.endswith(b"\n") and b.count(b"\n") == 1, b)
        self.assertEqual([json.loads(b)["seq"] for b in bodies], signed,
                         "every checkpoint delivered once, in order, the final one included")
        witness = os.path.join(self.tmp, "from-url.jsonl")
        with open(witness, "wb") as f:
            f.write(b"".join(bodies))
        r = verify(srv.state_dir, witness, self.pub)
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    unittest.main()
