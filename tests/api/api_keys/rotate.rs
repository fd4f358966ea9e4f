//! Rotating a key replaces it.

use super::*;

async fn rotation_replaces_the_key(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.uploader().await;
    let (_, old) = create_key(&app, "nightly", &["read", "upload"], "10").await;
    let id = key_id(&app, &old);
    let res = app
        .post_form(&format!("/account/api-keys/{id}/rotate"), &[])
        .await;
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    let new = find_key(&page).unwrap();
    assert_ne!(new, old);
    assert!(page.contains("will not be shown again"));
    assert_refused(&app, &old).await;
    let body: Value = api_get(&app, "/api/v1/me", &new)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["scopes"], serde_json::json!(["upload", "read"]));

    let mut conn = app.db.conn().unwrap();
    type Row = (
        String,
        String,
        Option<chrono::NaiveDateTime>,
        chrono::NaiveDateTime,
    );
    let new_row: Row = api_keys::table
        .filter(api_keys::prefix.eq(prefix_of(&new)))
        .select((
            api_keys::name,
            api_keys::scopes,
            api_keys::expires_at,
            api_keys::created_at,
        ))
        .first(&mut *conn)
        .unwrap();
    drop(conn);
    assert_eq!(new_row.0, "nightly");
    assert_eq!(new_row.1, "read,upload");
    assert_eq!(
        new_row.2.unwrap() - new_row.3,
        chrono::TimeDelta::days(10),
        "same lifetime, counted from the rotation"
    );
    let rotated = app.audit_actions_named("api_key.rotate");
    assert_eq!(rotated.len(), 1);
    assert!(rotated[0].2.contains(prefix_of(&old)) && rotated[0].2.contains(prefix_of(&new)));

    // A revoked key cannot be rotated back to life.
    let res = app
        .post_form(&format!("/account/api-keys/{id}/rotate"), &[])
        .await;
    assert_eq!(res.status(), 303);
    assert_refused(&app, &old).await;
}

both_backends!(rotation_replaces_the_key,);
