"""Shared helpers of the fault and load scripts (scripts/fault-*.py); the Python
benchmarks (scripts/bench-*.py) take their free port and release build from here too.

Each scenario starts the release `medport` binary as a child process configured only by
environment variables, drives it with the small tus client here, and checks what it stored
against the real services: the PostgreSQL rows (with `psql`), the S3 objects, parts and
multipart uploads (boto3), the bytes on disk. Nothing is mocked.

Services: the shared test services from `scripts/test-services.sh` (PostgreSQL, SeaweedFS)
are used as they are and never stopped; a scenario that has to stop a service starts a
private one of its own (`Seaweed`, `PgCluster`) on free ports.

Every check goes through `Checks`, which prints each result and ends with the closing line
`NAME: N passed, N failed`; the script exits 1 when anything failed.

Knobs (environment): MEDPORT_FAULT_BIN (a medport binary to use instead of building one),
MEDPORT_FAULT_KEEP=1 (keep the work directory, logs included, even on success),
MEDPORT_FAULT_DIR (where work directories go; the system temp dir by default),
CARGO_TARGET_DIR.

`python3 scripts/faultlib purge` removes what failed runs kept for inspection.
"""

from .client import BackgroundPatch, Interrupted, Tus, download_sha256, get, sign_in
from .common import (MIB, PASSWORD, ROOT, Checks, build_medport, free_port, log, port_free,
                     release_binary, remove_workdir, run_scenario, run_stamp, services_env,
                     start_run, wait_for, workdir)
from .content import Content
from .medport import Medport
from .postgres import Db, Gate, PgCluster, SharedPgDatabase, SqliteDb
from .s3 import S3, Seaweed
from .shared import drop_shared, prepared_medport, shared_bucket, shared_database
from .verify import check_completed, offset_backed

__all__ = [
    "MIB", "PASSWORD", "ROOT", "BackgroundPatch", "Checks", "Content", "Db", "Gate",
    "Interrupted", "Medport", "PgCluster", "S3", "Seaweed", "SharedPgDatabase", "SqliteDb", "Tus",
    "build_medport", "check_completed", "download_sha256", "drop_shared", "free_port", "get",
    "log", "offset_backed", "port_free", "prepared_medport", "release_binary", "remove_workdir",
    "run_scenario", "run_stamp", "services_env", "shared_bucket", "shared_database", "sign_in",
    "start_run", "wait_for", "workdir",
]
