//! The S3 store against a real S3 server (SeaweedFS from `scripts/test-services.sh s3`):
//! the conformance suite of `conformance`, run on S3 exactly as it runs on the
//! local store, plus what only S3 can show (`only`). Without a server these tests fail,
//! they never skip: `scripts/test.sh` always starts one.

mod bench;
mod only;

use actix_web::web::Bytes;
use futures_util::{Stream, TryStreamExt, stream};
use medport::domain::bucket::Encryption;
use medport::infra::storage::blob::{
    BlobStore, ByteRange, MultipartId, ObjectKey, PartInfo, PartNumber,
};
use medport::infra::storage::s3::{S3Config, S3Store, S3Timeouts};
use secrecy::SecretString;

const MIB: usize = 1024 * 1024;

use crate::common::s3::{s3_client as admin_client, s3_env as env};

/// Test buckets. SeaweedFS gives every bucket volumes of its own and has only a few dozen,
/// so the tests share one long-lived bucket (keys are unique per test); what earlier runs
/// left in it is swept once per process. The few tests that change bucket settings make a
/// `medport-t-<UUIDv7>` bucket and delete it; the sweep removes those a failed test left.
const SHARED_BUCKET: &str = "medport-t-shared";
const BUCKET_PREFIX: &str = "medport-t-";
/// Objects, uploads and buckets older than this belong to finished runs.
const STALE_SECS: u64 = 30 * 60;

fn new_bucket_name() -> String {
    format!("{BUCKET_PREFIX}{}", uuid::Uuid::now_v7().simple())
}

async fn create_bucket(name: &str) {
    // SeaweedFS answers a create that races another create of the same name, or a request
    // made just after one, with NoSuchBucket: retry briefly, then wait until it is visible.
    let client = admin_client();
    for attempt in 1..=20 {
        let result = client.create_bucket().bucket(name).send().await;
        let code = match &result {
            Ok(_) => None,
            Err(e) => e
                .as_service_error()
                .and_then(|e| e.meta().code())
                .map(str::to_string),
        };
        match (result, code.as_deref()) {
            (Ok(_), _) | (Err(_), Some("BucketAlreadyOwnedByYou")) => break,
            (Err(_), Some("NoSuchBucket")) if attempt < 20 => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await
            }
            (Err(e), _) => panic!(
                "the S3 test server must answer at MEDPORT_TEST_S3_ENDPOINT (run \
                 scripts/test-services.sh s3): {}",
                aws_sdk_s3::error::DisplayErrorContext(e)
            ),
        }
    }
    for _ in 0..50 {
        if client.head_bucket().bucket(name).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("bucket {name} was created but the S3 test server never showed it");
}

/// The shared bucket: created and swept once per process, before any test uses it, so
/// that the tests starting together do not race to create it.
async fn shared_bucket() -> String {
    static READY: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    READY
        .get_or_init(|| async {
            create_bucket(SHARED_BUCKET).await;
            sweep().await;
        })
        .await;
    SHARED_BUCKET.to_string()
}

/// A bucket of its own, for a test that changes bucket settings; `delete_bucket` it at the
/// end (a failed test leaves it to the sweep).
async fn own_bucket() -> String {
    let name = new_bucket_name();
    create_bucket(&name).await;
    name
}

/// Deletes a test bucket with everything in it.
async fn delete_bucket(name: &str) {
    try_delete_bucket(name).await.unwrap();
}

fn failed(e: impl std::error::Error) -> String {
    aws_sdk_s3::error::DisplayErrorContext(e).to_string()
}

