//! What an upload request tells people, queued in the transaction of the event it reports
//! (so nothing is lost and nothing is sent for an event that did not happen): the owner
//! hears of the first file, of each folder a sender finishes, of each sender who finishes,
//! and a day before the request expires; a sender who gave an address gets their receipt.
//! Webhooks of the request's bucket get `request.received`.
//!
//! Owner messages say what the owner can already see (the title, counts, the receipt number)
//! and link to the request's page; file names stay in the portal. The sender's receipt lists
//! what they sent themselves. Nothing is attached.

use chrono::{NaiveDateTime, TimeDelta};
use serde_json::json;

use crate::app::buckets::size;
use crate::app::error::AppError;
use crate::app::notifications::email::{self, Link, Notice, OutgoingEmail};
use crate::app::notifications::webhooks::{self, WebhookEvent};
use crate::app::requests::receipt::{self, Receipt};
use crate::app::requests::{self, UploadRequest};
use crate::domain::email::Email;
use crate::domain::ids::RequestId;
use crate::infra::db::DbConnection;
use crate::infra::db::repo::{upload_requests as repo, users};

/// How long before its expiry an open request's owner is reminded.
pub const REMIND_BEFORE: TimeDelta = TimeDelta::days(1);
/// Requests reminded per pass of the worker.
const REMIND_BATCH: i64 = 50;

/// The portal's public address (`MEDPORT_PUBLIC_URL`) when one is set: links in messages
/// need it. Without it a message says where to look instead.
#[derive(Debug, Clone, Default)]
pub struct Portal(Option<String>);

impl Portal {
    pub fn of(settings: &crate::config::Settings) -> Self {
        Self(
            settings
                .public_url
                .as_ref()
                .map(|u| u.as_str().trim_end_matches('/').to_string()),
        )
    }

    fn request_page(&self, id: &RequestId) -> Option<String> {
        self.0.as_ref().map(|base| format!("{base}/requests/{id}"))
    }
}

fn owner_address(
    conn: &mut DbConnection,
    request: &UploadRequest,
) -> Result<Option<Email>, AppError> {
    Ok(users::by_id(conn, request.owner_id.as_str())?
        .filter(|u| !u.disabled)
        .and_then(|u| Email::parse(&u.email).ok()))
}

/// Queues a message to the request's owner (nothing when the owner can no longer sign in).
fn tell_owner(
    conn: &mut DbConnection,
    request: &UploadRequest,
    portal: &Portal,
    kind: &'static str,
    subject: String,
    lines: Vec<String>,
) -> Result<(), AppError> {
    let Some(to) = owner_address(conn, request)? else {
        return Ok(());
    };
    let url = portal.request_page(&request.id);
    let mut lines = lines;
    if url.is_none() {
        lines.push("Open medport and choose Requests to see it.".into());
    }
    let heading = format!("Upload request \u{201c}{}\u{201d}", request.title);
    let notice = Notice {
        heading: &heading,
        lines,
        quote: None,
        link: url.as_deref().map(|url| Link {
            label: "Open the request",
            url,
        }),
    };
    email::queue(
        conn,
        &OutgoingEmail::from_notice(to, kind, subject, &notice)?,
    )
}

/// A sender's file arrived whole; on the request's first file the owner is told.
pub fn file_received(
    conn: &mut DbConnection,
    id: &RequestId,
    now: NaiveDateTime,
    portal: &Portal,
) -> Result<(), AppError> {
    if !repo::file_received(conn, id.as_str(), now)? {
        return Ok(());
    }
    let Some(request) = requests::find(conn, id)? else {
        return Ok(());
    };
    tell_owner(
        conn,
        &request,
        portal,
        "request.first_file",
        format!("Files are arriving: {}", request.title),
        vec!["The first file sent through your upload request has arrived.".into()],
    )
}

