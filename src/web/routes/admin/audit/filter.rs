//! Audit log filters: parsed from the query string into typed values, then turned into one
//! query that the page and the CSV export share.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use serde::Deserialize;

use crate::app::audit::{AuditRow, Outcome};
use crate::app::error::AppError;
use crate::domain::FieldError;
use crate::infra::db::DbConnection;
use crate::infra::db::repo::audit_reads::{self, Filter};

pub const PAGE_SIZE: i64 = 50;
/// Deep enough for any real log (5 million events at 50 a page); beyond it, narrow the dates.
const MAX_PAGE: u32 = 100_000;
const MAX_USER_CHARS: usize = 254;
const MAX_ACTION_CHARS: usize = 64;
/// The action select lists at most this many distinct actions.
const MAX_ACTIONS_LISTED: i64 = 500;

/// The query string as sent. Empty fields (from a submitted form) mean "any".
#[derive(Debug, Default, Deserialize)]
pub struct RawQuery {
    pub user: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub page: Option<String>,
}

/// Validated filters.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Lowercased substring of the actor's label (email) or user id.
    pub user: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<Outcome>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
}

fn present(raw: &Option<String>) -> Option<&str> {
    raw.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn parse_date(field: &'static str, raw: &str) -> Result<NaiveDate, FieldError> {
    let well_formed = raw.len() == 10
        && raw.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    well_formed
        .then(|| NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok())
        .flatten()
        .ok_or_else(|| FieldError::new(field, "must be a date written YYYY-MM-DD, e.g. 2026-03-31"))
}

fn parse_outcome(raw: &str) -> Result<Outcome, FieldError> {
    [Outcome::Success, Outcome::Failure, Outcome::Denied]
        .into_iter()
        .find(|o| o.as_str() == raw)
        .ok_or_else(|| FieldError::new("outcome", "must be success, failure or denied"))
}

impl RawQuery {
    /// The filters and the page number (from 1), or every problem found.
    pub fn parse(&self) -> Result<(AuditFilter, u32), Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut filter = AuditFilter::default();
        if let Some(user) = present(&self.user) {
            if user.chars().count() > MAX_USER_CHARS || user.chars().any(char::is_control) {
                errors.push(FieldError::new(
                    "user",
                    format!(
                        "must be at most {MAX_USER_CHARS} characters, without control characters"
                    ),
                ));
            } else {
                filter.user = Some(user.to_lowercase());
            }
        }
        if let Some(action) = present(&self.action) {
            let valid = action.len() <= MAX_ACTION_CHARS
                && action
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
            if valid {
                filter.action = Some(action.to_string());
            } else {
                errors.push(FieldError::new("action", "is not an action name"));
            }
        }
        if let Some(outcome) = present(&self.outcome) {
            match parse_outcome(outcome) {
                Ok(o) => filter.outcome = Some(o),
                Err(e) => errors.push(e),
            }
        }
        for (field, raw, slot) in [
            ("from", &self.from, &mut filter.from),
            ("to", &self.to, &mut filter.to),
        ] {
            if let Some(raw) = present(raw) {
                match parse_date(field, raw) {
                    Ok(d) => *slot = Some(d),
                    Err(e) => errors.push(e),
                }
            }
        }
        if let (Some(from), Some(to)) = (filter.from, filter.to)
            && from > to
        {
            errors.push(FieldError::new(
                "to",
                "must not be before the \"from\" date",
            ));
        }
        let page = match present(&self.page) {
            None => 1,
            Some(raw) => match raw.parse::<u32>() {
                Ok(p) if (1..=MAX_PAGE).contains(&p) => p,
                _ => {
                    errors.push(FieldError::new(
                        "page",
                        format!("must be a whole number from 1 to {MAX_PAGE}"),
                    ));
                    1
                }
            },
        };
        if errors.is_empty() {
            Ok((filter, page))
        } else {
            Err(errors)
        }
    }
}

