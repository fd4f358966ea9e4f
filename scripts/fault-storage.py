#!/usr/bin/env python3
"""Storage outage: stop the S3 server while medport receives a tus upload. The client must
get 503 with `Retry-After`, the upload's offset must never claim bytes that are not
stored, and once S3 is back the upload resumes and completes with the right SHA-256.

  scripts/fault-storage.py

Setup: a private SeaweedFS (the shared one is never stopped) on free ports, a fresh
database on the shared test PostgreSQL, the release binary. Phases:

  1 outage mid-PATCH   a 41 MiB upload streams at 8 MiB/s; S3 is killed (SIGKILL) after
                       two parts: the PATCH answers 503 + Retry-After.
  2 during the outage  HEAD answers the offset (<= bytes sent); POST /tus/ and PATCH answer
                       503 + Retry-After and change nothing; medport stays up.
  3 S3 back            every recorded part is in storage with its size and ETag, the tail
                       holds the file's bytes; the upload resumes and completes: the row's
                       and the stored object's SHA-256 are the file's.
  4 outage at the end  S3 is killed once the last part is stored, before the object is
                       assembled (medport held there by a database gate, then let go): the
                       PATCH answers 503, no verdict is recorded; with S3 back, the cleanup
                       worker's recovery pass (row aged past the 2 min stall threshold)
                       completes it.

Quick: under 1.5 minutes. Exit status 1 when anything is lost or wrong.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl  # noqa: E402
from faultlib import MIB  # noqa: E402


class Scenario:
    def __init__(self):
        self.checks = fl.Checks("fault-storage")

    def setup(self):
        env, stamp, self.work = fl.start_run("storage")
        self.weed = fl.Seaweed(self.work).start()
        self.s3 = self.weed.s3()
        self.bucket = fl.shared_bucket(self.s3, "storage", stamp)
        self.db = fl.shared_database(env, "storage", stamp)
        self.medport, self.key = fl.prepared_medport(fl.build_medport(), {
            "DATABASE_URL": self.db.url,
            "MEDPORT_DATA_DIR": os.path.join(self.work, "data"),
            "MEDPORT_CLEANUP_INTERVAL_SECONDS": "2",
            **self.s3.medport_env(self.bucket),
        }, os.path.join(self.work, "medport.log"), f"storage-{stamp}@example.org")
        fl.Gate.install(self.db)
        self.medport.start()
        self.tus = fl.Tus(self.medport.url, key=self.key, timeout=180)

    def cleanup(self, success):
        if getattr(self, "medport", None):
            self.medport.stop()
        if getattr(self, "weed", None):
            self.weed.stop()
        if getattr(self, "db", None):
            if success:
                self.db.drop()
            else:
                fl.log(f"kept database {self.db.name}")
        fl.remove_workdir(self.work, success)

    def row(self, upload_id):
        return self.db.uploads(f"id = '{upload_id}'")[0]

    def service_unavailable(self, status, headers, what):
        retry = headers.get("retry-after", "")
        self.checks.ok(status == 503 and retry.isdigit() and int(retry) > 0,
                       f"{what}: 503 with Retry-After", f"status {status}, Retry-After {retry!r}")

    def run(self):
        c = self.checks
        self.setup()
        content = fl.Content(4242, 41 * MIB + 777)
        status, uid, _ = self.tus.create(content)
        c.eq(status, 201, "create the upload")
        status, off, _, _ = self.tus.patch(uid, content, 0, 10 * MIB + 3)
        c.eq((status, off), (204, 10 * MIB + 3), "first PATCH (one part and a tail)")

        # ---------------------------------------------------------- 1: outage mid-PATCH
        sender = fl.BackgroundPatch(self.tus, uid, content, off, content.size, pace=8 * MIB)
        try:
            fl.wait_for(lambda: len(self.db.parts(uid)) >= 2, 30, what="two parts recorded")
        except TimeoutError as e:
            c.ok(False, "two parts recorded before the outage", str(e))
        time.sleep(0.4)
        sent_at_outage = self.tus.sent_max[uid]
        self.weed.stop()
        t0 = time.monotonic()
        fl.log(f"S3 stopped at {sent_at_outage} bytes sent")
        answer = sender.join(timeout=300)
        answer_s = time.monotonic() - t0
        if answer:
            status, new, headers, body = answer
            self.service_unavailable(status, headers, f"PATCH during the outage ({answer_s:.1f} s)")
            fl.log(f"PATCH answered {status} after {answer_s:.1f} s: {body[:120]!r}")
        else:
            c.ok(False, "PATCH during the outage gets an answer", sender.error)

        # ---------------------------------------------------------- 2: during the outage
        status, offset, _ = self.tus.head(uid)
        c.eq(status, 200, "HEAD during the outage")
        c.ok(offset is not None and offset <= self.tus.sent_max[uid],
             "HEAD offset <= bytes sent", f"{offset} > {self.tus.sent_max[uid]}")
        c.eq(offset, self.row(uid)["upload_offset"], "HEAD offset is the row's")
        fl.log(f"offset during the outage: {offset} of {self.tus.sent_max[uid]} sent")
        before = len(self.db.uploads())
        other = fl.Content(4343, 9 * MIB)
        status, new_id, headers = self.tus.create(other)
        self.service_unavailable(status, headers, "POST /tus/ during the outage")
        left = [u for u in self.db.uploads("status = 'active'") if u["id"] != uid]
        c.ok(not left, "a refused creation leaves no active upload", str(left))
        t1 = time.monotonic()
        status, new, headers, _ = self.tus.patch(uid, content, offset, min(content.size, offset + 3 * MIB))
        self.service_unavailable(status, headers,
                                 f"PATCH after the outage began ({time.monotonic() - t1:.1f} s)")
        c.eq(self.row(uid)["upload_offset"], offset, "a refused PATCH does not move the offset")
        c.ok(self.medport.alive(), "medport still running")
        c.ok(len(self.db.uploads()) <= before + 1, "at most the refused creation's row was added")

        # ---------------------------------------------------------- 3: S3 back, resume
        self.weed.start()
        fl.log("S3 restarted")
        row = self.row(uid)
        problems = fl.offset_backed(self.db, self.s3, self.bucket, row, content)
        c.ok(not problems, "the offset is backed by storage after the outage", "; ".join(problems))
        status, offset, _ = self.tus.head(uid)
        t, retries = time.monotonic(), []
        for attempt in range(60):
            status, new, headers, body = self.tus.patch(uid, content, offset, content.size)
            if status in (423, 503):
                retries.append(status)
                time.sleep(1)
                continue
            break
        fl.log(f"resumed after {time.monotonic() - t:.1f} s; answers before: {retries}")
        c.eq((status, new), (204, content.size), "resume after the outage completes")
        fl.check_completed(c, self.db, self.s3, self.bucket, uid, content, "resumed upload")

        # ---------------------------------------------------------- 4: outage at completion
        last = fl.Content(4444, 17 * MIB + 11)
        status, lid, _ = self.tus.create(last)
        status, off, _, _ = self.tus.patch(lid, last, 0, 16 * MIB)
        c.eq((status, off), (204, 16 * MIB), "second upload: two whole parts")
        gate = fl.Gate(self.db, "commit")
        sender = fl.BackgroundPatch(self.tus, lid, last, off, last.size)
        fl.wait_for(gate.waiting, 30, what="the last part's commit at the gate")
        self.weed.stop()
        fl.log("S3 stopped after the last part was stored, before it is recorded")
        gate.release()
        answer = sender.join(timeout=300)
        if answer:
            status, new, headers, body = answer
            self.service_unavailable(status, headers, "last PATCH when S3 fails at completion")
        else:
            c.ok(False, "last PATCH gets an answer", sender.error)
        row = self.row(lid)
        fl.log(f"after the failed completion: status {row['status']}, offset {row['upload_offset']}")
        c.ok(row["sha256"] == "" and row["status"] in ("active", "completing"),
             "no verdict recorded while storage is down", str(row["status"]))
        status, offset, _ = self.tus.head(lid)
        c.ok(offset <= self.tus.sent_max[lid], "HEAD offset <= bytes sent",
             f"{offset} > {self.tus.sent_max[lid]}")
        self.weed.start()
        fl.log("S3 restarted")
        if row["status"] == "completing":
            # The recovery pass takes completions idle for 2 min; age the row instead of waiting.
            self.db.query("UPDATE uploads SET updated_at = updated_at - interval '3 minutes' "
                          f"WHERE id = '{lid}'")
        else:
            status, new, _, _ = self.tus.patch(lid, last, offset, last.size)
            c.eq(status, 204, "resume the last PATCH")
        try:
            fl.wait_for(lambda: self.row(lid)["status"] == "completed", 60,
                        what="the recovery pass to complete the upload")
        except TimeoutError as e:
            c.ok(False, "the interrupted completion finishes once S3 is back", str(e))
        fl.check_completed(c, self.db, self.s3, self.bucket, lid, last, "completion after the outage")
        left = [k for k, _ in self.s3.multipart_uploads(self.bucket)]
        c.ok(not left, "no multipart upload left but abandoned ones", ", ".join(left))
        self.medport.closing_checks(c)


if __name__ == "__main__":
    fl.run_scenario(Scenario())
