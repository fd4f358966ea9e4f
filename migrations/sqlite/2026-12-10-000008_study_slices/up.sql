-- A study's counted instances (indexed, upload completed) summed per slice: one series,
-- uploader, modality and batch. The study pages and the list read these few rows instead
-- of grouping every instance on every view. The database keeps them in the same
-- transaction as every change to what counts, whichever code path makes it: an instance
-- that starts to count is added; anything else recomputes the slices it touched.
-- A missing series, modality or batch is '' so that the key can be unique.
CREATE TABLE study_slices (
    study_uid           TEXT NOT NULL,
    series_uid          TEXT NOT NULL,
    user_id             TEXT NOT NULL,
    modality            TEXT NOT NULL,
    batch_id            TEXT NOT NULL,
    instances           BIGINT NOT NULL,
    bytes               BIGINT NOT NULL,
    series_number       INTEGER,
    series_description  TEXT,
    study_date          TEXT,
    study_description   TEXT,
    first_upload        TIMESTAMP,
    last_completion     TIMESTAMP,
    PRIMARY KEY (study_uid, series_uid, user_id, modality, batch_id)
);
CREATE INDEX study_slices_user_idx ON study_slices (user_id, study_uid);

-- What the summary must always equal: the counted instances grouped afresh. Backfill and
-- every recomputation read it.
CREATE VIEW study_slices_counted AS
SELECT d.study_uid AS study_uid, COALESCE(d.series_uid, '') AS series_uid,
       d.user_id AS user_id, COALESCE(d.modality, '') AS modality,
       COALESCE(u.batch_id, '') AS batch_id, COUNT(*) AS instances,
       SUM(u.declared_size) AS bytes, MIN(d.series_number) AS series_number,
       MAX(d.series_description) AS series_description, MIN(d.study_date) AS study_date,
       MAX(d.study_description) AS study_description, MIN(u.created_at) AS first_upload,
       MAX(u.completed_at) AS last_completion
FROM dicom_instances d JOIN uploads u ON u.id = d.upload_id
WHERE d.state = 'indexed' AND u.status = 'completed' AND d.study_uid IS NOT NULL
GROUP BY d.study_uid, COALESCE(d.series_uid, ''), d.user_id, COALESCE(d.modality, ''),
         COALESCE(u.batch_id, '');

INSERT INTO study_slices SELECT * FROM study_slices_counted;

-- An instance that starts to count: one more in its slice. SQLite's two-argument min()
-- and max() are NULL when either side is, hence the COALESCE: the aggregate's meaning.
CREATE TRIGGER study_slices_instance_added AFTER INSERT ON dicom_instances
WHEN NEW.state = 'indexed' AND NEW.study_uid IS NOT NULL
BEGIN
    INSERT INTO study_slices
    SELECT NEW.study_uid, COALESCE(NEW.series_uid, ''), NEW.user_id, COALESCE(NEW.modality, ''),
           COALESCE(u.batch_id, ''), 1, u.declared_size, NEW.series_number,
           NEW.series_description, NEW.study_date, NEW.study_description, u.created_at,
           u.completed_at
    FROM uploads u WHERE u.id = NEW.upload_id AND u.status = 'completed'
    ON CONFLICT (study_uid, series_uid, user_id, modality, batch_id) DO UPDATE SET
        instances = instances + 1,
        bytes = bytes + excluded.bytes,
        series_number = COALESCE(min(series_number, excluded.series_number), series_number, excluded.series_number),
        series_description = COALESCE(max(series_description, excluded.series_description), series_description, excluded.series_description),
        study_date = COALESCE(min(study_date, excluded.study_date), study_date, excluded.study_date),
        study_description = COALESCE(max(study_description, excluded.study_description), study_description, excluded.study_description),
        first_upload = COALESCE(min(first_upload, excluded.first_upload), first_upload, excluded.first_upload),
        last_completion = COALESCE(max(last_completion, excluded.last_completion), last_completion, excluded.last_completion);
END;

CREATE TRIGGER study_slices_upload_completed AFTER UPDATE OF status ON uploads
WHEN OLD.status IS NOT 'completed' AND NEW.status = 'completed'
BEGIN
    INSERT INTO study_slices
    SELECT d.study_uid, COALESCE(d.series_uid, ''), d.user_id, COALESCE(d.modality, ''),
           COALESCE(NEW.batch_id, ''), 1, NEW.declared_size, d.series_number,
           d.series_description, d.study_date, d.study_description, NEW.created_at,
           NEW.completed_at
    FROM dicom_instances d
    WHERE d.upload_id = NEW.id AND d.state = 'indexed' AND d.study_uid IS NOT NULL
    ON CONFLICT (study_uid, series_uid, user_id, modality, batch_id) DO UPDATE SET
        instances = instances + 1,
        bytes = bytes + excluded.bytes,
        series_number = COALESCE(min(series_number, excluded.series_number), series_number, excluded.series_number),
        series_description = COALESCE(max(series_description, excluded.series_description), series_description, excluded.series_description),
        study_date = COALESCE(min(study_date, excluded.study_date), study_date, excluded.study_date),
        study_description = COALESCE(max(study_description, excluded.study_description), study_description, excluded.study_description),
        first_upload = COALESCE(min(first_upload, excluded.first_upload), first_upload, excluded.first_upload),
        last_completion = COALESCE(max(last_completion, excluded.last_completion), last_completion, excluded.last_completion);
