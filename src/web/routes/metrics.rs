//! `GET /metrics`: Prometheus's text format, for a scraper on this machine, or elsewhere
//! with `Authorization: Bearer <MEDPORT_METRICS_TOKEN>`. A request a proxy forwarded is
//! never "this machine", so the public site cannot serve it without the token.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use crate::app::error::AppError;
use crate::app::uploads::UploadContext;
use crate::config::Settings;
use crate::web::client;
use crate::web::error_pages::keep_body;

pub async fn metrics(
    req: HttpRequest,
    settings: web::Data<Settings>,
    ctx: web::Data<UploadContext>,
) -> Result<HttpResponse, AppError> {
    if !client::is_on_this_machine(&req) {
        match &settings.metrics_token {
            None => {
                return Ok(refusal(
                    HttpResponse::Forbidden(),
                    "metrics are served to this machine only; set MEDPORT_METRICS_TOKEN to scrape from elsewhere\n",
                ));
            }
            Some(token) if !bearer_matches(&req, token.expose_secret()) => {
                let mut res = HttpResponse::Unauthorized();
                res.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"medport metrics\""));
                return Ok(refusal(res, "a valid bearer token is required\n"));
            }
            Some(_) => {}
        }
    }
    let body = crate::app::metrics::scrape(&ctx).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body))
}

fn bearer_matches(req: &HttpRequest, token: &str) -> bool {
    crate::web::api_principal::bearer_token(req)
        .is_ok_and(|given| bool::from(given.as_bytes().ct_eq(token.as_bytes())))
}

fn refusal(mut res: actix_web::HttpResponseBuilder, reason: &'static str) -> HttpResponse {
    keep_body(
        res.content_type("text/plain; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(reason),
    )
}
