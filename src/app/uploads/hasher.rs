//! Digests over upload bytes.
//!
//! [`FileHasher`] is the SHA-256 of the whole file, computed as bytes arrive and saved with
//! every durable step (`uploads.hash_state`), so a resumed upload (on any instance, after a
//! restart) continues the same digest instead of re-reading what is stored. Its saved state
//! at the end of a part also names that part ([`part_digest`]). [`ChunkHasher`] checks a
//! tus `Upload-Checksum` over one request body.

use sha2::Digest as _;
use sha2::digest::common::hazmat::SerializableState;

use super::tus_headers::{ChecksumAlgorithm, UploadChecksum};

/// Format tag of the saved state, so a future change of representation is detected.
const STATE_VERSION: u8 = 1;

#[derive(Clone, Default)]
pub struct FileHasher(sha2::Sha256);

impl FileHasher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The state to store: a version byte, then the digest's own serialised state.
    pub fn save(&self) -> Vec<u8> {
        let state = self.0.serialize();
        let mut out = Vec::with_capacity(1 + state.len());
        out.push(STATE_VERSION);
        out.extend_from_slice(&state);
        out
    }

    /// Restores a state saved by [`save`](Self::save); `None` if it is damaged.
    pub fn restore(saved: &[u8]) -> Option<Self> {
        let (&version, state) = saved.split_first()?;
        if version != STATE_VERSION {
            return None;
        }
        let state = state.try_into().ok()?;
        sha2::Sha256::deserialize(state).ok().map(Self)
    }

    /// Lowercase hex of the digest.
    pub fn finish_hex(self) -> String {
        hex::encode(self.0.finalize())
    }
}

/// The digest a tus client sent for one request body.
pub enum ChunkHasher {
    Sha1(sha1::Sha1, Vec<u8>),
    Sha256(sha2::Sha256, Vec<u8>),
}

impl ChunkHasher {
    pub fn new(expected: &UploadChecksum) -> Self {
        match expected.algorithm {
            ChecksumAlgorithm::Sha1 => Self::Sha1(sha1::Sha1::new(), expected.digest.clone()),
            ChecksumAlgorithm::Sha256 => Self::Sha256(sha2::Sha256::new(), expected.digest.clone()),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Sha1(h, _) => h.update(bytes),
            Self::Sha256(h, _) => h.update(bytes),
        }
    }

    /// Whether the body matched the client's digest.
    pub fn matches(self) -> bool {
        use subtle::ConstantTimeEq as _;
        match self {
            Self::Sha1(h, want) => h.finalize().as_slice().ct_eq(&want).into(),
            Self::Sha256(h, want) => h.finalize().as_slice().ct_eq(&want).into(),
        }
    }
}

/// The digest a part is recorded with, so that recording the same part twice is a no-op and
/// a different part under the same number is refused: the SHA-256 of the file digest's
/// saved state at the part's end ([`FileHasher::save`]). That state is SHA-256's chaining
/// value over every byte up to there (with any unprocessed tail and the length), so two
/// different files agree on it only through a SHA-256 collision. It costs nothing per byte,
/// where hashing each part again cost a second SHA-256 pass over the whole file.
pub fn part_digest(saved_state: &[u8]) -> String {
    sha256_hex(saved_state)
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_saved_and_restored_digest_equals_the_one_pass_digest(
            data in proptest::collection::vec(any::<u8>(), 0..600),
            cuts in proptest::collection::vec(0usize..600, 0..5),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut hasher = FileHasher::new();
            let mut at = 0;
            for cut in cuts {
                hasher.update(&data[at..cut]);
                hasher = FileHasher::restore(&hasher.save()).unwrap();
                at = cut;
            }
            hasher.update(&data[at..]);
            prop_assert_eq!(hasher.finish_hex(), sha256_hex(&data));
        }
    }

    #[test]
    fn a_part_digest_names_the_bytes_up_to_the_part_s_end() {
        let at_end = |data: &[u8]| {
            let mut hasher = FileHasher::new();
            hasher.update(data);
            part_digest(&hasher.save())
        };
        let part = vec![7u8; 8192];
        assert_eq!(at_end(&part), at_end(&part.clone()), "the same bytes again");
        let mut other = part.clone();
        other[100] ^= 1;
        assert_ne!(at_end(&part), at_end(&other), "one bit differs");
        assert_ne!(at_end(&part), at_end(&part[..8128]), "a shorter part");
        // An end inside a 64-byte block keeps the block's bytes in the state: they count too.
        let mut in_last_block = part[..100].to_vec();
        in_last_block[70] ^= 1;
        assert_ne!(at_end(&part[..100]), at_end(&in_last_block));
    }

    #[test]
    fn damaged_states_are_refused() {
        let saved = FileHasher::new().save();
        assert!(FileHasher::restore(&saved).is_some());
        assert!(FileHasher::restore(&saved[..saved.len() - 1]).is_none());
        let mut wrong = saved.clone();
        wrong[0] = 9;
        assert!(FileHasher::restore(&wrong).is_none());
        assert!(FileHasher::restore(&[]).is_none());
    }

    #[test]
    fn chunk_checksums_compare_digests() {
        let good = UploadChecksum {
            algorithm: ChecksumAlgorithm::Sha256,
            digest: sha2::Sha256::digest(b"abc").to_vec(),
        };
        let mut h = ChunkHasher::new(&good);
        h.update(b"ab");
        h.update(b"c");
        assert!(h.matches());
        let mut h = ChunkHasher::new(&good);
        h.update(b"abd");
        assert!(!h.matches());
        let sha1 = UploadChecksum {
            algorithm: ChecksumAlgorithm::Sha1,
            digest: sha1::Sha1::digest(b"abc").to_vec(),
        };
        let mut h = ChunkHasher::new(&sha1);
        h.update(b"abc");
        assert!(h.matches());
    }
}
