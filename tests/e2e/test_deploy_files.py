"""The deployment files: systemd unit, Kubernetes manifests, Docker image and
demo stack. They cannot run here (no systemd as PID 1, no cluster, no Docker
engine), so this checks what can be checked offline:

  - deploy/rollbackd.service: `systemd-analyze verify` is clean (no output),
    `systemd-analyze security --offline` exposure, the sandbox settings;
  - deploy/k8s/*.yaml: parse, probes on /healthz and /readyz, non-root,
    read-only root, state volume at state_dir, every secret file the config
    reads comes from the Secret, the embedded rules are rules/rollback.json
    verbatim, the embedded config passes `rollbackd check-config`;
  - docker/: compose wiring, the Prometheus/Alertmanager configs have the
    shape tests/e2e/test_pipeline.py uses (promtool/amtool check them),
    docker/rollbackd.json passes check-config, the runtime stage installs
    every library the binary links.

Skips (with a message) only the parts whose tool is missing: systemd-analyze,
python3-yaml, promtool, amtool, the rollbackd binary.
"""

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)
import harness  # noqa: E402
import test_pipeline  # noqa: E402

try:
    import yaml
except ImportError:  # python3-yaml (deploy/install-deps.sh installs it)
    yaml = None

SRC = harness.SRC
DEPLOY = os.path.join(SRC, "deploy")
K8S = os.path.join(DEPLOY, "k8s")
DOCKER = os.path.join(SRC, "docker")
UNIT = os.path.join(DEPLOY, "rollbackd.service")
INSTALLED_BIN = "/usr/local/bin/rollbackd"
NEED_YAML = "python3-yaml not installed (apt-get install python3-yaml)"


def read(path):
    with open(path) as f:
        return f.read()


def unit_settings(text):
    """[(section, key, value)] of a unit file (no continuation lines used)."""
    out, section = [], None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        k, _, v = line.partition("=")
        out.append((section, k.strip(), v.strip()))
    return out


def secret_files(cfg, path=""):
    """Every {"file": P} in a rollbackd config: [(json path, P)]."""
    out = []
    if isinstance(cfg, dict):
        if set(cfg) == {"file"} and isinstance(cfg["file"], str):
            return [(path, cfg["file"])]
        for k, v in cfg.items():
            out += secret_files(v, path + "." + k if path else k)
    elif isinstance(cfg, list):
        for i, v in enumerate(cfg):
            out += secret_files(v, "%s[%d]" % (path, i))
    return out


class CheckConfigMixin:
    def check_config(self, cfg, where):
        """Run `rollbackd check-config` on cfg with every secret file, the
        rules and the state dir remapped into a temp dir (unknown keys and bad
        values are what this catches)."""
        if not harness.binary_available():
            self.skipTest(harness.skip_reason())
        tmp = tempfile.mkdtemp(prefix="rollbackd-deploy-")
        try:
            cfg = copy.deepcopy(cfg)
            env = dict(os.environ)

            def remap(o):
                if isinstance(o, dict):
                    if set(o) == {"file"}:
                        p = os.path.join(tmp, "secret-%s" % os.path.basename(o["file"]))
                        with open(p, "w") as f:
                            f.write("http://flags.example\n" if "url" in p else "x" * 32 + "\n")
                        o["file"] = p
                    elif set(o) == {"env"}:
                        env[o["env"]] = "x" * 32
                    else:
                        for v in o.values():
                            remap(v)
                elif isinstance(o, list):
                    for v in o:
                        remap(v)
            remap(cfg)
            cfg["rules"] = os.path.join(SRC, "rules")
            cfg["state_dir"] = os.path.join(tmp, "state")
            path = os.path.join(tmp, "rollbackd.json")
            with open(path, "w") as f:
                json.dump(cfg, f)
            p = subprocess.run([harness.BIN, "check-config", "--config", path],
                               capture_output=True, timeout=30, env=env)
            self.assertEqual(p.returncode, 0, "%s: rollbackd check-config: %s%s"
                             % (where, p.stdout.decode(), p.stderr.decode()))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------


