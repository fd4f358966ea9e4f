//! Connect-time address checks for S3 endpoints an administrator entered. The endpoint's
//! name is checked when the bucket is saved, but the client resolves it again for every
//! new connection; this resolver applies the same rules then, so a DNS answer changed
//! afterwards (rebinding) cannot point uploads at a metadata service or this host.

use aws_smithy_runtime_api::client::dns::{DnsFuture, ResolveDns, ResolveDnsError};

use crate::domain::bucket::EndpointPolicy;
use crate::infra::http_client::resolve_checked;

#[derive(Debug, Clone, Copy)]
pub struct CheckedResolver {
    pub policy: EndpointPolicy,
}

impl ResolveDns for CheckedResolver {
    fn resolve_dns<'a>(&'a self, name: &'a str) -> DnsFuture<'a> {
        let policy = self.policy;
        DnsFuture::new(async move {
            resolve_checked(name, Some(policy))
                .await
                .map_err(ResolveDnsError::new)
        })
    }
}
