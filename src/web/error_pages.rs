//! Turns every error status into a friendly page (for browsers), a JSON body (under the
//! JSON APIs' path prefixes, `JSON_PREFIXES`) or a short plain-text answer (for other
//! scripts and tus clients). Bodies produced by inner layers, which might carry
//! framework or parser details, are replaced; handlers that render their own error body on
//! purpose (a form shown again with its messages, tus status lines) mark it `KeepBody`.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpResponse, ResponseError, web};
use askama::Template;

use crate::infra::db::Database;
use crate::web::error::{ErrorCode, PublicMessage};
use crate::web::views::{ErrorPage, Layout};

/// Paths whose errors are JSON (`{"error", "message"}`, plus `retry_after` on 429), for
/// scripts that parse every answer; a JSON API mounted elsewhere adds its prefix here.
const JSON_PREFIXES: &[&str] = &["/api/"];

/// How an error body is written for this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Html,
    Json,
    Plain,
}

impl Format {
    fn of(path: &str, headers: &HeaderMap) -> Self {
        if JSON_PREFIXES
            .iter()
            .any(|p| path.starts_with(p) || path == p.trim_end_matches('/'))
        {
            Self::Json
        } else if accepts_html(headers) {
            Self::Html
        } else {
            Self::Plain
        }
    }
}

/// Response extension: this error response already says what it should.
#[derive(Debug, Clone, Copy)]
pub struct KeepBody;

pub fn keep_body(mut res: HttpResponse) -> HttpResponse {
    res.extensions_mut().insert(KeepBody);
    res
}

pub async fn error_pages(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    // Taken before the call: the request cannot be shared while it is being routed.
    let format = Format::of(req.path(), req.headers());
    let request_id = req
        .extensions()
        .get::<tracing_actix_web::RequestId>()
        .map(ToString::to_string);
    let db = req.app_data::<web::Data<Database>>().cloned();
    // A failure while the database is unreachable is an outage, not a bug: say 503.
    let outage = |status: StatusCode| {
        if status == StatusCode::INTERNAL_SERVER_ERROR
            && db.as_ref().is_some_and(|d| d.is_unavailable())
        {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            status
        }
    };
    let res = match next.call(req).await {
        Ok(res) => res.map_into_boxed_body(),
        Err(err) => {
            // Errors raised outside our handlers (session store, extractors of other
            // layers) are logged here; `AppError` logs its own causes.
            if err.as_response_error().status_code().is_server_error() {
                tracing::error!(error = %err, "request failed in a middleware layer");
            } else {
                tracing::debug!(error = %err, "request refused by a middleware layer");
            }
            let status = outage(err.as_response_error().status_code());
            let original = err.error_response();
            let page = FriendlyPage::new(status, &original, format, request_id);
            return Err(page.into());
        }
    };
    let status = res.status();
    if status.as_u16() < 400 || res.response().extensions().contains::<KeepBody>() {
        return Ok(res);
    }
    let page = FriendlyPage::new(outage(status), res.response(), format, request_id);
    let replacement = page.error_response();
    Ok(res.into_response(replacement))
}

/// The safe replacement for an error response: status, the headers that describe the error
/// (Retry-After, Allow, ...), and a fixed text for that status.
#[derive(Debug)]
struct FriendlyPage {
    status: StatusCode,
    headers: HeaderMap,
    content_type: &'static str,
    body: String,
}

impl FriendlyPage {
    fn new(
        status: StatusCode,
        original: &HttpResponse,
        format: Format,
        request_id: Option<String>,
    ) -> Self {
        let public = original.extensions().get::<PublicMessage>().cloned();
        let code = original.extensions().get::<ErrorCode>().copied();
        let (title, default_message) = match format {
            Format::Json => describe_for_scripts(status),
            Format::Html | Format::Plain => describe(status),
        };
        let message = public.map_or_else(|| default_message.to_string(), |m| m.0);
        let mut headers = HeaderMap::new();
        for (name, value) in original.headers() {
            if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                headers.append(name.clone(), value.clone());
            }
        }
        if status == StatusCode::SERVICE_UNAVAILABLE && !headers.contains_key(header::RETRY_AFTER) {
            headers.insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        }
        let plain = format!("{} {title}\n{message}\n", status.as_u16());
        let (content_type, body) = if format == Format::Json {
            let code = code.map_or_else(|| code_of(status), |c| c.0);
            ("application/json", json_body(code, &message, &headers))
        } else if format == Format::Html {
            let page = ErrorPage {
                layout: Layout::anonymous(""),
                status: status.as_u16(),
                title: title.to_string(),
                message,
                request_id,
            };
            match page.render() {
                Ok(html) => ("text/html; charset=utf-8", html),
                Err(e) => {
                    tracing::error!(error = %e, "error page failed to render");
                    ("text/plain; charset=utf-8", plain)
                }
            }
        } else {
            ("text/plain; charset=utf-8", plain)
        };
        Self {
            status,
            headers,
            content_type,
            body,
        }
    }
}

impl std::fmt::Display for FriendlyPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "error page {}", self.status)
    }
}

