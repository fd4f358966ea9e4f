#!/usr/bin/env python3
"""SQLite layout, crash with another reader: medport on its single-server layout (SQLite in
WAL mode) keeps every acknowledged upload when some other process reads the database
(an operator's `sqlite3`, a backup) and medport is then killed.

  scripts/fault-sqlite-reader.py

Two runs on fresh data directories, each: start medport -> upload file 1 (tus, 204) ->
another process opens the database and reads it (the `sqlite3` shell, or Python's sqlite3
with a normal read-write connection) -> upload file 2 (204) -> that reader must see 2
uploads -> SIGKILL medport -> the database must still hold both uploads.

  with /readyz   medport is started as an operator or load balancer would, /readyz
                 polled until it answers 200;
  control        /readyz is never called (readiness taken from /healthz): shows whether
                 the readiness check is what makes the difference.

Quick: about 10 seconds. Exit status 1 when an acknowledged upload is lost.
"""

import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl  # noqa: E402
from faultlib import MIB  # noqa: E402


def reader_count(path):
    """Uploads seen by a separate process with an ordinary read-write connection."""
    if shutil.which("sqlite3"):
        out = subprocess.run(["sqlite3", path, "SELECT count(*) FROM uploads"],
                             capture_output=True, text=True, timeout=30)
        return int(out.stdout.strip() or -1)
    return int(fl.SqliteDb(path, writable=True).value("SELECT count(*) FROM uploads"))


def run(checks, binary, work, label, use_readyz):
    data = os.path.join(work, label.replace(" ", "-"))
    m, key = fl.prepared_medport(binary, {"MEDPORT_DATA_DIR": data},
                                 os.path.join(work, f"medport-{label}.log"),
                                 f"reader-{int(time.time())}@example.org")
    if use_readyz:
        m.start()
    else:
        logf = open(m.log_path, "ab")
        m.proc = subprocess.Popen([m.binary, "serve"], env=m.env, stdout=logf,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        logf.close()
        fl.wait_for(lambda: not fl.port_free(m.port), 30, what="medport to listen")
        fl.wait_for(lambda: fl.get(m.url, "/healthz")[0] == 200, 30, what="/healthz")
    tus = fl.Tus(m.url, key=key)
    db_path = os.path.join(data, "medport.db")
    acknowledged = []
    try:
        for seed in (1, 2):
            content = fl.Content(seed, MIB)
            status, uid, _ = tus.create(content)
            status, offset, _, _ = tus.patch(uid, content, 0, content.size)
            checks.eq(status, 204, f"{label}: upload {seed} acknowledged")
            acknowledged.append(uid)
            if seed == 1:
                checks.eq(reader_count(db_path), 1, f"{label}: another process reads 1 upload")
        checks.eq(reader_count(db_path), 2,
                  f"{label}: a new reader sees the upload acknowledged after the first read")
    finally:
        m.kill()
    rows = fl.SqliteDb(db_path).query("SELECT id FROM uploads")
    kept = [u for u in acknowledged if [u] in rows]
    checks.eq(len(kept), len(acknowledged),
              f"{label}: every acknowledged upload survives SIGKILL")


def main():
    checks = fl.Checks("fault-sqlite-reader")
    work = fl.workdir("sqlite-reader")
    try:
        binary = fl.build_medport()
        run(checks, binary, work, "with readyz", True)
        run(checks, binary, work, "control", False)
    except Exception as e:  # noqa: BLE001 - reported as a failure with the logs kept
        import traceback
        traceback.print_exc()
        checks.ok(False, "scenario ran to the end", repr(e))
    checks.done(lambda ok: fl.remove_workdir(work, ok))


if __name__ == "__main__":
    main()
