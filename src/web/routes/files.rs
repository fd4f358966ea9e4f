//! Downloads from the pages. Only the owner and administrators may fetch a file, and only
//! once it is completed; the rules and the audit event are `app::uploads::download`'s, the
//! HTTP shape is `web::download`'s (both shared with the API).

use actix_web::{HttpRequest, HttpResponse, web};

use super::uploads::Viewer;
use crate::app::error::AppError;
use crate::app::uploads::UploadContext;
use crate::app::uploads::download::{self, Downloader};
use crate::domain::ids::UploadId;
use crate::web::download::{range_not_satisfiable, requested_range, stream};
use crate::web::error_pages::keep_body;
use crate::web::extractors::CurrentUser;

crate::route_table! {
    GET "/files/{id}/download" => download,
}

pub async fn download(
    user: CurrentUser,
    req: HttpRequest,
    path: web::Path<String>,
    ctx: web::Data<UploadContext>,
) -> Result<HttpResponse, AppError> {
    // Auditors read the history but never file contents; administrators need TOTP.
    let viewer = Viewer::of(&user)?;
    let id = UploadId::parse(&path).ok_or(AppError::NotFound)?;
    let who = Downloader {
        user_id: viewer.id,
        admin: viewer.admin,
        actor: user.actor(),
        origin: user.origin(),
    };
    let file = download::check(&ctx, who, &id).await?;
    let Ok(range) = requested_range(&req, file.size()) else {
        return Ok(keep_body(range_not_satisfiable(file.size())));
    };
    let bytes = file.open(&ctx, range).await?;
    Ok(stream(bytes, |_| {}))
}
