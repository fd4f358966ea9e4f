//! Cryptography and the part file layout of the local store (described in `local.rs`).

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hmac::{self, HMAC_SHA256};
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::ExposeSecret;
use secrecy::zeroize::Zeroize;

use crate::infra::crypto::secrets::{self, Keyring, SealContext, SealError};
use crate::infra::storage::blob::{ObjectKey, PartNumber, Result, StorageError};

/// Plaintext bytes per encrypted chunk; range reads decrypt whole chunks.
pub const CHUNK_SIZE: u32 = 64 * 1024;
pub const TAG_LEN: u64 = 16;

/// Part files whose content field is the plaintext's SHA-256 (read, no longer written).
const PART_MAGIC_V1: &[u8; 4] = b"MPP1";
/// Part files whose content field is a MAC over their chunk tags.
const PART_MAGIC_V2: &[u8; 4] = b"MPP2";
const MAC_LEN: usize = 32;
/// magic, part number, chunk size, plaintext size, salt, nonce prefix, ETag, content, MAC.
pub const PART_HEADER_LEN: usize = 4 + 2 + 4 + 8 + 16 + 8 + 16 + 32 + MAC_LEN;
const MAC_OFFSET: usize = PART_HEADER_LEN - MAC_LEN;

const DATA_KEY_LEN: usize = 32;

pub fn random<const N: usize>() -> Result<[u8; N]> {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| StorageError::Io("the system random number generator failed".into()))?;
    Ok(out)
}

fn seal_context(key: &ObjectKey) -> SealContext<'_> {
    SealContext {
        table: "objects",
        row_id: key.as_str(),
        field: "data_key",
    }
}

fn seal_error(e: SealError) -> StorageError {
    match e {
        SealError::UnknownKey => StorageError::Config(
            "an object's data key is sealed with a master key that is not configured".into(),
        ),
        SealError::Format | SealError::Integrity => {
            StorageError::Integrity(format!("sealed data key: {e}"))
        }
        SealError::Random | SealError::Seal => StorageError::Io(e.to_string()),
    }
}

/// The keys of one upload and the object it becomes, derived from its random data key:
/// one to derive a content key per part file, one to authenticate headers, indexes and
/// ETags. The data key itself is only ever stored sealed.
#[derive(Debug)]
pub struct UploadKeys {
    content: hmac::Key,
    mac: hmac::Key,
}

impl UploadKeys {
    /// A fresh data key for `key`: the keys and the sealed data key to store.
    pub fn generate(keyring: &Keyring, key: &ObjectKey) -> Result<(Self, Vec<u8>)> {
        let mut data_key = random::<DATA_KEY_LEN>()?;
        let sealed = secrets::seal(keyring, &seal_context(key), &data_key).map_err(seal_error);
        let keys = Self::derive(&data_key);
        data_key.zeroize();
        Ok((keys, sealed?))
    }

    pub fn open(keyring: &Keyring, key: &ObjectKey, sealed: &[u8]) -> Result<Self> {
        let data_key = secrets::open(keyring, &seal_context(key), sealed).map_err(seal_error)?;
        let bytes: &[u8; DATA_KEY_LEN] = data_key
            .expose_secret()
            .as_slice()
            .try_into()
            .map_err(|_| StorageError::Integrity("data key has the wrong length".into()))?;
        Ok(Self::derive(bytes))
    }

    fn derive(data_key: &[u8; DATA_KEY_LEN]) -> Self {
        let root = hmac::Key::new(HMAC_SHA256, data_key);
        let sub = |label: &[u8]| hmac::Key::new(HMAC_SHA256, hmac::sign(&root, label).as_ref());
        Self {
            content: sub(b"medport-local-content-v1"),
            mac: sub(b"medport-local-mac-v1"),
        }
    }

    /// HMAC-SHA256 under the MAC key over length-prefixed fields (so no two field lists
    /// share an encoding).
    pub fn mac(&self, fields: &[&[u8]]) -> [u8; MAC_LEN] {
        let mut ctx = hmac::Context::with_key(&self.mac);
        for field in fields {
            ctx.update(&(field.len() as u64).to_be_bytes());
            ctx.update(field);
        }
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }

