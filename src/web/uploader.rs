//! Who is uploading, from the request: a signed-in browser (session cookie; the CSRF layer
//! has already checked `X-CSRF-Token` on state changes) or a script with an API key
//! (`Authorization: Bearer`). tus routes accept either.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest};

use crate::app::uploads::Uploader;
use crate::web::api_principal::ApiPrincipal;
use crate::web::extractors::CurrentUser;

async fn extract(req: HttpRequest) -> Result<Uploader, actix_web::Error> {
    if req.headers().contains_key(header::AUTHORIZATION) {
        let key = ApiPrincipal::extract(&req).await?;
        return Ok(Uploader::with_key(key.key_use(), key.role));
    }
    let user = CurrentUser::extract(&req).await?;
    Ok(Uploader::signed_in(
        user.id.clone(),
        user.email.clone(),
        user.role,
        user.origin(),
    ))
}

impl FromRequest for Uploader {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(extract(req.clone()))
    }
}
