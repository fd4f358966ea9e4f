//! URL map. One module per page group; handlers stay thin.

mod account;
pub mod admin;
mod api;
mod api_docs;
mod api_keys;
mod api_studies;
mod api_uploads;
mod auth;
mod batches;
pub mod dicomweb;
mod files;
mod health;
mod home;
mod metrics;
mod requests;
mod send;
mod single_sign_on;
mod studies;
mod tus;
mod upload_form;
mod uploads;

use actix_web::web;

/// How the upload history pages and counts (the tests page through it).
pub use uploads::history::{
    COUNT_AT_MOST as HISTORY_COUNT_AT_MOST, PAGE_SIZE as HISTORY_PAGE_SIZE,
};

use crate::app::error::AppError;
use crate::web::assets;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(home::index))
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(metrics::metrics))
        .service(
            web::resource("/login")
                .route(web::get().to(auth::login_page))
                .route(web::post().to(auth::login))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/login/totp")
                .route(web::get().to(auth::totp_page))
                .route(web::post().to(auth::totp_submit))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/auth/oidc/start")
                .route(web::post().to(single_sign_on::start))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource(crate::config::CALLBACK_PATH)
                .route(web::get().to(single_sign_on::callback_page))
                .route(web::post().to(single_sign_on::callback))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/logout")
                .route(web::post().to(auth::logout))
                .default_service(web::to(method_not_allowed)),
        )
        .configure(account::configure)
        .configure(api_keys::configure)
        .configure(api::configure)
        .configure(api_uploads::configure)
        .configure(api_studies::configure)
        .configure(api_docs::configure)
        .configure(admin::configure)
        .configure(uploads::configure)
        .configure(upload_form::configure)
        .configure(files::configure)
        .configure(tus::configure)
        .configure(batches::configure)
        .configure(requests::configure)
        .configure(send::configure)
        .configure(studies::configure)
        .configure(dicomweb::configure)
        .service(
            web::resource("/static/{path:.*}")
                .route(web::get().to(assets::serve))
                .default_service(web::to(method_not_allowed)),
        );
}

/// One registered route, as data: the access-control tests walk these tables rather than
/// a hand-kept list.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    pub method: &'static str,
    pub path: &'static str,
}

/// Declares a module's routes once: expands to `ROUTES` (for tests and docs) and
/// `configure` (for the app). Each route is its own resource with a method guard, so
/// several methods on one path coexist.
#[macro_export]
macro_rules! route_table {
    ($($method:ident $path:literal => $handler:path),* $(,)?) => {
        #[allow(dead_code)]
        pub const ROUTES: &[$crate::web::routes::RouteSpec] = &[
            $($crate::web::routes::RouteSpec { method: stringify!($method), path: $path }),*
        ];

        pub fn configure(cfg: &mut actix_web::web::ServiceConfig) {
            let _ = &cfg;
            $(
                cfg.service(
                    actix_web::web::resource($path)
                        .guard($crate::route_table!(@guard $method))
                        .to($handler),
                );
            )*
        }
    };
    (@guard GET) => { actix_web::guard::Get() };
    (@guard POST) => { actix_web::guard::Post() };
    (@guard DELETE) => { actix_web::guard::Delete() };
}

/// Every route under `/api/v1`, from the route tables the app is built from (the access
/// tests and the OpenAPI check walk it).
pub fn api_routes() -> Vec<RouteSpec> {
    [
        api::ROUTES,
        api_uploads::ROUTES,
        api_studies::ROUTES,
        api_docs::ROUTES,
    ]
    .concat()
}

pub async fn not_found() -> Result<actix_web::HttpResponse, AppError> {
    Err(AppError::NotFound)
}

pub async fn method_not_allowed() -> Result<actix_web::HttpResponse, AppError> {
    Err(AppError::MethodNotAllowed)
}
