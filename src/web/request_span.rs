//! The root span of each request for the request log. tracing-actix-web's default span
//! takes the client address and host from `connection_info()`, which believes forwarded
//! headers from anyone; this one takes them from `web::client`, like every other layer.
//! Each request ends with one log line (`request done`) in this span.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::{Error, HttpMessage};
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RequestId, RootSpanBuilder};

/// Long paths are cut in the log (they are attacker-chosen and may be huge).
const MAX_TARGET: usize = 512;

pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let http = request.request();
        let route = request.match_pattern().unwrap_or_default();
        let user_agent = request
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(ToString::to_string)
            .unwrap_or_default();
        let path = request.path();
        tracing::info_span!(
            "HTTP request",
            http.method = %request.method(),
            http.route = %route,
            http.host = %crate::web::client::host(http),
            http.client_ip = %crate::web::client::ip(http).map(|ip| ip.to_string()).unwrap_or_default(),
            http.user_agent = %truncate(user_agent, 256),
            http.target = %truncate(path, MAX_TARGET),
            http.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            request_id = %request_id,
            exception.message = tracing::field::Empty,
            exception.details = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let status = match outcome {
            Ok(res) => res.status().as_u16(),
            Err(e) => e.as_response_error().status_code().as_u16(),
        };
        // The request log: one line per request, carrying the span's fields.
        span.in_scope(|| tracing::info!(status, "request done"));
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}
