//! What only the local store can show: the files it leaves on disk are encrypted,
//! authenticated and private; state survives a restart; abandoned uploads leave nothing
//! behind. These tests know the on-disk layout documented in `storage::local`.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use futures_util::{StreamExt, stream};
use medport::infra::crypto::keys::MasterKey;
use medport::infra::crypto::secrets::Keyring;
use medport::infra::storage::blob::{BlobStore, ByteRange, MultipartId, StorageError};
use medport::infra::storage::local::LocalStore;

use super::{
    LocalFixture, MIB, data, files_under, fresh_key, part, put_object, read, read_all, upload,
};

const HEADER: u64 = 122;
const CHUNK: u64 = 65_536;
const STORED_CHUNK: u64 = CHUNK + 16;

/// The stored file of part `n` of the only completed object under `root`.
fn blob_part(root: &Path, n: u16) -> PathBuf {
    let name = format!("part-{n:05}");
    let found: Vec<_> = files_under(&root.join("blobs"))
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|f| f == name.as_str()))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].clone()
}

fn flip(path: &Path, at: u64) {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, at).unwrap();
    file.write_all_at(&[byte[0] ^ 0x20], at).unwrap();
}

fn temp_files(root: &Path) -> Vec<PathBuf> {
    files_under(&root.join("tmp"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_fails_the_download_and_never_returns_later_data() {
    let fx = LocalFixture::new();
    let parts = [data(1, 5 * MIB), data(2, 300_000)];
    let whole = parts.concat();
    let key = put_object(&fx.store, &[&parts[0], &parts[1]]).await;
    let file = blob_part(&fx.root, 1);
    let len = fs::metadata(&file).unwrap().len();
    let chunk3 = HEADER + 3 * STORED_CHUNK;
    let chunk70 = HEADER + 70 * STORED_CHUNK;
    // (byte to flip, index of the chunk it damages)
    for (at, damaged) in [
        (10, 0),
        (chunk3 + 100, 3),
        (chunk3 + CHUNK + 5, 3),
        (chunk70 + 1, 70),
        (len - 1, 79),
    ] {
        flip(&file, at);
        match read(&fx.store, &key, None).await {
            // Found before the answer started.
            Err(StorageError::Integrity(_)) => {}
            Ok((bytes, Some(StorageError::Integrity(_)))) => {
                assert!(
                    bytes.len() as u64 <= damaged * CHUNK,
                    "byte {at}: data past damage"
                );
                assert!(bytes == whole[..bytes.len()], "byte {at}: wrong data");
            }
            other => panic!("byte {at}: {:?}", other.map(|(b, e)| (b.len(), e))),
        }
        flip(&file, at);
        assert!(
            read_all(&fx.store, &key, None).await == whole,
            "restored {at}"
        );
    }

    // Range reads decrypt only what they need: undamaged chunks still read.
    flip(&file, chunk70 + 1);
    let early = read_all(&fx.store, &key, Some(ByteRange::inclusive(0, 999))).await;
    assert_eq!(early, whole[..1000]);
    let touching = ByteRange::inclusive(70 * CHUNK + 5, 70 * CHUNK + 10);
    assert!(matches!(
        read(&fx.store, &key, Some(touching)).await,
        Err(StorageError::Integrity(_))
    ));
    flip(&file, chunk70 + 1);

    // Cut short or extended: also refused.
    let original = fs::read(&file).unwrap();
    let handle = OpenOptions::new().write(true).open(&file).unwrap();
    handle.set_len(len - 16).unwrap();
    assert!(read_fails_integrity(&fx.store, &key).await);
    handle.set_len(len + 1).unwrap();
    assert!(read_fails_integrity(&fx.store, &key).await);
    handle.set_len(0).unwrap();
    handle.write_all_at(&original, 0).unwrap();
    assert!(read_all(&fx.store, &key, None).await == whole);
}

async fn read_fails_integrity(
    store: &BlobStore,
    key: &medport::infra::storage::blob::ObjectKey,
) -> bool {
    matches!(
        read(store, key, None).await,
        Err(StorageError::Integrity(_)) | Ok((_, Some(StorageError::Integrity(_))))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_indexes_and_moved_parts_are_detected() {
    let fx = LocalFixture::new();
    let a = data(3, 5 * MIB);
    let b = data(4, 5 * MIB);
    let key = put_object(&fx.store, &[&a, &b]).await;
    let index = files_under(&fx.root.join("index")).pop().unwrap();
    let original = fs::read(&index).unwrap();
    let text = String::from_utf8(original.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    let size = format!("\"size\":{}", a.len() + b.len());
    for altered in [
        text.replace(&size, &format!("\"size\":{}", a.len() + b.len() - 1)),
        text.replacen("\"number\":1", "\"number\":3", 1),
        format!(
            "{}\n{}0\n{}\n{}\n",
            lines[0],
            &lines[1][1..],
            lines[2],
            lines[3]
        ),
        format!(
            "{}\n{}\n{}0\n{}\n",
            lines[0],
            lines[1],
            &lines[2][1..],
            lines[3]
        ),
    ] {
        assert_ne!(altered, text);
        fs::write(&index, &altered).unwrap();
        let head = fx.store.head(&key).await;
        assert!(matches!(head, Err(StorageError::Integrity(_))), "{head:?}");
        assert!(read_fails_integrity(&fx.store, &key).await);
    }
    fs::write(&index, &original).unwrap();

    // Two parts of equal size swapped on disk.
    let (one, two) = (blob_part(&fx.root, 1), blob_part(&fx.root, 2));
    let spare = one.with_extension("spare");
    fs::rename(&one, &spare).unwrap();
    fs::rename(&two, &one).unwrap();
    fs::rename(&spare, &two).unwrap();
    assert!(read_fails_integrity(&fx.store, &key).await);
    fs::rename(&one, &spare).unwrap();
    fs::rename(&two, &one).unwrap();
    fs::rename(&spare, &two).unwrap();
    assert!(read_all(&fx.store, &key, None).await == [a, b].concat());

    // A part of another object, with the same size, copied over this one's.
    let other_fx = LocalFixture::at(tempfile::tempdir().unwrap(), fx.keyring.clone());
    put_object(&other_fx.store, &[&data(5, 5 * MIB), &data(6, 5 * MIB)]).await;
    fs::copy(blob_part(&other_fx.root, 1), &one).unwrap();
    assert!(read_fails_integrity(&fx.store, &key).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_plaintext_reaches_the_disk() {
    let marker = b"PHI-MARKER:DOE^JANE^19700101;";
    let content: Vec<u8> = marker
        .iter()
        .copied()
        .cycle()
        .take(5 * MIB + 4321)
        .collect();
    let contains_marker = |root: &Path| {
        files_under(root).into_iter().find(|path| {
            let bytes = fs::read(path).unwrap();
            bytes.windows(marker.len()).any(|w| w == marker)
        })
    };
    let fx = LocalFixture::new();
    let key = fresh_key();
    let id = fx.store.create_multipart(&key).await.unwrap();
    let first = upload(&fx.store, &key, &id, 1, &content[..5 * MIB]).await;
    let second = upload(&fx.store, &key, &id, 2, &content[5 * MIB..]).await;
    assert_eq!(contains_marker(&fx.root), None, "during the upload");
    fx.store
        .complete(&key, &id, &[first, second])
        .await
        .unwrap();
    assert_eq!(contains_marker(&fx.root), None, "after completion");
    assert!(read_all(&fx.store, &key, None).await == content);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_instance_continues_an_upload() {
    let fx = LocalFixture::new();
    let parts = [data(7, 5 * MIB), data(8, 5 * MIB), data(9, 1000)];
    let key = fresh_key();
    let id = fx.store.create_multipart(&key).await.unwrap();
    let one = upload(&fx.store, &key, &id, 1, &parts[0]).await;
    let two = upload(&fx.store, &key, &id, 2, &parts[1]).await;

    let other = fx.reopen(fx.keyring.clone()).unwrap();
    let listed = other.list_multipart_uploads().await.unwrap();
    assert_eq!(listed, vec![(key.clone(), id.clone())]);
    assert_eq!(
        other.list_parts(&key, &id).await.unwrap(),
        vec![one.clone(), two.clone()]
    );
    let three = upload(&other, &key, &id, 3, &parts[2]).await;
    other.complete(&key, &id, &[one, two, three]).await.unwrap();
    assert!(read_all(&fx.store, &key, None).await == parts.concat());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_keys_follow_the_master_key() {
    let fx = LocalFixture::new();
    let bytes = data(10, 100_000);
    let key = put_object(&fx.store, &[&bytes]).await;
    let pending = fresh_key();
    let id = fx.store.create_multipart(&pending).await.unwrap();

    // After a rotation the old key is still configured for reading.
    let rotated = Keyring::new(Arc::new(MasterKey::generate().unwrap()));
    let previous = Arc::new(MasterKey::from_bytes(*fx.keyring.current().expose()));
    let both = Arc::new(rotated.clone().with_previous(previous));
    let local = LocalStore::new(fx.root.clone(), both).unwrap();
    let store = BlobStore::Local(local.clone());
    assert!(read_all(&store, &key, None).await == bytes);
    upload(&store, &pending, &id, 1, &bytes).await;

    // Without it, nothing opens, and the error says why.
    let stranger = fx.reopen(Arc::new(rotated)).unwrap();
    assert!(matches!(
        stranger.head(&key).await,
        Err(StorageError::Config(_))
    ));
    assert!(matches!(
        stranger.list_parts(&pending, &id).await,
        Err(StorageError::Config(_))
    ));

    // Re-sealing moves every data key (an object's and an upload's) to the new key, after
    // which the old one is no longer needed.
    assert_eq!(local.reseal_data_keys().await.unwrap(), 2);
    assert_eq!(local.reseal_data_keys().await.unwrap(), 0);
    assert!(read_all(&stranger, &key, None).await == bytes);
    assert_eq!(stranger.list_parts(&pending, &id).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_part_uploads_leave_no_temp_files() {
    let fx = LocalFixture::new();
    let key = fresh_key();
    let id = fx.store.create_multipart(&key).await.unwrap();
    let bytes = data(11, 300_000);
    let short = fx
        .store
        .upload_part(&key, &id, part(1), super::body(&bytes, 50_000), 400_000)
        .await;
    assert!(matches!(short, Err(StorageError::InvalidPart(_))));
    assert_eq!(temp_files(&fx.root), Vec::<PathBuf>::new());

    // The client stalls and the request is dropped mid-part.
    let stalled = stream::iter(vec![Ok(Bytes::from(bytes.clone()))]).chain(stream::pending());
    let upload = fx.store.upload_part(&key, &id, part(1), stalled, 400_000);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), upload)
            .await
            .is_err()
    );
    let mut waited = 0;
    while !temp_files(&fx.root).is_empty() && waited < 50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    assert_eq!(temp_files(&fx.root), Vec::<PathBuf>::new());
    assert!(fx.store.list_parts(&key, &id).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_and_directories_are_private() {
    let fx = LocalFixture::new();
    let key = fresh_key();
    let id = fx.store.create_multipart(&key).await.unwrap();
    upload(&fx.store, &key, &id, 1, b"x").await;
    put_object(&fx.store, &[b"y"]).await;
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&fx.root), 0o700);
    for sub in ["index", "blobs", "multipart", "tmp"] {
        assert_eq!(mode(&fx.root.join(sub)), 0o700, "{sub}");
    }
    for file in files_under(&fx.root) {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
        assert_eq!(mode(file.parent().unwrap()), 0o700, "{}", file.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_ids_are_checked_before_use() {
    let fx = LocalFixture::new();
    let key = fresh_key();
    let id = fx.store.create_multipart(&key).await.unwrap();
    let other_key = fresh_key();
    for foreign in [
        MultipartId::new("../../index"),
        MultipartId::new(""),
        id.clone(),
    ] {
        let k = if foreign == id { &other_key } else { &key };
        let up = fx
            .store
            .upload_part(k, &foreign, part(1), super::body(b"x", 1), 1)
            .await;
        assert!(
            matches!(up, Err(StorageError::NoSuchUpload)),
            "{foreign}: {up:?}"
        );
        assert!(matches!(
            fx.store.list_parts(k, &foreign).await,
            Err(StorageError::NoSuchUpload)
        ));
        fx.store.abort(k, &foreign).await.unwrap();
    }
    // Aborting with the wrong key did not touch the upload.
    assert_eq!(
        fx.store.list_multipart_uploads().await.unwrap(),
        vec![(key, id)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_leftovers_stay_invisible_and_are_swept() {
    let fx = LocalFixture::new();
    let key = fresh_key();
    let id = fx.store.create_multipart(&key).await.unwrap();
    let bytes = data(16, 1000);
    let only = upload(&fx.store, &key, &id, 1, &bytes).await;

    // A completion that died after staging its links, and a part write that died halfway.
    let tmp = fx.root.join("tmp");
    let staged = tmp.join("complete-crashed");
    fs::create_dir(&staged).unwrap();
    let part_file = fx
        .root
        .join("multipart")
        .join(id.as_str())
        .join("part-00001");
    fs::hard_link(&part_file, staged.join("part-00001")).unwrap();
    fs::write(tmp.join("part-crashed"), b"half a part").unwrap();
    assert!(fx.store.head(&key).await.unwrap().is_none());
    assert_eq!(
        fx.store.list_parts(&key, &id).await.unwrap(),
        vec![only.clone()]
    );

    // The next start removes leftovers untouched for a day; recent entries may belong to
    // another instance at work and stay.
    let two_days_ago = std::time::SystemTime::now() - Duration::from_secs(2 * 24 * 3600);
    for old in [&staged, &tmp.join("part-crashed")] {
        fs::File::open(old)
            .unwrap()
            .set_modified(two_days_ago)
            .unwrap();
    }
    fs::write(tmp.join("part-recent"), b"in progress").unwrap();
    let restarted = fx.reopen(fx.keyring.clone()).unwrap();
    assert_eq!(temp_files(&fx.root), vec![tmp.join("part-recent")]);
    assert!(!staged.exists());

    restarted.complete(&key, &id, &[only]).await.unwrap();
    assert_eq!(read_all(&restarted, &key, None).await, bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_completions_agree() {
    let fx = LocalFixture::new();
    let parts = [data(17, 5 * MIB), data(18, 4000)];
    let key = fresh_key();
    let id = fx.store.create_multipart(&key).await.unwrap();
    let infos = vec![
        upload(&fx.store, &key, &id, 1, &parts[0]).await,
        upload(&fx.store, &key, &id, 2, &parts[1]).await,
    ];
    let other = fx.reopen(fx.keyring.clone()).unwrap();
    let (a, b) = tokio::join!(
        fx.store.complete(&key, &id, &infos),
        other.complete(&key, &id, &infos)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!((a.size, &a.etag), (b.size, &b.etag));
    assert!(read_all(&fx.store, &key, None).await == parts.concat());
    assert!(fx.store.list_multipart_uploads().await.unwrap().is_empty());
}
