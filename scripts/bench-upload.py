#!/usr/bin/env python3
"""S3 side of scripts/bench-upload.sh, with boto3 against the S3 test server.

  bench-upload.py bucket NAME                 create bucket NAME
  bench-upload.py direct FILE BUCKET KEY      multipart upload of FILE (8 MiB parts); prints seconds
  bench-upload.py check BUCKET SIZE SHA256    the newest object of SIZE bytes in BUCKET has that SHA-256
  bench-upload.py drop NAME                   delete bucket NAME with everything in it

Connection from MEDPORT_TEST_S3_{ENDPOINT,ACCESS_KEY,SECRET_KEY,REGION}. Knob:
MEDPORT_BENCH_S3_CONCURRENCY (parts in flight for the direct upload; boto3's default 10).
"""
import hashlib
import os
import sys
import time

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

MIB = 1024 * 1024


def client():
    return boto3.client(
        "s3",
        endpoint_url=os.environ["MEDPORT_TEST_S3_ENDPOINT"],
        aws_access_key_id=os.environ["MEDPORT_TEST_S3_ACCESS_KEY"],
        aws_secret_access_key=os.environ["MEDPORT_TEST_S3_SECRET_KEY"],
        region_name=os.environ.get("MEDPORT_TEST_S3_REGION", "us-east-1"),
        config=Config(s3={"addressing_style": "path"}),
    )


def direct(path, bucket, key):
    config = TransferConfig(
        multipart_threshold=8 * MIB,
        multipart_chunksize=8 * MIB,
        max_concurrency=int(os.environ.get("MEDPORT_BENCH_S3_CONCURRENCY", "10")),
    )
    s3 = client()
    start = time.perf_counter()
    s3.upload_file(path, bucket, key, Config=config)
    seconds = time.perf_counter() - start
    size = s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
    if size != os.path.getsize(path):
        sys.exit(f"direct upload stored {size} bytes")
    print(f"{seconds:.3f}")


def check(bucket, size, sha256):
    s3 = client()
    objects = [
        o
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for o in page.get("Contents", [])
        if o["Size"] == size
    ]
    if not objects:
        sys.exit(f"no object of {size} bytes in {bucket}")
    newest = max(objects, key=lambda o: o["LastModified"])["Key"]
    digest = hashlib.sha256()
    for block in s3.get_object(Bucket=bucket, Key=newest)["Body"].iter_chunks(8 * MIB):
        digest.update(block)
    if digest.hexdigest() != sha256:
        sys.exit(f"object {newest} differs from the file sent")


def drop(bucket):
    """The benchmark's gigabytes must not pile up on the shared S3 test server."""
    s3 = client()
    try:
        for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
            for u in page.get("Uploads", []):
                s3.abort_multipart_upload(Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"])
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for o in page.get("Contents", []):
                s3.delete_object(Bucket=bucket, Key=o["Key"])
        s3.delete_bucket(Bucket=bucket)
    except s3.exceptions.NoSuchBucket:
        pass


def main(argv):
    match argv:
        case ["bucket", name]:
            client().create_bucket(Bucket=name)
        case ["direct", path, bucket, key]:
            direct(path, bucket, key)
        case ["check", bucket, size, sha256]:
            check(bucket, int(size), sha256)
        case ["drop", name]:
            drop(name)
        case _:
            sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
