-- Upload requests: a link through which people without an account send files to the
-- request's owner. The link's token is stored only as its SHA-256; the passphrase only as a
-- bcrypt hash. Same tables, columns and names as migrations/postgres.
CREATE TABLE upload_requests (
    id                TEXT PRIMARY KEY NOT NULL,
    owner_id          TEXT NOT NULL REFERENCES users (id),
    bucket_id         TEXT NOT NULL REFERENCES buckets (id),
    token_hash        TEXT NOT NULL UNIQUE,
    title             TEXT NOT NULL,
    instructions      TEXT NOT NULL,
    passphrase_hash   TEXT,
    required_fields   TEXT NOT NULL,
    max_files         BIGINT NOT NULL CHECK (max_files > 0),
    max_bytes         BIGINT NOT NULL CHECK (max_bytes > 0),
    expires_at        TIMESTAMP NOT NULL,
    closed_at         TIMESTAMP,
    revoked_at        TIMESTAMP,
    reminded_at       TIMESTAMP,
    first_file_at     TIMESTAMP,
    last_activity_at  TIMESTAMP,
    created_at        TIMESTAMP NOT NULL,
    updated_at        TIMESTAMP NOT NULL
);
CREATE INDEX upload_requests_owner_idx ON upload_requests (owner_id, created_at);
CREATE INDEX upload_requests_expiry_idx ON upload_requests (expires_at);

-- One sender's visit through the link: what they said about themselves (sealed: it may
-- name a patient) and, once they finish, the receipt.
CREATE TABLE request_submissions (
    id              TEXT PRIMARY KEY NOT NULL,
    request_id      TEXT NOT NULL REFERENCES upload_requests (id),
    receipt_number  TEXT NOT NULL UNIQUE,
    sender_sealed   BYTEA NOT NULL,
    started_at      TIMESTAMP NOT NULL,
    finished_at     TIMESTAMP,
    receipt_hash    TEXT
);
CREATE INDEX request_submissions_request_idx ON request_submissions (request_id, started_at);

ALTER TABLE uploads ADD COLUMN request_id TEXT REFERENCES upload_requests (id);
ALTER TABLE uploads ADD COLUMN submission_id TEXT REFERENCES request_submissions (id);
CREATE INDEX uploads_request_idx ON uploads (request_id);
CREATE INDEX uploads_submission_idx ON uploads (submission_id);
ALTER TABLE upload_batches ADD COLUMN submission_id TEXT REFERENCES request_submissions (id);
