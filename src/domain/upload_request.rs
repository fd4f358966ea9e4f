//! The values an upload request is made of, validated at the edge: its link token, title,
//! instructions, expiry, limits, passphrase, and what the sender is asked to say.

use std::fmt;

use crate::domain::FieldError;

/// Days a request stays open unless its owner says otherwise.
pub const DEFAULT_EXPIRY_DAYS: u32 = 7;
/// The longest a request may stay open, from its creation or its last extension.
pub const MAX_EXPIRY_DAYS: u32 = 90;
/// Most files one request may take (a CD holds a few thousand).
pub const MAX_FILES: u64 = 100_000;
/// Most bytes one request may take: 1 TiB.
pub const MAX_BYTES: u64 = 1 << 40;

const TITLE_MAX: usize = 200;
const INSTRUCTIONS_MAX: usize = 4000;
const PASSPHRASE_MIN: usize = 8;
// bcrypt takes at most 72 bytes whole (see `app::accounts::passwords`).
const PASSPHRASE_MAX: usize = 64;
const PASSPHRASE_MAX_BYTES: usize = 72;
const SENDER_FIELD_MAX: usize = 200;
const SENDER_MESSAGE_MAX: usize = 2000;

/// The link's secret: 256 random bits, base64url without padding (43 characters). Anything
/// else cannot be a token, so it is refused before the database is asked.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkToken(String);

impl LinkToken {
    pub const LEN: usize = 43;

