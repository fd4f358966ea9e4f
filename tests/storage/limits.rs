//! Resource limits of the local store: a large part streams through bounded memory, and a
//! full disk is reported as such and leaves nothing half-written.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::web::Bytes;
use futures_util::{StreamExt, stream};
use medport::infra::crypto::keys::MasterKey;
use medport::infra::crypto::secrets::Keyring;
use medport::infra::storage::blob::{BlobStore, StorageError};
use medport::infra::storage::local::{LocalStore, WRITE_BATCH_BYTES};

use super::{
    LocalFixture, MIB, body, data, data_at, files_under, fresh_key, part, put_object, read_all,
    upload,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_part_is_never_held_in_memory() {
    // The store copies the body into one buffer of WRITE_BATCH_BYTES and writes it out
    // before asking the body for more. So whenever the body is polled, all but less than
    // one batch of what it has handed over must already be in the temp file on disk.
    let fx = LocalFixture::new();
    let key = fresh_key();
    let id = fx.store.create_multipart(&key).await.unwrap();
    let tmp = fx.root.join("tmp");
    let max_lag = Arc::new(AtomicU64::new(0));
    let lag = max_lag.clone();
    let items = (0..64u64).map(move |i| {
        let on_disk: u64 = fs::read_dir(&tmp)
            .unwrap()
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum();
        lag.fetch_max((i * MIB as u64).saturating_sub(on_disk), Ordering::Relaxed);
        Ok(Bytes::from(data_at(12, i * MIB as u64, MIB)))
    });
    let info = fx
        .store
        .upload_part(&key, &id, part(1), stream::iter(items), 64 * MIB as u64)
        .await
        .unwrap();
    let lag = max_lag.load(Ordering::Relaxed);
    assert!(lag < WRITE_BATCH_BYTES as u64, "{lag} bytes held back");
    fx.store.complete(&key, &id, &[info]).await.unwrap();

    // Reading is chunked too: items are small, and the content checks out.
    let (_, mut stream) = fx.store.get(&key, None).await.unwrap();
    let mut offset = 0u64;
    while let Some(item) = stream.next().await {
        let item = item.unwrap();
        assert!(item.len() <= 256 * 1024, "item of {}", item.len());
        assert!(
            item[..] == data_at(12, offset, item.len())[..],
            "at {offset}"
        );
        offset += item.len() as u64;
    }
    assert_eq!(offset, 64 * MIB as u64);
}

/// Unmounts a test tmpfs, even when the test fails.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_reported_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=12m", "tmpfs"])
        .arg(&mnt)
        .output()
        .is_ok_and(|out| out.status.success());
    if !mounted {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    let _unmount = Mounted(mnt.clone());
    let keyring = Arc::new(Keyring::new(Arc::new(MasterKey::generate().unwrap())));
    let root = mnt.join("objects");
    let store = BlobStore::Local(LocalStore::new(root.clone(), keyring).unwrap());
    let parts = [data(13, 5 * MIB), data(14, 5 * MIB), data(15, 5 * MIB)];
    let key = fresh_key();
    let id = store.create_multipart(&key).await.unwrap();
    let one = upload(&store, &key, &id, 1, &parts[0]).await;
    let two = upload(&store, &key, &id, 2, &parts[1]).await;
    let full = store
        .upload_part(&key, &id, part(3), body(&parts[2], 100_000), 5 * MIB as u64)
        .await;
    assert!(matches!(full, Err(StorageError::Full)), "{full:?}");
    assert_eq!(files_under(&root.join("tmp")), Vec::<PathBuf>::new());
    assert_eq!(
        store.list_parts(&key, &id).await.unwrap(),
        vec![one.clone(), two.clone()]
    );

    // What was stored is intact and can still be completed and read.
    store.complete(&key, &id, &[one, two]).await.unwrap();
    assert!(read_all(&store, &key, None).await == parts[..2].concat());
    // Space freed by a delete is usable again.
    store.delete(&key).await.unwrap();
    put_object(&store, &[&parts[2]]).await;
    assert_eq!(files_under(&root.join("tmp")), Vec::<PathBuf>::new());
}
