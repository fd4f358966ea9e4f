//! Sealing of stored secrets (bucket S3 secret keys, TOTP seeds) with AES-256-GCM under the
//! master key, so a copy of the database alone reveals none of them.
//!
//! A sealed value is one byte string:
//!
//! ```text
//! b"MPS1" | key id (8 bytes) | nonce (12 bytes) | ciphertext (len of plaintext) | tag (16 bytes)
//! ```
//!
//! - `MPS1` names the format and its version.
//! - The key id is the master key's id (`KeyId`, 16 hex characters) as raw bytes. It is not
//!   secret; it says which key opens the value, so rotation can keep old keys for reading.
//! - The nonce is random. 96-bit random nonces are safe for about 2^32 seals under one key;
//!   we seal a value per user or bucket and on each rotation, far below that.
//! - The associated data (authenticated, not stored) is the table, row id and field the
//!   value belongs to, so a value copied to another row or column fails to open. It is
//!   encoded as `"medport-seal-v1"`, table, row id, field, each preceded by its length as
//!   8 bytes big-endian, so no two different places share an encoding.

use std::sync::Arc;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::SecretBox;
use secrecy::zeroize::Zeroize;

use crate::infra::crypto::keys::MasterKey;

const MAGIC: &[u8; 4] = b"MPS1";
const KEY_ID_LEN: usize = 8;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = MAGIC.len() + KEY_ID_LEN + NONCE_LEN;
const AAD_LABEL: &str = "medport-seal-v1";

/// What went wrong, without any key, plaintext or ciphertext in the message.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("sealed value is malformed (too short or not in the MPS1 format)")]
    Format,
    #[error("sealed value names a master key that is not configured")]
    UnknownKey,
    #[error(
        "sealed value failed authentication (altered, moved to another row or field, or wrong key)"
    )]
    Integrity,
    #[error("the system random number generator failed")]
    Random,
    #[error("the value could not be sealed")]
    Seal,
}

/// Where a sealed value lives. It is authenticated with the value, so the same bytes do
/// not open anywhere else.
#[derive(Debug, Clone, Copy)]
pub struct SealContext<'a> {
    pub table: &'a str,
    pub row_id: &'a str,
    pub field: &'a str,
}

impl SealContext<'_> {
    fn aad(&self) -> Vec<u8> {
        let parts = [AAD_LABEL, self.table, self.row_id, self.field];
        let mut out = Vec::with_capacity(parts.iter().map(|p| 8 + p.len()).sum());
        for part in parts {
            // usize is at most 64 bits on every supported target, so this is lossless.
            out.extend_from_slice(&(part.len() as u64).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out
    }
}

/// The current master key (used for every new seal) and the keys it replaced, kept so
/// values sealed before a rotation still open until they are re-sealed.
#[derive(Debug, Clone)]
pub struct Keyring {
    current: Arc<MasterKey>,
    previous: Vec<Arc<MasterKey>>,
}

impl Keyring {
    pub fn new(current: Arc<MasterKey>) -> Self {
        Self {
            current,
            previous: Vec::new(),
        }
    }

    pub fn with_previous(mut self, key: Arc<MasterKey>) -> Self {
        let known = std::iter::once(&self.current)
            .chain(&self.previous)
            .any(|k| k.id() == key.id());
        if !known {
            self.previous.push(key);
        }
        self
    }

    pub fn current(&self) -> &MasterKey {
        &self.current
    }

    fn find(&self, id: &[u8; KEY_ID_LEN]) -> Option<&MasterKey> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| key_id_bytes(k).as_ref() == Some(id))
            .map(|k| &**k)
    }
}

/// Seals `plaintext` for the place `ctx` under the current key.
pub fn seal(keyring: &Keyring, ctx: &SealContext, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
    let key = keyring.current();
    let key_id = key_id_bytes(key).ok_or(SealError::Seal)?;
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| SealError::Random)?;
    let aead = aead_key(key).ok_or(SealError::Seal)?;

    let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&key_id);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let sealed = aead.seal_in_place_separate_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(ctx.aad()),
        &mut out[HEADER_LEN..],
    );
    match sealed {
        Ok(tag) => {
            out.extend_from_slice(tag.as_ref());
            Ok(out)
        }
        Err(_) => {
            // Only a plaintext beyond GCM's size limit gets here; do not leave it behind.
            out.zeroize();
            Err(SealError::Seal)
        }
    }
}

/// Opens a value sealed for `ctx` with whichever configured key its key id names.
pub fn open(
    keyring: &Keyring,
    ctx: &SealContext,
    sealed: &[u8],
) -> Result<SecretBox<Vec<u8>>, SealError> {
    let parts = parse(sealed).ok_or(SealError::Format)?;
    let key = keyring.find(&parts.key_id).ok_or(SealError::UnknownKey)?;
    let aead = aead_key(key).ok_or(SealError::Integrity)?;
    let mut buffer = parts.body.to_vec();
    // On failure ring zeroes whatever it decrypted before the tag check.
    let plain_len = aead
        .open_in_place(
            Nonce::assume_unique_for_key(parts.nonce),
            Aad::from(ctx.aad()),
            &mut buffer,
        )
        .map_err(|_| SealError::Integrity)?
        .len();
    // Shrinking in place: no reallocation, so no stray copy of the plaintext.
    buffer.truncate(plain_len);
    Ok(SecretBox::new(Box::new(buffer)))
}

