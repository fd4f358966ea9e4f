//! The actions on one account. Each handler reads the request, asks `auth::user_admin` to
//! make the change, and answers: back to the account with a message, or its page again
//! with the reason the change was refused.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::pages::{Errors, one_user, user_page};
use super::{
    FormResult, ONE_TIME, fields, hash_off_thread, message, parse_id, see_other, user_path,
};
use crate::app::accounts::user_admin::{self, Action, Applied, Change};
use crate::app::error::AppError;
use crate::config::Settings;
use crate::domain::clock::Clock;
use crate::domain::email::Email;
use crate::domain::ids::UserId;
use crate::domain::password::Password;
use crate::domain::role::Role;
use crate::infra::db::Database;
use crate::web::extractors::Admin;
use crate::web::session;
use crate::web::session_cookie::SessionCookie;

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RoleForm {
    role: String,
}

pub async fn change_role(
    admin: Admin,
    path: web::Path<String>,
    form: FormResult<RoleForm>,
    db: web::Data<Database>,
    clock: web::Data<Clock>,
) -> Result<HttpResponse, AppError> {
    let id = parse_id(&path)?;
    match Role::parse(&fields(form)?.role) {
        Ok(role) => apply(&admin, &db, &clock, id, Action::SetRole(role), None).await,
        Err(e) => {
            let errors = Errors::role(message("Role", &e));
            user_page(
                &admin,
                &db,
                &clock,
                id,
                errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

pub async fn disable(
    admin: Admin,
    path: web::Path<String>,
    db: web::Data<Database>,
    clock: web::Data<Clock>,
) -> Result<HttpResponse, AppError> {
    let id = parse_id(&path)?;
    apply(&admin, &db, &clock, id, Action::Disable, None).await
}

pub async fn enable(
    admin: Admin,
    path: web::Path<String>,
    db: web::Data<Database>,
    clock: web::Data<Clock>,
) -> Result<HttpResponse, AppError> {
    let id = parse_id(&path)?;
    apply(&admin, &db, &clock, id, Action::Enable, None).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct PasswordForm {
    password: String,
}

#[allow(clippy::too_many_arguments)]
pub async fn reset_password(
    admin: Admin,
    req: HttpRequest,
    path: web::Path<String>,
    form: FormResult<PasswordForm>,
    db: web::Data<Database>,
    settings: web::Data<Settings>,
    clock: web::Data<Clock>,
    cookie: web::Data<SessionCookie>,
) -> Result<HttpResponse, AppError> {
    let id = parse_id(&path)?;
    let raw = fields(form)?.password;
    let lookup = id.clone();
    let user = db.run(move |conn| one_user(conn, &lookup)).await?;
    let email = Email::parse(&user.email).map_err(AppError::internal)?;
    let password = match Password::parse_new(&raw, &email, ONE_TIME) {
        Ok(password) => password,
        Err(e) => {
            let errors = Errors::password(message("Password", &e));
            return user_page(
                &admin,
                &db,
                &clock,
                id,
                errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    let hash = hash_off_thread(password, settings.bcrypt_cost).await?;
    let keep = own_session(&admin, &id, &req, &cookie);
    apply(&admin, &db, &clock, id, Action::ResetPassword(hash), keep).await
}

pub async fn revoke_sessions(
    admin: Admin,
    req: HttpRequest,
    path: web::Path<String>,
    db: web::Data<Database>,
    clock: web::Data<Clock>,
    cookie: web::Data<SessionCookie>,
) -> Result<HttpResponse, AppError> {
    let id = parse_id(&path)?;
    let keep = own_session(&admin, &id, &req, &cookie);
    apply(&admin, &db, &clock, id, Action::RevokeSessions, keep).await
}

/// Clears the TOTP seed, last used step and recovery codes and ends every session of the
/// user, for one who has lost their authenticator. Refused (409) on the admin's own account.
pub async fn reset_totp(
    admin: Admin,
    path: web::Path<String>,
    db: web::Data<Database>,
    clock: web::Data<Clock>,
) -> Result<HttpResponse, AppError> {
    let id = parse_id(&path)?;
    apply(&admin, &db, &clock, id, Action::ResetTotp, None).await
}

/// An admin resetting their own password or signing out everywhere keeps the session they
/// are using (a role change or disabling still ends it).
fn own_session(
    admin: &Admin,
    id: &UserId,
    req: &HttpRequest,
    cookie: &SessionCookie,
) -> Option<String> {
    (admin.0.id == *id)
        .then(|| cookie.session_hash(req))
        .flatten()
}

/// Runs one action and answers: back to the account with a message, or its page again with
/// the reason it was refused.
async fn apply(
    admin: &Admin,
    db: &Database,
    clock: &Clock,
    id: UserId,
    action: Action,
    keep_session: Option<String>,
) -> Result<HttpResponse, AppError> {
    let now = clock.now_naive();
    let Applied { action, result } =
        user_admin::apply(db, &admin.acting(), &id, action, keep_session, now).await?;
    let is_self = admin.0.id == id;
    match result {
        Ok(Change::Done {
            email,
            sessions_ended,
            api_keys_revoked,
        }) => {
            let text = done_message(&action, &email, sessions_ended, api_keys_revoked);
            session::flash(&admin.0.session, "success", text);
            // Their own role change or disabling ended the session in use.
            if is_self && matches!(action, Action::SetRole(_) | Action::Disable) {
                return Ok(see_other("/login"));
            }
            Ok(see_other(&user_path(&id)))
        }
        Ok(Change::Unchanged { email }) => {
            session::flash(&admin.0.session, "info", unchanged_message(&action, &email));
            Ok(see_other(&user_path(&id)))
        }
        Err(refusal) => {
            let message = refusal.message();
            let errors = match action {
                Action::SetRole(_) => Errors::role(message),
                Action::ResetTotp => Errors::totp(message),
                _ => Errors::status(message),
            };
            user_page(admin, db, clock, id, errors, StatusCode::CONFLICT).await
        }
    }
}

fn done_message(action: &Action, email: &str, ended: usize, keys_revoked: usize) -> String {
    match action {
        Action::SetRole(role) => format!(
            "{email} is now {}. They have been signed out everywhere.",
            role.label()
        ),
        Action::Disable => format!(
            "{email} is disabled and has been signed out everywhere. {}",
            keys_revoked_sentence(keys_revoked)
        ),
        Action::Enable => format!("{email} can sign in again."),
        Action::ResetPassword(_) => format!(
            "A one-time password is set for {email}. They have been signed out and must choose a new password when they next sign in."
        ),
        Action::RevokeSessions => format!("Ended {ended} session(s) of {email}."),
        Action::ResetTotp => format!(
            "Two-factor authentication is reset for {email}: their authenticator and recovery codes no longer work, and they have been signed out everywhere. They can sign in with their password alone and set it up again."
        ),
    }
}

fn keys_revoked_sentence(count: usize) -> String {
    match count {
        0 => "They had no API keys to revoke.".to_string(),
        1 => "1 API key revoked.".to_string(),
        n => format!("{n} API keys revoked."),
    }
}

fn unchanged_message(action: &Action, email: &str) -> String {
    match action {
        Action::SetRole(role) => format!("{email} is already {}.", role.label()),
        Action::Disable => format!("{email} is already disabled."),
        Action::Enable => format!("{email} is already enabled."),
        Action::ResetTotp => format!("{email} does not use two-factor authentication."),
        Action::ResetPassword(_) | Action::RevokeSessions => {
            format!("Nothing changed for {email}.")
        }
    }
}
