//! Per-client request limits, by route class, in one place. Each request counts against
//! the general limit and, for sign-in and other sensitive form posts, against that class's
//! tighter limit too. Over a limit: 429 with `Retry-After` and `X-RateLimit-*` headers.
//! Built once at start-up so every worker shares the counters (per instance; the
//! per-account sign-in throttle in the database is what holds across instances).
//!
//! Who the client is: a signed-in session or a valid API key counts per account, so that
//! fifty clinicians behind one hospital NAT address are not one client; a browser with a
//! valid device cookie signs in under its own budget; everything else (anonymous traffic,
//! refused keys) counts per client address.

use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_session::SessionExt;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpResponse, ResponseError, web};
use governor::clock::{Clock as _, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::config::RateLimits;
use crate::domain::ids::UserId;
use crate::web::device::DeviceCookies;

/// Whose budget a request spends.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Client {
    Address(IpAddr),
    Account(UserId),
    Device(String),
}

type Keyed =
    RateLimiter<Client, DefaultKeyedStateStore<Client>, DefaultClock, StateInformationMiddleware>;

/// Forget idle clients now and then so the table does not grow without bound.
const PRUNE_EVERY: u64 = 4096;

#[derive(Clone)]
struct Limit {
    limiter: Arc<Keyed>,
    per_minute: u32,
}

impl Limit {
    fn new(per_minute: u32, burst: u32) -> Result<Self, String> {
        let per_minute = per_minute.max(1);
        let period = Duration::from_nanos(60_000_000_000 / u64::from(per_minute));
        let burst = NonZeroU32::new(burst.max(1)).ok_or("burst must be positive")?;
        let quota = Quota::with_period(period)
            .ok_or("rate limit period must be positive")?
            .allow_burst(burst);
        Ok(Self {
            limiter: Arc::new(
                RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
            ),
            per_minute,
        })
    }
}

/// The route classes. The sign-in class counts only form posts, so showing the sign-in
/// page never uses up attempts.
#[derive(Clone)]
pub struct Limiters {
    login: Limit,
    sensitive: Limit,
    /// tus requests that carry file bytes or ask for an offset: many per minute by design
    /// (one per chunk), so they have their own budget instead of the general one.
    upload: Limit,
    general: Limit,
    checks: Arc<AtomicU64>,
}

impl Limiters {
    pub fn new(limits: &RateLimits) -> Result<Self, String> {
        Ok(Self {
            login: Limit::new(limits.login_per_minute, limits.login_burst)?,
            sensitive: Limit::new(limits.sensitive_per_minute, limits.sensitive_per_minute)?,
            upload: Limit::new(limits.upload_per_minute, limits.upload_per_minute)?,
            general: Limit::new(limits.general_per_minute, limits.general_per_minute)?,
            checks: Arc::new(AtomicU64::new(0)),
        })
    }

    fn class_of(&self, method: &Method, path: &str) -> Option<&Limit> {
        // A folder of small files is one creation (with its body) per file: creation is
        // upload traffic too, or a CD of 2,000 files would meet the general limit.
        let tus = path.starts_with("/tus/") && matches!(method.as_str(), "PATCH" | "HEAD" | "POST");
        let stow = *method == Method::POST && crate::web::request_body::is_stow(path);
        if tus || stow || path == "/tus" || path.starts_with("/batches") {
            return Some(&self.upload);
        }
        if *method != Method::POST {
            return None;
        }
        match path {
            // Single sign-on is not here: no secret is checked at medport (the provider
            // throttles its own sign-in), and a hospital behind one address signs in at once.
            "/login" | "/login/totp" => Some(&self.login),
            // An upload link's passphrase is a secret checked here, like a password.
            p if p.starts_with("/r/") => Some(&self.login),
            "/account/password" | "/account/api-keys" => Some(&self.sensitive),
            p if p.starts_with("/account/api-keys/") && p.ends_with("/rotate") => {
                Some(&self.sensitive)
            }
            _ => None,
        }
    }

    fn prune(&self) {
        if self
            .checks
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(PRUNE_EVERY)
        {
            for l in [&self.login, &self.sensitive, &self.upload, &self.general] {
                l.limiter.retain_recent();
            }
        }
    }
}

/// The 429 answer; the error-page layer turns it into a friendly page and keeps headers.
#[derive(Debug)]
struct TooManyRequests {
    limit: u32,
    retry_after_secs: u64,
}

