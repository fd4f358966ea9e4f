#!/usr/bin/env python3
"""Crash mid-upload: SIGKILL medport at random moments of multi-part tus uploads, restart,
resume; every upload must complete with the right SHA-256, no part may be counted twice,
and after `medport cleanup --once` with every unfinished upload expired no multipart
upload may be left on the S3 server.

  scripts/fault-crash.py [--rounds 20] [--seed N] [--modes M,M,...] [--no-lease-wait]

`--modes completing` (one round, killed in that window) reproduces a single case.

Setup: the release binary on a fresh database of the shared test PostgreSQL and a fresh
bucket of the shared S3 test server (neither is stopped). Two tus clients upload 17-41 MiB
DICOM files concurrently in PATCHes of random, unaligned sizes (32 MiB/s each), so kills
land in part uploads, partial tails and completions. Each round:

  start medport -> for every known upload: HEAD offset <= bytes ever sent, offset equal to
  the row, recorded parts and tail present in storage with the file's bytes -> upload ->
  SIGKILL

Most kills come at a random moment. Some are placed exactly with a gate (a trigger in the
test database that waits on an advisory lock the script holds; see faultlib.Gate):
  commit      a part or tail is in storage, the offset not yet moved (storage write, then
              database update);
  storage_id  the multipart upload exists in storage, the row does not name it yet;
  completing  the last part is in storage; the commit that records it (and moves the row
              to `completing` in the same write) has not happened;
  verified    storage assembled the object, the row is not verified yet.
The script proves each gated kill is inside its window (storage ahead of the database)
before killing.

A killed instance's lease runs out after 60 s. The first gated round waits that out for
real (PATCH answers 423, then succeeds); the other rounds clear the dead process's lease in
the database two seconds after the kill, standing in for those 60 s. Cleared at once, a
request the killed process had already sent (a tail's upload) could still land in the
bucket after the next process swept it, which the real lease rules out. Completions a kill
cut short are left to the recovery pass of `medport cleanup --once` (after their row is
made 2 min old, the stall threshold). Finally every unfinished upload (one left half-way on purpose,
plus any the client lost track of) is given an expiry in the past and `medport cleanup
--once` runs: every such upload must be `expired` and ListMultipartUploads empty.

Quick: 2-3 minutes (one minute of it the real lease wait, 40 s the settles after kills).
Exit status 1 when anything is lost or wrong.
"""

import argparse
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl  # noqa: E402
from faultlib import MIB  # noqa: E402

PACE = 32 * MIB
SLOTS = 2
# Seconds between a kill and clearing the dead process's leases.
SETTLE = 2


class File:
    def __init__(self, content):
        self.content = content
        self.id = None
        self.done = False


