"""The command line (SPEC §3): --version, --help, usage errors, check-config, sign."""

import hashlib
import hmac
import json
import os
import re
import shutil
import tempfile
import time
import unittest

import harness
from harness import run_cli

SECRET = harness.SECRET_MARK + "-cli-sign-c0ffee"


@unittest.skipUnless(harness.binary_available(), harness.skip_reason())
class CliTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="rollbackd-cli-")
        self.rules = os.path.join(self.tmp, "rules")
        os.mkdir(self.rules)
        self.secret_file = os.path.join(self.tmp, "hmac.key")
        with open(self.secret_file, "w") as f:
            f.write(SECRET + "\n")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def write_config(self, obj, name="rollbackd.json"):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(obj if isinstance(obj, str) else json.dumps(obj, indent=2))
        return path

    def base_config(self, **over):
        c = {"listen": "127.0.0.1:0", "rules": self.rules,
             "state_dir": os.path.join(self.tmp, "state"), "log_level": "info"}
        c.update(over)
        return c

    def assertOneLineError(self, p, *words):
        err = p.stderr.decode()
        lines = [l for l in err.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, "want exactly one error line on stderr, got %r" % err)
        for w in words:
            self.assertIn(w, lines[0])
        self.assertNotIn(SECRET, err)
        return lines[0]

    # -- version / help / usage

    def test_version(self):
        p = run_cli(["--version"])
        self.assertEqual(p.returncode, 0, p)
        self.assertRegex(p.stdout.decode(), r"^rollbackd \d+\.\d+\.\d+\S*\n?$")

    def test_help(self):
        p = run_cli(["--help"])
        self.assertEqual(p.returncode, 0, p)
        out = p.stdout.decode()
        self.assertIn("usage", out.lower())
        for verb in ("serve", "check-config", "sign"):
            self.assertIn(verb, out, "--help should list %r" % verb)

    def test_unknown_verb(self):
        p = run_cli(["frobnicate"])
        self.assertEqual(p.returncode, 2, p)
        self.assertEqual(p.stdout, b"")
        self.assertIn("frobnicate", p.stderr.decode())

    def test_no_args_is_usage_error(self):
        p = run_cli([])
        self.assertEqual(p.returncode, 2, p)

    def test_unknown_option(self):
        p = run_cli(["check-config", "--no-such-flag"])
        self.assertEqual(p.returncode, 2, p)

    def test_missing_option_value(self):
        p = run_cli(["check-config", "--config"])
        self.assertEqual(p.returncode, 2, p)

    # -- check-config

    def test_check_config_ok(self):
        path = self.write_config(self.base_config(
            auth={"hmac": {"secrets": [{"file": self.secret_file}], "max_skew": "5m"}},
            limits={"max_body_bytes": 1048576, "request_timeout": "1s", "max_connections": 8,
                    "max_header_bytes": 8192, "max_alerts": 100},
            workers=2, dry_run=True))
        p = run_cli(["check-config", "--config", path])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotIn(SECRET.encode(), p.stdout + p.stderr)

    def test_check_config_example(self):
        # The shipped example, with its /etc secret files and rules replaced by
        # ones that exist here: valid as it stands otherwise.
        ex = os.path.join(harness.SRC, "deploy", "rollbackd.json")
        with open(ex) as f:
            cfg = json.load(f)
        files = []

        def local(node):
            if isinstance(node, dict):
                if set(node) == {"file"} and node["file"].startswith("/etc/rollbackd/"):
                    path = os.path.join(self.tmp, os.path.basename(node["file"]))
                    if path.endswith(".url"):
                        value = "https://hooks.example/" + harness.SECRET_MARK + "-example-url"
                    else:
                        value = harness.SECRET_MARK + "-example-" + os.path.basename(path)
                    with open(path, "w") as f:
                        f.write(value + "\n")
                    files.append(path)
                    return {"file": path}
                return {k: local(v) for k, v in node.items()}
            if isinstance(node, list):
                return [local(v) for v in node]
            return node

        cfg = local(cfg)
        self.assertEqual(len(files), 10, files)
        cfg["rules"] = os.path.join(harness.SRC, "rules")
        cfg["state_dir"] = os.path.join(self.tmp, "state")
        path = self.write_config(cfg)
        p = run_cli(["check-config", "--config", path],
                    env={"ROLLBACKD_API_TOKEN": harness.SECRET_MARK + "-example-api-token"})
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotIn(harness.SECRET_MARK.encode(), p.stdout + p.stderr)
        # Unchanged, it names the first secret file it cannot open.
        p = run_cli(["check-config", "--config", ex])
        self.assertEqual(p.returncode, 1, p)
        self.assertEqual(p.stderr.decode(), "rollbackd: %s: auth.hmac.secrets[0]: cannot open "
                         "secret file '/etc/rollbackd/hmac.key': No such file or directory\n"
                         % ex)

    def test_check_config_unknown_key(self):
        path = self.write_config(self.base_config(limits={"max_body_byte": 10}))
        p = run_cli(["check-config", "--config", path])
        self.assertEqual(p.returncode, 1, p)
        self.assertOneLineError(p, path, "limits.max_body_byte")

    def test_check_config_unknown_top_level_key(self):
        path = self.write_config(self.base_config(lisen="127.0.0.1:1"))
        p = run_cli(["check-config", "--config", path])
        self.assertEqual(p.returncode, 1, p)
        self.assertOneLineError(p, path, "lisen")

    def test_check_config_bad_duration(self):
        path = self.write_config(self.base_config(limits={"request_timeout": "10 parsecs"}))
        p = run_cli(["check-config", "--config", path])
        self.assertEqual(p.returncode, 1, p)
        self.assertOneLineError(p, path, "limits.request_timeout")

    def test_check_config_wrong_type(self):
        path = self.write_config(self.base_config(dry_run="yes"))
        p = run_cli(["check-config", "--config", path])
        self.assertEqual(p.returncode, 1, p)
        self.assertOneLineError(p, path, "dry_run")

    def test_check_config_inline_secret_refused(self):
        path = self.write_config(self.base_config(auth={"bearer": {"token": SECRET}}))
        p = run_cli(["check-config", "--config", path])
        self.assertEqual(p.returncode, 1, p)
        self.assertOneLineError(p, path, "auth.bearer.token")

    def test_check_config_missing_secret_file(self):
        path = self.write_config(self.base_config(
            auth={"bearer": {"token": {"file": os.path.join(self.tmp, "nope.token")}}}))
        p = run_cli(["check-config", "--config", path])
        self.assertEqual(p.returncode, 1, p)
        self.assertOneLineError(p, path, "auth.bearer.token")

    def test_check_config_json_syntax(self):
        path = self.write_config('{\n  "listen": "127.0.0.1:0",\n  "rules": \n}\n')
        p = run_cli(["check-config", "--config", path])
        self.assertEqual(p.returncode, 1, p)
        line = self.assertOneLineError(p, path)
        self.assertRegex(line, re.escape(path) + r":\d+")

    def test_check_config_missing_file(self):
        path = os.path.join(self.tmp, "absent.json")
        p = run_cli(["check-config", "--config", path])
        self.assertEqual(p.returncode, 1, p)
        self.assertOneLineError(p, path)

    def test_serve_refuses_invalid_config(self):
        path = self.write_config(self.base_config(limits={"max_body_byte": 10}))
        p = run_cli(["serve", "--config", path], timeout=20 * harness.SCALE)
        self.assertEqual(p.returncode, 1, p)
        self.assertIn("limits.max_body_byte", p.stderr.decode())

    # -- sign

    def test_sign_fixed_timestamp(self):
        body = json.dumps(harness.make_payload(3)).encode()
        p = run_cli(["sign", "--secret-file", self.secret_file, "--timestamp", "1700000000"],
                    stdin=body)
        self.assertEqual(p.returncode, 0, p.stderr)
        mac = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
        self.assertEqual(p.stdout.decode().strip(), "t=1700000000,v1=" + mac)
        self.assertNotIn(SECRET.encode(), p.stdout + p.stderr)

    def test_sign_now(self):
        body = b'{"version":"4"}'
        before = int(time.time())
        p = run_cli(["sign", "--secret-file", self.secret_file], stdin=body)
        after = int(time.time())
        self.assertEqual(p.returncode, 0, p.stderr)
        m = re.match(r"^t=(\d+),v1=([0-9a-f]{64})$", p.stdout.decode().strip())
        self.assertTrue(m, p.stdout)
        t = int(m.group(1))
        self.assertTrue(before - 1 <= t <= after + 1, (before, t, after))
        self.assertEqual(m.group(2), hmac.new(SECRET.encode(), b"%d." % t + body,
                                              hashlib.sha256).hexdigest())

    def test_sign_binary_body_exact_bytes(self):
        body = b"\x00\xff\r\n trailing newline kept\n"
        p = run_cli(["sign", "--secret-file", self.secret_file, "--timestamp", "42"], stdin=body)
        self.assertEqual(p.returncode, 0, p.stderr)
        mac = hmac.new(SECRET.encode(), b"42." + body, hashlib.sha256).hexdigest()
        self.assertEqual(p.stdout.decode().strip(), "t=42,v1=" + mac)

    def test_sign_missing_secret_file(self):
        p = run_cli(["sign", "--secret-file", os.path.join(self.tmp, "nope")], stdin=b"{}")
        self.assertEqual(p.returncode, 1, p)
        self.assertIn("nope", p.stderr.decode())

    def test_sign_without_secret_file_is_usage_error(self):
        p = run_cli(["sign"], stdin=b"{}")
        self.assertEqual(p.returncode, 2, p)

    def test_sign_bad_timestamp(self):
        p = run_cli(["sign", "--secret-file", self.secret_file, "--timestamp", "soon"],
                    stdin=b"{}")
        self.assertIn(p.returncode, (1, 2), p)
        self.assertEqual(p.stdout, b"")


if __name__ == "__main__":
    unittest.main()
