-- Blind indexes of two sealed patient attributes, so DICOMweb searches can match them
-- without storing them in the clear: HMAC-SHA256 of the exact value under a key derived
-- from the master key (hex), and the id of the master key it was derived from, so a key
-- rotation knows which rows to recompute. NULL when the attribute is absent (or the row
-- predates this column and has not been filled yet).
ALTER TABLE dicom_instances ADD COLUMN patient_id_blind TEXT;
ALTER TABLE dicom_instances ADD COLUMN accession_blind TEXT;
ALTER TABLE dicom_instances ADD COLUMN blind_key_id TEXT;
CREATE INDEX dicom_instances_patient_blind_idx ON dicom_instances (user_id, patient_id_blind);
CREATE INDEX dicom_instances_accession_blind_idx ON dicom_instances (user_id, accession_blind);
