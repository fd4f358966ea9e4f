//! `medport keys rotate`: every sealed value moves to a new key, the old key file is kept
//! for opening older data, and a server restarted on the rotated files opens everything.

use std::process::Command;

use diesel::prelude::*;
use medport::config::{DatabaseSettings, MasterKeySource};
use medport::infra::crypto::secrets::{self, SealContext};
use medport::infra::db::schema::{buckets, users};
use secrecy::SecretString;

use crate::both_backends;
use crate::helpers::{Backend, Options, TestApp};

pub fn rotate(app: &TestApp) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_medport"))
        .args(["keys", "rotate"])
        .current_dir(app.data_dir.parent().unwrap())
        .env_clear()
        .env("MEDPORT_DATA_DIR", &app.data_dir)
        .env("DATABASE_URL", &app.database_url)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn insert_bucket_with_secret(app: &TestApp, secret: &str) -> String {
    let id = medport::domain::ids::BucketId::new().into_string();
    let sealed = secrets::seal(
        &app.master_keyring(),
        &SealContext {
            table: "buckets",
            row_id: &id,
            field: "secret_key",
        },
        secret.as_bytes(),
    )
    .unwrap();
    let now = chrono::Utc::now().naive_utc();
    let mut conn = app.db.conn().unwrap();
    diesel::insert_into(buckets::table)
        .values((
            buckets::id.eq(&id),
            buckets::display_name.eq("Imaging"),
            buckets::bucket_name.eq("imaging"),
            buckets::backend.eq("s3"),
            buckets::path_style.eq(true),
            buckets::secret_key_sealed.eq(Some(sealed)),
            buckets::encryption.eq("none"),
            buckets::notes.eq(""),
            buckets::is_system.eq(false),
            buckets::open_to_all.eq(false),
            buckets::created_at.eq(now),
            buckets::updated_at.eq(now),
        ))
        .execute(&mut *conn)
        .unwrap();
    id
}

async fn store_local_object(
    app: &TestApp,
    content: &'static [u8],
) -> medport::infra::storage::blob::ObjectKey {
    use medport::infra::storage::blob::{BlobStore, ObjectKey, PartNumber};
    let store = BlobStore::Local(
        medport::infra::storage::local::LocalStore::new(
            app.data_dir.join("objects"),
            std::sync::Arc::new(app.master_keyring()),
        )
        .unwrap(),
    );
    let key = ObjectKey::parse("tests/rotation/object-1").unwrap();
    let id = store.create_multipart(&key).await.unwrap();
    let body = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(
        actix_web::web::Bytes::from_static(content),
    )]);
    let part = store
        .upload_part(
            &key,
            &id,
            PartNumber::new(1).unwrap(),
            body,
            content.len() as u64,
        )
        .await
        .unwrap();
    store.complete(&key, &id, &[part]).await.unwrap();
    key
}

