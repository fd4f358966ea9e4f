//! DICOMweb (PS3.18) under `/dicomweb`, for a Bearer API key: QIDO-RS searches (`qido`)
//! and WADO-RS retrievals (`wado`) with scope `read`, STOW-RS (`stow`) with scope `upload`. Only the key owner's instances are
//! visible; an administrator's key is not special. Failures answer JSON
//! `{"error", "message"}`, as every API does, never an HTML page.

mod negotiate;
mod qido;
pub mod stow;
mod wado;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde_json::json;

use crate::app::error::AppError;
use crate::domain::api_key::Scope;
use crate::web::api_principal::ApiPrincipal;
use crate::web::error::PublicMessage;
use crate::web::error_pages::keep_body;
use crate::web::routes::RouteSpec;

/// The DICOM JSON media type (PS3.18 8.7.3.2).
const DICOM_JSON: &str = "application/dicom+json";

pub fn configure(cfg: &mut actix_web::web::ServiceConfig) {
    qido::configure(cfg);
    wado::configure(cfg);
    stow::configure(cfg);
}

/// Every DICOMweb route, for the tests that walk them.
pub fn all_routes() -> Vec<RouteSpec> {
    [qido::ROUTES, wado::ROUTES, stow::ROUTES].concat()
}

/// Why a DICOMweb request failed: the key (401, raised by the extractor) or the request.
enum Failure {
    Key(actix_web::Error),
    App(AppError),
}

impl From<AppError> for Failure {
    fn from(e: AppError) -> Self {
        Self::App(e)
    }
}

impl From<actix_web::Error> for Failure {
    fn from(e: actix_web::Error) -> Self {
        Self::Key(e)
    }
}

type Answer = Result<HttpResponse, Failure>;

/// The key, once it is known to carry `read`.
async fn reader(
    principal: Result<ApiPrincipal, actix_web::Error>,
) -> Result<ApiPrincipal, Failure> {
    let principal = principal?;
    principal.require(Scope::Read).await?;
    Ok(principal)
}

/// The `/dicomweb` URL this client reaches, for RetrieveURLs.
fn base(req: &HttpRequest) -> String {
    format!("{}/dicomweb", crate::web::client::base_url(req))
}

/// The answer, or the failure as a JSON body with the failure's status and headers (the
/// bearer challenge, Retry-After).
fn respond(answer: Answer) -> HttpResponse {
    let failure = match answer {
        Ok(res) => return res,
        Err(f) => f,
    };
    let original = match &failure {
        Failure::Key(e) => e.error_response(),
        Failure::App(e) => e.error_response(),
    };
    let status = original.status();
    let message = original
        .extensions()
        .get::<PublicMessage>()
        .map_or_else(|| describe(status).to_string(), |m| m.0.clone());
    let mut res = HttpResponse::build(status);
    for (name, value) in original.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            res.append_header((name.clone(), value.clone()));
        }
    }
    res.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
    keep_body(res.json(json!({ "error": code(status), "message": message })))
}

fn code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        406 => "not_acceptable",
        409 => "conflict",
        429 => "too_many_requests",
        503 => "unavailable",
        s if s >= 500 => "internal_error",
        _ => "error",
    }
}

fn describe(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "An API key is needed: send it as Authorization: Bearer mp_...",
        403 => "This API key does not carry the read scope.",
        404 => "Nothing of yours is stored under this address.",
        503 => "The service is briefly unavailable; please try again.",
        s if s >= 500 => "The request could not be completed. It has been logged.",
        _ => "The request was refused.",
    }
}