END;

-- Everything else that can change what counts is rare (today no code path takes a
-- completed upload elsewhere): the slices of the instance's series, uploader and modality
-- are recomputed from the instances, in every batch, as a removal cannot be subtracted
-- from a minimum.
CREATE TRIGGER study_slices_upload_changed AFTER UPDATE ON uploads
WHEN OLD.status = 'completed' AND (NEW.status IS NOT 'completed'
    OR NEW.declared_size IS NOT OLD.declared_size OR NEW.batch_id IS NOT OLD.batch_id
    OR NEW.created_at IS NOT OLD.created_at OR NEW.completed_at IS NOT OLD.completed_at)
BEGIN
    DELETE FROM study_slices WHERE EXISTS (
        SELECT 1 FROM dicom_instances d
        WHERE d.upload_id = NEW.id AND d.study_uid IS NOT NULL
          AND study_slices.study_uid = d.study_uid
          AND study_slices.series_uid = COALESCE(d.series_uid, '')
          AND study_slices.user_id = d.user_id
          AND study_slices.modality = COALESCE(d.modality, ''));
    INSERT INTO study_slices
    SELECT c.* FROM study_slices_counted c JOIN dicom_instances o
        ON c.study_uid = o.study_uid AND c.series_uid = COALESCE(o.series_uid, '')
       AND c.user_id = o.user_id AND c.modality = COALESCE(o.modality, '')
    WHERE o.upload_id = NEW.id;
END;

CREATE TRIGGER study_slices_instance_changed AFTER UPDATE ON dicom_instances
WHEN (OLD.state = 'indexed' OR NEW.state = 'indexed')
 AND (NEW.state IS NOT OLD.state OR NEW.study_uid IS NOT OLD.study_uid
    OR NEW.series_uid IS NOT OLD.series_uid OR NEW.user_id IS NOT OLD.user_id
    OR NEW.modality IS NOT OLD.modality OR NEW.series_number IS NOT OLD.series_number
    OR NEW.series_description IS NOT OLD.series_description
    OR NEW.study_date IS NOT OLD.study_date
    OR NEW.study_description IS NOT OLD.study_description)
BEGIN
    DELETE FROM study_slices
    WHERE (study_uid = OLD.study_uid AND series_uid = COALESCE(OLD.series_uid, '')
           AND user_id = OLD.user_id AND modality = COALESCE(OLD.modality, ''))
       OR (study_uid = NEW.study_uid AND series_uid = COALESCE(NEW.series_uid, '')
           AND user_id = NEW.user_id AND modality = COALESCE(NEW.modality, ''));
    INSERT INTO study_slices
    SELECT * FROM study_slices_counted
    WHERE (study_uid = OLD.study_uid AND series_uid = COALESCE(OLD.series_uid, '')
           AND user_id = OLD.user_id AND modality = COALESCE(OLD.modality, ''))
       OR (study_uid = NEW.study_uid AND series_uid = COALESCE(NEW.series_uid, '')
           AND user_id = NEW.user_id AND modality = COALESCE(NEW.modality, ''));
END;

CREATE TRIGGER study_slices_instance_removed AFTER DELETE ON dicom_instances
WHEN OLD.state = 'indexed' AND OLD.study_uid IS NOT NULL
BEGIN
    DELETE FROM study_slices
    WHERE study_uid = OLD.study_uid AND series_uid = COALESCE(OLD.series_uid, '')
      AND user_id = OLD.user_id AND modality = COALESCE(OLD.modality, '');
    INSERT INTO study_slices
    SELECT * FROM study_slices_counted
    WHERE study_uid = OLD.study_uid AND series_uid = COALESCE(OLD.series_uid, '')
      AND user_id = OLD.user_id AND modality = COALESCE(OLD.modality, '');
END;

-- Which DICOMDIRs list a study, read from the index alone.
DROP INDEX dicomdir_entries_study_idx;
CREATE INDEX dicomdir_entries_study_idx ON dicomdir_entries (study_uid, directory_upload_id);