    /// Constant-time check of a MAC made by [`Self::mac`].
    pub fn verify(&self, fields: &[&[u8]], tag: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(self.mac(fields).as_slice().ct_eq(tag))
    }

    /// A part's ETag: a keyed hash of its content field, so it reveals nothing about the
    /// content.
    pub fn part_etag(&self, content: &[u8; 32]) -> [u8; 16] {
        let mut out = [0u8; 16];
        out.copy_from_slice(&self.mac(&[b"medport-local-etag-v1", content])[..16]);
        out
    }

    /// The content field of a part file: a MAC over where it belongs and its chunk tags.
    /// The tags authenticate every ciphertext byte under the file's own key, so this names
    /// exactly one stored file (an upload of the same part again gets a new salt, so a new
    /// key and new tags) at the cost of hashing 16 bytes per chunk, not the plaintext again.
    pub fn tags_digest(
        &self,
        key: &ObjectKey,
        number: PartNumber,
        size: u64,
        salt: &[u8; 16],
        tags: &[u8],
    ) -> [u8; 32] {
        self.mac(&[
            b"medport-local-part-tags-v1",
            key.as_str().as_bytes(),
            &number.get().to_be_bytes(),
            &size.to_be_bytes(),
            salt,
            tags,
        ])
    }

    /// The cipher for one part file, from its random salt and nonce prefix.
    pub fn chunk_cipher(
        &self,
        key: &ObjectKey,
        number: PartNumber,
        salt: &[u8; 16],
        nonce_prefix: [u8; 8],
        size: u64,
    ) -> Result<ChunkCipher> {
        let tag = hmac::sign(&self.content, salt);
        let aead = UnboundKey::new(&AES_256_GCM, tag.as_ref())
            .map_err(|_| StorageError::Io("content key derivation failed".into()))?;
        let mut aad_prefix = Vec::with_capacity(32 + key.as_str().len());
        aad_prefix.extend_from_slice(b"medport-chunk-v1");
        aad_prefix.extend_from_slice(&(key.as_str().len() as u64).to_be_bytes());
        aad_prefix.extend_from_slice(key.as_str().as_bytes());
        aad_prefix.extend_from_slice(&number.get().to_be_bytes());
        Ok(ChunkCipher {
            // A fresh key per part file: the nonce need only be unique within the file.
            aead: LessSafeKey::new(aead),
            nonce_prefix,
            aad_prefix,
            chunks: chunk_count(size),
        })
    }
}

/// Chunks of a part of `size` bytes: at least one, so an empty part still has an
/// authenticated final chunk.
pub fn chunk_count(size: u64) -> u64 {
    size.div_ceil(u64::from(CHUNK_SIZE)).max(1)
}

/// Encrypts and decrypts the chunks of one part file. The associated data binds each chunk
/// to the object key, the part number, its index and whether it is the last chunk, so
/// reordered, truncated or transplanted chunks fail to open.
pub struct ChunkCipher {
    aead: LessSafeKey,
    nonce_prefix: [u8; 8],
    aad_prefix: Vec<u8>,
    chunks: u64,
}

impl ChunkCipher {
    fn nonce_and_aad(&self, index: u64) -> Result<(Nonce, Vec<u8>)> {
        let index32 = u32::try_from(index)
            .map_err(|_| StorageError::InvalidPart("part has too many chunks".into()))?;
        let mut nonce = [0u8; 12];
        nonce[..8].copy_from_slice(&self.nonce_prefix);
        nonce[8..].copy_from_slice(&index32.to_be_bytes());
        let mut aad = Vec::with_capacity(self.aad_prefix.len() + 5);
        aad.extend_from_slice(&self.aad_prefix);
        aad.extend_from_slice(&index32.to_be_bytes());
        aad.push(u8::from(index + 1 == self.chunks));
        Ok((Nonce::assume_unique_for_key(nonce), aad))
    }

