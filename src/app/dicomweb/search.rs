//! A QIDO-RS query (PS3.18 8.3.4): matching keys, `limit`, `offset` and `includefield`,
//! parsed once so the search itself sees only valid values. Anything malformed is a 400
//! that says which parameter and why.

use chrono::NaiveDate;

use super::json::{self, Attr};
use crate::app::error::AppError;
use crate::domain::DicomUid;
pub use crate::infra::db::repo::dicomweb::Level;

/// Most results one search answers with; a larger `limit` is lowered to it.
pub const MAX_LIMIT: i64 = 1000;

/// What to return beyond the level's default attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Include {
    These(Vec<Attr>),
    All,
}

/// A parsed search.
#[derive(Debug, Clone)]
pub struct Search {
    pub level: Level,
    pub study_uids: Vec<String>,
    pub series_uids: Vec<String>,
    pub sop_uids: Vec<String>,
    pub modality: Option<String>,
    pub patient_id: Option<String>,
    pub accession: Option<String>,
    pub date_from: Option<String>,
    pub date_to: Option<String>,
    pub limit: i64,
    pub offset: i64,
    pub include: Include,
    /// A path UID and a query UID that differ: nothing can match.
    pub contradictory: bool,
}

impl Search {
    /// Parses the query's `pairs` for a search at `level`, inside the study and series the
    /// path names (if any).
    pub fn parse(
        level: Level,
        study: Option<&DicomUid>,
        series: Option<&DicomUid>,
        pairs: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, AppError> {
        let mut s = Self {
            level,
            study_uids: Vec::new(),
            series_uids: Vec::new(),
            sop_uids: Vec::new(),
            modality: None,
            patient_id: None,
            accession: None,
            date_from: None,
            date_to: None,
            limit: MAX_LIMIT,
            offset: 0,
            include: Include::These(Vec::new()),
            contradictory: false,
        };
        let mut seen: Vec<String> = Vec::new();
        for (name, value) in pairs {
            let key = match name.as_str() {
                "limit" | "offset" | "fuzzymatching" => name.clone(),
                "includefield" => {
                    s.add_includes(&value)?;
                    continue;
                }
                other => match json::lookup(other) {
                    Some(attr) => attr.keyword.to_string(),
                    // Keys we do not match on are ignored (PS3.18 8.3.4.1 lets a server
                    // ignore what it does not support), rather than failing a client.
                    None => continue,
                },
            };
            if seen.contains(&key) {
                return Err(bad(format!("{key} is given more than once")));
            }
            seen.push(key.clone());
            let value = value.trim().to_string();
            if value.is_empty() && !matches!(key.as_str(), "limit" | "offset") {
                // Universal matching: return the attribute, match everything.
                if let Some(attr) = json::lookup(&key) {
                    s.include_attr(attr);
                }
                continue;
            }
            match key.as_str() {
                "limit" => s.limit = count("limit", &value)?.clamp(0, MAX_LIMIT),
                "offset" => s.offset = count("offset", &value)?,
                // Fuzzy matching applies to person names, which are not searchable here.
                "fuzzymatching" => {}
                "StudyInstanceUID" => s.study_uids = uids("StudyInstanceUID", &value)?,
                "SeriesInstanceUID" => s.series_uids = uids("SeriesInstanceUID", &value)?,
                "SOPInstanceUID" => s.sop_uids = uids("SOPInstanceUID", &value)?,
                "Modality" | "ModalitiesInStudy" => {
                    s.modality = Some(code_string(&key, &value)?);
                }
                "PatientID" => s.patient_id = Some(exact("PatientID", &value)?),
                "AccessionNumber" => s.accession = Some(exact("AccessionNumber", &value)?),
                "StudyDate" => {
                    let (from, to) = date_range(&value)?;
                    s.date_from = from;
                    s.date_to = to;
                }
                other => {
                    return Err(bad(format!(
                        "{other} cannot be used as a matching key here; match on \
                         StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID, PatientID, \
                         AccessionNumber, StudyDate, Modality or ModalitiesInStudy"
                    )));
                }
            }
            if let Some(attr) = json::lookup(&key) {
                // Matching keys are returned (PS3.18 8.3.4.1).
                s.include_attr(attr);
            }
        }
        s.narrow(study, series);
        Ok(s)
    }

    /// Adds the path's study and series to the query's own UIDs: both must hold.
    fn narrow(&mut self, study: Option<&DicomUid>, series: Option<&DicomUid>) {
        for (path, list) in [
            (study, &mut self.study_uids),
            (series, &mut self.series_uids),
        ] {
            let Some(uid) = path else { continue };
            if !list.is_empty() && !list.iter().any(|u| u == uid.as_str()) {
                self.contradictory = true;
            }
            *list = vec![uid.as_str().to_string()];
        }
    }

    fn add_includes(&mut self, value: &str) -> Result<(), AppError> {
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "all" {
                self.include = Include::All;
                continue;
            }
            // An attribute we do not hold is left out of the answer, as PS3.18 allows;
            // only something that is no attribute name at all is refused.
            match json::lookup(name) {
                Some(attr) => self.include_attr(attr),
                None if is_attribute_name(name) => {}
                None => return Err(bad(format!("includefield: {name} is not an attribute"))),
            }
        }
        Ok(())
    }

    fn include_attr(&mut self, attr: Attr) {
        if let Include::These(list) = &mut self.include
            && !list.contains(&attr)
        {
            list.push(attr);
        }
    }
}

fn bad(message: String) -> AppError {
    AppError::BadRequest(message)
}

