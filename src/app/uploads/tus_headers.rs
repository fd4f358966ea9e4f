//! Parsers for the tus 1.0.0 request headers, and formatters for the response headers.
//!
//! Each parser takes the header value as text (a value that is not visible ASCII is refused
//! by the caller's `HeaderValue::to_str` before it gets here) and returns a typed value or a
//! [`TusHeaderError`] whose [`status`](TusHeaderError::status) is the answer tus prescribes.
//! Leading and trailing spaces/tabs are ignored, as HTTP field values exclude them;
//! anything else out of place is an error, never a guess.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use data_encoding::BASE64;

/// The only protocol version served.
pub const TUS_VERSION: &str = "1.0.0";
/// Value for `Tus-Checksum-Algorithm`.
pub const CHECKSUM_ALGORITHMS: &str = "sha1,sha256";
/// Longest accepted `Upload-Metadata` value, in bytes: room for a `relativePath` of
/// `RelativePath::MAX_BYTES` (5,464 bytes in base64) beside a long file name and the other
/// keys, so that such a path is judged by its own rule, not refused as a long header.
pub const MAX_METADATA_BYTES: usize = 8 * 1024;
/// Metadata keys whose values must be UTF-8 text (a value that is not would otherwise be
/// dropped, and the file stored outside its folder or batch without a word).
pub const TEXT_KEYS: &[&str] = &[
    "filename",
    "filetype",
    "bucket",
    "checksum",
    "relativePath",
    "batch",
];

const MAX_DIGITS: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TusHeaderError {
    /// `Tus-Resumable` is missing or not `1.0.0`: 412 with `Tus-Version`.
    #[error("Tus-Resumable must be {TUS_VERSION}")]
    UnsupportedVersion,
    /// `Upload-Checksum` names an algorithm we do not offer: 400 listing
    /// [`CHECKSUM_ALGORITHMS`].
    #[error("Upload-Checksum: unsupported algorithm; supported: {CHECKSUM_ALGORITHMS}")]
    UnsupportedChecksumAlgorithm,
    /// Any other malformed header: 400.
    #[error("{header}: {reason}")]
    Invalid {
        header: &'static str,
        reason: String,
    },
}

impl TusHeaderError {
    /// The status the tus protocol gives this error.
    pub fn status(&self) -> u16 {
        match self {
            Self::UnsupportedVersion => 412,
            Self::UnsupportedChecksumAlgorithm | Self::Invalid { .. } => 400,
        }
    }

    fn invalid(header: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            header,
            reason: reason.into(),
        }
    }
}

fn ows_trim(value: &str) -> &str {
    value.trim_matches([' ', '\t'])
}

/// `Tus-Resumable`: exactly `1.0.0`.
pub fn parse_tus_resumable(value: &str) -> Result<(), TusHeaderError> {
    if ows_trim(value) == TUS_VERSION {
        Ok(())
    } else {
        Err(TusHeaderError::UnsupportedVersion)
    }
}

/// `Upload-Offset`: a non-negative decimal integer.
pub fn parse_upload_offset(value: &str) -> Result<u64, TusHeaderError> {
    parse_u64("Upload-Offset", value)
}

/// `Upload-Length`: a non-negative decimal integer.
pub fn parse_upload_length(value: &str) -> Result<u64, TusHeaderError> {
    parse_u64("Upload-Length", value)
}

/// `Upload-Defer-Length`: only `1` is defined.
pub fn parse_upload_defer_length(value: &str) -> Result<(), TusHeaderError> {
    if ows_trim(value) == "1" {
        Ok(())
    } else {
        Err(TusHeaderError::invalid("Upload-Defer-Length", "must be 1"))
    }
}

/// Digits only (no sign, no spaces, no `0x`), 1 to 20 of them, within `u64`. Leading
/// zeros are accepted.
fn parse_u64(header: &'static str, value: &str) -> Result<u64, TusHeaderError> {
    let digits = ows_trim(value);
    if digits.is_empty() {
        return Err(TusHeaderError::invalid(header, "must not be empty"));
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TusHeaderError::invalid(
            header,
            "must be a non-negative decimal integer",
        ));
    }
    if digits.len() > MAX_DIGITS {
        return Err(TusHeaderError::invalid(header, "has too many digits"));
    }
    digits.bytes().try_fold(0u64, |acc, b| {
        acc.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or_else(|| TusHeaderError::invalid(header, "is too large"))
    })
}

/// Decoded `Upload-Metadata`: unique keys, each with its decoded value (empty when the
/// client sent the key alone). The values of [`TEXT_KEYS`] are valid UTF-8.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadMetadata(BTreeMap<String, Vec<u8>>);

