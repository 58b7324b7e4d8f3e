#!/usr/bin/env bash
# Offline validation of deploy/: renders the kustomize base and every overlay with
# `kubectl kustomize` and checks each rendered object against the Kubernetes JSON schemas
# (PyPI kubernetes-validate, strict: unknown fields are errors). CRD kinds, for which no schema
# ships, are reported as skipped. Exit 0 only if everything rendered and nothing failed.
#
# Env: KUBE_VERSIONS (default "1.33 1.37"), XDG_CACHE_HOME (venv location), KEEP_RENDERED=DIR
# (write the rendered YAML there instead of a temp dir).
set -euo pipefail

deploy_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv=${XDG_CACHE_HOME:-$HOME/.cache}/jobarchive-venv
requirements=$deploy_dir/validate-requirements.txt
# 1.33: the API the agent is built against (k8s-openapi feature v1_33); 1.37: the newest schemas
# in the pinned kubernetes-validate. Both must pass, so the manifests neither use a field that
# is too new for the clusters we target nor one that has since been removed.
kube_versions=${KUBE_VERSIONS:-1.33 1.37}

if ! command -v kubectl >/dev/null 2>&1; then
    echo "validate.sh: kubectl not found on PATH (needed for 'kubectl kustomize')" >&2
    exit 2
fi
echo "== kubectl: $(kubectl version --client 2>&1 | tr '\n' ' ')"

# The venv is rebuilt when the pinned requirements change; the stamp records which it was built from.
stamp=$venv/.jobarchive-requirements.sha256
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [[ ! -x $venv/bin/python || ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
    echo "== creating venv $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    echo "$want" >"$stamp"
fi
echo "== kubernetes-validate $("$venv/bin/kubernetes-validate" --version), Kubernetes versions: $kube_versions"

if [[ -n ${KEEP_RENDERED:-} ]]; then
    out=$KEEP_RENDERED
    mkdir -p "$out"
else
    out=$(mktemp -d)
    trap 'rm -rf "$out"' EXIT
fi

targets=("$deploy_dir/base")
for overlay in "$deploy_dir"/overlays/*/; do
    targets+=("${overlay%/}")
done

rendered=()
for target in "${targets[@]}"; do
    name=$(basename "$target")
    [[ $target == "$deploy_dir/base" ]] || name=overlay-$name
    if ! kubectl kustomize "$target" >"$out/$name.yaml"; then
        echo "FAIL render ${target#"$deploy_dir"/}: kubectl kustomize failed" >&2
        exit 1
    fi
    rendered+=("$out/$name.yaml")
done

"$venv/bin/python" - "$kube_versions" "${rendered[@]}" <<'PY'
import os
import sys

import yaml
from kubernetes_validate import utils

versions = sys.argv[1].split()
passed = failed = skipped = 0


def is_builtin(api_version):
    # Core ("v1") and the k8s.io groups are Kubernetes' own; a dotted group elsewhere
    # (monitoring.coreos.com) is a CRD. A built-in kind without a schema is an error
    # (a typo, or an API version that was removed), never a skip.
    if "/" not in api_version:
        return True
    group = api_version.split("/", 1)[0]
    return "." not in group or group.endswith(".k8s.io")


for path in sys.argv[2:]:
    name = os.path.basename(path)[: -len(".yaml")]
    with open(path) as f:
        objects = [o for o in yaml.safe_load_all(f) if o]
    print(f"== {name}: {len(objects)} objects")
    for obj in objects:
        what = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        problems = []
        skip = None
        for version in versions:
            try:
                utils.validate(obj, version, strict=True)
            except utils.SchemaNotFoundError:
                if is_builtin(obj["apiVersion"]):
                    problems.append(f"{version}: no schema for built-in {obj['apiVersion']} {obj['kind']}")
                else:
                    skip = f"CRD {obj['apiVersion']} has no schema in kubernetes-validate, not validated"
            except utils.ValidationError as e:
                where = ".".join(str(p) for p in e.path) or "(root)"
                problems.append(f"{version}: {where}: {e.message}")
        if problems:
            failed += 1
            for p in problems:
                print(f"  FAIL {what}: {p}")
        elif skip:
            skipped += 1
            print(f"  SKIP {what}: {skip}")
        else:
            passed += 1
            print(f"  ok   {what} ({obj['apiVersion']}; {', '.join(versions)})")

print(f"validate: {passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
PY
