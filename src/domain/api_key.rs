//! API keys for scripts: `mp_<prefix>_<secret>`, e.g.
//! `mp_k3x9q2ab_Zk4...` (52 characters). The 8-character prefix is not secret: it is stored in
//! the clear to find the key's row and shown in lists so people can tell keys apart. The
//! 40-character secret carries about 238 bits of randomness. Only the SHA-256 of the whole
//! key is stored, which is enough for a high-entropy key (no slow hash needed, unlike
//! passwords), and the key itself is shown once, at creation.

use std::fmt;

use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::FieldError;

const TAG: &str = "mp_";
const PREFIX_LEN: usize = 8;
const SECRET_LEN: usize = 40;
/// `mp_` + prefix + `_` + secret.
const KEY_LEN: usize = TAG.len() + PREFIX_LEN + 1 + SECRET_LEN;

const PREFIX_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    #[error("the system random number generator failed")]
    Random,
}

/// A whole API key. `Debug` shows only the prefix.
pub struct ApiKeySecret(SecretString);

impl ApiKeySecret {
    pub fn generate() -> Result<Self, ApiKeyError> {
        let rng = SystemRandom::new();
        let mut key = String::with_capacity(KEY_LEN);
        key.push_str(TAG);
        push_random(&rng, PREFIX_ALPHABET, PREFIX_LEN, &mut key)?;
        key.push('_');
        // Appended in place into a buffer of the final size: no reallocation or temporary
        // string leaves an unwiped heap copy of the secret (`SecretString` wipes this one).
        push_random(&rng, SECRET_ALPHABET, SECRET_LEN, &mut key)?;
        Ok(Self(SecretString::from(key)))
    }

    /// Accepts exactly the generated format, e.g. from an `Authorization: Bearer` header.
    pub fn parse(raw: &str) -> Option<Self> {
        // Checked first, so an oversized header is refused without being scanned or copied.
        if raw.len() != KEY_LEN {
            return None;
        }
        let rest = raw.strip_prefix(TAG)?;
        let (prefix, secret) = rest.split_at_checked(PREFIX_LEN)?;
        let secret = secret.strip_prefix('_')?;
        let valid = prefix.bytes().all(|b| PREFIX_ALPHABET.contains(&b))
            && secret.len() == SECRET_LEN
            && secret.bytes().all(|b| b.is_ascii_alphanumeric());
        valid.then(|| Self(SecretString::from(raw)))
    }

    /// The non-secret lookup part, e.g. `k3x9q2ab`.
    pub fn prefix(&self) -> &str {
        // Both constructors guarantee an ASCII key of KEY_LEN bytes.
        self.expose()
            .get(TAG.len()..TAG.len() + PREFIX_LEN)
            .unwrap_or_default()
    }

    /// The whole key, to show once at creation. Never log it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// What the database stores: SHA-256 of the whole key, lowercase hex.
    pub fn sha256_hex(&self) -> String {
        hex::encode(Sha256::digest(self.expose().as_bytes()))
    }
}

impl fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeySecret")
            .field("prefix", &self.prefix())
            .finish_non_exhaustive()
    }
}

/// Compares a stored hash with a candidate's in constant time, so response timing does not
/// reveal how many leading characters of a hash were right.
pub fn hashes_match(stored_hex: &str, candidate_hex: &str) -> bool {
    stored_hex.as_bytes().ct_eq(candidate_hex.as_bytes()).into()
}

/// Appends `count` uniform characters from `alphabet` (ASCII) to `out`. A random byte is used
/// only when it falls below the largest multiple of the alphabet size, so `byte % size` has
/// no bias towards the first letters.
fn push_random(
    rng: &SystemRandom,
    alphabet: &[u8],
    count: usize,
    out: &mut String,
) -> Result<(), ApiKeyError> {
    let size = alphabet.len();
    let limit = 256 - 256 % size;
    let target = out.len() + count;
    let mut buf = [0u8; 64];
    // Each round keeps most of its 64 bytes; a generator that keeps failing this is broken.
    for _ in 0..32 {
        if out.len() == target {
            return Ok(());
        }
        rng.fill(&mut buf).map_err(|_| ApiKeyError::Random)?;
        for &b in buf.iter().filter(|&&b| usize::from(b) < limit) {
            out.push(char::from(alphabet[usize::from(b) % size]));
            if out.len() == target {
                break;
            }
        }
    }
    if out.len() == target {
        Ok(())
    } else {
        Err(ApiKeyError::Random)
    }
}

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Create uploads over tus.
    Upload,
    /// Read the key owner's uploads and download their files.
    Read,
}

