#!/usr/bin/env python3
"""Helper for scripts/bench-pages.sh (standard library only).

  seed    --port P --count N                  N small text files through tus (API key in
                                              MEDPORT_BENCH_API_KEY), so the page is not empty
  signin  --port P --email E [--expect-total N]
                                              sign in (password in MEDPORT_BENCH_PASSWORD),
                                              check the history page answers 200 with N
                                              uploads, print the cookie as `name=value`
  phase   --port P --pid PID --name NAME --seconds S --logins-per-second R --login-email E
          --lua FILE --out FILE [--connections C] [--threads T] [--timeout S]
          [--first-address N] [--path /uploads]
                                              one wrk run on the path (cookie in
                                              MEDPORT_BENCH_COOKIE) while R sign-ins per
                                              second run; writes a JSON result
  report  FILE...                             the table; exit 1 if any page answer was not 200
  tail    HEALTHZ PAGE [HEALTHZ PAGE...]      p99 and throughput of the page against
                                              /healthz at the same connection count

Every request carries its own X-Forwarded-For address (medport trusts 127.0.0.1 as a proxy
in this benchmark) so the per-address rate limits never answer 429: wrk's addresses are
10.1-10.2.y.z (see bench-pages.lua), each sign-in gets its own 10.250+.y.z address.
"""
import argparse
import base64
import concurrent.futures
import http.client
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
TOTAL_RE = re.compile(r"<p class=\"muted\">(\d+) uploads?\. Page")
MORE_RE = re.compile(r"More than (\d+) uploads\.")
LINE_PREFIX = "BENCH-PAGES "


def log(msg):
    print(f"bench-pages: {msg}", file=sys.stderr, flush=True)


def die(msg):
    log(msg)
    sys.exit(1)


def env_required(name):
    value = os.environ.get(name, "")
    if not value:
        die(f"{name} is not set")
    return value


def cookie_of(response, name_prefix="medport_session"):
    """The `name=value` of the session cookie a response sets, or None."""
    for header, value in response.getheaders():
        if header.lower() == "set-cookie":
            pair = value.split(";", 1)[0].strip()
            if pair.startswith(name_prefix + "=") or pair.startswith("__Host-" + name_prefix + "="):
                return pair
    return None


