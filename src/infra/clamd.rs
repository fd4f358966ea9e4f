//! A client for ClamAV's daemon over TCP: `PING` and streamed scans with `INSTREAM`.
//!
//! # Fail closed
//! Only [`ScanVerdict::Clean`] means "scanned and clean". Callers must treat every
//! [`ScanError`] (scanner down, timed out, file over its size limit, unreadable reply, source
//! stream failed) exactly like "not scanned": the upload is quarantined, never released.
//!
//! # Protocol
//! `zINSTREAM\0`, then chunks of `<u32 big-endian length><bytes>`, each at most
//! [`DEFAULT_CHUNK_SIZE`] (well under clamd's `StreamMaxLength`), then a zero-length chunk;
//! clamd answers `stream: OK\0`, `stream: <signature> FOUND\0` or `... ERROR\0`. When the
//! stream passes `StreamMaxLength` clamd answers `INSTREAM size limit exceeded. ERROR` at
//! once and closes; the client looks for such an early reply between chunks.

use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Bytes per INSTREAM chunk.
pub const DEFAULT_CHUNK_SIZE: usize = 256 * 1024;
/// Longest reply accepted from clamd.
pub const MAX_REPLY_BYTES: usize = 4 * 1024;

/// Time limits for one conversation with clamd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClamdTimeouts {
    /// Resolving the address and opening the TCP connection.
    pub connect: Duration,
    /// Each write of a command or chunk (clamd not reading is as bad as clamd gone).
    pub write: Duration,
    /// Waiting for the reply once everything is sent; covers clamd's scanning time.
    pub read: Duration,
}

impl Default for ClamdTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            write: Duration::from_secs(30),
            read: Duration::from_secs(120),
        }
    }
}

/// The outcome of a completed scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanVerdict {
    Clean,
    /// clamd found a signature; `signature` is its name as clamd reports it (for example
    /// `Medport.Test.Marker-1.UNOFFICIAL`).
    Infected {
        signature: String,
    },
}

/// Why a file could not be scanned. Every variant means "not scanned": fail closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    /// clamd could not be reached or stopped answering (refused, reset, timed out).
    #[error("virus scanner unavailable: {0}")]
    Unavailable(String),
    /// The stream is longer than clamd's `StreamMaxLength`.
    #[error("file exceeds the virus scanner's size limit")]
    TooLarge,
    /// clamd answered something unexpected (including its own `ERROR` replies).
    #[error("unexpected virus scanner reply: {0}")]
    Protocol(String),
    /// The bytes to scan could not be read.
    #[error("reading the file to scan failed: {0}")]
    Source(String),
}

/// Talks to one clamd at `host:port`; each call opens its own connection.
#[derive(Debug, Clone)]
pub struct ClamdClient {
    addr: String,
    timeouts: ClamdTimeouts,
    chunk_size: usize,
}

