//! Turning two-factor authentication on: a seed shown as a QR code, held sealed in the
//! session until a code from it is entered, then stored with fresh recovery codes.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use askama_web::WebTemplate;
use data_encoding::BASE64;
use diesel::prelude::*;
use secrecy::ExposeSecret;

use super::second_factor::WRONG_CODE;
use super::{CodeForm, RecoveryCodesPage};
use crate::app::accounts::recovery_codes::{self, StoredCodes};
use crate::app::accounts::totp::{self, TotpSecret};
use crate::app::accounts::users;
use crate::app::audit::{self, Event, Outcome};
use crate::app::error::AppError;
use crate::domain::clock::Clock;
use crate::infra::crypto::secrets::{self, Keyring, SealContext};
use crate::infra::db::schema::users as user_cols;
use crate::infra::db::{Database, write_tx};
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
    let id = user.id.clone();
    let is_admin = user.role == crate::domain::role::Role::Admin;
    let event = Event::new(user.actor(), "totp.enrol", Outcome::Success)
        .origin(user.origin())
        .target("user", user.id.as_str());
    let enrolled = db
        .run(move |conn| {
            write_tx(conn, |conn| {
                // Only an account without a seed: a parallel enrolment cannot overwrite one.
                let n = diesel::update(
                    user_cols::table
                        .find(id.as_str())
                        .filter(user_cols::totp_secret_sealed.is_null()),
                )
                .set((
                    user_cols::totp_secret_sealed.eq(Some(sealed)),
                    // The confirming code cannot be replayed at the next sign-in.
                    user_cols::totp_last_step.eq(Some(step)),
                    user_cols::recovery_codes.eq(Some(stored)),
                    user_cols::updated_at.eq(now),
                ))
                .execute(conn)?;
                if n == 0 {
                    return Ok::<_, AppError>(false);
                }
                // Sessions opened with the password alone must not gain what the second
                // factor now guards (for admins: the admin pages).
                let ended = users::end_sessions(conn, &id, keep.as_deref())?;
                // An administrator's keys were minted with the password alone (they do not
                // authenticate without TOTP, and must not start to now).
                let keys_revoked = if is_admin {
                    crate::app::accounts::api_keys::revoke_all_of(conn, &id, now)?
                } else {
                    0
                };
                audit::record(
                    conn,
                    &event.details(serde_json::json!({
                        "other_sessions_ended": ended,
                        "api_keys_revoked": keys_revoked,
                    })),
                )?;
                Ok(true)
            })
        })
        .await?;
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
