//! The signed-in user's own account: overview, password change, sessions and two-factor
//! authentication.
//!
//! Every change commits with its audit event in one transaction. Forms that check a
//! password or a code count failures against the same per-account throttle as sign-in, so
//! a borrowed session is no faster a guessing tool than the sign-in form. The session id
//! is renewed after every change to how the account signs in.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use askama_web::WebTemplate;
use chrono::NaiveDateTime;
use data_encoding::BASE64;
use diesel::prelude::*;
use secrecy::ExposeSecret;
use serde::Deserialize;

use crate::audit::{self, Event, Outcome};
use crate::auth::extractors::CurrentUser;
use crate::auth::recovery_codes::{self, StoredCodes};
use crate::auth::totp::{self, TotpSecret};
use crate::auth::{SessionCookie, passwords, session, throttle, users};
use crate::clock::Clock;
use crate::config::Settings;
use crate::db::schema::{sessions, users as user_cols};
use crate::db::{Database, DbConnection, write_tx};
use crate::domain::email::Email;
use crate::domain::password::{Password, PasswordPolicy};
use crate::domain::role::Role;
use crate::error::AppError;
use crate::storage::secrets::{self, Keyring, SealContext};
use crate::views::Layout;
use crate::web::error_pages::keep_body;

crate::route_table! {
    GET "/account" => account_page,
    GET "/account/password" => password_page,
    POST "/account/password" => change_password,
    GET "/account/sessions" => sessions_page,
    POST "/account/sessions/revoke-others" => revoke_other_sessions,
    POST "/account/sessions/{id}/revoke" => revoke_session,
    GET "/account/totp" => totp_page,
    POST "/account/totp" => enrol_totp,
    POST "/account/totp/recovery-codes" => regenerate_recovery_codes,
    POST "/account/totp/disable" => disable_totp,
}

/// Session state key for a TOTP seed shown but not yet confirmed. Held sealed, so the
/// `sessions` table never contains a usable seed. The `pending_` prefix makes the session
/// store drop it if the session is ended while a request runs.
const PENDING_TOTP: &str = "pending_totp";
const TOTP_ISSUER: &str = "medport";
const WRONG_CODE: &str =
    "That code is not right. Check the time on your device and enter the code now shown.";
const REPLAYED_CODE: &str =
    "This code has already been used. Wait for the next code and try again.";

// ---------------------------------------------------------------------------------------
// Pages
// ---------------------------------------------------------------------------------------

#[derive(Template, WebTemplate)]
#[template(path = "account.html")]
pub struct AccountPage {
    layout: Layout,
    email: String,
    role: &'static str,
    password_changed: String,
    totp_enabled: bool,
    recovery_codes_left: usize,
}

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

pub struct SessionView {
    id: String,
    device: String,
    ip: String,
    created: String,
    last_seen: String,
    current: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "account_sessions.html")]
pub struct SessionsPage {
    layout: Layout,
    sessions: Vec<SessionView>,
    others: usize,
}

#[derive(Template, WebTemplate)]
#[template(path = "account_totp_enrol.html")]
pub struct TotpEnrolPage {
    layout: Layout,
    email: String,
    qr: String,
    secret_groups: String,
    error: Option<String>,
}

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

fn render(status: StatusCode, page: &impl Template) -> Result<HttpResponse, AppError> {
    let html = page.render().map_err(AppError::internal)?;
    Ok(keep_body(
        HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(html),
    ))
}

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

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

// ---------------------------------------------------------------------------------------
// Overview
// ---------------------------------------------------------------------------------------

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
            password_changed: utc_text(row.password_changed_at),
            totp_enabled: row.totp_enabled(),
            recovery_codes_left: recovery_codes_left(&row),
        },
    )
}

