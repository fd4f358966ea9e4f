"""PostgreSQL (and SQLite) access with `psql` / sqlite3: rows to check, a fresh database on
the shared server, a private cluster to stop and start, gates that hold medport mid-write."""

import os
import shutil
import subprocess
import tempfile
import urllib.parse

from .common import free_port


def pg_bin(name):
    found = shutil.which(name)
    versions = sorted(
        (d for d in os.listdir("/usr/lib/postgresql") if d.isdigit()), key=int
    ) if os.path.isdir("/usr/lib/postgresql") else []
    if versions:
        candidate = f"/usr/lib/postgresql/{versions[-1]}/bin/{name}"
        if os.path.exists(candidate):
            return candidate
    if found:
        return found
    raise RuntimeError(f"PostgreSQL's {name} is not installed")


class Db:
    """SQL through `psql` on one database URL."""

    def __init__(self, url):
        self.url = url

    def query(self, sql, timeout=60):
        """Rows as lists of strings ('' for NULL)."""
        out = subprocess.run(["psql", "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                              self.url, "-c", sql], capture_output=True, text=True,
                             timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"psql failed: {out.stderr.strip()} (sql: {sql[:200]})")
        return [line.split("\t") for line in out.stdout.splitlines() if line != ""]

    def value(self, sql):
        rows = self.query(sql)
        return rows[0][0] if rows else None

    def uploads(self, where="true"):
        cols = ["id", "status", "declared_size", "upload_offset", "part_size", "object_key",
                "storage_upload_id", "sha256", "lease_until", "user_id"]
        rows = self.query(f"SELECT {', '.join(cols)} FROM uploads WHERE {where} ORDER BY id")
        out = []
        for r in rows:
            u = dict(zip(cols, r))
            for k in ("declared_size", "upload_offset", "part_size"):
                u[k] = int(u[k])
            out.append(u)
        return out

    def parts(self, upload_id):
        rows = self.query("SELECT part_number, size, etag, digest FROM upload_parts "
                          f"WHERE upload_id = '{upload_id}' ORDER BY part_number")
        return [(int(n), int(s), e, h) for n, s, e, h in rows]

    def all_parts(self):
        """{upload id: [(number, size, etag, digest)]} of every upload."""
        out = {}
        for u, n, size, etag, sha in self.query(
                "SELECT upload_id, part_number, size, etag, digest FROM upload_parts "
                "ORDER BY upload_id, part_number"):
            out.setdefault(u, []).append((int(n), int(size), etag, sha))
        return out

    def audit_count(self, action, target_id):
        return int(self.value(f"SELECT count(*) FROM audit_events WHERE action = '{action}' "
                              f"AND target_id = '{target_id}'"))


class SqliteDb(Db):
    """The same queries on a SQLite file (medport's single-server layout). Read-only unless
    `writable`: a read-only connection never checkpoints or removes the WAL when it closes,
    so reading here cannot disturb a running medport (see fault-sqlite-reader.py for
    what a writable reader can do)."""

    def __init__(self, path, writable=False):
        self.path = path
        self.url = path
        self.writable = writable

    def query(self, sql, timeout=60):
        import sqlite3
        if self.writable:
            conn = sqlite3.connect(self.path, timeout=timeout)
        else:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=timeout)
        try:
            cur = conn.execute(sql)
            rows = cur.fetchall()
            conn.commit()
        finally:
            conn.close()
        return [["" if v is None else str(v) for v in r] for r in rows]


