//! Byte ranges for partial downloads, and the HTTP `Range` header parser.

/// A byte range of an object: `start` to `end_inclusive`, or to the end when `None`.
/// An `end_inclusive` past the end of the object is clamped to it, as HTTP does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end_inclusive: Option<u64>,
}

/// Why a `Range` header cannot be used. Per RFC 9110 a malformed or multi-range header may
/// be ignored (answer with the whole object); an unsatisfiable one gets 416.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("malformed or unsupported Range header")]
    Malformed,
    #[error("range not satisfiable")]
    Unsatisfiable,
}

impl ByteRange {
    pub fn from(start: u64) -> Self {
        Self {
            start,
            end_inclusive: None,
        }
    }

    pub fn inclusive(start: u64, end_inclusive: u64) -> Self {
        Self {
            start,
            end_inclusive: Some(end_inclusive),
        }
    }

    /// Parses a single-range header value (`bytes=a-b`, `bytes=a-`, `bytes=-n`) against an
    /// object of `size` bytes. The result is always concrete (`end_inclusive` set, within the
    /// object), so it can be turned into `Content-Range` directly.
    pub fn parse_http(header: &str, size: u64) -> Result<Self, RangeError> {
        let spec = header
            .trim()
            .strip_prefix("bytes=")
            .ok_or(RangeError::Malformed)?
            .trim();
        let (first, last) = spec.split_once('-').ok_or(RangeError::Malformed)?;
        let number = |s: &str| -> Result<Option<u64>, RangeError> {
            if s.is_empty() {
                Ok(None)
            } else if s.bytes().all(|b| b.is_ascii_digit()) {
                // Digits only but too large for u64: still a position past any object.
                Ok(Some(s.parse().unwrap_or(u64::MAX)))
            } else {
                Err(RangeError::Malformed)
            }
        };
        let range = match (number(first)?, number(last)?) {
            (Some(start), None) => Self::from(start),
            (Some(start), Some(end)) if end >= start => Self::inclusive(start, end),
            (Some(_), Some(_)) | (None, None) => return Err(RangeError::Malformed),
            (None, Some(0)) => return Err(RangeError::Unsatisfiable),
            (None, Some(suffix)) => Self::from(size.saturating_sub(suffix)),
        };
        let (start, end) = range.resolve(size)?;
        Ok(Self::inclusive(start, end))
    }

    /// The first and last byte positions this range covers in an object of `size` bytes.
    pub fn resolve(&self, size: u64) -> Result<(u64, u64), RangeError> {
        let last = size.checked_sub(1).ok_or(RangeError::Unsatisfiable)?;
        let end = self.end_inclusive.map_or(last, |end| end.min(last));
        if self.start > end {
            return Err(RangeError::Unsatisfiable);
        }
        Ok((self.start, end))
    }

    /// The value of a `Range` request header (for S3 `GetObject`).
    pub fn to_http(&self) -> String {
        match self.end_inclusive {
            Some(end) => format!("bytes={}-{end}", self.start),
            None => format!("bytes={}-", self.start),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms() {
        let r = |h| ByteRange::parse_http(h, 100);
        assert_eq!(r("bytes=0-0"), Ok(ByteRange::inclusive(0, 0)));
        assert_eq!(r("bytes=10-19"), Ok(ByteRange::inclusive(10, 19)));
        assert_eq!(r("bytes=90-1000"), Ok(ByteRange::inclusive(90, 99)));
        assert_eq!(r("bytes=50-"), Ok(ByteRange::inclusive(50, 99)));
        assert_eq!(r("bytes=-10"), Ok(ByteRange::inclusive(90, 99)));
        assert_eq!(r("bytes=-1000"), Ok(ByteRange::inclusive(0, 99)));
        assert_eq!(r(" bytes=99-99 "), Ok(ByteRange::inclusive(99, 99)));
        let huge = format!("bytes=0-{}", "9".repeat(40));
        assert_eq!(r(&huge), Ok(ByteRange::inclusive(0, 99)));
    }

    #[test]
    fn unsatisfiable_and_malformed_are_told_apart() {
        let r = |h| ByteRange::parse_http(h, 100);
        for unsatisfiable in ["bytes=100-", "bytes=100-200", "bytes=-0"] {
            assert_eq!(
                r(unsatisfiable),
                Err(RangeError::Unsatisfiable),
                "{unsatisfiable}"
            );
        }
        assert_eq!(
            ByteRange::parse_http("bytes=0-", 0),
            Err(RangeError::Unsatisfiable)
        );
        assert_eq!(
            ByteRange::parse_http("bytes=-5", 0),
            Err(RangeError::Unsatisfiable)
        );
        for malformed in [
            "",
            "bytes=",
            "bytes=-",
            "bytes=5-4",
            "bytes=a-b",
            "bytes=0-1,5-6",
            "bytes=+1-2",
            "items=0-1",
            "bytes 0-1",
        ] {
            assert_eq!(r(malformed), Err(RangeError::Malformed), "{malformed:?}");
        }
    }

    #[test]
    fn resolve_and_header_round_trip() {
        assert_eq!(ByteRange::from(3).resolve(10), Ok((3, 9)));
        assert_eq!(ByteRange::inclusive(3, 4).resolve(10), Ok((3, 4)));
        assert_eq!(
            ByteRange::inclusive(5, 4).resolve(10),
            Err(RangeError::Unsatisfiable)
        );
        assert_eq!(ByteRange::inclusive(3, 4).to_http(), "bytes=3-4");
        assert_eq!(ByteRange::from(3).to_http(), "bytes=3-");
    }
}
