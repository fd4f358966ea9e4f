//! The incident response page: what each control would touch (read only), the forms, and
//! the bucket revalidation table when the page answers that form.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use askama_web::WebTemplate;

use super::{NAV, render};
use crate::app::buckets::opener::STEPS;
use crate::app::error::AppError;
use crate::app::incident::api_keys::{self, KeyHolder};
use crate::app::incident::buckets::{BUCKET_LIMIT, Revalidation};
use crate::app::incident::confirm::Control;
use crate::app::incident::sessions;
use crate::domain::clock::Clock;
use crate::infra::db::Database;
use crate::web::extractors::Admin;
use crate::web::session_cookie::SessionCookie;
use crate::web::views::Layout;

/// Messages shown in the section they are about.
#[derive(Default)]
pub struct Errors {
    pub sessions: Option<String>,
    pub api_keys: Option<String>,
    pub buckets: Option<String>,
}

/// What the page shows besides the forms, and what a form sent back keeps.
#[derive(Default)]
pub struct Answer {
    pub errors: Errors,
    /// The key scope chosen, kept when the form comes back.
    pub scope: String,
    pub revalidation: Option<Revalidation>,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin_security.html")]
pub struct SecurityPage {
    pub layout: Layout,
    /// Live sessions other than the admin's own.
    pub other_sessions: i64,
    pub unrevoked_keys: i64,
    pub holders: Vec<KeyHolder>,
    pub buckets: usize,
    pub answer: Answer,
}

impl SecurityPage {
    pub fn sign_out_phrase(&self) -> &'static str {
        Control::SignOutEveryone.phrase()
    }

    pub fn revoke_phrase(&self) -> &'static str {
        Control::RevokeApiKeys.phrase()
    }

    pub fn revalidate_phrase(&self) -> &'static str {
        Control::RevalidateBuckets.phrase()
    }

    pub fn scope_is(&self, value: &str) -> bool {
        self.answer.scope == value
    }

    pub fn step_labels(&self) -> &'static [&'static str] {
        &STEPS
    }

    pub fn bucket_limit_secs(&self) -> u64 {
        BUCKET_LIMIT.as_secs()
    }
}

pub async fn show(
    admin: Admin,
    req: HttpRequest,
    db: web::Data<Database>,
    clock: web::Data<Clock>,
    cookie: web::Data<SessionCookie>,
) -> Result<HttpResponse, AppError> {
    let answer = Answer {
        scope: "all".into(),
        ..Answer::default()
    };
    security_page(&admin, &req, &db, &clock, &cookie, answer, StatusCode::OK).await
}

/// The page, with the messages or results of a form it answers.
pub(super) async fn security_page(
    admin: &Admin,
    req: &HttpRequest,
    db: &Database,
    clock: &Clock,
    cookie: &SessionCookie,
    answer: Answer,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let own = cookie.session_hash(req);
    let now = clock.now_naive();
    let (other_sessions, unrevoked_keys, holders, buckets) = db
        .run(move |conn| {
            Ok::<_, AppError>((
                sessions::count_live(conn, own.as_deref(), now)?,
                api_keys::count_unrevoked(conn)?,
                api_keys::holders(conn)?,
                crate::app::buckets::queries::all(conn)?.len(),
            ))
        })
        .await?;
    render(
        status,
        &SecurityPage {
            layout: Layout::for_user(&admin.0, NAV),
            other_sessions,
            unrevoked_keys,
            holders,
            buckets,
            answer,
        },
    )
}