impl UploadMetadata {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a pair, checking the key (non-empty visible ASCII without comma)
    /// and, for [`TEXT_KEYS`], that the value is UTF-8.
    pub fn insert(
        &mut self,
        key: impl Into<String>,
        value: impl Into<Vec<u8>>,
    ) -> Result<(), TusHeaderError> {
        let key = key.into();
        let value = value.into();
        check_key(&key)?;
        if TEXT_KEYS.contains(&key.as_str()) && std::str::from_utf8(&value).is_err() {
            return Err(TusHeaderError::invalid(
                "Upload-Metadata",
                format!("the value of {key} must be UTF-8 text"),
            ));
        }
        self.0.insert(key, value);
        Ok(())
    }

    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.0.get(key).map(Vec::as_slice)
    }

    /// The value as text, when it is UTF-8 (always so for [`TEXT_KEYS`]).
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|v| std::str::from_utf8(v).ok())
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }
}

fn check_key(key: &str) -> Result<(), TusHeaderError> {
    if key.is_empty() {
        return Err(TusHeaderError::invalid("Upload-Metadata", "empty key"));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
        return Err(TusHeaderError::invalid(
            "Upload-Metadata",
            "keys must be ASCII without spaces or commas",
        ));
    }
    Ok(())
}

/// `Upload-Metadata`: `key base64,key base64,key`. Pairs are separated by commas (spaces
/// around a pair are ignored), key and value by exactly one space; values are standard
/// base64 with padding; keys are unique. An empty header is an empty map.
pub fn parse_upload_metadata(value: &str) -> Result<UploadMetadata, TusHeaderError> {
    const H: &str = "Upload-Metadata";
    if value.len() > MAX_METADATA_BYTES {
        return Err(TusHeaderError::invalid(
            H,
            format!("is longer than {MAX_METADATA_BYTES} bytes"),
        ));
    }
    let mut metadata = UploadMetadata::new();
    let value = ows_trim(value);
    if value.is_empty() {
        return Ok(metadata);
    }
    for pair in value.split(',') {
        let pair = ows_trim(pair);
        let (key, encoded) = match pair.split_once(' ') {
            Some((key, encoded)) => (key, encoded),
            None => (pair, ""),
        };
        check_key(key)?;
        if encoded.contains([' ', '\t']) {
            return Err(TusHeaderError::invalid(
                H,
                format!("the pair for {key} has more than one space"),
            ));
        }
        let decoded = BASE64.decode(encoded.as_bytes()).map_err(|_| {
            TusHeaderError::invalid(H, format!("the value of {key} is not valid base64"))
        })?;
        if metadata.contains_key(key) {
            return Err(TusHeaderError::invalid(H, format!("duplicate key {key}")));
        }
        metadata.insert(key, decoded)?;
    }
    Ok(metadata)
}

/// `Upload-Metadata` for a response (or a test client): pairs in key order, a key alone
/// when its value is empty.
pub fn format_metadata(metadata: &UploadMetadata) -> String {
    metadata
        .iter()
        .map(|(key, value)| {
            if value.is_empty() {
                key.to_owned()
            } else {
                format!("{key} {}", BASE64.encode(value))
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChecksumAlgorithm {
    Sha1,
    Sha256,
}

impl ChecksumAlgorithm {
    /// Digest length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
        }
    }
}

/// A parsed `Upload-Checksum`: the algorithm and the raw digest of the request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadChecksum {
    pub algorithm: ChecksumAlgorithm,
    pub digest: Vec<u8>,
}

/// `Upload-Checksum`: `<algorithm> <base64 digest>`, algorithm `sha1` or `sha256` in any
/// case, digest of exactly that algorithm's length.
pub fn parse_upload_checksum(value: &str) -> Result<UploadChecksum, TusHeaderError> {
    const H: &str = "Upload-Checksum";
    let value = ows_trim(value);
    let Some((name, encoded)) = value.split_once(' ') else {
        return Err(TusHeaderError::invalid(
            H,
            "must be an algorithm and a base64 digest separated by a space",
        ));
    };
    let algorithm = if name.eq_ignore_ascii_case("sha1") {
        ChecksumAlgorithm::Sha1
    } else if name.eq_ignore_ascii_case("sha256") {
        ChecksumAlgorithm::Sha256
    } else {
        return Err(TusHeaderError::UnsupportedChecksumAlgorithm);
    };
    let digest = BASE64
        .decode(encoded.as_bytes())
        .map_err(|_| TusHeaderError::invalid(H, "the digest is not valid base64"))?;
    if digest.len() != algorithm.digest_len() {
        return Err(TusHeaderError::invalid(
            H,
            format!(
                "a {} digest has {} bytes, not {}",
                algorithm.name(),
                algorithm.digest_len(),
                digest.len()
            ),
        ));
    }
    Ok(UploadChecksum { algorithm, digest })
}

/// `Upload-Expires`: an RFC 7231 IMF-fixdate, e.g. `Wed, 25 Jun 2025 16:00:00 GMT`.
pub fn format_expires(at: DateTime<Utc>) -> String {
    at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

#[cfg(test)]
mod tests;
