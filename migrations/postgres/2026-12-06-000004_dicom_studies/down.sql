DROP TABLE dicomdir_entries;
DROP TABLE dicom_instances;
DROP INDEX uploads_batch_idx;
ALTER TABLE uploads DROP COLUMN relative_path;
ALTER TABLE uploads DROP COLUMN batch_id;
DROP TABLE upload_batches;
