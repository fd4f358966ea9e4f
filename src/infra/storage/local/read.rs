//! Reading a completed object (or a range of it) chunk by chunk, authenticating every chunk
//! before any of its bytes leave this module.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream;

use super::files::{Layout, blocking, io_error};
use super::format::{CHUNK_SIZE, ChunkCipher, PART_HEADER_LEN, PartHeader, TAG_LEN, UploadKeys};
use super::meta::IndexPart;
use crate::infra::storage::blob::{ObjectKey, ObjectStream, PartNumber, Result, StorageError};

/// Plaintext handed out per stream item (and per trip to the blocking pool).
const BLOCK: usize = 4 * CHUNK_SIZE as usize;

struct OpenPart {
    file: File,
    cipher: ChunkCipher,
    number: PartNumber,
}

pub struct ObjectReader {
    key: ObjectKey,
    keys: Arc<UploadKeys>,
    index_path: PathBuf,
    blob_dir: PathBuf,
    /// Each part with the object offset it starts at.
    parts: Vec<(u64, IndexPart)>,
    current: Option<(usize, OpenPart)>,
    pos: u64,
    /// Exclusive.
    end: u64,
    scratch: Vec<u8>,
}

impl ObjectReader {
    pub fn new(
        layout: &Layout,
        key: ObjectKey,
        keys: UploadKeys,
        blob_dir: PathBuf,
        parts: &[IndexPart],
        start: u64,
        end_exclusive: u64,
    ) -> Self {
        let mut offset = 0u64;
        let parts = parts
            .iter()
            .map(|p| {
                let at = offset;
                offset = offset.saturating_add(p.size);
                (at, p.clone())
            })
            .collect();
        Self {
            index_path: layout.index_path(&key),
            key,
            keys: Arc::new(keys),
            blob_dir,
            parts,
            current: None,
            pos: start,
            end: end_exclusive,
            scratch: Vec::with_capacity(CHUNK_SIZE as usize + TAG_LEN as usize),
        }
    }

    pub fn into_stream(self) -> ObjectStream {
        Box::pin(stream::try_unfold(self, |reader| async move {
            if reader.pos >= reader.end {
                return Ok(None);
            }
            let (reader, block) = blocking(move || {
                let mut reader = reader;
                let block = reader.next_block()?;
                Ok((reader, block))
            })
            .await?;
            Ok(Some((block, reader)))
        }))
    }

    /// Up to [`BLOCK`] bytes from `pos`; only authenticated plaintext is returned, and an
    /// error discards the whole block.
    pub fn next_block(&mut self) -> Result<Bytes> {
        let want = usize::try_from(self.end - self.pos)
            .unwrap_or(BLOCK)
            .min(BLOCK);
        let mut out = Vec::with_capacity(want);
        while out.len() < want {
            // The last part starting at or before `pos` (only a final part can be empty, and
            // it starts at the object's end, which `pos` never reaches).
            let part_index = self
                .parts
                .partition_point(|(start, _)| *start <= self.pos)
                .checked_sub(1)
                .ok_or_else(|| StorageError::Integrity("position before the first part".into()))?;
            let (part_start, part) = self.parts[part_index].clone();
            let within = self.pos - part_start;
            if within >= part.size {
                return Err(StorageError::Integrity("object index has a gap".into()));
            }
            if self.current.as_ref().map(|(i, _)| *i) != Some(part_index) {
                self.current = Some((part_index, self.open_part(&part)?));
            }
            let Some((_, open)) = self.current.as_ref() else {
                return Err(StorageError::Io("no part open".into()));
            };
            let index = within / u64::from(CHUNK_SIZE);
            let chunk_start = index * u64::from(CHUNK_SIZE);
            let plain_len = (part.size - chunk_start).min(u64::from(CHUNK_SIZE));
            let cipher_len = usize::try_from(plain_len + TAG_LEN)
                .map_err(|_| StorageError::Io("chunk too large".into()))?;
            self.scratch.resize(cipher_len, 0);
            open.file
                .read_exact_at(&mut self.scratch, PartHeader::chunk_offset(index))
                .map_err(|e| damaged(&e, open.number))?;
            let plain = open.cipher.open(index, &mut self.scratch)?;
            // This chunk's plaintext covers [chunk_start, chunk_start + len) of the part.
            let from = usize::try_from(within - chunk_start).unwrap_or(usize::MAX);
            let to_end = self.end - part_start - chunk_start;
            let to = usize::try_from(to_end)
                .unwrap_or(usize::MAX)
                .min(plain.len())
                .min(from.saturating_add(want - out.len()));
            let piece = plain
                .get(from..to)
                .filter(|piece| !piece.is_empty())
                .ok_or_else(|| StorageError::Integrity("chunk shorter than expected".into()))?;
            out.extend_from_slice(piece);
            self.pos += piece.len() as u64;
        }
        Ok(Bytes::from(out))
    }

    /// Opens a part file and checks its header against the index before using it.
    fn open_part(&self, part: &IndexPart) -> Result<OpenPart> {
        let number = PartNumber::new(u64::from(part.number))
            .ok_or_else(|| StorageError::Integrity("bad part number in index".into()))?;
        let path = Layout::part_file(&self.blob_dir, number);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Deleted while we read it, or lost from disk behind our back.
                return Err(if self.index_path.exists() {
                    StorageError::Integrity(format!("data of part {number} is missing"))
                } else {
                    StorageError::NotFound
                });
            }
            Err(e) => return Err(io_error("opening a part", &e)),
        };
        let mut raw = [0u8; PART_HEADER_LEN];
        file.read_exact_at(&mut raw, 0)
            .map_err(|e| damaged(&e, number))?;
        let header = PartHeader::decode(&raw, &self.keys, &self.key)?;
        let len = file
            .metadata()
            .map_err(|e| io_error("reading part metadata", &e))?
            .len();
        if header.number != number
            || header.size != part.size
            || hex::encode(header.etag) != part.etag
            || len != PartHeader::file_len(header.size)
        {
            return Err(StorageError::Integrity(format!(
                "part {number} does not match the object index"
            )));
        }
        let cipher = self.keys.chunk_cipher(
            &self.key,
            number,
            &header.salt,
            header.nonce_prefix,
            header.size,
        )?;
        Ok(OpenPart {
            file,
            cipher,
            number,
        })
    }
}

fn damaged(e: &io::Error, number: PartNumber) -> StorageError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        StorageError::Integrity(format!("part {number} is truncated"))
    } else {
        io_error("reading a part", e)
    }
}
