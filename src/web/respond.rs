//! The two answers most handlers give: a rendered page with a chosen status, and a
//! redirect after a form post.

use actix_web::HttpResponse;
use actix_web::http::{StatusCode, header};
use askama::Template;

use crate::app::error::AppError;
use crate::web::error_pages::keep_body;

/// A page rendered with `status`. Error statuses keep this body (a form shown again with
/// its messages) instead of the generic error page.
pub fn render(status: StatusCode, page: &impl Template) -> Result<HttpResponse, AppError> {
    let html = page.render().map_err(AppError::internal)?;
    Ok(keep_body(
        HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(html),
    ))
}

pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}
