//! With a scanner, stored instances are scanned like any upload: the clean one is released,
//! the one carrying the test signature is quarantined.

use super::support::{STUDY, instance, uploader_key};
use crate::both_backends;
use crate::helpers::{Backend, Options, TestApp};
use crate::tus_support::settled_status;

async fn stored_instances_are_scanned_and_an_infected_one_quarantined(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            tweak: Box::new(crate::scanning::with_clamd),
            ..Options::default()
        },
    )
    .await;
    let key = uploader_key(&app, &["upload"]).await;
    let clean = instance(STUDY, 1).bytes();
    let mut infected = instance(STUDY, 2).bytes();
    // The signature inside the pixels: still a well-formed instance.
    let signature = crate::scanning::signature();
    let at = infected
        .windows(signature.len())
        .position(|w| w.iter().all(|b| *b == 0x5a))
        .unwrap();
    infected[at..at + signature.len()].copy_from_slice(signature.as_bytes());

    let res = app
        .stow("/dicomweb/studies", &key, &[clean, infected])
        .await;
    assert_eq!(res.status, 200, "stored, scanning follows: {:#}", res.body);
    let ids = app.upload_ids();
    assert_eq!(ids.len(), 2);
    assert_eq!(settled_status(&app, &ids[0], 60).await, "completed");
    assert_eq!(settled_status(&app, &ids[1], 60).await, "quarantined");
}

both_backends!(stored_instances_are_scanned_and_an_infected_one_quarantined);
