DROP INDEX dicomdir_entries_study_idx;
CREATE INDEX dicomdir_entries_study_idx ON dicomdir_entries (study_uid);
DROP TRIGGER study_slices_instance_removed;
DROP TRIGGER study_slices_instance_changed;
DROP TRIGGER study_slices_upload_changed;
DROP TRIGGER study_slices_upload_completed;
DROP TRIGGER study_slices_instance_added;
DROP VIEW study_slices_counted;
DROP TABLE study_slices;
