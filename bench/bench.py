#!/usr/bin/env python3
"""Drain, idle, lag and fetch benchmarks of jobarchive, measured from outside the process.

Runs `jobarchive agent --drain` over a log corpus (see gen_corpus.py) into a fresh file or S3
store per run, and reports CPU (user+sys from the child's rusage), wall time, peak RSS, throughput
and compression ratio; with --baseline, alternates runs of two binaries and prints their ratio.
With --idle-files, measures the CPU an agent spends watching many quiet files instead; with
--lag-rate, the delay from writing a line to its landing in the store under a steady write rate;
with --fetch-gib or --fetch-job, the speed of `jobarchive fetch` on one large job.
It only relies on the external contract (CLI flags, store URLs, the logs/ key tree), never on the
agent's internals. Python 3.11 standard library only.

    python3 bench/bench.py --binary target/release/jobarchive --corpus /tmp/corpus-1g --runs 3
"""

from __future__ import annotations

import argparse
import array
import calendar
import datetime
import gzip
import hashlib
import hmac
import importlib.util
import json
import math
import multiprocessing
import os
import queue
import random
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET

# kubelet's live file N.log and its rotated, not yet compressed predecessors N.log.YYYYMMDD-HHMMSS
LOG_NAME = re.compile(r"^\d+\.log(\.\d{8}-\d{6})?$")
CACHE_DIR = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                         "jobarchive-bench")
READ_BLOCK = 16 << 20
MB = 1e6
MIB = 1 << 20


class BenchError(Exception):
    """A failure that ends the benchmark with a one-line message (exit 1)."""


# ---------------------------------------------------------------------------------------------
# Corpus statistics
# ---------------------------------------------------------------------------------------------

def list_log_files(corpus: str) -> list[tuple[str, os.stat_result]]:
    found = []
    for root, _dirs, files in os.walk(corpus):
        for name in files:
            if LOG_NAME.match(name):
                path = os.path.join(root, name)
                found.append((path, os.stat(path)))
    found.sort()
    return found


def count_records(path: str) -> tuple[int, int]:
    """(records, lines) of a CRI log: a record is a complete line tagged F.

    Counting newlines is fast; P lines are rare, so only the places where a P tag may stand are
    checked, and confirmed by the line having exactly a timestamp before the stream name.
    """
    records = lines = 0
    carry = b""
    with open(path, "rb") as f:
        while True:
            block = f.read(READ_BLOCK)
            if not block:
                break
            block = carry + block
            cut = block.rfind(b"\n") + 1
            carry = block[cut:]
            whole = block[:cut]
            n = whole.count(b"\n")
            partial = 0
            for tag in (b" stdout P ", b" stderr P "):
                i = whole.find(tag)
                while i >= 0:
                    start = whole.rfind(b"\n", 0, i) + 1
                    if b" " not in whole[start:i]:
                        partial += 1
                    i = whole.find(tag, i + 1)
            lines += n
            records += n - partial
    # a last line without its newline is still being written: not a record yet
    return records, lines


def corpus_stats(corpus: str, warm: bool = True) -> dict:
    """Files, bytes and records of a corpus; records are cached per corpus folder.

    The cache is keyed by the folder and a fingerprint of its files (names, sizes, mtimes), so a
    regenerated corpus is counted again. Reading every file also warms the page cache, so the
    first measured run does not pay for disk reads the later ones skip.
    """
    corpus = os.path.abspath(corpus)
    files = list_log_files(corpus)
    if not files:
        raise BenchError(f"no kubelet log files (N.log) under {corpus}")
    fp = hashlib.sha256()
    for path, st in files:
        fp.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    fingerprint = fp.hexdigest()
    stats = {"corpus": corpus, "files": len(files),
             "empty_files": sum(1 for _, st in files if st.st_size == 0),
             "bytes": sum(st.st_size for _, st in files), "fingerprint": fingerprint}
    cache = os.path.join(CACHE_DIR, "corpus-" + hashlib.sha256(corpus.encode()).hexdigest()[:16]
                         + ".json")
    try:
        with open(cache) as f:
            cached = json.load(f)
        if cached.get("fingerprint") == fingerprint:
            stats["records"], stats["lines"] = cached["records"], cached["lines"]
    except (OSError, ValueError, KeyError):
        pass
    if "records" not in stats:
        records = lines = 0
        for path, st in files:
            if st.st_size:
                r, n = count_records(path)
                records += r
                lines += n
        stats["records"], stats["lines"] = records, lines
        os.makedirs(CACHE_DIR, exist_ok=True)
        tmp = cache + ".tmp"
        with open(tmp, "w") as f:
            json.dump(stats, f)
        os.replace(tmp, cache)
    elif warm:
        for path, st in files:
            if st.st_size:
                with open(path, "rb") as f:
                    while f.read(READ_BLOCK):
                        pass
    return stats


# ---------------------------------------------------------------------------------------------
# Stores
# ---------------------------------------------------------------------------------------------

class S3:
    """Just enough of S3 (path-style, SigV4) to make a bucket, list, read and empty it.

    Written on the standard library so the benchmark runs with the system Python, without boto3.
    """

    NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"

    def __init__(self, endpoint: str):
        self.endpoint = endpoint.rstrip("/")
        self.host = urllib.parse.urlsplit(self.endpoint).netloc
        self.region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") \
            or "us-east-1"
        self.key_id = os.environ.get("AWS_ACCESS_KEY_ID", "")
        self.secret = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
        self.token = os.environ.get("AWS_SESSION_TOKEN")

    def request(self, method: str, bucket: str, key: str = "", query: dict | None = None,
                body: bytes = b"") -> bytes:
        path = "/" + urllib.parse.quote(bucket + ("/" + key if key else ""), safe="/~")
        qs = "&".join(f"{urllib.parse.quote(k, safe='~')}={urllib.parse.quote(str(v), safe='~')}"
                      for k, v in sorted((query or {}).items()))
        now = datetime.datetime.now(datetime.timezone.utc)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        day = amz_date[:8]
        payload = hashlib.sha256(body).hexdigest()
        headers = {"host": self.host, "x-amz-content-sha256": payload, "x-amz-date": amz_date}
        if self.token:
            headers["x-amz-security-token"] = self.token
        names = sorted(headers)
        canonical = "\n".join([method, path, qs, "".join(f"{h}:{headers[h]}\n" for h in names),
                               ";".join(names), payload])
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        k = ("AWS4" + self.secret).encode()
        for part in (day, self.region, "s3", "aws4_request"):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={self.key_id}/{scope}, "
                                    f"SignedHeaders={';'.join(names)}, Signature={sig}")
        url = self.endpoint + path + ("?" + qs if qs else "")
        req = urllib.request.Request(url, data=body if method in ("PUT", "POST") else None,
                                     method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.read()
        except urllib.error.HTTPError as e:
            detail = e.read()[:300].decode("utf-8", "replace")
            raise BenchError(f"S3 {method} {path}: HTTP {e.code}: {detail}") from None
        except urllib.error.URLError as e:
            raise BenchError(f"S3 {method} {url}: {e.reason}") from None

    def create_bucket(self, bucket: str) -> None:
        body = b""
        if self.region != "us-east-1":
            body = (f'<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                    f"<LocationConstraint>{self.region}</LocationConstraint>"
                    f"</CreateBucketConfiguration>").encode()
        self.request("PUT", bucket, body=body)

    def list(self, bucket: str, prefix: str) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        token = None
        while True:
            q = {"list-type": "2", "prefix": prefix}
            if token:
                q["continuation-token"] = token
            root = ET.fromstring(self.request("GET", bucket, query=q))
            for c in root.iter(self.NS + "Contents"):
                out.append((c.findtext(self.NS + "Key"), int(c.findtext(self.NS + "Size"))))
            if root.findtext(self.NS + "IsTruncated") != "true":
                return out
            token = root.findtext(self.NS + "NextContinuationToken")

    def get(self, bucket: str, key: str) -> bytes:
        return self.request("GET", bucket, key)

    def delete_all(self, bucket: str, prefix: str, drop_bucket: bool) -> None:
        for key, _size in self.list(bucket, prefix):
            self.request("DELETE", bucket, key)
        if drop_bucket:
            self.request("DELETE", bucket)


class Store:
    """A fresh, empty store for one run, and what the agent wrote into it."""

    def __init__(self, kind: str, work: str, label: str, s3_bucket: str | None):
        self.kind = kind
        if kind == "file":
            self.dir = tempfile.mkdtemp(prefix=f"store-{label}-", dir=work)
            self.url = "file://" + os.path.abspath(self.dir)
            self.env: dict[str, str] = {}
            return
        endpoint = os.environ.get("S3_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL")
        if not endpoint:
            raise BenchError("--store s3 needs S3_ENDPOINT or AWS_ENDPOINT_URL (source "
                             "tests/s3-moto.sh for a local moto server)")
        self.s3 = S3(endpoint)
        run_id = f"{label}-{uuid.uuid4().hex[:10]}"
        self.own_bucket = s3_bucket is None
        self.bucket = s3_bucket or f"jobarchive-bench-{run_id}"
        self.prefix = "bench" if self.own_bucket else f"bench-{run_id}"
        if self.own_bucket:
            self.s3.create_bucket(self.bucket)
        self.url = f"s3://{self.bucket}/{self.prefix}"
        self.env = {"AWS_ENDPOINT_URL": endpoint, "JOBARCHIVE_S3_PATH_STYLE": "true"}

    def objects(self, tree: str) -> list[tuple[str, int]]:
        """(key relative to the store prefix, size) of every object under tree/ (e.g. logs)."""
        if self.kind == "file":
            base = os.path.join(self.dir, tree)
            out = []
            for root, _dirs, files in os.walk(base):
                for name in files:
                    p = os.path.join(root, name)
                    out.append((os.path.relpath(p, self.dir), os.path.getsize(p)))
            return out
        n = len(self.prefix) + 1
        return [(k[n:], s) for k, s in self.s3.list(self.bucket, f"{self.prefix}/{tree}/")]

    def read(self, key: str) -> bytes:
        if self.kind == "file":
            with open(os.path.join(self.dir, key), "rb") as f:
                return f.read()
        return self.s3.get(self.bucket, f"{self.prefix}/{key}")

    def remove(self) -> None:
        if self.kind == "file":
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            self.s3.delete_all(self.bucket, self.prefix + "/", self.own_bucket)


# ---------------------------------------------------------------------------------------------
# Drain benchmark
# ---------------------------------------------------------------------------------------------

def ndjson_records(gz: bytes) -> int:
    data = gzip.decompress(gz)
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def tail(path: str, n: int = 2000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - n))
            return f.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


