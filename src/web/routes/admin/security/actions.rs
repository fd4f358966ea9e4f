//! The three controls. Each handler checks the typed phrase, asks `crate::app::incident` to act,
//! and answers: back to the page with a message, the page with the bucket results, or the
//! page again with the reason in the section it is about (422), nothing changed.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::pages::{Answer, Errors, security_page};
use super::{FormResult, NAV, fields, see_other};
use crate::app::error::AppError;
use crate::app::incident::api_keys::{self, KeyScope, Revoked};
use crate::app::incident::confirm::{Confirmation, Control};
use crate::app::incident::{buckets, sessions};
use crate::config::Settings;
use crate::domain::clock::Clock;
use crate::infra::crypto::secrets::Keyring;
use crate::infra::db::Database;
use crate::web::extractors::Admin;
use crate::web::routes::admin::buckets::opener;
use crate::web::session;
use crate::web::session_cookie::SessionCookie;

const UNKNOWN_USER: &str = "Choose all users or one user from the list.";

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ConfirmForm {
    confirm: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct KeysForm {
    confirm: String,
    scope: String,
}

/// The page again with `errors`, the key scope as chosen.
async fn refused(
    admin: &Admin,
    req: &HttpRequest,
    db: &Database,
    clock: &Clock,
    cookie: &SessionCookie,
    errors: Errors,
    scope: String,
) -> Result<HttpResponse, AppError> {
    let answer = Answer {
        errors,
        scope,
        revalidation: None,
    };
    let status = StatusCode::UNPROCESSABLE_ENTITY;
    security_page(admin, req, db, clock, cookie, answer, status).await
}

/// Ends every session but the admin's own.
pub async fn sign_out_everyone(
    admin: Admin,
    req: HttpRequest,
    form: FormResult<ConfirmForm>,
    db: web::Data<Database>,
    clock: web::Data<Clock>,
    cookie: web::Data<SessionCookie>,
) -> Result<HttpResponse, AppError> {
    let typed = fields(form)?.confirm;
    if let Err(e) = Confirmation::parse(Control::SignOutEveryone, &typed) {
        let errors = Errors {
            sessions: Some(e.message),
            ..Errors::default()
        };
        return refused(&admin, &req, &db, &clock, &cookie, errors, "all".into()).await;
    }
    let keep = cookie.session_hash(&req);
    let by = admin.0.changed_by();
    let now = clock.now_naive();
    let ended = db
        .run(move |conn| sessions::end_all(conn, keep.as_deref(), &by, now))
        .await?;
    let text = format!(
        "Ended {ended} session(s): everyone else must sign in again. You are still signed in here."
    );
    session::flash(&admin.0.session, "success", text);
    Ok(see_other(NAV))
}

/// Revokes every API key, or every key of one user.
pub async fn revoke_api_keys(
    admin: Admin,
    req: HttpRequest,
    form: FormResult<KeysForm>,
    db: web::Data<Database>,
    clock: web::Data<Clock>,
    cookie: web::Data<SessionCookie>,
) -> Result<HttpResponse, AppError> {
    let KeysForm { confirm, scope } = fields(form)?;
    let checked = KeyScope::parse(&scope)
        .and_then(|scope| Confirmation::parse(Control::RevokeApiKeys, &confirm).map(|_| scope));
    let key_scope = match checked {
        Ok(key_scope) => key_scope,
        Err(e) => {
            let errors = Errors {
                api_keys: Some(e.message),
                ..Errors::default()
            };
            return refused(&admin, &req, &db, &clock, &cookie, errors, scope).await;
        }
    };
    let by = admin.0.changed_by();
    let now = clock.now_naive();
    let revoked = db
        .run(move |conn| api_keys::revoke_all(conn, &key_scope, &by, now))
        .await;
    let Revoked { count, owner } = match revoked {
        Ok(revoked) => revoked,
        // The user chosen no longer exists.
        Err(AppError::NotFound) => {
            let errors = Errors {
                api_keys: Some(UNKNOWN_USER.into()),
                ..Errors::default()
            };
            return refused(&admin, &req, &db, &clock, &cookie, errors, scope).await;
        }
        Err(e) => return Err(e),
    };
    let whose = owner.unwrap_or_else(|| "every user".into());
    let text = format!("Revoked {count} API key(s) of {whose}: they are refused from now on.");
    session::flash(&admin.0.session, "success", text);
    Ok(see_other(NAV))
}

/// Runs "test connection" on every bucket and shows the results.
#[allow(clippy::too_many_arguments)]
pub async fn revalidate_buckets(
    admin: Admin,
    req: HttpRequest,
    form: FormResult<ConfirmForm>,
    db: web::Data<Database>,
    clock: web::Data<Clock>,
    cookie: web::Data<SessionCookie>,
    settings: web::Data<Settings>,
    keyring: web::Data<Keyring>,
) -> Result<HttpResponse, AppError> {
    let typed = fields(form)?.confirm;
    if let Err(e) = Confirmation::parse(Control::RevalidateBuckets, &typed) {
        let errors = Errors {
            buckets: Some(e.message),
            ..Errors::default()
        };
        return refused(&admin, &req, &db, &clock, &cookie, errors, "all".into()).await;
    }
    let revalidation = buckets::revalidate_all(&opener(&db, &settings, &keyring)).await?;
    let by = admin.0.changed_by();
    let revalidation = db
        .run(move |conn| {
            buckets::record(conn, &revalidation, &by)?;
            Ok::<_, AppError>(revalidation)
        })
        .await?;
    let answer = Answer {
        scope: "all".into(),
        revalidation: Some(revalidation),
        ..Answer::default()
    };
    security_page(&admin, &req, &db, &clock, &cookie, answer, StatusCode::OK).await
}
