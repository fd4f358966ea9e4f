//! Security headers on every response: pages, static files, redirects and errors, including
//! errors raised by inner layers (they are turned into responses here so none escapes bare).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpResponse, ResponseError, web};

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
base-uri 'none'; object-src 'none'";

const PERMISSIONS_POLICY: &str = "camera=(), microphone=(), geolocation=(), payment=(), usb=()";

const HSTS: &str = "max-age=31536000; includeSubDomains";

/// Decided once at start-up from the settings.
#[derive(Debug, Clone, Copy)]
pub struct HeaderPolicy {
    pub hsts: bool,
}

pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let hsts = req
        .app_data::<web::Data<HeaderPolicy>>()
        .is_some_and(|p| p.hsts);
    match next.call(req).await {
        Ok(mut res) => {
            apply(res.headers_mut(), hsts);
            Ok(res)
        }
        // An error that escaped the inner layers becomes a response later, outside this
        // middleware; the wrapper puts the headers on that response too.
        Err(inner) => Err(WithSecurityHeaders { inner, hsts }.into()),
    }
}

fn apply(headers: &mut HeaderMap, hsts: bool) {
    let fixed: [(HeaderName, &'static str); 7] = [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
        (
            HeaderName::from_static("permissions-policy"),
            PERMISSIONS_POLICY,
        ),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if hsts {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
    // Pages may show patient-related data: never store them in shared or browser caches,
    // unless the handler chose a policy (static assets do).
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

#[derive(Debug)]
struct WithSecurityHeaders {
    inner: Error,
    hsts: bool,
}

impl std::fmt::Display for WithSecurityHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

impl ResponseError for WithSecurityHeaders {
    fn status_code(&self) -> StatusCode {
        self.inner.as_response_error().status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = self.inner.error_response();
        apply(res.headers_mut(), self.hsts);
        res
    }
}
