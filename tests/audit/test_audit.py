"""docs/audit.md against a real archive: every DuckDB query of the doc runs as written over an
archive the agent wrote in the test (tests/audit/fixture.py), with its result asserted; the
Athena and Trino table definitions are checked against the keys the agent wrote; the archive
passes `jobarchive verify`.

The queries are extracted from the markdown (```sql blocks whose first line is
`-- duckdb: NAME`), so the doc and the test cannot drift: a query without an expectation here,
or an expectation without its query, fails.

Needs the `duckdb` package (tests/run.sh installs a pinned one into a venv) and a built binary:
    ~/.cache/jobarchive-audit-venv/bin/python -m unittest tests/audit/test_audit.py
"""

import re
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixture  # noqa: E402

DOC = fixture.ROOT / "docs" / "audit.md"
DOC_ROOT = "s3://my-bucket/jobarchive/"
SQL_BLOCK = re.compile(r"```sql\n(-- (duckdb|athena|trino): ([\w-]+)\n.*?)```", re.S)


def doc_blocks(engine):
    """name -> SQL text of the doc's ```sql blocks for `engine`, in order."""
    found = {}
    for m in SQL_BLOCK.finditer(DOC.read_text(encoding="utf-8")):
        if m.group(2) == engine:
            assert m.group(3) not in found, f"two {engine} blocks named {m.group(3)}"
            found[m.group(3)] = m.group(1)
    return found


J25, J26, J27 = (fixture.cron_job(d) for d in (25, 26, 27))
# The post-mortem part (namespace default, written with the Kubernetes API): pod, attempt, job.
K8S = [(pod["metadata"]["name"], row["attempt"], row["job"]) for _, pod, row in fixture.k8s_pods()]
K8S_RECORDS = sum(len(fixture.k8s_lines(pod)) for _, pod, _ in fixture.k8s_pods())


def k8s_incomplete():
    """Drained with the API: the scenario's containers have all terminated, so their streams are
    complete once read to the end, though their folders are still there. None is open."""
    return []

# name -> (columns to compare, expected rows of those columns, in order)
EXPECTED = {
    "failed-stderr-from-logs": (
        ["job", "attempt", "message"],
        [(J27, 1, "error: disk full"), (J27, 2, "warning: retrying"), (J27, 2, "error: disk full")],
    ),
    "failed-stderr-from-footprints": (
        ["job", "attempt", "reason", "message"],
        [
            (J26, 1, "OOMKilled", "warning: memory pressure"),
            (J27, 1, "Error", "error: disk full"),
            (J27, 2, "Error", "warning: retrying"),
            (J27, 2, "Error", "error: disk full"),
        ],
    ),
    "incomplete-attempts": (
        ["namespace", "job", "attempt", "pod", "open_streams"],
        k8s_incomplete() + [
            ("ml", "etl-load", 1, "etl-load-q9z4w", "main/0"),
            ("ml", "train-model", 1, "train-model-x7k2p", "main/0, sidecar/0"),
        ],
    ),
    "memory-held-not-used": (
        ["namespace", "job", "attempts", "reserved_gib_hours", "used_gib_hours", "ratio"],
        [("ml", "train-model", 1, 8.0, 1.0, 8.0)],
    ),
    "who-printed": (
        ["namespace", "job", "attempt", "pod", "container", "lines"],
        [("ml", "train-model", 1, "train-model-x7k2p", "main", 1)],
    ),
    "each-record-once": (
        ["records"],
        [(sum(len(lines) for p in fixture.PODS for lines in p.containers.values()) + K8S_RECORDS,)],
    ),
    "backoff-limit-exceeded": (
        ["namespace", "job", "attempts", "last_line"],
        [
            ("default", "cron-fail-29929854", 1, "cron-fail-29929854-4mr6g: exiting with status 1"),
            ("default", "cron-fail-29929855", 1, "cron-fail-29929855-64rlg: exiting with status 1"),
            ("default", "exit-nonzero", 6, "exit-nonzero-txl6b: exiting with status 1"),
        ],
    ),
    "jobs-known-from-events": (
        ["namespace", "job", "cronjob", "reason", "known_from"],
        [("default", "cron-fail-29929854", "cron-fail", "BackoffLimitExceeded", "events")],
    ),
    "slow-starts": (
        ["namespace", "job", "attempt", "pod"],
        sorted(("default", job, attempt, pod) for pod, attempt, job in K8S if job == "exit-nonzero"),
    ),
}


class Archive:
    """One archive for the whole module: the agent run takes a few seconds."""

    tmp = None
    store = None

    @classmethod
    def get(cls):
        if cls.store is None:
            cls.tmp = tempfile.TemporaryDirectory(prefix="jobarchive-audit-")
            cls.store = fixture.build(cls.tmp.name, fixture.binary())
        return cls.store


def connect(store):
    con = duckdb.connect()
    # The doc's paths are relative (`archive/...`): resolve them in the store's parent folder.
    con.execute(f"SET file_search_path = '{store.parent}'")
    con.execute(doc_blocks("duckdb")["setup"])
    return con


