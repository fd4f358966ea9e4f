DROP INDEX uploads_submission_idx;
DROP INDEX uploads_request_idx;
ALTER TABLE upload_batches DROP COLUMN submission_id;
ALTER TABLE uploads DROP COLUMN submission_id;
ALTER TABLE uploads DROP COLUMN request_id;
DROP TABLE request_submissions;
DROP TABLE upload_requests;
