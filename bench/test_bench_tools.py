#!/usr/bin/env python3
"""Checks of the benchmark tooling: the corpus generator's output, bench.py's corpus counting,
the pure parts of its lag and fetch modes, and gen_archive.py's archives.

    python3 -m unittest bench/test_bench_tools.py      (or: python3 bench/test_bench_tools.py)

Standard library only; a few seconds on two cores.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import gzip
import math
import os
import re
import shutil
import sys
import tempfile
import threading
import tomllib
import time
import unittest
import uuid



def _load(name: str):
    # by path: run from the repo root, "bench" would be this folder, not bench.py
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location(f"_bench_tools_{name}",
                                                  os.path.join(here, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look modules up by name
    spec.loader.exec_module(module)
    return module


bench = _load("bench")
gen_corpus = _load("gen_corpus")
gen_archive = _load("gen_archive")

CRI_LINE = re.compile(
    rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{0,8}[1-9]))?Z (stdout|stderr) ([PF]) ([^\n]*)\n$")
SUFFIX = f"[{gen_corpus.SUFFIX_ALPHABET}]{{5}}"
POD_NAME = re.compile(rf"^[a-z0-9]([a-z0-9-]*[a-z0-9])?-{SUFFIX}$")
CRON_POD = re.compile(rf"^[a-z0-9-]+-\d{{8}}-{SUFFIX}$")
DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
FILE_NAME = re.compile(r"^\d+\.log(\.\d{8}-\d{6})?$")

SIZE = 3 * 1024 * 1024
BASE_ARGS = ["--size", str(SIZE), "--pods", "12", "--partial-share", "0.01",
             "--rotated-share", "0.3", "--empty-pod-folders", "7", "--seed", "7"]


def generate(out: str, *extra: str) -> dict:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        rc = gen_corpus.main(["--out", out, "--summary-json", *BASE_ARGS, *extra])
    assert rc == 0
    return json.loads(buf.getvalue())


def tree_digest(root: str) -> str:
    h = hashlib.sha256()
    for dirpath, dirnames, files in sorted(os.walk(root)):
        dirnames.sort()
        for name in sorted(files):
            p = os.path.join(dirpath, name)
            h.update(os.path.relpath(p, root).encode() + b"\0")
            with open(p, "rb") as f:
                h.update(hashlib.sha256(f.read()).digest())
    return h.hexdigest()


def log_files(root: str) -> list[str]:
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)


class GeneratorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="bench-tools-test-")
        cls.out = os.path.join(cls.tmp, "a")
        cls.summary = generate(cls.out, "--jobs", "2")
        bench.CACHE_DIR = os.path.join(cls.tmp, "cache")  # keep the user's cache out of tests

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_deterministic(self):
        # one worker instead of two: the output must not depend on who wrote which file
        again = os.path.join(self.tmp, "b")
        generate(again, "--jobs", "1")
        self.assertEqual(tree_digest(self.out), tree_digest(again))
        other = os.path.join(self.tmp, "c")
        generate(other, "--jobs", "2", "--seed", "8")
        self.assertNotEqual(tree_digest(self.out), tree_digest(other))
        for d in (again, other):
            shutil.rmtree(d)

    def test_size_within_one_percent(self):
        total = sum(os.path.getsize(p) for p in log_files(self.out))
        self.assertLessEqual(total, SIZE)
        self.assertGreaterEqual(total, SIZE * 0.99)
        self.assertEqual(total, self.summary["bytes"])

    def test_cri_syntax_partials_and_order(self):
        records = lines = partial_lines = 0
        lengths: list[int] = []
        json_msgs = text_msgs = 0
        for path in log_files(self.out):
            pending: dict[bytes, list[bytes]] = {}
            last_ts = None
            with open(path, "rb") as f:
                data = f.read()
            self.assertTrue(data == b"" or data.endswith(b"\n"), path)
            for line in data.splitlines(keepends=True):
                m = CRI_LINE.match(line)
                self.assertIsNotNone(m, f"{path}: bad CRI line {line[:120]!r}")
                secs, frac, stream, tag, msg = m.groups()
                ts = (secs, (frac or b"").ljust(9, b"0"))
                if last_ts is not None:
                    self.assertGreater(ts, last_ts, f"{path}: timestamps must increase")
                last_ts = ts
                lines += 1
                if tag == b"P":
                    # containerd cuts at its buffer size, even inside a UTF-8 sequence
                    self.assertEqual(len(msg), gen_corpus.CRI_CHUNK)
                    pending.setdefault(stream, []).append(msg)
                    partial_lines += 1
                    continue
                records += 1
                whole = b"".join(pending.pop(stream, [])) + msg
                text = whole.decode("utf-8")  # joined, every logical line is valid UTF-8
                if len(whole) > gen_corpus.CRI_CHUNK:
                    self.assertGreaterEqual(len(whole), gen_corpus.LONG_LINE_MIN - 1)
                    continue
                lengths.append(len(text))
                if text.startswith('{"level"'):
                    json.loads(text)
                    json_msgs += 1
                else:
                    text_msgs += 1
            self.assertEqual(pending, {}, f"{path}: P chunks without their F line")
        self.assertEqual(records, self.summary["records"])
        self.assertEqual(lines, self.summary["lines"])
        self.assertGreater(partial_lines, 0, "expected some long lines split into P chunks")
        self.assertGreaterEqual(min(lengths), 50)
        self.assertLessEqual(max(lengths), 300)
        share = json_msgs / (json_msgs + text_msgs)
        self.assertTrue(0.2 < share < 0.4, f"JSON share {share:.2f}, wanted about 0.3")

    def test_naming(self):
        folders = os.listdir(self.out)
        self.assertEqual(len(folders), 12 + 7)
        empty_files = 0
        for folder in folders:
            ns, pod, uid = folder.split("_")
            self.assertRegex(ns, DNS_LABEL)
            self.assertRegex(pod, POD_NAME)
            self.assertLessEqual(len(pod), 63)
            self.assertEqual(uuid.UUID(uid).version, 4)
            for container in os.listdir(os.path.join(self.out, folder)):
                self.assertRegex(container, DNS_LABEL)
                for name in os.listdir(os.path.join(self.out, folder, container)):
                    self.assertRegex(name, FILE_NAME)
                    empty_files += os.path.getsize(os.path.join(self.out, folder, container,
                                                                name)) == 0
        self.assertGreaterEqual(empty_files, 7)
        many = gen_corpus.plan_pods(gen_corpus.random.Random(3), 200)
        names = [f"{p['job']}-{gen_corpus.pod_suffix(gen_corpus.random.Random(i))}"
                 for i, p in enumerate(many)]
        self.assertTrue(all(POD_NAME.match(n) for n in names))
        self.assertTrue(any(CRON_POD.match(n) for n in names), "no CronJob-style pod names")
        self.assertTrue(any(p["attempt"] > 1 for p in many), "no Job with several attempts")

    def test_bench_counts_what_the_generator_wrote(self):
        stats = bench.corpus_stats(self.out, warm=False)
        self.assertEqual(stats["records"], self.summary["records"])
        self.assertEqual(stats["bytes"], self.summary["bytes"])
        self.assertEqual(stats["files"], self.summary["files"])
        self.assertEqual(stats["empty_files"], self.summary["empty"])


class SmallPiecesTest(unittest.TestCase):
    def test_parse_size(self):
        self.assertEqual(gen_corpus.parse_size("1GiB"), 1 << 30)
        self.assertEqual(gen_corpus.parse_size("500MB"), 500 * 10**6)
        self.assertEqual(gen_corpus.parse_size("10MiB"), 10 << 20)
        self.assertEqual(gen_corpus.parse_size("1234"), 1234)
        with self.assertRaises(Exception):
            gen_corpus.parse_size("ten")

    def test_count_records_ignores_look_alikes_and_unfinished_lines(self):
        with tempfile.NamedTemporaryFile("wb", delete=False) as f:
            f.write(b"2026-11-27T00:00:00.1Z stdout P abc\n"
                    b"2026-11-27T00:00:00.2Z stderr F says stdout P inside\n"
                    b"2026-11-27T00:00:00.3Z stdout F def\n"
                    b"2026-11-27T00:00:00.4Z stdout F no newline yet")
        try:
            self.assertEqual(bench.count_records(f.name), (2, 3))
        finally:
            os.unlink(f.name)


class LagPiecesTest(unittest.TestCase):
    def test_cri_timestamp_is_go_rfc3339nano_and_parses_back(self):
        t = 1795784859_011990478  # 2026-11-27T13:07:39.011990478Z
        self.assertEqual(bench.cri_timestamp(t), "2026-11-27T13:07:39.011990478Z")
        self.assertEqual(bench.cri_timestamp(t - 11990478 + 500_000_000),
                         "2026-11-27T13:07:39.5Z")
        self.assertEqual(bench.cri_timestamp(t - 11990478), "2026-11-27T13:07:39Z")
        memo: list = [None, b""]
        for v in (t, t + 1, t + 10**9 - 11990478, t + 10**9):  # the memo follows the second
            self.assertEqual(bench.cri_timestamp_bytes(v, memo), bench.cri_timestamp(v).encode())
        self.assertEqual(bench.cri_timestamp_bytes(t + 10**9, memo),
                         b"2026-11-27T13:07:40.011990478Z")
        cache: dict = {}
        for v in (t, t - 11990478, t + 1, t + 10**9 * 86400 * 40):
            self.assertEqual(bench.parse_ts_ns(bench.cri_timestamp(v), cache), v)
        self.assertEqual(bench.parse_ts_ns("2026-11-27T14:07:39.011990478+01:00"), t)
        self.assertEqual(bench.parse_ts_ns("2026-11-27T13:07:39.0119904781Z"), t)  # >9 digits
        with self.assertRaises(ValueError):
            bench.parse_ts_ns("2026-11-27 13:07")

    def test_object_lags_read_the_record_ts_not_a_message_that_looks_like_one(self):
        recs = [{"ts": "2026-11-27T13:07:39.5Z", "stream": "stdout",
                 "message": '{"ts":"1999-01-01T00:00:00Z"}', "offset": 0},
                {"ts": "2026-11-27T13:07:40Z", "stream": "stderr", "message": "x", "offset": 50}]
        data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in recs).encode()
        seen = bench.parse_ts_ns("2026-11-27T13:07:42Z")
        self.assertEqual(bench.object_lags(data, seen, {}), [2.5, 2.0])
        cache: dict = {}
        lines = b"".join(b'{"ts":"%s","message":"m"}\n' % bench.cri_timestamp(t).encode()
                         for t in (seen - 1, seen - 10**9 - 7, seen - 1_500_000_000))
        lines += b'{"ts":"2026-11-27T14:07:41.75+01:00","message":"m"}\n'
        for _ in range(2):  # again, with the seconds cached
            self.assertEqual(bench.object_lags(lines, seen, cache),
                             [1e-9, (10**9 + 7) / 1e9, 1.5, 0.25])

    def test_percentiles(self):
        v = list(range(1, 101))
        self.assertEqual([bench.percentile(v, q) for q in (50, 90, 99, 100)], [50, 90, 99, 100])
        self.assertEqual(bench.percentile([7.0], 99), 7.0)
        self.assertTrue(math.isnan(bench.percentile([], 50)))
        f = bench.lag_figures([3.0, 1.0, 2.0])
        self.assertEqual((f["p50"], f["max"], f["min"], f["count"]), (2.0, 3.0, 1.0, 3))

    def test_config_max_age(self):
        # The agent's default, as config/jobarchive.toml documents it.
        with open(os.path.join(os.path.dirname(__file__), "..", "config", "jobarchive.toml"), "rb") as f:
            documented = tomllib.load(f)["batch"]["max_age_secs"]
        self.assertEqual(bench.DEFAULT_MAX_AGE, float(documented))
        self.assertEqual(bench.config_max_age([])[0], bench.DEFAULT_MAX_AGE)
        with tempfile.TemporaryDirectory() as d:
            cfg = os.path.join(d, "a.toml")
            with open(cfg, "w") as f:
                f.write("[batch]\nmax_age_secs = 2\nmax_bytes = 1048576\n")
            self.assertEqual(bench.config_max_age(["--config", cfg]), (2.0, cfg))
            self.assertEqual(bench.config_max_age([f"--config={cfg}", "-x"])[0], 2.0)
            with open(cfg, "w") as f:
                f.write("[store]\nurl = 'file:///x'\n")
            self.assertEqual(bench.config_max_age(["--config", cfg])[0], bench.DEFAULT_MAX_AGE)
            with self.assertRaises(bench.BenchError):
                bench.config_max_age(["--config", os.path.join(d, "missing.toml")])

    def test_put_counts_are_read_per_class_from_metrics(self):
        body = (
            "# HELP jobarchive_store_puts_total x\n# TYPE jobarchive_store_puts_total counter\n"
            'jobarchive_store_puts_total{class="logs"} 3\n'
            'jobarchive_store_puts_total{class="manifests"} 6\n'
            'jobarchive_store_put_bytes_total{class="logs"} 1.5e6\n'
            'jobarchive_store_put_bytes_total{class="manifests"} 2400\n'
            "jobarchive_shipped_objects_total 3\n"
        )
        counts = bench.parse_put_counts(body)
        self.assertEqual(counts["logs"], (3, 1_500_000))
        self.assertEqual(counts["manifests"], (6, 2400))
        self.assertEqual(counts["footprints"], (0, 0))

    def test_cost_lines_compress_like_logs_and_repeat(self):
        lines = [bench.cost_line(i, 1) for i in range(2000)]
        self.assertEqual(lines, [bench.cost_line(i, 1) for i in range(2000)])
        raw = b"\n".join(lines)
        ratio = len(raw) / len(gzip.compress(raw))
        self.assertTrue(2.5 < ratio < 8, ratio)

    def test_bytes_due_follows_the_schedule_with_capped_bursts(self):
        rate, total, burst = 1e6, 10_000_000, 100_000
        self.assertEqual(bench.bytes_due(0.0, rate, total, 0, burst), 0)
        self.assertEqual(bench.bytes_due(0.01, rate, total, 0, burst), 10_000)
        self.assertEqual(bench.bytes_due(0.01, rate, total, 12_000, burst), 0)  # ahead: wait
        self.assertEqual(bench.bytes_due(1.0, rate, total, 0, burst), burst)  # behind: capped
        self.assertEqual(bench.bytes_due(99.0, rate, total, total - 5, burst), 5)  # the end

    def test_tree_scanner_finds_each_new_object_once_and_skips_temporaries(self):
        with tempfile.TemporaryDirectory() as d:
            scanner = bench.TreeScanner(os.path.join(d, "logs"))
            self.assertEqual(scanner.scan(), [])  # no logs/ yet
            leaf = os.path.join(d, "logs", "cluster=c", "restart=0")
            os.makedirs(leaf)
            for name in ("00000000000000000000.ndjson.gz", ".00000000000000000900.ndjson.gz.tmp",
                         ".x.ndjson.gz", "notes.json"):
                open(os.path.join(leaf, name), "wb").close()
            first = os.path.join(leaf, "00000000000000000000.ndjson.gz")
            self.assertEqual(scanner.scan(), [first])
            self.assertEqual(scanner.scan(), [])
            # folders untouched for a while are not listed again, changed ones are
            old = time.time() - 60
            for folder in (d, os.path.join(d, "logs"), os.path.dirname(leaf), leaf):
                os.utime(folder, (old, old))
            self.assertEqual(scanner.scan(), [])
            second = os.path.join(leaf, "00000000000000000900.ndjson.gz")
            open(second, "wb").close()
            other = os.path.join(d, "logs", "cluster=c", "restart=1")
            os.makedirs(other)
            third = os.path.join(other, "00000000000000000000.ndjson.gz")
            open(third, "wb").close()
            self.assertEqual(sorted(scanner.scan()), sorted([second, third]))
            self.assertEqual(scanner.scan(), [])

    def test_message_pool_is_cri_tails_of_50_to_300_characters(self):
        pool = bench.message_pool(3, "go", "lag-p001-bcdfg", 500)
        self.assertEqual(pool, bench.message_pool(3, "go", "lag-p001-bcdfg", 500))
        stderr = 0
        for tail in pool:
            line = b"2026-11-27T13:07:39.5Z" + tail
            m = CRI_LINE.match(line)
            self.assertIsNotNone(m, line)
            self.assertEqual(m.group(4), b"F")
            self.assertTrue(50 <= len(m.group(5).decode()) <= 300)
            stderr += m.group(3) == b"stderr"
        self.assertTrue(10 <= stderr <= 100, stderr)
        self.assertGreater(len(set(pool)), 490)

    def test_lag_pods_are_job_pods(self):
        with tempfile.TemporaryDirectory() as d:
            pods = bench.lag_pods(d, 3)
            self.assertEqual(len(pods), 3)
            for path, pod, profile in pods:
                self.assertRegex(pod, POD_NAME)
                self.assertTrue(pod.startswith("lag-p"))
                self.assertEqual(os.path.getsize(path), 0)
                self.assertEqual(os.path.basename(path), "0.log")
                self.assertIn(profile, gen_corpus.PROFILES)


class FetchPiecesTest(unittest.TestCase):
    def test_read_pipe_counts_bytes_and_lines(self):
        r, w = os.pipe()
        payload = b"a\n" * 300_000 + b"no newline at the end"
        writer = threading.Thread(target=lambda: (os.write(w, payload), os.close(w)))
        writer.start()
        try:
            self.assertEqual(bench.read_pipe(r), (len(payload), 300_001))
        finally:
            writer.join()
            os.close(r)

    def test_archive_folder_depends_on_the_size(self):
        a = bench.archive_folder("/c", 1)
        self.assertEqual(a, bench.archive_folder("/c", 1.0))
        self.assertNotEqual(a, bench.archive_folder("/c", 0.5))
        self.assertTrue(a.startswith("/c/archive-1gib-"))


class GenArchiveTest(unittest.TestCase):
    def test_objects_tile_the_stream_and_match_the_manifest(self):
        import gzip
        with tempfile.TemporaryDirectory() as store:
            self.assertEqual(gen_archive.write(store, 3, 4), 12)
            manifests = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(store, "manifests")) for f in fs]
            self.assertEqual(len(manifests), 1)
            with open(manifests[0]) as f:
                (c,) = json.load(f)["containers"]
            self.assertEqual([(o["first_offset"], o["end_offset"]) for o in c["objects"]],
                             [(0, 240), (240, 480), (480, 720)])
            self.assertEqual(c["end_offset"], 720)
            for o in c["objects"]:
                with open(os.path.join(store, o["key"]), "rb") as f:
                    body = f.read()
                self.assertEqual((len(body), hashlib.sha256(body).hexdigest()), (o["bytes"], o["sha256"]))
                records = [json.loads(l) for l in gzip.decompress(body).splitlines()]
                self.assertEqual(records[0]["offset"], o["first_offset"])
                self.assertEqual((records[0]["ts"], records[-1]["ts"]), (o["first_ts"], o["last_ts"]))


    def test_realistic_objects_tile_the_log_and_match_text_and_manifest(self):
        import gzip
        with tempfile.TemporaryDirectory() as store:
            s = gen_archive.write_realistic(store, 60_000, 20_000, seed=3, jobs=1)
            self.assertGreaterEqual(s["objects"], 3)
            with open(os.path.join(store, "manifests", gen_archive.PARTITION,
                                   f"pod={gen_archive.POD}.json")) as f:
                (c,) = json.load(f)["containers"]
            self.assertEqual([(o["first_offset"], o["end_offset"]) for o in c["objects"]],
                             [(i * 20_000, (i + 1) * 20_000) for i in range(s["objects"])])
            text = records = 0
            for o in c["objects"]:
                with open(os.path.join(store, o["key"]), "rb") as f:
                    body = f.read()
                self.assertEqual((len(body), hashlib.sha256(body).hexdigest()),
                                 (o["bytes"], o["sha256"]))
                recs = [json.loads(l) for l in gzip.decompress(body).splitlines()]
                self.assertEqual(len(recs), o["records"])
                # offsets step by the length of the CRI line each record came from
                for a, b in zip(recs, recs[1:] + [{"offset": o["end_offset"]}]):
                    line = f"{a['ts']} {a['stream']} F {a['message']}\n".encode()
                    self.assertEqual(b["offset"] - a["offset"], len(line))
                    self.assertTrue(bench.parse_ts_ns(a["ts"]) < bench.parse_ts_ns(
                        b.get("ts", "2100-01-01T00:00:00Z")))
                self.assertEqual(set(recs[0]), set(gen_archive.record(0, 0)))
                text += sum(len(r["message"].encode()) + 1 for r in recs)
                records += len(recs)
            self.assertEqual((text, records), (s["text_bytes"], s["records"]))
            with tempfile.TemporaryDirectory() as again:
                # workers make the objects in any order: the bytes must not depend on it
                s2 = gen_archive.write_realistic(again, 60_000, 20_000, seed=3, jobs=2)
                self.assertEqual(s2["stored_bytes"], s["stored_bytes"])
                self.assertEqual(tree_digest(os.path.join(again, "logs")),
                                 tree_digest(os.path.join(store, "logs")))


if __name__ == "__main__":
    unittest.main()
