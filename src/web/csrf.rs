//! CSRF defence for browser sessions, on every state-changing request:
//! 1. a browser that says the request is cross-site (`Sec-Fetch-Site: cross-site`) or sends a
//!    foreign `Origin` is refused;
//! 2. the per-session synchronizer token must come back, as the `X-CSRF-Token` header (htmx,
//!    fetch, tus from the page), the `csrf_token` field of a urlencoded form, or the
//!    `csrf_token` query parameter of a multipart form.
//!
//! The single sign-on callback is checked against its `state` instead of the token.
//!
//! Requests authenticated with an API key (`Authorization: Bearer`) and no session cookie
//! carry no ambient credential a third-party site could borrow, so they skip the token
//! check; the bearer extractor never falls back to the cookie. So do requests to `/api/`
//! with no session cookie (their handlers answer 401). A request that sends both is
//! treated as a browser request and needs the token.

use actix_session::SessionExt;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, web};
use subtle::ConstantTimeEq;

use crate::app::audit::refusals::{self, Refusals};
use crate::app::audit::{self, Actor, Event, Outcome};
use crate::app::error::AppError;
use crate::config::Settings;
use crate::domain::clock::Clock;
use crate::infra::db::Database;

const FORM_LIMIT: usize = 64 * 1024;

pub async fn csrf_protect(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    if matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    ) || ((is_bearer(&req) || is_api(&req)) && !has_session_cookie(&req))
    {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let verdict = match check_origin(&req) {
        Err(reason) => Err(Refusal::Forbidden(reason)),
        // The provider's `state`, bound to the session and used once, is this form's token
        // (see `routes::single_sign_on`): the browser comes from the provider, not a page
        // of ours that it could have read the session's token from.
        Ok(()) if req.path() == crate::config::CALLBACK_PATH => Ok(()),
        Ok(()) => check_token(&mut req).await,
    };
    match verdict {
        Ok(()) => Ok(next.call(req).await?.map_into_boxed_body()),
        Err(Refusal::TooLarge) => Err(AppError::PayloadTooLarge.into()),
        Err(Refusal::Forbidden(reason)) => {
            record_rejection(&req, reason).await;
            Err(AppError::Forbidden.into())
        }
    }
}

/// The JSON API authenticates by bearer key only, never by the cookie: a request to it
/// without a cookie carries nothing to borrow, and its handler answers 401 itself (a 403
/// from this layer would tell a script the wrong thing).
fn is_api(req: &ServiceRequest) -> bool {
    req.path().starts_with("/api/")
}

fn is_bearer(req: &ServiceRequest) -> bool {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer "))
}

fn has_session_cookie(req: &ServiceRequest) -> bool {
    req.app_data::<web::Data<crate::web::session_cookie::SessionCookie>>()
        .is_none_or(|c| req.cookie(c.name).is_some())
}

fn check_origin(req: &ServiceRequest) -> Result<(), &'static str> {
    let fetch_site = req
        .headers()
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok());
    if fetch_site == Some("cross-site") {
        return Err("cross-site request");
    }
    // Browsers set `Sec-Fetch-Site` themselves (pages cannot), and with our
    // `Referrer-Policy: no-referrer` Chromium sends `Origin: null` on same-origin form posts.
    if fetch_site == Some("same-origin") {
        return Ok(());
    }
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().map_err(|_| "unreadable Origin")?;
    // The scheme is not compared without a public URL: a TLS proxy may rewrite it.
    let same = match req
        .app_data::<web::Data<Settings>>()
        .and_then(|s| s.public_url.as_ref())
    {
        Some(public) => origin == public.origin(),
        None => origin.split_once("://").is_some_and(|(_, rest)| {
            rest.eq_ignore_ascii_case(&crate::web::client::host(req.request()))
        }),
    };
    if same { Ok(()) } else { Err("foreign Origin") }
}

enum Refusal {
    Forbidden(&'static str),
    TooLarge,
}

async fn check_token(req: &mut ServiceRequest) -> Result<(), Refusal> {
    let expected = crate::web::session::existing_csrf_token(&req.get_session())
        .ok_or(Refusal::Forbidden("no CSRF token in session"))?;
    let submitted = submitted_token(req)
        .await?
        .ok_or(Refusal::Forbidden("CSRF token missing"))?;
    if bool::from(expected.as_bytes().ct_eq(submitted.as_bytes())) {
        Ok(())
    } else {
        Err(Refusal::Forbidden("CSRF token mismatch"))
    }
}

async fn submitted_token(req: &mut ServiceRequest) -> Result<Option<String>, Refusal> {
    if let Some(v) = req.headers().get("x-csrf-token") {
        return Ok(v.to_str().ok().map(str::to_string));
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("application/x-www-form-urlencoded") {
        // Read the (small) form, find the token, and put the body back for the handler.
        let body = read_limited(req).await?;
        let token = url::form_urlencoded::parse(&body)
            .find(|(k, _)| k == "csrf_token")
            .map(|(_, v)| v.into_owned());
        req.set_payload(Payload::from(body));
        return Ok(token);
    }
    if content_type.starts_with("multipart/form-data") {
        return Ok(url::form_urlencoded::parse(req.query_string().as_bytes())
            .find(|(k, _)| k == "csrf_token")
            .map(|(_, v)| v.into_owned()));
    }
    Ok(None)
}

async fn read_limited(req: &mut ServiceRequest) -> Result<web::Bytes, Refusal> {
    use futures_util::StreamExt;
    let mut payload = req.take_payload();
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| Refusal::Forbidden("unreadable form body"))?;
        if body.len() + chunk.len() > FORM_LIMIT {
            return Err(Refusal::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Refusals of a signed-in session are recorded in full; anonymous ones are counted
/// (`audit::refusals`), as anyone can send them.
async fn record_rejection(req: &ServiceRequest, reason: &'static str) {
    let Some(db) = req.app_data::<web::Data<Database>>().cloned() else {
        return;
    };
    let ip = crate::web::client::ip_of_service_request(req);
    let user = crate::web::session::user_id(&req.get_session());
    let actor = user.as_ref().map_or_else(Actor::anonymous, |id| Actor {
        user_id: Some(id.as_str().to_string()),
        label: "session user".into(),
    });
    let event = Event::new(actor, "access.denied", Outcome::Denied)
        .origin(refusals::origin_of(ip))
        .details(serde_json::json!({
            "reason": reason,
            "method": req.method().as_str(),
            "path": refusals::capped_path(req.path()),
        }));
    let result = match (user, req.app_data::<web::Data<Refusals>>()) {
        (None, Some(counted)) => {
            let now = req
                .app_data::<web::Data<Clock>>()
                .map_or_else(|| chrono::Utc::now().timestamp(), |c| c.unix());
            refusals::record(&db, counted, ip, reason, now, event).await
        }
        _ => {
            db.run(move |conn| audit::record(conn, &event).map(drop))
                .await
        }
    };
    if let Err(e) = result {
        tracing::error!(error = %e, "could not record a CSRF rejection");
    }
}