impl AuditFilter {
    /// The filters as query-string pairs, for links that keep them and for the audit
    /// record of an export.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(v) = &self.user {
            out.push(("user", v.clone()));
        }
        if let Some(v) = &self.action {
            out.push(("action", v.clone()));
        }
        if let Some(v) = self.outcome {
            out.push(("outcome", v.as_str().to_string()));
        }
        if let Some(v) = self.from {
            out.push(("from", v.format("%Y-%m-%d").to_string()));
        }
        if let Some(v) = self.to {
            out.push(("to", v.format("%Y-%m-%d").to_string()));
        }
        out
    }

    /// The filters as a query string, with an optional page (`user=a%40b&page=2`).
    pub fn query_string(&self, page: Option<u32>) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in self.pairs() {
            s.append_pair(k, &v);
        }
        if let Some(p) = page {
            s.append_pair("page", &p.to_string());
        }
        s.finish()
    }

    pub fn as_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.pairs()
                .into_iter()
                .map(|(k, v)| (k.to_string(), serde_json::Value::String(v)))
                .collect(),
        )
    }

    /// The filters as the audit log is read with.
    pub fn to_repo(&self) -> Filter {
        Filter {
            actor_like: self
                .user
                .as_ref()
                .map(|user| format!("%{}%", escape_like(user))),
            action: self.action.clone(),
            outcome: self.outcome.map(Outcome::as_str),
            from: self.from.map(start_of),
            before: self.to.and_then(|d| d.succ_opt()).map(start_of),
        }
    }
}

fn start_of(day: NaiveDate) -> NaiveDateTime {
    day.and_time(NaiveTime::MIN)
}

/// Makes `%`, `_` and `\` match themselves in a LIKE pattern with `ESCAPE '\'`.
fn escape_like(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One page of matching events, newest first, and how many match in all.
pub fn page(
    conn: &mut DbConnection,
    filter: &AuditFilter,
    page: u32,
) -> Result<(Vec<AuditRow>, i64), AppError> {
    let filter = filter.to_repo();
    let total = audit_reads::count(conn, &filter)?;
    let offset = i64::from(page.saturating_sub(1)) * PAGE_SIZE;
    let rows = audit_reads::newest_first(conn, &filter, PAGE_SIZE, offset)?;
    Ok((rows, total))
}

/// Matching events with `after < id <= upper`, oldest first, at most `limit`.
pub fn batch(
    conn: &mut DbConnection,
    filter: &AuditFilter,
    after: i64,
    upper: i64,
    limit: i64,
) -> Result<Vec<AuditRow>, AppError> {
    Ok(audit_reads::batch(
        conn,
        &filter.to_repo(),
        after,
        upper,
        limit,
    )?)
}

/// The distinct actions in the log, for the filter's select.
pub fn actions(conn: &mut DbConnection) -> Result<Vec<String>, AppError> {
    Ok(audit_reads::actions(conn, MAX_ACTIONS_LISTED)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> RawQuery {
        let mut q = RawQuery::default();
        for (k, v) in pairs {
            let v = Some((*v).to_string());
            match *k {
                "user" => q.user = v,
                "action" => q.action = v,
                "outcome" => q.outcome = v,
                "from" => q.from = v,
                "to" => q.to = v,
                "page" => q.page = v,
                _ => unreachable!(),
            }
        }
        q
    }

    #[test]
    fn empty_fields_mean_any() {
        let (f, page) = raw(&[("user", " "), ("action", ""), ("page", "")])
            .parse()
            .unwrap();
        assert!(f.user.is_none() && f.action.is_none());
        assert_eq!(page, 1);
        assert_eq!(f.query_string(None), "");
    }

    #[test]
    fn bad_values_are_named() {
        let errors = raw(&[
            ("outcome", "maybe"),
            ("from", "2026-13-01"),
            ("to", "31/12/2026"),
            ("page", "0"),
            ("action", "DROP TABLE"),
        ])
        .parse()
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["action", "outcome", "from", "to", "page"]);
        let reversed = raw(&[("from", "2026-02-02"), ("to", "2026-02-01")])
            .parse()
            .unwrap_err();
        assert_eq!(reversed[0].field, "to");
        assert!(raw(&[("from", "+2026-01-01")]).parse().is_err());
    }

    #[test]
    fn filters_round_trip_through_the_query_string() {
        let (f, page) = raw(&[
            ("user", "Alice@Example.org"),
            ("outcome", "denied"),
            ("from", "2026-01-02"),
            ("page", "3"),
        ])
        .parse()
        .unwrap();
        assert_eq!(page, 3);
        assert_eq!(
            f.query_string(Some(4)),
            "user=alice%40example.org&outcome=denied&from=2026-01-02&page=4"
        );
    }

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(escape_like(r"a%b_c\d"), r"a\%b\_c\\d");
    }
}
