//! Sign-in through the OpenID Provider.
//!
//! 1. `POST /auth/oidc/start` (the sign-in page's button, CSRF-checked) keeps the `state`,
//!    `nonce` and PKCE verifier in medport's session and sends the browser to the provider
//!    with a page that follows a link (a redirect would break `form-action 'self'`).
//! 2. The provider sends it back to `GET /auth/oidc/callback?code&state`. The session cookie
//!    is `SameSite=Strict`, so a browser coming from another site does not send it here, and
//!    a GET must not write anyway: this page only hands `code` and `state` on to
//! 3. `POST /auth/oidc/callback`, sent from medport's own page, which carries the session.
//!    There the `state` must equal the session's (compared in constant time, used once): it
//!    is this form's CSRF token, so the synchronizer token is not asked for (a browser
//!    arriving from the provider has no page of ours to have read it from). The origin
//!    check still applies.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::app::accounts::single_sign_on::{self, Admission, Provider};
use crate::app::audit::refusals::{self, Refusals};
use crate::app::audit::{Actor, Event, Outcome};
use crate::app::error::AppError;
use crate::config::Settings;
use crate::domain::LocalPath;
use crate::domain::clock::Clock;
use crate::infra::db::Database;
use crate::web::extractors::request_origin;
use crate::web::respond::{render, see_other};
use crate::web::session;
use crate::web::views::{Layout, LoginContinuePage, LoginPage, LoginRedirectPage};

/// How long the trip to the provider and back may take.
const ROUND_TRIP_SECS: i64 = 10 * 60;

#[derive(Deserialize)]
pub struct StartForm {
    next: Option<String>,
}

pub async fn start(
    session: Session,
    form: web::Form<StartForm>,
    provider: Option<web::Data<Provider>>,
    clock: web::Data<Clock>,
) -> Result<HttpResponse, AppError> {
    let Some(provider) = provider else {
        return Err(AppError::NotFound);
    };
    let next = LocalPath::or_home(form.next.as_deref());
    let (url, pending) = single_sign_on::begin(&provider).await?;
    session::begin_single_sign_on(&session, &pending, next.as_str(), clock.unix())?;
    to_provider(
        "Signing in",
        "Taking you to your organisation's sign-in page.",
        url.as_str(),
    )
}

/// The page that takes the browser on to the provider (see `LoginRedirectPage`).
pub(super) fn to_provider(
    title: &'static str,
    message: &'static str,
    href: &str,
) -> Result<HttpResponse, AppError> {
    render(
        StatusCode::OK,
        &LoginRedirectPage {
            layout: Layout::anonymous(String::new()),
            title,
            message,
            href: href.to_string(),
        },
    )
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// Reads nothing and writes nothing: the page posts `code` and `state` back to us.
pub async fn callback_page(
    query: web::Query<CallbackQuery>,
    provider: Option<web::Data<Provider>>,
) -> Result<HttpResponse, AppError> {
    if provider.is_none() {
        return Err(AppError::NotFound);
    }
    let q = query.into_inner();
    let (code, state) = match (q.code, q.state, q.error) {
        (_, _, Some(error)) => {
            let message = if error == "access_denied" {
                "The sign-in was cancelled at the provider."
            } else {
                "The sign-in provider could not sign you in. Please try again; if it keeps failing, tell your IT team."
            };
            return refused_page(StatusCode::BAD_REQUEST, message, None, None);
        }
        (Some(code), Some(state), None) if fits(&code) && fits(&state) => (code, state),
        _ => {
            return refused_page(
                StatusCode::BAD_REQUEST,
                "This sign-in link is incomplete. Please start again.",
                None,
                None,
            );
        }
    };
    render(
        StatusCode::OK,
        &LoginContinuePage {
            layout: Layout::anonymous(String::new()),
            code,
            state,
        },
    )
}

fn fits(value: &str) -> bool {
    !value.is_empty() && value.len() <= 2048 && value.chars().all(|c| c.is_ascii_graphic())
}

#[derive(Deserialize)]
pub struct CallbackForm {
    code: String,
    state: String,
}

#[allow(clippy::too_many_arguments)]
pub async fn callback(
    req: HttpRequest,
    session: Session,
    form: web::Form<CallbackForm>,
    provider: Option<web::Data<Provider>>,
    db: web::Data<Database>,
    settings: web::Data<Settings>,
    clock: web::Data<Clock>,
    refusals: web::Data<Refusals>,
) -> Result<HttpResponse, AppError> {
    let Some(provider) = provider else {
        return Err(AppError::NotFound);
    };
    let CallbackForm { code, state } = form.into_inner();
    let origin = request_origin(&req);
    let taken = session::take_single_sign_on(&session, clock.unix(), ROUND_TRIP_SECS);
    let matched = taken.filter(|(pending, _)| {
        bool::from(pending.state.as_bytes().ct_eq(state.as_bytes())) && fits(&code)
    });
    let Some((pending, next)) = matched else {
        // Counted, not stored one by one: anyone can post here.
        let event = Event::new(Actor::anonymous(), "login", Outcome::Denied)
            .origin(origin)
            .details(serde_json::json!({
                "method": "single_sign_on", "reason": "state missing, expired or reused"
            }));
        let ip = crate::web::client::ip(&req);
        refusals::record(
            &db,
            &refusals,
            ip,
            "sign-in state refused",
            clock.unix(),
            event,
        )
        .await?;
        return refused_page(
            StatusCode::BAD_REQUEST,
            "This sign-in has expired or was already used. Please start again.",
            Some(&session),
            Some(&settings),
        );
    };
    let admission = single_sign_on::complete(
        &db,
        &provider,
        settings.bcrypt_cost,
        code,
        pending,
        single_sign_on::Attempt {
            origin: origin.clone(),
            ip: crate::web::client::ip(&req),
            now: clock.now_naive(),
            unix: clock.unix(),
            refusals: &refusals,
        },
    )
    .await?;
    match admission {
        Err(refusal) => refused_page(
            StatusCode::FORBIDDEN,
            refusal.message(),
            Some(&session),
            Some(&settings),
        ),
        Ok(Admission::SecondFactor { user }) => {
            session::begin_second_factor(&session, &user.user_id(), clock.unix())?;
            session::mark_single_sign_on(&session, false)?;
            Ok(see_other("/login/totp"))
        }
        Ok(Admission::SignedIn { user, provider_mfa }) => {
            session::sign_in(&session, &user.user_id(), origin.ip, user_agent(&req))?;
            session::mark_single_sign_on(&session, provider_mfa)?;
            Ok(see_other(LocalPath::or_home(Some(&next)).as_str()))
        }
    }
}

fn user_agent(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(actix_web::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(256).collect())
}

/// The sign-in page with the reason. Its forms only where a session already exists (the
/// GET callback must not start one; that page links back to the sign-in page instead).
fn refused_page(
    status: StatusCode,
    message: &str,
    session: Option<&Session>,
    settings: Option<&Settings>,
) -> Result<HttpResponse, AppError> {
    let csrf = match session {
        Some(s) => session::csrf_token(s)?,
        None => String::new(),
    };
    let (single_sign_on, password_note) =
        settings.map_or((None, false), super::auth::sign_in_choices);
    render(
        status,
        &LoginPage {
            layout: Layout::anonymous(csrf),
            error: Some(message.to_string()),
            email: String::new(),
            next: "/".into(),
            first_run: None,
            single_sign_on,
            password_note,
        },
    )
}
