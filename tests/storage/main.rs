//! The storage stores, apart from HTTP. `conformance` holds the checks every backend must
//! pass, written once as functions over `&BlobStore`; `local` and `limits` hold what only the
//! local store can show (encryption at rest, tamper detection, restart, disk full, bounded
//! memory); `s3` runs the same suite on a real S3 server and adds what only S3 can show;
//! `bench` streams large objects through either store (ignored: run by hand or by
//! `scripts/bench-storage.sh`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

mod bench;
pub(crate) mod conformance;
mod limits;
mod local;
mod s3;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_web::web::Bytes;
use futures_util::{Stream, StreamExt, stream};
use medport::infra::crypto::keys::MasterKey;
use medport::infra::crypto::secrets::Keyring;
use medport::infra::storage::blob::{
    BlobStore, ByteRange, MultipartId, ObjectKey, PartInfo, PartNumber, StorageError,
};
use medport::infra::storage::local::LocalStore;
use sha2::{Digest, Sha256};

pub const MIB: usize = 1024 * 1024;

/// Runs each `async fn name(&BlobStore)` on the local store. The S3 tests (`s3`)
/// run the same functions on the test S3 server, and check that none is left out.
#[macro_export]
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn local() {
                let fixture = $crate::LocalFixture::new();
                super::$name(&fixture.store).await
            }
        }
    )*};
}

/// A local store in a fresh temp directory under a fresh master key.
pub(crate) struct LocalFixture {
    pub store: BlobStore,
    pub root: PathBuf,
    pub keyring: Arc<Keyring>,
    _dir: tempfile::TempDir,
}

impl LocalFixture {
    pub fn new() -> Self {
        let keyring = Arc::new(Keyring::new(Arc::new(MasterKey::generate().unwrap())));
        let dir = tempfile::tempdir().unwrap();
        Self::at(dir, keyring)
    }

    pub fn at(dir: tempfile::TempDir, keyring: Arc<Keyring>) -> Self {
        let root = dir.path().join("objects");
        let store = BlobStore::Local(LocalStore::new(root.clone(), keyring.clone()).unwrap());
        Self {
            store,
            root,
            keyring,
            _dir: dir,
        }
    }

    /// Another store on the same directory: a restarted process or a second instance.
    pub fn reopen(&self, keyring: Arc<Keyring>) -> Result<BlobStore, StorageError> {
        LocalStore::new(self.root.clone(), keyring).map(BlobStore::Local)
    }
}

/// A key no other test uses (backends may share one bucket).
pub fn fresh_key() -> ObjectKey {
    ObjectKey::for_upload("conformance", &uuid::Uuid::now_v7().to_string()).unwrap()
}

pub fn part(n: u64) -> PartNumber {
    PartNumber::new(n).unwrap()
}

/// Deterministic, incompressible test bytes: the same `seed` and `offset` always give the
/// same byte, so large bodies can be generated piecewise and checked.
pub fn data_at(seed: u64, offset: u64, len: usize) -> Vec<u8> {
    let first_word = offset / 8;
    let words = (offset % 8 + len as u64).div_ceil(8);
    let bytes: Vec<u8> = (first_word..first_word + words)
        .flat_map(|w| {
            let mut z = (seed ^ w).wrapping_add(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)).to_le_bytes()
        })
        .collect();
    let skip = (offset % 8) as usize;
    bytes[skip..skip + len].to_vec()
}

pub fn data(seed: u64, len: usize) -> Vec<u8> {
    data_at(seed, 0, len)
}

/// `bytes` as a body stream of `item`-sized pieces (not aligned to anything in particular).
pub fn body(
    bytes: &[u8],
    item: usize,
) -> impl Stream<Item = Result<Bytes, io::Error>> + Unpin + Send + use<> {
    let pieces: Vec<_> = bytes
        .chunks(item)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    stream::iter(pieces)
}

pub async fn upload(
    store: &BlobStore,
    key: &ObjectKey,
    id: &MultipartId,
    n: u64,
    bytes: &[u8],
) -> PartInfo {
    let info = store
        .upload_part(key, id, part(n), body(bytes, 100_000), bytes.len() as u64)
        .await
        .unwrap();
    assert_eq!(info.number, part(n));
    assert_eq!(info.size, bytes.len() as u64);
    info
}

/// Uploads `parts` as parts 1.. and completes them into a new object.
pub async fn put_object(store: &BlobStore, parts: &[&[u8]]) -> ObjectKey {
    let key = fresh_key();
    let id = store.create_multipart(&key).await.unwrap();
    let mut infos = Vec::new();
    for (i, bytes) in parts.iter().enumerate() {
        infos.push(upload(store, &key, &id, i as u64 + 1, bytes).await);
    }
    store.complete(&key, &id, &infos).await.unwrap();
    key
}

/// Everything a `get` yields before the stream ends, and the error that ended it, if any.
pub async fn read(
    store: &BlobStore,
    key: &ObjectKey,
    range: Option<ByteRange>,
) -> Result<(Vec<u8>, Option<StorageError>), StorageError> {
    let (_, mut stream) = store.get(key, range).await?;
    let mut out = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(bytes) => out.extend_from_slice(&bytes),
            Err(e) => {
                assert!(
                    stream.next().await.is_none(),
                    "stream goes on after an error"
                );
                return Ok((out, Some(e)));
            }
        }
    }
    Ok((out, None))
}

pub async fn read_all(store: &BlobStore, key: &ObjectKey, range: Option<ByteRange>) -> Vec<u8> {
    let (bytes, error) = read(store, key, range).await.unwrap();
    assert!(error.is_none(), "{error:?}");
    bytes
}

pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Every regular file under `dir`.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}
