//! Streaming a part into an encrypted part file with bounded memory.
//!
//! The body is copied into one reusable buffer of [`BATCH`] bytes; each full buffer is
//! encrypted and written on the blocking pool before the body is read any further. So at
//! most one batch (plus the body item being copied) is in memory, whatever the part size.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};

use super::files::{blocking, io_error};
use super::format::{CHUNK_SIZE, ChunkCipher, PART_HEADER_LEN, PartHeader, UploadKeys, random};
use crate::infra::storage::blob::{ObjectKey, PartNumber, Result, StorageError};

/// Plaintext buffered before a write: 16 chunks, 1 MiB.
pub const BATCH: usize = 16 * CHUNK_SIZE as usize;

/// Encrypts and writes the chunks of one part file; runs on the blocking pool.
struct PartWriter {
    file: File,
    cipher: ChunkCipher,
    next_chunk: u64,
    sha256: Sha256,
    scratch: Vec<u8>,
}

impl PartWriter {
    /// Writes whole chunks of `plain`; the last may be short only when `end` is set.
    fn write(&mut self, plain: &[u8], end: bool) -> Result<()> {
        let mut chunks: Vec<&[u8]> = plain.chunks(CHUNK_SIZE as usize).collect();
        if end && chunks.is_empty() && self.next_chunk == 0 {
            // An empty part still gets its one authenticated (final) chunk.
            chunks.push(&[]);
        }
        for chunk in chunks {
            self.sha256.update(chunk);
            self.scratch.clear();
            self.scratch.extend_from_slice(chunk);
            self.cipher.seal(self.next_chunk, &mut self.scratch)?;
            self.file
                .write_all(&self.scratch)
                .map_err(|e| io_error("writing a part", &e))?;
            self.next_chunk += 1;
        }
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
        file,
        cipher,
        next_chunk: 0,
        sha256: Sha256::new(),
        scratch: Vec::with_capacity(CHUNK_SIZE as usize + 16),
    };

    let mut batch = Vec::with_capacity(BATCH);
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
            let take = (BATCH - batch.len()).min(item.len());
            batch.extend_from_slice(&item.split_to(take));
            if batch.len() == BATCH {
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

    let PartWriter { file, sha256, .. } = writer;
    let sha256: [u8; 32] = sha256.finalize().into();
    let header = PartHeader {
        number,
        size: expected_len,
        salt,
        nonce_prefix,
        etag: keys.part_etag(&sha256),
        sha256,
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

async fn flush(
    mut writer: PartWriter,
    mut batch: Vec<u8>,
    end: bool,
) -> Result<(PartWriter, Vec<u8>)> {
    blocking(move || {
        writer.write(&batch, end)?;
        batch.clear();
        Ok((writer, batch))
    })
    .await
}
