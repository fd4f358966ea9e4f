// One schema for both backends. Kept by hand in step with migrations/{sqlite,postgres};
// `tests/api/migrations.rs` checks that both databases agree with it.

diesel::table! {
    users (id) {
        id -> Text,
        email -> Text,
        role -> Text,
        password_hash -> Text,
        must_change_password -> Bool,
        disabled -> Bool,
        totp_secret_sealed -> Nullable<Binary>,
        totp_last_step -> Nullable<BigInt>,
        recovery_codes -> Nullable<Text>,
        password_changed_at -> Timestamp,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    login_throttles (email_hash) {
        email_hash -> Text,
        failures -> Integer,
        throttled_until -> Nullable<Timestamp>,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    sessions (id_hash) {
        id_hash -> Text,
        user_id -> Nullable<Text>,
        state -> Text,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        created_at -> Timestamp,
        last_seen_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Text,
        user_id -> Text,
        name -> Text,
        prefix -> Text,
        key_hash -> Text,
        scopes -> Text,
        expires_at -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    buckets (id) {
        id -> Text,
        display_name -> Text,
        bucket_name -> Text,
        backend -> Text,
        region -> Nullable<Text>,
        endpoint -> Nullable<Text>,
        path_style -> Bool,
        access_key_id -> Nullable<Text>,
        secret_key_sealed -> Nullable<Binary>,
        encryption -> Text,
        kms_key_id -> Nullable<Text>,
        size_limit_bytes -> Nullable<BigInt>,
        allowed_extensions -> Nullable<Text>,
        notes -> Text,
        is_system -> Bool,
        open_to_all -> Bool,
        created_by -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    bucket_grants (bucket_id, user_id) {
        bucket_id -> Text,
        user_id -> Text,
        granted_by -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    uploads (id) {
        id -> Text,
        user_id -> Text,
        bucket_id -> Text,
        api_key_id -> Nullable<Text>,
        filename -> Text,
        content_type -> Nullable<Text>,
        extension -> Text,
        declared_size -> BigInt,
        upload_offset -> BigInt,
        part_size -> BigInt,
        object_key -> Text,
        storage_upload_id -> Nullable<Text>,
        status -> Text,
        status_reason -> Nullable<Text>,
        sha256 -> Nullable<Text>,
        hash_state -> Nullable<Binary>,
        client_checksum -> Nullable<Text>,
        scan_status -> Nullable<Text>,
        scan_detail -> Nullable<Text>,
        cleanup_attempts -> Integer,
        next_cleanup_at -> Nullable<Timestamp>,
        expires_at -> Timestamp,
        completed_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        lease_token -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
        batch_id -> Nullable<Text>,
        relative_path -> Nullable<Text>,
        request_id -> Nullable<Text>,
        submission_id -> Nullable<Text>,
    }
}

diesel::table! {
    upload_batches (id) {
        id -> Text,
        user_id -> Text,
        bucket_id -> Text,
        declared_files -> BigInt,
        declared_bytes -> BigInt,
        started_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
        submission_id -> Nullable<Text>,
    }
}

diesel::table! {
    dicom_instances (upload_id) {
        upload_id -> Text,
        user_id -> Text,
        state -> Text,
        detail -> Nullable<Text>,
        study_uid -> Nullable<Text>,
        series_uid -> Nullable<Text>,
        sop_instance_uid -> Nullable<Text>,
        sop_class_uid -> Nullable<Text>,
        transfer_syntax_uid -> Nullable<Text>,
        modality -> Nullable<Text>,
        study_date -> Nullable<Text>,
        study_time -> Nullable<Text>,
        study_description -> Nullable<Text>,
        series_description -> Nullable<Text>,
        series_number -> Nullable<Integer>,
        instance_number -> Nullable<Integer>,
        number_of_frames -> Nullable<Integer>,
        body_part -> Nullable<Text>,
        patient_sealed -> Nullable<Binary>,
        indexed_at -> Timestamp,
        patient_id_blind -> Nullable<Text>,
        accession_blind -> Nullable<Text>,
        blind_key_id -> Nullable<Text>,
    }
}

diesel::table! {
    dicomdir_entries (directory_upload_id, referenced_path) {
        directory_upload_id -> Text,
        referenced_path -> Text,
        sop_instance_uid -> Nullable<Text>,
        study_uid -> Nullable<Text>,
    }
}

// Kept by database triggers (migration 000008); read, never written, by the code.
diesel::table! {
    study_slices (study_uid, series_uid, user_id, modality, batch_id) {
        study_uid -> Text,
        series_uid -> Text,
        user_id -> Text,
        modality -> Text,
        batch_id -> Text,
        instances -> BigInt,
        bytes -> BigInt,
        series_number -> Nullable<Integer>,
        series_description -> Nullable<Text>,
        study_date -> Nullable<Text>,
        study_description -> Nullable<Text>,
        first_upload -> Nullable<Timestamp>,
        last_completion -> Nullable<Timestamp>,
    }
}

diesel::table! {
    upload_parts (upload_id, part_number) {
        upload_id -> Text,
        part_number -> Integer,
        size -> BigInt,
        etag -> Text,
        digest -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    upload_tails (upload_id, tail_offset) {
        upload_id -> Text,
        tail_offset -> BigInt,
    }
}

diesel::table! {
    audit_events (id) {
        id -> BigInt,
        occurred_at -> Timestamp,
        actor_user_id -> Nullable<Text>,
        actor_label -> Text,
        action -> Text,
        outcome -> Text,
        target_type -> Nullable<Text>,
        target_id -> Nullable<Text>,
        ip -> Nullable<Text>,
        request_id -> Nullable<Text>,
        details -> Text,
        prev_hash -> Text,
        hash -> Text,
    }
}

diesel::table! {
    oidc_identities (issuer, subject) {
        issuer -> Text,
        subject -> Text,
        user_id -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    email_outbox (id) {
        id -> Text,
        recipient -> Text,
        subject -> Text,
        body_text -> Text,
        body_html -> Text,
        kind -> Text,
        state -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        last_error -> Nullable<Text>,
        lease_token -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
        created_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    webhooks (id) {
        id -> Text,
        bucket_id -> Text,
        url -> Text,
        secret_sealed -> Binary,
        events -> Text,
        enabled -> Bool,
        created_by -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> Text,
        webhook_id -> Text,
        event -> Text,
        payload -> Text,
        state -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        last_status -> Nullable<Integer>,
        last_error -> Nullable<Text>,
        lease_token -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
        created_at -> Timestamp,
        delivered_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    upload_requests (id) {
        id -> Text,
        owner_id -> Text,
        bucket_id -> Text,
        token_hash -> Text,
        title -> Text,
        instructions -> Text,
        passphrase_hash -> Nullable<Text>,
        required_fields -> Text,
        max_files -> BigInt,
        max_bytes -> BigInt,
        expires_at -> Timestamp,
        closed_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
        reminded_at -> Nullable<Timestamp>,
        first_file_at -> Nullable<Timestamp>,
        last_activity_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    request_submissions (id) {
        id -> Text,
        request_id -> Text,
        receipt_number -> Text,
        sender_sealed -> Binary,
        started_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
        receipt_hash -> Nullable<Text>,
    }
}

diesel::joinable!(upload_requests -> users (owner_id));
diesel::joinable!(request_submissions -> upload_requests (request_id));
diesel::joinable!(oidc_identities -> users (user_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(api_keys -> users (user_id));
diesel::joinable!(bucket_grants -> buckets (bucket_id));
diesel::joinable!(uploads -> buckets (bucket_id));
diesel::joinable!(upload_parts -> uploads (upload_id));
diesel::joinable!(upload_tails -> uploads (upload_id));
diesel::joinable!(dicom_instances -> uploads (upload_id));
diesel::joinable!(dicomdir_entries -> uploads (directory_upload_id));
diesel::joinable!(upload_batches -> users (user_id));
diesel::joinable!(webhooks -> buckets (bucket_id));
diesel::joinable!(webhook_deliveries -> webhooks (webhook_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    upload_requests,
    request_submissions,
    login_throttles,
    sessions,
    api_keys,
    buckets,
    bucket_grants,
    uploads,
    upload_parts,
    upload_tails,
    upload_batches,
    dicom_instances,
    dicomdir_entries,
    study_slices,
    audit_events,
    oidc_identities,
    email_outbox,
    webhooks,
    webhook_deliveries,
);
