//! Storage settings: where the system default bucket keeps its objects, and which bucket
//! endpoints the server may connect to.
//!
//! Without `MEDPORT_S3_BUCKET` the default bucket is the local encrypted store under
//! `<data_dir>/objects`. With it, every `MEDPORT_S3_*` value is checked with the same rules
//! as the admin bucket form (bucket name, region, SSRF-safe endpoint), and the secret key is
//! only ever held in a `SecretString` (accepted from the environment only, like the master
//! key, so it never sits in a file that may be readable by others).

use std::collections::HashMap;

use secrecy::SecretString;

use super::{ConfigError, FileSettings, Settings, Val};
use crate::domain::bucket::Encryption;
use crate::domain::bucket::{BucketName, Endpoint, EndpointPolicy, Region};

/// Where the system default bucket stores objects.
#[derive(Debug, Clone)]
pub enum DefaultBucket {
    /// The local encrypted store under `<data_dir>/objects`.
    Local,
    S3(Box<SystemS3>),
}

/// The system default bucket on S3 (or an S3-compatible server), from `MEDPORT_S3_*`.
#[derive(Clone)]
pub struct SystemS3 {
    pub endpoint: Option<Endpoint>,
    pub region: Region,
    pub bucket: BucketName,
    pub path_style: bool,
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub encryption: Encryption,
}

// Hand-written so the secret key (and the access key id) never reach a log line.
impl std::fmt::Debug for SystemS3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemS3")
            .field("endpoint", &self.endpoint.as_ref().map(Endpoint::as_str))
            .field("region", &self.region.as_str())
            .field("bucket", &self.bucket.as_str())
            .field("path_style", &self.path_style)
            .field("access_key_id", &"[redacted]")
            .field("secret_access_key", &"[redacted]")
            .field("encryption", &self.encryption)
            .finish()
    }
}

/// The raw storage values and where each came from.
#[derive(Debug, Default)]
pub(super) struct RawStorage {
    allow_loopback_endpoints: Option<Val>,
    open_to_all: Option<Val>,
    endpoint: Option<Val>,
    region: Option<Val>,
    bucket: Option<Val>,
    access_key_id: Option<Val>,
    secret_access_key: Option<Val>,
    path_style: Option<Val>,
    sse: Option<Val>,
    kms_key_id: Option<Val>,
}

impl RawStorage {
    /// Takes the storage keys out of the file settings; the environment overrides them.
    pub(super) fn merge(file: &mut FileSettings, env: &HashMap<String, String>) -> Self {
        let pick = |key: &str, file_value: Option<String>, var: &str| {
            super::pick(env, key, file_value, var)
        };
        let flag = |v: Option<bool>| v.map(|b| b.to_string());
        Self {
            allow_loopback_endpoints: pick(
                "allow_loopback_endpoints",
                flag(file.allow_loopback_endpoints.take()),
                "MEDPORT_ALLOW_LOOPBACK_ENDPOINTS",
            ),
            open_to_all: pick(
                "default_bucket_open_to_all",
                flag(file.default_bucket_open_to_all.take()),
                "MEDPORT_DEFAULT_BUCKET_OPEN_TO_ALL",
            ),
            endpoint: pick(
                "s3_endpoint",
                file.s3_endpoint.take(),
                "MEDPORT_S3_ENDPOINT",
            ),
            region: pick("s3_region", file.s3_region.take(), "MEDPORT_S3_REGION"),
            bucket: pick("s3_bucket", file.s3_bucket.take(), "MEDPORT_S3_BUCKET"),
            access_key_id: pick(
                "s3_access_key_id",
                file.s3_access_key_id.take(),
                "MEDPORT_S3_ACCESS_KEY_ID",
            ),
            // Not accepted in the file: see the module documentation.
            secret_access_key: pick("", None, "MEDPORT_S3_SECRET_ACCESS_KEY"),
            path_style: pick(
                "s3_path_style",
                flag(file.s3_path_style.take()),
                "MEDPORT_S3_PATH_STYLE",
            ),
            sse: pick("s3_sse", file.s3_sse.take(), "MEDPORT_S3_SSE"),
            kms_key_id: pick(
                "s3_kms_key_id",
                file.s3_kms_key_id.take(),
                "MEDPORT_S3_KMS_KEY_ID",
            ),
        }
    }

