//! The history listing: filters parsed from the query string, one page of uploads read with
//! the names (bucket, owner) the table shows, and the links to the neighbouring pages. A
//! batch (a folder or CD sent at once) is one row that opens onto its files.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use serde::Deserialize;

use super::views::{BatchView, UploadView};
use super::{Reach, Viewer};
use crate::app::accounts::users;
use crate::app::buckets;
use crate::app::error::AppError;
use crate::app::uploads::UploadStatus;
use crate::app::uploads::batches::{self, BatchStatus};
use crate::app::uploads::model::{self, ListFilter, Upload};
use crate::domain::FieldError;
use crate::domain::email::Email;
use crate::domain::ids::{BatchId, UserId};
use crate::infra::db::{DbConnection, repo};

pub const PAGE_SIZE: i64 = 50;
/// A history is counted this far (or to the end of the page asked for, if further): past
/// it, pages say "more than" rather than read every upload to give the exact number.
pub const COUNT_AT_MOST: i64 = 1_000;
/// 5 million uploads at 50 a page; beyond it, filter.
const MAX_PAGE: u32 = 100_000;
const MAX_USER_CHARS: usize = 254;

/// The query string as sent; empty fields (from a submitted form) mean "any".
#[derive(Debug, Default, Deserialize)]
pub struct RawQuery {
    pub user: Option<String>,
    pub status: Option<String>,
    pub page: Option<String>,
}

/// Whose uploads the viewer asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    Everyone,
    Id(UserId),
    Email(Email),
}

#[derive(Debug, Clone)]
pub struct Wanted {
    pub who: Who,
    pub status: Option<UploadStatus>,
    pub page: u32,
    /// The user filter as typed (kept for the links to other pages).
    user_text: String,
}

fn present(raw: &Option<String>) -> Option<&str> {
    raw.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl RawQuery {
    /// The filters, or every problem found. `all` says whether the viewer may see other
    /// people's uploads; for everyone else the user filter is ignored.
    pub fn parse(&self, all: bool) -> Result<Wanted, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut wanted = Wanted {
            who: Who::Everyone,
            status: None,
            page: 1,
            user_text: String::new(),
        };
        if let Some(user) = present(&self.user).filter(|_| all) {
            wanted.user_text = user.to_string();
            if let Some(id) = UserId::parse(user) {
                wanted.who = Who::Id(id);
            } else if user.chars().count() <= MAX_USER_CHARS
                && let Ok(email) = Email::parse(user)
            {
                wanted.who = Who::Email(email);
            } else {
                errors.push(FieldError::new(
                    "user",
                    "must be a user's email address or user id",
                ));
            }
        }
        if let Some(status) = present(&self.status) {
            match UploadStatus::parse(status) {
                Some(s) => wanted.status = Some(s),
                None => errors.push(FieldError::new("status", "is not a known status")),
            }
        }
        if let Some(page) = present(&self.page) {
            match page.parse::<u32>() {
                Ok(p)
                    if (1..=MAX_PAGE).contains(&p) && page.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    wanted.page = p;
                }
                _ => errors.push(FieldError::new(
                    "page",
                    format!("must be a whole number from 1 to {MAX_PAGE}"),
                )),
            }
        }
        if errors.is_empty() {
            Ok(wanted)
        } else {
            Err(errors)
        }
    }
}

impl Wanted {
    /// The query string for page `page` with the same filters.
    pub fn href(&self, page: u32) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        if !self.user_text.is_empty() {
            q.append_pair("user", &self.user_text);
        }
        if let Some(s) = self.status {
            q.append_pair("status", s.as_str());
        }
        if page > 1 {
            q.append_pair("page", &page.to_string());
        }
        let q = q.finish();
        if q.is_empty() {
            "/uploads".to_string()
        } else {
            format!("/uploads?{q}")
        }
    }
}

/// One row of the history: an upload on its own, or a batch with its files.
pub struct HistoryRow {
    pub upload: Option<UploadView>,
    pub batch: Option<BatchView>,
}

pub struct Listing {
    pub rows: Vec<HistoryRow>,
    pub total: i64,
    /// There are more than `total`: the count stopped there.
    pub more: bool,
    /// The user filter named an email nobody has.
    pub unknown_user: bool,
}

/// Emails of the given users, by id.
pub fn owner_emails(
    conn: &mut DbConnection,
    ids: &[&str],
) -> Result<HashMap<String, String>, AppError> {
    Ok(repo::users::emails_by_id(conn, ids)?)
}

