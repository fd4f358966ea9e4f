//! The client's address. Behind a trusted reverse proxy it is the right-most address in
//! `X-Forwarded-For` that is not itself a trusted proxy; otherwise the socket peer. Headers
//! from untrusted peers are ignored, so a client cannot pick its own rate-limit bucket.

use std::net::IpAddr;

use actix_web::HttpRequest;
use actix_web::dev::ServiceRequest;
use actix_web::http::header::HeaderMap;

pub fn resolve(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !trusted.contains(ip))
            .unwrap_or(peer),
    )
}

fn trusted_of(req: &HttpRequest) -> &[IpAddr] {
    req.app_data::<actix_web::web::Data<crate::config::Settings>>()
        .map_or(&[], |s| s.trusted_proxies.as_slice())
}

pub fn of_request(req: &HttpRequest) -> Option<IpAddr> {
    resolve(
        req.peer_addr().map(|a| a.ip()),
        req.headers(),
        trusted_of(req),
    )
}

pub fn of_service_request(req: &ServiceRequest) -> Option<IpAddr> {
    of_request(req.request())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            HeaderName::from_static("x-forwarded-for"),
            HeaderValue::from_str(xff).unwrap(),
        );
        h
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let client: IpAddr = "203.0.113.9".parse().unwrap();
        let spoofed = headers("1.2.3.4, 203.0.113.9");
        assert_eq!(resolve(Some(client), &spoofed, &[]), Some(client));
        assert_eq!(resolve(Some(proxy), &spoofed, &[proxy]), Some(client));
        assert_eq!(
            resolve(Some(proxy), &HeaderMap::new(), &[proxy]),
            Some(proxy)
        );
    }
}
