//! Request bodies, for every route: deadlines against clients that send them too slowly,
//! and a size limit everywhere but the upload routes.
//!
//! - Every body is read through [`body_timeout`](crate::web::body_timeout): a client
//!   that stalls or trickles gets an error instead of holding its request open. For an
//!   upload the pipeline then keeps what arrived, so the client resumes from there.
//! - Routes that do not take files (everything but `POST /uploads`, `/tus/...` and STOW-RS)
//!   accept at most [`LIMIT`] bytes: a larger `Content-Length` is refused with 413 before anything
//!   runs, and a body without one (chunked) is read here up to the limit, then handed on
//!   from memory. One status for every route, whatever its handler would make of the body.

use std::pin::Pin;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{Error, HttpMessage as _};
use futures_util::{Stream, StreamExt as _};

use crate::app::error::AppError;
use crate::web::body_timeout;

type BoxedStream = Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>;

/// Largest body accepted by a route that does not take files (forms are far smaller).
pub const LIMIT: usize = 64 * 1024;

pub async fn request_body(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let timed = Box::pin(body_timeout::idle(req.take_payload()));
    if takes_files(&req) {
        req.set_payload(Payload::from(timed as BoxedStream));
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    if declared_length(&req).is_some_and(|n| n > LIMIT as u64) {
        return Err(AppError::PayloadTooLarge.into());
    }
    if may_have_body(&req) {
        let body = read_limited(timed).await?;
        req.set_payload(Payload::from(body));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// The upload routes: the plain form upload (also a sender's), everything under `/tus/` and
/// STOW-RS.
fn takes_files(req: &ServiceRequest) -> bool {
    let path = req.path();
    (req.method() == Method::POST && (path == "/uploads" || path == "/send/files" || is_stow(path)))
        || path == "/tus"
        || path.starts_with("/tus/")
}

/// `/dicomweb/studies` and `/dicomweb/studies/{study}` (STOW-RS when POSTed).
pub fn is_stow(path: &str) -> bool {
    match path.strip_prefix("/dicomweb/studies") {
        Some("") => true,
        Some(rest) => rest
            .strip_prefix('/')
            .is_some_and(|study| !study.is_empty() && !study.contains('/')),
        None => false,
    }
}

/// `None` when absent; an unreadable value counts as too large (the server would refuse
/// the request anyway).
fn declared_length(req: &ServiceRequest) -> Option<u64> {
    req.headers().get(header::CONTENT_LENGTH).map(|v| {
        v.to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(u64::MAX)
    })
}

fn may_have_body(req: &ServiceRequest) -> bool {
    declared_length(req).is_some_and(|n| n > 0)
        || req.headers().contains_key(header::TRANSFER_ENCODING)
}

async fn read_limited(
    mut body: impl Stream<Item = Result<Bytes, PayloadError>> + Unpin,
) -> Result<Bytes, AppError> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| unreadable(&e))?;
        if buf.len() + chunk.len() > LIMIT {
            return Err(AppError::PayloadTooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

fn unreadable(e: &PayloadError) -> AppError {
    tracing::debug!(error = %e, "request body not received");
    let timed_out = matches!(
        e,
        PayloadError::Incomplete(Some(io)) if io.kind() == std::io::ErrorKind::TimedOut
    );
    if timed_out {
        AppError::refused(408, "The request arrived too slowly. Please try again.")
    } else {
        AppError::BadRequest("The request could not be read. Please try again.".into())
    }
}

#[cfg(test)]
mod tests {
    use super::is_stow;

    #[test]
    fn only_the_stow_paths_take_files() {
        assert!(is_stow("/dicomweb/studies"));
        assert!(is_stow("/dicomweb/studies/1.2.3"));
        for other in [
            "/dicomweb/studies/",
            "/dicomweb/studies/1.2.3/series",
            "/dicomweb/studiesx",
            "/dicomweb",
            "/api/v1/studies",
        ] {
            assert!(!is_stow(other), "{other}");
        }
    }
}