/// Opens a value and seals it again under the current key (for `medport keys rotate`).
pub fn reseal(keyring: &Keyring, ctx: &SealContext, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    let plaintext = open(keyring, ctx, sealed)?;
    seal(
        keyring,
        ctx,
        secrecy::ExposeSecret::expose_secret(&plaintext),
    )
}

/// The id (hex, as `KeyId::as_str`) of the key a value was sealed with, or `None` when the
/// bytes are not a sealed value.
pub fn sealed_key_id(sealed: &[u8]) -> Option<String> {
    parse(sealed).map(|parts| hex::encode(parts.key_id))
}

/// Whether a value is not sealed under the current key. Malformed values count as needing
/// it too, so a rotation reports them (when `reseal` fails) instead of skipping them.
pub fn needs_reseal(keyring: &Keyring, sealed: &[u8]) -> bool {
    match (parse(sealed), key_id_bytes(keyring.current())) {
        (Some(parts), Some(current)) => parts.key_id != current,
        _ => true,
    }
}

struct Parts<'a> {
    key_id: [u8; KEY_ID_LEN],
    nonce: [u8; NONCE_LEN],
    /// Ciphertext followed by the tag; at least the tag's length.
    body: &'a [u8],
}

fn parse(sealed: &[u8]) -> Option<Parts<'_>> {
    let rest = sealed.strip_prefix(MAGIC)?;
    let (key_id, rest) = rest.split_first_chunk::<KEY_ID_LEN>()?;
    let (nonce, body) = rest.split_first_chunk::<NONCE_LEN>()?;
    (body.len() >= TAG_LEN).then_some(Parts {
        key_id: *key_id,
        nonce: *nonce,
        body,
    })
}

fn key_id_bytes(key: &MasterKey) -> Option<[u8; KEY_ID_LEN]> {
    let mut id = [0u8; KEY_ID_LEN];
    hex::decode_to_slice(key.id().as_str(), &mut id).ok()?;
    Some(id)
}

