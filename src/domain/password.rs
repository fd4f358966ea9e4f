//! Passwords, under the rules of NIST SP 800-63B: length matters, composition rules do not.
//! A new password needs 15+ characters (8+ once the account has TOTP), at most 64, is not on
//! the bundled common-password list and is not the user's email address.
//!
//! Every password is normalised to Unicode NFKC before anything else, as NIST asks, so the
//! same passphrase typed on different keyboards (precomposed "é" or "e" + accent, full-width
//! letters, ligatures) is one password. The normalised form is what gets hashed and stored;
//! [`Password::for_login`] applies the same normalisation to a sign-in attempt so the two
//! compare equal.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use unicode_normalization::UnicodeNormalization;

use super::FieldError;
use super::email::Email;
use crate::domain::common_passwords::is_common;

/// A normalised password. Never printed: `Debug` shows `[REDACTED]`, and there is no
/// `Display`.
pub struct Password(SecretString);

/// Account facts that change the rules for a new password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PasswordPolicy {
    /// A second factor makes a shorter memorised secret acceptable (NIST's 8-character
    /// floor for passwords used with MFA).
    pub totp_enabled: bool,
}

impl Password {
    pub const MIN_CHARS: usize = 15;
    pub const MIN_CHARS_WITH_TOTP: usize = 8;
    pub const MAX_CHARS: usize = 64;
    /// bcrypt reads at most 72 bytes of key *including* a terminating NUL byte, and the
    /// `bcrypt` crate's non-truncating functions refuse any input of 72 bytes or more. So 71
    /// bytes is the longest password that is hashed in full; anything longer would be
    /// silently cut (and two passwords sharing their first 72 bytes would be the same).
    pub const MAX_BYTES: usize = 71;
    /// Inputs longer than this are refused before normalising them. Generous: NFKC can
    /// shrink text (combining sequences compose), but never by this much for a password that
    /// then fits in `MAX_BYTES`.
    const MAX_INPUT_BYTES: usize = 1024;

    /// Checks a password being set (account creation, change, reset).
    pub fn parse_new(raw: &str, email: &Email, policy: PasswordPolicy) -> Result<Self, FieldError> {
        if raw.len() > Self::MAX_INPUT_BYTES {
            return Err(invalid(too_long_message()));
        }
        let normalised = normalise(raw);

        let chars = normalised.chars().count();
        let min = if policy.totp_enabled {
            Self::MIN_CHARS_WITH_TOTP
        } else {
            Self::MIN_CHARS
        };
        if chars < min {
            return Err(invalid(format!(
                "must be at least {min} characters long (yours has {chars})"
            )));
        }
        if chars > Self::MAX_CHARS || normalised.len() > Self::MAX_BYTES {
            return Err(invalid(too_long_message()));
        }
        if normalised.chars().all(char::is_whitespace) {
            return Err(invalid("must not be only spaces"));
        }
        // Control characters cannot be typed into a sign-in form, and NUL bytes would let
        // different passwords hash alike: bcrypt ends the key with a NUL and repeats it, so
        // `pw` and `pw\0pw` give the same key.
        if normalised.chars().any(char::is_control) {
            return Err(invalid(
                "must not contain control characters such as tabs or line breaks",
            ));
        }

        let folded = normalised.to_lowercase();
        let address = normalise(email.as_str()).to_lowercase();
        let local = normalise(email.local_part()).to_lowercase();
        if folded == address {
            return Err(invalid("must not be your email address"));
        }
        if folded == local {
            return Err(invalid(
                "must not be the part of your email address before the @",
            ));
        }
        if folded.contains(&address) {
            return Err(invalid("must not contain your email address"));
        }
        if is_common(&normalised) {
            return Err(invalid(
                "is one of the most commonly used passwords; choose another",
            ));
        }
        Ok(Self(SecretString::from(normalised)))
    }

    /// A sign-in attempt: no rules, only the same NFKC normalisation as [`Password::parse_new`],
    /// so a password compares equal to the form stored when it was set. Length is not checked
    /// here; the hash comparison refuses anything too long to have been stored.
    pub fn for_login(raw: &str) -> Self {
        Self(SecretString::from(normalise(raw)))
    }

    /// The normalised password, for hashing. Keep the borrow short and never log it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([REDACTED])")
    }
}

/// A refusal of this field, worded for the person filling in the form.
fn invalid(message: impl Into<String>) -> FieldError {
    FieldError::new("password", message)
}

fn normalise(raw: &str) -> String {
    raw.nfkc().collect()
}

