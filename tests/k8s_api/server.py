#!/usr/bin/env python3
"""Fake Kubernetes API server for jobarchive's end-to-end tests.

Serves the part of the Kubernetes REST API the agent uses (pods, nodes, jobs,
cronjobs, events: get, list, watch; discovery; /version) from an in-memory
store loaded from a scenario file, speaking the same JSON a real
kube-apiserver does (recorded v1.24 objects in tests/fixtures/k8s were the
reference).  Tests change the cluster through control endpoints under
/_test/ and read back which API requests the agent made.

Usage:
    python3 tests/k8s_api/server.py --scenario NAME | --scenario-file FILE
        [--port 0] [--kubeconfig-out PATH] [--bookmark-interval SECONDS]
        [--exit-on-stdin-eof]

Prints "READY <port>" on stdout once listening (after the kubeconfig is
written) and nothing on stdout afterwards.  Stops on SIGTERM/SIGINT, on
POST /_test/shutdown, or (with --exit-on-stdin-eof) when stdin closes.
Python 3.11 standard library only.  See README.md beside this file.
"""

import argparse
import base64
import bisect
import copy
import json
import os
import re
import select
import signal
import socket
import ssl
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIO_DIR = os.path.join(HERE, "scenarios")
TLS_DIR = os.path.join(HERE, "tls")

DEFAULT_TOKEN = "test-token"
# The identity a real apiserver would name in a 403; the agent runs as a
# service account, so the message reads like the one it would really get.
FORBIDDEN_USER = "system:serviceaccount:jobarchive:jobarchive"
# A real apiserver picks a watch timeout in [min-request-timeout, 2x] when the
# client gives none; 1800 s is the default min-request-timeout.
DEFAULT_WATCH_TIMEOUT = 1800
# Real servers send a bookmark about once a minute; tests usually want faster.
DEFAULT_BOOKMARK_INTERVAL = 10.0


def now_rfc3339():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def go_json(obj, pretty=False):
    """Encode like Go's encoding/json: compact, raw UTF-8, HTML-escaped.

    Go escapes <, > and & inside strings (the recorded fixtures carry
    "sleep 30 \\u0026\\u0026 exit 1"), so byte-level comparisons with
    recordings hold.  Those characters never appear outside strings in
    JSON, so a global replacement is safe.
    """
    if pretty:
        text = json.dumps(obj, indent=2, ensure_ascii=False)
    else:
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    text = (text.replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("&", "\\u0026").replace("\u2028", "\\u2028")
            .replace("\u2029", "\\u2029"))
    return (text + "\n").encode("utf-8")


def dig(obj, *keys, default=""):
    for k in keys:
        if not isinstance(obj, dict) or k not in obj:
            return default
        obj = obj[k]
    return obj if obj is not None else default


def status_obj(code, reason, message, details=None):
    st = {"kind": "Status", "apiVersion": "v1", "metadata": {},
          "status": "Failure", "message": message, "reason": reason}
    if details is not None:
        st["details"] = details
    st["code"] = code
    return st


class ApiError(Exception):
    def __init__(self, code, reason, message, details=None):
        super().__init__(message)
        self.status = status_obj(code, reason, message, details)
        self.code = code


# --------------------------------------------------------------------------
# Resource types

def _pod_fields(o):
    spec, st = o.get("spec") or {}, o.get("status") or {}
    return {
        "metadata.name": dig(o, "metadata", "name"),
        "metadata.namespace": dig(o, "metadata", "namespace"),
        "spec.nodeName": spec.get("nodeName") or "",
        "spec.restartPolicy": spec.get("restartPolicy") or "",
        "spec.schedulerName": spec.get("schedulerName") or "",
        "spec.serviceAccountName": spec.get("serviceAccountName") or "",
        "spec.hostNetwork": "true" if spec.get("hostNetwork") else "false",
        "status.phase": st.get("phase") or "",
        "status.podIP": st.get("podIP") or "",
        "status.nominatedNodeName": st.get("nominatedNodeName") or "",
    }


def _meta_fields(o):
    return {"metadata.name": dig(o, "metadata", "name"),
            "metadata.namespace": dig(o, "metadata", "namespace")}


def _node_fields(o):
    f = _meta_fields(o)
    f["spec.unschedulable"] = "true" if dig(o, "spec", "unschedulable", default=False) else "false"
    return f


def _job_fields(o):
    f = _meta_fields(o)
    f["status.successful"] = str(dig(o, "status", "succeeded", default=0))
    return f


def _event_fields(o):
    f = _meta_fields(o)
    inv = o.get("involvedObject") or {}
    for k in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath"):
        f["involvedObject." + k] = inv.get(k) or ""
    f["reason"] = o.get("reason") or ""
    f["reportingComponent"] = o.get("reportingComponent") or ""
    f["source"] = dig(o, "source", "component")
    f["type"] = o.get("type") or ""
    return f


class ResourceType:
    def __init__(self, group, version, kind, plural, singular, namespaced,
                 short_names, fields, bookmark_extra=None, categories=None):
        self.group, self.version, self.kind = group, version, kind
        self.plural, self.singular = plural, singular
        self.namespaced = namespaced
        self.short_names = short_names
        self.fields = fields
        self.bookmark_extra = bookmark_extra or {}
        self.categories = categories

    @property
    def api_version(self):
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self):
        return self.kind + "List"

    @property
    def qualified(self):
        # "jobs.batch", or just "pods" for the core group, as in messages.
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def details(self, name=None):
        d = {}
        if name is not None:
            d["name"] = name
        if self.group:
            d["group"] = self.group
        d["kind"] = self.plural
        return d


