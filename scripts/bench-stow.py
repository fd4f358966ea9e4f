#!/usr/bin/env python3
"""The STOW-RS client of scripts/bench-stow.sh: multipart/related requests streamed from
files with the standard library only (http.client), never holding a request in memory.

  bench-stow.py batch --base URL --key KEY --dir DIR [--per-request 50] [--parallel 4]
      every file under DIR (sorted), PER_REQUEST parts a request, PARALLEL requests at once;
      prints {"files", "bytes", "seconds", "stored", "failed", "requests"}
  bench-stow.py repeat --base URL --key KEY --file FILE --times N
      one request of FILE N times over; prints {"bytes", "seconds", "status", "stored",
      "failed"}

Exits 1 with the answer on stderr when a request is not answered 200 (batch) or when any
part failed (repeat).
"""
import argparse
import http.client
import json
import os
import sys
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

BOUNDARY = "medport-bench-stow-boundary"
PART_HEAD = f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
CLOSE = f"--{BOUNDARY}--\r\n".encode()
CHUNK = 1024 * 1024


def request_length(sizes):
    # Each part: its head, its bytes, the line break before the next delimiter.
    return sum(len(PART_HEAD) + size + 2 for size in sizes) + len(CLOSE)


def stow(base, key, paths):
    """POSTs PATHS as one STOW request; returns (status, answer as JSON or text)."""
    url = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=3600)
    sizes = [os.path.getsize(p) for p in paths]
    conn.putrequest("POST", "/dicomweb/studies")
    conn.putheader("Authorization", f"Bearer {key}")
    conn.putheader(
        "Content-Type", f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
    )
    conn.putheader("Accept", "application/dicom+json")
    conn.putheader("Content-Length", str(request_length(sizes)))
    conn.endheaders()
    for path in paths:
        conn.send(PART_HEAD)
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                conn.send(chunk)
        conn.send(b"\r\n")
    conn.send(CLOSE)
    res = conn.getresponse()
    text = res.read().decode("utf-8", "replace")
    conn.close()
    try:
        return res.status, json.loads(text)
    except ValueError:
        return res.status, text


def counts(answer):
    if not isinstance(answer, dict):
        return 0, 0
    stored = len(answer.get("00081199", {}).get("Value", []))
    failed = len(answer.get("00081198", {}).get("Value", []))
    return stored, failed


def fail(message):
    sys.stderr.write(f"bench-stow: {message}\n")
    sys.exit(1)


def batch(args):
    paths = sorted(
        os.path.join(d, f) for d, _, files in os.walk(args.dir) for f in files
    )
    if not paths:
        fail(f"no files under {args.dir}")
    groups = [paths[i : i + args.per_request] for i in range(0, len(paths), args.per_request)]
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        answers = list(pool.map(lambda g: stow(args.base, args.key, g), groups))
    seconds = time.monotonic() - start
    stored = failed = 0
    for status, answer in answers:
        if status != 200:
            fail(f"a request was answered {status}: {str(answer)[:500]}")
        s, f = counts(answer)
        stored, failed = stored + s, failed + f
    print(json.dumps({
        "files": len(paths),
        "bytes": sum(os.path.getsize(p) for p in paths),
        "seconds": seconds,
        "stored": stored,
        "failed": failed,
        "requests": len(groups),
    }))


def repeat(args):
    paths = [args.file] * args.times
    start = time.monotonic()
    status, answer = stow(args.base, args.key, paths)
    seconds = time.monotonic() - start
    stored, failed = counts(answer)
    if status != 200 or failed:
        fail(f"the request was answered {status}: {str(answer)[:500]}")
    print(json.dumps({
        "bytes": os.path.getsize(args.file) * args.times,
        "seconds": seconds,
        "status": status,
        "stored": stored,
        "failed": failed,
    }))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("batch")
    b.add_argument("--base", required=True)
    b.add_argument("--key", required=True)
    b.add_argument("--dir", required=True)
    b.add_argument("--per-request", type=int, default=50)
    b.add_argument("--parallel", type=int, default=4)
    r = sub.add_parser("repeat")
    r.add_argument("--base", required=True)
    r.add_argument("--key", required=True)
    r.add_argument("--file", required=True)
    r.add_argument("--times", type=int, required=True)
    args = parser.parse_args()
    {"batch": batch, "repeat": repeat}[args.command](args)


if __name__ == "__main__":
    main()
