"""The lifecycle rules of docs/audit.md are valid S3 lifecycle configurations: each ```json
block with "Rules" is put on a bucket of the S3 test server (moto) with boto3, whose client
checks every field against the S3 API model, and read back.

Run by tests/run.sh with moto's venv (it has boto3) while moto runs (S3_ENDPOINT):
    $MOTO_VENV/bin/python -m unittest tests/audit/test_lifecycle.py
"""

import json
import os
import re
import unittest
import uuid
from pathlib import Path

import boto3

DOC = Path(__file__).resolve().parents[2] / "docs" / "audit.md"


def lifecycle_blocks():
    blocks = re.findall(r"```json\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    return [json.loads(b) for b in blocks if '"Rules"' in b]


class LifecycleRulesOfTheDoc(unittest.TestCase):
    def test_each_rule_set_is_accepted_and_read_back(self):
        s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"], region_name="us-east-1")
        configs = lifecycle_blocks()
        self.assertGreaterEqual(len(configs), 2)
        for config in configs:
            with self.subTest(rules=[r["ID"] for r in config["Rules"]]):
                bucket = f"lifecycle-{uuid.uuid4().hex[:12]}"
                s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
                s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=config)
                got = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
                self.assertEqual(sorted(r["ID"] for r in got), sorted(r["ID"] for r in config["Rules"]))
                for rule in config["Rules"]:
                    self.assertTrue(rule["Filter"]["Prefix"].startswith("jobarchive/"))


if __name__ == "__main__":
    unittest.main()
