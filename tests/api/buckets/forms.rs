//! The create and edit forms: every bad field gets its own message, what was typed comes
//! back (never the secret), SSRF endpoints are refused (also metadata addresses carried in
//! IPv6 or in the shared range 100.64.0.0/10), and the system default bucket
//! cannot be edited or deleted.

use diesel::prelude::*;
use medport::infra::db::schema::buckets;

use super::{SYSTEM_ID, admin_post, bucket_count, insert_bucket, sealed_secret, spawn_loopback};
use crate::both_backends;
use crate::helpers::{Backend, TestApp};

const SECRET: &str = "Zq8/never-echo-this+SECRET-k3y";

async fn each_bad_field_has_its_own_message_and_the_rest_is_kept(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("admin").await;
    let before = bucket_count(&app);
    let res = admin_post(
        &app,
        "/admin/buckets",
        &[
            ("display_name", "Radiology <b>archive</b>"),
            ("bucket_name", "Bad_Bucket"),
            ("region", "mars-north-9"),
            ("endpoint", ""),
            ("access_key_id", "has a space"),
            ("secret_key", SECRET),
            ("encryption", "sse-kms"),
            ("kms_key_id", ""),
            ("size_limit", "12.5GB"),
            ("extensions", "pdf"),
            ("extensions", "exe"),
            ("notes", "kept notes"),
        ],
    )
    .await;
    assert_eq!(res.status(), 422);
    let page = res.text().await.unwrap();
    for message in [
        "Bucket name may contain only lowercase letters, digits, dots and hyphens.",
        "Region is not an AWS region; for another S3-compatible service, also give its endpoint URL.",
        "Access key id may contain only printable characters without spaces.",
        "KMS key id is required for SSE-KMS.",
        "Size limit must be a whole number of bytes",
        "Allowed file types may only include types from the global allowlist.",
    ] {
        assert!(page.contains(message), "{message} missing:\n{page}");
    }
    assert_eq!(page.matches(r#"class="field-error""#).count(), 6, "{page}");
    // What was typed is kept (escaped), the secret is not.
    for kept in [
        r#"value="Radiology &#60;b&#62;archive&#60;/b&#62;""#,
        r#"value="Bad_Bucket""#,
        r#"value="mars-north-9""#,
        r#"value="12.5GB""#,
        ">kept notes</textarea>",
        r#"value="pdf" checked"#,
    ] {
        assert!(page.contains(kept), "{kept} not kept:\n{page}");
    }
    assert!(!page.contains(SECRET) && !page.contains("never-echo"));
    assert!(
        page.contains("type it again"),
        "the admin is told to retype the secret"
    );
    assert_eq!(bucket_count(&app), before, "nothing was created");

    // A missing secret on create is its own message; display name too.
    let res = admin_post(
        &app,
        "/admin/buckets",
        &[
            ("display_name", ""),
            ("bucket_name", "good-bucket"),
            ("region", "eu-central-1"),
            ("access_key_id", "AKIA1"),
            ("secret_key", ""),
            ("encryption", "none"),
            ("size_limit", "0"),
        ],
    )
    .await;
    assert_eq!(res.status(), 422);
    let page = res.text().await.unwrap();
    for message in [
        "Display name is required.",
        "Secret key is required.",
        "Size limit must be more than 0 bytes",
    ] {
        assert!(page.contains(message), "{message} missing");
    }
    assert!(page.contains(r#"value="good-bucket""#));
}

async fn ssrf_endpoints_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("admin").await;
    let before = bucket_count(&app);
    for (endpoint, message) in [
        (
            "http://169.254.169.254",
            "Endpoint URL points at a cloud metadata service.",
        ),
        (
            "https://[::1]",
            "Endpoint URL points at this server itself, which this installation does not allow.",
        ),
        (
            "http://s3.example.org",
            "Endpoint URL must use https (plain http is allowed only to this host).",
        ),
        (
            "https://[fe80::1]:9000",
            "Endpoint URL is a link-local address.",
        ),
        (
            "http://127.0.0.1:8333",
            "Endpoint URL points at this server itself",
        ),
    ] {
        assert_endpoint_refused(&app, endpoint, message).await;
    }
    assert_eq!(bucket_count(&app), before);
}

/// Posts a new bucket with `endpoint` and expects the form back with `message` on that field.
async fn assert_endpoint_refused(app: &TestApp, endpoint: &str, message: &str) {
    let res = admin_post(
        app,
        "/admin/buckets",
        &[
            ("display_name", "Metadata"),
            ("bucket_name", "some-bucket"),
            ("region", "us-east-1"),
            ("endpoint", endpoint),
            ("access_key_id", "AKIA1"),
            ("secret_key", SECRET),
            ("encryption", "none"),
        ],
    )
    .await;
    assert_eq!(res.status(), 422, "{endpoint}");
    let page = res.text().await.unwrap();
    assert!(page.contains(message), "{endpoint}: {page}");
    assert!(page.contains(r#"id="endpoint-error""#));
    assert!(!page.contains(SECRET));
}

async fn metadata_behind_nat64_or_in_the_shared_range_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("admin").await;
    let before = bucket_count(&app);
    for (endpoint, message) in [
        (
            "https://[64:ff9b::a9fe:a9fe]",
            "Endpoint URL points at a cloud metadata service.",
        ),
        (
            "https://100.100.100.200",
            "Endpoint URL points at a cloud metadata service.",
        ),
        (
            "https://[2002:a9fe:a9fe::1]",
            "Endpoint URL points at a cloud metadata service.",
        ),
        (
            "https://[::127.0.0.1]",
            "Endpoint URL points at this server itself, which this installation does not allow.",
        ),
        (
            "https://100.64.0.1",
            "Endpoint URL is in the shared range 100.64.0.0/10",
        ),
    ] {
        assert_endpoint_refused(&app, endpoint, message).await;
    }
    assert_eq!(bucket_count(&app), before);
}

async fn the_system_default_bucket_cannot_be_edited_or_deleted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("admin").await;
    let other = insert_bucket(&app, "Cardiology");

    let (status, list) = app.page("/admin/buckets").await;
    assert_eq!(status, 200);
    assert!(list.contains("System default"));
    assert!(list.contains("Default bucket") && list.contains("Cardiology"));
    assert!(
        !list.contains(&format!("/admin/buckets/{SYSTEM_ID}/edit")),
        "{list}"
    );
    assert!(list.contains(&format!("/admin/buckets/{other}/edit")));
    assert!(list.contains(&format!(r#"hx-get="/admin/buckets/{SYSTEM_ID}/health""#)));

    let (status, page) = app.page(&format!("/admin/buckets/{SYSTEM_ID}")).await;
    assert_eq!(status, 200);
    assert!(
        !page.contains("/edit\"") && !page.contains("/delete\""),
        "{page}"
    );
    assert!(page.contains("System default"));

    assert_eq!(
        app.page(&format!("/admin/buckets/{SYSTEM_ID}/edit"))
            .await
            .0,
        403
    );
    let res = admin_post(
        &app,
        &format!("/admin/buckets/{SYSTEM_ID}"),
        &[
            ("display_name", "Hijacked"),
            ("bucket_name", "hijacked"),
            ("region", "us-east-1"),
            ("access_key_id", "AKIA1"),
            ("secret_key", SECRET),
            ("encryption", "none"),
        ],
    )
    .await;
    assert_eq!(res.status(), 403);
    let res = admin_post(
        &app,
        &format!("/admin/buckets/{SYSTEM_ID}/delete"),
        &[("confirm", "Default bucket")],
    )
    .await;
    assert_eq!(res.status(), 403);

    let mut conn = app.db.conn().unwrap();
    let (name, backend_name, sealed): (String, String, Option<Vec<u8>>) = buckets::table
        .find(SYSTEM_ID)
        .select((
            buckets::display_name,
            buckets::backend,
            buckets::secret_key_sealed,
        ))
        .first(&mut *conn)
        .unwrap();
    assert_eq!(
        (name.as_str(), backend_name.as_str()),
        ("Default bucket", "local")
    );
    assert!(sealed.is_none());
    drop(conn);
    // A bucket without a stored secret: a blank secret has nothing to keep.
    let res = admin_post(
        &app,
        &format!("/admin/buckets/{other}"),
        &[
            ("display_name", "Cardiology"),
            ("bucket_name", "medport-direct"),
            ("region", "eu-central-1"),
            ("access_key_id", "AKIATEST"),
            ("secret_key", ""),
            ("encryption", "sse-s3"),
        ],
    )
    .await;
    assert_eq!(res.status(), 422);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Secret key is required.")
    );

    for action in ["bucket.update", "bucket.delete"] {
        let rows = app.audit_rows(action);
        assert_eq!(rows.len(), 1, "{action}");
        assert_eq!(rows[0].outcome, "denied");
        assert_eq!(rows[0].target.as_deref(), Some(SYSTEM_ID));
    }
}

async fn edit_keeps_a_blank_secret_and_audits_changed_field_names(backend: Backend) {
    let app = spawn_loopback(backend).await;
    app.sign_in_as("admin").await;
    let env = super::s3_env();
    let fields = super::s3_fields("Pathology", "pathology-scans", &env);
    let id = super::create_through_form(&app, &fields).await;
    let sealed = sealed_secret(&app, &id).unwrap();

    let (status, form) = app.page(&format!("/admin/buckets/{id}/edit")).await;
    assert_eq!(status, 200);
    assert!(form.contains(r#"value="Pathology""#) && form.contains(r#"value="pathology-scans""#));
    assert!(form.contains("A secret key is stored"));
    assert!(!form.contains(&env.secret_key), "the secret is write-only");

    let mut edited: Vec<(&str, &str)> = fields
        .iter()
        .map(|&(k, v)| match k {
            "secret_key" => (k, ""),
            "notes" => (k, "moved to the new array"),
            "size_limit" => (k, "1073741824"),
            _ => (k, v),
        })
        .collect();
    edited.push(("extensions", "dcm"));
    let res = admin_post(&app, &format!("/admin/buckets/{id}"), &edited).await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        sealed_secret(&app, &id).unwrap(),
        sealed,
        "blank keeps the old secret"
    );
    let updates = app.audit_rows("bucket.update");
    assert_eq!(
        updates[0].details["changed"],
        serde_json::json!(["size_limit", "allowed_extensions", "notes"])
    );
    let (_, page) = app.page(&format!("/admin/buckets/{id}")).await;
    assert!(page.contains("1 GiB") && page.contains(".dcm"), "{page}");

    // A new secret replaces the sealed value; the audit names the field, not the value.
    let replaced: Vec<(&str, &str)> = fields
        .iter()
        .map(|&(k, v)| {
            if k == "secret_key" {
                (k, SECRET)
            } else {
                (k, v)
            }
        })
        .collect();
    let res = admin_post(&app, &format!("/admin/buckets/{id}"), &replaced).await;
    assert_eq!(res.status(), 303);
    let resealed = sealed_secret(&app, &id).unwrap();
    assert_ne!(resealed, sealed);
    let opened = medport::infra::crypto::secrets::open(
        &app.master_keyring(),
        &medport::infra::crypto::secrets::SealContext {
            table: "buckets",
            row_id: &id,
            field: "secret_key",
        },
        &resealed,
    )
    .unwrap();
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(&opened).as_slice(),
        SECRET.as_bytes()
    );
    let updates = app.audit_rows("bucket.update");
    assert!(
        updates[1].details["changed"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("secret_key"))
    );
    assert!(!updates[1].details.to_string().contains(SECRET));

    // Nothing changed: nothing written, nothing audited.
    let res = admin_post(
        &app,
        &format!("/admin/buckets/{id}"),
        &edited_again(&fields),
    )
    .await;
    assert_eq!(res.status(), 303);
    assert_eq!(app.audit_rows("bucket.update").len(), 2);
}

/// The same values as stored after the second edit, with a blank secret.
fn edited_again<'a>(fields: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    fields
        .iter()
        .map(|&(k, v)| if k == "secret_key" { (k, "") } else { (k, v) })
        .collect()
}

both_backends!(
    each_bad_field_has_its_own_message_and_the_rest_is_kept,
    ssrf_endpoints_are_refused,
    metadata_behind_nat64_or_in_the_shared_range_is_refused,
    the_system_default_bucket_cannot_be_edited_or_deleted,
    edit_keeps_a_blank_secret_and_audits_changed_field_names,
);
