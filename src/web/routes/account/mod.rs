//! The signed-in user's own account: overview, password change, sessions and two-factor
//! authentication.
//!
//! Every change commits with its audit event in one transaction. Forms that check a
//! password or a code count failures against the same per-account throttle as sign-in, so
//! a borrowed session is no faster a guessing tool than the sign-in form. The session id
//! is renewed after every change to how the account signs in.
//!
//! This module holds the route table, the overview page and the steps the forms share;
//! each page group has its own file.

mod password;
mod sessions;
mod totp;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};
use askama::Template;
use askama_web::WebTemplate;
use chrono::NaiveDateTime;

use crate::app::accounts::recovery_codes::StoredCodes;
use crate::app::accounts::{passwords, throttle, users};
use crate::app::audit::{self, Event, Outcome};
use crate::app::error::AppError;
use crate::domain::email::Email;
use crate::domain::password::Password;
use crate::infra::db::Database;
use crate::web::extractors::CurrentUser;
use crate::web::respond::{render, see_other};
use crate::web::timestamp::Timestamp;
use crate::web::views::Layout;

crate::route_table! {
    GET "/account" => account_page,
    GET "/account/password" => password::password_page,
    POST "/account/password" => password::change_password,
    GET "/account/sessions" => sessions::sessions_page,
    POST "/account/sessions/revoke-others" => sessions::revoke_other_sessions,
    POST "/account/sessions/{id}/revoke" => sessions::revoke_session,
    GET "/account/totp" => totp::totp_page,
    POST "/account/totp" => totp::enrol_totp,
    POST "/account/totp/recovery-codes" => totp::regenerate_recovery_codes,
    POST "/account/totp/disable" => totp::disable_totp,
}

// ---------------------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------------------

/// A form shown again with its messages: 422 for bad input, 403 for a refused action, 429
/// with `Retry-After` while the account is throttled.
#[derive(Debug, Clone, Copy)]
enum Refused {
    Invalid,
    Forbidden,
    Throttled {
        until: NaiveDateTime,
        now: NaiveDateTime,
    },
}

impl Refused {
    fn throttled_if(until: Option<NaiveDateTime>, now: NaiveDateTime) -> Self {
        until.map_or(Self::Invalid, |until| Self::Throttled { until, now })
    }

    fn render(self, page: &impl Template) -> Result<HttpResponse, AppError> {
        let status = match self {
            Self::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
        };
        let mut res = render(status, page)?;
        if let Self::Throttled { until, now } = self {
            let wait = (until - now).num_seconds().max(1);
            res.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(wait));
        }
        Ok(res)
    }
}

// ---------------------------------------------------------------------------------------
// Overview
// ---------------------------------------------------------------------------------------

#[derive(Template, WebTemplate)]
#[template(path = "account.html")]
pub struct AccountPage {
    layout: Layout,
    email: String,
    role: &'static str,
    password_changed: Timestamp,
    totp_enabled: bool,
    recovery_codes_left: usize,
}

pub async fn account_page(
    user: CurrentUser,
    db: web::Data<Database>,
) -> Result<HttpResponse, AppError> {
    let row = load_user(&db, &user).await?;
    render(
        StatusCode::OK,
        &AccountPage {
            layout: Layout::for_user(&user, "/account"),
            email: user.email.clone(),
            role: user.role.label(),
            password_changed: Timestamp::minutes(row.password_changed_at),
            totp_enabled: row.totp_enabled(),
            recovery_codes_left: recovery_codes_left(&row),
        },
    )
}

// ---------------------------------------------------------------------------------------
// Shared steps
// ---------------------------------------------------------------------------------------

fn user_email(user: &CurrentUser) -> Result<Email, AppError> {
    Email::parse(&user.email).map_err(|_| AppError::internal("stored email does not parse"))
}

fn recovery_codes_left(row: &users::UserRow) -> usize {
    row.recovery_codes
        .as_deref()
        .and_then(StoredCodes::from_json)
        .map_or(0, |codes| codes.remaining())
}

async fn load_user(db: &Database, user: &CurrentUser) -> Result<users::UserRow, AppError> {
    let id = user.id.clone();
    db.run(move |conn| users::find_by_id(conn, &id).map_err(AppError::from))
        .await?
        // Removed since the extractor looked: treat as signed out.
        .ok_or_else(|| AppError::SeeOther("/login".into()))
}

/// The account row and, if the account is throttled, until when.
async fn load_for_check(
    db: &Database,
    user: &CurrentUser,
    now: NaiveDateTime,
) -> Result<(users::UserRow, Option<NaiveDateTime>), AppError> {
    let id = user.id.clone();
    let key = throttle::key_for_input(&user.email);
    let (row, blocked) = db
        .run(move |conn| {
            Ok::<_, AppError>((
                users::find_by_id(conn, &id)?,
                throttle::blocked_until(conn, &key, now)?,
            ))
        })
        .await?;
    let row = row.ok_or_else(|| AppError::SeeOther("/login".into()))?;
    Ok((row, blocked))
}

/// bcrypt on the blocking pool; hands the candidate back for any further comparison.
async fn verify_password(candidate: Password, hash: String) -> Result<(bool, Password), AppError> {
    web::block(move || (passwords::verify(&candidate, &hash), candidate))
        .await
        .map_err(AppError::internal)
}

/// Counts a wrong password against the account's sign-in throttle and audits it; returns
/// the wait if the account is now throttled.
async fn record_wrong_secret(
    db: &Database,
    user: &CurrentUser,
    now: NaiveDateTime,
    action: &'static str,
    reason: &'static str,
) -> Result<Option<NaiveDateTime>, AppError> {
    let key = throttle::key_for_input(&user.email);
    let event = Event::new(user.actor(), action, Outcome::Failure)
        .origin(user.origin())
        .target("user", user.id.as_str())
        .details(serde_json::json!({ "reason": reason }));
    let throttled = Event::new(user.actor(), "login.throttled", Outcome::Denied)
        .origin(user.origin())
        .target("user", user.id.as_str());
    Ok(throttle::record_audited_failure(db, key, now, event, throttled).await?)
}

/// Audits a refusal that changes nothing else.
async fn record_event(
    db: &Database,
    user: &CurrentUser,
    action: &'static str,
    outcome: Outcome,
    reason: &'static str,
) -> Result<(), AppError> {
    let event = Event::new(user.actor(), action, outcome)
        .origin(user.origin())
        .target("user", user.id.as_str())
        .details(serde_json::json!({ "reason": reason }));
    db.run(move |conn| audit::record(conn, &event).map_err(AppError::from))
        .await?;
    Ok(())
}
