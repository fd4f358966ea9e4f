//! URL map. One module per page group; handlers stay thin.

mod auth;
mod health;
mod home;

use actix_web::web;

use crate::error::AppError;
use crate::web::assets;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(home::index))
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .service(
            web::resource("/login")
                .route(web::get().to(auth::login_page))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/static/{path:.*}")
                .route(web::get().to(assets::serve))
                .default_service(web::to(method_not_allowed)),
        );
}

pub async fn not_found() -> Result<actix_web::HttpResponse, AppError> {
    Err(AppError::NotFound)
}

pub async fn method_not_allowed() -> Result<actix_web::HttpResponse, AppError> {
    Err(AppError::MethodNotAllowed)
}
