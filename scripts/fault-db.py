#!/usr/bin/env python3
"""Database outage: stop PostgreSQL under a running medport. Pages must answer a friendly
503, `/readyz` 503, nothing may panic and no partial row may be left; once PostgreSQL is
back the same medport process recovers by itself.

  scripts/fault-db.py

Setup: a private PostgreSQL cluster (initdb + pg_ctl on a free port in a temp directory of
its own, run as `postgres` when root; the shared one is never stopped), a fresh bucket on
the shared S3 test server, the release binary. Phases:

  1 before   a signed-in browser session, an upload with one part and a tail, and a
             second PATCH streaming (4 MiB/s) when the database goes away;
  2 outage   `pg_ctl stop -m immediate` (a crash): the streaming PATCH answers 503;
             GET /uploads (HTML) answers a friendly 503 page with Retry-After and no
             internals; /readyz 503, /healthz 200; tus HEAD, POST and PATCH 503 with
             Retry-After; every answer within 15 s; the process stays up;
  3 back     PostgreSQL restarted: /readyz 200 within 30 s from the same process; the
             session still works; no row is partial: the refused creation left none, the
             upload's offset is backed by its recorded parts and tail in storage; the
             upload resumes and completes with the right SHA-256; no panic in the log.
  4 again    a second outage while idle (`-m fast`), recovered the same way.

Quick: under 1.5 minutes. Exit status 1 when anything is lost or wrong.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl  # noqa: E402
from faultlib import MIB  # noqa: E402

INTERNALS = ("diesel", "postgres", "r2d2", "connection refused", "panicked", "pool",
             "sqlstate", "database query")


class Scenario:
    def __init__(self):
        self.checks = fl.Checks("fault-db")

    def setup(self):
        env, stamp, self.work = fl.start_run("db")
        self.pg = fl.PgCluster().start()
        self.s3 = fl.S3.from_services(env)
        self.bucket = fl.shared_bucket(self.s3, "db", stamp)
        self.email = f"db-{stamp}@example.org"
        self.medport, self.key = fl.prepared_medport(fl.build_medport(), {
            "DATABASE_URL": self.pg.url,
            "MEDPORT_DATA_DIR": os.path.join(self.work, "data"),
            **self.s3.medport_env(self.bucket),
        }, os.path.join(self.work, "medport.log"), self.email)
        self.medport.start()
        self.cookie = fl.sign_in(self.medport.url, self.email)
        self.tus = fl.Tus(self.medport.url, key=self.key, timeout=60)

    def cleanup(self, success):
        if getattr(self, "medport", None):
            self.medport.stop()
        if getattr(self, "pg", None):
            if success:
                self.pg.destroy()
            else:
                self.pg.stop("immediate") if self.pg.running() else None
                fl.log(f"kept the PostgreSQL cluster in {self.pg.path}")
        if success and getattr(self, "bucket", None):
            self.s3.remove_bucket(self.bucket)
        fl.remove_workdir(self.work, success)

    def unavailable(self, status, headers, what, seconds=None):
        retry = headers.get("retry-after", "")
        took = f" ({seconds:.1f} s)" if seconds is not None else ""
        ok = status == 503 and retry.isdigit()
        if seconds is not None:
            ok = ok and seconds < 15
        return self.checks.ok(ok, f"{what}: 503 with Retry-After{took}",
                              f"status {status}, Retry-After {retry!r}")

    def timed(self, fn, *args, **kw):
        t = time.monotonic()
        try:
            out = fn(*args, **kw)
        except fl.Interrupted as e:
            out = e
        return out, time.monotonic() - t

    def outage_checks(self, uid, label):
        c = self.checks
        (status, headers, body), s = self.timed(
            fl.get, self.medport.url, "/uploads", cookie=self.cookie,
            headers={"Accept": "text/html"})
        self.unavailable(status, headers, f"{label}: GET /uploads", s)
        text = body.decode("utf-8", "replace")
        lower = text.lower()
        c.ok(headers.get("content-type", "").startswith("text/html")
             and "temporarily unavailable" in lower,
             f"{label}: the page is the friendly HTML error page", text[:200])
        c.ok(not any(w in lower for w in INTERNALS), f"{label}: the page shows no internals",
             [w for w in INTERNALS if w in lower])
        (status, headers, body), s = self.timed(fl.get, self.medport.url, "/readyz")
        self.unavailable(status, headers, f"{label}: /readyz", s)
        (status, _, _), s = self.timed(fl.get, self.medport.url, "/healthz")
        c.eq(status, 200, f"{label}: /healthz still 200 (the process is alive)")
        out, s = self.timed(self.tus.head, uid)
        if isinstance(out, Exception):
            c.ok(False, f"{label}: tus HEAD answers", str(out))
        else:
            self.unavailable(out[0], out[2], f"{label}: tus HEAD", s)
        out, s = self.timed(self.tus.create, fl.Content(999, 9 * MIB))
        if isinstance(out, Exception):
            c.ok(False, f"{label}: tus POST answers", str(out))
        else:
            self.unavailable(out[0], out[2], f"{label}: tus POST", s)
        out, s = self.timed(self.tus.patch, uid, self.content, self.offset,
                            self.offset + MIB)
        if isinstance(out, Exception):
            c.ok(False, f"{label}: tus PATCH answers", str(out))
        else:
            self.unavailable(out[0], out[2], f"{label}: tus PATCH", s)
        c.ok(self.medport.alive(), f"{label}: medport still running")

    def recovery_checks(self, label):
        c = self.checks
        pid = self.medport.proc.pid
        t = time.monotonic()
        try:
            fl.wait_for(lambda: fl.get(self.medport.url, "/readyz")[0] == 200, 30, every=0.5,
                        what="/readyz 200")
            c.ok(True, f"{label}: /readyz 200 again after {time.monotonic() - t:.1f} s")
        except TimeoutError as e:
            c.ok(False, f"{label}: /readyz 200 again", str(e))
        c.eq(self.medport.proc.pid if self.medport.alive() else None, pid,
             f"{label}: the same medport process serves")
        status, _, body = fl.get(self.medport.url, "/uploads", cookie=self.cookie,
                                 headers={"Accept": "text/html"})
        c.eq(status, 200, f"{label}: GET /uploads with the same session")

    def run(self):
        c = self.checks
        self.setup()
        self.content = content = fl.Content(5151, 37 * MIB + 5)
        status, uid, _ = self.tus.create(content)
        c.eq(status, 201, "create the upload")
        status, off, _, _ = self.tus.patch(uid, content, 0, 9 * MIB + 1)
        c.eq((status, off), (204, 9 * MIB + 1), "first PATCH")
        sender = fl.BackgroundPatch(self.tus, uid, content, off, content.size, pace=4 * MIB)
        fl.wait_for(lambda: len(self.pg.parts(uid)) >= 2, 30, what="a second part recorded")
        time.sleep(1.0)
        self.pg.stop("immediate")
        fl.log("PostgreSQL stopped (immediate)")
        t = time.monotonic()
        if sender.join(timeout=120):
            status, _, headers, body = sender.answer
            self.unavailable(status, headers, "the PATCH streaming at the outage",
                             time.monotonic() - t)
        else:
            c.ok(False, "the PATCH streaming at the outage gets an answer", sender.error)
        self.offset = off
        self.outage_checks(uid, "outage 1")

        self.pg.start()
        fl.log("PostgreSQL started")
        self.recovery_checks("recovery 1")
        rows = self.pg.uploads()
        c.eq([r["id"] for r in rows], [uid], "no row from the refused creation")
        row = rows[0]
        c.ok(row["upload_offset"] <= self.tus.sent_max[uid], "offset <= bytes sent",
             f"{row['upload_offset']} > {self.tus.sent_max[uid]}")
        problems = fl.offset_backed(self.pg, self.s3, self.bucket, row, content)
        c.ok(not problems, "the offset is backed by the recorded parts and tail", "; ".join(problems))
        fl.log(f"offset after the outage: {row['upload_offset']}")
        status, offset, _ = self.tus.head(uid)
        c.eq(offset, row["upload_offset"], "HEAD answers the row's offset")
        t, locked = time.monotonic(), 0
        for _ in range(70):
            status, new, _, body = self.tus.patch(uid, content, offset, content.size)
            if status != 423:
                break
            # The PATCH cut off by the outage could not give its lease back (the database
            # was down): it runs out within 60 s.
            locked += 1
            time.sleep(1)
        fl.log(f"resumed after {locked} x 423 in {time.monotonic() - t:.0f} s")
        c.eq((status, new), (204, content.size), "resume completes")
        fl.check_completed(c, self.pg, self.s3, self.bucket, uid, content, "resumed upload")

        # A second outage while idle.
        self.offset = content.size
        self.pg.stop("fast")
        fl.log("PostgreSQL stopped (fast)")
        t = time.monotonic()
        (status, headers, _), s = self.timed(fl.get, self.medport.url, "/readyz")
        self.unavailable(status, headers, "outage 2: /readyz", s)
        (status, headers, body), s = self.timed(
            fl.get, self.medport.url, f"/uploads/{uid}", cookie=self.cookie,
            headers={"Accept": "text/html"})
        self.unavailable(status, headers, "outage 2: GET /uploads/{id}", s)
        self.pg.start()
        self.recovery_checks("recovery 2")
        status, digest, size = fl.download_sha256(self.medport.url, self.cookie, uid)
        c.eq((status, digest), (200, content.sha256()), "download after the outages")
        self.medport.closing_checks(c)


if __name__ == "__main__":
    fl.run_scenario(Scenario())
