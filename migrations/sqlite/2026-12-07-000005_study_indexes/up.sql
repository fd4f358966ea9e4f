-- The upload history shows a batch as one row, its first upload standing for it: finding
-- that upload is one seek here instead of a scan of the batch, per row listed.
CREATE INDEX uploads_batch_first_idx ON uploads (batch_id, id);

-- Files of a kind (DICOMDIRs, unreadable headers) among a user's instances, found without
-- reading every instance of theirs.
CREATE INDEX dicom_instances_state_idx ON dicom_instances (state, user_id);

-- A study's counted instances (study, state 'indexed', owner): with three columns to match
-- the planner prefers this to the state index above, which would read every study of the
-- user.
CREATE INDEX dicom_instances_study_state_idx ON dicom_instances (study_uid, state, user_id);