RESOURCE_TYPES = [
    # Go serializes an empty Pod/Job with their non-omitempty members, so a
    # real BOOKMARK carries "spec":{"containers":null},"status":{} (quoted in
    # kube-rs issue #285); clients must cope with that, so we send it too.
    ResourceType("", "v1", "Pod", "pods", "pod", True, ["po"], _pod_fields,
                 {"spec": {"containers": None}, "status": {}}, ["all"]),
    ResourceType("", "v1", "Node", "nodes", "node", False, ["no"], _node_fields,
                 {"spec": {}, "status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
                                         "nodeInfo": {"machineID": "", "systemUUID": "", "bootID": "",
                                                      "kernelVersion": "", "osImage": "",
                                                      "containerRuntimeVersion": "", "kubeletVersion": "",
                                                      "kubeProxyVersion": "", "operatingSystem": "",
                                                      "architecture": ""}}}),
    ResourceType("", "v1", "Event", "events", "event", True, ["ev"], _event_fields,
                 {"involvedObject": {}, "reportingComponent": "", "reportingInstance": "",
                  "source": {}, "eventTime": None, "firstTimestamp": None, "lastTimestamp": None}),
    ResourceType("batch", "v1", "Job", "jobs", "job", True, [], _job_fields,
                 {"spec": {"template": {"metadata": {"creationTimestamp": None},
                                        "spec": {"containers": None}}},
                  "status": {}}, ["all"]),
    ResourceType("batch", "v1", "CronJob", "cronjobs", "cronjob", True, ["cj"], _meta_fields,
                 {"spec": {"schedule": "", "jobTemplate": {"metadata": {"creationTimestamp": None},
                                                           "spec": {"template": {
                                                               "metadata": {"creationTimestamp": None},
                                                               "spec": {"containers": None}}}}},
                  "status": {}}, ["all"]),
]
BY_KIND = {(rt.api_version, rt.kind): rt for rt in RESOURCE_TYPES}
BY_PATH = {(rt.group, rt.version, rt.plural): rt for rt in RESOURCE_TYPES}


def find_type(obj_or_ref):
    kind = obj_or_ref.get("kind")
    api_version = obj_or_ref.get("apiVersion")
    if api_version:
        return BY_KIND.get((api_version, kind))
    matches = [rt for rt in RESOURCE_TYPES if rt.kind == kind]
    return matches[0] if len(matches) == 1 else None


# --------------------------------------------------------------------------
# Selectors

_LABEL_KEY = r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_VALUE = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?"
_RE_EXISTS = re.compile(rf"\s*(!?)\s*({_LABEL_KEY})\s*")
_RE_SET = re.compile(rf"\s*({_LABEL_KEY})\s+(in|notin)\s*\(([^()]*)\)\s*")
_RE_EQ = re.compile(rf"\s*({_LABEL_KEY})\s*(==|=|!=)\s*({_LABEL_VALUE})\s*")
_RE_CMP = re.compile(rf"\s*({_LABEL_KEY})\s*(>|<)\s*(-?[0-9]+)\s*")


def split_top_level(s):
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


class LabelSelector:
    def __init__(self, text):
        self.text = text or ""
        self.reqs = []
        if not self.text.strip():
            return
        for term in split_top_level(self.text):
            m = _RE_SET.fullmatch(term)
            if m:
                values = [v.strip() for v in m.group(3).split(",")]
                if any(not re.fullmatch(_LABEL_VALUE, v) for v in values):
                    self._fail(f"invalid label value in {term.strip()!r}")
                self.reqs.append((m.group(1), m.group(2), set(values)))
                continue
            m = _RE_EQ.fullmatch(term)
            if m:
                op = "!=" if m.group(2) == "!=" else "="
                self.reqs.append((m.group(1), op, m.group(3)))
                continue
            m = _RE_CMP.fullmatch(term)
            if m:
                self.reqs.append((m.group(1), m.group(2), int(m.group(3))))
                continue
            m = _RE_EXISTS.fullmatch(term)
            if m:
                self.reqs.append((m.group(2), "!exists" if m.group(1) else "exists", None))
                continue
            self._fail(f"unable to parse requirement {term.strip()!r}")

    def _fail(self, why):
        raise ApiError(400, "BadRequest",
                       f"unable to parse requested label selector {self.text!r}: {why}")

    def matches(self, labels):
        labels = labels or {}
        for key, op, val in self.reqs:
            has = key in labels
            v = labels.get(key)
            if op == "exists" and not has:
                return False
            if op == "!exists" and has:
                return False
            if op == "=" and v != val:
                return False
            if op == "!=" and has and v == val:
                return False
            if op == "in" and (not has or v not in val):
                return False
            if op == "notin" and has and v in val:
                return False
            if op in (">", "<"):
                try:
                    n = int(v)
                except (TypeError, ValueError):
                    return False
                if (op == ">" and not n > val) or (op == "<" and not n < val):
                    return False
        return True


class FieldSelector:
    def __init__(self, text, rt):
        self.text = text or ""
        self.rt = rt
        self.reqs = []
        if not self.text.strip():
            return
        for term in self.text.split(","):
            term = term.strip()
            for op in ("!=", "==", "="):
                if op in term:
                    key, val = term.split(op, 1)
                    break
            else:
                raise ApiError(400, "BadRequest",
                               f"unable to parse requested field selector {self.text!r}: "
                               f"invalid selector: '{term}'; can't understand '{term}'")
            key = key.strip()
            # Same wording as the apiserver's field label conversion error.
            probe = rt.fields({"metadata": {}})
            if key not in probe:
                raise ApiError(400, "BadRequest", f"field label not supported: {key}")
            self.reqs.append((key, "!=" if op == "!=" else "=", val.strip()))

    def matches(self, obj):
        if not self.reqs:
            return True
        fields = self.rt.fields(obj)
        for key, op, val in self.reqs:
            if (fields.get(key, "") == val) != (op == "="):
                return False
        return True


