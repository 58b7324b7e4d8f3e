"""Consistency of deploy/ with the agent's configuration and contract.

Renders deploy/base and every overlay with `kubectl kustomize` and checks that the DaemonSet
mounts, exposes and sets what the deployed jobarchive.toml expects, that the RBAC, IAM policies
and Dockerfile grant and reference exactly what the agent needs, and that deploy's copy of the
config has not drifted from config/jobarchive.toml. Schema validation is deploy/validate.sh's job.

Run from the repository root, with the venv that deploy/validate.sh builds:
    ~/.cache/jobarchive-venv/bin/python -m pytest tests/deploy_test.py
"""

import functools
import json
import re
import shlex
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
OVERLAYS = sorted(p.name for p in (DEPLOY / "overlays").iterdir() if (p / "kustomization.yaml").exists())
TARGETS = ["base"] + [f"overlays/{o}" for o in OVERLAYS]

# Keys where deploy/base/jobarchive.toml deliberately differs from config/jobarchive.toml.
DELIBERATE_OVERRIDES = {"kube": "on"}

# Agent settings that the DaemonSet could also set by flag or env (CONTRACT.md, config header):
# the value in force is flag > env > file.
OVERRIDABLE = {
    "log_dir": ("--log-dir", "JOBARCHIVE_LOG_DIR"),
    "state_dir": ("--state-dir", "JOBARCHIVE_STATE_DIR"),
    "cgroup_root": ("--cgroup-root", "JOBARCHIVE_CGROUP_ROOT"),
    "node_name": ("--node-name", "NODE_NAME"),
    "kube": ("--kube", "JOBARCHIVE_KUBE"),
    "http_listen": ("--http-listen", "JOBARCHIVE_HTTP_LISTEN"),
}

AGENT_ACTIONS = {"s3:PutObject", "s3:GetObject", "s3:ListBucket"}
READER_ACTIONS = {"s3:GetObject", "s3:ListBucket"}


# ---------------------------------------------------------------- helpers


@functools.lru_cache(maxsize=None)
def render(target):
    out = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY / target)], check=True, capture_output=True, text=True
    ).stdout
    return tuple(o for o in yaml.safe_load_all(out) if o)


def objects(target, kind):
    return [o for o in render(target) if o["kind"] == kind]