def sign_in(port, email, password, ip, timeout=60):
    """A browser sign-in: GET /login (session cookie and CSRF token), POST /login.
    Returns (ok, detail, cookie): ok when the answer is a 303 away from /login with a new
    session cookie."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", "/login", headers={"X-Forwarded-For": ip})
        r = c.getresponse()
        html = r.read().decode("utf-8", "replace")
        if r.status != 200:
            return False, f"GET /login answered {r.status}", None
        cookie = cookie_of(r)
        token = CSRF_RE.search(html)
        if cookie is None or token is None:
            return False, "GET /login gave no session cookie or CSRF token", None
        body = urllib.parse.urlencode(
            {"csrf_token": token.group(1), "next": "/", "email": email, "password": password})
        c.request("POST", "/login", body=body, headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": cookie,
            "X-Forwarded-For": ip,
        })
        r = c.getresponse()
        r.read()
        location = r.getheader("Location") or ""
        new_cookie = cookie_of(r)
        if r.status == 303 and not location.startswith("/login") and new_cookie:
            return True, f"303 -> {location}", new_cookie
        return False, f"POST /login answered {r.status} (Location {location or '-'})", None
    except (OSError, http.client.HTTPException) as e:
        return False, f"{type(e).__name__}: {e}", None
    finally:
        c.close()


# ---------------------------------------------------------------- seed

def tus_upload(port, key, name, data):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        meta = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}"
                        for k, v in (("filename", name), ("filetype", "text/plain")))
        c.request("POST", "/tus/", headers={
            "Authorization": f"Bearer {key}",
            "Tus-Resumable": "1.0.0",
            "Upload-Length": str(len(data)),
            "Upload-Metadata": meta,
        })
        r = c.getresponse()
        r.read()
        location = r.getheader("Location") or ""
        if r.status != 201 or not location:
            die(f"tus creation of {name} answered {r.status}")
        path = urllib.parse.urlsplit(location).path
        c.request("PATCH", path, body=data, headers={
            "Authorization": f"Bearer {key}",
            "Tus-Resumable": "1.0.0",
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
        })
        r = c.getresponse()
        r.read()
        if r.status != 204 or r.getheader("Upload-Offset") != str(len(data)):
            die(f"tus PATCH of {name} answered {r.status} (offset {r.getheader('Upload-Offset')})")
    finally:
        c.close()


def cmd_seed(args):
    key = env_required("MEDPORT_BENCH_API_KEY")
    for i in range(args.count):
        data = (f"benchmark file {i}\n" * (40 + i)).encode()
        tus_upload(args.port, key, f"bench-notes-{i:03d}.txt", data)
    log(f"seeded {args.count} uploads through tus")


# ---------------------------------------------------------------- signin

def cmd_signin(args):
    password = env_required("MEDPORT_BENCH_PASSWORD")
    ok, detail, cookie = sign_in(args.port, args.email, password, "10.249.0.1")
    if not ok:
        die(f"sign-in as {args.email} failed: {detail}")
    c = http.client.HTTPConnection("127.0.0.1", args.port, timeout=30)
    c.request("GET", "/uploads", headers={"Cookie": cookie, "X-Forwarded-For": "10.249.0.2"})
    r = c.getresponse()
    html = r.read().decode("utf-8", "replace")
    c.close()
    if r.status != 200 or "<h1>Uploads</h1>" not in html:
        die(f"GET /uploads with the new session answered {r.status}, not the history page")
    total = TOTAL_RE.search(html)
    shown = int(total.group(1)) if total else -1
    # Past its count limit the page says "More than N uploads" rather than counting them all.
    more = MORE_RE.search(html)
    at_least = int(more.group(1)) + 1 if more else None
    if args.expect_total is not None:
        if at_least is not None:
            if args.expect_total < at_least:
                die(f"the history page lists more than {at_least - 1} uploads, expected {args.expect_total}")
            shown = f"more than {at_least - 1}"
        elif shown != args.expect_total:
            die(f"the history page lists {shown} uploads, expected {args.expect_total}")
    log(f"signed in as {args.email}; /uploads answers 200 ({len(html)} bytes, {shown} uploads)")
    print(cookie)


# ---------------------------------------------------------------- phase

class Logins:
    """Open-loop sign-ins: one starts every 1/rate seconds whether or not the earlier ones
    have finished (a slow server does not lower the offered rate)."""

    def __init__(self, port, email, password, rate, first_address):
        self.port, self.email, self.password, self.rate = port, email, password, rate
        self.first_address = first_address
        self.stop = threading.Event()
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=256)
        self.futures = []
        self.thread = threading.Thread(target=self.run, daemon=True)

    def one(self, i):
        i += self.first_address
        ip = f"10.{250 + i // 65536}.{(i // 256) % 256}.{i % 256}"
        start = time.perf_counter()
        ok, detail, _ = sign_in(self.port, self.email, self.password, ip)
        return ok, detail, time.perf_counter() - start

    def run(self):
        interval = 1.0 / self.rate
        t0 = time.perf_counter()
        i = 0
        while not self.stop.is_set():
            due = t0 + i * interval
            wait = due - time.perf_counter()
            if wait > 0 and self.stop.wait(wait):
                break
            self.futures.append(self.pool.submit(self.one, i))
            i += 1

    def start(self):
        self.thread.start()

    def finish(self):
        self.stop.set()
        self.thread.join()
        results = [f.result() for f in self.futures]
        self.pool.shutdown()
        return results


def parse_wrk(output):
    for line in output.splitlines():
        if line.startswith(LINE_PREFIX):
            fields = dict(kv.split("=", 1) for kv in line[len(LINE_PREFIX):].split())
            return {k: (float(v) if "." in v else int(v)) for k, v in fields.items()}
    return None


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def process_cpu_seconds(pid):
    """User + system CPU time of a process, all its threads, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_ticks():
    """(busy, total) CPU ticks of the whole machine, all cores."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def cmd_phase(args):
    env = dict(os.environ)
    env_required("MEDPORT_BENCH_COOKIE")
    # The Lua script builds each request and takes its path from here.
    env["MEDPORT_BENCH_PATH"] = args.path
    cmd = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.seconds}s",
           f"--timeout={args.timeout}s", "--latency", "-s", args.lua,
           f"http://127.0.0.1:{args.port}{args.path}"]
    logins = None
    if args.logins_per_second > 0:
        logins = Logins(args.port, args.login_email, env_required("MEDPORT_BENCH_PASSWORD"),
                        args.logins_per_second, args.first_address)
    load_before = loadavg()
    medport_cpu_before = process_cpu_seconds(args.pid)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy_before, total_before = machine_ticks()
    log(f"{args.name}: {' '.join(cmd)}" +
        (f" with {args.logins_per_second:g} sign-ins/s" if logins else "") +
        f" (load average {load_before})")
    if logins:
        logins.start()
    started = time.perf_counter()
    wrk = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wrk_seconds = time.perf_counter() - started
    medport_cpu = process_cpu_seconds(args.pid) - medport_cpu_before
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = (children.ru_utime - children_before.ru_utime) + (children.ru_stime - children_before.ru_stime)
    busy_after, total_after = machine_ticks()
    machine_busy = (busy_after - busy_before) / max(1, total_after - total_before)
    load_after = loadavg()
    login_results = logins.finish() if logins else []
    sys.stderr.write(wrk.stdout)
    if wrk.returncode != 0:
        sys.stderr.write(wrk.stderr)
        die(f"wrk exited with {wrk.returncode}")
    stats = parse_wrk(wrk.stdout)
    if stats is None:
        sys.stderr.write(wrk.stderr)
        die("wrk printed no BENCH-PAGES line (did the Lua script fail?)")
    failures = [d for ok, d, _ in login_results if not ok]
    times = sorted(t for _, _, t in login_results)
    result = {
        "name": args.name,
        "path": args.path,
        "seconds": args.seconds,
        "connections": args.connections,
        "threads": args.threads,
        "logins_per_second": args.logins_per_second,
        "wrk": stats,
        "wrk_wall_seconds": round(wrk_seconds, 2),
        "logins_started": len(login_results),
        "logins_succeeded": len(login_results) - len(failures),
        "login_failures": sorted(set(failures))[:10],
        "login_p50_ms": round(statistics.median(times) * 1000, 1) if times else None,
        "login_max_ms": round(times[-1] * 1000, 1) if times else None,
        "medport_cpu_seconds": round(medport_cpu, 2),
        "wrk_cpu_seconds": round(wrk_cpu, 2),
        "machine_busy_percent": round(100 * machine_busy, 1),
        "cores": os.cpu_count(),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    log(f"{args.name}: {stats['rps']:.1f} requests/s, p50 {stats['p50_us'] / 1000:.1f} ms, "
        f"p99 {stats['p99_us'] / 1000:.1f} ms, non-200 {stats['non200']}"
        + (f", sign-ins {result['logins_succeeded']}/{result['logins_started']} succeeded"
           f" (median {result['login_p50_ms']} ms)" if logins else "")
        + f"; medport CPU {medport_cpu:.1f} s, wrk CPU {wrk_cpu:.1f} s, machine busy "
        f"{100 * machine_busy:.0f}% of {os.cpu_count()} cores (load average {load_before} -> {load_after})")
    for failure in result["login_failures"]:
        log(f"{args.name}: sign-in failure: {failure}")
    errors = stats["err_connect"] + stats["err_read"] + stats["err_write"] + stats["err_timeout"]
    if stats["non200"] or errors or not stats.get("status_200"):
        die(f"{args.name}: FAILED: not every page answer was 200 (status codes: {statuses_of(stats)}; "
            f"socket errors and timeouts: {errors}); a benchmark of these answers measures nothing")
    if failures:
        die(f"{args.name}: FAILED: {len(failures)} of {len(login_results)} sign-ins failed")


# ---------------------------------------------------------------- report

def statuses_of(w):
    return ", ".join(f"{k[len('status_'):]}: {v}" for k, v in sorted(w.items()) if k.startswith("status_")) or "none"


def cmd_report(args):
    results = []
    for path in args.files:
        with open(path) as f:
            results.append(json.load(f))
    bad = False
    groups = {}
    for r in results:
        groups.setdefault(r["name"].split(":")[0], []).append(r)
    for backend, rs in groups.items():
        print(f"\n== {backend}: GET /uploads, {rs[0]['connections']} connections, "
              f"{rs[0]['threads']} wrk threads, {rs[0]['seconds']} s each")
        print(f"{'run':<28} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
              f"{'non-200':>8} {'sign-ins ok/started':>20}  load avg before -> after")
        for r in rs:
            w = r["wrk"]
            errors = w["err_connect"] + w["err_read"] + w["err_write"] + w["err_timeout"]
            logins = (f"{r['logins_succeeded']}/{r['logins_started']}"
                      if r["logins_per_second"] else "-")
            print(f"{r['name']:<28} {w['rps']:>9.1f} {w['p50_us'] / 1000:>8.1f} "
                  f"{w['p99_us'] / 1000:>8.1f} {w['max_us'] / 1000:>8.1f} {w['non200']:>8} "
                  f"{logins:>20}  {r['loadavg_before']} -> {r['loadavg_after']}")
            print(f"{'':<28} status codes: {statuses_of(w)}; socket errors {errors} "
                  f"(connect {w['err_connect']}, read {w['err_read']}, write {w['err_write']}, "
                  f"timeout {w['err_timeout']})"
                  + (f"; sign-in median {r['login_p50_ms']} ms, max {r['login_max_ms']} ms"
                     if r["logins_per_second"] else ""))
            print(f"{'':<28} CPU: medport {r['medport_cpu_seconds']:.1f} s "
                  f"({r['medport_cpu_seconds'] / r['seconds']:.2f} cores), wrk {r['wrk_cpu_seconds']:.1f} s, "
                  f"whole machine {r['machine_busy_percent']:.0f}% busy ({r['cores']} cores); "
                  f"medport {1e6 * r['medport_cpu_seconds'] / max(1, w['requests']):.0f} us CPU per page"
                  + (" (includes the sign-ins)" if r["logins_per_second"] else ""))
            if w["non200"] or errors or w.get("status_200", 0) == 0:
                bad = True
            if r["logins_per_second"] and r["logins_succeeded"] != r["logins_started"]:
                bad = True
        base = [r for r in rs if not r["logins_per_second"]]
        loaded = [r for r in rs if r["logins_per_second"]]
        pairs = list(zip(base, loaded))
        if not pairs:
            continue
        ratios = []
        for i, (b, l) in enumerate(pairs, 1):
            b, l = b["wrk"], l["wrk"]
            ratio = l["p99_us"] / b["p99_us"] if b["p99_us"] else float("inf")
            ratios.append(ratio)
            print(f"pair {i}: p99 with sign-ins / p99 without: {l['p99_us'] / 1000:.1f} / "
                  f"{b['p99_us'] / 1000:.1f} ms = {ratio:.2f}; requests/s {l['rps']:.1f} / "
                  f"{b['rps']:.1f} = {l['rps'] / b['rps']:.2f}")
        ratio = statistics.median(ratios)
        verdict = "met" if ratio <= 2.0 else "MISSED"
        if len(pairs) > 1:
            med = lambda rows, key: statistics.median(r["wrk"][key] for r in rows)
            print(f"medians of {len(pairs)} pairs: without sign-ins {med(base, 'rps'):.1f} req/s, "
                  f"p50 {med(base, 'p50_us') / 1000:.1f} ms, p99 {med(base, 'p99_us') / 1000:.1f} ms; "
                  f"with {med(loaded, 'rps'):.1f} req/s, p50 {med(loaded, 'p50_us') / 1000:.1f} ms, "
                  f"p99 {med(loaded, 'p99_us') / 1000:.1f} ms")
        print(f"{backend}: ratio p99(with {loaded[0]['logins_per_second']:g} sign-ins/s) / p99(without)"
              f"{' (median of the pairs)' if len(pairs) > 1 else ''}: {ratio:.2f} "
              f"(target <= 2.0: {verdict})")
    if bad:
        print("\nFAILED: some page answers were not 200, had socket errors or timed out, or "
              "sign-ins failed; these figures do not measure the page.", file=sys.stderr)
        sys.exit(1)


def cmd_tail(args):
    """The history page against /healthz (same middleware, no database), run back to back
    at the same connection count: p99 ratio (target <= 3) and throughput ratio (>= 0.4)."""
    results = []
    for path in args.files:
        with open(path) as f:
            results.append(json.load(f))
    verdicts = []
    for reference, page in zip(results[0::2], results[1::2]):
        if reference["path"] != "/healthz" or reference["connections"] != page["connections"]:
            die(f"tail: {reference['name']} and {page['name']} are not a /healthz and page pair")
        r, p = reference["wrk"], page["wrk"]
        tail = p["p99_us"] / r["p99_us"] if r["p99_us"] else float("inf")
        share = p["rps"] / r["rps"] if r["rps"] else 0.0
        ok = tail <= 3.0 and share >= 0.4
        verdicts.append(ok)
        print(f"{page['name']}: {page['connections']} connections: {page['path']} p99 "
              f"{p['p99_us'] / 1000:.1f} ms, {p['rps']:.0f} req/s; /healthz p99 "
              f"{r['p99_us'] / 1000:.1f} ms, {r['rps']:.0f} req/s; p99 ratio {tail:.2f} "
              f"(target <= 3), throughput ratio {share:.2f} (target >= 0.4): "
              f"{'met' if ok else 'MISSED'}")
    if not verdicts:
        die("tail: no pairs")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("seed")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--count", type=int, required=True)
    s = sub.add_parser("signin")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--email", required=True)
    s.add_argument("--expect-total", type=int)
    s = sub.add_parser("phase")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--name", required=True)
    s.add_argument("--pid", type=int, required=True, help="medport's process id (CPU time)")
    s.add_argument("--seconds", type=int, required=True)
    s.add_argument("--logins-per-second", type=float, default=0)
    s.add_argument("--login-email", default="")
    s.add_argument("--first-address", type=int, default=0,
                   help="index of the first sign-in address (10.250.0.0 + N), distinct per run")
    s.add_argument("--lua", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--connections", type=int, default=64)
    s.add_argument("--path", default="/uploads", help="the page wrk asks for")
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("--timeout", type=int, default=10)
    s = sub.add_parser("report")
    s.add_argument("files", nargs="+")
    s = sub.add_parser("tail")
    s.add_argument("files", nargs="+", help="/healthz then page results, pair by pair")
    args = p.parse_args()
    {"seed": cmd_seed, "signin": cmd_signin, "phase": cmd_phase, "report": cmd_report,
     "tail": cmd_tail}[args.cmd](args)


if __name__ == "__main__":
    main()
