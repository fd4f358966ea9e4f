//! Who the client is and which address it used to reach us, decided in one place. Forwarded
//! headers (`X-Forwarded-For`, `X-Forwarded-Host`, `X-Forwarded-Proto`) count only when the
//! socket peer is one of `MEDPORT_TRUSTED_PROXIES`; otherwise the peer address and the
//! request's own `Host` are used, and `MEDPORT_PUBLIC_URL`, when set, is the one base URL.
//! So a client can pick neither its rate-limit bucket, its audited address, the host the
//! CSRF Origin check compares with, nor the host of a tus `Location`.
//!
//! actix's `connection_info()` believes forwarded headers from anyone: never use it.

use std::net::IpAddr;

use actix_web::HttpRequest;
use actix_web::dev::ServiceRequest;
use actix_web::http::header::{self, HeaderMap};

use crate::config::Settings;

/// The client's address: behind a trusted proxy, the right-most `X-Forwarded-For` address
/// that is not itself a trusted proxy; otherwise the socket peer.
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

fn settings_of(req: &HttpRequest) -> Option<&Settings> {
    req.app_data::<actix_web::web::Data<Settings>>()
        .map(|s| s.get_ref())
}

fn trusted_of(req: &HttpRequest) -> &[IpAddr] {
    settings_of(req).map_or(&[], |s| s.trusted_proxies.as_slice())
}

fn from_trusted_proxy(req: &HttpRequest) -> bool {
    req.peer_addr()
        .is_some_and(|peer| trusted_of(req).contains(&peer.ip()))
}

pub fn ip(req: &HttpRequest) -> Option<IpAddr> {
    resolve(
        req.peer_addr().map(|a| a.ip()),
        req.headers(),
        trusted_of(req),
    )
}

/// A visitor on this machine: the socket peer is loopback and nothing forwarded the
/// request. A reverse proxy on this host always adds `X-Forwarded-For`, so a visitor it
/// forwards never counts, whether or not the proxy is trusted.
pub fn is_on_this_machine(req: &HttpRequest) -> bool {
    let forwarded = ["x-forwarded-for", "forwarded", "x-real-ip"]
        .iter()
        .any(|name| req.headers().contains_key(*name));
    !forwarded && req.peer_addr().is_some_and(|peer| peer.ip().is_loopback())
}

pub fn ip_of_service_request(req: &ServiceRequest) -> Option<IpAddr> {
    ip(req.request())
}

/// The last value of a single-valued forwarded header, as a trusted proxy appends it.
fn forwarded(req: &HttpRequest, name: &str) -> Option<String> {
    let value = req.headers().get(name)?.to_str().ok()?;
    let last = value.rsplit(',').next()?.trim();
    (!last.is_empty()).then(|| last.to_string())
}

/// `host[:port]` the client addressed: a trusted proxy's `X-Forwarded-Host`, else `Host`.
pub fn host(req: &HttpRequest) -> String {
    if from_trusted_proxy(req)
        && let Some(host) = forwarded(req, "x-forwarded-host")
    {
        return host;
    }
    req.headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(ToString::to_string))
        .unwrap_or_default()
}

/// `scheme://host[:port]` of this server as the client reaches it, without a trailing
/// slash: `MEDPORT_PUBLIC_URL` when configured, else the request's own (forwarded parts
/// only from a trusted proxy). medport itself speaks plain http; TLS is a proxy's job.
pub fn base_url(req: &HttpRequest) -> String {
    if let Some(public) = settings_of(req).and_then(|s| s.public_url.as_ref()) {
        return public.as_str().trim_end_matches('/').to_string();
    }
    let scheme = from_trusted_proxy(req)
        .then(|| forwarded(req, "x-forwarded-proto"))
        .flatten()
        .filter(|p| p.eq_ignore_ascii_case("https"))
        .map_or("http", |_| "https");
    format!("{scheme}://{}", host(req))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};
    use actix_web::test::TestRequest;
    use actix_web::web::Data;

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

    fn request(peer: &str, trusted: &[&str]) -> TestRequest {
        let mut settings = Settings::defaults_for("data");
        settings.trusted_proxies = trusted.iter().map(|p| p.parse().unwrap()).collect();
        TestRequest::default()
            .peer_addr(format!("{peer}:40000").parse().unwrap())
            .insert_header(("host", "medport.internal:8080"))
            .insert_header(("x-forwarded-host", "evil.example"))
            .insert_header(("x-forwarded-proto", "https"))
            .insert_header(("forwarded", "for=1.2.3.4;host=evil.example;proto=https"))
            .insert_header(("x-forwarded-for", "1.2.3.4"))
            .app_data(Data::new(settings))
    }

    #[test]
    fn forwarded_host_and_scheme_are_ignored_from_an_untrusted_peer() {
        let req = request("203.0.113.9", &[]).to_http_request();
        assert_eq!(host(&req), "medport.internal:8080");
        assert_eq!(base_url(&req), "http://medport.internal:8080");
        assert_eq!(ip(&req), Some("203.0.113.9".parse().unwrap()));
    }

    #[test]
    fn a_trusted_proxy_names_the_host_and_scheme() {
        let req = request("10.0.0.1", &["10.0.0.1"]).to_http_request();
        assert_eq!(host(&req), "evil.example");
        assert_eq!(base_url(&req), "https://evil.example");
        assert_eq!(ip(&req), Some("1.2.3.4".parse().unwrap()));
    }

    #[test]
    fn the_public_url_wins_over_every_header() {
        let mut settings = Settings::defaults_for("data");
        settings.trusted_proxies = vec!["10.0.0.1".parse().unwrap()];
        settings.public_url = Some(
            Settings::load_from(
                None,
                &[(
                    "MEDPORT_PUBLIC_URL".to_string(),
                    "https://medport.example.org/".to_string(),
                )]
                .into(),
            )
            .unwrap()
            .public_url
            .unwrap(),
        );
        let req = TestRequest::default()
            .peer_addr("10.0.0.1:40000".parse().unwrap())
            .insert_header(("x-forwarded-host", "evil.example"))
            .app_data(Data::new(settings))
            .to_http_request();
        assert_eq!(base_url(&req), "https://medport.example.org");
    }
}
