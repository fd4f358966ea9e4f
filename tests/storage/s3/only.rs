//! What only the S3 store has: encryption requested and verified, clear errors for wrong
//! credentials and missing buckets, outages as `Unavailable` within the timeouts, the
//! multipart upload listing, the bucket security report and the connection probe.

use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};
use medport::domain::bucket::Encryption;
use medport::infra::storage::blob::{ByteRange, MultipartId, ObjectKey, StorageError};
use medport::infra::storage::s3::{Check, CheckState, S3Store};
use secrecy::SecretString;

use super::{
    MIB, admin_client, chunked, config, data, delete_bucket, key, n, own_bucket, put_part,
    read_all, shared_bucket, store_with,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_s3_is_requested_and_verified_after_completion() {
    let store = store_with(Encryption::SseS3).await;
    let key = key("sse");
    let id = store.create_multipart(&key).await.unwrap();
    let first = data(5 * MIB, 1);
    let last = data(1000, 2);
    let parts = vec![
        put_part(&store, &key, &id, 1, &first).await,
        put_part(&store, &key, &id, 2, &last).await,
    ];
    let info = store.complete(&key, &id, &parts).await.unwrap();
    assert_eq!(info.sse.as_deref(), Some("AES256"));
    assert_eq!(info.size, (5 * MIB + 1000) as u64);
    let head = store.head(&key).await.unwrap().unwrap();
    assert_eq!(head.sse.as_deref(), Some("AES256"));
    assert_eq!(read_all(&store, &key, None).await, [first, last].concat());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_s3_is_requested_and_verified_on_a_whole_object_put() {
    let store = store_with(Encryption::SseS3).await;
    let key = key("sse-put");
    let bytes = data(70_000, 3);
    let put = store.put(&key, bytes.clone().into()).await.unwrap();
    assert_eq!(put.object.sse.as_deref(), Some("AES256"));
    let head = store.head(&key).await.unwrap().unwrap();
    assert_eq!(head.sse.as_deref(), Some("AES256"));
    assert_eq!(head.size, 70_000);
    assert_eq!(read_all(&store, &key, None).await, bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_without_the_required_encryption_is_never_reported_complete() {
    // An upload created without SSE (an older setting, or a server that ignored the
    // header) and completed by a store that requires SSE-S3: refused, and the unencrypted
    // object is removed.
    let bucket = shared_bucket().await;
    let plain = S3Store::new(config(&bucket, Encryption::None)).unwrap();
    let strict = S3Store::new(config(&bucket, Encryption::SseS3)).unwrap();
    let key = key("unencrypted");
    let id = plain.create_multipart(&key).await.unwrap();
    let part = put_part(&plain, &key, &id, 1, &data(2000, 4)).await;
    let err = strict.complete(&key, &id, &[part]).await.unwrap_err();
    let StorageError::Config(message) = &err else {
        panic!("expected a configuration error, got {err:?}");
    };
    assert!(message.contains("AES256"), "{message}");
    assert!(
        strict.head(&key).await.unwrap().is_none(),
        "the object was left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_kms_without_a_kms_is_a_clear_config_error() {
    // SeaweedFS has no KMS: it accepts CreateMultipartUpload with aws:kms, then answers
    // HTTP 500 to the part. That must read as a configuration problem, not an outage that
    // is worth retrying.
    let store = store_with(Encryption::SseKms {
        key_id: "medport-test-key".into(),
    })
    .await;
    let key = key("kms");
    let first = match store.create_multipart(&key).await {
        Ok(id) => {
            let body = data(1000, 9);
            let failed = store
                .upload_part(&key, &id, n(1), chunked(&body), 1000)
                .await;
            store.abort(&key, &id).await.unwrap();
            failed.unwrap_err()
        }
        Err(e) => e,
    };
    let StorageError::Config(message) = &first else {
        panic!("expected a configuration error, got {first:?}");
    };
    assert!(message.contains("KMS"), "{message}");
    assert!(!first.is_retryable());
    let probe = store.probe().await.unwrap_err();
    assert!(
        matches!(&probe, StorageError::Config(m) if m.contains("KMS")),
        "{probe:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_a_config_error_not_an_outage() {
    let bucket = shared_bucket().await;
    let mut cfg = config(&bucket, Encryption::None);
    cfg.secret_access_key = SecretString::from("not-the-secret".to_string());
    let store = S3Store::new(cfg).unwrap();
    let err = store.health().await.unwrap_err();
    assert!(matches!(err, StorageError::Config(_)), "{err:?}");
    let err = store.create_multipart(&key("creds")).await.unwrap_err();
    let StorageError::Config(message) = &err else {
        panic!("expected a configuration error, got {err:?}");
    };
    assert!(message.contains("access"), "{message}");
    assert!(!message.contains("not-the-secret"), "{message}");

    let mut cfg = config(&bucket, Encryption::None);
    cfg.access_key_id = "nobody".into();
    let err = S3Store::new(cfg).unwrap().health().await.unwrap_err();
    assert!(matches!(err, StorageError::Config(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_is_a_config_error() {
    let name = format!("medport-missing-{}", uuid::Uuid::now_v7().simple());
    let store = S3Store::new(config(&name, Encryption::None)).unwrap();
    let err = store.health().await.unwrap_err();
    let StorageError::Config(message) = &err else {
        panic!("expected a configuration error, got {err:?}");
    };
    assert!(message.contains("does not exist"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_unavailable_within_the_timeouts() {
    // A port that was free a moment ago: connections are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = config("medport-unreachable", Encryption::None);
    cfg.endpoint = Some(url::Url::parse(&format!("http://127.0.0.1:{port}")).unwrap());
    let store = S3Store::new(cfg).unwrap();
    let started = Instant::now();
    let err = store.health().await.unwrap_err();
    assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");
    assert!(err.is_retryable());
    let key = key("down");
    let err = store.create_multipart(&key).await.unwrap_err();
    assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");
    let id = MultipartId::new("x");
    let body = data(1024, 0);
    let err = store
        .upload_part(&key, &id, n(1), chunked(&body), 1024)
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");
    // Three operations, each 3 attempts with at most 0.5 s + 1 s of backoff.
    let took = started.elapsed();
    assert!(took < Duration::from_secs(15), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_uploads_are_listed_until_aborted() {
    let store = store_with(Encryption::None).await;
    let (a, b) = (key("a"), key("b"));
    // The bucket is shared with other tests: look at this test's keys only.
    let ours = |listed: Vec<(ObjectKey, MultipartId)>| -> Vec<_> {
        listed
            .into_iter()
            .filter(|(k, _)| *k == a || *k == b)
            .collect()
    };
    let id_a = store.create_multipart(&a).await.unwrap();
    let id_b = store.create_multipart(&b).await.unwrap();
    put_part(&store, &a, &id_a, 1, b"tail").await;
    let mut listed = ours(store.list_multipart_uploads(None).await.unwrap());
    listed.sort();
    let mut expected = vec![(a.clone(), id_a.clone()), (b.clone(), id_b.clone())];
    expected.sort();
    assert_eq!(listed, expected);
    store.abort(&a, &id_a).await.unwrap();
    let listed = ours(store.list_multipart_uploads(None).await.unwrap());
    assert_eq!(listed, vec![(b.clone(), id_b.clone())]);
    // Aborting again, or an id the server never issued, is success.
    store.abort(&a, &id_a).await.unwrap();
    store
        .abort(&a, &MultipartId::new("never-issued"))
        .await
        .unwrap();
    assert!(matches!(
        store.list_parts(&a, &id_a).await,
        Err(StorageError::NoSuchUpload)
    ));
    store.abort(&b, &id_b).await.unwrap();
    assert!(ours(store.list_multipart_uploads(None).await.unwrap()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_length_part_is_refused_and_not_stored() {
    let store = store_with(Encryption::None).await;
    let key = key("len");
    let id = store.create_multipart(&key).await.unwrap();
    let body = data(100_000, 3);
    for announced in [99_999u64, 100_001, 0] {
        let err = store
            .upload_part(&key, &id, n(1), chunked(&body), announced)
            .await
            .unwrap_err();
        assert!(
            matches!(err, StorageError::InvalidPart(_)),
            "{announced}: {err:?}"
        );
    }
    let failing = stream::iter(vec![
        Ok(Bytes::from(vec![0u8; 1000])),
        Err(std::io::Error::other("client went away")),
    ]);
    let err = store
        .upload_part(&key, &id, n(1), failing, 2000)
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::InvalidPart(_)), "{err:?}");
    assert!(store.list_parts(&key, &id).await.unwrap().is_empty());
    store.abort(&key, &id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_report_on_the_test_server() {
    // Changes a bucket setting: a bucket of its own.
    let bucket = own_bucket().await;
    let store = S3Store::new(config(&bucket, Encryption::None)).unwrap();
    let report = store.security_report().await;
    let state = |check: Check| {
        report
            .iter()
            .find(|c| c.check == check)
            .map(|c| c.state)
            .unwrap()
    };
    assert_eq!(report.len(), 4, "{report:?}");
    // SeaweedFS does not implement the public access block API (501).
    assert_eq!(
        state(Check::PublicAccessBlock),
        CheckState::Unknown,
        "{report:?}"
    );
    assert_eq!(
        state(Check::DefaultEncryption),
        CheckState::Bad,
        "{report:?}"
    );
    assert_eq!(state(Check::Versioning), CheckState::Bad, "{report:?}");
    assert_eq!(
        state(Check::AbortIncompleteUploads),
        CheckState::Bad,
        "{report:?}"
    );

    // Turning default encryption on shows up.
    let rule = aws_sdk_s3::types::ServerSideEncryptionRule::builder()
        .apply_server_side_encryption_by_default(
            aws_sdk_s3::types::ServerSideEncryptionByDefault::builder()
                .sse_algorithm(aws_sdk_s3::types::ServerSideEncryption::Aes256)
                .build()
                .unwrap(),
        )
        .build();
    admin_client()
        .put_bucket_encryption()
        .bucket(store.bucket())
        .server_side_encryption_configuration(
            aws_sdk_s3::types::ServerSideEncryptionConfiguration::builder()
                .rules(rule)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let report = store.security_report().await;
    let encryption = report
        .iter()
        .find(|c| c.check == Check::DefaultEncryption)
        .unwrap();
    assert_eq!(encryption.state, CheckState::Ok, "{report:?}");
    assert!(encryption.detail.contains("AES256"), "{report:?}");
    delete_bucket(&bucket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_writes_reads_and_deletes_a_tiny_object() {
    for sse in [Encryption::None, Encryption::SseS3] {
        let store = store_with(sse).await;
        store.probe().await.unwrap();
        let left: Vec<_> = admin_client()
            .list_objects_v2()
            .bucket(store.bucket())
            .prefix(".medport-probe/")
            .send()
            .await
            .unwrap()
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
    let bucket = shared_bucket().await;
    let mut cfg = config(&bucket, Encryption::None);
    cfg.secret_access_key = SecretString::from("wrong".to_string());
    let err = S3Store::new(cfg).unwrap().probe().await.unwrap_err();
    assert!(matches!(err, StorageError::Config(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_are_streamed_and_ranges_read_back() {
    let store = store_with(Encryption::None).await;
    let key = key("stream");
    let id = store.create_multipart(&key).await.unwrap();
    let one = data(8 * MIB, 7);
    let two = data(3 * MIB + 5, 8);
    let p1 = put_part(&store, &key, &id, 1, &one).await;
    let p2 = put_part(&store, &key, &id, 2, &two).await;
    assert_eq!(
        store.list_parts(&key, &id).await.unwrap(),
        vec![p1.clone(), p2.clone()]
    );
    let info = store.complete(&key, &id, &[p1, p2]).await.unwrap();
    let whole = [one, two].concat();
    assert_eq!(info.size, whole.len() as u64);
    let start = 8 * MIB - 10;
    let got = read_all(
        &store,
        &key,
        Some(ByteRange::inclusive(start as u64, start as u64 + 19)),
    )
    .await;
    assert_eq!(got, whole[start..start + 20]);
    let (info, body) = store
        .get(&key, Some(ByteRange::from(start as u64)))
        .await
        .unwrap();
    assert_eq!(info.size, whole.len() as u64);
    let chunks: Vec<Bytes> = body.try_collect().await.unwrap();
    assert_eq!(chunks.concat(), whole[start..]);
    let mut body = store.get(&key, None).await.unwrap().1;
    let mut total = 0;
    while let Some(chunk) = body.next().await {
        total += chunk.unwrap().len();
    }
    assert_eq!(total, whole.len());
}

/// The endpoint's name is resolved again at every connection and checked like the form
/// checks it, so a changed DNS answer cannot steer the client to a forbidden address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_addresses_are_refused_at_connect_time() {
    use medport::domain::bucket::EndpointPolicy;
    let bucket = super::shared_bucket().await;
    let by_name = |allow_loopback: bool| {
        let mut cfg = super::config(&bucket, Encryption::None);
        let mut url = cfg.endpoint.clone().unwrap();
        url.set_host(Some("localhost")).unwrap();
        cfg.endpoint = Some(url);
        cfg.connect_policy = Some(EndpointPolicy { allow_loopback });
        S3Store::new(cfg).unwrap()
    };
    // Loopback allowed: the name resolves to 127.0.0.1 and the server answers.
    by_name(true).health().await.unwrap();
    // Not allowed: no connection is made.
    let refused = by_name(false).health().await;
    assert!(
        refused.is_err(),
        "a loopback address must be refused at connect time"
    );
}
