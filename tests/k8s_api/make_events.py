#!/usr/bin/env python3
"""Builds tests/k8s_api/events/*.json: the Events a cluster would hold for each scenario's pods
and Jobs, ready to POST to the test server's /_test/apply (a List of core/v1 Events).

The recording (tests/fixtures/k8s/events-default.json, a real kube-apiserver's EventList) has
only the controllers' Events: it was taken without a kubelet or a scheduler. Those recorded
Events are used as they are wherever their objects are in a scenario (the cronjob scenario's
Jobs and CronJob); every other Event is built in the same shape, following the API reference
and what the components report:

- the kubelet (core/v1): `source: {component: kubelet, host: <node>}`, `firstTimestamp`,
  `lastTimestamp`, `count`, `involvedObject.fieldPath: spec.containers{<name>}`,
  `reportingComponent: kubelet`, `reportingInstance: <node>`; repeats folded into `count`;
- the scheduler (events.k8s.io/v1, as read through core/v1): `eventTime` with microseconds,
  `firstTimestamp`/`lastTimestamp` null, no `count`, `source: {}`, `action: Binding`,
  `reportingComponent: default-scheduler`, `reportingInstance: default-scheduler-<node>`;
- the Job controller, like the recorded ones: SuccessfulCreate per pod, then
  BackoffLimitExceeded (Warning) or Completed.

Uids, names and times derive from the scenario objects, so reruns give identical files.

    python3 tests/k8s_api/make_events.py [--check]
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
SCENARIOS = os.path.join(HERE, "scenarios")
OUT = os.path.join(HERE, "events")
RECORDED = os.path.join(REPO, "tests", "fixtures", "k8s", "events-default.json")
NODE = "node-1"


def uid(seed):
    return str(uuid.UUID(bytes=hashlib.sha256(("jobarchive-event/" + seed).encode()).digest()[:16], version=4))


def name_suffix(seed):
    # The apiserver names Events <object>.<hex of the time>; any unique hex serves.
    return hashlib.sha256(("name/" + seed).encode()).hexdigest()[:16]


def at(base, seconds):
    t = datetime.strptime(base, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    return (t + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def involved(obj, field_path=None):
    ref = {"kind": obj["kind"], "namespace": obj["metadata"]["namespace"],
           "name": obj["metadata"]["name"], "uid": obj["metadata"]["uid"],
           "apiVersion": obj["apiVersion"], "resourceVersion": obj["metadata"]["resourceVersion"]}
    if field_path:
        ref["fieldPath"] = field_path
    return ref


def meta(obj, seed, created):
    return {"name": f"{obj['metadata']['name']}.{name_suffix(seed)}",
            "namespace": obj["metadata"]["namespace"], "uid": uid(seed),
            "creationTimestamp": created}


def kubelet(obj, container, reason, message, first, last=None, count=1, kind="Normal"):
    seed = f"{obj['metadata']['uid']}/{reason}/{container}"
    return {"kind": "Event", "apiVersion": "v1", "metadata": meta(obj, seed, first),
            "involvedObject": involved(obj, f"spec.containers{{{container}}}"),
            "reason": reason, "message": message,
            "source": {"component": "kubelet", "host": NODE},
            "firstTimestamp": first, "lastTimestamp": last or first, "count": count,
            "type": kind, "eventTime": None, "reportingComponent": "kubelet",
            "reportingInstance": NODE}


def scheduled(pod):
    when = pod["metadata"]["creationTimestamp"]
    seed = f"{pod['metadata']['uid']}/Scheduled"
    return {"kind": "Event", "apiVersion": "v1", "metadata": meta(pod, seed, when),
            "involvedObject": involved(pod), "reason": "Scheduled",
            "message": f"Successfully assigned {pod['metadata']['namespace']}/{pod['metadata']['name']} to {NODE}",
            "source": {}, "firstTimestamp": None, "lastTimestamp": None, "type": "Normal",
            "eventTime": when.replace("Z", ".104021Z"), "action": "Binding",
            "reportingComponent": "default-scheduler",
            "reportingInstance": f"default-scheduler-{NODE}"}


def job_event(job, reason, message, when, kind="Normal"):
    seed = f"{job['metadata']['uid']}/{reason}/{message}"
    return {"kind": "Event", "apiVersion": "v1", "metadata": meta(job, seed, when),
            "involvedObject": involved(job), "reason": reason, "message": message,
            "source": {"component": "job-controller"}, "firstTimestamp": when,
            "lastTimestamp": when, "count": 1, "type": kind, "eventTime": None,
            "reportingComponent": "", "reportingInstance": ""}


def pod_events(pod):
    """What the scheduler and the kubelet report for a pod of one container."""
    c = pod["spec"]["containers"][0]
    name, image = c["name"], c["image"]
    created = pod["metadata"]["creationTimestamp"]
    state = pod["status"]["containerStatuses"][0]["state"]
    out = [scheduled(pod)]
    present = f'Container image "{image}" already present on machine'
    if "waiting" in state:
        # The kubelet retries the container every 20 s and reports both each time; the
        # scenario's pod has been waiting for 5 minutes.
        n = 15
        last = at(created, 2 + 20 * (n - 1))
        out.append(kubelet(pod, name, "Pulled", present, at(created, 2), last, n))
        out.append(kubelet(pod, name, "Failed", f"Error: {state['waiting']['message']}",
                           at(created, 2), last, n, "Warning"))
        return out
    started = (state.get("running") or state.get("terminated"))["startedAt"]
    out.append(kubelet(pod, name, "Pulled", present, at(started, -1)))
    out.append(kubelet(pod, name, "Created", f"Created container: {name}", started))
    out.append(kubelet(pod, name, "Started", f"Started container {name}", started))
    return out


def scenario(name):
    with open(os.path.join(SCENARIOS, name + ".json"), encoding="utf-8") as f:
        return json.load(f)


def owned_by(pod, job):
    return any(r["uid"] == job["metadata"]["uid"] for r in pod["metadata"].get("ownerReferences", []))


def seed_events(name):
    s = scenario(name)
    pods = [o for o in s["objects"] if o["kind"] == "Pod"]
    out = []
    for job in (o for o in s["objects"] if o["kind"] == "Job"):
        mine = sorted((p for p in pods if owned_by(p, job)), key=lambda p: p["metadata"]["creationTimestamp"])
        for p in mine:
            out.append(job_event(job, "SuccessfulCreate", f"Created pod: {p['metadata']['name']}",
                                 p["metadata"]["creationTimestamp"]))
        for c in (job.get("status") or {}).get("conditions", []):
            if c["type"] == "Failed" and c["status"] == "True":
                out.append(job_event(job, c["reason"], c["message"], c["lastTransitionTime"], "Warning"))
            if c["type"] == "Complete" and c["status"] == "True":
                out.append(job_event(job, "Completed", "Job completed", c["lastTransitionTime"]))
    for p in pods:
        out.extend(pod_events(p))
    return out


def cronjob_events():
    """The recorded Events of the cronjob scenario's Jobs and CronJob, as recorded, plus the
    pods' own."""
    s = scenario("cronjob")
    with open(RECORDED, encoding="utf-8") as f:
        recorded = json.load(f)["items"]
    uids = {o["metadata"]["uid"] for o in s["objects"] + s["goneObjects"]}
    out = []
    for e in recorded:
        if e["involvedObject"]["uid"] in uids:
            e = copy.deepcopy(e)
            e.pop("managedFields", None)
            e["metadata"].pop("managedFields", None)
            out.append({"kind": "Event", "apiVersion": "v1", **e})
    for p in (o for o in s["objects"] if o["kind"] == "Pod"):
        out.extend(pod_events(p))
    return out


def bare_pod_events():
    s = scenario("bare-pod")
    return [e for p in s["objects"] if p["kind"] == "Pod" for e in pod_events(p)]


def build():
    files = {n: seed_events(n) for n in ("seed-exit-nonzero", "seed-invalid-secret", "seed-over-provisioned")}
    files["cronjob"] = cronjob_events()
    files["bare-pod"] = bare_pod_events()
    return {n: {"kind": "List", "apiVersion": "v1", "items": items} for n, items in files.items()}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true")
    args = p.parse_args()
    os.makedirs(OUT, exist_ok=True)
    differ = False
    for name, doc in build().items():
        path = os.path.join(OUT, name + ".json")
        text = json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
        if args.check:
            old = open(path, encoding="utf-8").read() if os.path.exists(path) else None
            if old != text:
                print(f"differs: {path}")
                differ = True
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
