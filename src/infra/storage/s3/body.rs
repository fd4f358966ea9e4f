//! Streams a caller's part body into the SDK without holding the part in memory.
//!
//! The SDK needs a `'static + Send + Sync` body of known length; the caller's stream is
//! neither `'static` nor `Sync`. A small bounded channel bridges the two: [`pump`] runs in
//! the caller's task next to the SDK request and forwards chunks; [`ChannelBody`] hands them
//! to the HTTP client. At most [`CHANNEL_CHUNKS`] chunks wait in the channel.
//!
//! Length is enforced before the last byte leaves: the pump holds back the chunk that
//! reaches `expected_len` until the caller's stream has ended, so an over-long body fails the
//! request (S3 stores nothing) instead of storing a truncated part. A short or failing body
//! ends the HTTP body with an error, which aborts the request.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http_body::{Frame, SizeHint};
use tokio::sync::mpsc;

use crate::infra::storage::blob::StorageError;

/// Chunks buffered between the caller's stream and the HTTP client.
pub(super) const CHANNEL_CHUNKS: usize = 4;

type Chunk = Result<Bytes, io::Error>;

/// The SDK side: yields exactly the announced number of bytes, or an error.
#[derive(Debug)]
pub(super) struct ChannelBody {
    rx: mpsc::Receiver<Chunk>,
    remaining: u64,
}

pub(super) fn channel(expected_len: u64) -> (mpsc::Sender<Chunk>, ChannelBody) {
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    (
        tx,
        ChannelBody {
            rx,
            remaining: expected_len,
        },
    )
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                let len = chunk.len() as u64;
                match self.remaining.checked_sub(len) {
                    Some(left) => {
                        self.remaining = left;
                        Poll::Ready(Some(Ok(Frame::data(chunk))))
                    }
                    None => Poll::Ready(Some(Err(io::Error::other("part body too long")))),
                }
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "part body ended early",
            )))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// The caller's side: forwards `body` into `tx`, checking that it is exactly `expected_len`
/// bytes. On any mismatch or failure the HTTP body is failed (so the request is aborted) and
/// the reason is returned as `InvalidPart`. Returns `Ok` also when the SDK stopped reading
/// early (the request's own result then tells what happened).
pub(super) async fn pump(
    mut body: impl Stream<Item = Result<Bytes, io::Error>> + Unpin + Send,
    tx: mpsc::Sender<Chunk>,
    expected_len: u64,
) -> Result<(), StorageError> {
    let fail = |reason: String| async {
        // The receiver may already be gone; then the request has failed on its own.
        let _ = tx.send(Err(io::Error::other(reason.clone()))).await;
        Err(StorageError::InvalidPart(reason))
    };
    let mut sent: u64 = 0;
    while let Some(next) = body.next().await {
        let chunk = match next {
            Ok(chunk) if chunk.is_empty() => continue,
            Ok(chunk) => chunk,
            Err(e) => return fail(format!("reading the part body failed: {e}")).await,
        };
        let total = sent.saturating_add(chunk.len() as u64);
        if total > expected_len {
            return fail(format!("the part body is longer than {expected_len} bytes")).await;
        }
        if total == expected_len {
            // Hold the last bytes back until the body has really ended.
            if let Some(extra) = next_non_empty(&mut body).await {
                return match extra {
                    Ok(_) => fail(format!("the part body is longer than {expected_len} bytes")),
                    Err(e) => fail(format!("reading the part body failed: {e}")),
                }
                .await;
            }
        }
        if tx.send(Ok(chunk)).await.is_err() {
            return Ok(());
        }
        sent = total;
    }
    if sent == expected_len {
        Ok(())
    } else {
        fail(format!(
            "the part body ended after {sent} of {expected_len} bytes"
        ))
        .await
    }
}

/// For an empty part: succeeds only when the caller's body has no bytes at all.
pub(super) async fn ensure_empty(
    mut body: impl Stream<Item = Result<Bytes, io::Error>> + Unpin,
) -> Result<(), StorageError> {
    match next_non_empty(&mut body).await {
        None => Ok(()),
        Some(Ok(_)) => Err(StorageError::InvalidPart(
            "the part body is longer than 0 bytes".into(),
        )),
        Some(Err(e)) => Err(StorageError::InvalidPart(format!(
            "reading the part body failed: {e}"
        ))),
    }
}

async fn next_non_empty(
    body: &mut (impl Stream<Item = Result<Bytes, io::Error>> + Unpin),
) -> Option<Result<Bytes, io::Error>> {
    loop {
        match body.next().await {
            Some(Ok(chunk)) if chunk.is_empty() => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;
    use http_body::Body;

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Chunk> + Unpin + Send + use<> {
        stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
    }

    async fn run(
        parts: &[&'static [u8]],
        expected: u64,
    ) -> (Result<(), StorageError>, Result<Vec<u8>, io::Error>) {
        let (tx, body) = channel(expected);
        let collect = async move {
            let mut body = body;
            let mut out = Vec::new();
            while let Some(frame) =
                std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
            {
                if let Ok(data) = frame?.into_data() {
                    out.extend_from_slice(&data);
                }
            }
            Ok(out)
        };
        tokio::join!(pump(chunks(parts), tx, expected), collect)
    }

    #[tokio::test]
    async fn exact_bodies_pass_through() {
        let (pumped, received) = run(&[b"ab", b"", b"cde"], 5).await;
        assert!(pumped.is_ok());
        assert_eq!(received.unwrap(), b"abcde");
        let (pumped, received) = run(&[], 0).await;
        assert!(pumped.is_ok());
        assert!(received.unwrap().is_empty());
    }

    #[tokio::test]
    async fn long_and_short_bodies_fail_before_the_end() {
        let (pumped, received) = run(&[b"ab", b"cde", b"f"], 5).await;
        assert!(matches!(pumped, Err(StorageError::InvalidPart(_))));
        assert!(received.is_err());
        let (pumped, received) = run(&[b"ab", b"cdef"], 5).await;
        assert!(matches!(pumped, Err(StorageError::InvalidPart(_))));
        assert!(received.is_err());
        let (pumped, received) = run(&[b"ab"], 5).await;
        assert!(matches!(pumped, Err(StorageError::InvalidPart(_))));
        assert!(received.is_err());
    }
}
