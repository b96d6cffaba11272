"""docs/ documents what the code accepts and exports.

- Every config key the parser accepts: derived from src/config*.c, from each
  check_keys(obj, BLOCK, KNOWN, err) call (the strict unknown-key check that
  every block goes through): BLOCK resolved to its dotted path and KNOWN to
  its key names, through local assignments and, for helpers that take them as
  parameters, through every call site. A new key, block or helper is caught
  without editing this file; a call this cannot resolve fails the test.
- Every rule key in a *_keys[] array of src/rules*.c is in docs/rules.md.
- Every metric family a running daemon exports on GET /metrics (and every one
  src/ registers with metrics_register), with the labels of its samples, is a
  row of docs/metrics.md.
- The verifier in docs/journal.md accepts a journal the daemon wrote and
  names the record when one byte of it changes.
- The man pages name every top-level config key and every command.
"""

import glob
import os
import re
import subprocess
import sys
import tempfile
import unittest

import harness
from harness import ServerTestCase, make_payload

SRC = harness.SRC
DOCS = os.path.join(SRC, "docs")
STRING = r'"(?:[^"\\]|\\.)*"'


def read(path):
    with open(path) as f:
        return f.read()


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", lambda m: " " * len(m.group(0)), text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def split_args(s):
    """Top-level comma-separated arguments of a call's argument text."""
    out, depth, cur, i = [], 0, "", 0
    while i < len(s):
        c = s[i]
        if c == '"':
            m = re.match(STRING, s[i:])
            cur += m.group(0)
            i += len(m.group(0))
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if c == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += c
        i += 1
    if cur.strip():
        out.append(cur.strip())
    return out


def call_args(text, pos):
    """Arguments of the call whose '(' is at text[pos]."""
    depth, i = 0, pos
    while True:
        c = text[i]
        if c == '"':
            i += len(re.match(STRING, text[i:]).group(0))
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return split_args(text[pos + 1:i])
        i += 1


class CFile:
    """Functions of a Linux-style C file: definitions start at column 0 and
    end at a '}' in column 0."""

    def __init__(self, path):
        self.path = path
        self.text = strip_comments(read(path))
        self.funcs = {}
        head = re.compile(r"^(?:static\s+)?(?:inline\s+)?[A-Za-z_][\w \t\*]*?\b(\w+)\s*\(([^;{]*?)\)\s*\{",
                          re.M | re.S)
        for m in head.finditer(self.text):
            end = self.text.find("\n}", m.end())
            params = [re.findall(r"(\w+)\s*(?:\[\s*\])?$", p.strip())[0]
                      for p in split_args(m.group(2)) if p.strip() not in ("", "void")]
            self.funcs[m.group(1)] = {"params": params, "start": m.start(),
                                      "body": self.text[m.end():end], "body_at": m.end()}

    def arrays(self, scope_text):
        out = {}
        for m in re.finditer(r"(\w+)\s*\[\s*\w*\s*\]\s*=\s*\{(.*?)\}\s*;", scope_text, re.S):
            out[m.group(1)] = split_args(m.group(2))
        return out


def literal(expr):
    if re.fullmatch(STRING, expr):
        return expr[1:-1]
    return None


