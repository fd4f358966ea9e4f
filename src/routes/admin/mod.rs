//! Administration pages. Every route here is listed in a `route_table!`, so the
//! access-control tests can walk all of them.

pub mod audit;
pub mod buckets;
pub mod uploads;
pub mod users;

use crate::routes::RouteSpec;

pub fn configure(cfg: &mut actix_web::web::ServiceConfig) {
    users::configure(cfg);
    buckets::configure(cfg);
    audit::configure(cfg);
    uploads::configure(cfg);
}

/// Every admin route, for tests that check each one refuses the wrong roles.
pub fn all_routes() -> Vec<RouteSpec> {
    [
        users::ROUTES,
        buckets::ROUTES,
        audit::ROUTES,
        uploads::ROUTES,
    ]
    .concat()
}
