#!/usr/bin/env python3
"""Helpers of scripts/bench-upload.sh: the S3 side with boto3 against the S3 test server,
and the check that what medport stored is the file.

  bench-upload.py bucket NAME                 create bucket NAME
  bench-upload.py direct FILE BUCKET KEY [N]  N multipart uploads of FILE at once (8 MiB parts,
                                              keys KEY-1..N); prints the seconds for all of them
  bench-upload.py drop NAME                   delete bucket NAME with everything in it
  bench-upload.py parts BUCKET COUNT THREADS  times COUNT UploadParts of 8 MiB, THREADS at once,
                                              straight to the S3 server: how often it is slow
  bench-upload.py check PORT EMAIL SHA256 ID...
                                              signs in to medport on PORT as EMAIL (password on
                                              stdin) and downloads every upload ID: each must
                                              have that SHA-256

Connection from MEDPORT_TEST_S3_{ENDPOINT,ACCESS_KEY,SECRET_KEY,REGION}. Knob:
MEDPORT_BENCH_S3_CONCURRENCY (parts in flight for the direct upload; boto3's default 10).
"""
import hashlib
import http.client
import importlib.util
import os
import pathlib
import sys
import time
from concurrent.futures import ThreadPoolExecutor

MIB = 1024 * 1024


def client(pool=10):
    # Imported here: the local-store benchmark runs without boto3.
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=os.environ["MEDPORT_TEST_S3_ENDPOINT"],
        aws_access_key_id=os.environ["MEDPORT_TEST_S3_ACCESS_KEY"],
        aws_secret_access_key=os.environ["MEDPORT_TEST_S3_SECRET_KEY"],
        region_name=os.environ.get("MEDPORT_TEST_S3_REGION", "us-east-1"),
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=pool),
    )


def direct(path, bucket, key, count):
    from boto3.s3.transfer import TransferConfig

    concurrency = int(os.environ.get("MEDPORT_BENCH_S3_CONCURRENCY", "10"))
    config = TransferConfig(
        multipart_threshold=8 * MIB,
        multipart_chunksize=8 * MIB,
        max_concurrency=concurrency,
    )
    s3 = client(pool=concurrency * count)
    keys = [f"{key}-{i}" for i in range(1, count + 1)]
    start = time.perf_counter()
    with ThreadPoolExecutor(count) as uploads:
        list(uploads.map(lambda k: s3.upload_file(path, bucket, k, Config=config), keys))
    seconds = time.perf_counter() - start
    for k in keys:
        size = s3.head_object(Bucket=bucket, Key=k)["ContentLength"]
        if size != os.path.getsize(path):
            sys.exit(f"direct upload {k} stored {size} bytes")
    print(f"{seconds:.3f}")


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


def check(port, email, password, sha256, ids):
    """Downloads each upload through medport as its owner; a browser sign-in, as the
    download route takes no API key."""
    spec = importlib.util.spec_from_file_location(
        "bench_pages", pathlib.Path(__file__).with_name("bench-pages.py"))
    pages = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pages)
    ok, detail, cookie = pages.sign_in(port, email, password, "127.0.0.1")
    if not ok:
        sys.exit(f"could not sign in to check the uploads: {detail}")
    for upload in ids:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        c.request("GET", f"/files/{upload}/download", headers={"Cookie": cookie})
        r = c.getresponse()
        if r.status != 200:
            sys.exit(f"download of {upload} answered {r.status}")
        digest = hashlib.sha256()
        while block := r.read(MIB):
            digest.update(block)
        c.close()
        if digest.hexdigest() != sha256:
            sys.exit(f"upload {upload} came back different from the file sent")


def parts(bucket, count, threads):
    """The S3 server's own spread of part times, without medport: tells a slow part that
    medport waits for from one it causes."""
    s3 = client(pool=threads)
    data = os.urandom(8 * MIB)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="parts-probe")["UploadId"]

    def put(number):
        start = time.perf_counter()
        s3.upload_part(Bucket=bucket, Key="parts-probe", UploadId=upload, PartNumber=number,
                       Body=data)
        return number, time.perf_counter() - start

    try:
        start = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            timed = list(pool.map(put, range(1, count + 1)))
        seconds = time.perf_counter() - start
    finally:
        s3.abort_multipart_upload(Bucket=bucket, Key="parts-probe", UploadId=upload)
    took = sorted(t for _, t in timed)
    median = took[len(took) // 2]
    slow = [f"#{n} {t:.2f} s" for n, t in timed if t > 3 * median]
    print(f"{count} parts of 8 MiB, {threads} at once: {count * 8 / seconds:.1f} MiB/s; "
          f"part time median {median:.3f} s, p90 {took[int(len(took) * 0.9)]:.3f} s, "
          f"max {took[-1]:.3f} s; over 3x the median: {len(slow)} ({', '.join(slow)})")


def main(argv):
    match argv:
        case ["bucket", name]:
            client().create_bucket(Bucket=name)
        case ["direct", path, bucket, key]:
            direct(path, bucket, key, 1)
        case ["direct", path, bucket, key, count]:
            direct(path, bucket, key, int(count))
        case ["check", port, email, sha256, *ids] if ids:
            check(int(port), email, sys.stdin.readline().rstrip("\n"), sha256, ids)
        case ["parts", bucket, count, threads]:
            parts(bucket, int(count), int(threads))
        case ["drop", name]:
            drop(name)
        case _:
            sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