def config_keys():
    """Dotted paths of every key that some check_keys() call accepts."""
    files = [CFile(p) for p in sorted(glob.glob(os.path.join(SRC, "src", "config*.c")))]
    assert files, "no src/config*.c"
    all_funcs = {name: (cf, f) for cf in files for name, f in cf.funcs.items()}
    paths, problems = set(), []

    def resolve(expr, cf, func, before, env):
        """Values an expression can have: [str]. env maps parameters to the
        (expr, cf, func, pos) they were called with."""
        v = literal(expr)
        if v is not None:
            return [v]
        if not re.fullmatch(r"\w+", expr):
            return None
        body = func["body"][:before]
        assigns = re.findall(r"\b%s\s*=\s*(%s)\s*;" % (expr, STRING), body)
        if assigns:
            return [literal(assigns[-1])]
        if expr in env:
            return env[expr]()
        return None

    def call_sites(fname):
        for cf in files:
            for caller in cf.funcs.values():
                for m in re.finditer(r"\b%s\s*\(" % fname, caller["body"]):
                    yield cf, caller, m.end() - 1

    def visit(cf, fname, func, env, depth):
        body = func["body"]
        arrays = dict(cf.arrays(cf.text[:func["start"]]))
        arrays.update(cf.arrays(body))
        for m in re.finditer(r"\bcheck_keys\s*\(", body):
            args = call_args(body, m.end() - 1)
            if len(args) < 3:
                continue
            if args[0] in func["params"] and fname == "check_keys":
                continue
            blocks = resolve(args[1], cf, func, m.start(), env)
            known = arrays.get(args[2])
            if blocks is None or known is None:
                problems.append("%s: %s(): check_keys(%s): cannot resolve %s"
                                % (os.path.relpath(cf.path, SRC), fname, ", ".join(args[:3]),
                                   args[1] if blocks is None else args[2]))
                continue
            for k in known:
                if k == "NULL":
                    continue
                names = resolve(k, cf, func, m.start(), env)
                if names is None:
                    problems.append("%s: %s(): key %s of %s cannot be resolved"
                                    % (os.path.relpath(cf.path, SRC), fname, k, args[2]))
                    continue
                for b in blocks:
                    for n in names:
                        paths.add(b + "." + n if b else n)
        # helpers that get the block or the keys as parameters: visit them per call site
        return

    for fname, (cf, func) in all_funcs.items():
        if fname == "check_keys":
            continue
        uses_param = False
        for m in re.finditer(r"\bcheck_keys\s*\(", func["body"]):
            args = call_args(func["body"], m.end() - 1)
            arrays = cf.arrays(func["body"])
            involved = [args[1]] + arrays.get(args[2], [])
            if any(a in func["params"] for a in involved):
                uses_param = True
        if not uses_param:
            visit(cf, fname, func, {}, 0)
            continue
        sites = list(call_sites(fname))
        if not sites:
            problems.append("%s(): takes the block or keys as parameters but has no caller"
                            % fname)
        for ccf, caller, pos in sites:
            args = call_args(caller["body"], pos)

            def bind(i, ccf=ccf, caller=caller, pos=pos, args=args):
                return lambda: resolve(args[i], ccf, caller, pos, {})
            env = {p: bind(i) for i, p in enumerate(func["params"]) if i < len(args)}
            visit(cf, fname, func, env, 1)
    return paths, problems


def backticked(text):
    return set(re.findall(r"`([^`\n]+)`", text))


class ConfigKeysDocumented(unittest.TestCase):
    def test_every_config_key_is_in_configuration_md(self):
        keys, problems = config_keys()
        self.assertEqual(problems, [], "update tests/integration/test_docs.py for the new shape")
        # the derivation itself works: keys of every kind of block are found
        for k in ("listen", "limits.max_body_bytes", "auth.hmac.secrets", "auth.bearer.token",
                  "auth.links.ttl", "notify.slack.webhook_url", "journal.segment_bytes"):
            self.assertIn(k, keys, "derived keys: %s" % sorted(keys))
        self.assertGreaterEqual(len(keys), 35, sorted(keys))
        documented = backticked(read(os.path.join(DOCS, "configuration.md")))
        missing = sorted(k for k in keys if k not in documented)
        self.assertEqual(missing, [], "config keys the parser accepts but docs/configuration.md "
                         "does not document (as `key.path`)")

    def test_every_rule_key_is_in_rules_md(self):
        keys = set()
        for path in glob.glob(os.path.join(SRC, "src", "rules*.c")):
            text = strip_comments(read(path))
            for m in re.finditer(r"\b\w*_keys\s*\[\s*\]\s*=\s*\{(.*?)\}\s*;", text, re.S):
                keys.update(literal(a) for a in split_args(m.group(1)) if literal(a))
        self.assertGreaterEqual(len(keys), 20, sorted(keys))
        documented = set()
        for k in backticked(read(os.path.join(DOCS, "rules.md"))):
            documented.add(k)
            documented.update(k.split("."))
            documented.update(re.findall(r'"(\w+)":', k))  # `{"from": ...}`
        self.assertEqual(sorted(keys - documented), [],
                         "rule keys src/rules*.c accepts but docs/rules.md does not name")

    def test_man_pages_name_the_top_level_keys_and_commands(self):
        top = {k for k in config_keys()[0] if "." not in k}
        man5 = read(os.path.join(DOCS, "man", "rollbackd.json.5")).replace("\\-", "-")
        man8 = read(os.path.join(DOCS, "man", "rollbackd.8")).replace("\\-", "-")
        for k in sorted(top):
            self.assertRegex(man5, r"(?m)^\.B %s$" % re.escape(k), "rollbackd.json(5): %s" % k)
        usage = harness.run_cli(["--help"])
        self.assertEqual(usage.returncode, 0, usage)
        cmds = re.findall(r"(?m)^  (audit [a-z]+|[a-z][a-z-]+)(?= )", usage.stdout.decode())
        self.assertGreaterEqual(len(cmds), 8, usage.stdout.decode())
        commands = man8[man8.index(".SH COMMANDS"):man8.index(".SH SIGNALS")]
        for c in cmds:
            self.assertRegex(commands, r"(?m)^\.B %s$" % re.escape(c),
                             "rollbackd(8) COMMANDS does not describe '%s'" % c)


