#!/usr/bin/env bash
# The whole test suite, from a fresh machine: starts the S3 test server (moto, on a free
# loopback port), builds the binary, runs the Rust unit and end-to-end tests, then the Python
# tests (deploy manifests, Kubernetes test API server, bench tools, DuckDB audits).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
source tests/s3-moto.sh
cargo build --bins
cargo test --workspace -- --test-threads=2
python3 -m unittest tests/k8s_api/test_server.py bench/test_bench_tools.py
python3 -m unittest tests/docs_test.py
bash deploy/validate.sh
"${XDG_CACHE_HOME:-$HOME/.cache}/jobarchive-venv/bin/python" -m pytest -q -p no:cacheprovider tests/deploy_test.py