impl ResponseError for FriendlyPage {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status);
        for (name, value) in &self.headers {
            builder.append_header((name.clone(), value.clone()));
        }
        builder
            .content_type(self.content_type)
            .body(self.body.clone())
    }
}

/// `{"error": code, "message": ...}`, and `retry_after` (seconds) when the answer says
/// when to come back.
fn json_body(code: &str, message: &str, headers: &HeaderMap) -> String {
    let mut body = serde_json::json!({ "error": code, "message": message });
    if let Some(secs) = headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        body["retry_after"] = secs.into();
    }
    body.to_string()
}

/// The stable code of a status, for JSON bodies whose error has no more precise one.
fn code_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        406 => "not_acceptable",
        408 => "request_timeout",
        409 => "conflict",
        410 => "gone",
        411 => "length_required",
        412 => "precondition_failed",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        416 => "range_not_satisfiable",
        423 => "locked",
        429 => "rate_limited",
        500 => "internal_error",
        503 => "unavailable",
        507 => "storage_full",
        _ if status.is_client_error() => "refused",
        _ => "server_error",
    }
}

/// The page texts speak of signing in and reloading pages; a script needs these instead.
fn describe_for_scripts(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        401 => (
            "Unauthorized",
            "A valid API key is required: send it as `Authorization: Bearer mp_...`.",
        ),
        403 => (
            "Forbidden",
            "This request is not allowed. An API key needs the `read` scope to read and the `upload` scope to change uploads.",
        ),
        404 => (
            "Not found",
            "There is nothing at this address, or it does not belong to this API key's owner.",
        ),
        409 => (
            "Conflict",
            "The request conflicts with the current state of the resource.",
        ),
        _ => describe(status),
    }
}

fn accepts_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

fn describe(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        400 => (
            "Bad request",
            "The request could not be understood. Please check what you entered and try again.",
        ),
        401 => ("Sign-in required", "Please sign in to continue."),
        403 => (
            "Access denied",
            "You do not have permission to do this. If you think you should, ask your administrator.",
        ),
        404 => (
            "Page not found",
            "There is nothing at this address. It may have moved, or you may not have access to it.",
        ),
        405 => (
            "Method not allowed",
            "This address does not accept that kind of request.",
        ),
        408 => (
            "Request timed out",
            "The request took too long to arrive. Please try again.",
        ),
        409 => (
            "Conflict",
            "The request conflicts with the current state. Reload the page and try again.",
        ),
        410 => (
            "Gone",
            "This is no longer available. An unfinished upload expires after a while; please start it again.",
        ),
        412 => (
            "Precondition failed",
            "The client speaks a protocol version this server does not support.",
        ),
        423 => (
            "Busy",
            "Another request is working on this right now. Please try again in a moment.",
        ),
        460 => (
            "Checksum mismatch",
            "The data did not match its checksum and was discarded. Please send it again.",
        ),
        413 => (
            "Too large",
            "What you sent is larger than this server accepts.",
        ),
        415 => (
            "Unsupported type",
            "This kind of content is not accepted here.",
        ),
        416 => (
            "Range not available",
            "The requested part of the file is outside the file.",
        ),
        429 => (
            "Too many requests",
            "Please wait a moment before trying again.",
        ),
        503 => (
            "Temporarily unavailable",
            "The service is temporarily unavailable. Please try again in a minute.",
        ),
        507 => (
            "Storage full",
            "The storage is full, so nothing more can be saved right now. Nothing already stored was affected; please tell your administrator.",
        ),
        500..=599 => (
            "Something went wrong",
            "The server could not complete this request. The problem has been logged; please try again, and quote the reference below if it keeps happening.",
        ),
        _ => ("Request refused", "The request could not be completed."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_under_the_api_prefix_are_json_whatever_the_client_accepts() {
        let mut html = HeaderMap::new();
        html.insert(
            header::ACCEPT,
            header::HeaderValue::from_static("text/html"),
        );
        let none = HeaderMap::new();
        for path in ["/api/v1/uploads/x", "/api/", "/api"] {
            assert_eq!(Format::of(path, &html), Format::Json, "{path}");
        }
        assert_eq!(Format::of("/apis", &html), Format::Html);
        assert_eq!(Format::of("/uploads/x", &html), Format::Html);
        assert_eq!(Format::of("/tus/x", &none), Format::Plain);
    }

    #[test]
    fn json_bodies_carry_a_stable_code_and_retry_after_when_there_is_one() {
        let mut headers = HeaderMap::new();
        let body: serde_json::Value =
            serde_json::from_str(&json_body("not_found", "Nothing here.", &headers)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": "not_found", "message": "Nothing here."})
        );
        headers.insert(header::RETRY_AFTER, header::HeaderValue::from_static("7"));
        let body: serde_json::Value =
            serde_json::from_str(&json_body("rate_limited", "Wait.", &headers)).unwrap();
        assert_eq!(body["retry_after"], 7);
        assert_eq!(code_of(StatusCode::TOO_MANY_REQUESTS), "rate_limited");
        assert_eq!(code_of(StatusCode::from_u16(460).unwrap()), "refused");
        assert_eq!(code_of(StatusCode::BAD_GATEWAY), "server_error");
    }
}
