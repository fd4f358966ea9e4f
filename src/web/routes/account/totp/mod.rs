//! Two-factor authentication on one's own account: the page (enrolment while it is off),
//! new recovery codes, and turning it off. Administrators cannot turn it off.

mod enrol;
mod second_factor;

pub(super) use enrol::enrol_totp;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use askama_web::WebTemplate;
use serde::Deserialize;

use super::{
    Refused, load_for_check, load_user, record_event, record_wrong_secret, recovery_codes_left,
    render, see_other, user_email, verify_password,
};
use crate::app::accounts::recovery_codes::{self, StoredCodes};
use crate::app::accounts::totp_changes;
use crate::app::accounts::{throttle, users};
use crate::app::audit::Outcome;
use crate::app::error::AppError;
use crate::domain::clock::Clock;
use crate::domain::password::{Password, PasswordPolicy};
use crate::domain::role::Role;
use crate::infra::crypto::secrets::Keyring;
use crate::infra::db::Database;
use crate::web::extractors::CurrentUser;
use crate::web::session;
use crate::web::views::Layout;
use enrol::{enrol_page, pending_secret, start_pending};

#[derive(Default)]
pub struct TotpErrors {
    regenerate_code: Option<String>,
    disable_form: Option<String>,
    disable_password: Option<String>,
    disable_code: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "account_totp.html")]
pub struct TotpManagePage {
    layout: Layout,
    is_admin: bool,
    recovery_codes_left: usize,
    errors: TotpErrors,
}

#[derive(Template, WebTemplate)]
#[template(path = "account_recovery_codes.html")]
pub struct RecoveryCodesPage {
    layout: Layout,
    heading: &'static str,
    codes: Vec<String>,
}

#[derive(Deserialize)]
pub struct CodeForm {
    code: String,
}

#[derive(Deserialize)]
pub struct DisableForm {
    password: String,
    code: String,
}

pub async fn totp_page(
    user: CurrentUser,
    db: web::Data<Database>,
    keyring: web::Data<Keyring>,
) -> Result<HttpResponse, AppError> {
    if user.totp_enabled {
        let row = load_user(&db, &user).await?;
        return render(
            StatusCode::OK,
            &manage_page(&user, &row, TotpErrors::default()),
        );
    }
    // The same seed until it is confirmed, so reloading the page does not invalidate a
    // code the user has already scanned.
    let secret = match pending_secret(&user, &keyring) {
        Some(secret) => secret,
        None => start_pending(&user, &keyring)?,
    };
    render(StatusCode::OK, &enrol_page(&user, &secret, None)?)
}

pub async fn regenerate_recovery_codes(
    user: CurrentUser,
    form: web::Form<CodeForm>,
    db: web::Data<Database>,
    clock: web::Data<Clock>,
    keyring: web::Data<Keyring>,
) -> Result<HttpResponse, AppError> {
    if !user.totp_enabled {
        return Ok(see_other("/account/totp"));
    }
    let now = clock.now_naive();
    let (row, blocked) = load_for_check(&db, &user, now).await?;
    if let Some(until) = blocked {
        record_event(
            &db,
            &user,
            "totp.recovery_codes",
            Outcome::Denied,
            "throttled",
        )
        .await?;
        let errors = TotpErrors {
            regenerate_code: Some(throttle::wait_message(until, now)),
            ..TotpErrors::default()
        };
        return Refused::Throttled { until, now }.render(&manage_page(&user, &row, errors));
    }
    let codes = recovery_codes::generate().map_err(AppError::internal)?;
    let stored = StoredCodes::from_codes(&codes).to_json();
    let check = second_factor::check(
        &user,
        &keyring,
        form.into_inner().code,
        clock.unix(),
        now,
        false,
    );
    let owner = second_factor::owner(&user);
    let outcome =
        totp_changes::renew_recovery_codes(&db, &owner, check, stored, codes.len(), now).await?;
    if let Err(refusal) = outcome {
        let errors = TotpErrors {
            regenerate_code: Some(refusal.message(now)),
            ..TotpErrors::default()
        };
        return second_factor::answer(refusal, now).render(&manage_page(&user, &row, errors));
    }
    render(
        StatusCode::OK,
        &RecoveryCodesPage {
            layout: Layout::for_user(&user, "/account/totp"),
            heading: "Your new recovery codes",
            codes,
        },
    )
}

