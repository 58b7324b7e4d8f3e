#!/usr/bin/env python3
"""Deterministic generator of a kubelet-style pod log tree for benchmarking jobarchive.

Writes ``{out}/{namespace}_{pod}_{uid}/{container}/{restart}.log`` in the CRI log format
(``<RFC3339Nano> <stdout|stderr> <P|F> <message>``), with Job and CronJob pod names, restarts,
long lines split into partial chunks the way containerd splits them, optional kubelet-rotated
predecessors and optional empty pod folders. Same arguments give byte-identical output,
whatever the number of worker processes. Python 3.11 standard library only.

    python3 bench/gen_corpus.py --out /tmp/corpus-1g --size 1GiB --pods 200
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import sys
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

# Kubernetes' rand.String alphabet: no vowels (no accidental words) and no 0/1/3 (look-alikes).
SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
# containerd's default max_container_log_line_size: longer lines become P chunks of this size.
CRI_CHUNK = 16384
LONG_LINE_MIN = 20 * 1024
LONG_LINE_MAX = 70 * 1024
# All timestamps start here so a corpus does not depend on when it was generated.
EPOCH_START = 1795737600  # 2026-11-27T00:00:00Z
WRITE_CHUNK = 4 << 20

NAMESPACES = [("batch", 5), ("data-eng", 4), ("ml-training", 3), ("default", 2), ("reporting", 1)]
JOB_VERBS = ["etl", "train", "export", "import", "backfill", "reindex", "score", "sync",
             "compact", "migrate", "render", "validate", "aggregate", "dedupe", "snapshot"]
JOB_NOUNS = ["orders", "users", "events", "clicks", "invoices", "resnet50", "bert-base",
             "inventory", "payments", "sessions", "metrics", "catalog", "ledger", "geo",
             "recs", "search-index", "audit-log", "shipments", "tickets", "embeddings"]
CRON_NAMES = ["nightly-backup", "hourly-rollup", "db-vacuum", "report-daily", "cert-check",
              "cache-warm", "gc-orphans", "usage-billing", "sitemap-build", "feed-refresh"]
MAIN_CONTAINERS = ["main", "worker", "job", "runner", "app"]
SIDECARS = ["istio-proxy", "cloud-sql-proxy", "log-forwarder"]
INIT_CONTAINERS = ["init-schema", "wait-for-db", "fetch-config"]
PROFILES = ["python", "java", "go", "ml"]

SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.I)
SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 10**6, "mb": 10**6, "g": 10**9,
              "gb": 10**9, "t": 10**12, "tb": 10**12, "kib": 1 << 10, "mib": 1 << 20,
              "gib": 1 << 30, "tib": 1 << 40, "ki": 1 << 10, "mi": 1 << 20, "gi": 1 << 30}


def parse_size(text: str) -> int:
    m = SIZE_RE.match(text)
    if not m or (m.group(2) or "").lower() not in SIZE_UNITS:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 1GiB, 500MB, 10MiB)")
    return int(float(m.group(1)) * SIZE_UNITS[(m.group(2) or "").lower()])


def share(text: str) -> float:
    v = float(text)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"not a fraction between 0 and 1: {text}")
    return v


@dataclass
class FileSpec:
    path: str           # relative to --out
    budget: int         # bytes to write (0 for the empty placeholder files)
    seed: int
    start_ns: int
    profile: str
    pod: str
    container: str


@dataclass
class Options:
    min_line: int
    max_line: int
    json_share: float
    partial_share: float
    stderr_share: float


# ---------------------------------------------------------------------------------------------
# Planning: every random decision about the tree is taken here, in one process, from --seed.
# Each file then gets its own seed, so files can be written in any order by any worker.
# ---------------------------------------------------------------------------------------------

def pod_suffix(rng: random.Random) -> str:
    return "".join(rng.choice(SUFFIX_ALPHABET) for _ in range(5))


def make_uid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def plan_pods(rng: random.Random, n_pods: int) -> list[dict]:
    """Group pods into Jobs (some with several attempts) and CronJob runs."""
    pods: list[dict] = []
    used_jobs: set[tuple[str, str]] = set()
    ns_names = [n for n, _ in NAMESPACES]
    ns_weights = [w for _, w in NAMESPACES]
    while len(pods) < n_pods:
        ns = rng.choices(ns_names, ns_weights)[0]
        if rng.random() < 0.3:
            cron = rng.choice(CRON_NAMES)
            # CronJob controller names each Job <cronjob>-<scheduled time in unix minutes>.
            minute = EPOCH_START // 60 + rng.randrange(0, 24 * 60)
            job = f"{cron}-{minute}"
        else:
            job = f"{rng.choice(JOB_VERBS)}-{rng.choice(JOB_NOUNS)}"
            if rng.random() < 0.5:
                job += f"-{rng.randrange(1, 400)}"
        if (ns, job) in used_jobs:
            continue
        used_jobs.add((ns, job))
        # Most Jobs succeed first time; failed ones get new pods (restartPolicy: Never).
        attempts = 1 if rng.random() < 0.8 else rng.randint(2, 4)
        job_start = rng.randrange(0, 18 * 3600)
        for attempt in range(attempts):
            if len(pods) >= n_pods:
                break
            pods.append({"ns": ns, "job": job, "attempt": attempt + 1,
                         "start_s": job_start + attempt * 900})
    return pods


def plan(args: argparse.Namespace) -> list[FileSpec]:
    rng = random.Random(args.seed)
    specs: list[FileSpec] = []
    pods = plan_pods(rng, args.pods)
    weights = [rng.lognormvariate(0.0, 1.0) for _ in pods]
    wsum = sum(weights) or 1.0
    hour_ns = 3600 * 10**9
    for pod, w in zip(pods, weights):
        name = f"{pod['job']}-{pod_suffix(rng)}"
        folder = f"{pod['ns']}_{name}_{make_uid(rng)}"
        pod_budget = args.size * w / wsum
        containers = [(rng.choice(MAIN_CONTAINERS), 1.0)]
        if rng.random() < 0.1:
            containers.append((rng.choice(INIT_CONTAINERS), 0.02))
        if rng.random() < 0.1:
            containers.append((rng.choice(SIDECARS), 0.08))
        cw = sum(c[1] for c in containers)
        profile = rng.choice(PROFILES)
        pod_start_ns = (EPOCH_START + pod["start_s"]) * 10**9
        for cname, cshare in containers:
            c_budget = pod_budget * cshare / cw
            # restartPolicy: OnFailure restarts the container in place: 0.log, 1.log, ...
            restarts = 1 if rng.random() < 0.9 else rng.randint(2, 3)
            r_weights = [rng.uniform(0.2, 1.0) for _ in range(restarts - 1)] + [1.0]
            r_sum = sum(r_weights)
            segment = 0
            for r, rw in enumerate(r_weights):
                r_budget = c_budget * rw / r_sum
                parts = [(f"{r}.log", 1.0)]
                if rng.random() < args.rotated_share:
                    # kubelet renames the live file with a timestamp suffix when it rotates it.
                    rotated_at = time.strftime(
                        "%Y%m%d-%H%M%S", time.gmtime(pod_start_ns // 10**9 + (segment + 1) * 3600))
                    first = rng.uniform(0.4, 0.8)
                    parts = [(f"{r}.log.{rotated_at}", first), (f"{r}.log", 1.0 - first)]
                for fname, fshare in parts:
                    specs.append(FileSpec(
                        path=f"{folder}/{cname}/{fname}", budget=int(r_budget * fshare),
                        seed=rng.getrandbits(64), start_ns=pod_start_ns + segment * hour_ns,
                        profile=profile, pod=name, container=cname))
                    segment += 1
    # Rounding left a few bytes over; give them to the biggest file so the total is exact.
    if specs:
        biggest = max(range(len(specs)), key=lambda i: specs[i].budget)
        specs[biggest].budget += args.size - sum(s.budget for s in specs)
    for _ in range(args.empty_pod_folders):
        job = f"{rng.choice(JOB_VERBS)}-{rng.choice(JOB_NOUNS)}-{rng.randrange(1000, 99999)}"
        name = f"{job}-{pod_suffix(rng)}"
        folder = f"{rng.choices([n for n, _ in NAMESPACES], [w for _, w in NAMESPACES])[0]}" \
                 f"_{name}_{make_uid(rng)}"
        specs.append(FileSpec(path=f"{folder}/{rng.choice(MAIN_CONTAINERS)}/0.log", budget=0,
                              seed=0, start_ns=0, profile="", pod=name, container=""))
    return specs


# ---------------------------------------------------------------------------------------------
# Messages. Each file is one "application" (a profile) so consecutive lines share structure the
# way real logs do, while numbers, ids and paths keep them from compressing unrealistically well.
# ---------------------------------------------------------------------------------------------

WORDS = ("batch partition chunk record file shard checkpoint segment rowgroup table index "
         "worker queue lease cache request response retry upstream downstream schema column "
         "offset cursor window stage task executor driver tokenizer dataset epoch step loss "
         "metric commit snapshot manifest bucket object prefix region zone node pod job").split()
VERBS = ("processed fetched wrote skipped loaded validated committed uploaded compacted "
         "merged scanned parsed flushed opened closed acquired released scheduled").split()
KEYS = ("user_id order_id shard attempt retries rows bytes duration_ms latency_ms partition "
        "offset batch_size items status code region tenant trace_id span_id thread").split()
REGIONS = ["eu-west-1", "us-east-1", "us-west-2", "ap-south-1"]
TABLES = ["orders", "users", "events", "line_items", "payments", "sessions", "inventory"]
HTTP = [("GET", 200), ("GET", 200), ("GET", 304), ("POST", 201), ("PUT", 200), ("GET", 404),
        ("POST", 500), ("DELETE", 204)]
ERRORS = ["connection reset by peer", "context deadline exceeded", "timeout after 30s",
          "no such file or directory", "permission denied", "too many open files",
          "broken pipe", "i/o timeout", "OOMKilled risk: heap at 92%", "checksum mismatch"]
JAVA_CLASSES = ["TaskSetManager", "DAGScheduler", "BlockManagerInfo", "Executor",
                "ShuffleBlockFetcherIterator", "MemoryStore", "FileSourceStrategy",
                "CodeGenerator", "HikariPool", "KafkaConsumer"]
GO_FILES = ["worker.go", "main.go", "sync.go", "client.go", "store.go", "batch.go", "retry.go"]
PY_LOGGERS = ["etl.extract", "etl.transform", "etl.load", "app.db", "app.s3", "urllib3",
              "botocore.retries", "app.main"]


_FILLER: tuple[str, list[int]] | None = None


def filler_text() -> tuple[str, list[int]]:
    """Padding that completes short templates up to the drawn line length.

    key=value pairs and words, ASCII and free of quotes and backslashes so it can sit inside
    JSON strings. It is 48 KiB, more than gzip's 32 KiB window, so padding compresses like log
    text rather than for free. Built once per process from a fixed seed: it is the same in every
    worker, so output does not depend on which worker wrote a file.
    """
    global _FILLER
    if _FILLER is None:
        rng = random.Random(0x6A6F6261)
        ids = [f"{rng.getrandbits(64):016x}" for _ in range(256)]
        parts: list[str] = []
        starts: list[int] = []
        pos = 0
        while pos < 48 * 1024:
            r = rng.random()
            if r < 0.45:
                tok = f"{rng.choice(KEYS)}={rng.randrange(0, 10 ** rng.randint(1, 7))}"
            elif r < 0.6:
                tok = f"{rng.choice(KEYS)}={rng.choice(ids)[:rng.choice((8, 12, 16))]}"
            elif r < 0.7:
                tok = f"region={rng.choice(REGIONS)}"
            else:
                tok = rng.choice(WORDS)
            starts.append(pos)
            parts.append(tok)
            pos += len(tok) + 1
        _FILLER = (" ".join(parts) + " ", starts)
    return _FILLER


class MessageGen:
    """Per-file message factory; all randomness comes from the file's own RNG."""

    def __init__(self, rng: random.Random, profile: str, spec: FileSpec, opts: Options):
        self.rng = rng
        self.profile = profile
        self.opts = opts
        self.job = spec.pod.rsplit("-", 1)[0]
        self.bucket = f"acme-{rng.choice(['data', 'lake', 'ml', 'exports'])}-{rng.choice(REGIONS)}"
        self.table = rng.choice(TABLES)
        self.ids = [f"{rng.getrandbits(64):016x}" for _ in range(64)]
        self.hosts = [f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(2, 255)}"
                      for _ in range(8)]
        self.counter = rng.randrange(0, 10000)
        self.rnd = rng.random
        # random.choice/randrange cost several calls each; these hot paths index directly
        self.pick = lambda seq, _r=rng.random: seq[int(_r() * len(seq))]
        self.filler, self.filler_starts = filler_text()
        self.text_fn = {"python": self._python, "java": self._java, "go": self._go,
                        "ml": self._ml}[profile]

    def pad(self, n: int) -> str:
        if n <= 0:
            return ""
        rnd, starts, filler = self.rnd, self.filler_starts, self.filler
        out = ""
        while len(out) < n:
            s = starts[int(rnd() * len(starts))]
            out += filler[s:s + n - len(out)]
        return out

    def fit(self, base: str, n: int) -> str:
        """Pad base to n characters; a longer base is kept whole up to --max-line."""
        gap = n - len(base)
        if gap <= 0:
            return base if len(base) <= self.opts.max_line else base[:self.opts.max_line]
        return base + " " + self.pad(gap - 1) if gap > 1 else base + "."

    # --- text templates; clock is "YYYY-MM-DDTHH:MM:SS" of the line, ms its milliseconds ---
    def _python(self, err: bool, clock: str, ms: int) -> str:
        rnd, pick = self.rnd, self.pick
        self.counter += 1
        when = f"{clock[:10]} {clock[11:]},{ms:03d}"
        if err:
            lvl = "ERROR" if rnd() < 0.4 else "WARNING"
            return (f"{when} {lvl} {pick(PY_LOGGERS)}: {pick(ERRORS)} while "
                    f"{pick(VERBS)[:-2]}ing s3://{self.bucket}/{self.table}/part-"
                    f"{int(rnd() * 100000):05d}.parquet (attempt {1 + int(rnd() * 5)}/5)")
        r = rnd()
        if r < 0.5:
            return (f"{when} INFO {pick(PY_LOGGERS)}: {pick(VERBS)} "
                    f"{1 + int(rnd() * 199999)} rows from {self.table} batch={self.counter} "
                    f"in {rnd() * 9:.3f}s")
        if r < 0.8:
            return (f"{when} DEBUG app.s3: PUT s3://{self.bucket}/out/dt={clock[:10]}/"
                    f"{self.job}/part-{self.counter:05d}.csv.gz bytes={int(rnd() * 67108864)} "
                    f"etag={pick(self.ids)}")
        return (f"{when} INFO app.db: query ok table={self.table} rows={int(rnd() * 5000)} "
                f"elapsed={rnd() * 300:.1f}ms conn={pick(self.hosts)}:5432")

    def _java(self, err: bool, clock: str, ms: int) -> str:
        rnd, pick = self.rnd, self.pick
        self.counter += 1
        when = f"{clock[2:4]}/{clock[5:7]}/{clock[8:10]} {clock[11:]}"
        if err:
            return (f"{when} WARN {pick(JAVA_CLASSES)}: Lost task {int(rnd() * 400)}.0 "
                    f"in stage {int(rnd() * 30)}.0 (TID {self.counter}) "
                    f"({pick(self.hosts)} executor {1 + int(rnd() * 16)}): "
                    f"java.io.IOException: {pick(ERRORS)}")
        r = rnd()
        if r < 0.6:
            return (f"{when} INFO TaskSetManager: Finished task {int(rnd() * 400)}.0 in stage "
                    f"{int(rnd() * 30)}.0 (TID {self.counter}) in {20 + int(rnd() * 89980)} ms "
                    f"on {pick(self.hosts)} (executor {1 + int(rnd() * 16)}) "
                    f"({1 + int(rnd() * 399)}/400)")
        return (f"{when} INFO {pick(JAVA_CLASSES)}: Added rdd_{int(rnd() * 90)}_"
                f"{int(rnd() * 400)} in memory on {pick(self.hosts)}:"
                f"{30000 + int(rnd() * 30000)} (size: {rnd() * 900:.1f} KiB, "
                f"free: {rnd() * 4:.1f} GiB)")

    def _go(self, err: bool, clock: str, ms: int) -> str:
        rnd, pick = self.rnd, self.pick
        self.counter += 1
        ts = f"{clock}.{ms:03d}Z"
        if err:
            return (f'level=error ts={ts} caller={pick(GO_FILES)}:{30 + int(rnd() * 870)} '
                    f'msg="upstream call failed" err="{pick(ERRORS)}" '
                    f'attempt={1 + int(rnd() * 6)} backoff={1 + int(rnd() * 30)}s')
        method, code = pick(HTTP)
        if rnd() < 0.5:
            return (f'level=info ts={ts} caller=client.go:{30 + int(rnd() * 870)} '
                    f'msg="request done" method={method} path=/api/v1/{self.table}/'
                    f'{1 + int(rnd() * 9999999)} status={code} '
                    f'duration={rnd() * 250:.3f}ms request_id={pick(self.ids)}')
        return (f'level={"debug" if rnd() < 0.3 else "info"} ts={ts} '
                f'caller={pick(GO_FILES)}:{30 + int(rnd() * 870)} '
                f'msg="{pick(VERBS)} {pick(WORDS)}" n={self.counter} '
                f'items={1 + int(rnd() * 4999)} took={rnd() * 2:.4f}s')

    def _ml(self, err: bool, clock: str, ms: int) -> str:
        rnd, pick = self.rnd, self.pick
        self.counter += 1
        if err:
            if rnd() < 0.5:
                # tqdm draws its bar on stderr with block characters: real non-ASCII in logs.
                pct = int(rnd() * 101)
                bar = "█" * (pct // 10) + pick("▏▎▍▌▋▊▉ ") + " " * (10 - pct // 10)
                return (f"Epoch {1 + int(rnd() * 20)}: {pct:3d}%|{bar}| {pct * 50}/5000 "
                        f"[{int(rnd() * 60):02d}:{int(rnd() * 60):02d}<"
                        f"{int(rnd() * 60):02d}:{int(rnd() * 60):02d}, "
                        f"{rnd() * 30:.2f}it/s, loss={rnd():.4f}]")
            return (f"UserWarning: {pick(ERRORS)}; step {self.counter} grad_norm="
                    f"{rnd() * 10:.3f} exceeds clip, scaling by {rnd():.4f}")
        return (f"[{clock[11:]}] step {self.counter} epoch {self.counter // 5000 + 1} "
                f"loss={rnd() * 2:.5f} acc={rnd():.4f} lr={rnd():.2e} "
                f"throughput={rnd() * 3000:.1f} samples/s gpu_mem={4000 + int(rnd() * 76000)}MiB")

    def json_msg(self, err: bool, clock: str, ms: int, n: int) -> str:
        """A structured-log object of exactly n characters (ASCII) when n allows it."""
        rnd, pick = self.rnd, self.pick
        self.counter += 1
        lvl = ("error" if rnd() < 0.4 else "warn") if err else \
            ("debug" if rnd() < 0.2 else "info")
        msg = f"{pick(VERBS)} {pick(WORDS)}"
        s = ""
        optional = (
            f',"ts":"{clock}.{ms:03d}Z"',
            f',"logger":"{pick(PY_LOGGERS)}"',
            f',"job":"{self.job}"',
            f',"{pick(KEYS)}":{int(rnd() * 10**6)}',
            f',"request_id":"{pick(self.ids)}"',
            f',"duration_ms":{rnd() * 1000:.2f}',
            f',"error":"{pick(ERRORS)}"' if err else f',"batch":{self.counter}',
        )
        fixed = len(lvl) + len(msg) + 21  # {"level":"","msg":""}
        for part in optional:
            if fixed + len(s) + len(part) <= n:
                s += part
        room = n - fixed - len(s)
        if room >= 13:
            s += ',"detail":"' + self.pad(room - 12) + '"'
        elif room > 0:
            # too little room for a field: lengthen the text instead
            msg += " " + self.pad(room - 1) if room > 1 else "."
        return f'{{"level":"{lvl}","msg":"{msg}"{s}}}'

    def message(self, err: bool, clock: str, ms: int, n: int) -> str:
        if self.rnd() < self.opts.json_share:
            return self.json_msg(err, clock, ms, n)
        return self.fit(self.text_fn(err, clock, ms), n)

    def long_message(self, clock: str, ms: int, n: int) -> bytes:
        """A 20-70 KiB line (a dumped payload or a bulk statement) of exactly n bytes."""
        rng = self.rng
        parts: list[str] = []
        size = 0
        if rng.random() < 0.5:
            head = f"DEBUG response body from https://api.internal/{self.table}: {{\"items\":["
            parts.append(head)
            size = len(head)
            while size < n:
                # a few non-ASCII names so some chunk boundaries fall inside a UTF-8 sequence
                name = rng.choice(["Zoë", "München", "café", "naïve", "Øresund", "plain", "x"])
                item = (f'{{"id":{rng.randrange(10**9)},"name":"{name}-{rng.randrange(999)}",'
                        f'"sku":"{rng.choice(self.ids)[:10]}","qty":{rng.randrange(100)},'
                        f'"price":{rng.random() * 500:.2f}}},')
                parts.append(item)
                size += len(item) + 1
        else:
            head = f"SQL: INSERT INTO {self.table} (id, ts, user_id, amount, note) VALUES "
            parts.append(head)
            size = len(head)
            while size < n:
                item = (f"({rng.randrange(10**9)}, '{clock}', {rng.randrange(10**6)}, "
                        f"{rng.random() * 999:.2f}, '{rng.choice(WORDS)} {rng.choice(VERBS)}'), ")
                parts.append(item)
                size += len(item)
        b = "".join(parts).encode()[:n]
        # the cut may have split a multi-byte character: drop it and pad to keep n exact
        b = b.decode("utf-8", "ignore").encode()
        return b + b" " * (n - len(b))


# ---------------------------------------------------------------------------------------------
# Writing one file
# ---------------------------------------------------------------------------------------------

def write_file(out_dir: str, spec: FileSpec, opts: Options) -> dict:
    path = os.path.join(out_dir, spec.path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    stats = {"files": 1, "bytes": 0, "lines": 0, "records": 0, "partial_chunks": 0,
             "long_lines": 0, "long_bytes": 0, "empty": 0}
    if spec.budget <= 0:
        open(path, "wb").close()
        stats["empty"] = 1
        return stats

    rng = random.Random(spec.seed)
    gen = MessageGen(rng, spec.profile, spec, opts)
    rand = rng.random
    min_line, max_line = opts.min_line, opts.max_line
    span = max_line - min_line + 1
    stderr_share = opts.stderr_share
    partial_share = opts.partial_share
    # Spread the file's lines over ~48 minutes: segments start an hour apart, so a rotated file
    # ends before its rotation time and before the next file begins.
    expected_lines = max(1, spec.budget // (min_line + max_line) * 2)
    step_ns = max(2000, min(20_000_000, 2 * 2880 * 10**9 // expected_lines))

    t = spec.start_ns
    cur_s = -1
    clock = ""
    remaining = spec.budget
    buf: list[bytes] = []
    buf_len = 0
    lines = records = chunks = long_lines = long_bytes = 0
    gmtime, strftime = time.gmtime, time.strftime

    def advance() -> str:
        # the next timestamp inside a long line: chunks arrive microseconds apart
        nonlocal t, cur_s, clock
        t += int(rand() * 50_000) + 1
        s, ns = divmod(t, 1_000_000_000)
        if s != cur_s:
            cur_s = s
            clock = strftime("%Y-%m-%dT%H:%M:%S", gmtime(s))
        frac = f"{ns:09d}".rstrip("0")
        return f"{clock}.{frac}Z" if frac else f"{clock}Z"

    with open(path, "wb") as f:
        while True:
            t += int(rand() * step_ns) + 1
            s, ns = divmod(t, 1_000_000_000)
            if s != cur_s:
                cur_s = s
                clock = strftime("%Y-%m-%dT%H:%M:%S", gmtime(s))
            # Go's RFC3339Nano, as containerd writes it: trailing zeros of the fraction dropped.
            frac = f"{ns:09d}".rstrip("0")
            ts = f"{clock}.{frac}Z" if frac else f"{clock}Z"
            err = rand() < stderr_share
            stream = "stderr" if err else "stdout"
            head_len = len(ts) + 10  # ts + " stdout F " (stdout/stderr have the same length)
            ms = ns // 1_000_000

            if partial_share and rand() < partial_share:
                n = rng.randint(LONG_LINE_MIN, LONG_LINE_MAX)
                if n % CRI_CHUNK == 0:
                    n -= 1  # an exact multiple would need an empty F chunk
                n_chunks = -(-n // CRI_CHUNK)
                # reserve room for the chunk headers and one interleaved line of the other stream
                if n + n_chunks * (head_len + 1) + head_len + max_line + 64 < remaining:
                    body = gen.long_message(clock, ms, n)
                    interleave_at = rng.randrange(n_chunks - 1) if rand() < 0.25 else -1
                    for i in range(n_chunks):
                        last = i == n_chunks - 1
                        if i:
                            ts = advance()
                        line = b"%s %s %s %s\n" % (ts.encode(), stream.encode(),
                                                   b"F" if last else b"P",
                                                   body[i * CRI_CHUNK:(i + 1) * CRI_CHUNK])
                        buf.append(line)
                        buf_len += len(line)
                        remaining -= len(line)
                        long_bytes += len(line)
                        lines += 1
                        if i == interleave_at:
                            # containerd writes stdout and stderr into one file as they come:
                            # a line of the other stream may land between P chunks.
                            other = "stdout" if err else "stderr"
                            il_ts = advance()
                            m = gen.message(not err, clock, ms, min_line + int(rand() * span))
                            il = f"{il_ts} {other} F {m}\n".encode()
                            buf.append(il)
                            buf_len += len(il)
                            remaining -= len(il)
                            lines += 1
                            records += 1
                    chunks += n_chunks - 1
                    records += 1
                    long_lines += 1
                    continue

            n = min_line + int(rand() * span)
            msg = gen.message(err, clock, ms, n)
            line = f"{ts} {stream} F {msg}\n".encode()
            if len(line) > remaining:
                # Last line of the file: size it to land exactly on the budget if it can still be
                # a line of allowed length; ASCII filler makes characters equal bytes.
                n = remaining - head_len - 1
                if n < min_line:
                    break
                line = f"{ts} {stream} F {gen.fit(gen.text_fn(err, clock, ms), n)}\n".encode()
                if len(line) != remaining:
                    line = f"{ts} {stream} F {gen.pad(n)}\n".encode()
            buf.append(line)
            buf_len += len(line)
            remaining -= len(line)
            lines += 1
            records += 1
            if buf_len >= WRITE_CHUNK:
                f.write(b"".join(buf))
                buf.clear()
                buf_len = 0
            if remaining < head_len + min_line + 1:
                break
        f.write(b"".join(buf))

    stats.update(bytes=spec.budget - remaining, lines=lines, records=records,
                 partial_chunks=chunks, long_lines=long_lines, long_bytes=long_bytes)
    return stats


def _write_batch(out_dir: str, specs: list[FileSpec], opts: Options) -> dict:
    total: dict = {}
    for spec in specs:
        for k, v in write_file(out_dir, spec, opts).items():
            total[k] = total.get(k, 0) + v
    return total


def generate(args: argparse.Namespace) -> dict:
    opts = Options(args.min_line, args.max_line, args.json_share, args.partial_share,
                   args.stderr_share)
    specs = plan(args)
    os.makedirs(args.out, exist_ok=True)
    started = time.monotonic()
    workers = max(1, args.jobs or os.cpu_count() or 1)
    # Big files first so the pool does not end with one worker writing the largest file alone;
    # empty placeholders are grouped so 10,000 of them cost a few tasks, not 10,000.
    content = sorted((s for s in specs if s.budget > 0), key=lambda s: -s.budget)
    empties = [s for s in specs if s.budget <= 0]
    tasks = [[s] for s in content] + [empties[i:i + 500] for i in range(0, len(empties), 500)]
    totals: dict = {"files": 0, "bytes": 0, "lines": 0, "records": 0, "partial_chunks": 0,
                    "long_lines": 0, "long_bytes": 0, "empty": 0}
    if workers == 1:
        results = [_write_batch(args.out, t, opts) for t in tasks]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(_write_batch, [args.out] * len(tasks), tasks,
                                    [opts] * len(tasks)))
    for r in results:
        for k, v in r.items():
            totals[k] += v
    totals["pod_folders"] = len({s.path.split("/", 1)[0] for s in specs})
    totals["requested_bytes"] = args.size
    totals["seconds"] = round(time.monotonic() - started, 2)
    totals["out"] = os.path.abspath(args.out)
    return totals


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output folder (the kubelet pods dir)")
    p.add_argument("--size", type=parse_size, default=parse_size("100MiB"),
                   help="total bytes of log content, e.g. 1GiB, 500MB, 10MiB (default 100MiB)")
    p.add_argument("--pods", type=int, default=200, help="pods with content (default 200)")
    p.add_argument("--min-line", type=int, default=50, help="shortest message, chars")
    p.add_argument("--max-line", type=int, default=300, help="longest ordinary message, chars")
    p.add_argument("--json-share", type=share, default=0.3, help="fraction of JSON messages")
    p.add_argument("--partial-share", type=share, default=0.01,
                   help="fraction of logical lines that are 20-70 KiB and split into P chunks")
    p.add_argument("--stderr-share", type=share, default=0.1, help="fraction of stderr lines")
    p.add_argument("--rotated-share", type=share, default=0.0,
                   help="fraction of logs with a kubelet-rotated predecessor N.log.YYYYMMDD-HHMMSS")
    p.add_argument("--empty-pod-folders", type=int, default=0,
                   help="extra pod folders holding one empty 0.log each")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--jobs", type=int, default=0, help="worker processes (default: all cores)")
    p.add_argument("--force", action="store_true", help="delete --out first if it exists")
    p.add_argument("--summary-json", action="store_true",
                   help="print the summary as one JSON object on stdout")
    args = p.parse_args(argv)
    if not 1 <= args.min_line <= args.max_line:
        p.error("need 1 <= --min-line <= --max-line")
    if args.pods < 1:
        p.error("--pods must be at least 1")
    if os.path.exists(args.out) and os.listdir(args.out):
        if not args.force:
            p.error(f"{args.out} is not empty (use --force to replace it)")
        shutil.rmtree(args.out)

    totals = generate(args)
    line = (f"wrote {totals['files']} files ({totals['empty']} empty) in "
            f"{totals['pod_folders']} pod folders: {totals['bytes']} bytes, {totals['lines']} lines, "
            f"{totals['records']} records ({totals['long_lines']} long lines in "
            f"{totals['partial_chunks']} extra P chunks, {totals['long_bytes']} bytes) "
            f"in {totals['seconds']} s")
    if args.summary_json:
        print(line, file=sys.stderr)
        print(json.dumps(totals, sort_keys=True))
    else:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