# --------------------------------------------------------------------------
# Store: objects, one global resourceVersion, and a bounded event history.

class Event:
    __slots__ = ("rv", "type", "rt", "obj", "prev")

    def __init__(self, rv, type_, rt, obj, prev):
        self.rv, self.type, self.rt, self.obj, self.prev = rv, type_, rt, obj, prev


class Watcher:
    _ids = iter(range(1, 1 << 62))

    def __init__(self, path, query):
        self.id = next(Watcher._ids)
        self.path, self.query = path, query
        self.since = now_rfc3339()
        self.expired = False
        self.dropped = False


class Store:
    def __init__(self, history_limit=10000, initial_rv=1000):
        self.cond = threading.Condition()
        self.objects = {}          # (rt.qualified, namespace, name) -> object
        self.rv = initial_rv
        self.history = []          # Event, ascending rv
        self.history_rvs = []      # parallel list of rv, for bisect
        self.history_limit = history_limit
        # Watches and Exact lists from a resourceVersion below this are "too
        # old": events at or before it are no longer kept, like a compacted
        # etcd / trimmed watch cache.
        self.compacted = initial_rv
        self.expire_pending = False
        self.watchers = set()
        self.stopping = False

    # -- writes (caller holds no lock) --

    def load(self, objects):
        with self.cond:
            for obj in objects:
                self._put_locked(obj, record=False)
            self.compacted = self.rv

    def apply(self, obj):
        with self.cond:
            ev = self._put_locked(obj, record=True)
            self.cond.notify_all()
            return ev

    def delete(self, rt, namespace, name):
        with self.cond:
            key = (rt.qualified, namespace if rt.namespaced else "", name)
            prev = self.objects.pop(key, None)
            if prev is None:
                return None
            self.rv += 1
            # The DELETED event carries the last state stamped with the
            # deletion's revision, as etcd reports it.
            gone = copy.deepcopy(prev)
            gone["metadata"]["resourceVersion"] = str(self.rv)
            self._record(Event(self.rv, "DELETED", rt, gone, prev))
            self.cond.notify_all()
            return gone

    def _put_locked(self, obj, record):
        rt = find_type(obj)
        if rt is None:
            raise ApiError(400, "BadRequest",
                           f"no kind {obj.get('kind')!r} is registered for version "
                           f"{obj.get('apiVersion')!r} in this fake apiserver")
        obj = normalize(copy.deepcopy(obj), rt)
        meta = obj["metadata"]
        if not meta.get("name"):
            if meta.get("generateName"):
                meta["name"] = meta["generateName"] + random_suffix()
            else:
                raise ApiError(422, "Invalid", f"{rt.kind}.{rt.group or 'core'} \"\" is invalid: "
                                               "metadata.name: Required value: name or generateName is required")
        if rt.namespaced:
            meta.setdefault("namespace", "default")
        else:
            meta.pop("namespace", None)
        key = (rt.qualified, meta.get("namespace", ""), meta["name"])
        prev = self.objects.get(key)
        if prev is not None:
            # An update keeps identity unless the caller deliberately
            # replaces it (a recreated object with a new uid).
            meta.setdefault("uid", prev["metadata"].get("uid"))
            meta.setdefault("creationTimestamp", prev["metadata"].get("creationTimestamp"))
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now_rfc3339())
        self.rv += 1
        meta["resourceVersion"] = str(self.rv)
        self.objects[key] = obj
        ev = Event(self.rv, "ADDED" if prev is None else "MODIFIED", rt, obj, prev)
        if record:
            self._record(ev)
        return ev

    def _record(self, ev):
        self.history.append(ev)
        self.history_rvs.append(ev.rv)
        while len(self.history) > self.history_limit:
            old = self.history.pop(0)
            self.history_rvs.pop(0)
            self.compacted = old.rv

    # -- reads (caller holds the lock) --

    def events_after(self, rv):
        i = bisect.bisect_right(self.history_rvs, rv)
        return self.history[i:]

    def snapshot_at(self, rv):
        """The object map as it was at resourceVersion rv (rv >= compacted)."""
        state = dict(self.objects)
        for ev in reversed(self.events_after(rv)):
            meta = ev.obj["metadata"]
            key = (ev.rt.qualified, meta.get("namespace", ""), meta["name"])
            if ev.type == "ADDED":
                state.pop(key, None)
            else:
                state[key] = ev.prev
        return state

    def expire(self, compact=True):
        with self.cond:
            if compact:
                self.compacted = max(self.compacted, self.rv)
            open_watches = [w for w in self.watchers if not w.expired]
            for w in open_watches:
                w.expired = True
            # "Once": the open watches take the 410 if there are any,
            # otherwise the next resumed watch request does.
            self.expire_pending = not open_watches
            self.cond.notify_all()
            return len(open_watches)


def normalize(obj, rt):
    """Key order kind, apiVersion, metadata, ... as the apiserver writes it."""
    out = {"kind": rt.kind, "apiVersion": rt.api_version,
           "metadata": obj.get("metadata") or {}}
    for k, v in obj.items():
        if k not in out:
            out[k] = v
    return out


_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the apiserver's generateName alphabet


def random_suffix(n=5):
    raw = uuid.uuid4().bytes
    return "".join(_SUFFIX_ALPHABET[b % len(_SUFFIX_ALPHABET)] for b in raw[:n])


