//! Where a file sat inside the folder a user dropped (`CD/PT000000/ST000000/IM000000`).
//!
//! It is a label shown on the study page and used for names inside a study's ZIP; it is
//! never a storage key. Harmless differences are normalised (backslashes, `.` components,
//! doubled or leading/trailing slashes, Unicode form); anything that could climb out of the
//! folder or lie about itself is refused.

use unicode_normalization::UnicodeNormalization;

use super::FieldError;

const FIELD: &str = "relativePath";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RelativePath(String);

impl RelativePath {
    /// Longest accepted path, in bytes of UTF-8 (PATH_MAX on Linux).
    pub const MAX_BYTES: usize = 4096;
    /// Longest component, in bytes (NAME_MAX).
    const MAX_COMPONENT: usize = 255;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let too_long =
            || FieldError::new(FIELD, format!("is longer than {} bytes", Self::MAX_BYTES));
        // Checked before and after normalising: NFC lengthens the few characters that only
        // decompose, and the rule is about the path that is kept.
        if raw.len() > Self::MAX_BYTES {
            return Err(too_long());
        }
        if raw.chars().any(|c| c.is_control()) {
            return Err(FieldError::new(FIELD, "contains control characters"));
        }
        let unified: String = raw.nfc().collect::<String>().replace('\\', "/");
        let bytes = unified.as_bytes();
        let drive = bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':';
        if unified.starts_with('/') || drive {
            return Err(FieldError::new(FIELD, "must be relative to the folder"));
        }
        let mut parts = Vec::new();
        for part in unified.split('/') {
            match part {
                "" | "." => continue,
                ".." => return Err(FieldError::new(FIELD, "must not contain `..`")),
                _ if part.len() > Self::MAX_COMPONENT => {
                    return Err(FieldError::new(
                        FIELD,
                        format!("has a name longer than {} bytes", Self::MAX_COMPONENT),
                    ));
                }
                _ => parts.push(part),
            }
        }
        if parts.is_empty() {
            return Err(FieldError::new(FIELD, "must name a file"));
        }
        let path = parts.join("/");
        if path.len() > Self::MAX_BYTES {
            return Err(too_long());
        }
        Ok(Self(path))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The folder part, without the file name (`""` at the top).
    pub fn parent(&self) -> &str {
        self.0.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("")
    }

    /// A trusted value read back from the database.
    pub fn from_db(value: String) -> Self {
        Self(value)
    }
}

impl std::fmt::Display for RelativePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(raw: &str) -> String {
        RelativePath::parse(raw).unwrap().as_str().to_string()
    }

    #[test]
    fn harmless_differences_are_normalised() {
        assert_eq!(parsed("CD/PT000000/IM000000"), "CD/PT000000/IM000000");
        assert_eq!(parsed("CD\\PT000000\\IM000000"), "CD/PT000000/IM000000");
        assert_eq!(parsed("CD//./a/"), "CD/a");
        assert_eq!(parsed("Cafe\u{301}/x"), "Caf\u{e9}/x");
    }

    #[test]
    fn paths_that_climb_are_absolute_or_hide_things_are_refused() {
        let long = "a/".repeat(2049);
        let wide = "a".repeat(256);
        for bad in [
            "../etc/passwd",
            "CD/../../x",
            "CD\\..\\x",
            "/etc/passwd",
            "\\\\server\\share\\x",
            "C:\\Windows\\x",
            "c:x",
            "a/b\u{0}c",
            "a/\nb",
            "",
            "./",
            long.as_str(),
            wide.as_str(),
        ] {
            assert!(RelativePath::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_length_limit_holds_for_the_normalised_path() {
        // U+0958 has no composed form: NFC turns its 3 bytes into 6.
        let component = "\u{958}".repeat(42);
        let raw = vec![component.as_str(); 32].join("/");
        assert!(raw.len() <= RelativePath::MAX_BYTES);
        assert!(RelativePath::parse(&raw).is_err());
        let fits = vec![component.as_str(); 16].join("/");
        assert!(RelativePath::parse(&fits).unwrap().as_str().len() <= RelativePath::MAX_BYTES);
    }

    #[test]
    fn the_parent_is_the_folder() {
        let path = RelativePath::parse("CD/DICOMDIR").unwrap();
        assert_eq!(path.parent(), "CD");
        assert_eq!(RelativePath::parse("DICOMDIR").unwrap().parent(), "");
    }
}