impl ClamdClient {
    pub fn new(addr: String, timeouts: ClamdTimeouts) -> Self {
        Self {
            addr,
            timeouts,
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }

    /// Sets the largest INSTREAM chunk (at least 1 byte); it must stay at or below clamd's
    /// `StreamMaxLength`.
    pub fn with_chunk_size(mut self, chunk_size: usize) -> Self {
        self.chunk_size = chunk_size.clamp(1, u32::MAX as usize);
        self
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `PING` → `PONG`.
    pub async fn ping(&self) -> Result<(), ScanError> {
        let mut conn = self.connect().await?;
        self.write(&mut conn, b"zPING\0").await?;
        let reply = self.read_reply(&mut conn, self.timeouts.read).await?;
        if reply == "PONG" {
            Ok(())
        } else {
            Err(ScanError::Protocol(reply))
        }
    }

    /// Scans the bytes of `stream` (any chunking; empty items are skipped) with INSTREAM.
    pub async fn scan_stream<S, B, E>(&self, stream: S) -> Result<ScanVerdict, ScanError>
    where
        S: Stream<Item = Result<B, E>>,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        let mut conn = self.connect().await?;
        self.write(&mut conn, b"zINSTREAM\0").await?;
        let mut stream = std::pin::pin!(stream);
        let mut frame = Vec::with_capacity(self.chunk_size.saturating_add(4).min(1 << 20));
        while let Some(item) = stream.next().await {
            let item = item.map_err(|e| ScanError::Source(e.to_string()))?;
            for chunk in item.as_ref().chunks(self.chunk_size) {
                let len = u32::try_from(chunk.len())
                    .map_err(|_| ScanError::Protocol("chunk too large".into()))?;
                frame.clear();
                frame.extend_from_slice(&len.to_be_bytes());
                frame.extend_from_slice(chunk);
                if let Err(e) = self.write(&mut conn, &frame).await {
                    // clamd may have answered (size limit) and closed: prefer its reason.
                    return Err(self.early_reply(&mut conn).await.unwrap_or(e));
                }
                if let Some(err) = early_reply_ready(&conn) {
                    return Err(err);
                }
            }
        }
        if let Err(e) = self.write(&mut conn, &[0, 0, 0, 0]).await {
            return Err(self.early_reply(&mut conn).await.unwrap_or(e));
        }
        let reply = self.read_reply(&mut conn, self.timeouts.read).await?;
        parse_scan_reply(&reply)
    }

    async fn connect(&self) -> Result<TcpStream, ScanError> {
        let conn = timeout(
            self.timeouts.connect,
            TcpStream::connect(self.addr.as_str()),
        )
        .await
        .map_err(|_| ScanError::Unavailable(format!("connect to {} timed out", self.addr)))?
        .map_err(|e| ScanError::Unavailable(format!("connect to {}: {e}", self.addr)))?;
        // Frames are written whole; Nagle would only add delayed-ACK stalls.
        conn.set_nodelay(true)
            .map_err(|e| ScanError::Unavailable(e.to_string()))?;
        Ok(conn)
    }

    async fn write(&self, conn: &mut TcpStream, bytes: &[u8]) -> Result<(), ScanError> {
        timeout(self.timeouts.write, conn.write_all(bytes))
            .await
            .map_err(|_| ScanError::Unavailable("write to clamd timed out".into()))?
            .map_err(|e| ScanError::Unavailable(format!("write to clamd: {e}")))
    }

    /// After a failed write: whatever clamd said before closing, if anything.
    async fn early_reply(&self, conn: &mut TcpStream) -> Option<ScanError> {
        let wait = self.timeouts.read.min(Duration::from_secs(1));
        let reply = self.read_reply(conn, wait).await.ok()?;
        Some(reply_error(&reply))
    }

    /// Reads up to the terminating NUL (or end of stream), at most [`MAX_REPLY_BYTES`].
    async fn read_reply(&self, conn: &mut TcpStream, limit: Duration) -> Result<String, ScanError> {
        timeout(limit, read_until_nul(conn))
            .await
            .map_err(|_| ScanError::Unavailable("clamd did not answer in time".into()))?
    }
}

async fn read_until_nul(conn: &mut TcpStream) -> Result<String, ScanError> {
    let mut reply = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let n = conn
            .read(&mut buf)
            .await
            .map_err(|e| ScanError::Unavailable(format!("read from clamd: {e}")))?;
        if n == 0 {
            if reply.is_empty() {
                return Err(ScanError::Unavailable("clamd closed the connection".into()));
            }
            break;
        }
        let got = buf.get(..n).unwrap_or_default();
        if let Some(end) = got.iter().position(|b| *b == 0) {
            reply.extend_from_slice(got.get(..end).unwrap_or_default());
            break;
        }
        reply.extend_from_slice(got);
        if reply.len() > MAX_REPLY_BYTES {
            return Err(ScanError::Protocol("reply too long".into()));
        }
    }
    if reply.len() > MAX_REPLY_BYTES {
        return Err(ScanError::Protocol("reply too long".into()));
    }
    Ok(String::from_utf8_lossy(&reply).trim_end().to_owned())
}

/// A reply that arrived while chunks were still being sent: never a verdict.
fn early_reply_ready(conn: &TcpStream) -> Option<ScanError> {
    let mut buf = [0u8; MAX_REPLY_BYTES];
    match conn.try_read(&mut buf) {
        Ok(0) => Some(ScanError::Unavailable(
            "clamd closed the connection during the stream".into(),
        )),
        Ok(n) => {
            let got = buf.get(..n).unwrap_or_default();
            let end = got.iter().position(|b| *b == 0).unwrap_or(n);
            let reply = String::from_utf8_lossy(got.get(..end).unwrap_or_default());
            Some(reply_error(reply.trim_end()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
        Err(e) => Some(ScanError::Unavailable(format!("read from clamd: {e}"))),
    }
}

fn reply_error(reply: &str) -> ScanError {
    if reply.contains("INSTREAM size limit exceeded") {
        ScanError::TooLarge
    } else {
        ScanError::Protocol(reply.to_owned())
    }
}

/// `stream: OK`, `stream: <name> FOUND`, or an error reply.
pub fn parse_scan_reply(reply: &str) -> Result<ScanVerdict, ScanError> {
    let Some(result) = reply.strip_prefix("stream: ") else {
        return Err(reply_error(reply));
    };
    if result == "OK" {
        return Ok(ScanVerdict::Clean);
    }
    match result.strip_suffix(" FOUND") {
        Some(signature) if !signature.trim().is_empty() => Ok(ScanVerdict::Infected {
            signature: signature.trim().to_owned(),
        }),
        _ => Err(reply_error(reply)),
    }
}

#[cfg(test)]
mod tests;