def agent_cmd(binary: str, corpus: str, state: str, url: str, extra: list[str],
              drain: bool) -> list[str]:
    return ([binary, "agent"] + (["--drain"] if drain else [])
            + ["--kube", "off", "--node-name", "bench", "--log-dir", corpus,
               "--state-dir", state, "--store", url] + extra)


def drain_run(binary: str, label: str, corpus: str, args: argparse.Namespace,
              stats: dict) -> dict:
    state = tempfile.mkdtemp(prefix=f"state-{label}-", dir=args.work_dir)
    store = Store(args.store, args.work_dir, label, args.s3_bucket)
    out_path = os.path.join(args.work_dir, f"agent-{label}.out")
    env = dict(os.environ, **store.env)
    cmd = agent_cmd(binary, corpus, state, store.url, shlex.split(args.extra_args), drain=True)
    try:
        with open(out_path, "wb") as out:
            started = time.monotonic()
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, env=env)
            peak = PeakRss(proc.pid)
            killer = threading.Timer(args.timeout, proc.kill)
            killer.start()
            try:
                # wait4, not Popen.wait: its rusage is this child's alone, which
                # getrusage(RUSAGE_CHILDREN) would mix with every earlier run.
                _pid, status, ru = os.wait4(proc.pid, 0)
            finally:
                killer.cancel()
                peak_mib = peak.stop()
            wall = time.monotonic() - started
            proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            why = "timed out" if wall >= args.timeout else f"exited {proc.returncode}"
            raise BenchError(f"{label}: agent {why} after {wall:.1f} s: {shlex.join(cmd)}\n"
                             f"--- output tail ---\n{tail(out_path)}")
        logs = store.objects("logs")
        other = store.objects("manifests") + store.objects("footprints")
        cpu = ru.ru_utime + ru.ru_stime
        r = {
            "label": label, "binary": binary, "user_s": ru.ru_utime, "sys_s": ru.ru_stime,
            "cpu_s": cpu, "wall_s": wall, "peak_rss_mib": peak_mib,
            "output_bytes": sum(s for _, s in logs), "output_objects": len(logs),
            "other_bytes": sum(s for _, s in other), "other_objects": len(other),
            "major_faults": ru.ru_majflt, "vol_ctx_switches": ru.ru_nvcsw,
        }
        r["mb_per_cpu_s"] = stats["bytes"] / MB / cpu if cpu > 0 else float("inf")
        r["mb_per_wall_s"] = stats["bytes"] / MB / wall
        r["records_per_wall_s"] = stats["records"] / wall
        r["records_per_cpu_s"] = stats["records"] / cpu if cpu > 0 else float("inf")
        r["compression"] = stats["bytes"] / r["output_bytes"] if r["output_bytes"] else 0.0
        if not logs:
            print(f"warning: {label} wrote no object under logs/ in {store.url}", file=sys.stderr)
        if args.count_output:
            # after the measurement, so it costs time but does not change the figures
            shipped = sum(ndjson_records(store.read(k)) for k, _ in logs)
            r["records_shipped"] = shipped
            if shipped != stats["records"]:
                print(f"warning: {label} shipped {shipped} records, the corpus has"
                      f" {stats['records']}", file=sys.stderr)
        return r
    finally:
        if not args.keep:
            shutil.rmtree(state, ignore_errors=True)
            store.remove()
            try:
                os.remove(out_path)
            except OSError:
                pass
        else:
            print(f"kept: state {state}, store {store.url}, output {out_path}")


def print_run(i: int, r: dict, tagged: bool) -> None:
    tag = f" [{r['label']}]" if tagged else ""
    shipped = f", {r['records_shipped']} records" if "records_shipped" in r else ""
    print(f"run {i}{tag}: cpu {r['cpu_s']:.2f} s (user {r['user_s']:.2f} + sys {r['sys_s']:.2f}),"
          f" wall {r['wall_s']:.2f} s, peak RSS {r['peak_rss_mib']:.1f} MiB,"
          f" output {r['output_bytes']} bytes in {r['output_objects']} objects{shipped}",
          flush=True)


def medians(runs: list[dict], keys: list[str]) -> dict:
    return {k: statistics.median(r[k] for r in runs) for k in keys}


def print_cpu_header(title: str, s: dict, n: int) -> None:
    """The title and CPU line every summary (drain or fetch) starts with."""
    print(f"{title}" + (f" (median of {n} runs)" if n > 1 else "") + ":")
    print(f"  cpu: {s['cpu_s']:.2f} s (user {s['user_s']:.2f} + sys {s['sys_s']:.2f}),"
          f" wall {s['wall_s']:.2f} s")


def summarize(runs: list[dict]) -> dict:
    return medians(runs, ["cpu_s", "user_s", "sys_s", "wall_s", "peak_rss_mib", "mb_per_cpu_s",
                          "mb_per_wall_s", "records_per_wall_s", "records_per_cpu_s",
                          "compression", "output_bytes", "output_objects", "other_bytes",
                          "other_objects"])


def print_summary(title: str, s: dict, n: int) -> None:
    print_cpu_header(title, s, n)
    print(f"  throughput: {s['mb_per_cpu_s']:.1f} MB raw log per CPU-second")
    print(f"  throughput (wall): {s['mb_per_wall_s']:.1f} MB/s")
    print(f"  records per second (wall): {s['records_per_wall_s']:,.0f}")
    print(f"  records per CPU-second: {s['records_per_cpu_s']:,.0f}")
    print(f"  peak RSS: {s['peak_rss_mib']:.1f} MiB")
    print(f"  compression ratio: {s['compression']:.1f}x ({s['output_bytes']:.0f} bytes in"
          f" {s['output_objects']:.0f} log objects; manifests+footprints"
          f" {s['other_bytes']:.0f} bytes in {s['other_objects']:.0f} objects)")


