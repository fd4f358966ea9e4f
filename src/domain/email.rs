//! Email addresses, which are also sign-in names. They are stored folded (NFC, lowercase) so
//! that `Alice@Example.org` and `alice@example.org` are one account, and a unique index on
//! the stored value is enough to prevent duplicates.
//!
//! The accepted syntax is deliberately narrower than RFC 5322: no quoted local parts,
//! comments or IP-literal domains. Those never appear in real clinicians' addresses and are
//! where parsers disagree, which matters for a value that also ends up in mail headers.

use std::fmt;

use unicode_normalization::UnicodeNormalization;

use super::FieldError;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

/// Characters that only appear in quoted or commented addresses, or that separate addresses
/// in a header. A backslash is only meaningful inside quotes.
const FORBIDDEN: &[char] = &['<', '>', '(', ')', '[', ']', ',', ';', ':', '\\', '"'];

impl Email {
    /// RFC 5321 limits: 254 for a whole address in a path, 64 for the local part.
    pub const MAX_LEN: usize = 254;
    pub const MAX_LOCAL_LEN: usize = 64;
    /// Longest DNS label in ASCII.
    const MAX_LABEL_LEN: usize = 63;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(invalid("is required"));
        }
        // Checked again after folding; this only avoids normalising an absurdly long input.
        if trimmed.len() > Self::MAX_LEN * 4 {
            return Err(too_long());
        }
        // Lowercasing can produce decomposed sequences (`İ` becomes `i` + U+0307), so the
        // result is normalised once more; that keeps `parse` idempotent on its own output.
        let folded: String = trimmed
            .nfc()
            .collect::<String>()
            .to_lowercase()
            .nfc()
            .collect();

        if folded.chars().any(char::is_whitespace) {
            return Err(invalid("must not contain spaces"));
        }
        if folded.chars().any(|c| c.is_control() || is_invisible(c)) {
            return Err(invalid("must not contain invisible or control characters"));
        }
        if let Some(c) = folded.chars().find(|c| FORBIDDEN.contains(c)) {
            return Err(invalid(format!("must not contain the character {c}")));
        }
        if folded.len() > Self::MAX_LEN {
            return Err(too_long());
        }

        let Some((local, domain)) = folded.split_once('@') else {
            return Err(invalid("must contain an @, as in name@example.org"));
        };
        if domain.contains('@') {
            return Err(invalid("must contain only one @"));
        }
        if local.is_empty() {
            return Err(invalid("needs a name before the @, as in name@example.org"));
        }
        if local.len() > Self::MAX_LOCAL_LEN {
            return Err(invalid(format!(
                "has too long a name before the @: at most {} characters",
                Self::MAX_LOCAL_LEN
            )));
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(invalid(
                "must not have a dot at the start or end of the name before the @, \
                 or two dots in a row",
            ));
        }
        check_domain(domain).map_err(invalid)?;
        Ok(Self(folded))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the `@`.
    pub fn local_part(&self) -> &str {
        self.0.split_once('@').map_or(&self.0, |(local, _)| local)
    }

    /// The part after the `@`.
    pub fn domain(&self) -> &str {
        self.0.split_once('@').map_or("", |(_, domain)| domain)
    }
}

/// Zero-width and text-direction characters: they make two different addresses look alike
/// on screen (or reorder what is shown), and no real mailbox needs them.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{feff}'
    )
}

/// A refusal of this field, worded for the person filling in the form.
fn invalid(message: impl Into<String>) -> FieldError {
    FieldError::new("email", message)
}

fn too_long() -> FieldError {
    FieldError::new(
        "email",
        format!("is too long: at most {} characters", Email::MAX_LEN),
    )
}

