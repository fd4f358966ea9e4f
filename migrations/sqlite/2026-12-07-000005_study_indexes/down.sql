DROP INDEX dicom_instances_study_state_idx;
DROP INDEX dicom_instances_state_idx;
DROP INDEX uploads_batch_first_idx;