def without_type(obj):
    # List items come without kind/apiVersion from a real apiserver (see the
    # recorded podlist fixtures); single GETs and watch events carry them.
    return {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}


def encode_continue(rv, start_key):
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start_key + "\x00"},
                     separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continue(token):
    try:
        pad = "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(token + pad))
        if data.get("v") != "meta.k8s.io/v1":
            raise ValueError("bad version")
        return int(data["rv"]), data["start"]
    except Exception as e:  # noqa: BLE001 - any garbage is the client's fault
        raise ApiError(400, "BadRequest", f"continue key is not valid: {e}")


def parse_bool(q, name):
    v = q.get(name)
    if v is None:
        return None
    if v in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if v in ("0", "f", "F", "false", "FALSE", "False", ""):
        return False
    raise ApiError(400, "BadRequest", f"invalid boolean value for {name}: {v!r}")


def parse_rv(value):
    try:
        n = int(value)
        if n < 0:
            raise ValueError
        return n
    except ValueError:
        raise ApiError(400, "BadRequest", f"invalid resource version: {value!r}")


# --------------------------------------------------------------------------
# Discovery documents

def discovery_resource_list(group, version):
    resources = []
    for rt in RESOURCE_TYPES:
        if rt.group != group or rt.version != version:
            continue
        r = {"name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced,
             "kind": rt.kind, "verbs": ["get", "list", "watch"]}
        if rt.short_names:
            r["shortNames"] = rt.short_names
        if rt.categories:
            r["categories"] = rt.categories
        resources.append(r)
        if rt.kind in ("Pod", "Job", "CronJob", "Node"):
            resources.append({"name": rt.plural + "/status", "singularName": "", "namespaced": rt.namespaced,
                              "kind": rt.kind, "verbs": ["get"]})
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}


def discovery_group(group):
    gv = {"groupVersion": f"{group}/v1", "version": "v1"}
    return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": [gv], "preferredVersion": gv}


# --------------------------------------------------------------------------
# HTTP

class Route:
    def __init__(self, kind, rt=None, namespace=None, name=None, sub=None, doc=None):
        self.kind, self.rt, self.namespace, self.name, self.sub, self.doc = kind, rt, namespace, name, sub, doc


def parse_route(path):
    segs = [s for s in path.split("/") if s]
    if path in ("/healthz", "/livez", "/readyz"):
        return Route("health")
    if path == "/version" or path == "/version/":
        return Route("version")
    if segs == ["api"]:
        return Route("doc", doc="api")
    if segs == ["apis"]:
        return Route("doc", doc="apis")
    if segs[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", segs[2:]
    elif len(segs) >= 2 and segs[0] == "apis" and segs[1] == "batch":
        if len(segs) == 2:
            return Route("doc", doc="group:batch")
        if segs[2] != "v1":
            return None
        group, version, rest = "batch", "v1", segs[3:]
    else:
        return None
    if not rest:
        return Route("doc", doc=f"resources:{group}/{version}")
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    rt = BY_PATH.get((group, version, rest[0]))
    if rt is None or (namespace is not None and not rt.namespaced):
        return None
    if len(rest) == 1:
        return Route("collection", rt, namespace)
    if rt.namespaced and namespace is None:
        return None   # namespaced objects are only addressable inside their namespace
    if len(rest) == 2:
        return Route("object", rt, namespace, rest[1])
    if len(rest) == 3 and rest[2] == "status" and rt.kind in ("Pod", "Job", "CronJob", "Node"):
        return Route("object", rt, namespace, rest[1], sub="status")
    return None


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, store, opts, scenario, ssl_ctx=None):
        super().__init__(addr, Handler)
        self.ssl_ctx = ssl_ctx
        self.store = store
        self.opts = opts
        self.scenario = scenario
        self.mode = {"forbidden": False, "down": False,
                     "bookmarkIntervalSeconds": opts.bookmark_interval}
        self.log_lock = threading.Lock()
        self.request_log = []
        self.seq = 0
        self.stop_event = threading.Event()
        self.conn_lock = threading.Lock()
        self.connections = set()

    def close_connections(self):
        with self.conn_lock:
            conns = list(self.connections)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address):
        # Clients dropping connections (or failing TLS handshakes) are normal
        # in these tests; only show the traceback when asked to.
        if self.opts.verbose:
            super().handle_error(request, client_address)


