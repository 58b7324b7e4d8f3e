"""A small archive with known content, written by the real agent, for the audit tests.

`build(workdir, binary)` writes a kubelet-style pods tree (CRI log files) for a CronJob with
failed and successful attempts and two long-running Jobs, runs `jobarchive agent` on it until
every line has landed, deletes the pods that "ended" so the agent marks their manifests
complete, stops the agent, then writes footprint objects by hand in the shape of CONTRACT §5
(those pods have no API objects to take requests and phases from). The expected answers of the
audit queries follow from the constants below.

Then the post-mortem part, in namespace `default`: for each of K8S_SCENARIOS, the Kubernetes
test API server (tests/k8s_api/server.py) with that scenario and its Events
(tests/k8s_api/events/), the scenario's Job pods' logs, and `jobarchive agent --drain --kube on`,
which writes logs, manifests, footprints, the attempts' Events (`events/`) and the Jobs' records
(`jobs/`) itself.

Run alone to keep an archive to play with: python3 tests/audit/fixture.py OUT_DIR
"""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = "default"
GIB = 1 << 30
MIB = 1 << 20


def scheduled(day):
    """A CronJob's Job is named after its schedule time in minutes since the epoch."""
    return datetime(2026, 11, day, 2, 0, tzinfo=timezone.utc)


def cron_job(day):
    return f"nightly-report-{int(scheduled(day).timestamp()) // 60}"


class Pod:
    def __init__(self, namespace, job, suffix, start, containers, ended, footprint):
        self.namespace, self.job, self.start = namespace, job, start
        self.name = f"{job}-{suffix}"
        self.uid = f"uid-{self.name}"
        self.containers = containers  # container -> [(seconds after start, stream, message)]
        self.ended = ended
        self.footprint = footprint  # phase, reason, exit code, request, used, held seconds

    @property
    def folder(self):
        return f"{self.namespace}_{self.name}_{self.uid}"


def _fp(phase, reason, code, request, used, seconds):
    return dict(phase=phase, reason=reason, exit_code=code, request=request, used=used, seconds=seconds)


NIGHTLY = [
    # 25th: attempt 1 fails on a timeout, attempt 2 succeeds.
    Pod("reports", cron_job(25), "k7d2x", scheduled(25), {"report": [
        (0, "stdout", "report: start"), (5, "stderr", "warning: slow query"),
        (9, "stdout", "report: fetching rows"), (12, "stderr", "error: database timeout")]},
        True, _fp("Failed", "Error", 1, 512 * MIB, 400 * MIB, 60)),
    Pod("reports", cron_job(25), "m5n6p", scheduled(25) + timedelta(minutes=5), {"report": [
        (0, "stdout", "report: start"), (4, "stderr", "warning: slow query"),
        (8, "stdout", "report: done")]},
        True, _fp("Succeeded", "Completed", 0, 512 * MIB, 400 * MIB, 60)),
    # 26th: the logs end on stdout, yet the pod was OOM-killed: only the footprint tells.
    Pod("reports", cron_job(26), "r8s9t", scheduled(26), {"report": [
        (0, "stdout", "report: start"), (3, "stderr", "warning: memory pressure"),
        (6, "stdout", "report: writing output")]},
        True, _fp("Failed", "OOMKilled", 137, 512 * MIB, 400 * MIB, 60)),
    # 27th: two failed attempts.
    Pod("reports", cron_job(27), "v2w4x", scheduled(27), {"report": [
        (0, "stdout", "report: start"), (2, "stderr", "error: disk full")]},
        True, _fp("Failed", "Error", 1, 512 * MIB, 400 * MIB, 60)),
    Pod("reports", cron_job(27), "b2c4d", scheduled(27) + timedelta(minutes=5), {"report": [
        (0, "stdout", "report: start"), (3, "stderr", "warning: retrying"),
        (5, "stderr", "error: disk full")]},
        True, _fp("Failed", "Error", 1, 512 * MIB, 400 * MIB, 60)),
]