    pub(super) fn validate(&self, s: &mut Settings) -> Result<(), ConfigError> {
        if let Some(v) = &self.allow_loopback_endpoints {
            s.allow_loopback_endpoints = parse_bool(v)?;
        }
        if let Some(v) = &self.open_to_all {
            s.default_bucket_open_to_all = parse_bool(v)?;
        }
        let Some(bucket) = self.bucket.as_ref().filter(|v| !v.value.trim().is_empty()) else {
            // Without a bucket the other S3 values would be silently ignored: refuse them.
            let stray = [
                &self.endpoint,
                &self.region,
                &self.access_key_id,
                &self.secret_access_key,
                &self.path_style,
                &self.sse,
                &self.kms_key_id,
            ];
            if let Some(v) = stray.into_iter().flatten().next() {
                return Err(ConfigError::new(
                    &v.origin,
                    "is only used with MEDPORT_S3_BUCKET, which is not set",
                ));
            }
            s.default_bucket = DefaultBucket::Local;
            return Ok(());
        };
        let policy = EndpointPolicy {
            allow_loopback: s.allow_loopback_endpoints,
        };
        let field = |v: &Val, e: crate::domain::FieldError| ConfigError::new(&v.origin, e.message);
        let endpoint = match self
            .endpoint
            .as_ref()
            .filter(|v| !v.value.trim().is_empty())
        {
            Some(v) => Some(Endpoint::parse(&v.value, policy).map_err(|e| field(v, e))?),
            None => None,
        };
        let region = required(&self.region, "MEDPORT_S3_REGION")?;
        let region =
            Region::parse(&region.value, endpoint.is_some()).map_err(|e| field(region, e))?;
        let name = BucketName::parse(&bucket.value).map_err(|e| field(bucket, e))?;
        let key_id = required(&self.access_key_id, "MEDPORT_S3_ACCESS_KEY_ID")?;
        let access_key_id = crate::domain::bucket::parse_access_key_id(&key_id.value)
            .map_err(|e| field(key_id, e))?;
        let secret = required(&self.secret_access_key, "MEDPORT_S3_SECRET_ACCESS_KEY")?;
        if crate::domain::bucket::check_secret_key(&secret.value).is_err() {
            // The value itself is never repeated.
            return Err(ConfigError::new(
                &secret.origin,
                "must be 1 to 256 printable characters without spaces",
            ));
        }
        let path_style = match &self.path_style {
            Some(v) => parse_bool(v)?,
            None => false,
        };
        let kms = self
            .kms_key_id
            .as_ref()
            .filter(|v| !v.value.trim().is_empty());
        let encryption = match self
            .sse
            .as_ref()
            .map(|v| (v, v.value.trim().to_ascii_lowercase()))
        {
            None => Encryption::None,
            Some((_, sse)) if sse == "none" || sse.is_empty() => Encryption::None,
            Some((_, sse)) if sse == "sse-s3" => Encryption::SseS3,
            Some((v, sse)) if sse == "sse-kms" => {
                let Some(kms) = kms else {
                    return Err(ConfigError::new(
                        &v.origin,
                        "sse-kms needs MEDPORT_S3_KMS_KEY_ID",
                    ));
                };
                let key_id = crate::domain::bucket::parse_kms_key_id(&kms.value)
                    .map_err(|e| field(kms, e))?;
                Encryption::SseKms { key_id }
            }
            Some((v, _)) => {
                return Err(ConfigError::new(
                    &v.origin,
                    "expected `none`, `sse-s3` or `sse-kms`",
                ));
            }
        };
        if let (Some(kms), false) = (kms, matches!(encryption, Encryption::SseKms { .. })) {
            return Err(ConfigError::new(
                &kms.origin,
                "is only used with MEDPORT_S3_SSE=sse-kms",
            ));
        }
        s.default_bucket = DefaultBucket::S3(Box::new(SystemS3 {
            endpoint,
            region,
            bucket: name,
            path_style,
            access_key_id,
            secret_access_key: SecretString::from(secret.value.clone()),
            encryption,
        }));
        Ok(())
    }
}

fn required<'a>(v: &'a Option<Val>, name: &str) -> Result<&'a Val, ConfigError> {
    v.as_ref()
        .filter(|v| !v.value.trim().is_empty())
        .ok_or_else(|| ConfigError::new(name, "is required when MEDPORT_S3_BUCKET is set"))
}

pub(super) fn parse_bool(v: &Val) -> Result<bool, ConfigError> {
    match v.value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::new(&v.origin, "expected `true` or `false`")),
    }
}

