//! Turning two-factor authentication on: a seed shown as a QR code, held sealed in the
//! session until a code from it is entered, then stored with fresh recovery codes.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use askama_web::WebTemplate;
use data_encoding::BASE64;
use secrecy::ExposeSecret;

use super::second_factor::WRONG_CODE;
use super::{CodeForm, RecoveryCodesPage};
use crate::app::accounts::recovery_codes::{self, StoredCodes};
use crate::app::accounts::totp::{self, TotpSecret};
use crate::app::accounts::totp_changes::{self, Enrolment};
use crate::app::audit::Outcome;
use crate::app::error::AppError;
use crate::domain::clock::Clock;
use crate::infra::crypto::secrets::{self, Keyring, SealContext};
use crate::infra::db::Database;
use crate::web::extractors::CurrentUser;
use crate::web::routes::account::{Refused, record_event, render, see_other};
use crate::web::session;
use crate::web::session_cookie::SessionCookie;
use crate::web::views::Layout;

/// Session state key for a TOTP seed shown but not yet confirmed. Held sealed, so the
/// `sessions` table never contains a usable seed. The `pending_` prefix makes the session
/// store drop it if the session is ended while a request runs.
const PENDING_TOTP: &str = "pending_totp";
const TOTP_ISSUER: &str = "medport";

#[derive(Template, WebTemplate)]
#[template(path = "account_totp_enrol.html")]
pub struct TotpEnrolPage {
    layout: Layout,
    email: String,
    qr: String,
    secret_groups: String,
    error: Option<String>,
}

pub async fn enrol_totp(
    req: HttpRequest,
    user: CurrentUser,
    form: web::Form<CodeForm>,
    db: web::Data<Database>,
    clock: web::Data<Clock>,
    keyring: web::Data<Keyring>,
    cookie: web::Data<SessionCookie>,
) -> Result<HttpResponse, AppError> {
    if user.totp_enabled {
        return Ok(see_other("/account/totp"));
    }
    let Some(secret) = pending_secret(&user, &keyring) else {
        crate::web::session::flash(
            &user.session,
            "info",
            "The set-up had expired. Scan this new QR code and enter the code it shows.",
        );
        return Ok(see_other("/account/totp"));
    };
    let Some(step) = totp::verify(&secret, &form.code, clock.unix()) else {
        record_event(&db, &user, "totp.enrol", Outcome::Failure, "wrong code").await?;
        return Refused::Invalid.render(&enrol_page(&user, &secret, Some(WRONG_CODE.into()))?);
    };

    let sealed = secrets::seal(&keyring, &seed_context(&user), secret.expose())
        .map_err(AppError::internal)?;
    let codes = recovery_codes::generate().map_err(AppError::internal)?;
    let stored = StoredCodes::from_codes(&codes).to_json();
    let keep = cookie.session_hash(&req);
    let now = clock.now_naive();
    let enrolment = Enrolment {
        sealed_seed: sealed,
        step,
        recovery_codes: stored,
        keep_session: keep,
        is_admin: user.role == crate::domain::role::Role::Admin,
    };
    let owner = super::second_factor::owner(&user);
    let enrolled = totp_changes::enrol(&db, &owner, enrolment, now).await?;
    user.session.remove(PENDING_TOTP);
    if !enrolled {
        return Ok(see_other("/account/totp"));
    }
    session::renew(&user.session)?;
    render(
        StatusCode::OK,
        &RecoveryCodesPage {
            layout: Layout::for_user(&user, "/account/totp"),
            heading: "Two-factor authentication is on",
            codes,
        },
    )
}

pub(super) fn enrol_page(
    user: &CurrentUser,
    secret: &TotpSecret,
    error: Option<String>,
) -> Result<TotpEnrolPage, AppError> {
    let uri = totp::otpauth_uri(secret, TOTP_ISSUER, &user.email);
    let qr = totp::qr_svg_data_uri(&uri).map_err(AppError::internal)?;
    Ok(TotpEnrolPage {
        layout: Layout::for_user(user, "/account/totp"),
        email: user.email.clone(),
        qr,
        secret_groups: group_in_fours(&secret.to_base32()),
        error,
    })
}

/// `ABCD EFGH ...`: easier to type from the screen.
fn group_in_fours(text: &str) -> String {
    text.as_bytes()
        .chunks(4)
        .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn pending_context(user: &CurrentUser) -> SealContext<'_> {
    SealContext {
        table: "sessions",
        row_id: user.id.as_str(),
        field: "pending_totp",
    }
}

fn seed_context(user: &CurrentUser) -> SealContext<'_> {
    SealContext {
        table: "users",
        row_id: user.id.as_str(),
        field: "totp_secret",
    }
}

/// Generates a seed and keeps it, sealed, in the session until it is confirmed.
pub(super) fn start_pending(user: &CurrentUser, keyring: &Keyring) -> Result<TotpSecret, AppError> {
    let secret = TotpSecret::generate().map_err(AppError::internal)?;
    let sealed = secrets::seal(keyring, &pending_context(user), secret.expose())
        .map_err(AppError::internal)?;
    user.session
        .insert(PENDING_TOTP, BASE64.encode(&sealed))
        .map_err(|e| AppError::internal(format!("session insert: {e}")))?;
    Ok(secret)
}

/// The seed being enrolled, if this session has one that still opens.
pub(super) fn pending_secret(user: &CurrentUser, keyring: &Keyring) -> Option<TotpSecret> {
    let encoded: String = user.session.get(PENDING_TOTP).ok().flatten()?;
    let sealed = BASE64.decode(encoded.as_bytes()).ok()?;
    let seed = secrets::open(keyring, &pending_context(user), &sealed).ok()?;
    TotpSecret::from_bytes(seed.expose_secret())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_grouped_for_typing() {
        assert_eq!(
            group_in_fours("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
            "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ"
        );
        assert_eq!(group_in_fours("ABCDEF"), "ABCD EF");
    }
}
