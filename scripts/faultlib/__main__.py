"""`python3 scripts/faultlib purge`: removes what failed fault runs kept for inspection."""

import os
import shutil
import subprocess
import sys
import tempfile

# Run as a directory this file has no package, and the directory itself is first on the
# path (where its modules would shadow others): import the package from its parent instead.
sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl  # noqa: E402


def purge():
    """Removes what failed runs kept for inspection: medport_fault_* databases on the shared
    PostgreSQL, medport-fault-* buckets on the shared S3 server, medport-fault-* work
    directories. Run it only when no fault scenario is running."""
    env = fl.services_env()
    admin = fl.Db(env["MEDPORT_TEST_POSTGRES"])
    for (name,) in admin.query("SELECT datname FROM pg_database WHERE datname LIKE 'medport\\_fault\\_%'"):
        admin.query(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        fl.log(f"dropped database {name}")
    s3 = fl.S3.from_services(env)
    for b in s3.client.list_buckets().get("Buckets", []):
        if b["Name"].startswith("medport-fault-"):
            s3.remove_bucket(b["Name"])
            fl.log(f"removed bucket {b['Name']}")
    base = os.environ.get("MEDPORT_FAULT_DIR") or tempfile.gettempdir()
    for d in os.listdir(base):
        if d.startswith("medport-fault-") and os.path.isdir(os.path.join(base, d)):
            path = os.path.join(base, d)
            if os.path.exists(os.path.join(path, "pgdata", "postmaster.pid")):
                cmd = [fl.postgres.pg_bin("pg_ctl"), "-D", os.path.join(path, "pgdata"),
                       "-m", "immediate", "stop"]
                if os.geteuid() == 0:
                    cmd = ["runuser", "-u", "postgres", "--", *cmd]
                subprocess.run(cmd, capture_output=True)
            subprocess.run(["umount", os.path.join(path, "data")], capture_output=True)
            shutil.rmtree(path, ignore_errors=True)
            fl.log(f"removed {path}")


if __name__ == "__main__":
    if sys.argv[1:] == ["purge"]:
        purge()
    else:
        sys.exit("usage: python3 scripts/faultlib purge   (remove what failed fault runs kept)")
