//! `Timestamp` columns read into `NaiveDateTime`, with SQLite's text read by hand.
//!
//! Diesel reads a SQLite timestamp by trying its formats in turn with chrono's parser,
//! which reads each format string again for every value: that was the largest single cost
//! of loading a page of uploads. medport writes one shape (`YYYY-MM-DD HH:MM:SS` with an
//! optional fraction); it is read here directly, and anything else goes to Diesel's reader.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql};
use diesel::pg::Pg;
use diesel::sql_types::{Nullable, Timestamp};
use diesel::sqlite::Sqlite;

use super::MultiBackend;

/// A `Timestamp` column, for `#[diesel(deserialize_as = Stamp)]` on a `NaiveDateTime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, diesel::deserialize::FromSqlRow)]
pub struct Stamp(NaiveDateTime);

/// A nullable `Timestamp` column, for an `Option<NaiveDateTime>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, diesel::deserialize::FromSqlRow)]
pub struct MaybeStamp(Option<NaiveDateTime>);

impl From<Stamp> for NaiveDateTime {
    fn from(stamp: Stamp) -> Self {
        stamp.0
    }
}

impl From<MaybeStamp> for Option<NaiveDateTime> {
    fn from(stamp: MaybeStamp) -> Self {
        stamp.0
    }
}

impl FromSql<Timestamp, Sqlite> for Stamp {
    fn from_sql(mut value: <Sqlite as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        match parse(value.read_text()) {
            Some(at) => Ok(Self(at)),
            None => <NaiveDateTime as FromSql<Timestamp, Sqlite>>::from_sql(value).map(Self),
        }
    }
}

impl FromSql<Timestamp, Pg> for Stamp {
    fn from_sql(value: <Pg as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        <NaiveDateTime as FromSql<Timestamp, Pg>>::from_sql(value).map(Self)
    }
}

impl FromSql<Timestamp, MultiBackend> for Stamp {
    fn from_sql(value: <MultiBackend as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        value.from_sql::<Self, Timestamp>()
    }
}

impl<DB> FromSql<Nullable<Timestamp>, DB> for MaybeStamp
where
    DB: Backend,
    Stamp: FromSql<Timestamp, DB>,
{
    fn from_sql(value: DB::RawValue<'_>) -> deserialize::Result<Self> {
        Stamp::from_sql(value).map(|stamp| Self(Some(stamp.0)))
    }

    fn from_nullable_sql(value: Option<DB::RawValue<'_>>) -> deserialize::Result<Self> {
        match value {
            Some(value) => Self::from_sql(value),
            None => Ok(Self(None)),
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS`, then optionally `.` and 1 to 9 digits; `None` for anything else.
fn parse(text: &str) -> Option<NaiveDateTime> {
    let b = text.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(number(&b[0..4])?).ok()?,
        number(&b[5..7])?,
        number(&b[8..10])?,
    )?;
    let nanos = match &b[19..] {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            number(digits)? * 10u32.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    let time = NaiveTime::from_hms_nano_opt(
        number(&b[11..13])?,
        number(&b[14..16])?,
        number(&b[17..19])?,
        nanos,
    )?;
    Some(date.and_time(time))
}

/// ASCII digits as a number (at most 9 of them).
fn number(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |n, d| {
        d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_it_cannot_read_is_left_to_diesel() {
        for text in [
            "",
            "2026-12-08",
            "2026-12-08T01:02:03",
            "2026-12-08 01:02:03Z",
            "2026-12-08 01:02:03.",
            "2026-12-08 01:02:03.1234567890",
            "2026-13-08 01:02:03",
            "2026-12-08 24:02:03",
            "+2026-12-08 01:02:03",
            "2026-1a-08 01:02:03",
        ] {
            assert_eq!(parse(text), None, "{text}");
        }
    }

    proptest::proptest! {
        /// Every moment, written as Diesel writes it to SQLite, reads back as chrono reads it.
        #[test]
        fn reads_what_diesel_writes(secs in 0i64..253_402_300_799, nanos in 0u32..1_000_000_000) {
            let at = chrono::DateTime::from_timestamp(secs, nanos).unwrap().naive_utc();
            for text in [
                at.format("%F %T%.f").to_string(),
                at.format("%F %T").to_string(),
                at.format("%F %T%.3f").to_string(),
            ] {
                let chrono = NaiveDateTime::parse_from_str(&text, "%F %T%.f").unwrap();
                proptest::prop_assert_eq!(parse(&text), Some(chrono));
            }
        }
    }
}
