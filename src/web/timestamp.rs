//! A moment as pages show it. The server knows only UTC, so that is the text (and what a
//! page shows without JavaScript); `static/js/app.js` rewrites the text of every
//! `<time data-local>` into the reader's own time zone and keeps the UTC text as the
//! tooltip. Templates print it as
//! `<time datetime="{{ t.iso() }}" title="{{ t }}" data-local>{{ t }}</time>`.

use std::fmt;

use chrono::{Datelike as _, NaiveDateTime, Timelike as _};

/// Holds the moment, not its text: a page prints each time twice (text and tooltip) and
/// lists print hundreds, so the text is written straight into the page, with no string of
/// its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    at: NaiveDateTime,
    seconds: bool,
}

impl Timestamp {
    /// To the minute, as lists show it.
    pub fn minutes(at: NaiveDateTime) -> Self {
        Self { at, seconds: false }
    }

    /// To the second, as the audit log shows it.
    pub fn seconds(at: NaiveDateTime) -> Self {
        Self { at, seconds: true }
    }

    /// RFC 3339 in UTC, for the `datetime` attribute.
    pub fn iso(&self) -> Iso {
        Iso(self.at)
    }
}

/// A moment as RFC 3339 in UTC, to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Iso(NaiveDateTime);

impl fmt::Display for Iso {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write(f, self.0, Shape::Iso)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shape = if self.seconds {
            Shape::Seconds
        } else {
            Shape::Minutes
        };
        write(f, self.at, shape)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Iso,
    Minutes,
    Seconds,
}

impl Shape {
    fn chrono(self) -> &'static str {
        match self {
            Self::Iso => "%Y-%m-%dT%H:%M:%SZ",
            Self::Minutes => "%Y-%m-%d %H:%M UTC",
            Self::Seconds => "%Y-%m-%d %H:%M:%S UTC",
        }
    }
}

/// Written digit by digit: `format!` with widths costs thousands of instructions a field,
/// and chrono's `format` parses its pattern again each time; a long list prints hundreds.
/// Years outside 0..=9999, which chrono writes with a sign, go through chrono.
fn write(f: &mut fmt::Formatter<'_>, at: NaiveDateTime, shape: Shape) -> fmt::Result {
    let Some(year) = u32::try_from(at.year()).ok().filter(|y| *y <= 9999) else {
        return write!(f, "{}", at.format(shape.chrono()));
    };
    let mut text = Text::default();
    text.digits(year, 4);
    text.push(b'-');
    text.digits(at.month(), 2);
    text.push(b'-');
    text.digits(at.day(), 2);
    text.push(if shape == Shape::Iso { b'T' } else { b' ' });
    text.digits(at.hour(), 2);
    text.push(b':');
    text.digits(at.minute(), 2);
    if shape != Shape::Minutes {
        text.push(b':');
        text.digits(at.second(), 2);
    }
    if shape == Shape::Iso {
        text.push(b'Z');
    } else {
        for b in b" UTC" {
            text.push(*b);
        }
    }
    f.write_str(text.as_str())
}

/// ASCII digits and separators, at most 23 bytes (`9999-12-31 23:59:59 UTC`).
#[derive(Default)]
struct Text {
    buf: [u8; 24],
    len: usize,
}

impl Text {
    fn digits(&mut self, mut value: u32, width: usize) {
        for i in (0..width).rev() {
            // A remainder by 10 is one decimal digit.
            self.buf[self.len + i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
        self.len += width;
    }

    fn push(&mut self, byte: u8) {
        self.buf[self.len] = byte;
        self.len += 1;
    }

    fn as_str(&self) -> &str {
        // Only ASCII is ever pushed.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
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
        assert_eq!(t.iso().to_string(), "2026-11-24T07:05:09Z");
        assert_eq!(
            Timestamp::seconds(at).to_string(),
            "2026-11-24 07:05:09 UTC"
        );
    }

    #[test]
    fn years_chrono_writes_with_a_sign_read_as_chrono_writes_them() {
        for year in [-1, 10_000] {
            let at = chrono::NaiveDate::from_ymd_opt(year, 1, 2)
                .unwrap()
                .and_hms_opt(3, 4, 5)
                .unwrap();
            assert_eq!(
                Timestamp::minutes(at).to_string(),
                at.format("%Y-%m-%d %H:%M UTC").to_string()
            );
            assert_eq!(
                Timestamp::seconds(at).iso().to_string(),
                at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
            );
        }
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
