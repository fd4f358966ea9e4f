//! Outbound HTTP for the OpenID Provider and for webhook targets: HTTPS with the system's
//! roots (plain HTTP where the caller's rules admit it), one deadline per exchange, bodies
//! capped, and redirects handed back as they are, never followed.
//!
//! A client made with an address policy checks every address a name resolves to, for each
//! new connection, against the bucket endpoint rules (`domain::bucket::check_address`); an
//! address given literally in the URL is checked before sending. So a name that was
//! harmless when an admin saved it cannot later be pointed (DNS rebinding) at a metadata
//! service or this host.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;

use crate::domain::bucket::{EndpointPolicy, check_address};

/// Why an exchange gave no answer. The text names the cause (never a body or a secret).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(pub String);

/// What one exchange may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The whole exchange (resolution, connection, TLS, request, answer) ends within this.
    pub deadline: Duration,
    /// Longest answer body read; a longer one is an error.
    pub max_body: usize,
}

type Connector = hyper_rustls::HttpsConnector<HttpConnector<Resolver>>;

pub struct HttpClient {
    client: hyper_util::client::legacy::Client<Connector, Full<Bytes>>,
    limits: Limits,
    addresses: Option<EndpointPolicy>,
}

impl HttpClient {
    /// With `addresses`, every address connected to must pass those rules.
    pub fn new(limits: Limits, addresses: Option<EndpointPolicy>) -> Result<Self, HttpError> {
        use hyper_rustls::ConfigBuilderExt;
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpError(format!("TLS: {e}")))?
        .with_native_roots()
        .map_err(|e| HttpError(format!("TLS roots: {e}")))?
        .with_no_client_auth();
        let mut http = HttpConnector::new_with_resolver(Resolver { policy: addresses });
        // The scheme is the caller's business (the rules admit plain HTTP only to loopback).
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        // No kept connections: exchanges are rare, a pooled connection belongs to the
        // runtime that opened it, and each new connection is checked again.
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_max_idle_per_host(0)
                .build(connector);
        Ok(Self {
            client,
            limits,
            addresses,
        })
    }

    /// Sends `request` and reads the answer, whatever its status (a redirect included).
    pub async fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, HttpError> {
        if let Some(policy) = self.addresses
            && let Some(host) = request.uri().host()
            && let Ok(ip) = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
        {
            check_address(ip, policy)
                .map_err(|refused| HttpError(format!("refused address: {}", refused.message)))?;
        }
        let (parts, body) = request.into_parts();
        let request = http::Request::from_parts(parts, Full::new(Bytes::from(body)));
        let deadline = self.limits.deadline;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| HttpError(describe(&e)))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, self.limits.max_body)
                .collect()
                .await
                .map_err(|e| HttpError(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok(http::Response::from_parts(parts, body.to_vec()))
        };
        tokio::time::timeout(deadline, exchange)
            .await
            .map_err(|_| HttpError(format!("no answer within {} s", deadline.as_secs_f32())))?
    }
}

/// An error and its causes on one line, at most 300 characters.
pub fn describe<E: std::error::Error>(e: &E) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text.chars().take(300).collect()
}

/// Name resolution for the connector, with the address rules applied to every answer.
#[derive(Debug, Clone, Copy)]
struct Resolver {
    policy: Option<EndpointPolicy>,
}

type Addrs = std::vec::IntoIter<SocketAddr>;

impl tower_service::Service<Name> for Resolver {
    type Response = Addrs;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Addrs, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let policy = self.policy;
        Box::pin(async move {
            let addrs = resolve_checked(name.as_str(), policy).await?;
            Ok(addrs
                .into_iter()
                .map(|ip| SocketAddr::new(ip, 0))
                .collect::<Vec<_>>()
                .into_iter())
        })
    }
}

/// The addresses `name` resolves to; with a policy, an error when any of them is refused
/// (one forbidden address refuses the name: a mixed answer is itself suspicious).
pub async fn resolve_checked(
    name: &str,
    policy: Option<EndpointPolicy>,
) -> Result<Vec<IpAddr>, std::io::Error> {
    let addrs: Vec<IpAddr> = tokio::net::lookup_host((name, 0))
        .await?
        .map(|a| a.ip())
        .collect();
    if let Some(policy) = policy {
        for ip in &addrs {
            if let Err(refused) = check_address(*ip, policy) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!(
                        "{name} resolves to a forbidden address: {}",
                        refused.message
                    ),
                ));
            }
        }
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: EndpointPolicy = EndpointPolicy {
        allow_loopback: false,
    };

    #[tokio::test]
    async fn names_are_resolved_and_checked_at_each_connection() {
        let refused = resolve_checked("localhost", Some(STRICT))
            .await
            .unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(
            refused.to_string().contains("forbidden address"),
            "{refused}"
        );
        let allowed = EndpointPolicy {
            allow_loopback: true,
        };
        let addrs = resolve_checked("localhost", Some(allowed)).await.unwrap();
        assert!(addrs.iter().all(IpAddr::is_loopback), "{addrs:?}");
        // Without a policy (the OpenID Provider) the answer is taken as it is.
        assert!(resolve_checked("localhost", None).await.is_ok());
    }

    #[tokio::test]
    async fn a_literal_address_is_checked_before_sending() {
        let client = HttpClient::new(
            Limits {
                deadline: Duration::from_secs(2),
                max_body: 1024,
            },
            Some(STRICT),
        )
        .unwrap();
        for url in [
            "http://169.254.169.254/latest",
            "http://127.0.0.1:9/",
            "http://[::1]:9/",
        ] {
            let request = http::Request::post(url).body(Vec::new()).unwrap();
            let e = client.send(request).await.unwrap_err();
            assert!(e.0.starts_with("refused address"), "{url}: {e}");
        }
    }
}
