-- The history lists uploads newest first, a page at a time, for one owner (or, for an
-- administrator, everyone): read in this order, a page is its own rows rather than every
-- upload of the owner sorted. The batch column lets the page count (one row per batch) be
-- read from the index alone.
CREATE INDEX uploads_user_created_idx ON uploads (user_id, created_at, id, batch_id);
CREATE INDEX uploads_created_idx ON uploads (created_at, id);
