ALTER TABLE upload_parts RENAME COLUMN digest TO sha256;
