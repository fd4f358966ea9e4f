//! The e-mail outbox page and its "retry now" button.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use askama_web::WebTemplate;

use super::{email_id, render, see_other};
use crate::app::error::AppError;
use crate::app::notifications::email::{self, OutboxRow};
use crate::config::Settings;
use crate::domain::clock::Clock;
use crate::infra::db::Database;
use crate::web::extractors::Admin;
use crate::web::session;
use crate::web::timestamp::Timestamp;
use crate::web::views::Layout;

const PATH: &str = "/admin/notifications";

/// One message as listed: never its content.
pub struct Row {
    pub id: String,
    pub recipient: String,
    pub kind: String,
    pub failed: bool,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub queued: Timestamp,
    pub next_attempt: Timestamp,
}

impl Row {
    fn new(row: OutboxRow) -> Self {
        Self {
            failed: row.state == "failed",
            id: row.id,
            recipient: row.recipient,
            kind: row.kind,
            attempts: row.attempts,
            last_error: row.last_error,
            queued: Timestamp::minutes(row.created_at),
            next_attempt: Timestamp::minutes(row.next_attempt_at),
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "admin_notifications.html")]
pub struct OutboxPage {
    pub layout: Layout,
    /// The server and sender (never the password), or `None` when e-mail is not set up.
    pub smtp: Option<String>,
    pub queued: i64,
    pub failed: i64,
    pub rows: Vec<Row>,
}

pub async fn show(
    admin: Admin,
    db: web::Data<Database>,
    settings: web::Data<Settings>,
) -> Result<HttpResponse, AppError> {
    let outbox = db.run(email::outbox).await?;
    render(
        StatusCode::OK,
        &OutboxPage {
            layout: Layout::for_user(&admin.0, PATH),
            smtp: settings.smtp.as_ref().map(|s| s.describe()),
            queued: outbox.queued,
            failed: outbox.failed,
            rows: outbox.waiting.into_iter().map(Row::new).collect(),
        },
    )
}

pub async fn retry(
    admin: Admin,
    path: web::Path<String>,
    db: web::Data<Database>,
    clock: web::Data<Clock>,
) -> Result<HttpResponse, AppError> {
    let id = email_id(&path)?;
    let (acting, now) = (admin.acting(), clock.now_naive());
    let requeued = db
        .run(move |conn| email::retry_now(conn, &acting, &id, now))
        .await?;
    let (kind, text) = if requeued {
        (
            "success",
            "The message is queued again and will be sent shortly.",
        )
    } else {
        (
            "info",
            "That message is not waiting as failed (it may have been sent or retried already).",
        )
    };
    session::flash(&admin.0.session, kind, text);
    Ok(see_other(PATH))
}