class DuckDBQueriesOfTheDoc(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.store = Archive.get()
        cls.con = connect(cls.store)

    def test_every_query_has_an_expectation_and_back(self):
        names = set(doc_blocks("duckdb")) - {"setup"}
        self.assertEqual(names, set(EXPECTED))

    def test_the_views_read_every_object(self):
        records = sum(len(lines) for p in fixture.PODS for lines in p.containers.values()) + K8S_RECORDS
        attempts = len(fixture.PODS) + len(K8S)
        # Four Events per attempt of the post-mortem part (Scheduled, Pulled, Created, Started);
        # one record per Job: exit-nonzero and the two of cron-fail.
        views = [("logs", records), ("manifests", attempts), ("footprints", attempts),
                 ("events", 4 * len(K8S)), ("jobs", 3)]
        for view, rows in views:
            with self.subTest(view=view):
                self.assertEqual(self.con.sql(f"SELECT count(*) FROM {view}").fetchone()[0], rows)

    def test_each_query(self):
        for name, sql in doc_blocks("duckdb").items():
            if name == "setup" or name not in EXPECTED:
                continue
            with self.subTest(query=name):
                rel = self.con.sql(sql)
                columns, rows = EXPECTED[name]
                got = [tuple(r[rel.columns.index(c)] for c in columns) for r in rel.fetchall()]
                self.assertEqual(got, rows)

    def test_records_carry_the_path_partitions(self):
        row = self.con.sql(
            "SELECT cluster, namespace, job_uid, cronjob, typeof(attempt), typeof(restart) "
            f"FROM logs WHERE job = '{J25}' LIMIT 1"
        ).fetchone()
        self.assertEqual(row, ("default", "reports", "unknown", "nightly-report", "INTEGER", "INTEGER"))


def partition_values(key):
    return dict(seg.split("=", 1) for seg in key.split("/")[:-1] if "=" in seg)


def table_properties(sql):
    return dict(re.findall(r"'([\w.]+)'\s*=\s*'([^']*)'", sql))


class PostMortemRecords(unittest.TestCase):
    """What the agent wrote with the Kubernetes API, as the views read it."""

    @classmethod
    def setUpClass(cls):
        cls.store = Archive.get()
        cls.con = connect(cls.store)

    def test_the_job_record_columns(self):
        row = self.con.sql(
            "SELECT source, condition.type, spec.backoff_limit, status.failed, len(events), "
            "spec.containers[1].requests['memory'] "
            "FROM jobs WHERE job = 'exit-nonzero'"
        ).fetchone()
        self.assertEqual(row, ("api", "Failed", 6, 6, 7, "1Gi"))

    def test_events_carry_the_attempt_partitions(self):
        rows = self.con.sql(
            "SELECT DISTINCT attempt, object_name FROM events WHERE job = 'exit-nonzero' ORDER BY 1"
        ).fetchall()
        self.assertEqual(rows, sorted((a, p) for p, a, j in K8S if j == "exit-nonzero"))


class AthenaAndTrinoTables(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.store = Archive.get()

    def keys(self, tree):
        return sorted(str(p.relative_to(self.store)) for p in (self.store / tree).rglob("*") if p.is_file())

    def test_projection_templates_match_the_keys_the_agent_wrote(self):
        tables = {n: s for n, s in doc_blocks("athena").items() if "storage.location.template" in s}
        self.assertEqual(set(tables), {"logs", "manifests", "footprints"})
        for name, sql in tables.items():
            with self.subTest(table=name):
                props = table_properties(sql)
                location = re.search(r"LOCATION '([^']+)'", sql).group(1)
                partitions = re.findall(r"`(\w+)` string", re.search(r"PARTITIONED BY \(([^)]*)\)", sql).group(1))
                template = props["storage.location.template"]
                self.assertEqual(location, f"{DOC_ROOT}{name}/")
                self.assertTrue(template.startswith(location), template)
                self.assertEqual(re.findall(r"\$\{(\w+)\}", template), partitions)
                self.assertEqual(props["projection.enabled"], "true")
                for col in partitions:
                    self.assertIn(f"projection.{col}.type", props)
                self.assertIn(fixture.CLUSTER, props["projection.cluster.values"].split(","))
                keys = self.keys(name)
                self.assertGreaterEqual(len(keys), len(fixture.PODS))
                for key in keys:
                    values = partition_values(key)
                    rendered = template
                    for col in partitions:
                        rendered = rendered.replace("${" + col + "}", values[col])
                    self.assertTrue(
                        key.startswith(rendered[len(DOC_ROOT):]), f"{key} is not under {rendered}"
                    )

    def test_unpartitioned_table_covers_every_log(self):
        sql = doc_blocks("athena")["logs-all"]
        location = re.search(r"LOCATION '([^']+)'", sql).group(1)
        self.assertNotIn("PARTITIONED BY", sql)
        self.assertTrue(all(f"{DOC_ROOT}{k}".startswith(location) for k in self.keys("logs")))

    def test_trino_partitions_are_the_first_folders_of_each_key(self):
        sql = doc_blocks("trino")["logs"]
        location = re.search(r"external_location = '([^']+)'", sql).group(1)
        partitions = re.findall(r"'(\w+)'", re.search(r"partitioned_by = ARRAY\[([^\]]*)\]", sql).group(1))
        columns = re.search(r"\((.*?)\)\s*WITH", sql, re.S).group(1)
        self.assertTrue(columns.strip().endswith(", ".join(f"{p} varchar" for p in partitions)),
                        "Hive tables list partition columns last")
        for key in self.keys("logs"):
            rel = f"{DOC_ROOT}{key}"[len(location):]
            folders = [seg.split("=", 1)[0] for seg in rel.split("/")[: len(partitions)]]
            self.assertEqual(folders, partitions, key)


class ArchiveVerifies(unittest.TestCase):
    def test_the_test_archive_verifies(self):
        store = Archive.get()
        for ns, summary in [("reports", "5 complete, 0 incomplete"), ("ml", "0 complete, 2 incomplete")]:
            with self.subTest(namespace=ns):
                out = subprocess.run(
                    [str(fixture.binary()), "verify", "-n", ns, "--store", str(store)],
                    capture_output=True, text=True,
                )
                self.assertEqual(out.returncode, 0, out.stderr)
                self.assertIn(summary, out.stdout)


if __name__ == "__main__":
    unittest.main()
