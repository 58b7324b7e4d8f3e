"""Write a large archived job straight into a local store, in the layout of CONTRACT §3.

For measuring the reading side (`fetch`, `verify`) on jobs with tens of thousands of objects
without shipping them through the agent first: one attempt of job `big` in namespace `default`,
container `main`, OBJECTS log objects of RECORDS records each, and a manifest that lists them
all (so `jobarchive verify big` passes). Standard library only.

    python3 bench/gen_archive.py --store /tmp/big-store --objects 20000 --records 20
    /usr/bin/time -v jobarchive fetch big --store /tmp/big-store > /dev/null
"""

import argparse
import gzip
import hashlib
import json
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True, help="local store folder to write into")
    ap.add_argument("--objects", type=int, default=20000)
    ap.add_argument("--records", type=int, default=20, help="records per object")
    args = ap.parse_args()
    n = write(args.store, args.objects, args.records)
    print(f"wrote job {JOB}: {args.objects} objects, {n} records into {args.store}")


if __name__ == "__main__":
    main()
