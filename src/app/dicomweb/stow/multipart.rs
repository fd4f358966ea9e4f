//! A streaming reader for `multipart/related` bodies (RFC 2046 5.1, RFC 2387), as STOW-RS
//! sends them: one part at a time, each part's body handed on as it arrives. Memory is the
//! chunk being looked at plus a delimiter's length, whatever the size of a part or of the
//! request; the preamble and each part's header block have small limits, so a body without
//! the boundary (or without line breaks) cannot make the reader hold it.
//!
//! Hand-written because the multipart crates at hand read `multipart/form-data` only, or
//! need a `Send` stream that actix's request body is not.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf as _, Bytes, BytesMut};
use futures_util::Stream;

/// Longest preamble (text before the first boundary) skipped.
const MAX_PREAMBLE: usize = 16 * 1024;
/// Longest header block of one part.
const MAX_HEADERS: usize = 16 * 1024;
/// Most spaces or tabs accepted after a boundary (RFC 2046 "transport padding").
const MAX_PADDING: usize = 64;

/// A boundary as RFC 2046 allows it: 1 to 70 characters from its set, not ending in a space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boundary(String);

impl Boundary {
    pub fn parse(raw: &str) -> Option<Self> {
        const EXTRA: &[u8] = b"'()+_,-./:=? ";
        let ok = (1..=70).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || EXTRA.contains(&b))
            && !raw.ends_with(' ');
        ok.then(|| Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a body is not a well-formed multipart body. The text is shown to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    #[error("the request body could not be read ({0})")]
    Body(String),
    #[error("the body does not start with the boundary given in Content-Type")]
    NoBoundary,
    #[error("a part's headers are malformed or too long")]
    BadHeaders,
    #[error("a boundary is not followed by a line break")]
    BadDelimiter,
    #[error("the body ended inside a part (no closing boundary)")]
    Truncated,
}

/// What a part says about itself; other headers are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartHead {
    pub content_type: Option<String>,
    pub content_location: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Preamble,
    /// Just after a delimiter: a close delimiter (`--`) or padding and a line break follow.
    AfterDelimiter,
    Headers,
    Body,
    Done,
    Failed,
}

pub struct MultipartReader<S> {
    body: S,
    buf: BytesMut,
    /// `\r\n--boundary`: the first one is matched against a body that starts with it too,
    /// because the buffer starts with a line break of our own.
    delimiter: Vec<u8>,
    state: State,
    eof: bool,
    error: Option<MultipartError>,
    /// Bytes taken from `body` so far.
    taken: u64,
    preamble_skipped: usize,
}

