DROP INDEX dicom_instances_accession_blind_idx;
DROP INDEX dicom_instances_patient_blind_idx;
ALTER TABLE dicom_instances DROP COLUMN blind_key_id;
ALTER TABLE dicom_instances DROP COLUMN accession_blind;
ALTER TABLE dicom_instances DROP COLUMN patient_id_blind;
