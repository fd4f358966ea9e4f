"""A scenario's own bucket and database on the shared test services, and a medport
prepared to serve: what the scenarios' set-up and clean-up have in common."""

from .common import log
from .medport import Medport
from .postgres import SharedPgDatabase


def shared_bucket(s3, scenario, stamp):
    """Creates the bucket `medport-fault-SCENARIO-STAMP` with `s3`; returns its name."""
    bucket = f"medport-fault-{scenario}-{stamp}"
    s3.create_bucket(bucket)
    return bucket


def shared_database(env, scenario, stamp):
    """A fresh database `medport_fault_SCENARIO_STAMP` on the shared test PostgreSQL."""
    return SharedPgDatabase(env["MEDPORT_TEST_POSTGRES"],
                            f"medport_fault_{scenario}_{stamp.replace('-', '_')}")


def drop_shared(s3, bucket, db, success):
    """After a run: the bucket and the database go when it passed, and are kept (and named)
    for inspection when it failed."""
    if success:
        s3.remove_bucket(bucket)
        db.drop()
    else:
        log(f"kept database {db.name} and bucket {bucket} for inspection")


def prepared_medport(binary, env, log_path, email):
    """A medport (not started yet) whose database is migrated and holds the uploader
    `email` with an API key; returns (medport, key)."""
    medport = Medport(binary, env, log_path)
    medport.cli("migrate")
    return medport, medport.user_with_key(email)
