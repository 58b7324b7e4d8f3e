"""Write a large archived job straight into a local store, in the layout of CONTRACT §3.

For measuring the reading side (`fetch`, `verify`) on jobs with tens of thousands of objects
without shipping them through the agent first: one attempt of job `big` in namespace `default`,
container `main`, OBJECTS log objects of RECORDS records each, and a manifest that lists them
all (so `jobarchive verify big` passes). Standard library only.

    python3 bench/gen_archive.py --store /tmp/big-store --objects 20000 --records 20
    /usr/bin/time -v jobarchive fetch big --store /tmp/big-store > /dev/null

With --text-size, the records carry realistic messages instead (gen_corpus.py's application
styles, 50-300 characters, 30 % JSON, 10 % stderr), so that compression and JSON escaping cost
what they cost on real logs; each object then spans --object-bytes of the (imaginary) CRI log,
about as much as one of the agent's 4 MiB batches, and the job holds about SIZE of message text:

    python3 bench/gen_archive.py --store /tmp/big-1g --text-size 1GiB
"""

import argparse
import functools
import gzip
import hashlib
import json
import os
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

JOB, POD, POD_UID, CONTAINER = "big", "big-x7k2p", "uid-big-x7k2p", "main"
PARTITION = f"cluster=default/namespace=default/job={JOB}/job_uid=unknown/attempt=1"
T0 = datetime(2026, 11, 27, 0, 0, tzinfo=timezone.utc)


def ts(n):
    return (T0 + timedelta(milliseconds=n)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record(n, offset):
    return {
        "ts": ts(n), "stream": "stdout", "message": f"record {n} of a long job",
        "offset": offset, "cluster": "default", "node": "node-1", "namespace": "default",
        "pod": POD, "pod_uid": POD_UID, "container": CONTAINER, "restart": 0, "job": JOB,
        "job_uid": None, "cronjob": None, "attempt": 1, "completion_index": None,
    }


def write(store, objects, records):
    """Returns the manifest's container entry; writes the objects and the manifest."""
    entries, offset, n = [], 0, 0
    for _ in range(objects):
        first_offset, first_n = offset, n
        lines = []
        for _ in range(records):
            line = json.dumps(record(n, offset), separators=(",", ":"))
            lines.append(line)
            offset += 60  # the CRI line's length in the (imaginary) log file
            n += 1
        body = gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=6, mtime=0)
        key = f"logs/{PARTITION}/pod={POD}/container={CONTAINER}/restart=0/{first_offset:020}.ndjson.gz"
        path = Path(store, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        entries.append({
            "key": key, "first_offset": first_offset, "end_offset": offset, "records": records,
            "bytes": len(body), "sha256": hashlib.sha256(body).hexdigest(),
            "first_ts": ts(first_n), "last_ts": ts(n - 1),
        })
    manifest = {
        "cluster": "default", "node": "node-1", "namespace": "default", "pod": POD,
        "pod_uid": POD_UID, "job": JOB, "job_uid": None, "cronjob": None, "attempt": 1,
        "completion_index": None, "updated": ts(n),
        "containers": [{"container": CONTAINER, "restart": 0, "complete": True,
                        "end_offset": offset, "objects": entries}],
    }
    path = Path(store, f"manifests/{PARTITION}/pod={POD}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, separators=(",", ":")))
    return n


# ---------------------------------------------------------------------------------------------
# Realistic messages (--text-size)
# ---------------------------------------------------------------------------------------------

def _gen_corpus():
    """gen_corpus.py from this folder, whatever the current directory is."""
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    import gen_corpus  # noqa: E402 (found only once this folder is on the path)
    return gen_corpus


# The record's fields after `offset`, in the agent's order; the same for every record of the job.
RECORD_TAIL = ("," + json.dumps(record(0, 0), separators=(",", ":")).split('"offset":0,', 1)[1])
OBJECT_SECONDS = 5  # each object covers this much log time, like a batch closed by max_age
MAX_HEAD = len("2026-11-27T00:00:00.123456789Z stdout F ")


def cri_ts(t_ns):
    """Go's RFC3339Nano in UTC, as containerd writes it: trailing zeros of the fraction dropped."""
    s, ns = divmod(t_ns, 10**9)
    frac = f"{ns:09d}".rstrip("0")
    clock = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s))
    return f"{clock}.{frac}Z" if frac else f"{clock}Z"


