//! The S3 test server, shared by the HTTP tests and the storage tests.

/// The S3 test server's address and credentials (`target/test-services.env`; the
/// defaults are what `scripts/test-services.sh s3` starts).
pub struct S3Env {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
}

pub fn s3_env() -> S3Env {
    let var = |names: &[&str], default: &str| {
        names
            .iter()
            .find_map(|n| std::env::var(n).ok())
            .unwrap_or_else(|| default.into())
    };
    S3Env {
        endpoint: var(&["MEDPORT_TEST_S3_ENDPOINT"], "http://127.0.0.1:8333"),
        access_key: var(&["MEDPORT_TEST_S3_ACCESS_KEY"], "medport-test"),
        secret_key: var(
            &["MEDPORT_TEST_S3_SECRET_KEY", "MEDPORT_TEST_S3_SECRET"],
            "medport-test-secret",
        ),
        region: var(&["MEDPORT_TEST_S3_REGION"], "us-east-1"),
    }
}

/// A plain SDK client for setting up the test server (creating buckets, listing objects).
pub fn s3_client() -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    let env = s3_env();
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(env.region))
        .credentials_provider(Credentials::new(
            env.access_key,
            env.secret_key,
            None,
            None,
            "tests",
        ))
        .endpoint_url(env.endpoint)
        .force_path_style(true)
        .http_client(http)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}
