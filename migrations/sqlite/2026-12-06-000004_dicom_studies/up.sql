-- A batch is one folder or CD sent at once: the browser declares it, then sends each file
-- as an upload that names the batch and its path inside the folder.
CREATE TABLE upload_batches (
    id              TEXT PRIMARY KEY NOT NULL,
    user_id         TEXT NOT NULL REFERENCES users (id),
    bucket_id       TEXT NOT NULL REFERENCES buckets (id),
    declared_files  BIGINT NOT NULL CHECK (declared_files >= 0),
    declared_bytes  BIGINT NOT NULL CHECK (declared_bytes >= 0),
    started_at      TIMESTAMP NOT NULL,
    finished_at     TIMESTAMP
);
CREATE INDEX upload_batches_user_idx ON upload_batches (user_id, started_at);

-- No REFERENCES here: SQLite cannot drop a column that has one (down.sql). Batches are
-- never deleted, and the application only ever writes ids it has just read.
ALTER TABLE uploads ADD COLUMN batch_id TEXT;
-- The path inside the dropped folder, normalised; a label only, never a storage key.
ALTER TABLE uploads ADD COLUMN relative_path TEXT;
CREATE INDEX uploads_batch_idx ON uploads (batch_id, relative_path);

-- What the server read from a completed DICOM upload. One row per upload that claims to
-- be DICOM, whatever came of reading it (state), so nothing DICOM-shaped goes unlisted.
-- Patient-identifying attributes are sealed with the master key (patient_sealed).
CREATE TABLE dicom_instances (
    upload_id            TEXT PRIMARY KEY NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    user_id              TEXT NOT NULL REFERENCES users (id),
    state                TEXT NOT NULL CHECK (state IN ('indexed', 'unreadable', 'duplicate',
                             'conflict', 'directory')),
    detail               TEXT,
    study_uid            TEXT,
    series_uid           TEXT,
    sop_instance_uid     TEXT,
    sop_class_uid        TEXT,
    transfer_syntax_uid  TEXT,
    modality             TEXT,
    study_date           TEXT,
    study_time           TEXT,
    study_description    TEXT,
    series_description   TEXT,
    series_number        INTEGER,
    instance_number      INTEGER,
    number_of_frames     INTEGER,
    body_part            TEXT,
    patient_sealed       BLOB,
    indexed_at           TIMESTAMP NOT NULL
);
CREATE INDEX dicom_instances_study_idx ON dicom_instances (study_uid, user_id);
CREATE INDEX dicom_instances_sop_idx ON dicom_instances (user_id, sop_instance_uid);

-- The instances a DICOMDIR lists, to tell which of them were never sent.
CREATE TABLE dicomdir_entries (
    directory_upload_id  TEXT NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    referenced_path      TEXT NOT NULL,
    sop_instance_uid     TEXT,
    study_uid            TEXT,
    PRIMARY KEY (directory_upload_id, referenced_path)
);
CREATE INDEX dicomdir_entries_study_idx ON dicomdir_entries (study_uid);