impl Scope {
    pub const ALL: [Scope; 2] = [Scope::Upload, Scope::Read];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Upload => "upload",
            Scope::Read => "read",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == raw)
    }

    fn bit(self) -> u8 {
        match self {
            Scope::Upload => 1,
            Scope::Read => 2,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes, stored as a comma-separated list.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u8);

impl Scopes {
    /// From a form or the command line, e.g. `upload,read`. Spaces around names and
    /// repeated names are tolerated; unknown names are not.
    pub fn parse_list(raw: &str) -> Result<Self, FieldError> {
        let mut scopes = Self::default();
        for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let scope = Scope::parse(name).ok_or_else(|| {
                // Echo a bounded amount of what was typed; it is shown back on the page.
                let shown: String = name.chars().take(32).collect();
                FieldError::new(
                    "scopes",
                    format!("has an unknown scope \"{shown}\"; the scopes are upload and read"),
                )
            })?;
            scopes.insert(scope);
        }
        if scopes.is_empty() {
            return Err(FieldError::new(
                "scopes",
                "must include at least one scope: upload or read",
            ));
        }
        Ok(scopes)
    }

    /// From our own database. Unknown names (say, a scope from a newer release) are skipped,
    /// which grants less, never more.
    pub fn from_db(stored: &str) -> Self {
        let mut scopes = Self::default();
        stored
            .split(',')
            .filter_map(|name| Scope::parse(name.trim()))
            .for_each(|scope| scopes.insert(scope));
        scopes
    }

    /// Sorted by name and comma-separated, e.g. `read,upload`, so equal sets store equally.
    pub fn to_db_string(&self) -> String {
        let mut names: Vec<&str> = self.iter().map(Scope::as_str).collect();
        names.sort_unstable();
        names.join(",")
    }

    pub fn contains(&self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn insert(&mut self, scope: Scope) {
        self.0 |= scope.bit();
    }

    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        Scope::ALL.into_iter().filter(|s| self.contains(*s))
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        let mut scopes = Self::default();
        iter.into_iter().for_each(|scope| scopes.insert(scope));
        scopes
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let key = ApiKeySecret::generate().unwrap();
        let text = key.expose();
        assert_eq!(text.len(), 52);
        assert!(text.starts_with("mp_"));
        assert_eq!(&text[11..12], "_");
        assert!(key.prefix().bytes().all(|b| PREFIX_ALPHABET.contains(&b)));
        assert_eq!(key.prefix(), &text[3..11]);
        let reparsed = ApiKeySecret::parse(text).unwrap();
        assert_eq!(reparsed.expose(), text);
        assert_eq!(reparsed.sha256_hex(), key.sha256_hex());
    }

    #[test]
    fn generated_keys_differ() {
        let keys: HashSet<String> = (0..50)
            .map(|_| ApiKeySecret::generate().unwrap().expose().to_string())
            .collect();
        assert_eq!(keys.len(), 50);
    }

    #[test]
    fn secret_characters_cover_the_whole_alphabet() {
        // 62 symbols over 4,000 draws: every one should appear (a miss is ~1e-26 likely).
        let rng = SystemRandom::new();
        let mut seen = HashSet::new();
        for _ in 0..100 {
            let mut drawn = String::new();
            push_random(&rng, SECRET_ALPHABET, 40, &mut drawn).unwrap();
            assert_eq!(drawn.len(), 40);
            seen.extend(drawn.bytes());
        }
        assert_eq!(seen.len(), SECRET_ALPHABET.len());
    }

    #[test]
    fn parse_accepts_only_the_exact_format() {
        let good = format!("mp_abcd1234_{}", "Aa0".repeat(13) + "Z");
        assert!(ApiKeySecret::parse(&good).is_some());
        for bad in [
            String::new(),
            good.to_uppercase(),
            format!(" {good}"),
            format!("{good}x"),
            good[..good.len() - 1].to_string(),
            good.replacen("mp_", "mq_", 1),
            good.replacen("abcd1234", "ABCD1234", 1),
            good.replacen("abcd1234_", "abcd1234-", 1),
            good.replacen('Z', "-", 1),
            good.replacen('Z', "é", 1),
            "x".repeat(10_000),
        ] {
            assert!(ApiKeySecret::parse(&bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn hashes_compare_in_constant_time_helper() {
        let key = ApiKeySecret::generate().unwrap();
        let hash = key.sha256_hex();
        assert_eq!(hash.len(), 64);
        assert!(hashes_match(&hash, &key.sha256_hex()));
        let other = ApiKeySecret::generate().unwrap().sha256_hex();
        assert!(!hashes_match(&hash, &other));
        assert!(!hashes_match(&hash, &hash[..63]));
        assert!(!hashes_match(&hash, ""));
    }

    #[test]
    fn debug_shows_only_the_prefix() {
        let key = ApiKeySecret::generate().unwrap();
        let shown = format!("{key:?}");
        assert!(shown.contains(key.prefix()));
        assert!(!shown.contains(&key.expose()[12..]), "{shown}");
    }

    #[test]
    fn scopes_parse_dedup_and_store_sorted() {
        let scopes = Scopes::parse_list("upload, read,upload").unwrap();
        assert!(scopes.contains(Scope::Upload) && scopes.contains(Scope::Read));
        assert_eq!(scopes.to_db_string(), "read,upload");
        let upload = Scopes::parse_list("upload").unwrap();
        assert!(!upload.contains(Scope::Read));
        assert_eq!(upload.to_db_string(), "upload");
        assert_eq!(format!("{upload:?}"), "{Upload}");
    }

    #[test]
    fn scopes_refuse_empty_and_unknown() {
        for empty in ["", " , ", ","] {
            let err = Scopes::parse_list(empty).unwrap_err();
            assert_eq!(err.field, "scopes");
            assert!(err.message.contains("at least one"), "{err}");
        }
        let err = Scopes::parse_list("upload,admin").unwrap_err();
        assert_eq!(
            err.message,
            "has an unknown scope \"admin\"; the scopes are upload and read"
        );
        assert!(Scopes::parse_list("Upload").is_err());
    }

    #[test]
    fn scopes_from_db_ignore_unknown_names() {
        let scopes = Scopes::from_db("read,delete-everything");
        assert!(scopes.contains(Scope::Read));
        assert!(!scopes.contains(Scope::Upload));
        assert!(Scopes::from_db("").is_empty());
        assert_eq!(
            Scopes::from_db(" upload ,read").to_db_string(),
            "read,upload"
        );
        assert_eq!(
            Scopes::from_db("read,upload"),
            [Scope::Upload, Scope::Read].into_iter().collect()
        );
    }
}
