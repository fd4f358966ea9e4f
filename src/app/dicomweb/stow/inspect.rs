//! Reading a part's DICOM header while its bytes stream past, so that the instance is
//! judged before the pipeline sees the end of its body: a part whose header does not
//! parse, or whose study is not the one in the request's path, ends with an error and the
//! pipeline never completes it. The same reader as the study index (`infra::dicom`), on a
//! blocking thread fed chunk by chunk; it stops at Pixel Data and is then fed no more.

use std::io::Read;
use std::sync::{Arc, Mutex};

use bytes::{Buf as _, Bytes};
use futures_util::{Stream, StreamExt as _, stream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::domain::DicomUid;
use crate::infra::dicom::{self, InstanceHeader, Parsed, Unreadable};

/// Chunks queued for the reader; the body waits for it beyond that.
const QUEUED: usize = 8;

/// What the header says, for the store response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Instance(Box<InstanceHeader>),
    /// Its StudyInstanceUID is not the one in the request's path.
    OtherStudy(Box<InstanceHeader>),
    /// A DICOMDIR: not an instance of a storage SOP class.
    Directory,
    Unreadable(String),
}

/// Why an inspected body ended early.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InspectError {
    #[error("{0}")]
    Body(String),
    #[error("the part was refused after reading its DICOM header")]
    Refused,
}

/// Shared between the stream the pipeline reads and the caller, who reads it afterwards.
pub type VerdictCell = Arc<Mutex<Option<Verdict>>>;

struct Inspecting<S> {
    body: S,
    feed: Option<mpsc::Sender<Bytes>>,
    reader: Option<JoinHandle<Result<Parsed, Unreadable>>>,
    study: Option<DicomUid>,
    verdict: VerdictCell,
    done: bool,
}

/// `body` as the pipeline should read it, and where the verdict is left once the header
/// has been read (always before the stream's end; `None` if it broke off first).
pub fn inspect<S, E>(
    body: S,
    study: Option<DicomUid>,
) -> (
    impl Stream<Item = Result<Bytes, InspectError>> + Unpin,
    VerdictCell,
)
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let (feed, queue) = mpsc::channel(QUEUED);
    let reader = tokio::task::spawn_blocking(move || {
        dicom::read(std::io::BufReader::new(QueueReader {
            queue,
            current: Bytes::new(),
        }))
    });
    let verdict: VerdictCell = Arc::new(Mutex::new(None));
    let state = Inspecting {
        body,
        feed: Some(feed),
        reader: Some(reader),
        study,
        verdict: verdict.clone(),
        done: false,
    };
    let stream = stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        match st.body.next().await {
            Some(Ok(chunk)) => {
                let mut refused = false;
                if let Some(feed) = &st.feed
                    && feed.send(chunk.clone()).await.is_err()
                {
                    // The reader is done (Pixel Data reached): judge now, feed no more.
                    st.feed = None;
                    refused = !st.judge().await;
                }
                if refused {
                    st.done = true;
                    return Some((Err(InspectError::Refused), st));
                }
                Some((Ok(chunk), st))
            }
            Some(Err(e)) => {
                st.done = true;
                Some((Err(InspectError::Body(e.to_string())), st))
            }
            None => {
                st.done = true;
                st.feed = None;
                if st.judge().await {
                    None
                } else {
                    Some((Err(InspectError::Refused), st))
                }
            }
        }
    });
    (Box::pin(stream), verdict)
}

impl<S> Inspecting<S> {
    /// Waits for the reader (once) and records its verdict; `true` when the part may be
    /// stored.
    async fn judge(&mut self) -> bool {
        if let Some(reader) = self.reader.take() {
            let parsed = match reader.await {
                Ok(parsed) => parsed,
                Err(e) => Err(Unreadable::Malformed(format!("reader stopped: {e}"))),
            };
            let verdict = match parsed {
                Ok(Parsed::Instance(header)) => match &self.study {
                    Some(study) if study.as_str() != header.study_uid => {
                        Verdict::OtherStudy(header)
                    }
                    _ => Verdict::Instance(header),
                },
                Ok(Parsed::Directory(_)) => Verdict::Directory,
                Err(why) => Verdict::Unreadable(why.to_string()),
            };
            if let Ok(mut cell) = self.verdict.lock() {
                *cell = Some(verdict);
            }
        }
        matches!(
            self.verdict.lock().ok().and_then(|v| v.clone()),
            Some(Verdict::Instance(_))
        )
    }
}

/// The queue of chunks as a blocking reader; it ends when the sender is dropped.
struct QueueReader {
    queue: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for QueueReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.queue.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}
