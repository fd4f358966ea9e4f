//! A DICOM unique identifier as it may appear in a URL: `1.2.840.10008...` (PS3.5 9.1).

/// Digits and dots, at most 64 characters, no empty component, no leading zero in a
/// component of more than one digit. Checked before any lookup, so a path like
/// `/studies/../x` or a 10 KB id never reaches the database.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DicomUid(String);

impl DicomUid {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Option<Self> {
        let ok = !raw.is_empty()
            && raw.len() <= Self::MAX_LEN
            && raw.split('.').all(|part| {
                !part.is_empty()
                    && part.bytes().all(|b| b.is_ascii_digit())
                    && (part.len() == 1 || !part.starts_with('0'))
            });
        ok.then(|| Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DicomUid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_uids_and_nothing_that_could_be_a_path() {
        for good in ["1.2.840.10008.1.3.10", "2.25.0", "1"] {
            assert!(DicomUid::parse(good).is_some(), "{good}");
        }
        let long = format!("1.{}", "2".repeat(63));
        for bad in [
            "", ".", "1..2", "1.2.", ".1.2", "1.02", "1.2a", "../x", "1/2", " 1.2", &long,
        ] {
            assert!(DicomUid::parse(bad).is_none(), "{bad:?}");
        }
    }
}
