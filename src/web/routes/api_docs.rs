//! The OpenAPI 3.1 description of `/api/v1`, public like any API documentation. It is a
//! checked-in file (`docs/openapi.json`); a test compares it with the route tables so the
//! two cannot drift apart.

use actix_web::HttpResponse;

crate::route_table! {
    GET "/api/v1/openapi.json" => openapi,
}

const OPENAPI: &str = include_str!("../../../docs/openapi.json");

pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(OPENAPI)
}
