//! Settings for one S3 bucket, and the SDK client built from them.

use crate::domain::bucket::Encryption;
use std::fmt;
use std::time::Duration;

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    StalledStreamProtectionConfig,
};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

use crate::domain::bucket::EndpointPolicy;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::infra::storage::blob::{Result, StorageError};

/// Time limits for S3 requests. The defaults suit a server on the same network or in a
/// nearby AWS region; lower `part_min_bytes_per_sec` where parts travel over slow links.
/// A download's body, once its headers have arrived, is bounded by `stall_grace` (no bytes
/// for that long ends it), not by `attempt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct S3Timeouts {
    /// Establishing a TCP (and TLS) connection.
    pub connect: Duration,
    /// One attempt of a request, from sending to the response headers.
    pub attempt: Duration,
    /// A whole operation including its retries.
    pub operation: Duration,
    /// An `UploadPart` attempt gets `attempt` plus its length at this rate.
    pub part_min_bytes_per_sec: u64,
    /// A body that moves no bytes for this long is abandoned (both directions).
    pub stall_grace: Duration,
    /// Attempts per request (standard retry mode), at least 1.
    pub max_attempts: u32,
}

impl Default for S3Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            attempt: Duration::from_secs(60),
            operation: Duration::from_secs(150),
            part_min_bytes_per_sec: 256 * 1024,
            stall_grace: Duration::from_secs(30),
            max_attempts: 3,
        }
    }
}

impl S3Timeouts {
    /// The attempt (and operation) limit for a part of `len` bytes.
    pub fn part_attempt(&self, len: u64) -> Duration {
        let rate = self.part_min_bytes_per_sec.max(1);
        self.attempt
            .saturating_add(Duration::from_secs(len.div_ceil(rate)))
    }

    pub(super) fn sdk(&self, attempt: Duration, operation: Duration) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect)
            .operation_attempt_timeout(attempt)
            .operation_timeout(operation)
            .build()
    }
}

/// Where and how to reach one bucket.
#[derive(Clone)]
pub struct S3Config {
    /// `None` for AWS itself; else the S3-compatible server's base URL.
    pub endpoint: Option<Url>,
    pub region: String,
    pub bucket: String,
    /// `https://host/bucket/key` instead of `https://bucket.host/key` (most S3-compatible
    /// servers need it).
    pub path_style: bool,
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    /// Requested for every object written, and checked on completion.
    pub sse: Encryption,
    pub timeouts: S3Timeouts,
    /// Addresses the client may connect to, checked on every connection. `Some` for
    /// endpoints an administrator typed in; `None` for the operator's own configuration.
    pub connect_policy: Option<EndpointPolicy>,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint.as_ref().map(Url::as_str))
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("path_style", &self.path_style)
            .field("access_key_id", &"[redacted]")
            .field("secret_access_key", &"[redacted]")
            .field("sse", &self.sse)
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

/// Checks `cfg` and builds its client; also returns the endpoint (or "AWS") and region for
/// messages. No network traffic.
pub(super) fn client(cfg: &S3Config) -> Result<(aws_sdk_s3::Client, String)> {
    let config_error = |m: &str| Err(StorageError::Config(m.to_string()));
    if cfg.bucket.is_empty() {
        return config_error("the S3 bucket name is empty");
    }
    if cfg.region.is_empty() {
        return config_error("the S3 region is empty");
    }
    if cfg.access_key_id.is_empty() || cfg.secret_access_key.expose_secret().is_empty() {
        return config_error("the S3 access key id and secret key are required");
    }
    if let Encryption::SseKms { key_id } = &cfg.sse
        && key_id.trim().is_empty()
    {
        return config_error("SSE-KMS needs a key id");
    }
    if let Some(endpoint) = &cfg.endpoint
        && (!matches!(endpoint.scheme(), "http" | "https") || endpoint.host().is_none())
    {
        return config_error("the S3 endpoint must be an http(s) URL with a host");
    }
    let timeouts = cfg.timeouts;
    let credentials = Credentials::new(
        cfg.access_key_id.clone(),
        cfg.secret_access_key.expose_secret().to_string(),
        None,
        None,
        "medport-bucket-settings",
    );
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring));
    let http_client = match cfg.connect_policy {
        Some(policy) => {
            http_client.build_with_resolver(super::resolver::CheckedResolver { policy })
        }
        None => http_client.build_https(),
    };
    let mut builder = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(cfg.region.clone()))
        .credentials_provider(credentials)
        .force_path_style(cfg.path_style)
        .http_client(http_client)
        .timeout_config(timeouts.sdk(timeouts.attempt, timeouts.operation))
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(timeouts.max_attempts.max(1))
                .with_initial_backoff(Duration::from_millis(500))
                .with_max_backoff(Duration::from_secs(5)),
        )
        .stalled_stream_protection(
            StalledStreamProtectionConfig::enabled()
                .grace_period(timeouts.stall_grace)
                .build(),
        )
        .request_checksum_calculation(RequestChecksumCalculation::WhenSupported)
        .response_checksum_validation(ResponseChecksumValidation::WhenSupported);
    let location = match &cfg.endpoint {
        Some(endpoint) => {
            builder = builder.endpoint_url(endpoint.as_str().trim_end_matches('/'));
            format!(
                "{} ({})",
                endpoint.as_str().trim_end_matches('/'),
                cfg.region
            )
        }
        None => format!("AWS ({})", cfg.region),
    };
    Ok((aws_sdk_s3::Client::from_conf(builder.build()), location))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(crate) fn config() -> S3Config {
        S3Config {
            endpoint: Url::parse("http://127.0.0.1:9").ok(),
            region: "us-east-1".into(),
            bucket: "b".into(),
            path_style: true,
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: SecretString::from("wJalrXUtnFEMI-very-secret"),
            sse: Encryption::SseS3,
            timeouts: S3Timeouts::default(),
            connect_policy: None,
        }
    }

    #[test]
    fn bad_settings_are_config_errors() {
        assert!(client(&config()).is_ok());
        let bad = [
            S3Config {
                bucket: String::new(),
                ..config()
            },
            S3Config {
                region: String::new(),
                ..config()
            },
            S3Config {
                secret_access_key: SecretString::from(""),
                ..config()
            },
            S3Config {
                sse: Encryption::SseKms { key_id: " ".into() },
                ..config()
            },
            S3Config {
                endpoint: Url::parse("ftp://example.com").ok(),
                ..config()
            },
        ];
        for cfg in bad {
            assert!(matches!(client(&cfg), Err(StorageError::Config(_))));
        }
    }

    #[test]
    fn part_timeouts_grow_with_the_part() {
        let t = S3Timeouts::default();
        assert_eq!(t.part_attempt(0), Duration::from_secs(60));
        assert_eq!(t.part_attempt(8 * 1024 * 1024), Duration::from_secs(92));
    }
}