def bench_drain(args: argparse.Namespace) -> dict:
    stats = corpus_stats(args.corpus, warm=not args.no_warm)
    print(f"binary: {args.binary}")
    if args.baseline:
        print(f"baseline: {args.baseline}")
    print(f"corpus: {stats['corpus']}")
    print(f"input: {stats['bytes']} bytes in {stats['files']} files"
          f" ({stats['empty_files']} empty), {stats['records']} records", flush=True)
    print(f"store: {args.store}", flush=True)
    results = alternate_runs(
        args, lambda binary, label: drain_run(binary, label, stats["corpus"], args, stats),
        lambda n, r: print_run(n, r, bool(args.baseline)))
    report = {"corpus": stats, "store": args.store, "runs": results}
    cand = summarize(results["candidate"])
    report["candidate"] = cand
    if not args.baseline:
        if args.runs > 1:
            print_summary("candidate", cand, args.runs)
        else:
            print(f"throughput: {cand['mb_per_cpu_s']:.1f} MB raw log per CPU-second")
            print(f"throughput (wall): {cand['mb_per_wall_s']:.1f} MB/s")
            print(f"records per second (wall): {cand['records_per_wall_s']:,.0f}")
            print(f"compression ratio: {cand['compression']:.1f}x")
        return report
    base = summarize(results["baseline"])
    report["baseline"] = base
    print_summary("baseline", base, args.runs)
    print_summary("candidate", cand, args.runs)
    ratio = {"throughput": cand["mb_per_cpu_s"] / base["mb_per_cpu_s"],
             "peak_rss": cand["peak_rss_mib"] / base["peak_rss_mib"],
             "wall": cand["wall_s"] / base["wall_s"]}
    report["ratio"] = ratio
    print(f"ratio candidate/baseline: throughput {ratio['throughput']:.3f}x"
          f" (>1 is faster), peak RSS {ratio['peak_rss']:.3f}x (<1 is smaller),"
          f" wall {ratio['wall']:.3f}x")
    return report


# ---------------------------------------------------------------------------------------------
# Idle benchmark
# ---------------------------------------------------------------------------------------------

def make_idle_corpus(root: str, n_files: int, lines_per_file: int) -> int:
    """n_files pod folders with one short, finished-looking 0.log each; returns records."""
    t0 = datetime.datetime(2026, 11, 27, 12, 0, tzinfo=datetime.timezone.utc)
    for i in range(n_files):
        folder = os.path.join(root, f"batch_idle-{i // 4}-{i:05d}x_{uuid.UUID(int=i + 1, version=4)}",
                              "main")
        os.makedirs(folder)
        with open(os.path.join(folder, "0.log"), "w") as f:
            for j in range(lines_per_file):
                ts = (t0 + datetime.timedelta(seconds=i, microseconds=j * 1500)).strftime(
                    "%Y-%m-%dT%H:%M:%S.%fZ")
                f.write(f"{ts} stdout F idle file {i} line {j}: nothing more will come\n")
    return n_files * lines_per_file


def proc_cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        # the command name may hold spaces: fields are counted after its closing parenthesis
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


class PeakRss:
    """The child's peak RSS, from /proc/PID/status VmHWM polled every 10 ms while it runs.

    Not ru_maxrss: Linux carries the high-water mark of the pre-exec image into it, and a
    child forked from this Python process starts as a copy of it, so ru_maxrss reports this
    script's size (about 40 MiB once it has counted a corpus) whenever the agent uses less.
    VmHWM belongs to the address space the agent exec'd into. Growth in the last 10 ms before
    the exit would be missed; the agent's last act is small writes.
    """

    def __init__(self, pid: int):
        self.pid, self.kib = pid, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                self.kib = max(self.kib, proc_status(self.pid).get("VmHWM", 0))
            except (OSError, ValueError):
                pass
            self._stop.wait(0.01)

    def stop(self) -> float:
        """Stop polling; the peak in MiB."""
        self._stop.set()
        self._thread.join()
        return self.kib / 1024


def proc_status(pid: int) -> dict:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "Threads"):
                out[k] = int(v.split()[0])
    try:
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        pass
    return out


def shipped_records(store: Store, seen: dict) -> int:
    """Records in the logs/ objects so far; an object is re-read only when its size changes."""
    for key, size in store.objects("logs"):
        if seen.get(key, (None,))[0] != size:
            try:
                lines = ndjson_records(store.read(key))
            except (OSError, EOFError, BenchError):
                continue  # being replaced right now: count it on the next pass
            seen[key] = (size, lines)
    return sum(n for _, n in seen.values())


def bench_idle(args: argparse.Namespace) -> dict:
    hz = os.sysconf("SC_CLK_TCK")
    corpus = tempfile.mkdtemp(prefix="idle-corpus-", dir=args.work_dir)
    state = tempfile.mkdtemp(prefix="idle-state-", dir=args.work_dir)
    store = Store(args.store, args.work_dir, "idle", args.s3_bucket)
    out_path = os.path.join(args.work_dir, "agent-idle.out")
    expected = make_idle_corpus(corpus, args.idle_files, args.idle_lines)
    print(f"binary: {args.binary}")
    print(f"idle corpus: {args.idle_files} files, {expected} records, store: {args.store}",
          flush=True)
    env = dict(os.environ, **store.env)
    cmd = agent_cmd(args.binary, corpus, state, store.url, shlex.split(args.extra_args),
                    drain=False)
    report: dict = {"files": args.idle_files, "records": expected}
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env=env)
    try:
        started = time.monotonic()
        seen: dict = {}
        shipped = 0
        caught_up = None
        # Caught up = every record of the corpus is in the store. Counting what landed needs
        # nothing from the agent but the contract's object format.
        while time.monotonic() - started < args.idle_timeout:
            if proc.poll() is not None:
                raise BenchError(f"agent exited {proc.returncode} while catching up\n"
                                 f"--- output tail ---\n{tail(out_path)}")
            shipped = shipped_records(store, seen)
            if shipped >= expected:
                caught_up = time.monotonic() - started
                break
            time.sleep(1.0)
        if caught_up is None:
            print(f"warning: not caught up after {args.idle_timeout:.0f} s ({shipped} of"
                  f" {expected} records shipped); measuring anyway", file=sys.stderr)
        else:
            print(f"caught up: {caught_up:.1f} s after start ({shipped} records shipped)")
        report["catch_up_s"] = caught_up
        time.sleep(args.idle_settle)  # let trailing flushes and manifest writes finish
        t0, c0 = time.monotonic(), proc_cpu_ticks(proc.pid)
        time.sleep(args.idle_seconds)
        t1, c1 = time.monotonic(), proc_cpu_ticks(proc.pid)
        if proc.poll() is not None:
            raise BenchError(f"agent exited {proc.returncode} during the idle measurement\n"
                             f"--- output tail ---\n{tail(out_path)}")
        st = proc_status(proc.pid)
        pct = (c1 - c0) / hz / (t1 - t0) * 100
        report.update(idle_cpu_percent=pct, interval_s=t1 - t0, rss_mib=st.get("VmRSS", 0) / 1024,
                      peak_rss_mib=st.get("VmHWM", 0) / 1024, threads=st.get("Threads"),
                      open_fds=st.get("fds"))
        print(f"idle cpu: {pct:.2f} % of a core over {t1 - t0:.1f} s"
              f" ({(c1 - c0) / hz:.2f} CPU-s)")
        print(f"memory: RSS {report['rss_mib']:.1f} MiB, peak {report['peak_rss_mib']:.1f} MiB;"
              f" threads {report['threads']}, open fds {report['open_fds']}")
        return report
    finally:
        stop_agent(proc)
        if not args.keep:
            remove_run(corpus, state, store, out_path)


def remove_run(corpus, state, store, out_path):
    """What an idle or lag run made: its corpus, state dir, store and the agent's output."""
    for d in (corpus, state):
        shutil.rmtree(d, ignore_errors=True)
    store.remove()
    try:
        os.remove(out_path)
    except OSError:
        pass


# ---------------------------------------------------------------------------------------------
# Lag benchmark
# ---------------------------------------------------------------------------------------------

RFC3339 = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?"
                     r"([Zz]|[+-]\d\d:\d\d)$")
TS_FIELD = re.compile(rb'"ts":"([^"]*)"')  # a message's own quotes are escaped: never matches
LAG_POOL = 4096      # messages per pod, cycled: ~700 KB, far beyond gzip's 32 KiB window
MAX_BURST_S = 0.1    # a writer that fell behind writes at most this much time's worth at once
DEFAULT_MAX_AGE = 60.0