def realistic_object(store, span, seed, i):
    """Write log object i; returns (manifest entry, message text bytes, records).

    The object covers exactly the CRI bytes [i * span, (i + 1) * span): its last line is sized to
    land on the end. So every object can be made on its own, by any worker, in any order.
    """
    gc = _gen_corpus()
    rng = random.Random(seed * 1_000_003 + i)
    rand = rng.random
    # each object is one application style, in turn, so the job holds all four
    profile = gc.PROFILES[i % len(gc.PROFILES)]
    spec = gc.FileSpec(path="", budget=span, seed=0, start_ns=0, profile=profile, pod=POD,
                       container=CONTAINER)
    opts = gc.Options(min_line=50, max_line=300, json_share=0.3, partial_share=0.0,
                      stderr_share=0.1)
    gen = gc.MessageGen(rng, profile, spec, opts)
    dumps = json.JSONEncoder(ensure_ascii=False).encode
    t0 = int(T0.timestamp()) * 10**9 + i * OBJECT_SECONDS * 10**9
    step_ns = max(1, 2 * OBJECT_SECONDS * 10**9 * 230 // span)  # ~230 bytes a line on average
    t, pos, text = t0, 0, 0
    lines, first_ts, ts = [], None, ""
    while True:
        t += int(rand() * step_ns) + 1
        ts = cri_ts(t)
        first_ts = first_ts or ts
        ns = t % 10**9
        clock = ts[:19]
        err = rand() < 0.1
        head = len(ts) + 10
        msg = gen.message(err, clock, ns // 1_000_000, 50 + int(rand() * 251))
        size = head + len(msg.encode()) + 1
        remaining = span - pos
        if remaining - size < MAX_HEAD + 50 + 1:
            # no room for another line after this one: this one ends the object exactly
            n = remaining - head - 1
            msg = gen.fit(gen.text_fn(err, clock, ns // 1_000_000), n)
            if len(msg.encode()) != n:
                msg = gen.pad(n)
            size = remaining
        stream = "stderr" if err else "stdout"
        lines.append(f'{{"ts":"{ts}","stream":"{stream}","message":{dumps(msg)},'
                     f'"offset":{i * span + pos}{RECORD_TAIL}')
        text += len(msg.encode()) + 1
        pos += size
        if pos >= span:
            break
    body = gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=6, mtime=0)
    key = f"logs/{PARTITION}/pod={POD}/container={CONTAINER}/restart=0/{i * span:020}.ndjson.gz"
    path = Path(store, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    entry = {"key": key, "first_offset": i * span, "end_offset": (i + 1) * span,
             "records": len(lines), "bytes": len(body), "sha256": hashlib.sha256(body).hexdigest(),
             "first_ts": first_ts, "last_ts": ts}
    return entry, text, len(lines)


def write_realistic(store, text_size, span, seed=1, jobs=1):
    """About text_size bytes of message text (each message plus its newline, as `fetch` prints
    them) in objects of span CRI bytes; writes the manifest; returns a summary dict."""
    if span < 1000:
        raise ValueError("object span must be at least 1000 bytes")
    started = time.monotonic()
    first = realistic_object(store, span, seed, 0)
    n_objects = max(1, round(text_size / first[1]))
    make = functools.partial(realistic_object, store, span, seed)
    rest = range(1, n_objects)
    if jobs > 1 and n_objects > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            results = [first] + list(pool.map(make, rest, chunksize=4))
    else:
        results = [first] + [make(i) for i in rest]
    entries = [r[0] for r in results]
    manifest = {
        "cluster": "default", "node": "node-1", "namespace": "default", "pod": POD,
        "pod_uid": POD_UID, "job": JOB, "job_uid": None, "cronjob": None, "attempt": 1,
        "completion_index": None, "updated": entries[-1]["last_ts"],
        "containers": [{"container": CONTAINER, "restart": 0, "complete": True,
                        "end_offset": n_objects * span, "objects": entries}],
    }
    path = Path(store, f"manifests/{PARTITION}/pod={POD}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, separators=(",", ":")))
    return {"job": JOB, "namespace": "default", "objects": n_objects,
            "records": sum(r[2] for r in results), "text_bytes": sum(r[1] for r in results),
            "log_bytes": n_objects * span, "stored_bytes": sum(e["bytes"] for e in entries),
            "seed": seed, "seconds": round(time.monotonic() - started, 2)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True, help="local store folder to write into")
    ap.add_argument("--objects", type=int, default=20000)
    ap.add_argument("--records", type=int, default=20, help="records per object")
    ap.add_argument("--text-size", help="realistic messages instead, about this much text "
                                        "in all (e.g. 1GiB, 100MB); --objects/--records unused")
    ap.add_argument("--object-bytes", type=int, default=1_500_000,
                    help="with --text-size: CRI log bytes per object (default 1500000, about "
                         "3.3 MB of encoded records)")
    ap.add_argument("--seed", type=int, default=1, help="with --text-size")
    ap.add_argument("--jobs", type=int, default=0,
                    help="with --text-size: worker processes (default: all cores); the output "
                         "does not depend on it")
    ap.add_argument("--summary-json", action="store_true",
                    help="with --text-size: print the summary as one JSON object")
    args = ap.parse_args(argv)
    if args.text_size is None:
        n = write(args.store, args.objects, args.records)
        print(f"wrote job {JOB}: {args.objects} objects, {n} records into {args.store}")
        return 0
    size = _gen_corpus().parse_size(args.text_size)
    s = write_realistic(args.store, size, args.object_bytes, args.seed,
                        args.jobs or os.cpu_count() or 1)
    if args.summary_json:
        print(json.dumps(s, sort_keys=True))
    else:
        print(f"wrote job {JOB}: {s['objects']} objects, {s['records']} records,"
              f" {s['text_bytes']} bytes of text ({s['stored_bytes']} stored) into {args.store}"
              f" in {s['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
