//! A moment as pages show it. The server knows only UTC, so that is the text (and what a
//! page shows without JavaScript); `static/js/app.js` rewrites the text of every
//! `<time data-local>` into the reader's own time zone and keeps the UTC text as the
//! tooltip. Templates print it as
//! `<time datetime="{{ t.iso() }}" title="{{ t }}" data-local>{{ t }}</time>`.

use chrono::NaiveDateTime;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timestamp {
    iso: String,
    utc: String,
}

impl Timestamp {
    /// To the minute, as lists show it.
    pub fn minutes(at: NaiveDateTime) -> Self {
        Self {
            iso: at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            utc: at.format("%Y-%m-%d %H:%M UTC").to_string(),
        }
    }

    /// To the second, as the audit log shows it.
    pub fn seconds(at: NaiveDateTime) -> Self {
        Self {
            iso: at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            utc: at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        }
    }

    /// RFC 3339 in UTC, for the `datetime` attribute.
    pub fn iso(&self) -> &str {
        &self.iso
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.utc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_utc_and_carries_a_machine_readable_utc_instant() {
        let at = chrono::NaiveDate::from_ymd_opt(2026, 11, 24)
            .unwrap()
            .and_hms_opt(7, 5, 9)
            .unwrap();
        let t = Timestamp::minutes(at);
        assert_eq!(t.to_string(), "2026-11-24 07:05 UTC");
        assert_eq!(t.iso(), "2026-11-24T07:05:09Z");
        assert_eq!(
            Timestamp::seconds(at).to_string(),
            "2026-11-24 07:05:09 UTC"
        );
    }
}