def sibling(name: str):
    """A module of this folder (gen_corpus.py), whatever the cwd and sys.path are."""
    mod_name = f"_bench_sibling_{name}"
    if mod_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            mod_name, os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module  # dataclasses look their module up by name
        spec.loader.exec_module(module)
    return sys.modules[mod_name]


def cri_timestamp_bytes(t_ns: int, memo: list) -> bytes:
    """Go's RFC3339Nano in UTC, as containerd writes it: trailing zeros of the fraction dropped.
    memo ([second, its text]) saves formatting the date for every line of the same second."""
    s, ns = divmod(t_ns, 10**9)
    if memo[0] != s:
        memo[0], memo[1] = s, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)).encode()
    frac = (b"%09d" % ns).rstrip(b"0")
    return memo[1] + b"." + frac + b"Z" if frac else memo[1] + b"Z"


def cri_timestamp(t_ns: int) -> str:
    return cri_timestamp_bytes(t_ns, [None, b""]).decode()


def parse_ts_ns(ts: str, cache: dict | None = None) -> int:
    """Nanoseconds since the epoch of an RFC 3339 timestamp (any fraction, Z or +hh:mm).

    cache maps the whole-second part to its nanoseconds: records of one second share it, so a
    few million timestamps cost one dict lookup each.
    """
    m = RFC3339.match(ts)
    if not m:
        raise ValueError(f"not an RFC 3339 timestamp: {ts!r}")
    frac = m.group(7) or ""
    key = ts[:19] + m.group(8)
    base = cache.get(key) if cache is not None else None
    if base is None:
        y, mo, d, h, mi, sec = (int(g) for g in m.groups()[:6])
        zone = m.group(8)
        off = 0 if zone in "Zz" else (1 if zone[0] == "+" else -1) * (
            int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
        base = (calendar.timegm((y, mo, d, h, mi, sec, 0, 0, 0)) - off) * 10**9
        if cache is not None:
            cache[key] = base
    return base + int(frac[:9].ljust(9, "0"))


def object_lags(ndjson: bytes, seen_ns: int, cache: dict) -> list[float]:
    """seen - ts, in seconds, of every record of a decompressed log object."""
    out = []
    for ts in TS_FIELD.findall(ndjson):
        base = cache.get(ts[:19])
        if base is not None and ts[19:20] == b"." and ts[-1:] == b"Z":
            # the common case, a few million times a run: whole second known, UTC, a fraction
            t = base + int(ts[20:-1][:9].ljust(9, b"0"))
        else:
            t = parse_ts_ns(ts.decode(), cache)
            if ts[-1:] == b"Z":
                cache[ts[:19]] = t - t % 10**9
        out.append((seen_ns - t) / 1e9)
    return out


def percentile(sorted_values, q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an ascending sequence; nan when it is empty."""
    if not sorted_values:
        return float("nan")
    return sorted_values[max(0, math.ceil(q / 100 * len(sorted_values)) - 1)]


def lag_figures(lags) -> dict:
    v = sorted(lags)
    return {"p50": percentile(v, 50), "p90": percentile(v, 90), "p99": percentile(v, 99),
            "max": v[-1] if v else float("nan"), "min": v[0] if v else float("nan"),
            "mean": statistics.fmean(v) if v else float("nan"), "count": len(v)}


def config_max_age(extra: list[str]) -> tuple[float, str]:
    """([batch] max_age_secs, where it came from) of the --config among the agent arguments."""
    path = None
    for i, a in enumerate(extra):
        if a == "--config" and i + 1 < len(extra):
            path = extra[i + 1]
        elif a.startswith("--config="):
            path = a.split("=", 1)[1]
    if path is None:
        return DEFAULT_MAX_AGE, "default"
    try:
        with open(path, "rb") as f:
            cfg = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise BenchError(f"cannot read the agent config {path}: {e}") from None
    value = cfg.get("batch", {}).get("max_age_secs")
    return (DEFAULT_MAX_AGE, f"default, not set in {path}") if value is None \
        else (float(value), path)


def bytes_due(elapsed: float, rate: float, total: int, written: int, burst: int) -> int:
    """What the writer owes now on the steady schedule rate * elapsed (capped at total), at most
    burst bytes in one go: a writer that cannot keep up then shows it instead of bursting."""
    return max(0, min(min(int(rate * elapsed), total) - written, burst))


def lag_pods(root: str, n: int) -> list[tuple[str, str, str]]:
    """n pod folders with an empty main/0.log each; returns (path, pod, profile) per pod."""
    gc = sibling("gen_corpus")
    rng = random.Random(4242)
    pods = []
    for i in range(n):
        # `lag-p007`: a letter keeps the agent from reading the number as an Indexed Job's index
        pod = f"lag-p{i:03d}-" + "".join(rng.choice(gc.SUFFIX_ALPHABET) for _ in range(5))
        folder = os.path.join(root, f"bench_{pod}_{uuid.UUID(int=rng.getrandbits(128), version=4)}",
                              "main")
        os.makedirs(folder)
        path = os.path.join(folder, "0.log")
        open(path, "wb").close()
        pods.append((path, pod, gc.PROFILES[i % len(gc.PROFILES)]))
    return pods


def message_pool(seed: int, profile: str, pod: str, n: int = LAG_POOL) -> list[bytes]:
    """n CRI line tails (` stdout F msg\\n`) in gen_corpus.py's style: 50-300 characters,
    30 % JSON, 10 % stderr. The writer puts a fresh timestamp in front of each."""
    gc = sibling("gen_corpus")
    rng = random.Random(seed)
    spec = gc.FileSpec(path="", budget=0, seed=seed, start_ns=0, profile=profile, pod=pod,
                       container="main")
    gen = gc.MessageGen(rng, profile, spec, gc.Options(min_line=50, max_line=300, json_share=0.3,
                                                       partial_share=0.0, stderr_share=0.1))
    clock = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(gc.EPOCH_START))
    out = []
    for _ in range(n):
        err = rng.random() < 0.1
        msg = gen.message(err, clock, int(rng.random() * 1000), 50 + int(rng.random() * 251))
        out.append((b" stderr F " if err else b" stdout F ") + msg.encode() + b"\n")
    return out


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def lag_writer(paths: list[str], pools: list[list[bytes]], rate: float, seconds: float,
               step: float, go, stop, conn) -> None:
    """Child process: append lines round-robin to the pods' logs at rate bytes/s for seconds,
    each stamped with the wall-clock time it is written (1 ns apart within a step), then send
    the counts on conn; stop ends it early. Runs apart from the poller so that neither waits
    for the other's GIL."""
    fds = [os.open(p, os.O_WRONLY | os.O_APPEND) for p in paths]
    n = len(fds)
    cursor = [0] * n
    pod = 0
    total = int(rate * seconds)
    burst = max(1, int(rate * MAX_BURST_S))
    written = lines = k = 0
    behind_max = 0.0
    memo: list = [None, b""]
    conn.send("ready")
    go.wait()
    start_wall = time.time_ns()
    start, cpu0 = time.monotonic(), time.process_time()
    while True:
        elapsed = time.monotonic() - start
        if elapsed >= seconds or stop.is_set():
            break
        behind_max = max(behind_max, (min(rate * elapsed, total) - written) / rate)
        due = bytes_due(elapsed, rate, total, written, burst)
        if due > 0:
            now = time.time_ns()
            bufs: list[list[bytes]] = [[] for _ in range(n)]
            got = j = 0
            while got < due:
                pool = pools[pod]
                line = cri_timestamp_bytes(now + j, memo) + pool[cursor[pod] % len(pool)]
                j += 1
                cursor[pod] += 1
                bufs[pod].append(line)
                got += len(line)
                pod = pod + 1 if pod + 1 < n else 0
            for fd, buf in zip(fds, bufs):
                if buf:
                    write_all(fd, b"".join(buf))
            written += got
            lines += j
        k += 1
        pause = start + k * step - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        else:
            k = int((time.monotonic() - start) / step)  # late: skip the missed steps
    duration = time.monotonic() - start
    for fd in fds:
        os.close(fd)
    conn.send({"lines": lines, "bytes": written, "seconds": duration, "start_wall_ns": start_wall,
               "behind_max_s": behind_max, "cpu_s": time.process_time() - cpu0})


class TreeScanner:
    """Finds new log objects under root. The agent writes a temporary `.name` and renames it,
    so a visible `*.ndjson.gz` is complete.

    Only folders whose mtime changed are listed again (an entry added or renamed in changes
    it); the others cost one stat. A folder changed in the last second is listed anyway, since
    two changes within one tick of the kernel's coarse clock leave the same mtime.
    """

    RACY_NS = 10**9

    def __init__(self, root: str):
        self.root = root
        self.known: set[str] = set()
        self.folders: dict[str, tuple[int, list[str]]] = {}  # path -> (mtime_ns, subfolders)

    def scan(self) -> list[str]:
        new = []
        now = time.time_ns()
        stack = [self.root]
        while stack:
            folder = stack.pop()
            try:
                mtime = os.stat(folder).st_mtime_ns
            except FileNotFoundError:
                continue
            cached = self.folders.get(folder)
            if cached and cached[0] == mtime and now - mtime > self.RACY_NS:
                stack.extend(cached[1])
                continue
            subfolders = []
            try:
                with os.scandir(folder) as entries:
                    for e in entries:
                        if e.is_dir(follow_symlinks=False):
                            subfolders.append(e.path)
                        elif (e.name.endswith(".ndjson.gz") and not e.name.startswith(".")
                              and e.path not in self.known):
                            self.known.add(e.path)
                            new.append(e.path)
            except FileNotFoundError:
                continue
            self.folders[folder] = (mtime, subfolders)
            stack.extend(subfolders)
        return new


class StorePoller(threading.Thread):
    """Scans the store every interval and queues (path, wall-clock ns when first seen)."""

    def __init__(self, root: str, interval: float):
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.found: queue.Queue = queue.Queue()
        self.scanner = TreeScanner(root)
        self.stopping = threading.Event()
        self.scans = 0
        self.scan_max_s = 0.0

    def run(self) -> None:
        while not self.stopping.is_set():
            t0 = time.monotonic()
            new = self.scanner.scan()
            seen = time.time_ns()  # at the end of the scan: a lag is never under-counted
            for path in new:
                self.found.put((path, seen))
            took = time.monotonic() - t0
            self.scans += 1
            self.scan_max_s = max(self.scan_max_s, took)
            self.stopping.wait(max(0.0, self.interval - took))


class LandedLines:
    """Reads the objects the poller found: records landed and their lags."""

    def __init__(self, poller: StorePoller):
        self.poller = poller
        self.lags = array.array("d")
        self.records = self.objects = 0
        self.retry: list[tuple[str, int]] = []
        self.cache: dict = {}

    def absorb(self) -> None:
        items, self.retry = self.retry, []
        while True:
            try:
                items.append(self.poller.found.get_nowait())
            except queue.Empty:
                break
        for path, seen in items:
            try:
                with open(path, "rb") as f:
                    data = gzip.decompress(f.read())
            except (OSError, EOFError, gzip.BadGzipFile):
                self.retry.append((path, seen))  # not written in one piece: read it again later
                continue
            self.lags.extend(object_lags(data, seen, self.cache))
            self.records += data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
            self.objects += 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(proc: subprocess.Popen, url: str | None, out_path: str, timeout: float = 30) -> None:
    """Until the agent answers /readyz (or for one second when it has no address we know)."""
    if url is None:
        time.sleep(1.0)
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"agent exited {proc.returncode} at start\n--- output tail ---\n"
                             f"{tail(out_path)}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    raise BenchError(f"agent not ready after {timeout:.0f} s ({url})\n--- output tail ---\n"
                     f"{tail(out_path)}")


def alternate_runs(args: argparse.Namespace, run_one, after_each) -> dict[str, list[dict]]:
    """`run_one(binary, label)` --runs times for the candidate (and the baseline, if any), the
    two alternating: slow drifts of the machine (thermal, neighbours, page cache) then weigh on
    both instead of biasing whichever ran second. `after_each(n, result)` reports each run."""
    pairs = [("baseline", args.baseline), ("candidate", args.binary)] if args.baseline \
        else [("candidate", args.binary)]
    results: dict[str, list[dict]] = {label: [] for label, _ in pairs}
    n = 0
    for _ in range(args.runs):
        for label, binary in pairs:
            n += 1
            r = run_one(binary, label)
            results[label].append(r)
            after_each(n, r)
    return results


def stop_agent(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def print_lag(r: dict) -> None:
    lag = r["lag"]
    print(f"written: {r['lines_written']:,} lines, {r['bytes_written']:,} bytes in"
          f" {r['writing_s']:.2f} s")
    share = r["input_mb_s"] / r["target_mb_s"] * 100
    print(f"input rate: {r['input_mb_s']:.2f} MB/s ({share:.1f} % of the target; writer at most"
          f" {r['writer_behind_max_s'] * 1000:.0f} ms behind)")
    print(f"landed: {r['lines_landed']:,} lines in {r['objects']} objects,"
          f" the last {r['drain_s']:.1f} s after the writer stopped")
    for k in ("p50", "p90", "p99", "max"):
        print(f"lag {k}: {lag[k]:.3f} s")
    print(f"agent cpu: {r['cpu_percent']:.1f} % of a core over the writing period"
          f" ({r['cpu_s']:.2f} CPU-s), {r['mb_per_cpu_s']:.1f} MB per CPU-second")
    print(f"agent cpu to the last landing: {r['cpu_total_s']:.2f} CPU-s,"
          f" {r['mb_per_cpu_total_s']:.1f} MB per CPU-second")
    print(f"agent cpu per 1,000 lines written: {r['ms_per_1000_lines']:.2f} ms"
          f" ({r['pods']} live streams)")
    # Work for the last lines (closing batches that waited for their age) falls after the
    # writing period: this counts it too.
    print(f"agent cpu per 1,000 lines to the last landing: {r['ms_per_1000_lines_total']:.2f} ms")
    print(f"agent memory: peak RSS {r['peak_rss_mib']:.1f} MiB, RSS {r['rss_mib']:.1f} MiB at the"
          f" end, threads {r['threads']}")
    print(f"bench.py's own cpu over the writing period: writer {r['writer_cpu_percent']:.1f} %,"
          f" store reader {r['reader_cpu_percent']:.1f} % of a core")
    print(f"target p99 <= max_age + 1 s = {r['target_s']:g} s: "
          + ("met" if r["target_met"] else "NOT met"))


def bench_lag(args: argparse.Namespace) -> dict:
    if args.store != "file":
        raise BenchError("the lag benchmark watches a file store (--store file)")
    hz = os.sysconf("SC_CLK_TCK")
    extra = shlex.split(args.extra_args)
    max_age, max_age_from = config_max_age(extra)
    rate = args.lag_rate * MB
    corpus = tempfile.mkdtemp(prefix="lag-pods-", dir=args.work_dir)
    state = tempfile.mkdtemp(prefix="lag-state-", dir=args.work_dir)
    store = Store("file", args.work_dir, "lag", None)
    out_path = os.path.join(args.work_dir, "agent-lag.out")
    pods = lag_pods(corpus, args.lag_pods)
    pools = [message_pool(i + 1, profile, pod) for i, (_path, pod, profile) in enumerate(pods)]
    print(f"binary: {args.binary}")
    print(f"lag: {args.lag_pods} pods, target {args.lag_rate:.2f} MB/s for {args.lag_seconds:g} s,"
          f" batch max_age {max_age:g} s ({max_age_from}), store polled every"
          f" {args.lag_poll * 1000:.0f} ms", flush=True)
    ready_url = None
    if not any(a == "--http-listen" or a.startswith("--http-listen=") for a in extra):
        port = free_port()
        extra += ["--http-listen", f"127.0.0.1:{port}"]
        ready_url = f"http://127.0.0.1:{port}/readyz"
    cmd = agent_cmd(args.binary, corpus, state, store.url, extra, drain=False)
    # fork the writer first, while this process has no other thread
    ctx = multiprocessing.get_context("fork")
    conn, child_conn = ctx.Pipe()
    go, stop = ctx.Event(), ctx.Event()
    writer = ctx.Process(target=lag_writer, daemon=True,
                         args=([p for p, _, _ in pods], pools, rate, args.lag_seconds,
                               args.lag_step, go, stop, child_conn))
    writer.start()
    proc = None
    poller = StorePoller(os.path.join(store.dir, "logs"), args.lag_poll)
    try:
        if not conn.poll(60) or conn.recv() != "ready":
            raise BenchError("the writer process did not start")
        with open(out_path, "wb") as out:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, env=os.environ)
        wait_ready(proc, ready_url, out_path)
        poller.start()
        landed = LandedLines(poller)
        go.set()
        t0, c0, own0 = time.monotonic(), proc_cpu_ticks(proc.pid), time.process_time()
        wrote = None
        while wrote is None:
            if proc.poll() is not None:
                raise BenchError(f"agent exited {proc.returncode} during the writing period\n"
                                 f"--- output tail ---\n{tail(out_path)}")
            landed.absorb()
            if conn.poll(0.05):
                wrote = conn.recv()
            elif not writer.is_alive():
                raise BenchError(f"the writer process died (exit {writer.exitcode})")
        t1, c1, own1 = time.monotonic(), proc_cpu_ticks(proc.pid), time.process_time()
        deadline = t1 + args.lag_timeout
        while landed.records < wrote["lines"] and time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BenchError(f"agent exited {proc.returncode} before the last lines landed\n"
                                 f"--- output tail ---\n{tail(out_path)}")
            time.sleep(0.05)
            landed.absorb()
        t2, c2 = time.monotonic(), proc_cpu_ticks(proc.pid)
        st = proc_status(proc.pid)
        lag = lag_figures(landed.lags)
        cpu, cpu_total = (c1 - c0) / hz, (c2 - c0) / hz
        mb = wrote["bytes"] / MB
        r = {"binary": args.binary, "pods": args.lag_pods, "target_mb_s": args.lag_rate,
             "seconds": args.lag_seconds, "max_age_s": max_age, "max_age_from": max_age_from,
             "poll_s": args.lag_poll, "lines_written": wrote["lines"],
             "bytes_written": wrote["bytes"], "writing_s": wrote["seconds"],
             "input_mb_s": mb / wrote["seconds"], "writer_behind_max_s": wrote["behind_max_s"],
             "lines_landed": landed.records, "objects": landed.objects, "drain_s": t2 - t1,
             "lag": lag, "cpu_s": cpu, "cpu_percent": cpu / (t1 - t0) * 100,
             "mb_per_cpu_s": mb / cpu if cpu > 0 else float("inf"), "cpu_total_s": cpu_total,
             "ms_per_1000_lines": cpu * 1000 / wrote["lines"] * 1000 if wrote["lines"] else 0.0,
             "ms_per_1000_lines_total":
                 cpu_total * 1000 / wrote["lines"] * 1000 if wrote["lines"] else 0.0,
             "mb_per_cpu_total_s": mb / cpu_total if cpu_total > 0 else float("inf"),
             "peak_rss_mib": st.get("VmHWM", 0) / 1024, "rss_mib": st.get("VmRSS", 0) / 1024,
             "threads": st.get("Threads"), "scans": poller.scans,
             "scan_max_s": poller.scan_max_s, "target_s": max_age + 1,
             "writer_cpu_percent": wrote["cpu_s"] / wrote["seconds"] * 100,
             "reader_cpu_percent": (own1 - own0) / (t1 - t0) * 100}
        r["target_met"] = lag["p99"] <= r["target_s"]
        print_lag(r)
        if r["input_mb_s"] < 0.95 * args.lag_rate:
            print(f"warning: the writer fell behind: {r['input_mb_s']:.2f} MB/s of"
                  f" {args.lag_rate:.2f} wanted; the machine is too busy for this rate",
                  file=sys.stderr)
        if landed.records < wrote["lines"]:
            print(f"warning: only {landed.records:,} of {wrote['lines']:,} lines landed within"
                  f" {args.lag_timeout:g} s after the writer stopped; the lags cover those",
                  file=sys.stderr)
        elif landed.records > wrote["lines"]:
            print(f"warning: {landed.records - wrote['lines']:,} more lines landed than were"
                  f" written (duplicates)", file=sys.stderr)
        return r
    finally:
        stop.set()
        go.set()  # a writer still waiting for the start goes, and ends at once
        poller.stopping.set()
        if proc is not None:
            stop_agent(proc)
        writer.join(timeout=10)
        if writer.is_alive():
            writer.kill()
            writer.join()
        if not args.keep:
            remove_run(corpus, state, store, out_path)
        else:
            print(f"kept: pods {corpus}, state {state}, store {store.url}, output {out_path}")


# ---------------------------------------------------------------------------------------------
# Cost benchmark: what one steady pod costs the store
# ---------------------------------------------------------------------------------------------

PUT_CLASSES = ("logs", "manifests", "footprints", "events", "jobs", "other")


def put_counts(url: str) -> dict:
    """{class: (requests, bytes)} from the agent's /metrics."""
    with urllib.request.urlopen(url, timeout=10) as resp:
        return parse_put_counts(resp.read().decode())


def parse_put_counts(body: str) -> dict:
    """{class: (requests, bytes)} from a /metrics body."""
    out = {c: [0, 0] for c in PUT_CLASSES}
    for line in body.splitlines():
        m = re.match(r'jobarchive_store_put(s|_bytes)_total\{class="(\w+)"\} (\S+)', line)
        if m and m.group(2) in out:
            out[m.group(2)][0 if m.group(1) == "s" else 1] = int(float(m.group(3)))
    return {c: tuple(v) for c, v in out.items()}


def cost_line(i: int, seed: int) -> bytes:
    """A log line that compresses like real ones (about 4:1): words, numbers and an id."""
    rnd = random.Random(seed * 1_000_003 + i)
    words = " ".join(rnd.choice(("step", "batch", "rows", "read", "wrote", "ok", "retry",
                                 "shard", "loss", "epoch")) for _ in range(6))
    return (f"{words} n={rnd.randint(0, 10**6)} id={rnd.getrandbits(48):012x} "
            f"took={rnd.random() * 100:.3f}ms").encode()


def bench_cost(args: argparse.Namespace) -> dict:
    """One pod logging at --cost-rate bytes/s for --cost-seconds, then quiet, then gone: the PUTs
    and bytes per class the agent sent (its /metrics), how long after the last line every line
    was fetchable, and what the manifests and footprints cost next to the logs."""
    extra = shlex.split(args.extra_args)
    corpus = tempfile.mkdtemp(prefix="cost-pods-", dir=args.work_dir)
    state = tempfile.mkdtemp(prefix="cost-state-", dir=args.work_dir)
    store = Store(args.store, args.work_dir, "cost", args.s3_bucket)
    out_path = os.path.join(args.work_dir, "agent-cost.out")
    port = free_port()
    extra += ["--http-listen", f"127.0.0.1:{port}"]
    job = "steady-29929854"
    pod_dir = os.path.join(corpus, f"default_{job}-x7k2p_{uuid.uuid4()}", "main")
    os.makedirs(pod_dir)
    log = os.path.join(pod_dir, "0.log")
    env = dict(os.environ, **store.env)
    cmd = agent_cmd(args.binary, corpus, state, store.url, extra, drain=False)
    fetch_cmd = [args.binary, "fetch", job, "--store", store.url]
    print(f"binary: {args.binary}")
    print(f"cost: one pod writing {args.cost_rate:,.0f} B/s for {args.cost_seconds:g} s to a"
          f" {args.store} store; agent args: {' '.join(extra)}", flush=True)
    proc = None
    try:
        with open(out_path, "wb") as out:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, env=env)
        wait_ready(proc, f"http://127.0.0.1:{port}/readyz", out_path)
        lines = written = 0
        t0 = time.monotonic()
        with open(log, "ab", buffering=0) as f:
            while (elapsed := time.monotonic() - t0) < args.cost_seconds:
                due = int(args.cost_rate * elapsed) - written
                chunk = bytearray()
                while due > 0:
                    ts = datetime.datetime.now(datetime.timezone.utc).strftime(
                        "%Y-%m-%dT%H:%M:%S.%fZ").encode()
                    line = ts + b" stdout F " + cost_line(lines, 1) + b"\n"
                    chunk += line
                    due -= len(line)
                    lines += 1
                if chunk:
                    f.write(chunk)
                    written += len(chunk)
                time.sleep(0.05)
        quiet = time.monotonic()
        fetchable = None
        while time.monotonic() - quiet < args.lag_timeout:
            r = subprocess.run(fetch_cmd, capture_output=True, env=env)
            if r.returncode == 0 and r.stdout.count(b"\n") >= lines:
                fetchable = time.monotonic() - quiet
                break
            time.sleep(0.2)
        before_end = put_counts(f"http://127.0.0.1:{port}/metrics")
        shutil.rmtree(os.path.dirname(pod_dir))
        deadline = time.monotonic() + args.lag_timeout
        heads = []
        while time.monotonic() < deadline:
            heads = [json.loads(store.read(k)) for k, _ in store.objects("manifests")]
            if heads and all(c["complete"] for h in heads for c in h["containers"]):
                break
            time.sleep(0.2)
        time.sleep(args.cost_settle)
        puts = put_counts(f"http://127.0.0.1:{port}/metrics")
        st = proc_status(proc.pid)
        stop_agent(proc)
        proc = None
        log_bytes = puts["logs"][1]
        overhead = sum(puts[c][1] for c in PUT_CLASSES if c != "logs")
        r = {"binary": args.binary, "seconds": args.cost_seconds, "rate_b_s": args.cost_rate,
             "lines": lines, "bytes_written": written, "fetchable_after_quiet_s": fetchable,
             "puts": {c: puts[c][0] for c in PUT_CLASSES},
             "put_bytes": {c: puts[c][1] for c in PUT_CLASSES},
             "puts_before_pod_end": {c: before_end[c][0] for c in PUT_CLASSES},
             "puts_total": sum(puts[c][0] for c in PUT_CLASSES),
             "overhead_ratio": overhead / log_bytes if log_bytes else float("inf"),
             "log_objects": len(store.objects("logs")),
             "peak_rss_mib": st.get("VmHWM", 0) / 1024}
        print(f"  lines written       {lines:,} ({written:,} bytes)")
        print(f"  fetchable after     {fetchable:.1f} s of quiet" if fetchable is not None
              else "  fetchable after     never (timed out)")
        for c in PUT_CLASSES:
            print(f"  PUT {c:<11}     {puts[c][0]:>6}  {puts[c][1]:>12,} bytes"
                  f"  (before the pod ended: {before_end[c][0]})")
        print(f"  PUTs in all         {r['puts_total']}")
        print(f"  everything else / logs, bytes: {r['overhead_ratio'] * 100:.1f} %")
        print(f"  peak RSS            {r['peak_rss_mib']:.1f} MiB")
        return r
    finally:
        if proc is not None:
            stop_agent(proc)
        if not args.keep:
            remove_run(corpus, state, store, out_path)
        else:
            print(f"kept: pods {corpus}, state {state}, store {store.url}, output {out_path}")