fn aead_key(key: &MasterKey) -> Option<LessSafeKey> {
    // LessSafeKey because the nonce is random per seal rather than from a counter.
    UnboundKey::new(&AES_256_GCM, key.expose())
        .ok()
        .map(LessSafeKey::new)
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    const SECRET: &[u8] = b"s3 secret access key: wJalrXUtnFEMI/K7MDENG";

    fn key(byte: u8) -> Arc<MasterKey> {
        Arc::new(MasterKey::from_bytes([byte; 32]))
    }

    fn ctx<'a>(table: &'a str, row_id: &'a str, field: &'a str) -> SealContext<'a> {
        SealContext {
            table,
            row_id,
            field,
        }
    }

    fn here() -> SealContext<'static> {
        ctx(
            "buckets",
            "0190c3a2-7b1e-7c4d-9f00-000000000001",
            "s3_secret_key",
        )
    }

    #[test]
    fn round_trip() {
        let keyring = Keyring::new(key(1));
        let sealed = seal(&keyring, &here(), SECRET).unwrap();
        assert_eq!(sealed.len(), HEADER_LEN + SECRET.len() + TAG_LEN);
        assert!(sealed.starts_with(b"MPS1"));
        assert!(!sealed.windows(8).any(|w| SECRET.windows(8).any(|s| s == w)));
        let opened = open(&keyring, &here(), &sealed).unwrap();
        assert_eq!(opened.expose_secret().as_slice(), SECRET);

        let empty = seal(&keyring, &here(), b"").unwrap();
        assert_eq!(empty.len(), 40);
        assert!(
            open(&keyring, &here(), &empty)
                .unwrap()
                .expose_secret()
                .is_empty()
        );
    }

    #[test]
    fn a_value_moved_elsewhere_does_not_open() {
        let keyring = Keyring::new(key(1));
        let sealed = seal(&keyring, &ctx("users", "row-1", "totp_secret"), SECRET).unwrap();
        for elsewhere in [
            ctx("users", "row-2", "totp_secret"),
            ctx("users", "row-1", "recovery_codes"),
            ctx("buckets", "row-1", "totp_secret"),
            // Same concatenation, different boundaries.
            ctx("users", "row-1t", "otp_secret"),
            ctx("user", "srow-1", "totp_secret"),
        ] {
            assert!(
                matches!(
                    open(&keyring, &elsewhere, &sealed),
                    Err(SealError::Integrity)
                ),
                "{elsewhere:?}"
            );
        }
    }

    #[test]
    fn every_altered_byte_is_detected() {
        let keyring = Keyring::new(key(1));
        let sealed = seal(&keyring, &here(), SECRET).unwrap();
        for position in 0..sealed.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut altered = sealed.clone();
                altered[position] ^= flip;
                let result = open(&keyring, &here(), &altered);
                // The magic, then the key id (another id names no configured key), then
                // nonce, ciphertext and tag, which authentication covers.
                let expected_ok = match position {
                    0..4 => matches!(result, Err(SealError::Format)),
                    4..12 => matches!(result, Err(SealError::UnknownKey)),
                    _ => matches!(result, Err(SealError::Integrity)),
                };
                assert!(expected_ok, "byte {position} ^ {flip:#x}: {result:?}");
            }
        }
    }

    #[test]
    fn truncated_values_are_errors() {
        let keyring = Keyring::new(key(1));
        let sealed = seal(&keyring, &here(), SECRET).unwrap();
        for len in 0..=40 {
            let result = open(&keyring, &here(), &sealed[..len]);
            let expected = if len < 40 {
                matches!(result, Err(SealError::Format))
            } else {
                matches!(result, Err(SealError::Integrity))
            };
            assert!(expected, "length {len}: {result:?}");
        }
        assert!(matches!(
            open(&keyring, &here(), &sealed[..sealed.len() - 1]),
            Err(SealError::Integrity)
        ));
        let mut longer = sealed.clone();
        longer.push(0);
        assert!(open(&keyring, &here(), &longer).is_err());
    }

    #[test]
    fn rotation_keeps_old_values_readable_while_the_old_key_is_kept() {
        let old = key(1);
        let new = key(2);
        let before = Keyring::new(old.clone());
        let sealed = seal(&before, &here(), SECRET).unwrap();
        assert_eq!(sealed_key_id(&sealed).as_deref(), Some(old.id().as_str()));
        assert!(!needs_reseal(&before, &sealed));

        let after = Keyring::new(new.clone()).with_previous(old.clone());
        assert_eq!(after.current().id(), new.id());
        let opened = open(&after, &here(), &sealed).unwrap();
        assert_eq!(opened.expose_secret().as_slice(), SECRET);
        assert!(needs_reseal(&after, &sealed));

        let resealed = reseal(&after, &here(), &sealed).unwrap();
        assert_eq!(sealed_key_id(&resealed).as_deref(), Some(new.id().as_str()));
        assert!(!needs_reseal(&after, &resealed));

        let old_forgotten = Keyring::new(new);
        assert!(matches!(
            open(&old_forgotten, &here(), &sealed),
            Err(SealError::UnknownKey)
        ));
        assert_eq!(
            open(&old_forgotten, &here(), &resealed)
                .unwrap()
                .expose_secret()
                .as_slice(),
            SECRET
        );
    }

    #[test]
    fn a_wrong_key_with_a_forged_id_fails_authentication() {
        let right = Keyring::new(key(1));
        let wrong = Keyring::new(key(2));
        let mut sealed = seal(&right, &here(), SECRET).unwrap();
        let wrong_id = key_id_bytes(wrong.current()).unwrap();
        sealed[4..12].copy_from_slice(&wrong_id);
        assert!(matches!(
            open(&wrong, &here(), &sealed),
            Err(SealError::Integrity)
        ));
    }

    #[test]
    fn nonces_differ_between_seals() {
        let keyring = Keyring::new(key(1));
        let a = seal(&keyring, &here(), SECRET).unwrap();
        let b = seal(&keyring, &here(), SECRET).unwrap();
        assert_ne!(a[12..HEADER_LEN], b[12..HEADER_LEN]);
        assert_ne!(a, b);
    }

    #[test]
    fn malformed_values_have_no_key_id_and_need_reseal() {
        let keyring = Keyring::new(key(1));
        assert_eq!(sealed_key_id(b""), None);
        assert_eq!(sealed_key_id(&[0u8; 64]), None);
        assert!(needs_reseal(&keyring, b"MPS1"));
    }

    #[test]
    fn previous_keys_are_not_duplicated() {
        let keyring = Keyring::new(key(1))
            .with_previous(key(1))
            .with_previous(key(2))
            .with_previous(key(2));
        assert_eq!(keyring.previous.len(), 1);
    }

    #[test]
    fn errors_and_debug_show_no_secrets() {
        let keyring = Keyring::new(key(7));
        let shown = format!("{keyring:?}");
        assert!(!shown.contains(&hex::encode([7u8; 32])), "{shown}");
        let sealed = seal(&keyring, &here(), SECRET).unwrap();
        let mut altered = sealed.clone();
        altered[30] ^= 1;
        let error = open(&keyring, &here(), &altered).unwrap_err();
        let message = format!("{error} {error:?}");
        assert!(!message.contains("wJalr") && !message.contains(&hex::encode(&sealed[12..])));
    }
}