async fn try_delete_bucket(name: &str) -> Result<(), String> {
    let client = admin_client();
    let uploads = client
        .list_multipart_uploads()
        .bucket(name)
        .send()
        .await
        .map_err(failed)?;
    for upload in uploads.uploads() {
        client
            .abort_multipart_upload()
            .bucket(name)
            .set_key(upload.key().map(str::to_string))
            .set_upload_id(upload.upload_id().map(str::to_string))
            .send()
            .await
            .map_err(failed)?;
    }
    loop {
        let listed = client
            .list_objects_v2()
            .bucket(name)
            .send()
            .await
            .map_err(failed)?;
        if listed.contents().is_empty() {
            break;
        }
        for object in listed.contents() {
            client
                .delete_object()
                .bucket(name)
                .set_key(object.key().map(str::to_string))
                .send()
                .await
                .map_err(failed)?;
        }
    }
    client
        .delete_bucket()
        .bucket(name)
        .send()
        .await
        .map_err(failed)?;
    Ok(())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn is_stale(when: Option<&aws_sdk_s3::primitives::DateTime>) -> bool {
    when.and_then(|t| u64::try_from(t.secs()).ok())
        .is_some_and(|t| unix_now().saturating_sub(t) > STALE_SECS)
}

/// Removes what runs that are over left behind: their objects and unfinished uploads in
/// the shared bucket, and their own buckets (a UUIDv7 in the name says when it was made).
async fn sweep() {
    let client = admin_client();
    let Ok(uploads) = client
        .list_multipart_uploads()
        .bucket(SHARED_BUCKET)
        .send()
        .await
    else {
        return; // The test itself reports an unreachable server.
    };
    for upload in uploads.uploads().iter().filter(|u| is_stale(u.initiated())) {
        let _ = client
            .abort_multipart_upload()
            .bucket(SHARED_BUCKET)
            .set_key(upload.key().map(str::to_string))
            .set_upload_id(upload.upload_id().map(str::to_string))
            .send()
            .await;
    }
    let mut token = None;
    loop {
        let Ok(listed) = client
            .list_objects_v2()
            .bucket(SHARED_BUCKET)
            .set_continuation_token(token.take())
            .send()
            .await
        else {
            break;
        };
        for object in listed
            .contents()
            .iter()
            .filter(|o| is_stale(o.last_modified()))
        {
            let _ = client
                .delete_object()
                .bucket(SHARED_BUCKET)
                .set_key(object.key().map(str::to_string))
                .send()
                .await;
        }
        match listed.next_continuation_token() {
            Some(next) if listed.is_truncated() == Some(true) => token = Some(next.to_string()),
            _ => break,
        }
    }
    let Ok(buckets) = client.list_buckets().send().await else {
        return;
    };
    for bucket in buckets.buckets() {
        let Some(name) = bucket.name() else { continue };
        let made = name
            .strip_prefix(BUCKET_PREFIX)
            .and_then(|id| uuid::Uuid::try_parse(id).ok())
            .and_then(|id| id.get_timestamp())
            .map(|ts| ts.to_unix().0);
        if made.is_some_and(|made| unix_now().saturating_sub(made) > STALE_SECS) {
            // Another run may be sweeping it at the same moment.
            let _ = try_delete_bucket(name).await;
        }
    }
}

fn config(bucket: &str, sse: Encryption) -> S3Config {
    let env = env();
    S3Config {
        endpoint: Some(url::Url::parse(&env.endpoint).unwrap()),
        region: env.region,
        bucket: bucket.to_string(),
        path_style: true,
        access_key_id: env.access_key,
        secret_access_key: SecretString::from(env.secret_key),
        sse,
        timeouts: S3Timeouts::default(),
        connect_policy: None,
    }
}

/// An S3 store on the shared test bucket.
async fn store_with(sse: Encryption) -> S3Store {
    S3Store::new(config(&shared_bucket().await, sse)).unwrap()
}

/// The conformance suite's store: SSE-S3 (what a PHI bucket should use), so
/// every completion also goes through the encryption check.
async fn conformance_store() -> BlobStore {
    BlobStore::S3(store_with(Encryption::SseS3).await)
}

/// Runs each conformance function on a store on the test S3 server.
macro_rules! on_s3 {
    ($($name:ident),* $(,)?) => {
        /// The names run here, to be checked against the suite's own list.
        const ON_S3: &[&str] = &[$(stringify!($name)),*];
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let store = conformance_store().await;
                crate::conformance::$name(&store).await
            }
        )*
    };
}

mod conformance {
    use super::conformance_store;

    on_s3!(
        multipart_round_trip_with_a_short_last_part,
        parts_may_arrive_out_of_order_and_concurrently,
        uploading_a_part_again_replaces_it,
        abort_is_idempotent_and_ends_the_upload,
        multipart_uploads_are_listed_by_key_prefix,
        complete_refuses_parts_that_do_not_match,
        complete_can_be_retried,
        range_gets,
        missing_objects,
        delete_is_idempotent,
        a_body_of_the_wrong_length_records_nothing,
        an_empty_object,
        put_stores_a_whole_object_in_one_request,
        put_replaces_an_object_and_leaves_no_upload_behind,
    );

    /// Every check in the suite runs here too: a check added there and not here fails.
    #[test]
    fn every_conformance_check_runs_on_s3() {
        let source = include_str!("conformance.rs");
        let list = source
            .split_once("conformance!(")
            .and_then(|(_, rest)| rest.split_once(");"))
            .map(|(list, _)| list)
            .expect("the suite's conformance!(...) list");
        let mut suite: Vec<&str> = list
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .collect();
        let mut here = ON_S3.to_vec();
        suite.sort_unstable();
        here.sort_unstable();
        assert_eq!(suite, here);
    }
}

// Helpers for the S3-only tests.

fn key(name: &str) -> ObjectKey {
    ObjectKey::parse(&format!("t/{name}-{}", uuid::Uuid::now_v7())).unwrap()
}

fn n(number: u64) -> PartNumber {
    PartNumber::new(number).unwrap()
}

/// Deterministic bytes for part `seed`.
fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// `bytes` as a stream of 64 KiB chunks.
fn chunked(
    bytes: &[u8],
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin + Send + use<> {
    let chunks: Vec<_> = bytes
        .chunks(64 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    stream::iter(chunks)
}

async fn put_part(
    store: &S3Store,
    key: &ObjectKey,
    id: &MultipartId,
    number: u64,
    bytes: &[u8],
) -> PartInfo {
    store
        .upload_part(key, id, n(number), chunked(bytes), bytes.len() as u64)
        .await
        .unwrap()
}

async fn read_all(store: &S3Store, key: &ObjectKey, range: Option<ByteRange>) -> Vec<u8> {
    let (_, body) = store.get(key, range).await.unwrap();
    let chunks: Vec<Bytes> = body.try_collect().await.unwrap();
    chunks.concat()
}