# Still running when the archive is read: their manifests stay incomplete.
RUNNING = [
    Pod("ml", "train-model", "x7k2p", datetime(2026, 11, 27, 8, 0, tzinfo=timezone.utc), {
        "main": [(i * 60, "stdout", f"epoch {i}: loss {1.0 / (i + 1):.3f}") for i in range(5)]
        + [(301, "stdout", "checkpoint saved to s3://models/run-42")],
        "sidecar": [(0, "stdout", "uploader: idle")]},
        False, _fp("Running", None, None, 8 * GIB, 1 * GIB, 3600)),
    Pod("ml", "etl-load", "q9z4w", datetime(2026, 11, 27, 9, 0, tzinfo=timezone.utc), {
        "main": [(i, "stdout", f"loaded batch {i}") for i in range(20)]},
        False, _fp("Running", None, None, 1 * GIB, 0.9 * GIB, 1800)),
]

PODS = NIGHTLY + RUNNING


def rfc3339(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def write_pods(log_dir):
    for pod in PODS:
        for container, lines in pod.containers.items():
            path = Path(log_dir, pod.folder, container, "0.log")
            path.parent.mkdir(parents=True, exist_ok=True)
            text = "".join(
                f"{rfc3339(pod.start + timedelta(seconds=s))} {stream} F {msg}\n" for s, stream, msg in lines
            )
            path.write_text(text)


def manifest_path(store, pod, attempt):
    return Path(
        store, "manifests", f"cluster={CLUSTER}", f"namespace={pod.namespace}", f"job={pod.job}",
        "job_uid=unknown", f"attempt={attempt}", f"pod={pod.name}.json",
    )


def attempts():
    """pod name -> attempt: 1 + the pods of the same job whose first line is earlier."""
    out = {}
    for pod in PODS:
        out[pod.name] = 1 + sum(1 for p in PODS if p.job == pod.job and p.start < pod.start)
    return out


def _manifest(store, pod):
    path = manifest_path(store, pod, attempts()[pod.name])
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _landed(store, log_dir, pod):
    m = _manifest(store, pod)
    if m is None:
        return False
    ends = {c["container"]: c["end_offset"] for c in m["containers"]}
    return all(
        ends.get(c) == Path(log_dir, pod.folder, c, "0.log").stat().st_size for c in pod.containers
    )


def _complete(store, pod):
    m = _manifest(store, pod)
    return m is not None and len(m["containers"]) == len(pod.containers) and all(
        c["complete"] for c in m["containers"]
    )


def wait_for(what, check, limit=120):
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        time.sleep(0.2)


def run_agent(workdir, binary, store, log_dir):
    """The live agent: ship everything, then see the ended pods' folders go and complete them."""
    cfg = Path(workdir, "agent.toml")
    cgroup = Path(workdir, "no-cgroup")
    cgroup.mkdir(exist_ok=True)
    cfg.write_text('rescan_interval_secs = 1\nhttp_listen = ""\n[batch]\nmax_age_secs = 1\nquiet_secs = 1\nmanifest_interval_secs = 1\n')
    cmd = [
        str(binary), "agent", "--config", str(cfg), "--kube", "off", "--node-name", "node-1",
        "--log-dir", str(log_dir), "--state-dir", str(Path(workdir, "state")), "--store", str(store),
        "--cgroup-root", str(cgroup),
    ]
    with open(Path(workdir, "agent.log"), "w") as log:
        agent = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for("every line to land", lambda: all(_landed(store, log_dir, p) for p in PODS))
            for pod in PODS:
                if pod.ended:
                    subprocess.run(["rm", "-rf", str(Path(log_dir, pod.folder))], check=True)
            wait_for("ended pods to complete", lambda: all(_complete(store, p) for p in PODS if p.ended))
        finally:
            agent.send_signal(signal.SIGTERM)
            code = agent.wait(timeout=60)
    if code != 0:
        raise RuntimeError(f"agent exited {code}; see {workdir}/agent.log")


def write_footprints(store):
    """Footprints as CONTRACT §5 shapes them, one JSON line per attempt."""
    for pod in PODS:
        attempt = attempts()[pod.name]
        f = pod.footprint
        end = pod.start + timedelta(seconds=f["seconds"])
        doc = {
            "job": pod.job, "job_uid": None,
            "cronjob": "nightly-report" if pod in NIGHTLY else None,
            "namespace": pod.namespace, "attempt": attempt, "pod": pod.name, "pod_uid": pod.uid,
            "node": "node-1", "phase": f["phase"], "reason": f["reason"], "exit_code": f["exit_code"],
            "created": rfc3339(pod.start), "started": rfc3339(pod.start),
            "finished": rfc3339(end) if pod.ended else None,
            "memory_request_bytes": f["request"], "memory_limit_bytes": f["request"],
            "cpu_request_millicores": 500, "cpu_limit_millicores": None,
            "memory_peak_bytes": int(f["used"]), "cpu_usage_seconds": 12.5,
            "reserved_memory_byte_seconds": float(f["request"] * f["seconds"]),
            "used_memory_byte_seconds": float(f["used"] * f["seconds"]),
            "waiting_seconds": 0.0, "waiting_reason": None,
            "samples": [[pod.start.timestamp(), int(f["used"]), 0.0], [end.timestamp(), int(f["used"]), 12.5]],
        }
        path = Path(str(manifest_path(store, pod, attempt)).replace("/manifests/", "/footprints/", 1))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc))


