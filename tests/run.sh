#!/usr/bin/env bash
# The whole test suite, from a fresh machine: starts the S3 test server (moto, on a free
# loopback port), builds the binary, runs the Rust unit and end-to-end tests, then the Python
# tests (deploy manifests, Kubernetes test API server, bench tools, DuckDB audits).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
source tests/s3-moto.sh
# Bins and tests in one build: dev-dependencies (criterion, proptest, resvg) turn on features of
# crates deep in the AWS and kube stacks (getrandom/std, log/std), so a build of the bins alone
# resolves other features and compiles those stacks a second time (~5 min on 2 cores).
cargo build --workspace --bins --tests
cargo test --workspace -- --test-threads=2
python3 -m unittest tests/k8s_api/test_server.py bench/test_bench_tools.py
# The benchmarks on tiny inputs, to prove they run (figures come from release builds on a quiet
# machine: docs/performance.md): criterion's hot-path benches once each, and bench.py's drain,
# idle, lag and fetch modes with the debug binary.
cargo test -q -p jobarchive --bench hot_path
BENCH_TMP="$(mktemp -d)"
python3 bench/gen_corpus.py --out "$BENCH_TMP/pods" --size 2MiB --pods 10 --seed 1
python3 bench/bench.py --binary target/debug/jobarchive --corpus "$BENCH_TMP/pods" --count-output
python3 bench/bench.py --binary target/debug/jobarchive --idle-files 20 --idle-seconds 2 --idle-settle 1
python3 bench/bench.py --binary target/debug/jobarchive --lag-rate 0.5 --lag-seconds 3 --lag-pods 2
python3 bench/bench.py --binary target/debug/jobarchive --fetch-gib 0.01 --fetch-cache "$BENCH_TMP/cache"
rm -rf "$BENCH_TMP"
python3 -m unittest tests/docs_test.py
bash deploy/validate.sh
"${XDG_CACHE_HOME:-$HOME/.cache}/jobarchive-venv/bin/python" -m pytest -q -p no:cacheprovider tests/deploy_test.py
# Audit queries of docs/audit.md: DuckDB (pinned, in a venv of its own) over an archive the agent
# writes in the test; lifecycle rules through moto's boto3 while moto runs.
AUDIT_VENV="${XDG_CACHE_HOME:-$HOME/.cache}/jobarchive-audit-venv"
DUCKDB_VERSION=1.5.6
if ! "$AUDIT_VENV/bin/python" -c "import duckdb, sys; sys.exit(duckdb.__version__ != '$DUCKDB_VERSION')" 2>/dev/null; then
  rm -rf "$AUDIT_VENV"
  python3 -m venv "$AUDIT_VENV"
  "$AUDIT_VENV/bin/pip" install --quiet --disable-pip-version-check "duckdb==$DUCKDB_VERSION"
fi
"$AUDIT_VENV/bin/python" -m unittest tests/audit/test_audit.py
"$MOTO_VENV/bin/python" -m unittest tests/audit/test_lifecycle.py