async fn read_object(
    store: &medport::infra::storage::blob::BlobStore,
    key: &medport::infra::storage::blob::ObjectKey,
) -> Vec<u8> {
    use futures_util::StreamExt;
    let (_, mut stream) = store.get(key, None).await.unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

fn key_ids(app: &TestApp) -> Vec<String> {
    let mut conn = app.db.conn().unwrap();
    let mut ids: Vec<String> = users::table
        .select(users::totp_secret_sealed)
        .load::<Option<Vec<u8>>>(&mut *conn)
        .unwrap()
        .into_iter()
        .flatten()
        .chain(
            buckets::table
                .select(buckets::secret_key_sealed)
                .load::<Option<Vec<u8>>>(&mut *conn)
                .unwrap()
                .into_iter()
                .flatten(),
        )
        .map(|s| secrets::sealed_key_id(&s).unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

async fn rotation_reseals_everything_and_a_restart_opens_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.sign_in_as("admin").await;
    let bucket = insert_bucket_with_secret(&app, "bucket-secret-value");
    let object = store_local_object(&app, b"stored before the rotation").await;
    let key_file = app.data_dir.join("master.key");
    let old_key = std::fs::read_to_string(&key_file).unwrap();
    let old_id = key_ids(&app);
    assert_eq!(old_id.len(), 1);

    let (code, out) = rotate(&app);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("re-sealed 2 rows"), "{out}");
    assert!(
        out.contains("1 TOTP seeds, 1 bucket secrets, 0 DICOM patient records"),
        "{out}"
    );
    assert!(out.contains("re-sealed the data keys of"), "{out}");

    let new_key = std::fs::read_to_string(&key_file).unwrap();
    assert_ne!(old_key, new_key);
    let kept = app.data_dir.join(format!("master.key.old.{}", old_id[0]));
    assert_eq!(
        std::fs::read_to_string(&kept).unwrap(),
        old_key,
        "old key kept"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let new_id = key_ids(&app);
    assert_eq!(new_id.len(), 1);
    assert_ne!(new_id, old_id, "every row moved to the new key");

    // The new key alone opens the moved rows.
    let bytes: [u8; 32] = hex::decode(new_key.trim()).unwrap().try_into().unwrap();
    let only_new = secrets::Keyring::new(std::sync::Arc::new(
        medport::infra::crypto::keys::MasterKey::from_bytes(bytes),
    ));
    let sealed: Option<Vec<u8>> = {
        let mut conn = app.db.conn().unwrap();
        buckets::table
            .find(&bucket)
            .select(buckets::secret_key_sealed)
            .first(&mut *conn)
            .unwrap()
    };
    let opened = secrets::open(
        &only_new,
        &SealContext {
            table: "buckets",
            row_id: &bucket,
            field: "secret_key",
        },
        &sealed.unwrap(),
    )
    .unwrap();
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(&opened).as_slice(),
        b"bucket-secret-value"
    );
    // Objects stored before the rotation open with the new key alone too.
    let store = medport::infra::storage::blob::BlobStore::Local(
        medport::infra::storage::local::LocalStore::new(
            app.data_dir.join("objects"),
            std::sync::Arc::new(only_new),
        )
        .unwrap(),
    );
    assert_eq!(
        read_object(&store, &object).await,
        b"stored before the rotation"
    );

    // A server started on the rotated files signs the TOTP user in.
    let data_dir = app.data_dir.clone();
    let database = match backend {
        Backend::Sqlite => DatabaseSettings::Sqlite {
            path: app.sqlite_path(),
        },
        Backend::Postgres => DatabaseSettings::Postgres {
            url: SecretString::from(app.database_url.clone()),
        },
    };
    let restarted = TestApp::spawn_with(
        Backend::Sqlite,
        Options {
            tweak: Box::new(move |s| {
                s.master_key = MasterKeySource::DataDir(data_dir.join("master.key"));
                s.data_dir = data_dir;
                s.database = database;
            }),
            ..Options::default()
        },
    )
    .await;
    restarted.clock.advance(std::time::Duration::from_secs(60));
    restarted
        .sign_in_existing(&admin.email, &admin.password, admin.totp.as_ref())
        .await;
    assert_eq!(
        crate::helpers::location(&restarted.get("/").await),
        "/uploads"
    );

    // The rotation itself is in the audit trail, without key material.
    let rotations: Vec<_> = app
        .audit_actions()
        .into_iter()
        .filter(|a| a.0 == "keys.rotate")
        .collect();
    assert_eq!(rotations.len(), 1);
    assert!(!rotations[0].2.contains(new_key.trim()));
}

async fn an_interrupted_rotation_resumes_with_the_same_key(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    insert_bucket_with_secret(&app, "s");
    // Stopped after writing the new key, before moving any row.
    let next = medport::infra::crypto::keys::MasterKey::generate().unwrap();
    let next_path = app.data_dir.join("master.key.next");
    std::fs::write(&next_path, format!("{}\n", hex::encode(next.expose()))).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&next_path, std::fs::Permissions::from_mode(0o600)).unwrap();

    let (code, out) = rotate(&app);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("under key {}", next.id().as_str())),
        "{out}"
    );
    assert_eq!(key_ids(&app), vec![next.id().as_str().to_string()]);
    assert!(!next_path.exists());
}

both_backends!(
    rotation_reseals_everything_and_a_restart_opens_it,
    an_interrupted_rotation_resumes_with_the_same_key,
);

#[test]
fn rotation_refuses_an_inline_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_medport"))
        .args(["keys", "rotate"])
        .current_dir(dir.path())
        .env_clear()
        .env("MEDPORT_MASTER_KEY", "ab".repeat(32))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("key rotation needs the master key in a file"),
        "{stderr}"
    );
}
