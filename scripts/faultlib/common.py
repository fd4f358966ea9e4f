"""Output, checks and the environment: where services are, free ports, work directories,
the release binary."""

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse

MIB = 1024 * 1024
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PASSWORD = "fault scenario password that is long"
_T0 = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - _T0:7.1f}s] {msg}", flush=True)


class Checks:
    """Collects results; `done()` prints the closing line and exits."""

    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = []
        self.notes = []
        self.lock = threading.Lock()

    def ok(self, cond, what, detail=""):
        with self.lock:
            if cond:
                self.passed += 1
                log(f"PASS {what}")
            else:
                self.failed.append(f"{what}: {detail}" if detail else what)
                log(f"FAIL {what}" + (f" -- {detail}" if detail else ""))
        return bool(cond)

    def eq(self, got, want, what):
        return self.ok(got == want, what, f"got {got!r}, want {want!r}")

    def note(self, msg):
        self.notes.append(msg)
        log(f"NOTE {msg}")

    def done(self, cleanup=None):
        if cleanup:
            try:
                cleanup(not self.failed)
            except Exception as e:  # noqa: BLE001 - cleanup must not hide the results
                log(f"cleanup failed: {e}")
        if self.failed:
            print(f"\n{self.name}: failures:")
            for f in self.failed:
                print(f"  - {f}")
        print(f"\n{self.name}: {self.passed} passed, {len(self.failed)} failed "
              f"({time.monotonic() - _T0:.0f} s)")
        sys.exit(1 if self.failed else 0)


def wait_for(pred, timeout, every=0.2, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def services_env():
    """The shared test services' settings (target/test-services.env), started if needed;
    values already in the environment win."""
    env_file = os.path.join(ROOT, "target", "test-services.env")
    needed = ["MEDPORT_TEST_POSTGRES", "MEDPORT_TEST_S3_ENDPOINT"]
    if not all(os.environ.get(k) for k in needed):
        if not s3_answers(os.environ.get("MEDPORT_TEST_S3_ENDPOINT", "http://127.0.0.1:8333")):
            subprocess.run([os.path.join(ROOT, "scripts", "test-services.sh"), "postgres", "s3"],
                           check=True, stdout=subprocess.DEVNULL)
    values = {}
    if os.path.exists(env_file):
        for line in open(env_file, encoding="utf-8"):
            m = re.match(r"^export ([A-Z0-9_]+)=(.*)$", line.strip())
            if m:
                values[m.group(1)] = m.group(2)
    for k, v in os.environ.items():
        if k.startswith("MEDPORT_TEST_"):
            values[k] = v
    values.setdefault("MEDPORT_TEST_S3_REGION", "us-east-1")
    return values


def s3_answers(endpoint):
    try:
        u = urllib.parse.urlparse(endpoint)
        with socket.create_connection((u.hostname, u.port or 80), timeout=2):
            return True
    except OSError:
        return False


def free_port(also_plus=None):
    """A free TCP port on loopback; with `also_plus`, port + also_plus must be free too."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if also_plus is None:
            return port
        if port + also_plus < 65536 and port_free(port + also_plus) and port_free(port):
            return port
    raise RuntimeError("no free port")


def port_free(port):
    with socket.socket() as s:
        # As servers bind: connections lingering in TIME_WAIT do not hold the port.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def workdir(name):
    base = os.environ.get("MEDPORT_FAULT_DIR") or tempfile.gettempdir()
    path = tempfile.mkdtemp(prefix=f"medport-fault-{name}-", dir=base)
    log(f"work directory {path}")
    return path


def remove_workdir(path, success):
    if success and os.environ.get("MEDPORT_FAULT_KEEP") != "1":
        shutil.rmtree(path, ignore_errors=True)
    else:
        log(f"kept {path} (logs: medport*.log)")


def build_medport():
    """The release binary: MEDPORT_FAULT_BIN, or `cargo build --release --bin medport`."""
    given = os.environ.get("MEDPORT_FAULT_BIN")
    if given:
        return given
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    log("building the release binary (may wait for the build lock)")
    t = time.monotonic()
    out = subprocess.run(["cargo", "build", "--release", "--bin", "medport"], cwd=ROOT,
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(out.stderr[-4000:])
        raise SystemExit("cargo build failed")
    log(f"built in {time.monotonic() - t:.0f} s")
    return os.path.join(target, "release", "medport")


def release_binary():
    """The release binary the benchmarks measure: `cargo build --release --locked --quiet`
    (output passed through, a failed build raises), then its path under CARGO_TARGET_DIR
    (or target/)."""
    subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return os.path.join(target, "release", "medport")


def run_stamp():
    """What makes this run's names unique (buckets, databases, accounts): the time in
    seconds and the process id."""
    return f"{int(time.time())}-{os.getpid()}"


def start_run(name):
    """What a scenario on the shared test services starts with: their settings (started if
    needed), this run's stamp and its work directory `medport-fault-NAME-*`; returns
    (env, stamp, work)."""
    env = services_env()
    stamp = run_stamp()
    return env, stamp, workdir(name)


def run_scenario(scenario):
    """Runs a scenario to its end and exits with its checks' verdict. An exception is a
    failed check, so the work directory and its logs are kept for inspection."""
    try:
        scenario.run()
    except Exception as e:  # noqa: BLE001 - reported as a failure with the logs kept
        traceback.print_exc()
        scenario.checks.ok(False, "scenario ran to the end", repr(e))
    scenario.checks.done(scenario.cleanup if hasattr(scenario, "work") else None)
