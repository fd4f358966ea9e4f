//! The bucket's size limit while a request streams: each part reserves at most the room
//! left, so the parts that fit are stored and the rest are out of resources.

use diesel::prelude::*;

use super::support::{STUDY, instance, uploader_key};
use crate::both_backends;
use crate::helpers::{Backend, TestApp};

async fn a_bucket_that_fills_up_mid_request_stores_what_fits(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = uploader_key(&app, &["upload"]).await;
    let sent: Vec<_> = (1..=5).map(|n| instance(STUDY, n)).collect();
    let bytes: Vec<Vec<u8>> = sent.iter().map(|i| i.bytes()).collect();
    // Room for two instances and most of a third: far less than the request, which is
    // more than all five.
    let limit = (bytes[0].len() * 28 / 10) as i64;
    {
        use medport::infra::db::schema::buckets;
        let mut conn = app.db.conn().unwrap();
        diesel::update(buckets::table.find(crate::buckets::SYSTEM_ID))
            .set(buckets::size_limit_bytes.eq(Some(limit)))
            .execute(&mut *conn)
            .unwrap();
    }
    let res = app.stow("/dicomweb/studies", &key, &bytes).await;
    assert_eq!(res.status, 202, "{:#}", res.body);
    assert_eq!(res.stored(), [sent[0].sop.clone(), sent[1].sop.clone()]);
    let failed = res.failed();
    assert_eq!(failed.len(), 3);
    assert!(
        failed.iter().all(|(_, reason)| *reason == 0xA700),
        "{failed:?}"
    );
    let statuses: Vec<String> = app.upload_statuses().into_iter().map(|(s, _)| s).collect();
    assert_eq!(statuses[..2], ["completed", "completed"]);
    assert!(
        statuses[2..]
            .iter()
            .all(|s| s == "aborted" || s == "rejected"),
        "{statuses:?}"
    );
    // Nothing is still reserved: an instance that fits the room left is stored.
    let mut small = instance(STUDY, 9);
    small.pixels = 16;
    let left = limit as usize - bytes[0].len() * 2;
    assert!(small.bytes().len() <= left);
    let res = app.stow("/dicomweb/studies", &key, &[small.bytes()]).await;
    assert_eq!(res.status, 200, "{:#}", res.body);
}

both_backends!(a_bucket_that_fills_up_mid_request_stores_what_fits);
