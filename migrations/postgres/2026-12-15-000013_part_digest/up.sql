-- A recorded part is named by the file digest's state at its end (hasher::part_digest),
-- not by a second SHA-256 over its bytes.
ALTER TABLE upload_parts RENAME COLUMN sha256 TO digest;
