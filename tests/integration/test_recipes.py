"""Recipes under rules/examples/ (issue 15), each run by rollbackd against
the real tool or a stand-in that follows the vendor's documented API:

- HAProxy runtime API, against Debian's real haproxy with two local
  backends: after the action every request reaches the old colour.
- Argo CD (REST API: PATCH the Application to drop syncPolicy.automated,
  then POST .../rollback with the previous history id; Argo CD refuses a
  rollback while auto-sync is on, and so does the stand-in), with the
  failure path: sync cannot be disabled -> nothing else runs.
- Argo Rollouts abort, Flux suspend, Kubernetes Service selector: merge
  patches against a Kubernetes API stand-in (bearer token, content type
  application/merge-patch+json, Status objects on errors).
- Unleash: POST /api/admin/projects/{p}/features/{f}/environments/{e}/off
  with the raw admin token in Authorization.
- flagd: the flag file rewritten to the off variant.

Each test loads the recipe's rule file (check-rules must pass it as
shipped), points it at the local server, fires the alert it matches and
asserts exactly what reached the tool.

Python 3 standard library only.
"""

import http.client
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import harness
from harness import SCALE, Server
from test_engine import alert

EXAMPLES = os.path.join(harness.SRC, "rules", "examples")


def load_recipe(name):
    with open(os.path.join(EXAMPLES, name)) as f:
        return json.load(f)


def wait_for(pred, timeout, what):
    end = time.monotonic() + timeout * SCALE
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("%s not reached within %.1fs" % (what, timeout * SCALE))


class Colour(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = self.server.colour.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def backend(case, colour):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Colour)
    srv.colour = colour
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    case.cleanups.append(srv.server_close)
    case.cleanups.append(srv.shutdown)
    return srv


class RecipeCase(unittest.TestCase):
    def setUp(self):
        if not harness.binary_available():
            self.fail(harness.skip_reason())
        self.tmp = tempfile.mkdtemp(prefix="recipe-")
        self.cleanups = []

    def tearDown(self):
        for c in reversed(self.cleanups):
            c()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def rollbackd(self, rules, config=None):
        srv = Server(config=dict({"dry_run": False}, **(config or {})))
        with open(os.path.join(srv.rules_dir, "recipe.json"), "w") as f:
            json.dump(rules, f)
        srv.start()
        self.cleanups.append(srv.cleanup)
        self.cleanups.append(lambda: srv.proc and srv.proc.poll() is None and srv.stop())
        return srv

    def fire(self, srv, labels, value="0.05"):
        p = harness.make_payload(alerts=[alert(labels, value=value)])
        r = srv.post_alerts(p)
        self.assertEqual(r.status, 200, r)
        return r.json()["decisions"][0]

    def wait_done(self, srv, inc_id, timeout=20):
        def done():
            r = srv.request("GET", "/v1/incidents/" + inc_id)
            i = r.json()
            if i.get("actions") and all(a.get("result") != "running" for a in i["actions"]) \
                    and i.get("state") not in ("acting", "pending"):
                return i
            return None
        return wait_for(done, timeout, "actions of %s finished" % inc_id)