/// For `describe`: the default bucket without credentials.
pub(super) fn describe(s: &Settings) -> String {
    match &s.default_bucket {
        DefaultBucket::Local => format!(
            "local encrypted store {}",
            s.data_dir.join("objects").display()
        ),
        DefaultBucket::S3(s3) => format!(
            "s3 {} at {} ({})",
            s3.bucket.as_str(),
            s3.endpoint.as_ref().map_or("AWS", Endpoint::as_str),
            s3.region.as_str()
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use secrecy::ExposeSecret;

    use super::super::Settings;
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYzEXAMPLE";

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let dir = tempfile::tempdir().map_err(|e| ConfigError::new("tempdir", e.to_string()))?;
        let file = dir.path().join("medport.toml");
        std::fs::write(&file, "").map_err(|e| ConfigError::new("file", e.to_string()))?;
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::load_from(Some(&file), &env)
    }

    fn s3(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut pairs = vec![
            ("MEDPORT_S3_BUCKET", "medport-phi"),
            ("MEDPORT_S3_REGION", "eu-central-1"),
            ("MEDPORT_S3_ACCESS_KEY_ID", "AKIAEXAMPLE"),
            ("MEDPORT_S3_SECRET_ACCESS_KEY", SECRET),
        ];
        pairs.extend_from_slice(extra);
        pairs
    }

    #[test]
    fn the_default_bucket_is_local_open_to_all_and_loopback_is_off() {
        let s = load(&[]).unwrap();
        assert!(matches!(s.default_bucket, DefaultBucket::Local));
        assert!(s.default_bucket_open_to_all);
        assert!(!s.allow_loopback_endpoints);
        let s = load(&[
            ("MEDPORT_DEFAULT_BUCKET_OPEN_TO_ALL", "false"),
            ("MEDPORT_ALLOW_LOOPBACK_ENDPOINTS", "yes"),
        ])
        .unwrap();
        assert!(!s.default_bucket_open_to_all && s.allow_loopback_endpoints);
    }

    #[test]
    fn an_s3_default_bucket_is_read_and_checked() {
        let s = load(&s3(&[
            ("MEDPORT_S3_SSE", "sse-kms"),
            ("MEDPORT_S3_KMS_KEY_ID", "alias/medport"),
            ("MEDPORT_S3_PATH_STYLE", "true"),
        ]))
        .unwrap();
        let DefaultBucket::S3(s3) = &s.default_bucket else {
            panic!("expected S3");
        };
        assert_eq!(s3.bucket.as_str(), "medport-phi");
        assert_eq!(s3.region.as_str(), "eu-central-1");
        assert!(s3.endpoint.is_none() && s3.path_style);
        assert_eq!(s3.secret_access_key.expose_secret(), SECRET);
        assert_eq!(
            s3.encryption,
            Encryption::SseKms {
                key_id: "alias/medport".into()
            }
        );
        let shown = format!("{s:?} {:?}", super::super::describe(&s));
        assert!(
            !shown.contains(SECRET) && !shown.contains("AKIAEXAMPLE"),
            "{shown}"
        );
    }

    #[test]
    fn bad_s3_settings_name_the_setting_never_the_secret() {
        for (pairs, setting) in [
            (s3(&[("MEDPORT_S3_SSE", "sse-kms")]), "MEDPORT_S3_SSE"),
            (s3(&[("MEDPORT_S3_SSE", "aes")]), "MEDPORT_S3_SSE"),
            (
                s3(&[("MEDPORT_S3_KMS_KEY_ID", "k")]),
                "MEDPORT_S3_KMS_KEY_ID",
            ),
            (
                s3(&[("MEDPORT_S3_ENDPOINT", "http://169.254.169.254")]),
                "MEDPORT_S3_ENDPOINT",
            ),
            (
                s3(&[("MEDPORT_S3_ENDPOINT", "http://127.0.0.1:9000")]),
                "MEDPORT_S3_ENDPOINT",
            ),
            (
                s3(&[("MEDPORT_S3_PATH_STYLE", "maybe")]),
                "MEDPORT_S3_PATH_STYLE",
            ),
            (
                s3(&[("MEDPORT_S3_BUCKET", "Not_Valid")]),
                "MEDPORT_S3_BUCKET",
            ),
            (s3(&[("MEDPORT_S3_REGION", "moon-1")]), "MEDPORT_S3_REGION"),
            (
                s3(&[("MEDPORT_S3_SECRET_ACCESS_KEY", "has space")]),
                "MEDPORT_S3_SECRET_ACCESS_KEY",
            ),
            (
                vec![("MEDPORT_S3_BUCKET", "medport-phi")],
                "MEDPORT_S3_REGION",
            ),
            (
                vec![("MEDPORT_S3_REGION", "eu-west-1")],
                "MEDPORT_S3_REGION",
            ),
            (
                vec![("MEDPORT_ALLOW_LOOPBACK_ENDPOINTS", "2")],
                "MEDPORT_ALLOW_LOOPBACK_ENDPOINTS",
            ),
        ] {
            let e = load(&pairs)
                .err()
                .unwrap_or_else(|| panic!("{setting} accepted"));
            assert_eq!(e.setting, setting, "{e}");
            assert!(!e.to_string().contains(SECRET), "{e}");
        }
        // Loopback endpoints only when the installation allows them.
        let ok = load(&s3(&[
            ("MEDPORT_S3_ENDPOINT", "http://127.0.0.1:9000"),
            ("MEDPORT_ALLOW_LOOPBACK_ENDPOINTS", "true"),
            ("MEDPORT_S3_REGION", "us-east-1"),
        ]));
        assert!(ok.is_ok());
    }

    #[test]
    fn the_secret_is_not_accepted_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.toml");
        std::fs::write(&file, "s3_secret_access_key = \"x\"\n").unwrap();
        assert!(Settings::load_from(Some(Path::new(&file)), &HashMap::new()).is_err());
        std::fs::write(
            &file,
            "s3_bucket = \"medport-phi\"\ns3_region = \"eu-west-1\"\n",
        )
        .unwrap();
        let e = Settings::load_from(Some(Path::new(&file)), &HashMap::new()).unwrap_err();
        assert_eq!(e.setting, "MEDPORT_S3_ACCESS_KEY_ID");
    }
}
