#!/usr/bin/env python3
"""Cold start to ready: time from exec of a release `medport` on an empty data directory
(SQLite, first run: creates data/, the master key, the database and runs migrations) until
GET /readyz answers 200. Prints the median and range over N runs.

Usage: scripts/bench-startup.py [runs]   (builds the release binary first)
"""
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultlib import free_port, release_binary  # noqa: E402

runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
binary = release_binary()


def ready(port):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=0.2)
        c.request("GET", "/readyz")
        return c.getresponse().status == 200
    except OSError:
        return False


times = []
for _ in range(runs):
    with tempfile.TemporaryDirectory() as d:
        port = free_port()
        env = {"PATH": os.environ["PATH"], "MEDPORT_BIND": f"127.0.0.1:{port}", "RUST_LOG": "warn"}
        start = time.perf_counter()
        p = subprocess.Popen([binary], cwd=d, env=env)
        while not ready(port):
            if p.poll() is not None:
                sys.exit("medport exited during start-up")
            if time.perf_counter() - start > 10:
                p.kill()
                sys.exit("not ready within 10 s")
            time.sleep(0.002)
        times.append((time.perf_counter() - start) * 1000)
        p.terminate()
        p.wait()

print(f"cold start to ready (SQLite, first run), {runs} runs: "
      f"median {statistics.median(times):.0f} ms, min {min(times):.0f} ms, max {max(times):.0f} ms")
