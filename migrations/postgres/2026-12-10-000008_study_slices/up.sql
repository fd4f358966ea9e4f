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

-- The slices of one series, uploader and modality, in every batch, recomputed from the
-- instances (a removal cannot be subtracted from a minimum).
CREATE FUNCTION study_slices_recompute(p_study TEXT, p_series TEXT, p_user TEXT, p_modality TEXT)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM study_slices
    WHERE study_uid = p_study AND series_uid = COALESCE(p_series, '')
      AND user_id = p_user AND modality = COALESCE(p_modality, '');
    INSERT INTO study_slices
    SELECT * FROM study_slices_counted
    WHERE study_uid = p_study AND series_uid = COALESCE(p_series, '')
      AND user_id = p_user AND modality = COALESCE(p_modality, '');
END $$;

-- One more counted instance in its slice (LEAST and GREATEST skip NULLs, as MIN and MAX do).
CREATE FUNCTION study_slices_add(d dicom_instances, u uploads)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO study_slices AS s VALUES (
        d.study_uid, COALESCE(d.series_uid, ''), d.user_id, COALESCE(d.modality, ''),
        COALESCE(u.batch_id, ''), 1, u.declared_size, d.series_number, d.series_description,
        d.study_date, d.study_description, u.created_at, u.completed_at)
    ON CONFLICT (study_uid, series_uid, user_id, modality, batch_id) DO UPDATE SET
        instances = s.instances + 1,
        bytes = s.bytes + EXCLUDED.bytes,
        series_number = LEAST(s.series_number, EXCLUDED.series_number),
        series_description = GREATEST(s.series_description, EXCLUDED.series_description),
        study_date = LEAST(s.study_date, EXCLUDED.study_date),
        study_description = GREATEST(s.study_description, EXCLUDED.study_description),
        first_upload = LEAST(s.first_upload, EXCLUDED.first_upload),
        last_completion = GREATEST(s.last_completion, EXCLUDED.last_completion);
END $$;

CREATE FUNCTION study_slices_on_instance() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    u uploads;
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.state = 'indexed' AND NEW.study_uid IS NOT NULL THEN
            SELECT * INTO u FROM uploads WHERE id = NEW.upload_id AND status = 'completed';
            IF FOUND THEN
                PERFORM study_slices_add(NEW, u);
            END IF;
        END IF;
        RETURN NULL;
    END IF;
    IF OLD.state = 'indexed' AND OLD.study_uid IS NOT NULL THEN
        PERFORM study_slices_recompute(OLD.study_uid, OLD.series_uid, OLD.user_id, OLD.modality);
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.state = 'indexed' AND NEW.study_uid IS NOT NULL THEN
        PERFORM study_slices_recompute(NEW.study_uid, NEW.series_uid, NEW.user_id, NEW.modality);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION study_slices_on_upload() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    d dicom_instances;
BEGIN
    SELECT * INTO d FROM dicom_instances
    WHERE upload_id = NEW.id AND state = 'indexed' AND study_uid IS NOT NULL;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF OLD.status IS DISTINCT FROM 'completed' THEN
        PERFORM study_slices_add(d, NEW);
    ELSE
        PERFORM study_slices_recompute(d.study_uid, d.series_uid, d.user_id, d.modality);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER study_slices_instance AFTER INSERT OR DELETE ON dicom_instances
FOR EACH ROW EXECUTE FUNCTION study_slices_on_instance();

-- Only changes to what a slice holds: the sealed patient and blind indexes are rewritten
-- by key rotation, which must not recompute every study.
CREATE TRIGGER study_slices_instance_changed AFTER UPDATE ON dicom_instances
FOR EACH ROW WHEN ((OLD.state = 'indexed' OR NEW.state = 'indexed') AND (
    NEW.state IS DISTINCT FROM OLD.state OR NEW.study_uid IS DISTINCT FROM OLD.study_uid
    OR NEW.series_uid IS DISTINCT FROM OLD.series_uid OR NEW.user_id IS DISTINCT FROM OLD.user_id
    OR NEW.modality IS DISTINCT FROM OLD.modality
    OR NEW.series_number IS DISTINCT FROM OLD.series_number
    OR NEW.series_description IS DISTINCT FROM OLD.series_description
    OR NEW.study_date IS DISTINCT FROM OLD.study_date
    OR NEW.study_description IS DISTINCT FROM OLD.study_description))
EXECUTE FUNCTION study_slices_on_instance();

-- An upload that becomes completed adds its instance; a completed one that changes
-- (today no code path takes one elsewhere) recomputes.
CREATE TRIGGER study_slices_upload AFTER UPDATE ON uploads
FOR EACH ROW WHEN (
    (OLD.status IS DISTINCT FROM 'completed' AND NEW.status = 'completed')
    OR (OLD.status = 'completed' AND (NEW.status IS DISTINCT FROM 'completed'
        OR NEW.declared_size IS DISTINCT FROM OLD.declared_size
        OR NEW.batch_id IS DISTINCT FROM OLD.batch_id
        OR NEW.created_at IS DISTINCT FROM OLD.created_at
        OR NEW.completed_at IS DISTINCT FROM OLD.completed_at)))
EXECUTE FUNCTION study_slices_on_upload();

INSERT INTO study_slices SELECT * FROM study_slices_counted;

-- Which DICOMDIRs list a study, read from the index alone.
DROP INDEX dicomdir_entries_study_idx;
CREATE INDEX dicomdir_entries_study_idx ON dicomdir_entries (study_uid, directory_upload_id);
