//! Streaming a part into an encrypted part file with bounded memory.
//!
//! The body is copied once, into a reusable [`Batch`] of [`BATCH`] plaintext bytes laid out
//! as they will lie in the file: each chunk followed by room for its tag. Each full batch is
//! sealed where it lies and written with one call on the blocking pool before the body is
//! read any further. So at most one batch (plus the body item being copied) is in memory,
//! whatever the part size.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;

use bytes::{Buf as _, Bytes};
use futures_util::{Stream, StreamExt};

use super::files::{blocking, io_error};
use super::format::{
    CHUNK_SIZE, ChunkCipher, PART_HEADER_LEN, PartContent, PartHeader, TAG_LEN, UploadKeys, random,
};
use crate::infra::storage::blob::{ObjectKey, PartNumber, Result, StorageError};

const CHUNK: usize = CHUNK_SIZE as usize;
/// A chunk as stored: its ciphertext, then its tag.
const FRAME: usize = CHUNK + TAG_LEN as usize;
const BATCH_CHUNKS: usize = 16;
/// Plaintext buffered before a write: 16 chunks, 1 MiB.
pub const BATCH: usize = BATCH_CHUNKS * CHUNK;

/// Plaintext gathered for one write, each chunk already at its place in the file's layout.
struct Batch {
    frames: Vec<u8>,
    /// Plaintext bytes held.
    plain: usize,
}

impl Batch {
    fn new() -> Self {
        Self {
            frames: vec![0; BATCH_CHUNKS * FRAME],
            plain: 0,
        }
    }

    fn is_full(&self) -> bool {
        self.plain == BATCH
    }

    /// Copies as much of `bytes` as fits; returns how many bytes it took.
    fn fill(&mut self, bytes: &[u8]) -> usize {
        let mut taken = 0;
        while taken < bytes.len() && !self.is_full() {
            let (chunk, at) = (self.plain / CHUNK, self.plain % CHUNK);
            let n = (CHUNK - at).min(bytes.len() - taken);
            let start = chunk * FRAME + at;
            self.frames[start..start + n].copy_from_slice(&bytes[taken..taken + n]);
            self.plain += n;
            taken += n;
        }
        taken
    }
}

/// Encrypts and writes the chunks of one part file; runs on the blocking pool.
struct PartWriter {
    file: File,
    cipher: ChunkCipher,
    next_chunk: u64,
    /// Every chunk's tag, in order: what names the part (`UploadKeys::tags_digest`).
    tags: Vec<u8>,
}

impl PartWriter {
    /// Seals and writes the chunks in `batch`, then empties it; the last chunk may be short
    /// only when `end` is set.
    fn write(&mut self, batch: &mut Batch, end: bool) -> Result<()> {
        let mut chunks = batch.plain.div_ceil(CHUNK);
        if end && chunks == 0 && self.next_chunk == 0 {
            // An empty part still gets its one authenticated (final) chunk.
            chunks = 1;
        }
        let mut written = 0;
        for i in 0..chunks {
            let len = (batch.plain - i * CHUNK).min(CHUNK);
            let frame = &mut batch.frames[i * FRAME..i * FRAME + len + TAG_LEN as usize];
            self.cipher.seal_framed(self.next_chunk, frame)?;
            self.tags.extend_from_slice(&frame[len..]);
            self.next_chunk += 1;
            written = i * FRAME + frame.len();
        }
        self.file
            .write_all(&batch.frames[..written])
            .map_err(|e| io_error("writing a part", &e))?;
        batch.plain = 0;
        if end && self.next_chunk != self.cipher.chunks() {
            return Err(StorageError::Io("part chunk count mismatch".into()));
        }
        Ok(())
    }
}

/// What a finished part file holds.
pub struct Written {
    pub header: PartHeader,
}

/// Streams `body` into `file` (a new, empty temp file) as part `number` of `key`. The file
/// is complete and synced on success; on error the caller removes it.
pub async fn write_part(
    file: File,
    keys: std::sync::Arc<UploadKeys>,
    key: &ObjectKey,
    number: PartNumber,
    mut body: impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin + Send,
    expected_len: u64,
) -> Result<Written> {
    let salt = random::<16>()?;
    let nonce_prefix = random::<8>()?;
    let cipher = keys.chunk_cipher(key, number, &salt, nonce_prefix, expected_len)?;
    // The header is only known at the end; reserve its place.
    let mut file = file;
    file = blocking(move || {
        file.write_all(&[0u8; PART_HEADER_LEN])
            .map_err(|e| io_error("writing a part", &e))?;
        Ok(file)
    })
    .await?;
    let mut writer = PartWriter {
        tags: Vec::with_capacity(
            usize::try_from(cipher.chunks().saturating_mul(TAG_LEN)).unwrap_or(0),
        ),
        file,
        cipher,
        next_chunk: 0,
    };

    let mut batch = Batch::new();
    let mut received: u64 = 0;
    while let Some(item) = body.next().await {
        let mut item =
            item.map_err(|e| StorageError::InvalidPart(format!("the part's body failed: {e}")))?;
        received = received.saturating_add(item.len() as u64);
        if received > expected_len {
            return Err(StorageError::InvalidPart(format!(
                "body is longer than the declared {expected_len} bytes"
            )));
        }
        while !item.is_empty() {
            let taken = batch.fill(&item);
            item.advance(taken);
            if batch.is_full() {
                (writer, batch) = flush(writer, batch, false).await?;
            }
        }
    }
    if received != expected_len {
        return Err(StorageError::InvalidPart(format!(
            "body ended after {received} of {expected_len} bytes"
        )));
    }
    let (writer, _) = flush(writer, batch, true).await?;

    let PartWriter { file, tags, .. } = writer;
    let content = keys.tags_digest(key, number, expected_len, &salt, &tags);
    let header = PartHeader {
        number,
        size: expected_len,
        salt,
        nonce_prefix,
        etag: keys.part_etag(&content),
        content: PartContent::Tags(content),
    };
    let encoded = header.encode(&keys, key);
    blocking(move || {
        file.write_all_at(&encoded, 0)
            .and_then(|()| file.sync_all())
            .map_err(|e| io_error("syncing a part", &e))
    })
    .await?;
    Ok(Written { header })
}

async fn flush(mut writer: PartWriter, mut batch: Batch, end: bool) -> Result<(PartWriter, Batch)> {
    blocking(move || {
        writer.write(&mut batch, end)?;
        Ok((writer, batch))
    })
    .await
}
