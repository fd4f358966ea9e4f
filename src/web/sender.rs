//! A sender without an account, from their session: the submission it holds is their whole
//! right to upload (see `app::requests::sending`). Only the sender routes (`/tus/send/`,
//! `/batches/send`, `/send`) take this extractor; every other route needs a signed-in user
//! or an API key, and a sender's session has neither.

use std::future::Future;
use std::pin::Pin;

use actix_session::SessionExt;
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};

use crate::app::error::AppError;
use crate::app::requests::sending::{self, Visit};
use crate::app::uploads::Uploader;
use crate::domain::clock::Clock;
use crate::infra::db::Database;
use crate::web::extractors::request_origin;
use crate::web::session;

pub struct Sender(pub Uploader);

/// The visit this request comes from, `None` when its session holds no open visit (never
/// started, finished, or the request was closed or revoked since).
pub async fn current(req: &HttpRequest) -> Result<Option<Visit>, AppError> {
    let Some(submission) = session::sending(&req.get_session()) else {
        return Ok(None);
    };
    let db = req
        .app_data::<web::Data<Database>>()
        .ok_or_else(|| AppError::internal("no database"))?;
    let clock = req
        .app_data::<web::Data<Clock>>()
        .ok_or_else(|| AppError::internal("no clock"))?;
    sending::sender(db, clock, &submission, request_origin(req)).await
}

impl FromRequest for Sender {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            // Like an upload that does not exist: nothing tells a prober what the route is.
            current(&req)
                .await?
                .map(|visit| Sender(visit.uploader))
                .ok_or(AppError::NotFound)
        })
    }
}
