//! The `ApiPrincipal` extractor: a request authenticated by an API key in the one
//! `Authorization: Bearer` header, never by the session cookie.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError, web};

use crate::app::accounts::api_keys::{KeyUse, authenticate};
use crate::app::audit::refusals::Refusals;
use crate::app::audit::{Actor, Origin};
use crate::app::error::AppError;
use crate::domain::api_key::{ApiKeySecret, Scope, Scopes};
use crate::domain::clock::Clock;
use crate::domain::ids::{ApiKeyId, UserId};
use crate::domain::role::Role;
use crate::infra::db::Database;
use crate::web::extractors::request_origin;

/// A request authenticated by an API key (`Authorization: Bearer mp_...`) and nothing else:
/// it never looks at the session cookie. Handlers check what the key may do with `require`.
#[derive(Clone)]
pub struct ApiPrincipal {
    pub user_id: UserId,
    pub email: String,
    pub role: Role,
    pub scopes: Scopes,
    pub key_id: ApiKeyId,
    origin: Origin,
    method: String,
    path: String,
    db: web::Data<Database>,
}

impl std::fmt::Debug for ApiPrincipal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiPrincipal")
            .field("user_id", &self.user_id)
            .field("key_id", &self.key_id)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl ApiPrincipal {
    pub fn actor(&self) -> Actor {
        Actor::user(self.user_id.as_str(), &self.email)
    }

    pub fn origin(&self) -> Origin {
        self.origin.clone()
    }

    /// The key as the application sees it in use.
    pub fn key_use(&self) -> KeyUse {
        KeyUse {
            user_id: self.user_id.clone(),
            email: self.email.clone(),
            key_id: self.key_id.clone(),
            scopes: self.scopes,
            origin: self.origin.clone(),
            method: self.method.clone(),
            path: self.path.clone(),
        }
    }

    /// `Ok` when the key carries `scope`; otherwise audits `access.denied` and answers 403.
    pub async fn require(&self, scope: Scope) -> Result<(), AppError> {
        self.key_use().require(&self.db, scope).await
    }
}

/// 401 for a missing or refused bearer credential, with the RFC 6750 challenge.
#[derive(Debug, thiserror::Error)]
pub enum BearerRefused {
    #[error("no bearer credentials")]
    Missing,
    #[error("bearer credentials refused")]
    Invalid,
}

impl ResponseError for BearerRefused {
    fn status_code(&self) -> StatusCode {
        StatusCode::UNAUTHORIZED
    }

    fn error_response(&self) -> HttpResponse {
        let challenge = match self {
            Self::Missing => r#"Bearer realm="medport""#,
            Self::Invalid => r#"Bearer realm="medport", error="invalid_token""#,
        };
        let mut res = AppError::Unauthorized.error_response();
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
        res
    }
}

/// The key from the one `Authorization: Bearer` header, if the header is well formed.
fn bearer_key(req: &HttpRequest) -> Result<ApiKeySecret, BearerRefused> {
    ApiKeySecret::parse(bearer_token(req)?).ok_or(BearerRefused::Invalid)
}

/// The credentials of the one `Authorization: Bearer` header, if the header is well formed.
pub(crate) fn bearer_token(req: &HttpRequest) -> Result<&str, BearerRefused> {
    let mut values = req.headers().get_all(header::AUTHORIZATION);
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(BearerRefused::Missing);
    };
    let value = value.to_str().map_err(|_| BearerRefused::Invalid)?;
    let Some((scheme, token)) = value.split_once(' ') else {
        return Err(BearerRefused::Invalid);
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BearerRefused::Missing);
    }
    Ok(token.trim_matches(' '))
}

/// The outcome of checking a request's bearer key, kept in the request's extensions so the
/// rate limiter (which needs to know whose request it is) and the extractor check and audit
/// a key once.
#[derive(Clone)]
struct Checked(Result<ApiPrincipal, BearerRefusal>);

#[derive(Clone, Copy, Debug)]
enum BearerRefusal {
    Missing,
    Invalid,
}

impl From<BearerRefusal> for BearerRefused {
    fn from(r: BearerRefusal) -> Self {
        match r {
            BearerRefusal::Missing => Self::Missing,
            BearerRefusal::Invalid => Self::Invalid,
        }
    }
}

/// The key's owner when the request carries a valid bearer key (`None` otherwise).
/// Checks the key once per request.
pub async fn owner_of(req: &HttpRequest) -> Result<Option<UserId>, AppError> {
    match check(req).await? {
        Ok(principal) => Ok(Some(principal.user_id)),
        Err(_) => Ok(None),
    }
}

async fn check(req: &HttpRequest) -> Result<Result<ApiPrincipal, BearerRefusal>, AppError> {
    if let Some(Checked(done)) = req.extensions().get::<Checked>() {
        return Ok(done.clone());
    }
    let checked = authenticate_request(req).await?;
    req.extensions_mut().insert(Checked(checked.clone()));
    Ok(checked)
}

async fn authenticate_request(
    req: &HttpRequest,
) -> Result<Result<ApiPrincipal, BearerRefusal>, AppError> {
    let presented = match bearer_key(req) {
        Ok(key) => key,
        Err(BearerRefused::Missing) => return Ok(Err(BearerRefusal::Missing)),
        Err(BearerRefused::Invalid) => return Ok(Err(BearerRefusal::Invalid)),
    };
    let db = req
        .app_data::<web::Data<Database>>()
        .cloned()
        .ok_or_else(|| AppError::internal("database not configured"))?;
    let clock = req
        .app_data::<web::Data<Clock>>()
        .cloned()
        .ok_or_else(|| AppError::internal("clock not configured"))?;
    let origin = request_origin(req);
    let now = clock.now_naive();
    let lookup_origin = origin.clone();
    let refusals = req
        .app_data::<web::Data<Refusals>>()
        .cloned()
        .ok_or_else(|| AppError::internal("refusal counts not configured"))?;
    let Some(owner) = db
        .run(move |conn| authenticate(conn, &presented, now, &lookup_origin, &refusals))
        .await?
    else {
        return Ok(Err(BearerRefusal::Invalid));
    };
    Ok(Ok(ApiPrincipal {
        user_id: owner.user_id,
        email: owner.email,
        role: owner.role,
        scopes: owner.scopes,
        key_id: owner.key_id,
        origin,
        method: req.method().as_str().to_string(),
        path: crate::app::audit::refusals::capped_path(req.path()).to_string(),
        db,
    }))
}

async fn extract(req: HttpRequest) -> Result<ApiPrincipal, actix_web::Error> {
    Ok(check(&req).await?.map_err(BearerRefused::from)?)
}

impl FromRequest for ApiPrincipal {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(extract(req.clone()))
    }
}
