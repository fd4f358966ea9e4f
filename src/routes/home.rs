use actix_web::HttpResponse;
use actix_web::http::header;

/// The start page sends visitors to sign in; later it sends signed-in users to their uploads.
pub async fn index() -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/login"))
        .finish()
}