class SharedPgDatabase(Db):
    """A fresh database on the shared test PostgreSQL server, dropped at the end."""

    def __init__(self, admin_url, name):
        self.admin = Db(admin_url)
        self.name = name
        self.admin.query(f'CREATE DATABASE "{name}"')
        u = urllib.parse.urlparse(admin_url)
        super().__init__(urllib.parse.urlunparse(u._replace(path=f"/{name}")))

    def drop(self):
        self.admin.query(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


class PgCluster(Db):
    """A private PostgreSQL cluster (initdb + pg_ctl) on a free port in `path`, so a
    scenario can stop and start its database without touching the shared one."""

    def __init__(self):
        # A directory of its own: as root the cluster runs as `postgres`, which must own it.
        path = tempfile.mkdtemp(prefix="medport-fault-pg-",
                                dir=os.environ.get("MEDPORT_FAULT_DIR") or tempfile.gettempdir())
        self.path = path
        self.port = free_port()
        self.data = os.path.join(path, "pgdata")
        self.logfile = os.path.join(path, "postgres.log")
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(path, "postgres", "postgres")
        self._run([pg_bin("initdb"), "-D", self.data, "-U", "postgres", "--auth=trust",
                   "-E", "UTF8", "--no-sync"])
        with open(os.path.join(self.data, "postgresql.conf"), "a", encoding="utf-8") as f:
            f.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{path}'\nfsync = off\n"
                    "max_connections = 200\n")
        super().__init__(f"postgres://postgres@127.0.0.1:{self.port}/postgres")

    def _run(self, cmd):
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {out.stderr.strip() or out.stdout.strip()}")
        return out

    def start(self):
        self._run([pg_bin("pg_ctl"), "-D", self.data, "-l", self.logfile, "-w", "-t", "60",
                   "start"])
        return self

    def stop(self, mode="fast"):
        self._run([pg_bin("pg_ctl"), "-D", self.data, "-m", mode, "-w", "-t", "60", "stop"])

    def running(self):
        return subprocess.run([pg_bin("pg_ctl"), "-D", self.data, "status"],
                              capture_output=True).returncode == 0 if not self._as_postgres else \
            subprocess.run(["runuser", "-u", "postgres", "--", pg_bin("pg_ctl"), "-D",
                            self.data, "status"], capture_output=True).returncode == 0

    def destroy(self):
        try:
            if self.running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.path, ignore_errors=True)


class Gate:
    """Holds medport at one point of a write, in its own test database: a trigger on
    `uploads` waits for a shared advisory lock before the row changes in a given way, and
    the scenario holds that lock exclusively to keep medport waiting there (for example
    after a part is in storage and before the offset moves) while it kills the process.
    When the lock is not held the trigger costs nothing but the lock check."""

    GATES = {
        # The offset moves: storage already holds the part or tail being recorded.
        "commit": (7001, "NEW.upload_offset IS DISTINCT FROM OLD.upload_offset"),
        # The multipart upload exists in storage; the row does not know its id yet.
        "storage_id": (7002, "OLD.storage_upload_id IS NULL AND NEW.storage_upload_id IS NOT NULL"),
        # The last part is stored; the commit recording it (and `completing`) has not happened.
        "completing": (7004, "OLD.status = 'active' AND NEW.status = 'completing'"),
        # Storage completed the object; the row is not verified yet.
        "verified": (7003, "OLD.sha256 IS NULL AND NEW.sha256 IS NOT NULL"),
    }

    @classmethod
    def install(cls, db):
        for name, (key, cond) in cls.GATES.items():
            db.query(f"""
                CREATE OR REPLACE FUNCTION fault_gate_{name}() RETURNS trigger AS $$
                BEGIN PERFORM pg_advisory_xact_lock_shared({key}); RETURN NEW; END
                $$ LANGUAGE plpgsql;
                DROP TRIGGER IF EXISTS fault_gate_{name} ON uploads;
                CREATE TRIGGER fault_gate_{name} BEFORE UPDATE ON uploads FOR EACH ROW
                    WHEN ({cond}) EXECUTE FUNCTION fault_gate_{name}();""")

    def __init__(self, db, name):
        self.key = self.GATES[name][0]
        self.name = name
        self.db = db
        self.proc = subprocess.Popen(["psql", "-X", "-q", "-At", db.url], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self._send(f"SELECT pg_advisory_lock({self.key});\n\\echo held\n")
        for line in self.proc.stdout:
            if line.strip() == "held":
                break
        else:
            raise RuntimeError(f"could not hold gate {name}")

    def _send(self, text):
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def waiting(self):
        """How many medport transactions wait at this gate."""
        return int(self.db.value(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            f"AND objid = {self.key}"))

    def release(self):
        if self.proc.poll() is None:
            try:
                self._send("\\q\n")
                self.proc.stdin.close()
            except OSError:
                pass
            self.proc.wait(timeout=30)
