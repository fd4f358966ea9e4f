DROP TABLE upload_tails;