impl<S, E> MultipartReader<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    pub fn new(body: S, boundary: &Boundary) -> Self {
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_str().as_bytes());
        Self {
            body,
            buf: BytesMut::from(&b"\r\n"[..]),
            delimiter,
            state: State::Preamble,
            eof: false,
            error: None,
            taken: 0,
            preamble_skipped: 0,
        }
    }

    /// How many bytes of the request body lie before what is still unread.
    pub fn position(&self) -> u64 {
        // The buffer started with two bytes of our own, consumed with the first delimiter.
        self.taken.saturating_sub(self.buf.len() as u64)
    }

    /// The next part's headers; the rest of the current part, if any, is skipped first.
    /// `None` after the closing boundary.
    pub async fn next_part(&mut self) -> Result<Option<PartHead>, MultipartError> {
        while self.state == State::Body {
            if let Some(Err(e)) = futures_util::future::poll_fn(|cx| self.poll_body(cx)).await {
                return Err(e);
            }
        }
        loop {
            let progressed = match self.state {
                State::Done => return Ok(None),
                State::Failed => return Err(self.failed()),
                State::Body => return Err(self.fail(MultipartError::BadHeaders)),
                State::Preamble => self.skip_preamble()?,
                State::AfterDelimiter => self.after_delimiter()?,
                State::Headers => match self.headers()? {
                    Some(head) => {
                        self.state = State::Body;
                        return Ok(Some(head));
                    }
                    None => false,
                },
            };
            if !progressed {
                self.fill().await?;
            }
        }
    }

    /// The current part's body, up to the next boundary.
    pub fn part_body(&mut self) -> PartBody<'_, S> {
        PartBody { reader: self }
    }

    fn failed(&self) -> MultipartError {
        self.error.clone().unwrap_or(MultipartError::Truncated)
    }

    fn fail(&mut self, e: MultipartError) -> MultipartError {
        self.state = State::Failed;
        self.error = Some(e.clone());
        e
    }

    async fn fill(&mut self) -> Result<(), MultipartError> {
        match futures_util::future::poll_fn(|cx| self.poll_fill(cx)).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(self.fail(match self.state {
                State::Preamble => MultipartError::NoBoundary,
                _ => MultipartError::Truncated,
            })),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Reads one more chunk into the buffer; `false` at the end of the body.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, MultipartError>> {
        if self.eof {
            return Poll::Ready(Ok(false));
        }
        match ready!(Pin::new(&mut self.body).poll_next(cx)) {
            Some(Ok(chunk)) => {
                self.taken += chunk.len() as u64;
                self.buf.extend_from_slice(&chunk);
                Poll::Ready(Ok(true))
            }
            Some(Err(e)) => Poll::Ready(Err(MultipartError::Body(e.to_string()))),
            None => {
                self.eof = true;
                Poll::Ready(Ok(false))
            }
        }
    }

    fn find_delimiter(&self) -> Option<usize> {
        memchr::memmem::find(&self.buf, &self.delimiter)
    }

    /// Drops bytes before the first delimiter, keeping only what could be its start;
    /// `true` once the delimiter is found.
    fn skip_preamble(&mut self) -> Result<bool, MultipartError> {
        if let Some(at) = self.find_delimiter() {
            self.buf.advance(at + self.delimiter.len());
            self.state = State::AfterDelimiter;
            return Ok(true);
        }
        let keep = self.delimiter.len() - 1;
        if self.buf.len() > keep {
            let drop = self.buf.len() - keep;
            self.preamble_skipped += drop;
            self.buf.advance(drop);
        }
        if self.preamble_skipped > MAX_PREAMBLE {
            return Err(self.fail(MultipartError::NoBoundary));
        }
        Ok(false)
    }

    /// A close delimiter, or padding and a line break; `true` once decided.
    fn after_delimiter(&mut self) -> Result<bool, MultipartError> {
        if self.buf.len() < 2 {
            return Ok(false);
        }
        if self.buf.starts_with(b"--") {
            // The close delimiter: the epilogue, if any, is not read.
            self.state = State::Done;
            return Ok(true);
        }
        let padding = self
            .buf
            .iter()
            .take_while(|b| **b == b' ' || **b == b'\t')
            .count();
        if padding > MAX_PADDING {
            return Err(self.fail(MultipartError::BadDelimiter));
        }
        let rest = &self.buf[padding..];
        if rest.len() < 2 {
            return Ok(false);
        }
        if !rest.starts_with(b"\r\n") {
            return Err(self.fail(MultipartError::BadDelimiter));
        }
        self.buf.advance(padding + 2);
        self.state = State::Headers;
        Ok(true)
    }

    /// The header block, once it is all buffered (`None` until then).
    fn headers(&mut self) -> Result<Option<PartHead>, MultipartError> {
        // No headers at all: the blank line comes first.
        if self.buf.starts_with(b"\r\n") {
            self.buf.advance(2);
            return Ok(Some(PartHead::default()));
        }
        let Some(end) = memchr::memmem::find(&self.buf, b"\r\n\r\n") else {
            if self.buf.len() > MAX_HEADERS {
                return Err(self.fail(MultipartError::BadHeaders));
            }
            return Ok(None);
        };
        if end > MAX_HEADERS {
            return Err(self.fail(MultipartError::BadHeaders));
        }
        let block = self.buf.split_to(end + 4);
        match parse_headers(&block[..end]) {
            Some(head) => Ok(Some(head)),
            None => Err(self.fail(MultipartError::BadHeaders)),
        }
    }

    /// The next piece of the current part's body; `None` at its end.
    fn poll_body(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, MultipartError>>> {
        loop {
            match self.state {
                State::Body => {}
                State::Failed => return Poll::Ready(Some(Err(self.failed()))),
                _ => return Poll::Ready(None),
            }
            if let Some(at) = self.find_delimiter() {
                if at > 0 {
                    return Poll::Ready(Some(Ok(self.buf.split_to(at).freeze())));
                }
                self.buf.advance(self.delimiter.len());
                self.state = State::AfterDelimiter;
                return Poll::Ready(None);
            }
            // Everything but what could be the start of a delimiter is the part's.
            let keep = self.delimiter.len() - 1;
            if self.buf.len() > keep {
                let take = self.buf.len() - keep;
                return Poll::Ready(Some(Ok(self.buf.split_to(take).freeze())));
            }
            match ready!(self.poll_fill(cx)) {
                Ok(true) => {}
                Ok(false) => {
                    return Poll::Ready(Some(Err(self.fail(MultipartError::Truncated))));
                }
                Err(e) => return Poll::Ready(Some(Err(self.fail(e)))),
            }
        }
    }
}

/// `Name: value` lines; only Content-Type and Content-Location are kept.
fn parse_headers(block: &[u8]) -> Option<PartHead> {
    let text = std::str::from_utf8(block).ok()?;
    let mut head = PartHead::default();
    for line in text.split("\r\n") {
        let (name, value) = line.split_once(':')?;
        let name = name.trim();
        if name.is_empty() || name.bytes().any(|b| !b.is_ascii_graphic()) {
            return None;
        }
        let value = value.trim().to_string();
        if name.eq_ignore_ascii_case("content-type") {
            head.content_type = Some(value);
        } else if name.eq_ignore_ascii_case("content-location") {
            head.content_location = Some(value);
        }
    }
    Some(head)
}

/// One part's body as a stream of byte chunks; it ends at the part's boundary, and with an
/// error when the request body breaks or ends first.
pub struct PartBody<'a, S> {
    reader: &'a mut MultipartReader<S>,
}

impl<S, E> Stream for PartBody<'_, S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    type Item = Result<Bytes, MultipartError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().reader.poll_body(cx)
    }
}

#[cfg(test)]
mod tests;
