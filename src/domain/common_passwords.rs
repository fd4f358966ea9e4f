//! The bundled list of common passwords, which new passwords must not be on.
//!
//! `common-passwords.txt` is Django's list, unchanged: the file
//! `django/contrib/auth/common-passwords.txt.gz` from the Django 5.2.19 wheel on PyPI,
//! decompressed (19,640 lowercase entries, one per line). Django is distributed under the
//! BSD-3-Clause licence. SHA-256 of the decompressed file:
//! `29ca0fa5303165f012f3e9775e3e95a3071cdd59f219973ec1cbb308d0214a6f` (checked by a test).

use std::collections::HashSet;
use std::sync::LazyLock;

static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("common-passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect()
});

/// Whether `candidate` is on the bundled list, ignoring letter case and surrounding spaces
/// (so `"Password1 "` counts as `password1`).
pub fn is_common(candidate: &str) -> bool {
    COMMON.contains(candidate.trim().to_lowercase().as_str())
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    #[test]
    fn common_list_is_loaded_and_case_insensitive() {
        assert!(COMMON.len() >= 10_000, "{}", COMMON.len());
        assert!(is_common("password"));
        assert!(is_common("PassWord123"));
        assert!(is_common(" Qwerty "));
        assert!(is_common("пароль"));
        assert!(!is_common("correct horse battery staple"));
        assert!(!is_common(""));
    }

    #[test]
    fn common_list_is_the_documented_file() {
        let digest = Sha256::digest(include_str!("common-passwords.txt").as_bytes());
        assert_eq!(
            hex::encode(digest),
            "29ca0fa5303165f012f3e9775e3e95a3071cdd59f219973ec1cbb308d0214a6f"
        );
    }
}
