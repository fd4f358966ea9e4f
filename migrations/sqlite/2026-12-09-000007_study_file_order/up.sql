-- A study page lists its instances a page at a time, by series and instance number: read in
-- this order, a page is its own rows rather than every instance of the study sorted. The
-- owner comes before the order, as every page is narrowed to one (an administrator's view
-- of everyone's sorts instead).
CREATE INDEX dicom_instances_study_order_idx
    ON dicom_instances (study_uid, state, user_id, series_number, series_uid, instance_number, upload_id);
