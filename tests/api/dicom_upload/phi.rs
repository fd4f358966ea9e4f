//! Patient attributes at rest and in the logs: sealed in the database (nowhere in the
//! clear, on either database), never logged, not even as the name of a folder, and moved to
//! the new key by a key rotation.

use diesel::prelude::*;
use medport::app::studies::index::seal_context;
use medport::infra::crypto::secrets;
use medport::infra::db::schema::dicom_instances;
use medport::infra::dicom::PatientAttributes;
use secrecy::ExposeSecret as _;

use super::{index_state, uploader};
use crate::both_backends;
use crate::helpers::dicom::Instance;
use crate::helpers::{Backend, TestApp, medport, serve_with_log};
use crate::tus_support::{Tus, pdf};

const STUDY: &str = "1.2.826.0.1.3680043.99.4";
/// A name no other part of the app could write by chance.
const NAME: &str = "QUONSET^ZEPHYRINE";
/// Identifiers the generated instances carry besides the name (sealed as well).
const OTHER_IDENTIFIERS: [&str; 2] = ["SYNTH-PID-1", "ACC-SYNTH-1"];

fn patient_instance(n: i32) -> Instance {
    Instance {
        patient: NAME,
        ..Instance::of(STUDY, 1, n)
    }
}

fn sealed(app: &TestApp, id: &str) -> Vec<u8> {
    dicom_instances::table
        .find(id)
        .select(dicom_instances::patient_sealed)
        .first::<Option<Vec<u8>>>(&mut *app.db.conn().unwrap())
        .unwrap()
        .expect("patient attributes are sealed")
}

/// The sealed attributes, opened with the app's current key file alone.
fn opened_with_current_key(app: &TestApp, id: &str, sealed: &[u8]) -> Option<PatientAttributes> {
    let plain = secrets::open(&app.master_keyring(), &seal_context(id), sealed).ok()?;
    Some(serde_json::from_slice(plain.expose_secret()).unwrap())
}

/// An app where an uploader sent one instance of the patient; its upload id.
async fn with_one_instance(backend: Backend) -> (TestApp, Tus, String) {
    let app = TestApp::spawn(backend).await;
    let tus = uploader(&app).await;
    let (status, id, body) = tus
        .send_in_batch(None, "CD/IM1", &patient_instance(1).bytes())
        .await;
    assert_eq!(status, 201, "{body}");
    let id = id.unwrap();
    assert_eq!(index_state(&app, &id), "indexed");
    (app, tus, id)
}

async fn patient_attributes_are_nowhere_in_the_database_in_the_clear(backend: Backend) {
    let (app, tus, id) = with_one_instance(backend).await;
    // A copy cut off in the middle of the name: what is said about it does not quote it.
    let cut = patient_instance(2).cut_in_patient_name(NAME.len() - 2);
    let (status, cut, body) = tus.send_in_batch(None, "CD/IM2", &cut).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(index_state(&app, &cut.unwrap()), "unreadable");
    // The search finds what is stored in the clear...
    assert!(app.database_contains("Synthetic study"));
    assert!(app.database_contains(&id));
    // ...and not the patient.
    let (family, given) = NAME.split_once('^').unwrap();
    for needle in [NAME, family, given].into_iter().chain(OTHER_IDENTIFIERS) {
        assert!(
            !app.database_contains(needle),
            "{needle} is stored in the clear"
        );
    }
    // Sealed, not lost.
    let patient = opened_with_current_key(&app, &id, &sealed(&app, &id)).unwrap();
    assert_eq!(patient.patient_name.as_deref(), Some(NAME));
    assert_eq!(patient.patient_id.as_deref(), Some(OTHER_IDENTIFIERS[0]));
}

async fn patient_names_and_folders_named_after_them_never_reach_the_log(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.create_user("log-phi@example.org", "uploader", "a long enough password");
    let key = app.create_api_key(&user, "upload,read");
    let (mut server, base, log) = serve_with_log(&app, &[]);
    let mut tus = Tus::with_key(&app, &key);
    tus.base = base;

    let batch = tus.open_batch(None, 5).await;
    let whole = patient_instance(1).bytes();
    let conflicting = Instance {
        pixels: 600,
        ..patient_instance(1)
    }
    .bytes();
    for (path, data, expected) in [
        ("DOE_JANE/IM0001", whole.clone(), 201),
        (
            "DOE_JANE/IM0002",
            patient_instance(1).cut_in_patient_name(9),
            201,
        ),
        ("DOE_JANE/IM0003", conflicting, 201),
        ("DOE_JANE/IM0004", whole, 201),
        ("DOE_JANE/REPORT", pdf(1000, 3), 415),
        ("DOE_JANE/../IM0005", pdf(1000, 3), 400),
    ] {
        let (status, _, body) = tus.send_in_batch(Some(&batch), path, &data).await;
        assert_eq!(status, expected, "{path}: {body}");
    }
    let summary = tus.batch_status(&batch).await;
    assert_eq!(summary["problems"], 3, "{summary}");
    assert_eq!(tus.finish_batch(&batch, 1).await.status(), 200);

    server.kill().unwrap();
    server.wait().unwrap();
    // The reader threads drain what the server wrote before it stopped.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let log = log.lock().unwrap().clone();
    assert!(log.contains("request done"), "the log was captured: {log}");
    let (family, given) = NAME.split_once('^').unwrap();
    for needle in [NAME, family, given, "DOE_JANE"] {
        assert!(!log.contains(needle), "{needle} in the log:\n{log}");
    }
}

async fn key_rotation_reseals_patient_attributes(backend: Backend) {
    let (app, _, id) = with_one_instance(backend).await;
    let before = sealed(&app, &id);

    let out = medport(&app, &["keys", "rotate"]);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("re-sealed 1 rows"), "{text}");
    assert!(
        text.contains("0 TOTP seeds, 0 bucket secrets, 1 DICOM patient records"),
        "{text}"
    );

    let after = sealed(&app, &id);
    assert_ne!(
        secrets::sealed_key_id(&before),
        secrets::sealed_key_id(&after),
        "the seal moved to the new key"
    );
    // The key file now holds the new key alone: it opens the new seal, not the old one.
    let patient = opened_with_current_key(&app, &id, &after).expect("opens with the new key");
    assert_eq!(patient.patient_name.as_deref(), Some(NAME));
    assert!(opened_with_current_key(&app, &id, &before).is_none());
}

both_backends!(
    patient_attributes_are_nowhere_in_the_database_in_the_clear,
    patient_names_and_folders_named_after_them_never_reach_the_log,
    key_rotation_reseals_patient_attributes,
);
