#!/usr/bin/env python3
"""Checks of the benchmark tooling: the corpus generator's output and bench.py's corpus counting.

    python3 -m unittest bench/test_bench_tools.py      (or: python3 bench/test_bench_tools.py)

Standard library only; a few seconds on two cores.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import os
import re
import shutil
import sys
import tempfile
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


if __name__ == "__main__":
    unittest.main()
