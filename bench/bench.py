#!/usr/bin/env python3
"""Drain and idle benchmarks for the jobarchive agent, measured from outside the process.

Runs `jobarchive agent --drain` over a log corpus (see gen_corpus.py) into a fresh file or S3
store per run, and reports CPU (user+sys from the child's rusage), wall time, peak RSS, throughput
and compression ratio; with --baseline, alternates runs of two binaries and prints their ratio.
With --idle-files, measures the CPU an agent spends watching many quiet files instead.
It only relies on the external contract (CLI flags, store URLs, the logs/ key tree), never on the
agent's internals. Python 3.11 standard library only.

    python3 bench/bench.py --binary target/release/jobarchive --corpus /tmp/corpus-1g --runs 3
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import hashlib
import hmac
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
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
                             "shared/testing/s3-moto.sh for a local moto server)")
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
            killer = threading.Timer(args.timeout, proc.kill)
            killer.start()
            try:
                # wait4, not Popen.wait: its rusage is this child's alone, which
                # getrusage(RUSAGE_CHILDREN) would mix with every earlier run.
                _pid, status, ru = os.wait4(proc.pid, 0)
            finally:
                killer.cancel()
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
            "cpu_s": cpu, "wall_s": wall, "peak_rss_mib": ru.ru_maxrss / 1024,
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


def summarize(runs: list[dict]) -> dict:
    keys = ["cpu_s", "user_s", "sys_s", "wall_s", "peak_rss_mib", "mb_per_cpu_s", "mb_per_wall_s",
            "records_per_wall_s", "records_per_cpu_s", "compression", "output_bytes",
            "output_objects", "other_bytes", "other_objects"]
    return {k: statistics.median(r[k] for r in runs) for k in keys}


def print_summary(title: str, s: dict, n: int) -> None:
    print(f"{title}" + (f" (median of {n} runs)" if n > 1 else "") + ":")
    print(f"  cpu: {s['cpu_s']:.2f} s (user {s['user_s']:.2f} + sys {s['sys_s']:.2f}),"
          f" wall {s['wall_s']:.2f} s")
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
    pairs = [("baseline", args.baseline), ("candidate", args.binary)] if args.baseline \
        else [("candidate", args.binary)]
    results: dict[str, list[dict]] = {label: [] for label, _ in pairs}
    n = 0
    # Alternating the two binaries spreads slow drifts of the machine (thermal, neighbours,
    # page cache) over both instead of biasing whichever ran second.
    for _ in range(args.runs):
        for label, binary in pairs:
            n += 1
            r = drain_run(binary, label, stats["corpus"], args, stats)
            results[label].append(r)
            print_run(n, r, bool(args.baseline))
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
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if not args.keep:
            for d in (corpus, state):
                shutil.rmtree(d, ignore_errors=True)
            store.remove()
            try:
                os.remove(out_path)
            except OSError:
                pass


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
    p.add_argument("--extra-args", default="", help="more agent arguments, shell-quoted")
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
    p.add_argument("--idle-settle", type=float, default=5,
                   help="idle mode: pause between catching up and measuring")
    args = p.parse_args(argv)
    if not args.idle_files and not args.corpus:
        p.error("--corpus is required (or --idle-files for the idle benchmark)")
    if args.runs < 1:
        p.error("--runs must be at least 1")
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