/// A keyword (letters and digits) or a tag (eight hex digits), possibly a dotted path.
fn is_attribute_name(name: &str) -> bool {
    name.len() <= 64
        && name.split('.').all(|p| {
            !p.is_empty()
                && p.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
                && p.chars().all(|c| c.is_ascii_alphanumeric())
        })
}

fn count(name: &str, value: &str) -> Result<i64, AppError> {
    value
        .parse::<u32>()
        .map(i64::from)
        .map_err(|_| bad(format!("{name} must be a whole number, not {value:?}")))
}

/// A list of UIDs (PS3.18 8.3.4.1: separated by commas or backslashes).
fn uids(name: &str, value: &str) -> Result<Vec<String>, AppError> {
    value
        .split([',', '\\'])
        .map(|raw| super::uid(name, raw.trim()).map(|u| u.as_str().to_string()))
        .collect()
}

/// A single value matched exactly: wildcards cannot be matched against a blind index.
fn exact(name: &str, value: &str) -> Result<String, AppError> {
    if value.contains(['*', '?']) {
        return Err(bad(format!(
            "{name} is matched exactly; wildcards (* and ?) are not supported for it"
        )));
    }
    if value.chars().count() > 64 || value.contains('\\') || value.chars().any(char::is_control) {
        return Err(bad(format!(
            "{name} must be one value of at most 64 characters"
        )));
    }
    Ok(value.to_string())
}

/// A code string (Modality): upper-case letters, digits, space and underscore, 16 at most.
fn code_string(name: &str, value: &str) -> Result<String, AppError> {
    let ok = value.len() <= 16
        && value
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ' || b == b'_');
    if !ok {
        return Err(bad(format!(
            "{name} must be one code string (upper-case letters and digits, 16 at most)"
        )));
    }
    Ok(value.to_string())
}

/// `YYYYMMDD`, `A-B`, `A-` or `-B` (PS3.4 C.2.2.2.5), as inclusive bounds.
fn date_range(value: &str) -> Result<(Option<String>, Option<String>), AppError> {
    let date = |raw: &str| -> Result<Option<String>, AppError> {
        if raw.is_empty() {
            return Ok(None);
        }
        if raw.len() != 8 || NaiveDate::parse_from_str(raw, "%Y%m%d").is_err() {
            return Err(bad(format!(
                "StudyDate: {raw:?} is not a date (YYYYMMDD); use a date or a range A-B, A- or -B"
            )));
        }
        Ok(Some(raw.to_string()))
    };
    let (from, to) = match value.split_once('-') {
        None => {
            let d = date(value)?;
            (d.clone(), d)
        }
        Some((a, b)) => {
            if a.is_empty() && b.is_empty() {
                return Err(bad("StudyDate: a range needs at least one date".into()));
            }
            (date(a)?, date(b)?)
        }
    };
    if let (Some(a), Some(b)) = (&from, &to)
        && a > b
    {
        return Err(bad(format!(
            "StudyDate: the range {value} ends before it starts"
        )));
    }
    Ok((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &[(&str, &str)]) -> Result<Search, AppError> {
        Search::parse(
            Level::Study,
            None,
            None,
            query.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn dates_and_ranges_become_inclusive_bounds() {
        let s = parse(&[("StudyDate", "20260101-20261231")]).unwrap();
        assert_eq!(s.date_from.as_deref(), Some("20260101"));
        assert_eq!(s.date_to.as_deref(), Some("20261231"));
        let s = parse(&[("00080020", "-20261231")]).unwrap();
        assert_eq!(
            (s.date_from, s.date_to.as_deref()),
            (None, Some("20261231"))
        );
        let s = parse(&[("StudyDate", "20260101-")]).unwrap();
        assert_eq!(
            (s.date_from.as_deref(), s.date_to),
            (Some("20260101"), None)
        );
        let s = parse(&[("StudyDate", "20260229")]);
        assert!(s.is_err(), "2026 is not a leap year");
        for bad in [
            "20261231-20260101",
            "2026-01-01",
            "-",
            "2026010",
            "abcdefgh",
        ] {
            assert!(parse(&[("StudyDate", bad)]).is_err(), "{bad}");
        }
    }

    #[test]
    fn uids_limits_and_wildcards_are_checked() {
        let long = format!("1.{}", "2".repeat(63));
        for (key, value) in [
            ("StudyInstanceUID", long.as_str()),
            ("StudyInstanceUID", "1.2.abc"),
            ("limit", "ten"),
            ("offset", "-1"),
            ("PatientID", "PID*"),
            ("Modality", "ct"),
        ] {
            assert!(parse(&[(key, value)]).is_err(), "{key}={value}");
        }
        let s = parse(&[("StudyInstanceUID", "1.2,1.3"), ("limit", "5000")]).unwrap();
        assert_eq!(s.study_uids, ["1.2", "1.3"]);
        assert_eq!(s.limit, MAX_LIMIT);
        assert!(parse(&[("limit", "1"), ("limit", "2")]).is_err());
    }

    #[test]
    fn includefield_takes_keywords_tags_and_all() {
        let s = parse(&[("includefield", "StudyDescription,00080080")]).unwrap();
        assert_eq!(
            s.include,
            Include::These(vec![json::STUDY_DESCRIPTION, json::INSTITUTION_NAME])
        );
        let s = parse(&[("includefield", "all")]).unwrap();
        assert_eq!(s.include, Include::All);
        assert!(parse(&[("includefield", "no/such")]).is_err());
    }

    #[test]
    fn a_path_uid_and_a_different_query_uid_match_nothing() {
        let study = DicomUid::parse("1.2").unwrap();
        let s = Search::parse(
            Level::Series,
            Some(&study),
            None,
            [("StudyInstanceUID".to_string(), "1.3".to_string())],
        )
        .unwrap();
        assert!(s.contradictory);
    }
}
