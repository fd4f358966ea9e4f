-- medport data model (SQLite). Same tables, columns and names as migrations/postgres.
-- IDs are UUIDv7 in text form; timestamps are UTC.

CREATE TABLE users (
    id                   TEXT PRIMARY KEY NOT NULL,
    email                TEXT NOT NULL UNIQUE,
    role                 TEXT NOT NULL CHECK (role IN ('admin', 'uploader', 'auditor')),
    password_hash        TEXT NOT NULL,
    must_change_password BOOLEAN NOT NULL DEFAULT 0,
    disabled             BOOLEAN NOT NULL DEFAULT 0,
    totp_secret_sealed   BLOB,
    totp_last_step       BIGINT,
    recovery_codes       TEXT,
    password_changed_at  TIMESTAMP NOT NULL,
    created_at           TIMESTAMP NOT NULL,
    updated_at           TIMESTAMP NOT NULL
);

-- Failed sign-ins per email address (SHA-256 of the case-folded address), for known and
-- unknown addresses alike, so the throttle reveals nothing about which accounts exist.
CREATE TABLE login_throttles (
    email_hash       TEXT PRIMARY KEY NOT NULL,
    failures         INTEGER NOT NULL DEFAULT 0,
    throttled_until  TIMESTAMP,
    updated_at       TIMESTAMP NOT NULL
);

CREATE TABLE sessions (
    id_hash       TEXT PRIMARY KEY NOT NULL,
    user_id       TEXT REFERENCES users (id) ON DELETE CASCADE,
    state         TEXT NOT NULL,
    ip            TEXT,
    user_agent    TEXT,
    created_at    TIMESTAMP NOT NULL,
    last_seen_at  TIMESTAMP NOT NULL,
    expires_at    TIMESTAMP NOT NULL
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY NOT NULL,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    prefix        TEXT NOT NULL UNIQUE,
    key_hash      TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    expires_at    TIMESTAMP,
    last_used_at  TIMESTAMP,
    revoked_at    TIMESTAMP,
    created_at    TIMESTAMP NOT NULL
);
CREATE INDEX api_keys_user_id_idx ON api_keys (user_id);

CREATE TABLE buckets (
    id                  TEXT PRIMARY KEY NOT NULL,
    display_name        TEXT NOT NULL,
    bucket_name         TEXT NOT NULL,
    backend             TEXT NOT NULL CHECK (backend IN ('local', 's3')),
    region              TEXT,
    endpoint            TEXT,
    path_style          BOOLEAN NOT NULL DEFAULT 0,
    access_key_id       TEXT,
    secret_key_sealed   BLOB,
    encryption          TEXT NOT NULL DEFAULT 'none' CHECK (encryption IN ('none', 'sse-s3', 'sse-kms')),
    kms_key_id          TEXT,
    size_limit_bytes    BIGINT,
    allowed_extensions  TEXT,
    notes               TEXT NOT NULL DEFAULT '',
    is_system           BOOLEAN NOT NULL DEFAULT 0,
    open_to_all         BOOLEAN NOT NULL DEFAULT 0,
    created_by          TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at          TIMESTAMP NOT NULL,
    updated_at          TIMESTAMP NOT NULL
);
CREATE INDEX buckets_created_by_idx ON buckets (created_by);

CREATE TABLE bucket_grants (
    bucket_id   TEXT NOT NULL REFERENCES buckets (id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    granted_by  TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (bucket_id, user_id)
);
CREATE INDEX bucket_grants_user_id_idx ON bucket_grants (user_id);
CREATE INDEX bucket_grants_granted_by_idx ON bucket_grants (granted_by);

CREATE TABLE uploads (
    id                 TEXT PRIMARY KEY NOT NULL,
    user_id            TEXT NOT NULL REFERENCES users (id),
    bucket_id          TEXT NOT NULL REFERENCES buckets (id),
    api_key_id         TEXT REFERENCES api_keys (id) ON DELETE SET NULL,
    filename           TEXT NOT NULL,
    content_type       TEXT,
    extension          TEXT NOT NULL,
    declared_size      BIGINT NOT NULL CHECK (declared_size >= 0),
    upload_offset      BIGINT NOT NULL DEFAULT 0 CHECK (upload_offset >= 0),
    part_size          BIGINT NOT NULL CHECK (part_size > 0),
    object_key         TEXT NOT NULL,
    storage_upload_id  TEXT,
    status             TEXT NOT NULL CHECK (status IN ('active', 'completing', 'completed', 'rejected',
                           'aborted', 'expired', 'cleanup_failed', 'quarantined')),
    status_reason      TEXT,
    sha256             TEXT,
    hash_state         BLOB,
    client_checksum    TEXT,
    scan_status        TEXT,
    scan_detail        TEXT,
    cleanup_attempts   INTEGER NOT NULL DEFAULT 0,
    next_cleanup_at    TIMESTAMP,
    expires_at         TIMESTAMP NOT NULL,
    completed_at       TIMESTAMP,
    created_at         TIMESTAMP NOT NULL,
    updated_at         TIMESTAMP NOT NULL
);
CREATE INDEX uploads_user_id_idx ON uploads (user_id);
CREATE INDEX uploads_bucket_id_idx ON uploads (bucket_id);
CREATE INDEX uploads_api_key_id_idx ON uploads (api_key_id);
CREATE INDEX uploads_status_expires_idx ON uploads (status, expires_at);

CREATE TABLE upload_parts (
    upload_id    TEXT NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    part_number  INTEGER NOT NULL CHECK (part_number BETWEEN 1 AND 10000),
    size         BIGINT NOT NULL CHECK (size >= 0),
    etag         TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);

-- Append-only, hash-chained. No foreign keys: the trail must outlive the rows it names.
CREATE TABLE audit_events (
    id             INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    occurred_at    TIMESTAMP NOT NULL,
    actor_user_id  TEXT,
    actor_label    TEXT NOT NULL,
    action         TEXT NOT NULL,
    outcome        TEXT NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    target_type    TEXT,
    target_id      TEXT,
    ip             TEXT,
    request_id     TEXT,
    details        TEXT NOT NULL,
    prev_hash      TEXT NOT NULL,
    hash           TEXT NOT NULL UNIQUE
);
CREATE INDEX audit_events_occurred_at_idx ON audit_events (occurred_at);
CREATE INDEX audit_events_actor_idx ON audit_events (actor_user_id);
CREATE INDEX audit_events_action_idx ON audit_events (action);

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