# ---------------------------------------------------------------- with the Kubernetes API

K8S_API = ROOT / "tests" / "k8s_api"
# The seed Job failing six times (BackoffLimitExceeded), and a CronJob's two failed Jobs, the
# first of which was deleted by the history limit before its pod's log was shipped.
K8S_SCENARIOS = ("seed-exit-nonzero", "cronjob")


def k8s_pods():
    """(scenario, pod object, its row of the scenario's expected table) of every Job pod."""
    out = []
    for name in K8S_SCENARIOS:
        doc = json.loads((K8S_API / "scenarios" / f"{name}.json").read_text())
        expected = {e["pod"]: e for e in doc["expected"]}
        for o in doc["objects"]:
            row = expected.get(o["metadata"]["name"]) if o["kind"] == "Pod" else None
            if row and row["job"]:
                out.append((name, o, row))
    return out


def k8s_lines(pod):
    """The pod's one container's log: a line when it started, one when it exited."""
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    name = pod["metadata"]["name"]
    parse = lambda t: datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    return [
        (parse(term["startedAt"]), "stdout", f"{name}: starting"),
        (parse(term["finishedAt"]), "stderr", f"{name}: exiting with status {term['exitCode']}"),
    ]


def run_kube_agent(workdir, binary, store):
    for scenario in K8S_SCENARIOS:
        base = Path(workdir, "k8s", scenario)
        log_dir, cgroup = base / "pods", base / "no-cgroup"
        cgroup.mkdir(parents=True, exist_ok=True)
        for name, pod, _ in k8s_pods():
            if name != scenario:
                continue
            meta = pod["metadata"]
            container = pod["spec"]["containers"][0]["name"]
            path = Path(log_dir, f"{meta['namespace']}_{meta['name']}_{meta['uid']}", container, "0.log")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(f"{rfc3339(t)} {s} F {m}\n" for t, s, m in k8s_lines(pod)))
        kubeconfig = base / "kubeconfig.yaml"
        server = subprocess.Popen(
            [sys.executable, str(K8S_API / "server.py"), "--scenario", scenario, "--port", "0",
             "--kubeconfig-out", str(kubeconfig), "--exit-on-stdin-eof"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )
        try:
            port = int(server.stdout.readline().split()[1])
            events = (K8S_API / "events" / f"{scenario}.json").read_bytes()
            req = urllib.request.Request(f"http://127.0.0.1:{port}/_test/apply", data=events,
                                         headers={"Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=30).read()
            env = {k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"}
            env["KUBECONFIG"] = str(kubeconfig)
            cmd = [str(binary), "agent", "--drain", "--kube", "on", "--node-name", "node-1",
                   "--log-dir", str(log_dir), "--state-dir", str(base / "state"),
                   "--store", str(store), "--cgroup-root", str(cgroup)]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f"agent --kube on exited {out.returncode}: {out.stderr}")
        finally:
            server.stdin.close()
            server.wait(timeout=30)
            server.stdout.close()


def build(workdir, binary):
    """Pods tree → agent → store `workdir/archive` (+ footprints), then the post-mortem part.
    Returns the store path."""
    workdir = Path(workdir)
    log_dir, store = workdir / "pods", workdir / "archive"
    write_pods(log_dir)
    run_agent(workdir, binary, store, log_dir)
    write_footprints(store)
    run_kube_agent(workdir, binary, store)
    return store


def binary():
    """The debug binary tests/run.sh built (honours CARGO_TARGET_DIR like cargo does)."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return Path(os.environ.get("JOBARCHIVE_BIN", target / "debug" / "jobarchive"))


if __name__ == "__main__":
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    print(build(out, binary()))
