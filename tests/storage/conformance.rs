//! What every backend must do, per the contract in `storage::blob`.

use futures_util::stream;
use medport::infra::storage::blob::{
    BlobStore, ByteRange, MIN_PART_SIZE, MultipartId, ObjectKey, PartInfo, StorageError,
};

use super::{MIB, body, data, fresh_key, part, put_object, read, read_all, sha256, upload};
use crate::conformance;

conformance!(
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

pub(crate) async fn multipart_round_trip_with_a_short_last_part(store: &BlobStore) {
    let parts = [data(1, 5 * MIB), data(2, 5 * MIB), data(3, MIB + 123)];
    let whole = parts.concat();
    let key = fresh_key();
    let id = store.create_multipart(&key).await.unwrap();
    assert!(
        store
            .list_multipart_uploads()
            .await
            .unwrap()
            .contains(&(key.clone(), id.clone()))
    );
    assert!(
        store.head(&key).await.unwrap().is_none(),
        "visible before completion"
    );

    let mut infos = Vec::new();
    for (i, bytes) in parts.iter().enumerate() {
        infos.push(upload(store, &key, &id, i as u64 + 1, bytes).await);
    }
    assert_eq!(store.list_parts(&key, &id).await.unwrap(), infos);
    let info = store.complete(&key, &id, &infos).await.unwrap();
    assert_eq!(info.size, whole.len() as u64);
    assert_eq!(store.head(&key).await.unwrap().as_ref(), Some(&info));

    let got = read_all(store, &key, None).await;
    assert_eq!(got.len(), whole.len());
    assert_eq!(sha256(&got), sha256(&whole));
    assert!(got == whole);

    // The upload is over: no longer listed, no more parts accepted.
    assert!(
        !store
            .list_multipart_uploads()
            .await
            .unwrap()
            .iter()
            .any(|(_, listed)| *listed == id)
    );
    let late = store
        .upload_part(&key, &id, part(4), body(b"late", 4), 4)
        .await;
    assert!(matches!(late, Err(StorageError::NoSuchUpload)), "{late:?}");
}

pub(crate) async fn parts_may_arrive_out_of_order_and_concurrently(store: &BlobStore) {
    let parts = [data(11, 5 * MIB), data(12, 5 * MIB), data(13, 777)];
    let key = fresh_key();
    let id = store.create_multipart(&key).await.unwrap();
    let third = upload(store, &key, &id, 3, &parts[2]).await;
    let (first, second) = tokio::join!(
        upload(store, &key, &id, 1, &parts[0]),
        upload(store, &key, &id, 2, &parts[1]),
    );
    let listed = store.list_parts(&key, &id).await.unwrap();
    assert_eq!(listed, vec![first.clone(), second.clone(), third.clone()]);
    store
        .complete(&key, &id, &[first, second, third])
        .await
        .unwrap();
    assert!(read_all(store, &key, None).await == parts.concat());
}

pub(crate) async fn uploading_a_part_again_replaces_it(store: &BlobStore) {
    let (old, new, last) = (data(21, 5 * MIB), data(22, 5 * MIB + 1), data(23, 10));
    let key = fresh_key();
    let id = store.create_multipart(&key).await.unwrap();
    let stale = upload(store, &key, &id, 1, &old).await;
    let fresh = upload(store, &key, &id, 1, &new).await;
    assert_ne!(stale.etag, fresh.etag);
    // The same content again: a retried part is harmless, the latest upload is the part.
    // S3 names content (its ETag is the same again); the local store names the stored file
    // (a new salt, key and tags each time, and so a new ETag).
    let retried = upload(store, &key, &id, 1, &new).await;
    match store {
        BlobStore::S3(_) => assert_eq!(retried, fresh),
        BlobStore::Local(_) => assert_ne!(retried.etag, fresh.etag),
    }
    let fresh = retried;
    let tail = upload(store, &key, &id, 2, &last).await;
    assert_eq!(
        store.list_parts(&key, &id).await.unwrap(),
        vec![fresh.clone(), tail.clone()]
    );

    let refused = store.complete(&key, &id, &[stale, tail.clone()]).await;
    assert!(
        matches!(refused, Err(StorageError::InvalidPart(_))),
        "{refused:?}"
    );
    store.complete(&key, &id, &[fresh, tail]).await.unwrap();
    assert!(read_all(store, &key, None).await == [new, last].concat());
}

/// An upload's object and its tail objects share its key as a prefix; cleanup finds every
/// multipart upload under it, and nothing of another upload.
pub(crate) async fn multipart_uploads_are_listed_by_key_prefix(store: &BlobStore) {
    let key = fresh_key();
    let tail = ObjectKey::parse(&format!("{}.tail.1000", key.as_str())).unwrap();
    let other = fresh_key();
    let on_key = store.create_multipart(&key).await.unwrap();
    let on_tail = store.create_multipart(&tail).await.unwrap();
    let on_other = store.create_multipart(&other).await.unwrap();
    let mut under = store.list_multipart_uploads_under(&key).await.unwrap();
    under.sort();
    let mut expected = vec![
        (key.clone(), on_key.clone()),
        (tail.clone(), on_tail.clone()),
    ];
    expected.sort();
    assert_eq!(under, expected);
    assert_eq!(
        store.list_multipart_uploads_under(&other).await.unwrap(),
        vec![(other.clone(), on_other.clone())]
    );
    for (k, id) in [(&key, &on_key), (&tail, &on_tail), (&other, &on_other)] {
        store.abort(k, id).await.unwrap();
    }
    assert!(
        store
            .list_multipart_uploads_under(&key)
            .await
            .unwrap()
            .is_empty()
    );
}

pub(crate) async fn abort_is_idempotent_and_ends_the_upload(store: &BlobStore) {
    let key = fresh_key();
    let id = store.create_multipart(&key).await.unwrap();
    let info = upload(store, &key, &id, 1, &data(31, 1000)).await;
    store.abort(&key, &id).await.unwrap();
    store.abort(&key, &id).await.unwrap();
    let listed = store.list_multipart_uploads().await.unwrap();
    assert!(!listed.iter().any(|(_, l)| *l == id), "{listed:?}");
    assert!(matches!(
        store.list_parts(&key, &id).await,
        Err(StorageError::NoSuchUpload)
    ));
    assert!(matches!(
        store.complete(&key, &id, &[info]).await,
        Err(StorageError::NoSuchUpload)
    ));
    assert!(store.head(&key).await.unwrap().is_none());
    // An id that never existed is just as aborted.
    store
        .abort(&key, &MultipartId::new("never-created"))
        .await
        .unwrap();
}

pub(crate) async fn complete_refuses_parts_that_do_not_match(store: &BlobStore) {
    let (a, b) = (data(41, 5 * MIB), data(42, 1000));
    let key = fresh_key();
    let id = store.create_multipart(&key).await.unwrap();
    let first = upload(store, &key, &id, 1, &a).await;
    let second = upload(store, &key, &id, 2, &b).await;
    let wrong_etag = PartInfo {
        etag: format!("{}0", first.etag),
        ..first.clone()
    };
    let wrong_size = PartInfo {
        size: first.size - 1,
        ..first.clone()
    };
    let never_uploaded = PartInfo {
        number: part(3),
        ..second.clone()
    };
    for bad in [
        vec![wrong_etag, second.clone()],
        vec![wrong_size, second.clone()],
        vec![first.clone(), never_uploaded],
        vec![second.clone(), first.clone()],
        vec![first.clone(), first.clone()],
        vec![],
    ] {
        let result = store.complete(&key, &id, &bad).await;
        assert!(
            matches!(result, Err(StorageError::InvalidPart(_))),
            "{result:?}"
        );
    }

    // A part below the minimum is only allowed last.
    let small_key = fresh_key();
    let small_id = store.create_multipart(&small_key).await.unwrap();
    let small = upload(store, &small_key, &small_id, 1, &data(43, 1000)).await;
    let after = upload(store, &small_key, &small_id, 2, &data(44, 1000)).await;
    assert!(small.size < MIN_PART_SIZE);
    let result = store.complete(&small_key, &small_id, &[small, after]).await;
    assert!(
        matches!(result, Err(StorageError::InvalidPart(_))),
        "{result:?}"
    );
    store.abort(&small_key, &small_id).await.unwrap();

    // Nothing was changed by the refusals.
    assert!(store.head(&key).await.unwrap().is_none());
    store.complete(&key, &id, &[first, second]).await.unwrap();
    assert!(read_all(store, &key, None).await == [a, b].concat());
}

pub(crate) async fn complete_can_be_retried(store: &BlobStore) {
    let key = fresh_key();
    let id = store.create_multipart(&key).await.unwrap();
    let only = upload(store, &key, &id, 1, &data(51, 4096)).await;
    let info = store
        .complete(&key, &id, std::slice::from_ref(&only))
        .await
        .unwrap();
    // The answer to the first call was lost: asking again gives the same object.
    let again = store.complete(&key, &id, &[only]).await.unwrap();
    assert_eq!(again.size, info.size);
    assert_eq!(again.etag, info.etag);
}

pub(crate) async fn range_gets(store: &BlobStore) {
    let parts = [data(61, 5 * MIB), data(62, 200_000)];
    let whole = parts.concat();
    let size = whole.len() as u64;
    let key = put_object(store, &[&parts[0], &parts[1]]).await;
    let get = |header: &str| {
        let range = ByteRange::parse_http(header, size).unwrap();
        read_all(store, &key, Some(range))
    };
    let part_edge = 5 * MIB;
    assert_eq!(get("bytes=0-0").await, whole[..1]);
    assert_eq!(get("bytes=65530-65545").await, whole[65_530..=65_545]);
    assert_eq!(get("bytes=131071-131072").await, whole[131_071..=131_072]);
    let across = format!("bytes={}-{}", part_edge - 70_000, part_edge + 70_000);
    assert!(get(&across).await == whole[part_edge - 70_000..=part_edge + 70_000]);
    assert_eq!(get("bytes=-10").await, whole[whole.len() - 10..]);
    let tail = format!("bytes={}-", size - 1);
    assert_eq!(get(&tail).await, whole[whole.len() - 1..]);
    let (info, _) = store
        .get(&key, Some(ByteRange::inclusive(0, 9)))
        .await
        .unwrap();
    assert_eq!(info.size, size, "info gives the whole object's size");

    // Past the end: refused, both as a header and as a range.
    assert!(ByteRange::parse_http(&format!("bytes={size}-"), size).is_err());
    for beyond in [
        ByteRange::from(size),
        ByteRange::inclusive(size + 10, size + 20),
    ] {
        let result = store.get(&key, Some(beyond)).await;
        assert!(
            matches!(result, Err(StorageError::RangeNotSatisfiable)),
            "{beyond:?}"
        );
    }
    // An end past the object is clamped.
    let clamped = ByteRange::inclusive(size - 3, size + 1000);
    assert_eq!(
        read_all(store, &key, Some(clamped)).await,
        whole[whole.len() - 3..]
    );
}

pub(crate) async fn missing_objects(store: &BlobStore) {
    let key = fresh_key();
    assert!(store.head(&key).await.unwrap().is_none());
    assert!(matches!(
        read(store, &key, None).await,
        Err(StorageError::NotFound)
    ));
    store.health().await.unwrap();
}

pub(crate) async fn delete_is_idempotent(store: &BlobStore) {
    let key = put_object(store, &[&data(71, 3000)]).await;
    assert!(store.head(&key).await.unwrap().is_some());
    store.delete(&key).await.unwrap();
    store.delete(&key).await.unwrap();
    assert!(store.head(&key).await.unwrap().is_none());
    assert!(matches!(
        read(store, &key, None).await,
        Err(StorageError::NotFound)
    ));
}

pub(crate) async fn a_body_of_the_wrong_length_records_nothing(store: &BlobStore) {
    let key = fresh_key();
    let id = store.create_multipart(&key).await.unwrap();
    let bytes = data(81, 300_000);
    let short = store
        .upload_part(&key, &id, part(1), body(&bytes, 65_536), 300_001)
        .await;
    assert!(
        matches!(short, Err(StorageError::InvalidPart(_))),
        "{short:?}"
    );
    let long = store
        .upload_part(&key, &id, part(1), body(&bytes, 65_536), 299_999)
        .await;
    assert!(
        matches!(long, Err(StorageError::InvalidPart(_))),
        "{long:?}"
    );
    let broken = stream::iter(vec![
        Ok(bytes[..1000].to_vec().into()),
        Err(std::io::Error::other("client went away")),
    ]);
    let failed = store.upload_part(&key, &id, part(1), broken, 300_000).await;
    assert!(
        matches!(failed, Err(StorageError::InvalidPart(_))),
        "{failed:?}"
    );
    assert_eq!(store.list_parts(&key, &id).await.unwrap(), vec![]);

    let good = upload(store, &key, &id, 1, &bytes).await;
    assert_eq!(store.list_parts(&key, &id).await.unwrap(), vec![good]);
    store.abort(&key, &id).await.unwrap();
}

pub(crate) async fn an_empty_object(store: &BlobStore) {
    let key = put_object(store, &[b""]).await;
    assert_eq!(store.head(&key).await.unwrap().map(|i| i.size), Some(0));
    assert!(read_all(store, &key, None).await.is_empty());
    let result = store.get(&key, Some(ByteRange::from(0))).await;
    assert!(matches!(result, Err(StorageError::RangeNotSatisfiable)));
}

pub(crate) async fn put_stores_a_whole_object_in_one_request(store: &BlobStore) {
    for len in [0, 1, 64 * 1024 + 7, 8 * MIB] {
        let bytes = data(len as u64 + 11, len);
        let key = fresh_key();
        let put = store.put(&key, bytes.clone().into()).await.unwrap();
        assert_eq!(put.object.size, len as u64);
        assert_eq!(put.part.size, len as u64);
        assert_eq!(put.part.number.get(), 1);
        let head = store.head(&key).await.unwrap().expect("visible once put");
        assert_eq!(head.size, len as u64);
        assert_eq!(
            head.sse, put.object.sse,
            "the answer reports the encryption in force"
        );
        assert!(head.sse.is_some(), "stored encrypted");
        assert_eq!(sha256(&read_all(store, &key, None).await), sha256(&bytes));
        if len > 10 {
            let range = ByteRange::inclusive(3, 9);
            assert_eq!(read_all(store, &key, Some(range)).await, bytes[3..10]);
        }
    }
}

pub(crate) async fn put_replaces_an_object_and_leaves_no_upload_behind(store: &BlobStore) {
    let key = fresh_key();
    store.put(&key, data(5, 1000).into()).await.unwrap();
    let second = data(6, 2000);
    store.put(&key, second.clone().into()).await.unwrap();
    assert_eq!(read_all(store, &key, None).await, second);
    let open: Vec<_> = store
        .list_multipart_uploads_under(&key)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert!(
        open.is_empty(),
        "a put leaves no multipart upload: {open:?}"
    );
    store.delete(&key).await.unwrap();
    assert!(store.head(&key).await.unwrap().is_none());
}
