#!/usr/bin/env python3
"""Disk full (local store): medport's data directory on a small tmpfs that fills up. The
client must get a clear 507, no stored object may be corrupted, and once there is room
again the upload resumes and completes with the right SHA-256.

  scripts/fault-diskfull.py          (needs root: it mounts a tmpfs)

Setup: the single-server layout, everything in the data directory (SQLite database,
master key, local encrypted object store), on a 64 MiB tmpfs; the release binary. Phases:

  1 a 20 MiB file is uploaded and downloads with its SHA-256;
  2 a 60 MiB file is sent in 8 MiB PATCHes until the disk is full: the PATCH answers 507
    with a message saying storage is full; HEAD's offset <= bytes sent and equals the row;
    medport stays up, /readyz 200; the first file still downloads with its SHA-256;
  3 the tmpfs is grown to 256 MiB (`mount -o remount`): the upload resumes and completes,
    and downloads with its SHA-256;
  4 another file fills the disk to the last byte (the database cannot grow either): a
    PATCH and a POST /tus/ answer 507, the offset does not move, the history page answers,
    stored files are intact; with the file removed the upload resumes and completes.
(Completion on the local store hard-links the parts, so it needs no room of its own.)

Without root it says so and exits 0 (nothing checked). Quick: under 10 seconds.
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl  # noqa: E402
from faultlib import MIB  # noqa: E402


class Scenario:
    def __init__(self):
        self.checks = fl.Checks("fault-diskfull")
        self.mounted = False

    def mount(self, options):
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", self.data]
                       if not self.mounted else
                       ["mount", "-o", f"remount,{options}", self.data],
                       check=True, capture_output=True)
        self.mounted = True

    def free_mib(self):
        st = os.statvfs(self.data)
        return st.f_bavail * st.f_frsize / MIB

    def setup(self):
        self.work = fl.workdir("diskfull")
        self.data = os.path.join(self.work, "data")
        os.makedirs(self.data)
        self.mount("size=64m,mode=0700")
        self.email = f"disk-{int(time.time())}@example.org"
        self.medport, self.key = fl.prepared_medport(
            fl.build_medport(), {"MEDPORT_DATA_DIR": self.data},
            os.path.join(self.work, "medport.log"), self.email)
        self.medport.start()
        self.cookie = fl.sign_in(self.medport.url, self.email)
        self.tus = fl.Tus(self.medport.url, key=self.key, timeout=120)
        self.db = fl.SqliteDb(os.path.join(self.data, "medport.db"))

    def cleanup(self, success):
        if getattr(self, "medport", None):
            self.medport.stop()
        if self.mounted and (success and os.environ.get("MEDPORT_FAULT_KEEP") != "1"):
            subprocess.run(["umount", self.data], check=False)
        elif self.mounted:
            fl.log(f"{self.data} left mounted for inspection (python3 scripts/faultlib purge unmounts it)")
        fl.remove_workdir(self.work, success)

    def send(self, content, uid, offset, step=8 * MIB):
        """PATCHes from `offset` in `step` pieces until done or refused: (status, body, offset)."""
        while offset < content.size:
            end = min(content.size, offset + step)
            status, new, _, body = self.tus.patch(uid, content, offset, end)
            if status != 204:
                return status, body, offset
            offset = new
        return 204, b"", offset

    def downloads(self, uid, content, what):
        status, digest, _ = fl.download_sha256(self.medport.url, self.cookie, uid)
        return self.checks.eq((status, digest), (200, content.sha256()), what)

    def run(self):
        c = self.checks
        self.setup()
        first = fl.Content(7001, 20 * MIB)
        status, fid, _ = self.tus.create(first)
        c.eq(self.send(first, fid, 0)[0], 204, "a 20 MiB upload fits")
        self.downloads(fid, first, "the first file downloads with its SHA-256")
        fl.log(f"free on the data directory: {self.free_mib():.1f} MiB")

        # ---------------------------------------------------------- 2: the disk fills
        big = fl.Content(7002, 60 * MIB + 3)
        status, bid, _ = self.tus.create(big)
        c.eq(status, 201, "create the 60 MiB upload")
        status, body, offset = self.send(big, bid, 0)
        text = body.decode("utf-8", "replace")
        c.eq(status, 507, "PATCH on a full disk answers 507")
        c.ok("full" in text.lower(), "the answer says storage is full", text[:200])
        fl.log(f"507 at offset {offset}; answer: {text.strip()[:160]!r}; "
               f"free {self.free_mib():.1f} MiB")
        status, head, _ = self.tus.head(bid)
        c.eq(status, 200, "HEAD on a full disk")
        c.ok(head is not None and head <= self.tus.sent_max[bid], "HEAD offset <= bytes sent",
             f"{head} > {self.tus.sent_max[bid]}")
        row = self.db.uploads(f"id = '{bid}'")[0]
        c.eq(head, row["upload_offset"], "HEAD offset is the row's")
        parts = self.db.parts(bid)
        c.eq([p[0] for p in parts], list(range(1, row["upload_offset"] // row["part_size"] + 1)),
             "recorded parts are exactly the whole parts below the offset")
        c.ok(self.medport.alive(), "medport still running")
        c.eq(fl.get(self.medport.url, "/readyz")[0], 200, "/readyz 200 (the database answers)")
        self.downloads(fid, first, "the first file is intact on a full disk")

        # ---------------------------------------------------------- 3: room again
        self.mount("size=256m")
        fl.log(f"data directory grown; free {self.free_mib():.1f} MiB")
        status, body, offset = self.send(big, bid, head)
        c.eq((status, offset), (204, big.size), "the upload resumes once there is room")
        self.downloads(bid, big, "the resumed file downloads with its SHA-256")
        self.downloads(fid, first, "the first file is still intact")

        # ---------------------------------------------------------- 4: full to the last byte
        last = fl.Content(7003, 10 * MIB + 9)
        status, lid, _ = self.tus.create(last)
        c.eq(status, 201, "create a 10 MiB upload")
        status, off, _, _ = self.tus.patch(lid, last, 0, 3 * MIB)
        c.eq((status, off), (204, 3 * MIB), "first 3 MiB (a tail, no whole part)")
        filler = os.path.join(self.data, "filler")
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * MIB)
                    f.flush()
            except OSError:
                pass
        fl.log(f"data directory filled by another file; free {self.free_mib():.2f} MiB")
        status, new, _, body = self.tus.patch(lid, last, off, off + MIB)
        c.eq(status, 507, "PATCH with not a byte free answers 507",)
        fl.log(f"PATCH with no space: {status} {body[:120]!r}")
        status, head, _ = self.tus.head(lid)
        c.eq((status, head), (200, off), "HEAD: the offset did not move")
        status, _, headers = self.tus.create(fl.Content(7004, MIB))
        c.eq(status, 507, "POST /tus/ with not a byte free answers 507")
        status, _, body = fl.get(self.medport.url, "/uploads", cookie=self.cookie,
                                 headers={"Accept": "text/html"})
        c.ok(status in (200, 507), "the history page answers (200, or a clear 507)",
             f"status {status}")
        status, _, _ = fl.download_sha256(self.medport.url, self.cookie, fid)
        c.ok(status in (200, 507), "downloading a stored file answers (200, or a clear 507)",
             f"status {status}")
        os.remove(filler)
        fl.log(f"filler removed; free {self.free_mib():.1f} MiB")
        status, head, _ = self.tus.head(lid)
        status, body, offset = self.send(last, lid, head)
        c.eq((status, offset), (204, last.size), "the upload resumes once the space is back")
        self.downloads(lid, last, "it downloads with its SHA-256")
        self.downloads(fid, first, "the first file is intact after the disk was full")
        self.downloads(bid, big, "the second file is intact after the disk was full")
        c.ok(self.medport.alive(), "medport still running")
        self.medport.closing_checks(c)


def main():
    if os.geteuid() != 0:
        print("fault-diskfull: needs root to mount a small tmpfs; nothing checked")
        print("fault-diskfull: 0 passed, 0 failed, 1 skipped")
        return
    fl.run_scenario(Scenario())


if __name__ == "__main__":
    main()
