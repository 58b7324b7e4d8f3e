#!/usr/bin/env python3
"""Builds tests/k8s_api/scenarios/*.json from the recorded API objects.

The scenarios are committed; this script documents how each object was
derived and regenerates them: recorded objects (tests/fixtures/k8s,
kube-apiserver v1.24) lose their managedFields and gain the fields a current
cluster sets (README.md lists them), and objects the recording lacks (the
example Jobs of examples/jobs/: six-attempt exit-nonzero, invalid-secret,
over-provisioned; a backoffLimitPerIndex Job) are built from recorded objects
of the same shape.
Every synthesized uid/name/container ID is derived from a fixed seed, so
reruns produce identical files.

    python3 tests/k8s_api/make_scenarios.py [--fixtures DIR] [--check]

--check compares instead of writing (exit 1 on any difference) and also
prints the expected-attempt table used in README.md.
"""

import argparse
import copy
import hashlib
import json
import os
import sys
import uuid
from datetime import datetime, timedelta, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEFAULT_FIXTURES = os.path.join(REPO, "tests", "fixtures", "k8s")
OUT = os.path.join(HERE, "scenarios")

JOB_NAME = "batch.kubernetes.io/job-name"
CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
FAILURE_COUNT = "batch.kubernetes.io/job-index-failure-count"
SCHEDULED = "batch.kubernetes.io/cronjob-scheduled-timestamp"
TRACKING = "batch.kubernetes.io/job-tracking"
ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


# -- helpers ---------------------------------------------------------------

def h(seed):
    return hashlib.sha256(("jobarchive-fixture/" + seed).encode()).digest()


def fake_uid(seed):
    return str(uuid.UUID(bytes=h(seed)[:16], version=4))


def fake_suffix(seed, n=5):
    return "".join(ALPHABET[b % len(ALPHABET)] for b in h(seed)[:n])


def container_id(seed):
    return "containerd://" + hashlib.sha256(("ctr/" + seed).encode()).hexdigest()