class SystemdUnit(unittest.TestCase):
    def setUp(self):
        self.text = read(UNIT)
        self.settings = unit_settings(self.text)

    def get(self, key, section="Service"):
        return [v for s, k, v in self.settings if s == section and k == key]

    def verifiable_copy(self, tmp):
        """The unit as written, or - when /usr/local/bin/rollbackd is not
        installed here - with that path pointing at ROLLBACKD_BIN (verify
        insists that ExecStart= exists). Nothing else changes."""
        text = self.text
        if not os.access(INSTALLED_BIN, os.X_OK):
            if not harness.binary_available():
                self.skipTest("neither %s nor ROLLBACKD_BIN exists for systemd-analyze verify"
                              % INSTALLED_BIN)
            text = text.replace(INSTALLED_BIN, harness.BIN)
        path = os.path.join(tmp, "rollbackd.service")
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_systemd_analyze_verify(self):
        exe = shutil.which("systemd-analyze")
        if not exe:
            self.skipTest("systemd-analyze not installed (package systemd)")
        with tempfile.TemporaryDirectory() as tmp:
            path = self.verifiable_copy(tmp)
            p = subprocess.run([exe, "verify", "--man=no", path], capture_output=True,
                               timeout=60, cwd=tmp)
            out = (p.stdout + p.stderr).decode()
            # unknown keys and bad values are warnings with exit status 0: any output fails
            self.assertEqual((p.returncode, out.strip()), (0, ""),
                             "systemd-analyze verify %s:\n%s" % (UNIT, out))

    def test_systemd_analyze_security(self):
        exe = shutil.which("systemd-analyze")
        if not exe:
            self.skipTest("systemd-analyze not installed (package systemd)")
        with tempfile.TemporaryDirectory() as tmp:
            path = self.verifiable_copy(tmp)
            p = subprocess.run([exe, "security", "--offline=true", "--no-pager", path],
                               capture_output=True, timeout=60, cwd=tmp)
            out = (p.stdout + p.stderr).decode()
            m = re.search(r"Overall exposure level for rollbackd\.service: ([\d.]+)", out)
            if p.returncode != 0 and not m:
                self.skipTest("systemd-analyze security --offline not usable here: %s"
                              % out.strip()[:300])
            self.assertIsNotNone(m, out)
            self.assertLessEqual(float(m.group(1)), 2.0,
                                 "exposure %s (want <= 2.0, 'OK'):\n%s" % (m.group(1), out))

    def test_sandbox_and_lifecycle_settings(self):
        want = {
            "ExecStart": "/usr/local/bin/rollbackd serve --config /etc/rollbackd/rollbackd.json",
            "ExecReload": "/bin/kill -HUP $MAINPID",
            "Restart": "on-failure",
            "KillMode": "mixed",
            "StateDirectory": "rollbackd",
            "ConfigurationDirectory": "rollbackd",
            "DynamicUser": "yes",
            "ProtectSystem": "strict",
            "ProtectHome": "yes",
            "PrivateTmp": "yes",
            "PrivateDevices": "yes",
            "NoNewPrivileges": "yes",
            "CapabilityBoundingSet": "",
            "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
            "MemoryDenyWriteExecute": "yes",
            "LockPersonality": "yes",
            "RestrictNamespaces": "yes",
            "RestrictSUIDSGID": "yes",
            "SystemCallArchitectures": "native",
            "UMask": "0077",
        }
        for k, v in want.items():
            self.assertIn(v, self.get(k), "%s=%s" % (k, v))
        self.assertIn("@system-service", self.get("SystemCallFilter"))
        # stop timeout above rollbackd's 30 s grace for running actions
        (stop,) = self.get("TimeoutStopSec")
        m = re.fullmatch(r"(\d+)(s|min)?", stop)
        self.assertTrue(m, stop)
        secs = int(m.group(1)) * (60 if m.group(2) == "min" else 1)
        self.assertGreater(secs, 30, "TimeoutStopSec must exceed the 30 s action grace")
        # the shipped rules run deploy/rollback.sh relative to the working directory
        (wd,) = self.get("WorkingDirectory")
        self.assertEqual(wd.lstrip("-"), "/usr/local/lib/rollbackd")
        self.assertIn("install -D -m 0755 deploy/rollback.sh %s/deploy/rollback.sh" % wd, self.text)
        self.assertIn("multi-user.target", self.get("WantedBy", "Install"))


# --------------------------------------------------------------------------