// ---------------------------------------------------------------------------------------
// Password
// ---------------------------------------------------------------------------------------

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
    crate::auth::session::flash(
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

/// Stores the hash, ends every other session of the user, clears the throttle and audits
/// the change, in one transaction.
async fn store_new_password(
    db: &Database,
    user: &CurrentUser,
    hash: String,
    keep_session: Option<String>,
    now: NaiveDateTime,
) -> Result<(), AppError> {
    let id = user.id.clone();
    let key = throttle::key_for_input(&user.email);
    let event = Event::new(user.actor(), "password.change", Outcome::Success)
        .origin(user.origin())
        .target("user", user.id.as_str());
    let was_required = user.must_change_password;
    db.run(move |conn| {
        write_tx(conn, |conn| {
            users::set_password(conn, &id, &hash, false, now)?;
            let ended = users::end_sessions(conn, &id, keep_session.as_deref())?;
            throttle::clear(conn, &key)?;
            audit::record(
                conn,
                &event.details(serde_json::json!({
                    "other_sessions_ended": ended,
                    "was_required": was_required,
                })),
            )?;
            Ok::<_, AppError>(())
        })
    })
    .await
}

// ---------------------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------------------

#[derive(Queryable, Selectable)]
#[diesel(table_name = sessions)]
struct SessionRow {
    id_hash: String,
    ip: Option<String>,
    user_agent: Option<String>,
    created_at: NaiveDateTime,
    last_seen_at: NaiveDateTime,
}

pub async fn sessions_page(
    req: HttpRequest,
    user: CurrentUser,
    db: web::Data<Database>,
    clock: web::Data<Clock>,
    cookie: web::Data<SessionCookie>,
) -> Result<HttpResponse, AppError> {
    let now = clock.now_naive();
    let id = user.id.clone();
    // Only this user's rows, and only live ones (expired rows wait for the sweep).
    let rows: Vec<SessionRow> = db
        .run(move |conn| {
            sessions::table
                .filter(sessions::user_id.eq(id.as_str()))
                .filter(sessions::expires_at.gt(now))
                .order(sessions::last_seen_at.desc())
                .select(SessionRow::as_select())
                .load(conn)
                .map_err(AppError::from)
        })
        .await?;
    let current = cookie.session_hash(&req);
    let mut sessions: Vec<SessionView> = rows
        .into_iter()
        .map(|row| SessionView {
            current: current.as_deref() == Some(row.id_hash.as_str()),
            device: describe_user_agent(row.user_agent.as_deref()),
            ip: row.ip.unwrap_or_else(|| "unknown".into()),
            created: utc_text(row.created_at),
            last_seen: utc_text(row.last_seen_at),
            id: row.id_hash,
        })
        .collect();
    // This device first, then the others by last activity.
    sessions.sort_by_key(|s| !s.current);
    let others = sessions.iter().filter(|s| !s.current).count();
    render(
        StatusCode::OK,
        &SessionsPage {
            layout: Layout::for_user(&user, "/account/sessions"),
            sessions,
            others,
        },
    )
}

pub async fn revoke_session(
    req: HttpRequest,
    user: CurrentUser,
    path: web::Path<String>,
    db: web::Data<Database>,
    cookie: web::Data<SessionCookie>,
) -> Result<HttpResponse, AppError> {
    let target = path.into_inner();
    if !is_session_hash(&target) {
        return Err(AppError::NotFound);
    }
    let this_device = cookie.session_hash(&req).as_deref() == Some(target.as_str());
    let id = user.id.clone();
    let event = Event::new(user.actor(), "session.revoke", Outcome::Success)
        .origin(user.origin())
        .target("user", user.id.as_str())
        .details(serde_json::json!({ "count": 1, "this_device": this_device }));
    // Scoped to the owner: another user's session id matches nothing and answers 404.
    let revoked = db
        .run(move |conn| {
            write_tx(conn, |conn| {
                let n = diesel::delete(
                    sessions::table
                        .filter(sessions::id_hash.eq(&target))
                        .filter(sessions::user_id.eq(id.as_str())),
                )
                .execute(conn)?;
                if n == 1 {
                    audit::record(conn, &event)?;
                }
                Ok::<_, AppError>(n == 1)
            })
        })
        .await?;
    if !revoked {
        return Err(AppError::NotFound);
    }
    if this_device {
        user.session.purge();
        return Ok(see_other("/login?signed_out=1"));
    }
    crate::auth::session::flash(
        &user.session,
        "success",
        "That session has been signed out.",
    );
    Ok(see_other("/account/sessions"))
}

pub async fn revoke_other_sessions(
    req: HttpRequest,
    user: CurrentUser,
    db: web::Data<Database>,
    cookie: web::Data<SessionCookie>,
) -> Result<HttpResponse, AppError> {
    let keep = cookie
        .session_hash(&req)
        .ok_or_else(|| AppError::internal("signed-in request without a session cookie"))?;
    let id = user.id.clone();
    let event = Event::new(user.actor(), "session.revoke", Outcome::Success)
        .origin(user.origin())
        .target("user", user.id.as_str());
    let ended = db
        .run(move |conn| {
            write_tx(conn, |conn| {
                let ended = users::end_sessions(conn, &id, Some(&keep))?;
                audit::record(
                    conn,
                    &event.details(serde_json::json!({ "count": ended, "this_device": false })),
                )?;
                Ok::<_, AppError>(ended)
            })
        })
        .await?;
    let message = match ended {
        0 => "There were no other sessions to sign out.".to_string(),
        1 => "Signed out 1 other session.".to_string(),
        n => format!("Signed out {n} other sessions."),
    };
    crate::auth::session::flash(&user.session, "success", message);
    Ok(see_other("/account/sessions"))
}

/// A stored session id: SHA-256 as lowercase hex.
fn is_session_hash(raw: &str) -> bool {
    raw.len() == 64 && raw.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn utc_text(at: NaiveDateTime) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// "Firefox on Linux" from a full user-agent string; enough to tell devices apart.
fn describe_user_agent(ua: Option<&str>) -> String {
    let Some(ua) = ua.filter(|u| !u.trim().is_empty()) else {
        return "Unknown browser".into();
    };
    let browser = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
    ]
    .into_iter()
    .find(|(marker, _)| ua.contains(marker))
    .map(|(_, name)| name.to_string());
    let os = [
        ("Windows", "Windows"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("Android", "Android"),
        ("Mac OS X", "macOS"),
        ("CrOS", "ChromeOS"),
        ("Linux", "Linux"),
    ]
    .into_iter()
    .find(|(marker, _)| ua.contains(marker))
    .map(|(_, name)| name);
    match (browser, os) {
        (Some(b), Some(o)) => format!("{b} on {o}"),
        (Some(b), None) => b,
        (None, Some(o)) => format!("Browser on {o}"),
        (None, None) => {
            let first: String = ua
                .split_whitespace()
                .next()
                .unwrap_or(ua)
                .chars()
                .take(40)
                .collect();
            first
        }
    }
}

// ---------------------------------------------------------------------------------------
// Two-factor authentication
// ---------------------------------------------------------------------------------------

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
        crate::auth::session::flash(
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
                audit::record(
                    conn,
                    &event.details(serde_json::json!({ "other_sessions_ended": ended })),
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
    let check = SecondFactorCheck::new(
        &user,
        &keyring,
        form.into_inner().code,
        clock.unix(),
        now,
        false,
    );
    let event = Event::new(user.actor(), "totp.recovery_codes", Outcome::Success)
        .origin(user.origin())
        .target("user", user.id.as_str())
        .details(serde_json::json!({ "count": codes.len() }));
    let id = user.id.clone();
    let outcome = db
        .run(move |conn| {
            write_tx(conn, |conn| {
                if let Err(refusal) = check.run(conn, "totp.recovery_codes")? {
                    return Ok::<_, AppError>(Err(refusal));
                }
                diesel::update(user_cols::table.find(id.as_str()))
                    .set((
                        user_cols::recovery_codes.eq(Some(stored)),
                        user_cols::updated_at.eq(now),
                    ))
                    .execute(conn)?;
                audit::record(conn, &event)?;
                Ok(Ok(()))
            })
        })
        .await?;
    if let Err(refusal) = outcome {
        let errors = TotpErrors {
            regenerate_code: Some(refusal.message(now)),
            ..TotpErrors::default()
        };
        return refusal
            .answer(now)
            .render(&manage_page(&user, &row, errors));
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

    let check = SecondFactorCheck::new(&user, &keyring, form.code, clock.unix(), now, true);
    let event = Event::new(user.actor(), "totp.disable", Outcome::Success)
        .origin(user.origin())
        .target("user", user.id.as_str())
        .details(serde_json::json!({ "password_change_required": weak }));
    let id = user.id.clone();
    let outcome = db
        .run(move |conn| {
            write_tx(conn, |conn| {
                if let Err(refusal) = check.run(conn, "totp.disable")? {
                    return Ok::<_, AppError>(Err(refusal));
                }
                diesel::update(user_cols::table.find(id.as_str()))
                    .set((
                        user_cols::totp_secret_sealed.eq(None::<Vec<u8>>),
                        user_cols::totp_last_step.eq(None::<i64>),
                        user_cols::recovery_codes.eq(None::<String>),
                        user_cols::must_change_password.eq(weak),
                        user_cols::updated_at.eq(now),
                    ))
                    .execute(conn)?;
                audit::record(conn, &event)?;
                Ok(Ok(()))
            })
        })
        .await?;
    if let Err(refusal) = outcome {
        let errors = TotpErrors {
            disable_code: Some(refusal.message(now)),
            ..TotpErrors::default()
        };
        return refusal
            .answer(now)
            .render(&manage_page(&user, &row, errors));
    }
    session::renew(&user.session)?;
    if weak {
        crate::auth::session::flash(
            &user.session,
            "info",
            format!(
                "Two-factor authentication is off. Without it your password must have at least {} characters: please choose a new one.",
                Password::MIN_CHARS
            ),
        );
        return Ok(see_other("/account/password"));
    }
    crate::auth::session::flash(
        &user.session,
        "success",
        "Two-factor authentication is off. Your recovery codes no longer work.",
    );
    Ok(see_other("/account"))
}

fn enrol_page(
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

fn manage_page(user: &CurrentUser, row: &users::UserRow, errors: TotpErrors) -> TotpManagePage {
    TotpManagePage {
        layout: Layout::for_user(user, "/account/totp"),
        is_admin: user.role == Role::Admin,
        recovery_codes_left: recovery_codes_left(row),
        errors,
    }
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
fn start_pending(user: &CurrentUser, keyring: &Keyring) -> Result<TotpSecret, AppError> {
    let secret = TotpSecret::generate().map_err(AppError::internal)?;
    let sealed = secrets::seal(keyring, &pending_context(user), secret.expose())
        .map_err(AppError::internal)?;
    user.session
        .insert(PENDING_TOTP, BASE64.encode(&sealed))
        .map_err(|e| AppError::internal(format!("session insert: {e}")))?;
    Ok(secret)
}

/// The seed being enrolled, if this session has one that still opens.
fn pending_secret(user: &CurrentUser, keyring: &Keyring) -> Option<TotpSecret> {
    let encoded: String = user.session.get(PENDING_TOTP).ok().flatten()?;
    let sealed = BASE64.decode(encoded.as_bytes()).ok()?;
    let seed = secrets::open(keyring, &pending_context(user), &sealed).ok()?;
    TotpSecret::from_bytes(seed.expose_secret())
}

/// Why a password or code was not accepted.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    Throttled(NaiveDateTime),
    WrongCode,
    ReplayedCode,
}

impl Refusal {
    fn message(self, now: NaiveDateTime) -> String {
        match self {
            Self::Throttled(until) => throttle::wait_message(until, now),
            Self::WrongCode => WRONG_CODE.into(),
            Self::ReplayedCode => REPLAYED_CODE.into(),
        }
    }

    fn answer(self, now: NaiveDateTime) -> Refused {
        match self {
            Self::Throttled(until) => Refused::Throttled { until, now },
            Self::WrongCode | Self::ReplayedCode => Refused::Invalid,
        }
    }
}

/// A current TOTP code (each time step accepted once), or a recovery code where allowed,
/// checked inside the caller's write transaction. Wrong codes count against the sign-in
/// throttle and are audited in the same transaction.
struct SecondFactorCheck {
    user_id: String,
    actor: audit::Actor,
    origin: audit::Origin,
    throttle_key: String,
    keyring: Keyring,
    code: String,
    unix: i64,
    now: NaiveDateTime,
    accept_recovery_code: bool,
}

impl SecondFactorCheck {
    fn new(
        user: &CurrentUser,
        keyring: &Keyring,
        code: String,
        unix: i64,
        now: NaiveDateTime,
        accept_recovery_code: bool,
    ) -> Self {
        Self {
            user_id: user.id.as_str().to_string(),
            actor: user.actor(),
            origin: user.origin(),
            throttle_key: throttle::key_for_input(&user.email),
            keyring: keyring.clone(),
            code,
            unix,
            now,
            accept_recovery_code,
        }
    }

    fn run(
        &self,
        conn: &mut DbConnection,
        action: &'static str,
    ) -> Result<Result<(), Refusal>, AppError> {
        let row: users::UserRow = user_cols::table
            .find(self.user_id.as_str())
            .select(users::UserRow::as_select())
            .first(conn)?;
        let Some(sealed) = row.totp_secret_sealed.as_deref() else {
            return Err(AppError::SeeOther("/account/totp".into()));
        };
        let ctx = SealContext {
            table: "users",
            row_id: &row.id,
            field: "totp_secret",
        };
        let seed = secrets::open(&self.keyring, &ctx, sealed).map_err(AppError::internal)?;
        let secret = TotpSecret::from_bytes(seed.expose_secret())
            .ok_or_else(|| AppError::internal("stored TOTP seed has the wrong length"))?;

        if let Some(step) = totp::verify(&secret, &self.code, self.unix) {
            let claimed = diesel::update(
                user_cols::table.find(&row.id).filter(
                    user_cols::totp_last_step
                        .is_null()
                        .or(user_cols::totp_last_step.lt(step)),
                ),
            )
            .set(user_cols::totp_last_step.eq(step))
            .execute(conn)?;
            if claimed == 1 {
                throttle::clear(conn, &self.throttle_key)?;
                return Ok(Ok(()));
            }
            self.audit_failure(conn, action, "code already used")?;
            return Ok(Err(Refusal::ReplayedCode));
        }
        if self.accept_recovery_code
            && let Some(rest) = row
                .recovery_codes
                .as_deref()
                .and_then(StoredCodes::from_json)
                .and_then(|stored| stored.consume(&self.code))
        {
            diesel::update(user_cols::table.find(&row.id))
                .set(user_cols::recovery_codes.eq(rest.to_json()))
                .execute(conn)?;
            throttle::clear(conn, &self.throttle_key)?;
            return Ok(Ok(()));
        }
        let (_, until) = throttle::record_failure(conn, &self.throttle_key, self.now)?;
        self.audit_failure(conn, action, "wrong code")?;
        Ok(Err(until.map_or(Refusal::WrongCode, Refusal::Throttled)))
    }

    fn audit_failure(
        &self,
        conn: &mut DbConnection,
        action: &'static str,
        reason: &str,
    ) -> Result<(), AppError> {
        audit::record(
            conn,
            &Event::new(self.actor.clone(), action, Outcome::Failure)
                .origin(self.origin.clone())
                .target("user", self.user_id.clone())
                .details(serde_json::json!({ "reason": reason })),
        )?;
        Ok(())
    }
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
    db.run(move |conn| {
        write_tx(conn, |conn| {
            let (failures, until) = throttle::record_failure(conn, &key, now)?;
            audit::record(conn, &event)?;
            if failures == throttle::FREE_ATTEMPTS {
                audit::record(
                    conn,
                    &throttled.details(serde_json::json!({ "failures": failures })),
                )?;
            }
            Ok::<_, AppError>(until)
        })
    })
    .await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_are_shortened() {
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
        assert_eq!(describe_user_agent(Some(firefox)), "Firefox on Linux");
        let edge = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0";
        assert_eq!(describe_user_agent(Some(edge)), "Edge on Windows");
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";
        assert_eq!(describe_user_agent(Some(iphone)), "Safari on iOS");
        assert_eq!(describe_user_agent(None), "Unknown browser");
        assert_eq!(describe_user_agent(Some("  ")), "Unknown browser");
        assert_eq!(describe_user_agent(Some("tool/1.2 extra")), "tool/1.2");
    }

    #[test]
    fn secrets_are_grouped_for_typing() {
        assert_eq!(
            group_in_fours("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
            "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ"
        );
        assert_eq!(group_in_fours("ABCDEF"), "ABCD EF");
    }

    #[test]
    fn only_stored_session_hashes_are_accepted() {
        assert!(is_session_hash(&"a1".repeat(32)));
        assert!(!is_session_hash(&"A1".repeat(32)));
        assert!(!is_session_hash(&"a1".repeat(31)));
        assert!(!is_session_hash("../../etc"));
    }
}
