//! DICOM files as clinicians send them: recognised by content whatever their name, read
//! on the server, grouped in batches, with patient attributes sealed at rest.

use diesel::prelude::*;
use medport::infra::db::schema::dicom_instances;

use crate::both_backends;
use crate::helpers::dicom::{Instance, PATIENT};
use crate::helpers::{Backend, TestApp};
use crate::tus_support::{Tus, api_key};

async fn a_dicom_file_without_an_extension_is_accepted_and_indexed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.uploader().await;
    let tus = Tus::with_key(&app, &api_key(&app, &["upload", "read"]).await);
    let instance = Instance::of("1.2.826.0.1.3680043.99.1", 1, 1);
    let (status, id, body) = tus
        .send_in_batch(
            None,
            "CD/PT000000/ST000000/SE000000/IM000000",
            &instance.bytes(),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = id.unwrap();
    let (state, study, sealed): (String, Option<String>, Option<Vec<u8>>) = dicom_instances::table
        .find(&id)
        .select((
            dicom_instances::state,
            dicom_instances::study_uid,
            dicom_instances::patient_sealed,
        ))
        .first(&mut *app.db.conn().unwrap())
        .unwrap();
    assert_eq!(state, "indexed");
    assert_eq!(study.as_deref(), Some(instance.study.as_str()));
    let sealed = sealed.expect("patient attributes are sealed");
    let surname = PATIENT.split('^').nth(1).unwrap();
    assert!(!String::from_utf8_lossy(&sealed).contains(surname));
}

both_backends!(a_dicom_file_without_an_extension_is_accepted_and_indexed);
