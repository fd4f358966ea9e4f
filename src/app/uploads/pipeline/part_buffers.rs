//! Part buffers given back once their part is stored, for the next part of any upload.
//!
//! Every part is an allocation of the part size (8 MiB or more). Freed, glibc keeps such
//! blocks in its per-thread arenas instead of returning them (its mmap threshold rises to
//! the size of the first one freed), so one 1 GiB upload peaked at 128 MiB RSS with 40 MiB
//! of parts actually alive. Reusing the buffers keeps the process at what is in use. A
//! fixed mmap threshold (`MALLOC_MMAP_THRESHOLD_`) returns the memory too, but pays for it
//! with a page fault on every 4 KiB of every part: 30% more CPU per GiB.
//!
//! The buffers kept never add up to more than the upload buffer setting, the same bound
//! as the parts being sent.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Bytes, BytesMut};

#[derive(Clone)]
pub struct PartBuffers {
    kept: Arc<Mutex<Vec<BytesMut>>>,
    max_bytes: usize,
}

impl PartBuffers {
    pub fn new(max_bytes: u64) -> Self {
        Self {
            kept: Arc::new(Mutex::new(Vec::new())),
            max_bytes: usize::try_from(max_bytes).unwrap_or(usize::MAX),
        }
    }

    /// An empty buffer with room for at least `capacity` bytes: a kept one when one is
    /// large enough, otherwise a new one.
    pub fn take(&self, capacity: usize) -> BytesMut {
        if capacity == 0 {
            return BytesMut::new();
        }
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        match kept.iter().position(|b| b.capacity() >= capacity) {
            Some(i) => kept.swap_remove(i),
            None => {
                drop(kept);
                BytesMut::with_capacity(capacity)
            }
        }
    }

    /// Keeps the buffer behind a stored part's bytes for a later part. Bytes that something
    /// else still shares (a digest still running, a body the storage client holds) are
    /// simply dropped, as is a buffer that would take the kept ones over the limit.
    pub fn give_back(&self, bytes: Bytes) {
        let Ok(mut buf) = bytes.try_into_mut() else {
            return;
        };
        buf.clear();
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let held: usize = kept.iter().map(BytesMut::capacity).sum();
        if held.saturating_add(buf.capacity()) <= self.max_bytes {
            kept.push(buf);
        }
    }

    /// Bytes of buffers kept right now (for tests and diagnostics).
    pub fn kept_bytes(&self) -> usize {
        let kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        kept.iter().map(BytesMut::capacity).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    fn full_part(buffers: &PartBuffers, len: usize) -> (Bytes, *const u8) {
        let mut buf = buffers.take(len);
        buf.resize(len, 7);
        let at = buf.as_ptr();
        (buf.freeze(), at)
    }

    #[test]
    fn a_stored_part_s_buffer_serves_the_next_part_empty() {
        let buffers = PartBuffers::new(64 * MIB as u64);
        let (part, at) = full_part(&buffers, 8 * MIB);
        buffers.give_back(part);
        assert_eq!(buffers.kept_bytes(), 8 * MIB);
        let next = buffers.take(8 * MIB);
        assert_eq!(next.as_ptr(), at, "the same memory again");
        assert!(next.is_empty(), "no byte of the earlier part shows through");
        assert!(next.capacity() >= 8 * MIB);
        assert_eq!(buffers.kept_bytes(), 0);
    }

    #[test]
    fn an_unused_buffer_comes_back_too() {
        // A request that ends on a part boundary leaves its next buffer empty.
        let buffers = PartBuffers::new(64 * MIB as u64);
        let unused = buffers.take(8 * MIB);
        let at = unused.as_ptr();
        buffers.give_back(unused.freeze());
        assert_eq!(buffers.take(8 * MIB).as_ptr(), at);
    }

    #[test]
    fn bytes_still_shared_are_not_reused() {
        let buffers = PartBuffers::new(64 * MIB as u64);
        let (part, _) = full_part(&buffers, MIB);
        let still_sending = part.clone();
        buffers.give_back(part);
        assert_eq!(buffers.kept_bytes(), 0);
        assert!(
            still_sending.iter().all(|&b| b == 7),
            "the holder's bytes are untouched"
        );
    }

    #[test]
    fn kept_buffers_stay_within_the_limit() {
        let buffers = PartBuffers::new(16 * MIB as u64);
        let parts: Vec<_> = (0..3).map(|_| full_part(&buffers, 8 * MIB).0).collect();
        for part in parts {
            buffers.give_back(part);
        }
        assert_eq!(buffers.kept_bytes(), 16 * MIB);
    }

    #[test]
    fn a_buffer_too_small_is_not_handed_out_for_a_larger_part() {
        let buffers = PartBuffers::new(64 * MIB as u64);
        let (small, _) = full_part(&buffers, MIB);
        buffers.give_back(small);
        let large = buffers.take(8 * MIB);
        assert!(large.capacity() >= 8 * MIB);
        assert_eq!(
            buffers.kept_bytes(),
            MIB,
            "the small one stays for a small part"
        );
        assert_eq!(buffers.take(0).capacity(), 0);
    }
}
