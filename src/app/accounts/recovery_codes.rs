//! One-time recovery codes: ten per TOTP enrolment, for a user who has lost their
//! authenticator. Each code is shown once, as `xxxxx-xxxxx`, and stored only as a hash.
//!
//! The alphabet is lowercase letters and digits without `0`, `1`, `l` and `o`, so neither
//! half of the two pairs people misread remains. That leaves exactly 32 symbols: each
//! character carries 5 bits (50 bits per code), and masking a random byte to 5 bits picks
//! every symbol with the same probability.

use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";
const CODE_COUNT: usize = 10;
const CODE_LEN: usize = 10;
/// More entries than this in a stored set means the row is not ours.
const MAX_STORED: usize = 64;
const DOMAIN: &[u8] = b"medport-recovery-v1\0";

#[derive(Debug, thiserror::Error)]
pub enum RecoveryCodeError {
    #[error("the system random number generator failed")]
    Random,
}

/// Ten new codes, distinct, formatted for display (`abcde-fghij`).
pub fn generate() -> Result<Vec<String>, RecoveryCodeError> {
    let rng = SystemRandom::new();
    let mut codes: Vec<String> = Vec::with_capacity(CODE_COUNT);
    // A repeat is astronomically unlikely at 50 bits, but costs nothing to rule out.
    while codes.len() < CODE_COUNT {
        let mut random = [0u8; CODE_LEN];
        rng.fill(&mut random)
            .map_err(|_| RecoveryCodeError::Random)?;
        let mut code = String::with_capacity(CODE_LEN + 1);
        for (i, byte) in random.iter().enumerate() {
            if i == CODE_LEN / 2 {
                code.push('-');
            }
            code.push(char::from(ALPHABET[usize::from(byte & 0x1f)]));
        }
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    Ok(codes)
}

/// The form a code is hashed in: lower case, without spaces or hyphens, so `ABCDE FGHIJ`
/// and `abcde-fghij` are the same code. Other whitespace (a tab or line break pasted along
/// with it) is removed too.
pub fn normalize(input: &str) -> String {
    input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// SHA-256 (hex) of the normalised code, with a domain prefix so the hash cannot be
/// mistaken for any other SHA-256 the application stores.
///
/// A fast unsalted hash is acceptable here, unlike for passwords, because the codes are
/// random with 50 bits each: there is no dictionary to try, and a stolen hash is only the
/// second factor; signing in still needs the user's password (bcrypt).
pub fn hash(code: &str) -> String {
    let digest = Sha256::new()
        .chain_update(DOMAIN)
        .chain_update(normalize(code).as_bytes())
        .finalize();
    hex::encode(digest)
}

/// The hashes of a user's unused codes, as stored in `users.recovery_codes` (a JSON array
/// of hex strings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCodes(Vec<String>);

impl StoredCodes {
    pub fn from_codes(codes: &[String]) -> Self {
        Self(codes.iter().map(|code| hash(code)).collect())
    }

    pub fn to_json(&self) -> String {
        serde_json::Value::from(self.0.clone()).to_string()
    }

    /// `None` when the text is not a JSON array of SHA-256 hex strings: a damaged row
    /// offers no recovery codes rather than odd matches.
    pub fn from_json(json: &str) -> Option<Self> {
        let hashes: Vec<String> = serde_json::from_str(json).ok()?;
        let well_formed = hashes.len() <= MAX_STORED
            && hashes.iter().all(|h| {
                h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            });
        well_formed.then_some(Self(hashes))
    }

    pub fn remaining(&self) -> usize {
        self.0.len()
    }

    /// If `candidate` is one of the codes, the set without it; the caller writes that back
    /// in the same transaction as the sign-in, so each code works once. Every stored hash
    /// is compared in constant time, without stopping at a match.
    pub fn consume(&self, candidate: &str) -> Option<Self> {
        let wanted = hash(candidate);
        let mut found = Choice::from(0);
        let mut index: u64 = 0;
        for (i, stored) in (0u64..).zip(&self.0) {
            let is_match = stored.as_bytes().ct_eq(wanted.as_bytes());
            index.conditional_assign(&i, is_match);
            found |= is_match;
        }
        if !bool::from(found) {
            return None;
        }
        let rest = (0u64..)
            .zip(&self.0)
            .filter(|(i, _)| *i != index)
            .map(|(_, h)| h.clone())
            .collect();
        Some(Self(rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_distinct_codes_in_display_format() {
        let codes = generate().unwrap();
        assert_eq!(codes.len(), 10);
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 10);
        for code in &codes {
            let (left, right) = code.split_once('-').unwrap();
            assert_eq!((left.len(), right.len()), (5, 5), "{code}");
            assert!(
                left.bytes()
                    .chain(right.bytes())
                    .all(|b| ALPHABET.contains(&b)),
                "{code}"
            );
        }
    }

    #[test]
    fn alphabet_is_32_unambiguous_symbols() {
        let mut symbols = ALPHABET.to_vec();
        symbols.sort_unstable();
        symbols.dedup();
        assert_eq!(symbols.len(), 32);
        for confusable in b"01lo" {
            assert!(!symbols.contains(confusable));
        }
    }

    #[test]
    fn normalisation_accepts_case_spaces_and_hyphens() {
        assert_eq!(normalize(" ABCDE fghij "), "abcdefghij");
        assert_eq!(normalize("abcde-fghij"), "abcdefghij");
        assert_eq!(normalize("ab cde\t-fg hij\n"), "abcdefghij");
        assert_eq!(hash("ABCDE FGHIJ"), hash("abcde-fghij"));
        assert_ne!(hash("abcde-fghij"), hash("abcde-fghik"));
        let digest = hash("abcde-fghij");
        assert_eq!(digest.len(), 64);
        // Domain-separated: not the plain SHA-256 of the code.
        assert_ne!(digest, hex::encode(Sha256::digest(b"abcdefghij")));
    }

    #[test]
    fn each_code_works_once() {
        let codes = generate().unwrap();
        let stored = StoredCodes::from_codes(&codes);
        assert_eq!(stored.remaining(), 10);
        let typed = codes[3].to_uppercase().replace('-', " ");
        let after = stored.consume(&typed).unwrap();
        assert_eq!(after.remaining(), 9);
        assert!(after.consume(&codes[3]).is_none());
        let after = after.consume(&codes[9]).unwrap();
        assert_eq!(after.remaining(), 8);
        assert!(after.consume(&codes[0]).is_some());
    }

    #[test]
    fn wrong_codes_are_refused() {
        let stored = StoredCodes::from_codes(&generate().unwrap());
        for wrong in ["", "abcde-fghij", "123456", "not a code at all"] {
            assert!(stored.consume(wrong).is_none(), "{wrong}");
        }
        assert!(StoredCodes::from_codes(&[]).consume("").is_none());
    }

    #[test]
    fn json_round_trip_and_damaged_rows() {
        let stored = StoredCodes::from_codes(&generate().unwrap());
        let json = stored.to_json();
        assert!(json.starts_with("[\""), "{json}");
        assert_eq!(StoredCodes::from_json(&json), Some(stored));
        assert_eq!(StoredCodes::from_json("[]").unwrap().remaining(), 0);
        for bad in [
            "",
            "{}",
            "[1]",
            "[\"abc\"]",
            "null",
            &format!("[\"{}\"]", "A".repeat(64)),
        ] {
            assert!(StoredCodes::from_json(bad).is_none(), "{bad}");
        }
    }
}
