#!/usr/bin/env python3
"""Concurrency: 50 concurrent tus uploads of 20 MiB from 10 users, spread over two medport
instances on one PostgreSQL and one S3 bucket, with the cleanup worker running every
second on both while abandoned uploads expire. Every upload must complete with the right
SHA-256; no upload may be cleaned twice and none lost.

  scripts/fault-load.py [--uploads 50] [--users 10] [--size-mib 20] [--abandoned 60]
                       [--abandoned-with-bytes 10]

Setup: a fresh database on the shared test PostgreSQL, a fresh bucket on the shared S3
test server, the release binary started twice (one master key, cleanup every 1 s). Each
upload is one client thread; its PATCHes (3-7 MiB, unaligned) alternate between the two
instances, so every upload is continued by the instance that did not start it. Before the
load starts, `--abandoned` uploads are created and left (the first ones with a part and a
tail); two seconds into the load they are given an expiry in the past, and both cleanup
workers and two `medport cleanup --once` runs started at that moment race for them while
the load runs (60 due uploads: more than one claim batch of 50).

Checks: every upload completed, its parts numbered once and adding up, the row's and the
stored object's SHA-256 equal to the file's, one `upload.complete` each and no
`upload.expire`; every abandoned upload `expired` with exactly one `upload.expire` event,
no `upload.cleanup_failed`, its multipart upload and tail gone from storage; no other
object in the bucket; both instances up with no panic. Prints the throughput.

Quick: about 2 minutes (1000 MiB through medport, then read back). Exit status 1 when
anything is lost or wrong.
"""

import argparse
import concurrent.futures
import os
import random
import secrets
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl  # noqa: E402
from faultlib import MIB  # noqa: E402