def at(base, seconds):
    t = datetime.strptime(base, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    return (t + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def sorted_map(d):
    # Go marshals maps with sorted keys; keep files looking like API output.
    return dict(sorted(d.items()))


def typed(obj, kind, api_version):
    out = {"kind": kind, "apiVersion": api_version}
    out.update({k: v for k, v in obj.items() if k not in ("kind", "apiVersion")})
    return out


def strip(obj):
    obj = copy.deepcopy(obj)
    obj["metadata"].pop("managedFields", None)
    return obj


class Fixtures:
    def __init__(self, root):
        self.root = root

    def load(self, name):
        with open(os.path.join(self.root, name), encoding="utf-8") as f:
            return json.load(f)

    def pod(self, name):
        for p in self.load("podlist-node-1-final.json")["items"]:
            if p["metadata"]["name"] == name:
                return typed(strip(p), "Pod", "v1")
        raise KeyError(name)

    def job(self, name):
        return strip(self.load(f"job-{name}.json"))


# -- modern fields ---------------------------------------------------------

def modernize_job(job, scheduled=None):
    """Labels, selector and annotations a 1.28+ apiserver/controller sets."""
    meta, uid, name = job["metadata"], job["metadata"]["uid"], job["metadata"]["name"]
    meta["labels"] = sorted_map({**meta.get("labels", {}), CONTROLLER_UID: uid, JOB_NAME: name})
    if scheduled:
        meta["annotations"] = sorted_map({**meta.get("annotations", {}), SCHEDULED: scheduled})
    # Since 1.27 the generated selector uses the prefixed label.
    job["spec"]["selector"] = {"matchLabels": {CONTROLLER_UID: uid}}
    tmeta = job["spec"]["template"]["metadata"]
    tmeta["labels"] = sorted_map({**tmeta.get("labels", {}), CONTROLLER_UID: uid, JOB_NAME: name})
    return job


def modernize_pod(pod, job_name, job_uid, failure_count=None):
    meta = pod["metadata"]
    labels = {**meta.get("labels", {}), CONTROLLER_UID: job_uid, JOB_NAME: job_name}
    ann = dict(meta.get("annotations") or {})
    index = ann.get(COMPLETION_INDEX)
    if index is not None:
        labels[COMPLETION_INDEX] = index   # PodIndexLabel, 1.28+
        for c in pod["spec"]["containers"]:
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("fieldRef")
                if ref and COMPLETION_INDEX in ref.get("fieldPath", ""):
                    # With PodIndexLabel the controller points the env var at the label.
                    ref["fieldPath"] = f"metadata.labels['{COMPLETION_INDEX}']"
    if failure_count is not None:
        ann[FAILURE_COUNT] = str(failure_count)
    meta["labels"] = sorted_map(labels)
    if ann:
        meta["annotations"] = sorted_map(ann)
    return pod


# -- synthesized pods ------------------------------------------------------

def rename_sa_volume(pod, seed):
    vol = "kube-api-access-" + fake_suffix("vol/" + seed)
    for v in pod["spec"].get("volumes", []):
        if v["name"].startswith("kube-api-access-"):
            v["name"] = vol
    for c in pod["spec"]["containers"]:
        for m in c.get("volumeMounts", []):
            if m["name"].startswith("kube-api-access-"):
                m["name"] = vol


def cond(type_, status, when, reason=None, message=None):
    c = {"type": type_, "status": status, "lastProbeTime": None, "lastTransitionTime": when}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


def set_status(pod, state, created, ip, started=None, finished=None, exit_codes=None,
               waiting=None, image_id=None):
    """Pod status as the kubelet reports it for state terminated/running/waiting."""
    names = [c["name"] for c in pod["spec"]["containers"]]
    images = {c["name"]: c["image"] for c in pod["spec"]["containers"]}
    qos = pod["status"].get("qosClass", "BestEffort")
    st = {}
    statuses = []
    pod_name = pod["metadata"]["name"]
    if state == "terminated":
        codes = exit_codes or {n: 0 for n in names}
        phase = "Failed" if any(codes.values()) else "Succeeded"
        st["phase"] = phase
        st["conditions"] = [cond("Initialized", "True", created),
                            cond("Ready", "False", finished, "PodCompleted"),
                            cond("ContainersReady", "False", finished, "PodCompleted"),
                            cond("PodScheduled", "True", created)]
        for n in names:
            cid = container_id(f"{pod_name}/{n}")
            statuses.append({"name": n, "state": {"terminated": {
                "exitCode": codes[n], "reason": "Error" if codes[n] else "Completed",
                "startedAt": started, "finishedAt": finished, "containerID": cid}},
                "lastState": {}, "ready": False, "restartCount": 0, "image": images[n],
                "imageID": image_id(images[n]), "containerID": cid, "started": False})
    elif state == "running":
        st["phase"] = "Running"
        st["conditions"] = [cond("Initialized", "True", created),
                            cond("Ready", "True", started),
                            cond("ContainersReady", "True", started),
                            cond("PodScheduled", "True", created)]
        for n in names:
            cid = container_id(f"{pod_name}/{n}")
            statuses.append({"name": n, "state": {"running": {"startedAt": started}},
                             "lastState": {}, "ready": True, "restartCount": 0, "image": images[n],
                             "imageID": image_id(images[n]), "containerID": cid, "started": True})
    elif state == "waiting":
        st["phase"] = "Pending"
        msg = "containers with unready status: [" + " ".join(names) + "]"
        st["conditions"] = [cond("Initialized", "True", created),
                            cond("Ready", "False", created, "ContainersNotReady", msg),
                            cond("ContainersReady", "False", created, "ContainersNotReady", msg),
                            cond("PodScheduled", "True", created)]
        for n in names:
            statuses.append({"name": n, "state": {"waiting": dict(waiting)},
                             "lastState": {}, "ready": False, "restartCount": 0, "image": images[n],
                             "imageID": "", "started": False})
    st["hostIP"] = "127.0.0.1"
    st["podIP"] = ip
    st["podIPs"] = [{"ip": ip}]
    st["startTime"] = created
    st["containerStatuses"] = statuses
    st["qosClass"] = qos
    pod["status"] = st


def busybox_image_id(image):
    return f"docker.io/library/{image}@sha256:" + "0" * 64 if "/" not in image \
        else f"docker.io/{image}@sha256:" + "0" * 64


def job_pod(template, job, name, created, generate_name=None, finalizers=None):
    """A pod of `job` shaped like the recorded template pod."""
    pod = copy.deepcopy(template)
    meta = pod["metadata"]
    meta["name"] = name
    meta["generateName"] = generate_name or (job["metadata"]["name"] + "-")
    meta["uid"] = fake_uid("pod/" + name)
    meta["creationTimestamp"] = created
    # The controller copies the Job's template labels onto each pod.
    meta["labels"] = dict(job["spec"]["template"]["metadata"].get("labels", {}))
    meta["ownerReferences"] = [{"apiVersion": "batch/v1", "kind": "Job",
                                "name": job["metadata"]["name"], "uid": job["metadata"]["uid"],
                                "controller": True, "blockOwnerDeletion": True}]
    meta.pop("finalizers", None)
    if finalizers:
        meta["finalizers"] = finalizers
    rename_sa_volume(pod, name)
    return pod


def put_containers(pod, job):
    """Pod containers = the Job template's, plus the token volume mount."""
    mount = pod["spec"]["containers"][0]["volumeMounts"][0]
    pod["spec"]["containers"] = []
    for c in job["spec"]["template"]["spec"]["containers"]:
        c = copy.deepcopy(c)
        out = {}
        for k, v in c.items():
            out[k] = v
            if k == "resources":
                out["volumeMounts"] = [copy.deepcopy(mount)]
        pod["spec"]["containers"].append(out)


# -- scenarios -------------------------------------------------------------

def node(fx):
    return strip(fx.load("node-1.json"))


def seed_exit_nonzero(fx):
    job = modernize_job(fx.job("exit-nonzero"))
    # examples/jobs/exit-nonzero.yaml has backoffLimit 6, the default (the capture used 2).
    job["spec"]["backoffLimit"] = 6
    template = fx.pod("exit-nonzero-94945")
    t0 = job["metadata"]["creationTimestamp"]
    names = ["szsld", "nq9nb", "bg2hf", "9mggl", "lklmw", "txl6b"]  # as in jobarchive demo
    pods, created = [], 0
    for i, suffix in enumerate(names):
        name = f"exit-nonzero-{suffix}"
        c, s, f = at(t0, created), at(t0, created + 2), at(t0, created + 32)
        pod = job_pod(template, job, name, c)
        set_status(pod, "terminated", c, f"10.244.0.{31 + i}", s, f,
                   {"exit-nonzero": 1}, image_id=busybox_image_id)
        pods.append(modernize_pod(pod, "exit-nonzero", job["metadata"]["uid"]))
        # ~30 s of run, then the controller's back-off: 10 s, doubling.
        created += 32 + 10 * 2 ** i
    last_finish = pods[-1]["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"]
    job["status"] = {"conditions": [cond("Failed", "True", last_finish, "BackoffLimitExceeded",
                                         "Job has reached the specified backoff limit")],
                     "startTime": t0, "failed": 6, "uncountedTerminatedPods": {}}
    job["status"]["conditions"][0]["lastProbeTime"] = last_finish
    return {"objects": [node(fx), job] + pods, "goneObjects": []}


def seed_job(fx, name, image, command, memory, created, env=None):
    """A Job shaped like the recorded exit-nonzero Job, standing for one of examples/jobs/
    (same name, image and memory request; the command of the run the demo replays)."""
    job = fx.job("exit-nonzero")
    meta = job["metadata"]
    uid = fake_uid("job/" + name)
    meta.update({"name": name, "uid": uid, "creationTimestamp": created, "labels": {}})
    spec = job["spec"]
    spec["backoffLimit"] = 6
    tmpl = spec["template"]
    tmpl["metadata"]["labels"] = {"controller-uid": uid, "job-name": name}
    meta["labels"] = {"controller-uid": uid, "job-name": name}
    c = {"name": name, "image": image, "command": command}
    if env:
        c["env"] = env
    c.update({"resources": {"requests": {"memory": memory}},
              "terminationMessagePath": "/dev/termination-log",
              "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"})
    tmpl["spec"]["containers"] = [c]
    job["status"] = {"startTime": created, "active": 1, "ready": 0, "uncountedTerminatedPods": {}}
    return modernize_job(job)


def seed_invalid_secret(fx):
    t0 = "2026-11-27T15:05:00Z"
    env = [{"name": "notpresent", "valueFrom": {"secretKeyRef": {"name": "notpresent", "key": "notpresent"}}}]
    job = seed_job(fx, "invalid-secret", "busybox", ["exit 0"], "1Gi", t0, env)
    pod = job_pod(fx.pod("exit-nonzero-94945"), job, "invalid-secret-5st25", t0, finalizers=[TRACKING])
    put_containers(pod, job)
    set_status(pod, "waiting", t0, "10.244.0.40",
               waiting={"reason": "CreateContainerConfigError",
                        "message": 'secret "notpresent" not found'})
    pod = modernize_pod(pod, "invalid-secret", job["metadata"]["uid"])
    return {"objects": [node(fx), job, pod], "goneObjects": []}


def seed_over_provisioned(fx):
    t0 = "2026-11-27T15:06:00Z"
    job = seed_job(fx, "over-provisioned", "polinux/stress",
                   ["stress", "--vm", "1", "--vm-bytes", "1G", "--vm-hang", "0"], "2Gi", t0)
    job["status"]["ready"] = 1
    name = "over-provisioned-" + fake_suffix("pod/over-provisioned")
    pod = job_pod(fx.pod("exit-nonzero-94945"), job, name, t0, finalizers=[TRACKING])
    put_containers(pod, job)
    # --vm-hang 0 never exits, so the pod stays Running until deleted.
    set_status(pod, "running", t0, "10.244.0.41", started=at(t0, 3), image_id=busybox_image_id)
    pod = modernize_pod(pod, "over-provisioned", job["metadata"]["uid"])
    return {"objects": [node(fx), job, pod], "goneObjects": []}


def indexed(fx):
    job = modernize_job(fx.job("indexed"))
    uid = job["metadata"]["uid"]
    pods = [modernize_pod(fx.pod(n), "indexed", uid)
            for n in ("indexed-0-k4tkj", "indexed-1-pwkgk", "indexed-1-bbstw")]

    # indexed-pi: completions 3, backoffLimitPerIndex 1.  Index 0 succeeds,
    # index 1 fails once then succeeds, index 2 fails twice (index failed).
    # The first pod of index 2 was removed from the API (e.g. by PodGC), so
    # only its failure-count annotation tells the second pod is attempt 2.
    t0 = "2026-11-27T14:56:00Z"
    pi = copy.deepcopy(fx.job("indexed"))
    pi_uid = fake_uid("job/indexed-pi")
    meta = pi["metadata"]
    meta.update({"name": "indexed-pi", "uid": pi_uid, "creationTimestamp": t0,
                 "labels": {"controller-uid": pi_uid, "job-name": "indexed-pi"}})
    spec = pi["spec"]
    spec.update({"parallelism": 3, "completions": 3,
                 # backoffLimit defaults to MaxInt32 when backoffLimitPerIndex is set.
                 "backoffLimit": 2147483647, "backoffLimitPerIndex": 1})
    spec["template"]["metadata"]["labels"] = {"controller-uid": pi_uid, "job-name": "indexed-pi"}
    spec["template"]["spec"]["containers"] = [{
        "name": "worker", "image": "busybox",
        "command": ["/bin/sh", "-c", "echo index $JOB_COMPLETION_INDEX; [ $JOB_COMPLETION_INDEX -ne 2 ]"],
        "resources": {}, "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}]
    spec["podReplacementPolicy"] = "TerminatingOrFailed"
    pi = modernize_job(pi)
    template = fx.pod("indexed-0-k4tkj")
    plan = [  # (index, failure count, created offset, exit code, served?)
        (0, 0, 0, 0, True),
        (1, 0, 0, 1, True),
        (1, 1, 15, 0, True),
        (2, 0, 0, 1, False),
        (2, 1, 15, 1, True),
    ]
    served, gone = [], []
    for n, (index, failures, off, code, keep) in enumerate(plan):
        name = f"indexed-pi-{index}-" + fake_suffix(f"pod/indexed-pi/{index}/{failures}")
        c = at(t0, off)
        pod = job_pod(template, pi, name, c, generate_name=f"indexed-pi-{index}-")
        pod["metadata"]["annotations"] = {COMPLETION_INDEX: str(index)}
        pod["spec"]["hostname"] = f"indexed-pi-{index}"
        put_containers(pod, pi)
        for ctr in pod["spec"]["containers"]:
            ctr_env = [{"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
                "apiVersion": "v1", "fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']"}}}]
            rebuilt = {}
            for k, v in ctr.items():
                rebuilt[k] = v
                if k == "command":
                    rebuilt["env"] = ctr_env
            ctr.clear()
            ctr.update(rebuilt)
        set_status(pod, "terminated", c, f"10.244.0.{50 + n}", at(c, 2), at(c, 5),
                   {"worker": code}, image_id=busybox_image_id)
        pod = modernize_pod(pod, "indexed-pi", pi_uid, failure_count=failures)
        (served if keep else gone).append(pod)
    end = at(t0, 20)
    pi["status"] = {
        "conditions": [cond("FailureTarget", "True", end, "FailedIndexes", "Job has failed indexes"),
                       cond("Failed", "True", end, "FailedIndexes", "Job has failed indexes")],
        "startTime": t0, "succeeded": 2, "failed": 3, "completedIndexes": "0,1",
        "failedIndexes": "2", "uncountedTerminatedPods": {}}
    for cnd in pi["status"]["conditions"]:
        cnd["lastProbeTime"] = end
    return {"objects": [node(fx), job] + pods + [pi] + served, "goneObjects": gone}


def cronjob(fx):
    cj = strip(fx.load("cronjob-cron-fail.json"))
    first = modernize_job(fx.job("cron-fail-29929854"), scheduled="2026-11-27T14:54:00Z")
    second = modernize_job(fx.job("cron-fail-29929855"), scheduled="2026-11-27T14:55:00Z")
    recorded = fx.pod("cron-fail-29929855-64rlg")
    # The first run's pod: its name is in the recorded Events, the rest
    # follows the second run's pod, one minute earlier.
    c = first["metadata"]["creationTimestamp"]
    orphan = job_pod(recorded, first, "cron-fail-29929854-4mr6g", c)
    set_status(orphan, "terminated", c, "10.244.0.10", at(c, 1), at(c, 4), {"report": 1},
               image_id=busybox_image_id)
    orphan = modernize_pod(orphan, first["metadata"]["name"], first["metadata"]["uid"])
    recorded = modernize_pod(recorded, second["metadata"]["name"], second["metadata"]["uid"])
    return {"objects": [node(fx), cj, second, orphan, recorded], "goneObjects": [first]}


def bare_pod(fx):
    return {"objects": [node(fx), fx.pod("bare-logger-7x2kq")], "goneObjects": []}


DESCRIPTIONS = {
    "seed-exit-nonzero": "Seed Job exit-nonzero (memory request 1Gi, backoffLimit 6): six Failed "
                         "pods, each ran ~30 s and exited 1, created after back-off gaps of "
                         "10, 20, 40, 80, 160 s; Job Failed (BackoffLimitExceeded).",
    "seed-invalid-secret": "Seed Job invalid-secret: one Pending pod whose container waits with "
                           "CreateContainerConfigError (secret \"notpresent\" not found); request 1Gi.",
    "seed-over-provisioned": "Seed Job over-provisioned (polinux/stress, request 2Gi): one Running pod.",
    "indexed": "Recorded Indexed Job 'indexed' (completions 2, two containers; index 1's first pod "
               "failed and was replaced) and Indexed Job 'indexed-pi' with backoffLimitPerIndex 1 "
               "(index 2 failed twice; its first pod is gone from the API).",
    "cronjob": "Recorded CronJob cron-fail with its second Job and pod; the first Job was deleted by "
               "failedJobsHistoryLimit (kept under goneObjects) while its pod is still on the node.",
    "bare-pod": "Recorded bare pod bare-logger-7x2kq (no owner).",
}


def expectations(objects, gone):
    """Attempt and index per served pod, by the agent's documented rule."""
    jobs = {o["metadata"]["uid"]: o for o in objects + gone if o["kind"] == "Job"}
    served_jobs = {o["metadata"]["uid"] for o in objects if o["kind"] == "Job"}
    pods = [o for o in objects if o["kind"] == "Pod"]
    out = []
    for p in pods:
        meta = p["metadata"]
        owner = next((r for r in meta.get("ownerReferences", []) if r.get("controller")), None)
        row = {"pod": meta["name"], "podUid": meta["uid"], "namespace": meta["namespace"],
               "phase": p["status"]["phase"], "job": None, "jobUid": None, "jobInApi": None,
               "cronJob": None, "attempt": None, "completionIndex": None}
        if owner and owner["kind"] == "Job":
            job = jobs.get(owner["uid"])
            row.update(job=owner["name"], jobUid=owner["uid"], jobInApi=owner["uid"] in served_jobs)
            if job is not None and row["jobInApi"]:
                cj = next((r for r in job["metadata"].get("ownerReferences", [])
                           if r["kind"] == "CronJob"), None)
                row["cronJob"] = cj["name"] if cj else None
            ann = meta.get("annotations") or {}
            idx = ann.get(COMPLETION_INDEX)
            row["completionIndex"] = int(idx) if idx is not None else None
            if FAILURE_COUNT in ann:
                row["attempt"] = int(ann[FAILURE_COUNT]) + 1
            else:
                earlier = [q for q in pods
                           if any(r["uid"] == owner["uid"] for r in q["metadata"].get("ownerReferences", []))
                           and (q["metadata"].get("annotations") or {}).get(COMPLETION_INDEX) == idx
                           and q["metadata"]["creationTimestamp"] < meta["creationTimestamp"]]
                row["attempt"] = 1 + len(earlier)
        out.append(row)
    return out


def build(fx):
    makers = {"seed-exit-nonzero": seed_exit_nonzero, "seed-invalid-secret": seed_invalid_secret,
              "seed-over-provisioned": seed_over_provisioned, "indexed": indexed,
              "cronjob": cronjob, "bare-pod": bare_pod}
    scenarios = {}
    for name, make in makers.items():
        s = make(fx)
        scenarios[name] = {"name": name, "description": DESCRIPTIONS[name], "node": "node-1",
                           "objects": s["objects"], "goneObjects": s["goneObjects"],
                           "expected": expectations(s["objects"], s["goneObjects"])}
    objects, gone, seen = [], [], set()
    for s in scenarios.values():
        for o in s["objects"]:
            key = (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
            if key not in seen:
                seen.add(key)
                objects.append(o)
        gone += s["goneObjects"]
    scenarios["all"] = {"name": "all", "description": "All scenarios above together on node-1.",
                        "node": "node-1", "objects": objects, "goneObjects": gone,
                        "expected": expectations(objects, gone)}
    return scenarios


def number(scenario, first_rv=1001):
    """Stamp served objects with the resourceVersions the server will give them.

    The server assigns its own resourceVersions at load, in file order from
    --initial-resource-version + 1 (default 1001); writing the same numbers
    here keeps files and responses identical.  Recorded values (from another
    cluster's etcd) would be meaningless next to them.
    """
    scenario = copy.deepcopy(scenario)
    for i, obj in enumerate(scenario["objects"]):
        obj["metadata"]["resourceVersion"] = str(first_rv + i)
    return scenario


def render(s):
    return json.dumps(s, indent=1, ensure_ascii=False) + "\n"


def table(scenarios):
    lines = ["| scenario | pod | pod uid | phase | job | job uid | cronjob | attempt | index |",
             "| --- | --- | --- | --- | --- | --- | --- | ---: | ---: |"]
    for name, s in scenarios.items():
        if name == "all":
            continue
        for r in s["expected"]:
            job = r["job"] or "—"
            if r["job"] and not r["jobInApi"]:
                job += " (gone)"
            lines.append(f"| {name} | {r['pod']} | `{r['podUid']}` | {r['phase']} | {job} | "
                         f"{'`' + r['jobUid'] + '`' if r['jobUid'] else '—'} | {r['cronJob'] or '—'} | "
                         f"{r['attempt'] if r['attempt'] is not None else '—'} | "
                         f"{r['completionIndex'] if r['completionIndex'] is not None else '—'} |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fixtures", default=DEFAULT_FIXTURES)
    p.add_argument("--check", action="store_true")
    args = p.parse_args()
    scenarios = {k: number(v) for k, v in build(Fixtures(args.fixtures)).items()}
    os.makedirs(OUT, exist_ok=True)
    differ = False
    for name, s in scenarios.items():
        path = os.path.join(OUT, name + ".json")
        text = render(s)
        if args.check:
            old = open(path, encoding="utf-8").read() if os.path.exists(path) else None
            if old != text:
                print(f"differs: {path}")
                differ = True
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
    print(table(scenarios))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
