//! Benchmark, not a test: streams a large generated object through the S3 store (parts
//! uploaded from a lazily generated stream, completed, downloaded, SHA-256 compared) and
//! prints throughput and peak RSS. Peak RSS must not grow with the object or part size:
//!
//!   MEDPORT_BENCH_BYTES=$((1024*1024*1024)) cargo test --test storage -- --ignored --exact \
//!       s3::bench::bench_stream_through_s3_store --nocapture

use std::time::Instant;

use actix_web::web::Bytes;
use futures_util::stream;
use medport::domain::bucket::Encryption;
use medport::infra::storage::blob::BlobStore;
use sha2::{Digest, Sha256};

use super::{MIB, data, key, n, store_with};
use crate::bench::{complete_and_read_back, env_u64, peak_rss_kib};

const ITEM: usize = 256 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by hand against the test S3 server"]
async fn bench_stream_through_s3_store() {
    let total = env_u64("MEDPORT_BENCH_BYTES", 256 * MIB as u64);
    let part_size = env_u64("MEDPORT_BENCH_PART_BYTES", 64 * MIB as u64);
    let store = BlobStore::S3(store_with(Encryption::SseS3).await);
    let block = Bytes::from(data(ITEM, 99));
    let key = key("bench");
    let id = store.create_multipart(&key).await.unwrap();
    let mut sent = Sha256::new();
    let started = Instant::now();
    let mut infos = Vec::new();
    let mut offset = 0u64;
    while offset < total {
        let len = part_size.min(total - offset);
        // Every item is a slice of one shared block: nothing large is allocated here.
        let items: Vec<Bytes> = (0..len.div_ceil(ITEM as u64))
            .map(|i| block.slice(..(len - i * ITEM as u64).min(ITEM as u64) as usize))
            .collect();
        for item in &items {
            sent.update(item);
        }
        let body = stream::iter(items.into_iter().map(Ok::<_, std::io::Error>));
        let number = n(infos.len() as u64 + 1);
        infos.push(
            store
                .upload_part(&key, &id, number, body, len)
                .await
                .unwrap(),
        );
        offset += len;
    }
    let uploaded = started.elapsed();
    let (completed, downloaded) =
        complete_and_read_back(&store, &key, &id, &infos, total, sent.finalize()).await;
    store.delete(&key).await.unwrap();

    let mib = total as f64 / MIB as f64;
    println!(
        "bench-s3 bytes={total} parts={} upload_mib_s={:.0} complete_ms={} \
         download_mib_s={:.0} vm_hwm={}",
        infos.len(),
        mib / uploaded.as_secs_f64(),
        completed.as_millis(),
        mib / downloaded.as_secs_f64(),
        peak_rss_kib()
    );
}
