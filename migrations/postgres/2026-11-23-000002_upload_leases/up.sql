-- One writer at a time per upload, across instances: a PATCH (or a completion) holds the
-- lease, renewing it while bytes flow; a crashed holder's lease simply runs out.
ALTER TABLE uploads ADD COLUMN lease_token TEXT;
ALTER TABLE uploads ADD COLUMN lease_until TIMESTAMP;
