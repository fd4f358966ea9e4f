//! Who is uploading: a signed-in browser (session cookie; the CSRF layer has already checked
//! `X-CSRF-Token` on state changes) or a script with an API key (`Authorization: Bearer`).
//! tus routes accept either; the pipeline only sees this one type.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest};

use crate::audit::{Actor, Origin};
use crate::auth::api_keys::ApiPrincipal;
use crate::auth::extractors::CurrentUser;
use crate::domain::api_key::Scope;
use crate::domain::ids::{ApiKeyId, UserId};
use crate::domain::role::Role;
use crate::error::AppError;

#[derive(Clone)]
pub struct Uploader {
    pub user_id: UserId,
    pub email: String,
    pub role: Role,
    /// Set when the request came with an API key.
    pub api_key_id: Option<ApiKeyId>,
    pub origin: Origin,
    key: Option<ApiPrincipal>,
}

impl std::fmt::Debug for Uploader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uploader")
            .field("user_id", &self.user_id)
            .field("api_key_id", &self.api_key_id)
            .finish_non_exhaustive()
    }
}

impl Uploader {
    pub fn actor(&self) -> Actor {
        Actor::user(self.user_id.as_str(), &self.email)
    }

    /// May this principal write uploads? Auditors never; an API key needs scope `upload`
    /// (its refusal is audited by `ApiPrincipal::require`).
    pub async fn require_upload(&self) -> Result<(), AppError> {
        if self.role == Role::Auditor {
            return Err(AppError::Forbidden);
        }
        match &self.key {
            Some(key) => key.require(Scope::Upload).await,
            None => Ok(()),
        }
    }

    pub fn from_session(user: &CurrentUser) -> Self {
        Self {
            user_id: user.id.clone(),
            email: user.email.clone(),
            role: user.role,
            api_key_id: None,
            origin: user.origin(),
            key: None,
        }
    }
}

async fn extract(req: HttpRequest) -> Result<Uploader, actix_web::Error> {
    if req.headers().contains_key(header::AUTHORIZATION) {
        let key = ApiPrincipal::extract(&req).await?;
        return Ok(Uploader {
            user_id: key.user_id.clone(),
            email: key.email.clone(),
            role: key.role,
            api_key_id: Some(key.key_id.clone()),
            origin: key.origin(),
            key: Some(key),
        });
    }
    let user = CurrentUser::extract(&req).await?;
    Ok(Uploader::from_session(&user))
}

impl FromRequest for Uploader {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(extract(req.clone()))
    }
}
