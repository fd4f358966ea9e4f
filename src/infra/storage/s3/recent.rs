//! The ETag of the part this process uploaded last, per (upload, part number).
//!
//! Only a tie-breaker: some S3-compatible servers (SeaweedFS) keep every upload of a
//! re-uploaded part number and list them all with one-second timestamps, so two uploads in
//! the same second cannot be ordered from the listing. Nothing depends on this for
//! correctness (completion uses the caller's records); it makes `list_parts` answer the way
//! AWS does for re-uploads made by this process. Bounded: the oldest entries are dropped.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use crate::infra::storage::blob::{MultipartId, PartNumber};

const CAPACITY: usize = 4096;

type Slot = (String, u16);

#[derive(Debug, Default)]
struct Inner {
    etags: HashMap<Slot, (u64, String)>,
    order: VecDeque<(u64, Slot)>,
    next: u64,
}

#[derive(Debug, Clone, Default)]
pub(super) struct RecentParts(Arc<Mutex<Inner>>);

impl RecentParts {
    pub(super) fn record(&self, id: &MultipartId, number: PartNumber, etag: &str) {
        let mut inner = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = (id.as_str().to_string(), number.get());
        let seq = inner.next;
        inner.next += 1;
        inner.etags.insert(slot.clone(), (seq, etag.to_string()));
        inner.order.push_back((seq, slot));
        while inner.order.len() > CAPACITY {
            if let Some((seq, slot)) = inner.order.pop_front()
                && inner.etags.get(&slot).is_some_and(|(s, _)| *s == seq)
            {
                inner.etags.remove(&slot);
            }
        }
    }

    pub(super) fn get(&self, id: &MultipartId, number: PartNumber) -> Option<String> {
        let inner = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        inner
            .etags
            .get(&(id.as_str().to_string(), number.get()))
            .map(|(_, etag)| etag.clone())
    }

    /// Drops everything about an upload that is over.
    pub(super) fn forget(&self, id: &MultipartId) {
        let mut inner = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        inner.etags.retain(|(upload, _), _| upload != id.as_str());
        inner.order.retain(|(_, (upload, _))| upload != id.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_last_upload_and_stays_bounded() {
        let recent = RecentParts::default();
        let id = MultipartId::new("u");
        let one = PartNumber::new(1).unwrap();
        recent.record(&id, one, "a");
        recent.record(&id, one, "b");
        assert_eq!(recent.get(&id, one).as_deref(), Some("b"));
        for n in 0..CAPACITY as u64 + 10 {
            recent.record(&MultipartId::new(format!("x{n}")), one, "c");
        }
        assert_eq!(recent.get(&id, one), None);
        assert!(recent.0.lock().unwrap().etags.len() <= CAPACITY);
        recent.record(&id, one, "d");
        recent.forget(&id);
        assert_eq!(recent.get(&id, one), None);
    }
}
