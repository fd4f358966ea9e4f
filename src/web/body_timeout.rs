//! Deadlines for request bodies that arrive too slowly.
//!
//! actix-web bounds the time to receive a request's headers, not its body: a client that
//! sends part of a PATCH and then stops (or trickles a byte now and then) would keep its
//! request, its connection, the upload's lease and a part buffer for as long as it likes.
//! Wrapped in [`BodyTimeout`], such a body ends with an error instead, which the pipeline
//! treats as an interrupted body: what arrived is kept and the client resumes from there.
//!
//! Two rules, checked together:
//! - idle: no byte for [`IDLE`];
//! - slow: fewer than [`MIN_BYTES_PER_WINDOW`] bytes in a [`WINDOW`] (a trickle that is
//!   never idle for long but would take days to finish).
//!
//! [`IDLE`] is well below the upload lease (60 s, renewed every 20 s while bytes flow),
//! so a stalled request still holds its lease when it commits what it received.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::web::Bytes;
use futures_util::Stream;
use tokio::time::{Instant, Sleep};

/// Longest wait for the next byte of a body.
pub const IDLE: Duration = Duration::from_secs(20);
/// The period over which [`MIN_BYTES_PER_WINDOW`] must arrive.
pub const WINDOW: Duration = Duration::from_secs(20);
/// 1 KiB per 20 s (about 50 bytes/s): far below any real connection, far above a trickle.
pub const MIN_BYTES_PER_WINDOW: u64 = 1024;

/// `body` with the default deadlines ([`IDLE`], [`WINDOW`], [`MIN_BYTES_PER_WINDOW`]).
pub fn idle<S>(body: S) -> BodyTimeout<S> {
    BodyTimeout::new(body, IDLE, WINDOW, MIN_BYTES_PER_WINDOW)
}

/// A body stream that ends with a `TimedOut` I/O error when the client stalls or trickles.
/// After that error it ends (`None`), whatever the inner stream would still do.
pub struct BodyTimeout<S> {
    inner: S,
    idle: Duration,
    window: Duration,
    min_bytes: u64,
    last_byte: Instant,
    window_start: Instant,
    window_bytes: u64,
    timer: Pin<Box<Sleep>>,
    ended: bool,
}

impl<S> BodyTimeout<S> {
    pub fn new(inner: S, idle: Duration, window: Duration, min_bytes: u64) -> Self {
        let now = Instant::now();
        Self {
            inner,
            idle,
            window,
            min_bytes,
            last_byte: now,
            window_start: now,
            window_bytes: 0,
            timer: Box::pin(tokio::time::sleep_until(now + idle.min(window))),
            ended: false,
        }
    }

    fn next_deadline(&self) -> Instant {
        (self.last_byte + self.idle).min(self.window_start + self.window)
    }

    /// The timer fired: `Some(reason)` when the body must end, else the next deadline is
    /// armed (a window that received enough starts a new one).
    fn on_deadline(&mut self, now: Instant) -> Option<&'static str> {
        if now >= self.last_byte + self.idle {
            return Some("no data arrived for too long");
        }
        if now >= self.window_start + self.window {
            if self.window_bytes < self.min_bytes {
                return Some("the body arrived too slowly");
            }
            self.window_start = now;
            self.window_bytes = 0;
        }
        let next = self.next_deadline();
        self.timer.as_mut().reset(next);
        None
    }
}

impl<S, E> Stream for BodyTimeout<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: From<io::Error>,
{
    type Item = Result<Bytes, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                // Empty chunks are no progress.
                if !chunk.is_empty() {
                    this.last_byte = Instant::now();
                    this.window_bytes = this.window_bytes.saturating_add(chunk.len() as u64);
                    let next = this.next_deadline();
                    this.timer.as_mut().reset(next);
                }
                return Poll::Ready(Some(Ok(chunk)));
            }
            Poll::Ready(None) => {
                this.ended = true;
                return Poll::Ready(None);
            }
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
            Poll::Pending => {}
        }
        // Re-arming moves the deadline forward; loop until it is pending or has expired.
        while this.timer.as_mut().poll(cx).is_ready() {
            if let Some(reason) = this.on_deadline(Instant::now()) {
                this.ended = true;
                let error = io::Error::new(io::ErrorKind::TimedOut, reason);
                return Poll::Ready(Some(Err(E::from(error))));
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt as _;
    use tokio::sync::mpsc;

    use super::*;

    type Item = Result<Bytes, io::Error>;

    // Real time (the paused test clock needs a tokio feature the crate does not enable):
    // idle 300 ms, windows of 600 ms that need 100 bytes.
    const MS: Duration = Duration::from_millis(1);

    fn channel() -> (
        mpsc::UnboundedSender<Item>,
        BodyTimeout<futures_util::stream::BoxStream<'static, Item>>,
    ) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Item>();
        let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed();
        (tx, BodyTimeout::new(stream, 300 * MS, 600 * MS, 100))
    }

    fn bytes(n: usize) -> Item {
        Ok(Bytes::from(vec![b'x'; n]))
    }

    /// Sends `n`-byte chunks every `every` until the receiver is gone.
    fn feed(
        tx: mpsc::UnboundedSender<Item>,
        n: usize,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            while tx.send(bytes(n)).is_ok() {
                tokio::time::sleep(every).await;
            }
        })
    }

    async fn until_error(body: &mut (impl Stream<Item = Item> + Unpin)) -> (usize, io::Error) {
        let mut received = 0;
        loop {
            match body.next().await {
                Some(Ok(chunk)) => received += chunk.len(),
                Some(Err(e)) => return (received, e),
                None => panic!("the body ended without an error"),
            }
        }
    }

    #[tokio::test]
    async fn a_stalled_body_ends_with_timed_out_after_the_idle_time() {
        let (tx, mut body) = channel();
        tx.send(bytes(10)).unwrap();
        assert_eq!(body.next().await.unwrap().unwrap().len(), 10);
        let start = Instant::now();
        let (_, error) = until_error(&mut body).await;
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        let waited = start.elapsed();
        assert!(waited >= 300 * MS && waited < 550 * MS, "{waited:?}");
        assert!(body.next().await.is_none());
        drop(tx);
    }

    #[tokio::test]
    async fn a_trickle_ends_at_the_end_of_a_slow_window() {
        let (tx, mut body) = channel();
        let start = Instant::now();
        // 1 byte every 50 ms: never idle, but about 12 bytes per window.
        let feeder = feed(tx, 1, 50 * MS);
        let (received, error) = until_error(&mut body).await;
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        let waited = start.elapsed();
        assert!(waited >= 600 * MS && waited < 850 * MS, "{waited:?}");
        assert!(received < 100, "{received}");
        drop(body);
        feeder.await.unwrap();
    }

    #[tokio::test]
    async fn a_steady_body_is_never_cut_and_ends_normally() {
        let (tx, mut body) = channel();
        let feeder = tokio::spawn(async move {
            for _ in 0..40 {
                tx.send(bytes(50)).unwrap();
                tokio::time::sleep(50 * MS).await;
            }
        });
        let mut received = 0;
        while let Some(chunk) = body.next().await {
            received += chunk.unwrap().len();
        }
        assert_eq!(received, 40 * 50);
        feeder.await.unwrap();
    }

    #[tokio::test]
    async fn empty_chunks_do_not_count_as_progress() {
        let (tx, mut body) = channel();
        let start = Instant::now();
        let feeder = feed(tx, 0, 20 * MS);
        let (_, error) = until_error(&mut body).await;
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(start.elapsed() < 550 * MS, "{:?}", start.elapsed());
        drop(body);
        feeder.await.unwrap();
    }
}
