//! Benchmark, not a test: streams a large generated object through the local store and back,
//! checking its SHA-256. Run by `scripts/bench-storage.sh`, which measures peak RSS. Also
//! what the S3 benchmark (`s3::bench`) shares with it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use futures_util::{StreamExt, stream};
use medport::infra::crypto::keys::MasterKey;
use medport::infra::crypto::secrets::Keyring;
use medport::infra::storage::blob::{BlobStore, MultipartId, ObjectKey, PartInfo};
use medport::infra::storage::local::LocalStore;
use sha2::digest::Output;
use sha2::{Digest, Sha256};

use super::{MIB, data, fresh_key, part};

const ITEM: usize = 256 * 1024;

pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn peak_rss_kib() -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .map(|l| l.trim_start_matches("VmHWM:").trim().to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by scripts/bench-storage.sh"]
async fn bench_stream_through_local_store() {
    let total = env_u64("MEDPORT_BENCH_BYTES", 1024 * MIB as u64);
    let part_size = env_u64("MEDPORT_BENCH_PART_BYTES", 64 * MIB as u64);
    let dir = match std::env::var("MEDPORT_BENCH_DIR") {
        Ok(base) => tempfile::tempdir_in(base).unwrap(),
        Err(_) => tempfile::tempdir().unwrap(),
    };
    let keyring = Arc::new(Keyring::new(Arc::new(MasterKey::generate().unwrap())));
    let store = BlobStore::Local(LocalStore::new(dir.path().join("objects"), keyring).unwrap());

    // Items are one random block with a counter stamped in, so nothing large is allocated.
    let block = data(99, ITEM);
    let sent = Arc::new(Mutex::new(Sha256::new()));
    let key = fresh_key();
    let id = store.create_multipart(&key).await.unwrap();
    let started = Instant::now();
    let mut infos = Vec::new();
    let mut offset = 0u64;
    while offset < total {
        let len = part_size.min(total - offset);
        let (block, sent) = (block.clone(), sent.clone());
        let items = (0..len.div_ceil(ITEM as u64)).map(move |i| {
            let start = i * ITEM as u64;
            let mut item = block[..(len - start).min(ITEM as u64) as usize].to_vec();
            let stamp = (offset + start).to_le_bytes();
            let n = stamp.len().min(item.len());
            item[..n].copy_from_slice(&stamp[..n]);
            sent.lock().unwrap().update(&item);
            Ok(Bytes::from(item))
        });
        let n = infos.len() as u64 + 1;
        infos.push(
            store
                .upload_part(&key, &id, part(n), stream::iter(items), len)
                .await
                .unwrap(),
        );
        offset += len;
    }
    let uploaded = started.elapsed();
    let sent = sent.lock().unwrap().clone().finalize();
    let (completed, downloaded) =
        complete_and_read_back(&store, &key, &id, &infos, total, sent).await;

    let mib = total as f64 / MIB as f64;
    println!("bench-storage bytes={total} parts={}", infos.len());
    println!(
        "bench-storage upload_mib_s={:.0} complete_ms={} download_mib_s={:.0}",
        mib / uploaded.as_secs_f64(),
        completed.as_millis(),
        mib / downloaded.as_secs_f64()
    );
    println!("bench-storage vm_hwm={}", peak_rss_kib());
}

/// Completes a benchmark's upload and reads the object back, checking that `total` bytes
/// come back with the SHA-256 of what was sent; returns how long each step took.
pub async fn complete_and_read_back(
    store: &BlobStore,
    key: &ObjectKey,
    id: &MultipartId,
    infos: &[PartInfo],
    total: u64,
    sent: Output<Sha256>,
) -> (Duration, Duration) {
    let completing = Instant::now();
    store.complete(key, id, infos).await.unwrap();
    let completed = completing.elapsed();

    let reading = Instant::now();
    let (_, mut body) = store.get(key, None).await.unwrap();
    let mut received = Sha256::new();
    let mut read = 0u64;
    while let Some(item) = body.next().await {
        let item = item.unwrap();
        read += item.len() as u64;
        received.update(&item);
    }
    let downloaded = reading.elapsed();
    assert_eq!(read, total);
    assert_eq!(received.finalize(), sent, "content changed on the way");
    (completed, downloaded)
}
