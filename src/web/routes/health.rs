use actix_web::{HttpResponse, web};

use crate::infra::db::Database;

/// Alive: the process answers. No dependencies are checked, so a load balancer does not
/// restart a healthy process because the database blinked.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("ok\n")
}

/// Ready: the database answers. 503 with a short reason otherwise.
pub async fn readyz(db: web::Data<Database>) -> HttpResponse {
    match db.check_ready().await {
        Ok(()) => HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body("ready\n"),
        Err(reason) => {
            tracing::warn!(reason, "readiness check failed");
            crate::web::error_pages::keep_body(
                HttpResponse::ServiceUnavailable()
                    .insert_header(("Retry-After", "5"))
                    .content_type("text/plain; charset=utf-8")
                    .body(format!("not ready: {reason}\n")),
            )
        }
    }
}