class AbortConnection(Exception):
    """Drop the TCP connection without finishing the HTTP response."""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "jobarchive-fake-apiserver"
    sys_version = ""

    def setup(self):
        if self.server.ssl_ctx is not None:
            # Handshake here, in the connection's thread, not in the accept loop.
            self.request = self.server.ssl_ctx.wrap_socket(self.request, server_side=True)
        super().setup()
        with self.server.conn_lock:
            self.server.connections.add(self.connection)

    def finish(self):
        with self.server.conn_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):
        if self.server.opts.verbose:
            sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_DELETE(self):
        self._dispatch("DELETE")

    # -- plumbing --

    def _read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send_body(self, code, body, ctype="application/json"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if self._log_entry is not None:
            self._log_entry["status"] = code

    def _send_json(self, code, obj, pretty=False):
        self._send_body(code, go_json(obj, pretty=pretty))

    def _send_status(self, err):
        self._send_json(err.code, err.status)

    def _abort(self):
        self.close_connection = True
        try:
            # RST rather than FIN, as when an apiserver or LB goes away.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _dispatch(self, method):
        self._log_entry = None
        url = urlsplit(self.path)
        path = url.path
        q = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        body = self._read_body() if method in ("POST", "PUT", "PATCH") else b""
        try:
            if path == "/_test" or path.startswith("/_test/"):
                return self._control(method, path, q, body)
            self._api(method, path, url.query, q)
        except ApiError as e:
            self._send_status(e)
        except AbortConnection:
            self._abort()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # -- Kubernetes API --

    def _api(self, method, path, raw_query, q):
        srv = self.server
        route = parse_route(path)
        is_watch = bool(route and route.kind == "collection" and method == "GET"
                        and self._watch_flag(q))
        entry = {"method": method, "path": path, "query": q, "rawQuery": raw_query,
                 "verb": self._verb(method, route, is_watch),
                 "resource": route.rt.plural if route and route.rt else None,
                 "namespace": route.namespace if route else None,
                 "name": route.name if route else None,
                 "watch": is_watch, "status": None,
                 "userAgent": self.headers.get("User-Agent"),
                 "accept": self.headers.get("Accept"),
                 "time": now_rfc3339()}
        with srv.log_lock:
            srv.seq += 1
            entry["seq"] = srv.seq
            srv.request_log.append(entry)
        self._log_entry = entry

        down = srv.mode["down"]
        if down == "reset":
            raise AbortConnection()
        if down:
            raise ApiError(503, "ServiceUnavailable", "the server is currently unable to handle the request")
        if route and route.kind == "health":
            return self._send_body(200, b"ok", "text/plain; charset=utf-8")
        auth = self.headers.get("Authorization") or ""
        parts = auth.split(None, 1)
        if len(parts) != 2 or parts[0].lower() != "bearer" or parts[1].strip() != srv.opts.token:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        if srv.mode["forbidden"]:
            raise self._forbidden(route, entry["verb"], path)
        if route is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource",
                           {})
        if method != "GET":
            raise ApiError(405, "MethodNotAllowed",
                           "the server does not allow this method on the requested resource", {})
        if route.kind == "version":
            return self._send_json(200, srv.opts.version_info, pretty=True)
        if route.kind == "doc":
            return self._send_json(200, self._discovery(route.doc))
        if route.kind == "object":
            return self._get(route)
        if is_watch:
            return self._watch(route, q)
        return self._list(route, q)

    @staticmethod
    def _watch_flag(q):
        try:
            return bool(parse_bool(q, "watch"))
        except ApiError:
            return False

    @staticmethod
    def _verb(method, route, is_watch):
        if route is None or route.kind not in ("collection", "object"):
            return method.lower()
        if method != "GET":
            return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[method]
        if route.kind == "object":
            return "get"
        return "watch" if is_watch else "list"

    def _forbidden(self, route, verb, path):
        if route is None or route.rt is None:
            return ApiError(403, "Forbidden",
                            f'forbidden: User "{FORBIDDEN_USER}" cannot {verb} path "{path}"', {})
        rt = route.rt
        what = f'{rt.qualified} "{route.name}"' if route.name else rt.qualified
        scope = (f'in the namespace "{route.namespace}"' if route.namespace
                 else "at the cluster scope")
        resource = rt.plural + ("/" + route.sub if route.sub else "")
        return ApiError(403, "Forbidden",
                        f'{what} is forbidden: User "{FORBIDDEN_USER}" cannot {verb} resource '
                        f'"{resource}" in API group "{rt.group}" {scope}',
                        rt.details(route.name))

    def _discovery(self, doc):
        host = f"127.0.0.1:{self.server.server_address[1]}"
        if doc == "api":
            return {"kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]}
        if doc == "apis":
            g = discovery_group("batch")
            del g["kind"], g["apiVersion"]
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [g]}
        if doc.startswith("group:"):
            return discovery_group(doc[6:])
        group, version = doc[len("resources:"):].split("/")
        return discovery_resource_list(group, version)

    def _get(self, route):
        st = self.server.store
        rt = route.rt
        with st.cond:
            obj = st.objects.get((rt.qualified, route.namespace or "", route.name))
        if obj is None:
            raise ApiError(404, "NotFound", f'{rt.qualified} "{route.name}" not found',
                           rt.details(route.name))
        self._send_json(200, obj)

    def _selectors(self, rt, q):
        return LabelSelector(q.get("labelSelector")), FieldSelector(q.get("fieldSelector"), rt)

    def _list(self, route, q):
        rt, ns = route.rt, route.namespace
        lsel, fsel = self._selectors(rt, q)
        rv_param = q.get("resourceVersion")
        rvm = q.get("resourceVersionMatch")
        limit = q.get("limit")
        cont = q.get("continue")
        if rvm and rvm not in ("Exact", "NotOlderThan"):
            raise self._invalid(f'resourceVersionMatch: Unsupported value: "{rvm}": '
                                'supported values: "Exact", "NotOlderThan"')
        if rvm and not rv_param:
            raise self._invalid("resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden "
                                "unless resourceVersion is provided")
        if rvm == "Exact" and rv_param == "0":
            raise self._invalid('resourceVersionMatch: Forbidden: resourceVersionMatch "exact" is '
                                'forbidden for resourceVersion "0"')
        if cont and rv_param:
            raise self._invalid("resourceVersion: Forbidden: specifying resource version is not "
                                "allowed when using continue")
        try:
            limit = int(limit) if limit not in (None, "") else 0
        except ValueError:
            raise ApiError(400, "BadRequest", f"invalid limit: {limit!r}")

        st = self.server.store
        with st.cond:
            start_key = None
            if cont:
                list_rv, start = decode_continue(cont)
                # Keys compare as (namespace, name) tuples, the order items are listed in.
                start_key = tuple(start.rstrip("\x00").split("/", 1))
                if list_rv < st.compacted:
                    raise ApiError(410, "Expired",
                                   "The provided continue parameter is too old to display a consistent "
                                   "list result. You can start a new list without the continue parameter.")
                objects = st.snapshot_at(list_rv)
            elif rvm == "Exact":
                list_rv = parse_rv(rv_param)
                if list_rv > st.rv:
                    raise ApiError(504, "Timeout", "Too large resource version: "
                                   f"{list_rv}, current: {st.rv}",
                                   {"causes": [{"reason": "ResourceVersionTooLarge",
                                                "message": "Too large resource version"}],
                                    "retryAfterSeconds": 1})
                if list_rv < st.compacted:
                    raise ApiError(410, "Expired",
                                   f"too old resource version: {list_rv} ({st.compacted})")
                objects = st.snapshot_at(list_rv)
            else:
                if rv_param not in (None, ""):
                    parse_rv(rv_param)
                # "0", NotOlderThan and unset are all served from the latest state.
                list_rv = st.rv
                objects = st.objects
            items = []
            for key in sorted(k for k in objects if k[0] == rt.qualified):
                obj = objects[key]
                if ns is not None and key[1] != ns:
                    continue
                if start_key is not None and (key[1], key[2]) <= start_key:
                    continue
                if not lsel.matches(dig(obj, "metadata", "labels", default={})) or not fsel.matches(obj):
                    continue
                items.append(obj)
        meta = {"resourceVersion": str(list_rv)}
        if limit > 0 and len(items) > limit:
            last = items[limit - 1]["metadata"]
            meta["continue"] = encode_continue(list_rv, f"{last.get('namespace', '')}/{last['name']}")
            if not lsel.reqs and not fsel.reqs:
                # Only unfiltered lists get a count: filtering would need a full scan.
                meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        self._send_json(200, {"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": meta,
                              "items": [without_type(o) for o in items]})

    @staticmethod
    def _invalid(msg):
        return ApiError(422, "Invalid", f'ListOptions.meta.k8s.io "" is invalid: {msg}',
                        {"group": "meta.k8s.io", "kind": "ListOptions",
                         "causes": [{"reason": "FieldValueInvalid", "message": msg}]})

    # -- watch --

    def _chunk(self, data):
        self.wfile.write(b"%X\r\n" % len(data) + data + b"\r\n")
        self.wfile.flush()

    def _event(self, type_, obj):
        self._chunk(go_json({"type": type_, "object": obj}))

    def _bookmark(self, rt, rv, initial_end=False):
        meta = {"resourceVersion": str(rv), "creationTimestamp": None}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta}
        obj.update(copy.deepcopy(rt.bookmark_extra))
        self._event("BOOKMARK", obj)

    def _client_gone(self):
        """True once the client closed its end of an idle watch.

        HTTP/1.1 clients send nothing while a response streams, so anything
        readable is the close: EOF on plain TCP, or a TLS close_notify.
        """
        try:
            r, _, _ = select.select([self.connection], [], [], 0)
            if not r:
                return False
            if isinstance(self.connection, ssl.SSLSocket):
                return True
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def _watch(self, route, q):
        srv, st = self.server, self.server.store
        rt, ns = route.rt, route.namespace
        lsel, fsel = self._selectors(rt, q)
        allow_bm = bool(parse_bool(q, "allowWatchBookmarks"))
        send_initial = parse_bool(q, "sendInitialEvents")
        rv_param = q.get("resourceVersion")
        rvm = q.get("resourceVersionMatch")
        try:
            timeout = int(q.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT)
        except ValueError:
            raise ApiError(400, "BadRequest", f"invalid timeoutSeconds: {q.get('timeoutSeconds')!r}")
        if send_initial is not None:
            if rvm != "NotOlderThan":
                raise self._invalid("sendInitialEvents: Forbidden: sendInitialEvents is forbidden for "
                                    "watch unless resourceVersionMatch is set to NotOlderThan")
            if send_initial and not allow_bm:
                raise self._invalid("allowWatchBookmarks: Required value: allowWatchBookmarks is "
                                    "required when sendInitialEvents is provided")
        elif rvm:
            raise self._invalid("resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden "
                                "for watch unless sendInitialEvents is provided")

        def visible(obj):
            if obj is None:
                return False
            if ns is not None and obj["metadata"].get("namespace") != ns:
                return False
            return lsel.matches(obj["metadata"].get("labels")) and fsel.matches(obj)

        w = Watcher(self.path, q)
        initial, error = [], None
        with st.cond:
            resume = rv_param not in (None, "", "0") and not send_initial
            if resume:
                want = parse_rv(rv_param)
                if want < st.compacted:
                    error = f"too old resource version: {want} ({st.compacted})"
                elif st.expire_pending:
                    st.expire_pending = False
                    error = f"too old resource version: {want} ({st.compacted})"
                pos = want
            else:
                pos = st.rv
                initial = [st.objects[k] for k in sorted(st.objects)
                           if k[0] == rt.qualified and visible(st.objects[k])]
            if error is None:
                st.watchers.add(w)
                st.cond.notify_all()

        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._log_entry["status"] = 200
        graceful = True
        try:
            if error is not None:
                # A real apiserver answers 200 and puts the 410 in the stream.
                self._event("ERROR", status_obj(410, "Expired", error))
                return
            for obj in initial:
                self._event("ADDED", obj)
            if send_initial:
                self._bookmark(rt, pos, initial_end=True)
            deadline = time.monotonic() + timeout
            next_bm = time.monotonic() + srv.mode["bookmarkIntervalSeconds"]
            while True:
                with st.cond:
                    while True:
                        if st.stopping or w.dropped or w.expired:
                            break
                        if st.history_rvs and st.history_rvs[-1] > pos:
                            break
                        now = time.monotonic()
                        if now >= deadline or (allow_bm and now >= next_bm):
                            break
                        wait = min(0.2, deadline - now)
                        if allow_bm:
                            wait = min(wait, next_bm - now)
                        st.cond.wait(max(wait, 0.001))
                        if self._client_gone():
                            graceful = False
                            return
                    if w.dropped:
                        raise AbortConnection()
                    if w.expired:
                        self._event("ERROR", status_obj(
                            410, "Expired", f"too old resource version: {pos} ({st.compacted})"))
                        return
                    if st.stopping:
                        return
                    if pos < st.compacted:
                        # History was trimmed past what we delivered: relist needed.
                        self._event("ERROR", status_obj(
                            410, "Expired", f"too old resource version: {pos} ({st.compacted})"))
                        return
                    events = st.events_after(pos)
                    current = st.rv
                for ev in events:
                    out = self._convert(ev, visible)
                    if out is not None:
                        self._event(*out)
                pos = max(pos, current)
                now = time.monotonic()
                if now >= deadline:
                    # Like the apiserver, leave the client a fresh point to resume from.
                    if allow_bm:
                        self._bookmark(rt, pos)
                    return
                if allow_bm and now >= next_bm:
                    self._bookmark(rt, pos)
                    next_bm = now + srv.mode["bookmarkIntervalSeconds"]
        except AbortConnection:
            graceful = False
            raise
        except (BrokenPipeError, ConnectionResetError, OSError):
            graceful = False
            self.close_connection = True
        finally:
            with st.cond:
                st.watchers.discard(w)
                st.cond.notify_all()
            if graceful:
                try:
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except OSError:
                    self.close_connection = True
            else:
                self.close_connection = True

    @staticmethod
    def _convert(ev, visible):
        """Map a store event to what a filtered watch sees (cacher semantics)."""
        if ev.type == "DELETED":
            return ("DELETED", ev.obj) if visible(ev.prev) else None
        now_in = visible(ev.obj)
        was_in = visible(ev.prev)
        if now_in and was_in:
            return ("MODIFIED", ev.obj)
        if now_in:
            return ("ADDED", ev.obj)
        if was_in:
            # Leaving the selection looks like a deletion: old content, new rv.
            gone = copy.deepcopy(ev.prev)
            gone["metadata"]["resourceVersion"] = str(ev.rv)
            return ("DELETED", gone)
        return None

    # -- control endpoints --

    def _control(self, method, path, q, body):
        srv, st = self.server, self.server.store
        name = path[len("/_test/"):] if path.startswith("/_test/") else ""

        def load_body():
            try:
                return json.loads(body or b"null")
            except ValueError as e:
                raise ApiError(400, "BadRequest", f"body is not JSON: {e}")

        if method == "POST" and name == "apply":
            data = load_body()
            if isinstance(data, dict) and data.get("kind", "").endswith("List") and "items" in data:
                objs = data["items"]
            elif isinstance(data, list):
                objs = data
            elif isinstance(data, dict):
                objs = [data]
            else:
                raise ApiError(400, "BadRequest", "body must be an object, a list or a List")
            results = []
            for obj in objs:
                ev = st.apply(obj)
                results.append({"type": ev.type, "object": ev.obj})
            created = any(r["type"] == "ADDED" for r in results)
            single = isinstance(data, dict) and "items" not in data
            out = results[0]["object"] if single else {"results": results}
            return self._send_json(201 if created else 200, out)
        if method == "POST" and name == "delete":
            data = load_body()
            if not isinstance(data, dict) or not data.get("kind") or not data.get("name"):
                raise ApiError(400, "BadRequest", 'body must be {"kind", "namespace", "name"}')
            rt = find_type(data)
            if rt is None:
                raise ApiError(400, "BadRequest", f"unknown kind {data.get('kind')!r}")
            ns = (data.get("namespace") or "default") if rt.namespaced else ""
            gone = st.delete(rt, ns, data["name"])
            if gone is None:
                raise ApiError(404, "NotFound", f'{rt.qualified} "{data["name"]}" not found',
                               rt.details(data["name"]))
            return self._send_json(200, gone)
        if method == "POST" and name == "expire-watches":
            data = load_body() or {}
            n = st.expire(compact=data.get("compact", True))
            with st.cond:
                out = {"expiredOpenWatches": n, "pendingForNextWatch": st.expire_pending,
                       "compactedResourceVersion": str(st.compacted)}
            return self._send_json(200, out)
        if method == "POST" and name == "mode":
            data = load_body() or {}
            for k in ("forbidden", "down"):
                if k in data:
                    srv.mode[k] = data[k]
            if "bookmarkIntervalSeconds" in data:
                srv.mode["bookmarkIntervalSeconds"] = float(data["bookmarkIntervalSeconds"])
            if data.get("down"):
                with st.cond:
                    for w in st.watchers:
                        w.dropped = True
                    st.cond.notify_all()
            return self._send_json(200, srv.mode)
        if name == "requests" and method == "GET":
            since = int(q.get("since") or 0)
            with srv.log_lock:
                reqs = [dict(e) for e in srv.request_log if e["seq"] > since]
            return self._send_json(200, {"requests": reqs})
        if name == "requests" and method == "DELETE":
            with srv.log_lock:
                srv.request_log.clear()
            return self._send_json(200, {"requests": []})
        if name == "status" and method == "GET":
            with st.cond:
                out = {"resourceVersion": str(st.rv), "compactedResourceVersion": str(st.compacted),
                       "expirePending": st.expire_pending,
                       "openWatches": [{"id": w.id, "path": w.path, "since": w.since}
                                       for w in sorted(st.watchers, key=lambda w: w.id)],
                       "objects": len(st.objects), "mode": dict(srv.mode)}
            return self._send_json(200, out)
        if name == "scenario" and method == "GET":
            return self._send_json(200, srv.scenario)
        if name == "shutdown" and method == "POST":
            self._send_json(200, {"stopping": True})
            srv.stop_event.set()
            return
        raise ApiError(404, "NotFound", f"no control endpoint {method} {path}", {})