class HAProxyTest(RecipeCase):
    def start_haproxy(self, blue_port, green_port):
        self.sock = os.path.join(self.tmp, "admin.sock")
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        cfg = os.path.join(self.tmp, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write("""global
    stats socket %s mode 600 level admin
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
frontend fe
    bind 127.0.0.1:%d
    default_backend checkout
backend checkout
    balance roundrobin
    server blue 127.0.0.1:%d
    server green 127.0.0.1:%d
""" % (self.sock, self.port, blue_port, green_port))
        self.haproxy_log = open(os.path.join(self.tmp, "haproxy.log"), "wb")
        self.cleanups.append(self.haproxy_log.close)
        proc = subprocess.Popen(["haproxy", "-db", "-f", cfg], stdout=self.haproxy_log,
                                stderr=subprocess.STDOUT)

        def stop():
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.cleanups.append(stop)
        wait_for(lambda: os.path.exists(self.sock) and self.get_colour(), 10, "haproxy up")

    def get_colour(self):
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            c.request("GET", "/", headers={"Connection": "close"})
            r = c.getresponse()
            body = r.read().decode()
            c.close()
            return body if r.status == 200 else None
        except OSError:
            return None

    def colours(self, n=20):
        return [self.get_colour() for _ in range(n)]

    def test_traffic_goes_only_to_the_old_colour(self):
        blue, green = backend(self, "blue"), backend(self, "green")
        self.start_haproxy(blue.server_address[1], green.server_address[1])
        before = self.colours()
        self.assertEqual(sorted(set(before)), ["blue", "green"], before)

        rules = load_recipe("haproxy.json")
        r = harness.run_cli(["check-rules", os.path.join(EXAMPLES, "haproxy.json")])
        self.assertEqual(r.returncode, 0, r)
        argv = rules["rules"][0]["actions"][0]["argv"]
        self.assertEqual(argv[0], "rules/examples/haproxy-switch.sh")
        argv[0] = os.path.join(EXAMPLES, "haproxy-switch.sh")
        argv.append(self.sock)
        srv = self.rollbackd(rules)
        d = self.fire(srv, {"alertname": "RollbackErrorRate", "balancer": "haproxy",
                            "service": "checkout", "old_colour": "blue",
                            "new_colour": "green"})
        self.assertEqual(d["outcome"], "acting", d)
        inc = self.wait_done(srv, d["incident"])
        self.assertEqual(inc["state"], "rolled_back", inc)
        self.assertEqual(inc["actions"][0]["exit_code"], 0)
        self.assertEqual(inc["actions"][0]["output"],
                         "haproxy-switch.sh: checkout: traffic back to blue, green in "
                         "maintenance\n")
        self.assertEqual(self.colours(), ["blue"] * 20)
        # HAProxy itself says so
        out = subprocess.run(["socat", "-t", "5", "stdio", "unix-connect:" + self.sock],
                             input=b"show servers state checkout\n", capture_output=True,
                             timeout=10).stdout.decode()
        rows = {l.split()[3]: l.split() for l in out.splitlines()
                if l and l[0].isdigit() and len(l.split()) > 6}
        # srv_admin_state (column 7): 1 = forced maintenance
        self.assertEqual(rows["green"][6], "1", out)
        self.assertEqual(rows["blue"][6], "0", out)

    def test_unknown_server_fails_the_action(self):
        blue, green = backend(self, "blue"), backend(self, "green")
        self.start_haproxy(blue.server_address[1], green.server_address[1])
        r = subprocess.run([os.path.join(EXAMPLES, "haproxy-switch.sh"), "checkout", "blue",
                            "purple", self.sock], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1, r)
        self.assertEqual(r.stderr.strip(), "haproxy-switch.sh: HAProxy refused: No such server.")
        r = subprocess.run([os.path.join(EXAMPLES, "haproxy-switch.sh"), "checkout", "blue",
                            "green;x", self.sock], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2, r)
        self.assertEqual(r.stderr.strip(),
                         "haproxy-switch.sh: refusing name 'green;x' (expected [A-Za-z0-9._-]+)")
        self.assertEqual(sorted(set(self.colours())), ["blue", "green"])


class Recorder(http.server.BaseHTTPRequestHandler):
    """Records every request; the vendor object answers it."""

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        req = {"method": self.command, "path": self.path,
               "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
        self.server.requests.append(req)
        status, obj = self.server.vendor.answer(req)
        out = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = handle_any

    def log_message(self, *a):
        pass


def stand_in(case, vendor):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    srv.vendor = vendor
    srv.requests = []
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    case.cleanups.append(srv.server_close)
    case.cleanups.append(srv.shutdown)
    srv.url = "http://127.0.0.1:%d" % srv.server_address[1]
    return srv


def merge_patch(target, patch):
    """RFC 7386."""
    if not isinstance(patch, dict):
        return patch
    if not isinstance(target, dict):
        target = {}
    out = dict(target)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


class ArgoCD:
    """Argo CD's REST API (server/application: Patch, Rollback) as its docs
    and swagger describe it: bearer token; errors as {"error","code",
    "message"} with gRPC codes; PATCH takes {"name","patch","patchType"}
    and answers the Application; rollback takes {"name","id","prune",
    "dryRun"} (id an int64, a JSON string or number by proto3's JSON
    mapping) and is refused while automated sync is on."""

    def __init__(self, token, forbid_patch=False):
        self.token = token
        self.forbid_patch = forbid_patch
        self.apps = {"checkout": {
            "metadata": {"name": "checkout", "namespace": "argocd"},
            "spec": {"syncPolicy": {"automated": {"prune": True, "selfHeal": True}}},
            "status": {"history": [{"id": 40, "revision": "aaa"}, {"id": 41, "revision": "bbb"},
                                   {"id": 42, "revision": "ccc"}],
                       "sync": {"revision": "ccc"}}}}
        self.rolled_back_to = None

    @staticmethod
    def err(status, code, msg):
        return status, {"error": msg, "code": code, "message": msg}

    def answer(self, req):
        if req["headers"].get("authorization") != "Bearer " + self.token:
            return self.err(401, 16, "no session information")
        m = re.fullmatch(r"/api/v1/applications/([a-z0-9-]+)(/rollback)?", req["path"])
        if not m:
            return self.err(404, 5, "Not Found")
        app = self.apps.get(m.group(1))
        if app is None:
            return self.err(404, 5, 'applications.argoproj.io "%s" not found' % m.group(1))
        try:
            body = json.loads(req["body"] or b"{}")
        except ValueError:
            return self.err(400, 3, "invalid JSON")
        if req["method"] == "PATCH" and not m.group(2):
            if self.forbid_patch:
                return self.err(403, 7, "permission denied: applications, update, "
                                "default/checkout, sub: rollbackd")
            if body.get("patchType") not in ("merge", "json") or \
                    not isinstance(body.get("patch"), str):
                return self.err(400, 3, "patchType must be merge or json, patch a string")
            app["spec"] = merge_patch(app["spec"], json.loads(body["patch"]).get("spec", {}))
            return 200, app
        if req["method"] == "POST" and m.group(2):
            if (app["spec"].get("syncPolicy") or {}).get("automated"):
                return self.err(400, 9, "rollback cannot be initiated when auto-sync is enabled")
            hid = body.get("id")
            if isinstance(hid, str) and hid.isdigit():
                hid = int(hid)
            if not isinstance(hid, int) or not any(h["id"] == hid
                                                   for h in app["status"]["history"]):
                return self.err(400, 9, "application %s does not have deployment with id %s"
                                % (m.group(1), hid))
            self.rolled_back_to = hid
            return 200, app
        return self.err(405, 12, "method not allowed")


class Kubernetes:
    """The Kubernetes API server for merge patches: bearer token, Content-Type
    application/merge-patch+json (415 otherwise), the object back on 200,
    a Status object on errors."""

    def __init__(self, token, objects):
        self.token = token
        self.objects = objects  # path -> object

    @staticmethod
    def status(code, reason, msg):
        return code, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                      "status": "Failure", "message": msg, "reason": reason, "code": code}

    def answer(self, req):
        if req["headers"].get("authorization") != "Bearer " + self.token:
            return self.status(401, "Unauthorized", "Unauthorized")
        if req["method"] != "PATCH":
            return self.status(405, "MethodNotAllowed", "the server does not allow this method")
        if req["headers"].get("content-type") != "application/merge-patch+json":
            return self.status(415, "UnsupportedMediaType",
                               "the body of the request was in an unknown format - accepted "
                               "media types include: application/json-patch+json, "
                               "application/merge-patch+json, application/apply-patch+yaml")
        path = req["path"]
        sub = path.endswith("/status")
        key = path[:-len("/status")] if sub else path
        obj = self.objects.get(key)
        if obj is None:
            return self.status(404, "NotFound", "%s not found" % key.rsplit("/", 1)[-1])
        patch = json.loads(req["body"])
        if sub:  # the status subresource changes only status
            obj["status"] = merge_patch(obj.get("status"), patch.get("status", {}))
        else:
            patch.pop("status", None)
            self.objects[key] = obj = merge_patch(obj, patch)
        return 200, obj


class Unleash:
    """Unleash's Admin API: Authorization is the admin token itself;
    POST /api/admin/projects/{p}/features/{f}/environments/{e}/off."""

    def __init__(self, token):
        self.token = token
        self.enabled = {("default", "new-checkout", "production"): True,
                        ("default", "new-checkout", "development"): True}

    def answer(self, req):
        if req["headers"].get("authorization") != self.token:
            return 401, {"name": "AuthenticationRequired", "message": "You must log in"}
        m = re.fullmatch(r"/api/admin/projects/([^/]+)/features/([^/]+)/environments/([^/]+)/(on|off)",
                         req["path"])
        if req["method"] != "POST" or not m:
            return 404, {"name": "NotFoundError", "message": "Could not find the route"}
        key = (m.group(1), m.group(2), m.group(3))
        if key not in self.enabled:
            return 404, {"name": "NotFoundError",
                         "message": "Could not find feature toggle %s" % m.group(2)}
        self.enabled[key] = m.group(4) == "on"
        return 200, {}


class HttpRecipeCase(RecipeCase):
    def secrets_config(self, **values):
        d = os.path.join(self.tmp, "secrets")
        os.makedirs(d, exist_ok=True)
        out = {}
        for k, v in values.items():
            p = os.path.join(d, k)
            with open(p, "w") as f:
                f.write(v + "\n")
            out[k] = {"file": p}
        return {"secrets": out}


class ArgoCDTest(HttpRecipeCase):
    TOKEN = "argocd-S3CR3T"

    def start(self, **kw):
        self.argo = ArgoCD(self.TOKEN, **kw)
        self.stand = stand_in(self, self.argo)
        cfg = self.secrets_config(argocd_url=self.stand.url, argocd_token=self.TOKEN)
        self.srv = self.rollbackd(load_recipe("argocd.json"), cfg)

    def change(self, prev="41"):
        body = {"target": "service=checkout", "revision": "42", "source": "argocd",
                "at": harness.rfc3339(delta_s=-300)}
        if prev:
            body["previous_revision"] = prev
        r = self.srv.request("POST", "/v1/changes", body=json.dumps(body).encode(),
                             headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 202, r)

    def labels(self):
        return {"alertname": "RollbackErrorRate", "deployer": "argocd", "service": "checkout"}

    def test_sync_off_then_rollback_to_the_previous_history_id(self):
        self.start()
        self.change()
        d = self.fire(self.srv, self.labels())
        self.assertEqual(d["outcome"], "acting", d)
        inc = self.wait_done(self.srv, d["incident"])
        self.assertEqual(inc["state"], "rolled_back", inc)
        reqs = self.stand.requests
        self.assertEqual([(r["method"], r["path"]) for r in reqs],
                         [("PATCH", "/api/v1/applications/checkout"),
                          ("POST", "/api/v1/applications/checkout/rollback")])
        self.assertEqual(json.loads(reqs[0]["body"]),
                         {"name": "checkout", "patchType": "merge",
                          "patch": '{"spec":{"syncPolicy":{"automated":null}}}'})
        self.assertEqual(json.loads(reqs[1]["body"]),
                         {"name": "checkout", "id": "41", "prune": False, "dryRun": False})
        self.assertEqual(reqs[1]["headers"]["content-type"], "application/json")
        self.assertEqual(self.argo.rolled_back_to, 41)
        self.assertNotIn("automated", self.argo.apps["checkout"]["spec"]["syncPolicy"])
        self.assertEqual([a["status_code"] for a in inc["actions"]], [200, 200])

    def test_sync_cannot_be_disabled_nothing_else_runs(self):
        self.start(forbid_patch=True)
        self.change()
        d = self.fire(self.srv, self.labels())
        inc = self.wait_done(self.srv, d["incident"])
        self.assertEqual(inc["state"], "action_failed", inc)
        self.assertEqual([(r["method"], r["path"]) for r in self.stand.requests],
                         [("PATCH", "/api/v1/applications/checkout")])
        self.assertEqual(len(inc["actions"]), 1, inc)
        self.assertEqual(inc["actions"][0]["status_code"], 403)
        self.assertIsNone(self.argo.rolled_back_to)

    def test_no_change_no_recent_change(self):
        self.start()
        d = self.fire(self.srv, self.labels())
        self.assertEqual(d["outcome"], "no_recent_change", d)
        self.assertEqual(self.stand.requests, [], "nothing reached Argo CD")

    def test_no_previous_id_nothing_runs(self):
        self.start()
        self.change(prev=None)
        d = self.fire(self.srv, self.labels())
        self.assertEqual(d["outcome"], "acting", d)
        inc = self.wait_done(self.srv, d["incident"])
        self.assertEqual(inc["state"], "action_failed")
        self.assertEqual(inc["actions"][0]["output"],
                         "template '{{change.previous_revision}}': the latest change to "
                         "'service=checkout' (revision '42') has no previous_revision")
        self.assertEqual(self.stand.requests, [], "nothing reached Argo CD")


class KubernetesRecipesTest(HttpRecipeCase):
    TOKEN = "kube-S3CR3T"

    def start(self, recipe, objects, env=None):
        self.kube = Kubernetes(self.TOKEN, objects)
        self.stand = stand_in(self, self.kube)
        cfg = self.secrets_config(kube_api=self.stand.url, kube_token=self.TOKEN)
        rules = load_recipe(recipe) if isinstance(recipe, str) else recipe
        self.srv = Server(config=dict({"dry_run": False}, **cfg), env=env)
        with open(os.path.join(self.srv.rules_dir, "recipe.json"), "w") as f:
            json.dump(rules, f)
        self.srv.start()
        self.cleanups.append(self.srv.cleanup)
        self.cleanups.append(lambda: self.srv.proc and self.srv.proc.poll() is None
                             and self.srv.stop())

    def test_argo_rollouts_abort(self):
        path = "/apis/argoproj.io/v1alpha1/namespaces/shop/rollouts/checkout"
        self.start("argo-rollouts.json", {path: {"kind": "Rollout", "spec": {"replicas": 4},
                                                 "status": {"phase": "Progressing"}}})
        d = self.fire(self.srv, {"alertname": "RollbackErrorRate", "deployer": "argo-rollouts",
                                 "namespace": "shop", "service": "checkout"})
        inc = self.wait_done(self.srv, d["incident"])
        self.assertEqual(inc["state"], "rolled_back", inc)
        (req,) = self.stand.requests
        self.assertEqual((req["method"], req["path"]), ("PATCH", path + "/status"))
        self.assertEqual(json.loads(req["body"]), {"status": {"abort": True}})
        self.assertEqual(self.kube.objects[path]["status"],
                         {"phase": "Progressing", "abort": True})
        self.assertEqual(self.kube.objects[path]["spec"], {"replicas": 4})

    def test_flux_suspend_then_undo(self):
        path = "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations/web"
        bindir = os.path.join(self.tmp, "bin")
        os.makedirs(os.path.join(bindir, "kubectl.state"))
        shutil.copy2(os.path.join(harness.SRC, "tests", "e2e", "fake_kubectl.sh"),
                     os.path.join(bindir, "kubectl"))
        with open(os.path.join(bindir, "kubectl.state", "shop_web.revisions"), "w") as f:
            f.write("4 5\n")
        rules = load_recipe("flux.json")
        argv = rules["rules"][0]["actions"][1]["argv"]
        # the rule names deploy/rollback.sh relative to the working directory
        self.assertEqual(argv[0], "deploy/rollback.sh")
        argv[0] = os.path.join(harness.SRC, "deploy", "rollback.sh")
        self.start(rules, {path: {"kind": "Kustomization", "spec": {"interval": "5m"}}},
                   env={"PATH": bindir + ":/usr/bin:/bin"})
        d = self.fire(self.srv, {"alertname": "RollbackErrorRate", "deployer": "flux",
                                 "namespace": "shop", "service": "web"})
        inc = self.wait_done(self.srv, d["incident"])
        (req,) = self.stand.requests
        self.assertEqual((req["method"], req["path"]), ("PATCH", path))
        self.assertEqual(req["headers"]["content-type"], "application/merge-patch+json")
        self.assertEqual(json.loads(req["body"]), {"spec": {"suspend": True}})
        self.assertEqual(self.kube.objects[path]["spec"], {"interval": "5m", "suspend": True})
        self.assertEqual(inc["state"], "rolled_back", inc)
        with open(os.path.join(bindir, "kubectl.log")) as f:
            undo = [l.split("\t")[2].strip() for l in f if "rollout undo" in l]
        self.assertEqual(undo, ["-n shop rollout undo deployment/web --to-revision=4"])

    def test_flux_not_suspended_nothing_else_runs(self):
        self.start("flux.json", {})  # no such Kustomization: 404
        d = self.fire(self.srv, {"alertname": "RollbackErrorRate", "deployer": "flux",
                                 "namespace": "shop", "service": "web"})
        inc = self.wait_done(self.srv, d["incident"])
        self.assertEqual(inc["state"], "action_failed", inc)
        self.assertEqual(len(inc["actions"]), 1)
        self.assertEqual(inc["actions"][0]["status_code"], 404)

    def test_service_selector_back_to_the_old_colour(self):
        path = "/api/v1/namespaces/shop/services/checkout"
        self.start("k8s-service-selector.json",
                   {path: {"kind": "Service", "spec": {"selector": {"app": "checkout",
                                                                    "colour": "green"},
                                                       "ports": [{"port": 80}]}}})
        d = self.fire(self.srv, {"alertname": "RollbackLatencyP95", "namespace": "shop",
                                 "service": "checkout", "old_colour": 'blue"x'}, value="0.9")
        inc = self.wait_done(self.srv, d["incident"])
        self.assertEqual(inc["state"], "rolled_back", inc)
        (req,) = self.stand.requests
        # a hostile label value stays one JSON string
        self.assertEqual(json.loads(req["body"]),
                         {"spec": {"selector": {"app": "checkout", "colour": 'blue"x'}}})
        self.assertEqual(self.kube.objects[path]["spec"],
                         {"selector": {"app": "checkout", "colour": 'blue"x'},
                          "ports": [{"port": 80}]})


class UnleashTest(HttpRecipeCase):
    TOKEN = "*:*.unleash-S3CR3T"

    def test_toggle_off_in_production_only(self):
        self.unleash = Unleash(self.TOKEN)
        stand = stand_in(self, self.unleash)
        srv = self.rollbackd(load_recipe("unleash.json"),
                             self.secrets_config(unleash_url=stand.url,
                                                 unleash_token=self.TOKEN))
        d = self.fire(srv, {"alertname": "RollbackErrorRate", "service": "checkout",
                            "flag": "new-checkout"})
        inc = self.wait_done(srv, d["incident"])
        self.assertEqual(inc["state"], "rolled_back", inc)
        (req,) = stand.requests
        self.assertEqual((req["method"], req["path"]),
                         ("POST", "/api/admin/projects/default/features/new-checkout/"
                          "environments/production/off"))
        self.assertEqual(req["headers"]["authorization"], self.TOKEN)
        self.assertEqual(self.unleash.enabled,
                         {("default", "new-checkout", "production"): False,
                          ("default", "new-checkout", "development"): True})


class FlagdTest(RecipeCase):
    FLAGS = {
        "$schema": "https://flagd.dev/schema/v0/flags.json",
        "flags": {
            "new-checkout": {"state": "ENABLED", "variants": {"on": True, "off": False},
                             "defaultVariant": "on",
                             "targeting": {"fractional": [["on", 50], ["off", 50]]}},
            "dark-mode": {"state": "ENABLED", "variants": {"on": True, "off": False},
                          "defaultVariant": "on"},
        },
    }

    def test_flag_file_rewritten_to_off(self):
        flags = os.path.join(self.tmp, "flags.json")
        with open(flags, "w") as f:
            json.dump(self.FLAGS, f)
        rules = load_recipe("flagd.json")
        argv = rules["rules"][0]["actions"][0]["argv"]
        self.assertEqual(argv[:2], ["rules/examples/flagd-flag-off.py", "/etc/flagd/flags.json"])
        argv[0] = os.path.join(EXAMPLES, "flagd-flag-off.py")
        argv[1] = flags
        srv = self.rollbackd(rules)
        d = self.fire(srv, {"alertname": "RollbackErrorRate", "service": "checkout",
                            "flag": "new-checkout"})
        inc = self.wait_done(srv, d["incident"])
        self.assertEqual(inc["state"], "rolled_back", inc)
        self.assertEqual(inc["actions"][0]["output"],
                         "flagd-flag-off.py: new-checkout now serves 'off' (false)\n")
        with open(flags) as f:
            got = json.load(f)
        want = json.loads(json.dumps(self.FLAGS))
        want["flags"]["new-checkout"] = {"state": "ENABLED",
                                         "variants": {"on": True, "off": False},
                                         "defaultVariant": "off"}
        self.assertEqual(got, want)
        self.assertEqual([n for n in os.listdir(self.tmp) if n.startswith(".flags-")], [])
        r = subprocess.run([argv[0], flags, "new-checkout"], capture_output=True, text=True)
        self.assertEqual((r.returncode, r.stdout), (0, "flagd-flag-off.py: new-checkout is "
                                                       "already off\n"))
        r = subprocess.run([argv[0], flags, "nope"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 4)
        self.assertEqual(r.stderr.strip(), "flagd-flag-off.py: %s has no flag 'nope'" % flags)


class ExamplesValidTest(unittest.TestCase):
    def test_every_example_passes_check_rules(self):
        for name in sorted(os.listdir(EXAMPLES)):
            if name.endswith(".json"):
                r = harness.run_cli(["check-rules", os.path.join(EXAMPLES, name)])
                self.assertEqual((r.returncode, r.stdout.decode().strip()), (0, "ok"), name)


if __name__ == "__main__":
    unittest.main()
