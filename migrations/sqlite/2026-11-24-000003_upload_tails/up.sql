-- Every partial-tail object an upload may have left in storage, written down before the
-- object is stored: a crash between storing a tail and moving the offset would otherwise
-- leave an object nothing refers to. Completion, cancellation and expiry delete them all.
CREATE TABLE upload_tails (
    upload_id   TEXT NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    tail_offset BIGINT NOT NULL CHECK (tail_offset >= 0),
    PRIMARY KEY (upload_id, tail_offset)
);