/// Display names of every bucket, by id (few rows; one query instead of one per upload).
pub fn bucket_names(conn: &mut DbConnection) -> Result<HashMap<String, String>, AppError> {
    Ok(buckets::queries::all(conn)?
        .into_iter()
        .map(|b| (b.id.to_string(), b.display_name))
        .collect())
}

/// The owner column's text: the email, or the id of an account that no longer exists.
pub fn owner_label(emails: &HashMap<String, String>, upload: &Upload) -> String {
    emails
        .get(upload.user_id.as_str())
        .cloned()
        .unwrap_or_else(|| upload.user_id.to_string())
}

/// One page of uploads for `viewer`.
pub fn page(
    conn: &mut DbConnection,
    viewer: &Viewer,
    wanted: &Wanted,
    now: NaiveDateTime,
) -> Result<Listing, AppError> {
    let all = viewer.reach == Reach::All;
    let owner = match (&wanted.who, all) {
        (_, false) => Some(viewer.id.clone()),
        (Who::Everyone, true) => None,
        (Who::Id(id), true) => Some(id.clone()),
        (Who::Email(email), true) => match users::find_by_email(conn, email)? {
            Some(row) => Some(row.user_id()),
            None => {
                return Ok(Listing {
                    rows: Vec::new(),
                    total: 0,
                    more: false,
                    unknown_user: true,
                });
            }
        },
    };
    let filter = ListFilter {
        owner,
        status: wanted.status,
        bucket: None,
        batch_leads: true,
        limit: PAGE_SIZE,
        offset: i64::from(wanted.page - 1) * PAGE_SIZE,
    };
    // The count goes a little past this page, not through the whole history.
    let cap = (filter.offset + PAGE_SIZE).max(COUNT_AT_MOST) + 1;
    let counted = model::count_up_to(conn, &filter, cap)?;
    let (total, more) = if counted == cap {
        (cap - 1, true)
    } else {
        (counted, false)
    };
    let uploads = model::list(conn, &filter)?;
    let names = bucket_names(conn)?;
    let emails = if all {
        let ids: Vec<&str> = uploads.iter().map(|u| u.user_id.as_str()).collect();
        owner_emails(conn, &ids)?
    } else {
        HashMap::new()
    };
    let batch_ids: Vec<BatchId> = uploads.iter().filter_map(|u| u.batch_id.clone()).collect();
    let mut batches: HashMap<String, BatchStatus> = batches::statuses(conn, &batch_ids)?
        .into_iter()
        .map(|b| (b.batch.id.to_string(), b))
        .collect();
    let rows = uploads
        .iter()
        .map(|upload| {
            let owner = all.then(|| owner_label(&emails, upload));
            let bucket = names.get(upload.bucket_id.as_str()).map(String::as_str);
            let batch = upload
                .batch_id
                .as_ref()
                .and_then(|id| batches.remove(id.as_str()));
            match batch {
                Some(batch) => HistoryRow {
                    upload: None,
                    batch: Some(BatchView::new(&batch, bucket, owner)),
                },
                None => HistoryRow {
                    upload: Some(UploadView::new(
                        upload,
                        bucket,
                        owner,
                        now,
                        viewer.may_download(upload),
                    )),
                    batch: None,
                },
            }
        })
        .collect();
    Ok(Listing {
        rows,
        total,
        more,
        unknown_user: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(user: &str, status: &str, page: &str) -> RawQuery {
        RawQuery {
            user: Some(user.into()),
            status: Some(status.into()),
            page: Some(page.into()),
        }
    }

    #[test]
    fn filters_parse_and_round_trip_into_links() {
        let w = raw("Someone@Example.org", "active", "3")
            .parse(true)
            .unwrap();
        assert!(matches!(w.who, Who::Email(_)));
        assert_eq!(w.status, Some(UploadStatus::Active));
        assert_eq!(w.page, 3);
        assert_eq!(
            w.href(4),
            "/uploads?user=Someone%40Example.org&status=active&page=4"
        );
        let id = UserId::new();
        let w = raw(id.as_str(), "", "").parse(true).unwrap();
        assert_eq!(w.who, Who::Id(id));
        assert_eq!(w.href(1), format!("/uploads?user={}", w.user_text));
    }

    #[test]
    fn the_user_filter_is_only_for_viewers_who_see_everyone() {
        let w = raw("someone@example.org", "", "").parse(false).unwrap();
        assert_eq!(w.who, Who::Everyone);
        assert_eq!(w.href(1), "/uploads");
    }

    #[test]
    fn bad_filters_are_each_reported() {
        let errors = raw("not a user", "done", "0").parse(true).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["user", "status", "page"]);
        assert!(raw("", "", "+2").parse(true).is_err());
        assert!(raw("", "", "100001").parse(true).is_err());
    }
}
