DROP INDEX uploads_created_idx;
DROP INDEX uploads_user_created_idx;
