//! E-mail: queued in the caller's transaction (the notice commits with the event it
//! reports), sent by the worker, and listed for admins.
//!
//! A message is sent as text and HTML. Values that come from people (a sender's name or
//! message) go into [`Notice`], whose HTML is rendered by an askama template that escapes
//! every value, and whose text part keeps them literal. Messages link back to the portal;
//! files are never attached.

use askama::Template;
use chrono::NaiveDateTime;
use serde_json::json;

use super::Notifier;
use super::retry::Next;
use crate::app::accounts::ActingAdmin;
use crate::app::audit::{self, Actor, Event, Outcome};
use crate::app::error::AppError;
use crate::domain::email::Email;
use crate::domain::ids::EmailId;
use crate::infra::db::repo::email_outbox as repo;
use crate::infra::db::{DbConnection, write_tx};
use crate::infra::smtp::{Mail, SmtpError};

const QUEUED: &str = "queued";
const SENT: &str = "sent";
const FAILED: &str = "failed";

/// Messages claimed at a time by one worker.
const BATCH: i64 = 20;
/// Longest subject kept: one line in a mail client.
const MAX_SUBJECT: usize = 200;

/// A message to queue. `kind` names what it is about (`request.receipt`, ...) for the
/// audit trail and the admin page; it is never shown to the recipient.
#[derive(Debug, Clone)]
pub struct OutgoingEmail {
    pub to: Email,
    pub kind: &'static str,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl OutgoingEmail {
    /// A message whose two parts are `notice`, rendered.
    pub fn from_notice(
        to: Email,
        kind: &'static str,
        subject: impl Into<String>,
        notice: &Notice<'_>,
    ) -> Result<Self, AppError> {
        Ok(Self {
            to,
            kind,
            subject: subject.into(),
            text: notice.text()?,
            html: notice.html()?,
        })
    }
}

/// A link back to the portal.
#[derive(Debug, Clone)]
pub struct Link<'a> {
    pub label: &'a str,
    pub url: &'a str,
}

/// The content of a message: a heading, paragraphs, an optional quoted text (a sender's
/// message, line breaks kept) and an optional link. Every value is plain text: the HTML
/// part escapes it, the text part keeps it as it is.
#[derive(Debug, Clone, Default)]
pub struct Notice<'a> {
    pub heading: &'a str,
    pub lines: Vec<String>,
    pub quote: Option<&'a str>,
    pub link: Option<Link<'a>>,
}

#[derive(Template)]
#[template(path = "email/notice.html")]
struct HtmlPart<'a, 'n> {
    notice: &'a Notice<'n>,
}

#[derive(Template)]
#[template(path = "email/notice.txt")]
struct TextPart<'a, 'n> {
    notice: &'a Notice<'n>,
}

impl Notice<'_> {
    pub fn html(&self) -> Result<String, AppError> {
        HtmlPart { notice: self }
            .render()
            .map_err(AppError::internal)
    }

    pub fn text(&self) -> Result<String, AppError> {
        TextPart { notice: self }
            .render()
            .map_err(AppError::internal)
    }
}

/// Queues `msg` on `conn`, inside the caller's write transaction, so the message exists
/// exactly when the event it reports does. Nothing is sent here: without an SMTP server
/// the message simply waits (the admin page says so).
pub fn queue(conn: &mut DbConnection, msg: &OutgoingEmail) -> Result<(), AppError> {
    let now = chrono::Utc::now().naive_utc();
    let id = EmailId::new();
    let subject = one_line(&msg.subject);
    repo::insert(
        conn,
        &repo::NewRow {
            id: id.as_str(),
            recipient: msg.to.as_str(),
            subject: &subject,
            body_text: &msg.text,
            body_html: &msg.html,
            kind: msg.kind,
            state: QUEUED,
            next_attempt_at: now,
            created_at: now,
        },
    )?;
    Ok(())
}

/// A subject on one line (no header folding tricks), at most [`MAX_SUBJECT`] characters.
fn one_line(subject: &str) -> String {
    subject
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_SUBJECT)
        .collect::<String>()
        .trim()
        .to_string()
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SendReport {
    pub sent: u32,
    pub retrying: u32,
    pub failed: u32,
}

/// Sends what is due, one batch. Without an SMTP server nothing is claimed.
pub(super) async fn send_due(n: &Notifier) -> Result<SendReport, AppError> {
    let mut report = SendReport::default();
    let Some(mailer) = &n.mailer else {
        return Ok(report);
    };
    let (token, now) = (super::claim_token()?, n.clock.now_naive());
    let owner = token.clone();
    let claimed =
        n.db.run(move |conn| {
            if !repo::any_due(conn, QUEUED, now)? {
                return Ok(Vec::new());
            }
            write_tx(conn, |conn| {
                let ids = repo::claim_due(conn, QUEUED, now, BATCH, &owner, now + super::LEASE)?;
                Ok::<_, AppError>(repo::claimed(conn, &ids, &owner)?)
            })
        })
        .await?;
    for msg in claimed {
        let sent = mailer
            .send(&Mail {
                to: &msg.recipient,
                subject: &msg.subject,
                text: &msg.body_text,
                html: &msg.body_html,
            })
            .await;
        let outcome = record(n, msg, &token, sent).await?;
        match outcome {
            Some(SENT) => report.sent += 1,
            Some(FAILED) => report.failed += 1,
            Some(_) => report.retrying += 1,
            None => {}
        }
    }
    Ok(report)
}