class Scenario:
    def __init__(self, args):
        self.args = args
        self.checks = fl.Checks("fault-load")
        self.errors = []

    def setup(self):
        env, stamp, self.work = fl.start_run("load")
        self.s3 = fl.S3.from_services(env)
        self.bucket = fl.shared_bucket(self.s3, "load", stamp)
        self.db = fl.shared_database(env, "load", stamp)
        binary = fl.build_medport()
        master = secrets.token_hex(32)
        self.instances = []
        for name in ("a", "b"):
            self.instances.append(fl.Medport(binary, {
                "DATABASE_URL": self.db.url,
                "MEDPORT_DATA_DIR": os.path.join(self.work, f"data-{name}"),
                "MEDPORT_MASTER_KEY": master,
                "MEDPORT_CLEANUP_INTERVAL_SECONDS": "1",
                **self.s3.medport_env(self.bucket),
            }, os.path.join(self.work, f"medport-{name}.log")))
        self.instances[0].cli("migrate")
        t = time.monotonic()
        self.keys = [self.instances[0].user_with_key(f"load-{i}-{stamp}@example.org")
                     for i in range(self.args.users)]
        fl.log(f"{len(self.keys)} users with API keys in {time.monotonic() - t:.1f} s")
        for m in self.instances:
            m.start()

    def cleanup(self, success):
        for m in getattr(self, "instances", []):
            m.stop()
        if getattr(self, "db", None):
            fl.drop_shared(self.s3, self.bucket, self.db, success)
        fl.remove_workdir(self.work, success)

    def client(self, user, instance):
        return fl.Tus(self.instances[instance].url, key=self.keys[user], timeout=300)

    def upload(self, n, content):
        """One client: create on one instance, PATCH alternately on both."""
        user = n % len(self.keys)
        rng = random.Random(n)
        clients = [self.client(user, 0), self.client(user, 1)]
        t0 = time.monotonic()
        status, uid, _ = clients[n % 2].create(content)
        if status != 201:
            self.errors.append(f"upload {n}: POST answered {status}")
            return None, 0
        offset, turn, patches = 0, n + 1, 0
        while offset < content.size:
            end = min(content.size, offset + rng.randint(3 * MIB, 7 * MIB))
            status, new, _, body = clients[turn % 2].patch(uid, content, offset, end)
            patches += 1
            if status == 423:
                time.sleep(0.5)
                continue
            if status != 204 or new != end:
                self.errors.append(f"upload {n} ({uid}): PATCH {offset}..{end} on instance "
                                   f"{turn % 2} answered {status}, offset {new}: {body[:200]!r}")
                return uid, time.monotonic() - t0
            offset = new
            turn += 1
            if patches > 100:
                self.errors.append(f"upload {n}: too many PATCHes")
                break
        return uid, time.monotonic() - t0

    def abandon(self, count, with_bytes):
        """`count` uploads left unfinished; the first `with_bytes` have a part and a tail."""
        ids = []
        for n in range(count):
            content = fl.Content(900000 + n, 12 * MIB)
            client = self.client(n % len(self.keys), n % 2)
            status, uid, _ = client.create(content)
            if status != 201:
                self.errors.append(f"abandoned upload {n}: POST answered {status}")
                continue
            if n < with_bytes:
                status, new, _, _ = client.patch(uid, content, 0, 9 * MIB + 17 + n)
                if status != 204:
                    self.errors.append(f"abandoned upload {n}: PATCH answered {status}")
            ids.append(uid)
        return ids

    def run(self):
        c = self.checks
        a = self.args
        self.setup()
        abandoned = self.abandon(a.abandoned, a.abandoned_with_bytes)
        fl.log(f"{len(abandoned)} abandoned uploads, {a.abandoned_with_bytes} of them with a "
               "part and a tail")
        contents = [fl.Content(10000 + n, a.size_mib * MIB) for n in range(a.uploads)]
        results = [None] * a.uploads

        cli_reports = []

        def expire_soon():
            time.sleep(2)
            listed = ", ".join(f"'{i}'" for i in abandoned)
            self.db.query("UPDATE uploads SET expires_at = (now() AT TIME ZONE 'utc') - "
                          f"interval '1 minute' WHERE id IN ({listed})")
            fl.log("abandoned uploads expired: both workers and two `medport cleanup --once` "
                   "race for them")
            # Two operators' passes at the same moment as the workers' next ticks.
            runs = [threading.Thread(target=lambda m=m: cli_reports.append(
                m.cli("cleanup", "--once").stdout.strip())) for m in self.instances]
            for t in runs:
                t.start()
            for t in runs:
                t.join()

        expirer = threading.Thread(target=expire_soon)
        t0 = time.monotonic()
        expirer.start()
        with concurrent.futures.ThreadPoolExecutor(max_workers=a.uploads) as pool:
            futures = {pool.submit(self.upload, n, contents[n]): n for n in range(a.uploads)}
            for f in concurrent.futures.as_completed(futures):
                results[futures[f]] = f.result()
        wall = time.monotonic() - t0
        expirer.join()
        total = a.uploads * a.size_mib
        times = sorted(r[1] for r in results if r)
        fl.log(f"{a.uploads} x {a.size_mib} MiB from {a.users} users in {wall:.1f} s: "
               f"{total / wall:.1f} MiB/s; per upload median {times[len(times) // 2]:.1f} s, "
               f"max {times[-1]:.1f} s")
        c.ok(not self.errors, "every request answered as expected", "; ".join(self.errors[:5]))
        try:
            fl.wait_for(lambda: self.db.value(
                "SELECT count(*) FROM uploads WHERE status <> 'expired' AND id IN ("
                + ", ".join(f"'{i}'" for i in abandoned) + ")") == "0", 60,
                what="the abandoned uploads to expire")
        except TimeoutError as e:
            c.ok(False, "every abandoned upload expires", str(e))

        # ---------------------------------------------------------- none lost
        ok_count = 0

        def verify(n):
            uid = results[n][0] if results[n] else None
            if uid is None:
                return False
            sub = fl.Checks(f"upload {n}")
            sub.ok = self._quiet_ok(sub)
            good = fl.check_completed(sub, self.db, self.s3, self.bucket, uid, contents[n],
                                      f"upload {n}")
            good = good and self.db.audit_count("upload.expire", uid) == 0
            return good, sub.failed

        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            for n, out in enumerate(pool.map(verify, range(a.uploads))):
                good, failed = out if out else (False, ["no upload id"])
                ok_count += bool(good)
                if not good:
                    c.ok(False, f"upload {n} complete and correct", "; ".join(failed[:3]))
        c.eq(ok_count, a.uploads, "uploads completed with the right SHA-256, parts and events")

        # ---------------------------------------------------------- none cleaned twice
        events = {i: self.db.audit_count("upload.expire", i) for i in abandoned}
        c.ok(all(v == 1 for v in events.values()),
             f"each of the {len(abandoned)} abandoned uploads expired exactly once",
             str({k: v for k, v in events.items() if v != 1}))
        failed = self.db.value("SELECT count(*) FROM audit_events WHERE action = 'upload.cleanup_failed'")
        c.eq(failed, "0", "no upload.cleanup_failed event")
        others = self.db.value("SELECT count(*) FROM uploads WHERE status = 'expired' AND id NOT IN ("
                               + ", ".join(f"'{i}'" for i in abandoned) + ")")
        c.eq(others, "0", "no other upload expired")
        by = {}
        for m, name in zip(self.instances, ("a", "b")):
            by[name] = sum(1 for line in m.log_text().splitlines()
                           if "upload expired" in line)
        fl.log(f"expired by the workers: {by}; by the command: {cli_reports}")
        left = self.s3.multipart_uploads(self.bucket)
        c.ok(not left, "no multipart upload left in the bucket", f"{len(left)} left")
        completed = {u["object_key"] for u in self.db.uploads("status = 'completed'")}
        stray = sorted(k for k in self.s3.keys(self.bucket) if k not in completed)
        c.ok(not stray, "no object in the bucket but the completed files",
             f"{len(stray)} stray: " + ", ".join(stray[:5]))
        self.instances[0].audit_chain(c)
        for m, name in zip(self.instances, ("a", "b")):
            c.ok(m.alive(), f"instance {name} still running")
            m.no_panic(c, f"instance {name}'s log")

    @staticmethod
    def _quiet_ok(sub):
        def ok(cond, what, detail=""):
            if not cond:
                sub.failed.append(f"{what}: {detail}" if detail else what)
            return bool(cond)
        return ok


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--uploads", type=int, default=50)
    p.add_argument("--users", type=int, default=10)
    p.add_argument("--size-mib", type=int, default=20)
    # More than one cleanup batch (50), so concurrent passes share the work.
    p.add_argument("--abandoned", type=int, default=60)
    p.add_argument("--abandoned-with-bytes", type=int, default=10)
    fl.run_scenario(Scenario(p.parse_args()))


if __name__ == "__main__":
    main()