# --------------------------------------------------------------------------
# Startup

def load_scenario(args):
    if args.scenario_file:
        path = args.scenario_file
    elif args.scenario:
        path = os.path.join(SCENARIO_DIR, args.scenario + ".json")
    else:
        return {"name": "empty", "objects": []}
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if isinstance(data, list):
        data = {"objects": data}
    data.setdefault("name", os.path.splitext(os.path.basename(path))[0])
    return data


def version_info(git_version):
    m = re.match(r"v(\d+)\.(\d+)", git_version)
    major, minor = (m.group(1), m.group(2)) if m else ("1", "33")
    return {"major": major, "minor": minor, "gitVersion": git_version,
            "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
            "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.24.0", "compiler": "gc",
            "platform": "linux/amd64"}


def write_kubeconfig(path, port, token, ca_file=None):
    if ca_file:
        with open(ca_file, "rb") as f:
            ca = base64.b64encode(f.read()).decode()
        cluster = f"    server: https://127.0.0.1:{port}\n    certificate-authority-data: {ca}\n"
    else:
        cluster = f"    server: http://127.0.0.1:{port}\n"
    text = f"""apiVersion: v1
kind: Config
clusters:
- name: jobarchive-test
  cluster:
{cluster}users:
- name: jobarchive-test
  user:
    token: {token}
contexts:
- name: jobarchive-test
  context:
    cluster: jobarchive-test
    user: jobarchive-test
    namespace: default
current-context: jobarchive-test
preferences: {{}}
"""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)  # readers never see a half-written file


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group()
    src.add_argument("--scenario", help="name of a file in scenarios/ (without .json)")
    src.add_argument("--scenario-file", help="path of a scenario JSON file")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--kubeconfig-out", help="write a kubeconfig for this server here")
    p.add_argument("--token", default=DEFAULT_TOKEN, help="the bearer token to accept")
    p.add_argument("--bookmark-interval", type=float, default=DEFAULT_BOOKMARK_INTERVAL,
                   help="seconds between BOOKMARK events on watches that allow them")
    p.add_argument("--history", type=int, default=10000,
                   help="watch events kept; older resourceVersions get 410 Gone")
    p.add_argument("--initial-resource-version", type=int, default=1000)
    p.add_argument("--server-version", default="v1.33.0", help="gitVersion reported by /version")
    p.add_argument("--exit-on-stdin-eof", action="store_true",
                   help="stop when stdin closes (so a crashed test leaves no server behind)")
    p.add_argument("--tls", action="store_true",
                   help="serve HTTPS with the test certificate in tls/ (client-go, e.g. kubectl, "
                        "only sends kubeconfig credentials over TLS)")
    p.add_argument("--tls-cert", default=os.path.join(TLS_DIR, "server.crt"))
    p.add_argument("--tls-key", default=os.path.join(TLS_DIR, "server.key"))
    p.add_argument("--tls-ca", default=os.path.join(TLS_DIR, "ca.crt"),
                   help="CA written into the kubeconfig as certificate-authority-data")
    p.add_argument("--verbose", action="store_true", help="log requests on stderr")
    args = p.parse_args(argv)
    args.version_info = version_info(args.server_version)

    try:
        scenario = load_scenario(args)
        store = Store(history_limit=args.history, initial_rv=args.initial_resource_version)
        store.load(scenario.get("objects", []))
    except (OSError, ValueError, ApiError) as e:
        sys.stderr.write(f"server.py: cannot load scenario: {e}\n")
        return 2

    ssl_ctx = None
    if args.tls:
        ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_ctx.load_cert_chain(args.tls_cert, args.tls_key)
        ssl_ctx.set_alpn_protocols(["http/1.1"])  # no HTTP/2 here
    srv = ApiServer((args.host, args.port), store, args, scenario, ssl_ctx)
    port = srv.server_address[1]
    if args.kubeconfig_out:
        write_kubeconfig(args.kubeconfig_out, port, args.token, args.tls_ca if args.tls else None)

    def on_signal(signum, frame):
        srv.stop_event.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if args.exit_on_stdin_eof:
        def watch_stdin():
            # Raw fd reads: a thread parked in a buffered stdin read makes
            # interpreter shutdown abort.
            fd = sys.stdin.fileno()
            try:
                while os.read(fd, 4096):
                    pass
            except OSError:
                pass
            srv.stop_event.set()
        threading.Thread(target=watch_stdin, daemon=True).start()

    loop = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    loop.start()
    sys.stdout.write(f"READY {port}\n")
    sys.stdout.flush()

    while not srv.stop_event.wait(0.5):
        pass
    with store.cond:
        store.stopping = True
        store.cond.notify_all()
    srv.shutdown()
    # Give open watches a moment to end their streams properly, then cut
    # idle keep-alive connections so clients see the server go.
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        with store.cond:
            if not store.watchers:
                break
        time.sleep(0.02)
    srv.close_connections()
    srv.server_close()
    return 0


if __name__ == "__main__":
    rc = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: connection threads are daemons that may sit
    # in blocking reads, which finalization does not cope with.
    os._exit(rc)