impl std::fmt::Display for TooManyRequests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rate limit exceeded; retry in {} s",
            self.retry_after_secs
        )
    }
}

impl ResponseError for TooManyRequests {
    fn status_code(&self) -> actix_web::http::StatusCode {
        actix_web::http::StatusCode::TOO_MANY_REQUESTS
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::TooManyRequests()
            .insert_header(("retry-after", self.retry_after_secs.to_string()))
            .insert_header(("x-ratelimit-after", self.retry_after_secs.to_string()))
            .insert_header(("x-ratelimit-limit", self.limit.to_string()))
            .insert_header(("x-ratelimit-remaining", "0"))
            .finish()
    }
}

fn check(limit: &Limit, client: &Client) -> Result<u32, TooManyRequests> {
    match limit.limiter.check_key(client) {
        Ok(snapshot) => Ok(snapshot.remaining_burst_capacity()),
        Err(not_until) => {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            Err(TooManyRequests {
                limit: limit.per_minute,
                retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            })
        }
    }
}

/// The account of a signed-in session or a valid API key; for sign-in posts, a browser
/// with a valid device cookie; else the client address.
async fn client_of(req: &ServiceRequest) -> Client {
    if let Some(id) = crate::web::session::user_id(&req.get_session()) {
        return Client::Account(id);
    }
    if req.headers().contains_key(header::AUTHORIZATION)
        && let Ok(Some(id)) = crate::web::api_principal::owner_of(req.request()).await
    {
        return Client::Account(id);
    }
    if req.path().starts_with("/login")
        && let Some(devices) = req.app_data::<web::Data<DeviceCookies>>()
        && let Some(id) = devices.read(req.request()).browser_id()
    {
        return Client::Device(id.to_string());
    }
    // No peer address only happens on unusual transports; they share one bucket.
    Client::Address(
        crate::web::client::ip_of_service_request(req).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
    )
}

pub async fn rate_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let Some(limiters) = req.app_data::<web::Data<Limiters>>().cloned() else {
        return next.call(req).await;
    };
    limiters.prune();
    let client = client_of(&req).await;
    let class = limiters.class_of(req.method(), req.path());
    let (limit, remaining) = match class {
        Some(class) => (class.per_minute, check(class, &client)?),
        None => (limiters.general.per_minute, u32::MAX),
    };
    let is_upload = class.is_some_and(|c| std::ptr::eq(c, &limiters.upload));
    let general_remaining = if is_upload {
        u32::MAX
    } else {
        check(&limiters.general, &client)?
    };
    let remaining = remaining.min(general_remaining);
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    for (name, value) in [
        ("x-ratelimit-limit", limit.to_string()),
        ("x-ratelimit-remaining", remaining.to_string()),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tus_data_requests_have_their_own_budget() {
        let limits = RateLimits {
            upload_per_minute: 7,
            ..RateLimits::default()
        };
        let l = Limiters::new(&limits).unwrap();
        let patch = Method::from_bytes(b"PATCH").unwrap();
        let class = l.class_of(&patch, "/tus/0190a5c4-0000-7000-8000-000000000000");
        assert!(class.is_some_and(|c| std::ptr::eq(c, &l.upload) && c.per_minute == 7));
        assert!(
            l.class_of(&Method::HEAD, "/tus/x")
                .is_some_and(|c| std::ptr::eq(c, &l.upload))
        );
        // Creating an upload and the batch calls of a folder upload are upload traffic;
        // everything else counts against the general budget.
        for (method, path) in [(Method::POST, "/tus/"), (Method::POST, "/batches")] {
            assert!(
                l.class_of(&method, path)
                    .is_some_and(|c| std::ptr::eq(c, &l.upload))
            );
        }
        assert!(l.class_of(&Method::GET, "/uploads").is_none());
        // STOW-RS stores files like tus; searching and retrieving DICOMweb do not.
        for path in ["/dicomweb/studies", "/dicomweb/studies/1.2.3"] {
            assert!(
                l.class_of(&Method::POST, path)
                    .is_some_and(|c| std::ptr::eq(c, &l.upload)),
                "{path}"
            );
            assert!(l.class_of(&Method::GET, path).is_none(), "{path}");
        }
        assert!(
            l.class_of(&Method::POST, "/dicomweb/studies/1.2.3/series")
                .is_none()
        );
        assert!(
            l.class_of(&Method::POST, "/login")
                .is_some_and(|c| std::ptr::eq(c, &l.login))
        );
    }
}