class Scenario:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.checks = fl.Checks("fault-crash")
        self.next_seed = args.seed * 1000
        self.files = []          # every file the clients started
        self.orphans = []        # files whose creation was killed before the client got an id
        self.unexpected = []     # answers a client should never get
        self.lock = threading.Lock()
        self.settled = set()     # completed uploads already seen as such after a restart

    # ------------------------------------------------------------------ setup

    def setup(self):
        env = fl.services_env()
        self.s3 = fl.S3.from_services(env)
        stamp = fl.run_stamp()
        self.bucket = fl.shared_bucket(self.s3, "crash", stamp)
        self.db = fl.shared_database(env, "crash", stamp)
        self.work = fl.workdir("crash")
        binary = fl.build_medport()
        self.medport, self.key = fl.prepared_medport(binary, {
            "DATABASE_URL": self.db.url,
            "MEDPORT_DATA_DIR": os.path.join(self.work, "data"),
            **self.s3.medport_env(self.bucket),
        }, os.path.join(self.work, "medport.log"), f"crash-{stamp}@example.org")
        fl.Gate.install(self.db)
        self.tus = fl.Tus(self.medport.url, key=self.key)

    def cleanup(self, success):
        if getattr(self, "medport", None):
            self.medport.kill()
        fl.drop_shared(self.s3, self.bucket, self.db, success)
        fl.remove_workdir(self.work, success)

    def new_file(self):
        with self.lock:
            self.next_seed += 1
            seed = self.next_seed
        rng = random.Random(seed)
        size = rng.choice([
            rng.randint(17 * MIB, 41 * MIB),         # unaligned: the last part is short
            8 * MIB * rng.randint(3, 5),             # exactly whole parts
            8 * MIB * rng.randint(2, 4) + rng.randint(1, 4096),
        ])
        return File(fl.Content(seed, size))

    # ------------------------------------------------------------------ the clients

    def drive(self, slot, rng, stop, pace=PACE):
        """One tus client: finish its file, then start the next, until the server dies."""
        try:
            while not stop.is_set():
                f = slot.get("file")
                if f is None or f.done:
                    f = self.new_file()
                    slot["file"] = f
                    with self.lock:
                        self.files.append(f)
                if f.id is None:
                    status, upload_id, _ = self.tus.create(f.content)
                    if status == 503:
                        time.sleep(1)
                        continue
                    if status != 201:
                        self.unexpected.append(f"POST answered {status}")
                        return
                    f.id = upload_id
                status, offset, _ = self.tus.head(f.id)
                if status != 200:
                    self.unexpected.append(f"HEAD {f.id} answered {status}")
                    return
                if offset > self.tus.sent_max.get(f.id, 0):
                    self.unexpected.append(f"HEAD {f.id}: offset {offset} beyond the "
                                           f"{self.tus.sent_max.get(f.id, 0)} bytes ever sent")
                if offset == f.content.size:
                    f.done = True
                    continue
                end = min(f.content.size, offset + rng.randint(1 * MIB, 12 * MIB))
                status, new, _, body = self.tus.patch(f.id, f.content, offset, end, pace=pace,
                                                      stop_event=stop)
                if status == 423:
                    time.sleep(1)
                    continue
                if status != 204 or new != end:
                    self.unexpected.append(f"PATCH {f.id} {offset}..{end} answered {status} "
                                           f"offset {new}: {body[:200]!r}")
                    return
                if end == f.content.size:
                    f.done = True
        except fl.Interrupted:
            return

    # ------------------------------------------------------------------ checks

    def check_known_uploads(self, label):
        """After a restart: every upload's offset is backed by storage and never beyond
        what the client sent."""
        problems = []
        all_rows = {r["id"]: r for r in self.db.uploads()}
        all_parts = self.db.all_parts()
        for f in [f for f in self.files if f.id and f.id not in self.settled]:
            status, offset, _ = self.tus.head(f.id)
            rows = [all_rows[f.id]] if f.id in all_rows else []
            if rows and rows[0]["status"] == "completed" and offset == f.content.size:
                self.settled.add(f.id)  # checked in full at the end
                continue
            if status != 200 or not rows:
                problems.append(f"{f.id}: HEAD {status}, rows {len(rows)}")
                continue
            row = rows[0]
            sent = self.tus.sent_max.get(f.id, 0)
            if offset > sent:
                problems.append(f"{f.id}: offset {offset} > {sent} bytes sent")
            if row["status"] == "active":
                if offset != row["upload_offset"]:
                    problems.append(f"{f.id}: HEAD {offset}, row {row['upload_offset']}")
                problems += [f"{f.id}: {p}" for p in fl.offset_backed(
                    self.db, self.s3, self.bucket, row, f.content, all_parts.get(f.id, []))]
            elif offset != f.content.size:
                problems.append(f"{f.id}: {row['status']} but HEAD offset {offset}")
        self.checks.ok(not problems, f"{label}: offsets backed by storage and <= bytes sent",
                       "; ".join(problems[:5]))

    def storage_ahead(self, gate):
        """Whether storage holds something the database does not record yet (the gated
        write's window)."""
        rows = self.db.uploads("true")
        if gate == "storage_id":
            pending = {r["object_key"] for r in rows if not r["storage_upload_id"]}
            return any(key in pending for key, _ in self.s3.multipart_uploads(self.bucket))
        # `completing` needs nothing of its own: the commit of the last byte also moves the row
        # to `completing`, so its window is the last part stored and not yet recorded.
        if gate == "verified":
            for r in rows:
                if r["status"] == "completing" and not r["sha256"]:
                    if self.s3.sha256(self.bucket, r["object_key"])[1] == r["declared_size"]:
                        return True
            return False
        keys = self.s3.keys(self.bucket)
        for r in rows:
            if r["status"] != "active" or not r["storage_upload_id"]:
                continue
            stored = self.s3.list_parts(self.bucket, r["object_key"], r["storage_upload_id"]) or {}
            if len(stored) > len(self.db.parts(r["id"])):
                return True
            prefix = r["object_key"] + ".tail."
            if any(k.startswith(prefix) and int(k[len(prefix):]) > r["upload_offset"]
                   for k in keys):
                return True
        return False

    def clear_dead_leases(self):
        self.db.query("UPDATE uploads SET lease_token = NULL, lease_until = NULL "
                      "WHERE lease_until IS NOT NULL")

    # ------------------------------------------------------------------ rounds

    def round(self, n, mode, honest_wait):
        marks = [time.monotonic()]
        self.medport.start()
        marks.append(time.monotonic())
        self.check_known_uploads(f"round {n} start")
        marks.append(time.monotonic())
        stop = threading.Event()
        gate = fl.Gate(self.db, mode) if mode != "random" else None
        threads = []
        for i in range(SLOTS):
            slot = self.slots[i]
            # Gates at the end of an upload are reached sooner at full speed.
            pace = None if mode in ("completing", "verified") else PACE
            t = threading.Thread(target=self.drive,
                                 args=(slot, random.Random(self.rng.random()), stop, pace))
            t.start()
            threads.append(t)
        orphan = None
        if mode == "storage_id":
            orphan = self.new_file()
            t = threading.Thread(target=lambda: self._create_only(orphan))
            t.start()
            threads.append(t)
        if gate:
            try:
                fl.wait_for(gate.waiting, 60, what=f"a write at gate {mode}")
                self.checks.ok(self.storage_ahead(mode), f"round {n}: kill inside the {mode} "
                               "window (seen in storage and the rows)")
            except TimeoutError as e:
                self.checks.ok(False, f"round {n}: reach gate {mode}", str(e))
        else:
            time.sleep(self.rng.uniform(0.2, 2.5))
        marks.append(time.monotonic())
        leases = int(self.db.value("SELECT count(*) FROM uploads WHERE lease_until IS NOT NULL"))
        self.medport.kill()
        stop.set()
        if gate:
            gate.release()
        for t in threads:
            t.join(timeout=60)
        if orphan is not None:
            if orphan.id is None:
                self.orphans.append(orphan)
            else:
                self.files.append(orphan)
        marks.append(time.monotonic())
        steps = "/".join(f"{b - a:.1f}" for a, b in zip(marks, marks[1:]))
        fl.log(f"round {n} ({mode}): killed with {leases} lease(s) held; "
               f"{sum(f.done for f in self.files)}/{len(self.files)} files done "
               f"(start/check/run/stop {steps} s)")
        if honest_wait and leases:
            self.wait_out_lease(n)
        else:
            # A request the killed process had sent may still be finished by the S3 server
            # a moment later; the real lease (60 s) outlasts that by far, a cleared one not.
            time.sleep(SETTLE)
            self.clear_dead_leases()

    def _create_only(self, f):
        try:
            status, upload_id, _ = self.tus.create(f.content)
            if status == 201:
                f.id = upload_id
        except fl.Interrupted:
            pass

    def wait_out_lease(self, n):
        """Restart and resume without touching the lease: 423 until it runs out (60 s)."""
        self.medport.start()
        held = [r for r in self.db.uploads("lease_until IS NOT NULL AND status = 'active'")]
        f = next((f for f in self.files if held and f.id == held[0]["id"]), None)
        if f is None:
            self.checks.note(f"round {n}: the held lease was not on a client's upload")
            self.medport.kill()
            self.clear_dead_leases()
            return
        t0, locked = time.monotonic(), 0
        while time.monotonic() - t0 < 90:
            status, offset, _ = self.tus.head(f.id)
            end = min(f.content.size, offset + MIB)
            status, new, _, _ = self.tus.patch(f.id, f.content, offset, end)
            if status == 423:
                locked += 1
                time.sleep(2)
                continue
            self.checks.ok(status == 204 and new == end and locked > 0,
                           f"round {n}: the dead holder's lease blocks writes (423) until it runs out",
                           f"{locked} x 423, then {status} after {time.monotonic() - t0:.0f} s")
            if end == f.content.size:
                f.done = True
            break
        else:
            self.checks.ok(False, f"round {n}: lease runs out within 90 s")
        fl.log(f"round {n}: lease ran out after {time.monotonic() - t0:.0f} s")
        self.medport.kill()
        self.clear_dead_leases()

    # ------------------------------------------------------------------ the end

    def finish(self):
        c = self.checks
        self.medport.start()
        self.check_known_uploads("after the last kill")
        stop = threading.Event()
        for slot in self.slots:
            f = slot.get("file")
            if f is not None and not f.done:
                self.drive_to_end(f, stop)
        for f in self.files:
            if f.id and not f.done:
                self.drive_to_end(f, stop)
        missing = [f for f in self.files if f.id is None]
        c.ok(not missing, "every file the clients started got an upload id",
             f"{len(missing)} without")
        c.ok(not self.unexpected, "no unexpected answer during the rounds",
             "; ".join(self.unexpected[:5]))
        # An upload left half-way on purpose, for the expiry check.
        abandoned = self.new_file()
        status, abandoned.id, _ = self.tus.create(abandoned.content)
        self.tus.patch(abandoned.id, abandoned.content, 0, 10 * MIB + 5)
        # Completions a kill cut short: the recovery pass picks them up once stalled (2 min).
        stalled = self.db.value("SELECT count(*) FROM uploads WHERE status = 'completing'")
        if stalled != "0":
            fl.log(f"{stalled} completion(s) cut short: aging them past the stall threshold")
            self.db.query("UPDATE uploads SET updated_at = updated_at - interval '3 minutes' "
                          "WHERE status = 'completing'")
        out = self.medport.cli("cleanup", "--once")
        fl.log(f"cleanup --once (recovery): {out.stdout.strip()}")
        wait_ok = True
        try:
            fl.wait_for(lambda: self.db.value(
                "SELECT count(*) FROM uploads WHERE status = 'completing'") == "0", 60,
                what="completions to settle")
        except TimeoutError:
            wait_ok = False
        c.ok(wait_ok, "no upload left in `completing`")
        done = [f for f in self.files if f.id]
        for i, f in enumerate(done):
            fl.check_completed(c, self.db, self.s3, self.bucket, f.id, f.content,
                               f"upload {i + 1}/{len(done)} ({f.content.size} B)")
        sign_in_cookie = fl.sign_in(self.medport.url, self.db.value(
            "SELECT email FROM users LIMIT 1"))
        for f in done[:3]:
            status, digest, size = fl.download_sha256(self.medport.url, sign_in_cookie, f.id)
            c.eq((status, digest), (200, f.content.sha256()),
                 f"download of {f.id} through medport")
        self.medport.stop()
        self.expire_and_clean(abandoned)

    def drive_to_end(self, f, stop):
        for _ in range(200):
            if f.id is None:
                status, f.id, _ = self.tus.create(f.content)
            status, offset, _ = self.tus.head(f.id)
            if offset == f.content.size:
                f.done = True
                return
            status, new, _, body = self.tus.patch(f.id, f.content, offset, f.content.size)
            if status == 423:
                time.sleep(1)
            elif status != 204:
                self.unexpected.append(f"final PATCH {f.id} answered {status}: {body[:200]!r}")
                return

    def expire_and_clean(self, abandoned):
        c = self.checks
        active = self.db.uploads("status = 'active'")
        stuck = [u["id"] for u in active if u["upload_offset"] == u["declared_size"]]
        c.ok(not stuck, "no upload left `active` with every byte received (HEAD tells the "
             "client it is complete)", ", ".join(stuck))
        ids = {u["id"] for u in active}
        c.ok(abandoned.id in ids, "the abandoned upload is still active before the expiry")
        fl.log(f"{len(active)} unfinished upload(s) ({len(self.orphans)} lost by the client "
               "at creation); expiring them now")
        self.db.query("UPDATE uploads SET expires_at = (now() AT TIME ZONE 'utc') - "
                      "interval '1 minute' WHERE status = 'active'")
        out = self.medport.cli("cleanup", "--once")
        fl.log(f"cleanup --once: {out.stdout.strip()}")
        after = {u["id"]: u["status"] for u in self.db.uploads("true") if u["id"] in ids}
        c.ok(all(s == "expired" for s in after.values()),
             "every unfinished upload is expired after cleanup",
             str({k: v for k, v in after.items() if v != "expired"}))
        events = {i: self.db.audit_count("upload.expire", i) for i in ids}
        c.ok(all(n == 1 for n in events.values()), "one upload.expire event per expired upload",
             str({k: v for k, v in events.items() if v != 1}))
        left = self.s3.multipart_uploads(self.bucket)
        files = [k for k, _ in left if ".tail." not in k]
        tails = [k for k, _ in left if ".tail." in k]
        c.ok(not files, "no multipart upload of an upload's object left on the S3 server "
             "after cleanup", f"{len(files)} left: " + ", ".join(files[:6]))
        c.ok(not tails, "no multipart upload of a tail object left on the S3 server after "
             "cleanup", f"{len(tails)} left: " + ", ".join(tails[:6]))
        completed = {u["object_key"] for u in self.db.uploads("status = 'completed'")}
        stray = sorted(k for k in self.s3.keys(self.bucket) if k not in completed)
        c.ok(not stray, "no object in the bucket but the completed files",
             f"{len(stray)} stray: " + ", ".join(stray[:6]))

    def run(self):
        self.setup()
        self.slots = [{} for _ in range(SLOTS)]
        modes = [m for m in (self.args.modes or "").split(",") if m]
        for n in range(1, 0 if modes else self.args.rounds + 1):
            if n % 5 == 2:
                modes.append("commit")
            elif n % 10 == 4:
                modes.append("storage_id")
            elif n % 10 == 8:
                modes.append("verified")
            elif n % 10 == 0:
                modes.append("completing")
            else:
                modes.append("random")
        fl.log(f"seed {self.args.seed}; rounds: {' '.join(modes)}")
        honest_done = False
        for n, mode in enumerate(modes, 1):
            honest = not honest_done and mode == "commit" and not self.args.no_lease_wait
            self.round(n, mode, honest)
            honest_done = honest_done or honest
        self.finish()
        c = self.checks
        self.medport.closing_checks(c)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    p.add_argument("--modes", help="comma-separated kill modes instead of the usual schedule, "
                   "one round each: random, commit, storage_id, completing, verified")
    p.add_argument("--no-lease-wait", action="store_true",
                   help="clear the dead process's lease in every round (no 60 s wait)")
    args = p.parse_args()
    fl.run_scenario(Scenario(args))


if __name__ == "__main__":
    main()
