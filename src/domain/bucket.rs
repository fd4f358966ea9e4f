//! Values an administrator types into the bucket form, validated at the edge.
//!
//! The endpoint rules exist because the server itself connects to whatever URL an admin
//! enters (server-side request forgery): cloud metadata services, link-local addresses, the
//! shared range 100.64.0.0/10 and other non-routable addresses are refused, also when an
//! IPv6 address carries them (NAT64, 6to4, Teredo, mapped); plain http is allowed only to
//! loopback, and loopback itself only when the installation allows it (tests, single-host
//! S3 servers). Private ranges stay allowed: on-premises S3 servers live there.

mod embedded_ipv4;
mod encryption;
mod fields;

pub use encryption::Encryption;
pub use fields::{
    check_secret_key, parse_access_key_id, parse_display_name, parse_kms_key_id, parse_notes,
};

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use self::embedded_ipv4::embedded_ipv4;
use super::FieldError;

/// An S3 bucket name under the current AWS rules for new buckets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketName(String);

impl BucketName {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let name = raw.trim();
        let err = |m: &str| Err(FieldError::new("bucket_name", m));
        if !(3..=63).contains(&name.len()) {
            return err("must be 3 to 63 characters long");
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        {
            return err("may contain only lowercase letters, digits, dots and hyphens");
        }
        let first = name.as_bytes()[0];
        let last = name.as_bytes()[name.len() - 1];
        if !(first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric()) {
            return err("must begin and end with a letter or digit");
        }
        if name.contains("..") || name.contains(".-") || name.contains("-.") {
            return err("must not contain `..`, `.-` or `-.`");
        }
        if name.parse::<Ipv4Addr>().is_ok() {
            return err("must not look like an IP address");
        }
        for prefix in ["xn--", "sthree-", "amzn-s3-demo-"] {
            if name.starts_with(prefix) {
                return err(&format!("must not begin with `{prefix}`"));
            }
        }
        for suffix in ["-s3alias", "--ol-s3", "--x-s3", ".mrap", "--table-s3"] {
            if name.ends_with(suffix) {
                return err(&format!("must not end with `{suffix}`"));
            }
        }
        Ok(Self(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// AWS regions known when this release was made. With a custom endpoint any well-formed
/// region is accepted (S3-compatible servers name their own).
pub const AWS_REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "ca-central-1",
    "ca-west-1",
    "mx-central-1",
    "sa-east-1",
    "eu-central-1",
    "eu-central-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-south-1",
    "eu-south-2",
    "eu-north-1",
    "il-central-1",
    "me-south-1",
    "me-central-1",
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "us-gov-east-1",
    "us-gov-west-1",
    "cn-north-1",
    "cn-northwest-1",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region(String);

impl Region {
    pub fn parse(raw: &str, custom_endpoint: bool) -> Result<Self, FieldError> {
        let region = raw.trim().to_ascii_lowercase();
        let well_formed = (2..=32).contains(&region.len())
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !region.starts_with('-')
            && !region.ends_with('-');
        if !well_formed {
            return Err(FieldError::new(
                "region",
                "must be a region name such as eu-central-1",
            ));
        }
        if !custom_endpoint && !AWS_REGIONS.contains(&region.as_str()) {
            return Err(FieldError::new(
                "region",
                "is not an AWS region; for another S3-compatible service, also give its endpoint URL",
            ));
        }
        Ok(Self(region))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Hostnames that name cloud metadata services directly.
const METADATA_HOSTS: &[&str] = &[
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
];

/// An S3 endpoint URL the server may connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint(url::Url);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointPolicy {
    /// Loopback endpoints (an S3 server on this host): off unless the installation says so.
    pub allow_loopback: bool,
}

impl EndpointPolicy {
    /// The shipped rules: this host is refused.
    pub const STRICT: Self = Self {
        allow_loopback: false,
    };
    /// An installation that allows this host (`MEDPORT_ALLOW_LOOPBACK_ENDPOINTS`).
    pub const LOOPBACK_OK: Self = Self {
        allow_loopback: true,
    };
}

impl Endpoint {
    /// Checks the URL itself; `check_address` checks each address it resolves to.
    pub fn parse(raw: &str, policy: EndpointPolicy) -> Result<Self, FieldError> {
        let err = |m: &str| Err(FieldError::new("endpoint", m));
        let Ok(url) = url::Url::parse(raw.trim()) else {
            return err("must be a URL such as https://s3.example.org");
        };
        if !matches!(url.scheme(), "https" | "http") {
            return err("must start with https://");
        }
        if !url.username().is_empty() || url.password().is_some() {
            return err("must not contain credentials; use the access key fields");
        }
        if url.query().is_some() || url.fragment().is_some() || !matches!(url.path(), "" | "/") {
            return err("must be just the scheme, host and optional port");
        }
        check_host(&url, policy).map_err(|e| FieldError::new("endpoint", e))?;
        Ok(Self(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str().trim_end_matches('/')
    }

    pub fn url(&self) -> &url::Url {
        &self.0
    }

    /// Resolves the host and checks every address (a name may point at a forbidden one).
    pub async fn check_resolved(&self, policy: EndpointPolicy) -> Result<(), FieldError> {
        check_resolved(&self.0, policy)
            .await
            .map_err(|e| FieldError::new("endpoint", e))
    }
}

/// The rules for the host of a URL the server will connect to (an S3 endpoint, a webhook):
/// no metadata service, no link-local or shared address, this host only where allowed,
/// plain http only to this host. The refusal is worded for the form field.
pub(super) fn check_host(url: &url::Url, policy: EndpointPolicy) -> Result<(), String> {
    let loopback = match url.host() {
        None => return Err("has no host".into()),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if METADATA_HOSTS.contains(&d.as_str()) {
                return Err("points at a cloud metadata service".into());
            }
            d == "localhost" || d.ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => {
            check_address(IpAddr::V4(ip), policy).map_err(|e| e.message)?;
            ip.is_loopback()
        }
        Some(url::Host::Ipv6(ip)) => {
            check_address(IpAddr::V6(ip), policy).map_err(|e| e.message)?;
            ip.is_loopback()
        }
    };
    if loopback && !policy.allow_loopback {
        return Err(THIS_SERVER.into());
    }
    if url.scheme() == "http" && !loopback {
        return Err("must use https (plain http is allowed only to this host)".into());
    }
    Ok(())
}

/// Resolves the URL's host and checks every address (a name may point at a forbidden one).
pub(super) async fn check_resolved(url: &url::Url, policy: EndpointPolicy) -> Result<(), String> {
    let Some(host) = url.host_str() else {
        return Err("has no host".into());
    };
    let port = url.port_or_known_default().unwrap_or(443);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| "the host name could not be resolved".to_string())?;
    for addr in addrs {
        check_address(addr.ip(), policy).map_err(|e| e.message)?;
    }
    Ok(())
}

/// Refuses addresses an endpoint must never reach. An IPv6 address is judged as itself and
/// as every IPv4 address it carries (mapped, translated, NAT64, 6to4, Teredo).
pub fn check_address(ip: IpAddr, policy: EndpointPolicy) -> Result<(), FieldError> {
    match ip {
        IpAddr::V4(v4) => check_ipv4(v4, policy),
        IpAddr::V6(v6) => {
            check_ipv6(v6, policy)?;
            embedded_ipv4(v6)
                .into_iter()
                .try_for_each(|v4| check_ipv4(v4, policy))
        }
    }
}

fn refuse(message: &str) -> Result<(), FieldError> {
    Err(FieldError::new("endpoint", message))
}

const THIS_SERVER: &str = "points at this server itself, which this installation does not allow";

/// Cloud metadata services: AWS, GCP, Azure and Oracle; AWS ECS task metadata; Alibaba.
const METADATA_V4: [Ipv4Addr; 3] = [
    Ipv4Addr::new(169, 254, 169, 254),
    Ipv4Addr::new(169, 254, 170, 2),
    Ipv4Addr::new(100, 100, 100, 200),
];

fn check_ipv4(v4: Ipv4Addr, policy: EndpointPolicy) -> Result<(), FieldError> {
    if METADATA_V4.contains(&v4) {
        return refuse("points at a cloud metadata service");
    }
    if v4.is_link_local() {
        return refuse("is a link-local address");
    }
    // Shared address space (RFC 6598): carrier-grade NAT, and where cloud providers run
    // their own services (Alibaba's metadata is 100.100.100.200).
    if v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64 {
        return refuse(
            "is in the shared range 100.64.0.0/10, where cloud providers run internal services",
        );
    }
    if v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast() || v4.octets()[0] == 0 {
        return refuse("is not a usable host address");
    }
    if v4.is_loopback() && !policy.allow_loopback {
        return refuse(THIS_SERVER);
    }
    Ok(())
}

fn check_ipv6(v6: Ipv6Addr, policy: EndpointPolicy) -> Result<(), FieldError> {
    if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        return refuse("points at a cloud metadata service");
    }
    if (v6.segments()[0] & 0xffc0) == 0xfe80 {
        return refuse("is a link-local address");
    }
    if v6.is_unspecified() || v6.is_multicast() {
        return refuse("is not a usable host address");
    }
    if v6.is_loopback() && !policy.allow_loopback {
        return refuse(THIS_SERVER);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: EndpointPolicy = EndpointPolicy::STRICT;
    const LOOPBACK_OK: EndpointPolicy = EndpointPolicy::LOOPBACK_OK;

    #[test]
    fn bucket_names_follow_s3_rules() {
        for ok in ["abc", "medport-scans", "my.bucket.2026", &"a".repeat(63)] {
            assert!(BucketName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            &"a".repeat(64),
            "Upper",
            "under_score",
            "-start",
            "end-",
            "a..b",
            "a.-b",
            "a-.b",
            "192.168.1.1",
            "xn--bucket",
            "bucket-s3alias",
            "bucket--ol-s3",
            "sp ace",
        ] {
            assert!(BucketName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn regions_are_aws_unless_the_endpoint_is_custom() {
        assert!(Region::parse("eu-central-1", false).is_ok());
        assert!(Region::parse("moon-base-1", false).is_err());
        assert!(Region::parse("moon-base-1", true).is_ok());
        assert!(Region::parse("us east", true).is_err());
    }

    #[test]
    fn endpoints_refuse_ssrf_targets() {
        for bad in [
            "http://169.254.169.254",
            "https://169.254.169.254/",
            "https://[fd00:ec2::254]",
            "https://[fe80::1]",
            "https://169.254.10.1",
            "https://metadata.google.internal",
            "http://s3.example.org",
            "https://0.0.0.0",
            "https://user:pw@s3.example.org",
            "https://s3.example.org/some/path",
            "ftp://s3.example.org",
            "https://[::ffff:169.254.169.254]",
        ] {
            assert!(Endpoint::parse(bad, LOOPBACK_OK).is_err(), "{bad}");
        }
        for loopback in [
            "http://127.0.0.1:8333",
            "https://[::1]:9000",
            "http://localhost:9000",
        ] {
            assert!(Endpoint::parse(loopback, STRICT).is_err(), "{loopback}");
            assert!(Endpoint::parse(loopback, LOOPBACK_OK).is_ok(), "{loopback}");
        }
        for ok in [
            "https://s3.eu-central-1.amazonaws.com",
            "https://10.0.0.5:9000",
            "https://minio.hospital.internal",
        ] {
            assert!(Endpoint::parse(ok, STRICT).is_ok(), "{ok}");
        }
    }

    fn refusal(raw: &str, policy: EndpointPolicy) -> String {
        match Endpoint::parse(raw, policy) {
            Ok(_) => panic!("{raw} was accepted"),
            Err(e) => e.message,
        }
    }

    #[test]
    fn ipv4_carried_in_ipv6_is_judged_by_the_ipv4_rules() {
        let metadata = "points at a cloud metadata service";
        let link_local = "is a link-local address";
        let unusable = "is not a usable host address";
        for (raw, message) in [
            // NAT64 well-known and local-use prefixes.
            ("https://[64:ff9b::a9fe:a9fe]", metadata),
            ("https://[64:ff9b::169.254.169.254]", metadata),
            ("https://[64:ff9b:1::a9fe:a9fe]", metadata),
            ("https://[64:ff9b:1:a9fe:a9:fe00::]", metadata),
            ("https://[64:ff9b::a9fe:1]", link_local),
            // IPv4-mapped, IPv4-translated and IPv4-compatible.
            ("https://[::ffff:169.254.169.254]", metadata),
            ("https://[::ffff:0:169.254.169.254]", metadata),
            ("https://[::169.254.169.254]", metadata),
            ("https://[::ffff:0:0.0.0.0]", unusable),
            // 6to4 relay address, Teredo server and (inverted) client.
            ("https://[2002:a9fe:a9fe::1]", metadata),
            ("https://[2002:6464:64c8::]", metadata),
            ("https://[2001:0:a9fe:a9fe::1]", metadata),
            ("https://[2001:0:4136:e378:8000:63bf:5601:5601]", metadata),
            ("https://[2002:e000:1::]", unusable),
        ] {
            assert_eq!(refusal(raw, LOOPBACK_OK), message, "{raw}");
        }
    }

    #[test]
    fn loopback_carried_in_ipv6_follows_the_loopback_policy() {
        for raw in [
            "https://[::127.0.0.1]",
            "https://[::ffff:127.0.0.1]",
            "https://[::ffff:0:127.0.0.1]",
            "https://[64:ff9b::7f00:1]",
            "https://[2002:7f00:1::]",
            "https://[2001:0:4136:e378::80ff:fffe]",
        ] {
            assert_eq!(refusal(raw, STRICT), THIS_SERVER, "{raw}");
            assert!(Endpoint::parse(raw, LOOPBACK_OK).is_ok(), "{raw}");
        }
    }

    #[test]
    fn the_shared_range_is_refused_and_its_metadata_service_named() {
        assert_eq!(
            refusal("https://100.100.100.200", LOOPBACK_OK),
            "points at a cloud metadata service"
        );
        for raw in ["https://100.64.0.1", "https://100.127.255.254:9000"] {
            assert!(refusal(raw, LOOPBACK_OK).contains("100.64.0.0/10"), "{raw}");
        }
        for ok in ["https://100.63.255.255", "https://100.128.0.1"] {
            assert!(Endpoint::parse(ok, STRICT).is_ok(), "{ok}");
        }
    }

    #[test]
    fn public_and_private_addresses_stay_allowed() {
        for ok in [
            "https://10.1.2.3",
            "https://172.16.0.10:9000",
            "https://192.168.1.20",
            "https://[2a00:1450:4001:82a::200e]",
            "https://[fd12:3456::10]",
            // 6to4 and NAT64 carrying public or private IPv4 addresses.
            "https://[2002:5db8:d822::1]",
            "https://[64:ff9b::5db8:d822]",
            "https://[64:ff9b::10.0.0.5]",
            "https://[64:ff9b:1::5db8:d822]",
            "https://[64:ff9b:1:5db8:d8:2200::]",
            "https://[::ffff:10.0.0.5]",
            "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]",
        ] {
            assert!(Endpoint::parse(ok, STRICT).is_ok(), "{ok}");
        }
    }

    #[test]
    fn resolved_addresses_get_the_same_checks() {
        for ip in [
            "64:ff9b::a9fe:a9fe",
            "::127.0.0.1",
            "2002:a9fe:a9fe::",
            "100.100.100.200",
            "100.64.0.1",
        ] {
            assert!(check_address(ip.parse().unwrap(), STRICT).is_err(), "{ip}");
        }
        assert!(check_address("2002:5db8:d822::1".parse().unwrap(), STRICT).is_ok());
    }

    #[tokio::test]
    async fn names_resolving_to_loopback_are_checked() {
        let e = Endpoint::parse("https://localhost:9000", LOOPBACK_OK).unwrap();
        assert!(e.check_resolved(STRICT).await.is_err());
        assert!(e.check_resolved(LOOPBACK_OK).await.is_ok());
    }
}
