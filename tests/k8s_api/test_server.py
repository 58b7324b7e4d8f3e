"""Self-test of the fake Kubernetes API server (tests/k8s_api/server.py).

Runs the server as a subprocess, the way the Rust end-to-end tests do, and
checks it answers like a kube-apiserver: lists with selectors and paging,
404/401/403/503 Status objects, watches (ADDED/MODIFIED/DELETED, bookmarks,
timeouts, 410 Gone and relist), the control endpoints, every scenario file,
kubectl against it when kubectl is installed, and clean shutdown.

    python3 -m unittest tests/k8s_api/test_server.py    (from the repository root)

Standard library only.
"""

import http.client
import json
import os
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "server.py")
SCENARIOS = os.path.join(HERE, "scenarios")
TOKEN = "test-token"
STARTED_PIDS = []


def load_scenario(name):
    with open(os.path.join(SCENARIOS, name + ".json"), encoding="utf-8") as f:
        return json.load(f)


class Server:
    """One server subprocess; stop() asserts it exits cleanly."""

    def __init__(self, scenario="all", *extra, tls=False, stdin_eof=True):
        self.dir = tempfile.mkdtemp(prefix="k8s-api-test-")
        self.kubeconfig = os.path.join(self.dir, "kubeconfig")
        self.stderr = open(os.path.join(self.dir, "stderr"), "w+b")
        args = [sys.executable, SERVER, "--port", "0", "--kubeconfig-out", self.kubeconfig,
                "--bookmark-interval", "0.5"]
        if scenario:
            args += ["--scenario", scenario]
        if tls:
            args.append("--tls")
        if stdin_eof:
            args.append("--exit-on-stdin-eof")
        args += list(extra)
        self.tls = tls
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr)
        STARTED_PIDS.append(self.proc.pid)
        r, _, _ = select.select([self.proc.stdout], [], [], 15)
        line = self.proc.stdout.readline().decode() if r else ""
        if not line.startswith("READY "):
            self.proc.kill()
            self.proc.wait()
            self.stderr.seek(0)
            raise RuntimeError(f"server did not start: {line!r} {self.stderr.read()!r}")
        self.port = int(line.split()[1])

    def conn(self, timeout=10):
        if self.tls:
            ctx = ssl.create_default_context(cafile=os.path.join(HERE, "tls", "ca.crt"))
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, context=ctx)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, token=TOKEN, headers=None):
        c = self.conn()
        try:
            hdrs = dict(headers or {})
            if token is not None:
                hdrs["Authorization"] = f"Bearer {token}"
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                hdrs["Content-Type"] = "application/json"
            c.request(method, path, body=data, headers=hdrs)
            resp = c.getresponse()
            raw = resp.read()
            return resp.status, raw, resp
        finally:
            c.close()

    def get(self, path, **kw):
        status, raw, _ = self.request("GET", path, **kw)
        return status, json.loads(raw)

    def control(self, method, name, body=None):
        status, raw, _ = self.request(method, "/_test/" + name, body=body, token=None)
        return status, json.loads(raw)

    def watch(self, path, **params):
        return Watch(self, path, params)

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("server did not stop within %ss" % timeout)
        finally:
            for f in (self.proc.stdin, self.proc.stdout, self.stderr):
                f.close()
            shutil.rmtree(self.dir, ignore_errors=True)
        if rc != 0:
            raise AssertionError(f"server exited with {rc}")


class Watch:
    """A streaming watch request; events() yields decoded lines."""

    def __init__(self, server, path, params):
        query = urllib.parse.urlencode({"watch": "1", **params})
        self.conn = server.conn(timeout=10)
        self.conn.request("GET", f"{path}?{query}", headers={"Authorization": f"Bearer {TOKEN}"})
        self.sock = self.conn.sock
        self.resp = self.conn.getresponse()

    def next(self, timeout=10):
        self.sock.settimeout(timeout)
        line = self.resp.readline()
        if not line:
            return None   # stream ended
        return json.loads(line)

    def next_of(self, types, timeout=10):
        """Skip events whose type is not in types (e.g. bookmarks)."""
        deadline = time.monotonic() + timeout
        while True:
            ev = self.next(max(0.1, deadline - time.monotonic()))
            if ev is None or ev["type"] in types:
                return ev

    def close(self):
        self.conn.close()


def new_pod(name, node="node-1", labels=None, phase="Running"):
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": "default", "labels": labels or {"app": "t"}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
            "status": {"phase": phase}}


class ApiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server("all")
        cls.scenario = load_scenario("all")

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def tearDown(self):
        self.srv.control("POST", "mode", {"forbidden": False, "down": False})

    def pod_names(self, path):
        status, body = self.srv.get(path)
        self.assertEqual(status, 200, body)
        return [p["metadata"]["name"] for p in body["items"]]

    # -- reads --

    def test_version_and_discovery(self):
        status, v = self.srv.get("/version")
        self.assertEqual(status, 200)
        self.assertTrue(v["gitVersion"].startswith("v1."))
        self.assertEqual(self.srv.get("/api")[1]["versions"], ["v1"])
        groups = self.srv.get("/apis")[1]
        self.assertEqual(groups["kind"], "APIGroupList")
        self.assertIn("batch", [g["name"] for g in groups["groups"]])
        core = {r["name"]: r for r in self.srv.get("/api/v1")[1]["resources"]}
        self.assertTrue(core["pods"]["namespaced"])
        self.assertIn("watch", core["pods"]["verbs"])
        batch = {r["name"] for r in self.srv.get("/apis/batch/v1")[1]["resources"]}
        self.assertTrue({"jobs", "cronjobs"} <= batch)

    def test_node(self):
        status, node = self.srv.get("/api/v1/nodes/node-1")
        self.assertEqual((status, node["kind"], node["metadata"]["name"]), (200, "Node", "node-1"))
        self.assertNotIn("managedFields", node["metadata"])

    def test_list_pods_on_node(self):
        status, body = self.srv.get("/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1")
        self.assertEqual(status, 200)
        self.assertEqual((body["kind"], body["apiVersion"]), ("PodList", "v1"))
        self.assertTrue(body["metadata"]["resourceVersion"].isdigit())
        expected = sorted(o["metadata"]["name"] for o in self.scenario["objects"] if o["kind"] == "Pod")
        self.assertEqual([p["metadata"]["name"] for p in body["items"]], expected)
        # Like a real apiserver, list items carry no kind/apiVersion.
        self.assertNotIn("kind", body["items"][0])
        status, body = self.srv.get("/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-2")
        self.assertEqual((status, body["items"]), (200, []))

    def test_field_selectors(self):
        self.assertEqual(self.pod_names("/api/v1/pods?fieldSelector=metadata.name%3Dindexed-0-k4tkj"),
                         ["indexed-0-k4tkj"])
        names = self.pod_names("/api/v1/namespaces/default/pods?fieldSelector="
                               + urllib.parse.quote("spec.nodeName=node-1,status.phase!=Failed"))
        self.assertIn("over-provisioned-7k2l6", names)
        self.assertNotIn("exit-nonzero-szsld", names)
        status, body = self.srv.get("/api/v1/pods?fieldSelector=spec.foo%3Dbar")
        self.assertEqual((status, body["kind"], body["reason"]), (400, "Status", "BadRequest"))
        self.assertEqual(body["message"], "field label not supported: spec.foo")

    def test_label_selectors(self):
        q = lambda s: "/api/v1/pods?labelSelector=" + urllib.parse.quote(s)  # noqa: E731
        self.assertEqual(len(self.pod_names(q("job-name=exit-nonzero"))), 6)
        self.assertEqual(len(self.pod_names(q("batch.kubernetes.io/job-name==exit-nonzero"))), 6)
        self.assertEqual(self.pod_names(q("app")), ["bare-logger-7x2kq"])
        self.assertEqual(len(self.pod_names(q("!job-name"))), 1)
        self.assertEqual(self.pod_names(q("job-name=indexed,batch.kubernetes.io/job-completion-index=1")),
                         ["indexed-1-bbstw", "indexed-1-pwkgk"])
        self.assertEqual(len(self.pod_names(q("batch.kubernetes.io/job-completion-index in (1, 2)"))), 5)
        self.assertEqual(len(self.pod_names(q("job-name in (indexed),batch.kubernetes.io/job-completion-index notin (1)"))), 1)
        self.assertEqual(len(self.pod_names(q("job-name!=exit-nonzero"))), 12)
        status, body = self.srv.get(q("a=b=c"))
        self.assertEqual((status, body["reason"]), (400, "BadRequest"))

    def test_namespaces(self):
        self.assertEqual(len(self.pod_names("/api/v1/namespaces/default/pods")), 18)
        self.assertEqual(self.pod_names("/api/v1/namespaces/other/pods"), [])

    def test_paging(self):
        status, first = self.srv.get("/api/v1/pods?limit=5")
        self.assertEqual(len(first["items"]), 5)
        self.assertEqual(first["metadata"]["remainingItemCount"], 13)
        names, token, rv = [], first["metadata"].get("continue"), first["metadata"]["resourceVersion"]
        names += [p["metadata"]["name"] for p in first["items"]]
        while token:
            status, page = self.srv.get("/api/v1/pods?limit=5&continue=" + urllib.parse.quote(token))
            self.assertEqual(status, 200, page)
            self.assertEqual(page["metadata"]["resourceVersion"], rv)
            names += [p["metadata"]["name"] for p in page["items"]]
            token = page["metadata"].get("continue")
        self.assertEqual(names, self.pod_names("/api/v1/pods"))
        status, body = self.srv.get("/api/v1/pods?limit=5&continue=garbage")
        self.assertEqual(status, 400)

    def test_list_resource_version_semantics(self):
        rv = self.srv.get("/api/v1/pods")[1]["metadata"]["resourceVersion"]
        self.srv.control("POST", "apply", new_pod("rv-probe"))
        try:
            status, old = self.srv.get(f"/api/v1/pods?resourceVersion={rv}&resourceVersionMatch=Exact")
            self.assertEqual(status, 200, old)
            self.assertEqual(old["metadata"]["resourceVersion"], rv)
            self.assertNotIn("rv-probe", [p["metadata"]["name"] for p in old["items"]])
            status, new = self.srv.get(f"/api/v1/pods?resourceVersion={rv}&resourceVersionMatch=NotOlderThan")
            self.assertIn("rv-probe", [p["metadata"]["name"] for p in new["items"]])
            self.assertGreater(int(new["metadata"]["resourceVersion"]), int(rv))
            status, zero = self.srv.get("/api/v1/pods?resourceVersion=0")
            self.assertEqual(status, 200)
            status, bad = self.srv.get("/api/v1/pods?resourceVersionMatch=Exact")
            self.assertEqual((status, bad["reason"]), (422, "Invalid"))
            status, gone = self.srv.get("/api/v1/pods?resourceVersion=5&resourceVersionMatch=Exact")
            self.assertEqual((status, gone["code"]), (410, 410))
        finally:
            self.srv.control("POST", "delete", {"kind": "Pod", "namespace": "default", "name": "rv-probe"})

    def test_get_job_cronjob_and_404(self):
        status, job = self.srv.get("/apis/batch/v1/namespaces/default/jobs/exit-nonzero")
        self.assertEqual((status, job["kind"], job["apiVersion"]), (200, "Job", "batch/v1"))
        self.assertEqual(job["spec"]["backoffLimit"], 6)
        status, cj = self.srv.get("/apis/batch/v1/namespaces/default/cronjobs/cron-fail")
        self.assertEqual((status, cj["kind"]), (200, "CronJob"))
        status, raw, _ = self.srv.request("GET", "/apis/batch/v1/namespaces/default/jobs/cron-fail-29929854")
        self.assertEqual(status, 404)
        self.assertEqual(json.loads(raw), {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": 'jobs.batch "cron-fail-29929854" not found', "reason": "NotFound",
            "details": {"name": "cron-fail-29929854", "group": "batch", "kind": "jobs"}, "code": 404})
        status, body = self.srv.get("/api/v1/namespaces/default/pods/nope")
        self.assertEqual(body["message"], 'pods "nope" not found')
        status, jobs = self.srv.get("/apis/batch/v1/namespaces/default/jobs?labelSelector="
                                    + urllib.parse.quote("job-name=indexed-pi"))
        self.assertEqual((jobs["kind"], [j["metadata"]["name"] for j in jobs["items"]]),
                         ("JobList", ["indexed-pi"]))
        self.assertEqual(self.srv.get("/api/v1/nope")[0], 404)

    def test_go_style_json(self):
        status, raw, resp = self.srv.request("GET", "/apis/batch/v1/namespaces/default/jobs/exit-nonzero")
        self.assertIn(b"sleep 30 \\u0026\\u0026 exit 1", raw)
        self.assertTrue(raw.endswith(b"}\n"))
        self.assertEqual(resp.getheader("Content-Type"), "application/json")

    # -- auth and modes --

    def test_unauthorized(self):
        for token in (None, "wrong"):
            status, raw, _ = self.srv.request("GET", "/api/v1/pods", token=token)
            self.assertEqual(status, 401)
            self.assertEqual(json.loads(raw), {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                               "status": "Failure", "message": "Unauthorized",
                                               "reason": "Unauthorized", "code": 401})

    def test_forbidden_mode(self):
        self.srv.control("POST", "mode", {"forbidden": True})
        status, body = self.srv.get("/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1")
        self.assertEqual((status, body["reason"], body["code"]), (403, "Forbidden", 403))
        self.assertIn('cannot list resource "pods" in API group "" at the cluster scope', body["message"])
        status, body = self.srv.get("/apis/batch/v1/namespaces/default/jobs/exit-nonzero")
        self.assertIn('jobs.batch "exit-nonzero" is forbidden', body["message"])
        self.assertEqual(body["details"], {"name": "exit-nonzero", "group": "batch", "kind": "jobs"})
        self.srv.control("POST", "mode", {"forbidden": False})
        self.assertEqual(self.srv.get("/api/v1/pods")[0], 200)

    def test_down_mode(self):
        self._wait_open_watches(0)
        # A raw socket, because http.client reports a truncated chunked
        # stream as a normal end.
        sock = socket.create_connection(("127.0.0.1", self.srv.port), timeout=5)
        sock.sendall(f"GET /api/v1/pods?watch=1&resourceVersion={self.current_rv()} HTTP/1.1\r\n"
                     f"Host: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
        self._wait_open_watches(1)
        self.srv.control("POST", "mode", {"down": True})
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
        finally:
            sock.close()
        self.assertTrue(received.startswith(b"HTTP/1.1 200 OK\r\n"), received)
        self.assertFalse(received.endswith(b"0\r\n\r\n"), "the watch must be cut, not ended")
        status, body = self.srv.get("/api/v1/pods")
        self.assertEqual((status, body["reason"]), (503, "ServiceUnavailable"))
        self.srv.control("POST", "mode", {"down": "reset"})
        with self.assertRaises((ConnectionError, http.client.RemoteDisconnected, OSError)):
            self.srv.get("/api/v1/pods")
        self.srv.control("POST", "mode", {"down": False})
        self.assertEqual(self.srv.get("/api/v1/pods")[0], 200)

    # -- watch --

    def current_rv(self):
        return self.srv.get("/api/v1/pods?limit=1")[1]["metadata"]["resourceVersion"]

    def _wait_open_watches(self, n, timeout=5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.srv.control("GET", "status")[1]["openWatches"]) == n:
                return
            time.sleep(0.05)
        self.fail(f"expected {n} open watches")

    def test_watch_added_modified_deleted(self):
        self._wait_open_watches(0)
        rv = self.current_rv()
        w = self.srv.watch("/api/v1/pods", resourceVersion=rv, fieldSelector="spec.nodeName=node-1",
                           allowWatchBookmarks="true", timeoutSeconds="30")
        try:
            self.assertEqual(w.resp.status, 200)
            self.assertEqual(w.resp.getheader("Transfer-Encoding"), "chunked")
            self._wait_open_watches(1)
            self.srv.control("POST", "apply", new_pod("elsewhere", node="node-2"))
            status, created = self.srv.control("POST", "apply", new_pod("watch-me"))
            self.assertEqual(status, 201)
            ev = w.next_of({"ADDED", "MODIFIED", "DELETED", "ERROR"})
            self.assertEqual((ev["type"], ev["object"]["metadata"]["name"]), ("ADDED", "watch-me"))
            self.assertEqual((ev["object"]["kind"], ev["object"]["apiVersion"]), ("Pod", "v1"))
            self.assertGreater(int(ev["object"]["metadata"]["resourceVersion"]), int(rv))
            self.assertEqual(ev["object"]["metadata"]["uid"], created["metadata"]["uid"])
            done = new_pod("watch-me", phase="Succeeded")
            self.assertEqual(self.srv.control("POST", "apply", done)[0], 200)
            ev = w.next_of({"ADDED", "MODIFIED", "DELETED", "ERROR"})
            self.assertEqual((ev["type"], ev["object"]["status"]["phase"]), ("MODIFIED", "Succeeded"))
            self.assertEqual(ev["object"]["metadata"]["uid"], created["metadata"]["uid"])
            status, _ = self.srv.control("POST", "delete", {"kind": "Pod", "namespace": "default",
                                                            "name": "watch-me"})
            self.assertEqual(status, 200)
            ev = w.next_of({"ADDED", "MODIFIED", "DELETED", "ERROR"})
            self.assertEqual((ev["type"], ev["object"]["metadata"]["name"]), ("DELETED", "watch-me"))
            # Moving out of the selection is a DELETED for this watcher.
            self.srv.control("POST", "apply", new_pod("mover"))
            self.assertEqual(w.next_of({"ADDED"})["object"]["metadata"]["name"], "mover")
            self.srv.control("POST", "apply", new_pod("mover", node="node-2"))
            ev = w.next_of({"ADDED", "MODIFIED", "DELETED"})
            self.assertEqual((ev["type"], ev["object"]["spec"]["nodeName"]), ("DELETED", "node-1"))
        finally:
            w.close()
            for name in ("elsewhere", "mover"):
                self.srv.control("POST", "delete", {"kind": "Pod", "namespace": "default", "name": name})
        self.assertEqual(self.srv.control("POST", "delete", {"kind": "Pod", "name": "watch-me"})[0], 404)

    def test_bookmarks(self):
        rv = self.current_rv()
        w = self.srv.watch("/api/v1/pods", resourceVersion=rv, allowWatchBookmarks="true")
        try:
            ev = w.next(5)
            self.assertEqual(ev["type"], "BOOKMARK")
            self.assertEqual(ev["object"]["kind"], "Pod")
            self.assertEqual(ev["object"]["apiVersion"], "v1")
            self.assertEqual(ev["object"]["metadata"]["resourceVersion"], rv)
            self.assertNotIn("name", ev["object"]["metadata"])
        finally:
            w.close()

    def test_no_bookmarks_unless_asked_and_timeout(self):
        started = time.monotonic()
        w = self.srv.watch("/api/v1/pods", resourceVersion=self.current_rv(), timeoutSeconds="1")
        try:
            self.assertIsNone(w.next(5))   # no events, then the server closes at the timeout
        finally:
            w.close()
        self.assertLess(time.monotonic() - started, 4)

    def test_watch_from_zero_sends_current_state(self):
        w = self.srv.watch("/apis/batch/v1/namespaces/default/jobs", resourceVersion="0", timeoutSeconds="1")
        try:
            names = []
            while (ev := w.next(5)) is not None:
                self.assertEqual(ev["type"], "ADDED")
                names.append(ev["object"]["metadata"]["name"])
            self.assertEqual(names, sorted(o["metadata"]["name"] for o in self.scenario["objects"]
                                           if o["kind"] == "Job"))
        finally:
            w.close()

    def test_streaming_list(self):
        w = self.srv.watch("/api/v1/pods", sendInitialEvents="true", resourceVersionMatch="NotOlderThan",
                           allowWatchBookmarks="true", fieldSelector="metadata.name=bare-logger-7x2kq",
                           timeoutSeconds="5")
        try:
            self.assertEqual(w.next()["object"]["metadata"]["name"], "bare-logger-7x2kq")
            bm = w.next()
            self.assertEqual(bm["type"], "BOOKMARK")
            self.assertEqual(bm["object"]["metadata"]["annotations"], {"k8s.io/initial-events-end": "true"})
        finally:
            w.close()

    def test_expire_open_watch_then_relist(self):
        self._wait_open_watches(0)
        old_rv = self.current_rv()
        self.srv.control("POST", "apply", new_pod("before-expiry"))
        rv = self.current_rv()
        w = self.srv.watch("/api/v1/pods", resourceVersion=rv, allowWatchBookmarks="true")
        try:
            self._wait_open_watches(1)
            status, out = self.srv.control("POST", "expire-watches")
            self.assertEqual(out["expiredOpenWatches"], 1)
            ev = w.next_of({"ERROR"})
            self.assertEqual(ev["object"]["code"], 410)
            self.assertEqual(ev["object"]["reason"], "Expired")
            self.assertTrue(ev["object"]["message"].startswith("too old resource version"))
            self.assertIsNone(w.next(5))
        finally:
            w.close()
        # Everything up to the expiry is compacted: resuming from before it is
        # 410 Gone; the 410 was spent on the open watch, so a relist's RV works.
        self.srv.control("POST", "apply", new_pod("after-expiry"))
        try:
            w = self.srv.watch("/api/v1/pods", resourceVersion=old_rv)
            ev = w.next(5)
            self.assertEqual((ev["type"], ev["object"]["code"]), ("ERROR", 410))
            w.close()
            fresh = self.current_rv()
            w = self.srv.watch("/api/v1/pods", resourceVersion=fresh)
            self._wait_open_watches(1)
            self.srv.control("POST", "apply", new_pod("after-relist"))
            ev = w.next_of({"ADDED", "ERROR"})
            self.assertEqual((ev["type"], ev["object"]["metadata"]["name"]), ("ADDED", "after-relist"))
            w.close()
        finally:
            for name in ("before-expiry", "after-expiry", "after-relist"):
                self.srv.control("POST", "delete", {"kind": "Pod", "name": name})

    def test_expire_next_watch_once(self):
        self._wait_open_watches(0)
        status, out = self.srv.control("POST", "expire-watches", {"compact": False})
        self.assertEqual((out["expiredOpenWatches"], out["pendingForNextWatch"]), (0, True))
        rv = self.current_rv()
        w = self.srv.watch("/api/v1/pods", resourceVersion=rv)
        ev = w.next(5)
        self.assertEqual((ev["type"], ev["object"]["code"]), ("ERROR", 410))
        w.close()
        w = self.srv.watch("/api/v1/pods", resourceVersion=rv, allowWatchBookmarks="true")
        self.assertEqual(w.next(5)["type"], "BOOKMARK")   # no second 410
        w.close()

    def test_request_log(self):
        self.srv.control("DELETE", "requests")
        self.srv.get("/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1")
        self.srv.get("/apis/batch/v1/namespaces/default/jobs/indexed")
        status, log = self.srv.control("GET", "requests")
        reqs = log["requests"]
        self.assertEqual([(r["verb"], r["path"]) for r in reqs],
                         [("list", "/api/v1/pods"), ("get", "/apis/batch/v1/namespaces/default/jobs/indexed")])
        self.assertEqual(reqs[0]["query"], {"fieldSelector": "spec.nodeName=node-1"})
        self.assertEqual((reqs[0]["status"], reqs[0]["resource"]), (200, "pods"))
        self.assertEqual((reqs[1]["namespace"], reqs[1]["name"]), ("default", "indexed"))
        status, log = self.srv.control("GET", f"requests?since={reqs[0]['seq']}")
        self.assertEqual(len(log["requests"]), 1)

    def test_scenario_endpoint(self):
        status, s = self.srv.control("GET", "scenario")
        self.assertEqual(s["name"], "all")
        self.assertIn("cron-fail-29929854", [o["metadata"]["name"] for o in s["goneObjects"]])


class ScenarioFilesTest(unittest.TestCase):
    NAMES = ["seed-exit-nonzero", "seed-invalid-secret", "seed-over-provisioned", "indexed",
             "cronjob", "bare-pod", "all"]

    def test_every_scenario_serves_its_objects(self):
        for name in self.NAMES:
            with self.subTest(scenario=name):
                s = load_scenario(name)
                srv = Server(name)
                try:
                    pods = [o for o in s["objects"] if o["kind"] == "Pod"]
                    status, body = srv.get("/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1")
                    self.assertEqual(len(body["items"]), len(pods))
                    served = {p["metadata"]["uid"]: p for p in body["items"]}
                    for row in s["expected"]:
                        pod = served[row["podUid"]]
                        self.assertEqual(pod["metadata"]["name"], row["pod"])
                        if row["job"]:
                            refs = pod["metadata"]["ownerReferences"]
                            self.assertEqual((refs[0]["name"], refs[0]["uid"]), (row["job"], row["jobUid"]))
                            self.assertEqual(pod["metadata"]["labels"]["batch.kubernetes.io/job-name"], row["job"])
                            self.assertEqual(pod["metadata"]["labels"]["job-name"], row["job"])
                            self.assertEqual(pod["metadata"]["labels"]["batch.kubernetes.io/controller-uid"],
                                             row["jobUid"])
                            code, job = srv.get(f"/apis/batch/v1/namespaces/default/jobs/{row['job']}")
                            self.assertEqual(code, 200 if row["jobInApi"] else 404)
                        if row["completionIndex"] is not None:
                            self.assertEqual(pod["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"],
                                             str(row["completionIndex"]))
                    for gone in s["goneObjects"]:
                        kind = gone["kind"].lower() + "s"
                        prefix = "/apis/batch/v1" if gone["apiVersion"] == "batch/v1" else "/api/v1"
                        code, _ = srv.get(f"{prefix}/namespaces/default/{kind}/{gone['metadata']['name']}")
                        self.assertEqual(code, 404)
                    # Served resourceVersions are the ones written in the file.
                    for o in s["objects"]:
                        if o["kind"] == "Pod":
                            got = served[o["metadata"]["uid"]]["metadata"]["resourceVersion"]
                            self.assertEqual(got, o["metadata"]["resourceVersion"])
                finally:
                    srv.stop()

    def test_expected_attempts(self):
        rows = {r["pod"]: r for r in load_scenario("all")["expected"]}
        self.assertEqual([rows[f"exit-nonzero-{s}"]["attempt"]
                          for s in ("szsld", "nq9nb", "bg2hf", "9mggl", "lklmw", "txl6b")], [1, 2, 3, 4, 5, 6])
        self.assertEqual((rows["indexed-1-pwkgk"]["attempt"], rows["indexed-1-bbstw"]["attempt"]), (1, 2))
        self.assertEqual(rows["indexed-pi-2-sbznc"]["attempt"], 2)   # from the failure-count annotation
        self.assertFalse(rows["cron-fail-29929854-4mr6g"]["jobInApi"])
        self.assertEqual(rows["cron-fail-29929855-64rlg"]["cronJob"], "cron-fail")
        self.assertIsNone(rows["bare-logger-7x2kq"]["job"])

    def test_seed_details(self):
        s = load_scenario("seed-exit-nonzero")
        pods = sorted((o for o in s["objects"] if o["kind"] == "Pod"),
                      key=lambda p: p["metadata"]["creationTimestamp"])
        from datetime import datetime

        def t(x):
            return datetime.strptime(x, "%Y-%m-%dT%H:%M:%SZ")
        gaps = []
        for a, b in zip(pods, pods[1:]):
            term = a["status"]["containerStatuses"][0]["state"]["terminated"]
            self.assertEqual(term["exitCode"], 1)
            self.assertEqual((t(term["finishedAt"]) - t(term["startedAt"])).seconds, 30)
            gaps.append((t(b["metadata"]["creationTimestamp"]) - t(term["finishedAt"])).seconds)
        self.assertEqual(gaps, [10, 20, 40, 80, 160])
        for p in pods:
            self.assertEqual(p["spec"]["containers"][0]["resources"]["requests"]["memory"], "1Gi")
        pod = next(o for o in load_scenario("seed-invalid-secret")["objects"] if o["kind"] == "Pod")
        waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
        self.assertEqual(waiting, {"reason": "CreateContainerConfigError",
                                   "message": 'secret "notpresent" not found'})
        self.assertIn({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                       "lastTransitionTime": pod["metadata"]["creationTimestamp"]}, pod["status"]["conditions"])
        pod = next(o for o in load_scenario("seed-over-provisioned")["objects"] if o["kind"] == "Pod")
        self.assertEqual(pod["spec"]["containers"][0]["resources"]["requests"]["memory"], "2Gi")
        jobs = {o["metadata"]["name"]: o for o in load_scenario("cronjob")["goneObjects"]
                + load_scenario("cronjob")["objects"] if o["kind"] == "Job"}
        self.assertEqual(jobs["cron-fail-29929854"]["metadata"]["annotations"]
                         ["batch.kubernetes.io/cronjob-scheduled-timestamp"], "2026-11-27T14:54:00Z")

    def test_generator_is_reproducible(self):
        # The committed scenarios are what make_scenarios.py builds from the recorded objects.
        fixtures = os.path.join(os.path.dirname(HERE), "fixtures", "k8s")
        out = subprocess.run([sys.executable, os.path.join(HERE, "make_scenarios.py"), "--check",
                              "--fixtures", fixtures], capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)


class EventsTest(unittest.TestCase):
    """The Events of k8s_api/events/ (what a cluster holds for each scenario), served as the
    agent asks for them: a pod's or a Job's, by involvedObject.uid, in its namespace."""

    def test_events_files_are_reproducible(self):
        out = subprocess.run([sys.executable, os.path.join(HERE, "make_events.py"), "--check"],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

    def test_events_of_one_object_by_uid(self):
        srv = Server("seed-exit-nonzero")
        try:
            with open(os.path.join(HERE, "events", "seed-exit-nonzero.json"), encoding="utf-8") as f:
                status, _ = srv.control("POST", "apply", json.load(f))
            self.assertIn(status, (200, 201))
            pod = next(o for o in load_scenario("seed-exit-nonzero")["objects"] if o["kind"] == "Pod")
            status, body = srv.get("/api/v1/namespaces/default/events?fieldSelector=involvedObject.uid%3D"
                                   + pod["metadata"]["uid"])
            self.assertEqual(status, 200)
            self.assertEqual(body["kind"], "EventList")
            self.assertEqual(sorted(e["reason"] for e in body["items"]),
                             ["Created", "Pulled", "Scheduled", "Started"])
            self.assertTrue(all(e["involvedObject"]["uid"] == pod["metadata"]["uid"] for e in body["items"]))
            job_uid = pod["metadata"]["ownerReferences"][0]["uid"]
            status, body = srv.get("/api/v1/namespaces/default/events?fieldSelector=involvedObject.uid%3D" + job_uid)
            self.assertEqual(len(body["items"]), 7)
            status, body = srv.get("/api/v1/namespaces/other/events?fieldSelector=involvedObject.uid%3D" + job_uid)
            self.assertEqual(body["items"], [])
        finally:
            srv.stop()


class LifecycleTest(unittest.TestCase):
    def test_sigterm_with_open_watch(self):
        srv = Server("bare-pod")
        w = srv.watch("/api/v1/pods", resourceVersion="0")
        self.assertEqual(w.next()["type"], "ADDED")
        srv.stop(signal.SIGTERM, timeout=5)
        w.close()

    def test_stdin_eof_and_shutdown_endpoint(self):
        srv = Server("bare-pod")
        srv.proc.stdin.close()     # what a crashed test process leaves behind
        self.assertEqual(srv.proc.wait(5), 0)
        srv.stop()
        srv = Server("bare-pod", stdin_eof=False)
        self.assertEqual(srv.control("POST", "shutdown")[0], 200)
        self.assertEqual(srv.proc.wait(5), 0)
        srv.stop()

    def test_history_limit_makes_old_versions_gone(self):
        srv = Server("bare-pod", "--history", "2")
        try:
            rv = srv.get("/api/v1/pods")[1]["metadata"]["resourceVersion"]
            for i in range(3):
                srv.control("POST", "apply", new_pod(f"churn-{i}"))
            w = srv.watch("/api/v1/pods", resourceVersion=rv)
            ev = w.next(5)
            w.close()
            self.assertEqual((ev["type"], ev["object"]["code"]), ("ERROR", 410))
            status, _ = srv.get(f"/api/v1/pods?resourceVersion={rv}&resourceVersionMatch=Exact")
            self.assertEqual(status, 410)
            # The last two changes are still there to resume from.
            w = srv.watch("/api/v1/pods", resourceVersion=str(int(rv) + 1))
            self.assertEqual([w.next(5)["object"]["metadata"]["name"] for _ in range(2)],
                             ["churn-1", "churn-2"])
            w.close()
        finally:
            srv.stop()

    def test_kubeconfig_and_bad_scenario(self):
        srv = Server("bare-pod")
        try:
            with open(srv.kubeconfig) as f:
                text = f.read()
            self.assertIn(f"server: http://127.0.0.1:{srv.port}\n", text)
            self.assertIn("token: test-token\n", text)
            self.assertIn("current-context: jobarchive-test\n", text)
        finally:
            srv.stop()
        proc = subprocess.run([sys.executable, SERVER, "--scenario", "no-such-scenario"],
                              capture_output=True, timeout=30)
        self.assertEqual(proc.returncode, 2)


@unittest.skipUnless(shutil.which("kubectl"), "kubectl not installed")
class KubectlTest(unittest.TestCase):
    """A real client against the server.

    client-go only sends kubeconfig credentials over TLS, so this uses --tls
    (kube-rs sends its bearer token over plain http too).
    """

    @classmethod
    def setUpClass(cls):
        cls.srv = Server("all", tls=True)

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def kubectl(self, *args, timeout=30):
        env = dict(os.environ, HOME=self.srv.dir)   # keep kubectl's cache out of the real HOME
        return subprocess.run(["kubectl", "--kubeconfig", self.srv.kubeconfig, *args],
                              capture_output=True, text=True, timeout=timeout, env=env)

    def test_get_pods(self):
        out = self.kubectl("get", "pods", "-A", "-o", "name")
        self.assertEqual(out.returncode, 0, out.stderr)
        expected = sorted("pod/" + o["metadata"]["name"] for o in load_scenario("all")["objects"]
                          if o["kind"] == "Pod")
        self.assertEqual(out.stdout.split(), expected)
        out = self.kubectl("get", "jobs", "-o", "json")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout)["kind"], "List")

    def test_raw_watch(self):
        started = time.monotonic()
        out = self.kubectl("get", "--raw", "/api/v1/pods?watch=1&timeoutSeconds=2")
        self.assertEqual(out.returncode, 0, out.stderr)
        events = [json.loads(line) for line in out.stdout.splitlines()]
        self.assertEqual({e["type"] for e in events}, {"ADDED"})
        self.assertEqual(len(events), 18)
        self.assertLess(time.monotonic() - started, 10)


def tearDownModule():
    # Every server this module started must be gone.
    leftovers = []
    for pid in STARTED_PIDS:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        except PermissionError:
            pass
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split()[2] != "Z":
                    leftovers.append(pid)
        except FileNotFoundError:
            continue
    if leftovers:
        raise AssertionError(f"server processes left running: {leftovers}")


if __name__ == "__main__":
    unittest.main()
