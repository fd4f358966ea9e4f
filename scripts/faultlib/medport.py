"""One medport instance as a child process."""

import os
import signal
import subprocess
import time

from .client import get
from .common import PASSWORD, free_port


class Medport:
    """One medport instance (a child process), configured by environment variables."""

    def __init__(self, binary, env, log_path, bind_port=None):
        self.binary = binary
        self.port = bind_port or free_port()
        self.env = dict(os.environ)
        # Only what the scenario sets: no medport setting leaks in from the caller.
        for k in list(self.env):
            if k.startswith("MEDPORT_") or k == "DATABASE_URL":
                del self.env[k]
        self.env.update({"MEDPORT_BIND": f"127.0.0.1:{self.port}", "RUST_LOG": "info,medport=info"})
        self.env.update(env)
        self.log_path = log_path
        self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args, stdin=None, check=True):
        out = subprocess.run([self.binary, *args], env=self.env, input=stdin,
                             capture_output=True, text=True, timeout=120)
        if check and out.returncode != 0:
            raise RuntimeError(f"medport {' '.join(args)} failed: {out.stderr.strip()}")
        return out

    def user_with_key(self, email, role="uploader", scope="upload,read"):
        self.cli("user", "create", "--email", email, "--role", role, "--password-stdin",
                 stdin=PASSWORD + "\n")
        key = self.cli("apikey", "create", "--email", email, "--scope", scope).stdout.strip()
        if not key.startswith("mp_"):
            raise RuntimeError(f"unexpected API key output {key!r}")
        return key

    def start(self, ready_timeout=60):
        logf = open(self.log_path, "ab")
        logf.write(f"\n===== start {time.strftime('%H:%M:%S')} =====\n".encode())
        logf.flush()
        self.proc = subprocess.Popen([self.binary, "serve"], env=self.env, stdout=logf,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        logf.close()
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"medport exited with {self.proc.returncode}; see {self.log_path}")
            try:
                status, _, _ = get(self.url, "/readyz", timeout=2)
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"medport not ready within {ready_timeout} s; see {self.log_path}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """SIGKILL, then wait until the process is gone."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=30)

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)

    def log_text(self):
        try:
            with open(self.log_path, "r", encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def audit_chain(self, checks, label="audit trail"):
        """`medport audit verify`: the hash chain of audit events is unbroken."""
        out = self.cli("audit", "verify", check=False)
        return checks.ok(out.returncode == 0, f"{label}: hash chain verifies (medport audit verify)",
                         (out.stdout + out.stderr).strip()[:300])

    def panics(self):
        return [line for line in self.log_text().splitlines() if "panicked" in line]

    def no_panic(self, checks, label="medport's log"):
        found = self.panics()
        return checks.ok(not found, f"no panic in {label}", "; ".join(found[:3]))

    def closing_checks(self, checks):
        """What every scenario ends with: an unbroken audit chain and no panic."""
        self.audit_chain(checks)
        self.no_panic(checks)
