//! Connect-time address checks for S3 endpoints an administrator entered. The endpoint's
//! name is checked when the bucket is saved, but the client resolves it again for every
//! new connection; this resolver applies the same rules then, so a DNS answer changed
//! afterwards (rebinding) cannot point uploads at a metadata service or this host.

use std::net::IpAddr;

use aws_smithy_runtime_api::client::dns::{DnsFuture, ResolveDns, ResolveDnsError};

use crate::domain::bucket::{EndpointPolicy, check_address};

#[derive(Debug, Clone, Copy)]
pub struct CheckedResolver {
    pub policy: EndpointPolicy,
}

impl ResolveDns for CheckedResolver {
    fn resolve_dns<'a>(&'a self, name: &'a str) -> DnsFuture<'a> {
        let policy = self.policy;
        DnsFuture::new(async move {
            let addrs: Vec<IpAddr> = tokio::net::lookup_host((name, 0))
                .await
                .map_err(ResolveDnsError::new)?
                .map(|a| a.ip())
                .collect();
            // One forbidden address refuses the name: a mixed answer is itself suspicious.
            for ip in &addrs {
                if let Err(refused) = check_address(*ip, policy) {
                    return Err(ResolveDnsError::new(format!(
                        "{name} resolves to a forbidden address: {}",
                        refused.message
                    )));
                }
            }
            Ok(addrs)
        })
    }
}