/// A folder (batch) a sender declared is finished.
pub fn folder_finished(
    conn: &mut DbConnection,
    submission: &str,
    stored: usize,
    problems: usize,
    portal: &Portal,
) -> Result<(), AppError> {
    let Some(visit) = crate::infra::db::repo::request_submissions::find(conn, submission)? else {
        return Ok(());
    };
    let Some(request) = requests::find(conn, &RequestId::from_db(visit.request_id))? else {
        return Ok(());
    };
    let mut lines = vec![format!(
        "A sender finished sending a folder: {stored} files stored."
    )];
    if problems > 0 {
        lines.push(format!(
            "{problems} files had a problem; the request's page lists them."
        ));
    }
    tell_owner(
        conn,
        &request,
        portal,
        "request.folder",
        format!("A folder arrived: {}", request.title),
        lines,
    )
}

/// A sender finished: the owner is told, the sender gets their receipt when they gave an
/// address, and the bucket's webhooks get `request.received`.
pub fn received(
    conn: &mut DbConnection,
    request: &UploadRequest,
    receipt: &Receipt,
    submission: &str,
    portal: &Portal,
) -> Result<(), AppError> {
    let total = size::human(receipt.total_bytes());
    tell_owner(
        conn,
        request,
        portal,
        "request.received",
        format!("Files received: {}", request.title),
        vec![
            format!(
                "A sender finished sending {} files ({total}).",
                receipt.files.len()
            ),
            format!("Their receipt number is {}.", receipt.number),
        ],
    )?;
    if let Some(to) = receipt
        .sender
        .email
        .as_deref()
        .and_then(|a| Email::parse(a).ok())
    {
        let heading = format!("Receipt {}", receipt.number);
        let mut lines = vec![
            format!(
                "Your files for \u{201c}{}\u{201d} were received.",
                receipt.title
            ),
            format!(
                "Received {} UTC: {} files ({total}).",
                receipt.received_at.format("%Y-%m-%d %H:%M:%S"),
                receipt.files.len()
            ),
        ];
        for f in &receipt.files {
            lines.push(format!(
                "{}: {} bytes, SHA-256 {}",
                f.shown_name(),
                f.size,
                f.sha256.as_deref().unwrap_or("-")
            ));
        }
        lines.push(format!(
            "Audit record (SHA-256 chain hash): {}",
            receipt.audit_hash
        ));
        let notice = Notice {
            heading: &heading,
            lines,
            quote: None,
            link: None,
        };
        email::queue(
            conn,
            &OutgoingEmail::from_notice(
                to,
                "request.receipt",
                format!("Your receipt {}", receipt.number),
                &notice,
            )?,
        )?;
    }
    let uploads = receipt::digests(&receipt.files);
    webhooks::queue(
        conn,
        &request.bucket_id,
        WebhookEvent::RequestReceived,
        json!({
            "request": request.id.as_str(),
            "submission": submission,
            "receipt": receipt.number,
            "files": receipt.files.len(),
            "bytes": receipt.total_bytes(),
            "audit_hash": receipt.audit_hash,
            "uploads": uploads,
        }),
    )
}

/// Reminds the owners of open requests that expire within a day, once per expiry (a new
/// expiry earns a new reminder). Safe on several instances: the reminder is claimed by the
/// update that marks it.
pub fn remind_expiring(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    portal: &Portal,
) -> Result<usize, AppError> {
    let due = repo::due_reminders(conn, now, now + REMIND_BEFORE, REMIND_BATCH)?;
    let mut sent = 0;
    for row in due {
        let request = UploadRequest::from_row(row);
        let claimed = crate::infra::db::write_tx(conn, |conn| {
            if !repo::mark_reminded(conn, request.id.as_str(), now)? {
                return Ok::<_, AppError>(false);
            }
            tell_owner(
                conn,
                &request,
                portal,
                "request.expiring",
                format!("Closing tomorrow: {}", request.title),
                vec![format!(
                    "Your upload request closes at {} UTC. Extend it from its page if you are \
                     still waiting for files.",
                    request.expires_at.format("%Y-%m-%d %H:%M")
                )],
            )?;
            Ok(true)
        })?;
        sent += usize::from(claimed);
    }
    Ok(sent)
}
