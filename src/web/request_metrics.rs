//! Counts every answer by route class and status, and times it. The class comes from a
//! fixed list matched on the path's start, so no part of a request becomes a label.

use std::time::Instant;

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;

use crate::infra::metrics::metrics;

pub async fn request_metrics(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let route = route_class(req.path());
    let started = Instant::now();
    let res = next.call(req).await;
    let status = match &res {
        Ok(res) => res.status(),
        Err(e) => e.as_response_error().status_code(),
    };
    let m = metrics();
    m.http_requests
        .with_label_values(&[route, status.as_str()])
        .inc();
    m.http_duration
        .with_label_values(&[route])
        .observe(started.elapsed().as_secs_f64());
    res
}

/// The route class of a path: one of a fixed set.
pub fn route_class(path: &str) -> &'static str {
    const CLASSES: [(&str, &str); 13] = [
        ("/tus", "tus"),
        ("/api/", "api"),
        ("/dicomweb/", "dicomweb"),
        ("/static/", "static"),
        ("/healthz", "health"),
        ("/readyz", "health"),
        ("/metrics", "metrics"),
        ("/login", "auth"),
        ("/logout", "auth"),
        ("/admin", "admin"),
        ("/studies", "studies"),
        ("/uploads", "uploads"),
        ("/files", "uploads"),
    ];
    CLASSES
        .iter()
        .find(|(prefix, _)| path.starts_with(prefix))
        .map_or("page", |(_, class)| class)
}

#[cfg(test)]
mod tests {
    use super::route_class;

    #[test]
    fn paths_fall_into_a_fixed_set_of_classes() {
        assert_eq!(route_class("/tus/0193"), "tus");
        assert_eq!(route_class("/api/v1/uploads/x"), "api");
        assert_eq!(route_class("/dicomweb/studies"), "dicomweb");
        assert_eq!(route_class("/studies/1.2.3/archive"), "studies");
        assert_eq!(route_class("/login/totp"), "auth");
        assert_eq!(route_class("/"), "page");
        assert_eq!(route_class("/account/sessions"), "page");
        assert_eq!(route_class("/../etc/passwd"), "page");
    }
}
