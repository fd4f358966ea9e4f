//! Administration pages. Every route here is listed in a `route_table!`, so the
//! access-control tests can walk all of them.

pub mod audit;
pub mod buckets;
pub mod notifications;
pub mod security;
pub mod uploads;
pub mod users;

use actix_web::web;

use crate::app::error::AppError;
use crate::web::routes::RouteSpec;

pub fn configure(cfg: &mut actix_web::web::ServiceConfig) {
    users::configure(cfg);
    buckets::configure(cfg);
    notifications::configure(cfg);
    audit::configure(cfg);
    uploads::configure(cfg);
    security::configure(cfg);
}

/// Every admin route, for tests that check each one refuses the wrong roles.
pub fn all_routes() -> Vec<RouteSpec> {
    [
        users::ROUTES,
        buckets::ROUTES,
        notifications::ROUTES,
        audit::ROUTES,
        uploads::ROUTES,
        security::ROUTES,
    ]
    .concat()
}

/// Form bodies are read after the role check has run: every field defaults to empty, and an
/// unreadable body is only reported once the handler (behind `Admin`) runs.
type FormResult<T> = Result<web::Form<T>, actix_web::Error>;

fn fields<T>(form: FormResult<T>) -> Result<T, AppError> {
    form.map(web::Form::into_inner).map_err(|_| {
        AppError::BadRequest("The form could not be read. Reload the page and try again.".into())
    })
}