# ---------------------------------------------------------------------------------------------
# Fetch benchmark
# ---------------------------------------------------------------------------------------------

def archive_folder(cache_dir: str, gib: float) -> str:
    """Cache folder of the generated archive: keyed by its size and by the generators' source,
    so a change to gen_archive.py or gen_corpus.py makes a new one."""
    here = os.path.dirname(os.path.abspath(__file__))
    h = hashlib.sha256(f"{float(gib)!r}\n".encode())
    for name in ("gen_archive.py", "gen_corpus.py"):
        with open(os.path.join(here, name), "rb") as f:
            h.update(f.read())
    return os.path.join(cache_dir, f"archive-{gib:g}gib-{h.hexdigest()[:12]}")


def cached_archive(cache_dir: str, gib: float) -> dict:
    """The summary of a generated one-job archive of about gib GiB of text (made if missing)."""
    folder = archive_folder(cache_dir, gib)
    summary_path = os.path.join(folder, "summary.json")
    if os.path.exists(summary_path):
        with open(summary_path) as f:
            summary = json.load(f)
        summary.update(cached=True, store=os.path.join(folder, "store"))
        return summary
    os.makedirs(cache_dir, exist_ok=True)
    tmp = f"{folder}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"archive: generating about {gib:g} GiB of text into {folder} (once; cached)",
          flush=True)
    gen = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen_archive.py")
    done = subprocess.run([sys.executable, gen, "--store", os.path.join(tmp, "store"),
                           "--text-size", str(int(gib * (1 << 30))), "--summary-json"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if done.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise BenchError(f"gen_archive.py failed: {done.stderr.decode()[-2000:]}")
    summary = json.loads(done.stdout)
    with open(os.path.join(tmp, "summary.json"), "w") as f:
        json.dump(summary, f)
    os.rename(tmp, folder)  # only a finished archive gets the cache's name
    summary.update(cached=False, store=os.path.join(folder, "store"))
    return summary


def read_pipe(fd: int) -> tuple[int, int]:
    """(bytes, lines) read from fd until EOF; a last line without its newline counts."""
    nbytes = lines = 0
    last = b"\n"
    while True:
        block = os.read(fd, 1 << 20)
        if not block:
            break
        nbytes += len(block)
        lines += block.count(b"\n")
        last = block[-1:]
    return nbytes, lines + (last != b"\n")


def warm_tree(root: str) -> None:
    for folder, _dirs, files in os.walk(root):
        for name in files:
            with open(os.path.join(folder, name), "rb") as f:
                while f.read(READ_BLOCK):
                    pass


def fetch_run(binary: str, label: str, target: dict, args: argparse.Namespace) -> dict:
    cmd = [binary, "fetch", target["job"], "--store", target["url"], "-n", target["namespace"]] \
        + shlex.split(args.extra_args)
    err_path = os.path.join(args.work_dir, f"fetch-{label}.err")
    with open(err_path, "wb") as err:
        started = time.monotonic()
        # stdout to a pipe this process reads: what `fetch | grep` costs, no disk in the way
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=err)
        peak = PeakRss(proc.pid)
        killer = threading.Timer(args.timeout, proc.kill)
        killer.start()
        try:
            nbytes, lines = read_pipe(proc.stdout.fileno())
            proc.stdout.close()
            _pid, status, ru = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
            peak_mib = peak.stop()
        wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    try:
        if proc.returncode != 0:
            why = "timed out" if wall >= args.timeout else f"exited {proc.returncode}"
            raise BenchError(f"{label}: fetch {why} after {wall:.1f} s: {shlex.join(cmd)}\n"
                             f"--- stderr tail ---\n{tail(err_path)}")
    finally:
        if not args.keep:
            os.remove(err_path)
    cpu = ru.ru_utime + ru.ru_stime
    return {"label": label, "binary": binary, "user_s": ru.ru_utime, "sys_s": ru.ru_stime,
            "cpu_s": cpu, "wall_s": wall, "peak_rss_mib": peak_mib,
            "text_bytes": nbytes, "records": lines, "mb_per_wall_s": nbytes / MB / wall,
            "mb_per_cpu_s": nbytes / MB / cpu if cpu > 0 else float("inf"),
            "records_per_wall_s": lines / wall}


def print_fetch_run(i: int, r: dict, tagged: bool) -> None:
    tag = f" [{r['label']}]" if tagged else ""
    print(f"run {i}{tag}: cpu {r['cpu_s']:.2f} s (user {r['user_s']:.2f} + sys {r['sys_s']:.2f}),"
          f" wall {r['wall_s']:.2f} s, peak RSS {r['peak_rss_mib']:.1f} MiB,"
          f" output {r['text_bytes']} bytes, {r['records']} records", flush=True)


def summarize_fetch(runs: list[dict]) -> dict:
    return medians(runs, ["cpu_s", "user_s", "sys_s", "wall_s", "peak_rss_mib", "text_bytes",
                          "records", "mb_per_wall_s", "mb_per_cpu_s", "records_per_wall_s"])


def print_fetch_summary(title: str, s: dict, n: int) -> None:
    print_cpu_header(title, s, n)
    print(f"  text out: {s['text_bytes']:.0f} bytes, {s['records']:.0f} records")
    print(f"  text output (wall): {s['mb_per_wall_s']:.1f} MB/s")
    print(f"  text output per CPU-second: {s['mb_per_cpu_s']:.1f} MB")
    print(f"  records per second (wall): {s['records_per_wall_s']:,.0f}")
    print(f"  peak RSS: {s['peak_rss_mib']:.1f} MiB")


def bench_fetch(args: argparse.Namespace) -> dict:
    expected = None
    print(f"binary: {args.binary}")
    if args.baseline:
        print(f"baseline: {args.baseline}", flush=True)
    if args.fetch_job:
        target = {"job": args.fetch_job, "namespace": args.fetch_namespace,
                  "url": args.fetch_store}
        local = args.fetch_store[len("file://"):] if args.fetch_store.startswith("file://") \
            else None if "://" in args.fetch_store else args.fetch_store
    else:
        summary = cached_archive(args.fetch_cache, args.fetch_gib)
        local = summary["store"]
        target = {"job": summary["job"], "namespace": summary["namespace"],
                  "url": "file://" + os.path.abspath(local)}
        expected = summary
    print(f"job: {target['job']} (namespace {target['namespace']}) in {target['url']}")
    if expected:
        print(f"archive: {expected['text_bytes']} bytes of text, {expected['records']} records in"
              f" {expected['objects']} objects ({expected['stored_bytes']} bytes stored, "
              + ("cached" if expected["cached"] else f"made in {expected['seconds']:.0f} s")
              + ")", flush=True)
    if local and not args.no_warm:
        warm_tree(local)
    def check(n: int, r: dict) -> None:
        print_fetch_run(n, r, bool(args.baseline))
        if expected and (r["text_bytes"], r["records"]) != (expected["text_bytes"],
                                                            expected["records"]):
            print(f"warning: {r['label']} printed {r['text_bytes']} bytes in {r['records']} lines;"
                  f" the archive holds {expected['text_bytes']} bytes in"
                  f" {expected['records']} records", file=sys.stderr)

    results = alternate_runs(
        args, lambda binary, label: fetch_run(binary, label, target, args), check)
    report = {"target": target, "archive": expected, "runs": results}
    cand = report["candidate"] = summarize_fetch(results["candidate"])
    if not args.baseline:
        print_fetch_summary("candidate", cand, args.runs)
        return report
    base = report["baseline"] = summarize_fetch(results["baseline"])
    print_fetch_summary("baseline", base, args.runs)
    print_fetch_summary("candidate", cand, args.runs)
    ratio = report["ratio"] = {"mb_per_wall_s": cand["mb_per_wall_s"] / base["mb_per_wall_s"],
                               "cpu": cand["cpu_s"] / base["cpu_s"],
                               "peak_rss": cand["peak_rss_mib"] / base["peak_rss_mib"]}
    print(f"ratio candidate/baseline: text output (wall) {ratio['mb_per_wall_s']:.3f}x"
          f" (>1 is faster), cpu {ratio['cpu']:.3f}x (<1 is cheaper),"
          f" peak RSS {ratio['peak_rss']:.3f}x (<1 is smaller)")
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", required=True, help="the jobarchive binary to measure")
    p.add_argument("--baseline", help="another jobarchive binary; runs alternate with --binary")
    p.add_argument("--corpus", help="kubelet pods folder to drain (made by gen_corpus.py)")
    p.add_argument("--store", choices=["file", "s3"], default="file")
    p.add_argument("--s3-bucket", help="use this existing bucket (a unique prefix per run) "
                                       "instead of creating a bucket per run")
    p.add_argument("--runs", type=int, default=1, help="runs per binary (default 1)")
    p.add_argument("--extra-args", default="",
                   help="more agent arguments (fetch arguments in fetch mode), shell-quoted")
    p.add_argument("--timeout", type=float, default=3600, help="seconds before a run is killed")
    p.add_argument("--work-dir", default=None,
                   help="where state and file stores go (default: a new folder in $TMPDIR)")
    p.add_argument("--keep", action="store_true", help="keep state, store and agent output")
    p.add_argument("--no-warm", action="store_true",
                   help="do not read the corpus once before the runs (cold page cache)")
    p.add_argument("--count-output", action="store_true",
                   help="after each run, count the records in the logs/ objects and warn when "
                        "they differ from the corpus's")
    p.add_argument("--json-out", help="also write every figure to this JSON file")
    p.add_argument("--idle-files", type=int, default=0,
                   help="idle mode: an agent without --drain watching this many quiet files")
    p.add_argument("--idle-seconds", type=float, default=30, help="idle mode: measured interval")
    p.add_argument("--idle-lines", type=int, default=5, help="idle mode: lines per file")
    p.add_argument("--idle-timeout", type=float, default=300,
                   help="idle mode: longest wait for the agent to ship the corpus")
    p.add_argument("--idle-settle", type=float, default=75,
                   help="idle mode: pause between catching up and measuring (default 75 s: the "
                        "agent rewrites each pod's footprint once, a write interval after start, "
                        "with the log times its first write lacked; that is catching up too)")
    p.add_argument("--lag-rate", type=float, default=0,
                   help="lag mode: a live agent while lines are written at this many MB/s")
    p.add_argument("--lag-seconds", type=float, default=60, help="lag mode: writing period")
    p.add_argument("--lag-pods", type=int, default=20, help="lag mode: pods written to")
    p.add_argument("--lag-timeout", type=float, default=60,
                   help="lag mode: longest wait, after the writing, for the last lines to land")
    p.add_argument("--lag-poll", type=float, default=0.05,
                   help="lag mode: seconds between scans of the store (default 0.05)")
    p.add_argument("--lag-step", type=float, default=0.01,
                   help="lag mode: the writer's pacing step in seconds (default 0.01)")
    p.add_argument("--fetch-gib", type=float, default=0,
                   help="fetch mode: `jobarchive fetch` of a generated job with this many GiB "
                        "of text (made once, cached)")
    p.add_argument("--fetch-job", help="fetch mode: fetch this job of --fetch-store instead")
    p.add_argument("--fetch-store", help="fetch mode: the store URL of --fetch-job")
    p.add_argument("--fetch-namespace", default="default", help="fetch mode: -n of --fetch-job")
    p.add_argument("--cost-seconds", type=float, default=0,
                   help="cost mode: one pod logs steadily this long; reports PUTs and bytes per "
                        "class (from the agent's /metrics) and when its lines were fetchable")
    p.add_argument("--cost-rate", type=float, default=2000,
                   help="cost mode: bytes per second the pod writes (default 2000)")
    p.add_argument("--cost-settle", type=float, default=1,
                   help="cost mode: seconds to wait after the attempt is complete, so the final "
                        "footprint is counted")
    p.add_argument("--fetch-cache", default=CACHE_DIR,
                   help=f"fetch mode: where generated archives are kept (default {CACHE_DIR})")
    args = p.parse_args(argv)
    modes = [m for m, on in (("--corpus", args.corpus), ("--idle-files", args.idle_files),
                             ("--lag-rate", args.lag_rate),
                             ("--cost-seconds", args.cost_seconds),
                             ("--fetch-gib/--fetch-job", args.fetch_gib or args.fetch_job))
             if on]
    if not modes:
        p.error("--corpus is required (or --idle-files, --lag-rate, --cost-seconds, --fetch-gib "
                "or --fetch-job for the other benchmarks)")
    if len(modes) > 1:
        p.error(f"one benchmark at a time: {' and '.join(modes)}")
    if args.runs < 1:
        p.error("--runs must be at least 1")
    if args.fetch_gib and args.fetch_job:
        p.error("--fetch-gib generates its own job: not with --fetch-job")
    if bool(args.fetch_job) != bool(args.fetch_store):
        p.error("--fetch-job and --fetch-store go together")
    if args.lag_rate < 0 or args.fetch_gib < 0:
        p.error("--lag-rate and --fetch-gib must be positive")
    if args.baseline and args.lag_rate:
        p.error("the lag benchmark measures one binary: no --baseline")
    if args.lag_rate and (args.lag_seconds <= 0 or args.lag_pods < 1 or args.lag_step <= 0
                          or args.lag_poll <= 0):
        p.error("--lag-seconds, --lag-step, --lag-poll must be positive and --lag-pods >= 1")
    for b in filter(None, [args.binary, args.baseline]):
        if not (os.path.isfile(b) and os.access(b, os.X_OK)):
            p.error(f"not an executable file: {b}")
    args.binary = os.path.abspath(args.binary)
    if args.baseline:
        args.baseline = os.path.abspath(args.baseline)
    own_work = args.work_dir is None
    args.work_dir = os.path.abspath(args.work_dir or tempfile.mkdtemp(prefix="jobarchive-bench-"))
    os.makedirs(args.work_dir, exist_ok=True)
    try:
        if args.lag_rate:
            report = bench_lag(args)
        elif args.cost_seconds:
            report = bench_cost(args)
        elif args.fetch_gib or args.fetch_job:
            report = bench_fetch(args)
        else:
            report = bench_idle(args) if args.idle_files else bench_drain(args)
        if args.json_out:
            with open(args.json_out, "w") as f:
                json.dump(report, f, indent=2, default=str)
        return 0
    except BenchError as e:
        print(f"benchmark failed: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        if own_work and not args.keep:
            shutil.rmtree(args.work_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