    /// Encrypts chunk `index` where it lies: `frame` is its plaintext followed by
    /// [`TAG_LEN`] bytes of room, which receive the tag.
    pub fn seal_framed(&self, index: u64, frame: &mut [u8]) -> Result<()> {
        let (nonce, aad) = self.nonce_and_aad(index)?;
        let plain_len = frame
            .len()
            .checked_sub(TAG_LEN as usize)
            .ok_or_else(|| StorageError::Io("chunk frame without room for its tag".into()))?;
        let (plain, room) = frame.split_at_mut(plain_len);
        let tag = self
            .aead
            .seal_in_place_separate_tag(nonce, Aad::from(aad), plain)
            .map_err(|_| StorageError::Io("chunk encryption failed".into()))?;
        room.copy_from_slice(tag.as_ref());
        Ok(())
    }

    /// Decrypts chunk `index` (ciphertext and tag) in place; returns the plaintext.
    pub fn open<'a>(&self, index: u64, buf: &'a mut [u8]) -> Result<&'a mut [u8]> {
        let (nonce, aad) = self.nonce_and_aad(index)?;
        self.aead
            .open_in_place(nonce, Aad::from(aad), buf)
            .map_err(|_| StorageError::Integrity(format!("chunk {index} failed authentication")))
    }

    pub fn chunks(&self) -> u64 {
        self.chunks
    }
}

/// What a part file's 32-byte content field holds, by format version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartContent {
    /// `MPP1`: the plaintext's SHA-256.
    Sha256([u8; 32]),
    /// `MPP2`: [`UploadKeys::tags_digest`].
    Tags([u8; 32]),
}

impl PartContent {
    pub fn bytes(&self) -> &[u8; 32] {
        match self {
            Self::Sha256(b) | Self::Tags(b) => b,
        }
    }

    fn magic(&self) -> &'static [u8; 4] {
        match self {
            Self::Sha256(_) => PART_MAGIC_V1,
            Self::Tags(_) => PART_MAGIC_V2,
        }
    }
}

/// The fixed-size header at the start of every part file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartHeader {
    pub number: PartNumber,
    pub size: u64,
    pub salt: [u8; 16],
    pub nonce_prefix: [u8; 8],
    pub etag: [u8; 16],
    pub content: PartContent,
}

impl PartHeader {
    pub fn encode(&self, keys: &UploadKeys, key: &ObjectKey) -> [u8; PART_HEADER_LEN] {
        let mut out = [0u8; PART_HEADER_LEN];
        let fields: [&[u8]; 8] = [
            self.content.magic(),
            &self.number.get().to_be_bytes(),
            &CHUNK_SIZE.to_be_bytes(),
            &self.size.to_be_bytes(),
            &self.salt,
            &self.nonce_prefix,
            &self.etag,
            self.content.bytes(),
        ];
        let mut at = 0;
        for field in fields {
            out[at..at + field.len()].copy_from_slice(field);
            at += field.len();
        }
        let mac = keys.mac(&[
            b"medport-part-header-v1",
            key.as_str().as_bytes(),
            &out[..at],
        ]);
        out[MAC_OFFSET..].copy_from_slice(&mac);
        out
    }

    pub fn decode(
        bytes: &[u8; PART_HEADER_LEN],
        keys: &UploadKeys,
        key: &ObjectKey,
    ) -> Result<Self> {
        let bad = |what: &str| StorageError::Integrity(format!("part header: {what}"));
        let (body, mac) = bytes.split_at(MAC_OFFSET);
        if !keys.verify(
            &[b"medport-part-header-v1", key.as_str().as_bytes(), body],
            mac,
        ) {
            return Err(bad("failed authentication"));
        }
        let mut rest = body;
        let mut take = |n: usize| {
            let (head, tail) = rest.split_at(n);
            rest = tail;
            head
        };
        let magic = take(4);
        let content: fn([u8; 32]) -> PartContent = if magic == PART_MAGIC_V2 {
            PartContent::Tags
        } else if magic == PART_MAGIC_V1 {
            PartContent::Sha256
        } else {
            return Err(bad("unknown format"));
        };
        let number = u16::from_be_bytes(array(take(2)));
        let chunk_size = u32::from_be_bytes(array(take(4)));
        if chunk_size != CHUNK_SIZE {
            return Err(bad("unsupported chunk size"));
        }
        Ok(Self {
            number: PartNumber::new(u64::from(number)).ok_or_else(|| bad("bad part number"))?,
            size: u64::from_be_bytes(array(take(8))),
            salt: array(take(16)),
            nonce_prefix: array(take(8)),
            etag: array(take(16)),
            content: content(array(take(32))),
        })
    }