@unittest.skipUnless(yaml, NEED_YAML)
class Kubernetes(CheckConfigMixin, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.docs = {}
        for name in sorted(os.listdir(K8S)):
            if name.endswith((".yaml", ".yml")):
                with open(os.path.join(K8S, name)) as f:
                    cls.docs[name] = [d for d in yaml.safe_load_all(f) if d is not None]

    def kind(self, kind, name=None):
        got = [d for docs in self.docs.values() for d in docs if d.get("kind") == kind
               and (name is None or d["metadata"]["name"] == name)]
        self.assertEqual(len(got), 1, "want exactly one %s %s, got %d" % (kind, name or "", len(got)))
        return got[0]

    def setUp(self):
        self.dep = self.kind("Deployment", "rollbackd")
        self.pod = self.dep["spec"]["template"]
        (self.c,) = self.pod["spec"]["containers"]
        self.cm = self.kind("ConfigMap", "rollbackd-config")
        self.cfg = json.loads(self.cm["data"]["rollbackd.json"])
        self.mounts = {m["mountPath"]: m for m in self.c["volumeMounts"]}
        self.volumes = {v["name"]: v for v in self.pod["spec"]["volumes"]}

    def test_kustomization_lists_every_manifest(self):
        kust = self.docs["kustomization.yaml"][0]
        self.assertEqual(sorted(kust["resources"]),
                         sorted(n for n in self.docs if n != "kustomization.yaml"))
        for docs in self.docs.values():
            for d in docs:
                self.assertIn("apiVersion", d)
                self.assertIn("kind", d)

    def port_of(self, probe):
        port = probe["httpGet"]["port"]
        if isinstance(port, str):
            (port,) = [p["containerPort"] for p in self.c["ports"] if p["name"] == port]
        return port

    def test_probes(self):
        listen_port = int(self.cfg["listen"].rsplit(":", 1)[1])
        self.assertEqual(self.c["livenessProbe"]["httpGet"]["path"], "/healthz")
        self.assertEqual(self.c["readinessProbe"]["httpGet"]["path"], "/readyz")
        for p in ("livenessProbe", "readinessProbe", "startupProbe"):
            if p in self.c:
                self.assertEqual(self.port_of(self.c[p]), listen_port, p)
        self.assertFalse(self.cfg["listen"].startswith("127."),
                         "the kubelet probes the pod IP: rollbackd must not listen on loopback")

    def test_security_context(self):
        psc, csc = self.pod["spec"]["securityContext"], self.c["securityContext"]
        self.assertTrue(psc.get("runAsNonRoot"))
        self.assertNotEqual(psc.get("runAsUser", 0), 0)
        self.assertTrue(csc.get("readOnlyRootFilesystem"))
        self.assertFalse(csc.get("allowPrivilegeEscalation", True))
        self.assertIn("ALL", csc["capabilities"]["drop"])
        self.assertGreater(self.pod["spec"]["terminationGracePeriodSeconds"], 30)
        self.assertEqual(self.dep["spec"]["replicas"], 1, "two replicas would both act")
        self.assertEqual(self.dep["spec"]["strategy"]["type"], "Recreate")

    def test_prometheus_annotations(self):
        ann = self.pod["metadata"]["annotations"]
        self.assertEqual(ann.get("prometheus.io/scrape"), "true")
        self.assertEqual(ann.get("prometheus.io/path"), "/metrics")
        self.assertEqual(int(ann.get("prometheus.io/port")),
                         int(self.cfg["listen"].rsplit(":", 1)[1]))

    def test_state_volume_and_secret_files(self):
        state = self.cfg["state_dir"].rstrip("/")
        self.assertIn(state, self.mounts, "no volume mounted at state_dir %s" % state)
        self.assertFalse(self.mounts[state].get("readOnly", False))
        vol = self.volumes[self.mounts[state]["name"]]
        self.assertTrue("persistentVolumeClaim" in vol or "emptyDir" in vol, vol)
        secret = self.kind("Secret", "rollbackd-secrets")
        keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
        for where, path in secret_files(self.cfg):
            d, base = os.path.split(path)
            self.assertIn(d, self.mounts, "%s: %s is not on a mounted volume" % (where, path))
            v = self.volumes[self.mounts[d]["name"]]
            self.assertIn("secret", v, "%s: %s must come from a Secret" % (where, path))
            self.assertEqual(v["secret"]["secretName"], "rollbackd-secrets")
            self.assertIn(base, keys, "%s: the Secret has no key %s" % (where, base))
        for e in self.c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                self.assertIn(ref["key"], keys, e)
        self.assertEqual(self.c["workingDir"], "/usr/local/lib/rollbackd")

    def test_configmap_rules_are_the_shipped_rules(self):
        with open(os.path.join(SRC, "rules", "rollback.json")) as f:
            shipped = json.load(f)
        self.assertEqual(json.loads(self.cm["data"]["rollback.json"]), shipped,
                         "deploy/k8s/configmap.yaml's rollback.json differs from rules/rollback.json")
        items = {i["key"]: i["path"] for i in self.volumes["config"]["configMap"]["items"]}
        cfg_mount = [m for p, m in self.mounts.items() if m["name"] == "config"][0]["mountPath"]
        self.assertEqual(os.path.join(cfg_mount, items["rollback.json"]),
                         os.path.join(self.cfg["rules"], "rollback.json"))
        self.assertEqual(os.path.join(cfg_mount, items["rollbackd.json"]), self.c["args"][-1])

    def test_configmap_config_passes_check_config(self):
        self.check_config(self.cfg, "deploy/k8s/configmap.yaml rollbackd.json")

    def test_kubeconfig_for_exec_actions(self):
        kc = yaml.safe_load(self.kind("ConfigMap", "rollbackd-kubeconfig")["data"]["config"])
        self.assertEqual(kc["current-context"], "in-cluster")
        home = [e["value"] for e in self.c["env"] if e["name"] == "HOME"][0]
        self.assertIn(home + "/.kube/config", self.mounts)

    def test_service_selects_the_pod(self):
        svc = self.kind("Service", "rollbackd")
        labels = self.pod["metadata"]["labels"]
        for k, v in svc["spec"]["selector"].items():
            self.assertEqual(labels.get(k), v)
        self.assertEqual(self.dep["spec"]["selector"]["matchLabels"],
                         {k: labels[k] for k in self.dep["spec"]["selector"]["matchLabels"]})


# --------------------------------------------------------------------------


@unittest.skipUnless(yaml, NEED_YAML)
class DockerAndCompose(CheckConfigMixin, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(os.path.join(DOCKER, "compose.yml")) as f:
            cls.compose = yaml.safe_load(f)
        with open(os.path.join(DOCKER, "rollbackd.json")) as f:
            cls.cfg = json.load(f)
        cls.dockerfile = read(os.path.join(DOCKER, "Dockerfile"))

    def test_compose_wiring_and_mounts(self):
        svcs = self.compose["services"]
        for s in ("prometheus", "alertmanager", "demo", "rollbackd", "flags", "notify"):
            self.assertIn(s, svcs)
        for name, s in svcs.items():
            for v in s.get("volumes", []):
                src = v.split(":", 1)[0]
                if src.startswith("."):
                    self.assertTrue(os.path.exists(os.path.join(DOCKER, src)),
                                    "%s: bind mount source %s does not exist" % (name, src))
        for name, sec in self.compose["secrets"].items():
            self.assertTrue(os.path.isfile(os.path.join(DOCKER, sec["file"])), name)
        rb = svcs["rollbackd"]
        targets = {v.split(":")[1]: v.split(":")[0] for v in rb["volumes"]}
        self.assertEqual(targets["/etc/rollbackd/rollbackd.json"], "./rollbackd.json")
        self.assertEqual(targets[self.cfg["rules"].rstrip("/")], "../rules")
        self.assertIn(self.cfg["state_dir"].rstrip("/"), targets)
        self.assertEqual(targets["/usr/local/bin/kubectl"], "../tests/e2e/fake_kubectl.sh")
        self.assertEqual(rb["build"]["dockerfile"], "docker/Dockerfile")
        for where, path in secret_files(self.cfg):
            self.assertTrue(path.startswith("/run/secrets/"), where)
            self.assertIn(os.path.basename(path), rb["secrets"], where)
        # the demo service and the recorders are the test's own files
        self.assertIn("/e2e/demo_service.py", svcs["demo"]["command"])
        self.assertIn("/e2e/recorder.py", svcs["flags"]["command"])

    def test_rollbackd_json_has_the_test_shape(self):
        c = self.cfg
        self.assertIs(c["dry_run"], False)
        self.assertIn("token", c["auth"]["bearer"])
        self.assertIn("token", c["auth"]["api"])
        self.assertIn("secret", c["auth"]["links"])
        self.assertEqual(set(c["secrets"]), {"flags_url", "flags_token"})
        self.assertIn("webhook_url", c["notify"]["slack"])
        self.assertEqual(set(c["notify"]["pagerduty"]), {"routing_key", "url"})
        with open(os.path.join(DOCKER, "secrets", "flags.url")) as f:
            self.assertEqual(f.read().strip(), "http://flags:8081")
        self.check_config(c, "docker/rollbackd.json")

    def test_alertmanager_yml_matches_the_test(self):
        with open(os.path.join(DOCKER, "alertmanager.yml")) as f:
            mine = yaml.safe_load(f)
        theirs = yaml.safe_load(test_pipeline.ALERTMANAGER_YML.format(
            rb_port=9097, token_file="/run/secrets/alertmanager.token"))
        self.assertEqual(mine["route"], theirs["route"])
        (wh,) = mine["receivers"][0]["webhook_configs"]
        (twh,) = theirs["receivers"][0]["webhook_configs"]
        self.assertEqual(wh["url"], "http://rollbackd:9097/v1/alerts")
        self.assertEqual({k: v for k, v in wh.items() if k != "url"},
                         {k: v for k, v in twh.items() if k != "url"})
        amtool = shutil.which("amtool")
        if amtool:
            p = subprocess.run([amtool, "check-config", os.path.join(DOCKER, "alertmanager.yml")],
                               capture_output=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())

    def test_prometheus_yml_matches_the_test(self):
        text = read(os.path.join(DOCKER, "prometheus.yml"))
        mine = yaml.safe_load(text)
        theirs = yaml.safe_load(test_pipeline.PROMETHEUS_YML.format(
            rules_glob="/x/*.yml", am_port=9093, rb_port=9097,
            targets="      - targets: ['demo:8080']\n        labels: {service: demo}"))
        self.assertEqual(mine["global"], theirs["global"])
        self.assertEqual([j["job_name"] for j in mine["scrape_configs"]],
                         [j["job_name"] for j in theirs["scrape_configs"]])
        for j in mine["scrape_configs"]:
            for sc in j["static_configs"]:
                self.assertIn("service", sc.get("labels", {}),
                              "%s: `up == 0` needs the service label" % j["job_name"])
        # the shipped rules are mounted where rule_files looks
        prom = self.compose["services"]["prometheus"]
        mounts = {v.split(":")[1]: v.split(":")[0] for v in prom["volumes"]}
        (glob,) = mine["rule_files"]
        self.assertEqual(mounts[os.path.dirname(glob)], "../rules/prometheus")
        promtool = shutil.which("promtool")
        if promtool:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "prometheus.yml")
                with open(path, "w") as f:
                    f.write(text.replace(glob, os.path.join(SRC, "rules", "prometheus", "*.yml")))
                p = subprocess.run([promtool, "check", "config", path], capture_output=True,
                                   timeout=60)
                self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())

    def test_dockerfile(self):
        d = self.dockerfile
        self.assertIn("ARG DEBIAN_IMAGE=debian:12-slim", d)
        self.assertEqual(len(re.findall(r"^FROM \$\{DEBIAN_IMAGE\}", d, re.M)), 2, "multi-stage")
        self.assertRegex(d, r"(?m)^USER 10001:10001$")
        self.assertRegex(d, r"(?m)^EXPOSE 9097$")
        self.assertRegex(d, r'(?m)^VOLUME \["/var/lib/rollbackd"\]$')
        self.assertRegex(d, r"(?ms)^HEALTHCHECK .*?/healthz")
        self.assertRegex(d, r"(?m)^WORKDIR /usr/local/lib/rollbackd$")
        self.assertIn("/usr/local/lib/rollbackd/deploy/rollback.sh", d)
        # k8s runs as the image's user
        with open(os.path.join(K8S, "deployment.yaml")) as f:
            dep = yaml.safe_load(f)
        self.assertEqual(dep["spec"]["template"]["spec"]["securityContext"]["runAsUser"], 10001)

    def test_runtime_stage_installs_every_linked_library(self):
        if not harness.binary_available():
            self.skipTest(harness.skip_reason())
        runtime = self.dockerfile.rsplit("\nFROM ", 1)[1]
        m = re.search(r"apt-get install -y --no-install-recommends(.*?)&&", runtime, re.S)
        self.assertIsNotNone(m)
        pkgs = set(m.group(1).replace("\\", " ").split())
        p = subprocess.run(["ldd", harness.BIN], capture_output=True, timeout=30)
        libs = re.findall(r"=> (/\S+)", p.stdout.decode())
        if any(re.search(r"/lib(asan|ubsan|tsan)\.so", lib) for lib in libs):
            self.skipTest("a sanitizer build links its own runtime; the image ships the "
                          "release build, which the normal `make test` pass checks")
        self.assertIn("libcurl4", pkgs, "rollbackd dlopen()s libcurl.so.4")
        for lib in libs:
            q = subprocess.run(["dpkg", "-S", os.path.realpath(lib)], capture_output=True)
            if q.returncode != 0:
                q = subprocess.run(["dpkg", "-S", lib], capture_output=True)
            if q.returncode != 0:
                continue  # not from a package (unlikely); nothing to check
            pkg = q.stdout.decode().split(":", 1)[0].strip()
            if pkg in ("libc6",):
                continue
            self.assertIn(pkg, pkgs, "%s (from %s) is not installed in the runtime stage"
                          % (lib, pkg))


if __name__ == "__main__":
    unittest.main()
