//! Blind indexes: a keyed HMAC-SHA256 of an exact value, so a sealed attribute can be
//! matched by equality without being stored in the clear.
//!
//! The HMAC key is derived from the master key (HMAC of a fixed label under it), never the
//! master key itself, so the index key and the sealing key are distinct. Each field gets its
//! own input prefix, so equal values in different fields do not share an index. Without the
//! master key the index reveals only which rows hold equal values (its purpose).

use ring::hmac;

use crate::infra::crypto::keys::MasterKey;

const LABEL: &[u8] = b"medport blind index v1";

/// The blind index key of one master key.
pub struct BlindKey {
    key: hmac::Key,
    key_id: String,
}

impl BlindKey {
    pub fn of(master: &MasterKey) -> Self {
        let root = hmac::Key::new(hmac::HMAC_SHA256, master.expose());
        let derived = hmac::sign(&root, LABEL);
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
            key_id: master.id().as_str().to_string(),
        }
    }

    /// The id of the master key this key was derived from (stored beside each index).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The index of `value` in `field`, as 64 hex characters.
    pub fn index(&self, field: &str, value: &str) -> String {
        let mut ctx = hmac::Context::with_key(&self.key);
        // Length-prefixed, so no (field, value) pair shares its input with another.
        ctx.update(&(field.len() as u64).to_be_bytes());
        ctx.update(field.as_bytes());
        ctx.update(value.as_bytes());
        hex::encode(ctx.sign().as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_match_and_fields_and_keys_separate_them() {
        let a = BlindKey::of(&MasterKey::from_bytes([1; 32]));
        let b = BlindKey::of(&MasterKey::from_bytes([2; 32]));
        assert_eq!(a.index("patient_id", "P1"), a.index("patient_id", "P1"));
        assert_ne!(a.index("patient_id", "P1"), a.index("patient_id", "P2"));
        assert_ne!(a.index("patient_id", "P1"), a.index("accession", "P1"));
        assert_ne!(a.index("patient_id", "P1"), b.index("patient_id", "P1"));
        assert_eq!(a.index("patient_id", "P1").len(), 64);
        assert!(!a.index("patient_id", "P1").contains("P1"));
    }
}