def one(target, kind, name=None):
    found = [o for o in objects(target, kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, f"{target}: expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def daemonset(target):
    return one(target, "DaemonSet", "jobarchive")


def pod_spec(target):
    return daemonset(target)["spec"]["template"]["spec"]


def agent(target):
    containers = pod_spec(target)["containers"]
    assert [c["name"] for c in containers] == ["agent"]
    return containers[0]


def configmap(target, name):
    """The rendered ConfigMap that the DaemonSet refers to by `name` (with kustomize's hash suffix)."""
    found = [o for o in objects(target, "ConfigMap") if o["metadata"]["name"] == name]
    assert len(found) == 1, f"{target}: no single ConfigMap named {name}"
    return found[0]


def config_volume(target):
    vols = [v for v in pod_spec(target)["volumes"] if "configMap" in v]
    assert len(vols) == 1, "expected exactly one configMap volume (the agent's TOML)"
    return vols[0]


def literal_env(target):
    """Environment variables with a literal value: env entries and envFrom ConfigMaps."""
    c = agent(target)
    env = {}
    for ref in c.get("envFrom", []):
        assert "configMapRef" in ref, f"envFrom other than a ConfigMap: {ref}"
        env.update(configmap(target, ref["configMapRef"]["name"]).get("data", {}))
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
    return env


def env_entry(target, name):
    found = [e for e in agent(target).get("env", []) if e["name"] == name]
    assert len(found) == 1, f"{target}: env {name} set {len(found)} times"
    return found[0]


def flag_value(args, flag):
    for i, a in enumerate(args):
        if a == flag:
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def deployed_toml(target):
    """The TOML file the agent reads, as it is in the rendered ConfigMap."""
    vol = config_volume(target)
    data = configmap(target, vol["configMap"]["name"])["data"]
    return tomllib.loads(data["jobarchive.toml"])


def effective(target, key):
    """What the agent will use for `key`: flag, else env, else the deployed TOML."""
    flag, env_name = OVERRIDABLE[key]
    value = flag_value(agent(target).get("args", []), flag)
    if value is None:
        value = literal_env(target).get(env_name)
    if value is None:
        value = deployed_toml(target)[key]
    return value


def mount_for(target, path):
    """The volumeMount under which `path` is visible in the agent container (deepest first)."""
    mounts = [
        m for m in agent(target)["volumeMounts"]
        if path == m["mountPath"] or path.startswith(m["mountPath"].rstrip("/") + "/")
    ]
    assert mounts, f"{target}: {path} is not mounted in the agent container"
    mount = max(mounts, key=lambda m: len(m["mountPath"]))
    volume = {v["name"]: v for v in pod_spec(target)["volumes"]}[mount["name"]]
    return mount, volume


def http_port():
    listen = tomllib.loads((DEPLOY / "base" / "jobarchive.toml").read_text())["http_listen"]
    return int(listen.rsplit(":", 1)[1])


def flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def store_bucket_prefix():
    """Bucket and prefix of the aws-irsa example, which the IAM policies must match."""
    url = literal_env("overlays/aws-irsa")["JOBARCHIVE_STORE"]
    m = re.fullmatch(r"s3://([^/]+)/(.+?)/?", url)
    assert m, f"aws-irsa JOBARCHIVE_STORE is not s3://BUCKET/PREFIX: {url}"
    return m.group(1), m.group(2)


def statements(policy_file):
    policy = json.loads((DEPLOY / policy_file).read_text())
    assert set(policy) <= {"Version", "Id", "Statement"}
    assert policy["Version"] == "2012-10-17"
    out = []
    for s in policy["Statement"]:
        assert s["Effect"] == "Allow", f"{policy_file}: {s}"
        assert not {"NotAction", "NotResource", "NotPrincipal", "Principal"} & set(s), f"{policy_file}: {s}"
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        resources = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
        for a in actions:
            assert "*" not in a, f"{policy_file}: wildcard action {a}"
        out.append((set(actions), set(resources), s.get("Condition")))
    return out


def grants(policy_file):
    """action -> set of resources, plus action -> conditions."""
    res, cond = {}, {}
    for actions, resources, condition in statements(policy_file):
        for a in actions:
            res.setdefault(a, set()).update(resources)
            cond.setdefault(a, []).append(condition)
    return res, cond


def assert_list_restricted_to_prefix(cond, bucket, prefix, policy_file):
    for c in cond["s3:ListBucket"]:
        assert c is not None, f"{policy_file}: s3:ListBucket without an s3:prefix condition"
        assert set(c) == {"StringLike"}, f"{policy_file}: {c}"
        prefixes = c["StringLike"]["s3:prefix"]
        prefixes = prefixes if isinstance(prefixes, list) else [prefixes]
        assert prefixes == [f"{prefix}/*"], f"{policy_file}: {prefixes}"


def dockerfile_instructions():
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out, pending = [], ""
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        instr, _, rest = full.partition(" ")
        out.append((instr.upper(), rest.strip()))
    return out


# ---------------------------------------------------------------- the config copy


def test_deploy_toml_is_config_toml_plus_deliberate_overrides():
    original = flatten(tomllib.loads((ROOT / "config" / "jobarchive.toml").read_text()))
    text = (DEPLOY / "base" / "jobarchive.toml").read_text()
    copy = flatten(tomllib.loads(text))
    assert set(copy) == set(original), (
        f"keys only in config/: {sorted(set(original) - set(copy))}, "
        f"only in deploy/base/: {sorted(set(copy) - set(original))}"
    )
    differing = {k: copy[k] for k in copy if copy[k] != original[k]}
    assert differing == DELIBERATE_OVERRIDES, (
        "deploy/base/jobarchive.toml drifted from config/jobarchive.toml: update the copy, or "
        "declare the override in DELIBERATE_OVERRIDES with a '# deploy override' comment"
    )
    assert text.count("# deploy override") == len(DELIBERATE_OVERRIDES)


def test_configmap_carries_deploy_toml_verbatim():
    for target in TARGETS:
        vol = config_volume(target)
        data = configmap(target, vol["configMap"]["name"])["data"]
        assert data == {"jobarchive.toml": (DEPLOY / "base" / "jobarchive.toml").read_text()}


@pytest.mark.parametrize("target", TARGETS)
def test_config_mount_path_equals_config_arg(target):
    c = agent(target)
    args = c["args"]
    assert args[0] == "agent"
    config_path = flag_value(args, "--config")
    assert config_path == "/etc/jobarchive/jobarchive.toml"
    vol = config_volume(target)
    mount, volume = mount_for(target, config_path)
    assert volume is vol or volume == vol
    assert mount.get("readOnly") is True
    assert "subPath" not in mount
    # Without items the ConfigMap's keys are the file names in the mount.
    assert "items" not in vol["configMap"]
    relative = config_path[len(mount["mountPath"].rstrip("/")) + 1:]
    assert relative in configmap(target, vol["configMap"]["name"])["data"]


# ---------------------------------------------------------------- the DaemonSet


@pytest.mark.parametrize("target", TARGETS)
def test_every_path_the_agent_reads_or_writes_is_mounted(target):
    toml = deployed_toml(target)
    read_only = [effective(target, "log_dir"), effective(target, "cgroup_root"), *toml["allowed_roots"]]
    read_write = [effective(target, "state_dir")]
    for path, want_ro in [(p, True) for p in read_only] + [(p, False) for p in read_write]:
        mount, volume = mount_for(target, path)
        assert "hostPath" in volume, f"{target}: {path} must come from the host, not {volume}"
        # Same path inside and out: Docker's log symlinks in /var/log/pods are absolute host paths.
        assert volume["hostPath"]["path"] == mount["mountPath"], f"{target}: {path}"
        assert bool(mount.get("readOnly")) is want_ro, f"{target}: {path} readOnly should be {want_ro}"
        if want_ro:
            # A read-only mount must not make the kubelet create directories on the host.
            assert volume["hostPath"].get("type", "") not in ("DirectoryOrCreate", "FileOrCreate"), path
        else:
            assert volume["hostPath"]["type"] == "DirectoryOrCreate", path


@pytest.mark.parametrize("target", TARGETS)
def test_docker_containers_dir_is_optional(target):
    # Only Docker nodes have it: the pod must still start on containerd and CRI-O nodes.
    _, volume = mount_for(target, "/var/lib/docker/containers")
    assert volume["hostPath"].get("type", "") == ""


@pytest.mark.parametrize("target", TARGETS)
def test_http_port_matches_probes_container_port_and_scrape_annotation(target):
    port = http_port()
    assert effective(target, "http_listen").endswith(f":{port}")
    c = agent(target)
    ports = {p["name"]: p for p in c["ports"]}
    assert ports["http"]["containerPort"] == port
    assert ports["http"].get("protocol", "TCP") == "TCP"
    for probe, path in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")]:
        get = c[probe]["httpGet"]
        assert get["path"] == path
        assert get["port"] in ("http", port)
    annotations = daemonset(target)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"


@pytest.mark.parametrize("target", TARGETS)
def test_node_name_from_downward_api(target):
    assert env_entry(target, "NODE_NAME")["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert flag_value(agent(target)["args"], "--node-name") is None
    assert deployed_toml(target)["node_name"] == ""


@pytest.mark.parametrize("target", TARGETS)
def test_environment(target):
    env = literal_env(target)
    assert env["RUST_LOG"] == "info"
    for ref in agent(target).get("envFrom", []):
        configmap(target, ref["configMapRef"]["name"])  # resolves to a rendered ConfigMap
    store = env.get("JOBARCHIVE_STORE") or deployed_toml(target)["store"]["url"]
    if target == "base":
        # The base leaves the store to the overlays; it must not invent one.
        assert store == ""
    else:
        assert store.startswith("s3://"), f"{target}: JOBARCHIVE_STORE={store!r}"
        assert env.get("AWS_REGION"), f"{target}: AWS_REGION unset"


@pytest.mark.parametrize("target", TARGETS)
def test_least_privilege_security_context(target):
    spec = pod_spec(target)
    c = agent(target)
    psc, csc = spec.get("securityContext", {}), c["securityContext"]
    assert {**psc, **csc}.get("runAsUser") == 0
    assert csc["capabilities"] == {"drop": ["ALL"], "add": ["DAC_READ_SEARCH"]}
    assert csc["readOnlyRootFilesystem"] is True
    assert csc["allowPrivilegeEscalation"] is False
    assert not csc.get("privileged")
    for sc in (psc, csc):
        assert sc.get("seccompProfile", {"type": "RuntimeDefault"}) == {"type": "RuntimeDefault"}
    assert "seccompProfile" in psc or "seccompProfile" in csc
    for host_ns in ("hostNetwork", "hostPID", "hostIPC"):
        assert not spec.get(host_ns)
    mount, volume = mount_for(target, "/tmp")
    assert mount["mountPath"] == "/tmp" and "emptyDir" in volume


@pytest.mark.parametrize("target", TARGETS)
def test_scheduling_and_lifecycle(target):
    ds = daemonset(target)
    spec = pod_spec(target)
    assert {"operator": "Exists"} in spec["tolerations"]
    pc = one(target, "PriorityClass", spec["priorityClassName"])
    assert 0 < pc["value"] <= 1_000_000_000  # user classes stop there, below system-*-critical
    assert not pc.get("globalDefault")
    strategy = ds["spec"]["updateStrategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == "10%"
    assert strategy["rollingUpdate"].get("maxSurge", 0) in (0, "0", "0%")
    assert spec["terminationGracePeriodSeconds"] == 60
    assert agent(target)["resources"] == {
        "requests": {"cpu": "50m", "memory": "96Mi"},
        "limits": {"memory": "160Mi"},
    }
    selector = ds["spec"]["selector"]["matchLabels"]
    labels = ds["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()


@pytest.mark.parametrize("target", TARGETS)
def test_every_namespaced_object_is_in_the_jobarchive_namespace(target):
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass"}
    for o in render(target):
        where = o["metadata"].get("namespace")
        if o["kind"] in cluster_scoped:
            assert where is None, f"{target}: cluster-scoped {o['kind']} with a namespace"
        else:
            assert where == "jobarchive", f"{target}: {o['kind']}/{o['metadata']['name']} in {where!r}"


# ---------------------------------------------------------------- RBAC


@pytest.mark.parametrize("target", TARGETS)
def test_cluster_role_is_exactly_read_only_pods_jobs_and_events(target):
    role = one(target, "ClusterRole", "jobarchive")
    granted = set()
    for rule in role["rules"]:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, rule
        for g in rule["apiGroups"]:
            for r in rule["resources"]:
                for v in rule["verbs"]:
                    granted.add((g, r, v))
    # Events: list only (by involvedObject uid, in one namespace); no watch, no get.
    assert granted == {
        ("", "pods", "get"), ("", "pods", "list"), ("", "pods", "watch"),
        ("", "events", "list"),
        ("batch", "jobs", "get"),
    }
    assert not objects(target, "Role") and not objects(target, "RoleBinding")
    assert [o["metadata"]["name"] for o in objects(target, "ClusterRole")] == ["jobarchive"]

    binding = one(target, "ClusterRoleBinding", "jobarchive")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "jobarchive"}
    ds = daemonset(target)
    sa = pod_spec(target)["serviceAccountName"]
    one(target, "ServiceAccount", sa)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": ds["metadata"]["namespace"]}]
    assert ds["metadata"]["namespace"] == "jobarchive"
    one(target, "Namespace", "jobarchive")


# ---------------------------------------------------------------- overlays


@pytest.mark.parametrize("target", TARGETS)
def test_no_secret_is_shipped(target):
    assert not objects(target, "Secret")


def test_aws_irsa_overlay():
    target = "overlays/aws-irsa"
    sa = one(target, "ServiceAccount", "jobarchive")
    arn = sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert re.fullmatch(r"arn:aws:iam::\d{12}:role/[\w+=,.@/-]+", arn)
    env = literal_env(target)
    assert env["JOBARCHIVE_STORE"] == "s3://my-bucket/jobarchive"
    assert env["AWS_REGION"]
    # IRSA supplies credentials: no static keys anywhere.
    assert not any(k.startswith("AWS_ACCESS_KEY") or k.startswith("AWS_SECRET") for k in env)
    assert all("secretKeyRef" not in e.get("valueFrom", {}) for e in agent(target).get("env", []))


def test_s3_compatible_overlay():
    target = "overlays/s3-compatible"
    env = literal_env(target)
    assert env["JOBARCHIVE_S3_PATH_STYLE"] == "true"
    assert re.fullmatch(r"https?://[^/]+(:\d+)?/?", env["AWS_ENDPOINT_URL"])
    assert env["JOBARCHIVE_STORE"].startswith("s3://")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert name not in env, f"{name} must come from the Secret, not a literal"
        ref = env_entry(target, name)["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "jobarchive-s3-credentials"
        assert ref["key"] == name
        assert not ref.get("optional")


def test_prometheus_operator_overlay():
    target = "overlays/prometheus-operator"
    svc = one(target, "Service", "jobarchive-metrics")
    pod_labels = daemonset(target)["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    svc_ports = {p["name"]: p for p in svc["spec"]["ports"]}
    assert svc_ports["http"]["targetPort"] in ("http", http_port())
    assert svc_ports["http"]["port"] == http_port()

    sm = one(target, "ServiceMonitor", "jobarchive")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["namespace"] == svc["metadata"]["namespace"]
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    for endpoint in sm["spec"]["endpoints"]:
        assert endpoint["port"] in svc_ports
        assert endpoint["path"] == "/metrics"


# ---------------------------------------------------------------- IAM


def test_agent_iam_policy_is_least_privilege():
    bucket, prefix = store_bucket_prefix()
    res, cond = grants("iam-policy.json")
    assert set(res) == AGENT_ACTIONS
    assert res["s3:PutObject"] == {f"arn:aws:s3:::{bucket}/{prefix}/*"}
    # Only the documents it merges with what it writes: never the logs.
    assert res["s3:GetObject"] == {
        f"arn:aws:s3:::{bucket}/{prefix}/manifests/*",
        f"arn:aws:s3:::{bucket}/{prefix}/footprints/*",
        f"arn:aws:s3:::{bucket}/{prefix}/events/*",
        f"arn:aws:s3:::{bucket}/{prefix}/jobs/*",
    }
    assert res["s3:ListBucket"] == {f"arn:aws:s3:::{bucket}"}
    assert_list_restricted_to_prefix(cond, bucket, prefix, "iam-policy.json")
    for action in ("s3:PutObject", "s3:GetObject"):
        assert cond[action] == [None]
    # One action per statement, so that no condition or resource silently widens another action.
    for actions, _, _ in statements("iam-policy.json"):
        assert len(actions) == 1


def test_reader_iam_policy_is_read_only():
    bucket, prefix = store_bucket_prefix()
    res, cond = grants("iam-policy-reader.json")
    assert set(res) == READER_ACTIONS
    assert res["s3:GetObject"] == {f"arn:aws:s3:::{bucket}/{prefix}/*"}
    assert res["s3:ListBucket"] == {f"arn:aws:s3:::{bucket}"}
    assert_list_restricted_to_prefix(cond, bucket, prefix, "iam-policy-reader.json")


# ---------------------------------------------------------------- Dockerfile


def test_dockerfile_builds_and_runs_the_jobarchive_binary():
    agent_manifest = tomllib.loads((ROOT / "agent" / "Cargo.toml").read_text())
    package = agent_manifest["package"]["name"]
    (binary,) = [b["name"] for b in agent_manifest["bin"]]
    instructions = dockerfile_instructions()
    froms = [args for instr, args in instructions if instr == "FROM"]
    assert len(froms) == 3
    assert froms[0] == "rust:1-bookworm AS builder"
    assert froms[1] == "scratch AS debuginfo"
    # The runtime stage is the last one: what `docker build` without --target produces.
    runtime = froms[2].split()[0]
    assert runtime.startswith("gcr.io/distroless/cc-debian12"), runtime
    assert "nonroot" not in runtime, "the agent runs as root (CAP_DAC_READ_SEARCH): not the :nonroot image"

    runs = [args for instr, args in instructions if instr == "RUN"]
    assert any(f"cargo build --release --locked -p {package}" in r for r in runs)
    copies = [shlex.split(args) for instr, args in instructions if instr == "COPY"]
    assert ["--from=builder", f"/out/{binary}", "/jobarchive"] in copies
    # Every workspace member must be in the build context, or cargo cannot load the workspace.
    copied = {c[-1].rstrip("/") for c in copies} | {src for c in copies for src in c[:-1]}
    workspace = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["members"]
    for member in workspace + ["Cargo.toml", "Cargo.lock"]:
        assert member in copied, f"Dockerfile does not COPY {member}"

    entrypoints = [args for instr, args in instructions if instr == "ENTRYPOINT"]
    assert [json.loads(e) for e in entrypoints] == [["/jobarchive"]]
    exposes = [args for instr, args in instructions if instr == "EXPOSE"]
    assert exposes == [str(http_port())]
    users = [args for instr, args in instructions if instr == "USER"]
    assert users[-1:] in ([], ["0:0"], ["0"], ["root"])


def test_dockerfile_ships_the_binary_without_its_debug_info():
    """The builder splits the debug info off the release binary with deploy/split-debuginfo.sh;
    the runtime stage copies the stripped binary, the debuginfo stage the .debug file."""
    instructions = dockerfile_instructions()
    copies = [shlex.split(args) for instr, args in instructions if instr == "COPY"]
    runs = [args for instr, args in instructions if instr == "RUN"]
    assert ["deploy/split-debuginfo.sh", "/usr/local/bin/split-debuginfo"] in copies
    assert "split-debuginfo /src/target/release/jobarchive /out" in runs
    stages = [args.split()[-1] for instr, args in instructions if instr == "FROM"]
    stage_of_copy = []
    stage = None
    for instr, args in instructions:
        if instr == "FROM":
            stage = args.split()[-1]
        elif instr == "COPY":
            stage_of_copy.append((stage, shlex.split(args)))
    runtime = stages[-1]
    assert (runtime, ["--from=builder", "/out/jobarchive", "/jobarchive"]) in stage_of_copy
    assert ("debuginfo", ["--from=builder", "/out/jobarchive.debug", "/jobarchive.debug"]) in stage_of_copy


def sections(path):
    out = subprocess.run(["readelf", "-S", "-W", str(path)], check=True, capture_output=True, text=True).stdout
    return set(re.findall(r"\]\s+(\.\S+)", out))


def test_split_debuginfo_strips_and_links_the_debug_file(tmp_path):
    """The image's strip step, run on a real ELF with line tables (a C program built with -g)."""
    import shutil

    for tool in ("cc", "objcopy", "readelf"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")
    (tmp_path / "hello.c").write_text('#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n')
    binary = tmp_path / "hello"
    subprocess.run(["cc", "-g", "-o", str(binary), str(tmp_path / "hello.c")], check=True)
    assert ".debug_line" in sections(binary)
    out = tmp_path / "out"
    subprocess.run([str(DEPLOY / "split-debuginfo.sh"), str(binary), str(out)], check=True)

    stripped, debug = sections(out / "hello"), sections(out / "hello.debug")
    assert not {s for s in stripped if s.startswith(".debug_")}, stripped
    assert {".symtab", ".gnu_debuglink"} <= stripped, "function names stay; the debug file is named"
    assert {".debug_info", ".debug_line"} <= debug
    link = subprocess.run(
        ["readelf", "-x", ".gnu_debuglink", str(out / "hello")], check=True, capture_output=True, text=True
    ).stdout
    assert "hello.debug" in link
    assert (out / "hello").stat().st_size < binary.stat().st_size
    ran = subprocess.run([str(out / "hello")], check=True, capture_output=True, text=True)
    assert ran.stdout == "hello\n"


# ---------------------------------------------------------------- README "On a real cluster"


def readme_cluster_commands():
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## On a real cluster\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_readme_cluster_section_renders_and_probes_what_the_daemonset_serves(tmp_path):
    """The README's cluster commands, run as far as they can be offline: the Dockerfile it builds
    exists, the overlay it copies renders (in a copy of deploy/), the readiness URL it asks the
    API server for is the DaemonSet's probe, and the reader command reads with the reader policy."""
    import shutil

    commands = readme_cluster_commands()
    assert len(commands) <= 5, commands
    build, copy, apply, ready, fetch = commands

    args = shlex.split(build.split("&&")[0])
    assert args[:2] == ["docker", "build"]
    assert (ROOT / args[args.index("-f") + 1]).is_file()
    image = args[args.index("-t") + 1]
    assert f"docker push {image}" in build

    cp = shlex.split(copy)
    assert cp[:2] == ["cp", "-r"], cp
    src, dst = cp[2], cp[3]
    work = tmp_path / "repo"
    shutil.copytree(DEPLOY, work / "deploy")
    subprocess.run(cp, cwd=work, check=True)
    apply_args = shlex.split(apply.split("&&")[0])
    assert apply_args == ["kubectl", "apply", "-k", dst], apply_args
    assert "rollout status ds/jobarchive" in apply
    out = subprocess.run(["kubectl", "kustomize", str(work / dst)], check=True, capture_output=True, text=True).stdout
    rendered = [o for o in yaml.safe_load_all(out) if o]
    (ds,) = [o for o in rendered if o["kind"] == "DaemonSet"]
    assert ds["metadata"]["namespace"] == "jobarchive"
    assert ds["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == "jobarchive"
    (container,) = ds["spec"]["template"]["spec"]["containers"]
    probe = container["readinessProbe"]["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    port = ports.get(probe["port"], probe["port"])
    assert f":{port}/proxy{probe['path']}" in ready, ready
    assert "-l app.kubernetes.io/name=jobarchive" in ready
    assert src == "deploy/overlays/aws-irsa" and (DEPLOY / "overlays" / "aws-irsa").is_dir()

    # The reader's store is the one the overlay writes to (bucket and prefix of the policies).
    env = {}
    for o in rendered:
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("jobarchive-env"):
            env = o["data"]
    f = shlex.split(fetch)
    assert f[:2] == ["jobarchive", "fetch"]
    assert f[f.index("--store") + 1] == env["JOBARCHIVE_STORE"]
    assert f[f.index("--cluster") + 1] == env["JOBARCHIVE_CLUSTER"]
    bucket, _, prefix = env["JOBARCHIVE_STORE"].removeprefix("s3://").partition("/")
    reader = json.loads((DEPLOY / "iam-policy-reader.json").read_text())
    resources = json.dumps(reader)
    assert f"arn:aws:s3:::{bucket}/{prefix}/*" in resources
