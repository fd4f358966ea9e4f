//! Abusive clients: headers sent byte by byte (slowloris), a PATCH that stops half-way or
//! trickles, and oversized bodies on every route that is not an upload. Slow clients are
//! raw TCP sockets, so nothing in a client library hides what is on the wire. Every app
//! runs with one worker: an answer to another request while a slow client waits proves the
//! worker is not tied up.

mod bodies;
mod limits;

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::helpers::{Backend, TestApp};

const KIB: usize = 1024;
/// The header deadline set in `startup.rs`.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The body deadlines of `medport::web::body_timeout`.
const BODY_IDLE: Duration = medport::web::body_timeout::IDLE;
const BODY_WINDOW: Duration = medport::web::body_timeout::WINDOW;

async fn connect(app: &TestApp) -> TcpStream {
    let addr = app.address.trim_start_matches("http://");
    TcpStream::connect(addr).await.unwrap()
}

/// What came back on a raw connection: the status line's code (None when the server closed
/// without answering) and the headers, lowercased.
#[derive(Debug)]
struct RawAnswer {
    status: Option<u16>,
    headers: Vec<(String, String)>,
}

impl RawAnswer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads the response head, or EOF / a reset, whichever comes first, within `limit`.
async fn read_answer(stream: &mut TcpStream, limit: Duration) -> Option<RawAnswer> {
    let read = async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        parse_head(&buf)
    };
    tokio::time::timeout(limit, read).await.ok()
}

fn parse_head(buf: &[u8]) -> RawAnswer {
    let text = String::from_utf8_lossy(buf);
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.strip_prefix("HTTP/1.1 "))
        .and_then(|l| l.get(..3))
        .and_then(|c| c.parse().ok());
    let headers = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    RawAnswer { status, headers }
}

/// The app answers a plain request quickly.
async fn answers_quickly(app: &TestApp) {
    let start = Instant::now();
    let res = app.get("/healthz").await;
    assert_eq!(res.status(), 200);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

/// No database is involved: one backend is enough.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_sent_byte_by_byte_are_cut_off_at_the_header_timeout() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let stream = connect(&app).await;
    let (mut reader, mut writer) = stream.into_split();
    let start = Instant::now();
    // 60 bytes at one every 300 ms would take 18 s: longer than the header deadline.
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(27)
    );
    let slow = tokio::spawn(async move {
        for byte in head.into_bytes() {
            if writer.write_all(&[byte]).await.is_err() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        true
    });
    // Meanwhile the single worker serves everyone else.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        answers_quickly(&app).await;
    }
    let mut buf = Vec::new();
    let cut = tokio::time::timeout(Duration::from_secs(20), async {
        let mut chunk = [0u8; 1024];
        loop {
            match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    let elapsed = start.elapsed();
    assert!(cut.is_ok(), "the connection was still open after 20 s");
    assert!(
        elapsed >= HEADER_TIMEOUT - Duration::from_secs(1)
            && elapsed < HEADER_TIMEOUT + Duration::from_secs(4),
        "cut after {elapsed:?}"
    );
    // Cut off, never served: a 408 (or a plain close), not the health answer.
    let answer = parse_head(&buf);
    assert!(
        matches!(answer.status, None | Some(408)),
        "{:?}",
        String::from_utf8_lossy(&buf)
    );
    // The writer finds the connection gone before it finished the headers.
    assert!(!slow.await.unwrap(), "all the headers were accepted");
    answers_quickly(&app).await;
}

/// The header deadline of actix-web applies to the first request of a connection only: a
/// client that sends one quick request and then trickles the next one's headers must be
/// cut off as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_of_a_later_request_on_a_kept_alive_connection_are_cut_off() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut stream = connect(&app).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let first = read_answer(&mut stream, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(first.status, Some(200));
    let (mut reader, mut writer) = stream.into_split();
    // Drain the first answer's body so only what follows counts.
    let mut drained = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_millis(300), reader.read(&mut drained)).await;
    let start = Instant::now();
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(60)
    );
    let slow = tokio::spawn(async move {
        for byte in head.into_bytes() {
            if writer.write_all(&[byte]).await.is_err() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        true
    });
    let mut buf = Vec::new();
    let cut = tokio::time::timeout(Duration::from_secs(30), async {
        let mut chunk = [0u8; 1024];
        loop {
            match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    let elapsed = start.elapsed();
    assert!(cut.is_ok(), "the connection was still open after 30 s");
    // Never served: closed (or 408), not answered.
    let answer = parse_head(&buf);
    assert!(matches!(answer.status, None | Some(408)), "{answer:?}");
    assert!(
        elapsed < HEADER_TIMEOUT + Duration::from_secs(4),
        "cut after {elapsed:?}"
    );
    assert!(!slow.await.unwrap(), "all the headers were accepted");
}
