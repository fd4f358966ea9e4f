//! How an upload is laid out in storage: its fixed part size, which part an offset falls in,
//! and where the partial tail of an unfinished part is kept between requests.
//!
//! Every part but the last is exactly `part_size` bytes. Bytes past the last whole part
//! (the "tail", shorter than a part) are kept as a small object of their own at
//! [`tail_key`]`(object_key, offset)`, so any instance can pick the upload up: the next
//! request reads the tail back, appends new bytes and uploads the part once it is whole.
//! The key names the offset the tail ends at, so a new tail never overwrites the one the
//! database still points to.

use crate::infra::storage::blob::{MIN_PART_SIZE, ObjectKey, PartNumber};

const MIB: u64 = 1024 * 1024;
/// The part size this pipeline chooses at least: above the storage contract's
/// `MIN_PART_SIZE` (S3's 5 MiB), as 8 MiB parts need fewer requests for the same bytes.
pub const PREFERRED_PART_SIZE: u64 = 8 * MIB;
const _: () = assert!(PREFERRED_PART_SIZE >= MIN_PART_SIZE);
/// S3's limit on parts per upload.
pub const MAX_PARTS: u64 = PartNumber::MAX as u64;

/// The part size for a file of `size` bytes: at least 8 MiB, and large enough that the file
/// fits in 10,000 parts; a whole number of MiB.
pub fn part_size_for(size: u64) -> u64 {
    let needed = size.div_ceil(MAX_PARTS);
    needed
        .div_ceil(MIB)
        .saturating_mul(MIB)
        .max(PREFERRED_PART_SIZE)
}

/// Where the bytes at `offset` go: the number of whole parts before it and the length of the
/// partial tail (0 when `offset` is on a part boundary).
pub fn split(offset: u64, part_size: u64) -> (u64, u64) {
    let whole = offset / part_size.max(1);
    (whole, offset - whole * part_size.max(1))
}

/// Whether a file of `size` bytes is stored whole with one request at its last byte instead
/// of through a multipart upload: it fits in one part. Bytes that arrive before the last
/// byte's request wait in a tail object, as for any upload, so a small file never opens a
/// multipart upload (on S3 that saves four round trips per file).
pub fn stored_whole(size: u64) -> bool {
    size <= part_size_for(size)
}

/// The number of the part that starts after `whole_parts` whole parts.
pub fn next_part(whole_parts: u64) -> Option<PartNumber> {
    PartNumber::new(whole_parts.saturating_add(1))
}

/// The object holding the tail that ends at `offset`.
pub fn tail_key(object_key: &ObjectKey, offset: u64) -> Option<ObjectKey> {
    ObjectKey::parse(&format!("{}.tail.{offset}", object_key.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn part_sizes_are_at_least_8_mib_and_fit_10000_parts() {
        assert_eq!(part_size_for(0), 8 * MIB);
        assert_eq!(part_size_for(20 * MIB), 8 * MIB);
        assert_eq!(part_size_for(50 * 1024 * MIB), 8 * MIB);
        // 100 GiB needs 10.24 MiB parts: 11 MiB.
        assert_eq!(part_size_for(100 * 1024 * MIB), 11 * MIB);
    }

    #[test]
    fn tails_are_keyed_by_their_end_offset() {
        let key = ObjectKey::parse("uploads/2026/11/abc").unwrap();
        assert_eq!(
            tail_key(&key, 42).unwrap().as_str(),
            "uploads/2026/11/abc.tail.42"
        );
        assert_eq!(split(0, 8), (0, 0));
        assert_eq!(split(20, 8), (2, 4));
        assert_eq!(split(24, 8), (3, 0));
    }

    proptest! {
        #[test]
        fn any_size_fits_in_the_part_limit(size in 0u64..=6 * 1024 * 1024 * MIB) {
            let part = part_size_for(size);
            prop_assert!(part >= PREFERRED_PART_SIZE);
            prop_assert!(size.div_ceil(part) <= MAX_PARTS);
            prop_assert_eq!(part % MIB, 0);
        }
    }
}