/// Host names in letters-digits-hyphen form. Internationalised domains are accepted in their
/// Unicode form (`名前@例え.jp`), since that is what people type; ASCII-only labels are
/// checked against the DNS length limit.
fn check_domain(domain: &str) -> Result<(), String> {
    if domain.is_empty() {
        return Err("needs a domain after the @, as in name@example.org".into());
    }
    if !domain.contains('.') {
        return Err("needs a full domain after the @, such as example.org".into());
    }
    let labels: Vec<&str> = domain.split('.').collect();
    for label in &labels {
        if label.is_empty() {
            return Err(
                "has an empty part in the domain (a dot at the start or end, or two dots in a row)"
                    .into(),
            );
        }
        let allowed = |c: char| {
            c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || c == '-'
                || (!c.is_ascii() && c.is_alphabetic())
        };
        if !label.chars().all(allowed) {
            return Err("may only have letters, digits, hyphens and dots after the @".into());
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("must not have a hyphen at the start or end of a domain part".into());
        }
        if label.is_ascii() && label.len() > Email::MAX_LABEL_LEN {
            return Err(format!(
                "has a domain part longer than {} characters",
                Email::MAX_LABEL_LEN
            ));
        }
    }
    // Top-level domains are never all digits; this refuses bare IP addresses.
    if labels
        .last()
        .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
    {
        return Err("needs a domain name after the @, not an IP address".into());
    }
    Ok(())
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(raw: &str) -> String {
        let err = Email::parse(raw).unwrap_err();
        assert_eq!(err.field, "email");
        err.message
    }

    #[test]
    fn folds_case_and_trims() {
        let email = Email::parse("  Alice@Example.ORG\n").unwrap();
        assert_eq!(email.as_str(), "alice@example.org");
        assert_eq!(email.to_string(), "alice@example.org");
        assert_eq!(email.local_part(), "alice");
        assert_eq!(email.domain(), "example.org");
        assert_eq!(email, Email::parse("ALICE@EXAMPLE.ORG").unwrap());
    }

    #[test]
    fn normalises_unicode_to_one_form() {
        // "é" precomposed and as "e" + combining acute accent are one address.
        let composed = Email::parse("ren\u{e9}@example.org").unwrap();
        let decomposed = Email::parse("RENE\u{301}@example.org").unwrap();
        assert_eq!(composed, decomposed);
        assert_eq!(composed.as_str(), "ren\u{e9}@example.org");
    }

    #[test]
    fn parsing_its_own_output_changes_nothing() {
        for raw in [
            "Alice@Example.org",
            "\u{130}stanbul@example.org",
            "ÉMILE@bücher.de",
        ] {
            let once = Email::parse(raw).unwrap();
            assert_eq!(Email::parse(once.as_str()).unwrap(), once, "{raw:?}");
        }
    }

    #[test]
    fn accepts_ordinary_and_international_addresses() {
        for ok in [
            "a@b.co",
            "first.last+tag@sub.example.org",
            "o'brien@example.ie",
            "x@xn--bcher-kva.example",
            "jürgen@bücher.de",
            "名前@例え.jp",
            "user@my-host.example.org",
        ] {
            assert!(Email::parse(ok).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn rejections_explain_the_problem() {
        assert_eq!(message("   "), "is required");
        assert!(message("alice.example.org").contains("must contain an @"));
        assert_eq!(message("a@b@example.org"), "must contain only one @");
        assert!(message("@example.org").contains("needs a name before the @"));
        assert!(message("alice@").contains("needs a domain after the @"));
        assert!(message("alice@localhost").contains("full domain"));
        assert_eq!(message("al ice@example.org"), "must not contain spaces");
        assert!(message("alice\u{0}@example.org").contains("control characters"));
        assert!(message("ali\u{200b}ce@example.org").contains("invisible"));
        assert!(message("alice\u{202e}gro.elpmaxe@example.org").contains("invisible"));
        assert_eq!(
            message("<alice@example.org>"),
            "must not contain the character <"
        );
        assert!(message("\"a\"@example.org").contains("character \""));
        assert!(message("alice@example..org").contains("empty part"));
        assert!(message("alice@example.org.").contains("empty part"));
        assert!(message("alice@-example.org").contains("hyphen"));
        assert!(message("alice@exa_mple.org").contains("letters, digits, hyphens"));
        assert!(message("alice@10.0.0.1").contains("not an IP address"));
        assert!(message(".alice@example.org").contains("two dots"));
        assert!(message("al..ice@example.org").contains("two dots"));
    }

    #[test]
    fn enforces_length_limits() {
        let local = "a".repeat(64);
        assert!(Email::parse(&format!("{local}@example.org")).is_ok());
        assert!(message(&format!("a{local}@example.org")).contains("at most 64"));

        let label = "b".repeat(63);
        let domain = format!("{label}.{label}.{}.org", "c".repeat(57));
        let at_limit = format!("{local}@{domain}");
        assert_eq!(at_limit.len(), Email::MAX_LEN);
        assert!(Email::parse(&at_limit).is_ok());
        assert!(message(&format!("{local}@c{domain}")).contains("at most 254"));
        assert!(message(&"x".repeat(10_000)).contains("at most 254"));
        assert!(message(&format!("a@{}.org", "b".repeat(64))).contains("longer than 63"));
    }
}
