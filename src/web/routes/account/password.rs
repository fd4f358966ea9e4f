//! Changing one's own password: the current one, then a new one under the password rules.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use askama_web::WebTemplate;
use chrono::NaiveDateTime;
use serde::Deserialize;

use super::{
    Refused, load_for_check, record_event, record_wrong_secret, render, see_other, user_email,
    verify_password,
};
use crate::app::accounts::{password_change, passwords, throttle};
use crate::app::audit::{Event, Outcome};
use crate::app::error::AppError;
use crate::config::Settings;
use crate::domain::clock::Clock;
use crate::domain::password::{Password, PasswordPolicy};
use crate::infra::db::Database;
use crate::web::extractors::CurrentUser;
use crate::web::session;
use crate::web::session_cookie::SessionCookie;
use crate::web::views::Layout;

#[derive(Default)]
pub struct PasswordErrors {
    form: Option<String>,
    current: Option<String>,
    new: Option<String>,
    confirm: Option<String>,
}

impl PasswordErrors {
    fn any(&self) -> bool {
        self.form.is_some()
            || self.current.is_some()
            || self.new.is_some()
            || self.confirm.is_some()
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "account_password.html")]
pub struct PasswordPage {
    layout: Layout,
    must_change: bool,
    min_chars: usize,
    errors: PasswordErrors,
}

#[derive(Deserialize)]
pub struct PasswordForm {
    current_password: String,
    new_password: String,
    confirm_password: String,
}

fn password_form(user: &CurrentUser, errors: PasswordErrors) -> PasswordPage {
    PasswordPage {
        layout: Layout::for_user(user, "/account/password"),
        must_change: user.must_change_password,
        min_chars: if user.totp_enabled {
            Password::MIN_CHARS_WITH_TOTP
        } else {
            Password::MIN_CHARS
        },
        errors,
    }
}

pub async fn password_page(user: CurrentUser) -> Result<HttpResponse, AppError> {
    render(
        StatusCode::OK,
        &password_form(&user, PasswordErrors::default()),
    )
}

pub async fn change_password(
    req: HttpRequest,
    user: CurrentUser,
    form: web::Form<PasswordForm>,
    db: web::Data<Database>,
    settings: web::Data<Settings>,
    clock: web::Data<Clock>,
    cookie: web::Data<SessionCookie>,
) -> Result<HttpResponse, AppError> {
    let now = clock.now_naive();
    let new = match check_password_change(&db, &user, &form, now).await? {
        Ok(new) => new,
        Err((refused, errors)) => return refused.render(&password_form(&user, errors)),
    };
    let cost = settings.bcrypt_cost;
    let hash = web::block(move || passwords::hash(&new, cost))
        .await
        .map_err(AppError::internal)?
        .map_err(AppError::internal)?;
    store_new_password(&db, &user, hash, cookie.session_hash(&req), now).await?;
    // A change of credentials: a new session id for this browser.
    session::renew(&user.session)?;
    crate::web::session::flash(
        &user.session,
        "success",
        "Your password has been changed. Other devices signed in to your account have been signed out.",
    );
    Ok(see_other("/account"))
}

/// The new password, or the form's errors and status. While the account is throttled the
/// current password is not even checked; a wrong one counts toward the throttle. Every
/// field is checked, so the page shows every problem at once.
async fn check_password_change(
    db: &Database,
    user: &CurrentUser,
    form: &PasswordForm,
    now: NaiveDateTime,
) -> Result<Result<Password, (Refused, PasswordErrors)>, AppError> {
    let (row, blocked) = load_for_check(db, user, now).await?;
    if let Some(until) = blocked {
        record_event(db, user, "password.change", Outcome::Denied, "throttled").await?;
        let errors = PasswordErrors {
            form: Some(throttle::wait_message(until, now)),
            ..PasswordErrors::default()
        };
        return Ok(Err((Refused::Throttled { until, now }, errors)));
    }
    let current = Password::for_login(&form.current_password);
    let (current_ok, current) = verify_password(current, row.password_hash).await?;

    let mut errors = PasswordErrors::default();
    let policy = PasswordPolicy {
        totp_enabled: user.totp_enabled,
    };
    let new = match Password::parse_new(&form.new_password, &user_email(user)?, policy) {
        Ok(new) if current_ok && new.expose() == current.expose() => {
            errors.new = Some("Your new password must be different from your current one.".into());
            None
        }
        Ok(new) => Some(new),
        Err(e) => {
            errors.new = Some(format!("Your new password {}.", e.message));
            None
        }
    };
    if Password::for_login(&form.confirm_password).expose()
        != Password::for_login(&form.new_password).expose()
    {
        errors.confirm = Some("The two new passwords do not match.".into());
    }
    if !current_ok {
        errors.current = Some("Your current password is not correct.".into());
        let until = record_wrong_secret(db, user, now, "password.change", "wrong password").await?;
        if let Some(until) = until {
            errors.form = Some(throttle::wait_message(until, now));
            return Ok(Err((Refused::Throttled { until, now }, errors)));
        }
    }
    Ok(match new {
        Some(new) if !errors.any() => Ok(new),
        _ => Err((Refused::Invalid, errors)),
    })
}

/// Stores the new password (`app::accounts::password_change`).
async fn store_new_password(
    db: &Database,
    user: &CurrentUser,
    hash: String,
    keep_session: Option<String>,
    now: NaiveDateTime,
) -> Result<(), AppError> {
    let event = Event::new(user.actor(), "password.change", Outcome::Success)
        .origin(user.origin())
        .target("user", user.id.as_str())
        .details(serde_json::json!({ "was_required": user.must_change_password }));
    password_change::apply(
        db,
        user.id.clone(),
        &user.email,
        hash,
        keep_session,
        now,
        event,
    )
    .await
}