fn too_long_message() -> String {
    format!(
        "is too long: at most {} characters ({} bytes; some accented or non-Latin characters \
         count as 2–4 bytes)",
        Password::MAX_CHARS,
        Password::MAX_BYTES
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: PasswordPolicy = PasswordPolicy {
        totp_enabled: false,
    };
    const WITH_TOTP: PasswordPolicy = PasswordPolicy { totp_enabled: true };

    fn email() -> Email {
        Email::parse("Dr.Jane.Doe@Clinic.example").unwrap()
    }

    fn message(raw: &str, policy: PasswordPolicy) -> String {
        let err = Password::parse_new(raw, &email(), policy).unwrap_err();
        assert_eq!(err.field, "password");
        err.message
    }

    #[test]
    fn accepts_a_long_passphrase_without_composition_rules() {
        let pw = Password::parse_new("correct horse battery staple", &email(), PLAIN).unwrap();
        assert_eq!(pw.expose(), "correct horse battery staple");
    }

    #[test]
    fn too_short_says_how_long_it_is() {
        assert_eq!(
            message("abcdefghi", PLAIN),
            "must be at least 15 characters long (yours has 9)"
        );
        assert_eq!(
            message("", PLAIN),
            "must be at least 15 characters long (yours has 0)"
        );
    }

    #[test]
    fn totp_lowers_the_minimum_to_eight() {
        assert!(Password::parse_new("zq8-Lm4!", &email(), WITH_TOTP).is_ok());
        assert_eq!(
            message("zq8-Lm4", WITH_TOTP),
            "must be at least 8 characters long (yours has 7)"
        );
        assert!(message("zq8-Lm4!", PLAIN).contains("at least 15"));
    }

    #[test]
    fn common_passwords_are_refused_in_any_case() {
        let expected = "is one of the most commonly used passwords; choose another";
        assert_eq!(message("PassWord", WITH_TOTP), expected);
        assert_eq!(message("1q2w3e4r5t6y7u8i9o0p", PLAIN), expected);
        // Full-width letters normalise to ASCII, so they do not dodge the list.
        assert_eq!(
            message("\u{ff30}\u{ff41}\u{ff53}\u{ff53}word", WITH_TOTP),
            expected
        );
    }

    #[test]
    fn the_users_email_is_refused() {
        assert_eq!(
            message("DR.JANE.DOE@clinic.example", PLAIN),
            "must not be your email address"
        );
        assert_eq!(
            message("my dr.jane.doe@clinic.example pw", PLAIN),
            "must not contain your email address"
        );
        let long = Email::parse("jane.doe.radiology@clinic.example").unwrap();
        let err = Password::parse_new("Jane.Doe.Radiology", &long, PLAIN).unwrap_err();
        assert_eq!(
            err.message,
            "must not be the part of your email address before the @"
        );
    }

    #[test]
    fn whitespace_only_and_control_characters_are_refused() {
        assert_eq!(message(&" ".repeat(20), PLAIN), "must not be only spaces");
        assert!(message("correct horse\tbattery staple", PLAIN).contains("control characters"));
        assert!(message("correct horse\0battery staple", PLAIN).contains("control characters"));
    }

    #[test]
    fn length_limits_count_characters_and_bytes() {
        let too_long = message(&"é".repeat(64), PLAIN);
        assert!(
            too_long.starts_with("is too long: at most 64 characters"),
            "{too_long}"
        );
        assert!(too_long.contains("2–4 bytes"), "{too_long}");
        assert!(message(&"x7".repeat(36), PLAIN).starts_with("is too long"));
        assert!(Password::parse_new(&format!("{}z", "x7y".repeat(21)), &email(), PLAIN).is_ok());

        // 23 three-byte characters and 2 ASCII ones: 25 characters, exactly 71 bytes.
        let at_limit = format!("{}ab", "€".repeat(23));
        assert_eq!(at_limit.len(), Password::MAX_BYTES);
        assert!(Password::parse_new(&at_limit, &email(), PLAIN).is_ok());
        // 24 characters, 72 bytes: what bcrypt cannot take whole (see MAX_BYTES).
        assert!(message(&"€".repeat(24), PLAIN).starts_with("is too long"));
        assert!(message(&format!("{}a", "€".repeat(24)), PLAIN).starts_with("is too long"));
        assert!(message(&"a".repeat(100_000), PLAIN).starts_with("is too long"));
    }

    #[test]
    fn compatibility_characters_normalise_to_one_password() {
        // U+FB01 is the "fi" ligature, U+2460 a circled digit one.
        let ligature =
            Password::parse_new("a \u{fb01}ne winter \u{2460}", &email(), PLAIN).unwrap();
        let plain = Password::for_login("a fine winter 1");
        assert_eq!(ligature.expose(), plain.expose());
        let decomposed = Password::for_login("cafe\u{301} au lait, s'il vous plaît");
        let composed = Password::for_login("caf\u{e9} au lait, s'il vous plaît");
        assert_eq!(decomposed.expose(), composed.expose());
    }

    #[test]
    fn debug_never_shows_the_password() {
        let pw = Password::for_login("hunter2-but-longer");
        let shown = format!("{pw:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(shown, "Password([REDACTED])");
    }
}
