//! STOW-RS: `POST /dicomweb/studies[/{study}]` with a `multipart/related;
//! type="application/dicom"` body. The handler checks the request's headers, path and query,
//! hands the body to `app::dicomweb::stow`, and answers the PS3.18 store response in
//! `application/dicom+json`. Refusals of the request itself are JSON
//! (`{"error", "message"}`), as on the API.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError as _, web};

use crate::app::dicomweb::stow::{self, StowRequest};
use crate::app::error::AppError;
use crate::app::uploads::{UploadContext, Uploader};
use crate::domain::DicomUid;
use crate::domain::ids::BucketId;
use crate::web::api_principal::ApiPrincipal;
use crate::web::client;
use crate::web::error_pages::keep_body;

crate::route_table! {
    POST "/dicomweb/studies" => store_any,
    POST "/dicomweb/studies/{study}" => store_in_study,
}

pub async fn store_any(
    req: HttpRequest,
    principal: ApiPrincipal,
    ctx: web::Data<UploadContext>,
    body: web::Payload,
) -> HttpResponse {
    respond(&req, principal, &ctx, None, body).await
}

pub async fn store_in_study(
    req: HttpRequest,
    principal: ApiPrincipal,
    ctx: web::Data<UploadContext>,
    study: web::Path<String>,
    body: web::Payload,
) -> HttpResponse {
    respond(&req, principal, &ctx, Some(study.into_inner()), body).await
}

async fn respond(
    req: &HttpRequest,
    principal: ApiPrincipal,
    ctx: &UploadContext,
    study: Option<String>,
    body: web::Payload,
) -> HttpResponse {
    let who = Uploader::with_key(principal.key_use(), principal.role);
    let result = async {
        let request = parse_request(req, study.as_deref())?;
        stow::store(ctx, &who, request, body).await
    }
    .await;
    match result {
        Ok(outcome) => {
            let status = StatusCode::from_u16(outcome.status()).unwrap_or(StatusCode::CONFLICT);
            keep_body(
                HttpResponse::build(status)
                    .content_type("application/dicom+json")
                    .body(outcome.to_dicom_json(&client::base_url(req)).to_string()),
            )
        }
        Err(e) => error_json(&e),
    }
}

fn parse_request(req: &HttpRequest, study: Option<&str>) -> Result<StowRequest, AppError> {
    let study = study
        .map(|raw| {
            DicomUid::parse(raw).ok_or_else(|| {
                AppError::BadRequest(
                    "The study in the path is not a DICOM UID (digits and dots, at most 64 characters)."
                        .into(),
                )
            })
        })
        .transpose()?;
    let bucket = match url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(name, _)| name == "bucket")
        .map(|(_, value)| value.trim().to_string())
        .filter(|v| !v.is_empty())
    {
        None => None,
        // An id that cannot exist is answered like one the user may not see.
        Some(raw) => Some(BucketId::parse(&raw).ok_or(AppError::NotFound)?),
    };
    let boundary = stow::parse_content_type(
        req.headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
    )?;
    let length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    Ok(StowRequest {
        study,
        bucket,
        boundary,
        length,
    })
}

/// `{"error", "message"}` with the status `web::error` gives the kind; a server error says
/// nothing of its cause (`AppError` logs it).
fn error_json(e: &AppError) -> HttpResponse {
    let status = e.status_code();
    let message = match e {
        AppError::BadRequest(m) | AppError::Refused(_, m) => m.clone(),
        AppError::NotFound => "No such bucket, or not one you may upload to.".into(),
        AppError::Forbidden => "This API key lacks the `upload` scope.".into(),
        _ if status.is_server_error() => {
            tracing::error!(error = %e, "STOW request failed");
            "The server could not store the instances. Please try again later.".into()
        }
        _ => status.canonical_reason().unwrap_or("refused").into(),
    };
    let code = status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase()
        .replace(' ', "_");
    let mut res = HttpResponse::build(status);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        res.insert_header((header::RETRY_AFTER, "5"));
    }
    keep_body(res.json(serde_json::json!({ "error": code, "message": message })))
}
