//! Sign-in (password, then TOTP when enrolled) and sign-out.
//!
//! Unknown addresses, wrong passwords and disabled accounts get the same answer after the
//! same amount of bcrypt work; the throttle is keyed by address whether or not an account
//! exists. Every attempt is audited (never with the password). A browser that signed in to
//! the account before is throttled under its own device entry (`auth::device`), so failures
//! from elsewhere never keep the account's owner out.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::app::accounts::second_factor::{self, SecondFactor};
use crate::app::accounts::{first_run, passwords, throttle, users};
use crate::app::audit::refusals::{self, Refusals};
use crate::app::audit::{self, Actor, Event, Origin, Outcome};
use crate::app::error::AppError;
use crate::config::Settings;
use crate::domain::LocalPath;
use crate::domain::clock::Clock;
use crate::domain::email::Email;
use crate::domain::password::Password;
use crate::infra::crypto::secrets::Keyring;
use crate::infra::db::Database;
use crate::web::device::DeviceCookies;
use crate::web::extractors::{CurrentUser, request_origin};
use crate::web::respond::{render, see_other};
use crate::web::session;
use crate::web::views::{Flash, Layout, LoginPage, LoginTotpPage};

const WRONG_CREDENTIALS: &str = "Email or password is incorrect.";
/// How long the second step may take after the password step.
const SECOND_STEP_SECS: i64 = 5 * 60;

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    signed_out: Option<String>,
    expired: Option<String>,
}

fn user_agent(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(256).collect())
}

pub async fn login_page(
    req: HttpRequest,
    session: Session,
    query: web::Query<LoginQuery>,
    current: Option<CurrentUser>,
    db: web::Data<Database>,
    settings: web::Data<Settings>,
) -> Result<HttpResponse, AppError> {
    if current.is_some() {
        return Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/"))
            .finish());
    }
    // Only a visitor on this machine can run the command; others learn nothing.
    let first_run = if crate::web::client::is_on_this_machine(&req)
        && db
            .run(|conn| first_run::needs_first_admin(conn).map_err(AppError::from))
            .await?
    {
        Some(first_run::create_admin_command(&settings))
    } else {
        None
    };
    let (single_sign_on, password_note) = sign_in_choices(&settings);
    let mut layout = Layout::anonymous(session::csrf_token(&session)?);
    if session::take_expired(&session) || query.expired.is_some() {
        layout.flashes.push(Flash {
            kind: "info",
            message: "Your session ended after a period of inactivity. Please sign in again."
                .into(),
        });
    } else if query.signed_out.is_some() {
        layout.flashes.push(Flash {
            kind: "success",
            message: "You have been signed out.".into(),
        });
    }
    layout.flashes.extend(session::take_flashes(&session));
    render(
        StatusCode::OK,
        &LoginPage {
            layout,
            error: None,
            email: String::new(),
            next: LocalPath::or_home(query.next.as_deref())
                .as_str()
                .to_string(),
            first_run,
            single_sign_on,
            password_note,
        },
    )
}

