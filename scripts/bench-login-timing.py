#!/usr/bin/env python3
"""Sign-in timing: an unknown address and a wrong password for a real account must take
about the same time (no account enumeration by timing). Starts a release medport on an empty
data directory, creates accounts with the CLI, then alternates the two kinds of failed
sign-in and reports the median of each and their ratio (target: within 20%).

Each attempt uses a fresh browser session (GET /login for the CSRF token, then POST) and its
own account or address, so neither the per-account throttle nor (through a trusted-proxy
X-Forwarded-For address per attempt) the per-address rate limit interferes.

Usage: scripts/bench-login-timing.py [attempts-per-kind]   (default 40)
"""
import http.client
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultlib import free_port, release_binary  # noqa: E402

n = int(sys.argv[1]) if len(sys.argv) > 1 else 40
binary = release_binary()
PASSWORD = "benchmark password that is long enough"


def attempt(port, email, password, ip):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/login", headers={"X-Forwarded-For": ip})
    r = c.getresponse()
    html = r.read().decode()
    cookie = r.getheader("Set-Cookie").split(";")[0]
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    body = urllib.parse.urlencode({"email": email, "password": password, "csrf_token": token})
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie, "X-Forwarded-For": ip}
    start = time.perf_counter()
    c.request("POST", "/login", body=body, headers=headers)
    r = c.getresponse()
    r.read()
    elapsed = (time.perf_counter() - start) * 1000
    assert r.status == 401, f"expected 401, got {r.status}"
    return elapsed


with tempfile.TemporaryDirectory() as d:
    port = free_port()
    env = {"PATH": os.environ["PATH"], "MEDPORT_BIND": f"127.0.0.1:{port}", "RUST_LOG": "warn",
           "MEDPORT_TRUSTED_PROXIES": "127.0.0.1"}
    for i in range(n):
        subprocess.run([binary, "user", "create", "--email", f"user{i}@example.org", "--role", "uploader",
                        "--password-stdin"], cwd=d, env=env, input=PASSWORD + "\n", text=True, check=True,
                       stdout=subprocess.DEVNULL)
    server = subprocess.Popen([binary], cwd=d, env=env)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        unknown, wrong = [], []
        for i in range(n):
            unknown.append(attempt(port, f"nobody{i}@example.org", PASSWORD, f"10.1.{i // 250}.{i % 250 + 1}"))
            wrong.append(attempt(port, f"user{i}@example.org", "not the password at all", f"10.2.{i // 250}.{i % 250 + 1}"))
    finally:
        server.terminate()
        server.wait()

mu, mw = statistics.median(unknown), statistics.median(wrong)
print(f"unknown address: median {mu:.1f} ms (min {min(unknown):.1f}, max {max(unknown):.1f}), n={n}")
print(f"wrong password:  median {mw:.1f} ms (min {min(wrong):.1f}, max {max(wrong):.1f}), n={n}")
print(f"ratio unknown/wrong: {mu / mw:.3f} (target 0.8 to 1.2)")