class MetricsAndJournalDocumented(ServerTestCase):
    CONFIG = {"dry_run": True}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        with open(os.path.join(harness.SRC, "rules", "rollback.json")) as f:
            rules = f.read()
        # the shipped rules, so decisions, incidents and their metrics exist
        with open(os.path.join(cls.server.rules_dir, "rollback.json"), "w") as f:
            f.write(rules)

    def test_every_metric_is_in_metrics_md(self):
        import signal
        mark = self.server.log_mark()
        self.server.proc.send_signal(signal.SIGHUP)
        self.assertIsNotNone(self.server.wait_log(lambda l: l.get("msg") == "reloaded",
                                                  start=mark))
        self.assertEqual(self.post(make_payload(n=2, alertname="RollbackServiceDown",
                                                value="0")).status, 200)
        self.assertEqual(self.post(b"{", headers={}).status, 400)
        text = self.server.metrics_text()
        families = dict(re.findall(r"(?m)^# TYPE (\S+) (\S+)$", text))
        self.assertIn("rollbackd_decisions_total", families)
        # the families src/ registers, also those with no sample yet
        for path in glob.glob(os.path.join(SRC, "src", "*.c")):
            for name in re.findall(r"metrics_register\(\s*METRIC_\w+\s*,\s*\"(\w+)\"", read(path)):
                self.assertIn("rollbackd_" + name, families, "registered but not exported")
        labels = {}
        for m in re.finditer(r"(?m)^(rollbackd_\w+?)(?:_bucket|_sum|_count)?\{([^}]*)\}", text):
            labels.setdefault(m.group(1), set()).update(
                n for n in re.findall(r'(\w+)="', m.group(2)) if n != "le")
        rows = {}
        for line in read(os.path.join(DOCS, "metrics.md")).splitlines():
            m = re.match(r"^\| `(rollbackd_\w+)` \| (\w+) \|([^|]*)\|", line)
            if m:
                rows[m.group(1)] = (m.group(2), set(re.findall(r"`(\w+)`", m.group(3))))
        for fam, typ in sorted(families.items()):
            self.assertIn(fam, rows, "docs/metrics.md has no row for %s (%s)" % (fam, typ))
            self.assertEqual(rows[fam][0], typ, fam)
            for lab in sorted(labels.get(fam, ())):
                self.assertIn(lab, rows[fam][1], "%s: label %s not documented" % (fam, lab))

    def test_journal_md_verifier_checks_the_daemons_journal(self):
        self.assertEqual(self.post(make_payload(n=1, service="docs")).status, 200)
        journal = os.path.join(self.server.state_dir, "journal.jsonl")
        code = re.search(r"```python\n(.*?)```", read(os.path.join(DOCS, "journal.md")),
                         re.S).group(1)
        with tempfile.TemporaryDirectory() as tmp:
            script = os.path.join(tmp, "verify.py")
            with open(script, "w") as f:
                f.write(code)
            p = subprocess.run([sys.executable, script, journal], capture_output=True,
                               timeout=30)
            self.assertEqual((p.returncode, p.stdout.decode()), (0, "ok\n"), p.stderr)
            with open(journal, "rb") as f:
                lines = f.read().split(b"\n")
            self.assertGreaterEqual(len(lines), 4)
            offset = sum(len(l) + 1 for l in lines[:2])
            # one digit of the third record's timestamp
            lines[2] = re.sub(rb'(\d)Z"', lambda m: b"%dZ\"" % ((int(m.group(1)) + 1) % 10),
                              lines[2], count=1)
            bad = os.path.join(tmp, "journal.jsonl")
            with open(bad, "wb") as f:
                f.write(b"\n".join(lines))
            p = subprocess.run([sys.executable, script, bad], capture_output=True, timeout=30)
            self.assertEqual((p.returncode, p.stdout.decode()),
                             (1, "%s: offset %d: record seq 3: hash mismatch\n" % (bad, offset)))
            # rollbackd's own verifier names the same record
            p = harness.run_cli(["audit", "verify", "--journal", bad])
            self.assertEqual(p.returncode, 1)
            self.assertIn("offset %d: record seq 3: hash mismatch" % offset, p.stdout.decode()
                          + p.stderr.decode())


if __name__ == "__main__":
    unittest.main()
