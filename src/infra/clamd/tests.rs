//! The client against small fake servers; tests/api/scan.rs runs it against a real clamd.

use std::convert::Infallible;
use std::time::Instant;

use futures_util::stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

fn quick() -> ClamdTimeouts {
    ClamdTimeouts {
        connect: Duration::from_secs(2),
        write: Duration::from_secs(2),
        read: Duration::from_millis(300),
    }
}

fn items(parts: &[&[u8]]) -> impl Stream<Item = Result<Vec<u8>, Infallible>> + use<> {
    let owned: Vec<Result<Vec<u8>, Infallible>> = parts.iter().map(|p| Ok(p.to_vec())).collect();
    stream::iter(owned)
}

/// Starts a one-connection server running `serve`; returns its address.
async fn fake<F, Fut>(serve: F) -> String
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (conn, _) = listener.accept().await.unwrap();
        serve(conn).await;
    });
    addr
}

async fn read_command(conn: &mut TcpStream) -> Vec<u8> {
    let mut command = Vec::new();
    loop {
        let b = conn.read_u8().await.unwrap();
        if b == 0 {
            return command;
        }
        command.push(b);
    }
}

#[test]
fn replies_are_parsed() {
    assert_eq!(parse_scan_reply("stream: OK"), Ok(ScanVerdict::Clean));
    assert_eq!(
        parse_scan_reply("stream: Medport.Test.Marker-1.UNOFFICIAL FOUND"),
        Ok(ScanVerdict::Infected {
            signature: "Medport.Test.Marker-1.UNOFFICIAL".into()
        })
    );
    assert_eq!(
        parse_scan_reply("INSTREAM size limit exceeded. ERROR"),
        Err(ScanError::TooLarge)
    );
    for odd in [
        "",
        "PONG",
        "stream: FOUND",
        "stream:  FOUND",
        "stream: Can't allocate memory ERROR",
        "stream: OKAY",
    ] {
        assert!(
            matches!(parse_scan_reply(odd), Err(ScanError::Protocol(_))),
            "{odd:?}"
        );
    }
}

#[tokio::test]
async fn chunks_are_framed_and_bounded() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let addr = fake(|mut conn| async move {
        assert_eq!(read_command(&mut conn).await, b"zINSTREAM");
        let mut chunks = Vec::new();
        loop {
            let len = conn.read_u32().await.unwrap() as usize;
            if len == 0 {
                break;
            }
            let mut chunk = vec![0; len];
            conn.read_exact(&mut chunk).await.unwrap();
            chunks.push(chunk);
        }
        conn.write_all(b"stream: OK\0").await.unwrap();
        tx.send(chunks).unwrap();
    })
    .await;
    let client = ClamdClient::new(addr, quick()).with_chunk_size(5);
    let verdict = client
        .scan_stream(items(&[b"hello world", b"", b"!"]))
        .await
        .unwrap();
    assert_eq!(verdict, ScanVerdict::Clean);
    let chunks = rx.await.unwrap();
    assert!(
        chunks.iter().all(|c| !c.is_empty() && c.len() <= 5),
        "{chunks:?}"
    );
    assert_eq!(chunks.concat(), b"hello world!");
}

#[tokio::test]
async fn an_early_size_limit_reply_is_too_large() {
    let addr = fake(|mut conn| async move {
        read_command(&mut conn).await;
        let mut sink = vec![0; 100_000];
        conn.read_exact(&mut sink).await.unwrap();
        conn.write_all(b"INSTREAM size limit exceeded. ERROR\0")
            .await
            .unwrap();
        // Closed with unread data: the client may see a reset.
    })
    .await;
    let chunk = vec![7u8; 64 * 1024];
    let endless = stream::iter(std::iter::repeat_n(Ok::<_, Infallible>(chunk), 4096));
    let err = ClamdClient::new(addr, quick())
        .scan_stream(endless)
        .await
        .unwrap_err();
    assert_eq!(err, ScanError::TooLarge);
}

#[tokio::test]
async fn silence_is_unavailable_after_the_read_timeout() {
    let addr = fake(|mut conn| async move {
        read_command(&mut conn).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let started = Instant::now();
    let err = ClamdClient::new(addr, quick()).ping().await.unwrap_err();
    assert!(matches!(err, ScanError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn replies_are_bounded() {
    let addr = fake(|mut conn| async move {
        read_command(&mut conn).await;
        let _ = conn.write_all(&[b'A'; 10_000]).await;
    })
    .await;
    let err = ClamdClient::new(addr, quick()).ping().await.unwrap_err();
    assert_eq!(err, ScanError::Protocol("reply too long".into()));
}

#[tokio::test]
async fn a_wrong_ping_reply_is_a_protocol_error() {
    let addr = fake(|mut conn| async move {
        read_command(&mut conn).await;
        conn.write_all(b"UNKNOWN COMMAND\0").await.unwrap();
    })
    .await;
    let err = ClamdClient::new(addr, quick()).ping().await.unwrap_err();
    assert_eq!(err, ScanError::Protocol("UNKNOWN COMMAND".into()));
}

#[tokio::test]
async fn a_failing_source_is_reported_as_such() {
    let addr = fake(|mut conn| async move {
        read_command(&mut conn).await;
        let mut rest = Vec::new();
        let _ = conn.read_to_end(&mut rest).await;
    })
    .await;
    let source = stream::iter(vec![Ok(b"abc".to_vec()), Err("disk gone")]);
    let err = ClamdClient::new(addr, quick())
        .scan_stream(source)
        .await
        .unwrap_err();
    assert_eq!(err, ScanError::Source("disk gone".into()));
}

#[tokio::test]
async fn a_refused_connection_is_unavailable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let err = ClamdClient::new(addr, quick())
        .scan_stream(items(&[b"x"]))
        .await
        .unwrap_err();
    assert!(matches!(err, ScanError::Unavailable(_)), "{err:?}");
}