    pub fn parse(raw: &str) -> Option<Self> {
        (raw.len() == Self::LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .then(|| Self(raw.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for LinkToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkToken(..)")
    }
}

fn text(raw: &str, field: &'static str, max: usize, required: bool) -> Result<String, FieldError> {
    let value = raw.trim();
    if value.is_empty() && required {
        return Err(FieldError::new(field, "is required"));
    }
    if value.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    // Line breaks are kept in long texts; other control characters never mean anything.
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(value.replace("\r\n", "\n"))
}

/// What the sender reads at the top of the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Title(String);

impl Title {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let value = text(raw, "title", TITLE_MAX, true)?;
        if value.contains('\n') {
            return Err(FieldError::new("title", "must be one line"));
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the sender is asked to send, and how; may be empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instructions(String);

impl Instructions {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        text(raw, "instructions", INSTRUCTIONS_MAX, false).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Days from now until the request closes by itself: 1 to 90.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiryDays(u32);

impl ExpiryDays {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        match raw.trim().parse::<u32>() {
            Ok(days) if (1..=MAX_EXPIRY_DAYS).contains(&days) => Ok(Self(days)),
            _ => Err(FieldError::new(
                "expires_days",
                format!("must be a whole number of days from 1 to {MAX_EXPIRY_DAYS}"),
            )),
        }
    }

    pub fn days(self) -> u32 {
        self.0
    }
}

impl Default for ExpiryDays {
    fn default() -> Self {
        Self(DEFAULT_EXPIRY_DAYS)
    }
}

/// How many files, and how many bytes, the request takes in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    files: u64,
    bytes: u64,
}

impl Limits {
    /// `max_files` a count; `max_megabytes` in MB (10^6 bytes), as people count them.
    pub fn parse(max_files: &str, max_megabytes: &str) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let files = match max_files.trim().parse::<u64>() {
            Ok(n) if (1..=MAX_FILES).contains(&n) => Some(n),
            _ => {
                errors.push(FieldError::new(
                    "max_files",
                    format!("must be a whole number from 1 to {MAX_FILES}"),
                ));
                None
            }
        };
        let most_mb = MAX_BYTES / 1_000_000;
        let bytes = match max_megabytes.trim().parse::<u64>() {
            Ok(mb) if (1..=most_mb).contains(&mb) => Some(mb * 1_000_000),
            _ => {
                errors.push(FieldError::new(
                    "max_megabytes",
                    format!("must be a whole number of megabytes from 1 to {most_mb}"),
                ));
                None
            }
        };
        match (files, bytes) {
            (Some(files), Some(bytes)) => Ok(Self { files, bytes }),
            _ => Err(errors),
        }
    }

    pub fn from_db(files: i64, bytes: i64) -> Self {
        Self {
            files: u64::try_from(files).unwrap_or(0),
            bytes: u64::try_from(bytes).unwrap_or(0),
        }
    }

    pub fn files(self) -> u64 {
        self.files
    }

    pub fn bytes(self) -> u64 {
        self.bytes
    }
}

/// A secret the owner gives the sender by another way (a phone call, a letter). Checked like
/// a password: hashed, compared in constant time, throttled.
#[derive(Clone)]
pub struct Passphrase(String);

impl Passphrase {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let n = raw.chars().count();
        if !(PASSPHRASE_MIN..=PASSPHRASE_MAX).contains(&n) || raw.len() > PASSPHRASE_MAX_BYTES {
            return Err(FieldError::new(
                "passphrase",
                format!("must be {PASSPHRASE_MIN} to {PASSPHRASE_MAX} characters"),
            ));
        }
        if raw.chars().any(char::is_control) {
            return Err(FieldError::new(
                "passphrase",
                "must not contain control characters",
            ));
        }
        Ok(Self(raw.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(..)")
    }
}

/// What a sender may be asked to give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SenderField {
    Name,
    Email,
    Organisation,
    Phone,
    PatientReference,
    Message,
}

impl SenderField {
    pub const ALL: [SenderField; 6] = [
        SenderField::Name,
        SenderField::Email,
        SenderField::Organisation,
        SenderField::Phone,
        SenderField::PatientReference,
        SenderField::Message,
    ];

    /// The form field's name, and the word kept in `required_fields`.
    pub fn as_str(self) -> &'static str {
        match self {
            SenderField::Name => "name",
            SenderField::Email => "email",
            SenderField::Organisation => "organisation",
            SenderField::Phone => "phone",
            SenderField::PatientReference => "patient_reference",
            SenderField::Message => "message",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            SenderField::Name => "Your name",
            SenderField::Email => "Your e-mail address",
            SenderField::Organisation => "Organisation",
            SenderField::Phone => "Phone number",
            SenderField::PatientReference => "Patient reference",
            SenderField::Message => "Message",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == raw)
    }
}

/// Which sender fields must be filled in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequiredFields(Vec<SenderField>);

impl RequiredFields {
    /// From the form's checkbox values; an unknown name is refused, not dropped.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, FieldError> {
        let mut fields = Vec::new();
        for name in names {
            let field = SenderField::parse(name.trim()).ok_or_else(|| {
                FieldError::new("required_fields", "names a field the sender cannot fill in")
            })?;
            if !fields.contains(&field) {
                fields.push(field);
            }
        }
        fields.sort();
        Ok(Self(fields))
    }

    /// As kept in the database: the names, comma-separated.
    pub fn to_db(&self) -> String {
        self.0
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Unknown names (from a newer version) are ignored rather than failing the page.
    pub fn from_db(raw: &str) -> Self {
        Self(
            raw.split(',')
                .filter_map(|n| SenderField::parse(n.trim()))
                .collect(),
        )
    }

    pub fn contains(&self, field: SenderField) -> bool {
        self.0.contains(&field)
    }
}

/// What a sender said about themselves, each field checked; the e-mail address, when given,
/// is a valid one (receipts go there).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SenderDetails {
    pub name: String,
    pub email: Option<String>,
    pub organisation: String,
    pub phone: String,
    pub patient_reference: String,
    pub message: String,
}

impl SenderDetails {
    /// `value(field)` gives the raw form value; every required field must be filled.
    pub fn parse<'a>(
        required: &RequiredFields,
        value: impl Fn(SenderField) -> &'a str,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut get = |field: SenderField, max: usize| -> String {
            let checked = text(value(field), field.as_str(), max, required.contains(field));
            match checked {
                Ok(v) if field != SenderField::Message && v.contains('\n') => {
                    errors.push(FieldError::new(field.as_str(), "must be one line"));
                    String::new()
                }
                Ok(v) => v,
                Err(e) => {
                    errors.push(e);
                    String::new()
                }
            }
        };
        let name = get(SenderField::Name, SENDER_FIELD_MAX);
        let email_raw = get(SenderField::Email, SENDER_FIELD_MAX);
        let organisation = get(SenderField::Organisation, SENDER_FIELD_MAX);
        let phone = get(SenderField::Phone, SENDER_FIELD_MAX);
        let patient_reference = get(SenderField::PatientReference, SENDER_FIELD_MAX);
        let message = get(SenderField::Message, SENDER_MESSAGE_MAX);
        let email = if email_raw.is_empty() {
            None
        } else {
            match crate::domain::email::Email::parse(&email_raw) {
                Ok(e) => Some(e.as_str().to_string()),
                Err(_) => {
                    errors.push(FieldError::new("email", "is not a valid e-mail address"));
                    None
                }
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            name,
            email,
            organisation,
            phone,
            patient_reference,
            message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_well_formed_token_is_looked_up() {
        assert!(LinkToken::parse(&"a".repeat(43)).is_some());
        assert!(LinkToken::parse(&"a".repeat(42)).is_none());
        assert!(LinkToken::parse(&format!("{}/", "a".repeat(42))).is_none());
        assert!(LinkToken::parse(&format!("{}%", "a".repeat(42))).is_none());
        assert_eq!(
            format!("{:?}", LinkToken::parse(&"b".repeat(43)).unwrap()),
            "LinkToken(..)"
        );
    }

    #[test]
    fn expiry_is_one_to_ninety_days() {
        assert_eq!(ExpiryDays::parse("7").unwrap().days(), 7);
        assert_eq!(ExpiryDays::parse(" 90 ").unwrap().days(), 90);
        for bad in ["0", "91", "-1", "1.5", "", "seven"] {
            assert!(ExpiryDays::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(ExpiryDays::default().days(), DEFAULT_EXPIRY_DAYS);
    }

    #[test]
    fn limits_are_counted_in_files_and_megabytes() {
        let l = Limits::parse("500", "2000").unwrap();
        assert_eq!((l.files(), l.bytes()), (500, 2_000_000_000));
        let errors = Limits::parse("0", "x").unwrap_err();
        assert_eq!(
            errors.iter().map(|e| e.field).collect::<Vec<_>>(),
            ["max_files", "max_megabytes"]
        );
        assert!(Limits::parse("100001", "1").is_err());
    }

    #[test]
    fn required_fields_round_trip_and_refuse_unknown_names() {
        let r = RequiredFields::parse(["email", "name", "email"]).unwrap();
        assert_eq!(r.to_db(), "name,email");
        assert_eq!(RequiredFields::from_db(&r.to_db()), r);
        assert!(RequiredFields::parse(["password"]).is_err());
    }

    #[test]
    fn sender_details_check_required_fields_and_the_address() {
        let required = RequiredFields::parse(["name", "email"]).unwrap();
        let errors = SenderDetails::parse(&required, |f| match f {
            SenderField::Email => "not an address",
            _ => "",
        })
        .unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["name", "email"]);
        let ok = SenderDetails::parse(&required, |f| match f {
            SenderField::Name => " <b>Dr Who</b> ",
            SenderField::Email => "Who@Example.org",
            SenderField::Message => "line one\r\nline two",
            _ => "",
        })
        .unwrap();
        // Kept as typed (escaped where shown), only trimmed.
        assert_eq!(ok.name, "<b>Dr Who</b>");
        assert_eq!(ok.message, "line one\nline two");
        assert!(ok.email.is_some());
        let one_line = SenderDetails::parse(&required, |f| match f {
            SenderField::Name => "a\nb",
            SenderField::Email => "a@example.org",
            _ => "",
        });
        assert!(one_line.is_err());
    }

    #[test]
    fn a_passphrase_is_never_printed() {
        let p = Passphrase::parse("correct horse").unwrap();
        assert_eq!(format!("{p:?}"), "Passphrase(..)");
        assert!(Passphrase::parse("short").is_err());
    }
}