/// Writes the attempt's outcome (with its audit event when final); the state written, or
/// `None` when the claim was lost meanwhile.
async fn record(
    n: &Notifier,
    msg: repo::Claimed,
    token: &str,
    sent: Result<(), SmtpError>,
) -> Result<Option<&'static str>, AppError> {
    let now = n.clock.now_naive();
    let attempts = msg.attempts.saturating_add(1);
    let (state, next_at, error) = match &sent {
        Ok(()) => (SENT, now, None),
        Err(e) => {
            let permanent = matches!(e, SmtpError::Unsendable(_));
            match n.schedule.after_failure(attempts) {
                Next::RetryAfter(wait) if !permanent => {
                    (QUEUED, later(now, wait), Some(e.to_string()))
                }
                _ => (FAILED, now, Some(e.to_string())),
            }
        }
    };
    if let Some(error) = &error {
        tracing::warn!(email = %msg.id, kind = %msg.kind, attempt = attempts, %error, state,
            "e-mail not accepted by the SMTP server");
    }
    let token = token.to_string();
    n.db.run(move |conn| {
        write_tx(conn, |conn| {
            let written = repo::record(
                conn,
                &msg.id,
                &token,
                &repo::Attempt {
                    state,
                    attempts,
                    next_at,
                    error: error.as_deref(),
                    sent_at: (state == SENT).then_some(now),
                },
            )?;
            if !written {
                return Ok(None);
            }
            let (action, outcome) = match state {
                SENT => ("email.sent", Outcome::Success),
                FAILED => ("email.failed", Outcome::Failure),
                _ => return Ok(Some(state)),
            };
            // Ids and kind only: the address and the content stay out of the trail.
            audit::record(
                conn,
                &Event::new(Actor::system(), action, outcome)
                    .target("email", msg.id.as_str())
                    .details(json!({ "kind": msg.kind, "attempts": attempts })),
            )?;
            Ok::<_, AppError>(Some(state))
        })
    })
    .await
}

pub(super) fn later(now: NaiveDateTime, wait: std::time::Duration) -> NaiveDateTime {
    now + chrono::TimeDelta::from_std(wait).unwrap_or(chrono::TimeDelta::hours(1))
}

/// One message as the admin page lists it (never its content).
pub use repo::Listed as OutboxRow;

/// What the admin page shows of the outbox.
#[derive(Debug, Clone)]
pub struct Outbox {
    pub queued: i64,
    pub failed: i64,
    /// The newest queued and failed messages.
    pub waiting: Vec<OutboxRow>,
}

/// Messages the page lists at most.
const LISTED: i64 = 100;

pub fn outbox(conn: &mut DbConnection) -> Result<Outbox, AppError> {
    Ok(Outbox {
        queued: repo::count_in(conn, QUEUED)?,
        failed: repo::count_in(conn, FAILED)?,
        waiting: repo::list(conn, &[QUEUED, FAILED], LISTED)?,
    })
}

/// An admin's "retry now" on a failed message: queued again, due at once, with a fresh
/// series of attempts. False when the message is not (or no longer) failed.
pub fn retry_now(
    conn: &mut DbConnection,
    admin: &ActingAdmin,
    id: &EmailId,
    now: NaiveDateTime,
) -> Result<bool, AppError> {
    write_tx(conn, |conn| {
        if !repo::requeue(conn, id.as_str(), FAILED, QUEUED, now)? {
            return Ok(false);
        }
        audit::record(
            conn,
            &Event::new(admin.actor.clone(), "email.retry", Outcome::Success)
                .origin(admin.origin.clone())
                .target("email", id.as_str()),
        )?;
        Ok(true)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_escaped_in_html_and_literal_in_text() {
        let notice = Notice {
            heading: "Files from <b>Dr. O'Neil</b>",
            lines: vec!["3 files & a note".into()],
            quote: Some("<script>alert(1)</script>\nsecond line"),
            link: Some(Link {
                label: "Open",
                url: "https://medport.example.org/requests/1?a=1&b=2",
            }),
        };
        let html = notice.html().unwrap();
        assert!(
            html.contains("Files from &#60;b&#62;Dr. O&#39;Neil&#60;/b&#62;"),
            "{html}"
        );
        assert!(
            html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
            "{html}"
        );
        assert!(
            !html.contains("<script>") && !html.contains("<b>Dr"),
            "{html}"
        );
        assert!(html.contains("3 files &#38; a note"), "{html}");
        let text = notice.text().unwrap();
        assert!(text.starts_with("Files from <b>Dr. O'Neil</b>\n"), "{text}");
        assert!(
            text.contains("> <script>alert(1)</script>\n> second line\n"),
            "{text}"
        );
        assert!(
            text.contains("Open: https://medport.example.org/requests/1?a=1&b=2"),
            "{text}"
        );
    }

    #[test]
    fn subjects_are_one_bounded_line() {
        assert_eq!(
            one_line("Files\r\nBcc: x@example.org"),
            "Files  Bcc: x@example.org"
        );
        assert_eq!(one_line(&"x".repeat(500)).len(), MAX_SUBJECT);
    }
}
