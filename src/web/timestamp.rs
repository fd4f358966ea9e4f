//! A moment as pages show it. The server knows only UTC, so that is the text (and what a
//! page shows without JavaScript); `static/js/app.js` rewrites the text of every
//! `<time data-local>` into the reader's own time zone and keeps the UTC text as the
//! tooltip. Templates print it as
//! `<time datetime="{{ t.iso() }}" title="{{ t }}" data-local>{{ t }}</time>`.

use std::fmt::Write as _;

use chrono::{Datelike as _, NaiveDateTime, Timelike as _};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timestamp {
    iso: String,
    utc: String,
}

impl Timestamp {
    /// To the minute, as lists show it.
    pub fn minutes(at: NaiveDateTime) -> Self {
        Self {
            iso: iso(at),
            utc: utc(at, false),
        }
    }

    /// To the second, as the audit log shows it.
    pub fn seconds(at: NaiveDateTime) -> Self {
        Self {
            iso: iso(at),
            utc: utc(at, true),
        }
    }

    /// RFC 3339 in UTC, for the `datetime` attribute.
    pub fn iso(&self) -> &str {
        &self.iso
    }
}

// Written field by field: a page shows dozens of these, and chrono's `format` parses its
// format string again for every one.
fn iso(at: NaiveDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

fn utc(at: NaiveDateTime, seconds: bool) -> String {
    let mut out = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute()
    );
    if seconds {
        let _ = write!(out, ":{:02}", at.second());
    }
    out.push_str(" UTC");
    out
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

    proptest::proptest! {
        #[test]
        fn reads_as_chrono_formats_it(secs in 0i64..253_402_300_799, nanos in 0u32..1_000_000_000) {
            let at = chrono::DateTime::from_timestamp(secs, nanos).unwrap().naive_utc();
            proptest::prop_assert_eq!(
                Timestamp::minutes(at).to_string(),
                at.format("%Y-%m-%d %H:%M UTC").to_string()
            );
            proptest::prop_assert_eq!(
                Timestamp::seconds(at).to_string(),
                at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
            );
            proptest::prop_assert_eq!(
                Timestamp::minutes(at).iso().to_string(),
                at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
            );
        }
    }
}
