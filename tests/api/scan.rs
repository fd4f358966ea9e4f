//! The clamd client against a real clamd (`scripts/test-services.sh clamd`, which loads a
//! signature database generated for the tests). Without clamd these tests fail:
//! `scripts/test.sh` always starts it.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use futures_util::stream;
use medport::infra::clamd::{ClamdClient, ClamdTimeouts, ScanError, ScanVerdict};

const MIB: usize = 1024 * 1024;

fn var(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.into())
}

fn clamd_addr() -> String {
    var("MEDPORT_TEST_CLAMD", "127.0.0.1:3310")
}

fn signature() -> Vec<u8> {
    var(
        "MEDPORT_TEST_CLAMD_SIGNATURE",
        "MEDPORT-TEST-MALWARE-SIGNATURE-7f3a",
    )
    .into_bytes()
}

/// A client for the test clamd, after proving it answers (with a message saying how to
/// start it when it does not).
async fn client() -> ClamdClient {
    let client = ClamdClient::new(clamd_addr(), ClamdTimeouts::default());
    if let Err(e) = client.ping().await {
        panic!(
            "clamd must answer at MEDPORT_TEST_CLAMD={} (run scripts/test-services.sh clamd): {e}",
            clamd_addr()
        );
    }
    client
}

/// Deterministic bytes that look like nothing in particular.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect()
}

fn chunks(parts: Vec<Vec<u8>>) -> impl futures_util::Stream<Item = Result<Vec<u8>, Infallible>> {
    stream::iter(parts.into_iter().map(Ok))
}

#[tokio::test]
async fn ping_answers() {
    client().await.ping().await.unwrap();
}

#[tokio::test]
async fn a_signature_split_across_chunks_is_found() {
    let signature = signature();
    let (a, rest) = signature.split_at(7);
    let (b, c) = rest.split_at(11);
    // The marker is cut across three stream items, deep inside the stream.
    let parts = vec![
        noise(MIB + 3, 1),
        [&noise(1000, 2)[..], a].concat(),
        b.to_vec(),
        Vec::new(),
        [c, &noise(70_000, 3)[..]].concat(),
        noise(MIB, 4),
    ];
    // Small INSTREAM chunks as well, so clamd itself sees the marker across its chunks.
    let client = client().await.with_chunk_size(4096 + 5);
    let verdict = client.scan_stream(chunks(parts)).await.unwrap();
    match verdict {
        ScanVerdict::Infected { signature } => {
            assert!(signature.contains("Medport.Test.Marker"), "{signature}");
        }
        ScanVerdict::Clean => panic!("the test signature was not found"),
    }
}

#[tokio::test]
async fn a_clean_stream_of_3_mib_is_clean() {
    let parts: Vec<Vec<u8>> = (0..48).map(|i| noise(64 * 1024, 100 + i)).collect();
    assert_eq!(parts.iter().map(Vec::len).sum::<usize>(), 3 * MIB);
    let verdict = client().await.scan_stream(chunks(parts)).await.unwrap();
    assert_eq!(verdict, ScanVerdict::Clean);
}

#[tokio::test]
async fn an_empty_stream_is_clean() {
    let verdict = client().await.scan_stream(chunks(vec![])).await.unwrap();
    assert_eq!(verdict, ScanVerdict::Clean);
}

#[tokio::test]
async fn a_closed_port_is_unavailable_quickly() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let client = ClamdClient::new(addr, ClamdTimeouts::default());
    let started = Instant::now();
    let ping = client.ping().await.unwrap_err();
    let scan = client
        .scan_stream(chunks(vec![signature()]))
        .await
        .unwrap_err();
    assert!(matches!(ping, ScanError::Unavailable(_)), "{ping:?}");
    assert!(matches!(scan, ScanError::Unavailable(_)), "{scan:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_stream_over_the_clamd_limit_is_too_large() {
    // The test clamd has StreamMaxLength 100M; clamd answers as soon as it is passed.
    let chunk = noise(MIB, 9);
    let parts = std::iter::repeat_n(chunk, 120).map(Ok::<_, Infallible>);
    let started = Instant::now();
    let err = client()
        .await
        .scan_stream(stream::iter(parts))
        .await
        .unwrap_err();
    eprintln!("too large after {:?}", started.elapsed());
    assert_eq!(err, ScanError::TooLarge);
}