/// What the sign-in page offers besides the password form: the provider's button, and the
/// note that passwords are for emergency accounts only.
pub(super) fn sign_in_choices(settings: &Settings) -> (Option<String>, bool) {
    (
        settings.oidc.as_ref().map(|o| o.label.clone()),
        matches!(
            settings.password_sign_in,
            crate::config::PasswordSignIn::BreakGlass(_)
        ),
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    next: Option<String>,
}

/// What the database knows before the password is checked.
enum Known {
    Throttled(chrono::NaiveDateTime),
    Account(Box<users::UserRow>),
    NoAccount,
}

#[allow(clippy::too_many_arguments)]
pub async fn login(
    req: HttpRequest,
    session: Session,
    form: web::Form<LoginForm>,
    db: web::Data<Database>,
    settings: web::Data<Settings>,
    clock: web::Data<Clock>,
    devices: web::Data<DeviceCookies>,
    refusals: web::Data<Refusals>,
) -> Result<HttpResponse, AppError> {
    let LoginForm {
        email: raw_email,
        password,
        next,
    } = form.into_inner();
    let next = LocalPath::or_home(next.as_deref());
    let origin = request_origin(&req);
    let now = clock.now_naive();
    let account_key = throttle::key_for_input(&raw_email);
    let presented = devices.read(&req);
    // A trusted browser answers for its own attempts only; others share the account's entry.
    let throttle_key = devices
        .throttle_key(&presented, &account_key)
        .unwrap_or_else(|| account_key.clone());
    let email = Email::parse(&raw_email).ok();
    let attempted: String = raw_email.trim().chars().take(254).collect();
    // With single sign-on, passwords may be for the break-glass accounts only; any other
    // address is answered as an unknown one, after the same bcrypt work.
    let password_allowed = email
        .as_ref()
        .is_none_or(|e| settings.password_sign_in.allows(e.as_str()));

    // 1. Throttle and account lookup.
    let known = {
        let key = throttle_key.clone();
        let email = email.clone();
        db.run(move |conn| {
            if let Some(until) = throttle::blocked_until(conn, &key, now)? {
                return Ok::<_, AppError>(Known::Throttled(until));
            }
            Ok(match email.filter(|_| password_allowed) {
                Some(e) => users::find_by_email(conn, &e)?
                    .map_or(Known::NoAccount, |row| Known::Account(Box::new(row))),
                None => Known::NoAccount,
            })
        })
        .await?
    };

    // 2. Password check off the async threads; the same bcrypt work whether or not the
    //    account exists or is enabled.
    let candidate = Password::for_login(&password);
    let cost = settings.bcrypt_cost;
    let row = match known {
        Known::Throttled(until) => {
            // Counted, not stored one by one: a guesser would otherwise write a row per try.
            let event = Event::new(Actor::anonymous(), "login", Outcome::Denied)
                .origin(origin.clone())
                .details(serde_json::json!({ "email": attempted, "reason": "throttled" }));
            let ip = crate::web::client::ip(&req);
            refusals::record(&db, &refusals, ip, "sign-in throttled", clock.unix(), event).await?;
            let wait = (until - now).num_seconds().max(1);
            return login_failed(
                session,
                &settings,
                attempted,
                next,
                throttle::wait_message(until, now),
                Some(wait),
            );
        }
        Known::Account(row) => Some(*row),
        Known::NoAccount => None,
    };
    let (row, password_ok) = web::block(move || match row {
        Some(row) => {
            let ok = passwords::verify(&candidate, &row.password_hash);
            (Some(row), ok)
        }
        None => {
            passwords::burn_time(&candidate, cost);
            (None, false)
        }
    })
    .await
    .map_err(AppError::internal)?;

    // 3. Outcome.
    let reason = match &row {
        None if !password_allowed => Some("password sign-in off for this account"),
        None => Some("unknown account"),
        Some(_) if !password_ok => Some("wrong password"),
        Some(r) if r.disabled => Some("account disabled"),
        Some(_) => None,
    };
    if let Some(reason) = reason {
        let actor = row
            .as_ref()
            .map_or_else(Actor::anonymous, |r| Actor::user(&r.id, &r.email));
        let throttled =
            record_failure(&db, throttle_key, now, actor, origin, &attempted, reason).await?;
        let message = throttled.map_or_else(
            || WRONG_CREDENTIALS.to_string(),
            |u| throttle::wait_message(u, now),
        );
        let wait = throttled.map(|u| (u - now).num_seconds().max(1));
        return login_failed(session, &settings, attempted, next, message, wait);
    }
    let Some(row) = row else {
        return Err(AppError::internal(
            "sign-in reached success without an account",
        ));
    };
    let user_id = row.user_id();
    let totp_required = row.totp_enabled();
    let actor = Actor::user(&row.id, &row.email);
    {
        let event = Event::new(
            actor,
            if totp_required {
                "login.password"
            } else {
                "login"
            },
            Outcome::Success,
        )
        .origin(origin.clone())
        .target("user", user_id.as_str());
        throttle::record_audited_success(&db, throttle_key, event).await?;
    }
    if totp_required {
        session::begin_second_factor(&session, &user_id, clock.unix())?;
        return Ok(see_other("/login/totp"));
    }
    session::sign_in(&session, &user_id, origin.ip, user_agent(&req))?;
    let mut res = see_other(next.as_str());
    res.add_cookie(&devices.after_sign_in(&presented, &account_key)?)
        .map_err(AppError::internal)?;
    Ok(res)
}

/// Counts a failure against the address and audits it; returns the wait if the address is
/// now throttled.
async fn record_failure(
    db: &Database,
    key: String,
    now: chrono::NaiveDateTime,
    actor: Actor,
    origin: Origin,
    attempted: &str,
    reason: &'static str,
) -> Result<Option<chrono::NaiveDateTime>, AppError> {
    let failure = Event::new(actor.clone(), "login", Outcome::Failure)
        .origin(origin.clone())
        .details(serde_json::json!({ "email": attempted, "reason": reason }));
    let throttled = Event::new(actor, "login.throttled", Outcome::Denied)
        .origin(origin)
        .details(serde_json::json!({ "email": attempted }));
    Ok(throttle::record_audited_failure(db, key, now, failure, throttled).await?)
}

fn login_failed(
    session: Session,
    settings: &Settings,
    email: String,
    next: LocalPath,
    message: String,
    retry_after: Option<i64>,
) -> Result<HttpResponse, AppError> {
    let throttled = retry_after.is_some();
    let status = if throttled {
        StatusCode::TOO_MANY_REQUESTS
    } else {
        StatusCode::UNAUTHORIZED
    };
    let (single_sign_on, password_note) = sign_in_choices(settings);
    let mut res = render(
        status,
        &LoginPage {
            layout: Layout::anonymous(session::csrf_token(&session)?),
            error: Some(message),
            email,
            next: next.as_str().to_string(),
            first_run: None,
            single_sign_on,
            password_note,
        },
    )?;
    if let Some(secs) = retry_after
        && let Ok(v) = header::HeaderValue::from_str(&secs.to_string())
    {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    Ok(res)
}

pub async fn totp_page(
    session: Session,
    clock: web::Data<Clock>,
) -> Result<HttpResponse, AppError> {
    if session::pending_user(&session, clock.unix(), SECOND_STEP_SECS).is_none() {
        return Ok(see_other("/login"));
    }
    render(
        StatusCode::OK,
        &LoginTotpPage {
            layout: Layout::anonymous(session::csrf_token(&session)?),
            error: None,
        },
    )
}

#[derive(Deserialize)]
pub struct TotpForm {
    code: String,
}

pub async fn totp_submit(
    req: HttpRequest,
    session: Session,
    form: web::Form<TotpForm>,
    db: web::Data<Database>,
    clock: web::Data<Clock>,
    keyring: web::Data<Keyring>,
    devices: web::Data<DeviceCookies>,
) -> Result<HttpResponse, AppError> {
    let Some(user_id) = session::pending_user(&session, clock.unix(), SECOND_STEP_SECS) else {
        session::flash(
            &session,
            "info",
            "The sign-in took too long. Please start again.",
        );
        return Ok(see_other("/login"));
    };
    let origin = request_origin(&req);
    let now = clock.now_naive();
    let unix = clock.unix();
    let code = form.into_inner().code;
    let keyring = keyring.into_inner();
    let lookup = user_id.clone();
    let presented = devices.read(&req);
    let device = (devices.clone().into_inner(), presented.clone());
    let throttle_key = move |email: &str| {
        let account_key = throttle::key_for_input(email);
        device
            .0
            .throttle_key(&device.1, &account_key)
            .unwrap_or(account_key)
    };
    let outcome = second_factor::check(&db, keyring, lookup, code, unix, now, throttle_key).await?;
    match outcome {
        Ok((row, factor)) => {
            let details = match factor {
                SecondFactor::Totp => serde_json::json!({ "second_factor": "totp" }),
                SecondFactor::RecoveryCode { remaining } => serde_json::json!({
                    "second_factor": "recovery_code", "recovery_codes_left": remaining
                }),
            };
            let event = Event::new(Actor::user(&row.id, &row.email), "login", Outcome::Success)
                .origin(origin.clone())
                .target("user", row.id.clone())
                .details(details);
            db.run(move |conn| audit::record(conn, &event).map_err(AppError::from))
                .await?;
            let via_provider = session::signed_in_with_provider(&session);
            session::sign_in(&session, &user_id, origin.ip, user_agent(&req))?;
            if via_provider {
                session::mark_single_sign_on(&session, false)?;
            }
            let device_cookie =
                devices.after_sign_in(&presented, &throttle::key_for_input(&row.email))?;
            if let SecondFactor::RecoveryCode { remaining } = factor {
                session::flash(
                    &session,
                    "info",
                    format!(
                        "You signed in with a recovery code; {remaining} left. Consider setting up your authenticator again under Account."
                    ),
                );
            }
            let mut res = see_other("/");
            res.add_cookie(&device_cookie).map_err(AppError::internal)?;
            Ok(res)
        }
        Err(Some(message)) => render(
            StatusCode::UNAUTHORIZED,
            &LoginTotpPage {
                layout: Layout::anonymous(session::csrf_token(&session)?),
                error: Some(message),
            },
        ),
        // The account went away or was disabled between the two steps.
        Err(None) => {
            session.purge();
            Ok(see_other("/login"))
        }
    }
}

pub async fn logout(
    req: HttpRequest,
    session: Session,
    user: Option<CurrentUser>,
    db: web::Data<Database>,
    provider: Option<web::Data<crate::app::accounts::single_sign_on::Provider>>,
) -> Result<HttpResponse, AppError> {
    let via_provider = session::signed_in_with_provider(&session);
    if let Some(user) = user {
        let event = Event::new(user.actor(), "logout", Outcome::Success)
            .origin(request_origin(&req))
            .target("user", user.id.as_str());
        db.run(move |conn| audit::record(conn, &event).map_err(AppError::from))
            .await?;
    }
    session.purge();
    let after = "/login?signed_out=1";
    // RP-initiated logout: the provider's session ends too, then it sends the browser back.
    if via_provider
        && let Some(provider) = provider
        && let Some(url) = provider.logout_url(after).await
    {
        return super::single_sign_on::to_provider(
            "Signed out",
            "You are signed out of medport. Signing you out at your organisation's sign-in page too.",
            url.as_str(),
        );
    }
    Ok(see_other(after))
}