pub async fn disable_totp(
    user: CurrentUser,
    form: web::Form<DisableForm>,
    db: web::Data<Database>,
    clock: web::Data<Clock>,
    keyring: web::Data<Keyring>,
) -> Result<HttpResponse, AppError> {
    if !user.totp_enabled {
        return Ok(see_other("/account/totp"));
    }
    let form = form.into_inner();
    let now = clock.now_naive();
    let (row, blocked) = load_for_check(&db, &user, now).await?;
    if user.role == Role::Admin {
        record_event(
            &db,
            &user,
            "totp.disable",
            Outcome::Denied,
            "administrators must use two-factor",
        )
        .await?;
        let errors = TotpErrors {
            disable_form: Some(
                "Administrators must keep two-factor authentication on, so it cannot be turned off for this account.".into(),
            ),
            ..TotpErrors::default()
        };
        return Refused::Forbidden.render(&manage_page(&user, &row, errors));
    }
    if let Some(until) = blocked {
        record_event(&db, &user, "totp.disable", Outcome::Denied, "throttled").await?;
        let errors = TotpErrors {
            disable_form: Some(throttle::wait_message(until, now)),
            ..TotpErrors::default()
        };
        return Refused::Throttled { until, now }.render(&manage_page(&user, &row, errors));
    }

    // The password first; the code is only looked at once the password is right.
    let candidate = Password::for_login(&form.password);
    let (password_ok, _) = verify_password(candidate, row.password_hash.clone()).await?;
    if !password_ok {
        let until = record_wrong_secret(&db, &user, now, "totp.disable", "wrong password").await?;
        let errors = TotpErrors {
            disable_form: until.map(|u| throttle::wait_message(u, now)),
            disable_password: Some("Your password is not correct.".into()),
            ..TotpErrors::default()
        };
        return Refused::throttled_if(until, now).render(&manage_page(&user, &row, errors));
    }
    // Without the second factor the password must meet the longer minimum again; if it
    // does not, the user is asked for a new one before anything else.
    let email = user_email(&user)?;
    let weak = Password::parse_new(&form.password, &email, PasswordPolicy::default()).is_err();

    let check = second_factor::check(&user, &keyring, form.code, clock.unix(), now, true);
    let owner = second_factor::owner(&user);
    let outcome = totp_changes::disable(&db, &owner, check, weak, now).await?;
    if let Err(refusal) = outcome {
        let errors = TotpErrors {
            disable_code: Some(refusal.message(now)),
            ..TotpErrors::default()
        };
        return second_factor::answer(refusal, now).render(&manage_page(&user, &row, errors));
    }
    session::renew(&user.session)?;
    if weak {
        crate::web::session::flash(
            &user.session,
            "info",
            format!(
                "Two-factor authentication is off. Without it your password must have at least {} characters: please choose a new one.",
                Password::MIN_CHARS
            ),
        );
        return Ok(see_other("/account/password"));
    }
    crate::web::session::flash(
        &user.session,
        "success",
        "Two-factor authentication is off. Your recovery codes no longer work.",
    );
    Ok(see_other("/account"))
}

fn manage_page(user: &CurrentUser, row: &users::UserRow, errors: TotpErrors) -> TotpManagePage {
    TotpManagePage {
        layout: Layout::for_user(user, "/account/totp"),
        is_admin: user.role == Role::Admin,
        recovery_codes_left: recovery_codes_left(row),
        errors,
    }
}