    /// Where chunk `index` starts in the file.
    pub fn chunk_offset(index: u64) -> u64 {
        PART_HEADER_LEN as u64 + index * (u64::from(CHUNK_SIZE) + TAG_LEN)
    }

    /// The exact length of a part file holding `size` plaintext bytes.
    pub fn file_len(size: u64) -> u64 {
        PART_HEADER_LEN as u64 + size + chunk_count(size) * TAG_LEN
    }
}

/// Copies a slice of known length into an array (lengths here are fixed by the layout).
fn array<const N: usize>(slice: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(slice);
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::infra::crypto::keys::MasterKey;

    fn setup() -> (Keyring, ObjectKey) {
        let keyring = Keyring::new(Arc::new(MasterKey::from_bytes([3; 32])));
        (keyring, ObjectKey::parse("uploads/2026/01/x").unwrap())
    }

    #[test]
    fn header_round_trips_and_detects_every_flipped_byte() {
        let (keyring, key) = setup();
        let (keys, sealed) = UploadKeys::generate(&keyring, &key).unwrap();
        let keys2 = UploadKeys::open(&keyring, &key, &sealed).unwrap();
        let header = PartHeader {
            number: PartNumber::new(7).unwrap(),
            size: 123_456,
            salt: [1; 16],
            nonce_prefix: [2; 8],
            etag: [3; 16],
            content: PartContent::Tags([4; 32]),
        };
        let bytes = header.encode(&keys, &key);
        assert_eq!(PartHeader::decode(&bytes, &keys2, &key).unwrap(), header);
        // Files written before the content field named the tags still read as they were.
        let v1 = PartHeader {
            content: PartContent::Sha256([4; 32]),
            ..header.clone()
        };
        let v1_bytes = v1.encode(&keys, &key);
        assert_eq!(&v1_bytes[..4], b"MPP1");
        assert_eq!(PartHeader::decode(&v1_bytes, &keys2, &key).unwrap(), v1);
        for i in 0..PART_HEADER_LEN {
            let mut altered = bytes;
            altered[i] ^= 0x40;
            assert!(matches!(
                PartHeader::decode(&altered, &keys2, &key),
                Err(StorageError::Integrity(_))
            ));
        }
        let other = ObjectKey::parse("uploads/2026/01/y").unwrap();
        assert!(UploadKeys::open(&keyring, &other, &sealed).is_err());
    }

    #[test]
    fn chunks_are_bound_to_index_finality_and_part() {
        let (keyring, key) = setup();
        let (keys, _) = UploadKeys::generate(&keyring, &key).unwrap();
        let one = PartNumber::new(1).unwrap();
        let cipher = keys
            .chunk_cipher(&key, one, &[9; 16], [8; 8], 100_000)
            .unwrap();
        assert_eq!(cipher.chunks(), 2);
        let mut chunk = b"hello".to_vec();
        chunk.resize(5 + TAG_LEN as usize, 0);
        cipher.seal_framed(0, &mut chunk).unwrap();
        assert!(cipher.open(0, &mut chunk.clone()).is_ok());
        assert!(cipher.open(1, &mut chunk.clone()).is_err());
        // Same bytes read as the last chunk of a one-chunk part: finality differs.
        let short = keys.chunk_cipher(&key, one, &[9; 16], [8; 8], 10).unwrap();
        assert!(short.open(0, &mut chunk.clone()).is_err());
        let two = PartNumber::new(2).unwrap();
        let other_part = keys
            .chunk_cipher(&key, two, &[9; 16], [8; 8], 100_000)
            .unwrap();
        assert!(other_part.open(0, &mut chunk.clone()).is_err());
    }

    #[test]
    fn layout_arithmetic() {
        assert_eq!(chunk_count(0), 1);
        assert_eq!(chunk_count(1), 1);
        assert_eq!(chunk_count(65_536), 1);
        assert_eq!(chunk_count(65_537), 2);
        assert_eq!(PartHeader::file_len(0), PART_HEADER_LEN as u64 + 16);
        assert_eq!(
            PartHeader::chunk_offset(2),
            PART_HEADER_LEN as u64 + 2 * 65_552
        );
    }
}
