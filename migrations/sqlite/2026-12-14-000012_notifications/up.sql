-- Notifications. Each notice is written in the transaction of the event it reports (outbox
-- pattern) and sent later by a worker, so nothing is lost when a server or a target is
-- down. Workers on several instances claim rows with a lease (lease_token / lease_until),
-- as the cleanup worker does with uploads, so no message is sent twice.

-- E-mail waiting for, or done with, the SMTP server. The bodies are emptied once sent.
CREATE TABLE email_outbox (
    id               TEXT PRIMARY KEY NOT NULL,
    recipient        TEXT NOT NULL,
    subject          TEXT NOT NULL,
    body_text        TEXT NOT NULL,
    body_html        TEXT NOT NULL,
    kind             TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  TIMESTAMP NOT NULL,
    -- Short, and never a credential: the SMTP server's answer or the connection failure.
    last_error       TEXT,
    lease_token      TEXT,
    lease_until      TIMESTAMP,
    created_at       TIMESTAMP NOT NULL,
    sent_at          TIMESTAMP
);
CREATE INDEX email_outbox_due_idx ON email_outbox (state, next_attempt_at);

-- Webhooks an administrator set up on a bucket. The signing secret is sealed with the
-- master key (bound to this row and field), like a bucket's S3 secret key.
CREATE TABLE webhooks (
    id             TEXT PRIMARY KEY NOT NULL,
    bucket_id      TEXT NOT NULL REFERENCES buckets (id) ON DELETE CASCADE,
    url            TEXT NOT NULL,
    secret_sealed  BLOB NOT NULL,
    -- Comma-separated event names, e.g. upload.completed,batch.completed.
    events         TEXT NOT NULL,
    enabled        BOOLEAN NOT NULL DEFAULT 1,
    created_by     TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at     TIMESTAMP NOT NULL,
    updated_at     TIMESTAMP NOT NULL
);
CREATE INDEX webhooks_bucket_idx ON webhooks (bucket_id);
CREATE INDEX webhooks_created_by_idx ON webhooks (created_by);

-- One event for one webhook: the body as it is sent (ids and figures, never file names),
-- and the delivery log the admin page shows.
CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY NOT NULL,
    webhook_id       TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event            TEXT NOT NULL,
    payload          TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  TIMESTAMP NOT NULL,
    last_status      INTEGER,
    last_error       TEXT,
    lease_token      TEXT,
    lease_until      TIMESTAMP,
    created_at       TIMESTAMP NOT NULL,
    delivered_at     TIMESTAMP
);
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, created_at);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (state, next_attempt_at);
