use actix_web::HttpResponse;
use actix_web::http::header;

use crate::app::error::AppError;
use crate::web::extractors::CurrentUser;

/// The start page: signed-in users go to their uploads (what most of them come for),
/// everyone else to the sign-in page (which says why when their session ended).
pub async fn index(user: Result<CurrentUser, AppError>) -> HttpResponse {
    let target = match user {
        Ok(_) => "/uploads".to_string(),
        Err(AppError::SeeOther(location)) => location,
        Err(_) => "/login".to_string(),
    };
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, target))
        .finish()
}
